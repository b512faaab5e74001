/* admin.c - operator actions on blocks, dead letters and Redis leftovers.
 *
 * Safety rules, in one place:
 * - The block file is only ever written through store_write() (a record write
 *   plus an outbox entry, one transaction), exactly like a user's write, so
 *   the running daemon relays it within its next pass. Nothing here touches
 *   the outbox otherwise.
 * - A dead letter leaves the dead stream only with XDEL of its own id, never
 *   with DEL of the stream, so a dead letter the daemon adds meanwhile stays.
 * - Deleting an ops stream never loses a write: an entry leaves a block's
 *   outbox only after PostgreSQL committed it, and the daemon re-sends the
 *   outbox when it finds its stream or group gone (NOGROUP) or after a while.
 *   Dead streams have no such copy, so they go only when asked to.
 * - From a live block's ops stream only acknowledged entries are deleted:
 *   ids up to the group's last-delivered-id (read first) that are not in the
 *   group's pending list (read second). An entry is delivered before it can be
 *   pending, and once acknowledged it cannot become pending again.
 */
#include "admin.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blocks.h"
#include "clock.h"
#include "doc.h"
#include "redis.h"
#include "store.h"

#define SUFFIX ".sqlite"
#define PAGE 500		/* entries per XRANGE / XPENDING / SCAN round trip */
#define XDEL_BATCH 100		/* ids per XDEL */
#define REDIS_ID_MAX 48

/* ---- small helpers ------------------------------------------------------ */

static enum sh_err check_block(const char *block, char *err, size_t errlen)
{
	char why[300];

	if (!block || block_id_check(block, why, sizeof(why)) != SH_OK) {
		snprintf(err, errlen, "%s", block ? why : "missing block id");
		return SH_EINVAL;
	}
	return SH_OK;
}

static char *block_path(const char *data_dir, const char *block)
{
	char *path;

	if (asprintf(&path, "%s/%s" SUFFIX, data_dir, block) < 0)
		return NULL;
	return path;
}

static bool block_exists(const char *data_dir, const char *block)
{
	char *path = block_path(data_dir, block);
	struct stat sb;
	bool yes = path && stat(path, &sb) == 0 && S_ISREG(sb.st_mode);

	free(path);
	return yes;
}

/* Open an existing block's file; SH_ENOENT when it has none. */
static enum sh_err open_store(const char *data_dir, const char *block, struct store **st,
			      char *err, size_t errlen)
{
	char *path = block_path(data_dir, block);
	struct stat sb;
	enum sh_err e;

	*st = NULL;
	if (!path) {
		snprintf(err, errlen, "out of memory");
		return SH_ENOMEM;
	}
	if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode)) {
		snprintf(err, errlen, "no block '%s' in '%s'", block, data_dir);
		free(path);
		return SH_ENOENT;
	}
	e = store_open(path, false, false, st);
	if (e)
		snprintf(err, errlen, "cannot open block file '%s': %s", path, sh_strerror(e));
	free(path);
	return e;
}

static int64_t meta_int(struct store *st, const char *key)
{
	char *v = NULL;
	int64_t n = 0;

	if (store_meta_get(st, key, &v) == SH_OK && v)
		n = strtoll(v, NULL, 10);
	free(v);
	return n;
}

/* Add by to an integer meta value, never going below 0. Not atomic with the
 * daemon's own read-modify-write of the same key; a race costs one count. */
/* Run a command; NULL with err set on a connection failure or an error reply. */
static redisReply *command(redisContext *rc, char *err, size_t errlen, int argc,
			   const char **argv)
{
	redisReply *r = redisCommandArgv(rc, argc, argv, NULL);

	if (!r) {
		snprintf(err, errlen, "redis %s failed: %s", argv[0],
			 rc->errstr[0] ? rc->errstr : "no reply");
		return NULL;
	}
	if (r->type == REDIS_REPLY_ERROR) {
		snprintf(err, errlen, "redis %s on '%s' failed: %s", argv[0],
			 argc > 1 ? argv[1] : "", r->str);
		freeReplyObject(r);
		return NULL;
	}
	return r;
}

static bool is_str(const redisReply *r)
{
	return r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS);
}

/* The value of field name in a flat [name, value, ...] array, or NULL. */
static const redisReply *field(const redisReply *fields, const char *name)
{
	for (size_t i = 0; i + 1 < fields->elements; i += 2)
		if (is_str(fields->element[i]) && strcmp(fields->element[i]->str, name) == 0)
			return fields->element[i + 1];
	return NULL;
}

static char *field_dup(const redisReply *fields, const char *name, bool *oom)
{
	const redisReply *v = field(fields, name);
	char *s;

	if (!is_str(v))
		return NULL;
	s = strdup(v->str);
	if (!s)
		*oom = true;
	return s;
}

/* ---- stream ids --------------------------------------------------------- */

static bool parse_id(const char *s, unsigned long long *ms, unsigned long long *n)
{
	char *end;

	if (!s || *s < '0' || *s > '9')
		return false;
	errno = 0;
	*ms = strtoull(s, &end, 10);
	*n = 0;
	if (errno)
		return false;
	if (*end == '-') {
		const char *p = end + 1;
		if (*p < '0' || *p > '9')
			return false;
		*n = strtoull(p, &end, 10);
		if (errno)
			return false;
	}
	return *end == '\0';
}

