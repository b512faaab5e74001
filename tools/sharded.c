/* sharded.c - the sharded command-line tool: status, dead letters, cleanup,
 * invalidate, generate, capture. The work is done by core/admin.c (and for generate by
 * core/pg.c, core/prisma.c and core/catalog_file.c); this file parses
 * arguments and formats results.
 *
 * Exit codes: 0 ok, 1 failure, 2 usage. Errors are one line on stderr,
 * "sharded: <message>", and never show a password.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include <json-c/json.h>

#include "admin.h"
#include "blocks.h"
#include "capture.h"
#include "catalog_file.h"
#include "keyname.h"
#include "log.h"
#include "nodereg.h"
#include "pg.h"
#include "prisma.h"
#include "redis.h"
#include "version.h"

#define EXIT_USAGE 2
#define DEFAULT_DATA "/var/lib/sharded"
#define DEFAULT_REDIS "redis://127.0.0.1:6379"
#define REDIS_TIMEOUT_MS 5000
#define NODES_TIMEOUT_MS 1000	/* status without --nodes: the blocks do not wait for Redis */
#define PROGRESS_MIN 5		/* a progress bar only for more items than this */

/* ---- help texts --------------------------------------------------------- */

static const char help_main[] =
	"usage: sharded [--data DIR] [--redis URL] [--verbose] <command> [<args>]\n"
	"       sharded --help | --version\n"
	"\n"
	"Operator commands for a sharded mount, its block files and its Redis.\n"
	"\n"
	"commands:\n"
	"  status [BLOCK] [--json] [--nodes]\n"
	"                                   pending, applied and dead writes per block;\n"
	"                                   the nodes sharing the Redis\n"
	"  dlq list BLOCK [--json]          list a block's dead letters\n"
	"  dlq retry BLOCK [ID...]          write dead letters into the block again\n"
	"  dlq drop BLOCK (--all | ID...)   discard dead letters\n"
	"  cleanup [--include-dead] [--dry-run]\n"
	"                                   remove Redis leftovers of deleted blocks\n"
	"  invalidate BLOCK --mount DIR     drop a block's synced records from its cache\n"
	"  generate [--models A,B] [--schema FILE.prisma] [-o FILE]\n"
	"                                   write the catalog of the exposed models\n"
	"  capture install|remove [--models A,B] [--pg CONNINFO]\n"
	"                                   put (or take off) the triggers that let every\n"
	"                                   mount see changes made in PostgreSQL\n"
	"  bench ARGS                       run sharded-bench (see 'sharded bench --help')\n"
	"\n"
	"options (anywhere on the line):\n"
	"  --data DIR    block files directory (default $SHARDED_DATA, else " DEFAULT_DATA ")\n"
	"  --redis URL   redis://[[user]:password@]host[:port][/db]\n"
	"                (default $REDIS_URL, else " DEFAULT_REDIS ")\n"
	"  --verbose     also print the core library's log messages\n"
	"\n"
	"'sharded <command> --help' describes a command. Exit status: 0 ok, 1 failure,\n"
	"2 usage error.\n";

static const char help_status[] =
	"usage: sharded [--data DIR] [--redis URL] status [BLOCK] [--json] [--nodes]\n"
	"\n"
	"The sync state of every block file in the data directory, or of BLOCK, read\n"
	"from the block files (no server needed; safe while the mount runs):\n"
	"  block      the block id\n"
	"  pending    writes in the outbox, not yet applied to PostgreSQL\n"
	"  applied    writes applied to PostgreSQL, in total\n"
	"  dead       dead letters: writes PostgreSQL refused for good\n"
	"  records    records the block holds\n"
	"  lag_ms     age of the oldest pending write in milliseconds, 0 when none\n"
	"  last_sync  when a batch was last applied (UTC), '-' for never\n"
	"\n"
	"  --json     a JSON array of objects with those keys; last_sync in Unix\n"
	"             seconds, 0 for never\n"
	"\n"
	"Without BLOCK and --json, a table of the nodes (daemons) that share the Redis\n"
	"follows, when Redis answers within a second (a note on stderr otherwise):\n"
	"  node       the node's name (its node= option, by default the host name)\n"
	"  host       the host it runs on\n"
	"  pid        its process id there\n"
	"  version    its sharded version\n"
	"  started    when it started (UTC)\n"
	"  state      'alive', or 'silent N s': no heartbeat for N seconds (killed, or\n"
	"             cut off from Redis); after 5 s the other nodes take over what it\n"
	"             left in Redis. A node that stops cleanly leaves the list.\n"
	"  pending    its writes not yet applied, at its last heartbeat\n"
	"\n"
	"  --nodes    only the nodes (with --json: an array of objects with those keys,\n"
	"             started and seen in Unix seconds, silent_s 0 when alive); fails\n"
	"             when Redis does not answer\n";

static const char help_dlq[] =
	"usage: sharded [--data DIR] [--redis URL] dlq <list|retry|drop> BLOCK ...\n"
	"\n"
	"Dead letters are writes PostgreSQL refused for good (a foreign key violation,\n"
	"a check constraint...). They wait in the Redis stream sharded:{BLOCK}:dead.\n"
	"\n"
	"  dlq list BLOCK [--json]\n"
	"      In their original order: stream id, seq, op (U upsert, D delete),\n"
	"      model, key and PostgreSQL's error. --json adds each document.\n"
	"  dlq retry BLOCK [ID...]\n"
	"      Fix the cause first (e.g. create the missing parent row), then write the\n"
	"      dead letters (all, or the given ids) into the block again, in their\n"
	"      original order, as new writes that sync like any other. A retry writes\n"
	"      the document as it was and overwrites later changes to that record.\n"
	"      Safe to interrupt: run it again (a write may then be applied twice,\n"
	"      with the same content).\n"
	"  dlq drop BLOCK (--all | ID...)\n"
	"      Discard dead letters for good; the records keep PostgreSQL's version.\n";

