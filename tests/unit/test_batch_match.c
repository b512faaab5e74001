/* test_batch_match.c - matching the rows a batch statement returned to its
 * ops by key (batch_match_keys), in the documents' order and out of it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "batch.h"

static void test_in_order(void **state)
{
	const char *want[] = { "1", "2", "3" }, *got[] = { "1", "2", "3" };
	size_t pos[3], matched;

	(void)state;
	assert_int_equal(batch_match_keys(got, 3, want, 3, 1, pos, &matched), SH_OK);
	assert_int_equal(matched, 3);
	for (size_t r = 0; r < 3; r++)
		assert_int_equal(pos[r], r);
}

/* Rows out of order still find their op: a positional guess would give row
 * 0 the refresh of op 0, another record. */
static void test_out_of_order(void **state)
{
	const char *want[] = { "a", "b", "c", "d" }, *got[] = { "c", "a", "d", "b" };
	size_t pos[4], matched;

	(void)state;
	assert_int_equal(batch_match_keys(got, 4, want, 4, 1, pos, &matched), SH_OK);
	assert_int_equal(matched, 4);
	assert_int_equal(pos[0], 2);
	assert_int_equal(pos[1], 0);
	assert_int_equal(pos[2], 3);
	assert_int_equal(pos[3], 1);
}

/* Keys of two parts: both compared; a row whose key no op has gets none,
 * and the count says so (the caller then asks PostgreSQL for the spelling). */
static void test_composite_and_unmatched(void **state)
{
	const char *want[] = { "1", "x", "1", "y", "2", "x" };
	const char *got[] = { "2", "x", "1", "z", "1", "x" };
	size_t pos[3], matched;

	(void)state;
	assert_int_equal(batch_match_keys(got, 3, want, 3, 2, pos, &matched), SH_OK);
	assert_int_equal(matched, 2);
	assert_int_equal(pos[0], 2);
	assert_int_equal(pos[1], BATCH_NONE);
	assert_int_equal(pos[2], 0);
}

/* Fewer rows than ops (a create refused nothing but returned less, say),
 * more rows than ops, none at all. */
static void test_counts(void **state)
{
	const char *want[] = { "1", "2", "3" }, *got[] = { "2", "3", "4", "1" };
	size_t pos[4], matched;

	(void)state;
	assert_int_equal(batch_match_keys(got, 2, want, 3, 1, pos, &matched), SH_OK);
	assert_int_equal(matched, 2);
	assert_int_equal(pos[0], 1);
	assert_int_equal(pos[1], 2);
	assert_int_equal(batch_match_keys(got, 4, want, 3, 1, pos, &matched), SH_OK);
	assert_int_equal(matched, 3);
	assert_int_equal(pos[2], BATCH_NONE);
	assert_int_equal(pos[3], 0);
	assert_int_equal(batch_match_keys(got, 0, want, 3, 1, pos, &matched), SH_OK);
	assert_int_equal(matched, 0);
}

/* A key spelled otherwise than PostgreSQL prints it does not match: bytes
 * are compared, so a near miss is never taken for a hit. */
static void test_spelling_differs(void **state)
{
	const char *want[] = { "2026-01-01T00:00:00Z" }, *got[] = { "2026-01-01 00:00:00+00" };
	size_t pos[1], matched;

	(void)state;
	assert_int_equal(batch_match_keys(got, 1, want, 1, 1, pos, &matched), SH_OK);
	assert_int_equal(matched, 0);
	assert_int_equal(pos[0], BATCH_NONE);
}

/* A big batch in reverse order: sorted, not quadratic. */
static void test_many_reversed(void **state)
{
	enum { N = 5000 };
	static char keys[N][12];
	static const char *want[N], *got[N];
	static size_t pos[N];
	size_t matched;

	(void)state;
	for (size_t i = 0; i < N; i++) {
		snprintf(keys[i], sizeof(keys[i]), "%zu", i);
		want[i] = keys[i];
		got[N - 1 - i] = keys[i];
	}
	assert_int_equal(batch_match_keys(got, N, want, N, 1, pos, &matched), SH_OK);
	assert_int_equal(matched, N);
	for (size_t r = 0; r < N; r++)
		assert_int_equal(pos[r], N - 1 - r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_in_order),
		cmocka_unit_test(test_out_of_order),
		cmocka_unit_test(test_composite_and_unmatched),
		cmocka_unit_test(test_counts),
		cmocka_unit_test(test_spelling_differs),
		cmocka_unit_test(test_many_reversed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
