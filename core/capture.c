/* capture.c - the change-capture triggers, and the listener that applies
 * what they announce to the blocks.
 * Transport: the triggers insert one row per changed row into the unlogged
 * table CAPTURE_SCHEMA.changes, and the listener polls it every POLL_MS.
 * NOTIFY would wake it at once, but a transaction that notifies takes one
 * database-wide lock from its pre-commit to the end of its commit (its WAL
 * flush included), so every notifying commit of the application waited for
 * the one before: single-row UPDATEs from 4 clients ran at 0.21-0.23 of their
 * rate. An insert takes no such lock.
 * Order: a change is taken in once its transaction committed (a poll sees
 * committed rows only); the rows it names are then read again from
 * PostgreSQL, so a block gets a value at least as new as that commit. Rows
 * commit out of id order, so a poll reads the ids past the last one it saw
 * and the rows of the transactions its last snapshot saw in progress
 * (pg_snapshot_xip) or not yet started (>= pg_snapshot_xmax): every row is
 * read exactly once (struct cursor). Batches are applied in the order they
 * are read; within a batch there is no order (each key is read once, at its
 * newest). A block's own pending write to a record always wins
 * (store_remote): read-your-writes holds on each node. Changes made while the
 * listener is disconnected are not lost, but the node does not know where it
 * left off, so every (re)connect starts a cursor and then reloads what the
 * node holds (revalidate_all) before trusting the polls again.
 * Which blocks: the open stores only (at most store_set_max_open, 64 by
 * default), asked directly; a parked block is not opened but marked
 * BLOCK_EXPIRED, so that its next use reloads it from PostgreSQL. No index of
 * records is kept in memory, whatever the number of blocks.
 */
#include "capture.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>
#include <libpq-fe.h>

#include "backoff.h"
#include "clock.h"
#include "log.h"
#include "sbuf.h"
#include "store.h"
#include "thread.h"

#define POLL_MS 20		/* a poll of the changes table this often */
#define NAP_MS 200		/* stop is noticed within this while not connected */
#define PRUNE_EVERY_MS 60000	/* rows this node read are deleted after about this */
#define NOT_INSTALLED_RECHECK_MS 10000
#define BACKOFF_BASE_MS 100
#define BACKOFF_CAP_MS 5000
#define CHANGES CAPTURE_SCHEMA ".changes"
#define DOLLAR_TAG "$sharded_capture$"
#define LOADING_MAX 64		/* blocks loading during a batch, reloaded once loaded */
#define KEPT_MAX 1024		/* records kept for a pending write, read again once applied */

static const struct pg_limits listen_limits = {
	.statement_ms = 10000, .lock_ms = 5000, .wait_ms = 15000,
};

/* (p."k1", p."k2") for prefix p ("OLD", "NEW", "t"), or the ::text of each */
static void sql_key_list(struct sbuf *s, PGconn *conn, const struct model *m, const char *prefix,
			 const char *suffix)
{
	for (size_t k = 0; k < m->nkey; k++) {
		sb_add(s, k ? ", " : "");
		sb_add(s, prefix);
		sb_add(s, ".");
		sb_ident(s, conn, model_key_col(m, k)->name);
		sb_add(s, suffix);
	}
}

/* ---- in the database ---- */

static enum sh_err run_script(struct pg *pg, const char *sql, char *err, size_t errlen)
{
	PGconn *conn = pg_libpq(pg);
	PGresult *res = conn ? PQexec(conn, sql) : NULL;
	ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
	enum sh_err rv = SH_OK;

	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		snprintf(err, errlen, "%s", conn ? PQerrorMessage(conn) : "no connection");
		err[strcspn(err, "\n")] = '\0';
		rv = conn && PQstatus(conn) == CONNECTION_OK ? SH_EREMOTE : SH_EUNAVAIL;
		if (conn && PQtransactionStatus(conn) != PQTRANS_IDLE)
			PQclear(PQexec(conn, "ROLLBACK"));
	}
	PQclear(res);
	return rv;
}

/* The trigger functions are statement-level, with transition tables: one
 * call per statement rather than per row (a bulk UPDATE of 10,000 rows took
 * 133 ms with them, 187 ms with row triggers, 78 ms with none). Each table
 * has one function per event, its key columns written in: no dynamic SQL.
 * The key goes as text, never the row; a payload longer than a key may be
 * (CAPTURE_KEY_MAX) announces the whole table instead. */
static const char *const events[] = { "INSERT", "UPDATE", "DELETE" };

/* A row of the changes table for every row of table tab (sharded_new or
 * sharded_old) as op ('I', 'U', 'D'), those with a match in other left out
 * when other is set. */
static void notify_rows(struct sbuf *s, PGconn *conn, const struct model *m, const char *op,
			const char *tab, const char *other)
{
	sb_add(s, "  INSERT INTO " CHANGES " (p) SELECT CASE WHEN octet_length(p) > "
		   "4000 THEN json_build_array('");
	sb_add(s, op);
	sb_add(s, "', TG_TABLE_NAME, ts, NULL)::text ELSE p END\n    FROM (SELECT json_build_array('");
	sb_add(s, op);
	sb_add(s, "', TG_TABLE_NAME, ts, json_build_array(");
	sql_key_list(s, conn, m, "r", "::text");
	sb_add(s, "))::text AS p FROM ");
	if (other) {	/* an UPDATE that changed keys: the old keys are gone. EXCEPT
			 * hashes; NOT EXISTS between the two transition tables (no
			 * statistics) ran a nested loop: 70 ms for 1,000 rows */
		sb_add(s, "(SELECT ");
		sql_key_list(s, conn, m, "o", "");
		sb_add(s, " FROM ");
		sb_add(s, tab);
		sb_add(s, " AS o EXCEPT SELECT ");
		sql_key_list(s, conn, m, "o", "");
		sb_add(s, " FROM ");
		sb_add(s, other);
		sb_add(s, " AS o)");
	} else {
		sb_add(s, tab);
	}
	sb_add(s, " AS r");
	sb_add(s, ") AS q;\n");
}