static const char help_cleanup[] =
	"usage: sharded [--data DIR] [--redis URL] cleanup [--include-dead] [--dry-run]\n"
	"\n"
	"Removes Redis leftovers, found with SCAN:\n"
	"  - the ops streams (sharded:{X}:ops) of blocks X that have no file in the\n"
	"    data directory: their acknowledged entries first, then the stream once\n"
	"    empty or untouched for 10 minutes (X may be another node's block, whose\n"
	"    fresh entries are still needed); no write is lost, the outbox in the\n"
	"    block file is the source and is sent again;\n"
	"  - acknowledged entries of the ops streams of existing blocks (entries not\n"
	"    yet acknowledged stay).\n"
	"\n"
	"  --include-dead  also delete the dead-letter streams (sharded:{X}:dead) of\n"
	"                  blocks without a file: those dead letters are gone for good.\n"
	"                  Several mounts sharing one Redis must not use this.\n"
	"  --dry-run       count what would be removed, remove nothing\n";

static const char help_invalidate[] =
	"usage: sharded invalidate BLOCK --mount DIR\n"
	"\n"
	"Drops every record of BLOCK that is synced from the cache of the sharded\n"
	"filesystem mounted at DIR, so the next read comes fresh from PostgreSQL.\n"
	"Records with pending writes stay. Same as: echo 1 > DIR/BLOCK/invalidate\n";

static const char help_generate[] =
	"usage: sharded generate [--models A,B | --all-models] [--schema-name NAME]\n"
	"                        [--schema FILE.prisma|DIR | --pg CONNINFO] [-o FILE]\n"
	"                        [--skipped]\n"
	"\n"
	"Writes the catalog of the exposed models (tables, columns, types, primary\n"
	"keys) as JSON, for the mount's '-o catalog=FILE': with it the filesystem\n"
	"mounts, and serves its blocks, while PostgreSQL is unreachable.\n"
	"\n"
	"By default the catalog comes from PostgreSQL: every table of the schema with\n"
	"a primary key (one column or several; a partitioned table is one model, its\n"
	"partitions are not models), as the mount sees them. The tables left out\n"
	"(no primary key, views, partitions) are named on standard error.\n"
	"  --pg CONNINFO       libpq connection string or URI (default $DATABASE_URL,\n"
	"                      else libpq's PG* variables)\n"
	"  --schema FILE|DIR   read a Prisma schema (schema.prisma, or a schema folder:\n"
	"                      its .prisma files as one schema) instead: models,\n"
	"                      scalar fields, @id, @map, @@map, enums, '?'; defaults\n"
	"                      Prisma's client makes (cuid(), uuid(), nanoid(), now(),\n"
	"                      @updatedAt) become \"client_default\", filled in by the\n"
	"                      mount. A model without a key the catalog can hold is\n"
	"                      left out with a warning\n"
	"  --schema-name NAME  the PostgreSQL schema (default public)\n"
	"  --models A,B        only these tables (names as in PostgreSQL, i.e. after\n"
	"                      @@map); a name that is not there is an error\n"
	"  --all-models        every table (the default)\n"
	"  --skipped           print the tables left out instead, one a line:\n"
	"                      NAME<TAB>REASON\n"
	"  -o, --output FILE   write to FILE (replaced whole, atomically) instead of\n"
	"                      standard output\n"
	"\n"
	"The format: {\"format\": \"sharded-catalog\", \"version\": 2, \"schema\": NAME,\n"
	"\"models\": [{\"name\", \"primary_key\", \"columns\": [{\"name\", \"type\",\n"
	"\"typname\", \"not_null\", \"has_default\", \"generated\", \"base\", \"typmod\",\n"
	"\"array\", \"elem_not_null\"[, \"labels\"][, \"client_default\"]}]}],\n"
	"\"skipped\": [{\"name\", \"reason\"}]} (see core/catalog_file.h).\n";

static const char help_capture[] =
	"usage: sharded capture install [--models A,B] [--schema-name NAME] [--pg CONNINFO]\n"
	"       sharded capture remove [--pg CONNINFO]\n"
	"\n"
	"install puts AFTER INSERT/UPDATE/DELETE statement triggers (and an AFTER\n"
	"TRUNCATE one) on the table of every model (default: every table of the schema\n"
	"with a primary key), in one transaction. Each changed row adds its table and key\n"
	"(never the row) to the unlogged table " CAPTURE_SCHEMA ".changes, and every mount\n"
	"with -o capture=auto (the default) or on updates the blocks holding that row.\n"
	"The trigger functions live in schema \"" CAPTURE_SCHEMA "\"; install replaces\n"
	"what an earlier install made. remove drops that schema and every trigger with it.\n"
	"Both are idempotent. The connection is --pg, else $DATABASE_URL, else libpq's\n"
	"PG* variables; it needs the right to create triggers on the tables.\n";

/* ---- arguments ---------------------------------------------------------- */

enum flag {
	F_JSON = 1, F_ALL = 2, F_INCLUDE_DEAD = 4, F_DRY_RUN = 8, F_MOUNT = 16, F_GENERATE = 32,
	F_NODES = 64
};

/* Options that take a value, for generate only. */
static const char *const generate_opts[] = { "--models", "--schema-name", "--schema", "--pg",
					     "--output", "-o" };

struct args {
	const char *data, *redis, *mount;
	const char *models, *schema_name, *schema_file, *pg, *output;	/* generate */
	bool json, all, include_dead, dry_run, help, verbose, all_models, skipped, nodes;
	const char **pos;	/* positionals, in order */
	int npos;
};

