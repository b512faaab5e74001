/* prisma.h - a catalog from a Prisma schema (schema.prisma, or a schema
 * folder of .prisma files), for `sharded generate --schema`, read as Prisma
 * reads it for PostgreSQL:
 *
 * - `model X { ... }` blocks, each becoming the table X, or the name of
 *   `@@map("table")`;
 * - scalar fields `name Type`, with `?` (nullable: not_null false) and `[]`
 *   (a PostgreSQL array, nullable as Prisma creates it); the column is the
 *   field name or `@map("col")`;
 * - `@id` on one field, or `@@id([a, b, ...])`: the primary key, in the
 *   order of @@id. A model without a key is left out with a warning (so is
 *   one with a composite key while the catalog holds one-column keys only);
 * - `@default(cuid())`, `cuid(2)`, `uuid()`, `uuid(4)`, `uuid(7)`,
 *   `nanoid()`, `nanoid(n)`, `ulid()`, `now()` and `@updatedAt`: values that
 *   Prisma's client makes: column.client_default (clientdef.h), and sharded
 *   fills them in as the client would; has_default is false but for now()
 *   (Prisma's migrations give it DEFAULT CURRENT_TIMESTAMP);
 * - any other `@default(...)` (a literal, autoincrement(), dbgenerated(),
 *   sequence()): has_default true;
 * - an implicit many-to-many relation (a list field on each side, neither
 *   with `fields:`) is the table Prisma creates for it: "_" + the relation
 *   name (`@relation("name")`, else the two model names sorted and joined by
 *   "To", e.g. "_PostToTag"), with column A the key of the model first by
 *   name and B that of the other, of their key's type, NOT NULL, and (A, B)
 *   as its key;
 * - enums (`enum E { A B }`, `@@map` honoured): a field of an enum type has
 *   the enum's name as its typname (checked as COL_OTHER);
 * - relation fields (the type is another model, or `@relation(...)`) are not
 *   columns and are skipped; so are `Unsupported("...")` fields (warning);
 * - `generator` and `datasource` blocks, `//` and `///` comments are ignored,
 *   as are attributes that do not change the catalog (`@unique`, `@@index`,
 *   ...). `@@ignore` leaves a model out; a model whose
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
 * Anything else is an error with its line number (and file, of several): a
 * syntax error, an unknown type or native type, two @id fields, two fields on
 * one column, two models on one table (a many-to-many table included), a
 * name longer than PostgreSQL's 63 bytes, a client default with an argument
 * Prisma does not give it (uuid(5)).
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

/* One schema made of n files (texts[i] named names[i] in messages, "FILE:
 * line N: reason"): a model may use a model or enum of another file. */
enum sh_err prisma_parse_files(const char *const *texts, const char *const *names, size_t n,
			       const char *schema, prisma_warn_fn warn, void *ctx,
			       struct catalog **out, char *err, size_t errlen);

/* A schema folder (Prisma's prismaSchemaFolder, Prisma 6's prisma/schema):
 * every *.prisma file in dir and its subfolders (hidden ones aside), in name
 * order, as one schema. SH_EINVAL when there is none; SH_EIO when dir or a
 * file cannot be read; SH_ETOOBIG above CATALOG_FILE_MAX bytes in all. */
enum sh_err prisma_parse_dir(const char *dir, const char *schema, prisma_warn_fn warn,
			     void *ctx, struct catalog **out, char *err, size_t errlen);

#endif
