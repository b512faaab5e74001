/* life.h - a block's life: loading, waiting for a load, reloading, expiring.
 *
 * A block is BLOCK_LOADING while its loader runs (mkdir, invalidate, reload
 * after expiry); requests wait for it, up to LIFE_WAIT_MS. The expiry thread
 * drops the records of a block idle for longer than its TTL, once nothing is
 * pending, and marks it BLOCK_EXPIRED; the next request reloads it. A load
 * runs on a PostgreSQL connection of its own and writes in one SQLite
 * transaction, so a failed load leaves the block as it was.
 */
#ifndef SHARDED_LIFE_H
#define SHARDED_LIFE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "blocks.h"
#include "catalog.h"
#include "error.h"
#include "loader.h"

#define LIFE_WAIT_MS 30000

/* Called (from the expiry thread) after a block's records were dropped. */
/* Connections kept between loads (each an idle server process). */
#define LOAD_POOL_MAX 4

typedef void (*life_change_fn)(void *ctx, const char *block);

struct life {
	const struct catalog *cat;	/* borrowed */
	const struct loaders *loaders;	/* borrowed; NULL: no rules */
	struct blockset *blocks;	/* borrowed */
	const char *pg_conninfo;	/* borrowed */
	int64_t default_ttl;		/* seconds; 0 = never */
	life_change_fn on_change;
	void *ctx;
	/* the expiry thread */
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;		/* the expiry thread; also: a first load ended */
	bool running, stopping;
	int loads;			/* first loads running in threads of their own; under lock */
	atomic_bool abort;		/* stopping: loads stop, waits for PostgreSQL end */
	atomic_int waiting;		/* requests waiting for a load */
	struct pg *pool[LOAD_POOL_MAX];	/* idle connections of ended loads; under lock */
	int npool;
};

/* Run the loader of b (state must be BLOCK_LOADING, set by the caller).
 * replace: drop what is synced first (reload). */
enum sh_err life_load(struct life *l, struct block *b, bool replace);

/* A new block was created (BLOCK_LOADING): load it, then BLOCK_READY.
 * On failure the caller removes the block. */
enum sh_err life_first_load(struct life *l, struct block *b);

/* mkdir: life_first_load in a thread of its own, waited for up to wait_ms.
 * Its result when it ended by then (on failure the caller removes the
 * block); else SH_OK, the block stays BLOCK_LOADING (readers wait for it,
 * sync-status shows its progress), and should the load fail later the
 * block is removed then. */
enum sh_err life_create(struct life *l, struct block *b, int wait_ms);

/* Before any request on b: wait while it loads, reload it if expired. A
 * request does not wait beyond LIFE_WAIT_MS, nor when LOAD_WAITERS_MAX
 * (life.c) others wait already: SH_EUNAVAIL. */
enum sh_err life_ready(struct life *l, struct block *b);

/* invalidate: drop what is synced and reload now. */
enum sh_err life_reload(struct life *l, struct block *b);

/* The block's TTL in seconds (its own, else the default). */
int64_t life_ttl(struct life *l, struct block *b);

/* Mark blocks that a crash left half-loaded, or that were expired, as
 * BLOCK_EXPIRED (from their meta), once after opening. */
void life_recover(struct life *l);

const char *life_state_name(enum block_state s);

enum sh_err life_start(struct life *l);
void life_stop(struct life *l);

/* One expiry pass at time now_ns: the thread calls it each second with the
 * wall clock, tests/unit/test_life.c with times of its own. */
void life_expire_pass(struct life *l, int64_t now_ns);

#endif
