/* test_doc.c - doc_prepare, doc_check_pk and doc_get_text against a catalog built by hand. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "doc.h"

#define UUID_LOWER "550e8400-e29b-41d4-a716-446655440000"
#define UUID_UPPER "550E8400-E29B-41D4-A716-446655440000"

static struct catalog *cat;

/* User: int8 key; Event: uuid key; Tag: text key. Models are added one after
 * the other (catalog_add_model may move earlier models) and looked up by name. */
static int build_catalog(void **state)
{
	struct model *m;

	(void)state;
	cat = catalog_new("public");
	if (!cat)
		return -1;

	m = catalog_add_model(cat, "User");
	if (!m ||
	    model_add_column(m, "id", "bigint", "int8", true, true, true) ||
	    model_add_column(m, "email", "text", "text", true, false, false) ||
	    model_add_column(m, "name", "text", "text", false, false, false) ||
	    model_add_column(m, "active", "boolean", "bool", true, true, false) ||
	    model_add_column(m, "total", "numeric(12,2)", "numeric", false, false, false) ||
	    model_add_column(m, "settings", "jsonb", "jsonb", false, false, false) ||
	    model_add_column(m, "created_at", "timestamp with time zone", "timestamptz", true, true,
			     false) ||
	    model_add_column(m, "birthday", "date", "date", false, false, false) ||
	    model_add_column(m, "logins", "integer", "int4", false, false, false) ||
	    model_add_column(m, "ratio", "double precision", "float8", false, false, false) ||
	    model_add_column(m, "tags", "text[]", "_text", false, false, false) ||
	    model_add_column(m, "referrer_id", "bigint", "int8", false, false, false))
		return -1;

	m = catalog_add_model(cat, "Event");
	if (!m ||
	    model_add_column(m, "id", "uuid", "uuid", true, true, true) ||
	    model_add_column(m, "user_id", "bigint", "int8", true, false, false) ||
	    model_add_column(m, "at", "timestamp with time zone", "timestamptz", true, false, false) ||
	    model_add_column(m, "parent_id", "uuid", "uuid", false, false, false) ||
	    model_add_column(m, "payload", "jsonb", "jsonb", false, false, false))
		return -1;

	m = catalog_add_model(cat, "Tag");
	if (!m || model_add_column(m, "name", "text", "text", true, false, true) ||
	    model_add_column(m, "color", "text", "text", false, false, false))
		return -1;
	return 0;
}

static int free_catalog(void **state)
{
	(void)state;
	catalog_free(cat);
	cat = NULL;
	return 0;
}

static const struct model *M(const char *name)
{
	const struct model *m = catalog_find(cat, name);

	assert_non_null(m);
	return m;
}

/* doc_prepare with the default cap. */
static enum sh_err prep(const char *model, const char *pk, const char *body, const char *existing,
			char **out, char *why, size_t whylen)
{
	why[0] = '\0';
	return doc_prepare(M(model), pk, body, strlen(body), DOC_MAX_DEFAULT, existing, out, why,
			   whylen);
}

#define refused_ex(model, pk, body, existing)                                                 \
	do {                                                                                   \
		char why_[256], *out_ = (char *)1;                                            \
		enum sh_err err_ = prep(model, pk, body, existing, &out_, why_, sizeof(why_)); \
		if (err_ != SH_EINVAL || out_ != NULL || why_[0] == '\0') {                    \
			const char *set_ = out_ ? "set" : "NULL";                              \
			if (out_ != (char *)1)                                                 \
				free(out_);                                                    \
			fail_msg("expected refusal of %s '%s' body <%s>: err %d, out %s, why '%s'", \
				 model, pk, body, err_, set_, why_);                           \
		}                                                                              \
	} while (0)
#define refused(model, pk, body) refused_ex(model, pk, body, NULL)

/* Accepted: returns the canonical document (caller frees). */
static char *accepted_ex(const char *model, const char *pk, const char *body, const char *existing)
{
	char why[256], *out = NULL;
	enum sh_err err = prep(model, pk, body, existing, &out, why, sizeof(why));

	if (err != SH_OK || !out)
		fail_msg("expected acceptance of %s '%s' body <%s>: err %d why '%s'", model, pk, body,
			 err, why);
	return out;
}

static char *accepted(const char *model, const char *pk, const char *body)
{
	return accepted_ex(model, pk, body, NULL);
}

static void accept_and_free(const char *model, const char *pk, const char *body)
{
	free(accepted(model, pk, body));
}

static void assert_text(const char *doc, const char *key, const char *expect)
{
	char *v = doc_get_text(doc, key);

	if (!expect) {
		if (v)
			fail_msg("key %s of %s: expected absent/null, got '%s'", key, doc, v);
		return;
	}
	if (!v || strcmp(v, expect) != 0)
		fail_msg("key %s of %s: expected '%s', got '%s'", key, doc, expect, v ? v : "NULL");
	free(v);
}

/* ---- inserts and updates ---- */

