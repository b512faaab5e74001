/* test_catalog_file.c - catalog_write and catalog_read/catalog_parse: round trip, refusals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "catalog.h"
#include "catalog_file.h"

static struct catalog *sample(void)
{
	struct catalog *cat = catalog_new("app");
	struct model *m;

	assert_non_null(cat);
	m = catalog_add_model(cat, "User");
	assert_non_null(m);
	assert_int_equal(0, model_add_column(m, "id", "bigint", "int8", true, true, true));
	assert_int_equal(0, model_add_column(m, "email", "text", "text", true, false, false));
	assert_int_equal(0, model_add_column(m, "name", "character varying(80)", "varchar", false,
					     false, false));
	assert_int_equal(0, model_add_column(m, "total", "numeric(12,2)", "numeric", true, true,
					     false));
	assert_int_equal(0, model_add_column(m, "tags", "text[]", "_text", false, false, false));
	assert_int_equal(0, model_add_column(m, "role", "\"Role\"", "Role", true, true, false));
	assert_int_equal(0, model_add_column(m, "say \"hi\"/é", "jsonb", "jsonb", false, false,
					     false));
	m = catalog_add_model(cat, "Event");
	assert_non_null(m);
	assert_int_equal(0, model_add_column(m, "at", "timestamp with time zone", "timestamptz",
					     true, false, false));
	assert_int_equal(0, model_add_column(m, "id", "uuid", "uuid", true, false, true));
	return cat;
}

static void assert_catalogs_equal(const struct catalog *a, const struct catalog *b)
{
	assert_string_equal(a->schema, b->schema);
	assert_int_equal(a->nmodels, b->nmodels);
	for (size_t i = 0; i < a->nmodels; i++) {
		const struct model *ma = &a->models[i], *mb = &b->models[i];

		assert_string_equal(ma->name, mb->name);
		assert_int_equal(ma->ncols, mb->ncols);
		assert_int_equal(ma->nkey, mb->nkey);
		for (size_t k = 0; k < ma->nkey; k++)
			assert_int_equal(ma->key[k], mb->key[k]);
		for (size_t j = 0; j < ma->ncols; j++) {
			const struct column *ca = &ma->cols[j], *cb = &mb->cols[j];

			assert_string_equal(ca->name, cb->name);
			assert_string_equal(ca->type, cb->type);
			assert_string_equal(ca->typname, cb->typname);
			assert_int_equal(ca->kind, cb->kind);
			assert_true(ca->min == cb->min && ca->max == cb->max);
			assert_int_equal(ca->not_null, cb->not_null);
			assert_int_equal(ca->has_default, cb->has_default);
			assert_int_equal(ca->generated, cb->generated);
		}
	}
}

/* Write cat to a memory buffer; malloc'd text. */
static char *write_text(const struct catalog *cat)
{
	char *buf = NULL, err[256] = "";
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	assert_non_null(f);
	if (catalog_write(cat, f, err, sizeof(err)) != SH_OK)
		fail_msg("catalog_write: %s", err);
	fclose(f);
	return buf;
}

static void test_round_trip(void **state)
{
	struct catalog *cat = sample(), *back = NULL;
	char *text = write_text(cat), err[256] = "";
	char path[] = "/tmp/test_catalog_file.XXXXXX";
	int fd;

	(void)state;
	assert_non_null(strstr(text, "\"format\": \"sharded-catalog\""));
	assert_non_null(strstr(text, "\"version\": 2"));
	assert_non_null(strstr(text, "\"primary_key\": \"id\""));
	assert_true(text[strlen(text) - 1] == '\n');

	if (catalog_parse(text, strlen(text), "mem", &back, err, sizeof(err)) != SH_OK)
		fail_msg("catalog_parse: %s", err);
	assert_catalogs_equal(cat, back);
	assert_int_equal(COL_INT, catalog_find(back, "User")->cols[0].kind);
	assert_int_equal(COL_OTHER, model_column(catalog_find(back, "User"), "role")->kind);
	assert_int_equal(COL_ARRAY, model_column(catalog_find(back, "User"), "tags")->kind);
	assert_string_equal("id", model_key_col(catalog_find(back, "Event"), 0)->name);
	catalog_free(back);

	/* through a file */
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal((ssize_t)strlen(text), write(fd, text, strlen(text)));
	close(fd);
	back = NULL;
	if (catalog_read(path, &back, err, sizeof(err)) != SH_OK)
		fail_msg("catalog_read: %s", err);
	assert_catalogs_equal(cat, back);
	catalog_free(back);
	unlink(path);

	/* an empty catalog round-trips too */
	catalog_free(cat);
	free(text);
	cat = catalog_new("public");
	text = write_text(cat);
	back = NULL;
	assert_int_equal(SH_OK, catalog_parse(text, strlen(text), "mem", &back, err, sizeof(err)));
	assert_catalogs_equal(cat, back);
	catalog_free(back);
	catalog_free(cat);
	free(text);
}

