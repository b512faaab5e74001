/* pg.c - everything sharded says to PostgreSQL (see pg.h).
 *
 * Identifiers go through PQescapeIdentifier, values through PQexecParams
 * parameters; nothing the user wrote is ever spliced into SQL text. A batch
 * of ops becomes a handful of statements: one json_populate_recordset upsert
 * or delete per run of similar ops (batch.h), each under a savepoint so one
 * refused record can be isolated by bisection without losing the others.
 */
#include "pg.h"

#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include <json-c/json.h>
#include <libpq-fe.h>

#include "batch.h"
#include "log.h"
#include "sbuf.h"

#define MODELS_MAX 4096		/* names in models_csv */

#define PG_KEY_MAX 4096	/* a record's key as text, parts and separators */
#define PG_PREPARED_MAX 64	/* models whose row fetch is prepared, per connection */

#define POLL_SLICE_MS 100	/* how often a wait looks at its cancel flag */

struct pg {
	PGconn *conn;
	uint64_t statements;	/* sent, for tests and statistics */
	char *prepared[PG_PREPARED_MAX];	/* model of statement "sharded_fetch_<i>" */
	int nprepared;
	char refused_state[6];	/* SQLSTATE of the last permanent refusal */
	struct pg_limits limits;	/* all 0 until pg_set_limits */
	const atomic_bool *cancel;	/* NULL: never */
	bool timed_out;		/* the last statement got no answer in time */
	bool cut;		/* we shut the session down: only pg_reconnect helps */
};

/* ---- errors ---- */

static void set_err(char *err, size_t errlen, const char *fmt, const char *arg)
{
	if (err && errlen)
		snprintf(err, errlen, fmt, arg);
}

/* libpq messages can span lines (DETAIL, HINT); callers want one. */
static void first_line(const char *msg, char *out, size_t outlen)
{
	size_t n = msg ? strcspn(msg, "\r\n") : 0;

	if (outlen)
		snprintf(out, outlen, "%.*s", (int)n, msg ? msg : "");
}

static void conn_reason(PGconn *conn, char *err, size_t errlen)
{
	char line[512];

	first_line(PQerrorMessage(conn), line, sizeof(line));
	set_err(err, errlen, "postgresql: %s", line[0] ? line : "no answer from server");
}

/* The connection failed, or we cut it (set_timed_out): say which. */
static void lost_reason(struct pg *pg, char *err, size_t errlen)
{
	char ms[24];

	if (!pg->timed_out) {
		conn_reason(pg->conn, err, errlen);
		return;
	}
	snprintf(ms, sizeof(ms), "%d", pg->limits.wait_ms);
	set_err(err, errlen, "postgresql: no answer within %s ms (connection dropped)", ms);
}

static void result_reason(struct pg *pg, const PGresult *res, char *err, size_t errlen)
{
	const char *msg = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	char line[512];

	if (!msg && pg->timed_out) {
		lost_reason(pg, err, errlen);
		return;
	}
	if (!msg) {
		conn_reason(pg->conn, err, errlen);
		return;
	}
	first_line(msg, line, sizeof(line));
	set_err(err, errlen, "postgresql: %s", line);
}

bool pg_sqlstate_transient(const char *s)
{
	static const char *const classes[] = { "08", "40", "53", "57", "58" };

	if (!s || !*s)
		return true;	/* no answer from the server at all */
	if (strlen(s) != 5)
		return false;
	if (strcmp(s, "55P03") == 0)
		return true;
	for (size_t i = 0; i < sizeof(classes) / sizeof(classes[0]); i++)
		if (strncmp(s, classes[i], 2) == 0)
			return true;
	return false;
}

bool pg_sqlstate_of_values(const char *s)
{
	static const char *const classes[] = { "22", "23", "54" };

	if (!s || strlen(s) != 5)
		return false;
	for (size_t i = 0; i < sizeof(classes) / sizeof(classes[0]); i++)
		if (strncmp(s, classes[i], 2) == 0)
			return true;
	return false;
}

const char *pg_refused_sqlstate(const struct pg *pg)
{
	return pg->refused_state;
}

static bool result_ok(const PGresult *res)
{
	ExecStatusType st = PQresultStatus(res);

	return res && (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK);
}

/* A failed result: worth retrying (SH_EUNAVAIL) or a refusal (SH_EREMOTE)?
 * The server's own deadlines (statement_timeout, lock_timeout) count as no
 * answer in time, like ours (pg_timed_out). */
static enum sh_err classify(struct pg *pg, const PGresult *res)
{
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

	if (!res || pg->cut || PQstatus(pg->conn) != CONNECTION_OK)
		return SH_EUNAVAIL;
	if (state && (strcmp(state, "57014") == 0 || strcmp(state, "55P03") == 0))
		pg->timed_out = true;
	if (pg_sqlstate_transient(state))
		return SH_EUNAVAIL;
	snprintf(pg->refused_state, sizeof(pg->refused_state), "%s", state ? state : "");
	return SH_EREMOTE;
}

/* ---- waiting with a deadline ---- */

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* No answer in time (or told to stop): the session is in an unknown state,
 * so cut it. Its socket is shut down rather than the PGconn freed: every
 * later call fails at once as a lost connection (SH_EUNAVAIL), and
 * pg_reconnect starts a new session. The server notices the loss itself;
 * its statement_timeout ends what it was running. */
static void set_timed_out(struct pg *pg)
{
	int fd = PQsocket(pg->conn);

	pg->timed_out = true;
	pg->cut = true;
	if (fd >= 0)
		shutdown(fd, SHUT_RDWR);
}

/* libpq's connect_timeout ran out (a server that accepts but says nothing). */
static bool connect_timed_out(PGconn *conn)
{
	return strstr(PQerrorMessage(conn), "timeout expired") != NULL;
}

/* Send what is queued and wait until a result can be read without blocking.
 * A server that answers nothing (stopped, a dead network) would otherwise
 * hold the calling thread forever: past limits.wait_ms, or when *cancel is
 * set, the connection is cut (set_timed_out) and false returned. */
static bool await_result(struct pg *pg)
{
	int64_t deadline = pg->limits.wait_ms > 0 ? mono_ms() + pg->limits.wait_ms : 0;

	for (;;) {
		int flushing = PQflush(pg->conn);
		struct pollfd pfd = { .fd = PQsocket(pg->conn), .events = POLLIN };
		int slice = -1;

		if (flushing < 0 || pfd.fd < 0)
			return false;	/* lost: PQgetResult says so */
		if (!flushing && !PQisBusy(pg->conn))
			return true;
		if (pg->cancel && atomic_load(pg->cancel)) {
			set_timed_out(pg);
			return false;
		}
		if (deadline) {
			int64_t left = deadline - mono_ms();

			if (left <= 0) {
				set_timed_out(pg);
				return false;
			}
			slice = (int)left;
		}
		if (pg->cancel && (slice < 0 || slice > POLL_SLICE_MS))
			slice = POLL_SLICE_MS;
		if (flushing)
			pfd.events |= POLLOUT;
		if (poll(&pfd, 1, slice) > 0 && (pfd.revents & (POLLIN | POLLERR | POLLHUP)) &&
		    !PQconsumeInput(pg->conn))
			return false;
	}
}

/* After a PQsend*: the result as PQexec would give it (the first error, else
 * the last result); NULL when the connection failed or timed out. */
static PGresult *take_result(struct pg *pg)
{
	PGresult *keep = NULL, *res;

	for (;;) {
		if (!await_result(pg)) {
			PQclear(keep);
			return NULL;
		}
		if (!(res = PQgetResult(pg->conn)))
			return keep;
		if (keep && PQresultStatus(keep) == PGRES_FATAL_ERROR) {
			PQclear(res);
			continue;
		}
		PQclear(keep);
		keep = res;
	}
}

/* Sending goes non-blocking so that a full socket buffer (a big batch to a
 * server that reads nothing) is waited out by await_result, not inside libpq. */
static bool send_ready(struct pg *pg)
{
	pg->timed_out = false;
	return !pg->cut && PQstatus(pg->conn) == CONNECTION_OK &&
	       PQsetnonblocking(pg->conn, 1) == 0;
}

static PGresult *exec_params(struct pg *pg, const char *sql, int n, const char *const *vals)
{
	pg->statements++;
	if (!send_ready(pg) || !PQsendQueryParams(pg->conn, sql, n, NULL, vals, NULL, NULL, 0))
		return NULL;
	return take_result(pg);
}

static PGresult *exec_prepared(struct pg *pg, const char *name, int n, const char *const *vals)
{
	pg->statements++;
	if (!send_ready(pg) || !PQsendQueryPrepared(pg->conn, name, n, vals, NULL, NULL, 0))
		return NULL;
	return take_result(pg);
}

static PGresult *prepare(struct pg *pg, const char *name, const char *sql, int n)
{
	if (!send_ready(pg) || !PQsendPrepare(pg->conn, name, sql, n, NULL))
		return NULL;
	return take_result(pg);
}

/* Run a statement whose rows are not needed; err gets the reason on failure. */
static enum sh_err command(struct pg *pg, const char *sql, int n, const char *const *vals,
			   char *err, size_t errlen)
{
	PGresult *res = exec_params(pg, sql, n, vals);
	enum sh_err rc = SH_OK;

	if (!result_ok(res)) {
		rc = classify(pg, res);
		result_reason(pg, res, err, errlen);
	}
	PQclear(res);
	return rc;
}

