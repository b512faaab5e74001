/* keyname.c - the encoding of keys into file names (keyname.h). */
#include "keyname.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define LONG_MARK "%~"
#define LONG_HASH_LEN 16
#define LONG_PREFIX_MAX (KEYNAME_MAX - sizeof(KEYNAME_SUFFIX) + 1 - sizeof(LONG_MARK) + 1 - \
			 LONG_HASH_LEN)

static const char hex[] = "0123456789ABCDEF";

static bool must_escape(unsigned char c, size_t pos)
{
	return c < 0x20 || c == 0x7f || c == '/' || c == ',' || c == '%' || (pos == 0 && c == '.');
}

/* Append len bytes to out at *n, counting what does not fit. */
static void put(char *out, size_t outlen, size_t *n, const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++, (*n)++)
		if (*n + 1 < outlen)
			out[*n] = s[i];
}

static void terminate(char *out, size_t outlen, size_t n)
{
	if (outlen)
		out[n < outlen ? n : outlen - 1] = '\0';
}

static void encode_into(const char *part, size_t len, char *out, size_t outlen, size_t *n)
{
	if (len == 0) {
		put(out, outlen, n, "%00", 3);
		return;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)part[i];
		char esc[3] = { '%', hex[c >> 4], hex[c & 15] };

		if (must_escape(c, i))
			put(out, outlen, n, esc, 3);
		else
			put(out, outlen, n, &part[i], 1);
	}
}

size_t keyname_encode_part(const char *part, size_t len, char *out, size_t outlen)
{
	size_t n = 0;

	encode_into(part, len, out, outlen, &n);
	terminate(out, outlen, n);
	return n;
}

size_t keyname_encode_list(const char *const *parts, const size_t *lens, size_t n, char *out,
			   size_t outlen)
{
	size_t w = 0;

	for (size_t i = 0; i < n; i++) {
		if (i)
			put(out, outlen, &w, ",", 1);
		encode_into(parts[i], lens[i], out, outlen, &w);
	}
	terminate(out, outlen, w);
	return w;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;	/* lower case is not the encoder's: not canonical */
}

bool keyname_decode_part(const char *enc, size_t len, char *out, size_t outlen, size_t *outn)
{
	size_t n = 0;

	if (len == 3 && memcmp(enc, "%00", 3) == 0) {
		if (!outlen)
			return false;
		out[0] = '\0';
		*outn = 0;
		return true;
	}
	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++, n++) {
		unsigned char c = (unsigned char)enc[i];

		if (c == '%') {
			int hi = i + 2 < len ? hexval(enc[i + 1]) : -1;
			int lo = hi >= 0 ? hexval(enc[i + 2]) : -1;

			if (lo < 0)
				return false;
			c = (unsigned char)(hi << 4 | lo);
			if (!must_escape(c, n))	/* also refuses %00 inside a part */
				return false;
			i += 2;
		} else if (must_escape(c, n)) {
			return false;
		}
		if (n + 1 >= outlen)
			return false;
		out[n] = (char)c;
	}
	out[n] = '\0';
	*outn = n;
	return true;
}

bool keyname_decode_list(const char *enc, size_t len, char *out, size_t outlen, size_t *nparts)
{
	size_t used = 0, start = 0;

	*nparts = 0;
	for (size_t i = 0; i <= len; i++) {
		size_t partn;

		if (i < len && enc[i] != ',')
			continue;
		if (used >= outlen ||
		    !keyname_decode_part(enc + start, i - start, out + used, outlen - used, &partn))
			return false;
		used += partn + 1;
		(*nparts)++;
		start = i + 1;
	}
	return true;
}

static bool has_suffix(const char *name, size_t n)
{
	size_t s = strlen(KEYNAME_SUFFIX);

	return n >= s && strcmp(name + n - s, KEYNAME_SUFFIX) == 0;
}

enum keyname_kind keyname_to_key(const char *name, char *pk, size_t pklen)
{
	size_t n = strlen(name), len = n - strlen(KEYNAME_SUFFIX), pkn;

	if (name[0] == '.' || !has_suffix(name, n))
		return KEYNAME_NONE;
	if (n > KEYNAME_MAX)
		return KEYNAME_BAD;
	if (len > strlen(LONG_MARK) + LONG_HASH_LEN &&
	    memcmp(name + len - LONG_HASH_LEN - strlen(LONG_MARK), LONG_MARK, strlen(LONG_MARK)) == 0)
		return KEYNAME_LONG;
	return keyname_decode_part(name, len, pk, pklen, &pkn) && pkn == strlen(pk) ? KEYNAME_KEY
										    : KEYNAME_BAD;
}

static uint64_t fnv1a(const char *s)
{
	uint64_t h = 14695981039346656037ULL;

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h;
}

/* Where to cut the encoded key: at most max bytes, never inside a %XX
 * escape or a UTF-8 character, so the prefix reads as the key's start. */
static size_t cut_at(const char *enc, size_t max)
{
	size_t cut = max;

	if (cut >= 1 && enc[cut - 1] == '%')
		cut -= 1;
	else if (cut >= 2 && enc[cut - 2] == '%')
		cut -= 2;
	while (cut > 0 && ((unsigned char)enc[cut] & 0xc0) == 0x80)
		cut--;
	return cut;
}

/* The file name of an encoded key enc (n bytes); the long form hashes pk. */
static bool name_of(const char *enc, size_t n, const char *pk, char name[KEYNAME_MAX + 1])
{
	size_t cut;

	if (n + strlen(KEYNAME_SUFFIX) <= KEYNAME_MAX) {
		snprintf(name, KEYNAME_MAX + 1, "%s" KEYNAME_SUFFIX, enc);
		return true;
	}
	cut = cut_at(enc, LONG_PREFIX_MAX);
	snprintf(name, KEYNAME_MAX + 1, "%.*s%s%016" PRIx64 KEYNAME_SUFFIX, (int)cut,
		 enc, LONG_MARK, fnv1a(pk));
	return false;
}

bool keyname_from_key(const char *pk, char name[KEYNAME_MAX + 1])
{
	char enc[KEYNAME_MAX + 1];

	return name_of(enc, keyname_encode_part(pk, strlen(pk), enc, sizeof(enc)), pk, name);
}

bool keyname_from_list(const char *pk, char name[KEYNAME_MAX + 1])
{
	char enc[KEYNAME_MAX + 1];

	snprintf(enc, sizeof(enc), "%s", pk);
	return name_of(enc, strlen(pk), pk, name);
}
