/* notify.c - tells the kernel when a file changed behind its back.
 *
 * The fuse_lowlevel_notify_* calls may deadlock when made from inside a
 * request for a related inode, so changes reported by the engine (sync
 * refresh, invalidate) are queued here and sent from this thread alone.
 * Order: FIFO; a full queue drops the oldest entry with a warning (the
 * attribute timeout still bounds staleness). Each record inode's queued
 * invalidation is known to kcache.h from the moment it is queued (before the
 * change is acknowledged) until the kernel has it: meanwhile its readers
 * bypass the page cache. A record that changed and is still there may be
 * sent whole (notify_store) instead, when kcache.h says that is exact
 * (never with records=ro: there the daemon does not see the opens).
 * With records=ro (fs->no_open) the kernel opens files without asking, so no
 * open can learn of a queued invalidation: there every change waits until
 * the kernel has it (notifier_change returns after the send), and a full
 * queue makes the next change wait instead of dropping one. A thread serving
 * a FUSE request does not wait (the kernel may hold the directory an
 * invalidation needs, until that request is answered: a LOOKUP that reloads
 * an expired block, an `rm -r`); `invalidate`'s write waits by
 * notifier_flush, holding no directory lock.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs.h"
#include "kcache.h"

#define QUEUE_MAX 4096

struct inval {
	uint64_t ino;		/* inode whose data and attributes to drop */
	bool changed;		/* ino is a record that changed and is still there */
	uint64_t parent;	/* with name: the directory entry to drop, 0 if none */
	char name[ENGINE_NAME_MAX + 1];
};

struct notifier {
	struct fs *fs;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct inval queue[QUEUE_MAX];
	size_t head, len;
	uint64_t pushed, done;	/* entries queued, and sent or dropped, so far */
	pthread_cond_t done_cond;	/* done moved, or stopping */
	pthread_mutex_t send_lock;	/* held while a message goes to the kernel */
	bool detached;			/* under send_lock: the session's fd is closing */
	int stopping;
};

/* Returns the entry's number, for wait_sent. */
static uint64_t push(struct notifier *n, uint64_t ino, uint64_t parent, const char *name,
		     bool changed)
{
	struct inval *v;
	uint64_t seq;

	pthread_mutex_lock(&n->lock);
	while (n->fs->no_open && !fs_request_thread && n->len == QUEUE_MAX && !n->stopping)
		pthread_cond_wait(&n->done_cond, &n->lock);
	if (n->len == QUEUE_MAX) {
		kcache_inval_done(n->fs->kcache, n->queue[n->head].ino, false);
		n->head = (n->head + 1) % QUEUE_MAX;
		n->len--;
		n->done++;
		sh_log(LOG_WARNING, "kernel invalidation queue full, dropping the oldest entry");
	}
	if (ino)
		kcache_inval_queued(n->fs->kcache, ino);
	v = &n->queue[(n->head + n->len) % QUEUE_MAX];
	v->ino = ino;
	v->parent = parent;
	v->changed = changed;
	snprintf(v->name, sizeof(v->name), "%s", name ? name : "");
	n->len++;
	seq = ++n->pushed;
	pthread_cond_signal(&n->cond);
	pthread_mutex_unlock(&n->lock);
	return seq;
}

/* Wait until entry seq, and every one before it, has been sent to the kernel. */
static void wait_sent(struct notifier *n, uint64_t seq)
{
	pthread_mutex_lock(&n->lock);
	while (n->done < seq && !n->stopping)
		pthread_cond_wait(&n->done_cond, &n->lock);
	pthread_mutex_unlock(&n->lock);
}

void notifier_detach(struct notifier *n)
{
	if (!n)
		return;
	pthread_mutex_lock(&n->send_lock);
	n->detached = true;
	pthread_mutex_unlock(&n->send_lock);
}

void notifier_flush(struct notifier *n)
{
	uint64_t seq;

	if (!n)
		return;
	pthread_mutex_lock(&n->lock);
	seq = n->pushed;
	pthread_mutex_unlock(&n->lock);
	wait_sent(n, seq);
}

/* The largest record stored whole into the page cache rather than invalidated. */
#define STORE_MAX 65536

/* A record that changed (the sync's refresh, another node's change) goes to
 * the kernel whole, when kcache.h allows it: its size and pages are then
 * the new ones and its mode stays valid, so the next open of it asks
 * nothing (neither a GETATTR for the permission check nor, for a reader, a
 * READ). false: invalidate it instead. */
static bool store_record(struct fs *fs, uint64_t ino)
{
	struct fuse_bufvec bv;
	struct node_ref r;
	struct block *b;
	char *doc = NULL;
	uint64_t ticket, fp;
	size_t len;
	int rc;

	if (nodes_get(fs->nodes, ino, &r) != SH_OK || r.kind != NODE_RECORD ||
	    engine_block_get(fs->engine, r.block, &b) != SH_OK)
		return false;
	rc = engine_get_local(fs->engine, b, r.model, r.pk, &doc, NULL);
	engine_block_put(b);
	if (rc != SH_OK)
		return false;
	len = strlen(doc) + 1;
	doc[len - 1] = '\n';	/* what a read returns: the document and its newline */
	fp = kcache_fp(doc, len);
	if (len > STORE_MAX || !kcache_store_begin(fs->kcache, ino, len, &ticket)) {
		free(doc);
		return false;
	}
	bv = (struct fuse_bufvec)FUSE_BUFVEC_INIT(len);
	bv.buf[0].mem = doc;
	rc = fuse_lowlevel_notify_store(fs->se, ino, 0, &bv, 0);
	free(doc);
	if (rc != 0)
		return false;	/* the invalidation follows; kcache knows the pages changed */
	kcache_store_done(fs->kcache, ino, ticket, len, fp);
	return true;
}

