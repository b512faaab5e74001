/* loader.h - loader rules: which rows a new block holds.
 *
 * The rules file (-o loaders=FILE) reads:
 *
 *   # blocks named user-<n> hold that user and their newest 100 orders
 *   block user-{id}
 *       User  where "id" = $id
 *       Order where "userId" = $id order by "placed_at" desc limit 100
 *
 * A rule starts with "block PATTERN"; {name} in the pattern matches one or
 * more characters of the block id, and the first rule whose pattern matches
 * the whole id wins. Each indented line is "MODEL where CONDITION": the
 * condition is SQL for PostgreSQL, and $name stands for the captured text,
 * sent as a bound parameter, never pasted into the SQL. A model whose name
 * has a space or a quote is quoted as in SQL: "Order Item" where ...
 */
#ifndef SHARDED_LOADER_H
#define SHARDED_LOADER_H

#include <stddef.h>

#include "catalog.h"
#include "error.h"

#define LOADER_CAPTURES_MAX 8

/* One model of a rule: its condition, with $name rewritten to $1..$n. */
struct load_step {
	const struct model *model;
	int line;			/* in the rules file, for messages */
	char *where;			/* SQL after WHERE, with $1.. placeholders */
	int nparams;
	int capture[LOADER_CAPTURES_MAX];	/* parameter i is capture capture[i] */
};

struct load_rule {
	char *pattern;
	int line;			/* in the rules file, for messages */
	char *names[LOADER_CAPTURES_MAX];
	int ncaptures;
	struct load_step *steps;
	size_t nsteps;
};

struct loaders {
	struct load_rule *rules;
	size_t nrules;
};

/* Parse the rules file at path against the catalog. On failure err names
 * the file and line. */
enum sh_err loaders_parse(const char *path, const struct catalog *cat, struct loaders **out,
			  char *err, size_t errlen);

/* Parse rules from text (for tests); name is used in messages. */
enum sh_err loaders_parse_text(const char *text, const char *name, const struct catalog *cat,
			       struct loaders **out, char *err, size_t errlen);

/* The first rule matching id, or NULL. values[i] receives capture i
 * (malloc'd; free with loader_values_free) when a rule matches. */
const struct load_rule *loaders_match(const struct loaders *l, const char *id,
				      char *values[LOADER_CAPTURES_MAX]);
void loader_values_free(char *values[LOADER_CAPTURES_MAX]);

/* Accepts NULL. */
void loaders_free(struct loaders *l);

#endif
