/* test_blocks.c - block ids and the block set: create, get, snapshot, remove, reopen. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blocks.h"

#include "outbox_util.h"
#include "tmpdir.h"

/* *state: a malloc'd temp dir path, removed with everything in it afterwards. */
static int setup(void **state)
{
	char *dir = strdup("/tmp/sharded-test-blocks-XXXXXX");

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

	tmpdir_remove(dir);
	free(dir);
	return 0;
}

static void id_ok(const char *id)
{
	char why[256] = "";

	if (block_id_check(id, why, sizeof(why)) != SH_OK)
		fail_msg("block id '%s' should be accepted: %s", id, why);
}

static void id_bad(const char *id, enum sh_err expect)
{
	char why[256] = "";
	enum sh_err err = block_id_check(id, why, sizeof(why));

	if (err != expect || !why[0])
		fail_msg("block id '%s': expected %d with a reason, got %d '%s'", id, expect, err, why);
}

static void test_block_id_check(void **state)
{
	char id[200], ctl[8];

	(void)state;
	id_ok("user-1");
	id_ok("a");
	id_ok("A_b.c-9");
	id_ok("a..b");
	id_ok("caf\xc3\xa9");
	id_ok("\xe2\x82\xac-\xf0\x9f\x98\x80");	/* 3- and 4-byte forms */
	id_ok("\xef\xbf\xbd\xf4\x8f\xbf\xbf");	/* U+FFFD, U+10FFFF */
	/* not UTF-8: PostgreSQL refuses such a text value (22021) */
	id_bad("0bad\xff", SH_EINVAL);
	id_bad("bad\x80", SH_EINVAL);		/* a lone continuation byte */
	id_bad("bad\xc3", SH_EINVAL);		/* cut short */
	id_bad("bad\xc3x", SH_EINVAL);
	id_bad("bad\xc0\xaf", SH_EINVAL);	/* overlong '/' */
	id_bad("bad\xe0\x80\xaf", SH_EINVAL);	/* overlong, 3 bytes */
	id_bad("bad\xed\xa0\x80", SH_EINVAL);	/* a surrogate */
	id_bad("bad\xf4\x90\x80\x80", SH_EINVAL);	/* above U+10FFFF */
	id_bad("bad\xf8\x88\x80\x80\x80", SH_EINVAL);	/* 5-byte form */
	id_bad("x\xc2\x85", SH_EINVAL);		/* U+0085, a C1 control character */
	id_bad("x\xc2\x9f", SH_EINVAL);
	id_bad("", SH_EINVAL);
	id_bad(".", SH_EINVAL);
	id_bad("..", SH_EINVAL);
	id_bad(".hidden", SH_EINVAL);
	id_bad("a/b", SH_EINVAL);
	id_bad("/", SH_EINVAL);
	id_bad("a/", SH_EINVAL);
	id_bad("a\x01" "b", SH_EINVAL);
	id_bad("a\x7f", SH_EINVAL);
	for (int c = 1; c < 0x20; c++) {
		snprintf(ctl, sizeof(ctl), "x%c", c);
		id_bad(ctl, SH_EINVAL);
	}
	memset(id, 'a', BLOCK_ID_MAX);
	id[BLOCK_ID_MAX] = '\0';
	id_ok(id);
	id[BLOCK_ID_MAX] = 'a';
	id[BLOCK_ID_MAX + 1] = '\0';
	id_bad(id, SH_ENAMETOOLONG);
}

static bool exists(const char *dir, const char *name)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return access(path, F_OK) == 0;
}

/* Number of entries in dir whose name starts with prefix. */
static int count_prefixed(const char *dir, const char *prefix)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)))
		if (strncmp(de->d_name, prefix, strlen(prefix)) == 0)
			n++;
	closedir(d);
	return n;
}

