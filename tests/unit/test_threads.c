/* test_threads.c - the store's parking and the block set under several
 * threads at once. Built and run twice by CTest: here (ASan+UBSan) and by
 * tsan.threads under ThreadSanitizer (tests/tsan_threads.sh), which fails on
 * any data race it reports. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "blocks.h"
#include "clock.h"
#include "life.h"
#include "store.h"

#include "outbox_util.h"
#include "tmpdir.h"

#define WORKERS 4
#define STORES 6
#define STORE_OPS 150		/* per worker; each a SQLite call, some of them open a file */
#define SET_OPS 200		/* per worker on the block set */
#define LIFE_OPS 60		/* per worker: loads, reloads, writes while the expiry runs */
#define STALL_WAIT_S 10		/* generous: the machine is shared and slow under sanitizers */

static int setup(void **state)
{
	char *dir = strdup("/tmp/sharded-test-threads-XXXXXX");

	if (!dir || !mkdtemp(dir)) {
		free(dir);
		return -1;
	}
	*state = dir;
	return 0;
}

static int teardown(void **state)
{
	char *dir = *state;

	store_set_max_open(64);
	tmpdir_remove(dir);
	free(dir);
	return 0;
}

static void start(pthread_t *t, void *(*fn)(void *), void *arg)
{
	assert_int_equal(pthread_create(t, NULL, fn, arg), 0);
}

/* A small per-thread random number generator (rand() is not thread safe). */
static unsigned next_rand(unsigned *seed)
{
	*seed = *seed * 1103515245u + 12345u;
	return (*seed >> 16) & 0x7fff;
}

/* ---- the store's parking ------------------------------------------------ */

struct store_run {
	struct store **st;
	int id;
	atomic_int *written;	/* per store: records written (distinct pks) */
	atomic_int failures;
};

static void *store_worker(void *arg)
{
	struct store_run *r = arg;
	unsigned seed = (unsigned)r->id * 7919u + 1;

	for (int i = 0; i < STORE_OPS; i++) {
		int k = (int)(next_rand(&seed) % STORES);
		struct store *st = r->st[k];
		char pk[32], *doc = NULL, *v = NULL;
		struct store_stats stats;
		int64_t seq, pending;
		enum sh_err err = SH_OK;

		switch (next_rand(&seed) % 5) {
		case 0:	/* a write, on a pk of this thread's own: counted exactly */
			snprintf(pk, sizeof(pk), "w%d-%d", r->id, i);
			err = store_write(st, "User", pk, "{\"id\":1}", &seq);
			if (!err)
				atomic_fetch_add(&r->written[k], 1);
			break;
		case 1:	/* a parked store answers these from memory */
			err = store_pending(st, &pending);
			break;
		case 2:
			err = store_stats(st, &stats);
			break;
		case 3:
			err = store_meta_get(st, "ttl", &v);
			free(v);
			break;
		default:
			err = store_get(st, "User", "seed", &doc, NULL);
			free(doc);
			break;
		}
		if (err)
			atomic_fetch_add(&r->failures, 1);
	}
	return NULL;
}

/* More stores than may be open: every call may park another thread's store
 * or unpark its own, and every answer, parked or not, must stay right. */
static void test_parking_races(void **state)
{
	const char *dir = *state;
	struct store *st[STORES];
	atomic_int written[STORES];
	struct store_run runs[WORKERS];
	pthread_t t[WORKERS];
	char path[256], *v;
	int64_t seq, pending;

	store_set_max_open(2);
	for (int k = 0; k < STORES; k++) {
		snprintf(path, sizeof(path), "%s/s%d.sqlite", dir, k);
		assert_int_equal(store_open(path, true, false, &st[k]), SH_OK);
		assert_int_equal(store_write(st[k], "User", "seed", "{\"id\":0}", &seq), SH_OK);
		assert_int_equal(store_meta_set(st[k], "ttl", "7"), SH_OK);
		atomic_init(&written[k], 1);
	}
	for (int w = 0; w < WORKERS; w++) {
		runs[w] = (struct store_run){ .st = st, .id = w, .written = written };
		atomic_init(&runs[w].failures, 0);
		start(&t[w], store_worker, &runs[w]);
	}
	for (int w = 0; w < WORKERS; w++) {
		pthread_join(t[w], NULL);
		assert_int_equal(atomic_load(&runs[w].failures), 0);
	}
	assert_true(store_open_count() <= 2);
	for (int k = 0; k < STORES; k++) {
		assert_int_equal(store_pending(st[k], &pending), SH_OK);
		assert_int_equal(pending, atomic_load(&written[k]));
		assert_int_equal(store_meta_get(st[k], "ttl", &v), SH_OK);
		assert_string_equal(v, "7");
		free(v);
		store_close(st[k]);
	}
	assert_int_equal(store_open_count(), 0);
}

