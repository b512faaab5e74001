/* bench.c - sharded-bench: the mount next to the database it fronts, measured in one run.
 *
 *   sharded-bench --mount M --pg CONNINFO [--block B] [--n N] [--scenario NAME...]
 *   sharded-bench proxy LISTEN_PORT HOST PORT DELAY_MS [NETNS_FILE]
 *
 * Every scenario measures an operation through the mount and its baseline over libpq in the
 * same process, reports the median and p99 (and ops/s), and ends with one line
 *
 *   RESULT <scenario>[@label] key=value ...
 *
 * that tools/bench.sh collects. Each timed loop is preceded by a warm-up that is not counted.
 * Nothing here is a pass/fail test: the goals are printed as MET / NOT-MET for the reader.
 *
 * Record ids are <run> * 10^8 + <scenario> * 10^7 + i, so runs against the same database do
 * not collide (--run, default derived from the clock). Blocks are named <prefix><run>-...
 *
 * The tables the scenarios need: "User" (the sample schema) for writes through the mount;
 * "BenchUser" (created here, same shape as "User") for the libpq baselines; "BenchBig" and
 * "BenchMem" for ls and memory, which tools/bench.sh creates before mounting (the daemon
 * reads its catalog and checks its loader rules at mount time).
 *
 * The proxy subcommand forwards TCP from 127.0.0.1:LISTEN_PORT to HOST:PORT and holds every
 * client-to-server chunk for DELAY_MS first: a round trip grows by DELAY_MS, as with
 * `tc qdisc add dev X root netem delay DELAY_MS` on one side of a link. tools/bench.sh uses it
 * when the kernel has no netem. With NETNS_FILE (/run/netns/NAME) it listens on 127.0.0.1 where
 * it was started and connects to HOST from inside that network namespace.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- options ------------------------------------------------------------------------------ */

static const char *opt_mount, *opt_pg, *opt_block, *opt_label;
static long opt_n = 1000, opt_warmup = -1, opt_threads = 8, opt_ls = 100000;
static long opt_mem_blocks = 10000, opt_mem_records = 1000000, opt_time_limit = 110;
static long long opt_run = -1;
static long opt_pid;
static const char *opt_mount2, *opt_sharded;
static long opt_rate_s = 3, opt_rounds = 2, opt_bulk_rows = 10000;

#define MAX_SCEN 16
static const char *scenarios[MAX_SCEN];
static int n_scen;

static const char *all_scenarios[] = {
	"write", "update", "read", "readthrough", "ls", "writers", NULL
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: sharded-bench --mount DIR --pg CONNINFO [options] [--scenario NAME...]\n"
		"       sharded-bench proxy LISTEN_PORT HOST PORT DELAY_MS [NETNS_FILE]\n"
		"       sharded-bench io write PATH TEXT | io read PATH\n\n"
		"Measures operations through a sharded mount next to their libpq baselines.\n\n"
		"options:\n"
		"  --mount DIR        the mount point of mount.sharded\n"
		"  --pg CONNINFO      the PostgreSQL the mount fronts (conninfo or URI)\n"
		"  --block PREFIX     prefix of the block ids the scenarios create (default b)\n"
		"  --n N              timed operations per scenario (default 1000)\n"
		"  --warmup N         untimed operations before each (default N/10, at least 5)\n"
		"  --scenario NAME    run NAME (repeatable, or several names after one --scenario);\n"
		"                     default: write update read readthrough ls writers\n"
		"  --run R            run number for ids and block names (default from the clock)\n"
		"  --label L          suffix for RESULT names, e.g. 20ms\n"
		"  --threads T        writers: threads (and blocks) (default 8)\n"
		"  --ls-records N     ls: records in the listed directory (default 100000)\n"
		"  --mem-blocks N     memory: blocks to touch (default 10000)\n"
		"  --mem-records N    memory: records in total (default 1000000)\n"
		"  --pid PID          memory: the daemon's pid, for /proc/PID/status\n"
		"  --time-limit S     memory, drain-queue, drain-wait: stop after S seconds\n"
		"                     (default 110)\n"
		"  --mount2 DIR       visibility: a second node's mount (own node= and data\n"
		"                     directory, the same PostgreSQL and Redis)\n"
		"  --sharded PATH     visibility, capture-cost: the sharded CLI that installs and\n"
		"                     removes capture (default: sharded next to this binary)\n"
		"  --rate-seconds S   capture-cost: seconds per writes/s measurement (default 3)\n"
		"  --rounds R         capture-cost: removed/installed alternations (default 2)\n"
		"  --bulk-rows N      capture-cost: rows of \"BenchApp\" and of its bulk UPDATE\n"
		"                     (default 10000)\n"
		"  -h, --help         this text\n\n"
		"scenarios:\n"
		"  write        create a record (open O_CREAT|O_TRUNC, write ~150 bytes, close)\n"
		"               vs a prepared INSERT ... ON CONFLICT DO UPDATE into \"BenchUser\"\n"
		"  update       rewrite an existing record vs the same upsert of an existing row\n"
		"  read         open+read+close of a cached record vs select row_to_json by pk\n"
		"  readthrough  the same for records the block has not read yet\n"
		"  readro       read, on a mount with -o records=ro: records read once through\n"
		"               (they cannot be written there), then timed as second reads\n"
		"  ls           mkdir of a block whose loader brings --ls-records rows of \"BenchBig\",\n"
		"               then opendir+readdir+closedir of its BenchBig directory\n"
		"  writers      --threads threads, one block each, writing at once; writes/s\n"
		"  nextid       read the block's \"BenchTicket\"/.next-id and create that record\n"
		"               vs a prepared INSERT ... RETURNING id (not in the default set:\n"
		"               \"BenchTicket\", a bigserial key, must exist before the mount)\n"
		"  drain-prep   (PostgreSQL up) create the --n records drain-queue rewrites\n"
		"  drain-queue  (PostgreSQL stopped) queue --n writes in one block: updates after\n"
		"               drain-prep, else new records (each reads through first)\n"
		"  drain-wait   wait for PostgreSQL, then time until the first and the last of\n"
		"               those rows land; then one json_populate_recordset upsert of the\n"
		"               same rows into \"BenchUser\" as the baseline\n"
		"  memory       mkdir --mem-blocks blocks loading --mem-records \"BenchMem\" rows in\n"
		"               total; the daemon's VmRSS\n"
		"  visibility   (needs --mount2; installs capture) --n writes on --mount until\n"
		"               --mount2's file shows each, then --n UPDATEs over libpq until both\n"
		"               mounts' files show each; p50/p99 in ms\n"
		"  capture-cost (installs and removes capture) single-row UPDATEs/s of\n"
		"               \"BenchApp\" from 1 and 4 libpq clients, and one UPDATE of all its\n"
		"               rows, with capture removed and installed, --rounds times; leaves\n"
		"               capture installed\n");
}

/* ---- small helpers ------------------------------------------------------------------------ */

