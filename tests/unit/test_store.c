/* test_store.c - a block's SQLite store: records, outbox, refresh, meta, reopening. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"
#include "op.h"
#include "store.h"

#include "outbox_util.h"
#include "tmpdir.h"

struct fixture {
	char dir[64];
	char path[128];
	struct store *st;
};

/* A fresh temp dir and a new store in it, per test. */
static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/sharded-test-store-XXXXXX");
	if (!mkdtemp(f->dir)) {
		free(f);
		return -1;
	}
	snprintf(f->path, sizeof(f->path), "%s/b.sqlite", f->dir);
	if (store_open(f->path, true, false, &f->st) != SH_OK) {
		tmpdir_remove(f->dir);
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	store_close(f->st);
	store_set_max_open(64);	/* test_parking lowers it; a failed assert skips its end */
	tmpdir_remove(f->dir);
	free(f);
	return 0;
}

static int64_t meta_int(struct store *st, const char *key)
{
	char *v = NULL;
	int64_t n;

	assert_int_equal(store_meta_get(st, key, &v), SH_OK);
	assert_non_null(v);
	n = strtoll(v, NULL, 10);
	free(v);
	return n;
}

static void assert_doc(struct store *st, const char *model, const char *pk, const char *expect)
{
	char *doc = (char *)1;
	int64_t mtime = 0;
	enum sh_err err = store_get(st, model, pk, &doc, &mtime);

	if (!expect) {
		assert_int_equal(err, SH_ENOENT);
		assert_null(doc);
		return;
	}
	assert_int_equal(err, SH_OK);
	assert_non_null(doc);
	assert_string_equal(doc, expect);
	assert_true(mtime > 0);
	free(doc);
}

static void relay(struct store *st, int64_t before, size_t max, struct op **ops, size_t *n)
{
	assert_int_equal(store_outbox_to_relay(st, before, INT64_MAX, max, ops, n), SH_OK);
	assert_non_null(*ops);
}

static void test_write_get_delete(void **state)
{
	struct fixture *f = *state;
	int64_t s1, s2, s3;
	char *doc = (char *)1;

	assert_int_equal(store_get(f->st, "User", "1", &doc, NULL), SH_ENOENT);
	assert_null(doc);

	assert_int_equal(store_write(f->st, "User", "1", "{\"id\":1}", &s1), SH_OK);
	assert_doc(f->st, "User", "1", "{\"id\":1}");
	assert_int_equal(store_write(f->st, "User", "1", "{\"id\":1,\"n\":2}", &s2), SH_OK);
	assert_doc(f->st, "User", "1", "{\"id\":1,\"n\":2}");
	assert_doc(f->st, "Event", "1", NULL);	/* models are separate */
	assert_int_equal(store_write(f->st, "User", "1", NULL, &s3), SH_OK);
	assert_doc(f->st, "User", "1", NULL);
	assert_true(s2 == s1 + 1 && s3 == s2 + 1);
	/* a delete of a record never seen still goes to the outbox */
	assert_int_equal(store_write(f->st, "User", "99", NULL, &s3), SH_OK);
	assert_true(store_has_pending(f->st, "User", "99"));
}

/* The relay reads more entries than read_ops' first array holds, in order,
 * and never more than asked. */
static void test_outbox_relay_many(void **state)
{
	struct fixture *f = *state;
	char pk[16], doc[64];
	int64_t seq[100];
	struct op *ops;
	size_t n;

	for (int i = 0; i < 100; i++) {
		snprintf(pk, sizeof(pk), "%d", i);
		snprintf(doc, sizeof(doc), "{\"id\":%d}", i);
		assert_int_equal(store_write(f->st, "User", pk, doc, &seq[i]), SH_OK);
	}
	relay(f->st, INT64_MAX, 70, &ops, &n);
	assert_int_equal(n, 70);
	for (size_t i = 0; i < n; i++) {
		snprintf(pk, sizeof(pk), "%zu", i);
		assert_int_equal(ops[i].seq, seq[i]);
		assert_string_equal(ops[i].pk, pk);
		assert_int_equal(ops[i].kind, OP_UPSERT);
	}
	op_free_array(ops, n);
	relay(f->st, INT64_MAX, 1000, &ops, &n);
	assert_int_equal(n, 100);
	assert_string_equal(ops[99].doc, "{\"id\":99}");
	op_free_array(ops, n);
}

