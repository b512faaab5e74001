/* pg_apply_check.c - core/pg.c against a real PostgreSQL.
 *
 * Usage: pg_apply_check CONNINFO   (run by tests/integration/test_pg_apply.sh)
 *
 * Creates its own schema "sharded check" with names that need quoting, then
 * checks the catalog, read-through and batched apply: statement counts,
 * replay, isolation of refused records, partial documents, deletes, server
 * defaults in RETURNING and a connection killed mid-way. One line per check;
 * exits non-zero if any failed.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "log.h"
#include "pg.h"

#define SCHEMA "sharded check"

static int failures;
static PGconn *admin;	/* a second connection for set-up and for looking */

static void check(const char *name, int ok, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void check(const char *name, int ok, const char *fmt, ...)
{
	va_list ap;

	if (ok) {
		printf("ok - %s\n", name);
		return;
	}
	failures++;
	printf("FAIL - %s: ", name);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
}

static void sql(const char *q)
{
	PGresult *res = PQexec(admin, q);

	if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK) {
		fprintf(stderr, "set-up failed: %s: %s", q, PQerrorMessage(admin));
		exit(2);
	}
	PQclear(res);
}

/* The first value of a query, as a static string ("" for NULL or no row). */
static const char *val(const char *q)
{
	static char out[4096];
	PGresult *res = PQexec(admin, q);

	out[0] = '\0';
	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) > 0)
		snprintf(out, sizeof(out), "%s", PQgetvalue(res, 0, 0));
	else if (PQresultStatus(res) != PGRES_TUPLES_OK)
		snprintf(out, sizeof(out), "error: %s", PQerrorMessage(admin));
	PQclear(res);
	return out;
}

static void setup_schema(void)
{
	sql("SET client_min_messages = warning");
	sql("DROP SCHEMA IF EXISTS \"" SCHEMA "\" CASCADE");
	sql("CREATE SCHEMA \"" SCHEMA "\"");
	sql("CREATE TABLE \"" SCHEMA "\".\"Weird Table\" (id bigint PRIMARY KEY, \"select\" text,"
	    " note text DEFAULT 'dflt', created timestamptz NOT NULL DEFAULT now(), n int)");
	sql("CREATE TABLE \"" SCHEMA "\".\"Child Row\" (id text PRIMARY KEY,"
	    " \"parent id\" bigint REFERENCES \"" SCHEMA "\".\"Weird Table\"(id), v int CHECK (v >= 0))");
	sql("CREATE TABLE \"" SCHEMA "\".\"Key\"\"Quote\" (k uuid PRIMARY KEY, extra int DEFAULT 7,"
	    " tags text[])");
	sql("CREATE TABLE \"" SCHEMA "\".sharded_internal (id int PRIMARY KEY)");
	sql("CREATE TABLE \"" SCHEMA "\".nopk (x int)");
	/* key order (b, a) is not column order; g is generated */
	sql("CREATE TABLE \"" SCHEMA "\".twokeys (a int, b int, c text,"
	    " g text GENERATED ALWAYS AS (c || '!') STORED, PRIMARY KEY (b, a))");
	sql("INSERT INTO \"" SCHEMA "\".\"Weird Table\" (id, \"select\") VALUES (-1, 'pre')");
}

/* ---- ops ---- */

static struct op *ops_new(size_t n)
{
	struct op *ops = calloc(n, sizeof(*ops));

	if (!ops)
		exit(2);
	return ops;
}

static void op_set(struct op *op, int64_t seq, char kind, const char *model, const char *pk,
		   const char *doc)
{
	op->seq = seq;
	op->kind = kind;
	op->model = strdup(model);
	op->pk = strdup(pk);
	op->doc = doc ? strdup(doc) : NULL;
}

