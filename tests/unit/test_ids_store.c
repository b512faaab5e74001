/* test_ids_store.c - what the block file keeps for new ids (store.h):
 * - a write of a record the block did not hold goes out as a create ('C'),
 *   of one it held (read through, or written before) as an upsert ('U'), and
 *   a write that takes back a deletion still held back stays an upsert;
 * - ids reserved from a sequence hand out lowest first, each once, counted,
 *   and are remembered once handed out (what ids=strict admits).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "store.h"

static char dir[64], path[96];

static int setup(void **state)
{
	struct store *st;

	snprintf(dir, sizeof(dir), "/tmp/sharded-test-ids-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	snprintf(path, sizeof(path), "%s/b.sqlite", dir);
	if (store_open(path, true, false, &st) != SH_OK)
		return -1;
	*state = st;
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	store_close(*state);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static enum sh_err put_doc(void *ctx, const char *existing, char **doc, char **sent)
{
	(void)existing;
	(void)sent;
	*doc = strdup(ctx);
	return *doc ? SH_OK : SH_ENOMEM;
}

/* The kinds of the outbox, in seq order, as a string ("CUD"...). */
static void kinds(struct store *st, char *out, size_t outlen)
{
	struct op *ops = NULL;
	size_t n = 0, k = 0;

	assert_int_equal(store_outbox_to_relay(st, INT64_MAX, INT64_MAX, 64, &ops, &n), SH_OK);
	for (size_t i = 0; i < n && k + 1 < outlen; i++)
		out[k++] = ops[i].kind;
	out[k] = '\0';
	op_free_array(ops, n);
}

static void test_create_only_when_not_held(void **state)
{
	struct store *st = *state;
	char got[16];
	int64_t seq;

	assert_int_equal(store_cache(st, "Ticket", "1", "{\"id\":1}"), SH_OK);
	assert_int_equal(store_write_merged(st, "Ticket", "1", put_doc, "{\"id\":1,\"t\":\"a\"}", &seq),
			 SH_OK);	/* read through: an update */
	assert_int_equal(store_write_merged(st, "Ticket", "2", put_doc, "{\"id\":2}", &seq),
			 SH_OK);	/* not held: a create */
	assert_int_equal(store_write_merged(st, "Ticket", "2", put_doc, "{\"id\":2,\"t\":\"b\"}", &seq),
			 SH_OK);	/* held now */
	assert_int_equal(store_write(st, "Ticket", "1", NULL, &seq), SH_OK);
	assert_int_equal(store_write_merged(st, "Ticket", "1", put_doc, "{\"id\":1}", &seq),
			 SH_OK);	/* takes the held-back deletion back: an update */
	kinds(st, got, sizeof(got));
	/* the deletion became 'U' (revoked), then the new write */
	assert_string_equal(got, "UCUUU");
}

static void test_ids_hand_out_lowest_once(void **state)
{
	struct store *st = *state;
	const int64_t ids[] = { 12, 10, 11 };
	int64_t id = 0, left = -1;

	assert_int_equal(store_ids_take(st, "Ticket", &id, &left), SH_ENOENT);
	assert_int_equal(store_ids_add(st, "Ticket", ids, 3), SH_OK);
	assert_int_equal(store_ids_add(st, "Ticket", ids, 1), SH_OK);	/* again: no double */
	assert_false(store_ids_handed(st, "Ticket", 10));
	assert_int_equal(store_ids_take(st, "Ticket", &id, &left), SH_OK);
	assert_int_equal(id, 10);
	assert_int_equal(left, 2);
	assert_true(store_ids_handed(st, "Ticket", 10));
	assert_false(store_ids_handed(st, "Note", 10));
	assert_int_equal(store_ids_take(st, "Ticket", &id, &left), SH_OK);
	assert_int_equal(id, 11);
	assert_int_equal(store_ids_take(st, "Ticket", &id, &left), SH_OK);
	assert_int_equal(id, 12);
	assert_int_equal(left, 0);
	assert_int_equal(store_ids_take(st, "Ticket", &id, &left), SH_ENOENT);
	assert_int_equal(store_ids_take(st, "Note", &id, &left), SH_ENOENT);
}