static void test_outbox_order_and_seq(void **state)
{
	struct fixture *f = *state;
	int64_t base = meta_int(f->st, "base_seq"), seq[4];
	struct op *ops;
	size_t n;

	assert_true(base > 0);
	assert_int_equal(meta_int(f->st, "last_seq"), base);
	assert_int_equal(store_write(f->st, "User", "1", "{\"id\":1}", &seq[0]), SH_OK);
	assert_int_equal(store_write(f->st, "User", "2", "{\"id\":2}", &seq[1]), SH_OK);
	assert_int_equal(store_write(f->st, "User", "1", NULL, &seq[2]), SH_OK);
	assert_int_equal(store_write(f->st, "Event", "e", "{\"id\":\"e\"}", &seq[3]), SH_OK);
	assert_int_equal(seq[0], base + 1);
	assert_int_equal(meta_int(f->st, "last_seq"), seq[3]);

	relay(f->st, clock_wall_ns(), 100, &ops, &n);
	assert_int_equal(n, 4);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(ops[i].seq, seq[i]);
		if (i)
			assert_int_equal(ops[i].seq, ops[i - 1].seq + 1);
	}
	assert_int_equal(ops[0].kind, OP_UPSERT);
	assert_string_equal(ops[0].model, "User");
	assert_string_equal(ops[0].pk, "1");
	assert_string_equal(ops[0].doc, "{\"id\":1}");
	assert_int_equal(ops[1].kind, OP_UPSERT);
	assert_string_equal(ops[1].pk, "2");
	assert_int_equal(ops[2].kind, OP_DELETE);
	assert_string_equal(ops[2].pk, "1");
	assert_null(ops[2].doc);
	assert_string_equal(ops[3].model, "Event");
	op_free_array(ops, n);

	/* max limits the batch, from the oldest */
	relay(f->st, clock_wall_ns(), 2, &ops, &n);
	assert_int_equal(n, 2);
	assert_int_equal(ops[0].seq, seq[0]);
	assert_int_equal(ops[1].seq, seq[1]);
	op_free_array(ops, n);
	relay(f->st, clock_wall_ns(), 0, &ops, &n);
	assert_int_equal(n, 0);
	op_free_array(ops, n);
}

static void test_outbox_relay_cycle(void **state)
{
	struct fixture *f = *state;
	int64_t seq[3], t;
	struct op *ops;
	size_t n;

	for (int i = 0; i < 3; i++)
		assert_int_equal(store_write(f->st, "User", "1", "{}", &seq[i]), SH_OK);

	t = clock_wall_ns();
	assert_int_equal(store_outbox_relayed(f->st, seq[0], seq[1], t), SH_OK);
	/* relayed entries are hidden until their resend time */
	relay(f->st, t, 100, &ops, &n);
	assert_int_equal(n, 1);
	assert_int_equal(ops[0].seq, seq[2]);
	op_free_array(ops, n);
	relay(f->st, t - 1000, 100, &ops, &n);
	assert_int_equal(n, 1);
	op_free_array(ops, n);
	/* ...and come back once it has passed */
	relay(f->st, t + 1, 100, &ops, &n);
	assert_int_equal(n, 3);
	assert_int_equal(ops[0].seq, seq[0]);
	op_free_array(ops, n);

	/* relaying again later does not move an earlier relay time backwards */
	assert_int_equal(store_outbox_relayed(f->st, seq[0], seq[2], t - 5), SH_OK);
	relay(f->st, t - 5, 100, &ops, &n);
	assert_int_equal(n, 0);
	op_free_array(ops, n);
	relay(f->st, t, 100, &ops, &n);
	assert_int_equal(n, 1);
	assert_int_equal(ops[0].seq, seq[2]);
	op_free_array(ops, n);

	/* marking a later range leaves the entries before it as they were */
	assert_int_equal(store_outbox_relayed(f->st, seq[2], seq[2], t + 50), SH_OK);
	relay(f->st, t + 1, 100, &ops, &n);
	assert_int_equal(n, 2);
	assert_int_equal(ops[0].seq, seq[0]);
	assert_int_equal(ops[1].seq, seq[1]);
	op_free_array(ops, n);

	/* unrelay: everything is to send again */
	assert_int_equal(store_outbox_unrelay(f->st), SH_OK);
	relay(f->st, 1, 100, &ops, &n);
	assert_int_equal(n, 3);
	op_free_array(ops, n);

	/* applied drops up to seq, inclusive */
	assert_int_equal(outbox_applied(f->st, seq[1]), SH_OK);
	relay(f->st, clock_wall_ns(), 100, &ops, &n);
	assert_int_equal(n, 1);
	assert_int_equal(ops[0].seq, seq[2]);
	op_free_array(ops, n);
	assert_true(store_has_pending(f->st, "User", "1"));
	assert_int_equal(outbox_applied(f->st, seq[2]), SH_OK);
	relay(f->st, clock_wall_ns(), 100, &ops, &n);
	assert_int_equal(n, 0);
	op_free_array(ops, n);
	assert_false(store_has_pending(f->st, "User", "1"));
	/* the record itself stays */
	assert_doc(f->st, "User", "1", "{}");
	/* sequence numbers keep growing after the outbox empties */
	assert_int_equal(store_write(f->st, "User", "2", "{}", &t), SH_OK);
	assert_int_equal(t, seq[2] + 1);
}

