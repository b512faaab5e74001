/* test_batch.c - collapse, grouping and bisection of ops before they reach
 * PostgreSQL; bisection runs against a fake backend that refuses chosen ops. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "batch.h"

#define MAX 64

/* batch_collapse's links, for every test's batch (the largest is the group cap's). */
static size_t prev[BATCH_GROUP_MAX_OPS * 2 + 1];

/* Ops point at string literals: nothing here is freed. */
static struct op mk(int64_t seq, char kind, const char *model, const char *pk, const char *doc)
{
	struct op op = { .seq = seq, .kind = kind };

	op.model = (char *)model;
	op.pk = (char *)pk;
	op.doc = (char *)doc;
	return op;
}

static size_t collapse(struct op *ops, size_t n, size_t *order)
{
	size_t norder = 99;

	assert_int_equal(batch_collapse(ops, n, order, &norder, prev), SH_OK);
	return norder;
}

static void test_collapse_last_wins_at_first_position(void **state)
{
	struct op ops[] = {
		mk(1, 'U', "User", "1", "{\"id\":1,\"v\":1}"),
		mk(2, 'U', "Order", "10", "{\"id\":10,\"userId\":1}"),
		mk(3, 'U', "User", "1", "{\"id\":1,\"v\":2}"),
		mk(4, 'U', "User", "2", "{\"id\":2}"),
		mk(5, 'U', "User", "1", "{\"id\":1,\"v\":3}"),
	};
	size_t order[MAX], n;

	(void)state;
	n = collapse(ops, 5, order);
	assert_int_equal(n, 3);
	assert_int_equal(order[0], 4);	/* User 1's last value, in its first place */
	assert_int_equal(order[1], 1);
	assert_int_equal(order[2], 3);
	assert_true(ops[0].superseded);
	assert_true(ops[2].superseded);
	assert_false(ops[4].superseded);
	assert_false(ops[1].superseded);
}

/* Updates carry the key and the columns they set (op.h): a run of them
 * collapses into one write of the union, later values winning, which groups
 * with another record's write of the same columns; the op keeps its own
 * document for a fall-back. A create's run takes the updates' columns over
 * its whole document. */
static void test_collapse_union_of_columns(void **state)
{
	struct op ops[] = {
		mk(1, 'U', "User", "1", "{\"id\":1,\"name\":\"a\"}"),
		mk(2, 'U', "User", "1", "{\"id\":1,\"email\":\"b\"}"),
		mk(3, 'U', "User", "1", "{\"id\":1,\"name\":\"c\"}"),
		mk(4, 'U', "User", "2", "{\"email\":\"x\",\"id\":2,\"name\":\"y\"}"),
		mk(5, 'C', "User", "3", "{\"id\":3,\"name\":\"n\",\"email\":\"e\"}"),
		mk(6, 'U', "User", "3", "{\"id\":3,\"name\":\"m\"}"),
	};
	struct batch_group groups[MAX];
	size_t order[MAX], n, ngroups;

	(void)state;
	n = collapse(ops, 6, order);
	assert_int_equal(n, 3);
	assert_int_equal(order[0], 2);
	assert_string_equal(ops[2].doc, "{\"email\":\"b\",\"id\":1,\"name\":\"c\"}");
	assert_string_equal(ops[2].own_doc, "{\"id\":1,\"name\":\"c\"}");
	assert_string_equal(ops[5].doc, "{\"email\":\"e\",\"id\":3,\"name\":\"m\"}");
	assert_int_equal(ops[5].kind, OP_CREATE);
	assert_int_equal(batch_group(ops, order, n, groups, &ngroups), SH_OK);
	assert_int_equal(ngroups, 2);	/* users 1 and 2 together; the create apart */
	assert_int_equal(groups[0].count, 2);
	for (size_t i = 0; i < 6; i++) {
		if (ops[i].own_doc)
			free(ops[i].doc);
	}
}

static void test_collapse_keeps_fk_order(void **state)
{
	/* parent inserted, child inserted, parent updated: the parent stays first */
	struct op ops[] = {
		mk(1, 'U', "User", "7", "{\"id\":7}"),
		mk(2, 'U', "Order", "70", "{\"id\":70,\"userId\":7}"),
		mk(3, 'U', "User", "7", "{\"id\":7,\"name\":\"x\"}"),
	};
	size_t order[MAX];

	(void)state;
	assert_int_equal(collapse(ops, 3, order), 2);
	assert_string_equal(ops[order[0]].model, "User");
	assert_string_equal(ops[order[0]].doc, "{\"id\":7,\"name\":\"x\"}");
	assert_string_equal(ops[order[1]].model, "Order");
}

