/* sync.c - relay (outbox -> Redis) and apply (Redis -> PostgreSQL) workers.
 * See the DESIGN comment in sync.h for the order of events and why. */
#include "sync.h"

#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "admin.h"
#include "backoff.h"
#include "log.h"
#include "op.h"
#include "pg.h"
#include "redis.h"
#include "store.h"

#define RELAY_BATCH 256
#define APPLY_BATCH 5000
#define RESEND_AFTER_NS (30LL * 1000000000)	/* re-send what Redis may have lost */
#define DELETE_GRACE_NS (1000LL * 1000000)	/* a deletion waits this long for a revoking write */
#define IDLE_WAIT_MS 200
#define RELAY_GATHER_MS 10	/* after a wake-up, before the relay looks at the outboxes */
#define REDIS_TIMEOUT_MS 2000
#define CLAIM_EVERY_MS 10000
#define CLAIM_IDLE_MS 60000
#define BACKOFF_CAP_MS 500	/* retries of a server that is down: a probe is cheap, a late drain is not */
#define FORGET_MAX 256

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
	int64_t next_cleanup_ms;	/* relay thread only */
};

/* A stream entry turned into an op, with the id to acknowledge. */
struct entry {
	struct op op;
	int64_t base;
	char id[48];
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
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
	s->status.retry_at_ns = up ? 0 : store_now_ns() + retry_ms * 1000000;
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

static void append_xadd(redisContext *rc, const char *key, const struct op *op, const char *base)
{
	char seq[24], kind[2] = { op->kind, 0 };
	const char *argv[15] = { "XADD", key, "*", "seq", seq, "base", base, "op", kind,
				 "model", op->model, "pk", op->pk, "doc", op->doc };
	int argc = op->doc ? 15 : 13;

	snprintf(seq, sizeof(seq), "%" PRId64, op->seq);
	redisAppendCommandArgv(rc, argc, argv, NULL);
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
	char key[REDIS_KEY_MAX], *base = NULL;
	struct op *ops;
	size_t n;
	int sent = -1;

	int64_t now = store_now_ns();
	/* re-send what Redis may have lost only while PostgreSQL takes writes:
	 * during an outage the stream just holds them, and re-sending would pile
	 * up copies of a growing backlog */
	int64_t resend_before = pg_reachable(s) ? now - RESEND_AFTER_NS : 1;	/* 1: never sent */

	if (store_outbox_to_relay(b->store, resend_before, now - DELETE_GRACE_NS, RELAY_BATCH,
				  &ops, &n))
		return 0;
	if (n == 0 || store_meta_get(b->store, "base_seq", &base) != SH_OK) {
		op_free_array(ops, n);
		free(base);
		return 0;
	}
	redis_key(key, sizeof(key), b->id, "ops");
	redisAppendCommand(rc, "XGROUP CREATE %s %s 0 MKSTREAM", key, REDIS_GROUP);
	for (size_t i = 0; i < n; i++)
		append_xadd(rc, key, &ops[i], base);
	if (drain_replies(rc, n + 1, err, errlen)) {
		store_outbox_relayed(b->store, ops[0].seq, ops[n - 1].seq, store_now_ns());
		sent = (int)n;
	}
	op_free_array(ops, n);
	free(base);
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

/* Drop the streams of deleted blocks, unless the block exists again. */
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
			redis_key(key, sizeof(key), ids[i], "ops");
			freeReplyObject(redisCommand(rc, "DEL %s", key));
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
	redisFree(rc);
	return NULL;
}

/* ---- apply: Redis -> PostgreSQL --------------------------------------- */

static const char *field(redisReply *fields, const char *name)
{
	for (size_t i = 0; i + 1 < fields->elements; i += 2)
		if (strcmp(fields->element[i]->str, name) == 0)
			return fields->element[i + 1]->str;
	return NULL;
}

static bool parse_entry(redisReply *r, struct entry *e)
{
	redisReply *f;
	const char *seq, *base, *kind, *model, *pk, *doc;

	memset(e, 0, sizeof(*e));
	if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 || r->element[1]->type != REDIS_REPLY_ARRAY)
		return false;
	snprintf(e->id, sizeof(e->id), "%s", r->element[0]->str);
	f = r->element[1];
	seq = field(f, "seq"), base = field(f, "base"), kind = field(f, "op");
	model = field(f, "model"), pk = field(f, "pk"), doc = field(f, "doc");
	if (!seq || !base || !kind || !model || !pk || (kind[0] == OP_UPSERT && !doc))
		return false;
	e->op.seq = strtoll(seq, NULL, 10);
	e->base = strtoll(base, NULL, 10);
	e->op.kind = kind[0];
	e->op.model = strdup(model);
	e->op.pk = strdup(pk);
	e->op.doc = doc ? strdup(doc) : NULL;
	return e->op.model && e->op.pk && (!doc || e->op.doc);
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

static int by_seq(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;

	return (x->op.seq > y->op.seq) - (x->op.seq < y->op.seq);
}

static void free_entries(struct entry *es, size_t n)
{
	for (size_t i = 0; i < n; i++)
		op_release(&es[i].op);
	free(es);
}

static void ack_entries(redisContext *rc, const char *key, const struct entry *es, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		redisAppendCommand(rc, "XACK %s %s %s", key, REDIS_GROUP, es[i].id);
		redisAppendCommand(rc, "XDEL %s %s", key, es[i].id);
	}
	for (size_t i = 0; i < 2 * n; i++) {
		redisReply *r = NULL;
		if (redisGetReply(rc, (void **)&r) != REDIS_OK)
			return;	/* left pending: re-read and skipped as applied later */
		freeReplyObject(r);
	}
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

/* PostgreSQL refused op for good: keep it in the dead-letter stream and show
 * the row as PostgreSQL has it. */
static void bury(struct sync *s, struct block *b, redisContext *rc, struct pg *pg,
		 const struct op *op, int64_t upto)
{
	const struct model *m = catalog_find(s->cfg.cat, op->model);
	char key[REDIS_KEY_MAX], seq[24], kind[2] = { op->kind, 0 };
	const char *argv[15] = { "XADD", key, "*", "seq", seq, "op", kind, "model", op->model,
				 "pk", op->pk, "error", op->error ? op->error : "", "doc", op->doc };
	char *doc = NULL;

	redis_key(key, sizeof(key), b->id, "dead");
	snprintf(seq, sizeof(seq), "%" PRId64, op->seq);
	freeReplyObject(redisCommandArgv(rc, op->doc ? 15 : 13, argv, NULL));
	sh_log(LOG_ERR, "block '%s': %s/%s.json refused by postgresql, moved to dead letters: %s",
	       b->id, op->model, op->pk, op->error ? op->error : "");
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
 * hears only of records that now read differently), bury the dead, count. */
static void settle(struct sync *s, struct block *b, redisContext *rc, struct pg *pg,
		   struct op *ops, size_t n, int64_t upto)
{
	bool *changed = calloc(n ? n : 1, sizeof(*changed));
	int64_t applied = 0;

