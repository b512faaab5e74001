/* op.h - one write operation on one record, as it travels from a block's
 * outbox through Redis to PostgreSQL.
 *
 * A write is named by (block, origin, seq). origin is the incarnation of the
 * block file that made it: a new one begins whenever a process starts writing
 * to a file it opened from disk, and whenever the file is not as this process
 * left it (restored from a backup, rolled back by a power loss, written by
 * another process). seq is the file's own counter, one per write, strictly
 * increasing within an origin and contiguous from base + 1, so "origin applied
 * up to seq N" is a complete statement of what PostgreSQL has of that origin,
 * even when a restored file counts again from a lower seq (see store.h).
 */
#ifndef SHARDED_OP_H
#define SHARDED_OP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define OP_ORIGIN_MAX 33	/* an origin: up to 32 lowercase hex digits and a NUL */
#define OP_ORIGIN_LEGACY "0"	/* writes made before origins existed (and ops without one) */

enum op_kind {
	OP_UPSERT = 'U',	/* doc holds the whole record as a JSON object */
	OP_CREATE = 'C',	/* the same, for a record the block did not hold: applied as
				 * a plain INSERT, so a row created meanwhile by someone else
				 * refuses it (a dead letter) instead of being merged into */
	OP_DELETE = 'D'		/* doc is NULL */
};

/* Does kind carry a document (an upsert or a create)? */
static inline bool op_kind_writes(char kind)
{
	return kind == OP_UPSERT || kind == OP_CREATE;
}

struct op {
	int64_t seq;
	char origin[OP_ORIGIN_MAX];	/* "" reads as OP_ORIGIN_LEGACY */
	int64_t base;		/* the file's last seq when origin began: its first write is base + 1 */
	/* On the origin's first write (seq base + 1): "" or the write (after,
	 * after_seq) to apply before it, the file's last one then still pending.
	 * "" on the others. */
	char after[OP_ORIGIN_MAX];
	int64_t after_seq;
	char kind;		/* enum op_kind */
	char *model;		/* owned */
	char *pk;		/* owned; the primary key as text, as in the file name */
	char *doc;		/* owned; NULL for OP_DELETE. An update (OP_UPSERT of a
				 * record the block held) carries the key and the
				 * columns it sets (doc.h doc_prepare_update); a
				 * create, and outbox entries of older versions,
				 * every column */
	char *own_doc;		/* owned; set by batch_collapse when it replaced doc
				 * by the union of the writes the op stands for:
				 * the op's own document, put back by batch_bisect
				 * when the op falls back to those writes */

	/* Filled by pg_apply(); all owned, freed by op_release(). */
	bool skipped;		/* seq was already applied earlier: nothing done */
	bool superseded;	/* a later op in the same batch wrote the same record */
	bool dead;		/* PostgreSQL refused it permanently; see error */
	char *error;		/* PostgreSQL's error text when dead */
	char *returned;		/* row_to_json of the row after an applied upsert */
};

/* op's origin, OP_ORIGIN_LEGACY when it has none. */
const char *op_origin(const struct op *op);

/* Is s an origin (1 to 32 lowercase hex digits)? */
bool op_origin_valid(const char *s);

/* Free what op owns (not op itself). Accepts NULL. */
void op_release(struct op *op);

/* Release n ops and free the array. Accepts NULL. */
void op_free_array(struct op *ops, size_t n);

#endif
