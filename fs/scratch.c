/* scratch.c - in-memory scratch files, in one list under one lock. */
#include "scratch.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct scratches {
	pthread_mutex_t lock;
	struct scratch *head;
	size_t file_cap, total_cap, total;	/* bytes held, under lock */
};

struct scratches *scratches_new(size_t file_cap, size_t total_cap)
{
	struct scratches *ss = calloc(1, sizeof(*ss));

	if (!ss)
		return NULL;
	pthread_mutex_init(&ss->lock, NULL);
	ss->file_cap = file_cap;
	ss->total_cap = total_cap;
	return ss;
}

static void scratch_free(struct scratch *s)
{
	pthread_mutex_destroy(&s->lock);
	free(s->block);
	free(s->model);
	free(s->name);
	free(s->buf);
	free(s);
}

void scratches_free(struct scratches *ss)
{
	if (!ss)
		return;
	for (struct scratch *s = ss->head, *next; s; s = next) {
		next = s->next;
		scratch_free(s);
	}
	pthread_mutex_destroy(&ss->lock);
	free(ss);
}

static int same(const struct scratch *s, const char *block, const char *model, const char *name)
{
	return s->linked && strcmp(s->name, name) == 0 && strcmp(s->model, model) == 0 &&
	       strcmp(s->block, block) == 0;
}

static struct scratch *find_locked(struct scratches *ss, const char *block, const char *model,
				   const char *name)
{
	for (struct scratch *s = ss->head; s; s = s->next)
		if (same(s, block, model, name))
			return s;
	return NULL;
}

struct scratch *scratch_get(struct scratches *ss, const char *block, const char *model,
			    const char *name)
{
	struct scratch *s;

	pthread_mutex_lock(&ss->lock);
	s = find_locked(ss, block, model, name);
	if (s)
		s->refs++;
	pthread_mutex_unlock(&ss->lock);
	return s;
}

/* Take s out of the list and give its bytes back (lock held). */
static void remove_locked(struct scratches *ss, struct scratch *s)
{
	struct scratch **p = &ss->head;

	while (*p && *p != s)
		p = &(*p)->next;
	if (*p)
		*p = s->next;
	ss->total -= s->cap;
}

void scratch_put(struct scratches *ss, struct scratch *s)
{
	int gone;

	if (!s)
		return;
	pthread_mutex_lock(&ss->lock);
	gone = --s->refs == 0 && !s->linked;
	if (gone)
		remove_locked(ss, s);
	pthread_mutex_unlock(&ss->lock);
	if (gone)
		scratch_free(s);
}

static void touch(struct scratch *s)
{
	clock_gettime(CLOCK_REALTIME, &s->mtime);
	s->ctime = s->mtime;
}

enum sh_err scratch_create(struct scratches *ss, const char *block, const char *model,
			   const char *name, mode_t mode, uid_t uid, gid_t gid, int excl,
			   struct scratch **out)
{
	struct scratch *s;

	if (strlen(name) > SCRATCH_NAME_MAX)
		return SH_ENAMETOOLONG;
	pthread_mutex_lock(&ss->lock);
	s = find_locked(ss, block, model, name);
	if (s) {
		s->refs += !excl;
		pthread_mutex_unlock(&ss->lock);
		*out = excl ? NULL : s;
		return excl ? SH_EEXIST : SH_OK;
	}
	s = calloc(1, sizeof(*s));
	if (!s || !(s->block = strdup(block)) || !(s->model = strdup(model)) ||
	    !(s->name = strdup(name))) {
		pthread_mutex_unlock(&ss->lock);
		if (s)
			scratch_free(s);
		return SH_ENOMEM;
	}
	pthread_mutex_init(&s->lock, NULL);
	s->mode = S_IFREG | (mode & 07777);
	s->uid = uid;
	s->gid = gid;
	s->refs = 1;
	s->linked = 1;
	touch(s);
	s->next = ss->head;
	ss->head = s;
	pthread_mutex_unlock(&ss->lock);
	*out = s;
	return SH_OK;
}

enum sh_err scratch_unlink(struct scratches *ss, const char *block, const char *model,
			   const char *name)
{
	struct scratch *s;
	int gone = 0;

	pthread_mutex_lock(&ss->lock);
	s = find_locked(ss, block, model, name);
	if (s) {
		s->linked = 0;
		gone = s->refs == 0;
		if (gone)
			remove_locked(ss, s);
	}
	pthread_mutex_unlock(&ss->lock);
	if (gone)
		scratch_free(s);
	return s ? SH_OK : SH_ENOENT;
}