static void test_refresh(void **state)
{
	struct fixture *f = *state;
	int64_t s1, s2;

	assert_int_equal(store_write(f->st, "User", "1", "{\"v\":\"local\"}", &s1), SH_OK);
	/* PostgreSQL has not applied s1 yet: the local write wins */
	assert_int_equal(store_refresh(f->st, "User", "1", "{\"v\":\"pg\"}", s1 - 1), SH_OK);
	assert_doc(f->st, "User", "1", "{\"v\":\"local\"}");
	assert_int_equal(store_refresh(f->st, "User", "1", NULL, s1 - 1), SH_OK);
	assert_doc(f->st, "User", "1", "{\"v\":\"local\"}");

	/* a second write: applied up to s1 still leaves s2 pending */
	assert_int_equal(store_write(f->st, "User", "1", "{\"v\":\"local2\"}", &s2), SH_OK);
	assert_int_equal(store_refresh(f->st, "User", "1", "{\"v\":\"pg\"}", s1), SH_OK);
	assert_doc(f->st, "User", "1", "{\"v\":\"local2\"}");

	/* once applied, PostgreSQL's version replaces the cache */
	assert_int_equal(outbox_applied(f->st, s2), SH_OK);
	assert_int_equal(store_refresh(f->st, "User", "1", "{\"v\":\"pg\"}", s2), SH_OK);
	assert_doc(f->st, "User", "1", "{\"v\":\"pg\"}");
	/* doc NULL: the row is gone */
	assert_int_equal(store_refresh(f->st, "User", "1", NULL, s2), SH_OK);
	assert_doc(f->st, "User", "1", NULL);
	/* a record the block never had */
	assert_int_equal(store_refresh(f->st, "User", "7", "{\"id\":7}", s2), SH_OK);
	assert_doc(f->st, "User", "7", "{\"id\":7}");
	/* a pending write on another record does not block this one */
	assert_int_equal(store_write(f->st, "User", "8", "{}", &s1), SH_OK);
	assert_int_equal(store_refresh(f->st, "User", "7", "{\"id\":7,\"x\":1}", 0), SH_OK);
	assert_doc(f->st, "User", "7", "{\"id\":7,\"x\":1}");
	/* refresh touches no outbox */
	assert_true(store_has_pending(f->st, "User", "8"));
	assert_false(store_has_pending(f->st, "User", "7"));
}

static void test_cache(void **state)
{
	struct fixture *f = *state;
	struct store_stats stats;
	int64_t seq;

	assert_int_equal(store_cache(f->st, "User", "2", "{\"v\":1}"), SH_OK);
	assert_doc(f->st, "User", "2", "{\"v\":1}");
	assert_int_equal(store_cache(f->st, "User", "2", "{\"v\":2}"), SH_OK);
	assert_doc(f->st, "User", "2", "{\"v\":1}");
	assert_false(store_has_pending(f->st, "User", "2"));

	/* a user's write is never overwritten by a cache fill */
	assert_int_equal(store_write(f->st, "User", "3", "{\"v\":\"mine\"}", &seq), SH_OK);
	assert_int_equal(store_cache(f->st, "User", "3", "{\"v\":\"pg\"}"), SH_OK);
	assert_doc(f->st, "User", "3", "{\"v\":\"mine\"}");

	assert_int_equal(store_stats(f->st, &stats), SH_OK);
	assert_int_equal(stats.records, 2);
	assert_int_equal(stats.pending, 1);
}

