/* sync.c - relay (outbox -> Redis) and apply (Redis -> PostgreSQL) workers.
 * Order: within a block, the relay sends outbox entries in seq order and the
 * apply thread applies only the contiguous run of seqs after what PostgreSQL
 * has, so each write reaches PostgreSQL once and in its block's seq order; an
 * entry leaves the outbox only after PostgreSQL committed it, and Redis only
 * after that. Blocks are independent: no order between them. The DESIGN
 * comment in sync.h says why.
 * A chain of full batches of one block (apply_entries) settles batch k in
 * the block file, and reads batch k+2 from Redis after k+1 was read, on a
 * helper thread while batch k+1 is applied: k+1 is planned against what
 * PostgreSQL committed of k, k's refresh skips records k+1 has pending, k is
 * acknowledged after its settle, and k+1 settles only after k did, so the
 * order above holds.
 * Several nodes on one block: every node's relay adds to the block's one
 * stream and every node's apply thread reads it in the one consumer group,
 * so a node applies other nodes' writes too. The run of seqs is per origin
 * (each node's file writes under origins of its own), PostgreSQL's
 * sharded_applied and the block's advisory lock decide what is applied, and
 * a node compares its outbox's own origins with PostgreSQL on every pass, so
 * it drops what another node applied for it. Each node's writes keep its
 * order; between nodes the order is PostgreSQL's commit order. */
#include "sync.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "admin.h"
#include "backoff.h"
#include "clock.h"
#include "log.h"
#include "nodereg.h"
#include "op.h"
#include "pg.h"
#include "plan.h"
#include "redis.h"
#include "store.h"
#include "takeover.h"
#include "thread.h"
#include "version.h"

#define RELAY_BATCH 256
#define APPLY_BATCH 5000
#define APPLY_CHAIN_MAX 8	/* batches of one block per pass, then the others' turn */
#define RESEND_AFTER_NS (30LL * 1000000000)	/* re-send what Redis may have lost */
#define DELETE_GRACE_NS (1000LL * 1000000)	/* a deletion waits this long for a revoking write */
#define IDLE_WAIT_MS 200
#define RELAY_GATHER_MS 10	/* after a wake-up, before the relay looks at the outboxes */
#define REDIS_TIMEOUT_MS 2000
#define CLAIM_EVERY_MS 10000
#define CLAIM_IDLE_MS 60000
#define BACKOFF_CAP_MS 500	/* retries of a server that is down: a probe is cheap, a late drain is not */
/* PostgreSQL that refuses connections is probed more often: a refused
 * connect costs microseconds, and every wait after the server is back
 * delays the whole drain (the backoff's mean wait at its cap was 250 ms,
 * more than the 20,000-row drain's own work) */
#define PG_PROBE_CAP_MS 100
#define FORGET_MAX 256
#define OWN_ORIGINS_MAX 16	/* origins of one outbox asked about per pass; usually 1 or 2 */
#define GAP_RESEND_MS 3000	/* a wait this old is a loss in Redis, not another node's turn */
#define REFUSED_RETRY_MS 10000	/* a block PostgreSQL refuses is tried again this often */
#define TAKEOVER_EVERY_MS 2000	/* the scan for dead nodes' entries (takeover.h) */

/* The apply connection's deadlines: a locked table ends a batch after
 * lock_ms (retried with backoff), a server that answers nothing is dropped
 * after wait_ms and reported down. A batch statement that PostgreSQL works
 * on legitimately for longer than statement_ms is retried forever, so the
 * limits are generous. */
static const struct pg_limits apply_limits = {
	.statement_ms = 20000, .lock_ms = 10000, .wait_ms = 25000,
};

struct sync {
	struct sync_config cfg;
	char *pg_conninfo, *redis_url, *consumer;
	pthread_t relay_thread, apply_thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	bool stopping;
	atomic_bool abort_pg;		/* set with stopping: cut a wait for PostgreSQL */
	bool relay_kicked, apply_kicked;	/* work for that thread; under lock */
	struct sync_status status;	/* under lock */
	char *forget[FORGET_MAX];	/* deleted blocks whose streams to drop; under lock */
	size_t nforget;
	int64_t last_claim_ms;		/* apply thread only */
	int64_t next_takeover_ms;	/* apply thread only */
	struct takeover_state takeover;	/* apply thread only */
	/* the apply thread's second Redis connection, lent to the settle helper
	 * to read the batch after next while PostgreSQL applies the next one */
	redisContext *ahead_rc;
	int64_t next_cleanup_ms;	/* relay thread only */
	struct nodereg_entry self;	/* relay thread only (after sync_start) */
	int64_t next_beat_ms;		/* relay thread only */
};

static int64_t total_pending(struct sync *s);

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The apply thread's counts of one block's pass, added to the status at its
 * end (one lock, not one per call). */
struct apply_count {
	uint64_t batches, rows, statements, redis_calls, ns_redis, ns_pg, ns_settle;
};

static void publish_count(struct sync *s, const struct apply_count *c)
{
	pthread_mutex_lock(&s->lock);
	s->status.apply_batches += c->batches;
	s->status.apply_rows += c->rows;
	s->status.apply_statements += c->statements;
	s->status.apply_redis_calls += c->redis_calls;
	s->status.apply_ns_redis += c->ns_redis;
	s->status.apply_ns_pg += c->ns_pg;
	s->status.apply_ns_settle += c->ns_settle;
	pthread_mutex_unlock(&s->lock);
}

static uint64_t random64(void)
{
	struct timespec ts;
	static _Thread_local uint64_t x;

	if (!x) {
		clock_gettime(CLOCK_MONOTONIC, &ts);
		x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)pthread_self();
	}
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return x;
}

/* Sleep until kicked (*kicked, cleared here), stopping, or ms elapsed.
 * Returns true when stopping. */
static bool wait_ms(struct sync *s, bool *kicked, int64_t ms)
{
	struct timespec deadline;
	bool stopping;

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += ms / 1000;
	deadline.tv_nsec += (ms % 1000) * 1000000;
	if (deadline.tv_nsec >= 1000000000) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&s->lock);
	while (!s->stopping && !*kicked)
		if (pthread_cond_timedwait(&s->wake, &s->lock, &deadline) != 0)
			break;
	*kicked = false;
	stopping = s->stopping;
	pthread_mutex_unlock(&s->lock);
	return stopping;
}

static bool is_stopping(struct sync *s)
{
	bool stopping;

	pthread_mutex_lock(&s->lock);
	stopping = s->stopping;
	pthread_mutex_unlock(&s->lock);
	return stopping;
}

/* Wait out a backoff: only stopping cuts it short, not new work (a stream
 * of writes would otherwise turn the backoff into a busy retry loop). */
static void backoff_wait(struct sync *s, int64_t ms)
{
	bool never = false;

	wait_ms(s, &never, ms);
}

/* A write was committed: the relay has work. */
void sync_kick(struct sync *s)
{
	pthread_mutex_lock(&s->lock);
	s->relay_kicked = true;
	pthread_cond_broadcast(&s->wake);
	pthread_mutex_unlock(&s->lock);
}

/* Entries went to Redis: the apply thread has work. */
static void kick_apply(struct sync *s)
{
	pthread_mutex_lock(&s->lock);
	s->apply_kicked = true;
	pthread_cond_broadcast(&s->wake);
	pthread_mutex_unlock(&s->lock);
}

/* Record a backend's state; a transient error gets logged once per change. */
static void set_backend(struct sync *s, bool *flag, bool up, const char *error, int64_t retry_ms)
{
	bool was;

	pthread_mutex_lock(&s->lock);
	was = *flag;
	*flag = up;
	if (error)
		snprintf(s->status.last_error, sizeof(s->status.last_error), "%s", error);
	s->status.retry_at_ns = up ? 0 : clock_wall_ns() + retry_ms * 1000000;
	pthread_mutex_unlock(&s->lock);
	if (was != up)
		sh_log(up ? LOG_INFO : LOG_WARNING, "%s", up ? "backend reachable again" : error);
}