/* ---- connection ---- */

static void notice_to_log(void *arg, const char *msg)
{
	char line[512];

	(void)arg;
	first_line(msg, line, sizeof(line));
	sh_log(LOG_DEBUG, "postgresql: %s", line);
}

/* Reject a malformed conninfo before connecting. libpq's parse errors quote
 * a fragment of the string, so they are only shown when it holds no password. */
static bool conninfo_valid(const char *conninfo, char *err, size_t errlen)
{
	PQconninfoOption *opts;
	char *msg = NULL, line[256];
	bool secret;

	if (!strchr(conninfo, '=') && !strstr(conninfo, "://"))
		return true;	/* a bare database name */
	opts = PQconninfoParse(conninfo, &msg);
	if (opts) {
		PQconninfoFree(opts);
		return true;
	}
	secret = strcasestr(conninfo, "password") || (strstr(conninfo, "://") && strchr(conninfo, '@'));
	first_line(msg, line, sizeof(line));
	set_err(err, errlen, "invalid connection string: %s",
		secret || !line[0] ? "cannot be parsed" : line);
	PQfreemem(msg);
	return false;
}

enum sh_err pg_connect(const char *conninfo, struct pg **out, char *err, size_t errlen)
{
	/* Defaults first: with expand_dbname the conninfo's own values come later and win.
	 * Keepalives and tcp_user_timeout turn a cut network into an error within
	 * about 30 s instead of a query that waits forever. */
	const char *keys[] = { "connect_timeout", "fallback_application_name", "client_encoding",
			       "keepalives_idle", "keepalives_interval", "keepalives_count",
			       "tcp_user_timeout", "dbname", NULL };
	const char *vals[] = { "5", "sharded", "UTF8", "10", "3", "3", "30000",
			       conninfo ? conninfo : "", NULL };
	PGconn *conn;
	struct pg *pg;

	*out = NULL;
	if (!conninfo_valid(vals[7], err, errlen))
		return SH_EINVAL;
	conn = PQconnectdbParams(keys, vals, 1);
	if (!conn)
		return SH_ENOMEM;
	if (PQstatus(conn) != CONNECTION_OK) {
		conn_reason(conn, err, errlen);
		PQfinish(conn);
		return SH_EUNAVAIL;
	}
	pg = calloc(1, sizeof(*pg));
	if (!pg) {
		PQfinish(conn);
		return SH_ENOMEM;
	}
	PQsetNoticeProcessor(conn, notice_to_log, NULL);
	pg->conn = conn;
	*out = pg;
	return SH_OK;
}

static void forget_prepared(struct pg *pg)
{
	for (int i = 0; i < pg->nprepared; i++)
		free(pg->prepared[i]);
	pg->nprepared = 0;
}

bool pg_broken(const struct pg *pg)
{
	return !pg->conn || pg->cut || PQstatus(pg->conn) != CONNECTION_OK;
}

void pg_close(struct pg *pg)
{
	if (!pg)
		return;
	forget_prepared(pg);
	PQfinish(pg->conn);
	free(pg);
}

/* The session's server-side timeouts, as pg->limits says; a 0 keeps the
 * server's own setting (a DBA's statement_timeout is not lifted). */
static enum sh_err apply_limits(struct pg *pg)
{
	char stmt[24], lock[24], reason[512];
	const char *vals[] = { pg->limits.statement_ms ? stmt : NULL, pg->limits.lock_ms ? lock : NULL };
	enum sh_err rc;

	if (!pg->limits.statement_ms && !pg->limits.lock_ms)
		return SH_OK;
	snprintf(stmt, sizeof(stmt), "%d", pg->limits.statement_ms);
	snprintf(lock, sizeof(lock), "%d", pg->limits.lock_ms);
	rc = command(pg, "SELECT set_config('statement_timeout', "
		     "coalesce($1, current_setting('statement_timeout')), false), "
		     "set_config('lock_timeout', coalesce($2, current_setting('lock_timeout')), false)",
		     2, vals, reason, sizeof(reason));
	if (rc)
		sh_log(LOG_WARNING, "setting the session's timeouts: %s", reason);
	return rc;
}

enum sh_err pg_set_limits(struct pg *pg, const struct pg_limits *limits, const atomic_bool *cancel)
{
	pg->limits = *limits;
	pg->cancel = cancel;
	return apply_limits(pg);
}

struct pg_conn *pg_libpq(struct pg *pg)
{
	return pg->cut ? NULL : pg->conn;
}

bool pg_timed_out(const struct pg *pg)
{
	return pg->timed_out;
}

enum sh_err pg_reconnect(struct pg *pg)
{
	char reason[512];

	forget_prepared(pg);	/* a new session has none */
	pg->timed_out = pg->cut = false;
	PQsetnonblocking(pg->conn, 0);	/* libpq connects in blocking mode */
	PQreset(pg->conn);
	if (PQstatus(pg->conn) == CONNECTION_OK)
		return apply_limits(pg);
	pg->timed_out = connect_timed_out(pg->conn);
	conn_reason(pg->conn, reason, sizeof(reason));
	sh_log(LOG_WARNING, "reconnect failed: %s", reason);
	return SH_EUNAVAIL;
}

uint64_t pg_statements(const struct pg *pg)
{
	return pg->statements;
}

/* sharded_applied as a version from before origins made it, keyed by block
 * alone, becomes keyed by (block, origin): its rows are the legacy origin's
 * (op.h), so what they say stays true of the writes in old block files.
 * One transaction; a second daemon doing the same waits on the lock, then
 * finds nothing to do. */
static const char migrate_applied_sql[] =
	"BEGIN;"
	"LOCK TABLE sharded_applied IN ACCESS EXCLUSIVE MODE;"
	"ALTER TABLE sharded_applied ADD COLUMN IF NOT EXISTS origin text NOT NULL"
	" DEFAULT '" OP_ORIGIN_LEGACY "';"
	"DO $$ DECLARE pk name; BEGIN"
	" IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = 'sharded_applied'::regclass"
	"  AND contype = 'p' AND array_length(conkey, 1) = 2) THEN"
	"  SELECT conname INTO pk FROM pg_constraint WHERE conrelid = 'sharded_applied'::regclass"
	"   AND contype = 'p';"
	"  IF pk IS NOT NULL THEN"
	"   EXECUTE format('ALTER TABLE sharded_applied DROP CONSTRAINT %I', pk);"
	"  END IF;"
	"  ALTER TABLE sharded_applied ADD PRIMARY KEY (block, origin);"
	" END IF;"
	"END $$;"
	"COMMIT";

static enum sh_err create_applied(struct pg *pg)
{
	static const char sql[] =
		"CREATE TABLE IF NOT EXISTS sharded_applied (block text NOT NULL,"
		" origin text NOT NULL DEFAULT '" OP_ORIGIN_LEGACY "', seq bigint NOT NULL,"
		" applied_at timestamptz, PRIMARY KEY (block, origin))";
	PGresult *res = exec_params(pg, sql, 0, NULL);
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	enum sh_err rc = SH_OK;
	char reason[512];

	/* Two daemons creating it at once: the loser sees a duplicate, which is fine. */
	if (!result_ok(res) && !(state && (!strcmp(state, "23505") || !strcmp(state, "42P07")))) {
		rc = classify(pg, res);
		result_reason(pg, res, reason, sizeof(reason));
		sh_log(LOG_ERR, "cannot create table \"sharded_applied\": %s", reason);
	}
	PQclear(res);
	return rc;
}

static enum sh_err migrate_applied(struct pg *pg)
{
	PGresult *res = exec_params(pg, "SELECT 1 FROM pg_constraint WHERE conrelid ="
			     " 'sharded_applied'::regclass AND contype = 'p'"
			     " AND array_length(conkey, 1) = 2", 0, NULL);
	enum sh_err rc = SH_OK;
	char reason[512];
	bool done = result_ok(res) && PQntuples(res) == 1;

	if (!result_ok(res))
		rc = classify(pg, res);
	PQclear(res);
	if (rc || done)
		return rc;
	pg->statements++;
	res = PQexec(pg->conn, migrate_applied_sql);
	if (!result_ok(res)) {
		rc = classify(pg, res);
		result_reason(pg, res, reason, sizeof(reason));
		sh_log(LOG_ERR, "cannot key \"sharded_applied\" by origin: %s", reason);
		PQclear(exec_params(pg, "ROLLBACK", 0, NULL));
	} else {
		sh_log(LOG_INFO, "\"sharded_applied\" is now keyed by (block, origin)");
	}
	PQclear(res);
	return rc;
}

enum sh_err pg_ensure_tables(struct pg *pg)
{
	enum sh_err rc = create_applied(pg);

	return rc ? rc : migrate_applied(pg);
}

/* ---- catalog ---- */

/* Which models the user asked for: NULL list = all. */
struct wanted {
	char *buf;
	char *names[MODELS_MAX];
	size_t n;
};

