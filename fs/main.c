/* main.c - mount.sharded: parse options, connect, mount, detach, serve.
 *
 * Start-up order (as sshfs does it): options -> connect to PostgreSQL and
 * Redis and load the catalog -> mount -> daemonize -> start the workers.
 * A bad connection string therefore fails the command itself, with a
 * message on the terminal, before anything is mounted.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs.h"
#include "log.h"
#include "doc.h"
#include "scratch.h"
#include "version.h"

/* Scratch files (editors' and tools' temporary files) live in memory. */
#define SCRATCH_FILE_CAP(max_doc) ((max_doc) * 4 > 16u << 20 ? (max_doc) * 4 : 16u << 20)
#define SCRATCH_TOTAL_CAP (256u << 20)

struct options {
	char *pg, *redis, *data, *models, *schema, *node, *sync, *ttl, *max_doc, *loaders, *catalog,
	     *cleanup, *local;
	unsigned max_read;	/* libfuse's option, seen on its way through */
	int show_help, show_version;
};

#define OPT(t, p) { t, offsetof(struct options, p), 1 }
static const struct fuse_opt option_spec[] = {
	OPT("pg=%s", pg),
	OPT("redis=%s", redis),
	OPT("data=%s", data),
	OPT("models=%s", models),
	OPT("schema=%s", schema),
	OPT("node=%s", node),
	OPT("sync=%s", sync),
	OPT("ttl=%s", ttl),
	OPT("max_doc=%s", max_doc),
	OPT("loaders=%s", loaders),
	OPT("catalog=%s", catalog),
	OPT("cleanup=%s", cleanup),
	OPT("local=%s", local),
	{ "max_read=%u", offsetof(struct options, max_read), 0 },
	FUSE_OPT_KEY("max_read=", FUSE_OPT_KEY_KEEP),
	FUSE_OPT_END
};

static void usage(const char *prog)
{
	printf("usage: %s [-f] [-d] [-o opt[,opt...]] MOUNTPOINT\n\n"
	       "sharded options:\n"
	       "    -o pg=CONNINFO      PostgreSQL conninfo or URI (default $DATABASE_URL,\n"
	       "                        else libpq's PG* variables)\n"
	       "    -o redis=URL        redis://[:password@]host:port[/db] (default $REDIS_URL,\n"
	       "                        else redis://127.0.0.1:6379)\n"
	       "    -o data=DIR         block files (default /var/lib/sharded)\n"
	       "    -o models=A,B       tables to expose (default: all with a one-column primary key)\n"
	       "    -o schema=NAME      PostgreSQL schema (default public)\n"
	       "    -o ttl=SECONDS      default idle TTL of a block (default 0 = never)\n"
	       "    -o loaders=FILE     loader rules: what a new block holds (see the README)\n"
	       "    -o catalog=FILE     the models from 'sharded generate' instead of PostgreSQL;\n"
	       "                        the mount then starts while PostgreSQL is down\n"
	       "    -o sync=normal|full full: fsync SQLite on every write (default normal)\n"
	       "    -o max_doc=BYTES    largest record document (default %d)\n"
	       "    -o node=NAME        this daemon's name in Redis (default the host name)\n"
	       "    -o cleanup=SECONDS  remove leftover Redis streams this often (default 600,\n"
	       "                        0 = never)\n"
	       "    -o local=A,B        models never read through: a record a block does not\n"
	       "                        hold does not exist (append-only tables)\n\n",
	       prog, DOC_MAX_DEFAULT);
}

static int parse_uint(const char *s, const char *what, int64_t max, int64_t *out)
{
	char *end;

	errno = 0;
	*out = s ? strtoll(s, &end, 10) : 0;
	if (s && (errno || *end || !*s || *out < 0 || *out > max || s[0] == '-')) {
		fprintf(stderr, "mount.sharded: invalid %s '%s'\n", what, s);
		return -1;
	}
	return 0;
}

static int build_config(const struct options *o, struct engine_config *cfg)
{
	int64_t ttl, max_doc, cleanup;

	if (parse_uint(o->ttl, "ttl", 10LL * 365 * 24 * 3600, &ttl) ||
	    parse_uint(o->cleanup ? o->cleanup : "600", "cleanup", 10LL * 365 * 24 * 3600, &cleanup) ||
	    parse_uint(o->max_doc, "max_doc", 64 * 1024 * 1024, &max_doc))
		return -1;
	if (o->sync && strcmp(o->sync, "normal") != 0 && strcmp(o->sync, "full") != 0) {
		fprintf(stderr, "mount.sharded: invalid sync '%s' (normal or full)\n", o->sync);
		return -1;
	}
	memset(cfg, 0, sizeof(*cfg));
	cfg->pg = o->pg;
	cfg->redis = o->redis;
	cfg->data_dir = o->data ? o->data : "/var/lib/sharded";
	cfg->models = o->models;
	cfg->schema = o->schema;
	cfg->node = o->node;
	cfg->ttl = ttl;
	cfg->sync_full = o->sync && strcmp(o->sync, "full") == 0;
	cfg->max_doc = (size_t)max_doc;
	cfg->loaders = o->loaders;
	cfg->catalog = o->catalog;
	cfg->cleanup_s = cleanup;
	cfg->local = o->local;
	return 0;
}

