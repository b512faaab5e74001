/* catalog_file.h - the catalog of exposed models as a JSON file.
 *
 * `sharded generate` writes it (from PostgreSQL's pg_catalog or from a Prisma
 * schema); the mount can load it instead of asking PostgreSQL, so that it can
 * mount while PostgreSQL is unreachable. The format, version 1:
 *
 *   {
 *     "format": "sharded-catalog",      always this string
 *     "version": 1,                     this format's version
 *     "schema": "public",               the PostgreSQL schema of the tables
 *     "models": [                       the exposed tables, in order
 *       {
 *         "name": "User",               table name, unquoted
 *         "primary_key": "id",          the one primary-key column
 *         "columns": [                  every column, in table order
 *           {
 *             "name": "id",             column name, unquoted
 *             "type": "bigint",         format_type(), shown in messages
 *             "typname": "int8",        pg_type.typname ("_text" for text[]): decides
 *                                       how values are checked (catalog.h)
 *             "not_null": true,         NOT NULL
 *             "has_default": false      a default, identity or generated column
 *             "client_default": "cuid"  optional: a default Prisma's client makes,
 *                                       filled in by sharded (clientdef.h)
 *           }, ...
 *         ]
 *       }, ...
 *     ]
 *   }
 *
 * Reading is strict: another format or version, a missing, unknown or
 * mistyped key, an empty or over-long name (PostgreSQL's 63 bytes), a
 * duplicate model or column, a primary key that is not one NOT NULL column of
 * its model, trailing text after the JSON, or a file above CATALOG_FILE_MAX is
 * refused with SH_EINVAL (SH_ETOOBIG for the size) and a message naming the
 * file and the place.
 */
#ifndef SHARDED_CATALOG_FILE_H
#define SHARDED_CATALOG_FILE_H

#include <stddef.h>
#include <stdio.h>

#include "catalog.h"
#include "error.h"

#define CATALOG_FILE_FORMAT "sharded-catalog"
#define CATALOG_FILE_VERSION 1
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
