/* test_store_merge.c - store_write_merged: the merge of a partial write reads
 * the stored record inside the transaction that commits it, so a second
 * writer (another connection to the block file, as another process would
 * have) merges onto the first one's result instead of onto the same old copy. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "store.h"
#include "tmpdir.h"

static char dir[64], path[128];

/* Appends its tag to what is stored ("" when nothing is), and keeps what it saw. */
struct writer {
	struct store *st;
	const char *tag;
	char *seen;		/* the stored document the merge was given */
	bool absent;		/* it was given NULL */
	struct writer *during;	/* started from inside this writer's merge */
	pthread_t thread;
	enum sh_err rc;
};

static void *write_thread(void *arg);

static enum sh_err merge(void *ctx, const char *existing, char **doc, char **sent)
{
	struct writer *w = ctx;
	size_t len = (existing ? strlen(existing) : 0) + strlen(w->tag) + 1;

	(void)sent;

	w->absent = !existing;
	w->seen = existing ? strdup(existing) : NULL;
	if (w->during) {
		/* the other writer starts now and must wait for this commit */
		assert_int_equal(pthread_create(&w->during->thread, NULL, write_thread, w->during), 0);
		nanosleep(&(struct timespec){ 0, 200 * 1000000 }, NULL);
	}
	*doc = malloc(len);
	if (!*doc)
		return SH_ENOMEM;
	snprintf(*doc, len, "%s%s", existing ? existing : "", w->tag);
	return SH_OK;
}

static void *write_thread(void *arg)
{
	struct writer *w = arg;
	int64_t seq;

	w->rc = store_write_merged(w->st, "User", "1", merge, w, &seq);
	return NULL;
}

static enum sh_err refuse(void *ctx, const char *existing, char **doc, char **sent)
{
	(void)sent;
	(void)ctx;
	(void)existing;
	*doc = NULL;
	return SH_EINVAL;
}

static void test_concurrent_merges_compose(void **state)
{
	struct store *a, *b;
	struct writer second = { .tag = "b" }, first = { .tag = "a", .during = &second };
	struct store_stats stats;
	int64_t seq;
	char *doc = NULL;

	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/sharded-test-merge-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/b.sqlite", dir);
	assert_int_equal(store_open(path, true, false, &a), SH_OK);
	assert_int_equal(store_open(path, false, false, &b), SH_OK);
	first.st = a;
	second.st = b;

	assert_int_equal(store_write_merged(a, "User", "1", merge, &first, &seq), SH_OK);
	assert_int_equal(pthread_join(second.thread, NULL), 0);
	assert_int_equal(second.rc, SH_OK);
	assert_true(first.absent);
	assert_false(second.absent);	/* merged onto the first write's result */
	assert_string_equal(second.seen, "a");
	assert_int_equal(store_get(a, "User", "1", &doc, NULL), SH_OK);
	assert_string_equal(doc, "ab");
	free(doc);

	/* a refused merge writes nothing: no record change, no outbox entry */
	assert_int_equal(store_stats(a, &stats), SH_OK);
	assert_int_equal(stats.pending, 2);
	assert_int_equal(store_write_merged(a, "User", "1", refuse, NULL, &seq), SH_EINVAL);
	assert_int_equal(store_stats(a, &stats), SH_OK);
	assert_int_equal(stats.pending, 2);
	assert_int_equal(store_get(a, "User", "1", &doc, NULL), SH_OK);
	assert_string_equal(doc, "ab");
	free(doc);

	free(first.seen);
	free(second.seen);
	store_close(a);
	store_close(b);
	tmpdir_remove(dir);
}

/* ctx is the record to store; an update's outbox entry gets "sent". */
static enum sh_err merge_sent(void *ctx, const char *existing, char **doc, char **sent)
{
	*doc = strdup(ctx);
	if (existing && *doc)
		*sent = strdup("{\"id\":1,\"b\":2}");
	return *doc && (!existing || *sent) ? SH_OK : SH_ENOMEM;
}

/* The outbox carries the whole document of a create (and of a write that
 * takes a held-back deletion's place), merge's *sent of an update; the
 * record is the whole document either way. */
static void test_outbox_carries_sent(void **state)
{
	const char *whole = "{\"id\":1,\"a\":1,\"b\":2}";
	struct op *ops = NULL;
	struct store *st;
	size_t n = 0;
	int64_t seq;
	char *doc = NULL;

	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/sharded-test-merge-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/b.sqlite", dir);
	assert_int_equal(store_open(path, true, false, &st), SH_OK);
	assert_int_equal(store_write_merged(st, "User", "1", merge_sent, (void *)whole, &seq), SH_OK);
	assert_int_equal(store_write_merged(st, "User", "1", merge_sent, (void *)whole, &seq), SH_OK);
	assert_int_equal(store_write(st, "User", "1", NULL, &seq), SH_OK);
	assert_int_equal(store_write_merged(st, "User", "1", merge_sent, (void *)whole, &seq), SH_OK);
	assert_int_equal(store_get(st, "User", "1", &doc, NULL), SH_OK);
	assert_string_equal(doc, whole);
	free(doc);
	assert_int_equal(store_outbox_to_relay(st, INT64_MAX, INT64_MAX, 64, &ops, &n), SH_OK);
	assert_int_equal(n, 4);
	assert_int_equal(ops[0].kind, OP_CREATE);
	assert_string_equal(ops[0].doc, whole);
	assert_int_equal(ops[1].kind, OP_UPSERT);
	assert_string_equal(ops[1].doc, "{\"id\":1,\"b\":2}");
	assert_int_equal(ops[2].kind, OP_UPSERT);	/* the deletion, revoked by the re-write */
	assert_string_equal(ops[2].doc, whole);
	assert_string_equal(ops[3].doc, whole);
	op_free_array(ops, n);
	store_close(st);
	tmpdir_remove(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_concurrent_merges_compose),
		cmocka_unit_test(test_outbox_carries_sent),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