/* text (with ' for ") must be refused with SH_EINVAL and a message holding want. */
static void refuses(const char *text, const char *want)
{
	char *t = strdup(text), err[512] = "";
	struct catalog *cat = (struct catalog *)1;
	enum sh_err rc;

	assert_non_null(t);
	for (char *c = t; *c; c++)
		if (*c == '\'')
			*c = '"';
	rc = catalog_parse(t, strlen(t), "cat.json", &cat, err, sizeof(err));
	if (rc != SH_EINVAL)
		fail_msg("accepted (%d): %s", rc, text);
	assert_null(cat);
	if (strncmp(err, "cat.json: ", 10) != 0 || !strstr(err, want))
		fail_msg("for %s: expected a message with \"%s\", got \"%s\"", text, want, err);
	free(t);
}

#define HEAD "{'format':'sharded-catalog','version':1,'schema':'public','models':"
#define COL(n) "{'name':'" n "','type':'bigint','typname':'int8','not_null':true,'has_default':false}"

/* A composite key in key order (not column order), a generated column and
 * the tables left out survive a write and a read. */
static void test_composite_round_trip(void **state)
{
	struct catalog *cat = catalog_new("public"), *back = NULL;
	const char *key[] = { "author_id", "book_id" };
	struct model *m;
	char *text, err[256] = "";

	(void)state;
	assert_non_null(cat);
	assert_non_null(m = catalog_add_model(cat, "BookAuthor"));
	assert_int_equal(0, model_add_column(m, "book_id", "bigint", "int8", true, false, false));
	assert_int_equal(0, model_add_column(m, "author_id", "integer", "int4", true, false, false));
	assert_int_equal(0, model_add_column(m, "label", "text", "text", true, true, false));
	m->cols[2].generated = true;
	assert_int_equal(0, model_set_key(m, key, 2));
	assert_int_equal(0, catalog_add_skipped(cat, "Log", "no primary key"));
	text = write_text(cat);
	assert_non_null(strstr(text, "\"primary_key\": ["));
	assert_non_null(strstr(text, "\"generated\": true"));
	if (catalog_parse(text, strlen(text), "mem", &back, err, sizeof(err)) != SH_OK)
		fail_msg("catalog_parse: %s", err);
	assert_catalogs_equal(cat, back);
	m = &back->models[0];
	assert_int_equal(2, model_nkey(m));
	assert_string_equal("author_id", model_key_col(m, 0)->name);
	assert_true(model_is_key(m, 0) && model_is_key(m, 1) && !model_is_key(m, 2));
	assert_int_equal(1, back->nskipped);
	assert_string_equal("Log", back->skipped[0].name);
	assert_string_equal("no primary key", back->skipped[0].reason);
	free(text);
	catalog_free(back);
	catalog_free(cat);
}

