/* test_wbuf.c - the budget of record write buffers and the write() cap rule. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "wbuf.h"

#define KIB 1024u
#define MIB (1024u * 1024u)
#define PAGE 4096u

static void test_budget(void **state)
{
	struct wbudget b;

	(void)state;
	wbudget_init(&b, 4 * MIB);
	for (int i = 0; i < 8; i++)
		assert_true(wbudget_take(&b, 512 * KIB));
	assert_int_equal(wbudget_used(&b), 4 * MIB);
	assert_false(wbudget_take(&b, 1));	/* full: nothing taken */
	assert_int_equal(wbudget_used(&b), 4 * MIB);
	wbudget_give(&b, 512 * KIB);
	assert_false(wbudget_take(&b, 512 * KIB + 1));
	assert_true(wbudget_take(&b, 512 * KIB));
	assert_false(wbudget_take(&b, SIZE_MAX));	/* no overflow */

	wbudget_init(&b, 0);			/* no cap */
	assert_true(wbudget_take(&b, 1u << 30));
	assert_true(wbudget_take(&b, 1u << 30));
}

/* cap = max_req = 1 MiB, as by default: what the kernel sends for one write(). */
static void test_write_refused_default(void **state)
{
	(void)state;
	/* one write() of 1,048,630 bytes at 0: its first request is 1 MiB, refused */
	assert_true(wbuf_write_refused(0, MIB, MIB, MIB, PAGE));
	/* the rest of it would cross: refused anyway */
	assert_true(wbuf_write_refused(MIB, 54, MIB, MIB, PAGE));
	/* a smaller last piece that ends past the cap */
	assert_true(wbuf_write_refused(819200, 409600, MIB, MIB, PAGE));
	/* documents below the cap less a page, in one write() or in pieces */
	assert_false(wbuf_write_refused(0, 1000000, MIB, MIB, PAGE));
	assert_false(wbuf_write_refused(0, MIB - PAGE, MIB, MIB, PAGE));
	assert_false(wbuf_write_refused(MIB - 128 * KIB, 128 * KIB, MIB, MIB, PAGE));
	/* the price: a short last piece ending exactly at a page-aligned cap */
	assert_true(wbuf_write_refused(MIB - 1, 1, MIB, MIB, PAGE));
	/* a request that ends off a page boundary is the last of its write() */
	assert_false(wbuf_write_refused(0, MIB - 100, MIB, MIB, PAGE));
	assert_false(wbuf_write_refused(0, MIB - 1, MIB, MIB, PAGE));
	/* a head up to the page boundary at the cap: more may follow */
	assert_true(wbuf_write_refused(MIB - 100, 100, MIB, MIB, PAGE));
	assert_false(wbuf_write_refused(MIB - 200, 100, MIB, MIB, PAGE));
	/* a page-sized last piece ending at the cap, as 4 KiB writes make it */
	assert_false(wbuf_write_refused(MIB - PAGE, PAGE, MIB, MIB, PAGE));
	/* the price: exactly cap bytes in one request as large as they come */
	assert_true(wbuf_write_refused(PAGE - 1, MIB - PAGE + 1, MIB, MIB, PAGE));
	/* far below the cap a head or a full request passes */
	assert_false(wbuf_write_refused(1000, PAGE - 1000, MIB, MIB, PAGE));
	/* offsets that overflow */
	assert_true(wbuf_write_refused(SIZE_MAX, 2, MIB, MIB, PAGE));
}

static void test_write_refused_other_caps(void **state)
{
	(void)state;
	/* a small cap: any full request crosses it */
	assert_true(wbuf_write_refused(0, MIB, 64 * KIB, MIB, PAGE));
	assert_false(wbuf_write_refused(0, 64 * KIB, 64 * KIB, MIB, PAGE));
	assert_false(wbuf_write_refused(0, 64 * KIB - 1, 64 * KIB, MIB, PAGE));
	/* a cap above the largest request: full requests far from it pass */
	assert_false(wbuf_write_refused(0, MIB, 8 * MIB, MIB, PAGE));
	assert_true(wbuf_write_refused(7 * MIB, MIB, 8 * MIB, MIB, PAGE));
	assert_false(wbuf_write_refused(7 * MIB, MIB - PAGE, 8 * MIB, MIB, PAGE));
	/* a cap that is not page-aligned */
	assert_true(wbuf_write_refused(0, MIB, MIB + 100, MIB, PAGE));
	assert_false(wbuf_write_refused(0, MIB, MIB + PAGE + 100, MIB, PAGE));
	/* max_req unknown (0): only the cap itself */
	assert_false(wbuf_write_refused(0, MIB, MIB, 0, PAGE));
	assert_true(wbuf_write_refused(0, MIB + 1, MIB, 0, PAGE));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_budget),
		cmocka_unit_test(test_write_refused_default),
		cmocka_unit_test(test_write_refused_other_caps),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
