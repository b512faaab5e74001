/* test_life.c - life_expire_pass at chosen times: a block idle past its TTL
 * drops its synced records and becomes BLOCK_EXPIRED; one with a pending
 * write, one used recently or one without a TTL keeps them. No thread, no
 * PostgreSQL, no sleeping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "blocks.h"
#include "life.h"
#include "store.h"
#include "tmpdir.h"

#define S 1000000000LL	/* one second in ns */
#define T0 (1000000 * S)	/* the last access of every block */

struct fixture {
	char dir[64];
	struct blockset *bs;
	struct life life;
	int changes;		/* on_change calls */
};

static void changed(void *ctx, const char *block)
{
	(void)block;
	((struct fixture *)ctx)->changes++;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/sharded-test-life-XXXXXX");
	if (!mkdtemp(f->dir) || blockset_open(f->dir, false, &f->bs) != SH_OK) {
		free(f);
		return -1;
	}
	f->life.blocks = f->bs;
	f->life.on_change = changed;
	f->life.ctx = f;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	blockset_close(f->bs);
	tmpdir_remove(f->dir);
	free(f);
	return 0;
}

/* A ready block holding one synced record, last used at T0, with TTL ttl ("" for none). */
static struct block *ready_block(struct fixture *f, const char *id, const char *ttl)
{
	struct block *b;

	assert_int_equal(blockset_create(f->bs, id, &b), SH_OK);
	b->state = BLOCK_READY;
	assert_int_equal(store_cache(b->store, "User", "1", "{\"id\": 1}"), SH_OK);
	if (*ttl)
		assert_int_equal(store_meta_set(b->store, "ttl", ttl), SH_OK);
	atomic_store(&b->last_access_ns, T0);
	return b;
}

static bool holds_record(struct block *b)
{
	char *doc = NULL;
	enum sh_err err = store_get(b->store, "User", "1", &doc, NULL);

	free(doc);
	return err == SH_OK;
}

static void test_expires_after_ttl(void **state)
{
	struct fixture *f = *state;
	struct block *b = ready_block(f, "b1", "10");

	life_expire_pass(&f->life, T0 + 10 * S - 1);
	assert_int_equal(b->state, BLOCK_READY);
	assert_true(holds_record(b));
	assert_int_equal(f->changes, 0);

	life_expire_pass(&f->life, T0 + 10 * S);
	assert_int_equal(b->state, BLOCK_EXPIRED);
	assert_false(holds_record(b));
	assert_int_equal(f->changes, 1);

	life_expire_pass(&f->life, T0 + 100 * S);	/* expired once, not again */
	assert_int_equal(f->changes, 1);
	block_put(b);
}

static void test_pending_write_keeps_block(void **state)
{
	struct fixture *f = *state;
	struct block *b = ready_block(f, "b1", "10");
	int64_t seq;

	assert_int_equal(store_write(b->store, "User", "2", "{\"id\": 2}", &seq), SH_OK);
	life_expire_pass(&f->life, T0 + 100 * S);
	assert_int_equal(b->state, BLOCK_READY);
	assert_true(holds_record(b));
	assert_int_equal(f->changes, 0);
	block_put(b);
}

static void test_default_ttl(void **state)
{
	struct fixture *f = *state;
	struct block *b = ready_block(f, "b1", "");

	life_expire_pass(&f->life, T0 + 1000000 * S);	/* default 0: never */
	assert_int_equal(b->state, BLOCK_READY);
	f->life.default_ttl = 5;
	life_expire_pass(&f->life, T0 + 5 * S);
	assert_int_equal(b->state, BLOCK_EXPIRED);
	assert_false(holds_record(b));
	block_put(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_expires_after_ttl, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pending_write_keeps_block, setup, teardown),
		cmocka_unit_test_setup_teardown(test_default_ttl, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
