/* test_origin.c - the origin a block file's writes go out under (op.h,
 * store.h): one per process that opened the file, a new one whenever the
 * file is not as this process left it (another writer, a restore from a
 * backup under a parked store, a fork), and the legacy origin for the
 * outbox of a file from before origins. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <ftw.h>
#include <sqlite3.h>

#include "op.h"
#include "store.h"
#include "outbox_util.h"
#include "tmpdir.h"

struct fixture {
	char dir[64], path[96];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/sharded-test-origin-XXXXXX");
	if (!mkdtemp(f->dir)) {
		free(f);
		return -1;
	}
	snprintf(f->path, sizeof(f->path), "%s/b.sqlite", f->dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	tmpdir_remove(f->dir);
	free(f);
	return 0;
}

static struct store *open_store(const char *path)
{
	struct store *st = NULL;

	assert_int_equal(store_open(path, true, false, &st), SH_OK);
	return st;
}

static int64_t put(struct store *st, const char *pk)
{
	int64_t seq = 0;

	assert_int_equal(store_write(st, "User", pk, "{\"id\":1}", &seq), SH_OK);
	return seq;
}

/* The outbox, as the relay reads it; op_free_array when done. */
static struct op *outbox(struct store *st, size_t *n)
{
	struct op *ops = NULL;

	assert_int_equal(store_outbox_to_relay(st, INT64_MAX, INT64_MAX, 100, &ops, n), SH_OK);
	return ops;
}

static int64_t meta_int(struct store *st, const char *key)
{
	char *v = NULL;
	int64_t n;

	assert_int_equal(store_meta_get(st, key, &v), SH_OK);
	n = strtoll(v, NULL, 10);
	free(v);
	return n;
}

static void copy_file(const char *from, const char *to)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd), "cp '%s' '%s' && rm -f '%s-wal' '%s-shm'", from, to, to, to);
	assert_int_equal(system(cmd), 0);
}

static void test_one_origin_per_open(void **state)
{
	struct fixture *f = *state;
	struct store *st = open_store(f->path);
	int64_t base = meta_int(st, "last_seq"), s1 = put(st, "1"), s2 = put(st, "2"), s3;
	struct op *ops;
	size_t n;
	char first[OP_ORIGIN_MAX];

	assert_int_equal(s1, base + 1);
	assert_int_equal(s2, base + 2);
	ops = outbox(st, &n);
	assert_int_equal(n, 2);
	assert_true(op_origin_valid(ops[0].origin));
	assert_int_equal(strlen(ops[0].origin), 32);
	assert_string_equal(ops[0].origin, ops[1].origin);
	assert_int_equal(ops[0].base, base);
	assert_int_equal(ops[1].base, base);
	assert_string_equal(ops[0].after, "");	/* nothing was pending before it */
	snprintf(first, sizeof(first), "%s", ops[0].origin);
	op_free_array(ops, n);
	store_close(st);

	/* opened again from disk: a new origin, after the last pending write */
	st = open_store(f->path);
	s3 = put(st, "3");
	assert_int_equal(s3, s2 + 1);
	put(st, "3b");
	ops = outbox(st, &n);
	assert_int_equal(n, 4);
	assert_string_not_equal(ops[2].origin, first);
	assert_true(strcmp(ops[2].origin, first) > 0);	/* later origins sort later */
	assert_int_equal(ops[2].base, s2);
	assert_string_equal(ops[2].after, first);
	assert_int_equal(ops[2].after_seq, s2);
	/* only the origin's first write says what it follows */
	assert_string_equal(ops[3].origin, ops[2].origin);
	assert_int_equal(ops[3].base, s2);
	assert_string_equal(ops[3].after, "");
	op_free_array(ops, n);

	/* everything applied: the next origin follows nothing */
	assert_int_equal(origin_applied(st, first, s2), SH_OK);
	ops = outbox(st, &n);
	assert_int_equal(n, 2);
	s3 = ops[1].seq;
	assert_int_equal(origin_applied(st, ops[0].origin, s3), SH_OK);
	op_free_array(ops, n);
	store_close(st);
	st = open_store(f->path);
	put(st, "4");
	ops = outbox(st, &n);
	assert_int_equal(n, 1);
	assert_string_equal(ops[0].after, "");
	assert_int_equal(ops[0].base, s3);
	op_free_array(ops, n);
	store_close(st);
}

static void test_another_writer_means_a_new_origin(void **state)
{
	struct fixture *f = *state;
	struct store *daemon = open_store(f->path), *tool = open_store(f->path);
	int64_t s1 = put(daemon, "1"), s2 = put(daemon, "2"), s3 = put(tool, "3"), s4 = put(daemon, "4");
	struct op *ops;
	size_t n;

	assert_int_equal(s4, s1 + 3);
	(void)s2, (void)s3;
	ops = outbox(daemon, &n);
	assert_int_equal(n, 4);
	assert_string_equal(ops[0].origin, ops[1].origin);
	assert_string_not_equal(ops[2].origin, ops[1].origin);
	/* the daemon does not go on with its first origin: its seqs would no
	 * longer be contiguous (s3 is the tool's) */
	assert_string_not_equal(ops[3].origin, ops[0].origin);
	assert_string_not_equal(ops[3].origin, ops[2].origin);
	assert_int_equal(ops[2].base, s2);
	assert_string_equal(ops[2].after, ops[1].origin);
	assert_int_equal(ops[3].base, s3);
	assert_string_equal(ops[3].after, ops[2].origin);
	assert_int_equal(ops[3].after_seq, s3);
	op_free_array(ops, n);
	store_close(tool);
	store_close(daemon);
}

