/* life.c - loading, reloading and expiring blocks.
 * Order (the expiry thread): once a second it looks at every block; it drops
 * a block's records only when the block is ready, idle past its TTL and has
 * nothing pending, and marks it loading first, so no request sees it half
 * dropped and no pending write is ever lost. A load commits in one SQLite
 * transaction: requests see the block before it or after it.
 *
 * Threads: the expiry thread (one pass a second, blocks in id order), and
 * one detached thread per first load that outlives its mkdir (see
 * life_create): each works on its own block only; life_stop cuts their
 * waits for PostgreSQL and waits for them. */
#include "life.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "log.h"
#include "pg.h"
#include "store.h"
#include "thread.h"

#define RELOAD_RETRY_NS (5LL * 1000000000)	/* an expired block whose reload failed */
/* Requests waiting for loads at once (each holds a FUSE thread): half of the
 * mount's 32 or more, so that 8 read-throughs and these leave threads for
 * local requests. With 8, test_freeze's 8 writers and 2 invalidate loops
 * had one writer refused with EAGAIN 46 times in a row (one CI run). */
#define LOAD_WAITERS_MAX 16

/* A load may run long (a big block), so no statement timeout; a table
 * locked by someone else ends it after lock_ms, and a server that sends
 * nothing for wait_ms (each wait for the next rows) is dropped. */
static const struct pg_limits load_limits = {
	.statement_ms = 0, .lock_ms = 10000, .wait_ms = 30000,
};

struct load_ctx {
	struct block *b;
	struct store_load *ld;
	const char *model;
	const atomic_bool *abort;
};

const char *life_state_name(enum block_state s)
{
	switch (s) {
	case BLOCK_READY: return "ready";
	case BLOCK_LOADING: return "loading";
	case BLOCK_EXPIRED: return "expired";
	}
	return "unknown";
}

static void set_state(struct block *b, enum block_state s)
{
	pthread_mutex_lock(&b->state_lock);
	b->state = s;
	pthread_cond_broadcast(&b->state_cond);
	pthread_mutex_unlock(&b->state_lock);
	store_meta_set(b->store, "state", life_state_name(s));
}

static enum sh_err take_row(void *arg, const char *pk, const char *doc)
{
	struct load_ctx *c = arg;
	enum sh_err rv = atomic_load(c->abort) ? SH_EUNAVAIL
					       : store_load_row(c->ld, c->model, pk, doc);

	if (!rv)
		atomic_fetch_add(&c->b->load_rows, 1);
	return rv;
}

/* The parameter values of one step, from the captured parts of the id. */
static void step_params(const struct load_step *st, char **values, const char **params)
{
	for (int i = 0; i < st->nparams; i++)
		params[i] = values[st->capture[i]];
}

static enum sh_err count_rows(struct pg *pg, const struct catalog *cat, const struct load_rule *r,
			      char **values, char *err, size_t errlen, int64_t *total)
{
	*total = 0;
	for (size_t i = 0; i < r->nsteps; i++) {
		const char *params[LOADER_CAPTURES_MAX];
		char *sql = pg_loader_sql(pg, cat, r->steps[i].model, r->steps[i].where, true);
		int64_t n = 0;
		enum sh_err rv;

		if (!sql)
			return SH_ENOMEM;
		step_params(&r->steps[i], values, params);
		rv = pg_count(pg, sql, r->steps[i].nparams, params, &n, err, errlen);
		free(sql);
		if (rv)
			return rv;
		*total += n;
	}
	return SH_OK;
}

static enum sh_err stream_steps(struct pg *pg, const struct catalog *cat, const struct load_rule *r,
				char **values, struct load_ctx *c, char *err, size_t errlen)
{
	for (size_t i = 0; i < r->nsteps; i++) {
		const char *params[LOADER_CAPTURES_MAX];
		char *sql = pg_loader_sql(pg, cat, r->steps[i].model, r->steps[i].where, false);
		enum sh_err rv;

		if (!sql)
			return SH_ENOMEM;
		step_params(&r->steps[i], values, params);
		c->model = r->steps[i].model->name;
		rv = pg_stream_rows(pg, sql, r->steps[i].nparams, params, take_row, c, err, errlen);
		free(sql);
		if (rv)
			return rv;
	}
	return SH_OK;
}