void sync_get_status(struct sync *s, struct sync_status *out)
{
	pthread_mutex_lock(&s->lock);
	*out = s->status;
	pthread_mutex_unlock(&s->lock);
}

/* ---- relay: outbox -> Redis ------------------------------------------- */

static void append_xadd(redisContext *rc, const char *key, const struct op *op)
{
	char seq[REDIS_I64_MAX], base[REDIS_I64_MAX], after_seq[REDIS_I64_MAX];
	char kind[2] = { op->kind, 0 };
	const char *argv[21] = { "XADD", key, "*", "seq", seq, "origin", op_origin(op),
				 "base", base, "after", op->after, "after_seq", after_seq,
				 "op", kind, "model", op->model, "pk", op->pk, "doc", op->doc };
	int argc = op->doc ? 21 : 19;
	size_t lens[21];

	redis_i64_arg(seq, op->seq);
	redis_i64_arg(base, op->base);
	redis_i64_arg(after_seq, op->after_seq);
	for (int i = 0; i < argc; i++)
		lens[i] = strlen(argv[i]);
	redis_append_argv(rc, argc, argv, lens);
}

/* Read n pipelined replies; false if any failed (other than BUSYGROUP). */
static bool drain_replies(redisContext *rc, size_t n, char *err, size_t errlen)
{
	bool ok = true;

	for (size_t i = 0; i < n; i++) {
		redisReply *r = NULL;

		if (redisGetReply(rc, (void **)&r) != REDIS_OK) {
			snprintf(err, errlen, "redis: %s", rc->errstr);
			return false;
		}
		if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "BUSYGROUP", 9) != 0) {
			snprintf(err, errlen, "redis: %s", r->str);
			ok = false;
		}
		freeReplyObject(r);
	}
	return ok;
}

static bool pg_reachable(struct sync *s)
{
	bool up;

	pthread_mutex_lock(&s->lock);
	up = s->status.pg_up;
	pthread_mutex_unlock(&s->lock);
	return up;
}

/* Send one batch of a block's outbox; returns entries sent, -1 on Redis failure. */
static int relay_block(struct sync *s, struct block *b, redisContext *rc, char *err, size_t errlen)
{
	char key[REDIS_KEY_MAX];
	struct op *ops;
	size_t n;
	int sent = -1;

	int64_t now = clock_wall_ns();
	/* re-send what Redis may have lost only while PostgreSQL takes writes:
	 * during an outage the stream just holds them, and re-sending would pile
	 * up copies of a growing backlog */
	int64_t resend_before = pg_reachable(s) ? now - RESEND_AFTER_NS : 1;	/* 1: never sent */

	if (store_outbox_to_relay(b->store, resend_before, now - DELETE_GRACE_NS, RELAY_BATCH,
				  &ops, &n))
		return 0;
	if (n == 0) {
		op_free_array(ops, n);
		return 0;
	}
	redis_key(key, sizeof(key), b->id, "ops");
	redis_append_argv(rc, 6, (const char *[]){ "XGROUP", "CREATE", key, REDIS_GROUP, "0",
						   "MKSTREAM" }, NULL);
	for (size_t i = 0; i < n; i++)
		append_xadd(rc, key, &ops[i]);
	if (drain_replies(rc, n + 1, err, errlen)) {
		store_outbox_relayed(b->store, ops[0].seq, ops[n - 1].seq, clock_wall_ns());
		sent = (int)n;
	}
	op_free_array(ops, n);
	return sent;
}

/* One pass over every block; returns entries sent, -1 on Redis failure. */
static int relay_pass(struct sync *s, redisContext *rc, char *err, size_t errlen)
{
	struct block **blocks;
	size_t n;
	int total = 0;

	if (blockset_snapshot(s->cfg.blocks, &blocks, &n))
		return 0;
	for (size_t i = 0; i < n; i++) {
		int sent = total >= 0 ? relay_block(s, blocks[i], rc, err, errlen) : 0;
		total = sent < 0 ? -1 : total + sent;
		block_put(blocks[i]);
	}
	free(blocks);
	return total;
}

/* Redis may have restarted empty: send everything pending again. */
static void unrelay_all(struct sync *s)
{
	struct block **blocks;
	size_t n;

	if (blockset_snapshot(s->cfg.blocks, &blocks, &n))
		return;
	for (size_t i = 0; i < n; i++) {
		store_outbox_unrelay(blocks[i]->store);
		block_put(blocks[i]);
	}
	free(blocks);
}

void sync_forget_block(struct sync *s, const char *id)
{
	char *copy = strdup(id);

	pthread_mutex_lock(&s->lock);
	if (copy && s->nforget < FORGET_MAX)
		s->forget[s->nforget++] = copy;
	else
		free(copy);	/* the tool's cleanup gets it later */
	pthread_mutex_unlock(&s->lock);
}

/* Drop the streams of deleted blocks, unless the block exists again, and
 * only once empty: another node may hold the block and write to it. */
static void forget_blocks(struct sync *s, redisContext *rc)
{
	char *ids[FORGET_MAX], key[REDIS_KEY_MAX];
	struct block *b;
	size_t n;

	pthread_mutex_lock(&s->lock);
	n = s->nforget;
	memcpy(ids, s->forget, n * sizeof(*ids));
	s->nforget = 0;
	pthread_mutex_unlock(&s->lock);
	for (size_t i = 0; i < n; i++) {
		if (blockset_get(s->cfg.blocks, ids[i], &b) == SH_OK) {
			block_put(b);
		} else {
			size_t deleted;
			bool dropped;
			char err[256];

			redis_key(key, sizeof(key), ids[i], "ops");
			admin_drop_stream(rc, key, false, &deleted, &dropped, err, sizeof(err));
		}
		free(ids[i]);
	}
}

/* What `sharded cleanup` does, now and then: streams of blocks that have no
 * file any more (deleted while the daemon was down, say) and acknowledged
 * entries left in the others. Dead letters are never touched. */
static void cleanup_now_and_then(struct sync *s, redisContext *rc)
{
	struct admin_cleanup_result res;
	char err[256];

	if (s->cfg.cleanup_s <= 0 || now_ms() < s->next_cleanup_ms)
		return;
	s->next_cleanup_ms = now_ms() + s->cfg.cleanup_s * 1000;
	if (admin_cleanup(rc, blockset_dir(s->cfg.blocks), false, false, NULL, NULL, &res, err,
			  sizeof(err)) != SH_OK)
		sh_log(LOG_WARNING, "periodic cleanup: %s", err);
	else if (res.ops_deleted || res.entries_deleted)
		sh_log(LOG_INFO, "periodic cleanup: %zu streams of deleted blocks and %zu "
		       "acknowledged entries removed", res.ops_deleted, res.entries_deleted);
}

/* This node's heartbeat, and the counts of the registry for the metrics. */
static void beat_now_and_then(struct sync *s, redisContext *rc)
{
	struct nodereg_entry *nodes;
	size_t n;
	int64_t now, alive = 0;

	if (now_ms() < s->next_beat_ms)
		return;
	s->next_beat_ms = now_ms() + NODEREG_BEAT_MS;
	s->self.pending = total_pending(s);
	if (nodereg_beat(rc, &s->self) != SH_OK)
		return;	/* a failed connection shows in the relay pass that follows */
	if (nodereg_list(rc, true, &nodes, &n, &now) != SH_OK)
		return;
	for (size_t i = 0; i < n; i++)
		alive += nodereg_alive(&nodes[i], now);
	free(nodes);
	pthread_mutex_lock(&s->lock);
	s->status.nodes_alive = alive;
	s->status.nodes_silent = (int64_t)n - alive;
	pthread_mutex_unlock(&s->lock);
}

