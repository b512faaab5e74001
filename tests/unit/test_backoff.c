/* test_backoff.c - backoff growth, cap, jitter bounds, reset and saturation, without sleeping.
 * The sync uses full jitter (backoff_init, backoff_next_ms, backoff_reset). */
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

static void test_init_clamps(void **state)
{
	struct backoff b;

	(void)state;
	backoff_init(&b, 1000, 10, BACKOFF_DECORRELATED);	/* cap below base: base wins */
	assert_int_equal(b.cap_ms, 1000);
	assert_int_equal(backoff_next_ms(&b, 12345), 1000);
	backoff_init(&b, 0, 0, BACKOFF_FULL);
	assert_int_equal(b.base_ms, 1);
	assert_true(backoff_next_ms(&b, UINT64_MAX) <= 1);
}

/* The ceiling of step i with full jitter, computed apart from the code under test. */
static uint64_t step_ceiling(uint64_t base, uint64_t cap, unsigned i)
{
	uint64_t c = base;

	while (i-- > 0 && c < cap)
		c = c > cap / 2 ? cap : c * 2;
	return c < cap ? c : cap;
}

/* Random 0 gives 0, the ceiling gives the ceiling, half gives half, and the largest random
 * number stays within [0, ceiling]: at every step, through the cap. */
static void test_full_jitter_range(void **state)
{
	struct backoff lo, hi, mid, top;

	(void)state;
	backoff_init(&lo, 100, 5000, BACKOFF_FULL);
	backoff_init(&hi, 100, 5000, BACKOFF_FULL);
	backoff_init(&mid, 100, 5000, BACKOFF_FULL);
	backoff_init(&top, 100, 5000, BACKOFF_FULL);
	for (unsigned i = 0; i < 12; i++) {
		uint64_t c = step_ceiling(100, 5000, i);

		assert_int_equal(backoff_next_ms(&lo, 0), 0);
		assert_int_equal(backoff_next_ms(&hi, c), c);
		assert_int_equal(backoff_next_ms(&mid, c / 2), c / 2);
		assert_true(backoff_next_ms(&top, UINT64_MAX) <= c);
	}
	assert_int_equal(step_ceiling(100, 5000, 11), 5000);
}

/* 1000 calls with a large cap: the ceiling doubles, saturates at the cap and stays there,
 * never wrapping to a small or zero delay. */
static void check_saturates(uint64_t base, uint64_t cap)
{
	struct backoff b, any;

	backoff_init(&b, base, cap, BACKOFF_FULL);
	backoff_init(&any, base, cap, BACKOFF_FULL);
	for (unsigned i = 0; i < 1000; i++) {
		uint64_t c = step_ceiling(base, cap, i);

		assert_int_equal(backoff_next_ms(&b, c), c);
		assert_true(backoff_next_ms(&any, UINT64_MAX) <= c);
	}
	assert_int_equal(step_ceiling(base, cap, 999), cap);
	assert_int_equal(b.attempt, 64);	/* saturated, no shift past 63 */
	assert_int_equal(backoff_next_ms(&b, cap), cap);
	assert_int_equal(backoff_next_ms(&b, 0), 0);
}

static void test_no_overflow_after_many_calls(void **state)
{
	(void)state;
	check_saturates(100, UINT64_MAX);
	check_saturates(100, UINT64_MAX / 3);
	check_saturates(1, UINT64_MAX);
	check_saturates(UINT64_MAX / 2, UINT64_MAX);
	check_saturates(30000, 30ULL * 24 * 3600 * 1000);	/* 30 days */
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_full_growth),
		cmocka_unit_test(test_full_bounds),
		cmocka_unit_test(test_init_clamps),
		cmocka_unit_test(test_full_jitter_range),
		cmocka_unit_test(test_no_overflow_after_many_calls),
		cmocka_unit_test(test_decorrelated_bounds),
		cmocka_unit_test(test_decorrelated_grows),
		cmocka_unit_test(test_reset),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
