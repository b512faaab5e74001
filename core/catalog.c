/* catalog.c - building and querying the model catalog. */
#include "catalog.h"

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
	m->pk = SIZE_MAX;
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
	if (is_pk)
		m->pk = m->ncols;
	m->ncols++;
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
	}
	free(m->cols);
	free(m->name);
}

void catalog_free(struct catalog *cat)
{
	if (!cat)
		return;
	for (size_t i = 0; i < cat->nmodels; i++)
		model_release(&cat->models[i]);
	free(cat->models);
	free(cat->schema);
	free(cat);
}
