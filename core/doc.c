/* doc.c - parse, validate and merge record documents (json-c). */
#include "doc.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "clientdef.h"
#include "clock.h"

#define PK_TEXT_MAX 255

static enum sh_err refuse(char *why, size_t whylen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static enum sh_err refuse(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
	return SH_EINVAL;
}

static int all_digits(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!isdigit((unsigned char)s[i]))
			return 0;
	return n > 0;
}

/* Canonical decimal integer: optional '-', no leading zeros, in [min, max]. */
static int parse_int_key(const char *s, int64_t min, int64_t max, int64_t *v)
{
	const char *d = s[0] == '-' ? s + 1 : s;
	char *end;

	if (!all_digits(d, strlen(d)) || (d[0] == '0' && d[1]) || (s[0] == '-' && d[0] == '0'))
		return 0;
	errno = 0;
	*v = strtoll(s, &end, 10);
	return errno == 0 && *end == '\0' && *v >= min && *v <= max;
}

static int is_uuid(const char *s)
{
	size_t n = strlen(s);

	if (n == 32)
		return strspn(s, "0123456789abcdefABCDEF") == 32;
	if (n != 36)
		return 0;
	for (size_t i = 0; i < n; i++) {
		int dash = i == 8 || i == 13 || i == 18 || i == 23;
		if (dash ? s[i] != '-' : !isxdigit((unsigned char)s[i]))
			return 0;
	}
	return 1;
}

/* HH:MM[:SS[.frac]]; returns the length consumed, 0 if malformed. */
static size_t scan_time(const char *s)
{
	size_t i = 0;

	if (!all_digits(s, 2) || s[2] != ':' || !all_digits(s + 3, 2))
		return 0;
	if (atoi(s) > 24 || atoi(s + 3) > 59)
		return 0;
	i = 5;
	if (s[i] == ':') {
		if (!all_digits(s + i + 1, 2) || atoi(s + i + 1) > 60)
			return 0;
		i += 3;
		if (s[i] == '.') {
			size_t f = strspn(s + i + 1, "0123456789");
			if (!f)
				return 0;
			i += 1 + f;
		}
	}
	return i;
}

/* Z, +HH, +HHMM, +HH:MM or nothing; returns 1 when s is exactly that. */
static int is_zone(const char *s)
{
	if (*s == ' ')
		s++;
	if (!*s || strcmp(s, "Z") == 0 || strcmp(s, "z") == 0)
		return 1;
	if (*s != '+' && *s != '-')
		return 0;
	s++;
	if (!all_digits(s, 2))
		return 0;
	s += 2;
	if (*s == ':')
		s++;
	return !*s || (all_digits(s, 2) && !s[2]);
}

static int is_date_prefix(const char *s)
{
	int month, day;

	if (!all_digits(s, 4) || s[4] != '-' || !all_digits(s + 5, 2) || s[7] != '-' ||
	    !all_digits(s + 8, 2))
		return 0;
	month = atoi(s + 5);
	day = atoi(s + 8);
	return month >= 1 && month <= 12 && day >= 1 && day <= 31;
}

static int is_timestamp(const char *s)
{
	size_t t;

	if (strcmp(s, "infinity") == 0 || strcmp(s, "-infinity") == 0)
		return 1;
	if (!is_date_prefix(s))
		return 0;
	if (!s[10])
		return 1;
	if (s[10] != 'T' && s[10] != 't' && s[10] != ' ')
		return 0;
	t = scan_time(s + 11);
	return t && is_zone(s + 11 + t);
}

static int is_decimal_text(const char *s)
{
	char *end;

	if (strcmp(s, "NaN") == 0)
		return 1;
	errno = 0;
	strtod(s, &end);
	return end != s && *end == '\0' && !isspace((unsigned char)s[0]);
}

bool doc_record_name(const char *name, char *pk, size_t pklen)
{
	size_t n = strlen(name), s = strlen(DOC_SUFFIX);

	if (name[0] == '.' || n <= s || strcmp(name + n - s, DOC_SUFFIX) != 0 || n - s >= pklen)
		return false;
	memcpy(pk, name, n - s);
	pk[n - s] = '\0';
	return true;
}