static void *relay_main(void *arg)
{
	struct sync *s = arg;
	redisContext *rc = NULL;
	struct backoff bo;
	char err[256];

	backoff_init(&bo, 100, BACKOFF_CAP_MS, BACKOFF_FULL);
	while (!is_stopping(s)) {
		int sent;

		if (!rc) {
			if (redis_open(s->redis_url, REDIS_TIMEOUT_MS, &rc, err, sizeof(err)) != SH_OK) {
				int64_t delay = (int64_t)backoff_next_ms(&bo, random64());
				set_backend(s, &s->status.redis_up, false, err, delay);
				backoff_wait(s, delay);
				continue;
			}
			unrelay_all(s);
			set_backend(s, &s->status.redis_up, true, NULL, 0);
		}
		forget_blocks(s, rc);
		beat_now_and_then(s, rc);
		cleanup_now_and_then(s, rc);
		sent = relay_pass(s, rc, err, sizeof(err));
		if (sent < 0) {
			int64_t delay = (int64_t)backoff_next_ms(&bo, random64());

			redisFree(rc);
			rc = NULL;
			set_backend(s, &s->status.redis_up, false, err, delay);
			backoff_wait(s, delay);
			continue;
		}
		backoff_reset(&bo);	/* only once Redis answered a whole pass */
		if (sent > 0)
			kick_apply(s);
		if (sent < RELAY_BATCH) {
			wait_ms(s, &s->relay_kicked, IDLE_WAIT_MS);
			/* let a stream of writes gather: one pass, one XADD pipeline
			 * and one PostgreSQL transaction for many of them */
			nanosleep(&(struct timespec){ 0, RELAY_GATHER_MS * 1000000 }, NULL);
		}
	}
	if (rc)	/* a clean stop: the others need not wait NODEREG_SILENT_MS to take over */
		nodereg_leave(rc, s->self.node);
	redisFree(rc);
	return NULL;
}

/* ---- apply: Redis -> PostgreSQL --------------------------------------- */

#define ENTRY_FIELDS_MAX 32	/* name/value strings of an entry; ours has at most 14 */
#define ACK_IDS_MAX 1000	/* entry ids per XACK / XDEL */

/* One XREADGROUP entry, [id, [name, value, ...]], handed to plan_parse_entry. */
static bool parse_entry(const redisReply *r, struct plan_entry *e)
{
	const char *fields[ENTRY_FIELDS_MAX];
	const redisReply *f;

	memset(e, 0, sizeof(*e));
	if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
	    r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_ARRAY)
		return false;
	f = r->element[1];
	if (f->elements > ENTRY_FIELDS_MAX)
		return false;
	for (size_t i = 0; i < f->elements; i++)
		fields[i] = f->element[i]->type == REDIS_REPLY_STRING ? f->element[i]->str : NULL;
	return plan_parse_entry(r->element[0]->str, fields, f->elements, e);
}

/* XREADGROUP from one stream; id "0" re-reads our own pending entries.
 * Returns the reply (caller frees) or NULL on a connection failure. */
static redisReply *read_stream(redisContext *rc, const char *key, const char *consumer,
			       const char *id)
{
	return redisCommand(rc, "XREADGROUP GROUP %s %s COUNT %d STREAMS %s %s", REDIS_GROUP,
			    consumer, APPLY_BATCH, key, id);
}

/* The entries array inside an XREADGROUP reply for one stream, or NULL. */
static redisReply *entries_of(redisReply *r)
{
	if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 1)
		return NULL;
	r = r->element[0];
	if (r->type != REDIS_REPLY_ARRAY || r->elements != 2)
		return NULL;
	return r->element[1]->type == REDIS_REPLY_ARRAY ? r->element[1] : NULL;
}

/* Append "XACK key group id..." and "XDEL key id..." for the settled
 * entries from *next on, at most ACK_IDS_MAX of them; *next moves past
 * them. Returns the commands appended (0 or 2). */
static size_t append_ack(redisContext *rc, const char *key, const struct plan_entry *es,
			 const enum plan_verdict *verdict, size_t n, size_t *next,
			 const char **argv)
{
	size_t k = 0;

	argv[0] = "XACK";
	argv[1] = key;
	argv[2] = REDIS_GROUP;
	for (; *next < n && k < ACK_IDS_MAX; (*next)++)
		if (verdict[*next] != PLAN_WAIT)
			argv[3 + k++] = es[*next].id;
	if (!k)
		return 0;
	redisAppendCommandArgv(rc, (int)(3 + k), argv, NULL);
	/* XDEL takes the same ids after key: argv shifted by one, with "XDEL" before */
	argv[1] = "XDEL";
	argv[2] = key;
	redisAppendCommandArgv(rc, (int)(2 + k), argv + 1, NULL);
	return 2;
}

/* Acknowledge and delete the entries that are settled (applied or skipped):
 * one XACK and one XDEL per ACK_IDS_MAX entries, pipelined. */
static void ack_entries(redisContext *rc, const char *key, const struct plan_entry *es,
			const enum plan_verdict *verdict, size_t n, struct apply_count *c)
{
	const char **argv = malloc((3 + ACK_IDS_MAX) * sizeof(*argv));
	size_t sent = 0, next = 0, k;
	uint64_t t0 = mono_ns();

	if (!argv)
		return;	/* left pending: re-read and skipped as applied later */
	while ((k = append_ack(rc, key, es, verdict, n, &next, argv)) > 0)
		sent += k;
	free(argv);
	for (size_t i = 0; i < sent; i++) {
		redisReply *r = NULL;
		if (redisGetReply(rc, (void **)&r) != REDIS_OK)
			break;	/* left pending: re-read and skipped as applied later */
		freeReplyObject(r);
	}
	c->redis_calls += sent;
	c->ns_redis += mono_ns() - t0;
}

static void set_meta_int(struct store *st, const char *key, int64_t v)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%" PRId64, v);
	store_meta_set(st, key, buf);
}

static void notify(struct sync *s, struct block *b, const struct op *op, bool gone)
{
	if (s->cfg.on_change)
		s->cfg.on_change(s->cfg.ctx, b->id, op->model, op->pk, gone);
}

/* The Redis half of a burial: the dead-letter stream, and the log. */
static void bury_entry(redisContext *rc, const char *block, const struct op *op)
{
	char key[REDIS_KEY_MAX], seq[24], kind[2] = { op->kind, 0 };
	const char *argv[15] = { "XADD", key, "*", "seq", seq, "op", kind, "model", op->model,
				 "pk", op->pk, "error", op->error ? op->error : "", "doc", op->doc };

	redis_key(key, sizeof(key), block, "dead");
	snprintf(seq, sizeof(seq), "%" PRId64, op->seq);
	freeReplyObject(redisCommandArgv(rc, op->doc ? 15 : 13, argv, NULL));
	sh_log(LOG_ERR, "block '%s': %s/%s.json refused by postgresql, moved to dead letters: %s",
	       block, op->model, op->pk, op->error ? op->error : "");
}

/* PostgreSQL refused op for good: keep it in the dead-letter stream and show
 * the row as PostgreSQL has it. */
static void bury(struct sync *s, struct block *b, redisContext *rc, struct pg *pg,
		 const struct op *op, int64_t upto)
{
	const struct model *m = catalog_find(s->cfg.cat, op->model);
	char *doc = NULL;

	bury_entry(rc, b->id, op);
	store_meta_add(b->store, "dead_total", 1);
	store_meta_set(b->store, "last_dead_error", op->error ? op->error : "");
	if (m) {
		enum sh_err rv = pg_fetch_row(pg, s->cfg.cat, m, op->pk, &doc);
		if (rv == SH_OK || rv == SH_ENOENT)	/* only what PostgreSQL answered */
			store_refresh(b->store, op->model, op->pk, doc, upto);
	}
	free(doc);
	notify(s, b, op, true);	/* PostgreSQL may not have the row */
}

/* After commit: refresh from RETURNING (one SQLite transaction; the kernel
 * hears only of records that now read differently), bury the dead. Returns
 * how many were dead: the applied count is taken when the outbox lets go of
 * them (store_outbox_settle). */