static void test_insert_adds_pk(void **state)
{
	char *out;

	(void)state;
	out = accepted("User", "42", "{\"email\":\"a@b.c\"}");
	assert_string_equal(out, "{\"id\":42,\"email\":\"a@b.c\"}");
	assert_text(out, "id", "42");
	assert_text(out, "email", "a@b.c");
	free(out);

	/* the key in the body, when it matches the file name */
	out = accepted("User", "42", "{\"id\":42,\"email\":\"a@b.c\"}");
	assert_text(out, "id", "42");
	free(out);

	/* negative and extreme keys */
	out = accepted("User", "-7", "{\"email\":\"x\"}");
	assert_text(out, "id", "-7");
	free(out);
	out = accepted("User", "9223372036854775807", "{\"email\":\"x\"}");
	assert_text(out, "id", "9223372036854775807");
	free(out);
	out = accepted("User", "-9223372036854775808",
		       "{\"id\":-9223372036854775808,\"email\":\"x\"}");
	assert_text(out, "id", "-9223372036854775808");
	free(out);

	/* uuid and text keys are added as strings */
	out = accepted("Event", UUID_LOWER, "{\"user_id\":1,\"at\":\"2026-01-01T00:00:00Z\"}");
	assert_text(out, "id", UUID_LOWER);
	assert_non_null(strstr(out, "\"id\":\"" UUID_LOWER "\""));
	free(out);
}

static void test_insert_text_key(void **state)
{
	char *out;

	(void)state;
	out = accepted("Tag", "hello world", "{\"color\":\"red\"}");
	assert_string_equal(out, "{\"name\":\"hello world\",\"color\":\"red\"}");
	free(out);
	out = accepted("Tag", "x", "{}");
	assert_string_equal(out, "{\"name\":\"x\"}");
	free(out);
	refused("Tag", "x", "{\"name\":\"y\"}");
	refused("Tag", "x", "{\"name\":null}");
}

static void test_whitespace_around_body(void **state)
{
	char *out;

	(void)state;
	out = accepted("User", "1", "  \n{ \"email\" : \"a\" }\n\n ");
	assert_text(out, "email", "a");
	free(out);
}

static void test_update_merges(void **state)
{
	const char *existing = "{\"id\":5,\"email\":\"old@x\",\"name\":\"Old\",\"active\":true,"
			       "\"settings\":{\"k\":[1,2]}}";
	char *out;

	(void)state;
	out = accepted_ex("User", "5", "{\"name\":\"New\"}", existing);
	assert_text(out, "id", "5");
	assert_text(out, "email", "old@x");
	assert_text(out, "name", "New");
	assert_text(out, "active", "true");
	assert_non_null(strstr(out, "\"settings\":{\"k\":[1,2]}"));
	free(out);

	/* null clears a nullable column on update, keeps the key */
	out = accepted_ex("User", "5", "{\"name\":null}", existing);
	assert_non_null(strstr(out, "\"name\":null"));
	assert_text(out, "name", NULL);
	assert_text(out, "email", "old@x");
	free(out);

	/* an update need not carry required columns... */
	out = accepted_ex("User", "5", "{}", existing);
	assert_text(out, "email", "old@x");
	free(out);
	out = accepted_ex("User", "5", "{\"total\":3}", existing);
	assert_text(out, "total", "3");
	free(out);
	/* ...but the same body is refused as an insert */
	refused("User", "5", "{\"total\":3}");
	refused("User", "5", "{}");

	/* an update still checks every value it carries */
	refused_ex("User", "5", "{\"email\":null}", existing);
	refused_ex("User", "5", "{\"active\":\"yes\"}", existing);
	refused_ex("User", "5", "{\"bogus\":1}", existing);
	refused_ex("User", "5", "{\"id\":6}", existing);
	refused_ex("User", "5", "not json", existing);
	refused_ex("User", "abc", "{}", existing);

	/* a stored document that is not an object is replaced by key + body */
	out = accepted_ex("User", "5", "{\"name\":\"N\"}", "[1,2]");
	assert_text(out, "id", "5");
	assert_text(out, "name", "N");
	free(out);
}

/* ---- refusals ---- */

static void test_refuse_not_an_object(void **state)
{
	(void)state;
	refused("User", "1", "");
	refused("User", "1", "   ");
	refused("User", "1", "not json");
	refused("User", "1", "{email: \"a\"}");
	refused("User", "1", "{'email': 'a'}");
	refused("User", "1", "{\"email\":\"a\"");	/* truncated */
	refused("User", "1", "{\"email\":");
	refused("User", "1", "{\"email\":\"a");
	refused("User", "1", "{");
	refused("User", "1", "[{\"email\":\"a\"}]");	/* array */
	refused("User", "1", "[]");
	refused("User", "1", "\"a string\"");
	refused("User", "1", "42");
	refused("User", "1", "true");
	refused("User", "1", "null");
	refused("User", "1", "{\"email\":\"a\"} x");	/* trailing garbage */
	refused("User", "1", "{\"email\":\"a\"}{}");
	refused("User", "1", "{\"email\":\"a\"},");
	refused("User", "1", "{\"email\":\"a\",}");	/* trailing comma */
	refused("User", "1", "{\"email\":\"a\"}\n}");
}

