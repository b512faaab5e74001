/* kcache.c - what the kernel may hold of each record (kcache.h has the rules). */
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "kcache.h"

#define BUCKETS 4096

/* What the daemon knows of the kernel's size for an inode. */
enum told {
	TOLD_UNKNOWN,	/* it may hold a valid size we cannot name */
	TOLD_STALE,	/* its attributes are stale: a read past the end asks */
	TOLD_SIZE,	/* its size is told_len (valid or stale attributes: a refresh
			 * answers a size that fits the cached opens, and one dropped
			 * by the kernel leaves the size as it was) */
};

struct kstate {
	uint64_t ino;
	int writers, readers, pending;
	bool writer_alone;	/* one writer since writers was 0, no attributes sent meanwhile:
				 * the kernel's size is the extent of its writes */
	uint64_t reader_fp;	/* the snapshot every cached open reads */
	size_t reader_len;
	uint64_t cache_fp;	/* the snapshot pages were last filled from */
	enum told told;
	size_t told_len;
	/* the kernel's size when the first of the pending invalidations was
	 * queued (q_known: it was told_len then), and a count of what may move
	 * the kernel's size or pages (writers, writes, invalidations queued), so
	 * that a store decided at send time knows nothing came in between */
	bool q_known;
	size_t q_len;
	uint64_t gen;
	struct kstate *next;
};

struct kcache {
	pthread_mutex_t lock;
	pthread_cond_t reader_gone;	/* a cached open closed: writers wait for that */
	struct kstate *buckets[BUCKETS];
	unsigned long long opens[KCACHE_OPEN_KINDS];
};

struct kcache *kcache_new(void)
{
	struct kcache *k = calloc(1, sizeof(*k));

	if (k) {
		pthread_mutex_init(&k->lock, NULL);
		pthread_cond_init(&k->reader_gone, NULL);
	}
	return k;
}

void kcache_free(struct kcache *k)
{
	if (!k)
		return;
	for (size_t i = 0; i < BUCKETS; i++) {
		while (k->buckets[i]) {
			struct kstate *s = k->buckets[i];

			k->buckets[i] = s->next;
			free(s);
		}
	}
	pthread_cond_destroy(&k->reader_gone);
	pthread_mutex_destroy(&k->lock);
	free(k);
}

uint64_t kcache_fp(const char *buf, size_t len)
{
	uint64_t h = 1469598103934665603ULL;	/* FNV-1a */

	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)buf[i];
		h *= 1099511628211ULL;
	}
	h ^= len;
	return h ? h : 1;
}

static struct kstate **slot(struct kcache *k, uint64_t ino)
{
	struct kstate **p = &k->buckets[ino % BUCKETS];

	while (*p && (*p)->ino != ino)
		p = &(*p)->next;
	return p;
}

/* The state of ino, made (knowing nothing) when absent; NULL without memory. */
static struct kstate *get(struct kcache *k, uint64_t ino)
{
	struct kstate **p = slot(k, ino);

	if (!*p && (*p = calloc(1, sizeof(**p))))
		(*p)->ino = ino;
	return *p;
}

bool kcache_open_read(struct kcache *k, uint64_t ino, uint64_t fp, size_t len, bool *keep)
{
	struct kstate *s;
	bool cached = false;

	*keep = false;
	if (!k)
		return false;
	pthread_mutex_lock(&k->lock);
	s = get(k, ino);
	if (s && !s->writers && !s->pending && s->told == TOLD_SIZE && s->told_len == len &&
	    (!s->readers || s->reader_fp == fp)) {
		cached = true;
		*keep = s->cache_fp == fp;
		s->cache_fp = s->reader_fp = fp;
		s->reader_len = len;
		s->readers++;
	}
	k->opens[!cached ? KCACHE_DIRECT : *keep ? KCACHE_KEPT : KCACHE_FILLED]++;
	pthread_mutex_unlock(&k->lock);
	return cached;
}

void kcache_counts(struct kcache *k, unsigned long long counts[KCACHE_OPEN_KINDS])
{
	for (int i = 0; i < KCACHE_OPEN_KINDS; i++)
		counts[i] = 0;
	if (!k)
		return;
	pthread_mutex_lock(&k->lock);
	for (int i = 0; i < KCACHE_OPEN_KINDS; i++)
		counts[i] = k->opens[i];
	pthread_mutex_unlock(&k->lock);
}

void kcache_close_read(struct kcache *k, uint64_t ino)
{
	struct kstate *s;

	if (!k)
		return;
	pthread_mutex_lock(&k->lock);
	s = *slot(k, ino);
	if (s && s->readers && !--s->readers)
		pthread_cond_broadcast(&k->reader_gone);
	pthread_mutex_unlock(&k->lock);
}

bool kcache_open_write(struct kcache *k, uint64_t ino, int wait_ms)
{
	struct kstate *s;
	struct timespec until;
	bool drained = true;

	if (!k)
		return true;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += wait_ms / 1000;
	until.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&k->lock);
	s = get(k, ino);
	if (s) {
		s->writer_alone = !s->writers;
		s->writers++;	/* from now on readers open direct_io */
		s->gen++;
		if (s->told != TOLD_UNKNOWN)
			s->told = TOLD_STALE;	/* its O_TRUNC sets the size to 0 */
		while (s->readers && drained)
			drained = pthread_cond_timedwait(&k->reader_gone, &k->lock, &until) == 0 ||
				  !s->readers;
	}
	pthread_mutex_unlock(&k->lock);
	return drained;
}

