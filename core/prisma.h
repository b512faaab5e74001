/* prisma.h - a catalog from a Prisma schema (schema.prisma).
 *
 * The subset the original project used, so that its users can carry their
 * schema over to `sharded generate --schema schema.prisma`:
 *
 * - `model X { ... }` blocks, each becoming the table X, or the name of
 *   `@@map("table")`;
 * - scalar fields `name Type`, with `?` (nullable: not_null false) and `[]`
 *   (a PostgreSQL array, nullable as Prisma creates it); the column is the
 *   field name or `@map("col")`;
 * - `@id` on one field, or `@@id([field])` with one field: the primary key.
 *   A model with a composite key (`@@id([a, b])`) or no key at all is left
 *   out with a warning (only single-column keys are exposed);
 * - `@default(...)` (any argument): has_default true;
 * - enums (`enum E { A B }`, `@@map` honoured): a field of an enum type has
 *   the enum's name as its typname (checked as COL_OTHER);
 * - relation fields (the type is another model, or `@relation(...)`) are not
 *   columns and are skipped; so are `Unsupported("...")` fields (warning);
 * - `generator` and `datasource` blocks, `//` and `///` comments are ignored,
 *   as are attributes that do not change the catalog (`@unique`, `@@index`,
 *   `@updatedAt`, ...). `@@ignore` leaves a model out; a model whose
 *   `@@schema("s")` is not the schema asked for is left out with a warning.
 *
 * Types, as Prisma's migrations create them for PostgreSQL (typname, type):
 *   Int int4 integer            BigInt int8 bigint        Boolean bool boolean
 *   String text text            Float float8 double precision
 *   DateTime timestamp timestamp(3) without time zone
 *   Decimal numeric numeric(65,30)   Json jsonb jsonb      Bytes bytea bytea
 *   T[]: _typname, type[]
 * and with a native type attribute: @db.Uuid, @db.VarChar(n), @db.Char(n),
 * @db.Text, @db.Citext, @db.Inet, @db.Xml, @db.Bit(n), @db.VarBit(n),
 * @db.SmallInt, @db.Integer, @db.Oid, @db.BigInt, @db.Real,
 * @db.DoublePrecision, @db.Decimal(p,s), @db.Money, @db.Timestamp(p),
 * @db.Timestamptz(p), @db.Date, @db.Time(p), @db.Timetz(p), @db.Json,
 * @db.JsonB, @db.ByteA, @db.Boolean.
 *
 * Anything else is an error with its line number: a syntax error, an unknown
 * type or native type, two @id fields, two fields on one column, two models
 * on one table, a name longer than PostgreSQL's 63 bytes.
 */
#ifndef SHARDED_PRISMA_H
#define SHARDED_PRISMA_H

#include <stddef.h>

#include "catalog.h"
#include "error.h"

/* Called once per warning (a model or field left out), msg "line N: ...". */
typedef void (*prisma_warn_fn)(void *ctx, const char *msg);

/* Parse text into a new catalog (catalog_free) for the PostgreSQL schema
 * `schema`, with the models in the order of the file. SH_EINVAL with
 * "line N: reason" in err when the text is not a schema this understands.
 * Warnings go to sh_log(LOG_WARNING). */
enum sh_err prisma_parse(const char *text, const char *schema, struct catalog **out,
			 char *err, size_t errlen);

/* The same, with warnings given to warn (NULL: dropped). */
enum sh_err prisma_parse_ex(const char *text, const char *schema, prisma_warn_fn warn,
			    void *ctx, struct catalog **out, char *err, size_t errlen);

#endif
