/* test_kcache.c - when a read-only open of a record may use the kernel's page
 * cache, and what size the kernel is told meanwhile (fs/kcache.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "kcache.h"

#define INO 42

static const char V1[] = "{\"id\":1,\"name\":\"one\"}\n";
static const char V2[] = "{\"id\":1,\"name\":\"two\"}\n";	/* same length, other bytes */
static const char V3[] = "{\"id\":1,\"name\":\"three, longer\"}\n";

static uint64_t fp(const char *s)
{
	return kcache_fp(s, strlen(s));
}

/* Tell the kernel s's attributes; true if they may carry a timeout. */
static bool attr(struct kcache *k, const char *s, size_t *size)
{
	bool cacheable;
	size_t sz = kcache_attr(k, INO, fp(s), strlen(s), &cacheable);

	if (size)
		*size = sz;
	return cacheable;
}

/* A read-only open of s: 'd' direct_io, 'f' cached with pages dropped, 'k' pages kept. */
static char open_read(struct kcache *k, const char *s)
{
	bool keep;

	if (!kcache_open_read(k, INO, fp(s), strlen(s), &keep))
		return 'd';
	return keep ? 'k' : 'f';
}

static void test_needs_a_told_size(void **state)
{
	struct kcache *k = kcache_new();

	(void)state;
	assert_int_equal(open_read(k, V1), 'd');	/* never told a size */
	assert_true(attr(k, V1, NULL));
	assert_int_equal(open_read(k, V1), 'f');	/* first fill */
	kcache_close_read(k, INO);
	assert_int_equal(open_read(k, V1), 'k');
	kcache_close_read(k, INO);
	/* changed behind the kernel with the same length: pages go, the size fits */
	assert_int_equal(open_read(k, V2), 'f');
	kcache_close_read(k, INO);
	/* another length than the kernel holds: direct until it is told */
	assert_int_equal(open_read(k, V3), 'd');
	assert_true(attr(k, V3, NULL));
	assert_int_equal(open_read(k, V3), 'f');
	kcache_close_read(k, INO);
	kcache_free(k);
}

static void test_invalidation_in_flight(void **state)
{
	struct kcache *k = kcache_new();

	(void)state;
	assert_true(attr(k, V1, NULL));
	kcache_inval_queued(k, INO);
	assert_int_equal(open_read(k, V1), 'd');	/* the kernel may hold anything */
	assert_true(attr(k, V1, NULL));		/* the invalidation still follows */
	assert_int_equal(open_read(k, V1), 'd');
	kcache_inval_done(k, INO, true);
	assert_int_equal(open_read(k, V1), 'd');	/* stale: a read would ask first */
	assert_true(attr(k, V1, NULL));
	assert_int_equal(open_read(k, V1), 'f');
	kcache_close_read(k, INO);
	/* one dropped from a full queue: unknown until told again */
	kcache_inval_queued(k, INO);
	kcache_inval_queued(k, INO);
	kcache_inval_done(k, INO, false);
	kcache_inval_done(k, INO, true);
	assert_int_equal(open_read(k, V1), 'd');
	assert_true(attr(k, V1, NULL));
	assert_int_equal(open_read(k, V1), 'k');
	kcache_close_read(k, INO);
	kcache_free(k);
}

static void test_writers(void **state)
{
	struct kcache *k = kcache_new();

	(void)state;
	assert_true(attr(k, V1, NULL));
	assert_true(kcache_open_write(k, INO, 0));
	assert_int_equal(open_read(k, V1), 'd');	/* its O_TRUNC moves the size */
	assert_false(attr(k, V1, NULL));		/* for no time while it is open */
	kcache_written(k, INO, false, strlen(V3));
	kcache_close_write(k, INO);
	assert_int_equal(open_read(k, V3), 'd');	/* its writes left some size */
	assert_true(attr(k, V3, NULL));
	assert_int_equal(open_read(k, V3), 'f');
	/* a writer waits for the cached reader, and gives up after its time */
	assert_false(kcache_open_write(k, INO, 50));
	kcache_close_write(k, INO);
	kcache_close_read(k, INO);
	assert_true(kcache_open_write(k, INO, 50));
	kcache_close_write(k, INO);
	kcache_free(k);
}

static void test_writer_from_empty(void **state)
{
	struct kcache *k = kcache_new();

	(void)state;
	assert_true(attr(k, V1, NULL));
	/* O_TRUNC and len bytes from 0: the kernel's size is len */
	assert_true(kcache_open_write(k, INO, 0));
	kcache_written(k, INO, true, strlen(V3));
	assert_int_equal(open_read(k, V3), 'd');	/* still open */
	kcache_close_write(k, INO);
	assert_int_equal(open_read(k, V1), 'd');	/* merged into another length */
	assert_int_equal(open_read(k, V3), 'f');
	kcache_close_read(k, INO);
	/* attributes sent while it wrote: the kernel took their size */
	assert_true(kcache_open_write(k, INO, 0));
	assert_false(attr(k, V1, NULL));
	kcache_written(k, INO, true, strlen(V3));
	kcache_close_write(k, INO);
	assert_int_equal(open_read(k, V3), 'd');
	/* two writers at once: either may have set the size last */
	assert_true(kcache_open_write(k, INO, 0));
	assert_true(kcache_open_write(k, INO, 0));
	kcache_written(k, INO, true, strlen(V3));
	kcache_close_write(k, INO);
	kcache_written(k, INO, true, strlen(V3));
	kcache_close_write(k, INO);
	assert_int_equal(open_read(k, V3), 'd');
	/* an O_TRUNC open that writes nothing leaves the size at 0 */
	assert_true(attr(k, V3, NULL));
	assert_true(kcache_open_write(k, INO, 0));
	kcache_close_write(k, INO);
	assert_int_equal(open_read(k, V3), 'd');
	kcache_free(k);
}

