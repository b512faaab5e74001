/* doc.c - parse, validate and merge record documents (json-c). */
#include "doc.h"
#include "keyname.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "pgtype.h"
#include "clientdef.h"
#include "clock.h"

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

static size_t span_digits_n(const char *s, size_t n)
{
	size_t i = 0;

	while (i < n && isdigit((unsigned char)s[i]))
		i++;
	return i;
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

/* "book_id,author_id": the key's columns, for messages. */
static const char *key_names(const struct model *m, char *names, size_t len)
{
	size_t used = 0;

	names[0] = '\0';
	for (size_t k = 0; k < m->nkey && used < len; k++)
		used += (size_t)snprintf(names + used, len - used, "%s%s", k ? "," : "",
					 model_key_col(m, k)->name);
	return names;
}

/* The canonical spelling of a uuid (lower case, dashed) into out[37]; false when s is none. */
static bool uuid_canonical(const char *s, char out[37])
{
	size_t n = 0;

	if (!is_uuid(s))
		return false;
	for (; *s; s++) {
		if (*s == '-')
			continue;
		if (n == 8 || n == 13 || n == 18 || n == 23)
			out[n++] = '-';
		out[n++] = (char)tolower((unsigned char)*s);
	}
	out[n] = '\0';
	return true;
}

static int value_fits(const struct column *c, struct json_object *v);

/* A key part of a date or time column: what a document may hold there. */
static int time_part_fits(const struct column *c, const char *part)
{
	struct json_object *s = json_object_new_string(part);
	int fits = s && value_fits(c, s);

	json_object_put(s);
	return fits;
}

/* A key that is another spelling of an integer: "007", "+7", "-0". */
static bool int_other_spelling(const char *pk, int64_t *v)
{
	char *end;

	if (!pk[0] || isspace((unsigned char)pk[0]))
		return false;
	errno = 0;
	*v = strtoll(pk, &end, 10);
	return errno == 0 && *end == '\0';
}

/* One part of a key: a valid value of its column's type, in its one
 * canonical spelling, as PostgreSQL prints it. */
static enum sh_err check_key_part(const struct column *c, const char *part, bool whole,
				  char *why, size_t whylen)
{
	const char *one = whole ? "file name" : "spelling", *sfx = whole ? DOC_SUFFIX : "";
	char canon[37];
	int64_t v;

	if (c->kind == COL_INT && !parse_int_key(part, c->min, c->max, &v)) {
		if (int_other_spelling(part, &v) && v >= c->min && v <= c->max)
			return refuse(why, whylen, "'%s' is another spelling of key %" PRId64
				      ": its one %s is %" PRId64 "%s", part, v, one, v, sfx);
		return refuse(why, whylen, "'%s' is not a valid %s key", part, c->type);
	}
	if (c->kind == COL_UUID && !uuid_canonical(part, canon))
		return refuse(why, whylen, "'%s' is not a valid uuid key", part);
	if (c->kind == COL_UUID && strcmp(canon, part) != 0)
		return refuse(why, whylen, "'%s' is another spelling: its one %s is %s%s",
			      part, one, canon, sfx);
	if ((c->kind == COL_DATE || c->kind == COL_TIMESTAMP || c->kind == COL_TIME) &&
	    !time_part_fits(c, part))
		return refuse(why, whylen, "'%s' is not a valid %s key", part, c->type);
	return SH_OK;
}

enum sh_err doc_check_pk(const struct model *m, const char *pk, char *why, size_t whylen)
{
	const char *parts[MODEL_KEY_MAX];
	char buf[KEYNAME_KEY_MAX + 1], names[256];
	enum sh_err err;

	if (strlen(pk) > KEYNAME_KEY_MAX)
		return refuse(why, whylen, "key must be at most %d bytes", KEYNAME_KEY_MAX);
	if (key_split(m, pk, buf, sizeof(buf), parts) != SH_OK)
		return refuse(why, whylen, "'%s' is not %zu key parts joined by '%c', each "
			      "encoded as in a file name (%s)", pk, m->nkey, KEY_SEP,
			      key_names(m, names, sizeof(names)));
	for (size_t k = 0; k < m->nkey; k++)
		if ((err = check_key_part(model_key_col(m, k), parts[k], m->nkey == 1, why,
					   whylen)))
			return err;
	return SH_OK;
}

/* Can the key be written through its file name? A key too long for one is
 * listed and read under its long form, never written: a write would reach
 * PostgreSQL under a key no file name can name again. */
static enum sh_err check_pk_fits(const struct model *m, const char *pk, char *why,
				   size_t whylen)
{
	char name[KEYNAME_MAX + 1];

	if (key_file_name(m, pk, name))
		return SH_OK;
	return refuse(why, whylen, "a key of %zu bytes does not fit in a file name (%d bytes with "
		      "\"" DOC_SUFFIX "\", after %%XX encoding): read it under its long name, "
		      "write it in PostgreSQL", strlen(pk), KEYNAME_MAX);
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

static int is_label(const struct column *c, const char *s)
{
	for (size_t i = 0; i < c->nlabels; i++)
		if (strcmp(c->labels[i], s) == 0)
			return 1;
	return 0;
}

/* A JSON number's text as PostgreSQL receives it from json_populate_record. */
static const char *number_text(struct json_object *v)
{
	return json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN);
}

/* Is v, neither null nor an array, a value of kind k (c's type details)? */
static int scalar_fits(const struct column *c, enum col_kind k, struct json_object *v)
{
	enum json_type t = json_object_get_type(v);
	const char *s = t == json_type_string ? json_object_get_string(v) : NULL;
	int number = t == json_type_int || t == json_type_double;

	switch (k) {
	case COL_BOOL: return t == json_type_boolean;
	case COL_INT: return t == json_type_int && int_in_range(v, c);
	case COL_FLOAT: return is_finite_number(v) || (s && pgt_float_text(s));
	case COL_NUMERIC:
		return (number && pgt_numeric(number_text(v), c->typmod)) ||
		       (s && pgt_numeric(s, c->typmod));
	case COL_TEXT: return s && pgt_chars(s, c->typmod);
	case COL_JSON: return 1;
	case COL_UUID: return s && pgt_uuid(s);
	case COL_TIMESTAMP: return s && pgt_timestamp(s);
	case COL_DATE: return s && pgt_date(s);
	case COL_TIME: return s && pgt_time(s);
	case COL_ENUM: return s && is_label(c, s);
	case COL_INET: return s && pgt_inet(s, false);
	case COL_CIDR: return s && pgt_inet(s, true);
	case COL_MACADDR: return s && pgt_macaddr(s);
	case COL_INTERVAL: return s && pgt_interval(s);
	case COL_BYTEA: return s && pgt_bytea(s);
	case COL_MONEY:
		return (number && pgt_money_number(json_object_get_double(v))) ||
		       (s && pgt_money(s));
	case COL_BIT: return s && pgt_bit(s, c->typmod, false);
	case COL_VARBIT: return s && pgt_bit(s, c->typmod, true);
	case COL_RANGE: return s && pgt_range(s, c->base);
	case COL_TSVECTOR: return s && pgt_tsvector(s);
	case COL_ARRAY: return 0;
	case COL_OTHER: return t != json_type_object;
	}
	return 0;
}

#define ARRAY_DIMS_MAX 6	/* PostgreSQL's MAXDIM */

/* An array of the shape dims[depth..ndims) whose elements fit c's base. */
static int array_fits(const struct column *c, struct json_object *v, const size_t *dims,
		      int depth, int ndims)
{
	size_t n = json_object_array_length(v);

	if (n != dims[depth])
		return 0;	/* PostgreSQL: "malformed JSON array" */
	for (size_t i = 0; i < n; i++) {
		struct json_object *e = json_object_array_get_idx(v, i);
		int is_array = json_object_is_type(e, json_type_array);

		if (depth + 1 < ndims ? !is_array || !array_fits(c, e, dims, depth + 1, ndims) :
		    is_array || (e ? !scalar_fits(c, c->base_kind, e) : c->elem_not_null))
			return 0;
	}
	return 1;
}

/* A JSON array, rectangular, of at most 6 dimensions, of fitting elements;
 * never a string (PostgreSQL would parse "{...}" but never prints it). */
static int array_value_fits(const struct column *c, struct json_object *v)
{
	size_t dims[ARRAY_DIMS_MAX];
	int ndims = 0;

	if (!json_object_is_type(v, json_type_array))
		return 0;
	for (struct json_object *e = v; json_object_is_type(e, json_type_array);
	     e = json_object_array_get_idx(e, 0)) {
		if (ndims == ARRAY_DIMS_MAX)
			return 0;
		dims[ndims++] = json_object_array_length(e);
		if (!dims[ndims - 1])
			break;
	}
	return array_fits(c, v, dims, 0, ndims);
}

/* Is v an acceptable JSON value for column c? */
static int value_fits(const struct column *c, struct json_object *v)
{
	if (c->kind == COL_ARRAY)
		return array_value_fits(c, v);
	return scalar_fits(c, c->kind, v);
}

static enum sh_err check_value(const struct column *c, struct json_object *v, char *why,
			       size_t whylen)
{
	if (!v) {
		if (c->not_null)
			return refuse(why, whylen, "column \"%s\" is not null", c->name);
		return SH_OK;
	}
	if (!value_fits(c, v)) {
		char labels[160] = "";

		/* an enum's labels say at once what would do */
		for (size_t i = 0, n = 0; c->base_kind == COL_ENUM && i < c->nlabels &&
		     n < sizeof(labels); i++)
			n += (size_t)snprintf(labels + n, sizeof(labels) - n, "%s%s",
					      i ? ", " : " (labels: ", c->labels[i]);
		if (labels[0] && strlen(labels) < sizeof(labels) - 1)
			strcat(labels, ")");
		return refuse(why, whylen, "column \"%s\" (%s) cannot hold %.60s%s", c->name,
			      c->type, json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN),
			      labels);
	}
	return SH_OK;
}