static int64_t settle(struct sync *s, struct block *b, redisContext *rc, struct pg *pg,
		      struct op *ops, size_t n)
{
	bool *changed = calloc(n ? n : 1, sizeof(*changed));
	/* the batch may hold other nodes' writes: only this file's seqs tell
	 * which of its own pending writes of a record come after the batch */
	int64_t dead = 0, upto = store_own_upto(b->store, ops, n);

	if (changed && store_refresh_batch(b->store, ops, n, upto, changed) != SH_OK)
		memset(changed, 0, n * sizeof(*changed));
	for (size_t i = 0; i < n; i++) {
		struct op *op = &ops[i];

		if (op->skipped)
			continue;
		if (op->dead) {
			bury(s, b, rc, pg, op, upto);
			dead++;
		} else if (changed && changed[i])
			notify(s, b, op, false);	/* refreshed: still there */
	}
	free(changed);
	set_meta_int(b->store, "last_sync_ns", clock_wall_ns());
	return dead;
}

/* What PostgreSQL has applied of each origin. */
static enum sh_err read_applied(struct pg *pg, const char *block, struct plan_origin *origins,
				size_t n)
{
	enum sh_err rv;

	for (size_t i = 0; i < n; i++)
		if ((rv = pg_applied_seq(pg, block, origins[i].origin, &origins[i].applied)) != SH_OK)
			return rv;
	return SH_OK;
}

static bool is_own(const char (*own)[OP_ORIGIN_MAX], size_t nown, const char *origin)
{
	for (size_t i = 0; i < nown; i++)
		if (strcmp(own[i], origin) == 0)
			return true;
	return false;
}

/* The first entry that waits. With several nodes on a block a wait is
 * routine (another node's consumer holds the entries before it and is about
 * to apply them), so only a wait on one of our own origins that lasts
 * GAP_RESEND_MS is a gap: then what is missing may be lost in Redis, and the
 * outbox is sent again. Another node's gap is its own relay's to heal (its
 * 30 s re-send). */
static void report_wait(struct block *b, const struct plan_entry *es,
			const enum plan_verdict *verdict, size_t n,
			const char (*own)[OP_ORIGIN_MAX], size_t nown)
{
	for (size_t i = 0; i < n; i++) {
		const struct op *op = &es[i].op;

		if (verdict[i] != PLAN_WAIT)
			continue;
		if (!is_own(own, nown, op_origin(op)))
			continue;
		if (b->gap_seq != op->seq) {
			b->gap_seq = op->seq;
			b->gap_since_ms = now_ms();
		} else if (now_ms() - b->gap_since_ms >= GAP_RESEND_MS) {
			if (b->gap_logged != op->seq)
				sh_log(LOG_WARNING, "block '%s': gap in the stream before seq %" PRId64
				       " (origin %s), re-sending", b->id, op->seq, op_origin(op));
			b->gap_logged = op->seq;
			b->gap_since_ms = now_ms();
			store_outbox_unrelay(b->store);
		}
		return;
	}
}

/* Add this file's own origins (from its outbox) to origins[0..n), sorted and
 * unique as plan_origins left them; returns the new count. origins has room
 * for nown more. */
static size_t add_own_origins(struct plan_origin *origins, size_t n,
			      const char (*own)[OP_ORIGIN_MAX], size_t nown)
{
	size_t k = n;

	for (size_t i = 0; i < nown; i++) {
		bool found = false;

		for (size_t j = 0; j < n && !found; j++)
			found = strcmp(origins[j].origin, own[i]) == 0;
		if (!found) {
			snprintf(origins[k].origin, OP_ORIGIN_MAX, "%s", own[i]);
			origins[k++].applied = 0;
		}
	}
	if (k > n)
		qsort(origins, k, sizeof(*origins), plan_origin_cmp);
	return k;
}

/* Everything each origin has applied is in PostgreSQL: out of the outbox,
 * also the copies a crash or a busy block file left there (they come back
 * as duplicates), counted as applied there, less the dead of this pass.
 * false when a delete failed. */
static bool drop_applied(struct block *b, const struct plan_origin *origins, size_t n,
			 int64_t dead)
{
	int64_t counted;

	for (size_t i = 0; i < n; i++)
		if (origins[i].applied > 0 &&
		    store_outbox_settle(b->store, origins[i].origin, origins[i].applied, &dead,
					&counted) != SH_OK)
			return false;
	return true;
}

/* One batch of a block on its way: applied in PostgreSQL (job_apply), then
 * settled in the block file (job_settle), then acknowledged in Redis
 * (job_ack), in that order. */
struct batch_job {
	struct sync *s;
	struct block *b;
	redisContext *rc;
	struct pg *pg;
	const char *key;
	struct plan_entry *es;	/* owned */
	size_t n, npick, norigins, waiting;
	struct op *ops;		/* shallow copies of the picked es[].op */
	struct plan_origin *origins;
	enum plan_verdict *verdict;
	int64_t dead;
	bool dropped;		/* out of the outbox: may be acknowledged */
	bool first;		/* the pass's first batch: nothing of this run is settling */
	uint64_t ns_settle;
};

static void job_init(struct batch_job *j, struct sync *s, struct block *b, redisContext *rc,
		     struct pg *pg, const char *key, struct plan_entry *es, size_t n)
{
	*j = (struct batch_job){ .s = s, .b = b, .rc = rc, .pg = pg, .key = key, .es = es, .n = n };
}

static void job_free(struct batch_job *j)
{
	free(j->ops);
	free(j->origins);
	free(j->verdict);
	plan_free_entries(j->es, j->n);
	j->ops = NULL;
	j->origins = NULL;
	j->verdict = NULL;
	j->es = NULL;
	j->n = 0;
}

#define UNSETTLED_MAX (4 * APPLY_BATCH)	/* records refreshed per origin and pass */

/* Read the record back from PostgreSQL into the block file, unless a later
 * write of it is pending. SH_EUNAVAIL: PostgreSQL did not answer. */
static enum sh_err refresh_key(struct batch_job *j, const char *model, const char *pk,
			       int64_t applied)
{
	const struct model *m = catalog_find(j->s->cfg.cat, model);
	char *doc = NULL;
	enum sh_err rv;

	if (!m)
		return SH_OK;
	rv = pg_fetch_row(j->pg, j->s->cfg.cat, m, pk, &doc);
	if (rv == SH_OK || rv == SH_ENOENT) {
		rv = SH_OK;
		if (store_refresh(j->b->store, model, pk, doc, applied) == SH_OK &&
		    j->s->cfg.on_change)
			j->s->cfg.on_change(j->s->cfg.ctx, j->b->id, model, pk, doc == NULL);
	}
	free(doc);
	return rv == SH_EUNAVAIL ? SH_EUNAVAIL : SH_OK;
}

/* Writes PostgreSQL has that are still in the outbox were applied by a run
 * that died between a batch's commit and its settle (or by another node):
 * no RETURNING brought their rows back, so their records are read from
 * PostgreSQL (what its defaults and triggers made of them) before the
 * outbox lets go of them. Only the first batch of a pass looks: later
 * batches of a chain follow batches still settling. */
static enum sh_err refresh_unsettled(struct batch_job *j)
{
	enum sh_err rv = SH_OK;

	for (size_t i = 0; i < j->norigins && !rv; i++) {
		const struct plan_origin *o = &j->origins[i];
		char **keys;
		size_t n;

		if (o->applied <= 0 || store_outbox_applied_keys(j->b->store, o->origin, o->applied,
								 UNSETTLED_MAX, &keys, &n) != SH_OK)
			continue;
		if (n)
			sh_log(LOG_INFO, "block '%s': %zu records whose writes PostgreSQL has but "
			       "this node did not settle (a restart, or another node applied them): "
			       "read back", j->b->id, n);
		for (size_t k = 0; k < n && !rv; k++)
			rv = refresh_key(j, keys[2 * k], keys[2 * k + 1], o->applied);
		store_keys_free(keys, n);
	}
	return rv;
}

