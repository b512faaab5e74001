/* test_nodereg.c - the registry's heartbeat value and liveness rule, and the
 * takeover scan's reading of stream ids: pure logic, no Redis. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "nodereg.h"
#include "takeover.h"

static struct nodereg_entry sample(void)
{
	struct nodereg_entry e = { .pid = 4242, .started_s = 1700000000,
				   .seen_ms = 1700000012345, .pending = 7 };

	snprintf(e.node, sizeof(e.node), "node-\"a\"");
	snprintf(e.host, sizeof(e.host), "web-1.example");
	snprintf(e.version, sizeof(e.version), "0.9.1");
	return e;
}

static void round_trip(void **state)
{
	struct nodereg_entry e = sample(), back;
	char buf[NODEREG_JSON_MAX];

	(void)state;
	assert_true(nodereg_format(&e, buf, sizeof(buf)));
	assert_true(nodereg_parse(buf, &back));
	assert_string_equal(back.node, e.node);
	assert_string_equal(back.host, e.host);
	assert_string_equal(back.version, e.version);
	assert_int_equal(back.pid, 4242);
	assert_int_equal(back.started_s, 1700000000);
	assert_int_equal(back.seen_ms, 1700000012345);
	assert_int_equal(back.pending, 7);
}

static void format_refuses_short_buffer(void **state)
{
	struct nodereg_entry e = sample();
	char buf[40];

	(void)state;
	assert_false(nodereg_format(&e, buf, sizeof(buf)));
}

static void parse_refuses_what_is_not_ours(void **state)
{
	static const char *const bad[] = {
		"", "null", "[]", "42", "{", "not json",
		"{\"host\":\"h\",\"pid\":1,\"started\":1,\"version\":\"v\",\"seen\":1,\"pending\":0}",
		"{\"node\":\"\",\"host\":\"h\",\"pid\":1,\"started\":1,\"version\":\"v\",\"seen\":1,"
		"\"pending\":0}",
		"{\"node\":\"a\",\"host\":\"h\",\"pid\":\"1\",\"started\":1,\"version\":\"v\","
		"\"seen\":1,\"pending\":0}",
		"{\"node\":\"a\",\"host\":\"h\",\"pid\":1,\"started\":1,\"version\":\"v\","
		"\"pending\":0}",
	};
	struct nodereg_entry e;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_false(nodereg_parse(bad[i], &e));
		assert_string_equal(e.node, "");
	}
	assert_false(nodereg_parse(NULL, &e));
}

static void parse_refuses_overlong_fields(void **state)
{
	char json[NODEREG_JSON_MAX + 64], name[NODEREG_NAME_MAX + 8];
	struct nodereg_entry e;

	(void)state;
	memset(name, 'x', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	snprintf(json, sizeof(json), "{\"node\":\"%s\",\"host\":\"h\",\"pid\":1,\"started\":1,"
		 "\"version\":\"v\",\"seen\":1,\"pending\":0}", name);
	assert_false(nodereg_parse(json, &e));
}

static void alive_until_silent_past_the_limit(void **state)
{
	struct nodereg_entry list[2] = { sample(), sample() };
	int64_t seen = list[0].seen_ms;

	(void)state;
	snprintf(list[1].node, sizeof(list[1].node), "b");
	list[1].seen_ms = seen - 60000;
	assert_true(nodereg_alive(&list[0], seen));
	assert_true(nodereg_alive(&list[0], seen - 100));	/* our TIME before its beat */
	assert_true(nodereg_alive(&list[0], seen + NODEREG_SILENT_MS));
	assert_false(nodereg_alive(&list[0], seen + NODEREG_SILENT_MS + 1));
	assert_true(nodereg_is_alive(list, 2, "node-\"a\"", seen + 1000));
	assert_false(nodereg_is_alive(list, 2, "b", seen));
	assert_false(nodereg_is_alive(list, 2, "unknown", seen));	/* never registered */
	assert_false(nodereg_is_alive(list, 0, "b", seen));
}

static void stream_id_ms(void **state)
{
	(void)state;
	assert_int_equal(takeover_id_ms("1700000000123-4"), 1700000000123);
	assert_int_equal(takeover_id_ms("17"), 17);
	assert_int_equal(takeover_id_ms("0-0"), 0);
	assert_int_equal(takeover_id_ms(""), -1);
	assert_int_equal(takeover_id_ms("-1"), -1);
	assert_int_equal(takeover_id_ms("12x-1"), -1);
	assert_int_equal(takeover_id_ms(NULL), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(round_trip),
		cmocka_unit_test(format_refuses_short_buffer),
		cmocka_unit_test(parse_refuses_what_is_not_ours),
		cmocka_unit_test(parse_refuses_overlong_fields),
		cmocka_unit_test(alive_until_silent_past_the_limit),
		cmocka_unit_test(stream_id_ms),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
