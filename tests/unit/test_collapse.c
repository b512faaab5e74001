/* test_collapse.c - collapsing never changes meaning: random runs of writes,
 * applied one by one in seq order and applied as pg_apply does (collapse,
 * group, bisect with the fall-back to the writes a refused op stands for),
 * against a fake backend, must end with the same rows; an op is dead in the
 * batch only if it is dead one by one, and one dead one by one but not in the
 * batch was superseded (a later write of the record left its value behind).
 *
 * The fake backend holds a few records of a few fields. Its refusals are
 * those of PostgreSQL in kind: an upsert carrying "bad":1 (a check or foreign
 * key on a value), an insert without "a" (a NOT NULL column without a
 * default), a delete of a "pinned" record (one that existed before the batch
 * and that a child row references).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "batch.h"

#define NREC 3
#define NFIELD 4	/* a, b, bad, c */
#define MAXOPS 24
#define TRIALS 3000

static const char *const field_names[NFIELD] = { "a", "b", "bad", "c" };
static const char *const pks[NREC] = { "0", "1", "2" };

struct row {
	bool exists;
	bool has[NFIELD];
	int val[NFIELD];
};

struct db {
	struct row rows[NREC];
};

struct run {
	struct op ops[MAXOPS];
	struct row docs[MAXOPS];	/* each upsert's document, as fields */
	char text[MAXOPS][128];
	size_t n;
	bool pinned[NREC];
	struct db db;			/* the backend's state */
	bool dead[MAXOPS];
	size_t tries;
};

static uint64_t rng = 88172645463325252ULL;

static unsigned rnd(unsigned n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (unsigned)(rng % n);
}

static int rec_of(const struct op *op)
{
	return op->pk[0] - '0';
}

/* One op on db, as one statement would: false when refused (db unchanged). */
static bool apply_op(const struct run *r, struct db *db, size_t i)
{
	const struct op *op = &r->ops[i];
	struct row *row = &db->rows[rec_of(op)];
	const struct row *doc = &r->docs[i];

	if (op->kind == OP_DELETE) {
		if (r->pinned[rec_of(op)] && row->exists)
			return false;
		memset(row, 0, sizeof(*row));
		return true;
	}
	if ((doc->has[2] && doc->val[2]) || (!row->exists && !doc->has[0]))
		return false;
	row->exists = true;
	for (int f = 0; f < NFIELD; f++) {
		if (doc->has[f]) {
			row->has[f] = true;
			row->val[f] = doc->val[f];
		}
	}
	return true;
}

/* batch_try_fn: all of idx or nothing; a record at most once (PostgreSQL's
 * ON CONFLICT cannot touch a row twice in one statement). */
static enum sh_err fake_try(void *ctx, const size_t *idx, size_t count, char **why)
{
	struct run *r = ctx;
	struct db next = r->db;
	bool seen[NREC] = { false };

	r->tries++;
	for (size_t k = 0; k < count; k++) {
		assert_false(seen[rec_of(&r->ops[idx[k]])]);
		seen[rec_of(&r->ops[idx[k]])] = true;
		if (!apply_op(r, &next, idx[k])) {
			*why = strdup("refused");
			return SH_OK;
		}
	}
	r->db = next;
	return SH_OK;
}

static void fake_dead(void *ctx, size_t i, char *why)
{
	struct run *r = ctx;

	free(why);
	assert_false(r->dead[i]);
	r->dead[i] = true;
}

/* The document text of a row, as the block would store it. */
static void doc_text(const struct row *doc, int rec, char *out, size_t len)
{
	int n = snprintf(out, len, "{\"id\":%d", rec);

	for (int f = 0; f < NFIELD; f++)
		if (doc->has[f])
			n += snprintf(out + n, len - (size_t)n, ",\"%s\":%d", field_names[f], doc->val[f]);
	snprintf(out + n, len - (size_t)n, "}");
}

/* Random writes as the engine makes them: each upsert's document is the
 * block's copy of the record with the new keys merged on; a delete drops the
 * copy, so the next upsert starts from nothing. */
