/* ahead.c - ids reserved ahead of need (ahead.h).
 *
 * Ordering: none to keep. The thread serves queued asks oldest first, each
 * (block, model) at most once in the queue; a reservation only adds ids to
 * a block's reserve, and which id .next-id hands out next is decided in the
 * block file (lowest first), not by when a reservation lands.
 */
#include "ahead.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "blocks.h"
#include "clock.h"
#include "thread.h"

#define AHEAD_SLOTS 64	/* (block, model) pairs remembered; the oldest is forgotten */
#define AHEAD_QUEUE 64	/* asks waiting; beyond, an ask is dropped (the next read asks again) */

struct slot {
	char block[BLOCK_ID_MAX + 1];
	const void *model;	/* NULL: free */
	int64_t at_ns;		/* last reservation */
	int n;			/* its size */
	bool queued;
};

struct ahead {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	pthread_t thread;
	bool started, stop;
	ahead_fn fn;
	void *ctx;
	struct slot slot[AHEAD_SLOTS];
	int queue[AHEAD_QUEUE];	/* slot indexes, oldest first */
	int nq;
};

struct ahead *ahead_new(ahead_fn fn, void *ctx)
{
	struct ahead *a = calloc(1, sizeof(*a));

	if (!a)
		return NULL;
	pthread_mutex_init(&a->lock, NULL);
	pthread_cond_init(&a->cond, NULL);
	a->fn = fn;
	a->ctx = ctx;
	return a;
}

/* The slot of (block, model), or NULL (a locked). */
static struct slot *find_locked(struct ahead *a, const char *block, const void *model)
{
	for (int i = 0; i < AHEAD_SLOTS; i++)
		if (a->slot[i].model == model && strcmp(a->slot[i].block, block) == 0)
			return &a->slot[i];
	return NULL;
}

/* The slot of (block, model), made from a free or the oldest unqueued one;
 * NULL when every slot is queued (a locked). */
static struct slot *get_locked(struct ahead *a, const char *block, const void *model)
{
	struct slot *s = find_locked(a, block, model), *old = NULL;

	if (s || strlen(block) > BLOCK_ID_MAX)
		return s;
	for (int i = 0; i < AHEAD_SLOTS; i++)
		if (!a->slot[i].queued && (!old || a->slot[i].at_ns < old->at_ns))
			old = &a->slot[i];
	if (old) {
		memset(old, 0, sizeof(*old));
		strcpy(old->block, block);
		old->model = model;
	}
	return old;
}

int ahead_size(struct ahead *a, const char *block, const void *model, int64_t now_ns)
{
	struct slot *s;
	int n = AHEAD_MIN;

	pthread_mutex_lock(&a->lock);
	if ((s = get_locked(a, block, model))) {
		if (s->n && now_ns - s->at_ns < AHEAD_FAST_NS)
			n = s->n * 2 > AHEAD_MAX ? AHEAD_MAX : s->n * 2;
		else if (s->n && now_ns - s->at_ns < AHEAD_QUIET_NS)
			n = s->n;
		s->n = n;
		s->at_ns = now_ns;
	}
	pthread_mutex_unlock(&a->lock);
	return n;
}

static bool low_locked(struct ahead *a, const char *block, const void *model, int64_t left)
{
	struct slot *s = find_locked(a, block, model);

	return left < (s && s->n ? s->n : AHEAD_MIN) / 2;
}

bool ahead_low(struct ahead *a, const char *block, const void *model, int64_t left)
{
	bool low;

	pthread_mutex_lock(&a->lock);
	low = low_locked(a, block, model, left);
	pthread_mutex_unlock(&a->lock);
	return low;
}

bool ahead_need(struct ahead *a, const char *block, const void *model, int64_t left)
{
	struct slot *s;
	bool ok = true;

	pthread_mutex_lock(&a->lock);
	if (low_locked(a, block, model, left)) {
		s = find_locked(a, block, model);
		if (!s || !s->queued) {
			s = a->started && !a->stop && a->nq < AHEAD_QUEUE ?
				    get_locked(a, block, model) : NULL;
			ok = s != NULL;
		}
		if (s && !s->queued) {
			s->queued = true;
			a->queue[a->nq++] = (int)(s - a->slot);
			pthread_cond_signal(&a->cond);
		}
	}
	pthread_mutex_unlock(&a->lock);
	return ok;
}

static void *run(void *arg)
{
	struct ahead *a = arg;
	char block[BLOCK_ID_MAX + 1];

	pthread_mutex_lock(&a->lock);
	for (;;) {
		struct slot *s;
		const void *model;

		while (!a->stop && a->nq == 0)
			pthread_cond_wait(&a->cond, &a->lock);
		if (a->stop)
			break;
		s = &a->slot[a->queue[0]];
		memmove(a->queue, a->queue + 1, (size_t)--a->nq * sizeof(a->queue[0]));
		strcpy(block, s->block);
		model = s->model;
		pthread_mutex_unlock(&a->lock);
		a->fn(a->ctx, block, model);
		pthread_mutex_lock(&a->lock);
		/* only now: a read meanwhile must not queue the same again */
		if ((s = find_locked(a, block, model)))
			s->queued = false;
	}
	pthread_mutex_unlock(&a->lock);
	return NULL;
}

enum sh_err ahead_start(struct ahead *a)
{
	if (thread_start(&a->thread, "sharded-ids", run, a) != 0)
		return SH_ENOMEM;
	pthread_mutex_lock(&a->lock);
	a->started = true;
	pthread_mutex_unlock(&a->lock);
	return SH_OK;
}

void ahead_stop(struct ahead *a)
{
	bool join;

	if (!a)
		return;
	pthread_mutex_lock(&a->lock);
	a->stop = true;
	join = a->started;
	a->started = false;
	for (int i = 0; i < a->nq; i++)
		a->slot[a->queue[i]].queued = false;
	a->nq = 0;
	pthread_cond_broadcast(&a->cond);
	pthread_mutex_unlock(&a->lock);
	if (join)
		pthread_join(a->thread, NULL);
}

void ahead_free(struct ahead *a)
{
	if (!a)
		return;
	ahead_stop(a);
	pthread_cond_destroy(&a->cond);
	pthread_mutex_destroy(&a->lock);
	free(a);
}
