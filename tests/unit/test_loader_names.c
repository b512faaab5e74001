/* test_loader_names.c - loader rules name a model whose name has a space, or a quote, quoted as
 * in SQL ("Order Item"); a bare name still works and an unterminated quote is refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "catalog.h"
#include "loader.h"

static struct catalog *cat;

static int setup(void **state)
{
	static const char *names[] = { "User", "Order Item", "say \"hi\"" };

	(void)state;
	cat = catalog_new("public");
	for (size_t i = 0; i < 3; i++) {
		struct model *m = catalog_add_model(cat, names[i]);

		assert_int_equal(model_add_column(m, "id", "bigint", "int8", true, false, true), 0);
	}
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	catalog_free(cat);
	return 0;
}

static const struct model *step_model(const char *text, size_t step, char *err, size_t errlen)
{
	struct loaders *l = NULL;
	const struct model *m = NULL;

	if (loaders_parse_text(text, "t", cat, &l, err, errlen) == SH_OK) {
		assert_int_equal(l->nrules, 1);
		assert_true(step < l->rules[0].nsteps);
		m = l->rules[0].steps[step].model;
	}
	loaders_free(l);
	return m;
}

static void test_quoted_names(void **state)
{
	char err[256] = "";
	const struct model *m;

	(void)state;
	m = step_model("block u-{id}\n  \"Order Item\" where \"id\" = $id\n", 0, err, sizeof(err));
	assert_non_null(m);
	assert_string_equal(m->name, "Order Item");
	m = step_model("block u-{id}\n  User where \"id\" = $id\n"
		       "  \"say \"\"hi\"\"\"  WHERE \"id\" = $id\n", 1, err, sizeof(err));
	assert_non_null(m);
	assert_string_equal(m->name, "say \"hi\"");
	m = step_model("block u-{id}\n  \"User\" where \"id\" = $id\n", 0, err, sizeof(err));
	assert_non_null(m);
	assert_string_equal(m->name, "User");
}

static void test_refusals(void **state)
{
	char err[256] = "";

	(void)state;
	assert_null(step_model("block u-{id}\n  \"Order Item where \"id\" = $id\n", 0, err,
			       sizeof(err)));
	assert_null(step_model("block u-{id}\n  \"Order Item where id = $id\n", 0, err,
			       sizeof(err)));
	assert_non_null(strstr(err, "unterminated"));
	assert_null(step_model("block u-{id}\n  Order Item where \"id\" = $id\n", 0, err,
			       sizeof(err)));
	assert_null(step_model("block u-{id}\n  \"Nope\" where \"id\" = $id\n", 0, err,
			       sizeof(err)));
	assert_non_null(strstr(err, "unknown model 'Nope'"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_quoted_names),
		cmocka_unit_test(test_refusals),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