/* A connection for a load: an idle one left by an earlier load, else a new
 * one (a server process start, 10-50 ms here: more than a small block's
 * rows). *pooled says which, for load_retry. */
static enum sh_err load_conn(struct life *l, struct pg **pg, bool *pooled, char *err, size_t errlen)
{
	enum sh_err rv;

	*pg = NULL;
	if (l->running) {
		pthread_mutex_lock(&l->lock);
		if (l->npool > 0)
			*pg = l->pool[--l->npool];
		pthread_mutex_unlock(&l->lock);
	}
	if ((*pooled = *pg != NULL))
		return SH_OK;
	rv = pg_connect(l->pg_conninfo, pg, err, errlen);
	if (!rv && (rv = pg_set_limits(*pg, &load_limits, &l->abort)) != SH_OK) {
		pg_close(*pg);
		*pg = NULL;
	}
	return rv;
}

/* Keep pg for the next load if the load that used it ended well (the
 * connection is idle, outside any transaction) and the pool has room. */
static void load_conn_done(struct life *l, struct pg *pg, bool ok)
{
	if (pg && ok && l->running) {
		pthread_mutex_lock(&l->lock);
		if (!l->stopping && l->npool < LOAD_POOL_MAX) {
			l->pool[l->npool++] = pg;
			pg = NULL;
		}
		pthread_mutex_unlock(&l->lock);
	}
	pg_close(pg);
}

static void load_pool_close(struct life *l)
{
	while (l->npool > 0)
		pg_close(l->pool[--l->npool]);
}

/* Fill ld with the rows of rule r for block b. A pooled connection may
 * have died with its server since its last load: a failure before any row
 * was taken is tried once more on a new connection. */
static enum sh_err run_rule(struct life *l, struct block *b, const struct load_rule *r,
			    char **values, struct store_load *ld)
{
	struct load_ctx c = { .b = b, .ld = ld, .abort = &l->abort };
	char err[512] = "";
	struct pg *pg;
	int64_t total;
	bool pooled;
	enum sh_err rv;

	rv = load_conn(l, &pg, &pooled, err, sizeof(err));
	if (!rv)
		rv = count_rows(pg, l->cat, r, values, err, sizeof(err), &total);
	while (rv && pooled && pg_broken(pg) && !pg_timed_out(pg) && !atomic_load(&l->abort)) {
		load_conn_done(l, pg, false);
		err[0] = '\0';
		rv = load_conn(l, &pg, &pooled, err, sizeof(err));
		if (!rv)
			rv = count_rows(pg, l->cat, r, values, err, sizeof(err), &total);
	}
	if (!rv) {
		atomic_store(&b->load_total, total);
		rv = stream_steps(pg, l->cat, r, values, &c, err, sizeof(err));
	}
	if (rv)
		sh_log(LOG_ERR, "block '%s': load failed: %s", b->id, err[0] ? err : sh_strerror(rv));
	load_conn_done(l, pg, rv == SH_OK);
	return rv;
}

static void mark_loaded(struct block *b)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%" PRId64, clock_wall_ns());
	store_meta_set(b->store, "loaded_ns", buf);
}

enum sh_err life_load(struct life *l, struct block *b, bool replace)
{
	char *values[LOADER_CAPTURES_MAX];
	const struct load_rule *r = loaders_match(l->loaders, b->id, values);
	struct store_load *ld;
	enum sh_err rv;

	atomic_store(&b->load_rows, 0);
	atomic_store(&b->load_total, r ? -1 : 0);
	rv = store_load_begin(b->store, replace, &ld);
	if (!rv && r)
		rv = run_rule(l, b, r, values, ld);
	loader_values_free(values);
	if (!rv)
		rv = store_load_end(ld, true);
	else
		store_load_end(ld, false);
	if (!rv) {
		mark_loaded(b);
		sh_log(LOG_INFO, "block '%s': loaded %lld rows%s", b->id,
		       (long long)atomic_load(&b->load_rows), r ? "" : " (no loader rule)");
	}
	return rv == SH_EREMOTE || rv == SH_EUNAVAIL ? SH_EIO : rv;
}

