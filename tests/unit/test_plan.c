/* test_plan.c - what the apply thread applies, acknowledges or leaves
 * waiting, from parsed stream entries and what PostgreSQL has applied. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "plan.h"

#define MAX 64

/* Entries point at string literals: nothing here is freed. */
static struct plan_entry mk(int64_t seq, int64_t base)
{
	struct plan_entry e = { .op = { .seq = seq, .kind = OP_UPSERT }, .base = base };

	e.op.model = (char *)"User";
	e.op.pk = (char *)"1";
	e.op.doc = (char *)"{\"id\":1}";
	snprintf(e.id, sizeof(e.id), "%lld-0", (long long)seq);
	return e;
}

/* Plan es (sorted first); checks the picked seqs against want (0-terminated)
 * and returns how many entries are settled. */
static size_t plan(struct plan_entry *es, size_t n, int64_t applied, const int64_t *want)
{
	size_t pick[MAX], npick = 99, settled, k = 0;

	plan_sort(es, n);
	settled = plan_make(es, n, applied, pick, &npick);
	while (want[k])
		k++;
	assert_int_equal(npick, k);
	for (size_t i = 0; i < npick; i++)
		assert_int_equal(es[pick[i]].op.seq, want[i]);
	return settled;
}

static void test_contiguous_run_after_applied(void **state)
{
	struct plan_entry es[] = { mk(103, 100), mk(101, 100), mk(102, 100) };

	(void)state;
	assert_int_equal(plan(es, 3, 100, (int64_t[]){ 101, 102, 103, 0 }), 3);
}

static void test_applied_ones_are_only_acknowledged(void **state)
{
	struct plan_entry es[] = { mk(101, 100), mk(102, 100), mk(103, 100) };

	(void)state;
	assert_int_equal(plan(es, 3, 102, (int64_t[]){ 103, 0 }), 3);
	assert_int_equal(plan(es, 3, 103, (int64_t[]){ 0 }), 3);
	assert_int_equal(plan(es, 3, 900, (int64_t[]){ 0 }), 3);
}

static void test_gap_leaves_the_rest_waiting(void **state)
{
	struct plan_entry es[] = { mk(101, 100), mk(102, 100), mk(104, 100), mk(105, 100) };

	(void)state;
	/* 103 is missing: 104 and 105 wait, 101 and 102 go */
	assert_int_equal(plan(es, 4, 100, (int64_t[]){ 101, 102, 0 }), 2);
	/* a gap right after what is applied: nothing goes, nothing is settled */
	assert_int_equal(plan(es + 2, 2, 102, (int64_t[]){ 0 }), 0);
}

static void test_copies_of_a_seq_apply_once(void **state)
{
	/* the relay re-sent 102 and 103 (Redis lost them, or a crash) */
	struct plan_entry es[] = { mk(102, 100), mk(101, 100), mk(103, 100), mk(102, 100),
				   mk(103, 100), mk(104, 100) };

	(void)state;
	assert_int_equal(plan(es, 6, 100, (int64_t[]){ 101, 102, 103, 104, 0 }), 6);
}

static void test_resend_after_applied_is_skipped(void **state)
{
	/* a re-send of everything after PostgreSQL applied 101..103 */
	struct plan_entry es[] = { mk(101, 100), mk(102, 100), mk(103, 100), mk(104, 100) };

	(void)state;
	assert_int_equal(plan(es, 4, 103, (int64_t[]){ 104, 0 }), 4);
}

static void test_first_write_of_a_block_follows_its_base(void **state)
{
	/* a new block: nothing applied, its seqs start after its base */
	struct plan_entry es[] = { mk(5001, 5000), mk(5002, 5000) };
	struct plan_entry late[] = { mk(5002, 5000), mk(5003, 5000) };

	(void)state;
	assert_int_equal(plan(es, 2, 0, (int64_t[]){ 5001, 5002, 0 }), 2);
	/* 5001 lost: the block's first write is missing, 5002 must wait */
	assert_int_equal(plan(late, 2, 0, (int64_t[]){ 0 }), 0);
}

static void test_recreated_block_starts_at_its_new_base(void **state)
{
	/* the block was deleted after seq 1010 was applied and created again
	 * later: its new base (creation time) lies above everything applied */
	struct plan_entry es[] = { mk(9001, 9000), mk(9002, 9000) };

	(void)state;
	assert_int_equal(plan(es, 2, 1010, (int64_t[]){ 9001, 9002, 0 }), 2);
}

