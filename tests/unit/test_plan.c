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
static struct plan_entry mka(const char *origin, int64_t seq, int64_t base, const char *after,
			     int64_t after_seq)
{
	struct plan_entry e = { .op = { .seq = seq, .kind = OP_UPSERT, .base = base,
					.after_seq = after_seq } };

	snprintf(e.op.origin, sizeof(e.op.origin), "%s", origin);
	snprintf(e.op.after, sizeof(e.op.after), "%s", after);
	e.op.model = (char *)"User";
	e.op.pk = (char *)"1";
	e.op.doc = (char *)"{\"id\":1}";
	snprintf(e.id, sizeof(e.id), "%lld-0", (long long)seq);
	return e;
}

static struct plan_entry mk(const char *origin, int64_t seq, int64_t base)
{
	return mka(origin, seq, base, "", 0);
}

/* The legacy origin, as in entries from before origins. */
static struct plan_entry mkl(int64_t seq, int64_t base)
{
	return mk("", seq, base);
}

static enum plan_verdict verdict[MAX];

/* Plan es with what PostgreSQL applied ("origin=seq ...", the rest 0); the
 * picks, in order, must be want ("origin:seq ...", the legacy origin as 0).
 * Returns how many wait; verdict[] holds the verdicts of the sorted es. */