enum sh_err doc_check_pk(const struct model *m, const char *pk, char *why, size_t whylen)
{
	const struct column *c = model_pk(m);
	int64_t v;

	if (!pk[0] || strlen(pk) > PK_TEXT_MAX)
		return refuse(why, whylen, "key must be 1 to %d bytes", PK_TEXT_MAX);
	if (pk[0] == '.' || strchr(pk, '/'))
		return refuse(why, whylen, "'%s' cannot be a key", pk);
	for (const char *p = pk; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return refuse(why, whylen, "key has a control character");
	if (c->kind == COL_INT && !parse_int_key(pk, c->min, c->max, &v))
		return refuse(why, whylen, "'%s' is not a valid %s key", pk, c->type);
	if (c->kind == COL_UUID && !is_uuid(pk))
		return refuse(why, whylen, "'%s' is not a valid uuid key", pk);
	return SH_OK;
}

static int int_in_range(struct json_object *v, const struct column *c)
{
	int64_t i = json_object_get_int64(v);

	if (i == INT64_MAX && json_object_get_uint64(v) > (uint64_t)INT64_MAX)
		return 0;
	return i >= c->min && i <= c->max;
}

static int is_finite_number(struct json_object *v)
{
	if (json_object_is_type(v, json_type_int))
		return json_object_get_uint64(v) <= (uint64_t)INT64_MAX ||
		       json_object_get_int64(v) < 0;
	return json_object_is_type(v, json_type_double) && isfinite(json_object_get_double(v));
}

/* Is v an acceptable JSON value for column c? */
static int value_fits(const struct column *c, struct json_object *v)
{
	enum json_type t = json_object_get_type(v);
	const char *s = t == json_type_string ? json_object_get_string(v) : NULL;

	switch (c->kind) {
	case COL_BOOL: return t == json_type_boolean;
	case COL_INT: return t == json_type_int && int_in_range(v, c);
	case COL_FLOAT: return is_finite_number(v);
	case COL_NUMERIC: return is_finite_number(v) || (s && is_decimal_text(s));
	case COL_TEXT: return s != NULL;
	case COL_JSON: return 1;
	case COL_UUID: return s && is_uuid(s);
	case COL_TIMESTAMP: return s && is_timestamp(s);
	case COL_DATE: return s && (is_date_prefix(s) && !s[10]);
	case COL_TIME: { size_t n = s ? scan_time(s) : 0; return n && is_zone(s + n); }
	case COL_ARRAY: return t == json_type_array || s != NULL;
	case COL_OTHER: return t != json_type_object;
	}
	return 0;
}

static enum sh_err check_value(const struct column *c, struct json_object *v, char *why,
			       size_t whylen)
{
	if (!v) {
		if (c->not_null)
			return refuse(why, whylen, "column \"%s\" is not null", c->name);
		return SH_OK;
	}
	if (!value_fits(c, v))
		return refuse(why, whylen, "column \"%s\" (%s) cannot hold %.60s", c->name,
			      c->type, json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN));
	return SH_OK;
}

/* Does the key in the body equal the file name? */
static int pk_matches(const struct column *c, struct json_object *v, const char *pk)
{
	char buf[32];

	if (c->kind == COL_INT) {
		if (!json_object_is_type(v, json_type_int))
			return 0;
		snprintf(buf, sizeof(buf), "%" PRId64, json_object_get_int64(v));
		return strcmp(buf, pk) == 0;
	}
	if (json_object_is_type(v, json_type_string)) {
		if (c->kind == COL_UUID)
			return strcasecmp(json_object_get_string(v), pk) == 0;
		return strcmp(json_object_get_string(v), pk) == 0;
	}
	return 0;
}

/* Length of the UTF-8 sequence at p (at most n bytes), 0 if invalid: no
 * overlong forms, no surrogates, nothing above U+10FFFF (RFC 3629). */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
	size_t len;
	uint32_t cp;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		len = 2, cp = p[0] & 0x1f;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		len = 3, cp = p[0] & 0x0f;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		len = 4, cp = p[0] & 0x07;
	else
		return 0;
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