static void test_drop_synced(void **state)
{
	struct fixture *f = *state;
	int64_t dropped = -1, seq;

	assert_int_equal(store_write(f->st, "User", "1", "{\"v\":1}", &seq), SH_OK);
	assert_int_equal(store_cache(f->st, "User", "2", "{}"), SH_OK);
	assert_int_equal(store_cache(f->st, "User", "3", "{}"), SH_OK);
	assert_int_equal(store_cache(f->st, "Event", "1", "{}"), SH_OK);	/* same pk, other model */
	assert_int_equal(store_drop_synced(f->st, &dropped), SH_OK);
	assert_int_equal(dropped, 3);
	assert_doc(f->st, "User", "1", "{\"v\":1}");
	assert_doc(f->st, "User", "2", NULL);
	assert_doc(f->st, "User", "3", NULL);
	assert_doc(f->st, "Event", "1", NULL);

	assert_int_equal(store_drop_synced(f->st, &dropped), SH_OK);
	assert_int_equal(dropped, 0);

	assert_int_equal(outbox_applied(f->st, seq), SH_OK);
	assert_int_equal(store_drop_synced(f->st, &dropped), SH_OK);
	assert_int_equal(dropped, 1);
	assert_doc(f->st, "User", "1", NULL);
}

static void test_has_pending_and_stats(void **state)
{
	struct fixture *f = *state;
	struct store_stats stats;
	int64_t pending;
	int64_t before = clock_wall_ns(), seq;

	assert_int_equal(store_stats(f->st, &stats), SH_OK);
	assert_int_equal(stats.pending, 0);
	assert_int_equal(stats.records, 0);
	assert_int_equal(stats.oldest_pending_ns, 0);
	assert_false(store_has_pending(f->st, "User", "1"));

	assert_int_equal(store_write(f->st, "User", "1", "{}", &seq), SH_OK);
	assert_int_equal(store_write(f->st, "User", "1", "{\"a\":1}", &seq), SH_OK);
	assert_int_equal(store_write(f->st, "User", "2", NULL, &seq), SH_OK);
	assert_int_equal(store_cache(f->st, "User", "4", "{}"), SH_OK);
	assert_true(store_has_pending(f->st, "User", "1"));
	assert_true(store_has_pending(f->st, "User", "2"));
	assert_false(store_has_pending(f->st, "User", "4"));
	assert_false(store_has_pending(f->st, "Event", "1"));

	assert_int_equal(store_stats(f->st, &stats), SH_OK);
	assert_int_equal(stats.pending, 3);
	assert_int_equal(store_pending(f->st, &pending), SH_OK);
	assert_int_equal(pending, 3);
	assert_int_equal(stats.records, 2);	/* 1 and 4; 2 was deleted */
	assert_true(stats.oldest_pending_ns >= before);
	assert_true(stats.oldest_pending_ns <= clock_wall_ns());

	assert_int_equal(outbox_applied(f->st, seq), SH_OK);
	assert_int_equal(store_stats(f->st, &stats), SH_OK);
	assert_int_equal(stats.pending, 0);
	assert_int_equal(store_pending(f->st, &pending), SH_OK);
	assert_int_equal(pending, 0);
	assert_int_equal(stats.oldest_pending_ns, 0);
	assert_false(store_has_pending(f->st, "User", "1"));
}

static void test_meta(void **state)
{
	struct fixture *f = *state;
	char *v = (char *)1;

	assert_int_equal(store_meta_get(f->st, "nope", &v), SH_ENOENT);
	assert_null(v);
	assert_int_equal(store_meta_set(f->st, "k", "v1"), SH_OK);
	assert_int_equal(store_meta_get(f->st, "k", &v), SH_OK);
	assert_string_equal(v, "v1");
	free(v);
	assert_int_equal(store_meta_set(f->st, "k", "v2 with 'quotes' and \"more\""), SH_OK);
	assert_int_equal(store_meta_get(f->st, "k", &v), SH_OK);
	assert_string_equal(v, "v2 with 'quotes' and \"more\"");
	free(v);
	assert_int_equal(store_meta_set(f->st, "empty", ""), SH_OK);
	assert_int_equal(store_meta_get(f->st, "empty", &v), SH_OK);
	assert_string_equal(v, "");
	free(v);
	/* a new block's bookkeeping */
	assert_true(meta_int(f->st, "created_ns") > 0);
	assert_true(meta_int(f->st, "base_seq") > 0);
}