/* sharded_capture."<table>_<event>"() */
static void function_name(struct sbuf *s, PGconn *conn, const struct model *m, size_t ev)
{
	char name[160];

	snprintf(name, sizeof(name), "%s_%s", m->name, events[ev]);
	sb_add(s, CAPTURE_SCHEMA ".");
	sb_ident(s, conn, name);
}

static void trigger_function(struct sbuf *s, PGconn *conn, const struct model *m, size_t ev)
{
	sb_add(s, "CREATE FUNCTION ");
	function_name(s, conn, m, ev);
	sb_add(s, "() RETURNS trigger LANGUAGE plpgsql AS " DOLLAR_TAG "\nDECLARE\n"
		   "  ts bigint := (extract(epoch FROM clock_timestamp()) * 1000000)::bigint;\n"
		   "BEGIN\n");
	if (ev == 0)
		notify_rows(s, conn, m, "I", "sharded_new", NULL);
	if (ev == 1) {
		notify_rows(s, conn, m, "U", "sharded_new", NULL);
		notify_rows(s, conn, m, "D", "sharded_old", "sharded_new");
	}
	if (ev == 2)
		notify_rows(s, conn, m, "D", "sharded_old", NULL);
	sb_add(s, "  RETURN NULL;\nEND\n" DOLLAR_TAG ";\n");
}

static void trigger_of(struct sbuf *s, PGconn *conn, const struct catalog *cat,
		       const struct model *m)
{
	static const char *const refs[] = { "NEW TABLE AS sharded_new",
					    "OLD TABLE AS sharded_old NEW TABLE AS sharded_new",
					    "OLD TABLE AS sharded_old" };

	for (size_t ev = 0; ev < 3; ev++) {
		char tg[64];

		trigger_function(s, conn, m, ev);
		snprintf(tg, sizeof(tg), "sharded_capture_%c", events[ev][0] + ('a' - 'A'));
		sb_add(s, "CREATE TRIGGER ");
		sb_add(s, tg);
		sb_add(s, " AFTER ");
		sb_add(s, events[ev]);
		sb_add(s, " ON ");
		sb_table(s, conn, cat->schema, m->name);
		sb_add(s, " REFERENCING ");
		sb_add(s, refs[ev]);
		sb_add(s, " FOR EACH STATEMENT EXECUTE FUNCTION ");
		function_name(s, conn, m, ev);
		sb_add(s, "();\n");
	}
	sb_add(s, "CREATE TRIGGER sharded_capture_t AFTER TRUNCATE ON ");
	sb_table(s, conn, cat->schema, m->name);
	sb_add(s, " FOR EACH STATEMENT EXECUTE FUNCTION " CAPTURE_SCHEMA ".truncated();\n");
}

/* Unlogged: no WAL for it (a crash empties it, and every listener then
 * reconnects and reloads); xid is the writer's top transaction, for the
 * cursor; everyone who may write an exposed table may insert here. */
static const char changes_table[] =
	"CREATE UNLOGGED TABLE " CHANGES " (id bigserial PRIMARY KEY,"
	" xid xid8 NOT NULL DEFAULT pg_current_xact_id(), p text NOT NULL);\n"
	"CREATE INDEX ON " CHANGES " (xid);\n"
	"GRANT USAGE ON SCHEMA " CAPTURE_SCHEMA " TO PUBLIC;\n"
	"GRANT INSERT ON " CHANGES " TO PUBLIC;\n"
	"GRANT USAGE ON SEQUENCE " CHANGES "_id_seq TO PUBLIC;\n";

static const char truncated_function[] =
	"CREATE FUNCTION " CAPTURE_SCHEMA ".truncated() RETURNS trigger LANGUAGE plpgsql AS "
	DOLLAR_TAG "\nBEGIN\n  INSERT INTO " CHANGES " (p) VALUES (json_build_array('T',"
	" TG_TABLE_NAME, (extract(epoch FROM clock_timestamp()) * 1000000)::bigint, NULL)::text);\n"
	"  RETURN NULL;\nEND\n" DOLLAR_TAG ";\n";

/* A name holding the dollar-quote tag would end the function body early. */
static bool tag_inside(const struct model *m)
{
	if (strstr(m->name, DOLLAR_TAG))
		return true;
	for (size_t k = 0; k < m->nkey; k++)
		if (strstr(model_key_col(m, k)->name, DOLLAR_TAG))
			return true;
	return false;
}

enum sh_err capture_install(struct pg *pg, const struct catalog *cat, char *err, size_t errlen)
{
	PGconn *conn = pg_libpq(pg);
	struct sbuf s = { 0 };
	enum sh_err rv;

	if (!conn) {
		snprintf(err, errlen, "no connection to postgresql");
		return SH_EUNAVAIL;
	}
	/* dropping first makes the set of triggers exactly the models of cat */
	sb_add(&s, "BEGIN;\nDROP SCHEMA IF EXISTS " CAPTURE_SCHEMA " CASCADE;\n"
		    "CREATE SCHEMA " CAPTURE_SCHEMA ";\n");
	sb_add(&s, changes_table);
	sb_add(&s, truncated_function);
	for (size_t i = 0; i < cat->nmodels; i++) {
		if (tag_inside(&cat->models[i])) {
			free(s.p);
			snprintf(err, errlen, "a key column of '%s' has \"%s\" in its name",
				 cat->models[i].name, DOLLAR_TAG);
			return SH_EINVAL;
		}
		trigger_of(&s, conn, cat, &cat->models[i]);
	}
	sb_add(&s, "COMMIT;\n");
	if (s.failed) {
		free(s.p);
		snprintf(err, errlen, "the capture script is too big");
		return SH_ENOMEM;
	}
	rv = run_script(pg, s.p, err, errlen);
	free(s.p);
	return rv;
}

