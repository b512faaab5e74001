/* test_load_lock.c - a load's end and a writer of the same block never wait
 * out each other's busy timeout (issue 11 item 9: the load's end took the
 * store's lock while its connection held SQLite's write lock, and a writer
 * held the store's lock while it waited for that write lock). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store.h"
#include "tmpdir.h"

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct writer {
	struct store *st;
	enum sh_err rv;
	int64_t ms;
};

static void *write_one(void *arg)
{
	struct writer *w = arg;
	int64_t start = mono_ms(), seq;

	w->rv = store_write(w->st, "User", "1", "{\"id\":1,\"name\":\"w\"}", &seq);
	w->ms = mono_ms() - start;
	return NULL;
}

/* A writer arrives while a load holds SQLite's write lock: the load ends at
 * once and the writer goes through right after (before: both waited out the
 * writer's 5 s busy timeout, and the write failed). */
static void test_load_end_while_a_writer_waits(void **state)
{
	char dir[] = "/tmp/sharded-test-loadlock-XXXXXX", path[128];
	struct store *st = NULL;
	struct store_load *ld = NULL;
	struct writer w = { 0 };
	pthread_t t;
	int64_t start, end_ms;
	char *doc = NULL;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/b.sqlite", dir);
	assert_int_equal(store_open(path, true, false, &st), SH_OK);
	assert_int_equal(store_load_begin(st, true, &ld), SH_OK);
	assert_int_equal(store_load_row(ld, "User", "2", "{\"id\":2}"), SH_OK);
	w.st = st;
	assert_int_equal(pthread_create(&t, NULL, write_one, &w), 0);
	usleep(300 * 1000);	/* the writer now holds the store's lock, waiting for SQLite's */
	start = mono_ms();
	assert_int_equal(store_load_end(ld, true), SH_OK);
	end_ms = mono_ms() - start;
	pthread_join(t, NULL);
	print_message("load end %lld ms, write %lld ms\n", (long long)end_ms, (long long)w.ms);
	assert_true(end_ms < 2000);
	assert_int_equal(w.rv, SH_OK);
	assert_true(w.ms < 3000);
	assert_int_equal(store_get(st, "User", "2", &doc, NULL), SH_OK);	/* the load's row */
	free(doc);
	assert_int_equal(store_get(st, "User", "1", &doc, NULL), SH_OK);	/* the write */
	free(doc);
	store_close(st);
	tmpdir_remove(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_load_end_while_a_writer_waits),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