static void test_refusals(void **state)
{
	char err[256];
	struct catalog *cat;

	(void)state;
	/* the good one, for reference */
	{
		const char *good = "{\"format\":\"sharded-catalog\",\"version\":1,\"schema\":"
			"\"public\",\"models\":[{\"name\":\"A\",\"primary_key\":\"id\","
			"\"columns\":[{\"name\":\"id\",\"type\":\"bigint\",\"typname\":"
			"\"int8\",\"not_null\":true,\"has_default\":false}]}]}";

		cat = NULL;
		if (catalog_parse(good, strlen(good), "x", &cat, err, sizeof(err)) != SH_OK)
			fail_msg("refused: %s", err);
		catalog_free(cat);
	}

	refuses("", "empty");
	refuses("{", "truncated");
	refuses("[1]", "not a JSON object");
	refuses("{'format':'sharded-catalog','version':1,} ", "not JSON");
	refuses(HEAD "[]} x", "not JSON");
	refuses("{'version':1,'schema':'public','models':[]}", "format");
	refuses("{'format':'other','version':1,'schema':'public','models':[]}", "format");
	refuses("{'format':'sharded-catalog','version':3,'schema':'public','models':[]}",
		"version 3 is not supported");
	refuses("{'format':'sharded-catalog','version':'1','schema':'public','models':[]}",
		"\"version\" must be an integer");
	refuses("{'format':'sharded-catalog','schema':'public','models':[]}", "missing \"version\"");
	refuses("{'format':'sharded-catalog','version':1,'models':[]}", "missing \"schema\"");
	refuses("{'format':'sharded-catalog','version':1,'schema':'public'}", "missing \"models\"");
	refuses(HEAD "[], 'extra':1}", "unknown key \"extra\"");
	refuses(HEAD "{}}", "\"models\" must be an array");
	refuses(HEAD "[1]}", "models[0]: must be an object");
	refuses(HEAD "[{'primary_key':'id','columns':[" COL("id") "]}]}", "models[0]: missing \"name\"");
	refuses(HEAD "[{'name':'','primary_key':'id','columns':[" COL("id") "]}]}", "is empty");
	refuses(HEAD "[{'name':'a/b','primary_key':'id','columns':[" COL("id") "]}]}", "'/'");
	refuses(HEAD "[{'name':'..','primary_key':'id','columns':[" COL("id") "]}]}", "cannot be");
	refuses(HEAD "[{'name':'a\\u0001','primary_key':'id','columns':[" COL("id") "]}]}",
		"control character");
	refuses(HEAD "[{'name':'a\\u0000b','primary_key':'id','columns':[" COL("id") "]}]}",
		"not a valid name");
	refuses(HEAD "[{'name':'" "0123456789012345678901234567890123456789012345678901234567890123"
		"','primary_key':'id','columns':[" COL("id") "]}]}", "63-byte");
	refuses(HEAD "[{'name':'A','columns':[" COL("id") "]}]}",
		"model \"A\": missing \"primary_key\"");
	refuses(HEAD "[{'name':'A','primary_key':['a','a'],'columns':[" COL("a") "," COL("b") "]}]}",
		"names \"a\" twice");
	refuses(HEAD "[{'name':'A','primary_key':[],'columns':[" COL("a") "]}]}",
		"must name 1 to 32 columns");
	refuses(HEAD "[{'name':'A','primary_key':['a',7],'columns':[" COL("a") "]}]}",
		"\"primary_key\" must be a string");
	refuses(HEAD "[{'name':'A','primary_key':['a','nope'],'columns':[" COL("a") "]}]}",
		"\"primary_key\" \"nope\" is not one of its columns");
	refuses(HEAD "[{'name':'A','primary_key':'id','columns':[{'name':'id','type':'bigint',"
		"'typname':'int8','not_null':true,'has_default':false,'generated':1}]}]}",
		"\"generated\" must be a boolean");
	refuses(HEAD "[{'name':'A','primary_key':'id','columns':[{'name':'id','type':'bigint',"
		"'typname':'int8','not_null':true,'has_default':true,'generated':true}]}]}",
		"a primary-key column cannot be \"generated\"");
	refuses(HEAD "[], 'skipped':[{'name':'v'}]}", "skipped[0]: missing \"reason\"");
	refuses(HEAD "[], 'skipped':{}}", "\"skipped\" must be an array");
	refuses(HEAD "[{'name':'A','primary_key':'nope','columns':[" COL("id") "]}]}",
		"\"primary_key\" \"nope\" is not one of its columns");
	refuses(HEAD "[{'name':'A','primary_key':'id','columns':[]}]}", "\"columns\" is empty");
	refuses(HEAD "[{'name':'A','primary_key':'id','columns':[" COL("id") "],'x':1}]}",
		"model \"A\": unknown key \"x\"");
	refuses(HEAD "[{'name':'A','primary_key':'id','columns':[" COL("id") "]},"
		"{'name':'A','primary_key':'id','columns':[" COL("id") "]}]}",
		"model \"A\" appears twice");
	refuses(HEAD "[{'name':'A','primary_key':'id','columns':[" COL("id") "," COL("id") "]}]}",
		"column \"id\" appears twice");
	refuses(HEAD "[{'name':'A','primary_key':'id','columns':[{'name':'id','type':'bigint',"
		"'not_null':true,'has_default':false}]}]}",
		"model \"A\", column \"id\": missing \"typname\"");
	refuses(HEAD "[{'name':'A','primary_key':'id','columns':[{'name':'id','type':'bigint',"
		"'typname':'int8','not_null':1,'has_default':false}]}]}",
		"\"not_null\" must be a boolean");
	refuses(HEAD "[{'name':'A','primary_key':'id','columns':[{'name':'id','type':'bigint',"
		"'typname':'int8','not_null':false,'has_default':false}]}]}",
		"the primary key must be \"not_null\": true");
	refuses(HEAD "[{'name':'A','primary_key':'id','columns':[{'name':'id','type':'bigint',"
		"'typname':'int8','not_null':true,'has_default':false,'kind':'int'}]}]}",
		"unknown key \"kind\"");
	refuses(HEAD "[{'name':'A','primary_key':'id','columns':[7]}]}",
		"model \"A\", columns[0]: must be an object");
}

