/* test_tables.c - composite keys (key_join, key_split, doc_check_pk,
 * doc_prepare) and generated columns (shown, never written) on a catalog
 * built by hand. */
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
#include "loader.h"

static struct catalog *cat;

/* BookAuthor: key (book_id int8, author_id int4), in that order though the
 * columns come the other way round; Book: a generated column and an identity
 * ALWAYS column beside its key. */
static int build(void **state)
{
	const char *key[] = { "book_id", "author_id" };
	struct model *m;

	(void)state;
	if (!(cat = catalog_new("public")) || !(m = catalog_add_model(cat, "BookAuthor")) ||
	    model_add_column(m, "author_id", "integer", "int4", true, false, false) ||
	    model_add_column(m, "book_id", "bigint", "int8", true, false, false) ||
	    model_add_column(m, "role", "text", "text", true, false, false) ||
	    model_set_key(m, key, 2))
		return -1;
	if (!(m = catalog_add_model(cat, "Book")) ||
	    model_add_column(m, "id", "bigint", "int8", true, false, true) ||
	    model_add_column(m, "title", "text", "text", true, false, false) ||
	    model_add_column(m, "title_upper", "text", "text", false, true, false) ||
	    model_add_column(m, "serial_no", "bigint", "int8", true, true, false))
		return -1;
	m->cols[2].generated = m->cols[3].generated = true;
	if (!(m = catalog_add_model(cat, "Sale")) ||
	    model_add_column(m, "sold_at", "date", "date", true, false, true) ||
	    model_add_column(m, "id", "bigint", "int8", true, false, true))
		return -1;
	return catalog_add_skipped(cat, "Log", "no primary key");
}

static int teardown(void **state)
{
	(void)state;
	catalog_free(cat);
	return 0;
}

static const struct model *model(const char *name)
{
	const struct model *m = catalog_find(cat, name);

	assert_non_null(m);
	return m;
}

static enum sh_err prepare(const char *name, const char *pk, const char *body,
			   const char *existing, char **out, char *why)
{
	return doc_prepare(model(name), pk, body, strlen(body), DOC_MAX_DEFAULT, existing, out,
			   why, 256);
}

static void test_set_key_order(void **state)
{
	const struct model *m = model("BookAuthor");
	const char *bad[] = { "book_id", "book_id" }, *none[] = { "nope" };
	struct model *b = &cat->models[0];

	(void)state;
	assert_int_equal(2, model_nkey(m));
	assert_string_equal("book_id", model_key_col(m, 0)->name);
	assert_string_equal("author_id", model_key_col(m, 1)->name);
	assert_false(model_is_key(m, 2));
	assert_int_equal(-1, model_set_key(b, bad, 2));
	assert_int_equal(-1, model_set_key(b, none, 1));
	assert_int_equal(-1, model_set_key(b, bad, 0));
	assert_int_equal(2, model_nkey(m));	/* a refused key leaves the old one */
}

static void test_join_split(void **state)
{
	const char *parts[] = { "1", "23" }, *got[MODEL_KEY_MAX];
	const struct model *m = model("BookAuthor"), *one = model("Book");
	char out[16], buf[16];

	(void)state;
	assert_int_equal(SH_OK, key_join(parts, 2, out, sizeof(out)));
	assert_string_equal("1,23", out);
	assert_int_equal(SH_OK, key_join(parts, 1, out, sizeof(out)));
	assert_string_equal("1", out);
	assert_int_equal(SH_ETOOBIG, key_join(parts, 2, out, 4));
	assert_int_equal(SH_OK, key_join(parts, 2, out, 5));

	assert_int_equal(SH_OK, key_split(m, "1,23", buf, sizeof(buf), got));
	assert_string_equal("1", got[0]);
	assert_string_equal("23", got[1]);
	assert_int_equal(SH_EINVAL, key_split(m, "1", buf, sizeof(buf), got));
	assert_int_equal(SH_EINVAL, key_split(m, "1,2,3", buf, sizeof(buf), got));
	assert_int_equal(SH_EINVAL, key_split(m, "1,", buf, sizeof(buf), got));
	assert_int_equal(SH_EINVAL, key_split(m, ",1", buf, sizeof(buf), got));
	assert_int_equal(SH_ETOOBIG, key_split(m, "123456789012345,1", buf, sizeof(buf), got));
	/* one column: the whole name is the key, ',' and all */
	assert_int_equal(SH_OK, key_split(one, "a,b", buf, sizeof(buf), got));
	assert_string_equal("a,b", got[0]);
	/* parts are encoded as in file names: a ',' or '%' inside a part, an empty part */
	{
		const char *odd[] = { "a,b", "" };

		assert_int_equal(SH_OK, key_join(odd, 2, out, sizeof(out)));
		assert_string_equal("a%2Cb,%00", out);
		assert_int_equal(SH_OK, key_split(m, out, buf, sizeof(buf), got));
		assert_string_equal("a,b", got[0]);
		assert_string_equal("", got[1]);
		assert_int_equal(SH_EINVAL, key_split(m, "a%2cb,1", buf, sizeof(buf), got));
	}
}

