/* admin.h - what the `sharded` tool does for an operator, without printing.
 *
 * Every function works on the block files of a data directory (through
 * store.h, safe while mount.sharded has them open: SQLite WAL + busy_timeout)
 * and on the block's Redis keys (redis.h):
 *   sharded:{<block>}:ops    outbox entries on their way to PostgreSQL
 *   sharded:{<block>}:dead   dead letters: writes PostgreSQL refused for good,
 *                            fields seq, op, model, pk, error (and doc for upserts)
 * Results come back as data; the tool formats them. On failure, err gets a
 * one-line lowercase reason naming the subject in 'quotes', never a password.
 */
#ifndef SHARDED_ADMIN_H
#define SHARDED_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "error.h"

/* Called after each item of a long operation: done of total. */
typedef void (*admin_progress_fn)(void *ctx, size_t done, size_t total);

/* ---- dead letters ------------------------------------------------------- */

struct admin_dead {
	char *id;		/* stream id, "<ms>-<n>" */
	int64_t seq;		/* the write's block sequence number, 0 if missing */
	char op;		/* 'U', 'D', or 0 if missing */
	char *model;		/* NULL when the field is missing (also below) */
	char *pk;
	char *error;
	char *doc;		/* NULL for a delete */
};

void admin_dead_free(struct admin_dead *d, size_t n);

/* Every dead letter of block, in stream (= original) order. *out is malloc'd. */
enum sh_err admin_dlq_list(redisContext *rc, const char *block, struct admin_dead **out,
			   size_t *n, char *err, size_t errlen);

/* Write the dead letters of block (all, or those whose ids are given; in
 * stream order either way) into the block's file again, each as a new write
 * with a new seq, then remove it from the dead stream and count it off
 * meta dead_total. Stops at the first one it cannot write, so the order
 * holds. *done receives how many were retried. */
enum sh_err admin_dlq_retry(redisContext *rc, const char *data_dir, const char *block,
			    const char *const *ids, size_t nids, admin_progress_fn progress,
			    void *ctx, size_t *done, char *err, size_t errlen);

/* Remove dead letters of block (all when nids is 0) and count them off
 * meta dead_total (when the block file exists). *done: how many. */
enum sh_err admin_dlq_drop(redisContext *rc, const char *data_dir, const char *block,
			   const char *const *ids, size_t nids, admin_progress_fn progress,
			   void *ctx, size_t *done, char *err, size_t errlen);

/* ---- status ------------------------------------------------------------- */

struct admin_status {
	char *block;
	int64_t pending;	/* outbox entries */
	int64_t applied;	/* meta applied_total */
	int64_t dead;		/* meta dead_total */
	int64_t records;
	int64_t last_sync_ns;	/* 0 = never */
	int64_t lag_ms;		/* age of the oldest pending write, 0 when none */
};

void admin_status_free(struct admin_status *s, size_t n);

/* The status of every block file in data_dir (sorted by id), or of block
 * alone when it is not NULL. Needs no server. */
enum sh_err admin_status(const char *data_dir, const char *block, struct admin_status **out,
			 size_t *n, char *err, size_t errlen);

/* ---- cleanup ------------------------------------------------------------ */

struct admin_cleanup_result {
	size_t keys_seen;	/* sharded:{*}:* keys found */
	size_t ops_deleted;	/* ops streams of blocks without a file, deleted */
	size_t ops_kept;	/* ... kept: entries still wait in them (another node's) */
	size_t dead_deleted;	/* dead streams of blocks without a file, deleted */
	size_t dead_kept;	/* ... kept (no include_dead) */
	size_t entries_deleted;	/* acknowledged entries removed from ops streams of live blocks */
	size_t skipped;		/* keys that are not a block's ops or dead stream */
};

/* Delete the Redis leftovers of blocks that have no file in data_dir (dead
 * streams only with include_dead), and acknowledged entries from the ops
 * streams of blocks that do. With dry_run, count without deleting.
 * Several nodes may share the Redis: a block without a file here may be
 * another node's, so its ops stream loses only its acknowledged entries and
 * is deleted only once empty or stale (admin_drop_stream). */
/* Delete the acknowledged entries of the ops stream key, then the stream if
 * it is empty or its newest entry is over 10 minutes old, in one step (a
 * script: an XADD of another node cannot land between the check and the
 * delete). *dropped tells whether it went (with dry_run: would go, not
 * counting the acknowledged entries a real run deletes first). */
enum sh_err admin_drop_stream(redisContext *rc, const char *key, bool dry_run,
			      size_t *entries_deleted, bool *dropped, char *err, size_t errlen);

enum sh_err admin_cleanup(redisContext *rc, const char *data_dir, bool include_dead, bool dry_run,
			  admin_progress_fn progress, void *ctx, struct admin_cleanup_result *res,
			  char *err, size_t errlen);

/* ---- the mount ---------------------------------------------------------- */

/* Write "1" to <mount>/<block>/invalidate. */
enum sh_err admin_invalidate(const char *mount, const char *block, char *err, size_t errlen);

/* ---- helpers, exposed for tests ----------------------------------------- */

/* Is s a stream id ("<ms>-<n>" or "<ms>")? */
bool admin_stream_id_valid(const char *s);

/* Compare two stream ids numerically: <0, 0, >0. */
int admin_stream_id_cmp(const char *a, const char *b);

/* Split "sharded:{<block>}:<what>" into block and what; false if key is not
 * of that form or block does not fit. */
bool admin_key_parse(const char *key, char *block, size_t blocklen, char *what, size_t whatlen);

/* Indexes into list (in list order) of the entries whose id is in ids.
 * Returns false, with the first id not found in *missing, if some id is not
 * in list. *idx is malloc'd (may be NULL when *nidx is 0). */
bool admin_pick(const struct admin_dead *list, size_t n, const char *const *ids, size_t nids,
		size_t **idx, size_t *nidx, const char **missing);

#endif