enum sh_err capture_remove(struct pg *pg, char *err, size_t errlen)
{
	return run_script(pg, "DROP SCHEMA IF EXISTS " CAPTURE_SCHEMA " CASCADE", err, errlen);
}

enum sh_err capture_installed(struct pg *pg, bool *installed)
{
	PGconn *conn = pg_libpq(pg);
	PGresult *res = conn ? PQexec(conn, "SELECT 1 FROM pg_namespace WHERE nspname = '"
					   CAPTURE_SCHEMA "'") : NULL;
	enum sh_err rv = SH_EUNAVAIL;

	*installed = false;
	if (res && PQresultStatus(res) == PGRES_TUPLES_OK) {
		*installed = PQntuples(res) > 0;
		rv = SH_OK;
	}
	PQclear(res);
	return rv;
}

/* ---- payloads and batches ---- */

static bool parse_key(json_object *key, struct capture_note *out)
{
	const char *parts[MODEL_KEY_MAX];
	size_t n;

	if (json_object_is_type(key, json_type_null)) {
		out->whole = true;
		return true;
	}
	if (!json_object_is_type(key, json_type_array))
		return false;
	n = json_object_array_length(key);
	if (n == 0 || n > MODEL_KEY_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		json_object *v = json_object_array_get_idx(key, i);

		if (!json_object_is_type(v, json_type_string))
			return false;	/* a null key part cannot be a primary key's */
		parts[i] = json_object_get_string(v);
	}
	return key_join(parts, n, out->pk, sizeof(out->pk)) == SH_OK;
}

static bool parse_fields(json_object *j, struct capture_note *out)
{
	json_object *op, *table, *ts;
	const char *o, *t;

	if (!json_object_is_type(j, json_type_array) || json_object_array_length(j) != 4)
		return false;
	op = json_object_array_get_idx(j, 0);
	table = json_object_array_get_idx(j, 1);
	ts = json_object_array_get_idx(j, 2);
	if (!json_object_is_type(op, json_type_string) ||
	    !json_object_is_type(table, json_type_string) || !json_object_is_type(ts, json_type_int))
		return false;
	o = json_object_get_string(op);
	t = json_object_get_string(table);
	if (strlen(o) != 1 || !strchr("IUDT", o[0]) || !t[0] || strlen(t) >= sizeof(out->table))
		return false;
	out->op = o[0];
	snprintf(out->table, sizeof(out->table), "%s", t);
	out->ts_us = json_object_get_int64(ts);
	return parse_key(json_object_array_get_idx(j, 3), out);
}

enum sh_err capture_parse(const char *payload, struct capture_note *out)
{
	json_object *j = json_tokener_parse(payload);
	bool ok;

	memset(out, 0, sizeof(*out));
	ok = j && parse_fields(j, out);
	json_object_put(j);
	if (ok && out->op == 'T')
		out->whole = true;
	return ok ? SH_OK : SH_EINVAL;
}

static struct capture_set *set_of(struct capture_batch *b, const struct model *m)
{
	struct capture_set *sets;

	for (size_t i = 0; i < b->n; i++)
		if (b->sets[i].model == m)
			return &b->sets[i];
	if (!(sets = realloc(b->sets, (b->n + 1) * sizeof(*sets))))
		return NULL;
	b->sets = sets;
	memset(&sets[b->n], 0, sizeof(sets[b->n]));
	sets[b->n].model = m;
	return &sets[b->n++];
}

static void set_whole(struct capture_set *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->pks[i]);
	free(s->pks);
	s->pks = NULL;
	s->n = s->cap = 0;
	s->whole = true;
}

static enum sh_err set_add(struct capture_set *s, const char *pk)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->pks[i], pk) == 0)
			return SH_OK;
	if (s->n == CAPTURE_BATCH_MAX) {
		set_whole(s);
		return SH_OK;
	}
	if (s->n == s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 16;
		char **pks = realloc(s->pks, cap * sizeof(*pks));

		if (!pks)
			return SH_ENOMEM;
		s->pks = pks;
		s->cap = cap;
	}
	if (!(s->pks[s->n] = strdup(pk)))
		return SH_ENOMEM;
	s->n++;
	return SH_OK;
}

enum sh_err capture_batch_add(struct capture_batch *b, const struct catalog *cat,
			      const struct capture_note *note)
{
	const struct model *m = catalog_find(cat, note->table);
	struct capture_set *s;
	enum sh_err rv = SH_OK;

	if (!m)
		return SH_ENOENT;
	if (!(s = set_of(b, m)))
		return SH_ENOMEM;
	if (!b->notes || note->ts_us < b->oldest_ts_us)
		b->oldest_ts_us = note->ts_us;
	b->notes++;
	if (note->op != 'D')
		s->inserted = true;
	if (note->whole)
		set_whole(s);
	else if (!s->whole)
		rv = set_add(s, note->pk);
	return rv;
}

void capture_batch_clear(struct capture_batch *b)
{
	for (size_t i = 0; i < b->n; i++)
		set_whole(&b->sets[i]);
	free(b->sets);
	memset(b, 0, sizeof(*b));
}

/* ---- the listener ---- */

/* Where the polls of the changes table are: every row with an id up to
 * last_id was read, but for those of the transactions that the last snapshot
 * saw in progress (xip) or not yet begun (xid >= xmax), which may commit
 * later with any id. So each poll reads "id > last_id OR xid = ANY(xip) OR
 * xid >= xmax" and, under its own snapshot, moves the three on: a row is
 * read once, at the first poll after its commit. */
struct cursor {
	char last_id[24];
	char xmax[24];
	char xip[65536];	/* "{734,736}": about 6,000 transactions in progress; more: reconnect */
	char prune_id[24];	/* last_id one prune period ago */
	int64_t next_prune_ms;
};

