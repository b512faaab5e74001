/* fuzz_doc.c - libFuzzer target: doc_prepare(), the gate every write passes.
 *
 * The first input byte picks a model and a key (bits 0-2) and a small size
 * cap (bit 7); the rest is the body. It is prepared as a new record and
 * merged onto a fixed stored document of that key. Properties checked, with
 * abort() on a violation:
 * - a refusal leaves *out NULL and gives SH_EINVAL or SH_ETOOBIG (exactly
 *   when the body is above the cap) with a reason;
 * - an accepted document is a JSON object holding the file name's key and
 *   no U+0000 (which PostgreSQL refuses), and
 *   doc_prepare accepts it again and gives back the same text, as a new
 *   record and merged onto itself (the canonical form is a fixed point);
 * - a merge keeps every stored key the body does not set and takes every key
 *   it does, and nothing else; a body good for a new record is good merged;
 * - doc_incomplete() is never true of an accepted body, and is true (or the
 *   prefix is accepted) of every prefix of it tried, so that a write split
 *   into several write() calls is not refused before its end.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "catalog.h"
#include "doc.h"

#define SMALL_CAP 64

struct target {
	const char *model;
	const char *pk;
	const char *existing;	/* the stored document of pk */
};

#define ITEM_REST "\"title\":\"old\",\"count\":3,\"flag\":true,\"at\":\"2024-01-02T03:04:05Z\"," \
		  "\"tags\":[\"a\"],\"data\":{\"k\":[1,2.5,null]},\"amount\":\"12.50\"}"
#define UUID "550e8400-e29b-41d4-a716-446655440000"

static const struct target targets[8] = {
	{ "Item", "1", "{\"id\":1," ITEM_REST },
	{ "Item", "42", "{\"id\":42," ITEM_REST },
	{ "Item", "-9223372036854775808", "{\"id\":-9223372036854775808," ITEM_REST },
	{ "Item", "9223372036854775807", "{\"id\":9223372036854775807," ITEM_REST },
	{ "Event", UUID, "{\"id\":\"" UUID "\",\"kind\":\"click\",\"at\":\"2024-01-02 03:04:05+00\"}" },
	{ "Event", "550e8400-e29b-41d4-a716-446655440000",	/* the one name; the body spells it otherwise */
	  "{\"id\":\"550E8400E29B41D4A716446655440000\",\"kind\":\"view\",\"at\":\"infinity\"}" },
	{ "Tag", "red", "{\"name\":\"red\",\"color\":\"#f00\"}" },
	{ "Tag", "\xc3\xbcml a\xc3\xbct", "{\"name\":\"\xc3\xbcml a\xc3\xbct\"}" },
};

static struct catalog *cat;

static void check(int ok, const char *what, const char *doc)
{
	if (ok)
		return;
	fprintf(stderr, "fuzz_doc: %s: %s\n", what, doc ? doc : "(null)");
	abort();
}

/* One column of every kind col_kind_from_typname knows, required or not. */
static int add_item(struct catalog *c)
{
	static const char *const moods[] = { "sad", "ok", "happy" };
	struct model *m = catalog_add_model(c, "Item");

	return !m ||
	       model_add_column(m, "id", "bigint", "int8", true, false, true) ||
	       model_add_column(m, "title", "text", "text", true, false, false) ||
	       model_add_column(m, "small", "smallint", "int2", false, false, false) ||
	       model_add_column(m, "count", "integer", "int4", true, true, false) ||
	       model_add_column(m, "amount", "numeric(12,2)", "numeric", false, false, false) ||
	       model_add_column(m, "flag", "boolean", "bool", true, true, false) ||
	       model_add_column(m, "label", "character varying(40)", "varchar", false, false, false) ||
	       model_add_column(m, "data", "jsonb", "jsonb", false, false, false) ||
	       model_add_column(m, "raw", "json", "json", false, false, false) ||
	       model_add_column(m, "at", "timestamp with time zone", "timestamptz", true, true,
				false) ||
	       model_add_column(m, "ts", "timestamp without time zone", "timestamp", false, false,
				false) ||
	       model_add_column(m, "day", "date", "date", false, false, false) ||
	       model_add_column(m, "ref", "uuid", "uuid", false, false, false) ||
	       model_add_column(m, "ratio", "double precision", "float8", false, false, false) ||
	       model_add_column(m, "score", "real", "float4", false, false, false) ||
	       model_add_column(m, "tags", "text[]", "_text", false, false, false) ||
	       model_add_column(m, "starts", "time with time zone", "timetz", false, false, false) ||
	       model_add_column(m, "addr", "inet", "inet", false, false, false) ||
	       model_add_column(m, "parent_id", "bigint", "int8", false, false, false) ||
	       model_add_column(m, "n", "numeric", "numeric", false, false, false) ||
	       model_add_column(m, "code", "character(3)", "bpchar", false, false, false) ||
	       model_add_column(m, "net", "cidr", "cidr", false, false, false) ||
	       model_add_column(m, "mac", "macaddr", "macaddr", false, false, false) ||
	       model_add_column(m, "span", "interval", "interval", false, false, false) ||
	       model_add_column(m, "blob", "bytea", "bytea", false, false, false) ||
	       model_add_column(m, "price", "money", "money", false, false, false) ||
	       model_add_column(m, "bits", "bit(4)", "bit", false, false, false) ||
	       model_add_column(m, "vbits", "bit varying(8)", "varbit", false, false, false) ||
	       model_add_column(m, "r", "int4range", "int4range", false, false, false) ||
	       model_add_column(m, "tr", "tstzrange", "tstzrange", false, false, false) ||
	       model_add_column(m, "tv", "tsvector", "tsvector", false, false, false) ||
	       model_add_column(m, "ints", "integer[]", "_int4", false, false, false) ||
	       model_add_column(m, "mood", "mood", "mood", false, false, false) ||
	       column_set_details(&m->cols[m->ncols - 1], "mood", -1, false, false, moods, 3) ||
	       model_add_column(m, "moods", "mood[]", "_mood", false, false, false) ||
	       column_set_details(&m->cols[m->ncols - 1], "mood", -1, true, true, moods, 3);
}