bool admin_stream_id_valid(const char *s)
{
	unsigned long long ms, n;

	return parse_id(s, &ms, &n);
}

int admin_stream_id_cmp(const char *a, const char *b)
{
	unsigned long long am = 0, an = 0, bm = 0, bn = 0;

	parse_id(a, &am, &an);
	parse_id(b, &bm, &bn);
	if (am != bm)
		return am < bm ? -1 : 1;
	if (an != bn)
		return an < bn ? -1 : 1;
	return 0;
}

static int id_cmp_qsort(const void *a, const void *b)
{
	return admin_stream_id_cmp(*(char *const *)a, *(char *const *)b);
}

static int str_cmp_qsort(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void free_strings(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* Append a copy of s to a growing array. */
static bool push_string(char ***v, size_t *n, size_t *cap, const char *s)
{
	char *copy;

	if (*n == *cap) {
		size_t c = *cap ? *cap * 2 : 64;
		char **grown = realloc(*v, c * sizeof(*grown));
		if (!grown)
			return false;
		*v = grown;
		*cap = c;
	}
	if (!(copy = strdup(s)))
		return false;
	(*v)[(*n)++] = copy;
	return true;
}

bool admin_key_parse(const char *key, char *block, size_t blocklen, char *what, size_t whatlen)
{
	static const char prefix[] = "sharded:{";
	const char *start, *close;
	size_t blen;

	if (strncmp(key, prefix, sizeof(prefix) - 1) != 0)
		return false;
	start = key + sizeof(prefix) - 1;
	/* the block id may itself hold "}:", so split at the last one */
	close = NULL;
	for (const char *p = strstr(start, "}:"); p; p = strstr(p + 1, "}:"))
		close = p;
	if (!close || close == start || !close[2])
		return false;
	blen = (size_t)(close - start);
	if (blen >= blocklen || strlen(close + 2) >= whatlen)
		return false;
	memcpy(block, start, blen);
	block[blen] = '\0';
	snprintf(what, whatlen, "%s", close + 2);
	return true;
}

bool admin_pick(const struct admin_dead *list, size_t n, const char *const *ids, size_t nids,
		size_t **idx, size_t *nidx, const char **missing)
{
	bool *want = calloc(n ? n : 1, sizeof(*want));

	*idx = NULL;
	*nidx = 0;
	*missing = NULL;
	if (!want)
		return false;
	for (size_t j = 0; j < nids; j++) {
		bool found = false;
		for (size_t i = 0; i < n && !found; i++) {
			if (admin_stream_id_cmp(list[i].id, ids[j]) == 0 &&
			    admin_stream_id_valid(ids[j])) {
				want[i] = true;
				found = true;
			}
		}
		if (!found) {
			*missing = ids[j];
			free(want);
			return false;
		}
	}
	*idx = malloc((n ? n : 1) * sizeof(**idx));
	if (!*idx) {
		free(want);
		return false;
	}
	for (size_t i = 0; i < n; i++)
		if (want[i])
			(*idx)[(*nidx)++] = i;
	free(want);
	return true;
}

/* ---- dead letters ------------------------------------------------------- */

void admin_dead_free(struct admin_dead *d, size_t n)
{
	if (!d)
		return;
	for (size_t i = 0; i < n; i++) {
		free(d[i].id);
		free(d[i].model);
		free(d[i].pk);
		free(d[i].error);
		free(d[i].doc);
	}
	free(d);
}

/* One XRANGE entry [id, [field, value, ...]]; false when out of memory. */
static bool parse_dead(const redisReply *e, struct admin_dead *d)
{
	const redisReply *f, *v;
	bool oom = false;

	memset(d, 0, sizeof(*d));
	if (!(d->id = strdup(e->element[0]->str)))
		return false;
	f = e->element[1];
	if (f->type != REDIS_REPLY_ARRAY)
		return true;
	v = field(f, "seq");
	if (is_str(v))
		d->seq = strtoll(v->str, NULL, 10);
	v = field(f, "op");
	if (is_str(v) && (op_kind_writes(v->str[0]) || v->str[0] == OP_DELETE) && !v->str[1])
		d->op = v->str[0];
	d->model = field_dup(f, "model", &oom);
	d->pk = field_dup(f, "pk", &oom);
	d->error = field_dup(f, "error", &oom);
	d->doc = field_dup(f, "doc", &oom);
	return !oom;
}

static bool entry_shape_ok(const redisReply *e)
{
	return e->type == REDIS_REPLY_ARRAY && e->elements == 2 && is_str(e->element[0]);
}

enum sh_err admin_dlq_list(redisContext *rc, const char *block, struct admin_dead **out,
			   size_t *n, char *err, size_t errlen)
{
	char key[REDIS_KEY_MAX], start[REDIS_ID_MAX + 2] = "-", count[16];
	struct admin_dead *list = NULL;
	size_t len = 0, cap = 0;
	enum sh_err e;

	*out = NULL;
	*n = 0;
	if ((e = check_block(block, err, errlen)))
		return e;
	redis_key(key, sizeof(key), block, "dead");
	snprintf(count, sizeof(count), "%d", PAGE);
	for (;;) {
		const char *argv[] = { "XRANGE", key, start, "+", "COUNT", count };
		redisReply *r = command(rc, err, errlen, 6, argv);
		size_t got;

		if (!r) {
			admin_dead_free(list, len);
			return SH_EUNAVAIL;
		}
		got = r->type == REDIS_REPLY_ARRAY ? r->elements : 0;
		if (len + got > cap) {
			struct admin_dead *grown = realloc(list, (len + got) * sizeof(*grown));
			if (!grown) {
				freeReplyObject(r);
				admin_dead_free(list, len);
				snprintf(err, errlen, "out of memory");
				return SH_ENOMEM;
			}
			list = grown;
			cap = len + got;
		}
		for (size_t i = 0; i < got; i++) {
			const redisReply *ent = r->element[i];
			if (!entry_shape_ok(ent))
				continue;
			if (!parse_dead(ent, &list[len])) {
				admin_dead_free(list, len + 1);
				freeReplyObject(r);
				snprintf(err, errlen, "out of memory");
				return SH_ENOMEM;
			}
			snprintf(start, sizeof(start), "(%s", list[len].id);
			len++;
		}
		freeReplyObject(r);
		if (got < PAGE)
			break;
	}
	*out = list;
	*n = len;
	return SH_OK;
}

/* The dead letters to act on: all, or those named (missing one: SH_ENOENT). */
static enum sh_err select_dead(const char *block, const struct admin_dead *list, size_t n,
			       const char *const *ids, size_t nids, size_t **idx, size_t *nidx,
			       char *err, size_t errlen)
{
	const char *missing;

	if (nids == 0) {
		*idx = malloc((n ? n : 1) * sizeof(**idx));
		if (!*idx) {
			snprintf(err, errlen, "out of memory");
			return SH_ENOMEM;
		}
		for (size_t i = 0; i < n; i++)
			(*idx)[i] = i;
		*nidx = n;
		return SH_OK;
	}
	for (size_t j = 0; j < nids; j++) {
		if (!admin_stream_id_valid(ids[j])) {
			snprintf(err, errlen, "malformed dead letter id '%s' (expected <ms>-<n>)",
				 ids[j]);
			return SH_EINVAL;
		}
	}
	if (!admin_pick(list, n, ids, nids, idx, nidx, &missing)) {
		if (!missing) {
			snprintf(err, errlen, "out of memory");
			return SH_ENOMEM;
		}
		snprintf(err, errlen, "no dead letter '%s' in block '%s'", missing, block);
		return SH_ENOENT;
	}
	return SH_OK;
}

/* XDEL ids from key; *deleted gets what Redis says it removed. */
static enum sh_err xdel(redisContext *rc, const char *key, char *const *ids, size_t n,
			size_t *deleted, char *err, size_t errlen)
{
	const char **argv = malloc((n + 2) * sizeof(*argv));
	redisReply *r;

	*deleted = 0;
	if (!argv) {
		snprintf(err, errlen, "out of memory");
		return SH_ENOMEM;
	}
	argv[0] = "XDEL";
	argv[1] = key;
	for (size_t i = 0; i < n; i++)
		argv[i + 2] = ids[i];
	r = command(rc, err, errlen, (int)(n + 2), argv);
	free(argv);
	if (!r)
		return SH_EUNAVAIL;
	if (r->type == REDIS_REPLY_INTEGER && r->integer > 0)
		*deleted = (size_t)r->integer;
	freeReplyObject(r);
	return SH_OK;
}

/* The identity of the file at path now; false when there is none. */
static bool file_id(const char *data_dir, const char *block, dev_t *dev, ino_t *ino)
{
	char *path = block_path(data_dir, block);
	struct stat sb;
	bool yes = path && stat(path, &sb) == 0;

	if (yes) {
		*dev = sb.st_dev;
		*ino = sb.st_ino;
	}
	free(path);
	return yes;
}

/* Is the file st wrote to still the block's file? rmdir unlinks it under
 * SQLite's write lock (store_remove_if_idle), so a write committed after
 * that went into a removed file and must not be taken as done. */
static bool still_the_file(const char *data_dir, const char *block, dev_t dev, ino_t ino)
{
	dev_t d;
	ino_t i;

	return file_id(data_dir, block, &d, &i) && d == dev && i == ino;
}

/*
 * Retry order and interruption: each dead letter is first written into the
 * block file (store_write: a new seq at the end of the outbox, so the
 * retried writes reach PostgreSQL in their original order and after
 * everything written before), and only then XDEL'd from the dead stream.
 * Interrupted between the two, the dead letter is still listed and a second
 * retry writes it once more: the record is written twice with the same
 * document, which is harmless for an upsert (the same row twice) and for a
 * delete (already gone). The opposite order could lose the write. A retry
 * writes the document as it was when it died, over any later change to that
 * record. A block removed (rmdir) during the retry: the write that went into
 * the removed file is not XDEL'd, the retry stops with SH_ENOENT and the dead
 * letter stays listed.
 */
/* store_merge_fn of a dead write sent again onto a record the block holds:
 * the record gets its columns laid over the copy, the outbox the dead
 * letter's document as it was (an update's columns, op.h). */
static enum sh_err retry_merge(void *ctx, const char *existing, char **doc, char **sent)
{
	const char *dead = ctx;

	*doc = existing ? doc_overlay(existing, dead) : strdup(dead);
	if (!*doc)
		return existing ? SH_EINVAL : SH_ENOMEM;
	if (existing && !(*sent = strdup(dead)))
		return SH_ENOMEM;
	return SH_OK;
}

/* Write dead letter d into the block again: a write onto the record the
 * block holds (a dead update may carry some columns only), else as it is. */
static enum sh_err retry_write(struct store *st, const struct admin_dead *d, int64_t *seq)
{
	char *held = NULL;

	if (!op_kind_writes(d->op))
		return store_write(st, d->model, d->pk, NULL, seq);
	if (store_get(st, d->model, d->pk, &held, NULL) != SH_OK)
		return store_write(st, d->model, d->pk, d->doc, seq);
	free(held);
	return store_write_merged(st, d->model, d->pk, retry_merge, (void *)d->doc, seq);
}

enum sh_err admin_dlq_retry(redisContext *rc, const char *data_dir, const char *block,
			    const char *const *ids, size_t nids, admin_progress_fn progress,
			    void *ctx, size_t *done, char *err, size_t errlen)
{
	char key[REDIS_KEY_MAX];
	struct admin_dead *list = NULL;
	struct store *st = NULL;
	size_t n = 0, *idx = NULL, nidx = 0;
	dev_t dev = 0;
	ino_t ino = 0;
	enum sh_err e;

	*done = 0;
	if ((e = check_block(block, err, errlen)) || (e = open_store(data_dir, block, &st, err, errlen)))
		return e;
	if (!file_id(data_dir, block, &dev, &ino)) {
		snprintf(err, errlen, "block '%s' was removed", block);
		store_close(st);
		return SH_ENOENT;
	}
	e = admin_dlq_list(rc, block, &list, &n, err, errlen);
	if (!e)
		e = select_dead(block, list, n, ids, nids, &idx, &nidx, err, errlen);
	redis_key(key, sizeof(key), block, "dead");
	for (size_t i = 0; !e && i < nidx; i++) {
		const struct admin_dead *d = &list[idx[i]];
		int64_t seq;
		size_t deleted;

		if (!d->model || !d->pk || !d->op || (op_kind_writes(d->op) && !d->doc)) {
			snprintf(err, errlen, "dead letter '%s' of block '%s' lacks its model, key"
				 " or document; stopped before it", d->id, block);
			e = SH_EINVAL;
			break;
		}
		e = retry_write(st, d, &seq);
		if (e) {
			snprintf(err, errlen, "cannot write dead letter '%s' into block '%s': %s",
				 d->id, block, sh_strerror(e));
			break;
		}
		if (!still_the_file(data_dir, block, dev, ino)) {
			snprintf(err, errlen, "block '%s' was removed during the retry; dead letter"
				 " '%s' and those after it are kept", block, d->id);
			e = SH_ENOENT;
			break;
		}
		e = xdel(rc, key, &d->id, 1, &deleted, err, errlen);
		if (e)
			break;
		if (deleted)
			store_meta_add(st, "dead_total", -(int64_t)deleted);
		(*done)++;
		if (progress)
			progress(ctx, *done, nidx);
	}
	free(idx);
	admin_dead_free(list, n);
	store_close(st);
	return e;
}

enum sh_err admin_dlq_drop(redisContext *rc, const char *data_dir, const char *block,
			   const char *const *ids, size_t nids, admin_progress_fn progress,
			   void *ctx, size_t *done, char *err, size_t errlen)
{
	char key[REDIS_KEY_MAX];
	struct admin_dead *list = NULL;
	struct store *st = NULL;
	size_t n = 0, *idx = NULL, nidx = 0, dropped = 0;
	char **batch = NULL;
	enum sh_err e;

	*done = 0;
	if ((e = check_block(block, err, errlen)))
		return e;
	e = admin_dlq_list(rc, block, &list, &n, err, errlen);
	if (!e)
		e = select_dead(block, list, n, ids, nids, &idx, &nidx, err, errlen);
	if (!e && !(batch = malloc(XDEL_BATCH * sizeof(*batch)))) {
		snprintf(err, errlen, "out of memory");
		e = SH_ENOMEM;
	}
	redis_key(key, sizeof(key), block, "dead");
	for (size_t i = 0; !e && i < nidx; i += XDEL_BATCH) {
		size_t m = nidx - i < XDEL_BATCH ? nidx - i : XDEL_BATCH, deleted;

		for (size_t j = 0; j < m; j++)
			batch[j] = list[idx[i + j]].id;
		e = xdel(rc, key, batch, m, &deleted, err, errlen);
		if (e)
			break;
		dropped += deleted;
		*done += deleted;
		if (progress)
			progress(ctx, i + m, nidx);
	}
	/* count them off, even after a partial failure; the block may have no file */
	if (dropped && block_exists(data_dir, block)) {
		char e2[256];
		if (open_store(data_dir, block, &st, e2, sizeof(e2)) == SH_OK)
			store_meta_add(st, "dead_total", -(int64_t)dropped);
		store_close(st);
	}
	free(batch);
	free(idx);
	admin_dead_free(list, n);
	return e;
}

/* ---- status ------------------------------------------------------------- */

void admin_status_free(struct admin_status *s, size_t n)
{
	if (!s)
		return;
	for (size_t i = 0; i < n; i++)
		free(s[i].block);
	free(s);
}

static enum sh_err block_status(const char *data_dir, const char *block, struct admin_status *s,
				char *err, size_t errlen)
{
	struct store_stats stats;
	struct store *st;
	enum sh_err e;
	int64_t now = clock_wall_ns();

	memset(s, 0, sizeof(*s));
	if ((e = open_store(data_dir, block, &st, err, errlen)))
		return e;
	memset(&stats, 0, sizeof(stats));
	e = store_stats(st, &stats);
	if (e) {
		snprintf(err, errlen, "cannot read block '%s': %s", block, sh_strerror(e));
	} else if (!(s->block = strdup(block))) {
		snprintf(err, errlen, "out of memory");
		e = SH_ENOMEM;
	} else {
		s->pending = stats.pending;
		s->records = stats.records;
		s->applied = meta_int(st, "applied_total");
		s->dead = meta_int(st, "dead_total");
		s->last_sync_ns = meta_int(st, "last_sync_ns");
		s->lag_ms = stats.oldest_pending_ns && now > stats.oldest_pending_ns ?
			    (now - stats.oldest_pending_ns) / 1000000 : 0;
	}
	store_close(st);
	return e;
}

/* The block ids of data_dir, sorted. */
static enum sh_err list_blocks(const char *data_dir, char ***out, size_t *n, char *err,
			       size_t errlen)
{
	DIR *d = opendir(data_dir);
	struct dirent *de;
	char **ids = NULL, why[300];
	size_t len = 0, cap = 0;

	*out = NULL;
	*n = 0;
	if (!d) {
		int en = errno;
		snprintf(err, errlen, "cannot read data directory '%s': %s", data_dir, strerror(en));
		return en == ENOENT ? SH_ENOENT : SH_EIO;
	}
	while ((de = readdir(d))) {
		size_t l = strlen(de->d_name);
		char id[NAME_MAX + 1];

		if (l <= strlen(SUFFIX) || strcmp(de->d_name + l - strlen(SUFFIX), SUFFIX) != 0)
			continue;
		snprintf(id, sizeof(id), "%.*s", (int)(l - strlen(SUFFIX)), de->d_name);
		if (block_id_check(id, why, sizeof(why)) != SH_OK)
			continue;
		if (!push_string(&ids, &len, &cap, id)) {
			closedir(d);
			free_strings(ids, len);
			snprintf(err, errlen, "out of memory");
			return SH_ENOMEM;
		}
	}
	closedir(d);
	if (len)
		qsort(ids, len, sizeof(*ids), str_cmp_qsort);
	*out = ids;
	*n = len;
	return SH_OK;
}

enum sh_err admin_status(const char *data_dir, const char *block, struct admin_status **out,
			 size_t *n, char *err, size_t errlen)
{
	struct admin_status *res;
	char **ids = NULL;
	size_t nids = 0, len = 0;
	enum sh_err e;

	*out = NULL;
	*n = 0;
	if (block) {
		if ((e = check_block(block, err, errlen)))
			return e;
		if (!(res = calloc(1, sizeof(*res)))) {
			snprintf(err, errlen, "out of memory");
			return SH_ENOMEM;
		}
		if ((e = block_status(data_dir, block, res, err, errlen))) {
			free(res);
			return e;
		}
		*out = res;
		*n = 1;
		return SH_OK;
	}
	if ((e = list_blocks(data_dir, &ids, &nids, err, errlen)))
		return e;
	res = calloc(nids ? nids : 1, sizeof(*res));
	if (!res) {
		free_strings(ids, nids);
		snprintf(err, errlen, "out of memory");
		return SH_ENOMEM;
	}
	for (size_t i = 0; i < nids; i++) {
		e = block_status(data_dir, ids[i], &res[len], err, errlen);
		if (e == SH_ENOENT)
			continue;	/* removed since the directory was read */
		if (e) {
			admin_status_free(res, len);
			free_strings(ids, nids);
			return e;
		}
		len++;
	}
	free_strings(ids, nids);
	*out = res;
	*n = len;
	return SH_OK;
}

/* ---- cleanup ------------------------------------------------------------ */

/* Every key matching sharded:{*}:*, by SCAN (never KEYS), sorted, unique. */
static enum sh_err scan_keys(redisContext *rc, char ***out, size_t *n, char *err, size_t errlen)
{
	char cursor[32] = "0", count[16];
	char **keys = NULL;
	size_t len = 0, cap = 0, w = 0;

	snprintf(count, sizeof(count), "%d", PAGE);
	do {
		const char *argv[] = { "SCAN", cursor, "MATCH", "sharded:{*}:*", "COUNT", count };
		redisReply *r = command(rc, err, errlen, 6, argv);
		const redisReply *list;

		if (!r) {
			free_strings(keys, len);
			return SH_EUNAVAIL;
		}
		if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 || !is_str(r->element[0]) ||
		    r->element[1]->type != REDIS_REPLY_ARRAY) {
			freeReplyObject(r);
			free_strings(keys, len);
			snprintf(err, errlen, "redis SCAN: unexpected reply");
			return SH_EREMOTE;
		}
		snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
		list = r->element[1];
		for (size_t i = 0; i < list->elements; i++) {
			if (is_str(list->element[i]) &&
			    !push_string(&keys, &len, &cap, list->element[i]->str)) {
				freeReplyObject(r);
				free_strings(keys, len);
				snprintf(err, errlen, "out of memory");
				return SH_ENOMEM;
			}
		}
		freeReplyObject(r);
	} while (strcmp(cursor, "0") != 0);
	if (len)
		qsort(keys, len, sizeof(*keys), str_cmp_qsort);
	for (size_t i = 0; i < len; i++) {	/* SCAN may return a key twice */
		if (w && strcmp(keys[w - 1], keys[i]) == 0)
			free(keys[i]);
		else
			keys[w++] = keys[i];
	}
	*out = keys;
	*n = w;
	return SH_OK;
}

/* TYPE of key into buf ("none" when gone). */
static enum sh_err key_type(redisContext *rc, const char *key, char *buf, size_t len, char *err,
			    size_t errlen)
{
	const char *argv[] = { "TYPE", key };
	redisReply *r = command(rc, err, errlen, 2, argv);

	if (!r)
		return SH_EUNAVAIL;
	snprintf(buf, len, "%s", is_str(r) ? r->str : "none");
	freeReplyObject(r);
	return SH_OK;
}

/* The group's last-delivered-id into ld; false (ld "") when there is no group. */
static enum sh_err last_delivered(redisContext *rc, const char *key, char *ld, size_t len,
				  char *err, size_t errlen)
{
	const char *argv[] = { "XINFO", "GROUPS", key };
	redisReply *r = redisCommandArgv(rc, 3, argv, NULL);

	ld[0] = '\0';
	if (!r) {
		snprintf(err, errlen, "redis XINFO failed: %s", rc->errstr[0] ? rc->errstr : "no reply");
		return SH_EUNAVAIL;
	}
	if (r->type == REDIS_REPLY_ERROR) {	/* the key went away meanwhile */
		freeReplyObject(r);
		return SH_OK;
	}
	for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
		const redisReply *g = r->element[i], *name, *id;

		if (g->type != REDIS_REPLY_ARRAY)
			continue;
		name = field(g, "name");
		id = field(g, "last-delivered-id");
		if (is_str(name) && strcmp(name->str, REDIS_GROUP) == 0 && is_str(id))
			snprintf(ld, len, "%s", id->str);
	}
	freeReplyObject(r);
	return SH_OK;
}

