/* life.c - loading, reloading and expiring blocks.
 * Order (the expiry thread): once a second it looks at every block; it drops
 * a block's records only when the block is ready, idle past its TTL and has
 * nothing pending, and marks it loading first, so no request sees it half
 * dropped and no pending write is ever lost. A load commits in one SQLite
 * transaction: requests see the block before it or after it. */
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

struct load_ctx {
	struct block *b;
	struct store_load *ld;
	const char *model;
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
	enum sh_err rv = store_load_row(c->ld, c->model, pk, doc);

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

/* Fill ld with the rows of rule r for block b. */
static enum sh_err run_rule(struct life *l, struct block *b, const struct load_rule *r,
			    char **values, struct store_load *ld)
{
	struct load_ctx c = { .b = b, .ld = ld };
	char err[512] = "";
	struct pg *pg;
	int64_t total;
	enum sh_err rv = pg_connect(l->pg_conninfo, &pg, err, sizeof(err));

	if (!rv)
		rv = count_rows(pg, l->cat, r, values, err, sizeof(err), &total);
	if (!rv) {
		atomic_store(&b->load_total, total);
		rv = stream_steps(pg, l->cat, r, values, &c, err, sizeof(err));
	}
	if (rv)
		sh_log(LOG_ERR, "block '%s': load failed: %s", b->id, err[0] ? err : sh_strerror(rv));
	pg_close(pg);
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

/* Wait while b loads; true when it is ready, false on timeout. Called locked. */
static bool wait_loaded(struct block *b)
{
	struct timespec deadline;

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += LIFE_WAIT_MS / 1000;
	while (b->state == BLOCK_LOADING)
		if (pthread_cond_timedwait(&b->state_cond, &b->state_lock, &deadline) != 0)
			return false;
	return true;
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
	if (!wait_loaded(b)) {
		pthread_mutex_unlock(&b->state_lock);
		sh_log(LOG_WARNING, "block '%s': still loading after %d ms", b->id, LIFE_WAIT_MS);
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
	if (!wait_loaded(b)) {
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
	pthread_mutex_lock(&l->lock);
	l->stopping = true;
	pthread_cond_signal(&l->wake);
	pthread_mutex_unlock(&l->lock);
	pthread_join(l->thread, NULL);
	pthread_cond_destroy(&l->wake);
	pthread_mutex_destroy(&l->lock);
	l->running = false;
}