/* Plan j's entries and apply the picked ones in PostgreSQL. Returns
 * SH_EREMOTE when PostgreSQL answered but refuses the values of this
 * block's bookkeeping or batch as a whole (e.g. a data exception on its
 * id): that holds back this block only; SH_EUNAVAIL on anything else that
 * failed (PostgreSQL down). */
static enum sh_err job_apply(struct batch_job *j, struct apply_count *c, char *err, size_t errlen)
{
	struct pg *pg = j->pg;
	uint64_t statements0 = pg_statements(pg), t0 = mono_ns();
	/* n may be 0: an outbox to compare with PostgreSQL, nothing read */
	size_t n = j->n, *pick = malloc((n + 1) * sizeof(*pick)), npick = 0;
	char own[OWN_ORIGINS_MAX][OP_ORIGIN_MAX];
	size_t nown = 0;
	int64_t upto;
	enum sh_err rv = SH_OK;

	j->ops = malloc((n + 1) * sizeof(*j->ops));
	j->origins = malloc((2 * n + OWN_ORIGINS_MAX) * sizeof(*j->origins));
	j->verdict = malloc((n + 1) * sizeof(*j->verdict));
	if (!pick || !j->ops || !j->origins || !j->verdict) {
		rv = SH_ENOMEM;
		goto out;
	}
	plan_sort(j->es, n);
	j->norigins = plan_origins(j->es, n, j->origins);
	/* also what PostgreSQL has of our own origins when another node applied
	 * them: their entries went to its consumer, not ours */
	if (store_outbox_origins(j->b->store, own, OWN_ORIGINS_MAX, &nown) != SH_OK)
		nown = 0;
	j->norigins = add_own_origins(j->origins, j->norigins, own, nown);
	if ((rv = read_applied(pg, j->b->id, j->origins, j->norigins)) != SH_OK) {
		snprintf(err, errlen, rv == SH_EREMOTE ? "postgresql refuses the block's bookkeeping"
			 " row (see the log)" : "postgresql unreachable");
		goto out;
	}
	if (j->first && (rv = refresh_unsettled(j)) != SH_OK) {
		snprintf(err, errlen, "postgresql unreachable");
		goto out;
	}
	j->waiting = plan_make(j->es, n, j->origins, j->norigins, j->verdict, pick, &npick);
	j->b->held = j->waiting;
	if (j->waiting)
		report_wait(j->b, j->es, j->verdict, n, own, nown);
	if (npick) {
		for (size_t i = 0; i < npick; i++)
			j->ops[i] = j->es[pick[i]].op;
		rv = pg_apply(pg, j->s->cfg.cat, j->b->id, j->ops, npick, &upto, err, errlen);
		for (size_t i = 0; i < npick; i++)
			j->es[pick[i]].op = j->ops[i];	/* results, and ownership, go back */
		c->batches++;
		c->rows += npick;
		if (rv != SH_OK)
			goto out;
		c->ns_pg += mono_ns() - t0;
		j->npick = npick;
	}
out:
	c->statements += pg_statements(pg) - statements0;
	free(pick);
	if (rv == SH_EREMOTE && pg_sqlstate_of_values(pg_refused_sqlstate(pg)))
		return SH_EREMOTE;
	return rv ? SH_EUNAVAIL : SH_OK;	/* e.g. sharded_applied dropped: reconnect, recreate */
}

/* After j's commit: refresh the block file from the returned rows, bury the
 * dead (the only use of PostgreSQL and Redis here), and let the outbox go
 * of what PostgreSQL now has. */
static void job_settle(struct batch_job *j)
{
	uint64_t t0 = mono_ns();

	if (j->npick)
		j->dead = settle(j->s, j->b, j->rc, j->pg, j->ops, j->npick);
	j->dropped = drop_applied(j->b, j->origins, j->norigins, j->dead);
	j->ns_settle = mono_ns() - t0;
}

/* Only once out of the outbox are the entries acknowledged in Redis; if the
 * delete failed, they are read again, and skipped, next pass. */
static void job_ack(struct batch_job *j, struct apply_count *c)
{
	if (j->dropped && j->waiting < j->n) {
		c->ns_settle += j->ns_settle;
		ack_entries(j->rc, j->key, j->es, j->verdict, j->n, c);
	}
}

/* What the settle helper does for a chain: settle job, then, with read,
 * read the entries of the batch after next on ahead_rc. */
struct settle_task {
	struct batch_job *job;
	redisContext *ahead_rc;
	bool read, read_failed;
	struct plan_entry *es;	/* what it read: owned */
	size_t n;
	struct apply_count c;
};

static size_t read_new(redisContext *rc, const char *key, const char *consumer,
		       struct plan_entry **es, bool *failed, struct apply_count *c);

static void *settle_main(void *arg)
{
	struct settle_task *t = arg;

	job_settle(t->job);
	if (t->read)
		t->n = read_new(t->ahead_rc, t->job->key, t->job->s->consumer, &t->es,
				&t->read_failed, &t->c);
	return NULL;
}

/* May the block file settle j on another thread while the next batch is
 * applied? Only a full, clean batch of our own: nothing waits (a gap or
 * another node's turn ends the pass as before) and nothing died (a burial
 * asks PostgreSQL and Redis, which the apply thread is using). */
static bool job_pipelined(const struct batch_job *j, bool mine, int chained)
{
	if (!mine || chained >= APPLY_CHAIN_MAX || j->n < APPLY_BATCH || j->waiting || !j->npick)
		return false;
	for (size_t i = 0; i < j->npick; i++)
		if (j->ops[i].dead)
			return false;
	return true;
}

static bool collect(redisReply *list, struct plan_entry **es, size_t *n);

/* Entries nobody read yet, on rc; *failed when the connection failed. */
static size_t read_new(redisContext *rc, const char *key, const char *consumer,
		       struct plan_entry **es, bool *failed, struct apply_count *c)
{
	uint64_t t0 = mono_ns();
	redisReply *r = read_stream(rc, key, consumer, ">");
	size_t n = 0;

	c->redis_calls++;
	c->ns_redis += mono_ns() - t0;
	*es = NULL;
	*failed = !r;
	if (r && r->type != REDIS_REPLY_ERROR && !collect(entries_of(r), es, &n)) {
		plan_free_entries(*es, n);
		*es = NULL;
		n = 0;
	}
	freeReplyObject(r);
	return n;
}

/* The helper's connection, opened on first use; NULL when Redis refuses
 * it (the chain then reads on the apply thread's). */
static redisContext *ahead_rc(struct sync *s)
{
	char err[256];

	if (!s->ahead_rc &&
	    redis_open(s->redis_url, REDIS_TIMEOUT_MS, &s->ahead_rc, err, sizeof(err)) != SH_OK)
		s->ahead_rc = NULL;
	return s->ahead_rc;
}

static void add_count(struct apply_count *to, const struct apply_count *c)
{
	to->redis_calls += c->redis_calls;
	to->ns_redis += c->ns_redis;
}

/* Apply what the stream holds for block b (es, n of them: owned), then, while
 * full batches keep coming, the next ones, each step on two threads: the
 * apply thread applies batch k+1 in PostgreSQL while a helper settles batch k
 * in the block file and reads batch k+2 from Redis (on a connection of its
 * own, after k+1 was read: the stream hands them out in order). Per-block
 * order holds: k+1 is planned against what PostgreSQL committed of k, k's
 * refresh skips the records k+1 still has pending in the outbox, k is
 * acknowledged in Redis only after its settle, and k+1 settles after k.
 * Entries read ahead for a chain that stops are applied after it (after a
 * failure they stay pending for our consumer, read again on the next pass).
 * Returns as job_apply, for the last batch applied. */