struct capture {
	struct capture_config cfg;
	struct capture_stats stats;
	pthread_t thread;
	atomic_bool stopping;
	struct pg *pg;			/* NULL while disconnected */
	struct backoff bo;
	struct capture_batch batch;
	struct cursor cur;
	bool said_not_installed, said_down;
	/* blocks that were loading when a batch came: their load may have read
	 * a row before the change, so each reloads once it is ready */
	char *loading[LOADING_MAX];
	size_t nloading;
	/* records a change did not replace because a write of the block to them
	 * was pending: once it is applied, the sync refreshes them from the row
	 * its own batch returned, which may be older than the change kept out,
	 * so each is read again then (recheck_kept) */
	struct kept {
		char *block, *pk;
		const struct model *model;
	} kept[KEPT_MAX];
	size_t nkept;
};

/* The rows read again of one model: sorted by key, doc NULL when gone. */
struct reread {
	char **pks, **docs;
	size_t n, cap;
};

static void reread_free(struct reread *r)
{
	for (size_t i = 0; i < r->n; i++) {
		free(r->pks[i]);
		free(r->docs[i]);
	}
	free(r->pks);
	free(r->docs);
	memset(r, 0, sizeof(*r));
}

static enum sh_err reread_take(void *ctx, const char *pk, const char *doc)
{
	struct reread *r = ctx;

	if (r->n == r->cap) {
		size_t cap = r->cap ? 2 * r->cap : 16;
		char **pks = realloc(r->pks, cap * sizeof(*pks));
		char **docs = pks ? realloc(r->docs, cap * sizeof(*docs)) : NULL;

		if (pks)
			r->pks = pks;
		if (!docs)
			return SH_ENOMEM;
		r->docs = docs;
		r->cap = cap;
	}
	r->pks[r->n] = strdup(pk);
	r->docs[r->n] = strdup(doc);
	if (!r->pks[r->n] || !r->docs[r->n]) {
		free(r->pks[r->n]);
		free(r->docs[r->n]);
		return SH_ENOMEM;
	}
	r->n++;
	return SH_OK;
}

static const char *reread_doc(const struct reread *r, const char *pk)
{
	for (size_t i = 0; i < r->n; i++)
		if (strcmp(r->pks[i], pk) == 0)
			return r->docs[i];
	return NULL;
}

/* One text[] literal per key column of the keys of s, for unnest(). */
static char **key_arrays(const struct capture_set *s, const char *const *pks, size_t n)
{
	const struct model *m = s->model;
	struct sbuf *cols = calloc(m->nkey, sizeof(*cols));
	char **out = calloc(m->nkey, sizeof(*out));
	bool failed = !cols || !out;

	for (size_t k = 0; k < m->nkey && !failed; k++)
		sb_add(&cols[k], "{");
	for (size_t i = 0; i < n && !failed; i++) {
		const char *parts[MODEL_KEY_MAX];
		char buf[CAPTURE_KEY_MAX];

		if (key_split(m, pks[i], buf, sizeof(buf), parts) != SH_OK)
			continue;	/* not a key of m: no row has it */
		for (size_t k = 0; k < m->nkey; k++) {
			sb_add(&cols[k], cols[k].len > 1 ? ",\"" : "\"");
			for (const char *c = parts[k]; *c; c++) {
				char one[3] = { '\\', *c, 0 };

				sb_add(&cols[k], (*c == '"' || *c == '\\') ? one : one + 1);
			}
			sb_add(&cols[k], "\"");
		}
	}
	for (size_t k = 0; k < m->nkey && !failed; k++) {
		sb_add(&cols[k], "}");
		failed = cols[k].failed;
		out[k] = cols[k].p;
		cols[k].p = NULL;
	}
	for (size_t k = 0; cols && k < m->nkey; k++)
		free(cols[k].p);
	free(cols);
	if (failed && out) {
		for (size_t k = 0; k < m->nkey; k++)
			free(out[k]);
		free(out);
		out = NULL;
	}
	return out;
}

static void free_arrays(char **a, size_t n)
{
	for (size_t k = 0; a && k < n; k++)
		free(a[k]);
	free(a);
}

/* (SELECT u.c1::type1, ... FROM unnest($from::text[], ...) AS u(c1, ...)),
 * typed so that the key's index serves the look-up; untyped (text) when
 * typed is false, to compare with a query's text columns. */
static void sql_unnest(struct sbuf *s, const struct model *m, int from, bool typed)
{
	char buf[64];

	sb_add(s, "(SELECT ");
	for (size_t k = 0; k < m->nkey; k++) {
		snprintf(buf, sizeof(buf), "%su.c%zu", k ? ", " : "", k);
		sb_add(s, buf);
		if (typed) {
			sb_add(s, "::");
			sb_add(s, model_key_col(m, k)->type);
		}
	}
	sb_add(s, " FROM unnest(");
	for (size_t k = 0; k < m->nkey; k++) {
		snprintf(buf, sizeof(buf), "%s$%d::text[]", k ? ", " : "", from + (int)k);
		sb_add(s, buf);
	}
	sb_add(s, ") AS u(");
	for (size_t k = 0; k < m->nkey; k++) {
		snprintf(buf, sizeof(buf), "%sc%zu", k ? ", " : "", k);
		sb_add(s, buf);
	}
	sb_add(s, "))");
}

/* Read the rows of s's keys again, in one query. */
static enum sh_err reread_set(struct capture *c, const struct capture_set *s, struct reread *r)
{
	PGconn *conn = pg_libpq(c->pg);
	const struct model *m = s->model;
	char **arrays = key_arrays(s, (const char *const *)s->pks, s->n), err[512] = "";
	struct sbuf q = { 0 };
	enum sh_err rv;

