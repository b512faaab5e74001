/* catalog_file.c - writing and strictly reading the JSON catalog file (catalog_file.h). */
#include "catalog_file.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "clientdef.h"

#define TYPE_MAX 1024	/* a "type" text, e.g. "\"myschema\".\"Role\"[]" */

static void set_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* ---- writing ------------------------------------------------------------ */

static json_object *column_json(const struct column *c)
{
	json_object *o = json_object_new_object();

	if (!o)
		return NULL;
	if (json_object_object_add(o, "name", json_object_new_string(c->name)) ||
	    json_object_object_add(o, "type", json_object_new_string(c->type)) ||
	    json_object_object_add(o, "typname", json_object_new_string(c->typname)) ||
	    json_object_object_add(o, "not_null", json_object_new_boolean(c->not_null)) ||
	    json_object_object_add(o, "has_default", json_object_new_boolean(c->has_default)) ||
	    json_object_object_add(o, "base", json_object_new_string(c->base)) ||
	    json_object_object_add(o, "typmod", json_object_new_int(c->typmod)) ||
	    json_object_object_add(o, "array", json_object_new_boolean(c->array)) ||
	    json_object_object_add(o, "elem_not_null", json_object_new_boolean(c->elem_not_null)) ||
	    (c->generated &&
	     json_object_object_add(o, "generated", json_object_new_boolean(true))) ||
	    (c->client_default &&
	     json_object_object_add(o, "client_default",
				    json_object_new_string(c->client_default)))) {
		json_object_put(o);
		return NULL;
	}
	if (c->labels) {
		json_object *l = json_object_new_array();

		for (size_t i = 0; l && i < c->nlabels; i++) {
			if (json_object_array_add(l, json_object_new_string(c->labels[i]))) {
				json_object_put(l);
				l = NULL;
			}
		}
		if (!l || json_object_object_add(o, "labels", l)) {
			json_object_put(l);
			json_object_put(o);
			return NULL;
		}
	}
	return o;
}

/* One column: its name; several: an array of names, in key order. */
static json_object *key_json(const struct model *m)
{
	json_object *a;

	if (m->nkey == 1)
		return json_object_new_string(model_key_col(m, 0)->name);
	if (!(a = json_object_new_array()))
		return NULL;
	for (size_t k = 0; k < m->nkey; k++) {
		json_object *s = json_object_new_string(model_key_col(m, k)->name);

		if (!s || json_object_array_add(a, s)) {
			json_object_put(s);
			json_object_put(a);
			return NULL;
		}
	}
	return a;
}

static json_object *skipped_json(const struct catalog *cat)
{
	json_object *a = json_object_new_array();

	for (size_t i = 0; a && i < cat->nskipped; i++) {
		json_object *t = json_object_new_object();

		if (!t || json_object_object_add(t, "name",
						 json_object_new_string(cat->skipped[i].name)) ||
		    json_object_object_add(t, "reason",
					   json_object_new_string(cat->skipped[i].reason)) ||
		    json_object_array_add(a, t)) {
			json_object_put(t);
			json_object_put(a);
			return NULL;
		}
	}
	return a;
}

static json_object *model_json(const struct model *m)
{
	json_object *o = json_object_new_object(), *cols = json_object_new_array();

	if (!o || !cols || m->nkey == 0)
		goto fail;
	if (json_object_object_add(o, "name", json_object_new_string(m->name)) ||
	    json_object_object_add(o, "primary_key", key_json(m)))
		goto fail;
	for (size_t i = 0; i < m->ncols; i++) {
		json_object *c = column_json(&m->cols[i]);

		if (!c || json_object_array_add(cols, c)) {
			json_object_put(c);
			goto fail;
		}
	}
	if (json_object_object_add(o, "columns", cols))
		goto fail;	/* cols was not taken */
	return o;
fail:
	json_object_put(cols);
	json_object_put(o);
	return NULL;
}

enum sh_err catalog_write(const struct catalog *cat, FILE *out, char *err, size_t errlen)
{
	json_object *root = json_object_new_object(), *models = json_object_new_array();
	const char *text;
	enum sh_err rc = SH_OK;