static char *trim(char *s)
{
	char *end;

	while (*s == ' ' || *s == '\t')
		s++;
	end = s + strlen(s);
	while (end > s && (end[-1] == ' ' || end[-1] == '\t'))
		*--end = '\0';
	return s;
}

static enum sh_err wanted_parse(struct wanted *w, const char *csv, char *err, size_t errlen)
{
	char *save = NULL;

	w->n = 0;
	w->buf = NULL;
	if (!csv || !*csv)
		return SH_OK;
	w->buf = strdup(csv);
	if (!w->buf)
		return SH_ENOMEM;
	for (char *tok = strtok_r(w->buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		tok = trim(tok);
		if (!*tok)
			continue;
		if (w->n == MODELS_MAX) {
			set_err(err, errlen, "too many models in \"%s\"", "models");
			return SH_ETOOBIG;
		}
		w->names[w->n++] = tok;
	}
	return SH_OK;
}

static bool wanted_has(const struct wanted *w, const char *name)
{
	if (!w->buf)
		return true;
	for (size_t i = 0; i < w->n; i++)
		if (strcmp(w->names[i], name) == 0)
			return true;
	return false;
}

/* The columns of every table with a primary key (partitions aside: their
 * partitioned table is the model). Column 6 is the column's place in the key
 * (1..), 0 outside it; column 7 says GENERATED ALWAYS (stored, or identity). */
static const char catalog_sql[] =
	"SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), t.typname,"
	" a.attnotnull, a.atthasdef OR a.attidentity <> '' OR a.attgenerated <> '',"
	" coalesce((SELECT k.n FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(att, n)"
	"  WHERE k.att = a.attnum AND k.n <= i.indnkeyatts), 0),"
	" a.attgenerated <> '' OR a.attidentity = 'a'"
	" FROM pg_catalog.pg_class c"
	" JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
	" JOIN pg_catalog.pg_index i ON i.indrelid = c.oid AND i.indisprimary"
	" JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped"
	" JOIN pg_catalog.pg_type t ON t.oid = a.atttypid"
	" WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT c.relispartition"
	" AND c.relname NOT LIKE 'sharded\\_%'"
	" ORDER BY c.relname, a.attnum";

/* Every other relation of the schema that rows could be read from: what it
 * is, whether it is a partition (and of what), whether it has a key. */
static const char skipped_sql[] =
	"SELECT c.relname, c.relkind, c.relispartition,"
	" EXISTS (SELECT 1 FROM pg_catalog.pg_index i WHERE i.indrelid = c.oid AND i.indisprimary),"
	" (SELECT p.relname FROM pg_catalog.pg_inherits h JOIN pg_catalog.pg_class p"
	"  ON p.oid = h.inhparent WHERE h.inhrelid = c.oid LIMIT 1)"
	" FROM pg_catalog.pg_class c"
	" JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
	" WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'f')"
	" AND c.relname NOT LIKE 'sharded\\_%'"
	" ORDER BY c.relname";

/* Why a row of skipped_sql is not a model; NULL when it is one. */
static const char *skip_reason(const struct catalog *cat, const PGresult *res, int r, char *buf,
			       size_t len)
{
	char kind = *PQgetvalue(res, r, 1);

	if (kind == 'v')
		return "a view";
	if (kind == 'm')
		return "a materialized view";
	if (kind == 'f')
		return "a foreign table";
	if (*PQgetvalue(res, r, 2) == 't') {
		const char *parent = PQgetvalue(res, r, 4);

		snprintf(buf, len, "a partition of \"%s\"%s", parent,
			 catalog_find(cat, parent) ? " (the partitioned table is the model)" : "");
		return buf;
	}
	if (*PQgetvalue(res, r, 3) != 't')
		return "no primary key";
	return NULL;
}

static enum sh_err skipped_fill(struct catalog *cat, const PGresult *res, const struct wanted *w)
{
	for (int r = 0; r < PQntuples(res); r++) {
		const char *rel = PQgetvalue(res, r, 0), *why;
		char buf[256];

		if (!wanted_has(w, rel) || !(why = skip_reason(cat, res, r, buf, sizeof(buf))))
			continue;
		if (catalog_add_skipped(cat, rel, why))
			return SH_ENOMEM;
	}
	return SH_OK;
}

/* The key columns of m in key order, from their places (1..) in place[]. */
static enum sh_err set_key(struct model *m, const int *place)
{
	const char *names[MODEL_KEY_MAX] = { NULL };
	size_t n = 0;

	for (size_t c = 0; c < m->ncols; c++) {
		if (place[c] < 1)
			continue;
		if (place[c] > MODEL_KEY_MAX)
			return SH_EINVAL;
		names[place[c] - 1] = m->cols[c].name;
		n++;
	}
	for (size_t k = 0; k < n; k++)
		if (!names[k])	/* a key on an expression: no column to name */
			return SH_EINVAL;
	return model_set_key(m, names, n) ? SH_EINVAL : SH_OK;
}

/* Rows come grouped by table; a new table name starts a new model. */
static enum sh_err catalog_fill(struct catalog *cat, const PGresult *res, const struct wanted *w)
{
	struct model *m = NULL;
	int place[1600];	/* MaxHeapAttributeNumber */
	enum sh_err rc = SH_OK;

	for (int r = 0; r < PQntuples(res) && rc == SH_OK; r++) {
		const char *rel = PQgetvalue(res, r, 0);

		if (!wanted_has(w, rel))
			continue;
		if (!m || strcmp(m->name, rel) != 0) {
			if (m)
				rc = set_key(m, place);
			m = rc ? NULL : catalog_add_model(cat, rel);
			if (!m)
				return rc ? rc : SH_ENOMEM;
		}
		if (m->ncols == sizeof(place) / sizeof(place[0]))
			return SH_EINVAL;
		place[m->ncols] = atoi(PQgetvalue(res, r, 6));
		if (model_add_column(m, PQgetvalue(res, r, 1), PQgetvalue(res, r, 2),
				     PQgetvalue(res, r, 3), *PQgetvalue(res, r, 4) == 't',
				     *PQgetvalue(res, r, 5) == 't', false))
			return SH_ENOMEM;
		/* a key column is written whatever it is: it is the file name */
		m->cols[m->ncols - 1].generated = *PQgetvalue(res, r, 7) == 't' && place[m->ncols - 1] == 0;
	}
	if (rc == SH_OK && m)
		rc = set_key(m, place);
	return rc;
}

/* The type details of every column (catalog.h): domains resolved to their
 * base type (their typmod, NOT NULL and default), arrays to their element,
 * enums with their labels, composite types as "record". One row per column,
 * in no particular order. */
static const char types_sql[] =
	"WITH RECURSIVE r(relname, attname, oid, typmod, arr, nn, enn, def, depth) AS ("
	" SELECT c.relname, a.attname, a.atttypid, a.atttypmod, false, false, false, false, 0"
	" FROM pg_catalog.pg_class c"
	" JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
	" JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped"
	" WHERE n.nspname = $1 AND c.relkind IN ('r', 'p')"
	" UNION ALL"
	" SELECT r.relname, r.attname,"
	" CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.typelem END,"
	" CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE r.typmod END,"
	" r.arr OR t.typtype <> 'd',"
	" r.nn OR (t.typtype = 'd' AND t.typnotnull AND NOT r.arr),"
	" r.enn OR (t.typtype = 'd' AND t.typnotnull AND r.arr),"
	" r.def OR (t.typtype = 'd' AND t.typdefaultbin IS NOT NULL AND NOT r.arr),"
	" r.depth + 1"
	" FROM r JOIN pg_catalog.pg_type t ON t.oid = r.oid"
	" WHERE r.depth < 16 AND (t.typtype = 'd' OR (t.typcategory = 'A' AND t.typelem <> 0"
	" AND t.typlen = -1 AND NOT r.arr)))"
	" SELECT r.relname, r.attname,"
	" CASE WHEN t.typtype = 'c' THEN 'record' ELSE t.typname END,"	/* catalog.c */
	" r.typmod, r.arr, r.nn, r.enn, r.def,"
	" (SELECT json_agg(e.enumlabel ORDER BY e.enumsortorder) FROM pg_catalog.pg_enum e"
	" WHERE e.enumtypid = t.oid)::text"
	" FROM r JOIN pg_catalog.pg_type t ON t.oid = r.oid"
	" WHERE t.typtype <> 'd' AND NOT (t.typcategory = 'A' AND t.typelem <> 0"
	" AND t.typlen = -1 AND NOT r.arr)";

/* Enum labels from their JSON array text; *labels NULL for "" (no enum). */
static enum sh_err parse_labels(const char *text, json_object **arr, const char ***labels,
				size_t *n)
{
	*arr = NULL;
	*labels = NULL;
	*n = 0;
	if (!text[0])
		return SH_OK;
	*arr = json_tokener_parse(text);
	if (!json_object_is_type(*arr, json_type_array))
		return SH_EIO;
	*n = json_object_array_length(*arr);
	*labels = calloc(*n ? *n : 1, sizeof(**labels));
	if (!*labels)
		return SH_ENOMEM;
	for (size_t i = 0; i < *n; i++)
		(*labels)[i] = json_object_get_string(json_object_array_get_idx(*arr, i));
	return SH_OK;
}

/* Column att of table rel in cat (being built), or NULL. */
static struct column *column_of(struct catalog *cat, const char *rel, const char *att)
{
	for (size_t i = 0; i < cat->nmodels; i++) {
		if (strcmp(cat->models[i].name, rel) != 0)
			continue;
		for (size_t k = 0; k < cat->models[i].ncols; k++)
			if (strcmp(cat->models[i].cols[k].name, att) == 0)
				return &cat->models[i].cols[k];
	}
	return NULL;
}

static enum sh_err types_fill(struct catalog *cat, const PGresult *res)
{
	for (int r = 0; r < PQntuples(res); r++) {
		struct column *c = column_of(cat, PQgetvalue(res, r, 0), PQgetvalue(res, r, 1));
		const char **labels;
		json_object *arr;
		enum sh_err rc;
		size_t n;

		if (!c)
			continue;	/* a table or column left out */
		rc = parse_labels(PQgetvalue(res, r, 8), &arr, &labels, &n);
		if (rc == SH_OK && column_set_details(c, PQgetvalue(res, r, 2),
						       (int32_t)atol(PQgetvalue(res, r, 3)),
						       *PQgetvalue(res, r, 4) == 't',
						       *PQgetvalue(res, r, 6) == 't', labels, n))
			rc = SH_ENOMEM;
		free(labels);
		json_object_put(arr);
		if (rc)
			return rc;
		c->not_null |= *PQgetvalue(res, r, 5) == 't';
		c->has_default |= *PQgetvalue(res, r, 7) == 't';
	}
	return SH_OK;
}

static enum sh_err load_types(struct pg *pg, struct catalog *cat, const char *schema,
			      char *err, size_t errlen)
{
	const char *vals[] = { schema };
	PGresult *res = exec_params(pg, types_sql, 1, vals);
	enum sh_err rc = SH_OK;

	if (!result_ok(res)) {
		rc = classify(pg, res);
		result_reason(pg, res, err, errlen);
	} else {
		rc = types_fill(cat, res);
	}
	PQclear(res);
	return rc;
}

static enum sh_err wanted_check(const struct wanted *w, const struct catalog *cat,
				char *err, size_t errlen)
{
	char msg[512];

	for (size_t i = 0; i < w->n; i++) {
		const char *why = catalog_skip_reason(cat, w->names[i]);

		if (catalog_find(cat, w->names[i]))
			continue;
		snprintf(msg, sizeof(msg), "model \"%.64s\" cannot be a model of the schema: %s",
			 w->names[i], why ? why : "no such table");
		set_err(err, errlen, "%s", msg);
		return SH_EINVAL;
	}
	return SH_OK;
}

static enum sh_err query(struct pg *pg, const char *sql, const char *schema, PGresult **res,
			 char *err, size_t errlen)
{
	const char *vals[] = { schema };

	*res = exec_params(pg, sql, 1, vals);
	if (result_ok(*res))
		return SH_OK;
	result_reason(pg, *res, err, errlen);
	return classify(pg, *res);
}

/* The sequence of each one-column key (serial, identity), as
 * pg_get_serial_sequence names it: the only sequence the application's
 * INSERTs draw from, so the only one ids can be reserved from. */
static const char sequences_sql[] =
	"SELECT c.relname, pg_get_serial_sequence(format('%I.%I', n.nspname, c.relname), a.attname)"
	" FROM pg_catalog.pg_class c"
	" JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
	" JOIN pg_catalog.pg_index i ON i.indrelid = c.oid AND i.indisprimary AND i.indnkeyatts = 1"
	" JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum = i.indkey[0]"
	" WHERE n.nspname = $1 AND c.relkind IN ('r', 'p')";

enum sh_err pg_load_sequences(struct pg *pg, struct catalog *cat, char *err, size_t errlen)
{
	const char *vals[] = { cat->schema };
	PGresult *res = exec_params(pg, sequences_sql, 1, vals);
	enum sh_err rc = SH_OK;