/* The ids pending in the group, sorted. */
static enum sh_err pending_ids(redisContext *rc, const char *key, char ***out, size_t *n,
			       char *err, size_t errlen)
{
	char start[REDIS_ID_MAX + 2] = "-", count[16];
	char **ids = NULL;
	size_t len = 0, cap = 0;

	snprintf(count, sizeof(count), "%d", PAGE);
	for (;;) {
		const char *argv[] = { "XPENDING", key, REDIS_GROUP, start, "+", count };
		redisReply *r = command(rc, err, errlen, 6, argv);
		size_t got;

		if (!r) {
			free_strings(ids, len);
			return SH_EUNAVAIL;
		}
		got = r->type == REDIS_REPLY_ARRAY ? r->elements : 0;
		for (size_t i = 0; i < got; i++) {
			const redisReply *p = r->element[i];
			if (p->type != REDIS_REPLY_ARRAY || p->elements < 1 || !is_str(p->element[0]))
				continue;
			if (!push_string(&ids, &len, &cap, p->element[0]->str)) {
				freeReplyObject(r);
				free_strings(ids, len);
				snprintf(err, errlen, "out of memory");
				return SH_ENOMEM;
			}
			snprintf(start, sizeof(start), "(%s", p->element[0]->str);
		}
		freeReplyObject(r);
		if (got < PAGE)
			break;
	}
	if (len)
		qsort(ids, len, sizeof(*ids), id_cmp_qsort);
	*out = ids;
	*n = len;
	return SH_OK;
}

