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

static struct nodereg_entry node_at(const char *name, int64_t pid, int64_t seen_ms)
{
	struct nodereg_entry e = { .pid = pid, .started_s = 1, .seen_ms = seen_ms };

	snprintf(e.node, sizeof(e.node), "%s", name);
	return e;
}

/* Every node in list beat at now. */
static void beat(struct nodereg_entry *list, size_t n, int64_t now)
{
	for (size_t i = 0; i < n; i++)
		list[i].seen_ms = now;
}

/* The scan runs for a while after a start or a change of the live nodes,
 * while a node is freshly silent, and else only every TAKEOVER_QUIET_MS. */
static void scan_due_when_something_may_be_left(void **state)
{
	struct takeover_state ts = { 0 };
	int64_t t = 1000000, t0;
	struct nodereg_entry live[2] = { node_at("a", 1, t), node_at("b", 2, t) };

	(void)state;
	assert_true(takeover_due(&ts, live, 2, t));	/* just started */
	beat(live, 2, t + 2000);
	assert_true(takeover_due(&ts, live, 2, t + 2000));
	t0 = t + 2000;	/* the last scan */
	t += TAKEOVER_CHANGE_MS;
	beat(live, 2, t);
	assert_false(takeover_due(&ts, live, 2, t));	/* quiet */
	beat(live, 2, t0 + TAKEOVER_QUIET_MS - 1);
	assert_false(takeover_due(&ts, live, 2, t0 + TAKEOVER_QUIET_MS - 1));
	beat(live, 2, t0 + TAKEOVER_QUIET_MS);
	assert_true(takeover_due(&ts, live, 2, t0 + TAKEOVER_QUIET_MS));	/* the safety net */
	t = t0 + TAKEOVER_QUIET_MS + 2000;
	beat(live, 2, t);
	assert_false(takeover_due(&ts, live, 2, t));

	/* b restarts quickly (never silent): a new pid is a change */
	live[1].pid = 3;
	t += 2000;
	beat(live, 2, t);
	assert_true(takeover_due(&ts, live, 2, t));
	beat(live, 2, t + TAKEOVER_CHANGE_MS - 1);
	assert_true(takeover_due(&ts, live, 2, t + TAKEOVER_CHANGE_MS - 1));
	beat(live, 2, t + TAKEOVER_CHANGE_MS);
	assert_false(takeover_due(&ts, live, 2, t + TAKEOVER_CHANGE_MS));

	/* b falls silent at t: scans while it is freshly silent, then the safety net only */
	t += TAKEOVER_CHANGE_MS;
	live[0].seen_ms = t + NODEREG_SILENT_MS + 1;
	assert_true(takeover_due(&ts, live, 2, t + NODEREG_SILENT_MS + 1));
	live[0].seen_ms = t + TAKEOVER_SILENT_MS - 1;
	assert_true(takeover_due(&ts, live, 2, t + TAKEOVER_SILENT_MS - 1));
	live[0].seen_ms = t + TAKEOVER_SILENT_MS;
	assert_false(takeover_due(&ts, live, 2, t + TAKEOVER_SILENT_MS));

	/* b gone from the list (left cleanly, or forgotten): a is all there is, as before */
	live[0].seen_ms = t + TAKEOVER_SILENT_MS + 1000;
	assert_false(takeover_due(&ts, live, 1, t + TAKEOVER_SILENT_MS + 1000));
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
		cmocka_unit_test(scan_due_when_something_may_be_left),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