static void test_refuse_invalid_utf8(void **state)
{
	(void)state;
	refused("User", "1", "{\"email\":\"\xff\xfe\"}");
	refused("User", "1", "{\"email\":\"a\xc3\"}");		/* truncated sequence */
	refused("User", "1", "{\"email\":\"a\",\"n\xe9me\":1}");	/* latin-1 in a key */
	free(accepted("User", "1", "{\"email\":\"caf\xc3\xa9 \xe2\x82\xac\"}"));
}

static void test_refuse_embedded_nul(void **state)
{
	static const char body[] = "{\"email\":\"a\"}\0{\"x\":1}";
	char why[128], *out = (char *)1;

	(void)state;
	assert_int_equal(doc_prepare(M("User"), "1", body, sizeof(body) - 1, DOC_MAX_DEFAULT, NULL,
				     &out, why, sizeof(why)),
			 SH_EINVAL);
	assert_null(out);
	assert_true(why[0] != '\0');
}

static void test_refuse_unknown_key(void **state)
{
	(void)state;
	refused("User", "1", "{\"email\":\"a\",\"nope\":1}");
	refused("User", "1", "{\"email\":\"a\",\"Email\":\"b\"}");	/* case matters */
	refused("User", "1", "{\"email\":\"a\",\"\":1}");
}

static void test_refuse_wrong_types(void **state)
{
	(void)state;
	/* int8 */
	refused("User", "1", "{\"email\":\"a\",\"referrer_id\":\"5\"}");
	refused("User", "1", "{\"email\":\"a\",\"referrer_id\":1.5}");
	refused("User", "1", "{\"email\":\"a\",\"referrer_id\":1.0}");
	refused("User", "1", "{\"email\":\"a\",\"referrer_id\":1e3}");
	refused("User", "1", "{\"email\":\"a\",\"referrer_id\":true}");
	refused("User", "1", "{\"email\":\"a\",\"referrer_id\":[1]}");
	refused("User", "1", "{\"email\":\"a\",\"referrer_id\":9223372036854775808}");
	refused("User", "1", "{\"email\":\"a\",\"referrer_id\":18446744073709551615}");
	refused("User", "1", "{\"email\":\"a\",\"referrer_id\":99999999999999999999999}");
	/* int4 */
	refused("User", "1", "{\"email\":\"a\",\"logins\":2147483648}");
	refused("User", "1", "{\"email\":\"a\",\"logins\":-2147483649}");
	refused("User", "1", "{\"email\":\"a\",\"logins\":9223372036854775807}");
	/* text */
	refused("User", "1", "{\"email\":{}}");
	refused("User", "1", "{\"email\":{\"a\":1}}");
	refused("User", "1", "{\"email\":[\"a\"]}");
	refused("User", "1", "{\"email\":5}");
	refused("User", "1", "{\"email\":true}");
	/* bool */
	refused("User", "1", "{\"email\":\"a\",\"active\":1}");
	refused("User", "1", "{\"email\":\"a\",\"active\":\"true\"}");
	/* numeric */
	refused("User", "1", "{\"email\":\"a\",\"total\":\"abc\"}");
	refused("User", "1", "{\"email\":\"a\",\"total\":\"\"}");
	refused("User", "1", "{\"email\":\"a\",\"total\":\" 1\"}");
	refused("User", "1", "{\"email\":\"a\",\"total\":\"1 \"}");
	refused("User", "1", "{\"email\":\"a\",\"total\":\"1.2.3\"}");
	refused("User", "1", "{\"email\":\"a\",\"total\":true}");
	refused("User", "1", "{\"email\":\"a\",\"total\":{}}");
	refused("User", "1", "{\"email\":\"a\",\"total\":[1]}");
	/* float8: NaN and infinities, strings */
	refused("User", "1", "{\"email\":\"a\",\"ratio\":NaN}");
	refused("User", "1", "{\"email\":\"a\",\"ratio\":1e400}");
	refused("User", "1", "{\"email\":\"a\",\"ratio\":-1e400}");
	refused("User", "1", "{\"email\":\"a\",\"ratio\":Infinity}");
	refused("User", "1", "{\"email\":\"a\",\"ratio\":\"1.5\"}");
	refused("User", "1", "{\"email\":\"a\",\"ratio\":false}");
	/* NaN and Infinity are not JSON, nested either (json-c parses them) */
	refused("User", "1", "{\"email\":\"a\",\"tags\":[NaN,\"b\"]}");
	refused("User", "1", "{\"email\":\"a\",\"settings\":{\"x\":[1,{\"y\":Infinity}]}}");
	refused("User", "1", "{\"email\":\"a\",\"settings\":{\"x\":-Infinity}}");
	/* arrays */
	refused("User", "1", "{\"email\":\"a\",\"tags\":5}");
	refused("User", "1", "{\"email\":\"a\",\"tags\":{}}");
}