	if (!root || !models)
		goto nomem;
	if (json_object_object_add(root, "format", json_object_new_string(CATALOG_FILE_FORMAT)) ||
	    json_object_object_add(root, "version", json_object_new_int(CATALOG_FILE_VERSION)) ||
	    json_object_object_add(root, "schema", json_object_new_string(cat->schema)))
		goto nomem;
	for (size_t i = 0; i < cat->nmodels; i++) {
		json_object *m;

		if (cat->models[i].nkey == 0) {
			set_err(err, errlen, "model \"%s\" has no primary key", cat->models[i].name);
			json_object_put(models);
			json_object_put(root);
			return SH_EINVAL;
		}
		m = model_json(&cat->models[i]);
		if (!m || json_object_array_add(models, m)) {
			json_object_put(m);
			goto nomem;
		}
	}
	if (json_object_object_add(root, "models", models))
		goto nomem;	/* models was not taken */
	models = NULL;
	if (cat->nskipped && json_object_object_add(root, "skipped", skipped_json(cat)))
		goto nomem;
	text = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY |
					      JSON_C_TO_STRING_SPACED |
					      JSON_C_TO_STRING_NOSLASHESCAPE);
	if (!text)
		goto nomem;
	errno = 0;
	if (fputs(text, out) == EOF || fputc('\n', out) == EOF || fflush(out) == EOF || ferror(out)) {
		set_err(err, errlen, "writing the catalog: %s", strerror(errno ? errno : EIO));
		rc = SH_EIO;
	}
	json_object_put(root);
	return rc;
nomem:
	json_object_put(models);
	json_object_put(root);
	set_err(err, errlen, "out of memory");
	return SH_ENOMEM;
}

/* ---- reading ------------------------------------------------------------ */

struct rd {
	const char *name;	/* the file, for messages */
	char *err;
	size_t errlen;
};

static enum sh_err bad(struct rd *r, const char *where, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static enum sh_err bad(struct rd *r, const char *where, const char *fmt, ...)
{
	char what[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	set_err(r->err, r->errlen, "%s: %s%s%s", r->name, where ? where : "", where ? ": " : "",
		what);
	return SH_EINVAL;
}

/* Every key of o must be one of keys (NULL-terminated). */
static enum sh_err only_keys(struct rd *r, const char *where, json_object *o,
			     const char *const *keys)
{
	json_object_object_foreach(o, key, val) {
		bool known = false;

		(void)val;
		for (size_t i = 0; keys[i] && !known; i++)
			known = strcmp(keys[i], key) == 0;
		if (!known)
			return bad(r, where, "unknown key \"%s\"", key);
	}
	return SH_OK;
}

static json_object *need(struct rd *r, const char *where, json_object *o, const char *key,
			 enum json_type type, enum sh_err *rc)
{
	static const char *const type_names[] = {
		[json_type_null] = "null", [json_type_boolean] = "a boolean",
		[json_type_double] = "a number", [json_type_int] = "an integer",
		[json_type_object] = "an object", [json_type_array] = "an array",
		[json_type_string] = "a string",
	};
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v)) {
		*rc = bad(r, where, "missing \"%s\"", key);
		return NULL;
	}
	if (!json_object_is_type(v, type)) {
		*rc = bad(r, where, "\"%s\" must be %s", key, type_names[type]);
		return NULL;
	}
	return v;
}

/* A name: a non-empty string without control characters, at most max bytes
 * (CATALOG_NAME_MAX for names); a model name also becomes a directory name. */
static const char *need_name(struct rd *r, const char *where, json_object *o, const char *key,
			     size_t max, bool dir_name, enum sh_err *rc)
{
	json_object *v = need(r, where, o, key, json_type_string, rc);
	const char *s;
	size_t len;

	if (!v)
		return NULL;
	s = json_object_get_string(v);
	len = (size_t)json_object_get_string_len(v);
	if (len == 0) {
		*rc = bad(r, where, "\"%s\" is empty", key);
		return NULL;
	}
	if (strlen(s) != len || len > max) {
		*rc = bad(r, where, "\"%s\" is %s", key, strlen(s) != len ? "not a valid name" :
			  max == CATALOG_NAME_MAX ?
			  "longer than PostgreSQL's 63-byte limit for names" : "too long");
		return NULL;
	}
	for (size_t i = 0; i < len; i++) {
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f ||
		    (dir_name && s[i] == '/')) {
			*rc = bad(r, where, "\"%s\" \"%s\" holds a %s", key, s,
				  s[i] == '/' ? "'/'" : "control character");
			return NULL;
		}
	}
	if (dir_name && (strcmp(s, ".") == 0 || strcmp(s, "..") == 0)) {
		*rc = bad(r, where, "\"%s\" cannot be \"%s\"", key, s);
		return NULL;
	}
	return s;
}