static enum sh_err apply_entries(struct sync *s, struct block *b, redisContext *rc, struct pg *pg,
				 const char *key, bool mine, struct plan_entry *es, size_t n,
				 struct apply_count *c, char *err, size_t errlen)
{
	struct batch_job cur, next;
	struct plan_entry *ahead = NULL;
	size_t nahead = 0;
	bool have_ahead = false, failed;
	enum sh_err rv, next_rv;

	job_init(&cur, s, b, rc, pg, key, es, n);
	cur.first = true;
	rv = job_apply(&cur, c, err, errlen);
	for (int chained = 0; rv == SH_OK && job_pipelined(&cur, mine, chained) &&
	     !is_stopping(s); chained++) {
		struct settle_task t = { .job = &cur };
		pthread_t helper;
		bool helped;

		if (!have_ahead)
			nahead = read_new(rc, key, s->consumer, &ahead, &failed, c);
		have_ahead = false;
		if (!nahead)
			break;
		t.read = nahead >= APPLY_BATCH && chained + 1 < APPLY_CHAIN_MAX &&
			 (t.ahead_rc = ahead_rc(s)) != NULL;
		helped = pthread_create(&helper, NULL, settle_main, &t) == 0;
		if (!helped) {
			t.read = false;
			job_settle(&cur);
		}
		job_init(&next, s, b, rc, pg, key, ahead, nahead);
		ahead = NULL;
		next_rv = job_apply(&next, c, err, errlen);
		if (helped)
			pthread_join(helper, NULL);
		add_count(c, &t.c);
		if (t.read_failed) {
			redisFree(s->ahead_rc);
			s->ahead_rc = NULL;
		}
		ahead = t.es;
		nahead = t.n;
		have_ahead = t.read;
		job_ack(&cur, c);
		job_free(&cur);
		cur = next;
		rv = next_rv;
	}
	if (rv == SH_OK) {
		job_settle(&cur);
		job_ack(&cur, c);
	}
	job_free(&cur);
	/* read ahead for a chain that stopped: applied now rather than left
	 * pending, since a block whose outbox is empty is not visited again
	 * (copies the relay sent twice would wait for the next write) */
	if (rv == SH_OK && nahead && !is_stopping(s)) {
		job_init(&cur, s, b, rc, pg, key, ahead, nahead);
		ahead = NULL;
		nahead = 0;
		rv = job_apply(&cur, c, err, errlen);
		if (rv == SH_OK) {
			job_settle(&cur);
			job_ack(&cur, c);
		}
		job_free(&cur);
	}
	plan_free_entries(ahead, nahead);
	return rv;
}

/* PostgreSQL refuses block b as a whole: an outage of this block only. Its
 * writes stay pending (nothing is lost or reordered), it is reported in its
 * sync-status and the log, and it is tried again every REFUSED_RETRY_MS
 * while every other block goes on. */
static void refuse_block(struct block *b, const char *why)
{
	char *was = NULL;

	b->refused_until_ms = now_ms() + REFUSED_RETRY_MS;
	b->refused_checked = true;
	if (store_meta_get(b->store, "sync_refused", &was) != SH_OK || strcmp(was, why) != 0) {
		sh_log(LOG_ERR, "block '%s': postgresql refuses its writes: %s; the block is held"
		       " back (its writes stay pending, retried every %d s), other blocks go on",
		       b->id, why, REFUSED_RETRY_MS / 1000);
		store_meta_set(b->store, "sync_refused", why);
	}
	free(was);
}

/* b was applied: whatever refusal it had is over. */
static void unrefuse_block(struct block *b)
{
	char *was = NULL;

	if (b->refused_checked && !b->refused_until_ms)
		return;
	if (store_meta_get(b->store, "sync_refused", &was) == SH_OK && was[0]) {
		sh_log(LOG_NOTICE, "block '%s': postgresql takes its writes again", b->id);
		store_meta_set(b->store, "sync_refused", "");
	}
	free(was);
	b->refused_until_ms = 0;
	b->refused_checked = true;
}

/* Append the parsable entries of list to *es (n of them so far). */
static bool collect(redisReply *list, struct plan_entry **es, size_t *n)
{
	struct plan_entry *grown;

	if (!list || list->elements == 0)
		return true;
	grown = realloc(*es, (*n + list->elements) * sizeof(*grown));
	if (!grown)
		return false;
	*es = grown;
	for (size_t i = 0; i < list->elements; i++) {
		if (parse_entry(list->element[i], &grown[*n]))
			(*n)++;
		else
			op_release(&grown[*n].op);
	}
	return true;
}

enum pass_result { PASS_IDLE, PASS_WORKED, PASS_REDIS_DOWN, PASS_PG_DOWN };

static void ensure_group(redisContext *rc, const char *key)
{
	freeReplyObject(redisCommand(rc, "XGROUP CREATE %s %s 0 MKSTREAM", key, REDIS_GROUP));
}

/* Read our pending entries (left by a failure, a gap, or entries that wait
 * for another node's) and, with mine_too (writes of ours are pending), new
 * ones: a node with nothing of its own to send leaves new entries to the
 * nodes that have. */
static enum pass_result read_block(struct sync *s, struct block *b, redisContext *rc,
				   const char *key, bool mine_too, struct plan_entry **es, size_t *n,
				   struct apply_count *c, char *err, size_t errlen)
{
	static const char *const ids[] = { "0", ">" };

	for (size_t i = 0; i < (mine_too ? 2u : 1u); i++) {
		uint64_t t0 = mono_ns();
		redisReply *r = read_stream(rc, key, s->consumer, ids[i]);
		bool ok;

		c->redis_calls++;
		c->ns_redis += mono_ns() - t0;
		if (!r) {
			snprintf(err, errlen, "redis: %s", rc->errstr);
			return PASS_REDIS_DOWN;
		}
		if (r->type == REDIS_REPLY_ERROR) {
			/* NOGROUP: the stream or group is gone (Redis lost its data) */
			freeReplyObject(r);
			ensure_group(rc, key);
			if (mine_too)	/* nothing of ours to send again otherwise */
				store_outbox_unrelay(b->store);
			return PASS_WORKED;
		}
		ok = collect(entries_of(r), es, n);
		freeReplyObject(r);
		if (!ok)
			return PASS_IDLE;
	}
	return *n ? PASS_WORKED : PASS_IDLE;
}

/* Take over what a dead consumer left pending; read_block then re-reads it as ours. */
static void claim_stale(struct sync *s, redisContext *rc, const char *key)
{
	freeReplyObject(redisCommand(rc, "XAUTOCLAIM %s %s %s %d 0-0 COUNT %d", key, REDIS_GROUP,
				     s->consumer, CLAIM_IDLE_MS, APPLY_BATCH));
}

static enum pass_result apply_block(struct sync *s, struct block *b, redisContext *rc,
				    struct pg *pg, bool claim, bool pending, char *err,
				    size_t errlen)
{
	char key[REDIS_KEY_MAX];
	struct plan_entry *es = NULL;
	struct apply_count c = { 0 };
	size_t n = 0;
	enum pass_result r;

	redis_key(key, sizeof(key), b->id, "ops");
	if (claim)
		claim_stale(s, rc, key);
	r = read_block(s, b, rc, key, pending, &es, &n, &c, err, errlen);
	b->held_checked = true;
	if (r == PASS_IDLE)
		b->held = 0;
	/* with nothing read, a pending outbox may still be in PostgreSQL: another
	 * node's consumer read and applied it */
	if (r == PASS_WORKED || (r == PASS_IDLE && pending)) {
		enum sh_err rv = apply_entries(s, b, rc, pg, key, pending, es, n, &c, err,
					       errlen);

		es = NULL;	/* apply_entries took them */
		n = 0;
		if (rv == SH_EREMOTE)
			refuse_block(b, err);
		else if (rv != SH_OK)
			r = PASS_PG_DOWN;
		else
			unrefuse_block(b);
	}
	plan_free_entries(es, n);
	publish_count(s, &c);
	return r;
}