struct list_ctx {
	char keys[8][16];
	size_t n, stop_after;
};

static int collect(void *ctx, const char *pk, size_t doc_len, int64_t mtime_ns)
{
	struct list_ctx *c = ctx;

	assert_true(doc_len > 0);
	assert_true(mtime_ns > 0);
	snprintf(c->keys[c->n++], sizeof(c->keys[0]), "%s", pk);
	return c->stop_after && c->n >= c->stop_after;
}

static void test_list(void **state)
{
	struct fixture *f = *state;
	struct list_ctx c = { 0 };
	int64_t seq;

	assert_int_equal(store_write(f->st, "User", "b", "{\"x\":1}", &seq), SH_OK);
	assert_int_equal(store_cache(f->st, "User", "a", "{}"), SH_OK);
	assert_int_equal(store_write(f->st, "User", "c", "{}", &seq), SH_OK);
	assert_int_equal(store_write(f->st, "Event", "z", "{}", &seq), SH_OK);
	assert_int_equal(store_list(f->st, "User", collect, &c), SH_OK);
	assert_int_equal(c.n, 3);
	assert_string_equal(c.keys[0], "a");
	assert_string_equal(c.keys[1], "b");
	assert_string_equal(c.keys[2], "c");

	memset(&c, 0, sizeof(c));
	c.stop_after = 2;
	assert_int_equal(store_list(f->st, "User", collect, &c), SH_OK);
	assert_int_equal(c.n, 2);

	memset(&c, 0, sizeof(c));
	assert_int_equal(store_list(f->st, "Nothing", collect, &c), SH_OK);
	assert_int_equal(c.n, 0);
}

static void test_reopen_keeps_everything(void **state)
{
	struct fixture *f = *state;
	int64_t base = meta_int(f->st, "base_seq"), s1, s2, s3;
	struct store_stats stats;
	struct op *ops;
	size_t n;
	char *v;

	assert_int_equal(store_write(f->st, "User", "1", "{\"id\":1}", &s1), SH_OK);
	assert_int_equal(store_write(f->st, "User", "2", "{\"id\":2}", &s2), SH_OK);
	assert_int_equal(store_cache(f->st, "User", "3", "{\"id\":3}"), SH_OK);
	assert_int_equal(store_meta_set(f->st, "k", "v"), SH_OK);
	assert_int_equal(outbox_applied(f->st, s1), SH_OK);
	assert_int_equal(store_outbox_relayed(f->st, s2, s2, clock_wall_ns()), SH_OK);
	store_close(f->st);
	f->st = NULL;

	assert_int_equal(store_open(f->path, false, true, &f->st), SH_OK);
	assert_non_null(f->st);
	assert_doc(f->st, "User", "1", "{\"id\":1}");
	assert_doc(f->st, "User", "2", "{\"id\":2}");
	assert_doc(f->st, "User", "3", "{\"id\":3}");
	assert_int_equal(store_meta_get(f->st, "k", &v), SH_OK);
	assert_string_equal(v, "v");
	free(v);
	assert_int_equal(meta_int(f->st, "base_seq"), base);
	assert_int_equal(store_stats(f->st, &stats), SH_OK);
	assert_int_equal(stats.pending, 1);
	assert_int_equal(stats.records, 3);
	/* the relay mark survived: nothing to send before its resend time */
	relay(f->st, 1, 10, &ops, &n);
	assert_int_equal(n, 0);
	op_free_array(ops, n);
	relay(f->st, INT64_MAX, 10, &ops, &n);
	assert_int_equal(n, 1);
	assert_int_equal(ops[0].seq, s2);
	op_free_array(ops, n);
	/* numbering continues where it stopped */
	assert_int_equal(store_write(f->st, "User", "4", "{}", &s3), SH_OK);
	assert_int_equal(s3, s2 + 1);

	/* opening with create on an existing file changes nothing either */
	store_close(f->st);
	f->st = NULL;
	assert_int_equal(store_open(f->path, true, false, &f->st), SH_OK);
	assert_int_equal(meta_int(f->st, "base_seq"), base);
	assert_int_equal(meta_int(f->st, "last_seq"), s3);
	assert_doc(f->st, "User", "4", "{}");
}

/* With room for two connections, five stores stay usable: the least recently
 * used are parked, answer counts and meta from memory, see a write made by
 * another connection (as the sharded tool would) once they look at their
 * files again, and reopen for anything else. */
