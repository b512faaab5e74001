/* clientdef.c - Prisma's client-side defaults (clientdef.h). */
#include "clientdef.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

static const char base36[] = "0123456789abcdefghijklmnopqrstuvwxyz";
/* nanoid's urlAlphabet, in its order: a byte & 63 picks one, unbiased */
static const char nanoid_alphabet[] =
	"useandom-26T198340PX75pxJACKVERYMINDBUSHWOLF_GQZbfghjklqvwyzrict";
static const char crockford[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/* The N of "name(N)", 0 for "name", -1 for anything else. */
static long spec_arg(const char *spec, const char *name)
{
	size_t n = strlen(name);
	char *end;
	long v;

	if (strncmp(spec, name, n) != 0)
		return -1;
	if (!spec[n])
		return 0;
	if (spec[n] != '(' || spec[n + 1] < '1' || spec[n + 1] > '9')
		return -1;
	errno = 0;
	v = strtol(spec + n + 1, &end, 10);
	if (errno || end[0] != ')' || end[1] || v > 255)
		return -1;
	return v;
}

bool clientdef_valid(const char *spec)
{
	long a;

	if (!spec)
		return false;
	if (strcmp(spec, "now") == 0 || strcmp(spec, "updatedAt") == 0 ||
	    strcmp(spec, "ulid") == 0)
		return true;
	if ((a = spec_arg(spec, "cuid")) >= 0)
		return a == 0 || a == 2;
	if ((a = spec_arg(spec, "uuid")) >= 0)
		return a == 0 || a == 4 || a == 7;
	a = spec_arg(spec, "nanoid");
	return a == 0 || (a >= 2 && a <= 255);
}

bool clientdef_on_update(const char *spec)
{
	return spec && strcmp(spec, "updatedAt") == 0;
}

static enum sh_err random_bytes(unsigned char *buf, size_t n)
{
	while (n > 0) {
		ssize_t got = getrandom(buf, n, 0);

		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			return SH_EIO;
		buf += got;
		n -= (size_t)got;
	}
	return SH_OK;
}

/* v, width digits of base 36, zero-padded on the left, cut on the left. */
static void put36(char *out, uint64_t v, size_t width)
{
	for (size_t i = width; i-- > 0; v /= 36)
		out[i] = base36[v % 36];
}

/* cuid v1: 'c', time (8), counter (4), fingerprint (4), random (8). */
static enum sh_err make_cuid1(int64_t now_ns, char *out)
{
	static atomic_uint counter;
	unsigned char r[8];
	char host[64] = "";
	unsigned hsum = 0;

	if (random_bytes(r, sizeof(r)))
		return SH_EIO;
	gethostname(host, sizeof(host) - 1);
	for (const char *h = host; *h; h++)
		hsum += (unsigned char)*h;
	out[0] = 'c';
	put36(out + 1, (uint64_t)(now_ns / 1000000), 8);
	put36(out + 9, atomic_fetch_add(&counter, 1) % (36u * 36 * 36 * 36), 4);
	put36(out + 13, (uint64_t)getpid(), 2);
	put36(out + 15, hsum + 36, 2);
	put36(out + 17, ((uint64_t)r[0] << 24 | (uint64_t)r[1] << 16 | r[2] << 8 | r[3]), 4);
	put36(out + 21, ((uint64_t)r[4] << 24 | (uint64_t)r[5] << 16 | r[6] << 8 | r[7]), 4);
	out[25] = '\0';
	return SH_OK;
}

/* cuid2's shape: a lowercase letter, then 23 base-36 characters. */
static enum sh_err make_cuid2(char *out)
{
	unsigned char r[24];

	if (random_bytes(r, sizeof(r)))
		return SH_EIO;
	out[0] = base36[10 + r[0] % 26];
	for (size_t i = 1; i < 24; i++)
		out[i] = base36[r[i] % 36];	/* a bias of 4/256 on a few characters */
	out[24] = '\0';
	return SH_OK;
}

static enum sh_err make_uuid(int version, int64_t now_ns, char *out)
{
	unsigned char u[16];
	size_t n = 0;

	if (random_bytes(u, sizeof(u)))
		return SH_EIO;
	if (version == 7) {
		uint64_t ms = (uint64_t)(now_ns / 1000000);

		for (int i = 0; i < 6; i++)
			u[i] = (unsigned char)(ms >> (8 * (5 - i)));
	}
	u[6] = (unsigned char)((u[6] & 0x0f) | (version << 4));
	u[8] = (unsigned char)((u[8] & 0x3f) | 0x80);
	for (int i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[n++] = '-';
		out[n++] = "0123456789abcdef"[u[i] >> 4];
		out[n++] = "0123456789abcdef"[u[i] & 15];
	}
	out[n] = '\0';
	return SH_OK;
}

static enum sh_err make_nanoid(size_t len, char *out)
{
	unsigned char r[255];

	if (random_bytes(r, len))
		return SH_EIO;
	for (size_t i = 0; i < len; i++)
		out[i] = nanoid_alphabet[r[i] & 63];
	out[len] = '\0';
	return SH_OK;
}

/* 48 bits of milliseconds (10 characters), 80 random bits (16). */
static enum sh_err make_ulid(int64_t now_ns, char *out)
{
	uint64_t ms = (uint64_t)(now_ns / 1000000);
	unsigned char r[16];

	if (random_bytes(r, sizeof(r)))
		return SH_EIO;
	for (int i = 9; i >= 0; i--, ms >>= 5)
		out[i] = crockford[ms & 31];
	for (int i = 0; i < 16; i++)
		out[10 + i] = crockford[r[i] & 31];
	out[26] = '\0';
	return SH_OK;
}

/* The time as PostgreSQL's row_to_json prints the column's type, in UTC. */
static enum sh_err make_time(const struct column *c, int64_t now_ns, char *out, size_t outlen)
{
	time_t secs = (time_t)(now_ns / 1000000000);
	int ms = (int)(now_ns / 1000000 % 1000);
	bool tz = strcmp(c->typname, "timestamptz") == 0 || strcmp(c->typname, "timetz") == 0;
	struct tm tm;
	char day[16], tod[24];

	if (!gmtime_r(&secs, &tm))
		return SH_EINVAL;
	strftime(day, sizeof(day), "%Y-%m-%d", &tm);
	snprintf(tod, sizeof(tod), "%02d:%02d:%02d.%03d%s", tm.tm_hour, tm.tm_min, tm.tm_sec,
		 ms, tz ? "+00:00" : "");
	switch (c->kind) {
	case COL_TIMESTAMP:
		snprintf(out, outlen, "%sT%s", day, tod);
		return SH_OK;
	case COL_DATE:
		snprintf(out, outlen, "%s", day);
		return SH_OK;
	case COL_TIME:
		snprintf(out, outlen, "%s", tod);
		return SH_OK;
	case COL_TEXT:	/* a String column: ISO 8601 as Prisma's Date serializes */
		snprintf(out, outlen, "%sT%02d:%02d:%02d.%03dZ", day, tm.tm_hour, tm.tm_min,
			 tm.tm_sec, ms);
		return SH_OK;
	default:
		return SH_EINVAL;
	}
}

enum sh_err clientdef_make(const struct column *c, int64_t now_ns, char *out, size_t outlen)
{
	const char *spec = c->client_default;
	long a;

	if (!clientdef_valid(spec) || outlen < CLIENTDEF_VALUE_MAX)
		return SH_EINVAL;
	if (strcmp(spec, "now") == 0 || strcmp(spec, "updatedAt") == 0)
		return make_time(c, now_ns, out, outlen);
	if (strcmp(spec, "ulid") == 0)
		return make_ulid(now_ns, out);
	if ((a = spec_arg(spec, "cuid")) >= 0)
		return a == 2 ? make_cuid2(out) : make_cuid1(now_ns, out);
	if ((a = spec_arg(spec, "uuid")) >= 0)
		return make_uuid(a == 7 ? 7 : 4, now_ns, out);
	a = spec_arg(spec, "nanoid");
	return make_nanoid(a ? (size_t)a : 21, out);
}