	if (!arrays || !conn) {
		free_arrays(arrays, m->nkey);
		return arrays ? SH_EUNAVAIL : SH_ENOMEM;
	}
	sb_add(&q, "SELECT ");
	sql_key_list(&q, conn, m, "t", "::text");
	sb_add(&q, ", row_to_json(t.*)::text FROM ");
	sb_table(&q, conn, c->cfg.cat->schema, m->name);
	sb_add(&q, " AS t WHERE (");
	sql_key_list(&q, conn, m, "t", "");
	sb_add(&q, ") IN ");
	sql_unnest(&q, m, 1, true);
	rv = q.failed ? SH_ENOMEM
		      : pg_stream_rows(c->pg, q.p, (int)m->nkey, (const char *const *)arrays,
				       reread_take, r, err, sizeof(err));
	if (rv)
		sh_log(LOG_WARNING, "capture: reading changed rows of \"%s\": %s", m->name,
		       err[0] ? err : sh_strerror(rv));
	free(q.p);
	free_arrays(arrays, m->nkey);
	return rv;
}

static void remember_kept(struct capture *c, struct block *b, const struct model *m,
			  const char *pk)
{
	struct kept *k = &c->kept[c->nkept];

	for (size_t i = 0; i < c->nkept; i++)
		if (c->kept[i].model == m && strcmp(c->kept[i].pk, pk) == 0 &&
		    strcmp(c->kept[i].block, b->id) == 0)
			return;
	if (c->nkept == KEPT_MAX || !(k->block = strdup(b->id)) || !(k->pk = strdup(pk))) {
		if (c->nkept < KEPT_MAX)
			free(k->block);
		sh_log(LOG_WARNING, "capture: block '%s': %s/%s kept for a pending write is not "
		       "read again once it is applied", b->id, m->name, pk);
		return;
	}
	k->model = m;
	c->nkept++;
}

static void free_kept(struct kept *k)
{
	free(k->block);
	free(k->pk);
}

/* The kept records whose pending writes are applied now go into the batch,
 * to be read again from PostgreSQL. */
static void recheck_kept(struct capture *c)
{
	size_t keep = 0;

	for (size_t i = 0; i < c->nkept; i++) {
		struct kept *k = &c->kept[i];
		struct block *b = NULL;
		bool done = true;

		if (blockset_get(c->cfg.blocks, k->block, &b) == SH_OK) {
			done = !store_has_pending(b->store, k->model->name, k->pk);
			block_put(b);
		}
		if (done) {
			struct capture_note note = { .op = 'U', .ts_us = clock_wall_ns() / 1000 };

			snprintf(note.table, sizeof(note.table), "%s", k->model->name);
			snprintf(note.pk, sizeof(note.pk), "%s", k->pk);
			if (capture_batch_add(&c->batch, c->cfg.cat, &note) != SH_OK)
				sh_log(LOG_WARNING, "capture: %s/%s: not read again", note.table,
				       note.pk);
			free_kept(k);
		} else {
			c->kept[keep++] = *k;
		}
	}
	c->nkept = keep;
}

static void count_result(struct capture *c, struct block *b, const struct capture_set *s,
			 const char *pk, const char *doc, enum store_remote_result res)
{
	if (res == STORE_REMOTE_KEPT) {
		atomic_fetch_add(&c->stats.kept, 1);
		remember_kept(c, b, s->model, pk);
		return;
	}
	if (res != STORE_REMOTE_CHANGED)
		return;
	atomic_fetch_add(&c->stats.applied, 1);
	if (c->cfg.on_change)
		c->cfg.on_change(c->cfg.ctx, b->id, s->model->name, pk, doc == NULL);
}

/* The keys of s that b holds take what PostgreSQL holds now. */
static void apply_held(struct capture *c, struct block *b, const struct capture_set *s,
		       const struct reread *r)
{
	for (size_t i = 0; i < s->n; i++) {
		const char *doc = reread_doc(r, s->pks[i]);
		enum store_remote_result res;

		if (store_remote(b->store, s->model->name, s->pks[i], doc, false, &res) == SH_OK)
			count_result(c, b, s, s->pks[i], doc, res);
	}
}

struct add_ctx {
	struct capture *c;
	struct block *b;
	const struct capture_set *s;
};

static enum sh_err add_row(void *ctx, const char *pk, const char *doc)
{
	struct add_ctx *a = ctx;
	enum store_remote_result res;

	if (store_remote(a->b->store, a->s->model->name, pk, doc, true, &res) == SH_OK)
		count_result(a->c, a->b, a->s, pk, doc, res);
	return SH_OK;
}

/* Rows of r that step's condition takes for b (its parameters in values)
 * are added: the step's own query, kept to those keys. */
static enum sh_err add_matching(struct capture *c, struct block *b, const struct load_step *st,
				char **values, const struct capture_set *s, const struct reread *r)
{
	const struct model *m = s->model;
	char *inner = pg_loader_sql(c->pg, c->cfg.cat, m, st->where, false), err[512] = "";
	char **arrays = key_arrays(s, (const char *const *)r->pks, r->n);
	const char *params[LOADER_CAPTURES_MAX + MODEL_KEY_MAX];
	struct add_ctx a = { c, b, s };
	struct sbuf q = { 0 };
	char buf[32];
	enum sh_err rv = SH_ENOMEM;

	if (inner && arrays) {
		/* wrapped: the condition may end in ORDER BY ... LIMIT */
		sb_add(&q, "SELECT * FROM (");
		sb_add(&q, inner);
		sb_add(&q, ") AS q(");
		for (size_t k = 0; k < m->nkey; k++) {
			snprintf(buf, sizeof(buf), "k%zu, ", k);
			sb_add(&q, buf);
		}
		sb_add(&q, "doc) WHERE (");
		for (size_t k = 0; k < m->nkey; k++) {
			snprintf(buf, sizeof(buf), "%sq.k%zu", k ? ", " : "", k);
			sb_add(&q, buf);
		}
		sb_add(&q, ") IN ");
		sql_unnest(&q, m, st->nparams + 1, false);
		for (int i = 0; i < st->nparams; i++)
			params[i] = values[st->capture[i]];
		for (size_t k = 0; k < m->nkey; k++)
			params[st->nparams + (int)k] = arrays[k];
		rv = q.failed ? SH_ENOMEM
			      : pg_stream_rows(c->pg, q.p, st->nparams + (int)m->nkey, params,
					       add_row, &a, err, sizeof(err));
		if (rv)
			sh_log(LOG_WARNING, "capture: block '%s': new rows of \"%s\": %s", b->id,
			       m->name, err[0] ? err : sh_strerror(rv));
	}
	free(q.p);
	free(inner);
	free_arrays(arrays, m->nkey);
	return rv;
}