static void test_collapse_delete_after_insert(void **state)
{
	struct op ops[] = {
		mk(1, 'U', "User", "1", "{\"id\":1}"),
		mk(2, 'D', "User", "1", NULL),
	};
	size_t order[MAX];

	(void)state;
	assert_int_equal(collapse(ops, 2, order), 1);
	assert_int_equal(order[0], 1);
	assert_true(ops[0].superseded);
}

/* Delete, then re-create: the row is deleted, then inserted with exactly the
 * new document (an upsert alone would keep the old row's other columns). */
static void test_collapse_insert_after_delete(void **state)
{
	struct op ops[] = {
		mk(1, 'D', "User", "1", NULL),
		mk(2, 'U', "User", "1", "{\"id\":1}"),
	};
	size_t order[MAX];

	(void)state;
	assert_int_equal(collapse(ops, 2, order), 2);
	assert_int_equal(order[0], 0);
	assert_int_equal(order[1], 1);
	assert_false(ops[0].superseded);
	assert_false(ops[1].superseded);
	assert_int_equal(prev[0], BATCH_NONE);
	assert_int_equal(prev[1], 0);
}

/* A delete stands for everything of its record before it, in its own place:
 * a child deleted before its parent stays before it. */
static void test_collapse_delete_in_its_own_place(void **state)
{
	struct op ops[] = {
		mk(1, 'U', "User", "1", "{\"id\":1,\"v\":1}"),
		mk(2, 'D', "Order", "10", NULL),
		mk(3, 'D', "User", "1", NULL),
	};
	size_t order[MAX];

	(void)state;
	assert_int_equal(collapse(ops, 3, order), 2);
	assert_int_equal(order[0], 1);
	assert_int_equal(order[1], 2);
	assert_true(ops[0].superseded);
}

/* Upsert, delete, upsert, upsert: the delete, then the re-creation's last
 * value in the place of its first; delete, upsert, delete: the last delete. */
static void test_collapse_chains(void **state)
{
	struct op a[] = {
		mk(1, 'U', "User", "1", "{\"id\":1,\"name\":\"x\"}"),
		mk(2, 'U', "User", "2", "{\"id\":2}"),
		mk(3, 'D', "User", "1", NULL),
		mk(4, 'U', "User", "1", "{\"id\":1}"),
		mk(5, 'U', "User", "3", "{\"id\":3}"),
		mk(6, 'U', "User", "1", "{\"id\":1,\"email\":\"e\"}"),
	};
	struct op b[] = {
		mk(1, 'D', "User", "1", NULL),
		mk(2, 'U', "User", "1", "{\"id\":1}"),
		mk(3, 'D', "User", "1", NULL),
	};
	size_t order[MAX];

	(void)state;
	assert_int_equal(collapse(a, 6, order), 4);
	assert_int_equal(order[0], 1);	/* User 2 */
	assert_int_equal(order[1], 2);	/* User 1's delete */
	assert_int_equal(order[2], 5);	/* its re-creation's last value, in the first one's place */
	assert_int_equal(order[3], 4);	/* User 3 */
	assert_true(a[0].superseded && a[3].superseded);
	assert_false(a[2].superseded || a[5].superseded);
	assert_int_equal(collapse(b, 3, order), 1);
	assert_int_equal(order[0], 2);
	assert_true(b[0].superseded && b[1].superseded);
}

static void test_collapse_same_pk_other_model(void **state)
{
	struct op ops[] = {
		mk(1, 'U', "User", "1", "{}"),
		mk(2, 'U', "Order", "1", "{}"),
		mk(3, 'U', "Use", "r1", "{}"),	/* the separator keeps these apart */
		mk(4, 'U', "User1", "", "{}"),
	};
	size_t order[MAX];

	(void)state;
	assert_int_equal(collapse(ops, 4, order), 4);
}

static void test_collapse_ignores_skipped(void **state)
{
	struct op ops[] = {
		mk(1, 'U', "User", "1", "{}"),
		mk(2, 'U', "User", "2", "{}"),
		mk(3, 'U', "User", "1", "{}"),
	};
	size_t order[MAX];

	(void)state;
	ops[0].skipped = ops[1].skipped = true;
	assert_int_equal(collapse(ops, 3, order), 1);
	assert_int_equal(order[0], 2);
	assert_false(ops[0].superseded);
}