static void test_parking(void **state)
{
	struct fixture *f = *state;
	struct store *st[5];
	struct store_stats stats;
	int64_t pending;
	struct op *ops;
	size_t n;
	int64_t seq;
	char path[192], *v;

	store_set_max_open(2);
	for (int i = 0; i < 5; i++) {
		char pk[8];

		snprintf(path, sizeof(path), "%s/p%d.sqlite", f->dir, i);
		assert_int_equal(store_open(path, true, false, &st[i]), SH_OK);
		snprintf(pk, sizeof(pk), "%d", i);
		assert_int_equal(store_write(st[i], "User", pk, "{\"id\":1}", &seq), SH_OK);
		assert_int_equal(store_meta_set(st[i], "ttl", "7"), SH_OK);
		assert_true(store_open_count() <= 2);
	}
	/* st[0] is parked: it answers without opening */
	assert_true(store_is_parked(st[0]));
	assert_int_equal(store_pending(st[0], &pending), SH_OK);
	assert_int_equal(pending, 1);
	assert_int_equal(store_stats(st[0], &stats), SH_OK);
	assert_int_equal(stats.pending, 1);
	assert_int_equal(stats.records, 1);
	assert_int_equal(store_meta_get(st[0], "ttl", &v), SH_OK);
	assert_string_equal(v, "7");
	free(v);
	assert_int_equal(store_meta_get(st[0], "nothing", &v), SH_ENOENT);
	assert_true(store_is_parked(st[0]));
	assert_true(store_open_count() <= 2);
	/* its outbox is not empty: the relay's question opens it */
	relay(st[0], INT64_MAX, 10, &ops, &n);
	assert_int_equal(n, 1);
	op_free_array(ops, n);
	assert_false(store_is_parked(st[0]));
	assert_int_equal(outbox_applied(st[0], seq + 1000000), SH_OK);
	assert_doc(st[0], "User", "0", "{\"id\":1}");
	assert_true(store_open_count() <= 2);

	/* park st[0] with an empty outbox, then write to its file through
	 * another connection: within a second it still answers from memory,
	 * after that it sees the change */
	for (int i = 1; i < 5; i++)
		assert_int_equal(store_stats(st[i], &stats), SH_OK);
	assert_int_equal(store_meta_set(st[3], "x", "1"), SH_OK);
	assert_int_equal(store_meta_set(st[4], "x", "1"), SH_OK);
	assert_true(store_is_parked(st[0]));
	assert_int_equal(store_stats(st[0], &stats), SH_OK);
	assert_int_equal(stats.pending, 0);
	relay(st[0], INT64_MAX, 10, &ops, &n);	/* parked, empty: nothing, no open */
	assert_int_equal(n, 0);
	op_free_array(ops, n);
	assert_true(store_is_parked(st[0]));
	{
		struct store *other;

		snprintf(path, sizeof(path), "%s/p0.sqlite", f->dir);
		assert_int_equal(store_open(path, false, false, &other), SH_OK);
		assert_int_equal(store_write(other, "User", "9", "{\"id\":9}", &seq), SH_OK);
		store_close(other);
	}
	assert_int_equal(store_pending(st[0], &pending), SH_OK);
	assert_int_equal(pending, 0);	/* still the remembered answer */
	assert_true(store_is_parked(st[0]));
	sleep(1);
	usleep(100 * 1000);
	assert_int_equal(store_pending(st[0], &pending), SH_OK);
	assert_int_equal(pending, 1);	/* the other connection's write, seen */
	assert_int_equal(store_stats(st[0], &stats), SH_OK);
	assert_int_equal(stats.pending, 1);
	assert_int_equal(stats.records, 2);
	relay(st[0], INT64_MAX, 10, &ops, &n);
	assert_int_equal(n, 1);
	assert_string_equal(ops[0].pk, "9");
	op_free_array(ops, n);

	/* parked on purpose, forgetting: the next call of any kind opens */
	store_park(st[1], false);
	assert_int_equal(store_meta_get(st[1], "ttl", &v), SH_OK);
	assert_string_equal(v, "7");
	free(v);
	for (int i = 0; i < 5; i++)
		store_close(st[i]);
	assert_true(store_open_count() <= 1);	/* at most the fixture's own */
}