/* New rows (inserted, or updated into the rule) that b's loader rule takes. */
static enum sh_err add_new(struct capture *c, struct block *b, const struct capture_set *s,
			   const struct reread *r)
{
	char *values[LOADER_CAPTURES_MAX];
	const struct load_rule *rule;
	enum sh_err rv = SH_OK;

	if (!s->inserted || r->n == 0 || !c->cfg.loaders)
		return SH_OK;
	if (!(rule = loaders_match(c->cfg.loaders, b->id, values)))
		return SH_OK;
	for (size_t i = 0; i < rule->nsteps && !rv; i++)
		if (rule->steps[i].model == s->model)
			rv = add_matching(c, b, &rule->steps[i], values, s, r);
	loader_values_free(values);
	return rv;
}

/* A block not open now is not opened: its next use reloads it. */
static void expire_parked(struct capture *c, struct block *b)
{
	bool expired = false;

	pthread_mutex_lock(&b->state_lock);
	if (b->state == BLOCK_READY) {
		b->state = BLOCK_EXPIRED;
		expired = true;
	}
	pthread_mutex_unlock(&b->state_lock);
	if (expired && c->cfg.on_change)
		c->cfg.on_change(c->cfg.ctx, b->id, NULL, NULL, true);
}

static bool block_live(struct block *b)
{
	return !atomic_load(&b->removed) && !atomic_load(&b->retiring);
}

static bool batch_whole(const struct capture_batch *batch)
{
	for (size_t i = 0; i < batch->n; i++)
		if (batch->sets[i].whole)
			return true;
	return false;
}

static enum block_state state_of(struct block *b)
{
	enum block_state st;

	pthread_mutex_lock(&b->state_lock);
	st = b->state;
	pthread_mutex_unlock(&b->state_lock);
	return st;
}

/* A loading block holds its file's write lock for the whole load: writing
 * into it would stall this thread; it reloads once ready instead. */
static void remember_loading(struct capture *c, struct block *b)
{
	for (size_t i = 0; i < c->nloading; i++)
		if (strcmp(c->loading[i], b->id) == 0)
			return;
	if (c->nloading < LOADING_MAX && (c->loading[c->nloading] = strdup(b->id)) != NULL)
		c->nloading++;
	else	/* too many at once: it serves what its load read, until TTL or invalidate */
		sh_log(LOG_WARNING, "capture: block '%s' was loading during a change: not "
		       "revalidated", b->id);
}

/* Reload the remembered blocks that are ready now. */
static void reload_loaded(struct capture *c)
{
	size_t keep = 0;

	for (size_t i = 0; i < c->nloading; i++) {
		struct block *b = NULL;
		bool done = true;

		if (blockset_get(c->cfg.blocks, c->loading[i], &b) == SH_OK) {
			done = state_of(b) != BLOCK_LOADING;
			if (done)
				life_reload(c->cfg.life, b);
			block_put(b);
		}
		if (done)
			free(c->loading[i]);
		else
			c->loading[keep++] = c->loading[i];
	}
	c->nloading = keep;
}

static enum sh_err apply_block(struct capture *c, struct block *b, struct reread *rr,
			       const bool *wanted)
{
	enum sh_err rv = SH_OK;

	if (state_of(b) == BLOCK_LOADING) {
		remember_loading(c, b);
		return SH_OK;
	}
	if (store_is_parked(b->store)) {
		expire_parked(c, b);
		return SH_OK;
	}
	if (batch_whole(&c->batch)) {
		life_reload(c->cfg.life, b);	/* a truncate, or more keys than a batch holds */
		return SH_OK;
	}
	for (size_t i = 0; i < c->batch.n && !rv; i++) {
		if (!wanted[i])
			continue;	/* not read again: no open block had a use for it */
		apply_held(c, b, &c->batch.sets[i], &rr[i]);
		rv = add_new(c, b, &c->batch.sets[i], &rr[i]);
	}
	return rv;
}

/* Does b's loader rule take rows of model m? */
static bool takes_model(struct capture *c, struct block *b, const struct model *m)
{
	char *values[LOADER_CAPTURES_MAX];
	const struct load_rule *rule;
	bool takes = false;

	if (!c->cfg.loaders || !(rule = loaders_match(c->cfg.loaders, b->id, values)))
		return false;
	for (size_t i = 0; i < rule->nsteps && !takes; i++)
		takes = rule->steps[i].model == m;
	loader_values_free(values);
	return takes;
}

/* Is set s worth reading again from PostgreSQL: does an open block hold one
 * of its keys, or take new rows of its model by its loader rule? A parked
 * block is only marked for a reload and a loading one reloads once loaded,
 * so neither needs the rows. Most changes of a busy application touch rows
 * no node holds: each listening node would read each of them again. */
static bool set_wanted(struct capture *c, struct block **blocks, size_t n,
		       const struct capture_set *s)
{
	for (size_t i = 0; i < n; i++) {
		struct block *b = blocks[i];

		if (!block_live(b) || store_is_parked(b->store) || state_of(b) == BLOCK_LOADING)
			continue;
		if (s->inserted && takes_model(c, b, s->model))
			return true;
		for (size_t k = 0; k < s->n; k++) {
			char *doc = NULL;
			enum sh_err rv = store_get(b->store, s->model->name, s->pks[k], &doc, NULL);

			free(doc);
			if (rv != SH_ENOENT)
				return true;	/* held, or cannot tell: read it */
		}
	}
	return false;
}