/* A removed block whose last pending write is in PostgreSQL: delete it now. */
static void finish_retiring(struct sync *s, struct block *b)
{
	bool retired;

	if (blockset_remove(s->cfg.blocks, b->id, &retired) == SH_OK && !retired) {
		sh_log(LOG_INFO, "block '%s': its last pending write is in PostgreSQL; file removed",
		       b->id);
		sync_forget_block(s, b->id);
	}
}

static enum pass_result apply_pass(struct sync *s, redisContext *rc, struct pg *pg, char *err,
				   size_t errlen)
{
	enum pass_result result = PASS_IDLE;
	struct block **blocks;
	bool claim = now_ms() - s->last_claim_ms >= CLAIM_EVERY_MS;
	size_t n;

	if (blockset_snapshot(s->cfg.blocks, &blocks, &n))
		return PASS_IDLE;
	if (claim)
		s->last_claim_ms = now_ms();
	for (size_t i = 0; i < n; i++) {
		struct block *b = blocks[i];
		int64_t pending;
		bool known = store_pending(b->store, &pending) == SH_OK;

		if (!known)
			pending = 0;
		if (known && pending == 0 && atomic_load(&b->retiring)) {
			finish_retiring(s, b);
		} else if (b->refused_until_ms > now_ms()) {
			/* held back: refused by PostgreSQL, not an outage */
		} else if (result <= PASS_WORKED &&
			   (pending > 0 || b->held > 0 || !b->held_checked)) {
			enum pass_result r = apply_block(s, b, rc, pg, claim, pending > 0, err,
							 errlen);
			if (r > result)
				result = r;
		}
		block_put(blocks[i]);
	}
	free(blocks);
	return result;
}

/* ---- takeover: entries of nodes no longer alive ------------------------- */

/* Our consumer's entries of key (those claimed from dead nodes among them)
 * and, with read_new, those nobody read. */
static enum pass_result read_orphan(struct sync *s, redisContext *rc, const char *key,
				    bool read_new, struct plan_entry **es, size_t *n, char *err,
				    size_t errlen)
{
	static const char *const ids[] = { "0", ">" };

	for (size_t i = 0; i < (read_new ? 2u : 1u); i++) {
		redisReply *r = read_stream(rc, key, s->consumer, ids[i]);
		bool ok;

		if (!r) {
			snprintf(err, errlen, "redis: %s", rc->errstr);
			return PASS_REDIS_DOWN;
		}
		ok = r->type != REDIS_REPLY_ERROR && collect(entries_of(r), es, n);
		freeReplyObject(r);
		if (!ok)
			return PASS_IDLE;	/* the stream went away meanwhile */
	}
	return *n ? PASS_WORKED : PASS_IDLE;
}

/* Every entry's model is in our catalog. A node that exposes other models
 * leaves the entries pending (their node, or the 60 s XAUTOCLAIM of a node
 * that knows them, takes them back) rather than bury them as unknown. */
static bool models_known(struct sync *s, const char *block, const struct plan_entry *es,
			 size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!catalog_find(s->cfg.cat, es[i].op.model)) {
			sh_log(LOG_WARNING, "block '%s': cannot take over a write of model '%s',"
			       " which this node does not expose", block, es[i].op.model);
			return false;
		}
	return true;
}

/* Apply the entries read from a stream of a block we do not hold: the plan
 * and pg_apply as apply_entries, without the outbox and the records of a
 * file. *applied counts the writes PostgreSQL took. */
static enum sh_err apply_orphan_entries(struct sync *s, redisContext *rc, struct pg *pg,
					const char *block, const char *key, struct plan_entry *es,
					size_t n, int64_t *applied, char *err, size_t errlen)
{
	size_t *pick = malloc(n * sizeof(*pick)), npick, norigins;
	struct op *ops = malloc(n * sizeof(*ops));
	struct plan_origin *origins = malloc(2 * n * sizeof(*origins));
	enum plan_verdict *verdict = malloc(n * sizeof(*verdict));
	enum sh_err rv = SH_ENOMEM;
	struct apply_count c = { 0 };
	uint64_t statements0 = pg_statements(pg), t0 = mono_ns();
	int64_t upto;

	if (!pick || !ops || !origins || !verdict)
		goto out;
	plan_sort(es, n);
	norigins = plan_origins(es, n, origins);
	if ((rv = read_applied(pg, block, origins, norigins)) != SH_OK) {
		snprintf(err, errlen, "postgresql unreachable");
		goto out;
	}
	plan_make(es, n, origins, norigins, verdict, pick, &npick);
	for (size_t i = 0; i < npick; i++)
		ops[i] = es[pick[i]].op;
	if (npick) {
		rv = pg_apply(pg, s->cfg.cat, block, ops, npick, &upto, err, errlen);
		c.batches++;
		c.rows += npick;
	}
	c.ns_pg += mono_ns() - t0;
	for (size_t i = 0; i < npick; i++) {
		es[pick[i]].op = ops[i];	/* results, and ownership, go back */
		if (rv == SH_OK && ops[i].dead)
			bury_entry(rc, block, &ops[i]);
		else if (rv == SH_OK && !ops[i].skipped)
			(*applied)++;
	}
	if (rv == SH_OK)
		ack_entries(rc, key, es, verdict, n, &c);
	c.statements += pg_statements(pg) - statements0;
	publish_count(s, &c);
out:
	free(pick);
	free(ops);
	free(origins);
	free(verdict);
	return rv;
}

/* A block this node does not hold, whose stream has entries no live node
 * will read: apply them here. */
static enum pass_result apply_orphan(struct sync *s, redisContext *rc, struct pg *pg,
				     const struct takeover_stream *st, char *err, size_t errlen)
{
	struct plan_entry *es = NULL;
	size_t n = 0;
	int64_t applied = 0;
	enum pass_result r = read_orphan(s, rc, st->key, st->unread, &es, &n, err, errlen);

	if (r == PASS_WORKED && models_known(s, st->block, es, n)) {
		enum sh_err rv = apply_orphan_entries(s, rc, pg, st->block, st->key, es, n,
						      &applied, err, errlen);
		if (rv != SH_OK && !(rv == SH_EREMOTE &&
				     pg_sqlstate_of_values(pg_refused_sqlstate(pg))))
			r = PASS_PG_DOWN;	/* refused values: left pending, tried next scan */
	}
	plan_free_entries(es, n);
	if (applied) {
		sh_log(LOG_INFO, "block '%s': applied %" PRId64 " writes of nodes no longer alive",
		       st->block, applied);
		pthread_mutex_lock(&s->lock);
		s->status.takeover_applied += applied;
		pthread_mutex_unlock(&s->lock);
	}
	return r;
}

struct takeover_ctx {
	struct sync *s;
	redisContext *rc;
	struct pg *pg;
	enum pass_result result;
	char *err;
	size_t errlen;
};

static enum sh_err on_takeover(void *ctx, const struct takeover_stream *st)
{
	struct takeover_ctx *t = ctx;
	struct block *b;
	enum pass_result r = PASS_IDLE;

	if (blockset_get(t->s->cfg.blocks, st->block, &b) == SH_OK) {
		/* ours: the pass reads what our consumer holds; claimed and unread
		 * entries need a read of the stream now */
		if ((st->claimed || st->unread) && b->refused_until_ms <= now_ms())
			r = apply_block(t->s, b, t->rc, t->pg, false, true, t->err, t->errlen);
		block_put(b);
	} else {
		r = apply_orphan(t->s, t->rc, t->pg, st, t->err, t->errlen);
	}
	if (r > t->result)
		t->result = r;
	return r >= PASS_REDIS_DOWN ? SH_EUNAVAIL : SH_OK;
}