static void test_blockset_lifecycle(void **state)
{
	char data[256];
	struct blockset *bs;
	struct block *a, *b, *c, *got, **snap;
	bool retired;
	size_t n;
	int64_t seq;
	char *doc;

	snprintf(data, sizeof(data), "%s/data", (char *)*state);	/* created by blockset_open */
	assert_int_equal(blockset_open(data, false, &bs), SH_OK);
	assert_non_null(bs);
	assert_int_equal(blockset_count(bs), 0);
	assert_int_equal(blockset_snapshot(bs, &snap, &n), SH_OK);
	assert_int_equal(n, 0);
	free(snap);
	assert_int_equal(blockset_get(bs, "nope", &got), SH_ENOENT);

	assert_int_equal(blockset_create(bs, "b", &b), SH_OK);
	assert_int_equal(blockset_create(bs, "c", &c), SH_OK);
	assert_int_equal(blockset_create(bs, "a", &a), SH_OK);
	assert_string_equal(a->id, "a");
	assert_non_null(a->store);
	assert_false(atomic_load(&a->removed));
	assert_true(exists(data, "a.sqlite"));
	assert_true(exists(data, "b.sqlite"));
	assert_int_equal(blockset_count(bs), 3);
	got = NULL;
	assert_int_equal(blockset_create(bs, "a", &got), SH_EEXIST);
	assert_null(got);
	assert_int_equal(blockset_count(bs), 3);

	assert_int_equal(blockset_get(bs, "b", &got), SH_OK);
	assert_ptr_equal(got, b);
	block_put(got);
	assert_int_equal(blockset_get(bs, "bb", &got), SH_ENOENT);

	assert_int_equal(blockset_snapshot(bs, &snap, &n), SH_OK);
	assert_int_equal(n, 3);
	assert_string_equal(snap[0]->id, "a");
	assert_string_equal(snap[1]->id, "b");
	assert_string_equal(snap[2]->id, "c");
	for (size_t i = 0; i < n; i++)
		block_put(snap[i]);
	free(snap);

	/* a block with pending writes retires: hidden, its file kept, its id busy */
	assert_int_equal(store_write(a->store, "User", "1", "{\"id\":1}", &seq), SH_OK);
	assert_int_equal(store_write(b->store, "User", "9", "{\"id\":9}", &seq), SH_OK);
	assert_int_equal(outbox_applied(b->store, seq), SH_OK);	/* b keeps a synced record */
	assert_int_equal(store_write(a->store, "User", "2", NULL, &seq), SH_OK);
	assert_int_equal(blockset_remove(bs, "a", &retired), SH_OK);
	assert_true(retired);
	assert_true(atomic_load(&a->removed));
	assert_true(atomic_load(&a->retiring));
	assert_true(exists(data, "a.sqlite"));
	assert_int_equal(blockset_get(bs, "a", &got), SH_ENOENT);
	assert_int_equal(blockset_create(bs, "a", &got), SH_EBUSY);
	assert_int_equal(blockset_snapshot(bs, &snap, &n), SH_OK);	/* the sync still sees it */
	assert_int_equal(n, 3);
	assert_string_equal(snap[0]->id, "a");
	for (size_t i = 0; i < n; i++)
		block_put(snap[i]);
	free(snap);
	assert_int_equal(outbox_applied(a->store, seq - 1), SH_OK);
	assert_int_equal(blockset_remove(bs, "a", &retired), SH_OK);
	assert_true(retired);

	/* once everything is applied it goes, with its files */
	assert_int_equal(outbox_applied(a->store, seq), SH_OK);
	assert_int_equal(blockset_remove(bs, "a", &retired), SH_OK);
	assert_false(retired);
	assert_int_equal(blockset_count(bs), 2);
	assert_int_equal(blockset_get(bs, "a", &got), SH_ENOENT);
	assert_int_equal(blockset_remove(bs, "a", &retired), SH_ENOENT);
	assert_int_equal(blockset_remove(bs, "zz", &retired), SH_ENOENT);
	/* our reference stays usable until put */
	assert_true(atomic_load(&a->removed));
	assert_int_equal(store_get(a->store, "User", "1", &doc, NULL), SH_OK);
	free(doc);
	block_put(a);
	assert_int_equal(count_prefixed(data, "a.sqlite"), 0);

	/* the id is free again */
	assert_int_equal(blockset_create(bs, "a", &a), SH_OK);
	assert_int_equal(store_get(a->store, "User", "1", &doc, NULL), SH_ENOENT);
	block_put(a);
	assert_int_equal(blockset_remove(bs, "a", &retired), SH_OK);
	assert_false(retired);
	assert_int_equal(count_prefixed(data, "a.sqlite"), 0);

	block_put(b);
	block_put(c);
	blockset_close(bs);
	assert_true(exists(data, "b.sqlite"));
	assert_true(exists(data, "c.sqlite"));
}

static void test_blockset_reopen(void **state)
{
	char data[256], path[512];
	struct blockset *bs;
	struct block *b, **snap;
	bool retired;
	size_t n;
	int64_t seq;
	char *doc;
	int fd;

	snprintf(data, sizeof(data), "%s", (char *)*state);	/* exists already */
	assert_int_equal(blockset_open(data, true, &bs), SH_OK);
	assert_int_equal(blockset_create(bs, "user-2", &b), SH_OK);
	assert_int_equal(store_write(b->store, "User", "5", "{\"id\":5}", &seq), SH_OK);
	block_put(b);
	assert_int_equal(blockset_create(bs, "user-1", &b), SH_OK);
	block_put(b);
	blockset_close(bs);

	/* files that are not blocks are left alone */
	snprintf(path, sizeof(path), "%s/notes.txt", data);
	fd = open(path, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	close(fd);
	snprintf(path, sizeof(path), "%s/.hidden.sqlite", data);
	fd = open(path, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	close(fd);
	snprintf(path, sizeof(path), "%s/.sqlite", data);
	fd = open(path, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	close(fd);

	assert_int_equal(blockset_open(data, false, &bs), SH_OK);
	assert_int_equal(blockset_count(bs), 2);
	assert_int_equal(blockset_snapshot(bs, &snap, &n), SH_OK);
	assert_int_equal(n, 2);
	assert_string_equal(snap[0]->id, "user-1");
	assert_string_equal(snap[1]->id, "user-2");
	for (size_t i = 0; i < n; i++)
		block_put(snap[i]);
	free(snap);

	assert_int_equal(blockset_get(bs, "user-2", &b), SH_OK);
	assert_int_equal(store_get(b->store, "User", "5", &doc, NULL), SH_OK);
	assert_string_equal(doc, "{\"id\":5}");
	free(doc);
	assert_true(store_has_pending(b->store, "User", "5"));
	block_put(b);
	assert_int_equal(blockset_remove(bs, "user-2", &retired), SH_OK);
	assert_true(retired);
	assert_int_equal(blockset_create(bs, "user-1", &b), SH_EEXIST);
	blockset_close(bs);

	/* retiring survives a restart */
	assert_int_equal(blockset_open(data, false, &bs), SH_OK);
	assert_int_equal(blockset_get(bs, "user-2", &b), SH_ENOENT);
	assert_int_equal(blockset_create(bs, "user-2", &b), SH_EBUSY);
	assert_int_equal(blockset_count(bs), 2);
	blockset_close(bs);
	assert_true(exists(data, "notes.txt"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_block_id_check),
		cmocka_unit_test_setup_teardown(test_blockset_lifecycle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_blockset_reopen, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
