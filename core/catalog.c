/* catalog.c - building and querying the model catalog. */
#include "catalog.h"
#include "keyname.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const struct model *catalog_find(const struct catalog *cat, const char *name)
{
	for (size_t i = 0; cat && i < cat->nmodels; i++)
		if (strcmp(cat->models[i].name, name) == 0)
			return &cat->models[i];
	return NULL;
}

const struct column *model_column(const struct model *m, const char *name)
{
	for (size_t i = 0; i < m->ncols; i++)
		if (strcmp(m->cols[i].name, name) == 0)
			return &m->cols[i];
	return NULL;
}

bool model_is_key(const struct model *m, size_t col)
{
	for (size_t k = 0; k < m->nkey; k++)
		if (m->key[k] == col)
			return true;
	return false;
}

/* The one place the parts of a key become the key (and back, below): each
 * part in keyname's encoding, so a ',' inside a text part stays in it. */
enum sh_err key_join(const char *const *parts, size_t n, char *out, size_t outlen)
{
	size_t len = 0;

	if (!outlen)
		return SH_ETOOBIG;
	out[0] = '\0';
	if (n == 1) {	/* a one-column key is the value as it is */
		if (strlen(parts[0]) >= outlen)
			return SH_ETOOBIG;
		memcpy(out, parts[0], strlen(parts[0]) + 1);
		return SH_OK;
	}
	for (size_t i = 0; i < n; i++) {
		if (i > 0) {
			if (len + 1 >= outlen)
				return SH_ETOOBIG;
			out[len++] = KEY_SEP;
		}
		len += keyname_encode_part(parts[i], strlen(parts[i]), out + len, outlen - len);
		if (len >= outlen)
			return SH_ETOOBIG;
	}
	return SH_OK;
}

enum sh_err key_split(const struct model *m, const char *pk, char *buf, size_t buflen,
		      const char **parts)
{
	size_t n = 0, len = strlen(pk);

	if (len >= buflen)	/* a decoded key is never longer than its encoding */
		return SH_ETOOBIG;
	if (m->nkey <= 1) {	/* a one-column key is the whole name, ',' and all */
		memcpy(buf, pk, len + 1);
		parts[0] = buf;
		return SH_OK;
	}
	if (!keyname_decode_list(pk, len, buf, buflen, &n) || n != m->nkey)
		return SH_EINVAL;
	for (size_t i = 0, at = 0; i < n; i++) {
		parts[i] = buf + at;
		at += strlen(buf + at) + 1;
	}
	return SH_OK;
}

bool key_file_name(const struct model *m, const char *pk, char name[KEYNAME_MAX + 1])
{
	return m->nkey > 1 ? keyname_from_list(pk, name) : keyname_from_key(pk, name);
}

static const struct {
	const char *typname;
	enum col_kind kind;
	int64_t min, max;
} kinds[] = {
	{ "bool", COL_BOOL, 0, 0 },
	{ "int2", COL_INT, INT16_MIN, INT16_MAX },
	{ "int4", COL_INT, INT32_MIN, INT32_MAX },
	{ "int8", COL_INT, INT64_MIN, INT64_MAX },
	{ "float4", COL_FLOAT, 0, 0 },
	{ "float8", COL_FLOAT, 0, 0 },
	{ "numeric", COL_NUMERIC, 0, 0 },
	{ "text", COL_TEXT, 0, 0 },
	{ "varchar", COL_TEXT, 0, 0 },
	{ "bpchar", COL_TEXT, 0, 0 },
	{ "name", COL_TEXT, 0, 0 },
	{ "citext", COL_TEXT, 0, 0 },
	{ "json", COL_JSON, 0, 0 },
	{ "jsonb", COL_JSON, 0, 0 },
	{ "uuid", COL_UUID, 0, 0 },
	{ "timestamp", COL_TIMESTAMP, 0, 0 },
	{ "timestamptz", COL_TIMESTAMP, 0, 0 },
	{ "date", COL_DATE, 0, 0 },
	{ "time", COL_TIME, 0, 0 },
	{ "timetz", COL_TIME, 0, 0 },
	{ "inet", COL_INET, 0, 0 },
	{ "cidr", COL_CIDR, 0, 0 },
	{ "macaddr", COL_MACADDR, 0, 0 },
	{ "interval", COL_INTERVAL, 0, 0 },
	{ "bytea", COL_BYTEA, 0, 0 },
	{ "money", COL_MONEY, 0, 0 },
	{ "bit", COL_BIT, 0, 0 },
	{ "varbit", COL_VARBIT, 0, 0 },
	{ "int4range", COL_RANGE, 0, 0 },
	{ "int8range", COL_RANGE, 0, 0 },
	{ "numrange", COL_RANGE, 0, 0 },
	{ "daterange", COL_RANGE, 0, 0 },
	{ "tsrange", COL_RANGE, 0, 0 },
	{ "tstzrange", COL_RANGE, 0, 0 },
	{ "tsvector", COL_TSVECTOR, 0, 0 },
	/* the base of a composite column (pg.c): row_to_json prints it as an
	 * object, which json_populate_record takes back; its fields are
	 * PostgreSQL's to check */
	{ "record", COL_JSON, 0, 0 },
};

