/* pg.h - everything sharded says to PostgreSQL.
 *
 * One struct pg is one libpq connection, used by one thread at a time (the
 * caller serialises). Every identifier is quoted with PQescapeIdentifier and
 * every value is a bound parameter. Errors are classified: SH_EUNAVAIL means
 * transient (connection lost, server shutting down, serialization failure,
 * timeout: retry later, nothing was committed); a permanent refusal of one
 * record is reported on that record (op->dead), never for the whole batch.
 */
#ifndef SHARDED_PG_H
#define SHARDED_PG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "catalog.h"
#include "error.h"
#include "op.h"

struct pg;

/* Connect; on failure return SH_EUNAVAIL (or SH_EINVAL for a malformed
 * conninfo) with a one-line reason in err that contains no password. */
enum sh_err pg_connect(const char *conninfo, struct pg **out, char *err, size_t errlen);

/* Accepts NULL. */
void pg_close(struct pg *pg);

/* Has the connection been lost (the server went away, or a wait ran out)? */
bool pg_broken(const struct pg *pg);

/* Drop a broken connection and try once to connect again (the limits, if
 * set, apply to the new session too). */
enum sh_err pg_reconnect(struct pg *pg);

/* Deadlines of one connection. A server that is stuck (a table locked by a
 * migration) ends the statement itself after statement_ms / lock_ms (SQLSTATE
 * 57014 / 55P03: SH_EUNAVAIL); a server that answers nothing at all (stopped,
 * a dead network) is given wait_ms for each answer, after which the
 * connection is dropped, the call returns SH_EUNAVAIL and pg_timed_out()
 * says so. 0 means no limit (the server's default, or wait forever). */
struct pg_limits {
	int statement_ms;
	int lock_ms;
	int wait_ms;
};

/* Set the limits (a round trip to set the session's timeouts). While
 * *cancel (if not NULL) is set, every wait ends at once as a timeout: a
 * stopping daemon does not wait for a server that answers nothing. */
enum sh_err pg_set_limits(struct pg *pg, const struct pg_limits *limits, const atomic_bool *cancel);

/* Did the last call end without an answer in time: wait_ms passed (or the
 * wait was cancelled), or the server's statement_timeout or lock_timeout? */
bool pg_timed_out(const struct pg *pg);

/* Create sharded's own bookkeeping table if missing:
 *   sharded_applied(block, origin, seq, applied_at), primary key (block, origin):
 *   the highest seq applied of each origin of each block (op.h).
 * A table made by a version from before origins (keyed by block) is
 * migrated in one transaction: its rows become the legacy origin's. */
enum sh_err pg_ensure_tables(struct pg *pg);

/* Load the catalog of schema: every ordinary or partitioned table with a
 * primary key of any number of columns, except sharded_* tables and
 * partitions; or only those named in models_csv ("User,Order"; NULL or "" =
 * all). The tables that are not models (no primary key, views, partitions...)
 * go to cat->skipped with the reason. A name in models_csv that is not a
 * model is an error (SH_EINVAL, the reason in err). */
enum sh_err pg_load_catalog(struct pg *pg, const char *schema, const char *models_csv,
			    struct catalog **out, char *err, size_t errlen);

/* Fill model.seq of cat's models from PostgreSQL (pg_load_catalog does it;
 * for a catalog read from a file). */
enum sh_err pg_load_sequences(struct pg *pg, struct catalog *cat, char *err, size_t errlen);

/* Take n values (n >= 1) from sequence seq (a name as pg_get_serial_sequence
 * gives it) with nextval, into ids: PostgreSQL never hands them out again.
 * SH_EUNAVAIL: transient failure; SH_EREMOTE: refused (e.g. no such sequence). */
enum sh_err pg_reserve_ids(struct pg *pg, const char *seq, int n, int64_t *ids);

/* Read one row as JSON (row_to_json). *doc is malloc'd on SH_OK.
 * SH_ENOENT: no such row, or pk cannot be a value of the key's type (or
 * has another number of parts than m has key columns).
 * SH_EUNAVAIL: transient failure. */