static void send_one(struct fs *fs, const struct inval *v)
{
	if (v->parent)
		fuse_lowlevel_notify_inval_entry(fs->se, v->parent, v->name, strlen(v->name));
	if (!v->ino || (v->changed && store_record(fs, v->ino)))
		return;
	fuse_lowlevel_notify_inval_inode(fs->se, v->ino, 0, 0);
	kcache_inval_done(fs->kcache, v->ino, true);
}

static void *notifier_main(void *arg)
{
	struct notifier *n = arg;
	struct inval v;

	pthread_mutex_lock(&n->lock);
	for (;;) {
		while (!n->len && !n->stopping)
			pthread_cond_wait(&n->cond, &n->lock);
		if (!n->len)
			break;
		v = n->queue[n->head];
		n->head = (n->head + 1) % QUEUE_MAX;
		n->len--;
		pthread_mutex_unlock(&n->lock);
		pthread_mutex_lock(&n->send_lock);
		if (!n->detached)
			send_one(n->fs, &v);
		pthread_mutex_unlock(&n->send_lock);
		pthread_mutex_lock(&n->lock);
		n->done++;
		pthread_cond_broadcast(&n->done_cond);
	}
	pthread_mutex_unlock(&n->lock);
	return NULL;
}

struct notifier *notifier_start(struct fs *fs)
{
	struct notifier *n = calloc(1, sizeof(*n));

	if (!n)
		return NULL;
	n->fs = fs;
	pthread_mutex_init(&n->lock, NULL);
	pthread_cond_init(&n->cond, NULL);
	pthread_cond_init(&n->done_cond, NULL);
	pthread_mutex_init(&n->send_lock, NULL);
	if (thread_start(&n->thread, "sharded-notify", notifier_main, n) != 0) {
		pthread_mutex_destroy(&n->send_lock);
		pthread_cond_destroy(&n->done_cond);
		pthread_cond_destroy(&n->cond);
		pthread_mutex_destroy(&n->lock);
		free(n);
		return NULL;
	}
	return n;
}

void notifier_stop(struct notifier *n)
{
	if (!n)
		return;
	pthread_mutex_lock(&n->lock);
	n->stopping = 1;
	n->len = 0;
	pthread_cond_signal(&n->cond);
	pthread_cond_broadcast(&n->done_cond);
	pthread_mutex_unlock(&n->lock);
	pthread_join(n->thread, NULL);
	pthread_mutex_destroy(&n->send_lock);
	pthread_cond_destroy(&n->done_cond);
	pthread_cond_destroy(&n->cond);
	pthread_mutex_destroy(&n->lock);
	free(n);
}

struct entry_ctx {
	struct notifier *n;
	uint64_t parent;
	uint64_t last;	/* the number of the last entry queued */
};

static void queue_entry(void *ctx, uint64_t ino, const char *name)
{
	struct entry_ctx *c = ctx;

	c->last = push(c->n, ino, c->parent, name, false);
}

/* Inodes of a block's model directories, collected under the table lock. */
struct ino_list {
	uint64_t inos[1024];
	size_t n;
};

static void collect_ino(void *ctx, uint64_t ino, const char *name)
{
	struct ino_list *l = ctx;

	(void)name;
	if (l->n < sizeof(l->inos) / sizeof(l->inos[0]))
		l->inos[l->n++] = ino;
}

/* Drop every directory entry below block ino: the next access looks it up
 * again. Returns the number of the last entry queued (0: none). */
static uint64_t queue_block(struct fs *fs, uint64_t bino)
{
	struct ino_list *models = calloc(1, sizeof(*models));
	uint64_t last = 0;

	if (!models)
		return 0;
	nodes_children(fs->nodes, bino, collect_ino, models);
	for (size_t i = 0; i < models->n; i++) {
		struct entry_ctx c = { fs->notifier, models->inos[i], 0 };

		nodes_children(fs->nodes, models->inos[i], queue_entry, &c);
		if (c.last)
			last = c.last;
	}
	free(models);
	return last;
}

void notifier_change(void *arg, const char *block, const char *model, const char *pk, bool gone)
{
	struct fs *fs = arg;
	const struct model *m;
	uint64_t bino, mino, rino, last = 0;
	char name[ENGINE_NAME_MAX + 1];

	if (!fs->notifier)
		return;
	bino = nodes_find(fs->nodes, 1, block);
	if (!bino)
		return;
	if (!model) {
		last = queue_block(fs, bino);
		if (fs->no_open && last && !fs_request_thread)
			wait_sent(fs->notifier, last);
		return;
	}
	mino = nodes_find(fs->nodes, bino, model);
	m = catalog_find(engine_catalog(fs->engine), model);
	if (!m)
		return;
	(void)engine_record_name(m, pk, name, sizeof(name));	/* always fits: the long form */
	rino = mino ? nodes_find(fs->nodes, mino, name) : 0;
	/* the entry too only when the record may be gone (a refused write, a
	 * dead letter): dropping it would cost a LOOKUP, and the directory's
	 * GETATTR, on the next use */
	if (rino)
		last = push(fs->notifier, rino, gone ? mino : 0, gone ? name : NULL,
			    !gone && !fs->no_open);
	else if (mino && !gone)
		/* a record the kernel has not seen (added by a change made in
		 * PostgreSQL): drop a negative entry of its name and the listing */
		last = push(fs->notifier, mino, mino, name, false);
	if (fs->no_open && last && !fs_request_thread)
		wait_sent(fs->notifier, last);
}
