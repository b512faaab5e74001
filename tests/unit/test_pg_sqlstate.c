/* test_pg_sqlstate.c - which PostgreSQL errors are retried and which refuse a record. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "pg.h"

static void test_transient(void **state)
{
	static const char *const codes[] = {
		"08000", "08003", "08006", "08001", "08004", "08P01",	/* connection */
		"40001", "40P01", "40000",				/* serialization, deadlock */
		"53100", "53200", "53300",				/* disk full, oom, too many connections */
		"57P01", "57P02", "57P03", "57014",			/* shutdown, cannot connect now, canceled */
		"58000", "58030",					/* system, io error */
		"55P03",						/* lock not available */
	};

	(void)state;
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
		assert_true(pg_sqlstate_transient(codes[i]));
}

static void test_no_answer_is_transient(void **state)
{
	(void)state;
	assert_true(pg_sqlstate_transient(NULL));
	assert_true(pg_sqlstate_transient(""));
}

static void test_permanent(void **state)
{
	static const char *const codes[] = {
		"23505", "23503", "23502", "23514", "23P01",	/* constraints */
		"22P02", "22003", "22001", "22007", "22023",	/* data */
		"42P01", "42703", "42501", "42804", "428C9",	/* missing table/column, privilege, type */
		"21000",					/* cardinality: same row twice */
		"55000", "55006",				/* other class 55 */
		"25P02", "XX000", "P0001", "0A000",
		"08", "4", "400010",				/* malformed */
	};

	(void)state;
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
		assert_false(pg_sqlstate_transient(codes[i]));
}

/* Refusals of the values sent hold back one block; others are an outage. */
static void test_of_values(void **state)
{
	static const char *const values[] = { "22021", "22P02", "22001", "23505", "23514", "54000" };
	static const char *const others[] = { "42P01", "42501", "XX000", "25P02", "08006", "",
					      "22", "220210" };

	(void)state;
	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++)
		assert_true(pg_sqlstate_of_values(values[i]));
	for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++)
		assert_false(pg_sqlstate_of_values(others[i]));
	assert_false(pg_sqlstate_of_values(NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_transient),
		cmocka_unit_test(test_no_answer_is_transient),
		cmocka_unit_test(test_permanent),
		cmocka_unit_test(test_of_values),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