static size_t plan(struct plan_entry *es, size_t n, const char *applied, const char *want)
{
	struct plan_origin origins[2 * MAX];
	size_t pick[MAX], npick = 99, norigins, waiting;
	char got[1024] = "", item[64], buf[256], *tok, *save;

	assert_true(n <= MAX);
	plan_sort(es, n);
	norigins = plan_origins(es, n, origins);
	snprintf(buf, sizeof(buf), "%s", applied);
	for (tok = strtok_r(buf, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
		char *eq = strchr(tok, '=');
		bool found = false;

		assert_non_null(eq);
		*eq = 0;
		for (size_t i = 0; i < norigins; i++) {
			if (strcmp(origins[i].origin, tok) == 0) {
				origins[i].applied = strtoll(eq + 1, NULL, 10);
				found = true;
			}
		}
		assert_true(found);	/* plan_origins names every origin the entries need */
	}
	waiting = plan_make(es, n, origins, norigins, verdict, pick, &npick);
	for (size_t i = 0; i < npick; i++) {
		assert_int_equal(verdict[pick[i]], PLAN_APPLY);
		snprintf(item, sizeof(item), "%s%s:%lld", i ? " " : "", op_origin(&es[pick[i]].op),
			 (long long)es[pick[i]].op.seq);
		strncat(got, item, sizeof(got) - strlen(got) - 1);
	}
	assert_string_equal(got, want);
	return waiting;
}

/* ---- one origin (as every block had before origins) ---- */

static void test_contiguous_run_after_applied(void **state)
{
	struct plan_entry es[] = { mkl(103, 100), mkl(101, 100), mkl(102, 100) };

	(void)state;
	assert_int_equal(plan(es, 3, "0=100", "0:101 0:102 0:103"), 0);
}

static void test_applied_ones_are_only_acknowledged(void **state)
{
	struct plan_entry es[] = { mkl(101, 100), mkl(102, 100), mkl(103, 100) };

	(void)state;
	assert_int_equal(plan(es, 3, "0=102", "0:103"), 0);
	assert_int_equal(verdict[0], PLAN_SKIP);
	assert_int_equal(verdict[1], PLAN_SKIP);
	assert_int_equal(plan(es, 3, "0=103", ""), 0);
	assert_int_equal(plan(es, 3, "0=900", ""), 0);
	assert_int_equal(verdict[2], PLAN_SKIP);
}

static void test_gap_leaves_the_rest_waiting(void **state)
{
	struct plan_entry es[] = { mkl(101, 100), mkl(102, 100), mkl(104, 100), mkl(105, 100) };

	(void)state;
	/* 103 is missing: 104 and 105 wait, 101 and 102 go */
	assert_int_equal(plan(es, 4, "0=100", "0:101 0:102"), 2);
	assert_int_equal(verdict[2], PLAN_WAIT);
	assert_int_equal(verdict[3], PLAN_WAIT);
	/* a gap right after what is applied: nothing goes */
	assert_int_equal(plan(es + 2, 2, "0=102", ""), 2);
}

static void test_copies_of_a_seq_apply_once(void **state)
{
	/* the relay re-sent 102 and 103 (Redis lost them, or a crash) */
	struct plan_entry es[] = { mkl(102, 100), mkl(101, 100), mkl(103, 100), mkl(102, 100),
				   mkl(103, 100), mkl(104, 100) };

	(void)state;
	assert_int_equal(plan(es, 6, "0=100", "0:101 0:102 0:103 0:104"), 0);
	assert_int_equal(verdict[2], PLAN_SKIP);	/* the second 102 */
	assert_int_equal(verdict[4], PLAN_SKIP);	/* the second 103 */
}

static void test_first_write_follows_the_base(void **state)
{
	struct plan_entry es[] = { mkl(5001, 5000), mkl(5002, 5000) };
	struct plan_entry late[] = { mkl(5002, 5000), mkl(5003, 5000) };

	(void)state;
	assert_int_equal(plan(es, 2, "", "0:5001 0:5002"), 0);
	/* 5001 lost: the first write is missing, 5002 must wait */
	assert_int_equal(plan(late, 2, "", ""), 2);
}

static void test_recreated_legacy_block_starts_at_its_new_base(void **state)
{
	/* before origins: deleted after 1010 was applied, created again later */
	struct plan_entry es[] = { mkl(9001, 9000), mkl(9002, 9000) };

	(void)state;
	assert_int_equal(plan(es, 2, "0=1010", "0:9001 0:9002"), 0);
}

static void test_empty(void **state)
{
	struct plan_origin o[1];
	enum plan_verdict v[1];
	size_t pick[1], npick = 7;

	(void)state;
	assert_int_equal(plan_origins(NULL, 0, o), 0);
	assert_int_equal(plan_make(NULL, 0, o, 0, v, pick, &npick), 0);
	assert_int_equal(npick, 0);
}

/* ---- several origins ---- */

#define A "0000000000000001aaaaaaaaaaaaaaaa"
#define B "0000000000000002bbbbbbbbbbbbbbbb"
#define C "0000000000000003cccccccccccccccc"

static void test_restored_file_counts_again_under_a_new_origin(void **state)
{
	/* backup at 100 with 98..100 pending; A went on to 105, all applied;
	 * the restored file re-sends 98..100 and writes 101, 102 as B */
	struct plan_entry es[] = { mk(A, 98, 90), mk(A, 99, 90), mk(A, 100, 90),
				   mka(B, 101, 100, A, 100), mka(B, 102, 100, A, 100) };

	(void)state;
	assert_int_equal(plan(es, 5, A "=105", B ":101 " B ":102"), 0);
	for (size_t i = 0; i < 3; i++)
		assert_int_equal(verdict[i], PLAN_SKIP);	/* A's re-sends */
}

static void test_new_origin_waits_for_the_write_it_follows(void **state)
{
	/* a crash with A's 101..105 unapplied; B (the restart) writes 106, 107 */
	struct plan_entry all[] = { mka(B, 106, 105, A, 105), mk(A, 103, 100), mk(A, 101, 100),
				    mka(B, 107, 105, A, 105), mk(A, 102, 100), mk(A, 104, 100),
				    mk(A, 105, 100) };
	struct plan_entry only_b[] = { mka(B, 106, 105, A, 105), mka(B, 107, 105, A, 105) };
	struct plan_entry part[] = { mk(A, 101, 100), mk(A, 102, 100), mka(B, 106, 105, A, 105) };

	(void)state;
	assert_int_equal(plan(all, 7, A "=100",
			      A ":101 " A ":102 " A ":103 " A ":104 " A ":105 " B ":106 " B ":107"), 0);
	/* Redis lost A's: B's first write must not overtake them */
	assert_int_equal(plan(only_b, 2, A "=100", ""), 2);
	assert_int_equal(plan(part, 3, A "=100", A ":101 " A ":102"), 1);
	/* once PostgreSQL has A's up to 105, B goes */
	assert_int_equal(plan(only_b, 2, A "=105", B ":106 " B ":107"), 0);
	/* B's first write applied: the rest of B needs nothing of A */
	assert_int_equal(plan(only_b + 1, 1, A "=0 " B "=106", B ":107"), 0);
}

static void test_power_loss_orphans_go_first(void **state)
{
	/* A applied 105 and relayed 106..110, then a power loss took 108..110
	 * from the file; the restart (B, base 107, after A's 107) writes 108, 109 */
	struct plan_entry es[] = { mka(B, 108, 107, A, 107), mk(A, 108, 100), mka(B, 109, 107, A, 107),
				   mk(A, 109, 100), mk(A, 106, 100), mk(A, 110, 100), mk(A, 107, 100) };

	(void)state;
	assert_int_equal(plan(es, 7, A "=105", A ":106 " A ":107 " A ":108 " A ":109 " A ":110 "
			      B ":108 " B ":109"), 0);
}

static void test_same_seq_of_two_origins_is_two_writes(void **state)
{
	/* two incarnations that counted from the same place (a restore, or two
	 * nodes): one (origin, seq) applied says nothing of the other's */
	struct plan_entry es[] = { mk(A, 101, 100), mk(B, 101, 100), mk(B, 102, 100) };

	(void)state;
	assert_int_equal(plan(es, 3, A "=101", B ":101 " B ":102"), 0);
	assert_int_equal(verdict[0], PLAN_SKIP);
}

static void test_independent_origins_do_not_wait_on_each_other(void **state)
{
	/* A has a gap at 102; B follows A and waits; C follows nothing */
	struct plan_entry es[] = { mk(A, 101, 100), mk(A, 103, 100), mka(B, 104, 103, A, 103),
				   mk(C, 501, 500) };

	(void)state;
	assert_int_equal(plan(es, 4, "", A ":101 " C ":501"), 2);
	assert_int_equal(verdict[1], PLAN_WAIT);
	assert_int_equal(verdict[2], PLAN_WAIT);
}

static void test_chain_in_any_sort_order(void **state)
{
	/* C follows B follows A whatever their names sort as: here C < B < A */
	struct plan_entry es[] = { mka("c", 31, 30, "b", 20), mka("b", 11, 10, "a", 10),
				   mka("b", 20, 10, "a", 10), mk("a", 10, 9), mka("c", 32, 30, "b", 20) };
	struct plan_entry gap[] = { mka("c", 31, 30, "b", 20), mka("b", 11, 10, "a", 10),
				    mk("a", 10, 9) };

	(void)state;
	/* b's 12..19 are missing: b waits at 20, c at 31 */
	assert_int_equal(plan(es, 5, "", "a:10 b:11"), 3);
	assert_int_equal(plan(gap, 3, "b=20", "a:10 c:31"), 0);
	assert_int_equal(verdict[1], PLAN_SKIP);	/* b's 11 */
}

static void test_legacy_then_new_origin(void **state)
{
	/* a file from before origins: legacy 1001..1002 pending, then B */
	struct plan_entry es[] = { mkl(1001, 1000), mkl(1002, 1000),
				   mka(B, 1003, 1002, OP_ORIGIN_LEGACY, 1002) };

	(void)state;
	assert_int_equal(plan(es, 3, "0=1001", "0:1002 " B ":1003"), 0);
	assert_int_equal(verdict[0], PLAN_SKIP);
	assert_int_equal(plan(es + 2, 1, "0=1001", ""), 1);
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
	assert_int_equal(e.op.base, 100);
	assert_string_equal(e.op.origin, "");	/* from before origins: legacy */
	assert_string_equal(op_origin(&e.op), OP_ORIGIN_LEGACY);
	assert_string_equal(e.op.after, "");
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

static void test_parse_origin_and_after(void **state)
{
	const char *f[] = { "seq", "101", "origin", A, "base", "100", "after", B, "after_seq",
			    "99", "op", "D", "model", "User", "pk", "7" };
	const char *first[] = { "seq", "101", "origin", A, "base", "100", "after", "",
				"after_seq", "0", "op", "D", "model", "User", "pk", "7" };
	struct plan_entry e;

	(void)state;
	assert_true(plan_parse_entry("1-0", f, 16, &e));
	assert_string_equal(e.op.origin, A);
	assert_string_equal(e.op.after, B);
	assert_int_equal(e.op.after_seq, 99);
	op_release(&e.op);
	assert_true(plan_parse_entry("1-0", first, 16, &e));
	assert_string_equal(e.op.after, "");
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
	const char *upper[] = { "seq", "2", "base", "1", "origin", "ABC", "op", "D", "model", "U",
				"pk", "7" };
	const char *empty_origin[] = { "seq", "2", "base", "1", "origin", "", "op", "D", "model",
				       "U", "pk", "7" };
	const char *long_origin[] = { "seq", "2", "base", "1", "origin", A "0", "op", "D",
				      "model", "U", "pk", "7" };
	const char *quote_origin[] = { "seq", "2", "base", "1", "origin", "a,\"}", "op", "D",
				       "model", "U", "pk", "7" };
	const char *after_no_seq[] = { "seq", "2", "base", "1", "origin", "b", "after", "a", "op",
				       "D", "model", "U", "pk", "7" };
	const char *bad_after[] = { "seq", "2", "base", "1", "origin", "b", "after", "x",
				    "after_seq", "1", "op", "D", "model", "U", "pk", "7" };
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
	assert_false(parse(upper, 12, &e));
	assert_false(parse(empty_origin, 12, &e));
	assert_false(parse(long_origin, 12, &e));
	assert_false(parse(quote_origin, 12, &e));
	assert_false(parse(after_no_seq, 14, &e));
	assert_false(parse(bad_after, 16, &e));
	assert_string_equal(e.op.origin, "");
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
		cmocka_unit_test(test_first_write_follows_the_base),
		cmocka_unit_test(test_recreated_legacy_block_starts_at_its_new_base),
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_restored_file_counts_again_under_a_new_origin),
		cmocka_unit_test(test_new_origin_waits_for_the_write_it_follows),
		cmocka_unit_test(test_power_loss_orphans_go_first),
		cmocka_unit_test(test_same_seq_of_two_origins_is_two_writes),
		cmocka_unit_test(test_independent_origins_do_not_wait_on_each_other),
		cmocka_unit_test(test_chain_in_any_sort_order),
		cmocka_unit_test(test_legacy_then_new_origin),
		cmocka_unit_test(test_parse_upsert_and_delete),
		cmocka_unit_test(test_parse_origin_and_after),
		cmocka_unit_test(test_parse_refuses_malformed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
