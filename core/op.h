/* op.h - one write operation on one record, as it travels from a block's
 * outbox through Redis to PostgreSQL.
 *
 * seq is the block's sequence number: strictly increasing per block, never
 * reused (see store.h), so "applied up to seq N" is a complete statement of
 * what PostgreSQL has from that block.
 */
#ifndef SHARDED_OP_H
#define SHARDED_OP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum op_kind {
	OP_UPSERT = 'U',	/* doc holds the whole record as a JSON object */
	OP_DELETE = 'D'		/* doc is NULL */
};

struct op {
	int64_t seq;
	char kind;		/* enum op_kind */
	char *model;		/* owned */
	char *pk;		/* owned; the primary key as text, as in the file name */
	char *doc;		/* owned; NULL for OP_DELETE */

	/* Filled by pg_apply(); all owned, freed by op_release(). */
	bool skipped;		/* seq was already applied earlier: nothing done */
	bool superseded;	/* a later op in the same batch wrote the same record */
	bool dead;		/* PostgreSQL refused it permanently; see error */
	char *error;		/* PostgreSQL's error text when dead */
	char *returned;		/* row_to_json of the row after an applied upsert */
};

/* Free what op owns (not op itself). Accepts NULL. */
void op_release(struct op *op);

/* Release n ops and free the array. Accepts NULL. */
void op_free_array(struct op *ops, size_t n);

#endif
