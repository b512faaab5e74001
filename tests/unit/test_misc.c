/* test_misc.c - sh_redact, sh_strerror, redis URL refusal, redis_key and catalog look-ups. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "error.h"
#include "log.h"
#include "redis.h"

/* ---- sh_redact ---- */

static void redacts(const char *in, const char *expect)
{
	char out[512];

	memset(out, 'Z', sizeof(out));
	sh_redact(in, out, sizeof(out));
	if (strstr(out, "secret"))
		fail_msg("sh_redact(\"%s\") leaks the password: \"%s\"", in, out);
	if (expect && strcmp(out, expect) != 0)
		fail_msg("sh_redact(\"%s\"): expected \"%s\", got \"%s\"", in, expect, out);
}

static void test_redact(void **state)
{
	(void)state;
	redacts("host=x password=secret user=u", "host=x password=*** user=u");
	redacts("password=secret", "password=***");
	redacts("host=x user=u password=secret", "host=x user=u password=***");
	redacts("postgresql://u:secret@h/db", "postgresql://u:***@h/db");
	redacts("postgres://u:secret@h:5432/db?sslmode=require",
		"postgres://u:***@h:5432/db?sslmode=require");
	redacts("postgresql://u@h/db?password=secret&sslmode=disable",
		"postgresql://u@h/db?password=***&sslmode=disable");
	redacts("redis://:secret@h:1/0", "redis://:***@h:1/0");
	redacts("redis://user:secret@h:6379", "redis://user:***@h:6379");
	/* nothing to hide: copied as is */
	redacts("host=x user=u dbname=d", "host=x user=u dbname=d");
	redacts("redis://h:6379/2", "redis://h:6379/2");
	redacts("postgresql://u@h/db", "postgresql://u@h/db");
	redacts("", "");
}

static void test_redact_edges(void **state)
{
	char out[16];

	(void)state;
	sh_redact(NULL, out, sizeof(out));
	assert_string_equal(out, "");
	/* a short buffer truncates, stays terminated, and still hides the password */
	sh_redact("host=x password=secret", out, sizeof(out));
	assert_true(strlen(out) < sizeof(out));
	assert_null(strstr(out, "secret"));
	assert_null(strstr(out, "sec"));
	sh_redact("redis://:secret@h", out, 12);
	assert_true(strlen(out) < 12);
	assert_null(strstr(out, "sec"));
	/* outlen 0 writes nothing */
	out[0] = 'Q';
	sh_redact("password=secret", out, 0);
	assert_int_equal(out[0], 'Q');
}

/* Fixed bug (core/log.c, sh_redact): libpq allows spaces around '=' and quoted
 * values; "password = secret" is copied unchanged and only the first word of
 * "password='se cret'" is hidden, so the password reaches the log. */
static void test_bug_redact_conninfo_forms(void **state)
{
	(void)state;
	redacts("host=x password = secret user=u", NULL);
	redacts("host=x password='my secret' user=u", NULL);
	redacts("host=x password='it\\'s secret' user=u", NULL);
}

/* ---- sh_strerror ---- */

static void test_strerror(void **state)
{
	const char *unknown = sh_strerror(SH_ERR_COUNT);

	(void)state;
	assert_non_null(unknown);
	assert_true(unknown[0] != '\0');
	for (int e = SH_OK; e < SH_ERR_COUNT; e++) {
		const char *s = sh_strerror((enum sh_err)e);

		assert_non_null(s);
		if (!s[0] || strcmp(s, unknown) == 0)
			fail_msg("sh_strerror(%d) has no description", e);
		for (int o = SH_OK; o < e; o++)
			if (strcmp(s, sh_strerror((enum sh_err)o)) == 0)
				fail_msg("sh_strerror(%d) and (%d) are both \"%s\"", o, e, s);
	}
	assert_non_null(sh_strerror((enum sh_err)-1));
	assert_non_null(sh_strerror((enum sh_err)1000));
	assert_string_equal(sh_strerror((enum sh_err)1000), unknown);
}