/* Delete the acknowledged entries of a live block's ops stream; see the top. */
static enum sh_err trim_acked(redisContext *rc, const char *key, bool dry_run, size_t *deleted,
			      char *err, size_t errlen)
{
	char ld[REDIS_ID_MAX], start[REDIS_ID_MAX + 2] = "-", count[16];
	char **pending = NULL, **batch = NULL;
	size_t npending = 0, nbatch = 0;
	enum sh_err e;

	*deleted = 0;
	if ((e = last_delivered(rc, key, ld, sizeof(ld), err, errlen)) || !ld[0] ||
	    !admin_stream_id_valid(ld) || admin_stream_id_cmp(ld, "0-0") == 0)
		return e;
	if ((e = pending_ids(rc, key, &pending, &npending, err, errlen)))
		return e;
	if (!(batch = malloc(XDEL_BATCH * sizeof(*batch)))) {
		free_strings(pending, npending);
		snprintf(err, errlen, "out of memory");
		return SH_ENOMEM;
	}
	snprintf(count, sizeof(count), "%d", PAGE);
	for (;;) {
		const char *argv[] = { "XRANGE", key, start, ld, "COUNT", count };
		redisReply *r = command(rc, err, errlen, 6, argv);
		size_t got;

		if (!r) {
			e = SH_EUNAVAIL;
			break;
		}
		got = r->type == REDIS_REPLY_ARRAY ? r->elements : 0;
		nbatch = 0;
		for (size_t i = 0; !e && i < got; i++) {
			const redisReply *ent = r->element[i];
			char *id;

			if (!entry_shape_ok(ent))
				continue;
			id = ent->element[0]->str;
			snprintf(start, sizeof(start), "(%s", id);
			if (npending && bsearch(&id, pending, npending, sizeof(*pending), id_cmp_qsort))
				continue;	/* not acknowledged: keep */
			batch[nbatch++] = id;
			if (nbatch == XDEL_BATCH) {
				size_t d = nbatch;
				if (!dry_run)
					e = xdel(rc, key, batch, nbatch, &d, err, errlen);
				*deleted += d;
				nbatch = 0;
			}
		}
		if (!e && nbatch) {
			size_t d = nbatch;
			if (!dry_run)
				e = xdel(rc, key, batch, nbatch, &d, err, errlen);
			*deleted += d;
		}
		freeReplyObject(r);
		if (e || got < PAGE)
			break;
	}
	free(batch);
	free_strings(pending, npending);
	return e;
}