static void test_refuse_null_and_required(void **state)
{
	(void)state;
	refused("User", "1", "{\"email\":null}");
	refused("User", "1", "{\"email\":\"a\",\"active\":null}");
	refused("User", "1", "{\"email\":\"a\",\"created_at\":null}");	/* default does not allow null */
	refused("User", "1", "{\"email\":\"a\",\"id\":null}");
	/* missing required column on insert */
	refused("User", "1", "{}");
	refused("User", "1", "{\"name\":\"x\"}");
	refused("Event", UUID_LOWER, "{\"user_id\":1}");
	refused("Event", UUID_LOWER, "{\"at\":\"2026-01-01\"}");
	/* columns with a default, and the key, are not required */
	accept_and_free("User", "1", "{\"email\":\"a\"}");
}

static void test_refuse_pk_mismatch(void **state)
{
	(void)state;
	refused("User", "1", "{\"id\":2,\"email\":\"a\"}");
	refused("User", "1", "{\"id\":-1,\"email\":\"a\"}");
	refused("User", "1", "{\"id\":\"1\",\"email\":\"a\"}");	/* string form, even when equal */
	refused("User", "1", "{\"id\":\"2\",\"email\":\"a\"}");
	refused("User", "1", "{\"id\":1.0,\"email\":\"a\"}");
	refused("User", "1", "{\"id\":true,\"email\":\"a\"}");
	refused("Event", UUID_LOWER,
		"{\"id\":\"650e8400-e29b-41d4-a716-446655440000\",\"user_id\":1,\"at\":\"2026-01-01\"}");
	refused("Event", UUID_LOWER, "{\"id\":5,\"user_id\":1,\"at\":\"2026-01-01\"}");
	refused("Tag", "red", "{\"name\":\"Red\"}");
	refused("Tag", "red", "{\"name\":\"red \"}");
}

static void test_refuse_uuid(void **state)
{
	const char *tail = ",\"user_id\":1,\"at\":\"2026-01-01\"}";
	const char *bad[] = {
		"not-a-uuid",
		"550e8400-e29b-41d4-a716-44665544000",		/* short */
		"550e8400-e29b-41d4-a716-4466554400000",	/* long */
		"550e8400e29b-41d4-a716-446655440000-",		/* dash misplaced */
		"g50e8400-e29b-41d4-a716-446655440000",		/* not hex */
		"{550e8400-e29b-41d4-a716-446655440000}",
		"",
	};
	char body[256];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(body, sizeof(body), "{\"parent_id\":\"%s\"%s", bad[i], tail);
		refused("Event", UUID_LOWER, body);
	}
	snprintf(body, sizeof(body), "{\"parent_id\":5%s", tail);
	refused("Event", UUID_LOWER, body);
	/* malformed uuid as the file name */
	refused("Event", "not-a-uuid", "{\"user_id\":1,\"at\":\"2026-01-01\"}");
	refused("Event", "550e8400-e29b-41d4-a716", "{\"user_id\":1,\"at\":\"2026-01-01\"}");
}

static void test_refuse_timestamps_and_dates(void **state)
{
	const char *bad_ts[] = {
		"2026-13-01", "2026-00-10", "2026-01-32", "2026-01-00", "yesterday", "now", "",
		"2026-1-01", "26-01-01", "2026/01/01", "2026-01-01X10:00",
		"2026-01-01T25:00:00", "2026-01-01T10:60:00", "2026-01-01T10:00:61",
		"2026-01-01T10", "2026-01-01T10:00:00.", "2026-01-01T10:00:00+2",
		"2026-01-01T10:00:00+02:0", "2026-01-01T10:00:00 UTC", "2026-01-01T10:00:00ZZ",
		"2026-01-01T", "2026-01-01 ",
	};
	const char *bad_date[] = {
		"2026-13-01", "2026-01-32", "2026-00-01", "yesterday", "2026-1-1", "01/02/2026",
		"2026-01-01T00:00:00", "2026-01-01 ", "20260101", "",
	};
	char body[256];

	(void)state;
	for (size_t i = 0; i < sizeof(bad_ts) / sizeof(bad_ts[0]); i++) {
		snprintf(body, sizeof(body), "{\"email\":\"a\",\"created_at\":\"%s\"}", bad_ts[i]);
		refused("User", "1", body);
	}
	refused("User", "1", "{\"email\":\"a\",\"created_at\":1767225600}");
	for (size_t i = 0; i < sizeof(bad_date) / sizeof(bad_date[0]); i++) {
		snprintf(body, sizeof(body), "{\"email\":\"a\",\"birthday\":\"%s\"}", bad_date[i]);
		refused("User", "1", body);
	}
	refused("User", "1", "{\"email\":\"a\",\"birthday\":20260101}");
}

static void test_refuse_bad_file_name(void **state)
{
	(void)state;
	refused("User", "abc", "{\"email\":\"a\"}");
	refused("User", "01", "{\"email\":\"a\"}");
	refused("User", "", "{\"email\":\"a\"}");
}

/* ---- acceptance ---- */

