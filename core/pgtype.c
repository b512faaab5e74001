/* pgtype.c - PostgreSQL's checks on a value's type alone, in C (pgtype.h). */
#include "pgtype.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* n digits at s as a number (n <= 9), -1 when not all digits. */
static long digits(const char *s, size_t n)
{
	long v = 0;

	for (size_t i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

static size_t span_digits(const char *s)
{
	return strspn(s, "0123456789");
}

/* ---- dates and times ---------------------------------------------------- */

struct ymd {
	long y, m, d;
	bool bc;
};

/* Gregorian, proleptic: 1 BC is astronomical year 0, a leap year. */
static bool leap(long y, bool bc)
{
	long a = bc ? 1 - y : y;

	return (a % 4 == 0 && a % 100 != 0) || a % 400 == 0;
}

static int month_days(long y, long m, bool bc)
{
	static const int days[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

	return m == 2 && leap(y, bc) ? 29 : days[m - 1];
}

/* YYYY-MM-DD (4 to 7 year digits) at s: its length, 0 when not a real day. */
static size_t scan_ymd(const char *s, struct ymd *t)
{
	size_t ny = span_digits(s);

	if (ny < 4 || ny > 7 || strlen(s) < ny + 6 || s[ny] != '-' || s[ny + 3] != '-')
		return 0;
	t->y = digits(s, ny);
	t->m = digits(s + ny + 1, 2);
	t->d = digits(s + ny + 4, 2);
	if (t->y < 1 || t->m < 1 || t->m > 12 || t->d < 1)	/* there is no year 0000 */
		return 0;
	if (isdigit((unsigned char)s[ny + 6]))
		return 0;
	t->bc = false;
	return ny + 6;
}

/* The first day a date or timestamp can hold is 4714-11-24 BC (Julian day 0). */
static bool after_first_day(const struct ymd *t)
{
	if (!t->bc || t->y < 4714)
		return true;
	return t->y == 4714 && (t->m == 12 || (t->m == 11 && t->d >= 24));
}

static bool is_bc_suffix(const char *s)
{
	return strcasecmp(s, " BC") == 0;
}

static bool is_infinity(const char *s)
{
	return strcasecmp(s, "infinity") == 0 || strcasecmp(s, "-infinity") == 0 ||
	       strcasecmp(s, "+infinity") == 0;
}

bool pgt_date(const char *s)
{
	struct ymd t;
	size_t n;

	if (is_infinity(s))
		return true;
	if (!(n = scan_ymd(s, &t)))
		return false;
	if (s[n]) {
		if (!is_bc_suffix(s + n))
			return false;
		t.bc = true;
	}
	if (t.d > month_days(t.y, t.m, t.bc))
		return false;
	return t.bc ? after_first_day(&t) : t.y <= 5874897;
}

/* H:MM[:SS[.frac]] at s: its length, 0 when not a time of day. */
static size_t scan_hms(const char *s)
{
	size_t nh = span_digits(s), i, nf = 0;
	long h, m, sec = 0;
	bool frac_nonzero = false;

	if (nh < 1 || nh > 2 || s[nh] != ':' || (m = digits(s + nh + 1, 2)) < 0)
		return 0;
	h = digits(s, nh);
	i = nh + 3;
	if (s[i] == ':') {
		if ((sec = digits(s + i + 1, 2)) < 0 || isdigit((unsigned char)s[i + 3]))
			return 0;
		i += 3;
		if (s[i] == '.') {
			if (!(nf = span_digits(s + i + 1)))
				return 0;
			for (size_t k = 0; k < nf; k++)
				frac_nonzero |= s[i + 1 + k] != '0';
			i += 1 + nf;
		}
	} else if (isdigit((unsigned char)s[i])) {
		return 0;
	}
	if (m > 59 || sec > 60 || h > 24)
		return 0;
	if ((h == 24 && (m || sec || frac_nonzero)) || (sec == 60 && frac_nonzero))
		return 0;
	return i;
}

/* Z, or +HH, +HHMM, +HH:MM, +HH:MM:SS (also -), up to 15:59:59; "" too. */
static bool is_zone(const char *s)
{
	size_t n;

	if (!*s || strcmp(s, "Z") == 0 || strcmp(s, "z") == 0)
		return true;
	if (*s != '+' && *s != '-')
		return false;
	s++;
	n = span_digits(s);
	if (n == 4 && !s[4])
		return digits(s, 2) < 16 && digits(s + 2, 2) < 60;
	if (n != 2 || digits(s, n) > 15)
		return false;
	s += n;
	for (int part = 0; part < 2 && *s == ':'; part++) {
		if (span_digits(s + 1) != 2 || digits(s + 1, 2) > 59)
			return false;
		s += 3;
	}
	return !*s;
}

bool pgt_time(const char *s)
{
	size_t n = scan_hms(s);

	return n && is_zone(s + n + (s[n] == ' '));
}

bool pgt_timestamp(const char *s)
{
	char rest[64];
	struct ymd t;
	size_t n, len;

	if (is_infinity(s))
		return true;
	if (!(n = scan_ymd(s, &t)))
		return false;
	len = strlen(s);
	if (len >= 3 && is_bc_suffix(s + len - 3)) {
		t.bc = true;
		len -= 3;
	}
	if (t.d > month_days(t.y, t.m, t.bc))
		return false;
	if (t.bc ? !after_first_day(&t) : t.y > 294276)
		return false;
	if (n == len)
		return true;
	if (s[n] != 'T' && s[n] != 't' && s[n] != ' ')
		return false;
	if (len - n - 1 >= sizeof(rest))
		return false;
	memcpy(rest, s + n + 1, len - n - 1);
	rest[len - n - 1] = '\0';
	n = scan_hms(rest);
	return n && is_zone(rest + n + (rest[n] == ' '));
}

/* ---- numbers ------------------------------------------------------------ */

#define NUMERIC_INT_DIGITS_MAX 131072
#define NUMERIC_DSCALE_MAX 16383

static bool is_special(const char *s, const char *const *words)
{
	for (size_t i = 0; words[i]; i++)
		if (strcasecmp(s, words[i]) == 0)
			return true;
	return false;
}

/* Decimal text: its digits start at *digits_at and span *ndigits bytes
 * (a '.' included), and value = those digits * 10^-frac. false when not
 * decimal text. */
static bool scan_decimal(const char *s, long long *frac, const char **digits_at,
			 size_t *ndigits)
{
	const char *p = s;
	size_t ni, nf;
	long long e = 0;

	if (*p == '+' || *p == '-')
		p++;
	*digits_at = p;
	ni = span_digits(p);
	nf = p[ni] == '.' ? span_digits(p + ni + 1) : 0;
	if (ni + nf == 0)
		return false;
	p += ni + (p[ni] == '.' ? 1 + nf : 0);
	*ndigits = ni + nf + ((*digits_at)[ni] == '.');
	if (*p == 'e' || *p == 'E') {
		char *end;

		errno = 0;
		e = strtoll(p + 1, &end, 10);
		if (end == p + 1 || !isdigit((unsigned char)end[-1]))
			return false;
		if (errno || e > INT_MAX / 2 || e < -(INT_MAX / 2))
			e = e > 0 ? LLONG_MAX / 4 : -(LLONG_MAX / 4);
		p = end;
	}
	if (*p)
		return false;	/* blanks too: PostgreSQL takes them, but never prints them */
	*frac = (long long)nf - e;
	return true;
}

/* Digits of text (ignoring a '.') as a plain digit string, leading zeros
 * dropped; NULL when out of memory. */
static char *plain_digits(const char *p, size_t n)
{
	char *d = malloc(n + 1);
	size_t k = 0;

	if (!d)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (isdigit((unsigned char)p[i]) && (k || p[i] != '0'))
			d[k++] = p[i];
	d[k] = '\0';
	return d;
}

/* Does integer digit string d (no leading zeros), rounded half away from
 * zero after dropping its last drop digits, have at most max digits? */
static bool rounded_fits(const char *d, long long drop, long long max)
{
	long long n = (long long)strlen(d), kept = n - drop;
	bool up;

	if (n == 0 || kept < 0)
		return true;	/* zero, or rounds to zero */
	up = drop > 0 && d[kept] >= '5';
	if (!up)
		return kept <= max;
	for (long long i = 0; i < kept; i++)
		if (d[i] != '9')
			return kept <= max;
	return kept + 1 <= max;	/* 99.5 rounds to 100 */
}

bool pgt_numeric(const char *s, int32_t typmod)
{
	static const char *const nan[] = { "NaN", NULL };
	static const char *const inf[] = { "Infinity", "+Infinity", "-Infinity", "inf", "+inf",
					   "-inf", NULL };
	const char *at;
	size_t nd;
	long long frac, p, sc, n;
	char *d;
	bool ok;

	if (is_special(s, nan))
		return true;
	if (is_special(s, inf))
		return typmod < 4;	/* numeric(p,s) cannot hold an infinity */
	if (!scan_decimal(s, &frac, &at, &nd))
		return false;
	if (!(d = plain_digits(at, nd)))
		return false;
	n = (long long)strlen(d);
	if (typmod < 4) {
		ok = (frac < 0 ? 0 : frac) <= NUMERIC_DSCALE_MAX &&
		     (n == 0 || n - frac <= NUMERIC_INT_DIGITS_MAX);
	} else {
		p = ((typmod - 4) >> 16) & 0xffff;
		sc = (int16_t)(((typmod - 4) & 0x7ff) << 5) >> 5;	/* 11-bit signed */
		/* value = d * 10^-frac; as an integer of scale sc: drop frac - sc
		 * digits (rounding), or add sc - frac zeros */
		if (frac >= sc)
			ok = rounded_fits(d, frac - sc, p);
		else
			ok = n == 0 || n + (sc - frac) <= p;
	}
	free(d);
	return ok;
}

bool pgt_float_text(const char *s)
{
	static const char *const special[] = { "NaN", "Infinity", "+Infinity", "-Infinity",
					       "inf", "+inf", "-inf", NULL };

	return is_special(s, special);
}

/* ---- text ----------------------------------------------------------------- */

bool pgt_chars(const char *s, int32_t typmod)
{
	long long n = 0, max = (long long)typmod - 4;

	if (typmod < 4)
		return true;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if ((*p & 0xc0) == 0x80)
			continue;	/* a continuation byte: same character */
		if (++n > max && *p != ' ')
			return false;
	}
	return true;
}

/* ---- network ------------------------------------------------------------ */

bool pgt_inet(const char *s, bool cidr)
{
	unsigned char addr[16];
	char host[64];
	const char *slash = strchr(s, '/');
	size_t hl = slash ? (size_t)(slash - s) : strlen(s);
	int family, maxbits;
	long bits;

	if (hl == 0 || hl >= sizeof(host))
		return false;
	memcpy(host, s, hl);
	host[hl] = '\0';
	family = strchr(host, ':') ? AF_INET6 : AF_INET;
	maxbits = family == AF_INET6 ? 128 : 32;
	if (inet_pton(family, host, addr) != 1)
		return false;
	bits = maxbits;
	if (slash) {
		size_t nd = span_digits(slash + 1);

		if (nd < 1 || nd > 3 || slash[1 + nd] || (bits = digits(slash + 1, nd)) > maxbits)
			return false;
	}
	if (cidr) {
		for (int b = (int)bits; b < maxbits; b++)
			if (addr[b / 8] & (0x80 >> (b % 8)))
				return false;
	}
	return true;
}

bool pgt_macaddr(const char *s)
{
	static const char *const forms[] = {
		"xx:xx:xx:xx:xx:xx", "xx-xx-xx-xx-xx-xx", "xxxxxx:xxxxxx", "xxxxxx-xxxxxx",
		"xxxx.xxxx.xxxx", "xxxx-xxxx-xxxx", "xxxxxxxxxxxx",
	};

	for (size_t f = 0; f < sizeof(forms) / sizeof(forms[0]); f++) {
		const char *p = forms[f], *q = s;

		while (*p && *q && (*p == 'x' ? isxdigit((unsigned char)*q) : *p == *q)) {
			p++;
			q++;
		}
		if (!*p && !*q)
			return true;
	}
	return false;
}

/* ---- interval ------------------------------------------------------------ */

static bool is_unit(const char *w, size_t n)
{
	static const char *const units[] = {
		"microsecond", "microseconds", "usec", "usecs", "us", "millisecond",
		"milliseconds", "msec", "msecs", "ms", "second", "seconds", "sec", "secs", "s",
		"minute", "minutes", "min", "mins", "m", "hour", "hours", "hr", "hrs", "h",
		"day", "days", "d", "week", "weeks", "w", "month", "months", "mon", "mons",
		"year", "years", "yr", "yrs", "y", "decade", "decades", "dec", "decs", "century",
		"centuries", "c", "millennium", "millennia", "mil", "mils", NULL,
	};

	for (size_t i = 0; units[i]; i++)
		if (strlen(units[i]) == n && strncasecmp(w, units[i], n) == 0)
			return true;
	return false;
}

/* [+-]digits[.digits] at s: its length, 0 when none. */
static size_t scan_number(const char *s)
{
	size_t i = (*s == '+' || *s == '-'), ni = span_digits(s + i), nf = 0;

	if (s[i + ni] == '.')
		nf = 1 + span_digits(s + i + ni + 1);
	return ni + (nf > 1 ? nf : 0) ? i + ni + nf : 0;
}

/* [+-]H+:MM[:SS[.frac]] (hours unbounded) at s: its length, 0 when none. */
static size_t scan_interval_time(const char *s)
{
	size_t i = (*s == '+' || *s == '-'), nh = span_digits(s + i);

	if (!nh || s[i + nh] != ':' || span_digits(s + i + nh + 1) != 2 ||
	    digits(s + i + nh + 1, 2) > 59)
		return 0;
	i += nh + 3;
	if (s[i] == ':') {
		if (span_digits(s + i + 1) != 2 || digits(s + i + 1, 2) > 59)
			return 0;
		i += 3;
		if (s[i] == '.')
			i += 1 + span_digits(s + i + 1);
	}
	return i;
}

static bool iso_interval(const char *s)
{
	bool time = false, any = false;

	for (s++; *s; ) {
		size_t n;

		if (*s == 'T' && !time) {
			time = true;
			s++;
			continue;
		}
		if (!(n = scan_number(s)))
			return false;
		s += n;
		if (!strchr(time ? "HMS" : "YMWD", *s) || !*s)
			return false;
		s++;
		any = true;
	}
	return any;
}

bool pgt_interval(const char *s)
{
	bool any = false, ago = false;

	while (*s == ' ')
		s++;
	if (*s == 'P')
		return iso_interval(s);
	if (*s == '@')
		s++;
	while (*s) {
		size_t n;

		while (*s == ' ')
			s++;
		if (!*s)
			break;
		if (ago)
			return false;	/* "ago" comes last */
		if (strncasecmp(s, "ago", 3) == 0 && (!s[3] || s[3] == ' ') && any) {
			ago = true;
			s += 3;
		} else if ((n = scan_interval_time(s))) {
			s += n;
			any = true;
		} else if ((n = scan_number(s))) {
			const char *w;

			s += n;
			while (*s == ' ')
				s++;
			w = s;
			while (isalpha((unsigned char)*s))
				s++;
			if (s > w && !is_unit(w, (size_t)(s - w)))
				return false;
			any = true;
		} else {
			return false;
		}
		if (*s && *s != ' ')
			return false;
	}
	return any;
}

/* ---- binary ------------------------------------------------------------- */

bool pgt_bytea(const char *s)
{
	if (s[0] == '\\' && s[1] == 'x') {
		size_t n = 0;

		for (s += 2; *s; s++) {
			if (isxdigit((unsigned char)*s))
				n++;
			else if (!isspace((unsigned char)*s) || n % 2)
				return false;	/* a blank only between pairs */
		}
		return n % 2 == 0;
	}
	for (; *s; s++) {
		if (*s != '\\')
			continue;
		if (s[1] == '\\') {
			s++;
		} else if (s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
			   s[3] >= '0' && s[3] <= '7') {
			s += 3;
		} else {
			return false;
		}
	}
	return true;
}

bool pgt_money_number(double v)
{
	return isfinite(v) && fabs(v) <= 92233720368547758.07;
}

bool pgt_money(const char *s)
{
	unsigned __int128 cents = 0;
	const unsigned __int128 max = (unsigned __int128)INT64_MAX;
	bool paren = false, neg = false, any = false;
	int decimals = -1;

	while (*s == ' ')
		s++;
	if (*s == '(' || *s == '-') {
		paren = *s == '(';
		neg = true;
		s++;
	}
	if (*s == '$')
		s++;
	for (; *s; s++) {
		if (isdigit((unsigned char)*s)) {
			if (decimals >= 2) {
				if (decimals == 2 && *s >= '5')
					cents++;	/* PostgreSQL rounds the third decimal */
				decimals = 3;
				continue;
			}
			cents = cents * 10 + (unsigned)(*s - '0');
			if (cents > max + 1)
				return false;
			decimals += decimals >= 0;
			any = true;
		} else if (*s == ',' && decimals < 0) {
			continue;
		} else if (*s == '.' && decimals < 0) {
			decimals = 0;
		} else {
			break;
		}
	}
	if (!any)
		return false;
	for (int d = decimals < 0 ? 0 : decimals; d < 2; d++)
		cents *= 10;
	if (paren && *s++ != ')')
		return false;
	while (*s == ' ')
		s++;
	return !*s && cents <= max + (neg ? 1 : 0);
}

bool pgt_bit(const char *s, int32_t typmod, bool varying)
{
	size_t n;

	if (*s == 'x' || *s == 'X') {
		size_t h = strspn(s + 1, "0123456789abcdefABCDEF");

		if (s[1 + h])
			return false;
		n = h * 4;
	} else {
		if (*s == 'b' || *s == 'B')
			s++;
		n = strspn(s, "01");
		if (s[n])
			return false;
	}
	if (typmod < 0)
		return true;
	return varying ? n <= (size_t)typmod : n == (size_t)typmod;
}

/* ---- ranges ------------------------------------------------------------- */

/* One bound of a range, unquoted, into buf (cap bytes): its length in s, 0
 * when malformed; empty (*present false) for an infinite bound. */
static size_t range_bound(const char *s, char *buf, size_t cap, bool *present)
{
	size_t i = 0, k = 0;

	*present = false;
	if (s[0] == '"') {
		for (i = 1; s[i] && !(s[i] == '"' && s[i + 1] != '"'); i++) {
			if (s[i] == '\\' || s[i] == '"')
				i++;
			if (!s[i] || k + 1 >= cap)
				return 0;
			buf[k++] = s[i];
		}
		if (s[i] != '"')
			return 0;
		i++;
		*present = true;
	} else {
		for (; s[i] && !strchr(",)]", s[i]); i++) {
			if (k + 1 >= cap || strchr("\"\\([", s[i]))
				return 0;
			buf[k++] = s[i];
		}
		*present = k > 0;
	}
	buf[k] = '\0';
	return i;	/* 0: no bound here (the caller handles an empty one) */
}

static bool range_value(const char *v, const char *typname, long long *iv)
{
	char *end;

	if (strcmp(typname, "int4range") == 0 || strcmp(typname, "int8range") == 0) {
		bool four = typname[3] == '4';

		errno = 0;
		*iv = strtoll(v, &end, 10);
		return !errno && end != v && !*end && !isspace((unsigned char)*v) &&
		       (!four || (*iv >= INT32_MIN && *iv <= INT32_MAX));
	}
	if (strcmp(typname, "numrange") == 0)
		return pgt_numeric(v, -1);
	if (strcmp(typname, "daterange") == 0)
		return pgt_date(v);
	return pgt_timestamp(v);	/* tsrange, tstzrange */
}

bool pgt_range(const char *s, const char *typname)
{
	char lo[128], hi[128];
	long long a = 0, b = 0;
	bool has_lo, has_hi, ints = strstr(typname, "int") == typname;
	size_t n;

	if (strcasecmp(s, "empty") == 0)
		return true;
	if (*s != '[' && *s != '(')
		return false;
	s++;
	if (*s == ',') {
		has_lo = false;
	} else {
		if (!(n = range_bound(s, lo, sizeof(lo), &has_lo)))
			return false;
		s += n;
	}
	if (*s++ != ',')
		return false;
	if (*s == ']' || *s == ')') {
		has_hi = false;
	} else {
		if (!(n = range_bound(s, hi, sizeof(hi), &has_hi)))
			return false;
		s += n;
	}
	if ((*s != ']' && *s != ')') || s[1])
		return false;
	if ((has_lo && !range_value(lo, typname, &a)) || (has_hi && !range_value(hi, typname, &b)))
		return false;
	return !(ints && has_lo && has_hi && a > b);
}

/* ---- text search ------------------------------------------------------------ */

/* :pos[weight],... at s: its length (0 when there is none), or -1. */
static long tsv_positions(const char *s)
{
	size_t i = 1;

	if (*s != ':')
		return 0;
	for (;;) {
		size_t nd = span_digits(s + i);
		long p = nd && nd <= 6 ? digits(s + i, nd) : (nd ? 16383 : 0);

		if (!nd || p < 1)
			return -1;
		i += nd;
		if (s[i] && strchr("ABCDabcd*", s[i]))
			i++;
		if (s[i] != ',')
			return (long)i;
		i++;
	}
}

bool pgt_tsvector(const char *s)
{
	for (;;) {
		long np;

		while (isspace((unsigned char)*s))
			s++;
		if (!*s)
			return true;
		if (*s == '\'') {
			size_t len = 0;

			for (s++; *s && !(*s == '\'' && s[1] != '\''); s++, len++) {
				if (*s == '\\' || *s == '\'')
					s++;
				if (!*s)
					return false;
			}
			if (*s != '\'' || !len)
				return false;
			s++;
		} else {
			size_t len = 0;

			for (; *s && !isspace((unsigned char)*s) && *s != ':'; s++, len++) {
				if (*s == '\\' && !*++s)
					return false;
				if (*s == '\'')
					return false;
			}
			if (!len)
				return false;
		}
		if ((np = tsv_positions(s)) < 0)
			return false;
		s += np;
		if (*s && !isspace((unsigned char)*s))
			return false;
	}
}

/* ---- uuid ------------------------------------------------------------------- */

bool pgt_uuid(const char *s)
{
	size_t len = strlen(s), n = 0;

	for (size_t i = 0; i < len; i++) {
		if (isxdigit((unsigned char)s[i])) {
			n++;
		} else if (s[i] != '-' || n == 0 || n % 4 || i + 1 == len || s[i + 1] == '-') {
			return false;
		}
	}
	return n == 32;
}