static int valid_utf8(const char *body, size_t len)
{
	const unsigned char *p = (const unsigned char *)body;

	for (size_t i = 0, k; i < len; i += k)
		if (!(k = utf8_seq(p + i, len - i)))
			return 0;
	return 1;
}

/* Is the integer literal d (digits long, after an optional '-') outside 64 bits? */
static int literal_overflows(const char *d, size_t digits, int negative)
{
	const char *limit = negative ? "9223372036854775808" : "18446744073709551615";
	size_t n = strlen(limit);

	return digits != n ? digits > n : strncmp(d, limit, n) > 0;
}

/* Does an integer literal outside strings overflow 64 bits? json-c would
 * silently clamp it, changing the value. */
static int integer_overflows(const char *body, size_t len)
{
	int in_string = 0;
	size_t i = 0;

	while (i < len) {
		char c = body[i];
		size_t start, end;

		if (in_string) {
			i += c == '\\' ? 2 : 1;
			in_string = c != '"';
			continue;
		}
		if (c == '"' || (c != '-' && !isdigit((unsigned char)c))) {
			in_string = c == '"';
			i++;
			continue;
		}
		start = c == '-' ? i + 1 : i;
		end = start;
		while (end < len && isdigit((unsigned char)body[end]))
			end++;
		if (end < len && strchr(".eE", body[end])) {
			while (end < len && strchr("0123456789.eE+-", body[end]))
				end++;	/* a real number: json-c keeps its text */
		} else if (literal_overflows(body + start, end - start, c == '-')) {
			return 1;
		}
		i = end > i ? end : i + 1;
	}
	return 0;
}

/* json-c takes NaN and Infinity even in strict mode; JSON (and PostgreSQL)
 * does not. Anywhere in v, nested included (json-c caps the depth). */
static int has_non_finite(struct json_object *v)
{
	size_t n;

	switch (json_object_get_type(v)) {
	case json_type_double:
		return !isfinite(json_object_get_double(v));
	case json_type_array:
		n = json_object_array_length(v);
		for (size_t i = 0; i < n; i++)
			if (has_non_finite(json_object_array_get_idx(v, i)))
				return 1;
		return 0;
	case json_type_object: {
		json_object_object_foreach(v, key, val) {
			(void)key;
			if (has_non_finite(val))
				return 1;
		}
		return 0;
	}
	default:
		return 0;
	}
}

/* Does a string in body hold the escape \u0000? PostgreSQL's text and jsonb
 * cannot store U+0000 (it would fail at sync), and json-c cuts keys at it. */
static int has_nul_escape(const char *body, size_t len)
{
	int in_string = 0;

	for (size_t i = 0; i < len; i++) {
		if (body[i] == '"') {
			in_string = !in_string;
		} else if (in_string && body[i] == '\\') {
			if (len - i >= 6 && memcmp(body + i + 1, "u0000", 5) == 0)
				return 1;
			i++;
		}
	}
	return 0;
}

static enum sh_err parse_object(const char *body, size_t len, struct json_object **out,
				char *why, size_t whylen)
{
	struct json_tokener *tok = json_tokener_new();
	struct json_object *obj;
	enum json_tokener_error jerr;
	size_t end;

	if (!tok)
		return SH_ENOMEM;
	if (!valid_utf8(body, len)) {
		json_tokener_free(tok);
		return refuse(why, whylen, "not valid UTF-8");
	}
	if (integer_overflows(body, len)) {
		json_tokener_free(tok);
		return refuse(why, whylen, "an integer does not fit in 64 bits (write it as a string)");
	}
	if (has_nul_escape(body, len)) {
		json_tokener_free(tok);
		return refuse(why, whylen, "a string holds \\u0000, which PostgreSQL cannot store");
	}
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	obj = json_tokener_parse_ex(tok, body, (int)len);
	jerr = json_tokener_get_error(tok);
	end = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	if (!obj || jerr != json_tokener_success) {
		json_object_put(obj);
		if (jerr == json_tokener_continue)
			return refuse(why, whylen, "truncated JSON");
		return refuse(why, whylen, "not JSON: %s at byte %zu",
			      json_tokener_error_desc(jerr), end);
	}
	while (end < len && isspace((unsigned char)body[end]))
		end++;
	if (end != len) {
		json_object_put(obj);
		return refuse(why, whylen, "not JSON: extra data at byte %zu", end);
	}
	if (!json_object_is_type(obj, json_type_object)) {
		json_object_put(obj);
		return refuse(why, whylen, "not a JSON object");
	}
	if (has_non_finite(obj)) {
		json_object_put(obj);
		return refuse(why, whylen, "not JSON: NaN and Infinity are not JSON numbers");
	}
	*out = obj;
	return SH_OK;
}