static void test_accept_numeric(void **state)
{
	char *out;

	(void)state;
	/* a number keeps its exact text */
	out = accepted("User", "1", "{\"email\":\"a\",\"total\":12.50}");
	assert_non_null(strstr(out, "\"total\":12.50"));
	assert_text(out, "total", "12.50");
	free(out);
	out = accepted("User", "1", "{\"email\":\"a\",\"total\":0.1000000000000000000001}");
	assert_non_null(strstr(out, "\"total\":0.1000000000000000000001"));
	free(out);
	/* a decimal string stays a string, exactly */
	out = accepted("User", "1", "{\"email\":\"a\",\"total\":\"12.50\"}");
	assert_non_null(strstr(out, "\"total\":\"12.50\""));
	assert_text(out, "total", "12.50");
	free(out);
	out = accepted("User", "1",
		       "{\"email\":\"a\",\"total\":\"1234567890.000000001\"}");
	assert_text(out, "total", "1234567890.000000001");
	free(out);
	/* an integer beyond 64 bits keeps its text; written with "e0", it stays
	 * a real number (the fuzzer found it turned into an integer) */
	out = accepted("User", "1", "{\"email\":\"a\",\"settings\":"
		       "[18446744073709551616,18446744073709551616e0,-99999999999999999999e0]}");
	assert_non_null(strstr(out, "[18446744073709551616,18446744073709551616E0,"
				    "-99999999999999999999E0]"));
	free(out);
	accept_and_free("User", "1", "{\"email\":\"a\",\"total\":-3}");
	accept_and_free("User", "1", "{\"email\":\"a\",\"total\":0}");
	accept_and_free("User", "1", "{\"email\":\"a\",\"total\":-1.5e3}");
	accept_and_free("User", "1", "{\"email\":\"a\",\"total\":\"-1.5e3\"}");
	accept_and_free("User", "1", "{\"email\":\"a\",\"total\":\"NaN\"}");
	accept_and_free("User", "1", "{\"email\":\"a\",\"total\":null}");
}

static void test_accept_numbers(void **state)
{
	char *out;

	(void)state;
	out = accepted("User", "1", "{\"email\":\"a\",\"logins\":2147483647,\"referrer_id\":"
				    "9223372036854775807}");
	assert_text(out, "logins", "2147483647");
	assert_text(out, "referrer_id", "9223372036854775807");
	free(out);
	out = accepted("User", "1", "{\"email\":\"a\",\"logins\":-2147483648,\"referrer_id\":"
				    "-9223372036854775808}");
	assert_text(out, "logins", "-2147483648");
	assert_text(out, "referrer_id", "-9223372036854775808");
	free(out);
	accept_and_free("User", "1", "{\"email\":\"a\",\"ratio\":1.5}");
	accept_and_free("User", "1", "{\"email\":\"a\",\"ratio\":1}");
	accept_and_free("User", "1", "{\"email\":\"a\",\"ratio\":-2e10}");
	accept_and_free("User", "1", "{\"email\":\"a\",\"ratio\":1e308}");
	accept_and_free("User", "1", "{\"email\":\"a\",\"active\":false}");
	accept_and_free("User", "1", "{\"email\":\"a\",\"active\":true}");
}

static void test_accept_jsonb(void **state)
{
	char *out;

	(void)state;
	out = accepted("User", "1", "{\"email\":\"a\",\"settings\":{\"a\":{\"b\":[1,2,{\"c\":null}],"
				    "\"d\":\"x\"},\"e\":[],\"f\":{},\"g\":1.50}}");
	assert_non_null(strstr(out, "\"settings\":{\"a\":{\"b\":[1,2,{\"c\":null}],\"d\":\"x\"},"
				    "\"e\":[],\"f\":{},\"g\":1.50}"));
	free(out);
	out = accepted("User", "1", "{\"email\":\"a\",\"settings\":[1,\"two\",[3],{\"four\":4}]}");
	assert_non_null(strstr(out, "\"settings\":[1,\"two\",[3],{\"four\":4}]"));
	free(out);
	accept_and_free("User", "1", "{\"email\":\"a\",\"settings\":\"str\"}");
	accept_and_free("User", "1", "{\"email\":\"a\",\"settings\":42}");
	accept_and_free("User", "1", "{\"email\":\"a\",\"settings\":true}");
	accept_and_free("User", "1", "{\"email\":\"a\",\"settings\":null}");
	/* slashes are not escaped in the canonical text */
	out = accepted("User", "1", "{\"email\":\"a/b\",\"settings\":{\"url\":\"http://x/y\"}}");
	assert_non_null(strstr(out, "\"email\":\"a/b\""));
	assert_non_null(strstr(out, "http://x/y"));
	free(out);
}

static void test_accept_nulls_and_arrays(void **state)
{
	char *out;

	(void)state;
	out = accepted("User", "1", "{\"email\":\"a\",\"name\":null,\"total\":null,\"settings\":null,"
				    "\"birthday\":null,\"logins\":null,\"ratio\":null,\"tags\":null,"
				    "\"referrer_id\":null}");
	assert_non_null(strstr(out, "\"name\":null"));
	assert_text(out, "name", NULL);
	free(out);
	out = accepted("User", "1", "{\"email\":\"a\",\"tags\":[\"x\",\"y\"]}");
	assert_non_null(strstr(out, "\"tags\":[\"x\",\"y\"]"));
	free(out);
	accept_and_free("User", "1", "{\"email\":\"a\",\"tags\":[]}");
	/* PostgreSQL would parse a literal, but never prints one: refused */
	refused("User", "1", "{\"email\":\"a\",\"tags\":\"{x,y}\"}");
}

