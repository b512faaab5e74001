/* test_clientdef.c - Prisma's client-side defaults: their formats (clientdef.h)
 * and doc_prepare filling them in on a create, and @updatedAt on every write. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "catalog.h"
#include "clientdef.h"
#include "catalog_file.h"
#include "doc.h"

static void matches(const char *value, const char *pattern)
{
	regex_t re;

	assert_int_equal(0, regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB));
	if (regexec(&re, value, 0, NULL, 0) != 0)
		fail_msg("\"%s\" does not match %s", value, pattern);
	regfree(&re);
}

static void make(const char *spec, const char *typname, char *out)
{
	struct column c = { .name = "c", .typname = (char *)typname, .client_default = (char *)spec };
	int64_t min, max;

	c.kind = col_kind_from_typname(typname, &min, &max);
	/* 2024-02-29 12:34:56.789 UTC */
	if (clientdef_make(&c, INT64_C(1709210096789000000), out, CLIENTDEF_VALUE_MAX))
		fail_msg("%s on %s: refused", spec, typname);
}

static void test_valid(void **state)
{
	static const char *const good[] = { "cuid", "cuid(2)", "uuid", "uuid(4)", "uuid(7)",
		"nanoid", "nanoid(2)", "nanoid(255)", "ulid", "now", "updatedAt" };
	static const char *const bad[] = { "", "cuid(1)", "cuid()", "uuid(5)", "nanoid(1)",
		"nanoid(256)", "nanoid(08)", "nanoid(3", "now()", "autoincrement", "Now",
		"cuid(2)x" };

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		if (!clientdef_valid(good[i]))
			fail_msg("\"%s\" refused", good[i]);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (clientdef_valid(bad[i]))
			fail_msg("\"%s\" accepted", bad[i]);
	assert_false(clientdef_valid(NULL));
	assert_true(clientdef_on_update("updatedAt"));
	assert_false(clientdef_on_update("now"));
}

static void test_formats(void **state)
{
	char a[CLIENTDEF_VALUE_MAX], b[CLIENTDEF_VALUE_MAX];

	(void)state;
	make("cuid", "text", a);
	matches(a, "^c[0-9a-z]{24}$");
	/* the time part: 1709210096789 ms in base 36 */
	assert_memory_equal("clt77k785", a, 9);
	make("cuid", "text", b);
	assert_string_not_equal(a, b);
	assert_memory_equal(a, b, 9);		/* same millisecond */
	assert_memory_not_equal(a + 9, b + 9, 4);	/* the counter moved */
	make("cuid(2)", "text", a);
	matches(a, "^[a-z][0-9a-z]{23}$");
	make("uuid", "uuid", a);
	matches(a, "^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$");
	make("uuid", "uuid", b);
	assert_string_not_equal(a, b);
	make("uuid(7)", "uuid", a);
	matches(a, "^018df4dc-5495-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$");
	make("nanoid", "text", a);
	matches(a, "^[A-Za-z0-9_-]{21}$");
	make("nanoid(8)", "text", a);
	matches(a, "^[A-Za-z0-9_-]{8}$");
	make("nanoid(255)", "text", a);
	assert_int_equal(255, strlen(a));
	make("ulid", "text", a);
	matches(a, "^01HQTDRN4N[0-9A-HJKMNP-TV-Z]{16}$");
	make("now", "timestamp", a);
	assert_string_equal("2024-02-29T12:34:56.789", a);
	make("now", "timestamptz", a);
	assert_string_equal("2024-02-29T12:34:56.789+00:00", a);
	make("updatedAt", "date", a);
	assert_string_equal("2024-02-29", a);
	make("now", "time", a);
	assert_string_equal("12:34:56.789", a);
	make("now", "timetz", a);
	assert_string_equal("12:34:56.789+00:00", a);
	make("now", "text", a);
	assert_string_equal("2024-02-29T12:34:56.789Z", a);
	{
		struct column c = { .name = "n", .typname = "int4", .kind = COL_INT,
				    .client_default = "now" };

		assert_int_equal(SH_EINVAL, clientdef_make(&c, 0, a, sizeof(a)));
	}
}

static struct catalog *prisma_like(void)
{
	struct catalog *cat = catalog_new("public");
	struct model *m = catalog_add_model(cat, "User");

	assert_int_equal(0, model_add_column(m, "id", "text", "text", true, false, true));
	assert_int_equal(0, model_add_column(m, "c", "text", "text", true, false, false));
	assert_int_equal(0, model_add_column(m, "u", "uuid", "uuid", true, false, false));
	assert_int_equal(0, model_add_column(m, "n", "text", "text", true, false, false));
	assert_int_equal(0, model_add_column(m, "created", "timestamp(3) without time zone",
					     "timestamp", true, false, false));
	assert_int_equal(0, model_add_column(m, "updated", "timestamp(3) with time zone",
					     "timestamptz", true, false, false));
	assert_int_equal(0, model_add_column(m, "name", "text", "text", false, false, false));
	assert_int_equal(0, model_set_client_default(m, "id", "cuid"));
	assert_int_equal(0, model_set_client_default(m, "c", "cuid"));
	assert_int_equal(0, model_set_client_default(m, "u", "uuid"));
	assert_int_equal(0, model_set_client_default(m, "n", "nanoid"));
	assert_int_equal(0, model_set_client_default(m, "created", "now"));
	assert_int_equal(0, model_set_client_default(m, "updated", "updatedAt"));
	assert_int_equal(-1, model_set_client_default(m, "nope", "now"));
	return cat;
}