static void test_collapse_many(void **state)
{
	enum { N = 5000 };
	struct op *ops = calloc(N, sizeof(*ops));
	char (*pks)[16] = calloc(N, 16);
	size_t *order = calloc(N, sizeof(*order));

	(void)state;
	for (int i = 0; i < N; i++) {
		snprintf(pks[i], 16, "%d", i % 1000);	/* each key five times */
		ops[i] = mk(i + 1, 'U', "User", pks[i], "{}");
	}
	assert_int_equal(collapse(ops, N, order), 1000);
	for (int i = 0; i < 1000; i++)
		assert_int_equal(order[i], 4000 + i);
	free(ops);
	free(pks);
	free(order);
}

static void test_collapse_cap(void **state)
{
	struct op op = mk(1, 'U', "User", "1", "{}");
	size_t order[1], n;

	(void)state;
	assert_int_equal(batch_collapse(&op, BATCH_MAX_OPS + 1, order, &n, prev), SH_ETOOBIG);
	assert_int_equal(batch_collapse(&op, 0, order, &n, prev), SH_OK);
	assert_int_equal(n, 0);
}

static size_t group(struct op *ops, size_t n, struct batch_group *g)
{
	size_t order[MAX], norder, ng = 99;

	norder = collapse(ops, n, order);
	assert_int_equal(batch_group(ops, order, norder, g, &ng), SH_OK);
	return ng;
}

static void test_group_by_model_kind_keys(void **state)
{
	struct op ops[] = {
		mk(1, 'U', "User", "1", "{\"id\":1,\"name\":\"a\"}"),
		mk(2, 'U', "User", "2", "{ \"name\" : \"b\", \"id\" : 2 }"),	/* same keys, other order */
		mk(3, 'U', "User", "3", "{\"id\":3}"),				/* fewer keys */
		mk(4, 'U', "User", "4", "{\"id\":4}"),
		mk(5, 'D', "User", "5", NULL),
		mk(6, 'D', "User", "6", NULL),
		mk(7, 'D', "Order", "7", NULL),
		mk(8, 'U', "Order", "8", "{\"id\":8}"),
	};
	struct batch_group g[MAX];

	(void)state;
	assert_int_equal(group(ops, 8, g), 5);
	assert_int_equal(g[0].first, 0);
	assert_int_equal(g[0].count, 2);
	assert_int_equal(g[1].first, 2);
	assert_int_equal(g[1].count, 2);
	assert_int_equal(g[2].count, 2);
	assert_int_equal(g[3].count, 1);
	assert_int_equal(g[4].count, 1);
}

static void test_group_nested_values(void **state)
{
	/* keys inside nested objects and strings do not count */
	struct op ops[] = {
		mk(1, 'U', "E", "1", "{\"id\":1,\"p\":{\"x\":[1,{\"y\":\"}\"}]},\"s\":\"a\\\"b,\\\"c\\\":\"}"),
		mk(2, 'U', "E", "2", "{\"s\":null,\"id\":2,\"p\":[]}"),
		mk(3, 'U', "E", "3", "{\"s\":null,\"id\":3,\"p\":[],\"x\":1}"),
	};
	struct batch_group g[MAX];

	(void)state;
	assert_int_equal(group(ops, 3, g), 2);
	assert_int_equal(g[0].count, 2);
}

static void test_group_unscannable_alone(void **state)
{
	struct op ops[] = {
		mk(1, 'U', "E", "1", "{\"id\":1}"),
		mk(2, 'U', "E", "2", "[1,2]"),
		mk(3, 'U', "E", "3", "[1,2]"),
		mk(4, 'U', "E", "4", "{\"id\":4}"),
	};
	struct batch_group g[MAX];

	(void)state;
	assert_int_equal(group(ops, 4, g), 4);
}

static void test_group_size_cap(void **state)
{
	enum { N = BATCH_GROUP_MAX_OPS * 2 + 1 };
	struct op *ops = calloc(N, sizeof(*ops));
	char (*pks)[16] = calloc(N, 16);
	size_t *order = calloc(N, sizeof(*order)), norder, ng;
	struct batch_group *g = calloc(N, sizeof(*g));

	(void)state;
	for (int i = 0; i < N; i++) {
		snprintf(pks[i], 16, "%d", i);
		ops[i] = mk(i + 1, 'U', "User", pks[i], "{\"id\":0}");
	}
	assert_int_equal(batch_collapse(ops, N, order, &norder, prev), SH_OK);
	assert_int_equal(batch_group(ops, order, norder, g, &ng), SH_OK);
	assert_int_equal(ng, 3);
	assert_int_equal(g[0].count, BATCH_GROUP_MAX_OPS);
	assert_int_equal(g[2].count, 1);
	free(ops);
	free(pks);
	free(order);
	free(g);
}