static enum sh_err apply_batch(struct capture *c)
{
	struct reread *rr = calloc(c->batch.n ? c->batch.n : 1, sizeof(*rr));
	bool *wanted = calloc(c->batch.n ? c->batch.n : 1, sizeof(*wanted));
	struct block **blocks = NULL;
	enum sh_err rv = rr && wanted ? SH_OK : SH_ENOMEM;
	size_t n = 0;

	if (!rv)
		rv = blockset_snapshot(c->cfg.blocks, &blocks, &n);
	for (size_t i = 0; i < c->batch.n && !rv; i++) {
		wanted[i] = !c->batch.sets[i].whole && set_wanted(c, blocks, n, &c->batch.sets[i]);
		if (wanted[i])
			rv = reread_set(c, &c->batch.sets[i], &rr[i]);
	}
	for (size_t i = 0; i < n; i++) {
		if (!rv && block_live(blocks[i]))
			rv = apply_block(c, blocks[i], rr, wanted);
		block_put(blocks[i]);
	}
	free(blocks);
	free(wanted);
	for (size_t i = 0; rr && i < c->batch.n; i++)
		reread_free(&rr[i]);
	free(rr);
	if (!rv && c->batch.notes)
		atomic_store(&c->stats.lag_us, clock_wall_ns() / 1000 - c->batch.oldest_ts_us);
	return rv;
}

/* After a (re)connect: what the node holds may have missed notifications.
 * Open blocks reload now (synced records dropped and loaded again in one
 * transaction; pending writes kept), parked ones on their next use. */
static void revalidate_all(struct capture *c)
{
	struct block **blocks;
	size_t n;

	if (blockset_snapshot(c->cfg.blocks, &blocks, &n))
		return;
	for (size_t i = 0; i < n; i++) {
		if (block_live(blocks[i]) && !atomic_load(&c->stopping)) {
			if (store_is_parked(blocks[i]->store))
				expire_parked(c, blocks[i]);
			else
				life_reload(c->cfg.life, blocks[i]);
		}
		block_put(blocks[i]);
	}
	free(blocks);
	sh_log(LOG_INFO, "capture: listening; %zu blocks revalidated", n);
}

static void disconnect(struct capture *c)
{
	pg_close(c->pg);
	c->pg = NULL;
	atomic_store(&c->stats.connected, 0);
	capture_batch_clear(&c->batch);
}

/* Sleep ms in slices, so that a stop is prompt. */
static void nap(struct capture *c, uint64_t ms)
{
	while (ms > 0 && !atomic_load(&c->stopping)) {
		uint64_t slice = ms < NAP_MS ? ms : NAP_MS;
		struct timespec ts = { .tv_sec = 0, .tv_nsec = (long)slice * 1000000 };

		nanosleep(&ts, NULL);
		ms -= slice;
	}
}

/* The poll's snapshot, as the last row of its result. */
#define SNAPSHOT_ROW \
	"SELECT 's', pg_snapshot_xmax(snap)::text || ' ' ||" \
	" COALESCE((SELECT array_agg(x ORDER BY x)::text FROM pg_snapshot_xip(snap) x), '{}')" \
	" FROM s"

static const char start_sql[] =
	"WITH s AS MATERIALIZED (SELECT pg_current_snapshot() AS snap) "
	"SELECT 'i', COALESCE(max(id), 0)::text FROM " CHANGES " UNION ALL " SNAPSHOT_ROW;

static const char poll_sql[] =
	"WITH s AS MATERIALIZED (SELECT pg_current_snapshot() AS snap) "
	"SELECT id::text, p FROM " CHANGES
	" WHERE id > $1::bigint OR xid = ANY($2::xid8[]) OR xid >= $3::xid8 UNION ALL "
	SNAPSHOT_ROW;

static const char prune_sql[] =
	"WITH d AS (DELETE FROM " CHANGES " WHERE id <= $1::bigint"
	" AND NOT (xid = ANY($2::xid8[]) OR xid >= $3::xid8) RETURNING 1) SELECT count(*) FROM d";

/* "xmax {xip}" of a snapshot row into the cursor. */
static enum sh_err take_snapshot(struct cursor *cur, const char *v)
{
	const char *sp = strchr(v, ' ');

	if (!sp || (size_t)(sp - v) >= sizeof(cur->xmax) || strlen(sp + 1) >= sizeof(cur->xip))
		return SH_EINVAL;	/* thousands of transactions in progress: start again */
	memcpy(cur->xmax, v, (size_t)(sp - v));
	cur->xmax[sp - v] = '\0';
	snprintf(cur->xip, sizeof(cur->xip), "%s", sp + 1);
	return SH_OK;
}

/* A row of a poll: a change, or the snapshot (last). */
static enum sh_err take_change(void *ctx, const char *id, const char *payload)
{
	struct capture *c = ctx;
	struct capture_note note;

	if (strcmp(id, "s") == 0)
		return take_snapshot(&c->cur, payload);
	if (strcmp(id, "i") == 0) {	/* start_sql: the last id there is */
		snprintf(c->cur.last_id, sizeof(c->cur.last_id), "%s", payload);
		return SH_OK;
	}
	if (strtoll(id, NULL, 10) > strtoll(c->cur.last_id, NULL, 10))
		snprintf(c->cur.last_id, sizeof(c->cur.last_id), "%s", id);
	atomic_fetch_add(&c->stats.notifications, 1);
	if (capture_parse(payload, &note) != SH_OK)
		sh_log(LOG_WARNING, "capture: a change that is not one: \"%.80s\"", payload);
	else if (capture_batch_add(&c->batch, c->cfg.cat, &note) == SH_ENOMEM)
		return SH_ENOMEM;
	return SH_OK;
}

static enum sh_err run_cursor(struct capture *c, const char *sql, int nparams)
{
	const char *vals[3] = { c->cur.last_id, c->cur.xip, c->cur.xmax };
	char err[512] = "";
	enum sh_err rv = pg_stream_rows(c->pg, sql, nparams, vals, take_change, c, err,
					sizeof(err));