static void generate(struct run *r)
{
	struct row local[NREC];

	memset(r, 0, sizeof(*r));
	for (int k = 0; k < NREC; k++) {
		if (rnd(3) != 0) {
			r->db.rows[k] = (struct row){ .exists = true, .has = { true, true }, .val = { 1, 1 } };
			r->pinned[k] = rnd(3) == 0;	/* a child row references it */
		}
		local[k] = r->db.rows[k];
	}
	r->n = 1 + rnd(MAXOPS);
	for (size_t i = 0; i < r->n; i++) {
		int k = (int)rnd(NREC);
		struct op *op = &r->ops[i];

		op->seq = (int64_t)i + 1;
		op->model = (char *)"User";
		op->pk = (char *)pks[k];
		if (local[k].exists && rnd(4) == 0) {
			op->kind = OP_DELETE;
			memset(&local[k], 0, sizeof(local[k]));
			continue;
		}
		op->kind = OP_UPSERT;
		local[k].exists = true;
		for (int f = 0; f < NFIELD; f++) {
			if (rnd(2)) {
				local[k].has[f] = true;
				local[k].val[f] = f == 2 ? rnd(5) == 0 : (int)rnd(100);
			}
		}
		r->docs[i] = local[k];
		doc_text(&local[k], k, r->text[i], sizeof(r->text[i]));
		op->doc = r->text[i];
	}
}

static void apply_one_by_one(struct run *r)
{
	for (size_t i = 0; i < r->n; i++)
		r->dead[i] = !apply_op(r, &r->db, i);
}

static void apply_batched(struct run *r)
{
	size_t order[MAXOPS], prev[MAXOPS], norder, ngroups;
	struct batch_group groups[MAXOPS];
	const struct batch_bisect_ops ops = {
		.try_range = fake_try, .dead = fake_dead, .ops = r->ops, .prev = prev,
	};

	assert_int_equal(batch_collapse(r->ops, r->n, order, &norder, prev), SH_OK);
	assert_int_equal(batch_group(r->ops, order, norder, groups, &ngroups), SH_OK);
	for (size_t g = 0; g < ngroups; g++)
		assert_int_equal(batch_bisect(order + groups[g].first, groups[g].count, &ops, r), SH_OK);
}

static void test_batched_as_one_by_one(void **state)
{
	unsigned fallbacks = 0;

	(void)state;
	for (int t = 0; t < TRIALS; t++) {
		struct run seq, bat;

		generate(&seq);
		bat = seq;
		for (size_t i = 0; i < bat.n; i++)
			bat.ops[i].doc = bat.ops[i].kind == OP_UPSERT ? bat.text[i] : NULL;
		apply_one_by_one(&seq);
		apply_batched(&bat);
		for (int k = 0; k < NREC; k++) {
			if (memcmp(&seq.db.rows[k], &bat.db.rows[k], sizeof(struct row)) != 0)
				fail_msg("trial %d: record %d differs", t, k);
		}
		for (size_t i = 0; i < seq.n; i++) {
			if (bat.dead[i] && !seq.dead[i])
				fail_msg("trial %d: op %zu dead only in the batch", t, i);
			if (seq.dead[i] && !bat.dead[i] && !bat.ops[i].superseded)
				fail_msg("trial %d: op %zu lost its refusal", t, i);
			fallbacks += bat.dead[i] && !bat.ops[i].superseded;
		}
	}
	assert_true(fallbacks > 100);	/* refusals were exercised */
}

/* Delete, then re-create with fewer fields: the row holds exactly the new
 * document; a refused re-creation leaves the row deleted. */
static void test_recreate_exactly(void **state)
{
	struct run r = { 0 };
	size_t i;

	(void)state;
	r.db.rows[0] = (struct row){ .exists = true, .has = { true, true }, .val = { 5, 6 } };
	r.n = 2;
	r.ops[0] = (struct op){ .seq = 1, .kind = OP_DELETE, .model = (char *)"User", .pk = (char *)"0" };
	r.ops[1] = (struct op){ .seq = 2, .kind = OP_UPSERT, .model = (char *)"User", .pk = (char *)"0" };
	r.docs[1] = (struct row){ .exists = true, .has = { true }, .val = { 7 } };
	doc_text(&r.docs[1], 0, r.text[1], sizeof(r.text[1]));
	r.ops[1].doc = r.text[1];
	apply_batched(&r);
	assert_true(r.db.rows[0].exists);
	assert_false(r.db.rows[0].has[1]);	/* not the deleted row's b */
	assert_int_equal(r.db.rows[0].val[0], 7);

	memset(&r.db, 0, sizeof(r.db));
	r.db.rows[0] = (struct row){ .exists = true, .has = { true, true }, .val = { 5, 6 } };
	r.docs[1].has[2] = true;	/* "bad":1: the re-creation is refused */
	r.docs[1].val[2] = 1;
	doc_text(&r.docs[1], 0, r.text[1], sizeof(r.text[1]));
	for (i = 0; i < 2; i++)
		r.ops[i].superseded = r.dead[i] = false;
	apply_batched(&r);
	assert_false(r.db.rows[0].exists);	/* the acknowledged delete happened */
	assert_true(r.dead[1]);
	assert_false(r.dead[0]);
}

