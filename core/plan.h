/* plan.h - which stream entries of a block the apply thread applies, which it
 * only acknowledges, and which wait.
 *
 * Pure logic: no Redis, no PostgreSQL, so the exactly-once decisions are
 * unit-tested (tests/unit/test_plan.c). sync.c turns a Redis stream entry
 * into name/value arrays for plan_parse_entry(), reads what PostgreSQL has
 * applied of each origin plan_origins() names, and hands both to plan_make().
 *
 * The rules (op.h says what an origin is):
 * - already applied, exactly: PostgreSQL's seq for the entry's origin is at
 *   or above the entry's seq. Copies of one (origin, seq) apply once.
 * - contiguous per origin: the next entry of an origin is
 *   max(applied, base) + 1; anything after a missing one waits for it.
 * - an origin's first write (seq base + 1) waits until the write it comes
 *   after (after, after_seq), the last one the file then still had pending,
 *   is applied: so the writes of one file reach PostgreSQL in the order they
 *   were made, across restarts, restores and other processes, while origins
 *   that do not follow each other (two nodes, later) never wait on each other.
 */
#ifndef SHARDED_PLAN_H
#define SHARDED_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "op.h"

#define PLAN_ID_MAX 48	/* a Redis stream entry id, "ms-seq", with room to spare */

/* A stream entry turned into an op, with the id to acknowledge. */
struct plan_entry {
	struct op op;		/* owned; seq, origin, base, after, after_seq from the entry */
	char id[PLAN_ID_MAX];
};

/* What PostgreSQL has applied of one origin (0: nothing). */
struct plan_origin {
	char origin[OP_ORIGIN_MAX];
	int64_t applied;
};

enum plan_verdict {
	PLAN_WAIT,	/* after a missing entry: stays pending in Redis */
	PLAN_APPLY,	/* goes to PostgreSQL now */
	PLAN_SKIP	/* applied before, or a copy: only acknowledged */
};

/* Parse one entry: fields[0..nfields) alternates names and values (a NULL
 * value: not a string). Fields: seq, base, op, model, pk, doc (upserts),
 * origin, after, after_seq (absent in entries from before origins: the
 * legacy origin, after nothing). false when a field is missing or malformed
 * (e is then empty and owns nothing); on true, e owns its strings. */
bool plan_parse_entry(const char *id, const char *const *fields, size_t nfields,
		      struct plan_entry *e);

/* Sort entries by origin (origins of one file sort in the order they
 * began), then seq. */
void plan_sort(struct plan_entry *es, size_t n);

/* The distinct origins es names, their own and those they come after,
 * sorted, applied 0. out must hold 2 n; returns how many. */
size_t plan_origins(const struct plan_entry *es, size_t n, struct plan_origin *out);

/* qsort/bsearch order of struct plan_origin: by origin. */
int plan_origin_cmp(const void *a, const void *b);

/* Decide for each of the sorted es (verdict[i]); pick[0..*npick) receives the
 * indexes of the entries to apply, in the order to apply them. origins come
 * from plan_origins with applied filled in; on return each origin's applied
 * counts the picks. Returns how many entries wait. */
size_t plan_make(const struct plan_entry *es, size_t n, struct plan_origin *origins,
		 size_t norigins, enum plan_verdict *verdict, size_t *pick, size_t *npick);

/* op_release each entry, then free the array. Accepts NULL. */
void plan_free_entries(struct plan_entry *es, size_t n);

#endif
