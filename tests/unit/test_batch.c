/* test_batch.c - collapse and grouping of ops before they reach PostgreSQL. */
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

	assert_int_equal(batch_collapse(ops, n, order, &norder), SH_OK);
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

static void test_collapse_insert_after_delete(void **state)
{
	struct op ops[] = {
		mk(1, 'D', "User", "1", NULL),
		mk(2, 'U', "User", "1", "{\"id\":1}"),
	};
	size_t order[MAX];

	(void)state;
	assert_int_equal(collapse(ops, 2, order), 1);
	assert_int_equal(order[0], 1);
	assert_int_equal(ops[order[0]].kind, 'U');
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
	assert_int_equal(batch_collapse(&op, BATCH_MAX_OPS + 1, order, &n), SH_ETOOBIG);
	assert_int_equal(batch_collapse(&op, 0, order, &n), SH_OK);
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
	assert_int_equal(batch_collapse(ops, N, order, &norder), SH_OK);
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_collapse_last_wins_at_first_position),
		cmocka_unit_test(test_collapse_keeps_fk_order),
		cmocka_unit_test(test_collapse_delete_after_insert),
		cmocka_unit_test(test_collapse_insert_after_delete),
		cmocka_unit_test(test_collapse_same_pk_other_model),
		cmocka_unit_test(test_collapse_ignores_skipped),
		cmocka_unit_test(test_collapse_many),
		cmocka_unit_test(test_collapse_cap),
		cmocka_unit_test(test_group_by_model_kind_keys),
		cmocka_unit_test(test_group_nested_values),
		cmocka_unit_test(test_group_unscannable_alone),
		cmocka_unit_test(test_group_size_cap),
		cmocka_unit_test(test_doc_keys),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