static int usage_error(const char *help_cmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int usage_error(const char *help_cmd, const char *fmt, ...)
{
	va_list ap;

	fputs("sharded: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (see 'sharded %s%s--help')\n", help_cmd ? help_cmd : "",
		help_cmd ? " " : "");
	return EXIT_USAGE;
}

static int fail(const char *msg)
{
	fprintf(stderr, "sharded: %s\n", msg);
	return EXIT_FAILURE;
}

/* An option's value: "--opt=value" or "--opt value". NULL when missing. */
static const char *value_of(const char *name, int argc, char **argv, int *i)
{
	size_t len = strlen(name);
	const char *a = argv[*i];

	if (a[len] == '=')
		return a + len + 1;
	if (*i + 1 < argc)
		return argv[++*i];
	return NULL;
}

static bool is_opt(const char *a, const char *name)
{
	size_t len = strlen(name);

	return strncmp(a, name, len) == 0 && (a[len] == '\0' || a[len] == '=');
}

/* Parse every argument: the options allowed (global ones always), the rest
 * as positionals. Returns 0, or EXIT_USAGE after printing the error. */
static int parse_args(int argc, char **argv, unsigned allowed, const char *cmd, struct args *a)
{
	bool only_pos = false;

	for (int i = 1; i < argc; i++) {
		const char *s = argv[i];
		struct {
			const char *name;
			unsigned flag;
			bool *target;
		} bools[] = {
			{ "--json", F_JSON, &a->json },
			{ "--all", F_ALL, &a->all },
			{ "--include-dead", F_INCLUDE_DEAD, &a->include_dead },
			{ "--dry-run", F_DRY_RUN, &a->dry_run },
			{ "--all-models", F_GENERATE, &a->all_models },
			{ "--skipped", F_GENERATE, &a->skipped },
			{ "--nodes", F_NODES, &a->nodes },
		};
		const char **gen_targets[] = { &a->models, &a->schema_name, &a->schema_file,
					       &a->pg, &a->output, &a->output };
		bool done = false;

		if (only_pos || s[0] != '-' || s[1] == '\0') {
			a->pos[a->npos++] = s;
			continue;
		}
		if (strcmp(s, "--") == 0) {
			only_pos = true;
			continue;
		}
		if (strcmp(s, "--help") == 0 || strcmp(s, "-h") == 0) {
			a->help = true;
			continue;
		}
		if (strcmp(s, "--verbose") == 0 || strcmp(s, "-v") == 0) {
			a->verbose = true;
			continue;
		}
		if (is_opt(s, "--data") || is_opt(s, "--redis") ||
		    ((allowed & F_MOUNT) && is_opt(s, "--mount"))) {
			const char *name = is_opt(s, "--data") ? "--data" :
					   is_opt(s, "--redis") ? "--redis" : "--mount";
			const char *v = value_of(name, argc, argv, &i);

			if (!v || !*v)
				return usage_error(cmd, "option '%s' needs a value", name);
			if (strcmp(name, "--data") == 0)
				a->data = v;
			else if (strcmp(name, "--redis") == 0)
				a->redis = v;
			else
				a->mount = v;
			continue;
		}
		for (size_t k = 0; (allowed & F_GENERATE) && !done &&
		     k < sizeof(generate_opts) / sizeof(generate_opts[0]); k++) {
			const char *v;

			if (!is_opt(s, generate_opts[k]))
				continue;
			v = value_of(generate_opts[k], argc, argv, &i);
			if (!v || !*v)
				return usage_error(cmd, "option '%s' needs a value", generate_opts[k]);
			*gen_targets[k] = v;
			done = true;
		}
		if (done)
			continue;
		for (size_t k = 0; k < sizeof(bools) / sizeof(bools[0]); k++) {
			if ((allowed & bools[k].flag) && strcmp(s, bools[k].name) == 0) {
				*bools[k].target = true;
				done = true;
			}
		}
		if (!done) {
			if (cmd)
				return usage_error(cmd, "unknown option '%s' for '%s'", s, cmd);
			return usage_error(NULL, "unknown option '%s'", s);
		}
	}
	return 0;
}

static int check_block_arg(const char *id, const char *cmd)
{
	char why[300];

	if (block_id_check(id, why, sizeof(why)) != SH_OK)
		return usage_error(cmd, "invalid block id: %s", why);
	return 0;
}

/* ---- progress ----------------------------------------------------------- */

struct progress {
	const char *what;
	bool tty;
	bool shown;
	int last_permille;
};

static void progress_init(struct progress *p, const char *what)
{
	memset(p, 0, sizeof(*p));
	p->what = what;
	p->tty = isatty(STDERR_FILENO) == 1;
	p->last_permille = -1;
}

static void progress_cb(void *ctx, size_t done, size_t total)
{
	struct progress *p = ctx;
	char bar[31];
	int permille, fill;

	if (!p->tty || total <= PROGRESS_MIN)
		return;
	permille = (int)(done * 1000 / total);
	if (permille == p->last_permille && done != total)
		return;
	p->last_permille = permille;
	fill = permille * 30 / 1000;
	memset(bar, '#', (size_t)fill);
	memset(bar + fill, '.', (size_t)(30 - fill));
	bar[30] = '\0';
	fprintf(stderr, "\r%s [%s] %zu/%zu", p->what, bar, done, total);
	fflush(stderr);
	p->shown = true;
}

static void progress_end(struct progress *p)
{
	if (p->shown)
		fputc('\n', stderr);
	p->shown = false;
}

/* ---- shared ------------------------------------------------------------- */

static int connect_redis(const char *url, redisContext **rc)
{
	char err[512], shown[512];
	enum sh_err e = redis_open(url, REDIS_TIMEOUT_MS, rc, err, sizeof(err));

	if (e == SH_OK)
		return 0;
	if (e == SH_EINVAL) {
		sh_redact(url, shown, sizeof(shown));
		fprintf(stderr, "sharded: malformed redis url '%s' (expected "
			"redis://[[user]:password@]host[:port][/db])\n", shown);
	} else {
		fprintf(stderr, "sharded: %s\n", err);
	}
	return EXIT_FAILURE;
}

static int print_json(json_object *j)
{
	const char *s = json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN |
						       JSON_C_TO_STRING_NOSLASHESCAPE);
	int rc = s && printf("%s\n", s) >= 0 ? 0 : EXIT_FAILURE;

	json_object_put(j);
	return rc;
}

static void pad(int width, const char *s, bool right, bool last)
{
	if (last)
		printf("%s\n", s);
	else if (right)
		printf("%*s  ", width, s);
	else
		printf("%-*s  ", width, s);
}

/* ---- status ------------------------------------------------------------- */