static bool name_in(const char *name, const char *const *names, size_t n);
static enum sh_err read_key(struct rd *r, const char *where, json_object *jm,
			    const char **key, size_t *nkey);

/* The optional type details of a column (version 2); without them the
 * details stay as model_add_column derived them from typname and type. */
static enum sh_err read_details(struct rd *r, const char *where, json_object *jc,
				struct column *c)
{
	static const char *const keys[] = { "base", "typmod", "array", "elem_not_null", NULL };
	static const enum json_type types[] = { json_type_string, json_type_int,
						json_type_boolean, json_type_boolean };
	json_object *v[4] = { NULL }, *lv = NULL;
	const char **labels = NULL;
	size_t n = 0;
	enum sh_err rc = SH_OK;
	int set;
	int64_t typmod;

	for (size_t i = 0; i < 4; i++)
		if (json_object_object_get_ex(jc, keys[i], &v[i]) &&
		    !(v[i] = need(r, where, jc, keys[i], types[i], &rc)))
			return rc;
	if (json_object_object_get_ex(jc, "labels", &lv) &&
	    !(lv = need(r, where, jc, "labels", json_type_array, &rc)))
		return rc;
	if (!v[0] && !v[1] && !v[2] && !v[3] && !lv)
		return SH_OK;
	if (!v[0] || !need_name(r, where, jc, "base", CATALOG_NAME_MAX, false, &rc))
		return v[0] ? rc : bad(r, where, "type details without \"base\"");
	typmod = v[1] ? json_object_get_int64(v[1]) : -1;
	if (typmod < -1 || typmod > INT32_MAX)
		return bad(r, where, "\"typmod\" %lld is out of range", (long long)typmod);
	if (lv) {
		n = json_object_array_length(lv);
		if (!(labels = calloc(n ? n : 1, sizeof(*labels))))
			return SH_ENOMEM;
		for (size_t i = 0; i < n; i++) {
			json_object *l = json_object_array_get_idx(lv, i);

			if (!json_object_is_type(l, json_type_string)) {
				free(labels);
				return bad(r, where, "\"labels\"[%zu] must be a string", i);
			}
			labels[i] = json_object_get_string(l);
		}
	}
	set = column_set_details(c, json_object_get_string(v[0]), (int32_t)typmod,
				 v[2] && json_object_get_boolean(v[2]),
				 v[3] && json_object_get_boolean(v[3]), labels, n);
	free(labels);
	return set ? SH_ENOMEM : SH_OK;
}

/* "client_default", optional: a clientdef.h spec (on a key column it changes
 * nothing: the file name gives the key). */
static enum sh_err read_client_default(struct rd *r, const char *where, json_object *jc,
				       struct model *m, const char *cname)
{
	json_object *v;

	if (!json_object_object_get_ex(jc, "client_default", &v))
		return SH_OK;
	if (!json_object_is_type(v, json_type_string) ||
	    !clientdef_valid(json_object_get_string(v)))
		return bad(r, where, "\"client_default\" must be one of \"cuid\", \"cuid(2)\", "
			   "\"uuid\", \"uuid(4)\", \"uuid(7)\", \"nanoid\", \"nanoid(N)\", "
			   "\"ulid\", \"now\", \"updatedAt\"");
	if (model_set_client_default(m, cname, json_object_get_string(v)))
		return SH_ENOMEM;
	return SH_OK;
}

static enum sh_err read_model(struct rd *r, struct catalog *cat, json_object *jm, size_t mi)
{
	static const char *const model_keys[] = { "name", "primary_key", "columns", NULL };
	static const char *const col_keys[] = { "name", "type", "typname", "not_null",
						"has_default", "generated", "base", "typmod",
						"array", "elem_not_null", "labels",
						"client_default", NULL };
	char where[160];
	enum sh_err rc = SH_OK;
	const char *name, *key[MODEL_KEY_MAX];
	json_object *cols;
	struct model *m;
	size_t n, nkey = 0;