static void op_setf(struct op *op, int64_t seq, const char *model, const char *pk, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
static void op_setf(struct op *op, int64_t seq, const char *model, const char *pk, const char *fmt, ...)
{
	char doc[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(doc, sizeof(doc), fmt, ap);
	va_end(ap);
	op_set(op, seq, 'U', model, pk, doc);
}

static size_t count_flag(const struct op *ops, size_t n, size_t offset)
{
	size_t c = 0;

	for (size_t i = 0; i < n; i++)
		c += *(const bool *)((const char *)&ops[i] + offset);
	return c;
}

#define COUNT(ops, n, field) count_flag(ops, n, offsetof(struct op, field))

/* ---- checks ---- */

static void check_connect(const char *conninfo)
{
	char err[512], bad[1024];
	struct pg *pg = NULL;
	enum sh_err rc;

	rc = pg_connect("host=127.0.0.1 port=1 password=sekrit1 connect_timeout=3", &pg, err, sizeof(err));
	check("connect to a closed port is unavailable", rc == SH_EUNAVAIL && !pg, "rc %d", rc);
	check("connect error is one line without password",
	      !strstr(err, "sekrit1") && !strchr(err, '\n') && err[0], "err '%s'", err);
	rc = pg_connect("host=127.0.0.1 password=sekrit2 bogus", &pg, err, sizeof(err));
	check("malformed conninfo is invalid", rc == SH_EINVAL, "rc %d", rc);
	check("malformed conninfo error hides password", !strstr(err, "sekrit2"), "err '%s'", err);
	snprintf(bad, sizeof(bad), "%s user=nosuchuser", conninfo);
	rc = pg_connect(bad, &pg, err, sizeof(err));
	check("unknown user is refused", rc != SH_OK, "rc %d", rc);
	pg_close(NULL);
}

static void check_catalog(struct pg *pg)
{
	struct catalog *cat = NULL;
	const struct model *w, *c;
	char err[512];
	enum sh_err rc;

	rc = pg_load_catalog(pg, SCHEMA, NULL, &cat, err, sizeof(err));
	check("load catalog", rc == SH_OK && cat, "rc %d %s", rc, err);
	if (!cat)
		return;
	check("catalog has exactly the four keyed tables", cat->nmodels == 4,
	      "nmodels %zu", cat->nmodels);
	w = catalog_find(cat, "Weird Table");
	c = catalog_find(cat, "Child Row");
	check("catalog skips sharded_* and keyless tables, keeps two-key ones",
	      !catalog_find(cat, "sharded_internal") && !catalog_find(cat, "nopk") &&
	      catalog_find(cat, "twokeys") && catalog_find(cat, "twokeys")->nkey == 2 && w && c &&
	      catalog_find(cat, "Key\"Quote"), "missing or extra");
	check("keyless table named as skipped", cat->nskipped == 1 &&
	      !strcmp(cat->skipped[0].name, "nopk") &&
	      !strcmp(cat->skipped[0].reason, "no primary key"), "nskipped %zu", cat->nskipped);
	if (w) {
		check("columns in order with pk", w->ncols == 5 && w->nkey == 1 && w->key[0] == 0 &&
		      !strcmp(w->cols[1].name, "select") && !strcmp(w->cols[0].type, "bigint") &&
		      w->cols[0].kind == COL_INT, "ncols %zu key %zu", w->ncols, w->key[0]);
		check("not null and defaults", w->cols[0].not_null && w->cols[3].not_null &&
		      w->cols[3].has_default && w->cols[2].has_default && !w->cols[1].has_default &&
		      !w->cols[4].not_null, "flags wrong");
	}
	if (c)
		check("text pk and quoted column", c->nkey == 1 && c->key[0] == 0 && c->cols[0].kind == COL_TEXT &&
		      !strcmp(c->cols[1].name, "parent id"), "key %zu", c->key[0]);
	w = catalog_find(cat, "Key\"Quote");
	if (w)
		check("uuid and array kinds", w->cols[0].kind == COL_UUID && w->cols[2].kind == COL_ARRAY &&
		      !strcmp(w->cols[2].type, "text[]"), "kinds %d %d", w->cols[0].kind, w->cols[2].kind);
	catalog_free(cat);

	rc = pg_load_catalog(pg, SCHEMA, " Weird Table ,Child Row", &cat, err, sizeof(err));
	check("catalog limited by models", rc == SH_OK && cat->nmodels == 2, "rc %d", rc);
	catalog_free(cat);
	rc = pg_load_catalog(pg, SCHEMA, "Weird Table,nopk", &cat, err, sizeof(err));
	check("unknown model is invalid", rc == SH_EINVAL && !cat && strstr(err, "\"nopk\""),
	      "rc %d err '%s'", rc, err);
}

static void check_fetch(struct pg *pg, const struct catalog *cat)
{
	const struct model *w = catalog_find(cat, "Weird Table");
	const struct model *k = catalog_find(cat, "Key\"Quote");
	char *doc = NULL;
	enum sh_err rc;

	rc = pg_fetch_row(pg, cat, w, "-1", &doc);
	check("fetch hit", rc == SH_OK && doc && strstr(doc, "\"select\":\"pre\"") &&
	      strstr(doc, "\"note\":\"dflt\""), "rc %d doc %s", rc, doc ? doc : "(null)");
	free(doc);
	rc = pg_fetch_row(pg, cat, w, "424242", &doc);
	check("fetch miss", rc == SH_ENOENT && !doc, "rc %d", rc);
	rc = pg_fetch_row(pg, cat, w, "abc", &doc);
	check("fetch invalid key text", rc == SH_ENOENT && !doc, "rc %d", rc);
	rc = pg_fetch_row(pg, cat, w, "99999999999999999999999", &doc);
	check("fetch out-of-range key", rc == SH_ENOENT && !doc, "rc %d", rc);
	rc = pg_fetch_row(pg, cat, k, "not-a-uuid", &doc);
	check("fetch invalid uuid", rc == SH_ENOENT && !doc, "rc %d", rc);
	rc = pg_fetch_row(pg, cat, w, "1'; DROP TABLE x; --", &doc);
	check("fetch with quote in key", rc == SH_ENOENT, "rc %d", rc);
}

static void check_bulk(struct pg *pg, const struct catalog *cat)
{
	enum { N = 1000 };
	struct op *ops = ops_new(N);
	char err[512] = "", pk[32];
	int64_t upto = 0;
	uint64_t before;
	enum sh_err rc;
	size_t good = 0;

	for (int i = 0; i < N; i++) {
		snprintf(pk, sizeof(pk), "%d", i + 1);
		op_setf(&ops[i], i + 1, "Weird Table", pk, "{\"id\":%d,\"select\":\"s %d\",\"n\":%d}",
			i + 1, i + 1, i + 1);
	}
	before = pg_statements(pg);
	rc = pg_apply(pg, cat, "bulk", ops, N, &upto, err, sizeof(err));
	check("apply 1000 inserts", rc == SH_OK && upto == N, "rc %d upto %" PRId64 " %s", rc, upto, err);
	check("1000 inserts take few statements", pg_statements(pg) - before <= 10,
	      "%" PRIu64 " statements", pg_statements(pg) - before);
	check("1000 rows in table", !strcmp(val("SELECT count(*) FROM \"" SCHEMA "\".\"Weird Table\" WHERE id > 0"), "1000"),
	      "count %s", val("SELECT count(*) FROM \"" SCHEMA "\".\"Weird Table\" WHERE id > 0"));
	for (int i = 0; i < N; i++) {
		char want[64];

		snprintf(want, sizeof(want), "{\"id\":%d,", i + 1);
		good += ops[i].returned && !strncmp(ops[i].returned, want, strlen(want)) &&
			strstr(ops[i].returned, "\"note\":\"dflt\"") && strstr(ops[i].returned, "\"created\":\"");
	}
	check("RETURNING gives each op its row with server defaults", good == N, "%zu of %d", good, N);
	check("applied seq recorded", !strcmp(val("SELECT seq FROM sharded_applied WHERE block = 'bulk'"), "1000"),
	      "seq %s", val("SELECT seq FROM sharded_applied WHERE block = 'bulk'"));

	sql("UPDATE \"" SCHEMA "\".\"Weird Table\" SET \"select\" = 'changed' WHERE id = 1");
	before = pg_statements(pg);
	rc = pg_apply(pg, cat, "bulk", ops, N, &upto, err, sizeof(err));
	check("replay succeeds", rc == SH_OK && upto == N, "rc %d upto %" PRId64, rc, upto);
	check("replay skips every op", COUNT(ops, N, skipped) == N && !ops[0].returned,
	      "%zu skipped", COUNT(ops, N, skipped));
	check("replay changes nothing",
	      !strcmp(val("SELECT \"select\" FROM \"" SCHEMA "\".\"Weird Table\" WHERE id = 1"), "changed"),
	      "select is %s", val("SELECT \"select\" FROM \"" SCHEMA "\".\"Weird Table\" WHERE id = 1"));
	check("replay takes few statements", pg_statements(pg) - before <= 6,
	      "%" PRIu64 " statements", pg_statements(pg) - before);
	op_free_array(ops, N);
}

static void check_refusals(struct pg *pg, const struct catalog *cat)
{
	enum { N = 40 };
	struct op *ops = ops_new(N);
	char err[512] = "", pk[32];
	int64_t upto = 0;
	enum sh_err rc;

	for (int i = 0; i < N; i++) {
		snprintf(pk, sizeof(pk), "c%d", i);
		op_setf(&ops[i], 100 + i, "Child Row", pk, "{\"id\":\"c%d\",\"parent id\":%d,\"v\":%d}",
			i, i == 17 ? 999999 : i + 1, i == 30 ? -5 : i);
	}
	rc = pg_apply(pg, cat, "refuse", ops, N, &upto, err, sizeof(err));
	check("batch with refused records still applies", rc == SH_OK && upto == 100 + N - 1,
	      "rc %d %s", rc, err);
	check("exactly the two bad ops are dead", COUNT(ops, N, dead) == 2 && ops[17].dead && ops[30].dead,
	      "%zu dead", COUNT(ops, N, dead));
	check("foreign key error text", ops[17].error && strstr(ops[17].error, "violates foreign key constraint") &&
	      strstr(ops[17].error, "999999"), "error '%s'", ops[17].error ? ops[17].error : "(null)");
	check("check constraint error text", ops[30].error && strstr(ops[30].error, "violates check constraint"),
	      "error '%s'", ops[30].error ? ops[30].error : "(null)");
	check("the others are applied", !strcmp(val("SELECT count(*) FROM \"" SCHEMA "\".\"Child Row\""), "38"),
	      "count %s", val("SELECT count(*) FROM \"" SCHEMA "\".\"Child Row\""));
	check("dead ops return nothing, live ones do", !ops[17].returned && ops[16].returned && ops[18].returned,
	      "returned wrong");
	op_free_array(ops, N);
}

static void check_partial_and_delete(struct pg *pg, const struct catalog *cat)
{
	struct op *ops = ops_new(9);
	char err[512] = "";
	int64_t upto = 0;
	enum sh_err rc;

	op_set(&ops[0], 1, 'U', "Weird Table", "5", "{\"id\":5,\"n\":55}");
	op_set(&ops[1], 2, 'U', "Weird Table", "6", "{\"id\":6}");
	op_set(&ops[2], 3, 'D', "Weird Table", "500", NULL);
	op_set(&ops[3], 4, 'D', "Weird Table", "424242", NULL);
	op_set(&ops[4], 5, 'U', "Weird Table", "900", "{\"id\":900,\"select\":\"old\",\"n\":1}");
	op_set(&ops[5], 6, 'D', "Weird Table", "900", NULL);
	op_set(&ops[6], 7, 'U', "Weird Table", "900", "{\"id\":900,\"n\":99}");
	op_set(&ops[7], 8, 'D', "Weird Table", "8", NULL);
	op_set(&ops[8], 9, 'D', "Child Row", "c7", NULL);	/* child of 8: deleted... after it */
	rc = pg_apply(pg, cat, "partial", ops, 9, &upto, err, sizeof(err));
	check("mixed batch applies", rc == SH_OK && upto == 9, "rc %d %s", rc, err);
	check("partial upsert keeps other columns",
	      !strcmp(val("SELECT \"select\" || '/' || n FROM \"" SCHEMA "\".\"Weird Table\" WHERE id = 5"), "s 5/55"),
	      "row %s", val("SELECT \"select\" || '/' || n FROM \"" SCHEMA "\".\"Weird Table\" WHERE id = 5"));
	check("partial upsert returns the whole row", ops[0].returned && strstr(ops[0].returned, "\"select\":\"s 5\""),
	      "returned %s", ops[0].returned ? ops[0].returned : "(null)");
	check("key-only upsert returns the row unchanged", ops[1].returned &&
	      strstr(ops[1].returned, "\"select\":\"s 6\""), "returned %s", ops[1].returned ? ops[1].returned : "(null)");
	check("delete removes the row",
	      !strcmp(val("SELECT count(*) FROM \"" SCHEMA "\".\"Weird Table\" WHERE id = 500"), "0"), "still there");
	check("delete of a missing row is fine", !ops[3].dead, "dead: %s", ops[3].error ? ops[3].error : "");
	check("upsert, delete, upsert: the delete, then exactly the new document",
	      ops[4].superseded && !ops[5].superseded && !ops[6].superseded &&
	      !strcmp(val("SELECT coalesce(\"select\", '(null)') || '/' || n FROM \"" SCHEMA "\".\"Weird Table\" WHERE id = 900"), "(null)/99"),
	      "row %s", val("SELECT coalesce(\"select\", '(null)') || '/' || n FROM \"" SCHEMA "\".\"Weird Table\" WHERE id = 900"));
	/* the parent's delete comes first and is refused while its child exists */
	check("delete of a referenced parent is refused alone", ops[7].dead && !ops[8].dead &&
	      ops[7].error && strstr(ops[7].error, "foreign key"), "dead %d/%d", ops[7].dead, ops[8].dead);
	op_free_array(ops, 9);
}

#define REQ_ROW "SELECT a || '/' || b || '/' || d || '/' || note FROM \"" SCHEMA "\".req WHERE id = 1"

/* Updates carry the key and the columns they set (op.h): each sets only
 * those, over NOT NULL columns and a NOT NULL domain they leave out; two of
 * one record in a batch set the union; one of a missing row is refused
 * for the NOT NULL columns it lacks; a key-only one of a two-column key
 * changes nothing and returns the row. */
static void check_column_updates(struct pg *pg)
{
	struct op *ops = ops_new(5);
	struct catalog *cat = NULL;
	char err[512] = "";
	int64_t upto = 0;
	enum sh_err rc;

	/* NOT NULL columns, a NOT NULL domain */
	sql("CREATE DOMAIN \"" SCHEMA "\".posi AS int NOT NULL CHECK (VALUE > 0)");
	sql("CREATE TABLE \"" SCHEMA "\".req (id bigint PRIMARY KEY, a text NOT NULL,"
	    " b text NOT NULL, d \"" SCHEMA "\".posi, note text)");
	sql("INSERT INTO \"" SCHEMA "\".req VALUES (1, 'a0', 'b0', 5, 'n')");
	sql("INSERT INTO \"" SCHEMA "\".twokeys (a, b, c) VALUES (77, 88, 'x')");
	rc = pg_load_catalog(pg, SCHEMA, "req,twokeys", &cat, err, sizeof(err));
	check("catalog with req", rc == SH_OK, "rc %d %s", rc, err);
	if (rc != SH_OK) {
		op_free_array(ops, 5);
		return;
	}

	op_set(&ops[0], 1, 'U', "req", "1", "{\"id\":1,\"a\":\"a1\"}");
	rc = pg_apply(pg, cat, "columns", ops, 1, &upto, err, sizeof(err));
	check("update of one column applies", rc == SH_OK && !ops[0].dead, "rc %d %s %s", rc, err,
	      ops[0].error ? ops[0].error : "");
	check("update of one column keeps the others", !strcmp(val(REQ_ROW), "a1/b0/5/n"), "row %s",
	      val(REQ_ROW));
	op_free_array(ops, 1);

	ops = ops_new(5);
	op_set(&ops[0], 2, 'U', "req", "1", "{\"id\":1,\"b\":\"b2\"}");
	op_set(&ops[1], 3, 'U', "req", "1", "{\"id\":1,\"note\":\"n3\"}");
	op_set(&ops[2], 4, 'U', "req", "2", "{\"id\":2,\"a\":\"x\"}");
	op_set(&ops[3], 5, 'U', "twokeys", "88,77", "{\"a\":77,\"b\":88}");
	op_set(&ops[4], 6, 'U', "req", "1", "{\"id\":1,\"d\":7}");
	rc = pg_apply(pg, cat, "columns", ops, 5, &upto, err, sizeof(err));
	check("batch of column updates applies", rc == SH_OK && upto == 6, "rc %d %s", rc, err);
	check("collapsed updates set the union of their columns", !strcmp(val(REQ_ROW), "a1/b2/7/n3"),
	      "row %s", val(REQ_ROW));
	check("the collapsed update returns the whole row", ops[4].returned &&
	      strstr(ops[4].returned, "\"a\":\"a1\"") && strstr(ops[4].returned, "\"note\":\"n3\""),
	      "returned %s", ops[4].returned ? ops[4].returned : "(null)");
	check("an update of a missing row lacking NOT NULL columns is refused", ops[2].dead &&
	      ops[2].error && strstr(ops[2].error, "null"), "dead %d %s", ops[2].dead,
	      ops[2].error ? ops[2].error : "");
	check("a key-only update of a two-column key returns the row", !ops[3].dead && ops[3].returned &&
	      strstr(ops[3].returned, "\"c\":\"x\""), "returned %s",
	      ops[3].returned ? ops[3].returned : "(null)");
	op_free_array(ops, 5);
	catalog_free(cat);
}

#define DFLT_ROW "SELECT d || '/' || c || '/' || note FROM \"" SCHEMA "\".dflt WHERE id = 1"

/* An update that leaves out only columns PostgreSQL could propose NULL for
 * needs no current row (needs_current_row in pg.c), but a NOT NULL domain
 * with a default is not one of them: its NULL is refused where the
 * documents alone make the row, though the column has a default. */
static void check_partial_over_domain(struct pg *pg)
{
	struct op *ops = ops_new(1);
	struct catalog *cat = NULL;
	char err[512] = "";
	int64_t upto = 0;
	enum sh_err rc;

	sql("CREATE DOMAIN \"" SCHEMA "\".posd AS int NOT NULL DEFAULT 1");
	sql("CREATE TABLE \"" SCHEMA "\".dflt (id bigint PRIMARY KEY, d \"" SCHEMA "\".posd,"
	    " c text NOT NULL DEFAULT 'c', note text, at timestamptz NOT NULL DEFAULT now())");
	sql("INSERT INTO \"" SCHEMA "\".dflt (id, d, c, note) VALUES (1, 5, 'c0', 'n0')");
	rc = pg_load_catalog(pg, SCHEMA, "dflt", &cat, err, sizeof(err));
	check("catalog with dflt", rc == SH_OK, "rc %d %s", rc, err);
	if (rc != SH_OK) {
		op_free_array(ops, 1);
		return;
	}
	op_set(&ops[0], 1, 'U', "dflt", "1", "{\"id\":1,\"note\":\"n1\"}");
	rc = pg_apply(pg, cat, "dflt", ops, 1, &upto, err, sizeof(err));
	check("an update leaving out a NOT NULL domain with a default applies",
	      rc == SH_OK && !ops[0].dead, "rc %d %s %s", rc, err, ops[0].error ? ops[0].error : "");
	check("and keeps the columns it leaves out", !strcmp(val(DFLT_ROW), "5/c0/n1"), "row %s",
	      val(DFLT_ROW));
	op_free_array(ops, 1);

	ops = ops_new(1);
	op_set(&ops[0], 3, 'U', "dflt", "1", "{\"id\":1,\"d\":6,\"note\":\"n3\"}");
	rc = pg_apply(pg, cat, "dflt", ops, 1, &upto, err, sizeof(err));
	check("an update leaving out only columns with defaults applies", rc == SH_OK &&
	      !ops[0].dead && !strcmp(val(DFLT_ROW), "6/c0/n3"), "rc %d %s row %s", rc, err,
	      val(DFLT_ROW));
	check("and returns the whole row", ops[0].returned &&
	      strstr(ops[0].returned, "\"c\":\"c0\"") && strstr(ops[0].returned, "\"at\":"),
	      "returned %s", ops[0].returned ? ops[0].returned : "(null)");
	op_free_array(ops, 1);
	catalog_free(cat);
}

/* A valid write, then a refused one of the same record, in one batch: the
 * valid one applies, only the refused one is dead. */
static void check_refused_after_valid(struct pg *pg, const struct catalog *cat)
{
	struct op *ops = ops_new(3);
	char err[512] = "";
	int64_t upto = 0;
	enum sh_err rc;

	sql("INSERT INTO \"" SCHEMA "\".\"Child Row\" (id, v) VALUES ('rv', 1)");
	op_set(&ops[0], 1, 'U', "Child Row", "rv", "{\"id\":\"rv\",\"v\":250}");
	op_set(&ops[1], 2, 'U', "Child Row", "rv", "{\"id\":\"rv\",\"v\":-1}");
	op_set(&ops[2], 3, 'U', "Child Row", "other", "{\"id\":\"other\",\"v\":3}");
	rc = pg_apply(pg, cat, "refused-after-valid", ops, 3, &upto, err, sizeof(err));
	check("valid then refused write applies", rc == SH_OK && upto == 3, "rc %d %s", rc, err);
	check("the valid write is in PostgreSQL",
	      !strcmp(val("SELECT v FROM \"" SCHEMA "\".\"Child Row\" WHERE id = 'rv'"), "250"),
	      "v %s", val("SELECT v FROM \"" SCHEMA "\".\"Child Row\" WHERE id = 'rv'"));
	check("only the refused write is dead", !ops[0].dead && !ops[0].superseded && ops[0].returned &&
	      ops[1].dead && !ops[2].dead, "dead %d/%d/%d", ops[0].dead, ops[1].dead, ops[2].dead);
	op_free_array(ops, 3);
}

/* A big drain: 8 records written 625 times each, round robin, the last write
 * of one refused. Collapsing keeps it to a few statements; the refusal costs
 * the bisection of its group and two tries (the write before it, then it
 * again), not one per write of that record. */
static void check_drain_with_refusal(struct pg *pg, const struct catalog *cat)
{
	enum { N = 5000, RECS = 8 };
	struct op *ops = ops_new(N);
	char err[512] = "", pk[32];
	int64_t upto = 0;
	uint64_t before, clean, refused;
	enum sh_err rc;

	for (int i = 0; i < N; i++) {
		snprintf(pk, sizeof(pk), "d%d", i % RECS);
		op_setf(&ops[i], i + 1, "Child Row", pk, "{\"id\":\"d%d\",\"v\":%d}", i % RECS, i);
	}
	before = pg_statements(pg);
	rc = pg_apply(pg, cat, "drain-clean", ops, N, &upto, err, sizeof(err));
	clean = pg_statements(pg) - before;
	check("a drain of 5000 writes to 8 records applies", rc == SH_OK && upto == N, "rc %d %s", rc, err);
	op_free_array(ops, N);

	ops = ops_new(N);
	for (int i = 0; i < N; i++) {
		snprintf(pk, sizeof(pk), "d%d", i % RECS);
		op_setf(&ops[i], i + 1, "Child Row", pk, "{\"id\":\"d%d\",\"v\":%d}", i % RECS,
			i == N - 1 ? -1 : N + i);
	}
	before = pg_statements(pg);
	rc = pg_apply(pg, cat, "drain-refused", ops, N, &upto, err, sizeof(err));
	refused = pg_statements(pg) - before;
	printf("# statements for a drain of 5000 writes to 8 records: %" PRIu64 " clean, %" PRIu64
	       " with the last write refused\n", clean, refused);
	check("the drain with a refusal applies", rc == SH_OK && upto == N && ops[N - 1].dead &&
	      COUNT(ops, N, dead) == 1, "rc %d %s, %zu dead", rc, err, COUNT(ops, N, dead));
	check("the refused record keeps its last valid write",
	      !strcmp(val("SELECT v FROM \"" SCHEMA "\".\"Child Row\" WHERE id = 'd7'"), "9991"),
	      "v %s", val("SELECT v FROM \"" SCHEMA "\".\"Child Row\" WHERE id = 'd7'"));
	check("a drain takes few statements, and a refusal few more", clean <= 10 && refused <= clean + 40,
	      "%" PRIu64 " clean, %" PRIu64 " with a refusal", clean, refused);
	op_free_array(ops, N);
}

static void check_fk_order_and_uuid(struct pg *pg, const struct catalog *cat)
{
	struct op *ops = ops_new(5);
	char err[512] = "";
	int64_t upto = 0;
	enum sh_err rc;

	op_set(&ops[0], 1, 'U', "Weird Table", "5000", "{\"id\":5000,\"select\":\"parent\"}");
	op_set(&ops[1], 2, 'U', "Child Row", "kid", "{\"id\":\"kid\",\"parent id\":5000,\"v\":1}");
	op_set(&ops[2], 3, 'U', "Weird Table", "5000", "{\"id\":5000,\"select\":\"parent 2\"}");
	op_set(&ops[3], 4, 'U', "Key\"Quote", "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11",
	       "{\"k\":\"A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11\",\"tags\":[\"a\",\"b\"]}");
	op_set(&ops[4], 5, 'U', "Weird Table", "abc", "{\"id\":\"abc\"}");
	rc = pg_apply(pg, cat, "order", ops, 5, &upto, err, sizeof(err));
	check("parent and child in one batch", rc == SH_OK && !ops[1].dead && !ops[2].dead,
	      "rc %d %s / %s", rc, err, ops[1].error ? ops[1].error : "");
	check("parent keeps its first place with its last value",
	      !strcmp(val("SELECT \"select\" FROM \"" SCHEMA "\".\"Weird Table\" WHERE id = 5000"), "parent 2"),
	      "select %s", val("SELECT \"select\" FROM \"" SCHEMA "\".\"Weird Table\" WHERE id = 5000"));
	check("uuid key matched to its row whatever the case", ops[3].returned &&
	      strstr(ops[3].returned, "\"extra\":7") && strstr(ops[3].returned, "a0eebc99"),
	      "returned %s", ops[3].returned ? ops[3].returned : "(null)");
	check("a key of the wrong type is refused", ops[4].dead && ops[4].error &&
	      strstr(ops[4].error, "invalid input syntax"), "error %s", ops[4].error ? ops[4].error : "(null)");
	op_free_array(ops, 5);
}

/* Terminate pg's backend from the admin connection, as a server restart would. */
static void kill_backend(void)
{
	const char *done = val("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
			       "WHERE application_name = 'sharded' AND datname = current_database()");

	check("terminated our backend", !strcmp(done, "1"), "terminated %s", done);
}

/* Composite keys in one batch: each returned row goes to its own op (matched
 * on every key column), a generated column in the document is not written,
 * deletes match on the whole key, a name that is not a key is refused alone. */
static void check_composite(struct pg *pg, const struct catalog *cat)
{
	enum { N = 50 };
	struct op *ops = ops_new(N + 4);
	char err[512] = "", pk[32], want[96];
	const struct model *m = catalog_find(cat, "twokeys");
	int64_t upto = 0;
	enum sh_err rc;
	size_t good = 0;

	check("twokeys' key is (b, a)", m && m->nkey == 2 && !strcmp(model_key_col(m, 0)->name, "b") &&
	      !strcmp(model_key_col(m, 1)->name, "a") && m->cols[3].generated && !m->cols[2].generated,
	      "model %p", (const void *)m);
	for (int i = 0; i < N; i++) {	/* (b, a) = (i % 5, i / 5): 50 distinct keys */
		snprintf(pk, sizeof(pk), "%d,%d", i % 5, i / 5);
		op_setf(&ops[i], 2000 + i, "twokeys", pk, "{\"b\":%d,\"a\":%d,\"c\":\"v%d\",\"g\":\"stale\"}",
			i % 5, i / 5, i);
	}
	op_set(&ops[N], 2000 + N, 'U', "twokeys", "9,9", "{\"b\":9,\"a\":9}");	/* key alone, new */
	op_set(&ops[N + 1], 2001 + N, 'D', "twokeys", "2,0", NULL);	/* i = 2 */
	op_set(&ops[N + 2], 2002 + N, 'D', "twokeys", "0,2", NULL);	/* i = 10 */
	op_set(&ops[N + 3], 2003 + N, 'D', "twokeys", "7", NULL);	/* not a key of twokeys */
	rc = pg_apply(pg, cat, "composite", ops, N + 4, &upto, err, sizeof(err));
	check("composite batch applies", rc == SH_OK && upto == 2003 + N, "rc %d %s", rc, err);
	for (int i = 0; i < N; i++) {
		if (i == 1 || i == 2 || i == 10)
			continue;
		snprintf(want, sizeof(want), "{\"a\":%d,\"b\":%d,\"c\":\"v%d\",\"g\":\"v%d!\"}", i / 5,
			 i % 5, i, i);
		good += ops[i].returned && !strcmp(ops[i].returned, want);
	}
	check("RETURNING gives each op its own row, g computed", good == N - 3, "%zu of %d", good, N - 3);
	check("a key-only insert", ops[N].returned && !strcmp(ops[N].returned,
	      "{\"a\":9,\"b\":9,\"c\":null,\"g\":null}"), "returned %s",
	      ops[N].returned ? ops[N].returned : "(null)");
	check("deletes match the whole key",
	      !strcmp(val("SELECT string_agg(b || ',' || a, ' ' ORDER BY b, a) FROM \"" SCHEMA "\".twokeys"
			  " WHERE (b, a) IN ((2, 0), (0, 2), (2, 2), (0, 0))"), "0,0 2,2"),
	      "left %s", val("SELECT string_agg(b || ',' || a, ' ' ORDER BY b, a) FROM \"" SCHEMA "\".twokeys"
			     " WHERE (b, a) IN ((2, 0), (0, 2), (2, 2), (0, 0))"));
	check("a name that is not a key is refused alone", ops[N + 3].dead && !ops[N + 1].dead &&
	      COUNT(ops, N + 4, dead) == 1, "%zu dead", COUNT(ops, N + 4, dead));
	check("48 rows and the key-only one", !strcmp(val("SELECT count(*) FROM \"" SCHEMA "\".twokeys"), "49"),
	      "count %s", val("SELECT count(*) FROM \"" SCHEMA "\".twokeys"));
	op_free_array(ops, N + 4);

	/* the key alone, of a row PostgreSQL has: a no-op update that returns it */
	ops = ops_new(1);
	op_set(&ops[0], 3000, 'U', "twokeys", "1,0", "{\"b\":1,\"a\":0}");
	rc = pg_apply(pg, cat, "composite", ops, 1, &upto, err, sizeof(err));
	check("the key-only upsert keeps the row", rc == SH_OK && ops[0].returned &&
	      strstr(ops[0].returned, "\"c\":\"v1\""), "rc %d returned %s", rc,
	      ops[0].returned ? ops[0].returned : "(null)");
	op_free_array(ops, 1);
}

static void check_connection_loss(struct pg *pg, const struct catalog *cat)
{
	struct op *ops = ops_new(2);
	char err[512] = "";
	int64_t upto = 0, seq = -1;
	enum sh_err rc;

	op_set(&ops[0], 1, 'U', "Weird Table", "7000", "{\"id\":7000}");
	op_set(&ops[1], 2, 'U', "Weird Table", "7001", "{\"id\":7001}");
	kill_backend();
	rc = pg_apply(pg, cat, "lost", ops, 2, &upto, err, sizeof(err));
	check("apply on a killed connection is unavailable", rc == SH_EUNAVAIL && err[0] && !ops[0].returned,
	      "rc %d err '%s'", rc, err);
	check("nothing committed", !strcmp(val("SELECT count(*) FROM \"" SCHEMA "\".\"Weird Table\" WHERE id >= 7000"), "0"),
	      "rows present");
	rc = pg_reconnect(pg);
	check("reconnect", rc == SH_OK, "rc %d", rc);
	rc = pg_apply(pg, cat, "lost", ops, 2, &upto, err, sizeof(err));
	check("retry applies", rc == SH_OK && upto == 2 && ops[1].returned, "rc %d %s", rc, err);
	rc = pg_applied_seq(pg, "lost", OP_ORIGIN_LEGACY, &seq);
	check("applied seq", rc == SH_OK && seq == 2, "rc %d seq %" PRId64, rc, seq);
	rc = pg_applied_seq(pg, "never", OP_ORIGIN_LEGACY, &seq);
	check("applied seq of an unknown block is 0", rc == SH_OK && seq == 0, "rc %d seq %" PRId64, rc, seq);
	op_free_array(ops, 2);
}

int main(int argc, char **argv)
{
	struct catalog *cat = NULL;
	struct pg *pg = NULL;
	char err[512];
	enum sh_err rc;

	if (argc != 2) {
		fprintf(stderr, "usage: pg_apply_check CONNINFO\n");
		return 2;
	}
	sh_log_init(0, LOG_WARNING);
	admin = PQconnectdb(argv[1]);
	if (PQstatus(admin) != CONNECTION_OK) {
		fprintf(stderr, "cannot connect: %s", PQerrorMessage(admin));
		return 2;
	}
	setup_schema();
	check_connect(argv[1]);
	rc = pg_connect(argv[1], &pg, err, sizeof(err));
	check("connect", rc == SH_OK, "rc %d %s", rc, err);
	if (rc != SH_OK)
		return 1;
	check("ensure tables", pg_ensure_tables(pg) == SH_OK && pg_ensure_tables(pg) == SH_OK, "failed");
	sql("DELETE FROM sharded_applied");
	check_catalog(pg);
	rc = pg_load_catalog(pg, SCHEMA, NULL, &cat, err, sizeof(err));
	if (rc == SH_OK) {
		check_fetch(pg, cat);
		check_bulk(pg, cat);
		check_refusals(pg, cat);
		check_partial_and_delete(pg, cat);
		check_refused_after_valid(pg, cat);
		check_drain_with_refusal(pg, cat);
		check_fk_order_and_uuid(pg, cat);
		check_composite(pg, cat);
		check_connection_loss(pg, cat);
		check_column_updates(pg);
		check_partial_over_domain(pg);
	}
	catalog_free(cat);
	pg_close(pg);
	PQfinish(admin);
	printf("%s\n", failures ? "FAILED" : "all passed");
	return failures ? 1 : 0;
}
