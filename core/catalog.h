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

#include "error.h"

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
	COL_ARRAY,	/* JSON array of base_kind values */
	COL_OTHER,	/* any scalar; PostgreSQL has the last word */
	/* checked as their input functions would (core/pgtype.h) */
	COL_ENUM,	/* one of labels */
	COL_INET,	/* inet: IPv4/IPv6 address with optional /bits */
	COL_CIDR,	/* cidr: a network, no bits right of the mask */
	COL_MACADDR,	/* macaddr: 6 bytes */
	COL_INTERVAL,	/* interval: PostgreSQL's or ISO 8601's form */
	COL_BYTEA,	/* bytea: \x hex or escape form */
	COL_MONEY,	/* money: a number, or digits with $ , . - ( ) */
	COL_BIT,	/* bit(n): exactly n bits */
	COL_VARBIT,	/* bit varying(n): at most n bits */
	COL_RANGE,	/* built-in range: empty or [lower,upper) */
	COL_TSVECTOR	/* tsvector as PostgreSQL prints it (or bare words) */
};

struct column {
	char *name;		/* PostgreSQL column name, unquoted */
	char *type;		/* format_type(), e.g. "numeric(12,2)" */
	char *typname;		/* pg_type.typname, e.g. "numeric", "_text": kind derives from it */
	enum col_kind kind;
	int64_t min, max;	/* range for COL_INT */
	bool not_null;
	bool has_default;	/* PostgreSQL fills it when a new record lacks it */
	bool generated;		/* GENERATED ALWAYS (AS ... STORED, or AS IDENTITY) outside
				 * the key: shown, never written */
	/* Type details: what a value is checked against beyond its kind. Set by
	 * column_set_details() (pg_load_catalog, catalog files); without it they
	 * derive from typname and type. */
	char *base;		/* typname the values are checked as: a domain's base type, an
				 * array's element type (e.g. "varchar" for varchar(5)[]) */
	enum col_kind base_kind;	/* kind of base: kind itself unless an array */
	int32_t typmod;		/* base's type modifier (atttypmod): n+4 for varchar(n) and
				 * char(n), ((p << 16) | s) + 4 for numeric(p,s), n for bit(n);
				 * -1 for none */
	bool array;		/* values are arrays of base (also a domain over an array) */
	bool elem_not_null;	/* array elements cannot be null (a domain NOT NULL) */
	char **labels;		/* enum labels of base, in order; NULL unless base is an enum */
	size_t nlabels;
	char *client_default;	/* Prisma client's default ("cuid", "now", ...; clientdef.h)
				 * that sharded fills in, or NULL */
};

#define MODEL_KEY_MAX 32	/* columns in a primary key: PostgreSQL's INDEX_MAX_KEYS */
#define KEY_SEP ','		/* between the parts of a composite key in a file name */

struct model {
	char *name;		/* table name, unquoted, e.g. "User" */
	struct column *cols;
	size_t ncols;
	size_t key[MODEL_KEY_MAX];	/* the primary-key columns (indexes into cols),
					 * in primary-key order */
	size_t nkey;
	bool local;		/* -o local=: a record a block does not hold does not exist */
	char *seq;		/* the key's sequence (serial, identity) as PostgreSQL names it,
				 * e.g. public."Book_id_seq"; NULL when the key has none */
};

/* A table of the schema that is not a model, and why (shown at mount and by
 * `sharded generate`). */
struct skipped_table {
	char *name;
	char *reason;		/* e.g. "no primary key", "a view" */
};

struct catalog {
	char *schema;		/* PostgreSQL schema, e.g. "public" */
	struct model *models;
	size_t nmodels;
	struct skipped_table *skipped;
	size_t nskipped;
};

/* Look-ups; NULL when absent. */
const struct model *catalog_find(const struct catalog *cat, const char *name);
const struct column *model_column(const struct model *m, const char *name);

/* The primary key: nkey columns, in key order. */
static inline size_t model_nkey(const struct model *m)
{
	return m->nkey;
}
static inline const struct column *model_key_col(const struct model *m, size_t k)
{
	return &m->cols[m->key[k]];
}
bool model_is_key(const struct model *m, size_t col);

/* A record's key from its key parts, in key order: one part as it is; parts
 * of a key of several columns each in keyname_encode_part()'s encoding,
 * joined by KEY_SEP (so the key is also its file name, without ".json").
 * SH_ETOOBIG when it does not fit in outlen. */
enum sh_err key_join(const char *const *parts, size_t n, char *out, size_t outlen);

/* The inverse: split pk into exactly m's nkey parts, each decoded. buf
 * (buflen bytes) holds the parts, parts[] points into it. SH_EINVAL when pk
 * has another number of parts or a part is not canonically encoded (an
 * empty part is "%00"); SH_ETOOBIG when pk does not fit in buf. */
enum sh_err key_split(const struct model *m, const char *pk, char *buf, size_t buflen,
		      const char **parts);

/* The file name of m's record pk (keyname.h), into name[KEYNAME_MAX + 1];
 * false when it is the long form. */
bool key_file_name(const struct model *m, const char *pk, char name[256]);

/* Map a PostgreSQL type name (pg_type.typname, e.g. "int8", "_text") to a kind and range. */
enum col_kind col_kind_from_typname(const char *typname, int64_t *min, int64_t *max);

/* Building (used by pg.c and by unit tests). Return 0, or -1 on allocation failure. */
struct catalog *catalog_new(const char *schema);
struct model *catalog_add_model(struct catalog *cat, const char *name);
/* is_pk appends the column to the primary key (key order = call order). */
int model_add_column(struct model *m, const char *name, const char *type,
		     const char *typname, bool not_null, bool has_default, bool is_pk);
/* Set the primary key to the columns named (in that order); -1 when a name is
 * not a column, repeats, or there are more than MODEL_KEY_MAX. */
int model_set_key(struct model *m, const char *const *names, size_t n);
int catalog_add_skipped(struct catalog *cat, const char *name, const char *reason);
/* Why table name is not a model; NULL when it is not among the tables left out. */
const char *catalog_skip_reason(const struct catalog *cat, const char *name);

/* Drop model i (pointers to later models move). */
void catalog_remove(struct catalog *cat, size_t i);

/* Set the type details of c (see struct column): base typname, typmod,
 * whether values are arrays of it, whether elements may be null, and enum
 * labels (nlabels of them, copied; NULL for a type that is no enum). A
 * domain's NOT NULL and default are the caller's, through not_null and
 * has_default. kind and base_kind follow from base. 0, or -1 when out of
 * memory (c keeps its details). */
int column_set_details(struct column *c, const char *base, int32_t typmod, bool array,
		       bool elem_not_null, const char *const *labels, size_t nlabels);

/* The typmod written in a format_type() text such as "character varying(5)",
 * "numeric(12,2)" or "bit(4)" for base typname base; -1 when none. For
 * catalogs that carry no typmod (files of version 1, Prisma schemas). */
int32_t typmod_from_type(const char *base, const char *type);

/* Give column name of m a client-side default (a clientdef.h spec, copied). */
int model_set_client_default(struct model *m, const char *name, const char *spec);

/* Accepts NULL. */
void catalog_free(struct catalog *cat);

#endif