enum sh_err life_first_load(struct life *l, struct block *b)
{
	enum sh_err rv;

	store_meta_set(b->store, "state", "loading");
	rv = life_load(l, b, false);
	if (!rv)
		set_state(b, BLOCK_READY);
	return rv;
}

/* A first load handed to a thread of its own: the mkdir waits for it a
 * short while only, since the kernel holds the root directory's lock for
 * the whole mkdir (no lookup, ls or sync-status under the root meanwhile). */
struct first_load {
	struct life *l;
	struct block *b;	/* a reference of its own */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool done, abandoned;	/* under lock; abandoned: the mkdir returned */
	enum sh_err rv;
};

/* A first load failed after its mkdir returned: remove the block, as a
 * failed mkdir would have. Not when it failed because we are stopping: its
 * meta says "loading", so it loads again on first use after the restart. */
static void drop_failed(struct life *l, struct block *b)
{
	bool retired;

	if (atomic_load(&l->abort) || atomic_load(&b->removed))
		return;
	blockset_remove(l->blocks, b->id, &retired);	/* nothing written yet: never retires */
	pthread_mutex_lock(&b->state_lock);	/* wake readers: they find it removed */
	b->state = BLOCK_EXPIRED;	/* (not in its meta: the file is gone) */
	pthread_cond_broadcast(&b->state_cond);
	pthread_mutex_unlock(&b->state_lock);
	sh_log(LOG_WARNING, "block '%s': its load failed after mkdir returned; block removed",
	       b->id);
	if (l->on_change)
		l->on_change(l->ctx, b->id);
}

static void *first_load_main(void *arg)
{
	struct first_load *fl = arg;
	struct life *l = fl->l;
	struct block *b = fl->b;
	enum sh_err rv = life_first_load(l, b);
	bool abandoned;

	pthread_mutex_lock(&fl->lock);
	fl->done = true;
	fl->rv = rv;
	abandoned = fl->abandoned;
	pthread_cond_broadcast(&fl->cond);
	pthread_mutex_unlock(&fl->lock);
	if (abandoned) {	/* the mkdir is gone: the rest is ours */
		if (rv)
			drop_failed(l, b);
		pthread_mutex_destroy(&fl->lock);
		pthread_cond_destroy(&fl->cond);
		free(fl);
	}
	block_put(b);
	pthread_mutex_lock(&l->lock);
	l->loads--;
	pthread_cond_broadcast(&l->wake);
	pthread_mutex_unlock(&l->lock);
	return NULL;
}

static enum sh_err start_first_load(struct first_load *fl)
{
	struct life *l = fl->l;
	pthread_t t;

	pthread_mutex_lock(&l->lock);
	l->loads++;
	pthread_mutex_unlock(&l->lock);
	atomic_fetch_add(&fl->b->refs, 1);
	if (thread_start(&t, "sharded-load", first_load_main, fl) == 0) {
		pthread_detach(t);	/* life_stop waits on l->loads, not on the thread */
		return SH_OK;
	}
	block_put(fl->b);
	pthread_mutex_lock(&l->lock);
	l->loads--;
	pthread_mutex_unlock(&l->lock);
	return SH_ENOMEM;
}

enum sh_err life_create(struct life *l, struct block *b, int wait_ms)
{
	struct first_load *fl;
	struct timespec deadline;
	enum sh_err rv;