/* ---- redis ---- */

static void bad_url(const char *url)
{
	char err[256] = "";
	redisContext *c = (redisContext *)1;
	enum sh_err rc = redis_open(url, 100, &c, err, sizeof(err));

	if (rc != SH_EINVAL)
		fail_msg("redis_open(\"%s\"): expected SH_EINVAL, got %d (%s)", url, rc, err);
	if (c)
		fail_msg("redis_open(\"%s\"): context set on failure", url);
	if (!err[0])
		fail_msg("redis_open(\"%s\"): no reason given", url);
	if (strstr(err, "secret"))
		fail_msg("redis_open(\"%s\"): reason leaks the password: %s", url, err);
}

/* Only malformed URLs: each must be refused before any connection attempt. */
static void test_redis_bad_urls(void **state)
{
	(void)state;
	bad_url("http://x");
	bad_url("rediss://h");
	bad_url("redis:/h");
	bad_url("h:6379");
	bad_url("redis://h:99999");
	bad_url("redis://h:65536");
	bad_url("redis://h:0");
	bad_url("redis://h:-1");
	bad_url("redis://h:");
	bad_url("redis://h:abc");
	bad_url("redis://h:6379x");
	bad_url("redis://h:6379/x");
	bad_url("redis://h:6379/-1");
	bad_url("redis://h:6379/1x");
	bad_url("redis://:secret@h:99999");
	bad_url("redis://:secret@h:6379/db");
}

static void test_redis_key(void **state)
{
	char buf[REDIS_KEY_MAX];

	(void)state;
	redis_key(buf, sizeof(buf), "user-1", "ops");
	assert_string_equal(buf, "sharded:{user-1}:ops");
	redis_key(buf, sizeof(buf), "b", "dead");
	assert_string_equal(buf, "sharded:{b}:dead");
	redis_key(buf, 10, "user-1", "ops");
	assert_string_equal(buf, "sharded:{");
}

/* ---- catalog ---- */

