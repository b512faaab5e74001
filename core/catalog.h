/* catalog.h - the exposed models (tables) and their columns.
 *
 * Filled from PostgreSQL's pg_catalog at mount time (pg_load_catalog in
 * pg.h). Immutable once loaded, so any thread may read it without locks.
 * Validation of a JSON document against a model lives in doc.h.
 */
#ifndef SHARDED_CATALOG_H
#define SHARDED_CATALOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* How a column's JSON value is checked. */
enum col_kind {
	COL_BOOL,	/* JSON true/false */
	COL_INT,	/* JSON integer within [min, max] */
	COL_FLOAT,	/* any JSON number */
	COL_NUMERIC,	/* JSON number, or a string holding a decimal number */
	COL_TEXT,	/* JSON string */
	COL_JSON,	/* any JSON value (json, jsonb) */
	COL_UUID,	/* string in 8-4-4-4-12 hex form */
	COL_TIMESTAMP,	/* string, ISO 8601 date and time (timestamp, timestamptz) */
	COL_DATE,	/* string, YYYY-MM-DD */
	COL_TIME,	/* string, HH:MM[:SS[.frac]] */
	COL_ARRAY,	/* JSON array */
	COL_OTHER	/* any scalar; PostgreSQL has the last word */
};

struct column {
	char *name;		/* PostgreSQL column name, unquoted */
	char *type;		/* format_type(), e.g. "numeric(12,2)" */
	char *typname;		/* pg_type.typname, e.g. "numeric", "_text": kind derives from it */
	enum col_kind kind;
	int64_t min, max;	/* range for COL_INT */
	bool not_null;
	bool has_default;
	char *client_default;	/* Prisma client's default ("cuid", "now", ...; clientdef.h)
				 * that sharded fills in, or NULL */
};

struct model {
	char *name;		/* table name, unquoted, e.g. "User" */
	struct column *cols;
	size_t ncols;
	size_t pk;		/* index of the primary-key column in cols */
	bool local;		/* -o local=: a record a block does not hold does not exist */
};

struct catalog {
	char *schema;		/* PostgreSQL schema, e.g. "public" */
	struct model *models;
	size_t nmodels;
};

/* Look-ups; NULL when absent. */
const struct model *catalog_find(const struct catalog *cat, const char *name);
const struct column *model_column(const struct model *m, const char *name);
static inline const struct column *model_pk(const struct model *m)
{
	return &m->cols[m->pk];
}

/* Map a PostgreSQL type name (pg_type.typname, e.g. "int8", "_text") to a kind and range. */
enum col_kind col_kind_from_typname(const char *typname, int64_t *min, int64_t *max);

/* Building (used by pg.c and by unit tests). Return 0, or -1 on allocation failure. */
struct catalog *catalog_new(const char *schema);
struct model *catalog_add_model(struct catalog *cat, const char *name);
int model_add_column(struct model *m, const char *name, const char *type,
		     const char *typname, bool not_null, bool has_default, bool is_pk);
/* Give column name of m a client-side default (a clientdef.h spec, copied). */
int model_set_client_default(struct model *m, const char *name, const char *spec);

/* Accepts NULL. */
void catalog_free(struct catalog *cat);

#endif