/* ---- the block set ------------------------------------------------------ */

struct set_run {
	struct blockset *bs;
	int id;
	atomic_int *landed;	/* writes that went in */
};

static const char *const ids[] = { "a", "b", "c", "d" };
#define NIDS (sizeof(ids) / sizeof(ids[0]))

/* What engine.c's commit() does: no write lands in a removed block. */
static void write_one(struct set_run *r, struct block *b, int i)
{
	char pk[32];
	int64_t seq;

	snprintf(pk, sizeof(pk), "w%d-%d", r->id, i);
	pthread_rwlock_rdlock(&b->life);
	if (!atomic_load(&b->removed) && store_write(b->store, "User", pk, "{}", &seq) == SH_OK)
		atomic_fetch_add(r->landed, 1);
	pthread_rwlock_unlock(&b->life);
}

/* What the sync does once a retiring block's writes are in PostgreSQL. */
static void drain_retiring(struct blockset *bs)
{
	struct block **snap;
	size_t n;
	bool retired;

	if (blockset_snapshot(bs, &snap, &n) != SH_OK)
		return;
	for (size_t i = 0; i < n; i++) {
		if (atomic_load(&snap[i]->retiring) &&
		    outbox_applied(snap[i]->store, INT64_MAX) == SH_OK)
			blockset_remove(bs, snap[i]->id, &retired);
		block_put(snap[i]);
	}
	free(snap);
}

static void *set_worker(void *arg)
{
	struct set_run *r = arg;
	unsigned seed = (unsigned)r->id * 104729u + 3;
	bool retired;

	for (int i = 0; i < SET_OPS; i++) {
		const char *id = ids[next_rand(&seed) % NIDS];
		struct block *b;

		switch (next_rand(&seed) % 6) {
		case 0:
			if (blockset_create(r->bs, id, &b) == SH_OK)
				block_put(b);
			break;
		case 1:	/* rmdir: looks the block up first, so a retiring one is not there */
			if (blockset_get(r->bs, id, &b) == SH_OK) {
				block_put(b);
				blockset_remove(r->bs, id, &retired);
			}
			break;
		case 2:	/* one sync thread */
			if (r->id == 0)
				drain_retiring(r->bs);
			break;
		case 3:
			blockset_count(r->bs);
			break;
		default:
			if (blockset_get(r->bs, id, &b) == SH_OK) {
				write_one(r, b, i);
				block_put(b);
			}
			break;
		}
	}
	return NULL;
}

static bool file_exists(const char *dir, const char *id)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s.sqlite", dir, id);
	return access(path, F_OK) == 0;
}

/* get, put, create, remove, retire and snapshot from several threads: at the
 * end the set and the directory agree (a remove never unlinks the file of a
 * block created again under its id). */