/* A stream of a block without a file here goes once nothing in it can still
 * be needed: it is empty, or its newest entry is older than this. Whoever
 * holds the block (another node) re-sends what it has not applied every 30 s
 * while PostgreSQL is up, and its whole outbox when the stream is gone, so
 * an old stream costs no write; a fresh one may be a live node's entries,
 * or a dead node's that another node is about to take over. */
#define STREAM_STALE_MS (10LL * 60 * 1000)

/* DEL key if it is empty or its newest entry's id is older than stale_ms
 * (Unix ms), atomically: an XADD of another node cannot land between the
 * check and the delete. */
static enum sh_err del_if_stale(redisContext *rc, const char *key, int64_t stale_ms, bool dry_run,
				bool *dropped, char *err, size_t errlen)
{
	static const char script[] =
		"local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1) "
		"if #last > 0 and tonumber(string.match(last[1][1], '^%d+')) >= tonumber(ARGV[1]) "
		"then return 0 end "
		"if ARGV[2] == '1' then return 1 end "
		"return redis.call('DEL', KEYS[1])";
	char before[24];
	const char *argv[] = { "EVAL", script, "1", key, before, dry_run ? "1" : "0" };
	redisReply *r;

	snprintf(before, sizeof(before), "%lld", (long long)stale_ms);
	*dropped = false;
	if (!(r = command(rc, err, errlen, 6, argv)))
		return SH_EUNAVAIL;
	*dropped = r->type == REDIS_REPLY_INTEGER && r->integer > 0;
	freeReplyObject(r);
	return SH_OK;
}

