/* test_admin.c - the parts of core/admin.c that need no Redis: stream ids,
 * key names, picking dead letters, block status from the files. */
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
#include <unistd.h>

#include "admin.h"
#include "store.h"
#include "tmpdir.h"

static void test_stream_ids(void **state)
{
	(void)state;
	assert_true(admin_stream_id_valid("1700000000000-0"));
	assert_true(admin_stream_id_valid("5"));
	assert_false(admin_stream_id_valid(""));
	assert_false(admin_stream_id_valid("-"));
	assert_false(admin_stream_id_valid("12-"));
	assert_false(admin_stream_id_valid("12-x"));
	assert_false(admin_stream_id_valid("abc"));
	assert_false(admin_stream_id_valid("1-2-3"));
	assert_false(admin_stream_id_valid("(1-2"));
	/* numeric, not textual, order */
	assert_true(admin_stream_id_cmp("9-0", "10-0") < 0);
	assert_true(admin_stream_id_cmp("10-2", "10-10") < 0);
	assert_true(admin_stream_id_cmp("10-0", "10") == 0);
	assert_true(admin_stream_id_cmp("11-0", "10-99") > 0);
}

static void test_key_parse(void **state)
{
	char block[129], what[16];

	(void)state;
	assert_true(admin_key_parse("sharded:{u1}:ops", block, sizeof(block), what, sizeof(what)));
	assert_string_equal(block, "u1");
	assert_string_equal(what, "ops");
	assert_true(admin_key_parse("sharded:{a}:b}:dead", block, sizeof(block), what, sizeof(what)));
	assert_string_equal(block, "a}:b");
	assert_string_equal(what, "dead");
	assert_false(admin_key_parse("sharded:{}:ops", block, sizeof(block), what, sizeof(what)));
	assert_false(admin_key_parse("sharded:{u1}:", block, sizeof(block), what, sizeof(what)));
	assert_false(admin_key_parse("sharded:u1:ops", block, sizeof(block), what, sizeof(what)));
	assert_false(admin_key_parse("other:{u1}:ops", block, sizeof(block), what, sizeof(what)));
	assert_false(admin_key_parse("sharded:{u1}:ops", block, 2, what, sizeof(what)));
}

static void test_pick(void **state)
{
	struct admin_dead list[3] = { { .id = "1-0" }, { .id = "2-0" }, { .id = "3-5" } };
	const char *ids[] = { "3-5", "1-0" }, *bad[] = { "1-0", "4-0" }, *missing;
	size_t *idx, n;

	(void)state;
	/* stream order, whatever the order of the ids */
	assert_true(admin_pick(list, 3, ids, 2, &idx, &n, &missing));
	assert_int_equal(n, 2);
	assert_int_equal(idx[0], 0);
	assert_int_equal(idx[1], 2);
	free(idx);
	assert_false(admin_pick(list, 3, bad, 2, &idx, &n, &missing));
	assert_string_equal(missing, "4-0");
	assert_null(idx);
}

static void test_status(void **state)
{
	char dir[64], path[128], err[256];
	struct admin_status *st;
	struct store *s;
	int64_t seq;
	size_t n;
	FILE *f;

	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/sharded-test-admin-XXXXXX");
	assert_non_null(mkdtemp(dir));

	/* two blocks, one with a pending write and bookkeeping; a stray file */
	snprintf(path, sizeof(path), "%s/b.sqlite", dir);
	assert_int_equal(store_open(path, true, false, &s), SH_OK);
	assert_int_equal(store_write(s, "User", "1", "{\"id\":1}", &seq), SH_OK);
	assert_int_equal(store_meta_set(s, "applied_total", "7"), SH_OK);
	assert_int_equal(store_meta_set(s, "dead_total", "2"), SH_OK);
	assert_int_equal(store_meta_set(s, "last_sync_ns", "1700000000000000000"), SH_OK);
	store_close(s);
	snprintf(path, sizeof(path), "%s/a.sqlite", dir);
	assert_int_equal(store_open(path, true, false, &s), SH_OK);
	store_close(s);
	snprintf(path, sizeof(path), "%s/notes.txt", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fclose(f);

	assert_int_equal(admin_status(dir, NULL, &st, &n, err, sizeof(err)), SH_OK);
	assert_int_equal(n, 2);
	assert_string_equal(st[0].block, "a");
	assert_int_equal(st[0].pending, 0);
	assert_int_equal(st[0].lag_ms, 0);
	assert_int_equal(st[0].last_sync_ns, 0);
	assert_string_equal(st[1].block, "b");
	assert_int_equal(st[1].pending, 1);
	assert_int_equal(st[1].records, 1);
	assert_int_equal(st[1].applied, 7);
	assert_int_equal(st[1].dead, 2);
	assert_int_equal(st[1].last_sync_ns, 1700000000000000000LL);
	assert_true(st[1].lag_ms >= 0);
	admin_status_free(st, n);

	assert_int_equal(admin_status(dir, "b", &st, &n, err, sizeof(err)), SH_OK);
	assert_int_equal(n, 1);
	assert_int_equal(st[0].pending, 1);
	admin_status_free(st, n);

	assert_int_equal(admin_status(dir, "zz", &st, &n, err, sizeof(err)), SH_ENOENT);
	assert_non_null(strstr(err, "'zz'"));
	assert_int_equal(admin_status(dir, "../b", &st, &n, err, sizeof(err)), SH_EINVAL);
	assert_int_equal(admin_status("/nonexistent-sharded-dir", NULL, &st, &n, err, sizeof(err)),
			 SH_ENOENT);
	assert_non_null(strstr(err, "'/nonexistent-sharded-dir'"));

	tmpdir_remove(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stream_ids),
		cmocka_unit_test(test_key_parse),
		cmocka_unit_test(test_pick),
		cmocka_unit_test(test_status),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