enum col_kind col_kind_from_typname(const char *typname, int64_t *min, int64_t *max)
{
	*min = *max = 0;
	if (typname[0] == '_')
		return COL_ARRAY;
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		if (strcmp(kinds[i].typname, typname) == 0) {
			*min = kinds[i].min;
			*max = kinds[i].max;
			return kinds[i].kind;
		}
	}
	return COL_OTHER;
}

struct catalog *catalog_new(const char *schema)
{
	struct catalog *cat = calloc(1, sizeof(*cat));

	if (!cat)
		return NULL;
	cat->schema = strdup(schema);
	if (!cat->schema) {
		free(cat);
		return NULL;
	}
	return cat;
}

struct model *catalog_add_model(struct catalog *cat, const char *name)
{
	struct model *grown = realloc(cat->models, (cat->nmodels + 1) * sizeof(*grown));
	struct model *m;

	if (!grown)
		return NULL;
	cat->models = grown;
	m = &cat->models[cat->nmodels];
	memset(m, 0, sizeof(*m));
	m->name = strdup(name);
	if (!m->name)
		return NULL;
	cat->nmodels++;
	return m;
}

static void free_labels(char **labels, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(labels[i]);
	free(labels);
}

int column_set_details(struct column *c, const char *base, int32_t typmod, bool array,
		       bool elem_not_null, const char *const *labels, size_t nlabels)
{
	char *b = strdup(base), **l = NULL;
	int64_t min, max;
	enum col_kind k;

	if (!b)
		return -1;
	if (labels) {
		l = calloc(nlabels ? nlabels : 1, sizeof(*l));
		for (size_t i = 0; l && i < nlabels; i++) {
			if (!(l[i] = strdup(labels[i]))) {
				free_labels(l, i);
				l = NULL;
			}
		}
		if (!l) {
			free(b);
			return -1;
		}
	}
	k = labels ? COL_ENUM : col_kind_from_typname(base, &min, &max);
	if (labels)
		min = max = 0;
	free(c->base);
	free_labels(c->labels, c->nlabels);
	c->base = b;
	c->labels = l;
	c->nlabels = labels ? nlabels : 0;
	c->base_kind = k == COL_ARRAY ? COL_OTHER : k;	/* arrays of arrays: PostgreSQL's word */
	c->kind = array ? COL_ARRAY : c->base_kind;
	c->min = min;
	c->max = max;
	c->typmod = typmod;
	c->array = array;
	c->elem_not_null = elem_not_null;
	return 0;
}

/* "name(a)" or "name(a,b)" at the end of type, for one of the names. */
static int type_args(const char *type, const char *const *names, long *a, long *b)
{
	const char *open = strrchr(type, '(');
	char *end;

	*b = 0;
	if (!open || open == type)
		return 0;
	for (size_t i = 0; names[i]; i++) {
		size_t n = strlen(names[i]);

		if ((size_t)(open - type) == n && strncmp(type, names[i], n) == 0) {
			*a = strtol(open + 1, &end, 10);
			if (*end == ',')
				*b = strtol(end + 1, &end, 10);
			return *end == ')' && !end[1] && *a > 0;
		}
	}
	return 0;
}

int32_t typmod_from_type(const char *base, const char *type)
{
	static const char *const varchar[] = { "character varying", "varchar", NULL };
	static const char *const bpchar[] = { "character", "char", "bpchar", NULL };
	static const char *const numeric[] = { "numeric", "decimal", NULL };
	static const char *const bit[] = { "bit", NULL };
	static const char *const varbit[] = { "bit varying", "varbit", NULL };
	char t[256];
	size_t n = strlen(type);
	long a, b;

	/* the element's typmod is written before the "[]" of an array */
	while (n >= 2 && strncmp(type + n - 2, "[]", 2) == 0)
		n -= 2;
	if (n >= sizeof(t))
		return -1;
	memcpy(t, type, n);
	t[n] = '\0';
	if ((strcmp(base, "varchar") == 0 && type_args(t, varchar, &a, &b)) ||
	    (strcmp(base, "bpchar") == 0 && type_args(t, bpchar, &a, &b)))
		return a <= 10485760 ? (int32_t)a + 4 : -1;
	if (strcmp(base, "numeric") == 0 && type_args(t, numeric, &a, &b))
		return a <= 1000 && b >= -1000 && b <= 1000 ?
		       (int32_t)(((a << 16) | (b & 0xffff)) + 4) : -1;
	if ((strcmp(base, "bit") == 0 && type_args(t, bit, &a, &b)) ||
	    (strcmp(base, "varbit") == 0 && type_args(t, varbit, &a, &b)))
		return a <= 83886080 ? (int32_t)a : -1;
	return -1;
}