static struct catalog *build_catalog(void)
{
	struct catalog *c = catalog_new("public");
	struct model *m;

	if (!c || add_item(c))
		goto fail;
	if (!(m = catalog_add_model(c, "Event")) ||
	    model_add_column(m, "id", "uuid", "uuid", true, false, true) ||
	    model_add_column(m, "kind", "text", "text", true, false, false) ||
	    model_add_column(m, "at", "timestamp", "timestamp", true, false, false) ||
	    model_add_column(m, "payload", "jsonb", "jsonb", false, false, false))
		goto fail;
	if (!(m = catalog_add_model(c, "Tag")) ||
	    model_add_column(m, "name", "text", "text", true, false, true) ||
	    model_add_column(m, "color", "text", "text", false, true, false))
		goto fail;
	return c;
fail:
	catalog_free(c);
	return NULL;
}

static void teardown(void)
{
	catalog_free(cat);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if (!(cat = build_catalog()))
		abort();
	atexit(teardown);
	for (size_t i = 0; i < sizeof(targets) / sizeof(targets[0]); i++) {
		const struct target *t = &targets[i];
		char why[160] = "", *out = NULL;

		if (doc_prepare(catalog_find(cat, t->model), t->pk, t->existing,
				strlen(t->existing), DOC_MAX_DEFAULT, NULL, &out, why,
				sizeof(why)) != SH_OK) {
			fprintf(stderr, "fuzz_doc: stored document %zu refused: %s\n", i, why);
			abort();
		}
		free(out);
	}
	return 0;
}

static struct json_object *parse_strict(const char *text, size_t len)
{
	struct json_tokener *tok = json_tokener_new();
	struct json_object *obj;

	if (!tok)
		abort();
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	obj = json_tokener_parse_ex(tok, text, (int)len);
	if (json_tokener_get_error(tok) != json_tokener_success) {
		json_object_put(obj);
		obj = NULL;
	}
	json_tokener_free(tok);
	return obj;
}

/* A refusal: no document, a known error, a reason. */
static void check_refusal(enum sh_err err, const char *out, const char *why, size_t len,
			  size_t cap)
{
	check(out == NULL, "a refusal left a document", out);
	check(err == SH_EINVAL || err == SH_ETOOBIG, "a refusal of an unexpected kind", why);
	check(why[0] != '\0', "a refusal without a reason", NULL);
	check((err == SH_ETOOBIG) == (len > cap), "SH_ETOOBIG not exactly above the cap", why);
}

/* The document holds the file name's key. */
static void check_key(const struct model *m, const char *pk, const char *doc)
{
	char *key = doc_get_text(doc, model_key_col(m, 0)->name);

	check(key != NULL, "an accepted document without its key", doc);
	if (model_key_col(m, 0)->kind == COL_UUID) {
		char hex[2][33];
		size_t n[2] = { 0, 0 };

		for (int w = 0; w < 2; w++)
			for (const char *p = w ? pk : key; *p && n[w] < 32; p++)
				if (*p != '-')
					hex[w][n[w]++] = (char)tolower((unsigned char)*p);
		hex[0][n[0]] = hex[1][n[1]] = '\0';
		check(strcmp(hex[0], hex[1]) == 0, "an accepted document with another key", doc);
	} else
		check(strcmp(key, pk) == 0, "an accepted document with another key", doc);
	free(key);
}

/* PostgreSQL's text and jsonb cannot hold U+0000 (SQLSTATE 22P05): a
 * document that has it would be accepted here and refused at sync. */
static int holds_nul(struct json_object *v)
{
	size_t n;

	switch (json_object_get_type(v)) {
	case json_type_string:
		return strlen(json_object_get_string(v)) != (size_t)json_object_get_string_len(v);
	case json_type_array:
		n = json_object_array_length(v);
		for (size_t i = 0; i < n; i++)
			if (holds_nul(json_object_array_get_idx(v, i)))
				return 1;
		return 0;
	case json_type_object: {
		json_object_object_foreach(v, key, val) {
			(void)key;
			if (holds_nul(val))
				return 1;
		}
		return 0;
	}
	default:
		return 0;
	}
}

