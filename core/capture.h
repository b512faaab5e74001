/* capture.h - changes made in PostgreSQL reach the blocks that hold them.
 *
 * `sharded capture install` puts AFTER INSERT/UPDATE/DELETE statement
 * triggers (with transition tables) and an AFTER TRUNCATE trigger on every
 * model's table; each changed row adds a row naming the table and the key,
 * never the row, to the unlogged table CAPTURE_SCHEMA.changes
 * (docs/architecture.md "Change capture"). The listener thread polls it
 * on a connection of its own, re-reads the changed rows in one query per
 * table, and updates every open block that holds them (or whose loader rule
 * takes a new one), unless that block has a write of its own pending.
 */
#ifndef SHARDED_CAPTURE_H
#define SHARDED_CAPTURE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "blocks.h"
#include "catalog.h"
#include "error.h"
#include "life.h"
#include "loader.h"
#include "pg.h"

#define CAPTURE_SCHEMA "sharded_capture"	/* the trigger functions live here */
#define CAPTURE_BATCH_MAX 1000	/* keys of one model in one batch; beyond: reload */
#define CAPTURE_KEY_MAX 4096	/* a key as text (pg.c PG_KEY_MAX) */

/* ---- in the database ---- */

/* Create (or replace) the trigger of every model of cat, in one
 * transaction. Idempotent. err gets PostgreSQL's reason on failure. */
enum sh_err capture_install(struct pg *pg, const struct catalog *cat, char *err, size_t errlen);

/* Drop every trigger and function capture_install made (the schema
 * CAPTURE_SCHEMA and what depends on it). Idempotent. */
enum sh_err capture_remove(struct pg *pg, char *err, size_t errlen);

/* Is capture installed (does CAPTURE_SCHEMA exist)? */
enum sh_err capture_installed(struct pg *pg, bool *installed);

/* ---- payloads and batches (pure) ---- */

/* One change: op 'I', 'U' or 'D'; the table; the commit side's
 * clock_timestamp() in microseconds; the key as the store names it
 * (key_join of the parts as text), or whole set: a key too long for a
 * payload, re-read everything of the table. */
struct capture_note {
	char op;
	char table[64];
	int64_t ts_us;
	bool whole;
	char pk[CAPTURE_KEY_MAX];
};

/* Parse a payload ["U","Order",1733200000000000,["42"]] (the key null for
 * whole). SH_EINVAL when it is not one. */
enum sh_err capture_parse(const char *payload, struct capture_note *out);

/* The changed keys of one model, deduplicated, capped at CAPTURE_BATCH_MAX
 * (past it, or for a whole note, whole is set and the keys no longer
 * matter). */
struct capture_set {
	const struct model *model;
	char **pks;
	size_t n, cap;
	bool whole;
	bool inserted;		/* some key was inserted or updated (not only deleted) */
};

struct capture_batch {
	struct capture_set *sets;
	size_t n;
	size_t notes;		/* changes taken in */
	int64_t oldest_ts_us;	/* of the notes taken in, for the lag */
};

/* Take a note into b; SH_ENOENT when its table is not a model of cat. */
enum sh_err capture_batch_add(struct capture_batch *b, const struct catalog *cat,
			      const struct capture_note *note);

/* Empty b (keeping nothing). */
void capture_batch_clear(struct capture_batch *b);

/* ---- the listener ---- */

struct capture_stats {
	atomic_llong notifications;	/* changes read from the changes table */
	atomic_llong applied;		/* records changed, added or dropped in a block */
	atomic_llong kept;		/* not applied: a local write was pending */
	atomic_llong lag_us;		/* last batch: commit (clock_timestamp) to applied */
	atomic_int connected;		/* connected and polling now */
	atomic_int installed;		/* the triggers were there at the last (re)connect */
};

typedef void (*capture_change_fn)(void *ctx, const char *block, const char *model, const char *pk,
				  bool gone);

struct capture_config {
	const struct catalog *cat;	/* borrowed */
	const struct loaders *loaders;	/* borrowed; NULL: no rules */
	struct blockset *blocks;	/* borrowed */
	struct life *life;		/* borrowed: reloads after a reconnect */
	const char *pg_conninfo;	/* borrowed */
	bool require;			/* -o capture=on: listen even without the triggers */
	capture_change_fn on_change;
	void *ctx;
};

struct capture;

/* Start the listener thread. *out owns it. */
enum sh_err capture_start(const struct capture_config *cfg, struct capture **out);

/* Stop it (within about a second) and free. No on_change after it returns.
 * Accepts NULL. */
void capture_stop(struct capture *c);

/* Its counters; NULL-safe (zeros). */
const struct capture_stats *capture_stats(const struct capture *c);

#endif