static void test_accept_timestamps(void **state)
{
	const char *good[] = {
		"2026-03-01T10:00:00Z",
		"2026-03-01 10:00:00",
		"2026-03-01T10:00:00+02:00",
		"2026-03-01T10:00:00-05:30",
		"2026-03-01T10:00:00+0200",
		"2026-03-01T10:00:00+02",
		"2026-03-01T10:00:00.123456+02:00",
		"2026-03-01 10:00:00.5Z",
		"2026-03-01T10:00:00.1",
		"2026-03-01t10:00:00z",
		"2026-03-01 10:00:00 +02:00",
		"2026-03-01T10:00",
		"2026-03-01",
		"2026-12-31T23:59:59",
		"infinity",
		"-infinity",
	};
	char body[256], *out;

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		snprintf(body, sizeof(body), "{\"email\":\"a\",\"created_at\":\"%s\"}", good[i]);
		out = accepted("User", "1", body);
		assert_text(out, "created_at", good[i]);
		free(out);
	}
	out = accepted("User", "1", "{\"email\":\"a\",\"birthday\":\"2000-02-29\"}");
	assert_text(out, "birthday", "2000-02-29");
	free(out);
	accept_and_free("User", "1", "{\"email\":\"a\",\"birthday\":\"1970-01-01\"}");
}

static void test_accept_uuid_case(void **state)
{
	const char *tail = "\"user_id\":1,\"at\":\"2026-01-01T00:00:00Z\"}";
	char body[256], *out;

	(void)state;
	/* the file name is the canonical spelling; the body may spell it any way */
	snprintf(body, sizeof(body), "{\"id\":\"%s\",%s", UUID_UPPER, tail);
	free(accepted("Event", UUID_LOWER, body));
	snprintf(body, sizeof(body), "{\"id\":\"550e8400e29b41d4a716446655440000\",%s", tail);
	free(accepted("Event", UUID_LOWER, body));
	/* another spelling as a file name would be a second copy of the row */
	snprintf(body, sizeof(body), "{\"id\":\"%s\",%s", UUID_LOWER, tail);
	refused("Event", UUID_UPPER, body);
	/* uuid columns in either case, or without dashes */
	snprintf(body, sizeof(body), "{\"parent_id\":\"%s\",%s", UUID_UPPER, tail);
	out = accepted("Event", UUID_LOWER, body);
	assert_text(out, "parent_id", UUID_UPPER);
	free(out);
	snprintf(body, sizeof(body), "{\"parent_id\":\"%s\",%s", UUID_LOWER, tail);
	free(accepted("Event", UUID_LOWER, body));
	snprintf(body, sizeof(body), "{\"parent_id\":\"550e8400e29b41d4a716446655440000\",%s", tail);
	free(accepted("Event", UUID_LOWER, body));
	snprintf(body, sizeof(body), "{\"parent_id\":null,\"payload\":{\"k\":[true]},%s", tail);
	free(accepted("Event", UUID_LOWER, body));
}

/* ---- size cap ---- */

static void test_size_cap(void **state)
{
	const char *body = "{\"email\":\"a@b.c\"}";
	size_t len = strlen(body);
	char why[128], *out = (char *)1;

	(void)state;
	why[0] = '\0';
	assert_int_equal(doc_prepare(M("User"), "1", body, len, len - 1, NULL, &out, why, sizeof(why)),
			 SH_ETOOBIG);
	assert_null(out);
	assert_true(why[0] != '\0');

	/* the cap is checked before anything else */
	out = (char *)1;
	assert_int_equal(doc_prepare(M("User"), "abc", "not json at all", 15, 10, NULL, &out, why,
				     sizeof(why)),
			 SH_ETOOBIG);
	assert_null(out);

	/* exactly at the cap is fine */
	assert_int_equal(doc_prepare(M("User"), "1", body, len, len, NULL, &out, why, sizeof(why)),
			 SH_OK);
	assert_non_null(out);
	free(out);

	/* only len bytes are read: a valid prefix of a longer buffer */
	assert_int_equal(doc_prepare(M("User"), "1", "{\"email\":\"a\"}garbage", 13, 100, NULL, &out,
				     why, sizeof(why)),
			 SH_OK);
	assert_text(out, "email", "a");
	free(out);
}

/* ---- doc_check_pk ---- */

static void pk_refused(const char *model, const char *pk)
{
	char why[256];

	why[0] = '\0';
	if (doc_check_pk(M(model), pk, why, sizeof(why)) != SH_EINVAL || !why[0])
		fail_msg("key '%s' of %s should be refused", pk, model);
}

static void pk_accepted(const char *model, const char *pk)
{
	char why[256] = "";

	if (doc_check_pk(M(model), pk, why, sizeof(why)) != SH_OK)
		fail_msg("key '%s' of %s should be accepted: %s", pk, model, why);
}