/* rmdir and expiry must not trust a parked store's remembered "pending 0"
 * when another process (sharded dlq retry) has written to its file since
 * (issue 11 item 5): the fresh count and the removal look at the file. */
static void test_parked_fresh_count_and_remove(void **state)
{
	struct fixture *f = *state;
	struct store *st, *other;
	int64_t pending, seq;
	bool removed;
	char path[192];

	snprintf(path, sizeof(path), "%s/r.sqlite", f->dir);
	assert_int_equal(store_open(path, true, false, &st), SH_OK);
	store_park(st, true);
	assert_int_equal(store_pending(st, &pending), SH_OK);	/* remembered from now on */
	assert_int_equal(pending, 0);
	assert_int_equal(store_open(path, false, false, &other), SH_OK);
	assert_int_equal(store_write(other, "User", "1", "{\"id\":1}", &seq), SH_OK);
	store_close(other);
	assert_int_equal(store_pending(st, &pending), SH_OK);
	assert_int_equal(pending, 0);	/* within a second: still the remembered answer */
	assert_int_equal(store_pending_fresh(st, &pending), SH_OK);
	assert_int_equal(pending, 1);
	store_park(st, true);
	assert_int_equal(store_remove_if_idle(st, &pending, &removed), SH_OK);
	assert_int_equal(pending, 1);
	assert_false(removed);
	assert_int_equal(access(path, F_OK), 0);

	assert_int_equal(outbox_applied(st, seq), SH_OK);
	assert_int_equal(store_remove_if_idle(st, &pending, &removed), SH_OK);
	assert_int_equal(pending, 0);
	assert_true(removed);
	assert_int_equal(access(path, F_OK), -1);
	store_close(st);
	assert_int_equal(access(path, F_OK), -1);
	snprintf(path, sizeof(path), "%s/r.sqlite-wal", f->dir);
	assert_int_equal(access(path, F_OK), -1);	/* nothing comes back at close */
}

/* applied_total counts what leaves the outbox, less the dead, once: also
 * writes found applied on a later pass (an answer lost after COMMIT). */
static void test_outbox_settle_counts(void **state)
{
	struct fixture *f = *state;
	int64_t seq[4], counted, dead;
	char *origin = NULL;

	for (int i = 0; i < 4; i++)
		assert_int_equal(store_write(f->st, "User", "1", "{}", &seq[i]), SH_OK);
	assert_int_equal(store_meta_get(f->st, "origin", &origin), SH_OK);
	dead = 1;
	assert_int_equal(store_outbox_settle(f->st, origin, seq[1], &dead, &counted), SH_OK);
	assert_int_equal(counted, 1);
	assert_int_equal(dead, 0);
	assert_int_equal(meta_int(f->st, "applied_total"), 1);
	assert_int_equal(store_outbox_settle(f->st, origin, seq[1], &dead, &counted), SH_OK);
	assert_int_equal(counted, 0);	/* already gone: not counted twice */
	dead = 3;			/* more dead than leave: the rest is carried */
	assert_int_equal(store_outbox_settle(f->st, origin, seq[3], &dead, &counted), SH_OK);
	assert_int_equal(counted, 0);
	assert_int_equal(dead, 1);
	assert_int_equal(meta_int(f->st, "applied_total"), 1);
	free(origin);
}

static void test_sqlite_err(void **state)
{
	(void)state;
	assert_int_equal(store_sqlite_err(13 /* SQLITE_FULL */, 0), SH_ENOSPC);
	assert_int_equal(store_sqlite_err(10 | (3 << 8) /* SQLITE_IOERR_WRITE */, 28 /* ENOSPC */),
			 SH_ENOSPC);
	assert_int_equal(store_sqlite_err(10 | (3 << 8), 5 /* EIO */), SH_EIO);
	assert_int_equal(store_sqlite_err(5 /* SQLITE_BUSY */, 28), SH_EIO);
	assert_int_equal(store_sqlite_err(11 /* SQLITE_CORRUPT */, 0), SH_EIO);
}

static void test_open_missing(void **state)
{
	struct fixture *f = *state;
	struct store *st = (struct store *)1;
	char path[192];

	snprintf(path, sizeof(path), "%s/missing.sqlite", f->dir);
	assert_int_not_equal(store_open(path, false, false, &st), SH_OK);
	assert_null(st);
	assert_int_equal(access(path, F_OK), -1);
	snprintf(path, sizeof(path), "%s/no/such/dir/x.sqlite", f->dir);
	st = (struct store *)1;
	assert_int_not_equal(store_open(path, true, false, &st), SH_OK);
	assert_null(st);
	store_close(NULL);
}

