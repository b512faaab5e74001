/* test_merged_origin.c - consecutive writes of one process go out under one
 * origin (store.h), store_write_merged's as store_write's: a new origin per
 * write would leave a sharded_applied row per write and make a write that
 * PostgreSQL already applied (its origin's seq raised) look new. */
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

static enum sh_err put_doc(void *ctx, const char *existing, char **doc, char **sent)
{
	(void)sent;
	(void)existing;
	*doc = strdup(ctx);
	return *doc ? SH_OK : SH_ENOMEM;
}

static enum sh_err refuse(void *ctx, const char *existing, char **doc, char **sent)
{
	(void)sent;
	(void)ctx, (void)existing, (void)doc;
	return SH_EINVAL;
}

static char *origin_of(struct store *st)
{
	char *o = NULL;

	assert_int_equal(store_meta_get(st, "origin", &o), SH_OK);
	return o;
}

static void test_merged_writes_keep_their_origin(void **state)
{
	char dir[64], path[96], cmd[128], *first, *o;
	struct store *st;
	int64_t seq;

	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/sharded-test-origin-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/b.sqlite", dir);
	assert_int_equal(store_open(path, true, false, &st), SH_OK);
	assert_int_equal(store_write_merged(st, "User", "1", put_doc, "{\"id\":1}", &seq), SH_OK);
	first = origin_of(st);
	assert_int_equal(store_write_merged(st, "User", "1", put_doc, "{\"id\":1,\"a\":2}", &seq),
			 SH_OK);
	assert_int_equal(store_write_merged(st, "User", "2", refuse, NULL, &seq), SH_EINVAL);
	assert_int_equal(store_write(st, "User", "2", "{\"id\":2}", &seq), SH_OK);
	assert_int_equal(store_write_merged(st, "User", "1", put_doc, "{\"id\":1,\"a\":3}", &seq),
			 SH_OK);
	o = origin_of(st);
	assert_string_equal(o, first);
	free(o);
	free(first);
	store_close(st);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_merged_writes_keep_their_origin),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
