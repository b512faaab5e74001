/* engine.c - records and control files on top of blocks, PostgreSQL and sync. */
#include "engine.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ahead.h"
#include "blocks.h"
#include "capture.h"
#include "catalog_file.h"
#include "doc.h"
#include "keyname.h"
#include "life.h"
#include "loader.h"
#include "log.h"
#include "pg.h"
#include "redis.h"
#include "store.h"
#include "sync.h"

#define TTL_MAX (10LL * 365 * 24 * 3600)
#define CTL_INPUT_MAX 64
#define DRAIN_MS 3000
#define MKDIR_WAIT_MS 500	/* a longer load goes on after mkdir returns (life_create) */
#define READERS 4			/* PostgreSQL connections for read-through */
#define RETRY_READ_NS 1000000000LL	/* after a failure, read-through waits this long */
/* A read-through that found no row counts for the write that follows it (the
 * lookup of a new file, then its create) if that comes within ABSENT_NS: the
 * create's own check would be a second round trip. A row inserted elsewhere
 * in between makes the create a dead letter, as one inserted after the check
 * does (docs/guarantees.md, "Creates"). */
#define ABSENT_SLOTS 64
#define ABSENT_NS (1000LL * 1000 * 1000)

/* Requests inside a read-through at once (on a connection or waiting for
 * one). Beyond it a read fails at once with EAGAIN: requests waiting on
 * PostgreSQL never take more than this many of the FUSE threads (fs/main.c
 * starts more), so a stuck server leaves the rest for what is local. */
#define READ_THROUGH_MAX (2 * READERS)
#define STUCK_SHOWN_NS (15LL * 1000000000)	/* a read-through timeout shows postgres down */

/* A read-through is one short statement: a locked table ends it after
 * lock_ms/statement_ms (the server says so), a server that answers nothing
 * after wait_ms (we drop the connection). */
static const struct pg_limits read_limits = {
	.statement_ms = 3000, .lock_ms = 2000, .wait_ms = 5000,
};

struct engine {
	char *pg_conninfo, *redis_url, *node;
	int64_t cleanup_s;
	int64_t ttl;
	size_t max_doc;
	struct catalog *cat;
	struct blockset *blocks;
	struct pg *reader;		/* start-up only: catalog, loader checks */
	struct {
		pthread_mutex_t lock;
		struct pg *pg;		/* NULL until first needed, or after a failure */
	} readers[READERS];		/* read-through, one request at a time each */
	atomic_uint next_reader;
	atomic_int reading;		/* requests in read-through, at most READ_THROUGH_MAX */
	atomic_llong pg_down_until;	/* read-through does not try before this */
	atomic_bool pg_stuck;		/* since pg_down_until: no answer in time, not refused */
	atomic_llong pg_stuck_ns;	/* last read-through that got no answer in time */
	atomic_bool stopping;		/* cut waits for PostgreSQL */
	struct sync *sync;
	engine_change_fn on_change;
	void *ctx;
	struct loaders *loaders;
	struct life lifecycle;	/* life.h: loads, reloads, expiry */
	atomic_llong cache_hits, cache_misses, refusals;
	bool ids_strict;	/* -o ids=strict: new keys of sequence-keyed models come from .next-id */
	struct ahead *ahead;	/* reserves ids for .next-id ahead of need */
	enum engine_capture capture_mode;
	struct capture *capture;	/* NULL: capture=off, or not started */
	struct {
		pthread_mutex_t lock;
		struct absent {
			int64_t at_ns;	/* 0: free */
			const struct block *b;
			const struct model *m;
			char *pk;
		} slot[ABSENT_SLOTS];
		unsigned next;
	} absent;		/* rows PostgreSQL just said it does not have */
};

static const char *const ctl_names[CTL_NEXT_ID + 1] = {
	[CTL_TTL] = "ttl",
	[CTL_INVALIDATE] = "invalidate",
	[CTL_SYNC_STATUS] = "sync-status",
	[CTL_METRICS] = "metrics",
	[CTL_NEXT_ID] = ENGINE_NEXT_ID_NAME,
};

const char *ctl_name(enum ctl_file f)
{
	return ctl_names[f];
}

bool ctl_writable(enum ctl_file f)
{
	return f == CTL_TTL || f == CTL_INVALIDATE;
}

const struct catalog *engine_catalog(const struct engine *e)
{
	return e->cat;
}

_Static_assert(ENGINE_BLOCK_ID_MAX == BLOCK_ID_MAX, "engine.h and blocks.h agree on block ids");
_Static_assert(ENGINE_MAX_DOC_DEFAULT == DOC_MAX_DEFAULT, "engine.h and doc.h agree on max_doc");

size_t engine_max_doc(const struct engine *e)
{
	return e->max_doc;
}

enum sh_err engine_block_get(struct engine *e, const char *id, struct block **out)
{
	return blockset_get(e->blocks, id, out);
}

void engine_block_put(struct block *b)
{
	block_put(b);
}

enum sh_err engine_block_list(struct engine *e, engine_block_fn fn, void *ctx)
{
	struct block **blocks;
	size_t n;

	if (blockset_snapshot(e->blocks, &blocks, &n))
		return SH_ENOMEM;
	for (size_t i = 0; i < n; i++) {
		if (!atomic_load(&blocks[i]->retiring))	/* removed, still sending */
			fn(ctx, blocks[i]->id);
		block_put(blocks[i]);
	}
	free(blocks);
	return SH_OK;
}

size_t engine_block_count(struct engine *e)
{
	return blockset_count(e->blocks);
}

_Static_assert(ENGINE_NAME_MAX == KEYNAME_MAX && ENGINE_KEY_MAX == KEYNAME_KEY_MAX,
	       "engine.h and keyname.h agree on name and key sizes");

struct long_find {
	const struct model *m;
	const char *name;
	char *pk;
	size_t pklen;
	bool found;
};

static int long_match(void *ctx, const char *pk, size_t doc_len, int64_t mtime_ns)
{
	struct long_find *f = ctx;
	char name[KEYNAME_MAX + 1];

	(void)doc_len;
	(void)mtime_ns;
	if (key_file_name(f->m, pk, name) || strcmp(name, f->name) != 0 || strlen(pk) >= f->pklen)
		return 0;
	memcpy(f->pk, pk, strlen(pk) + 1);
	f->found = true;
	return 1;
}

/* A long-form name names no key by itself: find the record it is the name of. */
static enum sh_err find_long_key(struct engine *e, const char *block, const struct model *m,
				 const char *name, char *pk, size_t pklen)
{
	struct long_find f = { .m = m, .name = name, .pk = pk, .pklen = pklen };
	struct block *b;

	if (engine_block_get(e, block, &b) != SH_OK)
		return SH_ENOENT;
	(void)engine_list(e, b, m, long_match, &f);
	engine_block_put(b);
	return f.found ? SH_OK : SH_ENOENT;
}

/* The key of a model with a key of several columns is its file name as it
 * is (catalog.h key_join), when each part is in keyname's encoding. */
static bool list_key(const char *name, char *pk, size_t pklen)
{
	size_t len = strlen(name) - strlen(KEYNAME_SUFFIX), n;
	char parts[KEYNAME_MAX + 1];

	if (len >= pklen || !keyname_decode_list(name, len, parts, sizeof(parts), &n))
		return false;
	memcpy(pk, name, len);
	pk[len] = '\0';
	return true;
}