enum sh_err scratch_rename(struct scratches *ss, const char *block, const char *model,
			   const char *from, const char *to)
{
	struct scratch *s, *victim;
	char *name;
	int gone = 0;

	if (strlen(to) > SCRATCH_NAME_MAX)
		return SH_ENAMETOOLONG;
	name = strdup(to);
	if (!name)
		return SH_ENOMEM;
	pthread_mutex_lock(&ss->lock);
	s = find_locked(ss, block, model, from);
	victim = s ? find_locked(ss, block, model, to) : NULL;
	if (victim && victim != s) {
		victim->linked = 0;
		gone = victim->refs == 0;
		if (gone)
			remove_locked(ss, victim);
	}
	if (s) {
		free(s->name);
		s->name = name;
		name = NULL;
	}
	pthread_mutex_unlock(&ss->lock);
	if (gone)
		scratch_free(victim);
	free(name);
	return s ? SH_OK : SH_ENOENT;
}

/* Grow s to hold n bytes within both caps. */
static enum sh_err reserve(struct scratches *ss, struct scratch *s, size_t n)
{
	size_t cap = s->cap ? s->cap : 256;
	char *grown;
	enum sh_err rc = SH_OK;

	if (n > ss->file_cap)
		return SH_ETOOBIG;
	if (n <= s->cap)
		return SH_OK;
	while (cap < n)
		cap *= 2;
	if (cap > ss->file_cap)
		cap = ss->file_cap;
	pthread_mutex_lock(&ss->lock);
	if (ss->total - s->cap + cap > ss->total_cap)
		rc = SH_ENOSPC;
	else if (!(grown = realloc(s->buf, cap)))
		rc = SH_ENOMEM;
	else {
		ss->total += cap - s->cap;
		s->buf = grown;
		s->cap = cap;
	}
	pthread_mutex_unlock(&ss->lock);
	return rc;
}

enum sh_err scratch_write(struct scratches *ss, struct scratch *s, const char *buf, size_t size,
			  off_t off)
{
	size_t end = (size_t)off + size;
	enum sh_err rc;

	pthread_mutex_lock(&s->lock);
	rc = reserve(ss, s, end);
	if (!rc) {
		if ((size_t)off > s->len)
			memset(s->buf + s->len, 0, (size_t)off - s->len);
		memcpy(s->buf + off, buf, size);
		if (end > s->len)
			s->len = end;
		touch(s);
	}
	pthread_mutex_unlock(&s->lock);
	return rc;
}

enum sh_err scratch_truncate(struct scratches *ss, struct scratch *s, off_t size)
{
	enum sh_err rc = SH_OK;

	pthread_mutex_lock(&s->lock);
	if ((size_t)size > s->len) {
		rc = reserve(ss, s, (size_t)size);
		if (!rc)
			memset(s->buf + s->len, 0, (size_t)size - s->len);
	}
	if (!rc) {
		s->len = (size_t)size;
		touch(s);
	}
	pthread_mutex_unlock(&s->lock);
	return rc;
}

char *scratch_copy(struct scratch *s, size_t *len)
{
	char *copy;

	pthread_mutex_lock(&s->lock);
	copy = malloc(s->len ? s->len : 1);
	if (copy) {
		if (s->len)
			memcpy(copy, s->buf, s->len);
		*len = s->len;
	}
	pthread_mutex_unlock(&s->lock);
	return copy;
}

void scratch_stat(struct scratch *s, uint64_t ino, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	pthread_mutex_lock(&s->lock);
	st->st_ino = ino;
	st->st_mode = s->mode;
	st->st_nlink = 1;
	st->st_uid = s->uid;
	st->st_gid = s->gid;
	st->st_size = (off_t)s->len;
	st->st_blocks = (st->st_size + 511) / 512;
	st->st_blksize = 4096;
	st->st_mtim = st->st_atim = s->mtime;
	st->st_ctim = s->ctime;
	pthread_mutex_unlock(&s->lock);
}

void scratch_list(struct scratches *ss, const char *block, const char *model,
		  void (*fn)(void *ctx, const char *name), void *ctx)
{
	pthread_mutex_lock(&ss->lock);
	for (struct scratch *s = ss->head; s; s = s->next)
		if (s->linked && strcmp(s->model, model) == 0 && strcmp(s->block, block) == 0)
			fn(ctx, s->name);
	pthread_mutex_unlock(&ss->lock);
}

void scratch_drop_block(struct scratches *ss, const char *block)
{
	struct scratch *dead = NULL;

	pthread_mutex_lock(&ss->lock);
	for (struct scratch **p = &ss->head; *p;) {
		struct scratch *s = *p;

		if (strcmp(s->block, block) == 0 && s->linked) {
			s->linked = 0;
			if (s->refs == 0) {
				*p = s->next;
				ss->total -= s->cap;
				s->next = dead;
				dead = s;
				continue;
			}
		}
		p = &s->next;
	}
	pthread_mutex_unlock(&ss->lock);
	while (dead) {
		struct scratch *next = dead->next;
		scratch_free(dead);
		dead = next;
	}
}