void kcache_close_write(struct kcache *k, uint64_t ino)
{
	struct kstate *s;

	if (!k)
		return;
	pthread_mutex_lock(&k->lock);
	s = *slot(k, ino);
	if (s && s->writers)
		s->writers--;
	pthread_mutex_unlock(&k->lock);
}

void kcache_written(struct kcache *k, uint64_t ino, bool from_empty, size_t len)
{
	struct kstate *s;

	if (!k)
		return;
	pthread_mutex_lock(&k->lock);
	s = *slot(k, ino);
	if (s)
		s->gen++;
	if (s && s->told != TOLD_UNKNOWN) {
		s->told = from_empty && s->writer_alone && !s->pending ? TOLD_SIZE : TOLD_STALE;
		s->told_len = len;
	}
	pthread_mutex_unlock(&k->lock);
}

size_t kcache_attr(struct kcache *k, uint64_t ino, uint64_t fp, size_t len, bool *cacheable)
{
	struct kstate *s;
	size_t size = len;

	*cacheable = !k;	/* without a kcache every open is direct_io */
	if (!k)
		return len;
	pthread_mutex_lock(&k->lock);
	s = get(k, ino);
	if (!s) {
		/* no state to keep: attributes for no time cannot mislead */
	} else if (s->readers && s->reader_fp != fp) {
		size = s->reader_len;	/* they read their snapshot whole */
		if (s->told != TOLD_UNKNOWN)
			s->told = TOLD_STALE;
	} else if (s->writers) {
		s->writer_alone = false;	/* the kernel takes this size for now */
		if (s->told != TOLD_UNKNOWN)
			s->told = TOLD_STALE;
	} else {
		*cacheable = true;
		if (!s->pending) {
			s->told = TOLD_SIZE;
			s->told_len = len;
		}
	}
	pthread_mutex_unlock(&k->lock);
	return size;
}

void kcache_inval_queued(struct kcache *k, uint64_t ino)
{
	struct kstate *s;

	if (!k)
		return;
	pthread_mutex_lock(&k->lock);
	s = get(k, ino);
	if (s) {
		s->q_known = !s->pending && s->told == TOLD_SIZE;
		s->q_len = s->told_len;
		s->pending++;
		s->told = TOLD_UNKNOWN;
		s->gen++;
	}
	pthread_mutex_unlock(&k->lock);
}

void kcache_inval_done(struct kcache *k, uint64_t ino, bool sent)
{
	struct kstate *s;

	if (!k)
		return;
	pthread_mutex_lock(&k->lock);
	s = *slot(k, ino);
	if (s) {
		if (s->pending)
			s->pending--;
		if (!sent)
			s->told = TOLD_UNKNOWN;	/* until a GETATTR tells it a size */
		else if (!s->pending && s->told == TOLD_UNKNOWN)
			s->told = TOLD_STALE;
	}
	pthread_mutex_unlock(&k->lock);
}

void kcache_created(struct kcache *k, uint64_t ino)
{
	struct kstate **p;

	if (!k)
		return;
	pthread_mutex_lock(&k->lock);
	p = slot(k, ino);
	/* no state: the kernel holds nothing of ino (every attribute reply of
	 * a record makes one), so the CREATE's size is the one it holds */
	if (!*p && (*p = calloc(1, sizeof(**p)))) {
		(*p)->ino = ino;
		(*p)->told = TOLD_SIZE;
		(*p)->told_len = 0;
	}
	pthread_mutex_unlock(&k->lock);
}

bool kcache_store_begin(struct kcache *k, uint64_t ino, size_t len, uint64_t *ticket)
{
	struct kstate *s;
	bool ok = false;

	if (!k)
		return false;
	pthread_mutex_lock(&k->lock);
	s = *slot(k, ino);
	/* the store sets the size to len only when that grows it, and it
	 * rewrites pages a cached open may be reading */
	if (s && s->pending == 1 && s->q_known && len > s->q_len && !s->writers && !s->readers) {
		s->cache_fp = 0;	/* its pages change from now on */
		*ticket = s->gen;
		ok = true;
	}
	pthread_mutex_unlock(&k->lock);
	return ok;
}

void kcache_store_done(struct kcache *k, uint64_t ino, uint64_t ticket, size_t len, uint64_t fp)
{
	struct kstate *s;

	if (!k)
		return;
	pthread_mutex_lock(&k->lock);
	s = *slot(k, ino);
	if (s) {
		if (s->pending)
			s->pending--;
		if (s->gen == ticket && !s->pending && !s->writers) {
			s->told = TOLD_SIZE;	/* size len, size and times marked stale */
			s->told_len = len;
			s->cache_fp = fp;	/* every page of it, whole */
		} else {
			s->told = TOLD_UNKNOWN;	/* something came in between */
		}
	}
	pthread_mutex_unlock(&k->lock);
}

void kcache_forget(struct kcache *k, uint64_t ino)
{
	struct kstate **p, *s;

	if (!k)
		return;
	pthread_mutex_lock(&k->lock);
	p = slot(k, ino);
	s = *p;
	if (s && !s->readers && !s->writers && !s->pending) {	/* else its opens still count */
		*p = s->next;
		free(s);
	}
	pthread_mutex_unlock(&k->lock);
}
