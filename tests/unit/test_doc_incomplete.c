/* test_doc_incomplete.c - doc_incomplete (is the text so far an unfinished JSON prefix?) gives
 * json-c's answer: every prefix of records with nested values, braces and escapes inside
 * strings and multi-byte characters, and 200,000 random texts, against the plain json-c parse
 * that doc_incomplete did for every text before its scan of closed objects. */
#include <ctype.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include <json-c/json.h>

#include "doc.h"

/* doc_incomplete as it was: json-c on every text (utf8 cut at the end aside: the texts
 * here that end inside a character are compared only where that does not matter). */
static bool reference(const char *body, size_t len)
{
	struct json_tokener *tok;
	struct json_object *obj;
	size_t i = 0;
	bool incomplete;

	while (i < len && isspace((unsigned char)body[i]))
		i++;
	if (i == len)
		return true;
	tok = json_tokener_new();
	assert_non_null(tok);
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	obj = json_tokener_parse_ex(tok, body, (int)len);
	incomplete = !obj && json_tokener_get_error(tok) == json_tokener_continue;
	json_object_put(obj);
	json_tokener_free(tok);
	return incomplete;
}

static const char *const docs[] = {
	"{\"id\":7,\"email\":\"a@b.c\",\"name\":\"x\"}",
	"  {\"a\":{\"b\":[1,2,{\"c\":null}]},\"d\":true}\n",
	"{\"s\":\"}]{[\",\"t\":\"\\\"}\",\"u\":\"\\\\\"}",
	"{\"e\":\"\\u00e9\\n\",\"f\":\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"}",
	"{\"n\":-1.5e+10,\"m\":[[],[{}]],\"o\":{}}",
	"[1,2,3]",
	"{}",
};

static void test_prefixes_of_records(void **state)
{
	(void)state;
	for (size_t d = 0; d < sizeof(docs) / sizeof(docs[0]); d++) {
		size_t n = strlen(docs[d]);

		for (size_t len = 0; len <= n; len++) {
			/* a prefix cut inside a character is doc_incomplete's own case */
			if (len < n && ((unsigned char)docs[d][len] & 0xc0) == 0x80)
				continue;
			if (doc_incomplete(docs[d], len) != reference(docs[d], len))
				fail_msg("doc %zu, prefix of %zu bytes: '%.*s'", d, len, (int)len,
					 docs[d]);
		}
		assert_false(doc_incomplete(docs[d], n));
	}
}

static void test_not_incomplete(void **state)
{
	static const char *const texts[] = {
		"{]", "{\"a\":1}}", "{\"a\":}", "{} {", "{\"a\":1} trailing", "{\"a\":\"x\"}\xc3",
		"{/* c */}", "{'a':1}", "}", "x",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++)
		assert_false(doc_incomplete(texts[i], strlen(texts[i])));
	assert_true(doc_incomplete("", 0));
	assert_true(doc_incomplete(" \n", 2));
	assert_true(doc_incomplete("{\"a\":\"}", 7));
	assert_true(doc_incomplete("{\"a\":\"\\\"}", 9));
	assert_true(doc_incomplete("{\"a\":\"caf\xc3", 10));	/* cut inside a character */
}

static uint64_t next(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void test_random_texts(void **state)
{
	static const char alphabet[] = "{}[]\"\\:, a1tn-/'\n";
	uint64_t s = 88172645463325252ULL;
	char buf[24];

	(void)state;
	for (int k = 0; k < 200000; k++) {
		size_t len = (size_t)(next(&s) % sizeof(buf));

		for (size_t i = 0; i < len; i++)
			buf[i] = alphabet[next(&s) % (sizeof(alphabet) - 1)];
		if (len && next(&s) % 2)
			buf[0] = '{';
		if (doc_incomplete(buf, len) != reference(buf, len))
			fail_msg("'%.*s'", (int)len, buf);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_prefixes_of_records),
		cmocka_unit_test(test_not_incomplete),
		cmocka_unit_test(test_random_texts),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