	if (!result_ok(res)) {
		rc = classify(pg, res);
		result_reason(pg, res, err, errlen);
		PQclear(res);
		return rc;
	}
	for (int r = 0; r < PQntuples(res) && rc == SH_OK; r++) {
		struct model *m = (struct model *)catalog_find(cat, PQgetvalue(res, r, 0));

		if (!m || PQgetisnull(res, r, 1))
			continue;
		free(m->seq);
		m->seq = strdup(PQgetvalue(res, r, 1));
		rc = m->seq ? SH_OK : SH_ENOMEM;
	}
	PQclear(res);
	return rc;
}

enum sh_err pg_reserve_ids(struct pg *pg, const char *seq, int n, int64_t *ids)
{
	char count[16];
	const char *vals[] = { seq, count };
	PGresult *res;
	enum sh_err rc = SH_OK;

	snprintf(count, sizeof(count), "%d", n);
	/* nextval, never setval: only nextval is safe against the application's
	 * concurrent INSERTs, and what it returns is never returned again */
	res = exec_params(pg, "SELECT nextval($1::regclass) FROM generate_series(1, $2::int)", 2,
			  vals);
	if (!result_ok(res)) {
		char why[512];

		rc = classify(pg, res);
		result_reason(pg, res, why, sizeof(why));
		sh_log(LOG_WARNING, "reserving ids from %s: %s", seq, why);
		PQclear(res);
		return rc;
	}
	if (PQntuples(res) != n)
		rc = SH_EIO;
	for (int r = 0; r < n && rc == SH_OK; r++)
		ids[r] = strtoll(PQgetvalue(res, r, 0), NULL, 10);
	PQclear(res);
	return rc;
}

enum sh_err pg_load_catalog(struct pg *pg, const char *schema, const char *models_csv,
			    struct catalog **out, char *err, size_t errlen)
{
	struct wanted w;
	struct catalog *cat = NULL;
	PGresult *res = NULL, *skipped = NULL;
	enum sh_err rc;

	*out = NULL;
	rc = wanted_parse(&w, models_csv, err, errlen);
	if (rc == SH_OK)
		rc = query(pg, catalog_sql, schema, &res, err, errlen);
	if (rc == SH_OK)
		rc = query(pg, skipped_sql, schema, &skipped, err, errlen);
	if (rc == SH_OK) {
		cat = catalog_new(schema);
		rc = cat ? catalog_fill(cat, res, &w) : SH_ENOMEM;
	}
	if (rc == SH_OK)
		rc = skipped_fill(cat, skipped, &w);
	if (rc == SH_OK)
		rc = wanted_check(&w, cat, err, errlen);
	if (rc == SH_OK)
		rc = load_types(pg, cat, schema, err, errlen);
	if (rc == SH_OK)
		rc = pg_load_sequences(pg, cat, err, errlen);
	PQclear(res);
	PQclear(skipped);
	free(w.buf);
	if (rc != SH_OK) {
		catalog_free(cat);
		return rc;
	}
	*out = cat;
	return SH_OK;
}

/* ---- reading ---- */

/* The fetch of one row of m, as SQL; NULL when out of memory. */
static char *fetch_sql(struct pg *pg, const struct catalog *cat, const struct model *m)
{
	struct sbuf sql = { 0 };

	/* $1 is left untyped so PostgreSQL reads it as the key's type, without a
	 * cast that could truncate (varchar(n)) and match another row. */
	sb_add(&sql, "SELECT row_to_json(t.*)::text FROM ");
	sb_table(&sql, pg->conn, cat->schema, m->name);
	sb_add(&sql, " AS t WHERE");
	for (size_t k = 0; k < m->nkey; k++) {
		char param[32];

		sb_add(&sql, k ? " AND t." : " t.");
		sb_ident(&sql, pg->conn, model_key_col(m, k)->name);
		snprintf(param, sizeof(param), " = $%zu", k + 1);
		sb_add(&sql, param);
	}
	if (sql.failed) {
		sb_free(&sql);
		return NULL;
	}
	return sql.p;
}

/* Fetch one row of m, prepared once per connection and model (a row fetch
 * is on the lookup path of every record a block does not hold yet). */
static PGresult *exec_fetch(struct pg *pg, const struct catalog *cat, const struct model *m,
			    const char *const *vals)
{
	int nvals = (int)m->nkey;
	char name[32], *sql;
	PGresult *res;
	int i;

	for (i = 0; i < pg->nprepared && strcmp(pg->prepared[i], m->name) != 0; i++)
		;
	snprintf(name, sizeof(name), "sharded_fetch_%d", i);
	if (i < pg->nprepared) {
		return exec_prepared(pg, name, nvals, vals);
	}
	if (!(sql = fetch_sql(pg, cat, m)))
		return NULL;
	if (i < PG_PREPARED_MAX) {
		res = prepare(pg, name, sql, nvals);
		if (result_ok(res) && (pg->prepared[i] = strdup(m->name))) {
			PQclear(res);
			free(sql);
			pg->nprepared++;
			return exec_prepared(pg, name, nvals, vals);
		}
		PQclear(res);	/* not prepared: the plain statement says why */
		if (!res) {	/* no answer: do not wait a second time */
			free(sql);
			return NULL;
		}
	}
	res = exec_params(pg, sql, nvals, vals);
	free(sql);
	return res;
}

enum sh_err pg_fetch_row(struct pg *pg, const struct catalog *cat, const struct model *m,
			 const char *pk, char **doc)
{
	PGresult *res;
	enum sh_err rc = SH_OK;
	const char *state;

	const char *parts[MODEL_KEY_MAX];
	char buf[PG_KEY_MAX];

	*doc = NULL;
	if (key_split(m, pk, buf, sizeof(buf), parts) != SH_OK)
		return SH_ENOENT;	/* not a name of this model's records */
	res = exec_fetch(pg, cat, m, parts);
	if (!res && !pg->cut && PQstatus(pg->conn) == CONNECTION_OK)
		return SH_ENOMEM;
	if (result_ok(res)) {
		if (PQntuples(res) == 0)
			rc = SH_ENOENT;
		else if (!(*doc = strdup(PQgetvalue(res, 0, 0))))
			rc = SH_ENOMEM;
		PQclear(res);
		return rc;
	}
	state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	rc = classify(pg, res);
	if (rc == SH_EREMOTE && state && strncmp(state, "22", 2) == 0) {
		rc = SH_ENOENT;	/* "abc" as an integer key: no such row can exist */
	} else {
		char reason[512];

		result_reason(pg, res, reason, sizeof(reason));
		sh_log(LOG_WARNING, "reading \"%s\" of \"%s\": %s", pk, m->name, reason);
	}
	PQclear(res);
	return rc;
}

enum sh_err pg_applied_seq(struct pg *pg, const char *block, const char *origin, int64_t *seq)
{
	const char *vals[] = { block, origin };
	PGresult *res = exec_params(pg, "SELECT seq FROM sharded_applied WHERE block = $1 AND origin = $2",
			     2, vals);
	enum sh_err rc = SH_OK;