static char *prepare(const struct model *m, const char *body, const char *existing)
{
	char why[256] = "", *doc = NULL;

	if (doc_prepare(m, "k1", body, strlen(body), 65536, existing, &doc, why, sizeof(why)))
		fail_msg("refused %s: %s", body, why);
	return doc;
}

static const char *field(json_object *o, const char *key)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v))
		fail_msg("no \"%s\" in %s", key, json_object_to_json_string(o));
	return json_object_get_string(v);
}

static void test_fill(void **state)
{
	struct catalog *cat = prisma_like();
	const struct model *m = &cat->models[0];
	char *doc, *again, *kept;
	json_object *o, *o2, *o3;

	(void)state;
	/* a create without them: every one filled in, the key from the file name */
	doc = prepare(m, "{\"name\":\"Ann\"}", NULL);
	assert_non_null(o = json_tokener_parse(doc));
	assert_string_equal("k1", field(o, "id"));
	matches(field(o, "c"), "^c[0-9a-z]{24}$");
	matches(field(o, "u"), "^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$");
	matches(field(o, "n"), "^[A-Za-z0-9_-]{21}$");
	matches(field(o, "created"), "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}$");
	matches(field(o, "updated"), "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}\\+00:00$");
	assert_string_equal("Ann", field(o, "name"));

	/* values given are kept */
	kept = prepare(m, "{\"c\":\"mine\",\"created\":\"2001-02-03T04:05:06\","
		       "\"updated\":\"2001-02-03T04:05:06Z\"}", NULL);
	assert_non_null(o3 = json_tokener_parse(kept));
	assert_string_equal("mine", field(o3, "c"));
	assert_string_equal("2001-02-03T04:05:06", field(o3, "created"));
	assert_string_equal("2001-02-03T04:05:06Z", field(o3, "updated"));
	json_object_put(o3);
	free(kept);

	/* an update: the create-time ones stay, @updatedAt moves; a body that carries
	 * it as stored (sed -i of another column) moves it too */
	{
		char stored[1024];

		/* make the stored @updatedAt old, so that a new one differs */
		json_object_object_add(o, "updated", json_object_new_string("2000-01-01T00:00:00.000+00:00"));
		snprintf(stored, sizeof(stored), "%s", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
		again = prepare(m, "{\"name\":\"Bob\"}", stored);
		assert_non_null(o2 = json_tokener_parse(again));
		assert_string_equal(field(o, "c"), field(o2, "c"));
		assert_string_equal(field(o, "u"), field(o2, "u"));
		assert_string_equal(field(o, "n"), field(o2, "n"));
		assert_string_equal(field(o, "created"), field(o2, "created"));
		assert_string_not_equal("2000-01-01T00:00:00.000+00:00", field(o2, "updated"));
		assert_string_equal("Bob", field(o2, "name"));
		json_object_put(o2);
		free(again);

		again = prepare(m, stored, stored);	/* the whole document, as read */
		assert_non_null(o2 = json_tokener_parse(again));
		assert_string_not_equal("2000-01-01T00:00:00.000+00:00", field(o2, "updated"));
		json_object_put(o2);
		free(again);

		/* a new value given for it is the writer's */
		again = prepare(m, "{\"updated\":\"2010-01-01T00:00:00Z\"}", stored);
		assert_non_null(o2 = json_tokener_parse(again));
		assert_string_equal("2010-01-01T00:00:00Z", field(o2, "updated"));
		json_object_put(o2);
		free(again);
	}
	json_object_put(o);
	free(doc);
	catalog_free(cat);
}

/* The catalog file carries client_default and refuses one it does not know. */
static void test_catalog_file(void **state)
{
	struct catalog *cat = prisma_like(), *back = NULL;
	char *text = NULL, err[512];
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	(void)state;
	assert_int_equal(SH_OK, catalog_write(cat, f, err, sizeof(err)));
	fclose(f);
	assert_non_null(strstr(text, "\"client_default\": \"updatedAt\""));
	assert_null(strstr(text, "\"client_default\": null"));
	if (catalog_parse(text, len, "t.json", &back, err, sizeof(err)) != SH_OK)
		fail_msg("%s", err);
	assert_string_equal("nanoid", model_column(&back->models[0], "n")->client_default);
	assert_null(model_column(&back->models[0], "name")->client_default);
	catalog_free(back);
	{
		char *p = strstr(text, "\"nanoid\"");

		memcpy(p, "\"nanoix\"", 8);
		assert_int_equal(SH_EINVAL, catalog_parse(text, len, "t.json", &back, err,
							  sizeof(err)));
		assert_non_null(strstr(err, "column \"n\": \"client_default\" must be one of"));
	}
	free(text);
	catalog_free(cat);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid),
		cmocka_unit_test(test_formats),
		cmocka_unit_test(test_fill),
		cmocka_unit_test(test_catalog_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