static void test_check_pk_int(void **state)
{
	const char *bad[] = {
		"abc", "01", "00", "-0", "-01", "", ".x", ".", "..", "a/b", "1/2", "+1", " 1", "1 ",
		"1\x01", "\x7f", "1\n", "1.0", "1e3", "0x10", "-", "--1",
		"9223372036854775808", "-9223372036854775809", "99999999999999999999",
	};
	const char *good[] = { "0", "1", "-1", "42", "9223372036854775807", "-9223372036854775808" };
	char longkey[300];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		pk_refused("User", bad[i]);
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		pk_accepted("User", good[i]);
	memset(longkey, '1', 256);
	longkey[256] = '\0';
	pk_refused("User", longkey);
}

static void test_check_pk_text(void **state)
{
	char key[300], ctl[8];

	(void)state;
	pk_accepted("Tag", "hello world");
	pk_accepted("Tag", "a.b");
	pk_accepted("Tag", "a..b");
	pk_accepted("Tag", "caf\xc3\xa9");
	pk_accepted("Tag", "01");
	/* keys are decoded from their names (keyname.h): any byte but NUL is a key */
	pk_accepted("Tag", "");
	pk_accepted("Tag", ".");
	pk_accepted("Tag", "..");
	pk_accepted("Tag", ".hidden");
	pk_accepted("Tag", "a/b");
	pk_accepted("Tag", "a,b%");
	for (int c = 1; c < 0x20; c++) {
		snprintf(ctl, sizeof(ctl), "a%cb", c);
		pk_accepted("Tag", ctl);
	}
	pk_accepted("Tag", "a\x7f");
	memset(key, 'k', 299);
	key[299] = '\0';
	pk_accepted("Tag", key);	/* read under its long name... */
}

/* ...but a key whose name does not fit is never written. */
static void test_long_key_not_written(void **state)
{
	char key[300], why[256], *out = NULL;

	(void)state;
	memset(key, 'k', 250);
	key[250] = '\0';
	free(accepted("Tag", key, "{}"));
	key[247] = '/';	/* 250 bytes, 252 encoded */
	assert_int_equal(prep("Tag", key, "{}", NULL, &out, why, sizeof(why)), SH_EINVAL);
	assert_null(out);
	assert_non_null(strstr(why, "does not fit in a file name"));
}

/* A domain over an integer is a type sharded does not know: "id":1 is its key "1". */
static void test_domain_key_number(void **state)
{
	struct catalog *cat = catalog_new("public");
	struct model *m = catalog_add_model(cat, "Dom");
	char why[256], *out = NULL;

	(void)state;
	assert_int_equal(model_add_column(m, "id", "bigint_domain", "bigint_domain", true, false,
					  true), 0);
	assert_int_equal(doc_prepare(m, "1", "{\"id\":1}", 8, 1024, NULL, &out, why, sizeof(why)),
			 SH_OK);
	free(out);
	assert_int_equal(doc_prepare(m, "1", "{\"id\":2}", 8, 1024, NULL, &out, why, sizeof(why)),
			 SH_EINVAL);
	catalog_free(cat);
}

static void test_check_pk_uuid(void **state)
{
	(void)state;
	pk_accepted("Event", UUID_LOWER);
	pk_refused("Event", UUID_UPPER);	/* one file name per row */
	pk_refused("Event", "550e8400e29b41d4a716446655440000");
	pk_refused("Event", "550e8400-e29b-41d4-a716-44665544000");
	pk_refused("Event", "550e8400-e29b-41d4-a716-44665544000z");
	pk_refused("Event", "550e8400-e29b-41d4-a716_446655440000");
	pk_refused("Event", "1");
	pk_refused("Event", "");
}

/* ---- doc_get_text ---- */

static void test_get_text(void **state)
{
	const char *doc = "{\"id\":42,\"email\":\"a@b\",\"active\":true,\"name\":null,"
			  "\"total\":12.50,\"quote\":\"say \\\"hi\\\"\",\"settings\":{\"a\":[1]}}";
	char *v;

	(void)state;
	assert_text(doc, "id", "42");
	assert_text(doc, "email", "a@b");
	assert_text(doc, "active", "true");
	assert_text(doc, "total", "12.50");
	assert_text(doc, "quote", "say \"hi\"");
	assert_text(doc, "name", NULL);
	assert_text(doc, "missing", NULL);
	v = doc_get_text(doc, "settings");
	assert_non_null(v);
	assert_non_null(strstr(v, "\"a\""));
	free(v);
	assert_null(doc_get_text("[1,2]", "id"));
	assert_null(doc_get_text("42", "id"));
	assert_null(doc_get_text("not json", "id"));
	assert_null(doc_get_text("", "id"));
}

/* ---- regressions: bugs found by these tests, now fixed ---- */

/* Fixed bug (core/doc.c, int_in_range/is_finite_number): json-c's number parser
 * clamps an integer below INT64_MIN to INT64_MIN (and, inside jsonb, above
 * UINT64_MAX to UINT64_MAX) without an error; doc.c only guards the positive
 * overflow of an int8 column, so the value is silently changed. */