	snprintf(where, sizeof(where), "models[%zu]", mi);
	if (!json_object_is_type(jm, json_type_object))
		return bad(r, where, "must be an object");
	if (!(name = need_name(r, where, jm, "name", CATALOG_NAME_MAX, true, &rc)))
		return rc;
	snprintf(where, sizeof(where), "model \"%s\"", name);
	if ((rc = only_keys(r, where, jm, model_keys)))
		return rc;
	if (catalog_find(cat, name))
		return bad(r, NULL, "model \"%s\" appears twice", name);
	if ((rc = read_key(r, where, jm, key, &nkey)))
		return rc;
	if (!(cols = need(r, where, jm, "columns", json_type_array, &rc)))
		return rc;
	n = json_object_array_length(cols);
	if (n == 0)
		return bad(r, where, "\"columns\" is empty");
	if (!(m = catalog_add_model(cat, name)))
		return SH_ENOMEM;
	for (size_t i = 0; i < n; i++) {
		json_object *jc = json_object_array_get_idx(cols, i), *nn, *def, *gen;
		const char *cname, *type, *typname;
		char cwhere[256];

		snprintf(cwhere, sizeof(cwhere), "model \"%s\", columns[%zu]", name, i);
		if (!json_object_is_type(jc, json_type_object))
			return bad(r, cwhere, "must be an object");
		if (!(cname = need_name(r, cwhere, jc, "name", CATALOG_NAME_MAX, false, &rc)))
			return rc;
		snprintf(cwhere, sizeof(cwhere), "model \"%s\", column \"%s\"", name, cname);
		if ((rc = only_keys(r, cwhere, jc, col_keys)))
			return rc;
		if (model_column(m, cname))
			return bad(r, where, "column \"%s\" appears twice", cname);
		if (!(type = need_name(r, cwhere, jc, "type", TYPE_MAX, false, &rc)) ||
		    !(typname = need_name(r, cwhere, jc, "typname", CATALOG_NAME_MAX, false, &rc)) ||
		    !(nn = need(r, cwhere, jc, "not_null", json_type_boolean, &rc)) ||
		    !(def = need(r, cwhere, jc, "has_default", json_type_boolean, &rc)))
			return rc;
		if (name_in(cname, key, nkey) && !json_object_get_boolean(nn))
			return bad(r, cwhere, "the primary key must be \"not_null\": true");
		gen = NULL;
		if (json_object_object_get_ex(jc, "generated", &gen) &&
		    !json_object_is_type(gen, json_type_boolean))
			return bad(r, cwhere, "\"generated\" must be a boolean");
		if (gen && json_object_get_boolean(gen) && name_in(cname, key, nkey))
			return bad(r, cwhere, "a primary-key column cannot be \"generated\": "
				   "the file name gives its value");
		if (model_add_column(m, cname, type, typname, json_object_get_boolean(nn),
				     json_object_get_boolean(def), false))
			return SH_ENOMEM;
		m->cols[m->ncols - 1].generated = gen && json_object_get_boolean(gen);
		if ((rc = read_client_default(r, cwhere, jc, m, cname)))
			return rc;
		if ((rc = read_details(r, cwhere, jc, &m->cols[m->ncols - 1])))
			return rc;
	}
	for (size_t k = 0; k < nkey; k++)
		if (!model_column(m, key[k]))
			return bad(r, where, "\"primary_key\" \"%s\" is not one of its columns",
				   key[k]);
	if (model_set_key(m, key, nkey))
		return SH_ENOMEM;
	return SH_OK;
}

static bool name_in(const char *name, const char *const *names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(names[i], name) == 0)
			return true;
	return false;
}

/* "primary_key": one column name, or an array of 1 to MODEL_KEY_MAX distinct
 * names in key order. */