enum sh_err admin_drop_stream(redisContext *rc, const char *key, bool dry_run,
			      size_t *entries_deleted, bool *dropped, char *err, size_t errlen)
{
	enum sh_err e = trim_acked(rc, key, dry_run, entries_deleted, err, errlen);

	*dropped = false;
	if (e)
		return e;
	/* a dry run trimmed nothing: the acknowledged entries still count */
	return del_if_stale(rc, key, clock_wall_ns() / 1000000 - STREAM_STALE_MS, dry_run, dropped,
			    err, errlen);
}

static enum sh_err del_key(redisContext *rc, const char *key, bool dry_run, size_t *count,
			   char *err, size_t errlen)
{
	const char *argv[] = { "DEL", key };
	redisReply *r;

	if (dry_run) {
		(*count)++;
		return SH_OK;
	}
	if (!(r = command(rc, err, errlen, 2, argv)))
		return SH_EUNAVAIL;
	if (r->type == REDIS_REPLY_INTEGER && r->integer > 0)
		(*count)++;
	freeReplyObject(r);
	return SH_OK;
}

enum sh_err admin_cleanup(redisContext *rc, const char *data_dir, bool include_dead, bool dry_run,
			  admin_progress_fn progress, void *ctx, struct admin_cleanup_result *res,
			  char *err, size_t errlen)
{
	char **keys = NULL;
	size_t n = 0;
	enum sh_err e = SH_OK;
	DIR *d;

	memset(res, 0, sizeof(*res));
	/* A data directory that is not there would make every block look deleted. */
	if (!(d = opendir(data_dir))) {
		int en = errno;
		snprintf(err, errlen, "cannot read data directory '%s': %s", data_dir, strerror(en));
		return en == ENOENT ? SH_ENOENT : SH_EIO;
	}
	closedir(d);
	if ((e = scan_keys(rc, &keys, &n, err, errlen)))
		return e;
	res->keys_seen = n;
	for (size_t i = 0; !e && i < n; i++) {
		char block[BLOCK_ID_MAX + 1], what[16], why[300], type[32];

		if (!admin_key_parse(keys[i], block, sizeof(block), what, sizeof(what)) ||
		    (strcmp(what, "ops") != 0 && strcmp(what, "dead") != 0) ||
		    block_id_check(block, why, sizeof(why)) != SH_OK) {
			res->skipped++;
		} else if ((e = key_type(rc, keys[i], type, sizeof(type), err, errlen))) {
			break;
		} else if (strcmp(type, "stream") != 0) {
			res->skipped++;	/* not ours, or gone meanwhile */
		} else if (block_exists(data_dir, block)) {
			size_t deleted = 0;
			if (strcmp(what, "ops") == 0)
				e = trim_acked(rc, keys[i], dry_run, &deleted, err, errlen);
			res->entries_deleted += deleted;
		} else if (strcmp(what, "ops") == 0) {
			size_t deleted = 0;
			bool dropped = false;

			e = admin_drop_stream(rc, keys[i], dry_run, &deleted, &dropped, err, errlen);
			res->entries_deleted += deleted;
			if (dropped)
				res->ops_deleted++;
			else
				res->ops_kept++;
		} else if (include_dead) {
			e = del_key(rc, keys[i], dry_run, &res->dead_deleted, err, errlen);
		} else {
			res->dead_kept++;
		}
		if (progress)
			progress(ctx, i + 1, n);
	}
	free_strings(keys, n);
	return e;
}