static void test_new_blocks_do_not_reuse_seqs(void **state)
{
	struct fixture *f = *state;
	struct store *st2;
	char path[192];
	int64_t s1, s2;

	assert_int_equal(store_write(f->st, "User", "1", "{}", &s1), SH_OK);
	usleep(2000);
	snprintf(path, sizeof(path), "%s/b2.sqlite", f->dir);
	assert_int_equal(store_open(path, true, false, &st2), SH_OK);
	assert_int_equal(store_write(st2, "User", "1", "{}", &s2), SH_OK);
	assert_true(s2 > s1);
	store_close(st2);
}

/* A deletion held back from Redis is revoked by a new write to the record
 * (mv from another file system: unlink, then create); once relayed it stays. */
static void test_delete_grace_and_revoke(void **state)
{
	struct fixture *f = *state;
	struct op *ops;
	size_t n;
	int64_t seq, now;

	assert_int_equal(store_write(f->st, "User", "1", "{\"id\":1}", &seq), SH_OK);
	assert_int_equal(store_write(f->st, "User", "1", NULL, &seq), SH_OK);
	now = clock_wall_ns();
	/* within the grace: the upsert goes, the deletion and what follows wait */
	assert_int_equal(store_outbox_to_relay(f->st, now + 1, now - 1000000000LL, 10, &ops, &n), SH_OK);
	assert_int_equal(n, 1);
	assert_int_equal(ops[0].kind, OP_UPSERT);
	op_free_array(ops, n);
	/* a new write revokes the held deletion: PostgreSQL never sees it */
	assert_int_equal(store_write(f->st, "User", "1", "{\"id\":1,\"n\":2}", &seq), SH_OK);
	assert_int_equal(store_outbox_to_relay(f->st, now + 1, now - 1000000000LL, 10, &ops, &n), SH_OK);
	assert_int_equal(n, 3);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(ops[i].kind, OP_UPSERT);
	assert_true(ops[1].seq == ops[0].seq + 1 && ops[2].seq == ops[1].seq + 1);
	assert_string_equal(ops[1].doc, "{\"id\":1,\"n\":2}");
	op_free_array(ops, n);
	/* past the grace a deletion is sent, and then no write revokes it */
	assert_int_equal(store_write(f->st, "User", "2", NULL, &seq), SH_OK);
	assert_int_equal(store_outbox_to_relay(f->st, INT64_MAX, INT64_MAX, 10, &ops, &n), SH_OK);
	assert_int_equal(ops[n - 1].kind, OP_DELETE);
	op_free_array(ops, n);
	assert_int_equal(store_outbox_relayed(f->st, seq, seq, clock_wall_ns()), SH_OK);
	assert_int_equal(store_write(f->st, "User", "2", "{\"id\":2}", &seq), SH_OK);
	assert_int_equal(store_outbox_to_relay(f->st, INT64_MAX, INT64_MAX, 10, &ops, &n), SH_OK);
	assert_int_equal(ops[n - 2].kind, OP_DELETE);
	assert_int_equal(ops[n - 1].kind, OP_UPSERT);
	op_free_array(ops, n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_write_get_delete, setup, teardown),
		cmocka_unit_test_setup_teardown(test_outbox_order_and_seq, setup, teardown),
		cmocka_unit_test_setup_teardown(test_outbox_relay_many, setup, teardown),
		cmocka_unit_test_setup_teardown(test_outbox_relay_cycle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refresh, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cache, setup, teardown),
		cmocka_unit_test_setup_teardown(test_drop_synced, setup, teardown),
		cmocka_unit_test_setup_teardown(test_has_pending_and_stats, setup, teardown),
		cmocka_unit_test_setup_teardown(test_meta, setup, teardown),
		cmocka_unit_test_setup_teardown(test_list, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reopen_keeps_everything, setup, teardown),
		cmocka_unit_test_setup_teardown(test_parking, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_missing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_parked_fresh_count_and_remove, setup, teardown),
		cmocka_unit_test_setup_teardown(test_outbox_settle_counts, setup, teardown),
		cmocka_unit_test(test_sqlite_err),
		cmocka_unit_test_setup_teardown(test_new_blocks_do_not_reuse_seqs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delete_grace_and_revoke, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