/* doc_prepare of doc must give back doc, as a new record and over itself. */
static void check_fixed_point(const struct model *m, const char *pk, const char *doc)
{
	size_t len = strlen(doc);
	const char *over[2] = { NULL, doc };
	struct json_object *obj = parse_strict(doc, len);

	check(obj && json_object_is_type(obj, json_type_object), "not a JSON object", doc);
	check(!holds_nul(obj), "an accepted document holds U+0000", doc);
	json_object_put(obj);
	check(!doc_incomplete(doc, len), "an accepted document looks unfinished", doc);
	check_key(m, pk, doc);
	for (int i = 0; i < 2; i++) {
		char why[160] = "", *again = NULL;
		enum sh_err err = doc_prepare(m, pk, doc, len, DOC_MAX_DEFAULT, over[i], &again,
					      why, sizeof(why));

		if (err != SH_OK)
			fprintf(stderr, "fuzz_doc: refused again: %s\n", why);
		check(err == SH_OK, "the canonical document is refused", doc);
		if (strcmp(again, doc) != 0)
			fprintf(stderr, "fuzz_doc: became %s\n", again);
		check(strcmp(again, doc) == 0, "the canonical document is not a fixed point", doc);
		free(again);
	}
}

/* merged = stored with body's keys laid over it, nothing more. */
static void check_merge(const char *body, size_t len, const char *stored, const char *merged)
{
	struct json_object *b = parse_strict(body, len), *s = parse_strict(stored, strlen(stored));
	struct json_object *mg = parse_strict(merged, strlen(merged)), *v;
	int n = 0;

	check(b && s && mg, "a merge input or output does not parse", merged);
	json_object_object_foreach(mg, key, val) {
		if (json_object_object_get_ex(b, key, &v))
			check(json_object_equal(v, val), "a merge lost a value of the body", key);
		else if (json_object_object_get_ex(s, key, &v))
			check(json_object_equal(v, val), "a merge changed a stored value", key);
		else
			check(0, "a merge made up a key", key);
	}
	json_object_object_foreach(b, bkey, bval) {
		(void)bval;
		n += !json_object_object_get_ex(s, bkey, NULL);
	}
	check(json_object_object_length(mg) == json_object_object_length(s) + n,
	      "a merge dropped a key", merged);
	json_object_put(b);
	json_object_put(s);
	json_object_put(mg);
}

/* Writing body in pieces: the first cut bytes must not be refused outright. */
static void check_prefix(const struct model *m, const char *pk, const char *body, size_t cut)
{
	char why[160] = "", *out = NULL;
	enum sh_err err;

	if (doc_incomplete(body, cut))
		return;
	err = doc_prepare(m, pk, body, cut, DOC_MAX_DEFAULT, NULL, &out, why, sizeof(why));
	if (err != SH_OK)
		fprintf(stderr, "fuzz_doc: prefix of %zu bytes refused: %s\n", cut, why);
	check(err == SH_OK, "a prefix of an accepted body is neither unfinished nor accepted", NULL);
	free(out);
}

static enum sh_err prepare(const struct model *m, const char *pk, const char *body, size_t len,
			   size_t cap, const char *stored, char **out)
{
	char why[160] = "";
	enum sh_err err = doc_prepare(m, pk, body, len, cap, stored, out, why, sizeof(why));

	if (err) {
		check_refusal(err, *out, why, len, cap);
		return err;
	}
	check(*out != NULL, "accepted without a document", NULL);
	check_fixed_point(m, pk, *out);
	if (stored)
		check_merge(body, len, stored, *out);
	return err;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct target *t;
	const struct model *m;
	size_t len, cap;
	char *body, *out = NULL;
	enum sh_err fresh, merged;
	bool incomplete;

	if (size < 1)
		return 0;
	t = &targets[data[0] & 7];
	cap = data[0] & 0x80 ? SMALL_CAP : DOC_MAX_DEFAULT;
	m = catalog_find(cat, t->model);
	len = size - 1;
	body = malloc(len ? len : 1);	/* not NUL-terminated, as written */
	if (!m || !body)
		abort();
	memcpy(body, data + 1, len);

	incomplete = doc_incomplete(body, len);
	fresh = prepare(m, t->pk, body, len, cap, NULL, &out);
	free(out);
	out = NULL;
	merged = prepare(m, t->pk, body, len, cap, t->existing, &out);
	free(out);
	check(!(incomplete && (fresh == SH_OK || merged == SH_OK)),
	      "an unfinished body was accepted", NULL);
	check(fresh != SH_OK || merged == SH_OK, "a new record's body refused as a change", NULL);
	if (fresh == SH_OK && len > 1) {
		check_prefix(m, t->pk, body, len - 1);
		check_prefix(m, t->pk, body, len / 2);
		check_prefix(m, t->pk, body, 1 + data[len] % (len - 1));
	}
	free(body);
	return 0;
}
