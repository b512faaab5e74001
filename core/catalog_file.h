/* catalog_file.h - the catalog of exposed models as a JSON file.
 *
 * `sharded generate` writes it (from PostgreSQL's pg_catalog or from a Prisma
 * schema); the mount can load it instead of asking PostgreSQL, so that it can
 * mount while PostgreSQL is unreachable. The format, version 2 (version 1,
 * still read, has no type details: they then follow from typname and type):
 *
 *   {
 *     "format": "sharded-catalog",      always this string
 *     "version": 2,                     this format's version
 *     "schema": "public",               the PostgreSQL schema of the tables
 *     "models": [                       the exposed tables, in order
 *       {
 *         "name": "User",               table name, unquoted
 *         "primary_key": "id",          the primary-key column, or an array of
 *                                       them in key order: ["book_id", "author_id"]
 *         "columns": [                  every column, in table order
 *           {
 *             "name": "id",             column name, unquoted
 *             "type": "bigint",         format_type(), shown in messages
 *             "typname": "int8",        pg_type.typname ("_text" for text[]): decides
 *                                       how values are checked (catalog.h)
 *             "not_null": true,         NOT NULL
 *             "has_default": false,     a default, identity or generated column
 *             "generated": true,        optional, false when absent: GENERATED
 *                                       ALWAYS outside the key, never written
 *             "base": "int8",           type details (optional; given, "base" is
 *             "typmod": -1,             needed): the typname values are checked
 *             "array": false,           as (a domain's base, an array's element),
 *             "elem_not_null": false,   its atttypmod, whether values are arrays,
 *             "labels": ["a", "b"],     whether elements may be null, and enum
 *                                       labels (only for an enum)
 *             "client_default": "cuid"  optional: a default Prisma's client makes,
 *                                       filled in by sharded (clientdef.h)
 *           }, ...
 *         ]
 *       }, ...
 *     ],
 *     "skipped": [                      optional: tables that are not models
 *       { "name": "Log", "reason": "no primary key" }, ...
 *     ]
 *   }
 *
 * Reading is strict: another format or version, a missing, unknown or
 * mistyped key, an empty or over-long name (PostgreSQL's 63 bytes), a
 * duplicate model or column, a primary key that is not one or more distinct
 * NOT NULL columns of its model, trailing text after the JSON, or a file
 * above CATALOG_FILE_MAX is refused with SH_EINVAL (SH_ETOOBIG for the size)
 * and a message naming the file and the place.
 */
#ifndef SHARDED_CATALOG_FILE_H
#define SHARDED_CATALOG_FILE_H

#include <stddef.h>
#include <stdio.h>

#include "catalog.h"
#include "error.h"

#define CATALOG_FILE_FORMAT "sharded-catalog"
#define CATALOG_FILE_VERSION 2
#define CATALOG_FILE_VERSION_OLD 1	/* still read: no type details */
#define CATALOG_FILE_MAX (16 * 1024 * 1024)	/* bytes */
#define CATALOG_NAME_MAX 63			/* PostgreSQL's NAMEDATALEN - 1 */

/* Write cat as JSON (indented, one trailing newline) to out and flush it.
 * SH_EIO with the reason in err when writing fails. */
enum sh_err catalog_write(const struct catalog *cat, FILE *out, char *err, size_t errlen);

/* Read and check a catalog file. On SH_OK *out is a new catalog (catalog_free);
 * otherwise *out is NULL and err says what is wrong, naming path. SH_ENOENT:
 * no such file; SH_EIO: unreadable; SH_ETOOBIG: above CATALOG_FILE_MAX;
 * SH_EINVAL: not a valid catalog. */
enum sh_err catalog_read(const char *path, struct catalog **out, char *err, size_t errlen);

/* The same checks on a catalog held in memory; name is used in messages. */
enum sh_err catalog_parse(const char *text, size_t len, const char *name,
			  struct catalog **out, char *err, size_t errlen);

#endif