	*seq = 0;
	if (result_ok(res)) {
		if (PQntuples(res) > 0)
			*seq = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	} else {
		char reason[512];

		rc = classify(pg, res);
		result_reason(pg, res, reason, sizeof(reason));
		sh_log(LOG_WARNING, "reading applied seq of \"%s\" origin %s: %s", block, origin,
		       reason);
	}
	PQclear(res);
	return rc;
}

/* ---- applying ---- */

struct apply {
	struct pg *pg;
	const struct catalog *cat;
	struct op *ops;
	char *err;
	size_t errlen;
	size_t *prev;		/* batch_collapse's links between ops of one record */
};

/* One statement: its text and its single JSON parameter. */
struct stmt {
	struct sbuf sql, param;
};

static void stmt_free(struct stmt *st)
{
	sb_free(&st->sql);
	sb_free(&st->param);
}

/* A column an update does not send but the row PostgreSQL proposes to
 * insert must have (NOT NULL without a default): PostgreSQL checks it before
 * it finds the conflict, so it comes from the row as it is. */
static bool fill_column(const struct model *m, size_t c, const bool *present)
{
	const struct column *col = &m->cols[c];

	return !present[c] && !col->generated && col->not_null && !col->has_default;
}

/* May json_populate_recordset(NULL::t, ...) leave col NULL where a document
 * lacks it? Only a column of a type in sharded's own table of built-in type
 * names (catalog.c): a domain's name is its owner's, and a NOT NULL or CHECK
 * domain refuses the NULL even in a column the statement does not set. An
 * array is NULL as a whole, never checked element by element. */
static bool null_safe_type(const struct column *col)
{
	const char *t = col->typname[0] == '_' ? col->typname + 1 : col->typname;
	int64_t min, max;
	enum col_kind k = col_kind_from_typname(t, &min, &max);

	return k != COL_OTHER && k != COL_ARRAY;
}

/* Does a partial update need its documents laid over the current rows
 * (add_source)? Only when a column they leave out would refuse the NULL the
 * documents alone propose for it: NOT NULL without a default (fill_column),
 * or a type that may be a domain. Otherwise both forms propose the same row
 * for the columns the statement sets, and PostgreSQL is spared the join with
 * the current rows, most of the statement's time (a 5,000-row batch of
 * "User" updates: 248 ms with the join). */
static bool needs_current_row(const struct model *m, const bool *present)
{
	for (size_t c = 0; c < m->ncols; c++)
		if (!present[c] && (fill_column(m, c, present) || !null_safe_type(&m->cols[c])))
			return true;
	return false;
}

/* Which columns the documents carry (all of the group have the same keys),
 * and always the key, so that ON CONFLICT has something to match. Returns
 * whether a column that could be written is missing: an update that sends
 * some columns only (op.h). */
static bool mark_present(const struct model *m, json_object *doc, bool *present)
{
	bool partial = false;

	for (size_t c = 0; c < m->ncols; c++) {
		/* a generated column is in the document as it was read, never written */
		present[c] = model_is_key(m, c) ||
			     (!m->cols[c].generated &&
			      json_object_object_get_ex(doc, m->cols[c].name, NULL));
		partial |= !present[c] && !m->cols[c].generated;
	}
	return partial;
}

/* The columns of the statement into cols, and what the SELECT gives them
 * into sel: x.col from the documents, or (x.r).col from the documents laid
 * over the current row for a partial update, which also lists the columns
 * fill_column names. */
static void add_columns(struct sbuf *cols, struct sbuf *sel, PGconn *conn,
			const struct model *m, const bool *present, bool partial)
{
	bool first = true;

	for (size_t c = 0; c < m->ncols; c++) {
		if (!present[c] && !(partial && fill_column(m, c, present)))
			continue;
		sb_add(cols, first ? "" : ", ");
		sb_add(sel, first ? "" : ", ");
		sb_add(sel, partial ? "(x.r)." : "x.");
		sb_ident(cols, conn, m->cols[c].name);
		sb_ident(sel, conn, m->cols[c].name);
		first = false;
	}
}

/* FROM json_populate_recordset(NULL::s.t, $1::json) AS x
 * or, for a partial update, each document laid over the row it updates:
 * FROM (SELECT json_populate_record(cur, e.v) AS r
 *   FROM json_array_elements($1::json) WITH ORDINALITY AS e(v, n)
 *   LEFT JOIN s.t AS cur ON cur.k1 = (e.v->>'k1')::type1 AND ... ORDER BY e.n) AS x
 * json_populate_recordset with a NULL base would check every column the
 * documents lack as a NULL (a NOT NULL domain refuses it); over the current
 * row they keep its values, and only the documents' columns are set. */
static void add_source(struct sbuf *sb, PGconn *conn, const struct catalog *cat,
		       const struct model *m, bool partial)
{
	if (!partial) {
		sb_add(sb, " FROM json_populate_recordset(NULL::");
		sb_table(sb, conn, cat->schema, m->name);
		sb_add(sb, ", $1::json) AS x");
		return;
	}
	sb_add(sb, " FROM (SELECT json_populate_record(cur, e.v) AS r"
		   " FROM json_array_elements($1::json) WITH ORDINALITY AS e(v, n) LEFT JOIN ");
	sb_table(sb, conn, cat->schema, m->name);
	sb_add(sb, " AS cur ON");
	for (size_t k = 0; k < m->nkey; k++) {
		const struct column *key = model_key_col(m, k);

		sb_add(sb, k ? " AND cur." : " cur.");
		sb_ident(sb, conn, key->name);
		sb_add(sb, " = (e.v->>");
		sb_literal(sb, conn, key->name);
		sb_add(sb, ")::");
		sb_add(sb, key->type);
	}
	sb_add(sb, " ORDER BY e.n) AS x");
}

/* The column a no-op update sets to itself: one outside the key where there
 * is one, since a key that is an identity GENERATED ALWAYS "can only be
 * updated to DEFAULT". */
static const char *noop_column(const struct model *m)
{
	for (size_t c = 0; c < m->ncols; c++)
		if (!model_is_key(m, c) && !m->cols[c].generated)
			return m->cols[c].name;
	return model_key_col(m, 0)->name;
}

static void add_update_set(struct sbuf *sb, PGconn *conn, const struct model *m, const bool *present)
{
	bool first = true;

	for (size_t c = 0; c < m->ncols; c++) {
		if (!present[c] || model_is_key(m, c))
			continue;
		sb_add(sb, first ? " " : ", ");
		sb_ident(sb, conn, m->cols[c].name);
		sb_add(sb, " = EXCLUDED.");
		sb_ident(sb, conn, m->cols[c].name);
		first = false;
	}
	if (first) {	/* key only: a no-op update, so that RETURNING still has the row */
		const char *col = noop_column(m);

		sb_add(sb, " ");
		sb_ident(sb, conn, col);
		sb_add(sb, " = t.");
		sb_ident(sb, conn, col);
	}
}

/* The key columns, each prefixed: "t.a, t.b" */
static void add_key_list(struct sbuf *sb, PGconn *conn, const struct model *m, const char *prefix)
{
	for (size_t k = 0; k < m->nkey; k++) {
		sb_add(sb, k ? ", " : "");
		sb_add(sb, prefix);
		sb_ident(sb, conn, model_key_col(m, k)->name);
	}
}

/* The key columns as text, each prefixed, then the row as JSON:
 * "t.k1::text, t.k2::text, row_to_json(t.*)::text" */
static void add_returned(struct sbuf *sb, PGconn *conn, const struct model *m, const char *prefix)
{
	for (size_t k = 0; k < m->nkey; k++) {
		sb_add(sb, k ? ", " : " ");
		sb_add(sb, prefix);
		sb_ident(sb, conn, model_key_col(m, k)->name);
		sb_add(sb, "::text");
	}
	sb_add(sb, ", row_to_json(");
	sb_add(sb, prefix);
	sb_add(sb, "*)::text");
}

/*
 * INSERT INTO s.t AS t (cols) OVERRIDING SYSTEM VALUE
 *   SELECT x.cols FROM json_populate_recordset(NULL::s.t, $1::json) AS x
 *   ON CONFLICT (k1, k2) DO UPDATE SET col = EXCLUDED.col ...
 *   RETURNING t.k1::text, t.k2::text, row_to_json(t.*)::text
 *
 * Only the columns the documents carry are set: an update carries those it
 * sets (op.h), so another node's concurrent write of another column stays.
 * A partial update that leaves out a column the proposed row could not have
 * NULL reads its documents over the current rows (add_source,
 * needs_current_row): PostgreSQL checks NOT NULL on the proposed row before
 * it sees the conflict. A row that is missing (another node deleted it) is inserted
 * with the columns sent, NULL in the NOT NULL columns it lacks (refused
 * then: a dead letter) and the defaults of the others.
 *
 * Each returned row is matched to its document by its key (match_returned):
 * in the documents' order as a rule, checked key by key, so PostgreSQL does
 * not parse the documents a second time to number them (a join with
 * json_array_elements took 40% of the statement's time).
 * A create (OP_CREATE) has no ON CONFLICT: a row with its key that someone
 * else inserted meanwhile refuses it (unique_violation), and bisection makes
 * it a dead letter.
 */
static void upsert_sql(struct sbuf *sb, PGconn *conn, const struct catalog *cat,
		       const struct model *m, json_object *doc, bool *present, bool create)
{
	struct sbuf cols = { 0 }, sel = { 0 };
	bool partial = mark_present(m, doc, present) && !create &&
		       needs_current_row(m, present);

	add_columns(&cols, &sel, conn, m, present, partial);
	if (cols.failed || sel.failed)
		sb->failed = true;
	sb_add(sb, "INSERT INTO ");
	sb_table(sb, conn, cat->schema, m->name);
	sb_add(sb, " AS t (");
	sb_add(sb, cols.p ? cols.p : "");
	sb_add(sb, ") OVERRIDING SYSTEM VALUE SELECT ");
	sb_add(sb, sel.p ? sel.p : "");
	sb_free(&cols);
	sb_free(&sel);
	add_source(sb, conn, cat, m, partial);
	if (!create) {
		sb_add(sb, " ON CONFLICT (");
		add_key_list(sb, conn, m, "");
		sb_add(sb, ") DO UPDATE SET");
		add_update_set(sb, conn, m, present);
	}
	sb_add(sb, " RETURNING");
	add_returned(sb, conn, m, "t.");
}

/* SELECT (json_populate_record(NULL::s.t, e.v)).k1::text, ...
 *   FROM json_array_elements($1::json) WITH ORDINALITY AS e(v, n) ORDER BY e.n
 * The key of each document as PostgreSQL prints it, in the documents' order:
 * what match_returned falls back to when the returned rows do not follow the
 * documents' order or a key is not spelled as PostgreSQL prints it. */
static void doc_keys_sql(struct sbuf *sb, PGconn *conn, const struct catalog *cat,
			 const struct model *m)
{
	sb_add(sb, "SELECT");
	for (size_t k = 0; k < m->nkey; k++) {
		sb_add(sb, k ? ", (json_populate_record(NULL::" : " (json_populate_record(NULL::");
		sb_table(sb, conn, cat->schema, m->name);
		sb_add(sb, ", e.v)).");
		sb_ident(sb, conn, model_key_col(m, k)->name);
		sb_add(sb, "::text");
	}
	sb_add(sb, " FROM json_array_elements($1::json) WITH ORDINALITY AS e(v, n) ORDER BY e.n");
}

/* A document that is not a JSON object is refused like PostgreSQL would. */
static enum sh_err build_upsert(struct apply *a, const struct model *m, const size_t *idx,
				size_t count, struct stmt *st, char **why)
{
	json_object *doc = json_tokener_parse(a->ops[idx[0]].doc ? a->ops[idx[0]].doc : "");
	bool *present;

	if (!json_object_is_type(doc, json_type_object)) {
		json_object_put(doc);
		*why = strdup("document is not a json object");
		return SH_OK;
	}
	present = calloc(m->ncols, sizeof(*present));
	if (present)
		upsert_sql(&st->sql, a->pg->conn, a->cat, m, doc, present,
			   a->ops[idx[0]].kind == OP_CREATE);
	free(present);
	json_object_put(doc);
	if (!present)
		return SH_ENOMEM;
	sb_add(&st->param, "[");
	for (size_t i = 0; i < count; i++) {
		sb_add(&st->param, i ? "," : "");
		sb_add(&st->param, a->ops[idx[i]].doc);
	}
	sb_add(&st->param, "]");
	return SH_OK;
}

/* {"k1": "part1", "k2": "part2"}: the key of one record as a JSON object;
 * *why is set when pk is not a key of m. */
static void key_object(struct sbuf *sb, const struct model *m, const char *pk, char **why)
{
	const char *parts[MODEL_KEY_MAX];
	char buf[PG_KEY_MAX];

	if (key_split(m, pk, buf, sizeof(buf), parts) != SH_OK) {
		*why = strdup("the file name is not a key of this table");
		return;
	}
	sb_add(sb, "{");
	for (size_t k = 0; k < m->nkey; k++) {
		sb_add(sb, k ? "," : "");
		sb_json_string(sb, model_key_col(m, k)->name);
		sb_add(sb, ":");
		sb_json_string(sb, parts[k]);
	}
	sb_add(sb, "}");
}

/* DELETE FROM s.t WHERE (k1, k2) IN (SELECT x.k1, x.k2 FROM
 *   json_populate_recordset(NULL::s.t, $1::json) AS x)
 * with $1 = [{"k1": "value", "k2": "value"}, ...]: PostgreSQL converts each
 * key with its type's input function, which refuses rather than truncates. */
static enum sh_err build_delete(struct apply *a, const struct model *m, const size_t *idx,
				size_t count, struct stmt *st, char **why)
{
	PGconn *conn = a->pg->conn;

	sb_add(&st->sql, "DELETE FROM ");
	sb_table(&st->sql, conn, a->cat->schema, m->name);
	sb_add(&st->sql, " WHERE (");
	add_key_list(&st->sql, conn, m, "");
	sb_add(&st->sql, ") IN (SELECT ");
	add_key_list(&st->sql, conn, m, "x.");
	sb_add(&st->sql, " FROM json_populate_recordset(NULL::");
	sb_table(&st->sql, conn, a->cat->schema, m->name);
	sb_add(&st->sql, ", $1::json) AS x)");
	sb_add(&st->param, "[");
	for (size_t i = 0; i < count && !*why; i++) {
		sb_add(&st->param, i ? "," : "");
		key_object(&st->param, m, a->ops[idx[i]].pk, why);
	}
	sb_add(&st->param, "]");
	return SH_OK;
}

static enum sh_err build_stmt(struct apply *a, const size_t *idx, size_t count,
			      struct stmt *st, char **why)
{
	const struct op *op = &a->ops[idx[0]];
	const struct model *m = catalog_find(a->cat, op->model);
	enum sh_err rc;

