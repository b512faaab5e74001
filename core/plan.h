/* plan.h - which stream entries of a block the apply thread applies, which it
 * only acknowledges, and which wait.
 *
 * Pure logic: no Redis, no PostgreSQL, so the exactly-once decisions are
 * unit-tested (tests/unit/test_plan.c). sync.c turns a Redis stream entry
 * into name/value arrays for plan_parse_entry(), reads what PostgreSQL has
 * applied, and hands both to plan_make().
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
	struct op op;		/* owned */
	int64_t base;		/* the block's seq before its first write */
	char id[PLAN_ID_MAX];
};

/* Parse one entry: fields[0..nfields) alternates names and values (a NULL
 * value: not a string). false when a field is missing or malformed (e is
 * then empty and owns nothing); on true, e owns its strings (op_release). */
bool plan_parse_entry(const char *id, const char *const *fields, size_t nfields,
		      struct plan_entry *e);

/* Sort entries into the order they are applied in (seq ascending). */
void plan_sort(struct plan_entry *es, size_t n);

/* Which sorted entries to apply: the contiguous run of seqs after what
 * PostgreSQL has (applied). Copies of one seq (re-sent entries) and seqs
 * already applied are only acknowledged. Fills pick (n entries) with the
 * indexes to apply, *npick of them; returns how many entries, from the
 * start, are settled (applied or duplicate). Entries after a gap stay
 * pending until the gap is filled. */
size_t plan_make(const struct plan_entry *es, size_t n, int64_t applied, size_t *pick,
		 size_t *npick);

/* op_release each entry, then free the array. Accepts NULL. */
void plan_free_entries(struct plan_entry *es, size_t n);

#endif