static void test_restore_under_a_parked_store(void **state)
{
	struct fixture *f = *state;
	struct store *st = open_store(f->path);
	char backup[128], kept[OP_ORIGIN_MAX];
	int64_t s1 = put(st, "1"), s2, s3, s4;
	struct op *ops;
	size_t n;

	snprintf(backup, sizeof(backup), "%s/backup.sqlite", f->dir);
	store_park(st, true);	/* its connection closed: the file is whole */
	copy_file(f->path, backup);
	s2 = put(st, "2");	/* unparked: the file is as it left it, same origin */
	s3 = put(st, "3");
	ops = outbox(st, &n);
	assert_int_equal(n, 3);
	assert_string_equal(ops[2].origin, ops[0].origin);
	snprintf(kept, sizeof(kept), "%s", ops[0].origin);
	op_free_array(ops, n);
	(void)s2;

	store_park(st, true);
	copy_file(backup, f->path);	/* restored: the file forgets s2 and s3 */
	s4 = put(st, "4");
	assert_int_equal(s4, s1 + 1);	/* counted again... */
	ops = outbox(st, &n);
	assert_int_equal(n, 2);
	assert_string_equal(ops[0].origin, kept);
	assert_string_not_equal(ops[1].origin, kept);	/* ...under another name */
	assert_int_equal(ops[1].base, s1);
	assert_string_equal(ops[1].after, kept);
	assert_int_equal(ops[1].after_seq, s1);
	op_free_array(ops, n);
	assert_true(s3 > s1);
	store_close(st);
}

static void test_fork_means_a_new_origin(void **state)
{
	struct fixture *f = *state;
	struct store *st = open_store(f->path);
	struct op *ops;
	size_t n;

	put(st, "1");
	store_park(st, false);	/* what blockset_reopen does in the child */
	put(st, "2");
	ops = outbox(st, &n);
	assert_int_equal(n, 2);
	assert_string_not_equal(ops[1].origin, ops[0].origin);
	op_free_array(ops, n);
	store_close(st);
}

static void test_old_file_is_migrated(void **state)
{
	struct fixture *f = *state;
	sqlite3 *db;
	struct store *st;
	struct op *ops;
	size_t n;

	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db,
		"PRAGMA journal_mode=WAL;"
		"CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;"
		"CREATE TABLE records(model TEXT NOT NULL, pk TEXT NOT NULL, doc TEXT NOT NULL,"
		" mtime_ns INTEGER NOT NULL, PRIMARY KEY(model, pk)) WITHOUT ROWID;"
		"CREATE TABLE outbox(seq INTEGER PRIMARY KEY, op TEXT NOT NULL, model TEXT NOT NULL,"
		" pk TEXT NOT NULL, doc TEXT, mtime_ns INTEGER NOT NULL,"
		" relayed_ns INTEGER NOT NULL DEFAULT 0);"
		"INSERT INTO meta VALUES ('base_seq', '1000'), ('last_seq', '1003');"
		"INSERT INTO outbox(seq, op, model, pk, doc, mtime_ns) VALUES"
		" (1002, 'U', 'User', '1', '{}', 1), (1003, 'D', 'User', '2', NULL, 1);",
		NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);

	st = open_store(f->path);
	assert_int_equal(put(st, "3"), 1004);
	ops = outbox(st, &n);
	assert_int_equal(n, 3);
	for (size_t i = 0; i < 2; i++) {
		assert_string_equal(ops[i].origin, OP_ORIGIN_LEGACY);
		assert_int_equal(ops[i].base, 1000);
		assert_string_equal(ops[i].after, "");
	}
	assert_string_not_equal(ops[2].origin, OP_ORIGIN_LEGACY);
	assert_int_equal(ops[2].base, 1003);
	assert_string_equal(ops[2].after, OP_ORIGIN_LEGACY);
	assert_int_equal(ops[2].after_seq, 1003);
	op_free_array(ops, n);
	store_close(st);
	st = open_store(f->path);	/* a second open migrates nothing twice */
	ops = outbox(st, &n);
	assert_int_equal(n, 3);
	op_free_array(ops, n);
	store_close(st);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_one_origin_per_open, setup, teardown),
		cmocka_unit_test_setup_teardown(test_another_writer_means_a_new_origin, setup, teardown),
		cmocka_unit_test_setup_teardown(test_restore_under_a_parked_store, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fork_means_a_new_origin, setup, teardown),
		cmocka_unit_test_setup_teardown(test_old_file_is_migrated, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