/* Check every key of body; the primary key must match the file name. */
static enum sh_err check_body(const struct model *m, const char *pk, struct json_object *body,
			      char *why, size_t whylen)
{
	json_object_object_foreach(body, key, val) {
		const struct column *c = model_column(m, key);
		enum sh_err err;

		if (!c)
			return refuse(why, whylen, "unknown key \"%.64s\"", key);
		err = check_value(c, val, why, whylen);
		if (err)
			return err;
		if (c == model_pk(m) && !pk_matches(c, val, pk))
			return refuse(why, whylen, "\"%s\" in the document differs from the file name '%s'",
				      c->name, pk);
	}
	return SH_OK;
}

static enum sh_err check_required(const struct model *m, struct json_object *body, char *why,
				  size_t whylen)
{
	for (size_t i = 0; i < m->ncols; i++) {
		const struct column *c = &m->cols[i];

		if (i == m->pk || !c->not_null || c->has_default || c->client_default)
			continue;
		if (!json_object_object_get_ex(body, c->name, NULL))
			return refuse(why, whylen, "new record lacks required column \"%s\"", c->name);
	}
	return SH_OK;
}

/* Does the stored record hold key with the value v? */
static bool stored_equal(struct json_object *stored, const char *key, struct json_object *v)
{
	struct json_object *old;

	return stored && json_object_object_get_ex(stored, key, &old) &&
	       json_object_equal(old, v);
}

/* Prisma's client-side defaults into body (clientdef.h): a new record that
 * lacks one gets it; @updatedAt is set again by every write that leaves it
 * out or carries it as stored (a `sed -i` of another column). */
static enum sh_err fill_client_defaults(const struct model *m, const char *existing,
					struct json_object *body)
{
	struct json_object *stored = existing ? json_tokener_parse(existing) : NULL;
	int64_t now = clock_wall_ns();
	enum sh_err err = SH_OK;

	for (size_t i = 0; i < m->ncols && err == SH_OK; i++) {
		const struct column *c = &m->cols[i];
		struct json_object *v = NULL, *made;
		char value[CLIENTDEF_VALUE_MAX];

		if (!c->client_default || i == m->pk)
			continue;
		if (json_object_object_get_ex(body, c->name, &v) &&
		    !(clientdef_on_update(c->client_default) && stored_equal(stored, c->name, v)))
			continue;
		if (existing && !clientdef_on_update(c->client_default))
			continue;
		if ((err = clientdef_make(c, now, value, sizeof(value))))
			break;
		if (!(made = json_object_new_string(value))) {
			err = SH_ENOMEM;
		} else if (json_object_object_add(body, c->name, made)) {
			json_object_put(made);
			err = SH_ENOMEM;
		}
	}
	json_object_put(stored);
	return err;
}

static struct json_object *pk_value(const struct model *m, const char *pk)
{
	if (model_pk(m)->kind == COL_INT)
		return json_object_new_int64(strtoll(pk, NULL, 10));
	return json_object_new_string(pk);
}

/* The document to store: existing (or just the key) with body's keys laid over it. */
static struct json_object *merge(const struct model *m, const char *pk, const char *existing,
				 struct json_object *body)
{
	struct json_object *base = existing ? json_tokener_parse(existing) : NULL;