static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("sharded-bench: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static void sleep_us(double us)
{
	struct timespec ts;

	if (us <= 0)
		return;
	ts.tv_sec = (time_t)(us / 1e6);
	ts.tv_nsec = (long)(fmod(us, 1e6) * 1e3);
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static long long id_of(int scen, long i)
{
	return opt_run * 100000000LL + scen * 10000000LL + i;
}

static int make_doc(char *buf, size_t size, long long id, const char *tag)
{
	/* ~150 bytes, like a small user row */
	return snprintf(buf, size,
			"{\"id\":%lld,\"email\":\"b%lld@example.com\",\"name\":\"Bench user %lld, %s, "
			"a name long enough to make the document about 150 bytes\"}\n",
			id, id, id, tag);
}

static void record_path(char *buf, size_t size, const char *block, const char *model,
			long long id)
{
	snprintf(buf, size, "%s/%s/%s/%lld.json", opt_mount, block, model, id);
}

/* open O_CREAT|O_TRUNC, write, close: what a shell redirection does */
static int mount_write(const char *path, const char *doc, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	ssize_t w;

	if (fd < 0)
		return -1;
	w = write(fd, doc, len);
	if (w != (ssize_t)len) {
		int e = w < 0 ? errno : EIO;
		close(fd);
		errno = e;
		return -1;
	}
	return close(fd);
}

/* open, read to the end, close; returns bytes read or -1 */
static ssize_t mount_read(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY);
	ssize_t r, total = 0;

	if (fd < 0)
		return -1;
	while ((r = read(fd, buf + total, size - (size_t)total)) > 0)
		total += r;
	if (r < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	close(fd);
	return total;
}

static void ensure_block(const char *block)
{
	char path[4096];

	snprintf(path, sizeof(path), "%s/%s", opt_mount, block);
	if (mkdir(path, 0755) != 0 && errno != EEXIST)
		die("mkdir %s: %s", path, strerror(errno));
}

/* Wait until the block's sync-status says "pending 0", so that the sync's work for what the
 * mount just took does not run during the next timed loop (it is reported, not hidden). */
static void settle(const char *scen, const char *const *blocks, int nblocks)
{
	double t0 = now_us();
	long pending = 0;

	for (;;) {
		pending = 0;
		for (int i = 0; i < nblocks; i++) {
			char path[4096], st[4096], *p;
			ssize_t k;

			snprintf(path, sizeof(path), "%s/%s/sync-status", opt_mount, blocks[i]);
			k = mount_read(path, st, sizeof(st) - 1);
			if (k <= 0)
				die("read %s: %s", path, k < 0 ? strerror(errno) : "empty");
			st[k] = 0;
			p = strstr(st, "pending ");
			if (p)
				pending += strtol(p + 8, NULL, 10);
		}
		if (pending == 0 || now_us() - t0 > 120e6)
			break;
		sleep_us(20000);
	}
	printf("%-12s sync   %s after %.2f s (the sync applying what the mount took)\n", scen,
	       pending ? "still pending" : "pending 0", (now_us() - t0) / 1e6);
}

/* ---- statistics ----------------------------------------------------------------------------- */

struct stats {
	double *v;
	size_t n, cap;
	double elapsed_us;	/* wall time of the whole timed loop */
};

static void st_add(struct stats *s, double us)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 1024;
		s->v = realloc(s->v, s->cap * sizeof(*s->v));
		if (!s->v)
			die("out of memory");
	}
	s->v[s->n++] = us;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double st_pct(struct stats *s, double p)
{
	size_t i;

	if (!s->n)
		return NAN;
	qsort(s->v, s->n, sizeof(*s->v), cmp_double);
	i = (size_t)ceil(p / 100.0 * (double)s->n);
	if (i > 0)
		i--;
	if (i >= s->n)
		i = s->n - 1;
	return s->v[i];
}

static double st_ops(const struct stats *s)
{
	return s->elapsed_us > 0 ? (double)s->n * 1e6 / s->elapsed_us : NAN;
}

static void st_print(const char *scen, const char *what, struct stats *s)
{
	printf("%-12s %-6s n=%-6zu median %9.1f us   p99 %9.1f us   %9.0f ops/s\n", scen, what,
	       s->n, st_pct(s, 50), st_pct(s, 99), st_ops(s));
}

static void st_free(struct stats *s)
{
	free(s->v);
	memset(s, 0, sizeof(*s));
}

static char result_name[128];

static const char *rname(const char *scen)
{
	if (opt_label)
		snprintf(result_name, sizeof(result_name), "%s@%s", scen, opt_label);
	else
		snprintf(result_name, sizeof(result_name), "%s", scen);
	return result_name;
}

/* ---- FUSE requests, from the mount's metrics file ----------------------------------------- */

#define REQ_OPS 24

struct reqs {
	char op[REQ_OPS][24];
	double n[REQ_OPS];
	int count;
};

/* The counters of sharded_fuse_requests_total{op="..."}; count 0 if the mount has none. */
static void reqs_read(struct reqs *r)
{
	char path[4096], line[512];
	FILE *f;

	memset(r, 0, sizeof(*r));
	snprintf(path, sizeof(path), "%s/metrics", opt_mount);
	if (!(f = fopen(path, "r")))
		return;
	while (fgets(line, sizeof(line), f) && r->count < REQ_OPS) {
		char op[24];
		double n;

		if (sscanf(line, "sharded_fuse_requests_total{op=\"%23[a-z_]\"} %lf", op, &n) == 2) {
			snprintf(r->op[r->count], sizeof(r->op[0]), "%s", op);
			r->n[r->count++] = n;
		}
	}
	fclose(f);
}

/* Requests around a timed loop: [0] and [1] back to back (what a look at the metrics file
 * costs), [2] before the loop, [3] after it. */
static struct reqs req_snap[4];
static char req_kv[64];

static void reqs_begin(void)
{
	reqs_read(&req_snap[0]);
	reqs_read(&req_snap[1]);
	reqs_read(&req_snap[2]);
}

/* Per operation over n operations: a comment line by opcode, and req_kv for the RESULT line. */
static void reqs_end(const char *scen, long n)
{
	struct reqs *r = req_snap;
	char by_op[512] = "";
	size_t len = 0;
	double total = 0;

	reqs_read(&r[3]);
	req_kv[0] = '\0';
	if (!r[3].count || n <= 0)
		return;
	for (int i = 0; i < r[3].count && i < r[0].count && i < r[1].count && i < r[2].count; i++) {
		double d = (r[3].n[i] - r[2].n[i]) - (r[1].n[i] - r[0].n[i]);

		if (d < 0.5)
			continue;
		total += d;
		if (len < sizeof(by_op))
			len += (size_t)snprintf(by_op + len, sizeof(by_op) - len, " %s %.2f", r[3].op[i],
						d / (double)n);
	}
	printf("# %s: FUSE requests per operation: %.2f:%s\n", rname(scen), total / (double)n, by_op);
	snprintf(req_kv, sizeof(req_kv), " fuse_requests_per_op=%.2f", total / (double)n);
}

/* RESULT line for a mount-vs-libpq latency pair; goal_ratio <= 0 means no goal */
static void result_pair(const char *scen, struct stats *m, struct stats *b, double goal_ratio)
{
	double mm = st_pct(m, 50), bm = st_pct(b, 50), ratio = mm / bm;

	printf("RESULT %s mount_median_us=%.1f mount_p99_us=%.1f mount_ops_s=%.0f "
	       "libpq_median_us=%.1f libpq_p99_us=%.1f libpq_ops_s=%.0f ratio=%.3f speedup=%.1f",
	       rname(scen), mm, st_pct(m, 99), st_ops(m), bm, st_pct(b, 99), st_ops(b), ratio,
	       bm / mm);
	printf("%s", req_kv);
	req_kv[0] = '\0';
	if (goal_ratio > 0)
		printf(" goal=<=%.2f %s", goal_ratio, ratio <= goal_ratio ? "MET" : "NOT-MET");
	printf("\n");
	fflush(stdout);
}

/* ---- PostgreSQL ------------------------------------------------------------------------------ */

static PGconn *pg_open(void)
{
	PGconn *c = PQconnectdb(opt_pg);

	if (PQstatus(c) != CONNECTION_OK)
		die("cannot connect to PostgreSQL: %s", PQerrorMessage(c));
	return c;
}

static void pg_cmd(PGconn *c, const char *sql)
{
	PGresult *r = PQexec(c, sql);
	ExecStatusType st = PQresultStatus(r);

	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
		die("%s: %s", sql, PQerrorMessage(c));
	PQclear(r);
}

static long long pg_ll(PGconn *c, const char *sql)
{
	PGresult *r = PQexec(c, sql);
	long long v;

	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
		die("%s: %s", sql, PQerrorMessage(c));
	v = PQgetisnull(r, 0, 0) ? 0 : strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	return v;
}

static void pg_prepare(PGconn *c, const char *name, const char *sql, int nparams)
{
	PGresult *r = PQprepare(c, name, sql, nparams, NULL);

	if (PQresultStatus(r) != PGRES_COMMAND_OK)
		die("prepare %s: %s", name, PQerrorMessage(c));
	PQclear(r);
}

static void ensure_bench_user(PGconn *c)
{
	pg_cmd(c, "SET client_min_messages = warning");
	pg_cmd(c, "CREATE TABLE IF NOT EXISTS \"BenchUser\" (LIKE \"User\" INCLUDING ALL)");
}

static const char UPSERT_SQL[] =
	"INSERT INTO \"BenchUser\" (id, email, name) VALUES ($1, $2, $3) "
	"ON CONFLICT (id) DO UPDATE SET email = excluded.email, name = excluded.name";

/* one prepared upsert; the same document as through the mount */
static void pg_upsert(PGconn *c, long long id, const char *tag)
{
	char ids[32], email[64], name[160];
	const char *p[3] = { ids, email, name };
	PGresult *r;

	snprintf(ids, sizeof(ids), "%lld", id);
	snprintf(email, sizeof(email), "b%lld@example.com", id);
	snprintf(name, sizeof(name),
		 "Bench user %lld, %s, a name long enough to make the document about 150 bytes", id,
		 tag);
	r = PQexecPrepared(c, "upsert", 3, p, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_COMMAND_OK)
		die("upsert: %s", PQerrorMessage(c));
	PQclear(r);
}

static void pg_select(PGconn *c, long long id)
{
	char ids[32];
	const char *p[1] = { ids };
	PGresult *r;

	snprintf(ids, sizeof(ids), "%lld", id);
	r = PQexecPrepared(c, "select", 1, p, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
		die("select of %lld: %s (%d rows)", id, PQerrorMessage(c), PQntuples(r));
	PQclear(r);
}

/* ---- scenarios ------------------------------------------------------------------------------- */

static long warmup(void)
{
	if (opt_warmup >= 0)
		return opt_warmup;
	return opt_n / 10 > 5 ? opt_n / 10 : 5;
}

static void block_name(char *buf, size_t size, const char *what)
{
	snprintf(buf, size, "%s%lld-%s", opt_block, opt_run, what);
}

/* write (scen 0: new records) and update (scen 1: existing records) */
static void scen_write(int update)
{
	const char *scen = update ? "update" : "write";
	char block[160], path[4096], doc[512];
	struct stats m = { 0 }, b = { 0 };
	long w = warmup(), i;
	int sc = update ? 1 : 0, len;
	PGconn *c = pg_open();
	double t, t0 = 0;

	ensure_bench_user(c);
	pg_prepare(c, "upsert", UPSERT_SQL, 3);
	block_name(block, sizeof(block), scen);
	ensure_block(block);
	printf("== %s: %s a record through the mount vs a prepared single-row upsert "
	       "(n=%ld, warm-up %ld)\n", scen, update ? "rewrite" : "create", opt_n, w);
	if (update) {	/* the records and rows exist before the timed loop */
		for (i = 0; i < w + opt_n; i++) {
			long long id = id_of(sc, i);
			record_path(path, sizeof(path), block, "User", id);
			len = make_doc(doc, sizeof(doc), id, "first");
			if (mount_write(path, doc, (size_t)len) != 0)
				die("write %s: %s", path, strerror(errno));
			pg_upsert(c, id, "first");
		}
		{
			const char *bl[1] = { block };
			settle(scen, bl, 1);
		}
	}
	for (i = 0; i < w + opt_n; i++) {
		long long id = id_of(sc, i);
		record_path(path, sizeof(path), block, "User", id);
		len = make_doc(doc, sizeof(doc), id, update ? "second" : "first");
		if (i == w) {
			reqs_begin();
			t0 = now_us();
		}
		t = now_us();
		if (mount_write(path, doc, (size_t)len) != 0)
			die("write %s: %s", path, strerror(errno));
		if (i >= w)
			st_add(&m, now_us() - t);
	}
	m.elapsed_us = now_us() - t0;
	reqs_end(scen, opt_n);
	{
		const char *bl[1] = { block };
		settle(scen, bl, 1);
	}
	for (i = 0; i < w + opt_n; i++) {
		long long id = id_of(sc, i);
		if (i == w)
			t0 = now_us();
		t = now_us();
		pg_upsert(c, id, update ? "second" : "first");
		if (i >= w)
			st_add(&b, now_us() - t);
	}
	b.elapsed_us = now_us() - t0;
	st_print(scen, "mount", &m);
	st_print(scen, "libpq", &b);
	result_pair(scen, &m, &b, 0.5);
	st_free(&m);
	st_free(&b);
	PQfinish(c);
}

/* nextid: a new record whose id the block's .next-id hands out (read it, write the record),
 * as README's "Ids" shows, vs a prepared INSERT ... RETURNING id taking it from the sequence.
 * "BenchTicket" (bigserial key) must exist before the mount; the baseline inserts into a copy
 * of it that shares its sequence. */
static void scen_nextid(void)
{
	const char *scen = "nextid";
	char block[160], path[4096], idpath[4096], doc[512], idtext[64];
	struct stats m = { 0 }, b = { 0 };
	long w = warmup(), i;
	PGconn *c = pg_open();
	double t, t0 = 0;

	pg_cmd(c, "SET client_min_messages = warning");
	pg_cmd(c, "CREATE TABLE IF NOT EXISTS \"BenchTicketPg\" (LIKE \"BenchTicket\" INCLUDING ALL)");
	pg_prepare(c, "ins", "INSERT INTO \"BenchTicketPg\" (email, name) VALUES ($1, $2) "
		   "RETURNING id", 2);
	block_name(block, sizeof(block), scen);
	ensure_block(block);
	snprintf(idpath, sizeof(idpath), "%s/%s/BenchTicket/.next-id", opt_mount, block);
	printf("== %s: read .next-id and create that record through the mount vs a prepared "
	       "INSERT ... RETURNING id (n=%ld, warm-up %ld)\n", scen, opt_n, w);
	for (i = 0; i < w + opt_n; i++) {
		long long id;
		int len;

		if (i == w) {
			reqs_begin();
			t0 = now_us();
		}
		t = now_us();
		if (mount_read(idpath, idtext, sizeof(idtext) - 1) <= 0)
			die("read %s: %s", idpath, strerror(errno));
		idtext[sizeof(idtext) - 1] = '\0';
		id = strtoll(idtext, NULL, 10);
		snprintf(path, sizeof(path), "%s/%s/BenchTicket/%lld.json", opt_mount, block, id);
		len = make_doc(doc, sizeof(doc), id, "ticket");
		if (mount_write(path, doc, (size_t)len) != 0)
			die("write %s: %s", path, strerror(errno));
		if (i >= w)
			st_add(&m, now_us() - t);
	}
	m.elapsed_us = now_us() - t0;
	reqs_end(scen, opt_n);
	{
		const char *bl[1] = { block };
		settle(scen, bl, 1);
	}
	for (i = 0; i < w + opt_n; i++) {
		const char *p[2] = { "t@example.com", "Bench ticket, a name long enough to make the "
				     "document about 150 bytes" };
		PGresult *r;

		if (i == w)
			t0 = now_us();
		t = now_us();
		r = PQexecPrepared(c, "ins", 2, p, NULL, NULL, 0);
		if (PQresultStatus(r) != PGRES_TUPLES_OK)
			die("insert: %s", PQerrorMessage(c));
		PQclear(r);
		if (i >= w)
			st_add(&b, now_us() - t);
	}
	b.elapsed_us = now_us() - t0;
	st_print(scen, "mount", &m);
	st_print(scen, "libpq", &b);
	result_pair(scen, &m, &b, 0.5);
	st_free(&m);
	st_free(&b);
	PQfinish(c);
}

/* read (scen 2: cached), readthrough (scen 3: not yet cached), readro (scen 9: cached by a
 * first read through, on a mount whose records are read-only: -o records=ro) */
static void scen_read(int mode)
{
	int through = mode == 1, ro = mode == 2;
	const char *scen = ro ? "readro" : through ? "readthrough" : "read";
	char block[160], path[4096], doc[512], sql[512];
	struct stats m = { 0 }, b = { 0 };
	long w = warmup(), i, total = warmup() + opt_n;
	int sc = ro ? 9 : through ? 3 : 2, len;
	PGconn *c = pg_open();
	double t, t0 = 0;

	ensure_bench_user(c);
	block_name(block, sizeof(block), scen);
	ensure_block(block);
	printf("== %s: open+read+close of a %s record vs a prepared select row_to_json by pk "
	       "(n=%ld, warm-up %ld)\n", scen, through ? "not yet cached" : "cached", opt_n, w);
	/* baseline rows in "BenchUser"; for readthrough also the rows the block will read */
	snprintf(sql, sizeof(sql),
		 "INSERT INTO \"%s\" (id, email, name) SELECT g, 'b' || g || '@example.com', "
		 "'Bench user ' || g || ', a name long enough to make the document about 150 bytes' "
		 "FROM generate_series(%lld, %lld) g ON CONFLICT (id) DO NOTHING",
		 "BenchUser", id_of(sc, 0), id_of(sc, total - 1));
	pg_cmd(c, sql);
	if (through || ro) {
		snprintf(sql, sizeof(sql),
			 "INSERT INTO \"User\" (id, email, name) SELECT g, 'b' || g || '@example.com', "
			 "'Bench user ' || g || ', a name long enough to make the document about 150 "
			 "bytes' FROM generate_series(%lld, %lld) g ON CONFLICT (id) DO NOTHING",
			 id_of(sc, 0), id_of(sc, total - 1));
		pg_cmd(c, sql);
	}
	if (ro) {
		for (i = 0; i < total / 2 + 1; i++) {	/* the first read of each goes through */
			record_path(path, sizeof(path), block, "User", id_of(sc, i));
			if (mount_read(path, doc, sizeof(doc)) <= 0)
				die("read %s: %s", path, strerror(errno));
		}
	} else if (!through) {
		for (i = 0; i < total; i++) {
			long long id = id_of(sc, i);
			record_path(path, sizeof(path), block, "User", id);
			len = make_doc(doc, sizeof(doc), id, "read");
			if (mount_write(path, doc, (size_t)len) != 0)
				die("write %s: %s", path, strerror(errno));
		}
		{
			const char *bl[1] = { block };
			settle(scen, bl, 1);
		}
	}
	pg_prepare(c, "select", "SELECT row_to_json(t) FROM \"BenchUser\" t WHERE id = $1", 1);
	/* the cached reads go over the records twice, so every timed one is a second read */
	for (i = 0; i < w + opt_n; i++) {
		long long id = id_of(sc, through ? i : (i % (total / 2 > 0 ? total / 2 : 1)));
		ssize_t r;
		record_path(path, sizeof(path), block, "User", id);
		if (i == w) {
			reqs_begin();
			t0 = now_us();
		}
		t = now_us();
		r = mount_read(path, doc, sizeof(doc));
		if (r <= 0)
			die("read %s: %s", path, r < 0 ? strerror(errno) : "empty");
		if (i >= w)
			st_add(&m, now_us() - t);
	}
	m.elapsed_us = now_us() - t0;
	reqs_end(scen, opt_n);
	for (i = 0; i < w + opt_n; i++) {
		if (i == w)
			t0 = now_us();
		t = now_us();
		pg_select(c, id_of(sc, i));
		if (i >= w)
			st_add(&b, now_us() - t);
	}
	b.elapsed_us = now_us() - t0;
	st_print(scen, "mount", &m);
	st_print(scen, "libpq", &b);
	result_pair(scen, &m, &b, through ? 0 : 0.1);
	st_free(&m);
	st_free(&b);
	PQfinish(c);
}

static void scen_ls(void)
{
	char block[160], path[4096], sql[512];
	struct stats m = { 0 }, b = { 0 };
	PGconn *c = pg_open();
	double t, load_us;
	long entries = 0, rows;
	int k;

	printf("== ls: opendir+readdir+closedir of a model directory with %ld records\n", opt_ls);
	snprintf(sql, sizeof(sql),
		 "INSERT INTO \"BenchBig\" (id, email, name) SELECT g, 'big' || g || '@example.com', "
		 "'Big user ' || g || ', a name long enough to make the document about 150 bytes' "
		 "FROM generate_series(1, %ld) g ON CONFLICT (id) DO NOTHING", opt_ls);
	pg_cmd(c, sql);
	snprintf(sql, sizeof(sql), "DELETE FROM \"BenchBig\" WHERE id > %ld", opt_ls);
	pg_cmd(c, sql);
	rows = pg_ll(c, "SELECT count(*) FROM \"BenchBig\" WHERE id > 0");
	snprintf(block, sizeof(block), "big-%s%lld", opt_block, opt_run);
	snprintf(path, sizeof(path), "%s/%s", opt_mount, block);
	t = now_us();
	if (mkdir(path, 0755) != 0)
		die("mkdir %s (the loader rule 'block big-{n}' must be in -o loaders=...): %s", path,
		    strerror(errno));
	load_us = now_us() - t;
	printf("ls           load   mkdir %s loading %ld rows: %.3f s (%.0f rows/s)\n", block, rows,
	       load_us / 1e6, (double)rows * 1e6 / load_us);
	snprintf(path, sizeof(path), "%s/%s/BenchBig", opt_mount, block);
	for (k = 0; k < 6; k++) {	/* the first is the cold one, reported apart */
		DIR *d;
		struct dirent *de;
		long n = 0;

		t = now_us();
		d = opendir(path);
		if (!d)
			die("opendir %s: %s", path, strerror(errno));
		while ((de = readdir(d)))
			if (de->d_name[0] != '.')
				n++;
		closedir(d);
		if (k == 0) {
			printf("ls           cold   first listing: %.1f ms\n", (now_us() - t) / 1e3);
			entries = n;
		} else {
			st_add(&m, now_us() - t);
		}
		if (n != rows)
			die("ls %s: %ld entries, expected %ld", path, n, rows);
	}
	for (k = 0; k < 6; k++) {
		PGresult *r;
		t = now_us();
		r = PQexec(c, "SELECT id FROM \"BenchBig\" WHERE id > 0");
		if (PQresultStatus(r) != PGRES_TUPLES_OK)
			die("select ids: %s", PQerrorMessage(c));
		PQclear(r);
		if (k)
			st_add(&b, now_us() - t);
	}
	printf("ls           mount  n=%-6zu median %9.1f ms   max %9.1f ms\n", m.n, st_pct(&m, 50) / 1e3,
	       st_pct(&m, 100) / 1e3);
	printf("ls           libpq  n=%-6zu median %9.1f ms   max %9.1f ms   (SELECT id of all rows)\n",
	       b.n, st_pct(&b, 50) / 1e3, st_pct(&b, 100) / 1e3);
	printf("RESULT %s entries=%ld load_s=%.3f load_rows_s=%.0f ls_median_ms=%.1f ls_max_ms=%.1f "
	       "libpq_ids_median_ms=%.1f goal=<1000ms %s\n", rname("ls"), entries, load_us / 1e6,
	       (double)rows * 1e6 / load_us, st_pct(&m, 50) / 1e3, st_pct(&m, 100) / 1e3,
	       st_pct(&b, 50) / 1e3, st_pct(&m, 50) < 1e6 ? "MET" : "NOT-MET");
	fflush(stdout);
	st_free(&m);
	st_free(&b);
	PQfinish(c);
}

/* ---- many writers ---------------------------------------------------------------------------- */

struct writer {
	pthread_t th;
	int idx, use_pg;
	long n, w;
	pthread_barrier_t *start;
	struct stats s;
	char block[160];
	PGconn *c;
};

static void *writer_main(void *arg)
{
	struct writer *wr = arg;
	char path[4096], doc[512];
	long i;
	double t;

	pthread_barrier_wait(wr->start);
	for (i = 0; i < wr->w + wr->n; i++) {
		long long id = id_of(4, wr->idx * (9000000L / opt_threads) + i);
		int len = make_doc(doc, sizeof(doc), id, "writers");
		t = now_us();
		if (wr->use_pg) {
			pg_upsert(wr->c, id, "writers");
		} else {
			record_path(path, sizeof(path), wr->block, "User", id);
			if (mount_write(path, doc, (size_t)len) != 0)
				die("write %s: %s", path, strerror(errno));
		}
		if (i >= wr->w)
			st_add(&wr->s, now_us() - t);
	}
	pthread_barrier_wait(wr->start);
	return NULL;
}

/* all threads start at one barrier and the clock stops at the next one; scen_writers warms
 * every block up before */
static void run_writers(int use_pg, struct stats *all, double *ops_s)
{
	long nt = opt_threads, per = opt_n / opt_threads > 0 ? opt_n / opt_threads : 1;
	struct writer *ws = calloc((size_t)nt, sizeof(*ws));
	pthread_barrier_t bar;
	double t0, el;
	long i;
	size_t k;

	if (!ws)
		die("out of memory");
	pthread_barrier_init(&bar, NULL, (unsigned)nt + 1);
	for (i = 0; i < nt; i++) {
		ws[i].idx = (int)i;	/* the baseline writes the same ids into "BenchUser" */
		ws[i].use_pg = use_pg;
		ws[i].n = per;
		ws[i].w = 0;	/* warm-up: see below */
		ws[i].start = &bar;
		snprintf(ws[i].block, sizeof(ws[i].block), "%s%lld-writers-%ld", opt_block, opt_run, i);
		if (use_pg) {
			ws[i].c = pg_open();
			pg_prepare(ws[i].c, "upsert", UPSERT_SQL, 3);
		} else {
			ensure_block(ws[i].block);
		}
		if (pthread_create(&ws[i].th, NULL, writer_main, &ws[i]) != 0)
			die("pthread_create failed");
	}
	pthread_barrier_wait(&bar);
	t0 = now_us();
	pthread_barrier_wait(&bar);
	el = now_us() - t0;
	for (i = 0; i < nt; i++) {
		pthread_join(ws[i].th, NULL);
		for (k = 0; k < ws[i].s.n; k++)
			st_add(all, ws[i].s.v[k]);
		st_free(&ws[i].s);
		if (ws[i].c)
			PQfinish(ws[i].c);
	}
	all->elapsed_us = el;
	*ops_s = (double)(per * nt) * 1e6 / el;
	pthread_barrier_destroy(&bar);
	free(ws);
}

static void scen_writers(void)
{
	struct stats m = { 0 }, b = { 0 };
	double mo, bo;
	PGconn *c = pg_open();
	char block[160], path[4096], doc[512];
	long i;

	ensure_bench_user(c);
	PQfinish(c);
	printf("== writers: %ld threads, one block each, creating records at once (n=%ld in total)\n",
	       opt_threads, opt_n);
	/* warm-up: one write per block, untimed, so every block and model directory exists */
	for (i = 0; i < opt_threads; i++) {
		long long id = id_of(4, 9000000L + i);
		int len = make_doc(doc, sizeof(doc), id, "warm");
		snprintf(block, sizeof(block), "%s%lld-writers-%ld", opt_block, opt_run, i);
		ensure_block(block);
		record_path(path, sizeof(path), block, "User", id);
		if (mount_write(path, doc, (size_t)len) != 0)
			die("write %s: %s", path, strerror(errno));
	}
	{
		const char *bl[64];
		char names[64][160];
		for (i = 0; i < opt_threads; i++) {
			snprintf(names[i], sizeof(names[i]), "%s%lld-writers-%ld", opt_block, opt_run, i);
			bl[i] = names[i];
		}
		settle("writers", bl, (int)opt_threads);
		run_writers(0, &m, &mo);
		settle("writers", bl, (int)opt_threads);
	}
	run_writers(1, &b, &bo);
	printf("writers      mount  n=%-6zu median %9.1f us   p99 %9.1f us   %9.0f writes/s\n", m.n,
	       st_pct(&m, 50), st_pct(&m, 99), mo);
	printf("writers      libpq  n=%-6zu median %9.1f us   p99 %9.1f us   %9.0f writes/s\n", b.n,
	       st_pct(&b, 50), st_pct(&b, 99), bo);
	printf("RESULT %s threads=%ld mount_writes_s=%.0f mount_median_us=%.1f mount_p99_us=%.1f "
	       "libpq_writes_s=%.0f libpq_median_us=%.1f libpq_p99_us=%.1f ratio_rate=%.2f\n",
	       rname("writers"), opt_threads, mo, st_pct(&m, 50), st_pct(&m, 99), bo, st_pct(&b, 50),
	       st_pct(&b, 99), mo / bo);
	fflush(stdout);
	st_free(&m);
	st_free(&b);
}

/* The apply thread's counters in the mount's metrics file (0 when absent). */
struct apply_metrics {
	double batches, rows, statements, redis_calls, redis_s, pg_s, settle_s;
};

static double metric_of(const char *text, const char *name)
{
	char key[128];
	const char *p;

	snprintf(key, sizeof(key), "\nsharded_%s ", name);
	p = strstr(text, key);
	return p ? strtod(p + strlen(key), NULL) : 0;
}

static void read_apply_metrics(struct apply_metrics *m)
{
	char path[4096], text[16384];
	ssize_t k;

	memset(m, 0, sizeof(*m));
	snprintf(path, sizeof(path), "%s/metrics", opt_mount);
	if ((k = mount_read(path, text, sizeof(text) - 1)) <= 0)
		return;
	text[k] = 0;
	m->batches = metric_of(text, "apply_batches_total");
	m->rows = metric_of(text, "apply_rows_total");
	m->statements = metric_of(text, "apply_statements_total");
	m->redis_calls = metric_of(text, "apply_redis_calls_total");
	m->redis_s = metric_of(text, "apply_redis_seconds_total");
	m->pg_s = metric_of(text, "apply_postgres_seconds_total");
	m->settle_s = metric_of(text, "apply_settle_seconds_total");
}

/* What the drain cost the apply thread: the counters' growth over it. */
static void print_apply_cost(const struct apply_metrics *a, const struct apply_metrics *b)
{
	double batches = b->batches - a->batches, rows = b->rows - a->rows;
	double stmts = b->statements - a->statements, redis = b->redis_calls - a->redis_calls;
	double per = batches > 0 ? batches : NAN;

	printf("drain-wait   apply  %.0f batches, %.0f rows, %.0f statements (%.1f per batch), "
	       "%.0f Redis commands (%.1f per batch); seconds in Redis %.3f, PostgreSQL %.3f, "
	       "block files %.3f\n", batches, rows, stmts, stmts / per, redis, redis / per,
	       b->redis_s - a->redis_s, b->pg_s - a->pg_s, b->settle_s - a->settle_s);
	printf("RESULT %s batches=%.0f rows=%.0f statements=%.0f statements_per_batch=%.1f "
	       "redis_calls=%.0f redis_s=%.3f pg_s=%.3f settle_s=%.3f\n", rname("drain-apply"),
	       batches, rows, stmts, stmts / per, redis, b->redis_s - a->redis_s,
	       b->pg_s - a->pg_s, b->settle_s - a->settle_s);
}

/* ---- sync drain ------------------------------------------------------------------------------ */

/* drain-prep (PostgreSQL up): the records exist and are synced, so that drain-queue's writes
 * are updates, which do not read through to PostgreSQL */
static void scen_drain_prep(void)
{
	char block[160], path[4096], doc[512];
	const char *bl[1] = { block };
	double t0 = now_us();
	long i;

	block_name(block, sizeof(block), "drain");
	ensure_block(block);
	printf("== drain-prep: %ld records in block %s\n", opt_n, block);
	for (i = 0; i < opt_n; i++) {
		long long id = id_of(5, i);
		int len = make_doc(doc, sizeof(doc), id, "prep");
		record_path(path, sizeof(path), block, "User", id);
		if (mount_write(path, doc, (size_t)len) != 0)
			die("write %s: %s", path, strerror(errno));
	}
	printf("drain-prep   %ld records written in %.1f s\n", opt_n, (now_us() - t0) / 1e6);
	settle("drain-prep", bl, 1);
	printf("RESULT %s records=%ld\n", rname("drain-prep"), opt_n);
}

static void scen_drain_queue(void)
{
	char block[160], path[4096], doc[512];
	struct stats m = { 0 };
	long i;
	double t, t0 = 0;

	block_name(block, sizeof(block), "drain");
	ensure_block(block);
	printf("== drain-queue: %ld writes into block %s (PostgreSQL should be stopped)\n", opt_n,
	       block);
	t0 = now_us();
	for (i = 0; i < opt_n; i++) {
		long long id = id_of(5, i);
		int len = make_doc(doc, sizeof(doc), id, "queued");
		record_path(path, sizeof(path), block, "User", id);
		t = now_us();
		if (mount_write(path, doc, (size_t)len) != 0)
			die("write %s: %s", path, strerror(errno));
		st_add(&m, now_us() - t);
		if (now_us() - t0 > (double)opt_time_limit * 1e6) {
			printf("drain-queue  stopped at the time limit (%ld s) after %ld writes; drain-wait\n"
			       "             must be given --n %ld\n", opt_time_limit, i + 1, i + 1);
			break;
		}
	}
	m.elapsed_us = now_us() - t0;
	st_print("drain-queue", "mount", &m);
	printf("RESULT %s queued=%zu mount_median_us=%.1f mount_p99_us=%.1f mount_ops_s=%.0f\n",
	       rname("drain-queue"), m.n, st_pct(&m, 50), st_pct(&m, 99), st_ops(&m));
	fflush(stdout);
	st_free(&m);
}

#define UPSERT_SQL \
	"INSERT INTO \"BenchUser\" (id, email, name) SELECT id, email, name FROM " \
	"json_populate_recordset(null::\"BenchUser\", $1::json) ON CONFLICT (id) DO " \
	"UPDATE SET email = excluded.email, name = excluded.name"

/* Microseconds of one UPSERT_SQL of the rows in json (a JSON array). */
static double time_upsert(PGconn *c, const char *json)
{
	const char *p[1] = { json };
	double t = now_us();
	PGresult *r = PQexecParams(c, UPSERT_SQL, 1, NULL, p, NULL, NULL, 0);

	if (PQresultStatus(r) != PGRES_COMMAND_OK)
		die("batch upsert: %s", PQerrorMessage(c));
	PQclear(r);
	return now_us() - t;
}

/* Has the queued write of record id reached PostgreSQL? (1 or 0; a key lookup) */
static long long queued_landed(PGconn *c, long long id)
{
	char sql[256];

	snprintf(sql, sizeof(sql), "SELECT count(*) FROM \"User\" WHERE id = %lld "
		 "AND name LIKE '%%, queued, %%'", id);
	return pg_ll(c, sql);
}

static void scen_drain_wait(void)
{
	char sql[512], block[160], path[4096];
	PGconn *c = NULL;
	double t0, start = now_us(), first = -1, all = -1, t, tu;
	long long n = opt_n, landed = 0, lo = id_of(5, 0), hi = id_of(5, opt_n - 1);
	size_t cap = (size_t)opt_n * 200 + 16, len = 0;
	char *json;
	int polls = 0;
	struct apply_metrics m0, m1;

	printf("== drain-wait: until %lld queued writes are in PostgreSQL\n", n);
	fflush(stdout);
	read_apply_metrics(&m0);
	/* PostgreSQL coming back, as a client sees it: the first connection that works */
	for (;;) {
		c = PQconnectdb(opt_pg);
		if (PQstatus(c) == CONNECTION_OK)
			break;
		PQfinish(c);
		if (now_us() - start > (double)opt_time_limit * 1e6)
			die("PostgreSQL did not come back within %ld s", opt_time_limit);
		sleep_us(5000);
	}
	t0 = now_us();
	/* The poll must not load the server it times: a count over the 20,000 rows every 10 ms
	 * took ~60% of a core. A block's writes land in order, so the first row has landed
	 * when the first write's has, and all of them when the last write's has; the count
	 * only confirms that. */
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM \"User\" WHERE id BETWEEN %lld AND %lld "
		 "AND name LIKE '%%, queued, %%'", lo, hi);
	while (landed < n) {
		if (first < 0)
			landed = queued_landed(c, lo);
		else if (queued_landed(c, hi))
			landed = pg_ll(c, sql);
		polls++;
		t = now_us() - t0;
		if (landed > 0 && first < 0)
			first = t;
		if (landed >= n) {
			all = t;
			break;
		}
		if (t > (double)opt_time_limit * 1e6) {
			landed = pg_ll(c, sql);
			break;
		}
		sleep_us(10000);
	}
	if (all < 0) {
		printf("drain-wait   only %lld of %lld rows after %ld s\n", landed, n, opt_time_limit);
	}
	sleep_us(300000);	/* the last batch settles in the block after its commit */
	read_apply_metrics(&m1);
	print_apply_cost(&m0, &m1);
	/* the sync-status of the block, once PostgreSQL has everything */
	block_name(block, sizeof(block), "drain");
	snprintf(path, sizeof(path), "%s/%s/sync-status", opt_mount, block);
	{
		char st[4096];
		ssize_t k = mount_read(path, st, sizeof(st) - 1);
		if (k > 0) {
			char *pend;
			st[k] = 0;
			pend = strstr(st, "pending ");
			if (pend)
				printf("drain-wait   %s sync-status: %.*s\n", block,
				       (int)strcspn(pend, "\n"), pend);
		}
	}
	/* the baseline: one statement upserting the same rows */
	json = malloc(cap);
	if (!json)
		die("out of memory");
	json[len++] = '[';
	for (long i = 0; i < opt_n; i++) {
		char doc[512];
		int l = make_doc(doc, sizeof(doc), id_of(5, i), "queued");
		if (i)
			json[len++] = ',';
		memcpy(json + len, doc, (size_t)l - 1);	/* without the newline */
		len += (size_t)l - 1;
	}
	json[len++] = ']';
	json[len] = 0;
	ensure_bench_user(c);
	snprintf(sql, sizeof(sql), "DELETE FROM \"BenchUser\" WHERE id BETWEEN %lld AND %lld", lo,
		 hi);
	pg_cmd(c, sql);
	t = time_upsert(c, json);
	/* the drain updates rows that exist; the statement above inserted into emptied ones:
	 * the same statement again, over the rows it just wrote, is that work */
	tu = time_upsert(c, json);
	free(json);
	{
		double span = all > 0 && first >= 0 ? all - first : NAN;
		double rate = all > 0 ? (double)n * 1e6 / all : NAN;
		double rate_span = span > 0 ? (double)n * 1e6 / span : NAN;
		double base = (double)n * 1e6 / t;
		printf("drain-wait   mount  first row after %.3f s, all %lld after %.3f s: %.0f rows/s "
		       "(%.0f rows/s from the first to the last)\n", first / 1e6, n, all / 1e6, rate,
		       rate_span);
		printf("drain-wait   libpq  one json_populate_recordset upsert of %lld rows: %.3f s "
		       "(%.0f rows/s) into emptied rows, %.3f s (%.0f rows/s) over existing ones\n",
		       n, t / 1e6, base, tu / 1e6, (double)n * 1e6 / tu);
		printf("RESULT %s rows=%lld landed=%lld first_s=%.3f all_s=%.3f drain_rows_s=%.0f "
		       "drain_span_rows_s=%.0f batch_s=%.3f batch_rows_s=%.0f ratio=%.3f "
		       "batch_update_s=%.3f ratio_update=%.3f goal=>=0.50 %s "
		       "first_goal=<=5s %s polls=%d\n", rname("drain"), n, landed, first / 1e6,
		       all / 1e6, rate, rate_span, t / 1e6, base, rate / base, tu / 1e6,
		       rate * tu / (double)n / 1e6, rate / base >= 0.5 ? "MET" : "NOT-MET",
		       first >= 0 && first <= 5e6 ? "MET" : "NOT-MET", polls);
	}
	fflush(stdout);
	PQfinish(c);
}

/* ---- memory ---------------------------------------------------------------------------------- */

static long proc_kb(long pid, const char *key)
{
	char path[64], line[256];
	size_t kl = strlen(key);
	long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%ld/status", pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, key, kl) == 0 && line[kl] == ':')
			v = strtol(line + kl + 1, NULL, 10);
	fclose(f);
	return v;
}

static long proc_fds(long pid)
{
	char path[64];
	DIR *d;
	struct dirent *de;
	long n = 0;

	snprintf(path, sizeof(path), "/proc/%ld/fd", pid);
	d = opendir(path);
	if (!d)
		return -1;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static void scen_memory(void)
{
	PGconn *c = pg_open();
	char sql[512], path[4096], doc[512];
	long nb = opt_mem_blocks, done = 0, k;
	long long nr = opt_mem_records, have;
	long rss0, rss1, hwm1;
	double t0, t, el;
	int stopped = 0;

	if (opt_pid <= 0)
		die("memory: --pid PID (the daemon's) is required");
	printf("== memory: %ld blocks touched, %lld records in total (loader rule 'block mem-{n}')\n",
	       nb, nr);
	have = pg_ll(c, "SELECT count(*) FROM \"BenchMem\"");
	snprintf(sql, sizeof(sql),
		 "SELECT count(*) FROM \"BenchMem\" WHERE blk = ((id - 1) %% %ld)::text", nb);
	if (have != nr || pg_ll(c, sql) != nr) {
		pg_cmd(c, "TRUNCATE \"BenchMem\"");
		snprintf(sql, sizeof(sql),
			 "INSERT INTO \"BenchMem\" (id, blk, name) SELECT g, ((g - 1) %% %ld)::text, "
			 "'Mem user ' || g || ', a name long enough to make the row about 150 bytes "
			 "long, like the others' FROM generate_series(1, %lld) g", nb, nr);
		t = now_us();
		pg_cmd(c, sql);
		pg_cmd(c, "ANALYZE \"BenchMem\"");
		printf("memory       %lld rows inserted into \"BenchMem\" in %.1f s\n", nr,
		       (now_us() - t) / 1e6);
	}
	rss0 = proc_kb(opt_pid, "VmRSS");
	printf("memory       daemon VmRSS before: %.1f MiB, %ld fds\n", rss0 / 1024.0,
	       proc_fds(opt_pid));
	t0 = now_us();
	for (k = 0; k < nb; k++) {
		snprintf(path, sizeof(path), "%s/mem-%ld", opt_mount, k);
		if (mkdir(path, 0755) != 0 && errno != EEXIST)
			die("mkdir %s after %ld blocks: %s", path, done, strerror(errno));
		/* touch: read one of its records */
		snprintf(path, sizeof(path), "%s/mem-%ld/BenchMem/%ld.json", opt_mount, k, k + 1);
		if (k + 1 <= nr && mount_read(path, doc, sizeof(doc)) <= 0)
			die("read %s: %s", path, strerror(errno));
		done++;
		if (done % 1000 == 0) {
			printf("memory       %ld blocks after %.1f s, VmRSS %.1f MiB\n", done,
			       (now_us() - t0) / 1e6, proc_kb(opt_pid, "VmRSS") / 1024.0);
			fflush(stdout);
		}
		if (now_us() - t0 > (double)opt_time_limit * 1e6) {
			stopped = 1;
			break;
		}
	}
	el = now_us() - t0;
	sleep_us(1e6);	/* let the loaders' and the sync's buffers settle */
	rss1 = proc_kb(opt_pid, "VmRSS");
	hwm1 = proc_kb(opt_pid, "VmHWM");
	{
		long long records = (long long)((double)nr * (double)done / (double)nb);
		printf("memory       %ld blocks (%lld records) in %.1f s (%.0f blocks/s)%s\n", done,
		       records, el / 1e6, done * 1e6 / el,
		       stopped ? ", stopped at the time limit" : "");
		printf("memory       daemon VmRSS after: %.1f MiB (peak VmHWM %.1f MiB), %ld fds, "
		       "%ld threads\n", rss1 / 1024.0, hwm1 / 1024.0, proc_fds(opt_pid),
		       proc_kb(opt_pid, "Threads"));
		printf("RESULT %s blocks=%ld records=%lld complete=%s seconds=%.1f rss_before_mib=%.1f "
		       "rss_mib=%.1f hwm_mib=%.1f goal=<64MiB %s\n", rname("memory"), done, records,
		       stopped ? "no" : "yes", el / 1e6, rss0 / 1024.0, rss1 / 1024.0, hwm1 / 1024.0,
		       rss1 < 64 * 1024 ? "MET" : "NOT-MET");
	}
	fflush(stdout);
	PQfinish(c);
}

/* ---- change capture: visibility across nodes and of direct SQL, and its cost ----------------- */

/* `sharded capture install|remove --pg CONNINFO`, the CLI next to this binary (or --sharded) */
static void run_capture_cli(const char *what)
{
	char self[4096], bin[4096];
	const char *path = opt_sharded;
	pid_t pid;
	int status;

	if (!path) {
		ssize_t k = readlink("/proc/self/exe", self, sizeof(self) - 1);
		char *slash;

		if (k <= 0)
			die("readlink /proc/self/exe: %s (give --sharded)", strerror(errno));
		self[k] = '\0';
		slash = strrchr(self, '/');
		if (slash)
			*slash = '\0';
		snprintf(bin, sizeof(bin), "%s/sharded", self);
		path = bin;
	}
	pid = fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		int fd = open("/dev/null", O_WRONLY);

		if (fd >= 0)
			dup2(fd, STDOUT_FILENO);
		execl(path, "sharded", "capture", what, "--pg", opt_pg, (char *)NULL);
		fprintf(stderr, "sharded-bench: exec %s: %s\n", path, strerror(errno));
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		die("%s capture %s failed (status %d)", path, what, status);
}

/* the record file at path holds needle (one open+read+close, as an application reads it) */
static int file_shows(const char *path, const char *needle)
{
	char buf[2048];
	ssize_t k = mount_read(path, buf, sizeof(buf) - 1);

	if (k <= 0)
		return 0;
	buf[k] = '\0';
	return strstr(buf, needle) != NULL;
}

/* a block's sync-status holds line (e.g. "capture up", "pending 0") */
static int status_has(const char *mount, const char *block, const char *line)
{
	char path[4096], st[4096], *p;
	ssize_t k;
	size_t len = strlen(line);

	snprintf(path, sizeof(path), "%s/%s/sync-status", mount, block);
	if ((k = mount_read(path, st, sizeof(st) - 1)) <= 0)
		return 0;
	st[k] = '\0';
	for (p = st; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
		if (strncmp(p, line, len) == 0 && (p[len] == '\n' || p[len] == ' ' || !p[len]))
			return 1;
	return 0;
}

/* wait up to max_s for the block's sync to be idle ("pending 0") */
static void wait_pending0(const char *mount, const char *block, double max_s)
{
	double t0 = now_us();

	while (!status_has(mount, block, "pending 0") && now_us() - t0 < max_s * 1e6)
		sleep_us(2000);
}

#define VIS_TIMEOUT_US 10e6	/* a sample not visible by then is counted as never seen */
#define VIS_POLL_US 1000
#define VIS_GAP_US 50000	/* between samples, after the sync is idle */

static void vis_print(const char *what, struct stats *s, long lost)
{
	printf("visibility   %-8s n=%-5zu median %8.1f ms   p99 %8.1f ms   max %8.1f ms   "
	       "not seen in %.0f s: %ld\n", what, s->n, st_pct(s, 50) / 1e3, st_pct(s, 99) / 1e3,
	       st_pct(s, 100) / 1e3, VIS_TIMEOUT_US / 1e6, lost);
}

/* visibility: mounts A (--mount) and B (--mount2), two nodes on one PostgreSQL and Redis, hold
 * one block; capture installed. cross: a write on A (open O_TRUNC+write+close) until B's file
 * shows it, B polled by open+read+close every 1 ms. direct: an UPDATE over libpq (autocommit)
 * until A's and B's files show it. Between samples the sync is idle and 50 ms pass. */
static void scen_visibility(void)
{
	char block[160], pa[4096], pb[4096], doc[512], needle[64], ids[32], name[200];
	const char *p[2] = { ids, name };
	struct stats cross = { 0 }, da = { 0 }, db = { 0 };
	long w = opt_warmup >= 0 ? opt_warmup : 3, i, lost_c = 0, lost_a = 0, lost_b = 0;
	long long id = id_of(6, 0);
	PGconn *c;
	double t, t0;
	int len;

	if (!opt_mount2)
		die("visibility needs --mount2 (a second node's mount, same PostgreSQL and Redis)");
	c = pg_open();
	run_capture_cli("install");
	block_name(block, sizeof(block), "vis");
	ensure_block(block);
	{
		char path[4096];

		snprintf(path, sizeof(path), "%s/%s", opt_mount2, block);
		if (mkdir(path, 0755) != 0 && errno != EEXIST)
			die("mkdir %s: %s", path, strerror(errno));
	}
	printf("== visibility: write on node A until node B shows it, and an UPDATE over libpq until "
	       "A and B show it (n=%ld each, warm-up %ld, polled every %.0f ms)\n", opt_n, w,
	       VIS_POLL_US / 1e3);
	t0 = now_us();
	while (!(status_has(opt_mount, block, "capture up") && status_has(opt_mount2, block, "capture up"))) {
		if (now_us() - t0 > 30e6)
			die("the nodes' sync-status does not say 'capture up' after 30 s (is "
			    "-o capture=off set?)");
		sleep_us(20000);
	}
	printf("visibility   capture up on both nodes after %.2f s\n", (now_us() - t0) / 1e6);
	record_path(pa, sizeof(pa), block, "User", id);
	snprintf(pb, sizeof(pb), "%s/%s/User/%lld.json", opt_mount2, block, id);
	/* the record exists in PostgreSQL, then B reads it (through to PostgreSQL): B holds it */
	len = make_doc(doc, sizeof(doc), id, "vis-0");
	if (mount_write(pa, doc, (size_t)len) != 0)
		die("write %s: %s", pa, strerror(errno));
	wait_pending0(opt_mount, block, 30);
	t0 = now_us();
	while (!file_shows(pb, ", vis-0, ")) {
		if (now_us() - t0 > VIS_TIMEOUT_US)
			die("node B does not show the record node A wrote (%s)", pb);
		sleep_us(VIS_POLL_US);
	}
	for (i = 0; i < w + opt_n; i++) {
		char tag[32];

		snprintf(tag, sizeof(tag), "cross-%ld", i);
		snprintf(needle, sizeof(needle), ", %s, ", tag);
		len = make_doc(doc, sizeof(doc), id, tag);
		t = now_us();
		if (mount_write(pa, doc, (size_t)len) != 0)
			die("write %s: %s", pa, strerror(errno));
		for (;;) {
			if (file_shows(pb, needle)) {
				if (i >= w)
					st_add(&cross, now_us() - t);
				break;
			}
			if (now_us() - t > VIS_TIMEOUT_US) {
				if (i >= w)
					lost_c++;
				printf("visibility   cross sample %ld: node B did not show it in %.0f s\n",
				       i, VIS_TIMEOUT_US / 1e6);
				break;
			}
			sleep_us(VIS_POLL_US);
		}
		wait_pending0(opt_mount, block, 30);
		sleep_us(VIS_GAP_US);
	}
	pg_prepare(c, "vis_upd", "UPDATE \"User\" SET name = $2 WHERE id = $1", 2);
	snprintf(ids, sizeof(ids), "%lld", id);
	for (i = 0; i < w + opt_n; i++) {
		PGresult *r;
		int seen_a = 0, seen_b = 0;

		snprintf(needle, sizeof(needle), ", direct-%ld, ", i);
		snprintf(name, sizeof(name), "Bench user %lld, direct-%ld, a name long enough to make "
			 "the document about 150 bytes", id, i);
		t = now_us();
		r = PQexecPrepared(c, "vis_upd", 2, p, NULL, NULL, 0);
		if (PQresultStatus(r) != PGRES_COMMAND_OK || strcmp(PQcmdTuples(r), "1") != 0)
			die("update of User %lld: %s", id, PQerrorMessage(c));
		PQclear(r);
		while (!seen_a || !seen_b) {
			if (!seen_a && file_shows(pa, needle)) {
				seen_a = 1;
				if (i >= w)
					st_add(&da, now_us() - t);
			}
			if (!seen_b && file_shows(pb, needle)) {
				seen_b = 1;
				if (i >= w)
					st_add(&db, now_us() - t);
			}
			if ((!seen_a || !seen_b) && now_us() - t > VIS_TIMEOUT_US) {
				if (i >= w) {
					lost_a += !seen_a;
					lost_b += !seen_b;
				}
				printf("visibility   direct sample %ld: not shown in %.0f s by node%s%s\n",
				       i, VIS_TIMEOUT_US / 1e6, seen_a ? "" : " A", seen_b ? "" : " B");
				break;
			}
			if (!seen_a || !seen_b)
				sleep_us(VIS_POLL_US);
		}
		sleep_us(VIS_GAP_US);
	}
	vis_print("cross", &cross, lost_c);
	vis_print("direct@A", &da, lost_a);
	vis_print("direct@B", &db, lost_b);
	{
		int met = !lost_c && !lost_a && !lost_b && cross.n && da.n && db.n &&
			  st_pct(&cross, 99) < 100e3 && st_pct(&da, 99) < 100e3 && st_pct(&db, 99) < 100e3;

		printf("RESULT %s n=%ld cross_p50_ms=%.1f cross_p99_ms=%.1f cross_max_ms=%.1f "
		       "cross_lost=%ld direct_p50_ms=%.1f direct_p99_ms=%.1f direct_max_ms=%.1f "
		       "direct_lost=%ld direct_b_p50_ms=%.1f direct_b_p99_ms=%.1f direct_b_max_ms=%.1f "
		       "direct_b_lost=%ld goal=p99<100ms %s\n", rname("visibility"), opt_n,
		       st_pct(&cross, 50) / 1e3, st_pct(&cross, 99) / 1e3, st_pct(&cross, 100) / 1e3,
		       lost_c, st_pct(&da, 50) / 1e3, st_pct(&da, 99) / 1e3, st_pct(&da, 100) / 1e3,
		       lost_a, st_pct(&db, 50) / 1e3, st_pct(&db, 99) / 1e3, st_pct(&db, 100) / 1e3,
		       lost_b, met ? "MET" : "NOT-MET");
	}
	st_free(&cross);
	st_free(&da);
	st_free(&db);
	PQfinish(c);
}

/* capture-cost: the application's own writes over libpq to "BenchApp" (a model: capture puts
 * its triggers on it), with capture removed and installed, alternated --rounds times. */
struct app_thr {
	pthread_t th;
	PGconn *c;
	pthread_barrier_t *bar;
	double stop_at;
	long count;
	unsigned seed;
};

static void *app_main(void *arg)
{
	struct app_thr *a = arg;
	char ids[32];
	const char *p[1] = { ids };

	pthread_barrier_wait(a->bar);
	while (now_us() < a->stop_at) {
		PGresult *r;

		snprintf(ids, sizeof(ids), "%d", 1 + (int)(rand_r(&a->seed) % (unsigned)opt_bulk_rows));
		r = PQexecPrepared(a->c, "app_upd", 1, p, NULL, NULL, 0);
		if (PQresultStatus(r) != PGRES_COMMAND_OK)
			die("app update: %s", PQerrorMessage(a->c));
		PQclear(r);
		a->count++;
	}
	return NULL;
}

/* single-row UPDATEs per second from `clients` connections for --rate-seconds */
static double app_rate(int clients)
{
	struct app_thr t[8];
	pthread_barrier_t bar;
	double t0, el;
	long total = 0;

	pthread_barrier_init(&bar, NULL, (unsigned)clients + 1);
	for (int i = 0; i < clients; i++) {
		memset(&t[i], 0, sizeof(t[i]));
		t[i].c = pg_open();
		pg_prepare(t[i].c, "app_upd", "UPDATE \"BenchApp\" SET n = n + 1 WHERE id = $1", 1);
		t[i].bar = &bar;
		t[i].seed = (unsigned)(i * 7919 + 17);
		t[i].stop_at = 1e300;
	}
	for (int i = 0; i < clients; i++)
		if (pthread_create(&t[i].th, NULL, app_main, &t[i]) != 0)
			die("pthread_create failed");
	t0 = now_us();
	for (int i = 0; i < clients; i++)
		t[i].stop_at = t0 + (double)opt_rate_s * 1e6;
	pthread_barrier_wait(&bar);
	for (int i = 0; i < clients; i++) {
		pthread_join(t[i].th, NULL);
		total += t[i].count;
		PQfinish(t[i].c);
	}
	el = now_us() - t0;
	pthread_barrier_destroy(&bar);
	return (double)total * 1e6 / el;
}

/* ms of one UPDATE of every row of "BenchApp" (median of 3) */
static double app_bulk_ms(PGconn *c)
{
	struct stats s = { 0 };
	double v;

	for (int k = 0; k < 3; k++) {
		double t = now_us();

		pg_cmd(c, "UPDATE \"BenchApp\" SET n = n + 1");
		st_add(&s, now_us() - t);
	}
	v = st_pct(&s, 50) / 1e3;
	st_free(&s);
	return v;
}

static double mean_of(const double *v, int n)
{
	double s = 0;

	for (int i = 0; i < n; i++)
		s += v[i];
	return n ? s / n : NAN;
}

static void scen_capture_cost(void)
{
	enum { MAXR = 16 };
	double r1[2][MAXR], r4[2][MAXR], bulk[2][MAXR];
	int rounds = (int)(opt_rounds < MAXR ? opt_rounds : MAXR);
	PGconn *c = pg_open();
	char sql[512];

	pg_cmd(c, "SET client_min_messages = warning");
	pg_cmd(c, "CREATE TABLE IF NOT EXISTS \"BenchApp\" (id int PRIMARY KEY, n int NOT NULL)");
	snprintf(sql, sizeof(sql), "INSERT INTO \"BenchApp\" SELECT g, 0 FROM generate_series(1, %ld) g "
		 "ON CONFLICT (id) DO NOTHING", opt_bulk_rows);
	pg_cmd(c, sql);
	snprintf(sql, sizeof(sql), "DELETE FROM \"BenchApp\" WHERE id > %ld", opt_bulk_rows);
	pg_cmd(c, sql);
	pg_cmd(c, "VACUUM ANALYZE \"BenchApp\"");
	printf("== capture-cost: the application's single-row UPDATEs of \"BenchApp\" (%ld rows) over "
	       "libpq, 1 and 4 clients, %ld s each, and one UPDATE of all %ld rows (median of 3), "
	       "capture removed vs installed, %d rounds\n", opt_bulk_rows, opt_rate_s, opt_bulk_rows,
	       rounds);
	for (int r = 0; r < rounds; r++) {
		for (int on = 0; on < 2; on++) {
			run_capture_cli(on ? "install" : "remove");
			sleep_us(300000);
			r1[on][r] = app_rate(1);
			r4[on][r] = app_rate(4);
			bulk[on][r] = app_bulk_ms(c);
			printf("capture-cost round %d capture %-3s  1 client %7.0f writes/s   4 clients %7.0f "
			       "writes/s   bulk %ld rows %8.1f ms\n", r + 1, on ? "on" : "off", r1[on][r],
			       r4[on][r], opt_bulk_rows, bulk[on][r]);
		}
	}
	{
		double o1 = mean_of(r1[0], rounds), n1 = mean_of(r1[1], rounds);
		double o4 = mean_of(r4[0], rounds), n4 = mean_of(r4[1], rounds);
		double ob = mean_of(bulk[0], rounds), nb = mean_of(bulk[1], rounds);

		printf("capture-cost mean    1 client %.0f -> %.0f writes/s (ratio %.2f), 4 clients %.0f -> "
		       "%.0f writes/s (ratio %.2f), bulk %.1f -> %.1f ms (ratio %.2f)\n", o1, n1, n1 / o1,
		       o4, n4, n4 / o4, ob, nb, nb / ob);
		printf("RESULT %s rounds=%d seconds=%ld off_1c_writes_s=%.0f on_1c_writes_s=%.0f "
		       "ratio_1c=%.2f off_4c_writes_s=%.0f on_4c_writes_s=%.0f ratio_4c=%.2f "
		       "bulk_rows=%ld off_bulk_ms=%.1f on_bulk_ms=%.1f ratio_bulk=%.2f\n",
		       rname("capture-cost"), rounds, opt_rate_s, o1, n1, n1 / o1, o4, n4, n4 / o4,
		       opt_bulk_rows, ob, nb, nb / ob);
	}
	PQfinish(c);
}

/* ---- delaying TCP proxy ---------------------------------------------------------------------- */

struct chunk {
	struct chunk *next;
	double due;
	size_t len;
	char data[];
};

struct pconn {
	int cfd, sfd;
	atomic_int refs;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct chunk *head, *tail;
	int eof;
	double delay_us;
};

static void pconn_put(struct pconn *p)
{
	if (atomic_fetch_sub(&p->refs, 1) != 1)
		return;
	while (p->head) {
		struct chunk *c = p->head;
		p->head = c->next;
		free(c);
	}
	close(p->cfd);
	close(p->sfd);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->cond);
	free(p);
}

static int write_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t w = send(fd, buf, len, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		buf += w;
		len -= (size_t)w;
	}
	return 0;
}

/* client -> queue */
static void *px_up(void *arg)
{
	struct pconn *p = arg;
	char buf[65536];

	for (;;) {
		ssize_t r = recv(p->cfd, buf, sizeof(buf), 0);
		struct chunk *c;
		if (r < 0 && errno == EINTR)
			continue;
		pthread_mutex_lock(&p->lock);
		if (r <= 0) {
			p->eof = 1;
			pthread_cond_signal(&p->cond);
			pthread_mutex_unlock(&p->lock);
			break;
		}
		c = malloc(sizeof(*c) + (size_t)r);
		if (!c)
			abort();
		c->next = NULL;
		c->due = now_us() + p->delay_us;
		c->len = (size_t)r;
		memcpy(c->data, buf, (size_t)r);
		if (p->tail)
			p->tail->next = c;
		else
			p->head = c;
		p->tail = c;
		pthread_cond_signal(&p->cond);
		pthread_mutex_unlock(&p->lock);
	}
	pconn_put(p);
	return NULL;
}

/* queue -> server, each chunk once it is due */
static void *px_send(void *arg)
{
	struct pconn *p = arg;

	for (;;) {
		struct chunk *c;
		pthread_mutex_lock(&p->lock);
		while (!p->head && !p->eof)
			pthread_cond_wait(&p->cond, &p->lock);
		c = p->head;
		if (!c) {	/* eof and nothing left */
			pthread_mutex_unlock(&p->lock);
			shutdown(p->sfd, SHUT_WR);
			break;
		}
		p->head = c->next;
		if (!p->head)
			p->tail = NULL;
		pthread_mutex_unlock(&p->lock);
		sleep_us(c->due - now_us());
		if (write_all(p->sfd, c->data, c->len) != 0) {
			free(c);
			shutdown(p->cfd, SHUT_RDWR);
			break;
		}
		free(c);
	}
	pconn_put(p);
	return NULL;
}

/* server -> client, undelayed */
static void *px_down(void *arg)
{
	struct pconn *p = arg;
	char buf[65536];

	for (;;) {
		ssize_t r = recv(p->sfd, buf, sizeof(buf), 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0 || write_all(p->cfd, buf, (size_t)r) != 0)
			break;
	}
	shutdown(p->cfd, SHUT_RDWR);
	shutdown(p->sfd, SHUT_RDWR);
	pconn_put(p);
	return NULL;
}

static int run_proxy(int argc, char **argv)
{
	struct sockaddr_in la = { 0 }, ta = { 0 };
	int lfd, one = 1;
	double delay;

	if (argc != 5 && argc != 6) {
		usage(stderr);
		return 2;
	}
	la.sin_family = ta.sin_family = AF_INET;
	la.sin_port = htons((uint16_t)atoi(argv[1]));
	inet_pton(AF_INET, "127.0.0.1", &la.sin_addr);
	ta.sin_port = htons((uint16_t)atoi(argv[3]));
	if (inet_pton(AF_INET, argv[2], &ta.sin_addr) != 1) {
		fprintf(stderr, "sharded-bench proxy: '%s' is not an IPv4 address\n", argv[2]);
		return 2;
	}
	delay = atof(argv[4]) * 1000.0;
	signal(SIGPIPE, SIG_IGN);
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&la, sizeof(la)) != 0 || listen(lfd, 64) != 0)
		die("proxy: cannot listen on 127.0.0.1:%s: %s", argv[1], strerror(errno));
	if (argc == 6) {
		/* the listening socket stays where it is; the connections to the server are made
		 * from inside the given network namespace */
		int nfd = open(argv[5], O_RDONLY | O_CLOEXEC);
		if (nfd < 0 || setns(nfd, CLONE_NEWNET) != 0)
			die("proxy: cannot enter network namespace %s: %s", argv[5], strerror(errno));
		close(nfd);
	}
	fprintf(stderr, "sharded-bench proxy: 127.0.0.1:%s -> %s:%s, +%s ms per round trip\n",
		argv[1], argv[2], argv[3], argv[4]);
	for (;;) {
		int cfd = accept(lfd, NULL, NULL), sfd;
		struct pconn *p;
		pthread_t th;

		if (cfd < 0) {
			if (errno == EINTR)
				continue;
			die("proxy: accept: %s", strerror(errno));
		}
		sfd = socket(AF_INET, SOCK_STREAM, 0);
		if (sfd < 0 || connect(sfd, (struct sockaddr *)&ta, sizeof(ta)) != 0) {
			close(cfd);
			if (sfd >= 0)
				close(sfd);
			continue;
		}
		setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		setsockopt(sfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		p = calloc(1, sizeof(*p));
		if (!p)
			abort();
		p->cfd = cfd;
		p->sfd = sfd;
		p->delay_us = delay;
		atomic_init(&p->refs, 3);
		pthread_mutex_init(&p->lock, NULL);
		pthread_cond_init(&p->cond, NULL);
		if (pthread_create(&th, NULL, px_up, p) || pthread_detach(th) ||
		    pthread_create(&th, NULL, px_send, p) || pthread_detach(th) ||
		    pthread_create(&th, NULL, px_down, p) || pthread_detach(th))
			die("proxy: pthread_create failed");
	}
	return 0;
}

