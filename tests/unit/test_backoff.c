/* test_backoff.c - backoff growth, cap, jitter bounds and reset, without sleeping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "backoff.h"

/* A deterministic "random" source covering small, large and extreme values. */
static uint64_t lcg(uint64_t *s)
{
	*s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
	return *s;
}

static void test_full_growth(void **state)
{
	struct backoff b;

	(void)state;
	backoff_init(&b, 100, 5000, BACKOFF_FULL);
	assert_int_equal(backoff_next_ms(&b, 100), 100);	/* ceiling 100: 100 % 101 */
	assert_int_equal(backoff_next_ms(&b, 200), 200);	/* ceiling 200 */
	assert_int_equal(backoff_next_ms(&b, 400), 400);
	assert_int_equal(backoff_next_ms(&b, 800), 800);
	assert_int_equal(backoff_next_ms(&b, 1600), 1600);
	assert_int_equal(backoff_next_ms(&b, 3200), 3200);
	assert_int_equal(backoff_next_ms(&b, 5000), 5000);	/* capped: 6400 -> 5000 */
	assert_int_equal(backoff_next_ms(&b, 5001), 0);		/* 5001 % 5001 */
}

static void test_full_bounds(void **state)
{
	struct backoff b;
	uint64_t s = 1;

	(void)state;
	backoff_init(&b, 50, 30000, BACKOFF_FULL);
	for (unsigned i = 0; i < 200; i++) {
		uint64_t ceil = i < 10 && (50ULL << i) < 30000 ? 50ULL << i : 30000;
		uint64_t d = backoff_next_ms(&b, lcg(&s));

		assert_true(d <= ceil);
	}
	assert_int_equal(b.attempt, 64);	/* saturates, no overflow in the shift */
	assert_true(backoff_next_ms(&b, UINT64_MAX) <= 30000);
}

static void test_cap_never_exceeded_at_extremes(void **state)
{
	struct backoff b;

	(void)state;
	backoff_init(&b, UINT64_MAX / 2, UINT64_MAX, BACKOFF_FULL);
	for (int i = 0; i < 70; i++)
		(void)backoff_next_ms(&b, UINT64_MAX);
	backoff_init(&b, 1000, 10, BACKOFF_DECORRELATED);	/* cap below base: base wins */
	assert_int_equal(b.cap_ms, 1000);
	assert_int_equal(backoff_next_ms(&b, 12345), 1000);
	backoff_init(&b, 0, 0, BACKOFF_FULL);
	assert_int_equal(b.base_ms, 1);
	assert_true(backoff_next_ms(&b, UINT64_MAX) <= 1);
}

static void test_decorrelated_bounds(void **state)
{
	struct backoff b;
	uint64_t s = 7, prev = 100;

	(void)state;
	backoff_init(&b, 100, 10000, BACKOFF_DECORRELATED);
	for (int i = 0; i < 500; i++) {
		uint64_t d = backoff_next_ms(&b, lcg(&s));
		uint64_t hi = prev * 3 < 10000 ? prev * 3 : 10000;

		assert_true(d >= 100);
		assert_true(d <= hi);
		prev = d;
	}
}

static void test_decorrelated_grows(void **state)
{
	struct backoff b;

	(void)state;
	backoff_init(&b, 100, 10000, BACKOFF_DECORRELATED);
	/* the largest draw each time triples, up to the cap */
	assert_int_equal(backoff_next_ms(&b, 200), 300);	/* [100, 300] */
	assert_int_equal(backoff_next_ms(&b, 800), 900);	/* [100, 900] */
	assert_int_equal(backoff_next_ms(&b, 2600), 2700);
	assert_int_equal(backoff_next_ms(&b, 7999), 8099);
	assert_int_equal(backoff_next_ms(&b, 9900), 10000);	/* capped */
	assert_int_equal(backoff_next_ms(&b, 0), 100);
}

static void test_reset(void **state)
{
	struct backoff b;

	(void)state;
	backoff_init(&b, 100, 5000, BACKOFF_FULL);
	for (int i = 0; i < 10; i++)
		(void)backoff_next_ms(&b, 1);
	backoff_reset(&b);
	assert_int_equal(b.attempt, 0);
	assert_int_equal(backoff_next_ms(&b, 100), 100);	/* ceiling back to base */
	backoff_init(&b, 100, 5000, BACKOFF_DECORRELATED);
	(void)backoff_next_ms(&b, 200);
	(void)backoff_next_ms(&b, 800);
	backoff_reset(&b);
	assert_int_equal(backoff_next_ms(&b, 200), 300);	/* [100, 300] again */
}

static void test_deadline(void **state)
{
	struct backoff b;

	(void)state;
	backoff_init(&b, 100, 5000, BACKOFF_FULL);
	assert_int_equal(backoff_deadline_ms(&b, 1000000, 50), 1000050);
	assert_int_equal(backoff_deadline_ms(&b, UINT64_MAX - 10, 150), UINT64_MAX);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_full_growth),
		cmocka_unit_test(test_full_bounds),
		cmocka_unit_test(test_cap_never_exceeded_at_extremes),
		cmocka_unit_test(test_decorrelated_bounds),
		cmocka_unit_test(test_decorrelated_grows),
		cmocka_unit_test(test_reset),
		cmocka_unit_test(test_deadline),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