int model_add_column(struct model *m, const char *name, const char *type,
		     const char *typname, bool not_null, bool has_default, bool is_pk)
{
	struct column *grown = realloc(m->cols, (m->ncols + 1) * sizeof(*grown));
	const char *base;
	struct column *c;

	if (!grown)
		return -1;
	m->cols = grown;
	c = &m->cols[m->ncols];
	memset(c, 0, sizeof(*c));
	c->name = strdup(name);
	c->type = strdup(type);
	c->typname = strdup(typname);
	if (!c->name || !c->type || !c->typname) {
		free(c->name);
		free(c->type);
		free(c->typname);
		return -1;
	}
	/* until told more (column_set_details), details follow from the names */
	base = typname[0] == '_' ? typname + 1 : typname;
	if (column_set_details(c, base, typmod_from_type(base, type), typname[0] == '_', false,
			       NULL, 0)) {
		free(c->name);
		free(c->type);
		free(c->typname);
		return -1;
	}
	c->not_null = not_null;
	c->has_default = has_default;
	if (is_pk) {
		if (m->nkey == MODEL_KEY_MAX) {
			free(c->name);
			free(c->type);
			free(c->typname);
			return -1;
		}
		m->key[m->nkey++] = m->ncols;
	}
	m->ncols++;
	return 0;
}

int model_set_key(struct model *m, const char *const *names, size_t n)
{
	size_t key[MODEL_KEY_MAX];

	if (n == 0 || n > MODEL_KEY_MAX)
		return -1;
	for (size_t k = 0; k < n; k++) {
		const struct column *c = model_column(m, names[k]);

		if (!c)
			return -1;
		key[k] = (size_t)(c - m->cols);
		for (size_t j = 0; j < k; j++)
			if (key[j] == key[k])
				return -1;
	}
	memcpy(m->key, key, n * sizeof(key[0]));
	m->nkey = n;
	return 0;
}

int catalog_add_skipped(struct catalog *cat, const char *name, const char *reason)
{
	struct skipped_table *grown = realloc(cat->skipped, (cat->nskipped + 1) * sizeof(*grown));
	struct skipped_table *t;

	if (!grown)
		return -1;
	cat->skipped = grown;
	t = &cat->skipped[cat->nskipped];
	t->name = strdup(name);
	t->reason = strdup(reason);
	if (!t->name || !t->reason) {
		free(t->name);
		free(t->reason);
		return -1;
	}
	cat->nskipped++;
	return 0;
}

int model_set_client_default(struct model *m, const char *name, const char *spec)
{
	struct column *c = (struct column *)model_column(m, name);
	char *copy;

	if (!c || !(copy = strdup(spec)))
		return -1;
	free(c->client_default);
	c->client_default = copy;
	return 0;
}

static void model_release(struct model *m)
{
	for (size_t i = 0; i < m->ncols; i++) {
		free(m->cols[i].client_default);
		free(m->cols[i].name);
		free(m->cols[i].type);
		free(m->cols[i].typname);
		free(m->cols[i].base);
		free_labels(m->cols[i].labels, m->cols[i].nlabels);
	}
	free(m->cols);
	free(m->name);
	free(m->seq);
}

const char *catalog_skip_reason(const struct catalog *cat, const char *name)
{
	for (size_t i = 0; cat && i < cat->nskipped; i++)
		if (strcmp(cat->skipped[i].name, name) == 0)
			return cat->skipped[i].reason;
	return NULL;
}

void catalog_free(struct catalog *cat)
{
	if (!cat)
		return;
	for (size_t i = 0; i < cat->nmodels; i++)
		model_release(&cat->models[i]);
	free(cat->models);
	for (size_t i = 0; i < cat->nskipped; i++) {
		free(cat->skipped[i].name);
		free(cat->skipped[i].reason);
	}
	free(cat->skipped);
	free(cat->schema);
	free(cat);
}

void catalog_remove(struct catalog *cat, size_t i)
{
	model_release(&cat->models[i]);
	memmove(&cat->models[i], &cat->models[i + 1], (cat->nmodels - i - 1) * sizeof(*cat->models));
	cat->nmodels--;
}