/* ---- the mount ---------------------------------------------------------- */

/* Undo mountinfo's octal escapes (\040 for a space) in place. */
static void unescape_mountinfo(char *s)
{
	char *w = s;

	for (char *p = s; *p; p++) {
		if (p[0] == '\\' && p[1] >= '0' && p[1] <= '7' && p[2] >= '0' && p[2] <= '7' &&
		    p[3] >= '0' && p[3] <= '7') {
			*w++ = (char)((p[1] - '0') * 64 + (p[2] - '0') * 8 + (p[3] - '0'));
			p += 3;
		} else {
			*w++ = *p;
		}
	}
	*w = '\0';
}

/* Is dir (a canonical path) the mount point of a FUSE filesystem? A line of
 * mountinfo: id parent major:minor root mountpoint options [optional...] - type ... */
static bool is_fuse_mount(const char *dir)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char *line = NULL;
	size_t cap = 0;
	bool found = false;

	if (!f)
		return false;
	while (!found && getline(&line, &cap, f) > 0) {
		char *sep = strstr(line, " - "), *p = line, *end;

		if (!sep)
			continue;
		for (int i = 0; i < 4 && p; i++) {	/* skip to the fifth field */
			p = strchr(p, ' ');
			if (p)
				p++;
		}
		if (!p || !(end = strchr(p, ' ')) || end > sep)
			continue;
		*end = '\0';
		unescape_mountinfo(p);
		found = strcmp(p, dir) == 0 && strncmp(sep + 3, "fuse", 4) == 0;
	}
	free(line);
	fclose(f);
	return found;
}