static void free_options(struct options *o)
{
	free(o->pg);
	free(o->redis);
	free(o->data);
	free(o->models);
	free(o->schema);
	free(o->node);
	free(o->sync);
	free(o->ttl);
	free(o->max_doc);
	free(o->loaders);
	free(o->catalog);
	free(o->cleanup);
	free(o->local);
}

#define FUSE_THREADS_MIN 32

static int serve(struct fs *fs, struct fuse_cmdline_opts *cl)
{
	struct fuse_loop_config *loop;
	int rc;

	if (fuse_daemonize(cl->foreground) != 0)
		return 1;
	if (!cl->foreground)
		sh_log_init(1, cl->debug ? LOG_DEBUG : LOG_INFO);
	fs->notifier = notifier_start(fs);
	if (!fs->notifier || engine_start(fs->engine, notifier_change, fs) != SH_OK) {
		sh_log(LOG_ERR, "cannot start worker threads");
		return 1;
	}
	sh_log(LOG_INFO, "mounted at '%s'", cl->mountpoint);
	loop = fuse_loop_cfg_create();
	fuse_loop_cfg_set_clone_fd(loop, 0);
	/* Requests waiting on PostgreSQL (read-through, waiting for a load) take at
	 * most 16 threads (engine.c, life.c): the rest stay free for what is local. */
	fuse_loop_cfg_set_max_threads(loop, cl->max_threads > FUSE_THREADS_MIN ?
					    (unsigned)cl->max_threads : FUSE_THREADS_MIN);
	if (cl->max_idle_threads <= 100000)	/* (unsigned)-1 means unset */
		fuse_loop_cfg_set_idle_threads(loop, cl->max_idle_threads);
	rc = cl->singlethread ? fuse_session_loop(fs->se) : fuse_session_loop_mt(fs->se, loop);
	fuse_loop_cfg_destroy(loop);
	/* a loop ended by SIGTERM, SIGINT or SIGHUP reports the signal: a clean stop */
	return rc == 0 || rc == SIGTERM || rc == SIGINT || rc == SIGHUP ? 0 : 1;
}

/* libfuse ends the session unless init() sets conn->max_read to the mount's
 * max_read= (0 when not given), which ops.c does not know. */
static unsigned mount_max_read;

static void init_with_max_read(void *userdata, struct fuse_conn_info *conn)
{
	sharded_ops.init(userdata, conn);
	conn->max_read = mount_max_read;
}

static int run(struct fuse_args *args, struct fuse_cmdline_opts *cl, struct options *o)
{
	struct fuse_lowlevel_ops ops = sharded_ops;
	struct engine_config cfg;
	/* long timeouts: every change behind the kernel's back is told to it (notify.c) */
	struct fs fs = { .entry_timeout = 60.0, .attr_timeout = 60.0 };
	char err[512];
	int rc = 1;

	if (build_config(o, &cfg))
		return 2;
	fs.max_doc = cfg.max_doc ? cfg.max_doc : DOC_MAX_DEFAULT;
	fs.mount_ns = store_now_ns();
	pthread_mutex_init(&fs.open_lock, NULL);
	fs.open_files.next = fs.open_files.prev = &fs.open_files;
	if (engine_open(&cfg, &fs.engine, err, sizeof(err)) != SH_OK) {
		fprintf(stderr, "mount.sharded: %s\n", err);
		return 1;
	}
	fs.nodes = nodes_new();
	fs.scratch = scratches_new(SCRATCH_FILE_CAP(fs.max_doc), SCRATCH_TOTAL_CAP);
	ops.init = init_with_max_read;
	mount_max_read = o->max_read;
	fs.se = fs.nodes && fs.scratch ? fuse_session_new(args, &ops, sizeof(ops), &fs) : NULL;
	if (fs.se && fuse_set_signal_handlers(fs.se) == 0) {
		if (fuse_session_mount(fs.se, cl->mountpoint) == 0) {
			rc = serve(&fs, cl);
			fuse_session_unmount(fs.se);
		}
		fuse_remove_signal_handlers(fs.se);
	}
	engine_stop(fs.engine);		/* no change callbacks after this */
	notifier_stop(fs.notifier);
	fs_open_release_all(&fs);
	engine_close(fs.engine);
	if (fs.se)
		fuse_session_destroy(fs.se);
	nodes_free(fs.nodes);
	scratches_free(fs.scratch);
	pthread_mutex_destroy(&fs.open_lock);
	return rc;
}