static void test_reader_of_an_older_snapshot(void **state)
{
	struct kcache *k = kcache_new();
	size_t size;

	(void)state;
	assert_true(attr(k, V1, NULL));
	assert_int_equal(open_read(k, V1), 'f');
	/* changed behind the kernel: the open reader reads V1 whole */
	assert_false(attr(k, V3, &size));
	assert_int_equal(size, strlen(V1));
	assert_int_equal(open_read(k, V3), 'd');	/* one size for all cached opens */
	assert_int_equal(open_read(k, V1), 'd');	/* stale: told for no time */
	kcache_close_read(k, INO);
	assert_true(attr(k, V3, &size));
	assert_int_equal(size, strlen(V3));
	kcache_forget(k, INO);
	assert_int_equal(open_read(k, V3), 'd');	/* forgotten: knows nothing */
	kcache_free(k);
}

/* A record created (its size 0 told by the CREATE), written from empty, then
 * refreshed to a longer document stored whole into the page cache. */
static void test_created_then_stored(void **state)
{
	struct kcache *k = kcache_new();
	uint64_t ticket;

	(void)state;
	kcache_created(k, INO);
	assert_true(kcache_open_write(k, INO, 0));
	kcache_written(k, INO, true, strlen(V1));
	kcache_close_write(k, INO);
	assert_int_equal(open_read(k, V1), 'f');	/* the writer's size is V1's */
	kcache_close_read(k, INO);
	/* the refresh grows it: the store makes the kernel hold V3, pages too */
	kcache_inval_queued(k, INO);
	assert_true(kcache_store_begin(k, INO, strlen(V3), &ticket));
	assert_int_equal(open_read(k, V3), 'd');	/* not there yet */
	kcache_store_done(k, INO, ticket, strlen(V3), fp(V3));
	assert_int_equal(open_read(k, V3), 'k');
	kcache_close_read(k, INO);
	/* shorter: a store cannot shrink the size; invalidated as before */
	kcache_inval_queued(k, INO);
	assert_false(kcache_store_begin(k, INO, strlen(V1), &ticket));
	kcache_inval_done(k, INO, true);
	assert_int_equal(open_read(k, V1), 'd');
	kcache_free(k);
}

static void test_store_refused(void **state)
{
	struct kcache *k = kcache_new();
	uint64_t ticket;

	(void)state;
	/* a cached reader of the old snapshot would see its pages rewritten */
	assert_true(attr(k, V1, NULL));
	assert_int_equal(open_read(k, V1), 'f');
	kcache_inval_queued(k, INO);
	assert_false(kcache_store_begin(k, INO, strlen(V3), &ticket));
	kcache_close_read(k, INO);
	kcache_inval_done(k, INO, true);
	/* a writer open: its O_TRUNC and writes move the size */
	assert_true(attr(k, V1, NULL));
	assert_true(kcache_open_write(k, INO, 0));
	kcache_inval_queued(k, INO);
	assert_false(kcache_store_begin(k, INO, strlen(V3), &ticket));
	kcache_inval_done(k, INO, true);
	kcache_close_write(k, INO);
	/* two changes queued: the size when the second was queued is not known */
	assert_true(attr(k, V1, NULL));
	kcache_inval_queued(k, INO);
	kcache_inval_queued(k, INO);
	kcache_inval_done(k, INO, true);
	assert_false(kcache_store_begin(k, INO, strlen(V3), &ticket));
	kcache_inval_done(k, INO, true);
	/* a size never told */
	kcache_forget(k, INO);
	kcache_inval_queued(k, INO);
	assert_false(kcache_store_begin(k, INO, strlen(V3), &ticket));
	kcache_inval_done(k, INO, true);
	/* a writer came between the decision and the store: nothing is known */
	assert_true(attr(k, V1, NULL));
	kcache_inval_queued(k, INO);
	assert_true(kcache_store_begin(k, INO, strlen(V3), &ticket));
	assert_true(kcache_open_write(k, INO, 0));
	kcache_store_done(k, INO, ticket, strlen(V3), fp(V3));
	kcache_close_write(k, INO);
	assert_int_equal(open_read(k, V3), 'd');
	assert_true(attr(k, V3, NULL));
	assert_int_equal(open_read(k, V3), 'f');	/* and its pages are not trusted */
	kcache_close_read(k, INO);
	/* created over a state the daemon already had: nothing assumed */
	kcache_forget(k, INO);
	assert_int_equal(open_read(k, V1), 'd');
	kcache_created(k, INO);
	assert_true(kcache_open_write(k, INO, 0));
	kcache_written(k, INO, true, strlen(V1));
	kcache_close_write(k, INO);
	assert_int_equal(open_read(k, V1), 'd');
	kcache_free(k);
}

static void test_without_a_kcache(void **state)
{
	size_t size;

	(void)state;
	assert_int_equal(open_read(NULL, V1), 'd');
	assert_true(kcache_open_write(NULL, INO, 10));
	assert_true(attr(NULL, V1, &size));
	assert_int_equal(size, strlen(V1));
	assert_int_not_equal(kcache_fp("", 0), 0);
	assert_int_not_equal(fp(V1), fp(V2));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_needs_a_told_size),
		cmocka_unit_test(test_invalidation_in_flight),
		cmocka_unit_test(test_writers),
		cmocka_unit_test(test_writer_from_empty),
		cmocka_unit_test(test_reader_of_an_older_snapshot),
		cmocka_unit_test(test_created_then_stored),
		cmocka_unit_test(test_store_refused),
		cmocka_unit_test(test_without_a_kcache),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