/* A valid write, then at once a refused one of the same record: the valid one
 * applies, only the refused one is dead; and with no refusal, one try. */
static void test_refused_write_spares_the_valid_one(void **state)
{
	struct run r = { 0 };

	(void)state;
	r.db.rows[0] = (struct row){ .exists = true, .has = { true, true }, .val = { 1, 1 } };
	r.n = 2;
	for (int i = 0; i < 2; i++) {
		r.ops[i] = (struct op){ .seq = i + 1, .kind = OP_UPSERT, .model = (char *)"User",
					.pk = (char *)"0" };
		r.docs[i] = (struct row){ .exists = true, .has = { true, true, i == 1 },
					  .val = { 250, 1, 1 } };
		doc_text(&r.docs[i], 0, r.text[i], sizeof(r.text[i]));
		r.ops[i].doc = r.text[i];
	}
	apply_batched(&r);
	assert_int_equal(r.db.rows[0].val[0], 250);
	assert_false(r.dead[0]);
	assert_true(r.dead[1]);
	assert_false(r.ops[0].superseded);
	assert_int_equal(r.tries, 3);	/* the pair, then each alone */

	r.tries = 0;
	r.docs[1].has[2] = false;
	doc_text(&r.docs[1], 0, r.text[1], sizeof(r.text[1]));
	r.ops[0].superseded = r.ops[1].superseded = r.dead[1] = false;
	apply_batched(&r);
	assert_int_equal(r.tries, 1);
	assert_true(r.ops[0].superseded);
}

/* A record written 5,000 times in one batch, every write refused (a bad
 * value once written is carried by every later document): each is dead once,
 * in about two tries each, and the fall-back's recursion holds. */
static enum sh_err refuse_all(void *ctx, const size_t *idx, size_t count, char **why)
{
	size_t *tries = ctx;

	(void)idx;
	(void)count;
	++*tries;
	*why = strdup("refused");
	return SH_OK;
}

static size_t ndead;

static void count_dead(void *ctx, size_t i, char *why)
{
	(void)ctx;
	(void)i;
	free(why);
	ndead++;
}

static void test_long_refused_run(void **state)
{
	enum { N = 5000 };
	struct op *ops = calloc(N, sizeof(*ops));
	size_t *order = calloc(N, sizeof(*order)), *prev = calloc(N, sizeof(*prev)), norder, tries = 0;
	const struct batch_bisect_ops bops = {
		.try_range = refuse_all, .dead = count_dead, .ops = ops, .prev = prev,
	};

	(void)state;
	assert_non_null(ops);
	for (int i = 0; i < N; i++)
		ops[i] = (struct op){ .seq = i + 1, .kind = OP_UPSERT, .model = (char *)"User",
				      .pk = (char *)"1", .doc = (char *)"{\"id\":1,\"bad\":1}" };
	assert_int_equal(batch_collapse(ops, N, order, &norder, prev), SH_OK);
	assert_int_equal(norder, 1);
	assert_int_equal(batch_bisect(order, 1, &bops, &tries), SH_OK);
	assert_int_equal(ndead, N);
	assert_int_equal(tries, 2 * N - 1);
	for (int i = 0; i < N; i++)
		assert_false(ops[i].superseded);
	free(ops);
	free(order);
	free(prev);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_batched_as_one_by_one),
		cmocka_unit_test(test_recreate_exactly),
		cmocka_unit_test(test_refused_write_spares_the_valid_one),
		cmocka_unit_test(test_long_refused_run),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