static void test_bug_negative_int_overflow_clamped(void **state)
{
	(void)state;
	refused("User", "1", "{\"email\":\"a\",\"referrer_id\":-9223372036854775809}");
	refused("User", "1", "{\"email\":\"a\",\"total\":-99999999999999999999}");
	/* a float8 takes it (rounded by PostgreSQL): kept as written, never clamped */
	{
		char *out = accepted("User", "1",
				     "{\"email\":\"a\",\"ratio\":-99999999999999999999}");

		assert_non_null(strstr(out, "\"ratio\":-99999999999999999999}"));
		free(out);
	}
}

/* Fixed bug (core/doc.c, parse_object): JSON_TOKENER_VALIDATE_UTF8 of json-c 0.16
 * only checks the shape of multi-byte sequences, so overlong encodings,
 * UTF-16 surrogates and code points above U+10FFFF pass; PostgreSQL refuses
 * them later ("invalid byte sequence for encoding UTF8") and the write that
 * was acknowledged becomes a dead letter. */
static void test_bug_invalid_utf8_accepted(void **state)
{
	(void)state;
	refused("User", "1", "{\"email\":\"\xc0\xaf\"}");		/* overlong '/' */
	refused("User", "1", "{\"email\":\"\xe0\x80\xaf\"}");	/* overlong '/' */
	refused("User", "1", "{\"email\":\"\xed\xa0\x80\"}");	/* surrogate U+D800 */
	refused("User", "1", "{\"email\":\"\xf4\x90\x80\x80\"}");	/* U+110000 */
}

/* What an update sends: the key and what the body names; a body naming
 * every stored column sends only what differs; a new record sends all. */
static void sent_of(const char *body, const char *existing, const char *want)
{
	char why[256], *out = NULL, *sent = NULL;

	assert_int_equal(doc_prepare_update(M("Tag"), "x", body, strlen(body), DOC_MAX_DEFAULT,
					    existing, &out, &sent, why, sizeof(why)), SH_OK);
	if (want)
		assert_string_equal(sent, want);
	else
		assert_null(sent);
	free(out);
	free(sent);
}

static void test_overlay(void **state)
{
	char *t;

	(void)state;
	t = doc_overlay("{\"name\":\"x\",\"color\":\"red\"}", "{\"color\":\"blue\"}");
	assert_string_equal(t, "{\"name\":\"x\",\"color\":\"blue\"}");
	free(t);
	assert_null(doc_overlay("[1]", "{}"));
	assert_null(doc_overlay("{}", "not json"));
}

static void test_update_sends_its_columns(void **state)
{
	const char *stored = "{\"name\":\"x\",\"color\":\"red\"}";

	(void)state;
	sent_of("{\"color\":\"blue\"}", NULL, NULL);	/* a create: everything */
	sent_of("{\"color\":\"blue\"}", stored, "{\"name\":\"x\",\"color\":\"blue\"}");
	sent_of("{\"color\":\"red\"}", stored, "{\"name\":\"x\",\"color\":\"red\"}");
	sent_of("{}", stored, "{\"name\":\"x\"}");
	/* a whole document: what differs */
	sent_of("{\"name\":\"x\",\"color\":\"red\"}", stored, "{\"name\":\"x\"}");
	sent_of("{\"name\":\"x\",\"color\":\"green\"}", stored,
		"{\"name\":\"x\",\"color\":\"green\"}");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_insert_adds_pk),
		cmocka_unit_test(test_insert_text_key),
		cmocka_unit_test(test_whitespace_around_body),
		cmocka_unit_test(test_update_merges),
		cmocka_unit_test(test_refuse_not_an_object),
		cmocka_unit_test(test_refuse_invalid_utf8),
		cmocka_unit_test(test_refuse_embedded_nul),
		cmocka_unit_test(test_refuse_unknown_key),
		cmocka_unit_test(test_refuse_wrong_types),
		cmocka_unit_test(test_refuse_null_and_required),
		cmocka_unit_test(test_refuse_pk_mismatch),
		cmocka_unit_test(test_refuse_uuid),
		cmocka_unit_test(test_refuse_timestamps_and_dates),
		cmocka_unit_test(test_refuse_bad_file_name),
		cmocka_unit_test(test_accept_numeric),
		cmocka_unit_test(test_accept_numbers),
		cmocka_unit_test(test_accept_jsonb),
		cmocka_unit_test(test_accept_nulls_and_arrays),
		cmocka_unit_test(test_accept_timestamps),
		cmocka_unit_test(test_accept_uuid_case),
		cmocka_unit_test(test_size_cap),
		cmocka_unit_test(test_check_pk_int),
		cmocka_unit_test(test_check_pk_text),
		cmocka_unit_test(test_long_key_not_written),
		cmocka_unit_test(test_domain_key_number),
		cmocka_unit_test(test_check_pk_uuid),
		cmocka_unit_test(test_get_text),
		cmocka_unit_test(test_update_sends_its_columns),
		cmocka_unit_test(test_overlay),
		cmocka_unit_test(test_bug_negative_int_overflow_clamped),
		cmocka_unit_test(test_bug_invalid_utf8_accepted),
	};

	return cmocka_run_group_tests(tests, build_catalog, free_catalog);
}
