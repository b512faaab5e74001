/* test_ahead.c - how many ids a block reserves ahead, and when (ahead.h):
 * - 100 at first; twice as many when the block asks again within a second
 *   (up to 1600); as many again within ten seconds; 100 after a quiet spell;
 * - the reserve is low below half of the last reservation;
 * - without its thread, an ask for a low reserve says the caller must
 *   reserve itself; with it, the thread reserves once per ask, off the caller.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>
#include <cmocka.h>

#include "ahead.h"

#define S 1000000000LL

static int reserved;

static void count(void *ctx, const char *block, const void *model)
{
	(void)block;
	(void)model;
	__atomic_add_fetch((int *)ctx, 1, __ATOMIC_SEQ_CST);
}

static void test_size_adapts(void **state)
{
	struct ahead *a = ahead_new(count, &reserved);
	static const char m1[] = "Ticket", m2[] = "Note";

	(void)state;
	assert_int_equal(ahead_size(a, "b", m1, 100 * S), 100);
	assert_int_equal(ahead_size(a, "b", m1, 100 * S + S / 2), 200);
	assert_int_equal(ahead_size(a, "b", m1, 101 * S), 400);
	assert_int_equal(ahead_size(a, "b", m2, 101 * S), 100);	/* per model */
	assert_int_equal(ahead_size(a, "c", m1, 101 * S), 100);	/* per block */
	for (int i = 0; i < 10; i++)
		ahead_size(a, "b", m1, 101 * S + i);
	assert_int_equal(ahead_size(a, "b", m1, 102 * S), 1600);	/* capped */
	assert_int_equal(ahead_size(a, "b", m1, 105 * S), 1600);	/* steady */
	assert_false(ahead_low(a, "b", m1, 800));
	assert_true(ahead_low(a, "b", m1, 799));
	assert_int_equal(ahead_size(a, "b", m1, 120 * S), 100);	/* quiet: back to 100 */
	assert_true(ahead_low(a, "b", m1, 49));
	assert_false(ahead_low(a, "b", m1, 50));
	assert_true(ahead_low(a, "new", m1, 49));	/* never reserved: as at first */
	ahead_free(a);
}

static void test_need(void **state)
{
	struct ahead *a = ahead_new(count, &reserved);
	static const char m[] = "Ticket";

	(void)state;
	reserved = 0;
	assert_true(ahead_need(a, "b", m, 50));	/* not low: nothing to do */
	assert_false(ahead_need(a, "b", m, 10));	/* no thread: the caller reserves */
	assert_int_equal(ahead_start(a), SH_OK);
	assert_true(ahead_need(a, "b", m, 10));
	for (int i = 0; i < 500 && __atomic_load_n(&reserved, __ATOMIC_SEQ_CST) == 0; i++)
		usleep(10000);
	assert_int_equal(__atomic_load_n(&reserved, __ATOMIC_SEQ_CST), 1);
	ahead_stop(a);
	assert_false(ahead_need(a, "b", m, 10));	/* stopped: the caller reserves */
	ahead_free(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_size_adapts),
		cmocka_unit_test(test_need),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