static enum sh_err read_key(struct rd *r, const char *where, json_object *jm,
			    const char **key, size_t *nkey)
{
	enum sh_err rc = SH_OK;
	json_object *v;
	size_t n;

	*nkey = 0;
	if (!json_object_object_get_ex(jm, "primary_key", &v))
		return bad(r, where, "missing \"primary_key\"");
	if (!json_object_is_type(v, json_type_array)) {
		if (!(key[0] = need_name(r, where, jm, "primary_key", CATALOG_NAME_MAX, false, &rc)))
			return rc;
		*nkey = 1;
		return SH_OK;
	}
	n = json_object_array_length(v);
	if (n == 0 || n > MODEL_KEY_MAX)
		return bad(r, where, "\"primary_key\" must name 1 to %d columns", MODEL_KEY_MAX);
	for (size_t k = 0; k < n; k++) {
		json_object *holder = json_object_new_object();
		json_object *e = json_object_array_get_idx(v, k);

		if (!holder)
			return SH_ENOMEM;
		json_object_object_add(holder, "primary_key", json_object_get(e));
		key[k] = need_name(r, where, holder, "primary_key", CATALOG_NAME_MAX, false, &rc);
		json_object_put(holder);	/* e stays alive in v */
		if (!key[k])
			return rc;
		if (name_in(key[k], key, k))
			return bad(r, where, "\"primary_key\" names \"%s\" twice", key[k]);
	}
	*nkey = n;
	return SH_OK;
}

/* "skipped" (optional): [{"name": ..., "reason": ...}, ...], as written. */
static enum sh_err read_skipped(struct rd *r, struct catalog *cat, json_object *root)
{
	static const char *const keys[] = { "name", "reason", NULL };
	enum sh_err rc = SH_OK;
	json_object *a;

	if (!json_object_object_get_ex(root, "skipped", &a))
		return SH_OK;
	if (!json_object_is_type(a, json_type_array))
		return bad(r, NULL, "\"skipped\" must be an array");
	for (size_t i = 0; i < json_object_array_length(a); i++) {
		json_object *t = json_object_array_get_idx(a, i);
		const char *name, *reason;
		char where[64];

		snprintf(where, sizeof(where), "skipped[%zu]", i);
		if (!json_object_is_type(t, json_type_object))
			return bad(r, where, "must be an object");
		if ((rc = only_keys(r, where, t, keys)) ||
		    !(name = need_name(r, where, t, "name", CATALOG_NAME_MAX, false, &rc)) ||
		    !(reason = need_name(r, where, t, "reason", TYPE_MAX, false, &rc)))
			return rc;
		if (catalog_add_skipped(cat, name, reason))
			return SH_ENOMEM;
	}
	return SH_OK;
}

/* "line L, column C" of byte off. */
static void position(const char *text, size_t off, char *buf, size_t len)
{
	size_t line = 1, col = 1;

	for (size_t i = 0; i < off; i++) {
		if (text[i] == '\n') {
			line++;
			col = 1;
		} else {
			col++;
		}
	}
	snprintf(buf, len, "line %zu, column %zu", line, col);
}

enum sh_err catalog_parse(const char *text, size_t len, const char *name,
			  struct catalog **out, char *err, size_t errlen)
{
	static const char *const root_keys[] = { "format", "version", "schema", "models",
						 "skipped", NULL };
	struct rd r = { .name = name, .err = err, .errlen = errlen };
	struct json_tokener *tok;
	enum json_tokener_error jerr;
	json_object *root, *v, *models;
	struct catalog *cat = NULL;
	enum sh_err rc = SH_OK;
	const char *schema;
	char pos[64];
	size_t end;