static void test_blockset_races(void **state)
{
	char data[256];
	struct blockset *bs;
	struct set_run runs[WORKERS];
	pthread_t t[WORKERS];
	atomic_int landed;
	struct block **snap;
	size_t n;

	snprintf(data, sizeof(data), "%s/data", (char *)*state);
	assert_int_equal(blockset_open(data, false, &bs), SH_OK);
	store_set_max_open(3);	/* parking races too */
	atomic_init(&landed, 0);
	for (int w = 0; w < WORKERS; w++) {
		runs[w] = (struct set_run){ .bs = bs, .id = w, .landed = &landed };
		start(&t[w], set_worker, &runs[w]);
	}
	for (int w = 0; w < WORKERS; w++)
		pthread_join(t[w], NULL);
	assert_true(atomic_load(&landed) > 0);
	assert_int_equal(blockset_snapshot(bs, &snap, &n), SH_OK);
	assert_int_equal(n, blockset_count(bs));
	for (size_t k = 0; k < NIDS; k++) {
		bool in_set = false;

		for (size_t i = 0; i < n; i++)
			in_set |= strcmp(snap[i]->id, ids[k]) == 0;
		if (in_set != file_exists(data, ids[k]))
			fail_msg("block '%s': in the set %d, file there %d", ids[k], in_set,
				 file_exists(data, ids[k]));
	}
	for (size_t i = 0; i < n; i++)
		block_put(snap[i]);
	free(snap);
	blockset_close(bs);
}

/* ---- a remove waiting for a write in flight stalls no other lookup ------- */

struct stall {
	struct blockset *bs;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool done;
	enum sh_err removed, get_other, get_gone, create_again;
	bool retired;
	size_t snapshot_n;
};

static void *remover(void *arg)
{
	struct stall *s = arg;

	s->removed = blockset_remove(s->bs, "a", &s->retired);
	return NULL;
}

/* Waits (up to STALL_WAIT_S) until the remove has hidden "a", then does
 * what other requests do meanwhile. */
static void *looker(void *arg)
{
	struct stall *s = arg;
	struct block *b, **snap;
	time_t until = time(NULL) + STALL_WAIT_S;
	struct timespec tick = { 0, 10 * 1000000 };

	while ((s->get_gone = blockset_get(s->bs, "a", &b)) == SH_OK && time(NULL) < until) {
		block_put(b);
		nanosleep(&tick, NULL);
	}
	s->get_other = blockset_get(s->bs, "b", &b);
	if (s->get_other == SH_OK)
		block_put(b);
	s->create_again = blockset_create(s->bs, "a", &b);
	if (s->create_again == SH_OK)
		block_put(b);
	if (blockset_snapshot(s->bs, &snap, &s->snapshot_n) == SH_OK) {
		for (size_t i = 0; i < s->snapshot_n; i++)
			block_put(snap[i]);
		free(snap);
	}
	pthread_mutex_lock(&s->lock);
	s->done = true;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

static void test_remove_stalls_no_lookup(void **state)
{
	char data[256];
	struct stall s = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };
	struct block *a, *b;
	pthread_t rt, lt;
	struct timespec deadline;
	bool in_time;

	snprintf(data, sizeof(data), "%s/data", (char *)*state);
	assert_int_equal(blockset_open(data, false, &s.bs), SH_OK);
	assert_int_equal(blockset_create(s.bs, "a", &a), SH_OK);
	assert_int_equal(blockset_create(s.bs, "b", &b), SH_OK);
	block_put(b);

	pthread_rwlock_rdlock(&a->life);	/* a write in flight in "a" */
	start(&rt, remover, &s);
	start(&lt, looker, &s);
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += STALL_WAIT_S + 5;
	pthread_mutex_lock(&s.lock);
	while (!s.done && pthread_cond_timedwait(&s.cond, &s.lock, &deadline) == 0)
		;
	in_time = s.done;
	pthread_mutex_unlock(&s.lock);
	/* the write ends, only now may the remove go on */
	assert_false(atomic_load(&a->removed));
	assert_true(file_exists(data, "a"));
	pthread_rwlock_unlock(&a->life);
	pthread_join(rt, NULL);
	pthread_join(lt, NULL);

	if (!in_time)
		fail_msg("lookups of block 'b' waited for a remove of 'a' (itself waiting for a write)");
	assert_int_equal(s.get_gone, SH_ENOENT);	/* "a" is hidden while it goes */
	assert_int_equal(s.get_other, SH_OK);
	assert_int_equal(s.create_again, SH_EBUSY);	/* mkdir a: not while its files go */
	assert_int_equal(s.snapshot_n, 2);
	assert_int_equal(s.removed, SH_OK);
	assert_false(s.retired);
	assert_true(atomic_load(&a->removed));
	assert_false(file_exists(data, "a"));
	assert_int_equal(blockset_get(s.bs, "a", &b), SH_ENOENT);
	assert_int_equal(blockset_count(s.bs), 1);
	block_put(a);
	/* and the id is free again */
	assert_int_equal(blockset_create(s.bs, "a", &a), SH_OK);
	block_put(a);
	blockset_close(s.bs);
}