	if (!l->running)	/* no expiry thread (tests): nothing to wait for us either */
		return life_first_load(l, b);
	if (!(fl = calloc(1, sizeof(*fl))))
		return SH_ENOMEM;
	fl->l = l;
	fl->b = b;
	pthread_mutex_init(&fl->lock, NULL);
	pthread_cond_init(&fl->cond, NULL);
	if ((rv = start_first_load(fl)) != SH_OK) {
		pthread_mutex_destroy(&fl->lock);
		pthread_cond_destroy(&fl->cond);
		free(fl);
		return rv;
	}
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_nsec += (long)(wait_ms % 1000) * 1000000;
	deadline.tv_sec += wait_ms / 1000 + deadline.tv_nsec / 1000000000;
	deadline.tv_nsec %= 1000000000;
	pthread_mutex_lock(&fl->lock);
	while (!fl->done && pthread_cond_timedwait(&fl->cond, &fl->lock, &deadline) == 0)
		;
	if (!fl->done) {
		fl->abandoned = true;
		pthread_mutex_unlock(&fl->lock);
		sh_log(LOG_INFO, "block '%s': still loading after %d ms; mkdir returns, the load "
		       "goes on", b->id, wait_ms);
		return SH_OK;
	}
	rv = fl->rv;
	pthread_mutex_unlock(&fl->lock);
	pthread_mutex_destroy(&fl->lock);
	pthread_cond_destroy(&fl->cond);
	free(fl);
	return rv;
}

/* Wait while b loads; true when it is ready, false on timeout or when
 * LOAD_WAITERS_MAX requests wait already (a load stuck on PostgreSQL must
 * not take every request thread). Called locked. */
static bool wait_loaded(struct life *l, struct block *b)
{
	struct timespec deadline;
	bool ok = true;

	if (b->state != BLOCK_LOADING)
		return true;
	if (atomic_fetch_add(&l->waiting, 1) >= LOAD_WAITERS_MAX) {
		atomic_fetch_sub(&l->waiting, 1);
		return false;
	}
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += LIFE_WAIT_MS / 1000;
	while (ok && b->state == BLOCK_LOADING)
		ok = pthread_cond_timedwait(&b->state_cond, &b->state_lock, &deadline) == 0;
	atomic_fetch_sub(&l->waiting, 1);
	return ok || b->state != BLOCK_LOADING;
}

/* Reload b; the caller has made it BLOCK_LOADING. Back to from on failure. */
static enum sh_err reload_from(struct life *l, struct block *b, enum block_state from)
{
	enum sh_err rv = life_load(l, b, true);

	set_state(b, rv ? from : BLOCK_READY);
	if (!rv && l->on_change)
		l->on_change(l->ctx, b->id);
	return rv;
}

enum sh_err life_ready(struct life *l, struct block *b)
{
	pthread_mutex_lock(&b->state_lock);
	if (!wait_loaded(l, b)) {
		pthread_mutex_unlock(&b->state_lock);
		sh_log(LOG_WARNING, "block '%s': still loading (waited up to %d ms, or %d requests "
		       "wait already)", b->id, LIFE_WAIT_MS, LOAD_WAITERS_MAX);
		return SH_EUNAVAIL;
	}
	if (atomic_load(&b->removed)) {
		pthread_mutex_unlock(&b->state_lock);
		return SH_ENOENT;
	}
	if (b->state == BLOCK_EXPIRED && clock_wall_ns() >= atomic_load(&b->reload_after_ns)) {
		b->state = BLOCK_LOADING;	/* this request reloads it; others wait */
		pthread_mutex_unlock(&b->state_lock);
		if (reload_from(l, b, BLOCK_EXPIRED) != SH_OK) {
			/* PostgreSQL away: serve what the block holds (pending writes,
			 * read-through later) and try again in a while */
			atomic_store(&b->reload_after_ns, clock_wall_ns() + RELOAD_RETRY_NS);
			sh_log(LOG_WARNING, "block '%s': reload failed; serving what it holds", b->id);
		}
		return SH_OK;
	}
	pthread_mutex_unlock(&b->state_lock);
	return SH_OK;
}

enum sh_err life_reload(struct life *l, struct block *b)
{
	enum block_state from;

	pthread_mutex_lock(&b->state_lock);
	if (!wait_loaded(l, b)) {
		pthread_mutex_unlock(&b->state_lock);
		return SH_EUNAVAIL;
	}
	from = b->state;
	b->state = BLOCK_LOADING;
	pthread_mutex_unlock(&b->state_lock);
	return reload_from(l, b, from);
}