/* Does the key in the body equal the file name? By value: a uuid in any
 * spelling, and a number for a key whose type sharded does not know (a
 * domain over an integer reads as "id":1). */
static int pk_matches(const struct column *c, struct json_object *v, const char *pk)
{
	char buf[32], canon[37];

	if (c->kind == COL_OTHER && json_object_is_type(v, json_type_int)) {
		snprintf(buf, sizeof(buf), "%" PRId64, json_object_get_int64(v));
		return strcmp(buf, pk) == 0;
	}
	if (c->kind == COL_INT) {
		if (!json_object_is_type(v, json_type_int))
			return 0;
		snprintf(buf, sizeof(buf), "%" PRId64, json_object_get_int64(v));
		return strcmp(buf, pk) == 0;
	}
	if (json_object_is_type(v, json_type_string)) {
		if (c->kind == COL_UUID)
			return uuid_canonical(json_object_get_string(v), canon) &&
			       strcmp(canon, pk) == 0;
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

/* The integer literals outside strings in body that overflow 64 bits, each
 * followed by "e0": json-c would clamp such an integer, but keeps the text
 * of a real number. Such an integer written with "e0" by the body gets "E0"
 * instead, so that restore_big_integers leaves it as it is.
 * NULL when there is none, or on failure: *nomem 1 when
 * out of memory, 2 when such a literal has leading zeros (no JSON). */
static char *mark_big_integers(const char *body, size_t len, size_t *outlen, int *nomem)
{
	int in_string = 0;
	size_t i = 0, o = 0, count = 0;
	char *out = NULL;

	*nomem = 0;
	for (int pass = 0; pass < 2; pass++) {
		for (i = 0, o = 0, in_string = 0; i < len; ) {
			char c = body[i];
			size_t start, end;

			if (in_string || c == '"' || (c != '-' && !isdigit((unsigned char)c))) {
				if (in_string && c == '\\' && i + 1 < len) {
					if (out)
						out[o++] = body[i];
					i++;
				} else if (c == '"') {
					in_string = !in_string;
				}
				if (out)
					out[o++] = body[i];
				i++;
				continue;
			}
			start = c == '-' ? i + 1 : i;
			end = start;
			while (end < len && isdigit((unsigned char)body[end]))
				end++;
			if (end < len && strchr(".eE", body[end])) {
				size_t digits_end = end;

				while (end < len && strchr("0123456789.eE+-", body[end]))
					end++;	/* a real number: json-c keeps its text */
				if (end - digits_end == 2 && body[digits_end] == 'e' &&
				    body[digits_end + 1] == '0' &&
				    literal_overflows(body + start, digits_end - start, c == '-')) {
					/* written as a mark would be: "E0" tells it apart */
					count++;
					if (out) {
						memcpy(out + o, body + i, digits_end - i);
						o += digits_end - i;
						memcpy(out + o, "E0", 2);
						o += 2;
						i = end;
						continue;
					}
				}
			} else if (literal_overflows(body + start, end - start, c == '-')) {
				if (body[start] == '0') {
					*nomem = 2;	/* leading zeros: not JSON, and json-c
							 * would take them as a real number */
					free(out);
					return NULL;
				}
				count++;
				if (out) {
					memcpy(out + o, body + i, end - i);
					o += end - i;
					memcpy(out + o, "e0", 2);
					o += 2;
					i = end;
					continue;
				}
			}
			if (end == i)
				end = i + 1;
			if (out)
				memcpy(out + o, body + i, end - i);
			o += end - i;
			i = end;
		}
		if (pass == 0) {
			if (!count)
				return NULL;
			if (!(out = malloc(len + 2 * count + 1))) {
				*nomem = 1;
				return NULL;
			}
		}
	}
	out[o] = '\0';
	*outlen = o;
	return out;
}

/* Is text an integer literal beyond 64 bits followed by "e0" (as marked by
 * mark_big_integers)? Then its length without the "e0". */
static size_t big_integer_text(const char *text)
{
	size_t n = strlen(text), d = text[0] == '-';

	if (n < 3 || strcmp(text + n - 2, "e0") != 0 || span_digits_n(text + d, n - 2 - d) != n - 2 - d)
		return 0;
	return literal_overflows(text + d, n - 2 - d, d) ? n - 2 : 0;
}

/* Give every marked integer in v back its own text, without the "e0". */
static int restore_big_integers(struct json_object *v)
{
	size_t n;

	if (json_object_is_type(v, json_type_double)) {
		const char *t = json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN);
		size_t k = big_integer_text(t);
		char buf[64], *copy, *dup;

		if (!k)
			return 0;
		copy = k < sizeof(buf) ? buf : malloc(k + 1);
		if (!copy)
			return -1;
		memcpy(copy, t, k);
		copy[k] = '\0';
		dup = strdup(copy);
		if (copy != buf)
			free(copy);
		if (!dup)
			return -1;
		json_object_set_serializer(v, json_object_userdata_to_json_string, dup,
					   json_object_free_userdata);
		return 0;
	}
	if (json_object_is_type(v, json_type_array)) {
		n = json_object_array_length(v);
		for (size_t i = 0; i < n; i++)
			if (restore_big_integers(json_object_array_get_idx(v, i)))
				return -1;
	} else if (json_object_is_type(v, json_type_object)) {
		json_object_object_foreach(v, key, val) {
			(void)key;
			if (restore_big_integers(val))
				return -1;
		}
	}
	return 0;
}

/* Parse text as JSON (strict, UTF-8 checked) with integers of any size:
 * one beyond 64 bits becomes a number that keeps its exact text. */
static struct json_object *parse_json(const char *text, size_t len, enum json_tokener_error *jerr,
				      size_t *end, int *out_of_memory)
{
	struct json_tokener *tok = json_tokener_new();
	struct json_object *obj;
	size_t marked_len = 0;
	int nomem;
	char *marked = mark_big_integers(text, len, &marked_len, &nomem);

	*out_of_memory = !tok || nomem == 1;
	*end = 0;
	*jerr = nomem == 2 ? json_tokener_error_parse_number : json_tokener_success;
	if (nomem) {
		json_tokener_free(tok);
		free(marked);
		return NULL;
	}
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	obj = json_tokener_parse_ex(tok, marked ? marked : text, (int)(marked ? marked_len : len));
	*jerr = json_tokener_get_error(tok);
	*end = json_tokener_get_parse_end(tok);
	/* back to body's positions: the marks ("e0" after each big integer) lie
	 * before the end of a value that parsed, so the end moves back by all of
	 * them (an error's position is near enough; trailing data stays extra) */
	if (marked)
		*end = *end >= marked_len - len ? *end - (marked_len - len) : 0;
	json_tokener_free(tok);
	free(marked);
	if (obj && restore_big_integers(obj)) {
		json_object_put(obj);
		*out_of_memory = 1;
		return NULL;
	}
	return obj;
}

/* json-c takes NaN and Infinity even in strict mode; JSON (and PostgreSQL)
 * does not. Anywhere in v, nested included (json-c caps the depth). */
static int has_non_finite(struct json_object *v)
{
	size_t n;

	switch (json_object_get_type(v)) {
	case json_type_double:	/* an integer of 400 digits is a number all the same */
		return !isfinite(json_object_get_double(v)) &&
		       !isdigit((unsigned char)json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN)
					[json_object_get_double(v) < 0]);
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

static int hex4(const char *p, size_t n, unsigned *cp)
{
	char buf[5];
	char *end;

	if (n < 4)
		return 0;
	memcpy(buf, p, 4);
	buf[4] = '\0';
	*cp = (unsigned)strtoul(buf, &end, 16);
	return end == buf + 4 && isxdigit((unsigned char)buf[0]);
}

/* Does a string in body hold a \uD800-\uDFFF escape that is not half of a
 * pair? json-c would store U+FFFD instead; PostgreSQL refuses it. */
static int has_lone_surrogate(const char *body, size_t len)
{
	int in_string = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned cp, lo;

		if (body[i] == '"') {
			in_string = !in_string;
			continue;
		}
		if (!in_string || body[i] != '\\')
			continue;
		if (i + 2 > len || body[i + 1] != 'u' || !hex4(body + i + 2, len - i - 2, &cp)) {
			i++;
			continue;
		}
		if (cp >= 0xdc00 && cp <= 0xdfff)
			return 1;
		if (cp >= 0xd800 && cp <= 0xdbff) {
			if (len - i < 12 || body[i + 6] != '\\' || body[i + 7] != 'u' ||
			    !hex4(body + i + 8, len - i - 8, &lo) || lo < 0xdc00 || lo > 0xdfff)
				return 1;
			i += 6;
		}
		i += 5;
	}
	return 0;
}

static enum sh_err parse_object(const char *body, size_t len, struct json_object **out,
				char *why, size_t whylen)
{
	struct json_object *obj;
	enum json_tokener_error jerr;
	size_t end;
	int nomem;

	if (!valid_utf8(body, len))
		return refuse(why, whylen, "not valid UTF-8");
	if (has_nul_escape(body, len))
		return refuse(why, whylen, "a string holds \\u0000, which PostgreSQL cannot store");
	if (has_lone_surrogate(body, len))
		return refuse(why, whylen, "a string holds half of a UTF-16 surrogate pair "
			      "(\\ud800-\\udfff alone), which is no character");
	obj = parse_json(body, len, &jerr, &end, &nomem);
	if (nomem)
		return SH_ENOMEM;
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

/* The part of the file name that is column c's, or NULL when c is not in the key. */
static const char *key_part_of(const struct model *m, const struct column *c,
			       const char *const *parts)
{
	for (size_t k = 0; k < m->nkey; k++)
		if (model_key_col(m, k) == c)
			return parts[k];
	return NULL;
}

/* A generated column is never written: the document may carry it only with
 * the value stored, as it was read. */
static enum sh_err check_generated(const struct column *c, struct json_object *val,
				   struct json_object *stored, char *why, size_t whylen)
{
	struct json_object *was = NULL;

	if (stored && json_object_object_get_ex(stored, c->name, &was) &&
	    json_object_equal(was, val))
		return SH_OK;
	return refuse(why, whylen, "column \"%s\" is generated by PostgreSQL and cannot be "
		      "written: leave it out, or keep it as it was read", c->name);
}

/* Check every key of body; the primary key must match the file name. */
static enum sh_err check_body(const struct model *m, const char *const *parts,
			      const char *pk, struct json_object *body, struct json_object *stored,
			      char *why, size_t whylen)
{
	json_object_object_foreach(body, key, val) {
		const struct column *c = model_column(m, key);
		const char *part;
		enum sh_err err;

		if (!c)
			return refuse(why, whylen, "unknown key \"%.64s\"", key);
		if (c->generated) {
			if ((err = check_generated(c, val, stored, why, whylen)))
				return err;
			continue;
		}
		err = check_value(c, val, why, whylen);
		if (err)
			return err;
		if ((part = key_part_of(m, c, parts)) && !pk_matches(c, val, part))
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

		if (model_is_key(m, i) || !c->not_null || c->has_default || c->client_default)
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
static enum sh_err fill_client_defaults(const struct model *m, bool existing,
					struct json_object *stored, struct json_object *body)
{
	int64_t now = clock_wall_ns();
	enum sh_err err = SH_OK;

	for (size_t i = 0; i < m->ncols && err == SH_OK; i++) {
		const struct column *c = &m->cols[i];
		struct json_object *v = NULL, *made;
		char value[CLIENTDEF_VALUE_MAX];

		if (!c->client_default || model_is_key(m, i))
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
	return err;
}

static struct json_object *key_value(const struct column *c, const char *part)
{
	if (c->kind == COL_INT)
		return json_object_new_int64(strtoll(part, NULL, 10));
	return json_object_new_string(part);
}

/* The document to store: stored (or just the key) with body's keys laid over it. */
static struct json_object *merge(const struct model *m, const char *const *parts,
				 struct json_object *stored, struct json_object *body)
{
	struct json_object *base = stored ? json_object_get(stored) : NULL;

	if (!base) {
		base = json_object_new_object();
		if (!base)
			return NULL;
		for (size_t k = 0; k < m->nkey; k++)
			json_object_object_add(base, model_key_col(m, k)->name,
					       key_value(model_key_col(m, k), parts[k]));
	}
	json_object_object_foreach(body, key, val)
		json_object_object_add(base, key, json_object_get(val));
	return base;
}

/* The stored document as an object; NULL when there is none (or it is not one). */
static struct json_object *parse_stored(const char *existing)
{
	enum json_tokener_error jerr;
	size_t end;
	int nomem;
	struct json_object *o = existing ?
		parse_json(existing, strlen(existing), &jerr, &end, &nomem) : NULL;

	if (o && !json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

/* Does body name every column the stored record holds (a whole-document
 * rewrite: `sed -i`, an editor's save)? */
static bool names_all(struct json_object *stored, struct json_object *body)
{
	json_object_object_foreach(stored, key, val) {
		(void)val;
		if (!json_object_object_get_ex(body, key, NULL))
			return false;
	}
	return true;
}

/* What an update sends (doc.h doc_prepare_update): the key, then body's
 * columns, less those equal to stored when body names them all. */
static struct json_object *changes(const struct model *m, const char *const *parts,
				   struct json_object *stored, struct json_object *body)
{
	struct json_object *sent = json_object_new_object();
	bool whole = names_all(stored, body);

	if (!sent)
		return NULL;
	for (size_t k = 0; k < m->nkey; k++)
		json_object_object_add(sent, model_key_col(m, k)->name,
				       key_value(model_key_col(m, k), parts[k]));
	json_object_object_foreach(body, key, val) {
		if (json_object_object_get_ex(sent, key, NULL) ||
		    (whole && stored_equal(stored, key, val)))
			continue;
		if (json_object_object_add(sent, key, json_object_get(val))) {
			json_object_put(sent);
			return NULL;
		}
	}
	return sent;
}

static char *doc_text(struct json_object *o)
{
	return strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
							JSON_C_TO_STRING_NOSLASHESCAPE));
}

enum sh_err doc_prepare(const struct model *m, const char *pk, const char *body, size_t len,
			size_t max_len, const char *existing, char **out, char *why, size_t whylen)
{
	return doc_prepare_update(m, pk, body, len, max_len, existing, out, NULL, why, whylen);
}

enum sh_err doc_prepare_update(const struct model *m, const char *pk, const char *body,
			       size_t len, size_t max_len, const char *existing, char **out,
			       char **sent, char *why, size_t whylen)
{
	struct json_object *obj = NULL, *merged, *stored = NULL, *delta = NULL;
	const char *parts[MODEL_KEY_MAX];
	char buf[KEYNAME_KEY_MAX + 1];
	enum sh_err err;

	*out = NULL;
	if (sent)
		*sent = NULL;
	if (len > max_len) {
		snprintf(why, whylen, "document of %zu bytes is above the %zu-byte cap", len, max_len);
		return SH_ETOOBIG;
	}
	err = doc_check_pk(m, pk, why, whylen);
	if (!err && key_split(m, pk, buf, sizeof(buf), parts) != SH_OK)
		err = refuse(why, whylen, "'%s' is not a key", pk);	/* doc_check_pk said it is */
	if (!err)
		err = check_pk_fits(m, pk, why, whylen);
	if (!err)
		err = parse_object(body, len, &obj, why, whylen);
	if (!err)
		stored = parse_stored(existing);	/* one that is not an object is replaced */
	if (!err)
		err = check_body(m, parts, pk, obj, stored, why, whylen);
	if (!err && !existing)
		err = check_required(m, obj, why, whylen);
	if (!err && (err = fill_client_defaults(m, existing != NULL, stored, obj)) == SH_EINVAL)
		snprintf(why, whylen, "a client-side default cannot be made for this column's type");
	if (err) {
		json_object_put(obj);
		json_object_put(stored);
		return err;
	}
	if (sent && stored && !(delta = changes(m, parts, stored, obj)))
		err = SH_ENOMEM;
	merged = err ? NULL : merge(m, parts, stored, obj);	/* merge changes stored */
	json_object_put(obj);
	json_object_put(stored);
	if (merged)
		*out = doc_text(merged);
	if (delta && *out && !(*sent = doc_text(delta))) {
		free(*out);
		*out = NULL;
	}
	json_object_put(merged);
	json_object_put(delta);
	return *out ? SH_OK : SH_ENOMEM;
}

char *doc_overlay(const char *under, const char *over)
{
	struct json_object *base = parse_stored(under), *top = parse_stored(over);
	char *text = NULL;

	if (base && top) {
		json_object_object_foreach(top, key, val)
			json_object_object_add(base, key, json_object_get(val));
		text = doc_text(base);
	}
	json_object_put(base);
	json_object_put(top);
	return text;
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

/* Does body start (after blanks) with a JSON object whose closing brace is
 * in the text? Then json-c either parsed the object or failed before its
 * end: either way the text is not incomplete. The scan allocates nothing
 * and costs a few instructions a byte, where json-c's parse of a record
 * (done again by the check after this) cost some 11,000. Texts it does not
 * follow (not an object, comments, single quotes) are left to json-c. */
static bool closed_object(const char *body, size_t len)
{
	size_t i = 0, depth = 0;
	bool in_string = false;

	while (i < len && isspace((unsigned char)body[i]))
		i++;
	if (i == len || body[i] != '{')
		return false;
	for (; i < len; i++) {
		char c = body[i];

		if (in_string) {
			if (c == '\\')
				i++;	/* the escaped byte cannot end the string */
			else if (c == '"')
				in_string = false;
		} else if (c == '"') {
			in_string = true;
		} else if (c == '{' || c == '[') {
			depth++;
		} else if (c == '}' || c == ']') {
			if (--depth == 0)
				return true;
		} else if (c == '/' || c == '\'') {
			return false;
		}
	}
	return false;
}

bool doc_incomplete(const char *body, size_t len)
{
	struct json_tokener *tok;
	struct json_object *obj;
	unsigned char whole[4];
	size_t i = 0, n = 0, cut = utf8_cut_tail(body, len, whole, &n);
	bool incomplete;

	if (closed_object(body, len))
		return false;
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