	if (changed && store_refresh_batch(b->store, ops, n, upto, changed) != SH_OK)
		memset(changed, 0, n * sizeof(*changed));
	for (size_t i = 0; i < n; i++) {
		struct op *op = &ops[i];

		if (op->skipped)
			continue;
		applied++;
		if (op->dead)
			bury(s, b, rc, pg, op, upto);
		else if (changed && changed[i])
			notify(s, b, op, false);	/* refreshed: still there */
	}
	free(changed);
	store_meta_add(b->store, "applied_total", applied);
	set_meta_int(b->store, "last_sync_ns", store_now_ns());
}

/* Which sorted entries to apply: the contiguous run of seqs after what
 * PostgreSQL has (applied). Copies of one seq (re-sent entries) and seqs
 * already applied are only acknowledged. Fills pick with the indexes to
 * apply; returns how many entries, from the start, are settled (applied or
 * duplicate). Entries after a gap stay pending until the gap is filled. */
static size_t plan(const struct entry *es, size_t n, int64_t applied, size_t *pick, size_t *npick)
{
	int64_t expect = 0;
	size_t i;

	*npick = 0;
	for (i = 0; i < n; i++) {
		int64_t seq = es[i].op.seq;

		if (!expect)
			expect = applied >= es[i].base ? applied + 1 : es[i].base + 1;
		if (seq < expect)
			continue;	/* already applied, or a second copy */
		if (seq != expect)
			break;		/* gap */
		pick[(*npick)++] = i;
		expect++;
	}
	return i;
}

/* Apply what the stream holds for block b. Returns false on a transient failure. */
static bool apply_entries(struct sync *s, struct block *b, redisContext *rc, struct pg *pg,
			  const char *key, struct entry *es, size_t n, char *err, size_t errlen)
{
	size_t *pick = malloc(n * sizeof(*pick)), npick, settled;
	struct op *ops = malloc(n * sizeof(*ops));
	int64_t applied, upto;
	bool ok = true;

	if (!pick || !ops)
		goto out;
	qsort(es, n, sizeof(*es), by_seq);
	if (pg_applied_seq(pg, b->id, &applied) != SH_OK) {
		snprintf(err, errlen, "postgresql unreachable");
		ok = false;
		goto out;
	}
	settled = plan(es, n, applied, pick, &npick);
	if (settled < n && b->gap_logged != es[settled].op.seq) {
		sh_log(LOG_WARNING, "block '%s': gap in the stream before seq %" PRId64 ", re-sending",
		       b->id, es[settled].op.seq);
		b->gap_logged = es[settled].op.seq;
		store_outbox_unrelay(b->store);
	}
	if (npick) {
		for (size_t i = 0; i < npick; i++)
			ops[i] = es[pick[i]].op;
		ok = pg_apply(pg, s->cfg.cat, b->id, ops, npick, &upto, err, errlen) == SH_OK;
		for (size_t i = 0; i < npick; i++)
			es[pick[i]].op = ops[i];	/* results, and ownership, go back */
		if (!ok)
			goto out;
		applied = upto;
		settle(s, b, rc, pg, ops, npick, upto);
	}
	/* Everything up to applied is in PostgreSQL: out of the outbox, also the
	 * copies a crash or a busy block file left there (they come back as
	 * duplicates), and only then acknowledged in Redis. */
	if (settled && store_outbox_applied(b->store, applied) != SH_OK)
		goto out;	/* not acknowledged: read again, and skipped, next pass */
	ack_entries(rc, key, es, settled);
out:
	free(pick);
	free(ops);
	return ok;
}

/* Append the parsable entries of list to *es (n of them so far). */
static bool collect(redisReply *list, struct entry **es, size_t *n)
{
	struct entry *grown;

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

/* Read our pending entries (left by a failure or a gap) and new ones. */
static enum pass_result read_block(struct sync *s, struct block *b, redisContext *rc,
				   const char *key, struct entry **es, size_t *n, char *err,
				   size_t errlen)
{
	static const char *const ids[] = { "0", ">" };

	for (size_t i = 0; i < 2; i++) {
		redisReply *r = read_stream(rc, key, s->consumer, ids[i]);
		bool ok;

		if (!r) {
			snprintf(err, errlen, "redis: %s", rc->errstr);
			return PASS_REDIS_DOWN;
		}
		if (r->type == REDIS_REPLY_ERROR) {
			/* NOGROUP: the stream or group is gone (Redis lost its data) */
			freeReplyObject(r);
			ensure_group(rc, key);
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
				    struct pg *pg, bool claim, char *err, size_t errlen)
{
	char key[REDIS_KEY_MAX];
	struct entry *es = NULL;
	size_t n = 0;
	enum pass_result r;

	redis_key(key, sizeof(key), b->id, "ops");
	if (claim)
		claim_stale(s, rc, key);
	r = read_block(s, b, rc, key, &es, &n, err, errlen);
	if (r == PASS_WORKED && n && !apply_entries(s, b, rc, pg, key, es, n, err, errlen))
		r = PASS_PG_DOWN;
	free_entries(es, n);
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
		int64_t pending;

		if (result <= PASS_WORKED && store_pending(blocks[i]->store, &pending) == SH_OK &&
		    pending > 0) {
			enum pass_result r = apply_block(s, blocks[i], rc, pg, claim, err, errlen);
			if (r > result)
				result = r;
		} else if (atomic_load(&blocks[i]->retiring)) {
			finish_retiring(s, blocks[i]);
		}
		block_put(blocks[i]);
	}
	free(blocks);
	return result;
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
	pg_close(pg);
	return NULL;
}

/* ---- life cycle -------------------------------------------------------- */

static int start_thread(pthread_t *t, void *(*fn)(void *), void *arg, const char *name)
{
	sigset_t all, old;
	int rc;

	/* workers take no signals: the FUSE loop handles them */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	rc = pthread_create(t, NULL, fn, arg);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc == 0)
		pthread_setname_np(*t, name);
	return rc;
}

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
	if (!s->pg_conninfo || !s->redis_url || !s->consumer) {
		sync_free(s);
		return SH_ENOMEM;
	}
	if (start_thread(&s->relay_thread, relay_main, s, "sharded-relay") != 0) {
		sync_free(s);
		return SH_ENOMEM;
	}
	if (start_thread(&s->apply_thread, apply_main, s, "sharded-apply") != 0) {
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
