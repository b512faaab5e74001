/* batch.h - turning a seq-ordered run of ops into few SQL statements.
 *
 * Pure logic, no libpq, so that pg_apply's planning is unit-tested without a
 * server. Three steps:
 *   1. batch_collapse: per record (model, pk), the ops shrink to at most a
 *      delete followed by an upsert, without changing what PostgreSQL ends
 *      up with:
 *      - a run of upserts becomes its last one, in the place of its first
 *        (so a parent inserted before its child stays first), carrying the
 *        union of the run's documents, later values winning: an update
 *        carries only the columns it sets (op.h), so the last one alone may
 *        lack a column an earlier one set (the union is made only then; the
 *        op's own document is kept in own_doc);
 *      - a delete stands for itself and every op of the record before it,
 *        in its own place (a child deleted before its parent stays before);
 *      - a run takes the kind of its first op: a run that begins with a
 *        create (OP_CREATE) is a create, whatever its last write was;
 *      - upserts after a delete (a re-creation) start a new run after it:
 *        the row is deleted, then inserted with exactly the new document,
 *        and a refused insert does not undo the delete.
 *   2. batch_group: consecutive runs of the collapsed order that one
 *      statement can apply (same model, same kind, same top-level JSON keys).
 *   3. batch_bisect: a group the backend refuses is split in halves until the
 *      op it refuses is found; the backend is reached through callbacks. An
 *      op that stands for others and is refused alone falls back to the ops
 *      it stands for, in seq order, so a refused write never takes an
 *      acknowledged valid one with it.
 * Everything is capped; past a cap the call fails with SH_ETOOBIG.
 */
#ifndef SHARDED_BATCH_H
#define SHARDED_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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

#define BATCH_NONE SIZE_MAX	/* no op: in prev[] */

/* Collapse ops[0..n) (seq ascending), ignoring ops marked skipped, by the
 * rules above. order must hold n entries; it receives indices into ops of the
 * surviving ops, *norder of them. prev must hold n entries: prev[i] is the op
 * of the same record before ops[i] (BATCH_NONE for the first). Ops a later op
 * stands for get superseded. */
enum sh_err batch_collapse(struct op *ops, size_t n, size_t *order, size_t *norder, size_t *prev);

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
	/* Optional (prev NULL: every op stands for itself): the batch and
	 * batch_collapse's prev. */
	struct op *ops;
	const size_t *prev;
};

/* Apply idx[0..count): one try when nothing is refused; a refused range of
 * more than one op is reset, then its halves (first count / 2, then the rest)
 * are bisected in turn, so each refused op costs about 2 log2(count) tries and
 * is reported dead exactly once. An op refused alone that stands for others
 * (prev set) falls back to them: the op just before it in its record's chain
 * (and the delete before that op's run) is applied first, falling back the
 * same way when refused, then the op is tried again with its own document
 * (own_doc: the union no longer stands for anything) and is dead if refused
 * still. In a run that began with a create, the op is tried again only when
 * the one before it was applied (as an upsert over the row that one
 * inserted), and is dead otherwise: it never lands on someone else's row. Ops tried are no longer superseded; a refused run of upserts costs
 * about two tries per refused write, a valid one before them stops the walk.
 * An error from a try is returned at once: nothing is tried or reported dead
 * after it. count 0 tries nothing. */
enum sh_err batch_bisect(const size_t *idx, size_t count, const struct batch_bisect_ops *ops,
			 void *ctx);

/* Match rows a statement returned to the ops it was given, by key: got
 * holds nrows rows of nkey strings each (row r's part k at got[r * nkey +
 * k]), want holds count ops' keys the same way. pos[r] receives the op row r
 * is the key of, or BATCH_NONE. Rows in want's order cost one comparison
 * each; any other order is matched through a sorted copy of want. Keys are
 * compared as bytes. Returns how many rows found their op; SH_ENOMEM leaves
 * *matched 0. */
enum sh_err batch_match_keys(const char *const *got, size_t nrows, const char *const *want,
			     size_t count, size_t nkey, size_t *pos, size_t *matched);

#endif
