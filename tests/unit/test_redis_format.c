/* test_redis_format.c - redis_format_argv and redis_append_argv make exactly the bytes of
 * hiredis's redisFormatCommandArgv: argument lengths at every digit boundary, binary and empty
 * arguments, ten and more arguments, a buffer too small, a command past the stack buffer;
 * redis_i64_arg writes what snprintf's PRId64 does. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <hiredis/hiredis.h>

#include "redis.h"

/* hiredis's bytes for argv and ours must be equal. */
static void same_as_hiredis(int argc, const char **argv, const size_t *lens)
{
	char *want = NULL, *got;
	int wlen = redisFormatCommandArgv(&want, argc, argv, lens);
	size_t need = redis_format_argv(NULL, 0, argc, argv, lens);

	assert_true(wlen > 0);
	assert_int_equal(need, (size_t)wlen);
	got = malloc(need);
	assert_non_null(got);
	assert_int_equal(redis_format_argv(got, need, argc, argv, lens), need);
	assert_memory_equal(got, want, need);
	free(got);
	redisFreeCommand(want);
}

static void test_xadd_like(void **state)
{
	const char *argv[] = { "XADD", "sharded:{b1}:ops", "*", "seq", "42", "origin", "n1:3",
			       "op", "u", "model", "User", "pk", "7", "doc", "{\"id\":7}" };

	(void)state;
	same_as_hiredis(15, argv, NULL);
	same_as_hiredis(1, argv, NULL);
}

static void test_lengths_at_digit_boundaries(void **state)
{
	static const size_t sizes[] = { 0, 1, 9, 10, 11, 99, 100, 101, 999, 1000, 9999, 10000, 100000 };
	char *big = malloc(100001);

	(void)state;
	assert_non_null(big);
	memset(big, 'x', 100000);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		const char *argv[2] = { "SET", big };
		size_t lens[2] = { 3, sizes[i] };

		same_as_hiredis(2, argv, lens);
	}
	free(big);
}

static void test_binary_and_many_args(void **state)
{
	const char *argv[120];
	size_t lens[120];

	(void)state;
	for (int i = 0; i < 120; i++) {
		argv[i] = "a\0b\r\nc";
		lens[i] = (size_t)(i % 7);
	}
	same_as_hiredis(10, argv, lens);
	same_as_hiredis(11, argv, lens);
	same_as_hiredis(100, argv, lens);
	same_as_hiredis(120, argv, lens);
}

static void test_too_small_writes_nothing(void **state)
{
	const char *argv[] = { "PING" };
	char buf[8];

	(void)state;
	memset(buf, '#', sizeof(buf));
	assert_int_equal(redis_format_argv(buf, sizeof(buf), 1, argv, NULL), 14);
	for (size_t i = 0; i < sizeof(buf); i++)
		assert_int_equal(buf[i], '#');
}

/* The pipeline buffer gets the command whether it fits the stack buffer or not
 * (no server: hiredis appends to obuf without one). */
static void test_append(void **state)
{
	redisContext *rc = redisConnectUnix("/nonexistent/sharded-test.sock");
	char *big = malloc(20000), *want = NULL;
	const char *argv[3] = { "XADD", "k", big };
	size_t lens[3] = { 4, 1, 20000 }, w1, w2;

	(void)state;
	assert_non_null(rc);
	assert_non_null(big);
	memset(big, 'y', 20000);
	assert_int_equal(redis_append_argv(rc, 2, argv, NULL), REDIS_OK);
	assert_int_equal(redis_append_argv(rc, 3, argv, lens), REDIS_OK);
	w1 = (size_t)redisFormatCommandArgv(&want, 2, argv, NULL);
	assert_memory_equal(rc->obuf, want, w1);
	redisFreeCommand(want);
	w2 = (size_t)redisFormatCommandArgv(&want, 3, argv, lens);
	assert_int_equal(strlen(rc->obuf), w1 + w2);
	assert_memory_equal(rc->obuf + w1, want, w2);
	redisFreeCommand(want);
	free(big);
	redisFree(rc);
}

static void test_i64_arg(void **state)
{
	static const int64_t vs[] = { 0, 1, -1, 9, 10, -10, 99, 100, 123456789, -987654321,
				      INT64_MAX, INT64_MAX - 1, INT64_MIN, INT64_MIN + 1 };
	char got[REDIS_I64_MAX + 1], want[32];

	(void)state;
	for (size_t i = 0; i < sizeof(vs) / sizeof(vs[0]); i++) {
		int n = snprintf(want, sizeof(want), "%" PRId64, vs[i]);

		memset(got, '#', sizeof(got));
		assert_int_equal(redis_i64_arg(got, vs[i]), (size_t)n);
		assert_string_equal(got, want);
	}
	for (int64_t v = 1; v <= INT64_MAX / 10; v *= 10)
		for (int64_t d = -1; d <= 1; d++) {
			snprintf(want, sizeof(want), "%" PRId64, v + d);
			redis_i64_arg(got, v + d);
			assert_string_equal(got, want);
		}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_xadd_like),
		cmocka_unit_test(test_lengths_at_digit_boundaries),
		cmocka_unit_test(test_binary_and_many_args),
		cmocka_unit_test(test_too_small_writes_nothing),
		cmocka_unit_test(test_append),
		cmocka_unit_test(test_i64_arg),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