/* ---- one operation, for counting FUSE requests ------------------------------------------------ */

/* io write PATH TEXT | io read PATH: exactly what the scenarios time, once (tools/bench.sh
 * counts the requests each causes in a mount's -o debug output) */
static int run_io(int argc, char **argv)
{
	char buf[65536];

	if (argc == 4 && strcmp(argv[1], "write") == 0) {
		if (mount_write(argv[2], argv[3], strlen(argv[3])) == 0)
			return 0;
	} else if (argc == 3 && strcmp(argv[1], "read") == 0) {
		if (mount_read(argv[2], buf, sizeof(buf)) >= 0)
			return 0;
	} else {
		usage(stderr);
		return 2;
	}
	fprintf(stderr, "sharded-bench io %s %s: %s\n", argv[1], argv[2], strerror(errno));
	return 1;
}

/* ---- main ------------------------------------------------------------------------------------ */

static int parse_long(const char *s, long min, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min)
		return -1;
	*out = v;
	return 0;
}

static int known_scenario(const char *s)
{
	static const char *extra[] = { "drain-prep", "drain-queue", "drain-wait", "memory", "nextid",
				       "visibility", "capture-cost", "readro", NULL };

	for (int i = 0; all_scenarios[i]; i++)
		if (strcmp(s, all_scenarios[i]) == 0)
			return 1;
	for (int i = 0; extra[i]; i++)
		if (strcmp(s, extra[i]) == 0)
			return 1;
	return 0;
}