int64_t life_ttl(struct life *l, struct block *b)
{
	char *v = NULL;
	int64_t ttl = l->default_ttl;

	if (store_meta_get(b->store, "ttl", &v) == SH_OK)
		ttl = strtoll(v, NULL, 10);
	free(v);
	return ttl;
}

void life_recover(struct life *l)
{
	struct block **blocks;
	size_t n;

	if (blockset_snapshot(l->blocks, &blocks, &n))
		return;
	for (size_t i = 0; i < n; i++) {
		char *state = NULL;

		if (store_meta_get(blocks[i]->store, "state", &state) == SH_OK &&
		    strcmp(state, "ready") != 0) {
			pthread_mutex_lock(&blocks[i]->state_lock);
			blocks[i]->state = BLOCK_EXPIRED;	/* reloads on first use */
			pthread_mutex_unlock(&blocks[i]->state_lock);
		}
		free(state);
		block_put(blocks[i]);
	}
	free(blocks);
}

/* Drop b's records if it has been idle past its TTL and nothing is pending. */
static void maybe_expire(struct life *l, struct block *b, int64_t now_ns)
{
	int64_t ttl = life_ttl(l, b), dropped = 0, pending;

	if (ttl <= 0 || now_ns - atomic_load(&b->last_access_ns) < ttl * 1000000000)
		return;
	if (store_pending(b->store, &pending) != SH_OK || pending > 0)
		return;	/* pending writes are never dropped: try again later */
	pthread_mutex_lock(&b->state_lock);
	if (b->state != BLOCK_READY) {
		pthread_mutex_unlock(&b->state_lock);
		return;
	}
	b->state = BLOCK_LOADING;	/* requests wait while the records go */
	pthread_mutex_unlock(&b->state_lock);
	/* a parked store's remembered 0 may predate another process's write */
	if (store_pending_fresh(b->store, &pending) != SH_OK || pending > 0) {
		set_state(b, BLOCK_READY);
		return;
	}
	if (store_expire(b->store, &dropped) == SH_OK)
		sh_log(LOG_INFO, "block '%s': expired after %" PRId64 " s idle, %" PRId64 " records dropped",
		       b->id, ttl, dropped);
	set_state(b, BLOCK_EXPIRED);
	if (l->on_change)
		l->on_change(l->ctx, b->id);
}

void life_expire_pass(struct life *l, int64_t now_ns)
{
	struct block **blocks;
	size_t n;

	if (blockset_snapshot(l->blocks, &blocks, &n))
		return;
	for (size_t i = 0; i < n; i++) {
		maybe_expire(l, blocks[i], now_ns);
		block_put(blocks[i]);
	}
	free(blocks);
}

static void *expiry_main(void *arg)
{
	struct life *l = arg;
	struct timespec deadline;

	pthread_mutex_lock(&l->lock);
	while (!l->stopping) {
		pthread_mutex_unlock(&l->lock);
		life_expire_pass(l, clock_wall_ns());
		pthread_mutex_lock(&l->lock);
		clock_gettime(CLOCK_REALTIME, &deadline);
		deadline.tv_sec += 1;
		if (!l->stopping)
			pthread_cond_timedwait(&l->wake, &l->lock, &deadline);
	}
	pthread_mutex_unlock(&l->lock);
	return NULL;
}

enum sh_err life_start(struct life *l)
{
	pthread_mutex_init(&l->lock, NULL);
	pthread_cond_init(&l->wake, NULL);
	if (thread_start(&l->thread, "sharded-expiry", expiry_main, l) != 0)
		return SH_ENOMEM;
	l->running = true;
	return SH_OK;
}

void life_stop(struct life *l)
{
	if (!l->running)
		return;
	atomic_store(&l->abort, true);	/* loads stop waiting for PostgreSQL */
	pthread_mutex_lock(&l->lock);
	l->stopping = true;
	pthread_cond_broadcast(&l->wake);
	while (l->loads > 0)
		pthread_cond_wait(&l->wake, &l->lock);
	pthread_mutex_unlock(&l->lock);
	pthread_join(l->thread, NULL);
	load_pool_close(l);
	pthread_cond_destroy(&l->wake);
	pthread_mutex_destroy(&l->lock);
	l->running = false;
}