static void format_time(int64_t ns, char *buf, size_t len)
{
	time_t t = (time_t)(ns / 1000000000);
	struct tm tm;

	if (ns <= 0 || !gmtime_r(&t, &tm) || !strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(buf, len, "-");
}

/* ---- status: the nodes ---- */

static json_object *node_json(const struct nodereg_entry *e, int64_t now_ms)
{
	json_object *o = json_object_new_object();
	int64_t silent = nodereg_alive(e, now_ms) ? 0 : (now_ms - e->seen_ms) / 1000;

	json_object_object_add(o, "node", json_object_new_string(e->node));
	json_object_object_add(o, "host", json_object_new_string(e->host));
	json_object_object_add(o, "pid", json_object_new_int64(e->pid));
	json_object_object_add(o, "version", json_object_new_string(e->version));
	json_object_object_add(o, "started", json_object_new_int64(e->started_s));
	json_object_object_add(o, "seen", json_object_new_int64(e->seen_ms / 1000));
	json_object_object_add(o, "state", json_object_new_string(silent ? "silent" : "alive"));
	json_object_object_add(o, "silent_s", json_object_new_int64(silent));
	json_object_object_add(o, "pending", json_object_new_int64(e->pending));
	return o;
}

static void print_nodes(const struct nodereg_entry *list, size_t n, int64_t now_ms)
{
	static const char *const head[] = { "node", "host", "pid", "version", "started", "state",
					    "pending" };
	enum { NCOL = 7 };
	char cell[NCOL][NODEREG_HOST_MAX];
	int w[NCOL];

	for (int c = 0; c < NCOL; c++)
		w[c] = (int)strlen(head[c]);
	for (int pass = 0; pass < 2; pass++) {	/* size the columns, then print */
		if (pass)
			for (int c = 0; c < NCOL; c++)
				pad(w[c], head[c], c == 2 || c == 6, c == NCOL - 1);
		for (size_t i = 0; i < n; i++) {
			const struct nodereg_entry *e = &list[i];

			snprintf(cell[0], sizeof(cell[0]), "%s", e->node);
			snprintf(cell[1], sizeof(cell[1]), "%s", e->host);
			snprintf(cell[2], sizeof(cell[2]), "%" PRId64, e->pid);
			snprintf(cell[3], sizeof(cell[3]), "%s", e->version);
			format_time(e->started_s * 1000000000, cell[4], sizeof(cell[4]));
			if (nodereg_alive(e, now_ms))
				snprintf(cell[5], sizeof(cell[5]), "alive");
			else
				snprintf(cell[5], sizeof(cell[5]), "silent %" PRId64 " s",
					 (now_ms - e->seen_ms) / 1000);
			snprintf(cell[6], sizeof(cell[6]), "%" PRId64, e->pending);
			for (int c = 0; c < NCOL; c++) {
				if (!pass && (int)strlen(cell[c]) > w[c])
					w[c] = (int)strlen(cell[c]);
				if (pass)
					pad(w[c], cell[c], c == 2 || c == 6, c == NCOL - 1);
			}
		}
	}
}

/* The nodes of the registry; with quiet, an unreachable Redis is a note on
 * stderr and no failure (status of the blocks needs no server). */
static int status_nodes(struct args *a, bool quiet)
{
	struct nodereg_entry *list;
	redisContext *rc = NULL;
	char err[512];
	size_t n;
	int64_t now;
	int rv;

	if (quiet) {
		if (redis_open(a->redis, NODES_TIMEOUT_MS, &rc, err, sizeof(err)) != SH_OK) {
			fprintf(stderr, "sharded: nodes not shown: %s\n", err);
			return 0;
		}
	} else if ((rv = connect_redis(a->redis, &rc))) {
		return rv;
	}
	if (nodereg_list(rc, false, &list, &n, &now) != SH_OK) {
		snprintf(err, sizeof(err), "cannot read the nodes from redis: %s",
			 rc->err ? rc->errstr : "unexpected reply");
		redisFree(rc);
		if (quiet)
			fprintf(stderr, "sharded: nodes not shown: %s\n", err);
		return quiet ? 0 : fail(err);
	}
	redisFree(rc);
	if (a->json) {
		json_object *arr = json_object_new_array();

		for (size_t i = 0; i < n; i++)
			json_object_array_add(arr, node_json(&list[i], now));
		free(list);
		return print_json(arr);
	}
	if (quiet)
		putchar('\n');
	print_nodes(list, n, now);
	free(list);
	return fflush(stdout) == 0 ? 0 : EXIT_FAILURE;
}

static int cmd_status(struct args *a)
{
	static const char *const head[] = { "block", "pending", "applied", "dead", "records",
					    "lag_ms", "last_sync" };
	enum { NCOL = 7 };
	struct admin_status *st;
	size_t n;
	char err[512];
	int w[NCOL];

	if (a->help) {
		fputs(help_status, stdout);
		return 0;
	}
	if (a->npos > 1)
		return usage_error("status", "too many arguments");
	if (a->npos == 1 && check_block_arg(a->pos[0], "status"))
		return EXIT_USAGE;
	if (a->nodes && a->npos)
		return usage_error("status", "--nodes takes no block");
	if (a->nodes)
		return status_nodes(a, false);
	if (admin_status(a->data, a->npos ? a->pos[0] : NULL, &st, &n, err, sizeof(err)))
		return fail(err);
	if (a->json) {
		json_object *arr = json_object_new_array();
		for (size_t i = 0; i < n; i++) {
			json_object *o = json_object_new_object();
			json_object_object_add(o, "block", json_object_new_string(st[i].block));
			json_object_object_add(o, "pending", json_object_new_int64(st[i].pending));
			json_object_object_add(o, "applied", json_object_new_int64(st[i].applied));
			json_object_object_add(o, "dead", json_object_new_int64(st[i].dead));
			json_object_object_add(o, "records", json_object_new_int64(st[i].records));
			json_object_object_add(o, "lag_ms", json_object_new_int64(st[i].lag_ms));
			json_object_object_add(o, "last_sync",
					       json_object_new_int64(st[i].last_sync_ns / 1000000000));
			json_object_array_add(arr, o);
		}
		admin_status_free(st, n);
		return print_json(arr);
	}
	/* cells as text, to size the columns */
	char (*cell)[NCOL][48] = calloc(n ? n : 1, sizeof(*cell));
	if (!cell) {
		admin_status_free(st, n);
		return fail("out of memory");
	}
	for (int c = 0; c < NCOL; c++)
		w[c] = (int)strlen(head[c]);
	for (size_t i = 0; i < n; i++) {
		int64_t v[] = { st[i].pending, st[i].applied, st[i].dead, st[i].records, st[i].lag_ms };
		for (int c = 1; c <= 5; c++)
			snprintf(cell[i][c], sizeof(cell[i][c]), "%" PRId64, v[c - 1]);
		format_time(st[i].last_sync_ns, cell[i][6], sizeof(cell[i][6]));
		for (int c = 1; c < NCOL; c++)
			if ((int)strlen(cell[i][c]) > w[c])
				w[c] = (int)strlen(cell[i][c]);
		if ((int)strlen(st[i].block) > w[0])
			w[0] = (int)strlen(st[i].block);
	}
	for (int c = 0; c < NCOL; c++)
		pad(w[c], head[c], c > 0 && c < 6, c == NCOL - 1);
	for (size_t i = 0; i < n; i++) {
		pad(w[0], st[i].block, false, false);
		for (int c = 1; c < NCOL; c++)
			pad(w[c], cell[i][c], c < 6, c == NCOL - 1);
	}
	free(cell);
	admin_status_free(st, n);
	if (fflush(stdout) != 0)
		return EXIT_FAILURE;
	return a->npos ? 0 : status_nodes(a, true);
}

/* ---- dlq ---------------------------------------------------------------- */

static json_object *dead_json(const struct admin_dead *d)
{
	json_object *o = json_object_new_object(), *doc = NULL;
	char op[2] = { d->op, 0 };

	json_object_object_add(o, "id", json_object_new_string(d->id));
	json_object_object_add(o, "seq", json_object_new_int64(d->seq));
	json_object_object_add(o, "op", d->op ? json_object_new_string(op) : NULL);
	json_object_object_add(o, "model", d->model ? json_object_new_string(d->model) : NULL);
	json_object_object_add(o, "pk", d->pk ? json_object_new_string(d->pk) : NULL);
	if (d->pk) {
		char name[KEYNAME_MAX + 1];

		(void)keyname_from_key(d->pk, name);
		json_object_object_add(o, "file", json_object_new_string(name));
	}
	json_object_object_add(o, "error", d->error ? json_object_new_string(d->error) : NULL);
	if (d->doc) {
		doc = json_tokener_parse(d->doc);
		if (!doc)
			doc = json_object_new_string(d->doc);	/* keep it, even if odd */
	}
	json_object_object_add(o, "doc", doc);
	return o;
}

static int dlq_list(struct args *a, const char *block)
{
	struct admin_dead *list;
	redisContext *rc;
	size_t n;
	char err[512];
	char **keys;
	int w[5] = { 2, 3, 2, 5, 2 };
	int rv;

	if (a->npos > 2)
		return usage_error("dlq", "too many arguments for 'dlq list'");
	if ((rv = connect_redis(a->redis, &rc)))
		return rv;
	if (admin_dlq_list(rc, block, &list, &n, err, sizeof(err))) {
		redisFree(rc);
		return fail(err);
	}
	redisFree(rc);
	if (a->json) {
		json_object *arr = json_object_new_array();
		for (size_t i = 0; i < n; i++)
			json_object_array_add(arr, dead_json(&list[i]));
		admin_dead_free(list, n);
		return print_json(arr);
	}
	/* the key as in its file name (keyname.h): a newline or '/' in it cannot break the table */
	keys = calloc(n ? n : 1, sizeof(*keys));
	if (!keys) {
		admin_dead_free(list, n);
		return fail("out of memory");
	}
	for (size_t i = 0; i < n; i++) {
		char name[KEYNAME_MAX + 1];

		if (list[i].pk) {
			(void)keyname_from_key(list[i].pk, name);
			name[strlen(name) - strlen(KEYNAME_SUFFIX)] = '\0';
		}
		keys[i] = strdup(list[i].pk ? name : "-");
	}
	for (size_t i = 0; i < n; i++) {
		char seq[24];
		const char *cols[] = { list[i].id, seq, "U", list[i].model ? list[i].model : "-",
				       keys[i] ? keys[i] : "-" };
		snprintf(seq, sizeof(seq), "%" PRId64, list[i].seq);
		for (int c = 0; c < 5; c++)
			if ((int)strlen(cols[c]) > w[c])
				w[c] = (int)strlen(cols[c]);
	}
	pad(w[0], "id", false, false);
	pad(w[1], "seq", true, false);
	pad(w[2], "op", false, false);
	pad(w[3], "model", false, false);
	pad(w[4], "pk", false, false);
	pad(0, "error", false, true);
	for (size_t i = 0; i < n; i++) {
		char seq[24], op[2] = { list[i].op ? list[i].op : '-', 0 };
		snprintf(seq, sizeof(seq), "%" PRId64, list[i].seq);
		pad(w[0], list[i].id, false, false);
		pad(w[1], seq, true, false);
		pad(w[2], op, false, false);
		pad(w[3], list[i].model ? list[i].model : "-", false, false);
		pad(w[4], keys[i] ? keys[i] : "-", false, false);
		pad(0, list[i].error && *list[i].error ? list[i].error : "-", false, true);
	}
	for (size_t i = 0; i < n; i++)
		free(keys[i]);
	free(keys);
	admin_dead_free(list, n);
	return fflush(stdout) == 0 ? 0 : EXIT_FAILURE;
}

static int check_ids(const char *const *ids, int n)
{
	for (int i = 0; i < n; i++)
		if (!admin_stream_id_valid(ids[i]))
			return usage_error("dlq", "malformed dead letter id '%s' (expected "
					   "<ms>-<n>, as 'dlq list' shows)", ids[i]);
	return 0;
}

static int dlq_retry_or_drop(struct args *a, const char *block, bool retry)
{
	const char *const *ids = a->pos + 2;
	int nids = a->npos - 2, rv;
	struct progress p;
	redisContext *rc;
	size_t done = 0;
	char err[512];
	enum sh_err e;

	if (!retry && a->all == (nids > 0))
		return usage_error("dlq", "'dlq drop' needs either --all or dead letter ids");
	if ((rv = check_ids(ids, nids)))
		return rv;
	if ((rv = connect_redis(a->redis, &rc)))
		return rv;
	progress_init(&p, retry ? "retrying" : "dropping");
	if (retry)
		e = admin_dlq_retry(rc, a->data, block, ids, (size_t)nids, progress_cb, &p, &done,
				    err, sizeof(err));
	else
		e = admin_dlq_drop(rc, a->data, block, ids, (size_t)nids, progress_cb, &p, &done,
				   err, sizeof(err));
	progress_end(&p);
	redisFree(rc);
	printf("%s %zu dead letter%s of block '%s'\n", retry ? "retried" : "dropped", done,
	       done == 1 ? "" : "s", block);
	fflush(stdout);
	return e ? fail(err) : 0;
}

static int cmd_dlq(struct args *a)
{
	const char *sub, *block;
	int rv;

	if (a->help || (a->npos >= 1 && strcmp(a->pos[0], "help") == 0)) {
		fputs(help_dlq, stdout);
		return 0;
	}
	if (a->npos < 1)
		return usage_error("dlq", "missing subcommand: list, retry or drop");
	sub = a->pos[0];
	if (strcmp(sub, "list") != 0 && strcmp(sub, "retry") != 0 && strcmp(sub, "drop") != 0)
		return usage_error("dlq", "unknown dlq subcommand '%s'", sub);
	if (a->npos < 2)
		return usage_error("dlq", "'dlq %s' needs a block id", sub);
	block = a->pos[1];
	if ((rv = check_block_arg(block, "dlq")))
		return rv;
	if (a->json && strcmp(sub, "list") != 0)
		return usage_error("dlq", "unknown option '--json' for 'dlq %s'", sub);
	if (a->all && strcmp(sub, "drop") != 0)
		return usage_error("dlq", "unknown option '--all' for 'dlq %s'", sub);
	if (strcmp(sub, "list") == 0)
		return dlq_list(a, block);
	return dlq_retry_or_drop(a, block, strcmp(sub, "retry") == 0);
}

/* ---- cleanup ------------------------------------------------------------ */

static int cmd_cleanup(struct args *a)
{
	struct admin_cleanup_result r;
	struct progress p;
	redisContext *rc;
	char err[512];
	enum sh_err e;
	int rv;

	if (a->help) {
		fputs(help_cleanup, stdout);
		return 0;
	}
	if (a->npos > 0)
		return usage_error("cleanup", "unexpected argument '%s'", a->pos[0]);
	if ((rv = connect_redis(a->redis, &rc)))
		return rv;
	progress_init(&p, "cleaning up");
	e = admin_cleanup(rc, a->data, a->include_dead, a->dry_run, progress_cb, &p, &r, err,
			  sizeof(err));
	progress_end(&p);
	redisFree(rc);
	if (e && r.keys_seen == 0)
		return fail(err);
	printf("%zu keys scanned%s\n", r.keys_seen, a->dry_run ? " (dry run: nothing removed)" : "");
	printf("%zu ops streams of deleted blocks %s\n", r.ops_deleted,
	       a->dry_run ? "to remove" : "removed");
	if (r.ops_kept)
		printf("%zu ops streams of blocks without a file kept: entries wait in them "
		       "(another node's block, or not yet applied)\n", r.ops_kept);
	printf("%zu dead-letter streams of deleted blocks %s\n", r.dead_deleted,
	       a->dry_run ? "to remove" : "removed");
	if (r.dead_kept)
		printf("%zu dead-letter streams of deleted blocks kept (--include-dead removes them)\n",
		       r.dead_kept);
	printf("%zu acknowledged stream entries %s\n", r.entries_deleted,
	       a->dry_run ? "to remove" : "removed");
	fflush(stdout);
	return e ? fail(err) : 0;
}

/* ---- invalidate --------------------------------------------------------- */

static int cmd_invalidate(struct args *a)
{
	char err[PATH_MAX + 256];
	int rv;

	if (a->help) {
		fputs(help_invalidate, stdout);
		return 0;
	}
	if (a->npos != 1)
		return usage_error("invalidate", a->npos ? "too many arguments" : "missing block id");
	if ((rv = check_block_arg(a->pos[0], "invalidate")))
		return rv;
	if (!a->mount)
		return usage_error("invalidate", "missing --mount DIR");
	if (admin_invalidate(a->mount, a->pos[0], err, sizeof(err)))
		return fail(err);
	return 0;
}

/* ---- generate ----------------------------------------------------------- */

static void prisma_warning(void *ctx, const char *msg)
{
	fprintf(stderr, "sharded: warning: %s: %s\n", (const char *)ctx, msg);
}

/* The whole of a Prisma schema file, NUL-terminated; NULL after a message. */
static char *read_schema_file(const char *path)
{
	size_t len = 0, cap = 65536;
	char *buf = malloc(cap);
	FILE *f = fopen(path, "r");

	if (!f || !buf) {
		fprintf(stderr, "sharded: %s: %s\n", path, f ? "out of memory" : strerror(errno));
		goto fail;
	}
	for (;;) {
		size_t got;

		if (len + 1 >= cap) {
			char *grown;

			if (cap > CATALOG_FILE_MAX) {
				fprintf(stderr, "sharded: %s: larger than %d bytes: not a Prisma "
					"schema\n", path, CATALOG_FILE_MAX);
				goto fail;
			}
			if (!(grown = realloc(buf, cap * 2))) {
				fprintf(stderr, "sharded: %s: out of memory\n", path);
				goto fail;
			}
			buf = grown;
			cap *= 2;
		}
		got = fread(buf + len, 1, cap - 1 - len, f);
		len += got;
		if (got == 0)
			break;
	}
	if (ferror(f)) {
		fprintf(stderr, "sharded: %s: %s\n", path, strerror(errno ? errno : EIO));
		goto fail;
	}
	if (memchr(buf, '\0', len)) {
		fprintf(stderr, "sharded: %s: holds a NUL byte: not a Prisma schema\n", path);
		goto fail;
	}
	buf[len] = '\0';
	fclose(f);
	return buf;
fail:
	if (f)
		fclose(f);
	free(buf);
	return NULL;
}

/* Keep only the models named in csv (in the catalog's order); a name that is
 * not a model of cat is an error. */
static int pick_models(struct catalog **cat, const char *csv, const char *source)
{
	struct catalog *in = *cat;
	char *names = strdup(csv), *save = NULL;
	bool *keep = calloc(in->nmodels + 1, sizeof(*keep));
	int rv = 0;

	if (!names || !keep) {
		free(names);
		free(keep);
		return fail("out of memory");
	}
	for (char *n = strtok_r(names, ",", &save); n && !rv; n = strtok_r(NULL, ",", &save)) {
		const struct model *m;

		n += strspn(n, " \t");
		n[strcspn(n, " \t")] = '\0';
		if (!*n)
			continue;
		if (!(m = catalog_find(in, n))) {
			fprintf(stderr, "sharded: model \"%s\" is not in %s (or has no "
				"primary key)\n", n, source);
			rv = EXIT_FAILURE;
		} else {
			keep[m - in->models] = true;
		}
	}
	/* drop the others in place: the kept models keep every detail (enum
	 * labels, domains, keys, generated and client defaults) */
	for (size_t i = in->nmodels; i-- > 0 && !rv;)
		if (!keep[i])
			catalog_remove(in, i);
	free(names);
	free(keep);
	return rv;
}

static int catalog_from_prisma(struct args *a, const char *schema, struct catalog **cat)
{
	char err[512], *text;
	struct stat st;
	enum sh_err e;

	if (stat(a->schema_file, &st) == 0 && S_ISDIR(st.st_mode)) {
		e = prisma_parse_dir(a->schema_file, schema, prisma_warning,
				     (void *)a->schema_file, cat, err, sizeof(err));
	} else {
		if (!(text = read_schema_file(a->schema_file)))
			return EXIT_FAILURE;
		e = prisma_parse_ex(text, schema, prisma_warning, (void *)a->schema_file, cat,
				    err, sizeof(err));
		free(text);
	}
	if (e != SH_OK) {
		fprintf(stderr, "sharded: %s: %s\n", a->schema_file, err);
		return EXIT_FAILURE;
	}
	if (a->models)
		return pick_models(cat, a->models, a->schema_file);
	return 0;
}

static int catalog_from_pg(struct args *a, const char *schema, struct catalog **cat)
{
	const char *conninfo = a->pg ? a->pg : getenv("DATABASE_URL");
	struct pg *pg;
	char err[512];

	if (pg_connect(conninfo ? conninfo : "", &pg, err, sizeof(err)) != SH_OK)
		return fail(err);
	if (pg_load_catalog(pg, schema, a->models, cat, err, sizeof(err)) != SH_OK) {
		pg_close(pg);
		return fail(err);
	}
	pg_close(pg);
	return 0;
}

/* Write cat to path through a temporary file in the same directory, renamed
 * over path once complete: a reader never sees half a catalog. */
static int write_catalog_file(const struct catalog *cat, const char *path)
{
	size_t len = strlen(path);
	char *tmp = malloc(len + 16), err[512];
	FILE *f = NULL;
	mode_t mask = umask(0);
	int fd;

	umask(mask);
	if (!tmp)
		return fail("out of memory");
	snprintf(tmp, len + 16, "%s.tmp.XXXXXX", path);
	if ((fd = mkstemp(tmp)) < 0) {
		fprintf(stderr, "sharded: %s: %s\n", path, strerror(errno));
		free(tmp);
		return EXIT_FAILURE;
	}
	if (fchmod(fd, 0666 & ~mask) != 0 || !(f = fdopen(fd, "w"))) {
		snprintf(err, sizeof(err), "%s: %s", path, strerror(errno));
		close(fd);
		goto fail;
	}
	if (catalog_write(cat, f, err, sizeof(err)) != SH_OK)
		goto fail;
	if (fsync(fileno(f)) != 0 || fclose(f) != 0) {
		f = NULL;
		snprintf(err, sizeof(err), "%s: %s", path, strerror(errno));
		goto fail;
	}
	f = NULL;
	if (rename(tmp, path) != 0) {
		snprintf(err, sizeof(err), "%s: %s", path, strerror(errno));
		goto fail;
	}
	free(tmp);
	return 0;
fail:
	if (f)
		fclose(f);
	unlink(tmp);
	free(tmp);
	return fail(err);
}

/* --skipped: the tables that are not models, NAME<TAB>REASON a line. */
static int print_skipped(const struct catalog *cat)
{
	for (size_t i = 0; i < cat->nskipped; i++)
		printf("%s\t%s\n", cat->skipped[i].name, cat->skipped[i].reason);
	if (fflush(stdout) != 0 || ferror(stdout))
		return fail("writing the list: output error");
	return 0;
}

static int cmd_generate(struct args *a)
{
	const char *schema = a->schema_name ? a->schema_name : "public";
	const char *source;
	struct catalog *cat = NULL;
	char err[512];
	int rv;

	if (a->help) {
		fputs(help_generate, stdout);
		return 0;
	}
	if (a->npos > 0)
		return usage_error("generate", "unexpected argument '%s'", a->pos[0]);
	if (a->models && a->all_models)
		return usage_error("generate", "--models and --all-models exclude each other");
	if (a->schema_file && a->pg)
		return usage_error("generate", "--schema (a Prisma file) and --pg exclude each "
				   "other");
	if (a->models && strspn(a->models, ", \t") == strlen(a->models))
		return usage_error("generate", "--models names no model");
	source = a->schema_file;
	rv = source ? catalog_from_prisma(a, schema, &cat) : catalog_from_pg(a, schema, &cat);
	if (rv) {
		catalog_free(cat);
		return rv;
	}
	if (a->skipped) {
		rv = print_skipped(cat);
		catalog_free(cat);
		return rv;
	}
	for (size_t i = 0; i < cat->nskipped; i++)
		fprintf(stderr, "sharded: table \"%s\" is not a model: %s\n", cat->skipped[i].name,
			cat->skipped[i].reason);
	if (cat->nmodels == 0) {
		fprintf(stderr, "sharded: no model to expose: %s%s%s has no table with a primary "
			"key\n", source ? source : "schema \"", source ? "" : schema,
			source ? "" : "\"");
		catalog_free(cat);
		return EXIT_FAILURE;
	}
	if (a->output && strcmp(a->output, "-") != 0)
		rv = write_catalog_file(cat, a->output);
	else if (catalog_write(cat, stdout, err, sizeof(err)) != SH_OK)
		rv = fail(err);
	if (rv == 0 && a->output && strcmp(a->output, "-") != 0)
		fprintf(stderr, "sharded: wrote %zu model%s to %s\n", cat->nmodels,
			cat->nmodels == 1 ? "" : "s", a->output);
	catalog_free(cat);
	return rv;
}

static int cmd_capture(struct args *a)
{
	const char *schema = a->schema_name ? a->schema_name : "public";
	const char *conninfo = a->pg ? a->pg : getenv("DATABASE_URL");
	struct catalog *cat = NULL;
	struct pg *pg;
	char err[512];
	bool install;
	int rv;

	if (a->help) {
		fputs(help_capture, stdout);
		return 0;
	}
	if (a->npos != 1 || (strcmp(a->pos[0], "install") != 0 && strcmp(a->pos[0], "remove") != 0))
		return usage_error("capture", a->npos ? "unknown capture subcommand '%s'"
				   : "missing subcommand: install or remove%s", a->npos ? a->pos[0] : "");
	install = strcmp(a->pos[0], "install") == 0;
	if (a->schema_file || a->output || a->all_models || a->skipped)
		return usage_error("capture", "only --models, --schema-name and --pg go with 'capture'");
	if (!install && (a->models || a->schema_name))
		return usage_error("capture", "'capture remove' takes only --pg");
	if (install && (rv = catalog_from_pg(a, schema, &cat)) != 0)
		return rv;
	if (pg_connect(conninfo ? conninfo : "", &pg, err, sizeof(err)) != SH_OK) {
		catalog_free(cat);
		return fail(err);
	}
	rv = install ? capture_install(pg, cat, err, sizeof(err)) : capture_remove(pg, err, sizeof(err));
	if (rv == SH_OK && install)
		printf("capture installed on %zu table%s of schema \"%s\"\n", cat->nmodels,
		       cat->nmodels == 1 ? "" : "s", schema);
	else if (rv == SH_OK)
		printf("capture removed\n");
	pg_close(pg);
	catalog_free(cat);
	return rv == SH_OK ? 0 : fail(err);
}

/* ---- main --------------------------------------------------------------- */

static const struct command {
	const char *name;
	unsigned flags;
	int (*run)(struct args *a);
} commands[] = {
	{ "status", F_JSON | F_NODES, cmd_status },
	{ "dlq", F_JSON | F_ALL, cmd_dlq },
	{ "cleanup", F_INCLUDE_DEAD | F_DRY_RUN, cmd_cleanup },
	{ "invalidate", F_MOUNT, cmd_invalidate },
	{ "generate", F_GENERATE, cmd_generate },
	{ "capture", F_GENERATE, cmd_capture },
};

/* `sharded bench ARGS`: run sharded-bench from next to this program, else from PATH. */
static int run_bench(char **args)
{
	char self[4096], path[4200];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (n > 0) {
		self[n] = '\0';
		snprintf(path, sizeof(path), "%s/sharded-bench", dirname(self));
		args[0] = path;
		execv(path, args);
	}
	args[0] = "sharded-bench";
	execvp("sharded-bench", args);
	fprintf(stderr, "sharded: cannot run 'sharded-bench': %s\n", strerror(errno));
	return EXIT_FAILURE;
}

static const char *env_or(const char *name, const char *fallback)
{
	const char *v = getenv(name);

	return v && *v ? v : fallback;
}

int main(int argc, char **argv)
{
	const struct command *cmd = NULL;
	struct args a = { 0 };
	int cmd_at = 0, rv;

	sh_log_init(0, -1);	/* the core's own messages only with --verbose */
	/* the command is the first argument that is not an option or an option's value */
	for (int i = 1; i < argc && !cmd_at; i++) {
		if (strcmp(argv[i], "--") == 0)
			break;
		bool takes_value = strcmp(argv[i], "--data") == 0 ||
				   strcmp(argv[i], "--redis") == 0 ||
				   strcmp(argv[i], "--mount") == 0;

		for (size_t k = 0; k < sizeof(generate_opts) / sizeof(generate_opts[0]); k++)
			takes_value |= strcmp(argv[i], generate_opts[k]) == 0;
		if (takes_value)
			i++;
		else if (argv[i][0] != '-')
			cmd_at = i;
	}
	if (!cmd_at) {
		bool version = false, help = false;
		for (int i = 1; i < argc; i++) {
			version |= strcmp(argv[i], "--version") == 0 || strcmp(argv[i], "-V") == 0;
			help |= strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0;
		}
		if (help) {
			fputs(help_main, stdout);
			return 0;
		}
		if (version) {
			printf("sharded %s\n", SHARDED_VERSION);
			return 0;
		}
		return usage_error(NULL, "missing command");
	}
	if (strcmp(argv[cmd_at], "help") == 0 && cmd_at + 1 >= argc) {
		fputs(help_main, stdout);
		return 0;
	}
	if (strcmp(argv[cmd_at], "bench") == 0)
		return run_bench(&argv[cmd_at]);
	for (size_t k = 0; k < sizeof(commands) / sizeof(commands[0]); k++)
		if (strcmp(argv[cmd_at], commands[k].name) == 0)
			cmd = &commands[k];
	if (!cmd)
		return usage_error(NULL, "unknown command '%s'", argv[cmd_at]);

	/* parse everything but the command word itself */
	if (!(a.pos = calloc((size_t)argc, sizeof(*a.pos))))
		return fail("out of memory");
	memmove(&argv[cmd_at], &argv[cmd_at + 1], (size_t)(argc - cmd_at) * sizeof(*argv));
	rv = parse_args(argc - 1, argv, cmd->flags, cmd->name, &a);
	if (rv == 0) {
		if (a.verbose)
			sh_log_init(0, LOG_DEBUG);
		if (!a.data)
			a.data = env_or("SHARDED_DATA", DEFAULT_DATA);
		if (!a.redis)
			a.redis = env_or("REDIS_URL", DEFAULT_REDIS);
		rv = cmd->run(&a);
	}
	free(a.pos);
	return rv;
}