static void test_doc_keys(void **state)
{
	struct batch_key k[4];

	(void)state;
	assert_int_equal(batch_doc_keys("{}", k, 4), 0);
	assert_int_equal(batch_doc_keys(" { \"bb\" : 1 , \"a\":true } ", k, 4), 2);
	assert_int_equal(k[0].len, 1);	/* sorted by length, then bytes */
	assert_memory_equal(k[0].p, "a", 1);
	assert_memory_equal(k[1].p, "bb", 2);
	assert_int_equal(batch_doc_keys("{\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5}", k, 4), -1);
	assert_int_equal(batch_doc_keys("{\"a\":1", k, 4), -1);
	assert_int_equal(batch_doc_keys("{\"a\" 1}", k, 4), -1);
	assert_int_equal(batch_doc_keys("{\"a\":}", k, 4), -1);
	assert_int_equal(batch_doc_keys("\"x\"", k, 4), -1);
	assert_int_equal(batch_doc_keys(NULL, k, 4), -1);
}

/* ---- bisection, against a fake backend ---- */

#define BIS_MAX 1000

/* A backend that refuses any range holding a bad op, and fails for good (a
 * transient error) at try number fail_at (1-based; 0: never). A range is all
 * or nothing, as under a savepoint. */
struct fake {
	bool bad[BIS_MAX];
	unsigned fail_at;
	enum sh_err fail_rc;
	bool fail_with_why;	/* the failing try also sets *why: must be freed */
	unsigned tries;
	unsigned applied[BIS_MAX];	/* times applied by a successful try */
	bool returned[BIS_MAX];		/* set on success, cleared by reset */
	unsigned resets[BIS_MAX];
	unsigned dead[BIS_MAX];
	unsigned ndead;
	unsigned last_dead_try;		/* tries when the last op was reported dead */
};

/* batch_try_fn of the fake. */
static enum sh_err fake_try(void *ctx, const size_t *idx, size_t count, char **why)
{
	struct fake *f = ctx;
	char buf[32];

	assert_non_null(why);
	assert_null(*why);
	assert_true(count > 0);
	if (++f->tries == f->fail_at) {
		if (f->fail_with_why)
			*why = strdup("about to fail");
		return f->fail_rc;
	}
	for (size_t i = 0; i < count; i++) {
		if (f->bad[idx[i]]) {
			snprintf(buf, sizeof(buf), "op %zu is bad", idx[i]);
			*why = strdup(buf);
			assert_non_null(*why);
			return SH_OK;
		}
	}
	for (size_t i = 0; i < count; i++) {
		f->applied[idx[i]]++;
		f->returned[idx[i]] = true;
	}
	return SH_OK;
}

/* batch_reset_fn of the fake: only a refused range is reset, so none of it
 * may have been applied. */
static void fake_reset(void *ctx, const size_t *idx, size_t count)
{
	struct fake *f = ctx;

	assert_true(count > 1);
	for (size_t i = 0; i < count; i++) {
		assert_int_equal(f->applied[idx[i]], 0);
		f->returned[idx[i]] = false;
		f->resets[idx[i]]++;
	}
}

/* batch_dead_fn of the fake: checks the reason names the op, then frees it. */
static void fake_dead(void *ctx, size_t i, char *why)
{
	struct fake *f = ctx;
	char want[32];

	snprintf(want, sizeof(want), "op %zu is bad", i);
	assert_non_null(why);
	assert_string_equal(why, want);
	free(why);
	f->dead[i]++;
	f->ndead++;
	f->last_dead_try = f->tries;
}

static const struct batch_bisect_ops fake_ops = {
	.try_range = fake_try,
	.reset = fake_reset,
	.dead = fake_dead,
};

/* The identity order 0..n-1, as apply_all would pass for one group. */
static size_t bis_idx[BIS_MAX];

static enum sh_err bisect(struct fake *f, size_t n)
{
	for (size_t i = 0; i < n; i++)
		bis_idx[i] = i;
	return batch_bisect(bis_idx, n, &fake_ops, f);
}