	*out = NULL;
	if (len > CATALOG_FILE_MAX) {
		set_err(err, errlen, "%s: larger than %d bytes: not a catalog", name,
			CATALOG_FILE_MAX);
		return SH_ETOOBIG;
	}
	if (memchr(text, '\0', len))
		return bad(&r, NULL, "not JSON: holds a NUL byte");
	if (!(tok = json_tokener_new()))
		return SH_ENOMEM;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	root = json_tokener_parse_ex(tok, text, (int)len);
	jerr = json_tokener_get_error(tok);
	end = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	if (!root || jerr != json_tokener_success) {
		json_object_put(root);
		if (jerr == json_tokener_continue || (jerr == json_tokener_success && !root))
			return bad(&r, NULL, "not JSON: %s", len ? "truncated" : "empty");
		position(text, end, pos, sizeof(pos));
		return bad(&r, NULL, "not JSON: %s at %s", json_tokener_error_desc(jerr), pos);
	}
	while (end < len && isspace((unsigned char)text[end]))
		end++;
	if (end != len) {
		json_object_put(root);
		position(text, end, pos, sizeof(pos));
		return bad(&r, NULL, "not JSON: extra text at %s", pos);
	}
	if (!json_object_is_type(root, json_type_object)) {
		rc = bad(&r, NULL, "not a catalog (not a JSON object)");
		goto done;
	}
	if (!json_object_object_get_ex(root, "format", &v) ||
	    !json_object_is_type(v, json_type_string) ||
	    strcmp(json_object_get_string(v), CATALOG_FILE_FORMAT) != 0) {
		rc = bad(&r, NULL, "not a catalog (\"format\" is not \"" CATALOG_FILE_FORMAT "\")");
		goto done;
	}
	if (!(v = need(&r, NULL, root, "version", json_type_int, &rc)))
		goto done;
	if (json_object_get_int64(v) != CATALOG_FILE_VERSION &&
	    json_object_get_int64(v) != CATALOG_FILE_VERSION_OLD) {
		rc = bad(&r, NULL, "catalog version %lld is not supported (this sharded reads "
			 "version %d)", (long long)json_object_get_int64(v), CATALOG_FILE_VERSION);
		goto done;
	}
	if ((rc = only_keys(&r, NULL, root, root_keys)))
		goto done;
	if (!(schema = need_name(&r, NULL, root, "schema", CATALOG_NAME_MAX, false, &rc)) ||
	    !(models = need(&r, NULL, root, "models", json_type_array, &rc)))
		goto done;
	if (!(cat = catalog_new(schema))) {
		rc = SH_ENOMEM;
		goto done;
	}
	for (size_t i = 0; i < json_object_array_length(models) && rc == SH_OK; i++)
		rc = read_model(&r, cat, json_object_array_get_idx(models, i), i);
	if (rc == SH_OK)
		rc = read_skipped(&r, cat, root);
done:
	if (rc == SH_ENOMEM)
		set_err(err, errlen, "%s: out of memory", name);
	json_object_put(root);
	if (rc != SH_OK) {
		catalog_free(cat);
		return rc;
	}
	*out = cat;
	return SH_OK;
}

enum sh_err catalog_read(const char *path, struct catalog **out, char *err, size_t errlen)
{
	size_t cap = 65536, len = 0;
	struct stat st = { 0 };
	enum sh_err rc;
	char *buf;
	int fd, e;

	*out = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		e = errno;
		set_err(err, errlen, "%s: %s", path, strerror(e));
		return e == ENOENT ? SH_ENOENT : SH_EIO;
	}
	if (fstat(fd, &st) != 0 || S_ISDIR(st.st_mode)) {
		set_err(err, errlen, "%s: %s", path, S_ISDIR(st.st_mode) ? "is a directory" :
			strerror(errno));
		close(fd);
		return SH_EIO;
	}
	if (S_ISREG(st.st_mode) && st.st_size > CATALOG_FILE_MAX) {
		close(fd);
		set_err(err, errlen, "%s: larger than %d bytes: not a catalog", path,
			CATALOG_FILE_MAX);
		return SH_ETOOBIG;
	}
	if (S_ISREG(st.st_mode) && (size_t)st.st_size < CATALOG_FILE_MAX)
		cap = (size_t)st.st_size + 1;	/* grows if the file does */
	if (!(buf = malloc(cap))) {
		close(fd);
		set_err(err, errlen, "%s: out of memory", path);
		return SH_ENOMEM;
	}
	for (;;) {
		ssize_t got;

		if (len == cap) {
			char *grown;

			if (cap > CATALOG_FILE_MAX)
				break;	/* more than the cap: catalog_parse refuses it */
			cap = cap * 2 > CATALOG_FILE_MAX + 1 ? CATALOG_FILE_MAX + 1 : cap * 2;
			if (!(grown = realloc(buf, cap))) {
				free(buf);
				close(fd);
				set_err(err, errlen, "%s: out of memory", path);
				return SH_ENOMEM;
			}
			buf = grown;
		}
		got = read(fd, buf + len, cap - len);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			set_err(err, errlen, "%s: %s", path, strerror(errno));
			free(buf);
			close(fd);
			return SH_EIO;
		}
		if (got == 0)
			break;
		len += (size_t)got;
	}
	close(fd);
	rc = catalog_parse(buf, len, path, out, err, errlen);
	free(buf);
	return rc;
}