	if (!m) {
		*why = strdup("no such model");
		return SH_OK;
	}
	if (op->kind == OP_DELETE)
		rc = build_delete(a, m, idx, count, st, why);
	else
		rc = build_upsert(a, m, idx, count, st, why);
	if (rc != SH_OK || *why || !(st->sql.failed || st->param.failed))
		return rc;
	/* too big for one statement: bisection shrinks it, or refuses the one huge op */
	if (st->sql.toobig || st->param.toobig)
		*why = strdup("too big for one statement");
	return *why ? SH_OK : SH_ENOMEM;
}

/* The keys of ops idx[0..count) as their file names spell them, parts of
 * one op after another, into *want (pointing into *buf; both malloc'd).
 * false when a key does not split (a file name that is not a key of m). */
static bool keys_of_ops(const struct apply *a, const struct model *m, const size_t *idx,
			size_t count, const char ***want, char **buf)
{
	size_t total = 0, off = 0;

	for (size_t i = 0; i < count; i++)
		total += strlen(a->ops[idx[i]].pk) + 1;	/* decoding only shrinks a part */
	*buf = malloc(total ? total : 1);
	*want = malloc((count * m->nkey + 1) * sizeof(**want));
	if (!*buf || !*want)
		return false;
	for (size_t i = 0; i < count; i++) {
		size_t len = strlen(a->ops[idx[i]].pk) + 1;

		if (key_split(m, a->ops[idx[i]].pk, *buf + off, len, *want + i * m->nkey) != SH_OK)
			return false;
		off += len;
	}
	return true;
}

/* The keys of the documents of st as PostgreSQL prints them, in order. */
static enum sh_err keys_of_docs(struct apply *a, const struct model *m, const struct stmt *st,
				size_t count, PGresult **res, const char ***want)
{
	struct sbuf sql = { 0 };
	const char *vals[] = { st->param.p };
	enum sh_err rc = SH_OK;

	*want = NULL;
	doc_keys_sql(&sql, a->pg->conn, a->cat, m);
	*res = sql.failed ? NULL : exec_params(a->pg, sql.p, 1, vals);
	if (!result_ok(*res)) {
		rc = sql.failed ? SH_ENOMEM : classify(a->pg, *res);
		if (!sql.failed)
			result_reason(a->pg, *res, a->err, a->errlen);
		sb_free(&sql);
		return rc;
	}
	sb_free(&sql);
	if ((size_t)PQntuples(*res) != count)
		return SH_OK;	/* never: one row per document; nothing matches */
	*want = malloc((count * m->nkey + 1) * sizeof(**want));
	if (!*want)
		return SH_ENOMEM;
	for (size_t i = 0; i < count; i++)
		for (size_t k = 0; k < m->nkey; k++)
			(*want)[i * m->nkey + k] = PQgetvalue(*res, (int)i, (int)k);
	return SH_OK;
}

/* pos[r]: the op (0..count) each returned row of res is the row of; by the
 * file names' keys, or, when a row does not match one, by the documents'
 * keys as PostgreSQL prints them (one more statement). A row that matches
 * neither refreshes nothing. */
static enum sh_err match_returned(struct apply *a, const struct model *m, const struct stmt *st,
				  const PGresult *res, const size_t *idx, size_t count, size_t *pos)
{
	size_t nrows = (size_t)PQntuples(res), matched = 0;
	const char **got = malloc((nrows * m->nkey + 1) * sizeof(*got));
	const char **want = NULL;
	char *buf = NULL;
	PGresult *keys = NULL;
	enum sh_err rc = got ? SH_OK : SH_ENOMEM;

	for (size_t r = 0; got && r < nrows; r++)
		for (size_t k = 0; k < m->nkey; k++)
			got[r * m->nkey + k] = PQgetvalue(res, (int)r, (int)k);
	if (rc == SH_OK && keys_of_ops(a, m, idx, count, &want, &buf))
		rc = batch_match_keys(got, nrows, want, count, m->nkey, pos, &matched);
	if (rc == SH_OK && matched < nrows) {
		free(want);
		rc = keys_of_docs(a, m, st, count, &keys, &want);
		if (rc == SH_OK && want)
			rc = batch_match_keys(got, nrows, want, count, m->nkey, pos, &matched);
	}
	PQclear(keys);
	free(got);
	free(want);
	free(buf);
	return rc;
}

static enum sh_err take_returned(struct apply *a, const struct stmt *st, const PGresult *res,
				 const size_t *idx, size_t count)
{
	const struct model *m = catalog_find(a->cat, a->ops[idx[0]].model);
	size_t nrows = (size_t)PQntuples(res), *pos;
	enum sh_err rc;

	if (!m || a->ops[idx[0]].kind == OP_DELETE || nrows == 0)
		return SH_OK;	/* a delete returns nothing */
	pos = malloc(nrows * sizeof(*pos));
	for (size_t r = 0; pos && r < nrows; r++)
		pos[r] = BATCH_NONE;
	rc = pos ? match_returned(a, m, st, res, idx, count, pos) : SH_ENOMEM;
	for (size_t r = 0; rc == SH_OK && r < nrows; r++) {
		struct op *op;

		if (pos[r] == BATCH_NONE)
			continue;
		op = &a->ops[idx[pos[r]]];
		free(op->returned);
		op->returned = strdup(PQgetvalue(res, (int)r, (int)m->nkey));
		if (!op->returned)
			rc = SH_ENOMEM;
	}
	free(pos);
	return rc;
}

/* PostgreSQL's own words for a refusal: the message, and the detail that
 * names the offending value ("Key (id)=(7) is not present ..."). */
static char *refusal_text(const PGresult *res)
{
	const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	const char *detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
	char *text = NULL;

	if (asprintf(&text, "%s%s%s", msg ? msg : "refused", detail ? ": " : "", detail ? detail : "") < 0)
		return NULL;
	for (char *p = text; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	return text;
}

static enum sh_err exec_stmt(struct apply *a, const struct stmt *st, const size_t *idx,
			     size_t count, char **why)
{
	const char *vals[] = { st->param.p };
	PGresult *res = exec_params(a->pg, st->sql.p, 1, vals);
	enum sh_err rc;

	if (result_ok(res)) {
		rc = take_returned(a, st, res, idx, count);
		PQclear(res);
		return rc;
	}
	rc = classify(a->pg, res);
	if (rc == SH_EREMOTE) {
		*why = refusal_text(res);
		rc = *why ? SH_OK : SH_ENOMEM;
	} else {
		result_reason(a->pg, res, a->err, a->errlen);
	}
	PQclear(res);
	return rc;
}

/* Apply ops idx[0..count) in one statement under a savepoint. Returns SH_OK
 * with *why NULL when applied, SH_OK with *why set (malloc'd) when PostgreSQL
 * refused it, anything else when the whole batch must be abandoned. */
static enum sh_err try_range(struct apply *a, const size_t *idx, size_t count, char **why)
{
	struct stmt st = { 0 };
	enum sh_err rc;

	*why = NULL;
	rc = build_stmt(a, idx, count, &st, why);
	if (rc == SH_OK && !*why)
		rc = command(a->pg, "SAVEPOINT sharded_group", 0, NULL, a->err, a->errlen);
	if (rc == SH_OK && !*why) {
		rc = exec_stmt(a, &st, idx, count, why);
		if (rc == SH_OK && *why)
			rc = command(a->pg, "ROLLBACK TO SAVEPOINT sharded_group", 0, NULL, a->err, a->errlen);
		if (rc == SH_OK)
			rc = command(a->pg, "RELEASE SAVEPOINT sharded_group", 0, NULL, a->err, a->errlen);
	}
	stmt_free(&st);
	if (rc != SH_OK) {
		free(*why);
		*why = NULL;
	}
	return rc;
}

/* batch_try_fn over try_range. */
static enum sh_err bisect_try(void *ctx, const size_t *idx, size_t count, char **why)
{
	return try_range(ctx, idx, count, why);
}

/* batch_reset_fn: a half that succeeded may have set the returned rows. */
static void clear_returned(void *ctx, const size_t *idx, size_t count)
{
	struct apply *a = ctx;

	for (size_t i = 0; i < count; i++) {
		free(a->ops[idx[i]].returned);
		a->ops[idx[i]].returned = NULL;
	}
}

/* batch_dead_fn: PostgreSQL refuses ops[i] on its own; keep its words, log it. */
static void mark_dead(void *ctx, size_t i, char *why)
{
	struct op *op = &((struct apply *)ctx)->ops[i];

	op->dead = true;
	free(op->returned);
	op->returned = NULL;
	free(op->error);
	op->error = why;
	sh_log(LOG_NOTICE, "postgresql refused %s \"%s\" of \"%s\": %s",
	       op->kind == OP_DELETE ? "delete of" : "write of", op->pk, op->model,
	       why ? why : "refused");
}

/* Apply one group, isolating by bisection (batch.h) each op PostgreSQL
 * refuses, and falling back to the writes a refused op stands for. */
static enum sh_err apply_range(struct apply *a, const size_t *idx, size_t count)
{
	const struct batch_bisect_ops ops = {
		.try_range = bisect_try,
		.reset = clear_returned,
		.dead = mark_dead,
		.ops = a->ops,
		.prev = a->prev,
	};

	return batch_bisect(idx, count, &ops, a);
}

static enum sh_err apply_all(struct apply *a, size_t n)
{
	size_t m = n ? n : 1;
	size_t *order = malloc(m * sizeof(*order));
	struct batch_group *groups = malloc(m * sizeof(*groups));
	size_t norder = 0, ngroups = 0;
	enum sh_err rc;

	a->prev = malloc(m * sizeof(*a->prev));
	rc = order && groups && a->prev ? SH_OK : SH_ENOMEM;
	if (rc == SH_OK)
		rc = batch_collapse(a->ops, n, order, &norder, a->prev);
	if (rc == SH_OK)
		rc = batch_group(a->ops, order, norder, groups, &ngroups);
	for (size_t g = 0; rc == SH_OK && g < ngroups; g++)
		rc = apply_range(a, order + groups[g].first, groups[g].count);
	if (rc != SH_OK && rc != SH_EUNAVAIL && rc != SH_EREMOTE)	/* those have PostgreSQL's reason */
		set_err(a->err, a->errlen, "applying batch: %s", sh_strerror(rc));
	free(order);
	free(groups);
	free(a->prev);
	a->prev = NULL;
	return rc;
}

/* One origin of a batch: what PostgreSQL had applied of it, and the highest
 * seq of it in the batch. */
struct origin_mark {
	const char *origin;	/* points into an op */
	int64_t applied, upto;
};

/* The distinct origins of ops; marks holds n. */
static size_t origins_of(const struct op *ops, size_t n, struct origin_mark *marks)
{
	size_t k = 0, j;

	for (size_t i = 0; i < n; i++) {
		const char *o = op_origin(&ops[i]);

		for (j = 0; j < k && strcmp(marks[j].origin, o) != 0; j++)
			;
		if (j == k)
			marks[k++] = (struct origin_mark){ o, 0, 0 };
		if (ops[i].seq > marks[j].upto)
			marks[j].upto = ops[i].seq;
	}
	return k;
}

/* Serialise the appliers of one block (across daemons: per-block order
 * holds), then read what each origin of the batch has applied. */
static enum sh_err lock_block(struct pg *pg, const char *block, struct origin_mark *marks,
			      size_t k, char *err, size_t errlen)
{
	const char *vals[] = { block, NULL };
	enum sh_err rc;

	rc = command(pg, "SELECT pg_advisory_xact_lock(hashtext('sharded_applied'), hashtext($1))",
		     1, vals, err, errlen);
	for (size_t i = 0; rc == SH_OK && i < k; i++) {
		PGresult *res;

		vals[1] = marks[i].origin;
		res = exec_params(pg, "SELECT seq FROM sharded_applied WHERE block = $1 AND origin = $2",
			   2, vals);
		if (!result_ok(res)) {
			rc = classify(pg, res);
			result_reason(pg, res, err, errlen);
		} else if (PQntuples(res) == 1) {
			marks[i].applied = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
		}
		PQclear(res);
	}
	return rc;
}

/* Raise each origin's seq to the batch's highest, and commit. */
static enum sh_err finish(struct pg *pg, const char *block, const struct origin_mark *marks,
			  size_t k, char *err, size_t errlen)
{
	enum sh_err rc = SH_OK;

	for (size_t i = 0; rc == SH_OK && i < k; i++) {
		char seq[32];
		const char *vals[] = { block, marks[i].origin, seq };

		if (marks[i].upto <= marks[i].applied)
			continue;	/* all of it applied before */
		snprintf(seq, sizeof(seq), "%" PRId64, marks[i].upto);
		rc = command(pg, "INSERT INTO sharded_applied (block, origin, seq, applied_at)"
			     " VALUES ($1, $2, $3, now()) ON CONFLICT (block, origin) DO UPDATE"
			     " SET seq = greatest(sharded_applied.seq, excluded.seq), applied_at = now()",
			     3, vals, err, errlen);
	}
	return rc ? rc : command(pg, "COMMIT", 0, NULL, err, errlen);
}

static void reset_outputs(struct op *ops, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		ops[i].skipped = ops[i].superseded = ops[i].dead = false;
		free(ops[i].error);
		free(ops[i].returned);
		ops[i].error = ops[i].returned = NULL;
	}
}

/* Mark what each origin applied before; returns the highest seq in ops. */
static int64_t mark_skipped(struct op *ops, size_t n, const struct origin_mark *marks, size_t k)
{
	int64_t upto = 0;

	for (size_t i = 0; i < n; i++) {
		const char *o = op_origin(&ops[i]);

		for (size_t j = 0; j < k; j++)
			if (strcmp(marks[j].origin, o) == 0)
				ops[i].skipped = ops[i].seq <= marks[j].applied;
		if (ops[i].seq > upto)
			upto = ops[i].seq;
	}
	return upto;
}

static void rollback(struct pg *pg)
{
	if (PQstatus(pg->conn) == CONNECTION_OK && PQtransactionStatus(pg->conn) != PQTRANS_IDLE)
		PQclear(exec_params(pg, "ROLLBACK", 0, NULL));
}

enum sh_err pg_apply(struct pg *pg, const struct catalog *cat, const char *block,
		     struct op *ops, size_t n, int64_t *applied_upto, char *err, size_t errlen)
{
	struct apply a = { .pg = pg, .cat = cat, .ops = ops, .err = err, .errlen = errlen };
	struct origin_mark *marks = malloc((n ? n : 1) * sizeof(*marks));
	size_t k = marks ? origins_of(ops, n, marks) : 0;
	int64_t upto = 0;
	enum sh_err rc = marks ? SH_OK : SH_ENOMEM;