static void test_read_errors(void **state)
{
	char dir[] = "/tmp/test_catalog_file.XXXXXX", path[64], err[512];
	struct catalog *cat = NULL;
	FILE *f;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/none.json", dir);
	assert_int_equal(SH_ENOENT, catalog_read(path, &cat, err, sizeof(err)));
	assert_non_null(strstr(err, path));
	assert_int_equal(SH_EIO, catalog_read(dir, &cat, err, sizeof(err)));
	assert_non_null(strstr(err, "directory"));

	/* over the cap: refused without reading it all */
	snprintf(path, sizeof(path), "%s/big.json", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(0, ftruncate(fileno(f), CATALOG_FILE_MAX + 1));
	fclose(f);
	assert_int_equal(SH_ETOOBIG, catalog_read(path, &cat, err, sizeof(err)));
	assert_non_null(strstr(err, path));
	assert_null(cat);
	unlink(path);

	/* a syntax error names the line */
	snprintf(path, sizeof(path), "%s/bad.json", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("{\n  \"format\": \"sharded-catalog\",\n  \"version\": 1,\n  oops\n}\n", f);
	fclose(f);
	assert_int_equal(SH_EINVAL, catalog_read(path, &cat, err, sizeof(err)));
	if (!strstr(err, path) || !strstr(err, "line 4"))
		fail_msg("unexpected message: %s", err);
	unlink(path);
	rmdir(dir);
}

static void test_write_refuses_keyless_model(void **state)
{
	struct catalog *cat = catalog_new("public");
	char err[256] = "";
	struct model *m;
	FILE *f = fopen("/dev/null", "w");

	(void)state;
	m = catalog_add_model(cat, "NoKey");
	assert_int_equal(0, model_add_column(m, "a", "text", "text", false, false, false));
	assert_int_equal(SH_EINVAL, catalog_write(cat, f, err, sizeof(err)));
	assert_non_null(strstr(err, "NoKey"));
	fclose(f);
	catalog_free(cat);

	/* a full device is an error, not a silently short file */
	cat = sample();
	f = fopen("/dev/full", "w");
	if (f) {
		assert_int_equal(SH_EIO, catalog_write(cat, f, err, sizeof(err)));
		fclose(f);
	}
	catalog_free(cat);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_composite_round_trip),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_read_errors),
		cmocka_unit_test(test_write_refuses_keyless_model),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