static void test_empty(void **state)
{
	size_t pick[1], npick = 7;

	(void)state;
	assert_int_equal(plan_make(NULL, 0, 5, pick, &npick), 0);
	assert_int_equal(npick, 0);
}

/* ---- parsing ---- */

static bool parse(const char *const *f, size_t n, struct plan_entry *e)
{
	return plan_parse_entry("1700000000000-0", f, n, e);
}

static void test_parse_upsert_and_delete(void **state)
{
	const char *up[] = { "seq", "101", "base", "100", "op", "U", "model", "User", "pk", "7",
			     "doc", "{\"id\":7}" };
	const char *del[] = { "op", "D", "pk", "7", "model", "User", "base", "100", "seq", "102" };
	struct plan_entry e;

	(void)state;
	assert_true(parse(up, 12, &e));
	assert_int_equal(e.op.seq, 101);
	assert_int_equal(e.base, 100);
	assert_int_equal(e.op.kind, OP_UPSERT);
	assert_string_equal(e.op.model, "User");
	assert_string_equal(e.op.pk, "7");
	assert_string_equal(e.op.doc, "{\"id\":7}");
	assert_string_equal(e.id, "1700000000000-0");
	op_release(&e.op);
	assert_true(parse(del, 10, &e));
	assert_int_equal(e.op.kind, OP_DELETE);
	assert_int_equal(e.op.seq, 102);
	assert_null(e.op.doc);
	op_release(&e.op);
}

static void test_parse_refuses_malformed(void **state)
{
	const char *no_seq[] = { "base", "1", "op", "D", "model", "User", "pk", "7" };
	const char *no_base[] = { "seq", "2", "op", "D", "model", "User", "pk", "7" };
	const char *bad_seq[] = { "seq", "2x", "base", "1", "op", "D", "model", "User", "pk", "7" };
	const char *empty_seq[] = { "seq", "", "base", "1", "op", "D", "model", "User", "pk", "7" };
	const char *huge_seq[] = { "seq", "99999999999999999999", "base", "1", "op", "D", "model",
				   "User", "pk", "7" };
	const char *no_doc[] = { "seq", "2", "base", "1", "op", "U", "model", "User", "pk", "7" };
	const char *bad_op[] = { "seq", "2", "base", "1", "op", "X", "model", "User", "pk", "7" };
	const char *long_op[] = { "seq", "2", "base", "1", "op", "DD", "model", "User", "pk", "7" };
	const char *no_pk[] = { "seq", "2", "base", "1", "op", "D", "model", "User" };
	const char *nil_model[] = { "seq", "2", "base", "1", "op", "D", "model", NULL, "pk", "7" };
	const char *odd[] = { "seq", "2", "base", "1", "op", "D", "model", "User", "pk" };
	const char *ok[] = { "seq", "2", "base", "1", "op", "D", "model", "User", "pk", "7" };
	char long_id[PLAN_ID_MAX + 8];
	struct plan_entry e;

	(void)state;
	assert_false(parse(no_seq, 8, &e));
	assert_null(e.op.model);
	assert_false(parse(no_base, 8, &e));
	assert_false(parse(bad_seq, 10, &e));
	assert_false(parse(empty_seq, 10, &e));
	assert_false(parse(huge_seq, 10, &e));
	assert_false(parse(no_doc, 10, &e));
	assert_false(parse(bad_op, 10, &e));
	assert_false(parse(long_op, 10, &e));
	assert_false(parse(no_pk, 8, &e));
	assert_false(parse(nil_model, 10, &e));
	assert_false(parse(odd, 9, &e));	/* "pk" has no value */
	memset(long_id, '1', sizeof(long_id) - 1);
	long_id[sizeof(long_id) - 1] = 0;
	assert_false(plan_parse_entry(long_id, ok, 10, &e));
	assert_false(plan_parse_entry(NULL, ok, 10, &e));
	assert_true(parse(ok, 10, &e));
	op_release(&e.op);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_contiguous_run_after_applied),
		cmocka_unit_test(test_applied_ones_are_only_acknowledged),
		cmocka_unit_test(test_gap_leaves_the_rest_waiting),
		cmocka_unit_test(test_copies_of_a_seq_apply_once),
		cmocka_unit_test(test_resend_after_applied_is_skipped),
		cmocka_unit_test(test_first_write_of_a_block_follows_its_base),
		cmocka_unit_test(test_recreated_block_starts_at_its_new_base),
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_parse_upsert_and_delete),
		cmocka_unit_test(test_parse_refuses_malformed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