	reset_outputs(ops, n);
	rollback(pg);	/* whatever an earlier failure left open */
	if (rc == SH_OK)
		rc = command(pg, "BEGIN", 0, NULL, err, errlen);
	if (rc == SH_OK)
		rc = lock_block(pg, block, marks, k, err, errlen);
	if (rc == SH_OK) {
		upto = mark_skipped(ops, n, marks, k);
		rc = apply_all(&a, n);
	}
	if (rc == SH_OK)
		rc = finish(pg, block, marks, k, err, errlen);
	free(marks);
	if (rc != SH_OK) {
		rollback(pg);
		reset_outputs(ops, n);
		sh_log(LOG_WARNING, "applying block \"%s\": %s", block, err && errlen ? err : sh_strerror(rc));
		return rc;
	}
	*applied_upto = upto;
	return SH_OK;
}

/* ---- loading a block ---- */

char *pg_loader_sql(struct pg *pg, const struct catalog *cat, const struct model *m,
		    const char *where, bool count)
{
	struct sbuf sql = { 0 };

	if (count) {
		sb_add(&sql, "SELECT count(*) FROM (SELECT 1 FROM ");
	} else {
		sb_add(&sql, "SELECT ");
		for (size_t k = 0; k < m->nkey; k++) {
			sb_add(&sql, "t.");
			sb_ident(&sql, pg->conn, model_key_col(m, k)->name);
			sb_add(&sql, "::text, ");
		}
		sb_add(&sql, "row_to_json(t.*)::text FROM ");
	}
	sb_table(&sql, pg->conn, cat->schema, m->name);
	sb_add(&sql, " AS t WHERE ");
	sb_add(&sql, where);
	if (count)
		sb_add(&sql, ") AS q");
	if (sql.failed) {
		sb_free(&sql);
		return NULL;
	}
	return sql.p;
}

enum sh_err pg_check_sql(struct pg *pg, const char *sql, int nparams, char *err, size_t errlen)
{
	PGresult *res;
	enum sh_err rc = SH_OK;

