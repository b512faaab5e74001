/* sync.h - the two background workers that carry writes to PostgreSQL.
 *
 * DESIGN
 * relay thread: outbox -> Redis. For every block it XADDs outbox entries not
 *   yet sent (or sent long ago, in case Redis lost them) to the block's
 *   stream, in seq order, and notes when it did. It never deletes anything.
 * apply thread: Redis -> PostgreSQL. For every block with pending writes (or
 *   with entries it read and left waiting, or not read since the start) it
 *   reads the stream in consumer group "sharded" (its own pending entries
 *   first, then new ones), applies per origin the contiguous run of seqs
 *   that follows what PostgreSQL already has of it (plan.h, pg_apply), then
 *   deletes from the outbox what PostgreSQL has of the batch's origins and of
 *   the outbox's own (another node sharing the stream may have applied
 *   those), and only then XACKs and XDELs the entries in Redis. A wait is a
 *   gap (the outbox is sent again) only when it is one of our own origins'
 *   and lasts GAP_RESEND_MS: with several nodes on a block, the entries
 *   before it are often in another node's hands, about to be applied.
 * An entry therefore leaves the outbox only after PostgreSQL committed it,
 * and a replay of anything already applied changes nothing. Transient
 * failures of either server are retried forever with capped, jittered
 * exponential backoff; both threads block no request. A block whose
 * bookkeeping or batch PostgreSQL refuses for its values (SQLSTATE class 22,
 * 23, 54: e.g. an id it cannot store) is no outage: that block alone is held
 * back, its entries kept in order, and tried again every REFUSED_RETRY_MS,
 * while the pass goes on to the others.
 * Every CLAIM_EVERY_MS the apply thread also takes over entries that another
 * consumer (a daemon that died) left pending for over CLAIM_IDLE_MS
 * (XAUTOCLAIM), so they are applied too.
 * Nodes: the relay thread writes this node's heartbeat to the registry
 * (nodereg.h) every NODEREG_BEAT_MS (it holds a Redis connection and wakes
 * at least every IDLE_WAIT_MS) and removes it when it stops. Every
 * TAKEOVER_EVERY_MS the apply thread scans all blocks' streams for entries
 * of nodes no longer alive and for entries nobody read (takeover.h), and
 * applies them, also in blocks this node does not hold: with the catalog and
 * pg_apply alone, no block file (dead letters go to the dead stream).
 */
#ifndef SHARDED_SYNC_H
#define SHARDED_SYNC_H

#include <stdbool.h>
#include <stdint.h>

#include "blocks.h"
#include "catalog.h"
#include "error.h"

/* Called from a worker thread when a record's content changed behind the
 * user; gone: it may no longer exist. */
typedef void (*sync_change_fn)(void *ctx, const char *block, const char *model, const char *pk,
			       bool gone);

struct sync_config {
	const struct catalog *cat;	/* borrowed, outlives the sync */
	struct blockset *blocks;	/* borrowed */
	const char *pg_conninfo;	/* copied */
	const char *redis_url;		/* copied */
	const char *consumer;		/* copied: this node's consumer name */
	int64_t cleanup_s;		/* periodic cleanup (admin_cleanup) every this often; 0 = never */
	sync_change_fn on_change;
	void *ctx;
};

struct sync_status {
	bool redis_up;
	bool pg_up;
	int64_t retry_at_ns;		/* next retry after a transient failure, 0 if none */
	char last_error[256];		/* last transient error, "" if none */
	int64_t nodes_alive;		/* nodes in the registry that beat lately, this one too */
	int64_t nodes_silent;		/* ... that did not (dead, or cut off) */
	int64_t takeover_claimed;	/* entries claimed from dead nodes' consumers, in total */
	int64_t takeover_applied;	/* writes applied for blocks this node does not hold */
	/* the apply path's work, counted so that its cost per batch is visible
	 * (metrics file, docs/benchmarks.md) */
	uint64_t apply_batches;		/* pg_apply calls that applied something */
	uint64_t apply_rows;		/* entries handed to pg_apply */
	uint64_t apply_statements;	/* PostgreSQL statements (each one round trip) */
	uint64_t apply_redis_calls;	/* Redis commands of the apply thread */
	uint64_t apply_ns_redis, apply_ns_pg, apply_ns_settle;	/* time in each part */
};

struct sync;

enum sh_err sync_start(const struct sync_config *cfg, struct sync **out);

/* A write was committed: relay it soon. Cheap; any thread. */
void sync_kick(struct sync *s);

void sync_get_status(struct sync *s, struct sync_status *out);

/* Block id was deleted with nothing pending: drop its Redis stream soon
 * (unless a block of that name exists again by then). Dead letters stay. */
void sync_forget_block(struct sync *s, const char *id);

/* Wait up to drain_ms for pending writes to reach PostgreSQL, then stop both
 * threads and free s. What did not drain stays in the outbox. Accepts NULL. */
void sync_stop(struct sync *s, int drain_ms);

#endif