/* Every TAKEOVER_EVERY_MS: what nodes no longer alive left in any stream. */
static enum pass_result takeover_now_and_then(struct sync *s, redisContext *rc, struct pg *pg,
					      char *err, size_t errlen)
{
	struct takeover_ctx t = { s, rc, pg, PASS_IDLE, err, errlen };
	size_t claimed = 0;
	enum sh_err rv;

	if (now_ms() < s->next_takeover_ms)
		return PASS_IDLE;
	s->next_takeover_ms = now_ms() + TAKEOVER_EVERY_MS;
	rv = takeover_scan(rc, s->consumer, &s->takeover, on_takeover, &t, &claimed);
	if (claimed) {
		sh_log(LOG_INFO, "took over %zu stream entries of nodes no longer alive", claimed);
		pthread_mutex_lock(&s->lock);
		s->status.takeover_claimed += (int64_t)claimed;
		pthread_mutex_unlock(&s->lock);
	}
	if (rv == SH_EUNAVAIL && t.result < PASS_REDIS_DOWN && rc->err) {
		snprintf(err, errlen, "redis: %s", rc->errstr);
		return PASS_REDIS_DOWN;
	}
	return t.result;
}

/* Connect whatever is missing; false (with backoff waited) when one is down. */
static bool connect_backends(struct sync *s, redisContext **rc, struct pg **pg, struct backoff *bo)
{
	char err[256];
	int64_t delay;

	if (!*rc && redis_open(s->redis_url, REDIS_TIMEOUT_MS, rc, err, sizeof(err)) != SH_OK)
		goto down;
	if (*pg && pg_reconnect(*pg) == SH_OK) {
		set_backend(s, &s->status.pg_up, true, NULL, 0);
		return true;
	}
	pg_close(*pg);
	*pg = NULL;
	if (pg_connect(s->pg_conninfo, pg, err, sizeof(err)) != SH_OK)
		goto down_pg;
	pg_set_limits(*pg, &apply_limits, &s->abort_pg);
	if (pg_ensure_tables(*pg) != SH_OK) {	/* e.g. mounted from a catalog file while down */
		snprintf(err, sizeof(err), "cannot create table sharded_applied");
		goto down_pg;
	}
	set_backend(s, &s->status.pg_up, true, NULL, 0);
	return true;
down_pg:
	delay = (int64_t)backoff_next_ms(bo, random64());
	if (delay > PG_PROBE_CAP_MS)
		delay = PG_PROBE_CAP_MS;
	set_backend(s, &s->status.pg_up, false, err, delay);
	backoff_wait(s, delay);
	return false;
down:
	delay = (int64_t)backoff_next_ms(bo, random64());
	set_backend(s, &s->status.redis_up, false, err, delay);
	backoff_wait(s, delay);
	return false;
}

static void *apply_main(void *arg)
{
	struct sync *s = arg;
	redisContext *rc = NULL;
	struct pg *pg = NULL;
	bool pg_ok = false;
	struct backoff bo;
	char err[512];

	backoff_init(&bo, 100, BACKOFF_CAP_MS, BACKOFF_FULL);
	while (!is_stopping(s)) {
		enum pass_result r;
		int64_t delay;

		if ((!rc || !pg_ok) && !(pg_ok = connect_backends(s, &rc, &pg, &bo)))
			continue;
		r = apply_pass(s, rc, pg, err, sizeof(err));
		if (r <= PASS_WORKED) {
			enum pass_result t = takeover_now_and_then(s, rc, pg, err, sizeof(err));

			r = t > r ? t : r;
		}
		if (r == PASS_REDIS_DOWN) {
			redisFree(rc);
			rc = NULL;
			pg_ok = false;
			delay = (int64_t)backoff_next_ms(&bo, random64());
			set_backend(s, &s->status.redis_up, false, err, delay);
			backoff_wait(s, delay);
		} else if (r == PASS_PG_DOWN) {
			pg_ok = false;
			delay = (int64_t)backoff_next_ms(&bo, random64());
			set_backend(s, &s->status.pg_up, false, err, delay);
			backoff_wait(s, delay);
		} else {
			backoff_reset(&bo);
			if (r == PASS_IDLE)
				wait_ms(s, &s->apply_kicked, IDLE_WAIT_MS);
		}
	}
	redisFree(rc);
	redisFree(s->ahead_rc);
	s->ahead_rc = NULL;
	pg_close(pg);
	return NULL;
}

/* ---- life cycle -------------------------------------------------------- */

static void sync_free(struct sync *s)
{
	for (size_t i = 0; i < s->nforget; i++)
		free(s->forget[i]);
	pthread_cond_destroy(&s->wake);
	pthread_mutex_destroy(&s->lock);
	free(s->pg_conninfo);
	free(s->redis_url);
	free(s->consumer);
	free(s);
}

/* What the heartbeat says of this node, but for pending and seen. */
static void init_self(struct sync *s)
{
	struct nodereg_entry *e = &s->self;

	snprintf(e->node, sizeof(e->node), "%s", s->consumer ? s->consumer : "");
	if (gethostname(e->host, sizeof(e->host)) != 0)
		snprintf(e->host, sizeof(e->host), "?");
	e->host[sizeof(e->host) - 1] = '\0';
	snprintf(e->version, sizeof(e->version), "%s", SHARDED_VERSION);
	e->pid = (int64_t)getpid();
	e->started_s = clock_wall_ns() / 1000000000;
}

enum sh_err sync_start(const struct sync_config *cfg, struct sync **out)
{
	struct sync *s = calloc(1, sizeof(*s));

	if (!s)
		return SH_ENOMEM;
	s->cfg = *cfg;
	s->next_cleanup_ms = now_ms() + cfg->cleanup_s * 1000;	/* the first after one interval */
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->wake, NULL);
	s->pg_conninfo = strdup(cfg->pg_conninfo ? cfg->pg_conninfo : "");
	s->redis_url = strdup(cfg->redis_url ? cfg->redis_url : "");
	s->consumer = strdup(cfg->consumer);
	s->status.redis_up = s->status.pg_up = true;
	init_self(s);
	if (!s->pg_conninfo || !s->redis_url || !s->consumer) {
		sync_free(s);
		return SH_ENOMEM;
	}
	if (thread_start(&s->relay_thread, "sharded-relay", relay_main, s) != 0) {
		sync_free(s);
		return SH_ENOMEM;
	}
	if (thread_start(&s->apply_thread, "sharded-apply", apply_main, s) != 0) {
		pthread_mutex_lock(&s->lock);
		s->stopping = true;
		pthread_cond_broadcast(&s->wake);
		pthread_mutex_unlock(&s->lock);
		pthread_join(s->relay_thread, NULL);
		sync_free(s);
		return SH_ENOMEM;
	}
	*out = s;
	return SH_OK;
}

static int64_t total_pending(struct sync *s)
{
	struct block **blocks;
	int64_t pending = 0;
	size_t n;

	if (blockset_snapshot(s->cfg.blocks, &blocks, &n))
		return 0;
	for (size_t i = 0; i < n; i++) {
		int64_t p;

		if (store_pending(blocks[i]->store, &p) == SH_OK)
			pending += p;
		block_put(blocks[i]);
	}
	free(blocks);
	return pending;
}

void sync_stop(struct sync *s, int drain_ms)
{
	int64_t deadline = now_ms() + drain_ms;
	int64_t left;

	if (!s)
		return;
	while ((left = total_pending(s)) > 0 && now_ms() < deadline) {
		sync_kick(s);
		kick_apply(s);
		struct timespec ts = { 0, 50 * 1000000 };
		nanosleep(&ts, NULL);
	}
	if (left > 0)
		sh_log(LOG_INFO, "stopping with %" PRId64 " writes pending; they are kept for the next start",
		       left);
	pthread_mutex_lock(&s->lock);
	s->stopping = true;
	atomic_store(&s->abort_pg, true);
	pthread_cond_broadcast(&s->wake);
	pthread_mutex_unlock(&s->lock);
	pthread_join(s->relay_thread, NULL);
	pthread_join(s->apply_thread, NULL);
	sync_free(s);
}