	if (!base || !json_object_is_type(base, json_type_object)) {
		json_object_put(base);
		base = json_object_new_object();
		if (!base)
			return NULL;
		json_object_object_add(base, model_pk(m)->name, pk_value(m, pk));
	}
	json_object_object_foreach(body, key, val)
		json_object_object_add(base, key, json_object_get(val));
	return base;
}

enum sh_err doc_prepare(const struct model *m, const char *pk, const char *body, size_t len,
			size_t max_len, const char *existing, char **out, char *why, size_t whylen)
{
	struct json_object *obj = NULL, *merged;
	enum sh_err err;

	*out = NULL;
	if (len > max_len) {
		snprintf(why, whylen, "document of %zu bytes is above the %zu-byte cap", len, max_len);
		return SH_ETOOBIG;
	}
	err = doc_check_pk(m, pk, why, whylen);
	if (!err)
		err = parse_object(body, len, &obj, why, whylen);
	if (!err)
		err = check_body(m, pk, obj, why, whylen);
	if (!err && !existing)
		err = check_required(m, obj, why, whylen);
	if (!err && (err = fill_client_defaults(m, existing, obj)) == SH_EINVAL)
		snprintf(why, whylen, "a client-side default cannot be made for this column's type");
	/* json-c would clamp such a number while merging, changing a value the
	 * writer never touched: better to refuse than to corrupt */
	if (!err && existing && integer_overflows(existing, strlen(existing)))
		err = refuse(why, whylen, "the stored record holds an integer beyond 64 bits; "
			     "write the whole document, with that number as a string");
	if (err) {
		json_object_put(obj);
		return err;
	}
	merged = merge(m, pk, existing, obj);
	json_object_put(obj);
	if (!merged)
		return SH_ENOMEM;
	*out = strdup(json_object_to_json_string_ext(merged, JSON_C_TO_STRING_PLAIN |
							     JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(merged);
	return *out ? SH_OK : SH_ENOMEM;
}

char *doc_get_text(const char *doc, const char *key)
{
	struct json_object *obj = json_tokener_parse(doc), *v;
	char *text = NULL;

	if (obj && json_object_object_get_ex(obj, key, &v) && v)
		text = strdup(json_object_get_string(v));
	json_object_put(obj);
	return text;
}

/* A UTF-8 sequence cut short at the end of body: its length so far, and in
 * whole (*n bytes) one valid completion of it; 0 when body does not end so.
 * json-c calls a cut sequence an error, though more bytes may complete it. */
static size_t utf8_cut_tail(const char *body, size_t len, unsigned char whole[4], size_t *n)
{
	static const unsigned char pads[] = { 0x80, 0xbf };
	const unsigned char *p = (const unsigned char *)body;

	for (size_t k = 1; k <= 3 && k <= len; k++) {
		unsigned char c = p[len - k];
		size_t need = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;

		if ((c & 0xc0) == 0x80)
			continue;
		if (c < 0xc0 || need <= k)
			return 0;
		for (size_t i = 0; i < sizeof(pads); i++) {
			memcpy(whole, p + len - k, k);
			memset(whole + k, pads[i], need - k);
			if (utf8_seq(whole, need) == need) {
				*n = need;
				return k;
			}
		}
		return 0;
	}
	return 0;
}

bool doc_incomplete(const char *body, size_t len)
{
	struct json_tokener *tok;
	struct json_object *obj;
	unsigned char whole[4];
	size_t i = 0, n = 0, cut = utf8_cut_tail(body, len, whole, &n);
	bool incomplete;

	while (i < len && isspace((unsigned char)body[i]))
		i++;
	if (i == len)
		return true;
	tok = json_tokener_new();
	if (!tok)
		return false;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	/* a write may end inside a character: go on as if it were complete */
	obj = json_tokener_parse_ex(tok, body, (int)(len - cut));
	if (!obj && cut && json_tokener_get_error(tok) == json_tokener_continue)
		obj = json_tokener_parse_ex(tok, (const char *)whole, (int)n);
	incomplete = !obj && json_tokener_get_error(tok) == json_tokener_continue;
	json_object_put(obj);
	json_tokener_free(tok);
	return incomplete;
}
