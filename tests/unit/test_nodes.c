/* test_nodes.c - what a block file needs when another node writes the same
 * block: merged writes stay in one origin (each new origin is a row in
 * sharded_applied and a link in the after chain), the outbox names its own
 * origins (what the apply thread asks PostgreSQL about when another node
 * applied them), and store_own_upto tells this file's writes from another
 * node's in a batch (a refresh must not compare another file's seqs). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <ftw.h>

#include "op.h"
#include "store.h"
#include "tmpdir.h"

struct fixture {
	char dir[64], path[96];
	struct store *st;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/sharded-test-nodes-XXXXXX");
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
	tmpdir_remove(f->dir);
	free(f);
	return 0;
}

static enum sh_err merge_n(void *ctx, const char *existing, char **doc, char **sent)
{
	(void)sent;
	(void)existing;
	*doc = strdup(ctx);
	return *doc ? SH_OK : SH_ENOMEM;
}

static struct op *outbox(struct store *st, size_t *n)
{
	struct op *ops = NULL;

	assert_int_equal(store_outbox_to_relay(st, INT64_MAX, INT64_MAX, 100, &ops, n), SH_OK);
	return ops;
}

static void test_merged_writes_stay_in_one_origin(void **state)
{
	struct fixture *f = *state;
	int64_t seq;
	struct op *ops;
	size_t n;

	for (int i = 0; i < 3; i++)
		assert_int_equal(store_write_merged(f->st, "User", "1", merge_n, "{\"id\":1}", &seq),
				 SH_OK);
	assert_int_equal(store_write(f->st, "User", "2", "{\"id\":2}", &seq), SH_OK);
	ops = outbox(f->st, &n);
	assert_int_equal(n, 4);
	for (size_t i = 1; i < n; i++) {
		assert_string_equal(ops[i].origin, ops[0].origin);
		assert_string_equal(ops[i].after, "");
	}
	op_free_array(ops, n);
}

static void test_outbox_origins_and_own_upto(void **state)
{
	struct fixture *f = *state;
	char origins[4][OP_ORIGIN_MAX];
	int64_t s1, s2;
	struct op *ops, foreign[3];
	size_t n, k = 0;

	assert_int_equal(store_outbox_origins(f->st, origins, 4, &k), SH_OK);
	assert_int_equal(k, 0);
	assert_int_equal(store_write(f->st, "User", "1", "{\"id\":1}", &s1), SH_OK);
	assert_int_equal(store_write(f->st, "User", "2", "{\"id\":2}", &s2), SH_OK);
	ops = outbox(f->st, &n);
	/* not sent yet: nobody can have applied them */
	assert_int_equal(store_outbox_origins(f->st, origins, 4, &k), SH_OK);
	assert_int_equal(k, 0);
	assert_int_equal(store_outbox_relayed(f->st, s1, s2, 1000), SH_OK);
	assert_int_equal(store_outbox_origins(f->st, origins, 4, &k), SH_OK);
	assert_int_equal(k, 1);
	assert_string_equal(origins[0], ops[0].origin);

	/* a batch: our first write, and two of another node with higher seqs */
	memset(foreign, 0, sizeof(foreign));
	foreign[0] = ops[0];
	snprintf(foreign[1].origin, OP_ORIGIN_MAX, "%s", "00ff");
	foreign[1].seq = s2 + 1000;
	snprintf(foreign[2].origin, OP_ORIGIN_MAX, "%s", ops[0].origin);
	foreign[2].seq = s2 + 2000;	/* our origin's name, a seq we never wrote */
	assert_int_equal(store_own_upto(f->st, foreign, 3), s1);
	assert_int_equal(store_own_upto(f->st, foreign + 1, 2), 0);
	op_free_array(ops, n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_merged_writes_stay_in_one_origin, setup, teardown),
		cmocka_unit_test_setup_teardown(test_outbox_origins_and_own_upto, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