enum sh_err admin_invalidate(const char *mount, const char *block, char *err, size_t errlen)
{
	char real[PATH_MAX], *path = NULL;
	enum sh_err e;
	int fd;

	if ((e = check_block(block, err, errlen)))
		return e;
	if (!realpath(mount, real)) {
		int en = errno;
		snprintf(err, errlen, "cannot reach mount point '%s': %s", mount, strerror(en));
		return en == ENOENT ? SH_ENOENT : SH_EIO;
	}
	if (!is_fuse_mount(real)) {
		snprintf(err, errlen, "no sharded filesystem is mounted at '%s'", mount);
		return SH_ENOENT;
	}
	if (asprintf(&path, "%s/%s/invalidate", real, block) < 0) {
		snprintf(err, errlen, "out of memory");
		return SH_ENOMEM;
	}
	fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
	if (fd < 0) {
		int en = errno;
		if (en == ENOENT)
			snprintf(err, errlen, "no block '%s' at '%s'", block, mount);
		else
			snprintf(err, errlen, "cannot open '%s': %s", path, strerror(en));
		e = en == ENOENT ? SH_ENOENT : SH_EIO;
	} else {
		ssize_t w = write(fd, "1\n", 2);
		int werr = errno;

		if (close(fd) != 0 && w == 2) {
			w = -1;
			werr = errno;
		}
		if (w != 2) {
			snprintf(err, errlen, "cannot invalidate block '%s': %s", block,
				 strerror(w < 0 ? werr : EIO));
			e = SH_EIO;
		}
	}
	free(path);
	return e;
}