/* Every bad op is dead exactly once, every other applied exactly once. */
static void assert_accounting(const struct fake *f, size_t n)
{
	unsigned nbad = 0;

	for (size_t i = 0; i < n; i++) {
		if (f->bad[i]) {
			nbad++;
			assert_int_equal(f->dead[i], 1);
			assert_int_equal(f->applied[i], 0);
		} else {
			assert_int_equal(f->dead[i], 0);
			assert_int_equal(f->applied[i], 1);
			assert_true(f->returned[i]);
		}
	}
	assert_int_equal(f->ndead, nbad);
}

static unsigned ceil_log2(size_t n)
{
	unsigned k = 0;

	while (((size_t)1 << k) < n)
		k++;
	return k;
}

static void test_bisect_all_good_one_try(void **state)
{
	static const size_t sizes[] = { 1, 2, 7, 1000 };

	(void)state;
	for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		struct fake *f = calloc(1, sizeof(*f));

		assert_int_equal(bisect(f, sizes[s]), SH_OK);
		assert_int_equal(f->tries, 1);
		assert_accounting(f, sizes[s]);
		for (size_t i = 0; i < sizes[s]; i++)
			assert_int_equal(f->resets[i], 0);
		free(f);
	}
}

static void test_bisect_one_bad(void **state)
{
	static const size_t sizes[] = { 1, 2, 7, 1000 };

	(void)state;
	for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		size_t n = sizes[s];

		for (size_t bad = 0; bad < n; bad++) {
			struct fake *f = calloc(1, sizeof(*f));

			f->bad[bad] = true;
			assert_int_equal(bisect(f, n), SH_OK);
			assert_accounting(f, n);
			assert_true(f->tries <= 2 * ceil_log2(n) + 1);
			free(f);
		}
	}
}

/* Bad ops at the given positions among n. */
static void check_bad_set(size_t n, const size_t *bad, size_t nbad)
{
	struct fake *f = calloc(1, sizeof(*f));

	for (size_t i = 0; i < nbad; i++)
		f->bad[bad[i]] = true;
	assert_int_equal(bisect(f, n), SH_OK);
	assert_accounting(f, n);
	free(f);
}

static void test_bisect_several_bad(void **state)
{
	static const size_t adjacent[] = { 3, 4 }, adjacent_across[] = { 499, 500, 501 };
	static const size_t ends[] = { 0, 999 }, first[] = { 0 }, last[] = { 6 };
	size_t all[BIS_MAX];

	(void)state;
	check_bad_set(7, adjacent, 2);
	check_bad_set(1000, adjacent_across, 3);	/* across the first split */
	check_bad_set(1000, ends, 2);
	check_bad_set(7, first, 1);
	check_bad_set(7, last, 1);
	for (size_t n = 1; n <= 7; n++) {		/* all bad */
		for (size_t i = 0; i < n; i++)
			all[i] = i;
		check_bad_set(n, all, n);
	}
	for (size_t i = 0; i < BIS_MAX; i++)
		all[i] = i;
	check_bad_set(BIS_MAX, all, BIS_MAX);
}

/* Every other op bad: the worst case for the number of tries, and still each
 * range is tried at most once. */
static void test_bisect_alternate_bad(void **state)
{
	struct fake *f = calloc(1, sizeof(*f));

	(void)state;
	for (size_t i = 0; i < 7; i += 2)
		f->bad[i] = true;
	assert_int_equal(bisect(f, 7), SH_OK);
	assert_accounting(f, 7);
	assert_true(f->tries <= 2 * 7 - 1);	/* a full binary tree over 7 leaves */
	free(f);
}

/* A transient error at try k is returned as is, and nothing is tried or
 * reported dead after it. */
static void check_transient(size_t n, size_t bad, unsigned k, bool with_why)
{
	struct fake *f = calloc(1, sizeof(*f));

	f->bad[bad] = true;
	f->fail_at = k;
	f->fail_rc = SH_EUNAVAIL;
	f->fail_with_why = with_why;
	assert_int_equal(bisect(f, n), SH_EUNAVAIL);
	assert_int_equal(f->tries, k);
	if (f->ndead)
		assert_true(f->last_dead_try < k);
	free(f);
}

