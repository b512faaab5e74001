/* test_keyname.c - the key <-> file name encoding (keyname.h): every byte round trips, the
 * names that are not file names as they are get encoded, each key has one name and each name
 * at most one key, long keys get a long form that still names them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "keyname.h"

static void round_trip(const char *key)
{
	char name[KEYNAME_MAX + 1], back[KEYNAME_KEY_MAX + 1];

	assert_true(keyname_from_key(key, name));
	assert_true(name[0] != '.');
	assert_null(strchr(name, '/'));
	for (const char *p = name; *p; p++)
		assert_true((unsigned char)*p >= 0x20 && *p != 0x7f);
	assert_int_equal(keyname_to_key(name, back, sizeof(back)), KEYNAME_KEY);
	assert_string_equal(back, key);
}

static void test_every_byte(void **state)
{
	(void)state;
	for (int c = 1; c <= 0xff; c++) {
		char key[4] = { (char)c, 0 }, mid[4] = { 'a', (char)c, 'b', 0 };

		round_trip(key);
		round_trip(mid);
	}
}

static void expect_name(const char *key, const char *want)
{
	char name[KEYNAME_MAX + 1];

	assert_true(keyname_from_key(key, name));
	assert_string_equal(name, want);
	round_trip(key);
}

static void test_examples(void **state)
{
	(void)state;
	expect_name("42", "42.json");
	expect_name("a/b", "a%2Fb.json");
	expect_name("a,b", "a%2Cb.json");
	expect_name("50%", "50%25.json");
	expect_name(".", "%2E.json");
	expect_name("..", "%2E..json");
	expect_name(".hidden", "%2Ehidden.json");
	expect_name("", "%00.json");
	expect_name("a\nb", "a%0Ab.json");
	expect_name("a.b", "a.b.json");
	expect_name("caf\xc3\xa9 x", "caf\xc3\xa9 x.json");
}

/* Names that are not the encoder's output name no key: no row has two names. */
static void test_one_name_per_key(void **state)
{
	static const char *bad[] = {
		"a%2fb.json", "%41.json", "a%00b.json", "%.json", "%2.json", "%2G.json",
		"a,b.json", "x%2Ey.json", "a\nb.json", "a\x7f.json", ".json", "%25%00.json",
	};
	char pk[64];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		enum keyname_kind k = keyname_to_key(bad[i], pk, sizeof(pk));

		if (bad[i][0] == '.')
			assert_int_equal(k, KEYNAME_NONE);
		else
			assert_int_equal(k, KEYNAME_BAD);
	}
	assert_int_equal(keyname_to_key(".x.json.swp", pk, sizeof(pk)), KEYNAME_NONE);
	assert_int_equal(keyname_to_key("4913", pk, sizeof(pk)), KEYNAME_NONE);
	assert_int_equal(keyname_to_key("1.json~", pk, sizeof(pk)), KEYNAME_NONE);
}

static uint64_t lcg(uint64_t *s)
{
	*s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
	return *s >> 33;
}

/* Random keys of random bytes from a small alphabet rich in the bytes that get encoded. */
static void test_random_keys(void **state)
{
	static const char alpha[] = "./,%\n\x01\x7f" "aZ9-_ \xc3\xa9~";
	uint64_t seed = 12345;

	(void)state;
	for (int i = 0; i < 20000; i++) {
		char key[80];
		size_t n = lcg(&seed) % 60;

		for (size_t j = 0; j < n; j++)
			key[j] = alpha[lcg(&seed) % (sizeof(alpha) - 1)];
		key[n] = '\0';
		round_trip(key);
	}
}

static void test_list(void **state)
{
	const char *parts[] = { "1", "", "a,b", ".x" };
	size_t lens[] = { 1, 0, 3, 2 }, n;
	char enc[64], dec[64];

	(void)state;
	n = keyname_encode_list(parts, lens, 4, enc, sizeof(enc));
	assert_int_equal(n, strlen(enc));
	assert_string_equal(enc, "1,%00,a%2Cb,%2Ex");
	assert_true(keyname_decode_list(enc, strlen(enc), dec, sizeof(dec), &n));
	assert_int_equal(n, 4);
	assert_memory_equal(dec, "1\0\0a,b\0.x\0", 10);
	assert_false(keyname_decode_list("1,,2", 4, dec, sizeof(dec), &n));	/* empty is %00 */
	assert_false(keyname_decode_list("1,a%2c", 6, dec, sizeof(dec), &n));
	/* a cut buffer is reported, not overrun */
	assert_int_equal(keyname_encode_part("a/b", 3, enc, 4), 5);
	assert_string_equal(enc, "a%2");
	assert_false(keyname_decode_part("abcdef", 6, dec, 4, &n));
}

static void test_long_keys(void **state)
{
	char key[KEYNAME_KEY_MAX + 1], name[KEYNAME_MAX + 1], other[KEYNAME_MAX + 1], pk[64];

	(void)state;
	memset(key, 'k', 250);
	key[250] = '\0';
	assert_true(keyname_from_key(key, name));	/* 250 + ".json" = 255: plain */
	assert_int_equal(strlen(name), 255);
	key[250] = 'k';
	key[251] = '\0';
	assert_false(keyname_from_key(key, name));
	assert_true(strlen(name) <= KEYNAME_MAX);
	assert_int_equal(keyname_to_key(name, pk, sizeof(pk)), KEYNAME_LONG);
	memset(key, '/', 300);	/* 900 bytes encoded: the cut never splits a %2F */
	key[300] = '\0';
	assert_false(keyname_from_key(key, name));
	assert_int_equal(strstr(name, "%~") - name, 231);
	key[299] = '.';	/* the same prefix, another hash */
	assert_false(keyname_from_key(key, other));
	assert_string_not_equal(name, other);
	memset(key, 0, sizeof(key));
	key[0] = 'x';
	for (int i = 0; i < 130; i++)
		memcpy(key + 1 + 2 * i, "\xc3\xa9", 2);	/* é: never cut inside a character */
	assert_false(keyname_from_key(key, name));
	assert_int_equal(strstr(name, "%~") - name, 231);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_byte),
		cmocka_unit_test(test_examples),
		cmocka_unit_test(test_one_name_per_key),
		cmocka_unit_test(test_random_keys),
		cmocka_unit_test(test_list),
		cmocka_unit_test(test_long_keys),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