enum sh_err engine_record_key(struct engine *e, const char *block, const struct model *m,
			      const char *name, char *pk, size_t pklen, char *why, size_t whylen)
{
	enum keyname_kind kind = keyname_to_key(name, pk, pklen);

	if (m->nkey > 1 && (kind == KEYNAME_KEY || kind == KEYNAME_BAD))
		kind = list_key(name, pk, pklen) ? KEYNAME_KEY : KEYNAME_BAD;
	switch (kind) {
	case KEYNAME_NONE:
		return SH_ENOENT;
	case KEYNAME_KEY:
		return SH_OK;
	case KEYNAME_LONG:
		if (find_long_key(e, block, m, name, pk, pklen) == SH_OK)
			return SH_OK;
		snprintf(why, whylen, "'%s' is the long name of a key this block does not hold; "
			 "a key that long cannot be created through the mount", name);
		return SH_EINVAL;
	case KEYNAME_BAD:
		break;
	}
	snprintf(why, whylen, "'%s' is not the file name of any key: '/', ',', '%%', control "
		 "characters and a leading '.' are written %%XX with upper-case hex, nothing else is",
		 name);
	return SH_EINVAL;
}

bool engine_record_name(const struct model *m, const char *pk, char *name, size_t namelen)
{
	char full[KEYNAME_MAX + 1];

	(void)key_file_name(m, pk, full);
	if (strlen(full) >= namelen)
		return false;
	memcpy(name, full, strlen(full) + 1);
	return true;
}

enum sh_err engine_check_key(const struct model *m, const char *pk, char *why, size_t whylen)
{
	return doc_check_pk(m, pk, why, whylen);
}

static char *dup_or_env(const char *value, const char *env, const char *fallback)
{
	if (!value || !*value)
		value = getenv(env);
	if (!value || !*value)
		value = fallback;
	return strdup(value);
}

static char *host_name(void)
{
	char buf[256];

	if (gethostname(buf, sizeof(buf)) != 0)
		snprintf(buf, sizeof(buf), "node");
	buf[sizeof(buf) - 1] = '\0';
	return strdup(buf);
}

static enum sh_err check_redis(const char *url, char *err, size_t errlen)
{
	redisContext *rc;
	enum sh_err rv = redis_open(url, 3000, &rc, err, errlen);

	redisFree(rc);
	return rv;
}

/* Parse the loader rules and have PostgreSQL check every condition now, so
 * that a mistake fails the mount rather than a later mkdir. */
static enum sh_err load_rules(struct engine *e, const char *path, char *err, size_t errlen)
{
	enum sh_err rv = loaders_parse(path, e->cat, &e->loaders, err, errlen);

	if (!rv && !e->reader)
		sh_log(LOG_WARNING, "loader rules '%s': postgresql unreachable, conditions not checked",
		       path);
	for (size_t i = 0; !rv && e->reader && i < e->loaders->nrules; i++) {
		const struct load_rule *r = &e->loaders->rules[i];

		for (size_t j = 0; !rv && j < r->nsteps; j++) {
			char why[256];
			char *sql = pg_loader_sql(e->reader, e->cat, r->steps[j].model, r->steps[j].where,
						  false);

			rv = sql ? pg_check_sql(e->reader, sql, r->steps[j].nparams, why, sizeof(why))
				 : SH_ENOMEM;
			if (rv == SH_EINVAL)
				snprintf(err, errlen, "loader rules '%s' line %d: %s: %s", path,
					 r->steps[j].line, r->steps[j].model->name, why);
			free(sql);
		}
	}
	return rv;
}

/* The catalog from a file: PostgreSQL may be down, the mount serves what
 * the blocks hold and connects later. */
static enum sh_err open_from_file(struct engine *e, const struct engine_config *cfg, char *err,
				  size_t errlen)
{
	char why[512];
	enum sh_err rv;

	if (cfg->models) {
		snprintf(err, errlen, "models= and catalog= do not go together: choose the models "
			 "with 'sharded generate --models'");
		return SH_EINVAL;
	}
	rv = catalog_read(cfg->catalog, &e->cat, err, errlen);
	if (rv)
		return rv;
	if (pg_connect(e->pg_conninfo, &e->reader, why, sizeof(why)) != SH_OK) {
		sh_log(LOG_WARNING, "%s; mounting from catalog '%s' all the same (no .next-id%s "
		       "until the next mount)", why, cfg->catalog,
		       cfg->ids_strict ? " and no ids=strict check" : "");
		return SH_OK;
	}
	/* the key sequences are PostgreSQL's to name: the file does not hold them */
	if (pg_load_sequences(e->reader, e->cat, why, sizeof(why)) != SH_OK)
		sh_log(LOG_WARNING, "%s; no .next-id until the next mount", why);
	if (pg_ensure_tables(e->reader) != SH_OK)
		sh_log(LOG_WARNING, "cannot create table sharded_applied yet; the sync will retry");
	return SH_OK;
}

static enum sh_err open_from_pg(struct engine *e, const struct engine_config *cfg, char *err,
				size_t errlen)
{
	enum sh_err rv = pg_connect(e->pg_conninfo, &e->reader, err, errlen);

	if (!rv && (rv = pg_ensure_tables(e->reader)) != SH_OK)
		snprintf(err, errlen, "cannot create table sharded_applied in postgresql: %s",
			 sh_strerror(rv));
	if (!rv)
		rv = pg_load_catalog(e->reader, cfg->schema ? cfg->schema : "public", cfg->models,
				     &e->cat, err, errlen);
	return rv;
}

/* Mark the models of list ("A,B") local: what a block does not hold of them
 * does not exist, and PostgreSQL is never asked. */
static enum sh_err mark_local(struct catalog *cat, const char *list, char *err, size_t errlen)
{
	char *copy = strdup(list), *save = NULL;
	enum sh_err rv = copy ? SH_OK : SH_ENOMEM;

	for (char *name = copy ? strtok_r(copy, ",", &save) : NULL; name && !rv;
	     name = strtok_r(NULL, ",", &save)) {
		size_t i;

		while (*name == ' ')
			name++;
		for (i = 0; i < cat->nmodels && strcmp(cat->models[i].name, name) != 0; i++)
			;
		if (i == cat->nmodels) {
			snprintf(err, errlen, "local=: no exposed model '%s'", name);
			rv = SH_EINVAL;
		} else {
			cat->models[i].local = true;
		}
	}
	free(copy);
	return rv;
}

/* A table the user expects as a directory and does not find is named, with why. */
static void log_skipped(const struct catalog *cat)
{
	for (size_t i = 0; i < cat->nskipped; i++)
		sh_log(LOG_NOTICE, "table \"%s\" is not a model: %s", cat->skipped[i].name,
		       cat->skipped[i].reason);
}

