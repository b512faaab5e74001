/* batch.h - turning a seq-ordered run of ops into few SQL statements.
 *
 * Pure logic, no libpq, so that pg_apply's planning is unit-tested without a
 * server. Three steps:
 *   1. batch_collapse: one op per (model, pk); the last op's value wins and
 *      takes the place of the first occurrence, so a parent inserted before
 *      its child stays first (foreign-key order).
 *   2. batch_group: consecutive runs of the collapsed order that one
 *      statement can apply (same model, same kind, same top-level JSON keys).
 *   3. batch_bisect: a group the backend refuses is split in halves until the
 *      op it refuses is found; the backend is reached through callbacks.
 * Everything is capped; past a cap the call fails with SH_ETOOBIG.
 */
#ifndef SHARDED_BATCH_H
#define SHARDED_BATCH_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"
#include "op.h"

#define BATCH_MAX_OPS 1000000		/* ops per pg_apply call */
#define BATCH_GROUP_MAX_OPS 5000	/* rows per statement */
#define BATCH_GROUP_MAX_BYTES (16u << 20)	/* document bytes per statement */
#define BATCH_MAX_KEYS 1664		/* top-level keys per document (PostgreSQL allows 1600 columns) */

/* A top-level key of a JSON object, as raw bytes between the quotes (escapes
 * not decoded: comparing raw bytes can only call equal keys different, which
 * costs an extra statement, never a wrong one). */
struct batch_key {
	const char *p;
	size_t len;
};

/* A run order[first .. first+count) that becomes one statement. */
struct batch_group {
	size_t first;
	size_t count;
};

/* Collapse ops[0..n) (seq ascending), ignoring ops marked skipped. order must
 * hold n entries; it receives indices into ops of the surviving ops, *norder
 * of them. Ops replaced by a later op of the same (model, pk) get superseded. */
enum sh_err batch_collapse(struct op *ops, size_t n, size_t *order, size_t *norder);

/* Split order[0..norder) into groups; groups must hold norder entries. An upsert
 * whose document cannot be scanned forms a group of its own. */
enum sh_err batch_group(const struct op *ops, const size_t *order, size_t norder,
			struct batch_group *groups, size_t *ngroups);

/* The top-level keys of a JSON object, sorted (by length, then bytes).
 * Returns their number, or -1 if doc is not an object or has more than cap keys. */
int batch_doc_keys(const char *doc, struct batch_key *keys, size_t cap);

/* Apply idx[0..count) as one all-or-nothing unit. SH_OK with *why NULL:
 * applied. SH_OK with *why set (malloc'd, ownership passes to the caller):
 * refused for good, nothing of it applied. Anything else: abandon the batch
 * (*why is then freed if set). */
typedef enum sh_err (*batch_try_fn)(void *ctx, const size_t *idx, size_t count, char **why);

/* idx[0..count) was refused as a whole and is about to be split: undo what
 * earlier applied parts of it left behind (pg.c: the returned rows). */
typedef void (*batch_reset_fn)(void *ctx, const size_t *idx, size_t count);

/* The backend refuses op i on its own: it is dead. Takes ownership of why. */
typedef void (*batch_dead_fn)(void *ctx, size_t i, char *why);

struct batch_bisect_ops {
	batch_try_fn try_range;
	batch_reset_fn reset;	/* may be NULL */
	batch_dead_fn dead;
};

/* Apply idx[0..count): one try when nothing is refused; a refused range of
 * more than one op is reset, then its halves (first count / 2, then the rest)
 * are bisected in turn, so each refused op costs about 2 log2(count) tries and
 * is reported dead exactly once. An error from a try is returned at once:
 * nothing is tried or reported dead after it. count 0 tries nothing. */
enum sh_err batch_bisect(const size_t *idx, size_t count, const struct batch_bisect_ops *ops,
			 void *ctx);

#endif
