/* clientdef.h - values Prisma's client gives a record, not the database.
 *
 * `@default(cuid())`, `uuid()`, `nanoid()`, `ulid()`, `now()` and
 * `@updatedAt` are filled in by Prisma Client before its INSERT or UPDATE;
 * the table has no DEFAULT for them (or one the client never relies on). A
 * column whose catalog entry names one (column.client_default) is filled in
 * by doc_prepare the same way, so that a new record written without it is
 * complete instead of dying on NOT NULL in PostgreSQL.
 *
 * A spec is one of: "cuid" (v1: 'c' + 24 lowercase base-36 characters),
 * "cuid(2)" (24 characters, a letter first), "uuid", "uuid(4)", "uuid(7)"
 * (lowercase 8-4-4-4-12), "nanoid" (21 characters of nanoid's URL alphabet),
 * "nanoid(N)" (N of them, 2..255), "ulid" (26 Crockford base-32 characters),
 * "now" (the current UTC time in the column's date/time form) and
 * "updatedAt" (the same, also set by every later write that does not change
 * the column itself).
 */
#ifndef SHARDED_CLIENTDEF_H
#define SHARDED_CLIENTDEF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "catalog.h"
#include "error.h"

#define CLIENTDEF_SPEC_MAX 16	/* "nanoid(255)" and the like, with the NUL */
#define CLIENTDEF_VALUE_MAX 256	/* the longest value: nanoid(255) */

/* Is spec one of the forms above? */
bool clientdef_valid(const char *spec);

/* Is it set again by every write (@updatedAt), not only by a create? */
bool clientdef_on_update(const char *spec);

/* A new value for column c (c->client_default) into out; now_ns is the wall
 * clock (nanoseconds since the epoch) for the time-based ones. SH_EINVAL for
 * a spec that is not valid or a time for a column that holds none. */
enum sh_err clientdef_make(const struct column *c, int64_t now_ns, char *out, size_t outlen);

#endif
