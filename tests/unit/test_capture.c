/* test_capture.c - the change-capture payloads (capture_parse) and batches
 * (capture_batch_add): what the triggers send is read back as the store names
 * keys, anything else is refused, and a batch keeps each key once per model,
 * turning into "re-read the whole table" past its cap or on a truncate. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "capture.h"

static struct catalog *sample(void)
{
	struct catalog *cat = catalog_new("public");
	struct model *m;

	assert_non_null(cat);
	m = catalog_add_model(cat, "Order");
	assert_non_null(m);
	assert_int_equal(0, model_add_column(m, "id", "bigint", "int8", true, false, true));
	m = catalog_add_model(cat, "Pair");
	assert_non_null(m);
	assert_int_equal(0, model_add_column(m, "a", "text", "text", true, false, true));
	assert_int_equal(0, model_add_column(m, "b", "integer", "int4", true, false, true));
	return cat;
}

static void test_parse_single_key(void **state)
{
	struct capture_note n;

	(void)state;
	assert_int_equal(SH_OK, capture_parse("[\"U\",\"Order\",1733200000123456,[\"42\"]]", &n));
	assert_int_equal('U', n.op);
	assert_string_equal("Order", n.table);
	assert_true(n.ts_us == 1733200000123456LL);
	assert_false(n.whole);
	assert_string_equal("42", n.pk);
}

static void test_parse_composite_key(void **state)
{
	struct capture_note n;

	(void)state;
	/* parts are joined as the loader's rows are: each part encoded, then ',' */
	assert_int_equal(SH_OK, capture_parse("[\"D\",\"Pair\",1,[\"x,y\",\"7\"]]", &n));
	assert_int_equal('D', n.op);
	assert_string_equal("x%2Cy,7", n.pk);
}

static void test_parse_whole(void **state)
{
	struct capture_note n;

	(void)state;
	assert_int_equal(SH_OK, capture_parse("[\"I\",\"Order\",1,null]", &n));
	assert_true(n.whole);
	assert_int_equal(SH_OK, capture_parse("[\"T\",\"Order\",1,null]", &n));
	assert_true(n.whole);
	assert_int_equal('T', n.op);
}

static void test_parse_refuses(void **state)
{
	static const char *const bad[] = {
		"", "not json", "{}", "[]", "[\"U\",\"Order\",1]",
		"[\"X\",\"Order\",1,[\"1\"]]",		/* unknown op */
		"[\"UU\",\"Order\",1,[\"1\"]]",
		"[\"U\",\"\",1,[\"1\"]]",		/* no table */
		"[\"U\",\"Order\",\"1\",[\"1\"]]",	/* time as a string */
		"[\"U\",\"Order\",1,[]]",		/* no key part */
		"[\"U\",\"Order\",1,[null]]",		/* a null key part */
		"[\"U\",\"Order\",1,[1]]",		/* a part not text */
		"[\"U\",\"Order\",1,\"1\"]",
		"[\"U\",\"Order\",1,[\"1\"],5]",
		"[\"U\",\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\",1,[\"1\"]]",
	};
	struct capture_note n;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (capture_parse(bad[i], &n) != SH_EINVAL)
			fail_msg("accepted: %s", bad[i]);
}

static void add(struct capture_batch *b, const struct catalog *cat, const char *payload,
		enum sh_err want)
{
	struct capture_note n;

	assert_int_equal(SH_OK, capture_parse(payload, &n));
	assert_int_equal(want, capture_batch_add(b, cat, &n));
}

static void test_batch_dedups_per_model(void **state)
{
	struct catalog *cat = sample();
	struct capture_batch b = { 0 };

	(void)state;
	add(&b, cat, "[\"U\",\"Order\",30,[\"1\"]]", SH_OK);
	add(&b, cat, "[\"U\",\"Order\",20,[\"1\"]]", SH_OK);
	add(&b, cat, "[\"D\",\"Order\",40,[\"2\"]]", SH_OK);
	add(&b, cat, "[\"D\",\"Pair\",50,[\"a\",\"1\"]]", SH_OK);
	add(&b, cat, "[\"U\",\"Nope\",10,[\"1\"]]", SH_ENOENT);	/* not a model: not counted */
	assert_int_equal(2, b.n);
	assert_int_equal(4, b.notes);
	assert_true(b.oldest_ts_us == 20);
	assert_int_equal(2, b.sets[0].n);
	assert_true(b.sets[0].inserted);
	assert_int_equal(1, b.sets[1].n);
	assert_false(b.sets[1].inserted);	/* only deleted: no loader query for it */
	assert_string_equal("a,1", b.sets[1].pks[0]);
	capture_batch_clear(&b);
	assert_int_equal(0, b.n);
	assert_int_equal(0, b.notes);
	catalog_free(cat);
}

static void test_batch_whole_past_cap(void **state)
{
	struct catalog *cat = sample();
	struct capture_batch b = { 0 };
	char payload[64];

	(void)state;
	for (int i = 0; i <= CAPTURE_BATCH_MAX; i++) {
		snprintf(payload, sizeof(payload), "[\"U\",\"Order\",1,[\"%d\"]]", i);
		add(&b, cat, payload, SH_OK);
	}
	assert_true(b.sets[0].whole);
	assert_int_equal(0, b.sets[0].n);
	add(&b, cat, "[\"U\",\"Order\",1,[\"5\"]]", SH_OK);	/* stays whole */
	assert_true(b.sets[0].whole);
	assert_int_equal(0, b.sets[0].n);
	add(&b, cat, "[\"T\",\"Pair\",1,null]", SH_OK);
	assert_true(b.sets[1].whole);
	capture_batch_clear(&b);
	catalog_free(cat);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_single_key),
		cmocka_unit_test(test_parse_composite_key),
		cmocka_unit_test(test_parse_whole),
		cmocka_unit_test(test_parse_refuses),
		cmocka_unit_test(test_batch_dedups_per_model),
		cmocka_unit_test(test_batch_whole_past_cap),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