	if (rv)
		sh_log(LOG_WARNING, "capture: reading the changes: %s",
		       err[0] ? err : sh_strerror(rv));
	return rv;
}

/* Every PRUNE_EVERY_MS: the rows this node read a period ago go (other
 * nodes read them within a poll; a node that was away reloads anyway). */
static void prune_now_and_then(struct capture *c)
{
	const char *vals[3] = { c->cur.prune_id, c->cur.xip, c->cur.xmax };
	int64_t deleted = 0;
	char err[512] = "";

	if (clock_wall_ns() / 1000000 < c->cur.next_prune_ms)
		return;
	c->cur.next_prune_ms = clock_wall_ns() / 1000000 + PRUNE_EVERY_MS;
	if (c->cur.prune_id[0] &&
	    pg_count(c->pg, prune_sql, 3, vals, &deleted, err, sizeof(err)) != SH_OK)
		sh_log(LOG_WARNING, "capture: pruning the changes table: %s", err);
	snprintf(c->cur.prune_id, sizeof(c->cur.prune_id), "%s", c->cur.last_id);
}

/* Connect, check the triggers, start the cursor, then revalidate. */
static enum sh_err connect_listen(struct capture *c)
{
	char err[512] = "";
	bool installed = false;
	enum sh_err rv = pg_connect(c->cfg.pg_conninfo, &c->pg, err, sizeof(err));

	if (!rv)
		rv = pg_set_limits(c->pg, &listen_limits, &c->stopping);
	if (!rv)
		rv = capture_installed(c->pg, &installed);
	if (!rv && !installed && !c->cfg.require) {
		if (!c->said_not_installed)
			sh_log(LOG_INFO, "capture: not installed in the database (sharded capture "
			       "install): changes made there are not seen until reload");
		c->said_not_installed = true;
		atomic_store(&c->stats.installed, 0);
		disconnect(c);
		return SH_ENOENT;
	}
	atomic_store(&c->stats.installed, installed);
	if (!rv)	/* named, so that an operator (and the test) can find it */
		rv = run_script(c->pg, "SET application_name = 'sharded-capture'", err, sizeof(err));
	memset(&c->cur, 0, sizeof(c->cur));
	c->cur.next_prune_ms = clock_wall_ns() / 1000000 + PRUNE_EVERY_MS;
	if (!rv && (rv = run_cursor(c, start_sql, 0)) != SH_OK)
		snprintf(err, sizeof(err), "the changes table cannot be read");
	if (rv) {
		if (!c->said_down)	/* once per outage: the sync reports the server too */
			sh_log(LOG_WARNING, "capture: cannot listen: %s",
			       err[0] ? err : sh_strerror(rv));
		c->said_down = true;
		disconnect(c);
		return rv;
	}
	c->said_down = false;
	c->said_not_installed = false;
	revalidate_all(c);
	atomic_store(&c->stats.connected, 1);	/* trusted from now on */
	return SH_OK;
}

/* Poll the changes and apply them; false when the connection is lost. */
static bool poll_once(struct capture *c)
{
	int64_t start_ms = clock_wall_ns() / 1000000, took_ms;
	bool worked;

	if (run_cursor(c, poll_sql, 3) != SH_OK)
		return false;	/* reconnect: a new cursor, and a revalidation */
	if (c->nloading)
		reload_loaded(c);
	if (c->nkept)
		recheck_kept(c);
	worked = c->batch.notes > 0;
	if (worked) {
		if (apply_batch(c) != SH_OK)
			return false;	/* the session was cut: reconnect, and revalidate */
		capture_batch_clear(&c->batch);
	}
	/* Other nodes prune the rows they read PRUNE_EVERY_MS ago: after a pass
	 * of half that, rows this node has not read may be gone. Start again. */
	took_ms = clock_wall_ns() / 1000000 - start_ms;
	if (took_ms > PRUNE_EVERY_MS / 2) {
		sh_log(LOG_WARNING, "capture: a pass took %" PRId64 " ms: changes may have been "
		       "pruned meanwhile; revalidating", took_ms);
		return false;
	}
	prune_now_and_then(c);
	if (!worked)
		nap(c, POLL_MS);
	return true;
}

static void *capture_main(void *arg)
{
	struct capture *c = arg;

	while (!atomic_load(&c->stopping)) {
		enum sh_err rv;

		if (c->pg) {
			if (!poll_once(c))
				disconnect(c);
			continue;
		}
		rv = connect_listen(c);
		if (rv == SH_ENOENT)
			nap(c, NOT_INSTALLED_RECHECK_MS);
		else if (rv)
			nap(c, backoff_next_ms(&c->bo, ((uint64_t)rand() << 32) ^ (uint64_t)rand()));
		else
			backoff_reset(&c->bo);
	}
	disconnect(c);
	while (c->nloading)
		free(c->loading[--c->nloading]);
	while (c->nkept)
		free_kept(&c->kept[--c->nkept]);
	return NULL;
}

enum sh_err capture_start(const struct capture_config *cfg, struct capture **out)
{
	struct capture *c = calloc(1, sizeof(*c));
	int rc;

	*out = NULL;
	if (!c)
		return SH_ENOMEM;
	c->cfg = *cfg;
	backoff_init(&c->bo, BACKOFF_BASE_MS, BACKOFF_CAP_MS, BACKOFF_FULL);
	rc = thread_start(&c->thread, "sharded-capture", capture_main, c);
	if (rc) {
		free(c);
		return SH_ENOMEM;
	}
	*out = c;
	return SH_OK;
}

void capture_stop(struct capture *c)
{
	if (!c)
		return;
	atomic_store(&c->stopping, true);
	pthread_join(c->thread, NULL);
	free(c);
}

const struct capture_stats *capture_stats(const struct capture *c)
{
	static const struct capture_stats none;

	return c ? &c->stats : &none;
}
