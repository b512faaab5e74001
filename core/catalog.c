/* catalog.c - building and querying the model catalog. */
#include "catalog.h"
#include "keyname.h"

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

int model_add_column(struct model *m, const char *name, const char *type,
		     const char *typname, bool not_null, bool has_default, bool is_pk)
{
	struct column *grown = realloc(m->cols, (m->ncols + 1) * sizeof(*grown));
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
	c->kind = col_kind_from_typname(typname, &c->min, &c->max);
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

static void model_release(struct model *m)
{
	for (size_t i = 0; i < m->ncols; i++) {
		free(m->cols[i].name);
		free(m->cols[i].type);
		free(m->cols[i].typname);
	}
	free(m->cols);
	free(m->name);
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