/* Why a table's name cannot be a directory beside the control files, or NULL. */
static const char *unnamable(const char *name)
{
	if (!name[0] || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return "it is not a directory name";
	if (strchr(name, '/'))
		return "a directory name cannot hold '/'";
	if (strlen(name) > KEYNAME_MAX)
		return "it is longer than a directory name can be";
	for (int f = 0; f < CTL_COUNT; f++)
		if (strcmp(name, ctl_name(f)) == 0)
			return "every block has a control file of that name";
	return NULL;
}

static bool listed(const char *list, const char *name)
{
	size_t n = strlen(name);

	for (const char *p = list; p && *p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL) {
		while (*p == ' ')
			p++;
		if (strncmp(p, name, n) == 0 && (p[n] == ',' || p[n] == '\0' || p[n] == ' '))
			return true;
	}
	return false;
}

/* A table whose name cannot be a model directory is left out with a log
 * line (so one odd name never breaks a listing); one asked for by name in
 * models= refuses the mount instead, since the user expects it there. */
static enum sh_err drop_unnamable(struct catalog *cat, const char *models, char *err,
				  size_t errlen)
{
	for (size_t i = 0; i < cat->nmodels;) {
		const char *why = unnamable(cat->models[i].name);

		if (!why) {
			i++;
			continue;
		}
		if (listed(models, cat->models[i].name)) {
			snprintf(err, errlen, "table \"%s\" cannot be mounted: %s; rename the table",
				 cat->models[i].name, why);
			return SH_EINVAL;
		}
		sh_log(LOG_WARNING, "table \"%s\" left out: %s; rename the table to mount it",
		       cat->models[i].name, why);
		catalog_remove(cat, i);
	}
	return SH_OK;
}

static enum sh_err connect_all(struct engine *e, const struct engine_config *cfg, char *err,
			       size_t errlen)
{
	enum sh_err rv = cfg->catalog ? open_from_file(e, cfg, err, errlen)
				      : open_from_pg(e, cfg, err, errlen);

	if (!rv)
		rv = drop_unnamable(e->cat, cfg->models, err, errlen);
	if (!rv)
		log_skipped(e->cat);
	if (!rv && e->cat->nmodels == 0) {
		snprintf(err, errlen, "no table with a primary key in schema '%s'",
			 e->cat->schema);
		rv = SH_EINVAL;
	}
	if (!rv && cfg->local)
		rv = mark_local(e->cat, cfg->local, err, errlen);
	if (!rv && cfg->loaders)
		rv = load_rules(e, cfg->loaders, err, errlen);
	if (!rv)
		rv = check_redis(e->redis_url, err, errlen);
	return rv;
}

static void life_changed(void *ctx, const char *block)
{
	struct engine *e = ctx;

	if (e->on_change)
		e->on_change(e->ctx, block, NULL, NULL, true);
}

static void init_life(struct engine *e)
{
	e->lifecycle.cat = e->cat;
	e->lifecycle.loaders = e->loaders;
	e->lifecycle.blocks = e->blocks;
	e->lifecycle.pg_conninfo = e->pg_conninfo;
	e->lifecycle.default_ttl = e->ttl;
	e->lifecycle.on_change = life_changed;
	e->lifecycle.ctx = e;
	life_recover(&e->lifecycle);
}

static void reserve_ahead(void *ctx, const char *block, const void *model);

enum sh_err engine_open(const struct engine_config *cfg, struct engine **out, char *err,
			size_t errlen)
{
	struct engine *e = calloc(1, sizeof(*e));
	enum sh_err rv;

	*out = NULL;
	if (!e)
		return SH_ENOMEM;
	for (int i = 0; i < READERS; i++)
		pthread_mutex_init(&e->readers[i].lock, NULL);
	pthread_mutex_init(&e->absent.lock, NULL);
	e->pg_conninfo = dup_or_env(cfg->pg, "DATABASE_URL", "");
	e->redis_url = dup_or_env(cfg->redis, "REDIS_URL", "");
	e->node = cfg->node ? strdup(cfg->node) : host_name();
	e->ttl = cfg->ttl;
	e->ids_strict = cfg->ids_strict;
	e->ahead = ahead_new(reserve_ahead, e);
	e->capture_mode = cfg->capture;
	e->cleanup_s = cfg->cleanup_s;
	e->max_doc = cfg->max_doc ? cfg->max_doc : DOC_MAX_DEFAULT;
	rv = (!e->pg_conninfo || !e->redis_url || !e->node || !e->ahead) ? SH_ENOMEM : SH_OK;
	if (!rv)
		rv = connect_all(e, cfg, err, errlen);
	if (!rv && (rv = blockset_open(cfg->data_dir, cfg->sync_full, &e->blocks)) != SH_OK)
		snprintf(err, errlen, rv == SH_EBUSY ?
			 "data directory '%s' is in use by another mount.sharded (see its .lock)" :
			 "cannot open data directory '%s'", cfg->data_dir);
	if (!rv)
		init_life(e);
	if (!rv && e->reader) {	/* the start-up connection serves read-through from now on */
		e->readers[0].pg = e->reader;
		e->reader = NULL;
		pg_set_limits(e->readers[0].pg, &read_limits, &e->stopping);
	}
	if (rv) {
		engine_close(e);
		return rv;
	}
	*out = e;
	return SH_OK;
}

static void forward_change(void *ctx, const char *block, const char *model, const char *pk,
			   bool gone)
{
	struct engine *e = ctx;

	if (e->on_change)
		e->on_change(e->ctx, block, model, pk, gone);
}

static enum sh_err start_capture(struct engine *e)
{
	struct capture_config cc = {
		.cat = e->cat,
		.loaders = e->loaders,
		.blocks = e->blocks,
		.life = &e->lifecycle,
		.pg_conninfo = e->pg_conninfo,
		.require = e->capture_mode == ENGINE_CAPTURE_ON,
		.on_change = forward_change,
		.ctx = e,
	};

	if (e->capture_mode == ENGINE_CAPTURE_OFF)
		return SH_OK;
	return capture_start(&cc, &e->capture);
}

enum sh_err engine_start(struct engine *e, engine_change_fn on_change, void *ctx)
{
	struct sync_config sc = {
		.cat = e->cat,
		.blocks = e->blocks,
		.pg_conninfo = e->pg_conninfo,
		.redis_url = e->redis_url,
		.consumer = e->node,
		.cleanup_s = e->cleanup_s,
		.on_change = forward_change,
		.ctx = e,
	};

	enum sh_err rv = blockset_reopen(e->blocks);	/* we may have forked since engine_open */

	e->on_change = on_change;
	e->ctx = ctx;
	if (!rv)
		rv = sync_start(&sc, &e->sync);
	if (!rv)
		rv = life_start(&e->lifecycle);
	if (!rv)
		rv = ahead_start(e->ahead);
	return rv ? rv : start_capture(e);
}

void engine_stop(struct engine *e)
{
	struct capture *c = e->capture;

	e->capture = NULL;	/* metrics and sync-status say "off" from now on */
	atomic_store(&e->stopping, true);
	capture_stop(c);	/* first: it reloads blocks through the life */
	ahead_stop(e->ahead);
	life_stop(&e->lifecycle);
	sync_stop(e->sync, DRAIN_MS);
	e->sync = NULL;
}

void engine_close(struct engine *e)
{
	if (!e)
		return;
	engine_stop(e);
	ahead_free(e->ahead);
	blockset_close(e->blocks);
	pg_close(e->reader);
	for (int i = 0; i < READERS; i++) {
		pg_close(e->readers[i].pg);
		pthread_mutex_destroy(&e->readers[i].lock);
	}
	for (int i = 0; i < ABSENT_SLOTS; i++)
		free(e->absent.slot[i].pk);
	pthread_mutex_destroy(&e->absent.lock);
	catalog_free(e->cat);
	loaders_free(e->loaders);
	free(e->pg_conninfo);
	free(e->redis_url);
	free(e->node);
	free(e);
}

enum sh_err engine_block_create(struct engine *e, const char *id)
{
	struct block *b;
	char why[160];
	enum sh_err rv = block_id_check(id, why, sizeof(why));

	if (rv) {
		atomic_fetch_add(&e->refusals, 1);
		sh_log(LOG_WARNING, "mkdir '%s' refused: %s", id, why);
		return rv;
	}
	if (strcmp(id, ctl_name(CTL_METRICS)) == 0)
		return SH_EEXIST;	/* the mount's own file has that name */
	rv = blockset_create(e->blocks, id, &b);
	if (rv == SH_EBUSY)
		sh_log(LOG_WARNING, "mkdir '%s' refused: a removed block of that name is still "
		       "sending its writes to PostgreSQL", id);
	if (rv)
		return rv;
	rv = life_create(&e->lifecycle, b, MKDIR_WAIT_MS);
	if (rv == SH_OK) {
		sh_log(LOG_INFO, "block '%s': created", id);
	} else {
		bool retired;

		blockset_remove(e->blocks, id, &retired);	/* nothing written yet: never retires */
		pthread_mutex_lock(&b->state_lock);	/* wake readers: they find it removed */
		b->state = BLOCK_EXPIRED;
		pthread_cond_broadcast(&b->state_cond);
		pthread_mutex_unlock(&b->state_lock);
		sh_log(LOG_WARNING, "mkdir '%s' failed: its load failed, nothing kept", id);
	}
	block_put(b);
	return rv;
}

static enum block_state block_state(struct block *b);

/* A block whose load runs (after its mkdir returned, or an invalidate) is
 * not removed under the load's feet: EBUSY until the load ends. */
static bool loading(struct engine *e, const char *id)
{
	struct block *b;
	bool busy = false;

	if (blockset_get(e->blocks, id, &b) == SH_OK) {
		busy = block_state(b) == BLOCK_LOADING;
		block_put(b);
	}
	return busy;
}

enum sh_err engine_block_remove(struct engine *e, const char *id)
{
	bool retired;
	enum sh_err rv = loading(e, id) ? SH_EBUSY : blockset_remove(e->blocks, id, &retired);

	if (rv == SH_OK && retired)
		sh_log(LOG_INFO, "block '%s': removed; its file goes once its pending writes are in "
		       "PostgreSQL", id);
	else if (rv == SH_OK)
		sh_log(LOG_INFO, "block '%s': removed", id);
	if (rv == SH_OK && !retired && e->sync)
		sync_forget_block(e->sync, id);
	return rv;
}

/* Every request on a block: note the access (TTL), wait for a load, reload if expired. */
static enum sh_err use(struct engine *e, struct block *b)
{
	atomic_store(&b->last_access_ns, clock_wall_ns());
	return life_ready(&e->lifecycle, b);
}

/* A free read-through connection, locked; waits for one while all are busy,
 * until the read's own deadline. -1 when none came free in time. */
static int take_reader(struct engine *e)
{
	unsigned first = atomic_fetch_add(&e->next_reader, 1) % READERS;
	struct timespec deadline;

	for (unsigned k = 0; k < READERS; k++)
		if (pthread_mutex_trylock(&e->readers[(first + k) % READERS].lock) == 0)
			return (int)((first + k) % READERS);
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += read_limits.wait_ms / 1000;
	return pthread_mutex_timedlock(&e->readers[first].lock, &deadline) == 0 ? (int)first : -1;
}

/* Read-through connection i (locked), connected with the read limits;
 * NULL when it cannot connect (*stuck: accepted but said nothing). */
static struct pg *reader_pg(struct engine *e, int i, bool *stuck)
{
	struct pg **pg = &e->readers[i].pg;
	char why[256];

	*stuck = false;
	if (!*pg && pg_connect(e->pg_conninfo, pg, why, sizeof(why)) == SH_OK)
		pg_set_limits(*pg, &read_limits, &e->stopping);
	else if (!*pg)
		*stuck = strstr(why, "timeout expired") != NULL;
	return *pg;
}

/* The row on connection i (locked): connect or reconnect once as needed. */
static enum sh_err fetch_on(struct engine *e, int i, const struct model *m, const char *pk,
			    char **doc, bool *stuck)
{
	struct pg **pg = &e->readers[i].pg;
	enum sh_err rv;

	if (!reader_pg(e, i, stuck))
		return SH_EUNAVAIL;
	rv = pg_fetch_row(*pg, e->cat, m, pk, doc);
	if (rv == SH_EUNAVAIL && *pg && pg_timed_out(*pg)) {
		*stuck = true;	/* reconnecting now would wait a second time */
		return rv;
	}
	if (rv == SH_EUNAVAIL && *pg && pg_reconnect(*pg) == SH_OK)
		rv = pg_fetch_row(*pg, e->cat, m, pk, doc);
	*stuck = rv == SH_EUNAVAIL && *pg && pg_timed_out(*pg);
	return rv;
}

/* One row from PostgreSQL. While it is unreachable, fail fast for a while
 * instead of trying to connect on every lookup. *stuck: it did not answer
 * in time, or too many reads wait for it already (not: it refused). */
static enum sh_err fetch_row(struct engine *e, struct block *b, const struct model *m,
			     const char *pk, char **doc, bool *stuck)
{
	int64_t now = clock_wall_ns();
	enum sh_err rv = SH_EUNAVAIL;
	int i;

	*stuck = false;
	if (now < atomic_load(&e->pg_down_until)) {
		*stuck = atomic_load(&e->pg_stuck);
		return SH_EUNAVAIL;
	}
	if (atomic_fetch_add(&e->reading, 1) >= READ_THROUGH_MAX) {
		atomic_fetch_sub(&e->reading, 1);
		*stuck = true;
		return SH_EUNAVAIL;
	}
	i = take_reader(e);
	if (i >= 0 && clock_wall_ns() < atomic_load(&e->pg_down_until)) {
		/* it failed while we waited: fail like those after us, no second wait */
		*stuck = atomic_load(&e->pg_stuck);
		pthread_mutex_unlock(&e->readers[i].lock);
		atomic_fetch_sub(&e->reading, 1);
		return SH_EUNAVAIL;
	}
	if (i >= 0) {
		rv = fetch_on(e, i, m, pk, doc, stuck);
		pthread_mutex_unlock(&e->readers[i].lock);
	} else {
		*stuck = true;	/* every connection is still waiting for its answer */
	}
	atomic_fetch_sub(&e->reading, 1);
	if (rv != SH_EUNAVAIL) {
		if (rv == SH_OK || rv == SH_ENOENT)
			atomic_store(&e->pg_stuck_ns, 0);	/* it answers again */
		return rv;
	}
	now = clock_wall_ns();
	atomic_store(&e->pg_stuck, *stuck);
	if (*stuck)
		atomic_store(&e->pg_stuck_ns, now);
	if (atomic_exchange(&e->pg_down_until, now + RETRY_READ_NS) < now) {
		char name[KEYNAME_MAX + 1];

		(void)key_file_name(m, pk, name);	/* a key with a newline: one log line */
		sh_log(LOG_WARNING, "block '%s': %s/%s: %s", b->id, m->name, name, *stuck ?
		       "postgresql does not answer in time, records not in a block fail with EAGAIN "
		       "for now" : "postgresql unreachable, records not in a block read as absent "
		       "for now");
	}
	return rv;
}

/* pk is an id this block's .next-id handed out and no record with it was
 * stored since: the sequence gave it to us alone, so no row has it. */
static bool handed_unstored(struct block *b, const struct model *m, const char *pk)
{
	char *end = NULL;
	long long id;

	if (!m->seq)
		return false;
	errno = 0;
	id = strtoll(pk, &end, 10);
	return errno == 0 && end && end != pk && !*end && store_ids_unstored(b->store, m->name, id);
}

/* PostgreSQL just said it has no row pk: remember it for the create that may follow. */
static void absent_note(struct engine *e, const struct block *b, const struct model *m,
			const char *pk)
{
	char *copy = strdup(pk);
	struct absent *a;

	if (!copy)
		return;
	pthread_mutex_lock(&e->absent.lock);
	a = &e->absent.slot[e->absent.next++ % ABSENT_SLOTS];
	free(a->pk);
	*a = (struct absent){ clock_wall_ns(), b, m, copy };
	pthread_mutex_unlock(&e->absent.lock);
}

/* Did PostgreSQL say, within ABSENT_NS, that it has no row pk? Each answer counts once. */
static bool absent_take(struct engine *e, const struct block *b, const struct model *m,
			const char *pk)
{
	int64_t now = clock_wall_ns();
	bool found = false;

	pthread_mutex_lock(&e->absent.lock);
	for (int i = 0; i < ABSENT_SLOTS && !found; i++) {
		struct absent *a = &e->absent.slot[i];

		if (a->at_ns && a->b == b && a->m == m && strcmp(a->pk, pk) == 0) {
			found = now - a->at_ns < ABSENT_NS;
			free(a->pk);
			*a = (struct absent){ 0 };
		}
	}
	pthread_mutex_unlock(&e->absent.lock);
	return found;
}

/* Read the row from PostgreSQL and keep it in the block. A server that
 * refuses connections makes the record read as absent; one that does not
 * answer in time makes it SH_EUNAVAIL (EAGAIN): it may well exist. */
static enum sh_err read_through(struct engine *e, struct block *b, const struct model *m,
				const char *pk, char **doc)
{
	enum sh_err rv;
	bool stuck;

	if (store_has_pending(b->store, m->name, pk))
		return SH_ENOENT;	/* deleted here, not yet in PostgreSQL */
	if (handed_unstored(b, m, pk))
		return SH_ENOENT;	/* a new record with an id from .next-id */
	rv = fetch_row(e, b, m, pk, doc, &stuck);
	if (rv == SH_ENOENT)
		absent_note(e, b, m, pk);
	if (rv)
		return rv == SH_EUNAVAIL && !stuck ? SH_ENOENT : rv;
	rv = store_cache(b->store, m->name, pk, *doc);
	free(*doc);
	*doc = NULL;
	return rv;
}

enum sh_err engine_get_local(struct engine *e, struct block *b, const struct model *m,
			     const char *pk, char **doc, int64_t *mtime_ns)
{
	enum sh_err rv = use(e, b);

	*doc = NULL;
	return rv ? rv : store_get(b->store, m->name, pk, doc, mtime_ns);
}

enum sh_err engine_get(struct engine *e, struct block *b, const struct model *m, const char *pk,
		       char **doc, int64_t *mtime_ns)
{
	char why[160];
	enum sh_err rv;

	if (doc_check_pk(m, pk, why, sizeof(why)) != SH_OK)
		return SH_ENOENT;
	rv = use(e, b);
	if (rv)
		return rv;
	rv = store_get(b->store, m->name, pk, doc, mtime_ns);
	if (rv != SH_ENOENT) {
		if (rv == SH_OK)
			atomic_fetch_add(&e->cache_hits, 1);
		return rv;
	}
	if (m->local)
		return SH_ENOENT;	/* only the blocks have these */
	if (handed_unstored(b, m, pk))
		return SH_ENOENT;	/* not a miss: see read_through */
	atomic_fetch_add(&e->cache_misses, 1);
	rv = read_through(e, b, m, pk, doc);
	if (rv)
		return rv;
	return store_get(b->store, m->name, pk, doc, mtime_ns);
}

/* Commit a prepared document (or a deletion) unless the block is being removed. */
static enum sh_err commit_write(struct engine *e, struct block *b, const struct model *m,
				const char *pk, const char *doc)
{
	int64_t seq;
	enum sh_err rv;

	pthread_rwlock_rdlock(&b->life);
	rv = atomic_load(&b->removed) ? SH_ENOENT : store_write(b->store, m->name, pk, doc, &seq);
	pthread_rwlock_unlock(&b->life);
	if (rv == SH_OK && e->sync)
		sync_kick(e->sync);
	return rv;
}

/* Validate body as the new content of record pk, merged onto existing (the
 * stored document, NULL when absent); *doc gets the document to store and,
 * when sent is not NULL, *sent what an update sends (doc_prepare_update). */
static enum sh_err merge_body(struct engine *e, struct block *b, const struct model *m,
			      const char *pk, const char *body, size_t len, const char *existing,
			      char **doc, char **sent)
{
	char why[256];
	enum sh_err rv = doc_prepare_update(m, pk, body, len, e->max_doc, existing, doc, sent, why,
					    sizeof(why));

	if (rv == SH_EINVAL || rv == SH_ETOOBIG)
		engine_refused(e, b->id, m->name, pk, why);
	return rv;
}

struct engine_kept {
	const struct model *m;
	char *pk, *body;	/* what was merged: body has len bytes */
	size_t len;
	char *existing;		/* the stored record it was merged into, NULL: none */
	char *doc, *sent;	/* merge_body's answer */
};

void engine_kept_free(struct engine_kept *k)
{
	if (!k)
		return;
	free(k->pk);
	free(k->body);
	free(k->existing);
	free(k->doc);
	free(k->sent);
	free(k);
}

/* Keep a merge's inputs and answer (taking existing, doc and sent); NULL
 * without memory, which only costs the merge again at engine_put_kept. */
static struct engine_kept *keep(const struct model *m, const char *pk, const char *body,
				size_t len, char *existing, char *doc, char *sent)
{
	struct engine_kept *k = calloc(1, sizeof(*k));

	if (k) {
		k->m = m;
		k->len = len;
		k->pk = strdup(pk);
		k->body = malloc(len ? len : 1);
		if (k->body)
			memcpy(k->body, body, len);
		k->existing = existing;
		k->doc = doc;
		k->sent = sent;
	}
	if (!k || !k->pk || !k->body) {
		if (k)
			k->existing = k->doc = k->sent = NULL;
		engine_kept_free(k);
		free(existing);
		free(doc);
		free(sent);
		return NULL;
	}
	return k;
}

/* Does kept hold the merge of body into existing? Then its answer is this
 * merge's: merge_body is a function of them (client defaults aside, which
 * then carry the time of the check rather than of the store). */
static bool kept_applies(const struct engine_kept *k, const struct model *m, const char *pk,
			 const char *body, size_t len, const char *existing)
{
	return k && k->m == m && k->len == len && strcmp(k->pk, pk) == 0 &&
	       memcmp(k->body, body, len) == 0 &&
	       (k->existing ? existing && strcmp(k->existing, existing) == 0 : !existing);
}

static char *dup_or_null(const char *s, bool *failed)
{
	char *d = s ? strdup(s) : NULL;

	if (s && !d)
		*failed = true;
	return d;
}

/* Validate body against the stored record; *doc gets the document to store.
 * With kept, also what it sends, and *kept all of it (see engine_kept). */
static enum sh_err prepare(struct engine *e, struct block *b, const struct model *m,
			   const char *pk, const char *body, size_t len, char **doc,
			   struct engine_kept **kept)
{
	char *existing = NULL, *sent = NULL;
	enum sh_err rv = use(e, b);

	if (rv)
		return rv;
	rv = store_get(b->store, m->name, pk, &existing, NULL);
	if (rv != SH_OK && rv != SH_ENOENT)
		return rv;
	rv = merge_body(e, b, m, pk, body, len, existing, doc, kept ? &sent : NULL);
	if (rv == SH_OK && kept) {
		*kept = keep(m, pk, body, len, existing, *doc, sent);
		*doc = NULL;
		return rv;
	}
	free(sent);
	free(existing);
	return rv;
}

/* A write in progress: what store_write_merged's callback merges. */
struct put {
	struct engine *e;
	struct block *b;
	const struct model *m;
	const char *pk, *body;
	size_t len;
	const struct engine_kept *kept;
};

/* store_merge_fn: runs inside the write's transaction. */
static enum sh_err put_merge(void *ctx, const char *existing, char **doc, char **sent)
{
	struct put *p = ctx;
	bool failed = false;

	if (kept_applies(p->kept, p->m, p->pk, p->body, p->len, existing)) {
		*doc = dup_or_null(p->kept->doc, &failed);
		*sent = dup_or_null(p->kept->sent, &failed);
		if (!failed)
			return SH_OK;
		free(*doc);
		free(*sent);
		*doc = *sent = NULL;
	}
	return merge_body(p->e, p->b, p->m, p->pk, p->body, p->len, existing, doc, sent);
}

/* Does the block hold record pk? When not, read it through first (unless
 * deleted here): a write of a row PostgreSQL has is then an upsert of it,
 * and only a record PostgreSQL did not have (or could not be asked about)
 * is written as a create (op.h), even when the kernel wrote to a name it
 * had not looked up again since the block dropped its copy. */
static bool hold_record(struct engine *e, struct block *b, const struct model *m, const char *pk)
{
	char *doc = NULL;
	enum sh_err rv = store_get(b->store, m->name, pk, &doc, NULL);

	if (rv == SH_ENOENT && !m->local && !absent_take(e, b, m, pk) &&
	    read_through(e, b, m, pk, &doc) == SH_OK)
		rv = store_get(b->store, m->name, pk, &doc, NULL);
	free(doc);
	return rv == SH_OK;
}

/* ids=strict: a new record (one the block does not hold: held false) of a
 * model keyed by a sequence must carry a key handed out by its .next-id
 * (nothing else is safe from the sequence). */
static enum sh_err check_new_key(struct engine *e, struct block *b, const struct model *m,
				 const char *pk, bool held)
{
	char *end = NULL;
	long long id;

	if (!e->ids_strict || !m->seq || held)
		return SH_OK;
	errno = 0;
	id = strtoll(pk, &end, 10);
	if (errno == 0 && end && end != pk && !*end && store_ids_handed(b->store, m->name, id))
		return SH_OK;
	atomic_fetch_add(&e->refusals, 1);
	sh_log(LOG_WARNING, "block '%s': write to %s/%s.json refused: ids=strict and %s is not an id "
	       "handed out by %s/%s (the sequence %s could give it to someone else)", b->id,
	       m->name, pk, pk, m->name, ENGINE_NEXT_ID_NAME, m->seq);
	return SH_EINVAL;
}

/* The merge reads the stored record inside the transaction that commits the
 * result: read outside it, two writers of different keys of one record could
 * each merge onto the same old copy and the second would undo the first. */
enum sh_err engine_put(struct engine *e, struct block *b, const struct model *m, const char *pk,
		       const char *body, size_t len)
{
	return engine_put_kept(e, b, m, pk, body, len, NULL);
}

enum sh_err engine_put_kept(struct engine *e, struct block *b, const struct model *m,
			    const char *pk, const char *body, size_t len,
			    const struct engine_kept *kept)
{
	struct put p = { e, b, m, pk, body, len, kept };
	int64_t seq;
	enum sh_err rv = use(e, b);

	if (rv)
		return rv;
	if ((rv = check_new_key(e, b, m, pk, hold_record(e, b, m, pk))) != SH_OK)
		return rv;
	pthread_rwlock_rdlock(&b->life);
	rv = atomic_load(&b->removed) ? SH_ENOENT
				      : store_write_merged(b->store, m->name, pk, put_merge, &p, &seq);
	pthread_rwlock_unlock(&b->life);
	if (rv == SH_OK && e->sync)
		sync_kick(e->sync);
	return rv;
}

enum sh_err engine_check(struct engine *e, struct block *b, const struct model *m,
			 const char *pk, const char *body, size_t len)
{
	return engine_check_keep(e, b, m, pk, body, len, NULL);
}

enum sh_err engine_check_keep(struct engine *e, struct block *b, const struct model *m,
			      const char *pk, const char *body, size_t len,
			      struct engine_kept **kept)
{
	char *doc = NULL;
	enum sh_err rv;

	if (kept) {
		engine_kept_free(*kept);
		*kept = NULL;
	}
	if (e->ids_strict && m->seq && ((rv = use(e, b)) != SH_OK ||
	    (rv = check_new_key(e, b, m, pk, hold_record(e, b, m, pk))) != SH_OK))
		return rv;
	if (len <= e->max_doc && doc_incomplete(body, len))
		return SH_OK;
	rv = prepare(e, b, m, pk, body, len, &doc, kept);
	free(doc);
	return rv;
}

bool engine_has_next_id(const struct model *m)
{
	return m->seq != NULL;
}

/* Reserve n ids from m's sequence into the block, through a read-through
 * connection (failing fast while PostgreSQL is unreachable). */
static enum sh_err reserve_ids(struct engine *e, struct block *b, const struct model *m, int n)
{
	int64_t *ids = calloc((size_t)n, sizeof(*ids)), now = clock_wall_ns();
	enum sh_err rv = SH_EUNAVAIL;
	struct pg *pg;
	bool stuck;
	int i;

	if (!ids)
		return SH_ENOMEM;
	if (now < atomic_load(&e->pg_down_until) || (i = take_reader(e)) < 0) {
		free(ids);	/* down, or every connection busy past the read's deadline */
		return SH_EUNAVAIL;
	}
	pg = reader_pg(e, i, &stuck);
	/* a connection from before a restart of PostgreSQL can fail more than
	 * once after PQreset; one that cannot reconnect fails at once, and one
	 * that got no answer in time is not asked again (it would wait again) */
	for (int k = 0; k < 3 && rv == SH_EUNAVAIL && pg; k++) {
		rv = pg_reserve_ids(pg, m->seq, n, ids);
		if (rv == SH_EUNAVAIL && (pg_timed_out(pg) || pg_reconnect(pg) != SH_OK))
			break;
	}
	pthread_mutex_unlock(&e->readers[i].lock);
	if (rv == SH_EUNAVAIL)
		atomic_store(&e->pg_down_until, now + RETRY_READ_NS);
	if (!rv) {	/* never into a block being deleted */
		pthread_rwlock_rdlock(&b->life);
		rv = atomic_load(&b->removed) ? SH_ENOENT : store_ids_add(b->store, m->name, ids,
									    (size_t)n);
		pthread_rwlock_unlock(&b->life);
	}
	free(ids);
	return rv;
}

/* The ahead thread's reservation (ahead.h); a block gone meanwhile needs none. */
static void reserve_ahead(void *ctx, const char *block, const void *model)
{
	struct engine *e = ctx;
	struct block *b;

	if (blockset_get(e->blocks, block, &b) != SH_OK)
		return;
	(void)reserve_ids(e, b, model, ahead_size(e->ahead, block, model, clock_wall_ns()));
	block_put(b);
}

/* The reader takes an id from the block's reserve and returns; a reserve
 * left low is refilled by the ahead thread, so the reader waits for
 * PostgreSQL only when the block has none left at all. */
enum sh_err engine_next_id(struct engine *e, struct block *b, const struct model *m, char **text)
{
	int64_t id = 0, left = 0;
	enum sh_err rv;

	*text = NULL;
	if (!m->seq)
		return SH_ENOENT;
	if ((rv = use(e, b)) != SH_OK)
		return rv;
	rv = store_ids_take(b->store, m->name, &id, &left);
	if (rv == SH_ENOENT && (rv = reserve_ids(e, b, m, ahead_size(e->ahead, b->id, m,
								      clock_wall_ns()))) == SH_OK)
		rv = store_ids_take(b->store, m->name, &id, &left);
	else if (rv == SH_OK && !ahead_need(e->ahead, b->id, m, left))
		(void)reserve_ids(e, b, m, ahead_size(e->ahead, b->id, m, clock_wall_ns()));
	if (rv != SH_OK) {
		sh_log(LOG_WARNING, "block '%s': %s/%s: no reserved id left and none could be "
		       "reserved from %s: %s", b->id, m->name, ENGINE_NEXT_ID_NAME, m->seq,
		       sh_strerror(rv));
		return rv;
	}
	return asprintf(text, "%" PRId64 "\n", id) < 0 ? SH_ENOMEM : SH_OK;
}

void engine_refused(struct engine *e, const char *block, const char *model, const char *pk,
		    const char *why)
{
	const struct model *m = model ? catalog_find(e->cat, model) : NULL;
	char name[KEYNAME_MAX + 1] = "";

	atomic_fetch_add(&e->refusals, 1);
	if (pk && m)
		(void)key_file_name(m, pk, name);
	else if (pk)
		(void)keyname_from_key(pk, name);
	sh_log(LOG_WARNING, "block '%s': write to %s/%s refused: %s", block, model, name, why);
}

enum sh_err engine_delete(struct engine *e, struct block *b, const struct model *m,
			  const char *pk)
{
	char *doc = NULL;
	enum sh_err rv = engine_get(e, b, m, pk, &doc, NULL);

	free(doc);
	return rv ? rv : commit_write(e, b, m, pk, NULL);
}

enum sh_err engine_evict(struct engine *e, struct block *b, const struct model *m,
			 const char *pk)
{
	(void)e;
	return store_evict(b->store, m->name, pk);
}

enum sh_err engine_list(struct engine *e, struct block *b, const struct model *m,
			engine_record_fn fn, void *ctx)
{
	enum sh_err rv = use(e, b);

	return rv ? rv : store_list(b->store, m->name, fn, ctx);
}

/* ---- control files ------------------------------------------------------ */

static int64_t meta_int(struct block *b, const char *key, int64_t fallback)
{
	char *v = NULL;
	int64_t n = fallback;

	if (store_meta_get(b->store, key, &v) == SH_OK)
		n = strtoll(v, NULL, 10);
	free(v);
	return n;
}

static char *meta_text(struct block *b, const char *key)
{
	char *v = NULL;

	if (store_meta_get(b->store, key, &v) != SH_OK || !v || !*v) {
		free(v);
		return strdup("-");
	}
	return v;
}

static enum block_state block_state(struct block *b)
{
	enum block_state st;

	pthread_mutex_lock(&b->state_lock);
	st = b->state;
	pthread_mutex_unlock(&b->state_lock);
	return st;
}

/* The sync workers' view of the servers; PostgreSQL also counts as down
 * while read-through recently got no answer in time (the apply thread may
 * have nothing to send, or still be waiting out its own deadline). */
static void pg_status(struct engine *e, struct sync_status *ss)
{
	int64_t stuck = atomic_load(&e->pg_stuck_ns);

	if (e->sync)
		sync_get_status(e->sync, ss);
	if (stuck && clock_wall_ns() - stuck < STUCK_SHOWN_NS && ss->pg_up) {
		ss->pg_up = false;
		snprintf(ss->last_error, sizeof(ss->last_error),
			 "postgresql: read-through got no answer within %d ms", read_limits.wait_ms);
	}
}

/* off: not listening by choice or for lack of triggers; down: meant to
 * listen and not connected (changes made in PostgreSQL are not seen now). */
static const char *capture_state(struct engine *e)
{
	const struct capture_stats *cs = capture_stats(e->capture);

	if (!e->capture)
		return "off";
	if (atomic_load(&cs->connected))
		return "up";
	return atomic_load(&cs->installed) || e->capture_mode == ENGINE_CAPTURE_ON ? "down" : "off";
}

static enum sh_err sync_status_text(struct engine *e, struct block *b, char **text)
{
	struct store_stats st = { 0 };
	struct sync_status ss = { .redis_up = true, .pg_up = true };
	int64_t now = clock_wall_ns();
	int64_t total = atomic_load(&b->load_total);
	int64_t dead = meta_int(b, "dead_total", 0);
	char *dead_error = dead ? meta_text(b, "last_dead_error") : strdup("-"), totaltext[24];
	char *refused = meta_text(b, "sync_refused");
	int64_t last_sync = meta_int(b, "last_sync_ns", 0);
	int n;

	store_stats(b->store, &st);
	pg_status(e, &ss);
	if (total < 0)
		snprintf(totaltext, sizeof(totaltext), "-");
	else
		snprintf(totaltext, sizeof(totaltext), "%" PRId64, total);
	n = asprintf(text,
		     "state %s\n"
		     "pending %" PRId64 "\n"
		     "in_flight %" PRId64 "\n"
		     "applied %" PRId64 "\n"
		     "dead %" PRId64 "\n"
		     "records %" PRId64 "\n"
		     "load_rows %lld\n"
		     "load_total %s\n"
		     "last_sync %" PRId64 "\n"
		     "lag_ms %" PRId64 "\n"
		     "retry_in_ms %" PRId64 "\n"
		     "redis %s\n"
		     "postgres %s\n"
		     "last_error %s\n"
		     "last_dead_error %s\n"
		     "refused %s\n"
		     "capture %s\n",
		     life_state_name(block_state(b)), st.pending, st.in_flight,
		     meta_int(b, "applied_total", 0), dead, st.records,
		     (long long)atomic_load(&b->load_rows), totaltext, last_sync / 1000000000,
		     st.oldest_pending_ns ? (now - st.oldest_pending_ns) / 1000000 : 0,
		     ss.retry_at_ns > now ? (ss.retry_at_ns - now) / 1000000 : 0,
		     ss.redis_up ? "up" : "down", ss.pg_up ? "up" : "down",
		     ss.last_error[0] && !(ss.redis_up && ss.pg_up) ? ss.last_error : "-",
		     dead_error ? dead_error : "-", refused ? refused : "-", capture_state(e));
	free(dead_error);
	free(refused);
	return n < 0 ? SH_ENOMEM : SH_OK;
}

/* Totals over every block, for the metrics file. */
struct totals {
	int64_t blocks, records, pending, applied, dead, lag_ns;
};

static void add_totals(struct engine *e, struct totals *t)
{
	struct block **blocks;
	int64_t now = clock_wall_ns();
	size_t n;

	if (blockset_snapshot(e->blocks, &blocks, &n))
		return;
	for (size_t i = 0; i < n; i++) {
		struct store_stats st = { 0 };

		store_stats(blocks[i]->store, &st);
		t->blocks++;
		t->records += st.records;
		t->pending += st.pending;
		t->applied += meta_int(blocks[i], "applied_total", 0);
		t->dead += meta_int(blocks[i], "dead_total", 0);
		if (st.oldest_pending_ns && now - st.oldest_pending_ns > t->lag_ns)
			t->lag_ns = now - st.oldest_pending_ns;
		block_put(blocks[i]);
	}
	free(blocks);
}

#define METRIC(type, name, help, fmt) \
	"# HELP sharded_" name " " help "\n# TYPE sharded_" name " " type "\n" \
	"sharded_" name " " fmt "\n"

static enum sh_err metrics_text(struct engine *e, char **text)
{
	struct sync_status ss = { .redis_up = true, .pg_up = true };
	const struct capture_stats *cs = capture_stats(e->capture);
	struct totals t = { 0 };
	int n;

	add_totals(e, &t);
	pg_status(e, &ss);
	n = asprintf(text,
		     METRIC("gauge", "blocks", "Blocks held by this daemon.", "%" PRId64)
		     METRIC("gauge", "records", "Records cached in all blocks.", "%" PRId64)
		     METRIC("gauge", "pending_writes", "Acknowledged writes not yet applied to PostgreSQL.", "%" PRId64)
		     METRIC("counter", "applied_writes_total", "Writes applied to PostgreSQL.", "%" PRId64)
		     METRIC("counter", "dead_letters_total", "Writes PostgreSQL refused for good.", "%" PRId64)
		     METRIC("gauge", "sync_lag_seconds", "Age of the oldest pending write.", "%.3f")
		     METRIC("counter", "cache_hits_total", "Record reads answered from a block.", "%lld")
		     METRIC("counter", "cache_misses_total", "Record reads that went to PostgreSQL.", "%lld")
		     METRIC("counter", "refused_writes_total", "Writes, control-file values and block names refused as invalid.", "%lld")
		     METRIC("gauge", "redis_up", "Whether the sync workers reach Redis.", "%d")
		     METRIC("gauge", "postgres_up", "Whether PostgreSQL answers the sync workers and read-through in time.", "%d")
		     METRIC("gauge", "nodes_alive", "Nodes sharing the Redis whose heartbeat is recent, this one included.", "%" PRId64)
		     METRIC("gauge", "nodes_silent", "Nodes in the registry whose heartbeat stopped (dead or cut off).", "%" PRId64)
		     METRIC("counter", "takeover_claimed_total", "Stream entries taken over from nodes no longer alive.", "%" PRId64)
		     METRIC("counter", "takeover_applied_total", "Writes applied for blocks this node does not hold.", "%" PRId64)
		     METRIC("gauge", "capture_connected", "Whether the change-capture listener is connected and listening.", "%d")
		     METRIC("counter", "capture_notifications_total", "Changes read from PostgreSQL's change table (one per changed row).", "%lld")
		     METRIC("counter", "remote_changes_applied_total", "Records changed, added or dropped in a block by a change made in PostgreSQL.", "%lld")
		     METRIC("counter", "remote_changes_kept_total", "Remote changes not applied because a local write to the record was pending.", "%lld")
		     METRIC("gauge", "capture_lag_seconds", "Last batch of remote changes: from the change in PostgreSQL to applied in the blocks.", "%.3f")
		     METRIC("counter", "apply_batches_total", "Batches the apply thread sent to PostgreSQL.", "%" PRIu64)
		     METRIC("counter", "apply_rows_total", "Stream entries in those batches.", "%" PRIu64)
		     METRIC("counter", "apply_statements_total", "PostgreSQL statements (round trips) of the apply thread.", "%" PRIu64)
		     METRIC("counter", "apply_redis_calls_total", "Redis commands of the apply thread.", "%" PRIu64)
		     METRIC("counter", "apply_redis_seconds_total", "Apply thread: time reading and acknowledging in Redis.", "%.3f")
		     METRIC("counter", "apply_postgres_seconds_total", "Apply thread: time in PostgreSQL.", "%.3f")
		     METRIC("counter", "apply_settle_seconds_total", "Apply thread: time settling applied batches in the block files.", "%.3f"),
		     t.blocks, t.records, t.pending, t.applied, t.dead, (double)t.lag_ns / 1e9,
		     (long long)atomic_load(&e->cache_hits), (long long)atomic_load(&e->cache_misses),
		     (long long)atomic_load(&e->refusals), ss.redis_up, ss.pg_up, ss.nodes_alive,
		     ss.nodes_silent, ss.takeover_claimed, ss.takeover_applied,
		     atomic_load(&cs->connected), (long long)atomic_load(&cs->notifications),
		     (long long)atomic_load(&cs->applied), (long long)atomic_load(&cs->kept),
		     (double)atomic_load(&cs->lag_us) / 1e6, ss.apply_batches,
		     ss.apply_rows, ss.apply_statements, ss.apply_redis_calls,
		     (double)ss.apply_ns_redis / 1e9, (double)ss.apply_ns_pg / 1e9,
		     (double)ss.apply_ns_settle / 1e9);
	return n < 0 ? SH_ENOMEM : SH_OK;
}

enum sh_err engine_ctl_read(struct engine *e, struct block *b, enum ctl_file f, char **text)
{
	int n = -1;

	switch (f) {
	case CTL_TTL:
		n = asprintf(text, "%" PRId64 "\n", life_ttl(&e->lifecycle, b));
		break;
	case CTL_INVALIDATE:
		n = asprintf(text, "%" PRId64 "\n", meta_int(b, "loaded_ns", 0) / 1000000000);
		break;
	case CTL_SYNC_STATUS:
		return sync_status_text(e, b, text);
	case CTL_METRICS:
		return metrics_text(e, text);
	case CTL_NEXT_ID:
		return SH_EINVAL;	/* a model's: engine_next_id */
	}
	return n < 0 ? SH_ENOMEM : SH_OK;
}

/* The value of a control-file write: the whole buffer, one trailing newline allowed. */
static enum sh_err ctl_value(const char *buf, size_t len, char *out, size_t outlen)
{
	if (len && buf[len - 1] == '\n')
		len--;
	if (len == 0 || len >= outlen || len >= CTL_INPUT_MAX)
		return SH_EINVAL;
	memcpy(out, buf, len);
	out[len] = '\0';
	return strlen(out) == len ? SH_OK : SH_EINVAL;
}

static enum sh_err parse_ttl(const char *v, int64_t *ttl)
{
	char *end;

	for (const char *p = v; *p; p++)
		if (!isdigit((unsigned char)*p))
			return SH_EINVAL;
	errno = 0;
	*ttl = strtoll(v, &end, 10);
	return errno || *end || *ttl > TTL_MAX ? SH_EINVAL : SH_OK;
}

static enum sh_err invalidate(struct engine *e, struct block *b)
{
	enum sh_err rv = life_reload(&e->lifecycle, b);

	if (rv == SH_OK)
		sh_log(LOG_INFO, "block '%s': invalidated and reloaded", b->id);
	return rv;
}

enum sh_err engine_ctl_write(struct engine *e, struct block *b, enum ctl_file f, const char *buf,
			     size_t len)
{
	char v[CTL_INPUT_MAX];
	int64_t ttl;
	enum sh_err rv = ctl_value(buf, len, v, sizeof(v));

	if (!rv && f == CTL_TTL && !(rv = parse_ttl(v, &ttl)))
		rv = store_meta_set(b->store, "ttl", v);
	else if (!rv && f == CTL_INVALIDATE)
		rv = strcmp(v, "1") == 0 ? invalidate(e, b) : SH_EINVAL;
	else if (!rv && !ctl_writable(f))
		rv = SH_EPERM;
	if (rv == SH_EINVAL) {
		atomic_fetch_add(&e->refusals, 1);
		sh_log(LOG_WARNING, "block '%s': write to '%s' refused: '%.*s' is not a valid value",
		       b->id, ctl_name(f), (int)(len > 40 ? 40 : len), buf);
	}
	return rv;
}