static void test_col_kind_from_typname(void **state)
{
	static const struct {
		const char *typname;
		enum col_kind kind;
		int64_t min, max;
	} cases[] = {
		{ "bool", COL_BOOL, 0, 0 },
		{ "int2", COL_INT, INT16_MIN, INT16_MAX },
		{ "int4", COL_INT, INT32_MIN, INT32_MAX },
		{ "int8", COL_INT, INT64_MIN, INT64_MAX },
		{ "float4", COL_FLOAT, 0, 0 },
		{ "float8", COL_FLOAT, 0, 0 },
		{ "numeric", COL_NUMERIC, 0, 0 },
		{ "text", COL_TEXT, 0, 0 },
		{ "varchar", COL_TEXT, 0, 0 },
		{ "bpchar", COL_TEXT, 0, 0 },
		{ "citext", COL_TEXT, 0, 0 },
		{ "json", COL_JSON, 0, 0 },
		{ "jsonb", COL_JSON, 0, 0 },
		{ "uuid", COL_UUID, 0, 0 },
		{ "timestamp", COL_TIMESTAMP, 0, 0 },
		{ "timestamptz", COL_TIMESTAMP, 0, 0 },
		{ "date", COL_DATE, 0, 0 },
		{ "time", COL_TIME, 0, 0 },
		{ "timetz", COL_TIME, 0, 0 },
		{ "_text", COL_ARRAY, 0, 0 },
		{ "_int4", COL_ARRAY, 0, 0 },
		{ "_jsonb", COL_ARRAY, 0, 0 },
		{ "bytea", COL_BYTEA, 0, 0 },
		{ "inet", COL_INET, 0, 0 },
		{ "tsvector", COL_TSVECTOR, 0, 0 },
		{ "int4range", COL_RANGE, 0, 0 },
		{ "record", COL_JSON, 0, 0 },	/* a composite column (pg.c) */
		{ "my_enum", COL_OTHER, 0, 0 },
		{ "INT8", COL_OTHER, 0, 0 },	/* typnames are lowercase */
		{ "", COL_OTHER, 0, 0 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int64_t min = 123, max = 456;
		enum col_kind k = col_kind_from_typname(cases[i].typname, &min, &max);

		if (k != cases[i].kind || min != cases[i].min || max != cases[i].max)
			fail_msg("col_kind_from_typname(\"%s\") = %d [%lld, %lld], expected %d",
				 cases[i].typname, k, (long long)min, (long long)max, cases[i].kind);
	}
}

static void test_catalog(void **state)
{
	struct catalog *cat = catalog_new("app");
	const struct model *u, *e;
	const struct column *c;
	struct model *m;

	(void)state;
	assert_non_null(cat);
	assert_string_equal(cat->schema, "app");
	assert_null(catalog_find(cat, "User"));
	assert_null(catalog_find(NULL, "User"));

	m = catalog_add_model(cat, "User");
	assert_non_null(m);
	assert_int_equal(model_add_column(m, "id", "bigint", "int8", true, true, true), 0);
	assert_int_equal(model_add_column(m, "email", "character varying(200)", "varchar", true,
					  false, false), 0);
	assert_int_equal(model_add_column(m, "tags", "text[]", "_text", false, false, false), 0);
	m = catalog_add_model(cat, "Event");
	assert_non_null(m);
	assert_int_equal(model_add_column(m, "kind", "text", "text", true, false, false), 0);
	assert_int_equal(model_add_column(m, "id", "uuid", "uuid", true, true, true), 0);
	/* many models: earlier ones move, look-ups still find them */
	for (int i = 0; i < 40; i++) {
		char name[16];

		snprintf(name, sizeof(name), "M%d", i);
		m = catalog_add_model(cat, name);
		assert_non_null(m);
		assert_int_equal(model_add_column(m, "id", "integer", "int4", true, true, true), 0);
	}
	assert_int_equal(cat->nmodels, 42);

	u = catalog_find(cat, "User");
	e = catalog_find(cat, "Event");
	assert_non_null(u);
	assert_non_null(e);
	assert_string_equal(u->name, "User");
	assert_null(catalog_find(cat, "user"));	/* names are case-sensitive */
	assert_null(catalog_find(cat, "Nope"));
	assert_non_null(catalog_find(cat, "M39"));
	assert_int_equal(catalog_find(cat, "M7")->cols[0].max, INT32_MAX);

	assert_int_equal(u->ncols, 3);
	assert_int_equal(u->key[0], 0);
	assert_string_equal(model_key_col(u, 0)->name, "id");
	assert_int_equal(model_key_col(u, 0)->kind, COL_INT);
	assert_int_equal(e->key[0], 1);
	assert_string_equal(model_key_col(e, 0)->name, "id");
	assert_int_equal(model_key_col(e, 0)->kind, COL_UUID);

	c = model_column(u, "email");
	assert_non_null(c);
	assert_string_equal(c->type, "character varying(200)");
	assert_int_equal(c->kind, COL_TEXT);
	assert_true(c->not_null);
	assert_false(c->has_default);
	c = model_column(u, "tags");
	assert_non_null(c);
	assert_int_equal(c->kind, COL_ARRAY);
	assert_false(c->not_null);
	c = model_column(u, "id");
	assert_true(c->has_default);
	assert_int_equal(c->min, INT64_MIN);
	assert_int_equal(c->max, INT64_MAX);
	assert_null(model_column(u, "kind"));
	assert_null(model_column(u, "Email"));
	assert_non_null(model_column(e, "kind"));

	catalog_free(cat);
	catalog_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_redact),
		cmocka_unit_test(test_redact_edges),
		cmocka_unit_test(test_bug_redact_conninfo_forms),
		cmocka_unit_test(test_strerror),
		cmocka_unit_test(test_redis_bad_urls),
		cmocka_unit_test(test_redis_key),
		cmocka_unit_test(test_col_kind_from_typname),
		cmocka_unit_test(test_catalog),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