enum sh_err pg_fetch_row(struct pg *pg, const struct catalog *cat, const struct model *m,
			 const char *pk, char **doc);

/* Highest seq applied of block's origin (0 if none). */
enum sh_err pg_applied_seq(struct pg *pg, const char *block, const char *origin, int64_t *seq);

/* Apply ops (in the order to apply them, all of one block) in one transaction:
 * - take the block's lock (an advisory lock: appliers of one block queue);
 *   ops at or below their origin's sharded_applied seq are marked skipped;
 * - collapse the rest per (model, pk), last write wins (op->superseded);
 * - apply them in batched statements (json_populate_recordset, ON CONFLICT
 *   (every key column) DO UPDATE of the columns present, generated columns
 *   left out, RETURNING row_to_json);
 * - a permanent error is isolated by bisecting under savepoints: the one bad
 *   op gets dead = true and error = PostgreSQL's message, the rest apply;
 * - raise each origin's sharded_applied seq to its highest seq in ops, commit.
 * On SH_OK *applied_upto is the highest seq in ops and each applied upsert
 * has returned set.
 * On SH_EUNAVAIL nothing was committed and err says why. */
enum sh_err pg_apply(struct pg *pg, const struct catalog *cat, const char *block,
		     struct op *ops, size_t n, int64_t *applied_upto, char *err, size_t errlen);

/* How many statements this connection has sent: batching is visible in tests
 * and statistics. */
uint64_t pg_statements(const struct pg *pg);

/* ---- loading a block (loader.h says what to load) ---- */

/* SELECT pk::text, row_to_json(t) FROM schema.model t WHERE <where>; with
 * count, SELECT count(*) of the same rows. where is the operator's SQL from
 * the loader rules, with $1.. for bound values. malloc'd; NULL on failure. */
char *pg_loader_sql(struct pg *pg, const struct catalog *cat, const struct model *m,
		    const char *where, bool count);

/* Does sql parse and plan with nparams untyped parameters? SH_EINVAL with
 * PostgreSQL's reason when not. */
enum sh_err pg_check_sql(struct pg *pg, const char *sql, int nparams, char *err, size_t errlen);

/* Run a count(*) query. */
enum sh_err pg_count(struct pg *pg, const char *sql, int nparams, const char *const *vals,
		     int64_t *count, char *err, size_t errlen);

/* Stream the rows of a pg_loader_sql() query one at a time (libpq single-row
 * mode: memory stays bounded whatever the size). fn returns SH_OK to go on;
 * anything else stops the query and is returned. After any failure the
 * session is cut (no cancel request: that waits for the server too): call
 * pg_reconnect before using the connection again. wait_ms (pg_set_limits)
 * bounds each wait for more rows, not the whole query. */
typedef enum sh_err (*pg_row_fn)(void *ctx, const char *pk, const char *doc);
enum sh_err pg_stream_rows(struct pg *pg, const char *sql, int nparams, const char *const *vals,
			   pg_row_fn fn, void *ctx, char *err, size_t errlen);

/* Is this SQLSTATE worth retrying (class 08, 40, 53, 57, 58, 55P03 ...)? */
bool pg_sqlstate_transient(const char *sqlstate);

/* Is this SQLSTATE a refusal of the values sent (class 22 data exception, 23
 * integrity, 54 program limit) rather than of the database's state (a table
 * missing, a privilege)? The sync holds back only the block such a refusal of
 * its bookkeeping is about; other refusals are taken as an outage of all. */
bool pg_sqlstate_of_values(const char *sqlstate);

/* The SQLSTATE of the last statement refused for good on this connection. */
const char *pg_refused_sqlstate(const struct pg *pg);

/* The libpq connection underneath, for what this header does not wrap:
 * LISTEN and its notifications (capture.c). Owned by pg; NULL after a cut. */
struct pg_conn;
struct pg_conn *pg_libpq(struct pg *pg);

#endif