static void test_check_composite_pk(void **state)
{
	const struct model *m = model("BookAuthor");
	char why[256];

	(void)state;
	assert_int_equal(SH_OK, doc_check_pk(m, "1,23", why, sizeof(why)));
	assert_int_equal(SH_EINVAL, doc_check_pk(m, "1", why, sizeof(why)));
	assert_non_null(strstr(why, "book_id,author_id"));
	assert_int_equal(SH_EINVAL, doc_check_pk(m, "1,x", why, sizeof(why)));
	assert_non_null(strstr(why, "'x' is not a valid integer key"));
	/* author_id is int4: each part in its own column's range */
	assert_int_equal(SH_OK, doc_check_pk(m, "3000000000,1", why, sizeof(why)));
	assert_int_equal(SH_EINVAL, doc_check_pk(m, "1,3000000000", why, sizeof(why)));
	assert_int_equal(SH_EINVAL, doc_check_pk(m, "1,2,3", why, sizeof(why)));
	/* a date part is a date */
	m = model("Sale");
	assert_int_equal(SH_OK, doc_check_pk(m, "2024-03-01,7", why, sizeof(why)));
	assert_int_equal(SH_EINVAL, doc_check_pk(m, "2024-13-01,7", why, sizeof(why)));
	assert_non_null(strstr(why, "'2024-13-01' is not a valid date key"));
	assert_int_equal(SH_EINVAL, doc_check_pk(m, "7,2024-03-01", why, sizeof(why)));
}

static void test_create_composite(void **state)
{
	char *out = NULL, why[256] = "";

	(void)state;
	assert_int_equal(SH_OK, prepare("BookAuthor", "1,23", "{\"role\":\"editor\"}", NULL, &out,
					why));
	assert_string_equal("{\"book_id\":1,\"author_id\":23,\"role\":\"editor\"}", out);
	free(out);
	/* the document's key must be the file name's, part by part */
	assert_int_equal(SH_OK, prepare("BookAuthor", "1,23",
					"{\"book_id\":1,\"author_id\":23,\"role\":\"x\"}", NULL,
					&out, why));
	free(out);
	assert_int_equal(SH_EINVAL, prepare("BookAuthor", "1,23",
					    "{\"book_id\":23,\"author_id\":1,\"role\":\"x\"}",
					    NULL, &out, why));
	assert_null(out);
	assert_non_null(strstr(why, "\"book_id\" in the document differs"));
	/* the key columns are not "required": the file name gives them */
	assert_int_equal(SH_EINVAL, prepare("BookAuthor", "1,23", "{}", NULL, &out, why));
	assert_non_null(strstr(why, "\"role\""));
}

#define STORED "{\"id\":7,\"title\":\"Dune\",\"title_upper\":\"DUNE\",\"serial_no\":3}"

static void test_generated_as_read(void **state)
{
	char *out = NULL, why[256] = "";

	(void)state;
	/* sed -i of the record as read: the generated values as stored are accepted */
	assert_int_equal(SH_OK, prepare("Book", "7", "{\"id\":7,\"title\":\"Dune 2\","
					"\"title_upper\":\"DUNE\",\"serial_no\":3}", STORED, &out,
					why));
	assert_non_null(strstr(out, "\"title\":\"Dune 2\""));
	free(out);
	/* a partial update without them keeps them as shown */
	assert_int_equal(SH_OK, prepare("Book", "7", "{\"title\":\"X\"}", STORED, &out, why));
	assert_non_null(strstr(out, "\"title_upper\":\"DUNE\""));
	free(out);
	/* a new record without them: PostgreSQL fills them */
	assert_int_equal(SH_OK, prepare("Book", "8", "{\"title\":\"New\"}", NULL, &out, why));
	assert_string_equal("{\"id\":8,\"title\":\"New\"}", out);
	free(out);
}

static void test_generated_refused(void **state)
{
	char *out = NULL, why[256] = "";

	(void)state;
	assert_int_equal(SH_EINVAL, prepare("Book", "7", "{\"title_upper\":\"OTHER\"}", STORED,
					    &out, why));
	assert_null(out);
	assert_non_null(strstr(why, "column \"title_upper\" is generated"));
	assert_int_equal(SH_EINVAL, prepare("Book", "7", "{\"serial_no\":4}", STORED, &out, why));
	assert_non_null(strstr(why, "column \"serial_no\" is generated"));
	/* same value, other JSON type: not what was read */
	assert_int_equal(SH_EINVAL, prepare("Book", "7", "{\"serial_no\":\"3\"}", STORED, &out,
					    why));
	/* nothing stored to compare with */
	assert_int_equal(SH_EINVAL, prepare("Book", "9", "{\"title\":\"T\",\"title_upper\":\"T\"}",
					    NULL, &out, why));
	assert_non_null(strstr(why, "\"title_upper\""));
}

/* A loader line naming a composite table is a rule; naming a table left out
 * says why it is not a model. */
static void test_loader_lines(void **state)
{
	struct loaders *l = NULL;
	char err[256] = "";

	(void)state;
	assert_int_equal(SH_OK, loaders_parse_text("block book-{id}\n"
						   "    BookAuthor where \"book_id\" = $id\n",
						   "rules", cat, &l, err, sizeof(err)));
	loaders_free(l);
	l = NULL;
	assert_int_equal(SH_EINVAL, loaders_parse_text("block log-{id}\n    Log where true\n",
						       "rules", cat, &l, err, sizeof(err)));
	assert_null(l);
	assert_non_null(strstr(err, "table 'Log' is not a model: no primary key"));
	assert_string_equal("no primary key", catalog_skip_reason(cat, "Log"));
	assert_null(catalog_skip_reason(cat, "Book"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_set_key_order),
		cmocka_unit_test(test_join_split),
		cmocka_unit_test(test_check_composite_pk),
		cmocka_unit_test(test_create_composite),
		cmocka_unit_test(test_generated_as_read),
		cmocka_unit_test(test_generated_refused),
		cmocka_unit_test(test_loader_lines),
	};

	return cmocka_run_group_tests(tests, build, teardown);
}