/* A handed id is "unstored" until a record with its key is stored: a write, a
 * read-through's copy or a load; another model's key changes nothing. A
 * reopen ends it: a power loss may have taken the record's store back after
 * PostgreSQL got its row. */
static void test_ids_unstored_until_stored(void **state)
{
	struct store *st = *state;
	const int64_t ids[] = { 20, 21, 22 };
	int64_t id = 0, left = 0, seq = 0;

	assert_int_equal(store_ids_add(st, "Ticket", ids, 3), SH_OK);
	assert_false(store_ids_unstored(st, "Ticket", 20));	/* not handed out yet */
	for (int i = 0; i < 3; i++)
		assert_int_equal(store_ids_take(st, "Ticket", &id, &left), SH_OK);
	assert_true(store_ids_unstored(st, "Ticket", 20));
	assert_true(store_ids_unstored(st, "Ticket", 21));
	assert_int_equal(store_write(st, "Note", "20", "{\"id\":20}", &seq), SH_OK);
	assert_true(store_ids_unstored(st, "Ticket", 20));	/* another model's key */
	assert_int_equal(store_write(st, "Ticket", "20", "{\"id\":20}", &seq), SH_OK);
	assert_false(store_ids_unstored(st, "Ticket", 20));
	assert_true(store_ids_handed(st, "Ticket", 20));	/* ids=strict still knows it */
	assert_int_equal(store_cache(st, "Ticket", "21", "{\"id\":21}"), SH_OK);
	assert_false(store_ids_unstored(st, "Ticket", 21));
	/* deleted again: it was stored, PostgreSQL may have its row */
	assert_int_equal(store_write(st, "Ticket", "20", NULL, &seq), SH_OK);
	assert_false(store_ids_unstored(st, "Ticket", 20));
	store_close(st);
	assert_int_equal(store_open(path, false, false, &st), SH_OK);
	*state = st;
	assert_false(store_ids_unstored(st, "Ticket", 22));
	assert_true(store_ids_handed(st, "Ticket", 22));	/* ids=strict still knows it */
	assert_false(store_ids_unstored(st, "Ticket", 21));
}

/* .next-id takes a lease of ids in one commit and hands them out from memory:
 * the rest of a lease is not handed (ids=strict refuses it, its lookup reads
 * through) until taken, and after a reopen (a restart, kill -9 or power loss:
 * the file cannot say which of them went out) none of the lease is handed
 * again, and all count as handed. */
static void test_ids_lease_never_twice(void **state)
{
	struct store *st = *state;
	int64_t ids[200], id = 0, left = 0;

	for (int i = 0; i < 200; i++)
		ids[i] = 1000 + i;
	assert_int_equal(store_ids_add(st, "Ticket", ids, 200), SH_OK);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(store_ids_take(st, "Ticket", &id, &left), SH_OK);
		assert_int_equal(id, 1000 + i);
		assert_int_equal(left, 200 - 1 - i);
	}
	assert_true(store_ids_handed(st, "Ticket", 1002));
	assert_true(store_ids_unstored(st, "Ticket", 1002));
	assert_false(store_ids_handed(st, "Ticket", 1003));	/* leased, not handed out */
	assert_false(store_ids_unstored(st, "Ticket", 1003));
	store_close(st);	/* as kill -9: nothing but the file is left */
	assert_int_equal(store_open(path, false, false, &st), SH_OK);
	*state = st;
	assert_true(store_ids_handed(st, "Ticket", 1003));	/* may have gone out */
	assert_int_equal(store_ids_take(st, "Ticket", &id, &left), SH_OK);
	assert_true(id > 1003);	/* never the rest of the old lease */
	assert_false(store_ids_handed(st, "Ticket", id + 1));
	for (int i = 1003; i < id; i++)
		assert_true(store_ids_handed(st, "Ticket", i));
	/* each lease is marked in the file before it hands out: run it dry */
	while (store_ids_take(st, "Ticket", &id, &left) == SH_OK)
		;
	assert_int_equal(id, 1199);
	assert_int_equal(left, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_create_only_when_not_held, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ids_hand_out_lowest_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ids_unstored_until_stored, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ids_lease_never_twice, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