static void test_bisect_transient_error(void **state)
{
	struct fake *f;

	(void)state;
	/* one bad op among 1000 takes 21 tries: fail at each of them */
	for (unsigned k = 1; k <= 2 * ceil_log2(1000) + 1; k++) {
		check_transient(1000, 617, k, false);
		check_transient(1000, 617, k, true);
	}
	check_transient(1, 0, 1, true);
	/* a dead op found before the error stays reported, nothing after it */
	f = calloc(1, sizeof(*f));
	f->bad[0] = f->bad[6] = true;
	f->fail_at = 6;	/* [0,7) [0,3) refused, [0,1) dead, [1,3) applied, [3,7) refused, [3,5) fails */
	f->fail_rc = SH_ENOMEM;
	assert_int_equal(bisect(f, 7), SH_ENOMEM);
	assert_int_equal(f->tries, 6);
	assert_int_equal(f->ndead, 1);
	assert_int_equal(f->dead[0], 1);
	assert_int_equal(f->dead[6], 0);
	free(f);
}

/* Halves go first half first, and a range is reset once, before its halves. */
static void test_bisect_order_and_reset(void **state)
{
	struct fake *f = calloc(1, sizeof(*f));

	(void)state;
	f->bad[1] = true;
	assert_int_equal(bisect(f, 4), SH_OK);
	/* [0,4) refused, [0,2) refused, [0,1) applied, [1,2) dead, [2,4) applied */
	assert_int_equal(f->tries, 5);
	assert_int_equal(f->resets[0], 2);
	assert_int_equal(f->resets[1], 2);
	assert_int_equal(f->resets[2], 1);
	assert_int_equal(f->resets[3], 1);
	assert_int_equal(f->last_dead_try, 4);
	assert_accounting(f, 4);
	free(f);
}

/* An empty range tries nothing; the reset callback may be left out. */
static void test_bisect_empty_and_no_reset(void **state)
{
	struct batch_bisect_ops ops = { .try_range = fake_try, .dead = fake_dead };
	struct fake *f = calloc(1, sizeof(*f));

	(void)state;
	assert_int_equal(bisect(f, 0), SH_OK);
	assert_int_equal(f->tries, 0);
	f->bad[2] = true;
	for (size_t i = 0; i < 5; i++)
		bis_idx[i] = i;
	assert_int_equal(batch_bisect(bis_idx, 5, &ops, f), SH_OK);
	assert_accounting(f, 5);
	free(f);
}

/* The indices passed are the caller's, not positions: bisection works on any
 * order (apply_all passes a slice of the collapsed order). */
static void test_bisect_passes_caller_indices(void **state)
{
	size_t idx[] = { 9, 3, 700, 42, 5 };
	struct fake *f = calloc(1, sizeof(*f));

	(void)state;
	f->bad[700] = true;
	assert_int_equal(batch_bisect(idx, 5, &fake_ops, f), SH_OK);
	assert_int_equal(f->ndead, 1);
	assert_int_equal(f->dead[700], 1);
	for (size_t i = 0; i < 5; i++)
		if (idx[i] != 700)
			assert_int_equal(f->applied[idx[i]], 1);
	free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_collapse_last_wins_at_first_position),
		cmocka_unit_test(test_collapse_union_of_columns),
		cmocka_unit_test(test_collapse_keeps_fk_order),
		cmocka_unit_test(test_collapse_delete_after_insert),
		cmocka_unit_test(test_collapse_insert_after_delete),
		cmocka_unit_test(test_collapse_delete_in_its_own_place),
		cmocka_unit_test(test_collapse_chains),
		cmocka_unit_test(test_collapse_same_pk_other_model),
		cmocka_unit_test(test_collapse_ignores_skipped),
		cmocka_unit_test(test_collapse_many),
		cmocka_unit_test(test_collapse_cap),
		cmocka_unit_test(test_group_by_model_kind_keys),
		cmocka_unit_test(test_group_nested_values),
		cmocka_unit_test(test_group_unscannable_alone),
		cmocka_unit_test(test_group_size_cap),
		cmocka_unit_test(test_doc_keys),
		cmocka_unit_test(test_bisect_all_good_one_try),
		cmocka_unit_test(test_bisect_one_bad),
		cmocka_unit_test(test_bisect_several_bad),
		cmocka_unit_test(test_bisect_alternate_bad),
		cmocka_unit_test(test_bisect_transient_error),
		cmocka_unit_test(test_bisect_order_and_reset),
		cmocka_unit_test(test_bisect_empty_and_no_reset),
		cmocka_unit_test(test_bisect_passes_caller_indices),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