int main(int argc, char **argv)
{
	enum { O_N = 256, O_WARMUP, O_RUN, O_LABEL, O_THREADS, O_LS, O_MEMB, O_MEMR, O_PID, O_TL, O_M2, O_SHARDED,
	       O_RATE, O_ROUNDS, O_BULK };
	static const struct option lopts[] = {
		{ "mount", required_argument, NULL, 'm' },
		{ "pg", required_argument, NULL, 'p' },
		{ "block", required_argument, NULL, 'b' },
		{ "n", required_argument, NULL, O_N },
		{ "warmup", required_argument, NULL, O_WARMUP },
		{ "scenario", required_argument, NULL, 's' },
		{ "run", required_argument, NULL, O_RUN },
		{ "label", required_argument, NULL, O_LABEL },
		{ "threads", required_argument, NULL, O_THREADS },
		{ "ls-records", required_argument, NULL, O_LS },
		{ "mem-blocks", required_argument, NULL, O_MEMB },
		{ "mem-records", required_argument, NULL, O_MEMR },
		{ "pid", required_argument, NULL, O_PID },
		{ "time-limit", required_argument, NULL, O_TL },
		{ "mount2", required_argument, NULL, O_M2 },
		{ "sharded", required_argument, NULL, O_SHARDED },
		{ "rate-seconds", required_argument, NULL, O_RATE },
		{ "rounds", required_argument, NULL, O_ROUNDS },
		{ "bulk-rows", required_argument, NULL, O_BULK },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	int c, li = -1;
	long v;

	if (argc > 1 && strcmp(argv[1], "proxy") == 0)
		return run_proxy(argc - 1, argv + 1);
	if (argc > 1 && strcmp(argv[1], "io") == 0)
		return run_io(argc - 1, argv + 1);
	setvbuf(stdout, NULL, _IOLBF, 0);
	while ((c = getopt_long(argc, argv, "m:p:b:s:h", lopts, &li)) != -1) {
		long *target = NULL, min = 1;
		switch (c) {
		case 'm': opt_mount = optarg; continue;
		case 'p': opt_pg = optarg; continue;
		case 'b': opt_block = optarg; continue;
		case O_LABEL: opt_label = optarg; continue;
		case O_M2: opt_mount2 = optarg; continue;
		case O_SHARDED: opt_sharded = optarg; continue;
		case 's':
			/* --scenario a b c: the names up to the next option */
			optind--;
			while (optind < argc && argv[optind][0] != '-') {
				if (!known_scenario(argv[optind])) {
					fprintf(stderr, "sharded-bench: unknown scenario '%s' "
						"(try --help)\n", argv[optind]);
					return 2;
				}
				if (n_scen == MAX_SCEN) {
					fprintf(stderr, "sharded-bench: too many scenarios\n");
					return 2;
				}
				scenarios[n_scen++] = argv[optind++];
			}
			continue;
		case 'h': usage(stdout); return 0;
		case O_N: target = &opt_n; break;
		case O_WARMUP: target = &opt_warmup; min = 0; break;
		case O_THREADS: target = &opt_threads; break;
		case O_LS: target = &opt_ls; break;
		case O_MEMB: target = &opt_mem_blocks; break;
		case O_MEMR: target = &opt_mem_records; break;
		case O_PID: target = &opt_pid; break;
		case O_TL: target = &opt_time_limit; break;
		case O_RATE: target = &opt_rate_s; break;
		case O_ROUNDS: target = &opt_rounds; break;
		case O_BULK: target = &opt_bulk_rows; break;
		case O_RUN:
			if (parse_long(optarg, 0, &v) || v > 90000000L) {
				fprintf(stderr, "sharded-bench: invalid --run '%s'\n", optarg);
				return 2;
			}
			opt_run = v;
			continue;
		default:
			usage(stderr);
			return 2;
		}
		if (parse_long(optarg, min, target)) {
			fprintf(stderr, "sharded-bench: invalid value '%s' for --%s\n", optarg,
				li >= 0 ? lopts[li].name : "?");
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "sharded-bench: unexpected argument '%s' (try --help)\n", argv[optind]);
		return 2;
	}
	if (!opt_mount || !opt_pg) {
		fprintf(stderr, "sharded-bench: --mount and --pg are required (try --help)\n");
		return 2;
	}
	if (opt_threads > 64 || opt_n > 900000 || opt_warmup > 100000) {
		fprintf(stderr, "sharded-bench: --threads <= 64, --n <= 900000, --warmup <= 100000\n");
		return 2;
	}
	if (!opt_block)
		opt_block = "b";
	if (opt_run < 0)
		opt_run = (long long)(time(NULL) % 90000000L);
	if (!n_scen)
		for (n_scen = 0; all_scenarios[n_scen]; n_scen++)
			scenarios[n_scen] = all_scenarios[n_scen];
	{
		struct stat st;
		if (stat(opt_mount, &st) != 0 || !S_ISDIR(st.st_mode))
			die("%s is not a directory", opt_mount);
	}
	printf("sharded-bench: mount %s, run %lld, n %ld\n", opt_mount, opt_run, opt_n);
	for (int i = 0; i < n_scen; i++) {
		const char *s = scenarios[i];
		if (!strcmp(s, "write")) scen_write(0);
		else if (!strcmp(s, "update")) scen_write(1);
		else if (!strcmp(s, "read")) scen_read(0);
		else if (!strcmp(s, "readthrough")) scen_read(1);
		else if (!strcmp(s, "readro")) scen_read(2);
		else if (!strcmp(s, "nextid")) scen_nextid();
		else if (!strcmp(s, "ls")) scen_ls();
		else if (!strcmp(s, "writers")) scen_writers();
		else if (!strcmp(s, "drain-prep")) scen_drain_prep();
		else if (!strcmp(s, "drain-queue")) scen_drain_queue();
		else if (!strcmp(s, "drain-wait")) scen_drain_wait();
		else if (!strcmp(s, "memory")) scen_memory();
		else if (!strcmp(s, "visibility")) scen_visibility();
		else if (!strcmp(s, "capture-cost")) scen_capture_cost();
	}
	return 0;
}
