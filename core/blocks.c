/* blocks.c - the block registry: a sorted array of counted blocks. */
#include "blocks.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/file.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"

#define SUFFIX ".sqlite"

struct blockset {
	char *dir;
	int lock_fd;		/* <dir>/.lock, flock()ed while open: one daemon per directory */
	bool sync_full;
	pthread_rwlock_t lock;
	struct block **blocks;	/* sorted by id */
	size_t n, cap;
};

/* Length of the UTF-8 sequence at p (RFC 3629: no overlong forms, no
 * surrogates, nothing above U+10FFFF), 0 when it is not one; *cp gets the
 * code point. PostgreSQL refuses anything else in a text value. */
static size_t utf8_char(const unsigned char *p, uint32_t *cp)
{
	size_t n;
	uint32_t c;

	if (p[0] < 0x80) {
		*cp = p[0];
		return 1;
	}
	if (p[0] >= 0xc2 && p[0] <= 0xdf) {
		n = 2;
		c = p[0] & 0x1f;
	} else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		n = 3;
		c = p[0] & 0x0f;
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		n = 4;
		c = p[0] & 0x07;
	} else {
		return 0;
	}
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;	/* also stops at the terminating NUL */
		c = c << 6 | (p[i] & 0x3f);
	}
	if ((n == 3 && c < 0x800) || (n == 4 && (c < 0x10000 || c > 0x10ffff)) ||
	    (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return n;
}

enum sh_err block_id_check(const char *id, char *why, size_t whylen)
{
	size_t len = strlen(id);

	if (len == 0 || len > BLOCK_ID_MAX) {
		snprintf(why, whylen, "block id must be 1 to %d bytes", BLOCK_ID_MAX);
		return len ? SH_ENAMETOOLONG : SH_EINVAL;
	}
	if (id[0] == '.' || strchr(id, '/')) {
		snprintf(why, whylen, "block id '%s' may not start with '.' or contain '/'", id);
		return SH_EINVAL;
	}
	for (const unsigned char *p = (const unsigned char *)id; *p;) {
		uint32_t c;
		size_t n = utf8_char(p, &c);

		if (!n) {
			snprintf(why, whylen, "block id is not valid UTF-8 (byte 0x%02x at %zu)",
				 *p, (size_t)(p - (const unsigned char *)id));
			return SH_EINVAL;
		}
		if (c < 0x20 || (c >= 0x7f && c <= 0x9f)) {
			snprintf(why, whylen, "block id has a control character (U+%04X at %zu)",
				 (unsigned)c, (size_t)(p - (const unsigned char *)id));
			return SH_EINVAL;
		}
		p += n;
	}
	return SH_OK;
}

static char *block_path(const struct blockset *bs, const char *id)
{
	char *path;

	if (asprintf(&path, "%s/%s" SUFFIX, bs->dir, id) < 0)
		return NULL;
	return path;
}

static void block_free(struct block *b)
{
	store_close(b->store);
	pthread_rwlock_destroy(&b->life);
	pthread_mutex_destroy(&b->state_lock);
	pthread_cond_destroy(&b->state_cond);
	free(b->id);
	free(b);
}

void block_put(struct block *b)
{
	if (b && atomic_fetch_sub(&b->refs, 1) == 1)
		block_free(b);
}

/* Binary search; returns the index of id or where it would go. */
static size_t find(const struct blockset *bs, const char *id, bool *found)
{
	size_t lo = 0, hi = bs->n;

	*found = false;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(bs->blocks[mid]->id, id);

		if (c == 0) {
			*found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static enum sh_err insert_at(struct blockset *bs, size_t at, struct block *b)
{
	if (bs->n == bs->cap) {
		size_t cap = bs->cap ? bs->cap * 2 : 16;
		struct block **grown = realloc(bs->blocks, cap * sizeof(*grown));

		if (!grown)
			return SH_ENOMEM;
		bs->blocks = grown;
		bs->cap = cap;
	}
	memmove(&bs->blocks[at + 1], &bs->blocks[at], (bs->n - at) * sizeof(*bs->blocks));
	bs->blocks[at] = b;
	bs->n++;
	return SH_OK;
}

/* A block file that could not be made (a full disk): nothing of it may stay,
 * or it would come back as a block at the next mount. */
static void unlink_new_files(const char *path)
{
	static const char *const suffixes[] = { "", "-wal", "-shm", "-journal" };
	char buf[4096];

	for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
		snprintf(buf, sizeof(buf), "%s%s", path, suffixes[i]);
		if (unlink(buf) != 0 && errno != ENOENT)
			sh_log(LOG_WARNING, "cannot remove '%s': %s", buf, strerror(errno));
	}
}

/* Open block id's file; the registry holds the one reference. */
static enum sh_err open_block(struct blockset *bs, const char *id, bool create, struct block **out)
{
	char *path = block_path(bs, id);
	struct block *b = calloc(1, sizeof(*b));
	enum sh_err err = SH_ENOMEM;
	struct stat sb;

	if (path && b && (b->id = strdup(id))) {
		bool existed = stat(path, &sb) == 0;

		err = store_open(path, create, bs->sync_full, &b->store);
		if (err && create && !existed)
			unlink_new_files(path);
		pthread_rwlock_init(&b->life, NULL);
		pthread_mutex_init(&b->state_lock, NULL);
		pthread_cond_init(&b->state_cond, NULL);
		b->state = create ? BLOCK_LOADING : BLOCK_READY;
		atomic_init(&b->load_total, -1);
		atomic_init(&b->refs, 1);
		atomic_init(&b->last_access_ns, clock_wall_ns());
	}
	free(path);
	if (err) {
		if (b) {
			if (b->id) {
				pthread_rwlock_destroy(&b->life);
				pthread_mutex_destroy(&b->state_lock);
				pthread_cond_destroy(&b->state_cond);
			}
			free(b->id);
		}
		free(b);
		return err;
	}
	*out = b;
	return SH_OK;
}

static enum sh_err add_existing(struct blockset *bs, const char *fname)
{
	size_t len = strlen(fname), slen = strlen(SUFFIX);
	char id[BLOCK_ID_MAX + 1], why[128], *mark = NULL;
	struct block *b;
	bool found;
	size_t at;
	enum sh_err err;

	if (len <= slen || len - slen > BLOCK_ID_MAX || strcmp(fname + len - slen, SUFFIX) != 0)
		return SH_OK;
	snprintf(id, sizeof(id), "%.*s", (int)(len - slen), fname);
	if (block_id_check(id, why, sizeof(why)) != SH_OK) {
		/* never opened: its writes could not reach PostgreSQL or Redis */
		sh_log(LOG_ERR, "data directory '%s': file '%s' refused, not opened: %s;"
		       " rename or remove it", bs->dir, fname, why);
		return SH_OK;
	}
	err = open_block(bs, id, false, &b);
	if (err) {
		sh_log(LOG_ERR, "block '%s': cannot open its file: %s", id, sh_strerror(err));
		return err;
	}
	if (store_meta_get(b->store, "retiring", &mark) == SH_OK) {	/* rmdir'd, still sending */
		atomic_store(&b->removed, true);
		atomic_store(&b->retiring, true);
	}
	free(mark);
	at = find(bs, id, &found);
	err = insert_at(bs, at, b);
	if (err)
		block_put(b);
	return err;
}

/* Take the directory's lock; SH_EBUSY when another process holds it. */
static enum sh_err lock_dir(struct blockset *bs)
{
	char path[4096], pid[24];
	int n;

	snprintf(path, sizeof(path), "%s/.lock", bs->dir);
	bs->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (bs->lock_fd < 0) {
		sh_log(LOG_ERR, "data directory '%s': %s", bs->dir, strerror(errno));
		return SH_EIO;
	}
	if (flock(bs->lock_fd, LOCK_EX | LOCK_NB) != 0)
		return errno == EWOULDBLOCK ? SH_EBUSY : SH_EIO;
	n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (ftruncate(bs->lock_fd, 0) != 0 || write(bs->lock_fd, pid, (size_t)n) != n)
		sh_log(LOG_WARNING, "data directory '%s': cannot note the pid in .lock", bs->dir);
	return SH_OK;
}

static enum sh_err scan(struct blockset *bs)
{
	DIR *d = opendir(bs->dir);
	struct dirent *de;
	enum sh_err err = SH_OK;

	if (!d) {
		sh_log(LOG_ERR, "data directory '%s': %s", bs->dir, strerror(errno));
		return SH_EIO;
	}
	while (!err && (de = readdir(d)))
		err = add_existing(bs, de->d_name);
	closedir(d);
	return err;
}

enum sh_err blockset_open(const char *data_dir, bool sync_full, struct blockset **out)
{
	struct blockset *bs = calloc(1, sizeof(*bs));
	char abs[PATH_MAX];
	enum sh_err err;

	*out = NULL;
	if (!bs || !(bs->dir = strdup(data_dir))) {
		free(bs);
		return SH_ENOMEM;
	}
	bs->sync_full = sync_full;
	bs->lock_fd = -1;
	pthread_rwlock_init(&bs->lock, NULL);
	if (mkdir(data_dir, 0700) != 0 && errno != EEXIST) {
		sh_log(LOG_ERR, "data directory '%s': %s", data_dir, strerror(errno));
		blockset_close(bs);
		return SH_EIO;
	}
	if (!realpath(data_dir, abs)) {	/* the daemon's chdir("/") must not move it */
		sh_log(LOG_ERR, "data directory '%s': %s", data_dir, strerror(errno));
		blockset_close(bs);
		return SH_EIO;
	}
	free(bs->dir);
	if (!(bs->dir = strdup(abs))) {
		blockset_close(bs);
		return SH_ENOMEM;
	}
	err = lock_dir(bs);
	if (!err)
		err = scan(bs);
	if (err) {
		blockset_close(bs);
		return err;
	}
	for (size_t i = 0; i < bs->n; i++)	/* no connection open across a fork */
		store_park(bs->blocks[i]->store, true);
	*out = bs;
	return SH_OK;
}

/* SQLite's file locks belong to the process that took them and are not
 * inherited by a child, and a connection must not cross a fork: after the
 * daemon forks, every block's connection opened since blockset_open is
 * closed, to be opened by this process on first use, so that another process
 * (sharded status, sqlite3 .backup) sees its locks. */
enum sh_err blockset_reopen(struct blockset *bs)
{
	char pid[24];
	int n;

	for (size_t i = 0; i < bs->n; i++)
		store_park(bs->blocks[i]->store, false);
	n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (bs->lock_fd >= 0 && (ftruncate(bs->lock_fd, 0) != 0 ||
				 pwrite(bs->lock_fd, pid, (size_t)n, 0) != n))
		sh_log(LOG_WARNING, "data directory '%s': cannot note the pid in .lock", bs->dir);
	return SH_OK;
}

void blockset_close(struct blockset *bs)
{
	if (!bs)
		return;
	for (size_t i = 0; i < bs->n; i++)
		block_put(bs->blocks[i]);
	free(bs->blocks);
	if (bs->lock_fd >= 0)
		close(bs->lock_fd);
	pthread_rwlock_destroy(&bs->lock);
	free(bs->dir);
	free(bs);
}

enum sh_err blockset_get(struct blockset *bs, const char *id, struct block **out)
{
	enum sh_err err = SH_ENOENT;
	bool found;
	size_t at;

	pthread_rwlock_rdlock(&bs->lock);
	at = find(bs, id, &found);
	if (found && !atomic_load(&bs->blocks[at]->retiring) && !bs->blocks[at]->removing) {
		*out = bs->blocks[at];
		atomic_fetch_add(&(*out)->refs, 1);
		err = SH_OK;
	}
	pthread_rwlock_unlock(&bs->lock);
	return err;
}

enum sh_err blockset_create(struct blockset *bs, const char *id, struct block **out)
{
	struct block *b = NULL;
	enum sh_err err;
	bool found;
	size_t at;

	pthread_rwlock_wrlock(&bs->lock);
	at = find(bs, id, &found);
	if (found)
		err = atomic_load(&bs->blocks[at]->retiring) || bs->blocks[at]->removing ?
			      SH_EBUSY : SH_EEXIST;
	else
		err = open_block(bs, id, true, &b);
	if (!err)
		err = insert_at(bs, at, b);
	if (!err) {
		atomic_fetch_add(&b->refs, 1);
		*out = b;
	} else if (b) {
		block_put(b);
	}
	pthread_rwlock_unlock(&bs->lock);
	return err;
}

/* b's writes are pending: hide it, take no more writes, keep syncing. */
static void retire(struct block *b)
{
	atomic_store(&b->removed, true);
	if (!atomic_exchange(&b->retiring, true))
		store_meta_set(b->store, "retiring", "1");
}

/* Mark block id as being removed and take a reference to it; NULL when
 * absent or already being removed. */
static struct block *take_for_removal(struct blockset *bs, const char *id)
{
	struct block *b = NULL;
	bool found;
	size_t at;

	pthread_rwlock_wrlock(&bs->lock);
	at = find(bs, id, &found);
	if (found && !bs->blocks[at]->removing) {
		b = bs->blocks[at];
		b->removing = true;
		atomic_fetch_add(&b->refs, 1);
	}
	pthread_rwlock_unlock(&bs->lock);
	return b;
}

/* The remove of b is over: drop it from the set (deleted), or show it again. */
static void end_removal(struct blockset *bs, struct block *b, bool deleted)
{
	bool found;
	size_t at;

	pthread_rwlock_wrlock(&bs->lock);
	b->removing = false;
	at = find(bs, b->id, &found);	/* its id is still taken: found, and b */
	if (deleted && found && bs->blocks[at] == b) {
		memmove(&bs->blocks[at], &bs->blocks[at + 1], (bs->n - at - 1) * sizeof(*bs->blocks));
		bs->n--;
	} else {
		deleted = false;
	}
	pthread_rwlock_unlock(&bs->lock);
	if (deleted)
		block_put(b);	/* the set's reference */
}

enum sh_err blockset_remove(struct blockset *bs, const char *id, bool *retired)
{
	enum sh_err err = SH_OK;
	int64_t pending;
	struct block *b;
	bool gone;

	*retired = false;
	b = take_for_removal(bs, id);
	if (!b)
		return SH_ENOENT;
	/* Not under the set's lock: a slow write in b (a long transaction, a
	 * busy disk) must not stall the lookups of every other block. */
	pthread_rwlock_wrlock(&b->life);	/* no write is half done */
	if (store_remove_if_idle(b->store, &pending, &gone) != SH_OK) {
		err = SH_EIO;
	} else if (!gone) {	/* pending > 0 */
		retire(b);
		*retired = true;
	} else {
		atomic_store(&b->removed, true);
	}
	pthread_rwlock_unlock(&b->life);
	/* the files went in store_remove_if_idle, while b still held its id: a
	 * create of it (SH_EBUSY) cannot have made a file that was unlinked */
	end_removal(bs, b, !err && !*retired);
	block_put(b);
	return err;
}

enum sh_err blockset_snapshot(struct blockset *bs, struct block ***out, size_t *n)
{
	struct block **arr;

	pthread_rwlock_rdlock(&bs->lock);
	arr = malloc((bs->n ? bs->n : 1) * sizeof(*arr));
	if (!arr) {
		pthread_rwlock_unlock(&bs->lock);
		return SH_ENOMEM;
	}
	for (size_t i = 0; i < bs->n; i++) {
		arr[i] = bs->blocks[i];
		atomic_fetch_add(&arr[i]->refs, 1);
	}
	*n = bs->n;
	pthread_rwlock_unlock(&bs->lock);
	*out = arr;
	return SH_OK;
}

const char *blockset_dir(const struct blockset *bs)
{
	return bs->dir;
}

size_t blockset_count(struct blockset *bs)
{
	size_t n;

	pthread_rwlock_rdlock(&bs->lock);
	n = bs->n;
	pthread_rwlock_unlock(&bs->lock);
	return n;
}