	pg->statements++;
	res = prepare(pg, "", sql, nparams);
	if (!result_ok(res)) {
		rc = classify(pg, res) == SH_EUNAVAIL ? SH_EUNAVAIL : SH_EINVAL;
		result_reason(pg, res, err, errlen);
	}
	PQclear(res);
	return rc;
}

enum sh_err pg_count(struct pg *pg, const char *sql, int nparams, const char *const *vals,
		     int64_t *count, char *err, size_t errlen)
{
	PGresult *res = exec_params(pg, sql, nparams, vals);
	enum sh_err rc = SH_OK;

	if (result_ok(res) && PQntuples(res) == 1) {
		*count = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	} else {
		rc = classify(pg, res);
		result_reason(pg, res, err, errlen);
	}
	PQclear(res);
	return rc;
}

/* After an early stop the rest of the query is not wanted: cut the session
 * (a cancel request would wait for an answer from the server, which may be
 * the one not answering); the next use reconnects. */
static void drop_rest(struct pg *pg)
{
	set_timed_out(pg);
	pg->timed_out = false;	/* not a timeout: the receiver stopped */
}

/* A row of pg_loader_sql: the key's parts, then the document. */
static enum sh_err take_row(const PGresult *res, pg_row_fn fn, void *ctx)
{
	const char *parts[MODEL_KEY_MAX];
	int last = PQnfields(res) - 1;
	char pk[PG_KEY_MAX];

	if (last < 1 || last > MODEL_KEY_MAX)
		return SH_EINVAL;
	for (int k = 0; k < last; k++)
		parts[k] = PQgetvalue(res, 0, k);
	if (key_join(parts, (size_t)last, pk, sizeof(pk)) != SH_OK) {
		sh_log(LOG_WARNING, "loading: a row's key is longer than %d bytes: left out",
		       PG_KEY_MAX - 1);
		return SH_OK;
	}
	return fn(ctx, pk, PQgetvalue(res, 0, last));
}

enum sh_err pg_stream_rows(struct pg *pg, const char *sql, int nparams, const char *const *vals,
			   pg_row_fn fn, void *ctx, char *err, size_t errlen)
{
	PGresult *res;
	enum sh_err rc = SH_OK;

	pg->statements++;
	if (!send_ready(pg) || !PQsendQueryParams(pg->conn, sql, nparams, NULL, vals, NULL, NULL, 0) ||
	    !PQsetSingleRowMode(pg->conn)) {
		lost_reason(pg, err, errlen);
		return SH_EUNAVAIL;
	}
	/* wait_ms bounds each wait for the next rows, not the whole load */
	while (rc == SH_OK ? await_result(pg) : (drop_rest(pg), false)) {
		ExecStatusType st;

		if (!(res = PQgetResult(pg->conn)))
			break;
		st = PQresultStatus(res);

		if (st == PGRES_SINGLE_TUPLE && rc == SH_OK) {
			rc = take_row(res, fn, ctx);
			if (rc)
				set_err(err, errlen, "%s", "stopped by the receiver");
		} else if (st != PGRES_TUPLES_OK && st != PGRES_SINGLE_TUPLE && rc == SH_OK) {
			rc = classify(pg, res);
			result_reason(pg, res, err, errlen);
		}
		PQclear(res);
	}
	if (rc == SH_OK && (pg->cut || PQstatus(pg->conn) != CONNECTION_OK)) {
		lost_reason(pg, err, errlen);
		rc = SH_EUNAVAIL;
	}
	return rc;
}