/* ---- a block's life: loads, reloads and expiry against requests --------- */

struct life_run {
	struct life *l;
	struct block **blocks;
	int id;
	atomic_int failures;
};

static atomic_int changes;

static void count_change(void *ctx, const char *block)
{
	(void)ctx;
	(void)block;
	atomic_fetch_add(&changes, 1);
}

static void *life_worker(void *arg)
{
	struct life_run *r = arg;
	unsigned seed = (unsigned)r->id * 15485863u + 5;

	for (int i = 0; i < LIFE_OPS; i++) {
		struct block *b = r->blocks[next_rand(&seed) % 2];
		char pk[32];
		int64_t seq;
		enum sh_err err = SH_OK;

		switch (next_rand(&seed) % 4) {
		case 0:	/* invalidate */
			err = life_reload(r->l, b);
			break;
		case 1:	/* PostgreSQL has it all: the block may expire */
			err = outbox_applied(b->store, INT64_MAX);
			atomic_store(&b->last_access_ns, 0);
			break;
		case 2:	/* the expiry thread's pass, from here too */
			life_expire_pass(r->l, clock_wall_ns());
			break;
		default:	/* a request: wait for a load, reload if expired, write */
			err = life_ready(r->l, b);
			snprintf(pk, sizeof(pk), "w%d-%d", r->id, i);
			pthread_rwlock_rdlock(&b->life);
			if (!err && !atomic_load(&b->removed))
				err = store_write(b->store, "User", pk, "{}", &seq);
			pthread_rwlock_unlock(&b->life);
			break;
		}
		if (err)
			atomic_fetch_add(&r->failures, 1);
	}
	return NULL;
}

/* Requests, invalidations and the expiry thread on the same blocks: every
 * request gets a ready block, and a block ends ready or expired. */
static void test_life_races(void **state)
{
	char data[256];
	struct blockset *bs;
	struct block *blocks[2];
	struct life l = { .default_ttl = 1, .on_change = count_change };
	struct life_run runs[WORKERS];
	pthread_t t[WORKERS];

	snprintf(data, sizeof(data), "%s/data", (char *)*state);
	assert_int_equal(blockset_open(data, false, &bs), SH_OK);
	l.blocks = bs;
	assert_int_equal(blockset_create(bs, "a", &blocks[0]), SH_OK);
	assert_int_equal(blockset_create(bs, "b", &blocks[1]), SH_OK);
	for (int k = 0; k < 2; k++)	/* no loader rules: an empty load */
		assert_int_equal(life_first_load(&l, blocks[k]), SH_OK);
	atomic_init(&changes, 0);
	assert_int_equal(life_start(&l), SH_OK);
	for (int w = 0; w < WORKERS; w++) {
		runs[w] = (struct life_run){ .l = &l, .blocks = blocks, .id = w };
		atomic_init(&runs[w].failures, 0);
		start(&t[w], life_worker, &runs[w]);
	}
	for (int w = 0; w < WORKERS; w++) {
		pthread_join(t[w], NULL);
		assert_int_equal(atomic_load(&runs[w].failures), 0);
	}
	life_stop(&l);
	assert_true(atomic_load(&changes) > 0);
	for (int k = 0; k < 2; k++) {
		pthread_mutex_lock(&blocks[k]->state_lock);
		assert_true(blocks[k]->state == BLOCK_READY || blocks[k]->state == BLOCK_EXPIRED);
		pthread_mutex_unlock(&blocks[k]->state_lock);
		block_put(blocks[k]);
	}
	blockset_close(bs);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_parking_races, setup, teardown),
		cmocka_unit_test_setup_teardown(test_blockset_races, setup, teardown),
		cmocka_unit_test_setup_teardown(test_remove_stalls_no_lookup, setup, teardown),
		cmocka_unit_test_setup_teardown(test_life_races, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