/* Overwrite, in place, any password in an argument (conninfo "password=..."
 * or a URL's "user:password@"), so that /proc/PID/cmdline does not show it. */
static void mask_secrets(char *arg)
{
	char *p = arg, *end;

	while ((p = strstr(p, "password")) != NULL) {
		p += strlen("password");
		while (*p == ' ')
			p++;
		if (*p != '=')
			continue;
		for (p++; *p == ' '; p++)
			;
		for (; *p && *p != ' ' && *p != ',' && *p != '&'; p++)
			*p = '*';
	}
	for (p = arg; (p = strstr(p, "://")) != NULL; p = end) {
		char *at, *colon;

		p += 3;
		end = p + strcspn(p, "/,");
		at = memchr(p, '@', (size_t)(end - p));
		colon = at ? memchr(p, ':', (size_t)(at - p)) : NULL;
		if (colon)
			memset(colon + 1, '*', (size_t)(at - colon - 1));
	}
}

/* What libfuse logs while options_check runs: kept, not printed. */
static char fuse_msg[512];

static void capture_fuse_log(enum fuse_log_level level, const char *fmt, va_list ap)
{
	size_t n = strlen(fuse_msg);

	if (level <= FUSE_LOG_ERR && n < sizeof(fuse_msg) - 1)
		vsnprintf(fuse_msg + n, sizeof(fuse_msg) - n, fmt, ap);
}

/* Would fuse_session_new accept what is left of the command line? Asked of
 * libfuse itself, on a copy, before connecting to anything: a typo is then
 * reported as a typo even when PostgreSQL is unreachable. */
static int options_check(const struct fuse_args *args)
{
	static const char unknown[] = "fuse: unknown option(s): `";
	struct fuse_args copy = FUSE_ARGS_INIT(0, NULL);
	struct fuse_session *se = NULL;
	char *what = fuse_msg, *end;

	for (int i = 0; i < args->argc; i++)
		if (fuse_opt_add_arg(&copy, args->argv[i]) != 0)
			goto out;
	fuse_msg[0] = '\0';
	fuse_set_log_func(capture_fuse_log);
	se = fuse_session_new(&copy, &sharded_ops, sizeof(sharded_ops), NULL);
	fuse_set_log_func(NULL);
out:
	fuse_opt_free_args(&copy);
	if (se) {
		fuse_session_destroy(se);
		return 0;
	}
	if (strncmp(what, unknown, strlen(unknown)) == 0) {
		what += strlen(unknown);
		what += strncmp(what, "-o", 2) == 0 ? 2 + strspn(what + 2, " ") : 0;
		if ((end = strrchr(what, '\'')) != NULL)
			*end = '\0';
		fprintf(stderr, "mount.sharded: unknown option%s '%s' (try --help)\n",
			strchr(what, ',') ? "s" : "", what);
	} else {
		what[strcspn(what, "\n")] = '\0';
		fprintf(stderr, "mount.sharded: %s\n", *what ? what : "invalid options");
	}
	return -1;
}

static int given(const struct fuse_args *args, const char *opt)
{
	for (int i = 0; i < args->argc; i++)
		if (strstr(args->argv[i], opt))
			return 1;
	return 0;
}

/* The kernel checks permissions against the modes shown; unless the user
 * chose them, the mount shows as "sharded" of type fuse.sharded. */
static int default_names(struct fuse_args *args)
{
	if (fuse_opt_insert_arg(args, 1, "-odefault_permissions") != 0 ||
	    (!given(args, "subtype=") && fuse_opt_insert_arg(args, 1, "-osubtype=sharded") != 0))
		return -1;
	return given(args, "fsname=") ? 0 : fuse_opt_insert_arg(args, 1, "-ofsname=sharded");
}

int main(int argc, char **argv)
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct fuse_cmdline_opts cl;
	struct options o = { 0 };
	int rc = 2;

	if (fuse_opt_parse(&args, &o, option_spec, NULL) != 0 || default_names(&args) != 0 ||
	    fuse_parse_cmdline(&args, &cl) != 0)
		goto out;
	for (int i = 1; i < argc; i++)
		mask_secrets(argv[i]);
	if (cl.show_version) {
		printf("mount.sharded %s (libfuse %s)\n", SHARDED_VERSION, fuse_pkgversion());
		rc = 0;
	} else if (cl.show_help) {
		usage(argv[0]);
		fuse_cmdline_help();
		fuse_lowlevel_help();
		rc = 0;
	} else if (!cl.mountpoint) {
		fprintf(stderr, "mount.sharded: no mountpoint given (try --help)\n");
	} else if (options_check(&args) == 0) {
		sh_log_init(0, cl.debug ? LOG_DEBUG : LOG_INFO);
		rc = run(&args, &cl, &o);
	}
	free(cl.mountpoint);
out:
	free_options(&o);
	fuse_opt_free_args(&args);
	return rc;
}
