/* scratch.h - scratch files: names in a model directory that are not records.
 *
 * Editors, sed -i, rsync and python's tempfile write a temporary file next
 * to the one they change and rename it over the original. Such names (not
 * "<key>.json") live here, in memory only: they are never synced and are
 * gone after unmount. Renaming one onto "<key>.json" is a record write
 * (ops.c). Each file is capped, and so is their total.
 */
#ifndef SHARDED_SCRATCH_H
#define SHARDED_SCRATCH_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "engine.h"

/* The longest name, in bytes: what a node_ref's pk holds (nodes.h), so that every
 * scratch file can be looked up, opened and deleted by its name. */
#define SCRATCH_NAME_MAX 255

struct scratch {
	char *block, *model, *name;	/* where it lives */
	pthread_mutex_t lock;		/* guards everything below */
	char *buf;
	size_t len, cap;
	mode_t mode;
	uid_t uid;
	gid_t gid;
	struct timespec mtime, ctime;
	int refs;			/* under the set's lock */
	int linked;			/* reachable by name */
	struct scratch *next;
};

struct scratches;

struct scratches *scratches_new(size_t file_cap, size_t total_cap);
void scratches_free(struct scratches *ss);

/* A counted reference to the named file, or NULL. */
struct scratch *scratch_get(struct scratches *ss, const char *block, const char *model,
			    const char *name);
/* Create (or, when it exists and excl is 0, open) the named file, owned by
 * uid:gid with mode; on failure nothing was created. A name over
 * SCRATCH_NAME_MAX is SH_ENAMETOOLONG. */
enum sh_err scratch_create(struct scratches *ss, const char *block, const char *model,
			   const char *name, mode_t mode, uid_t uid, gid_t gid, int excl,
			   struct scratch **out);
void scratch_put(struct scratches *ss, struct scratch *s);

/* rename refuses a name over SCRATCH_NAME_MAX (SH_ENAMETOOLONG); write and
 * truncate refuse to grow a file past its cap (SH_ETOOBIG) or all of them
 * past theirs (SH_ENOSPC). */
enum sh_err scratch_unlink(struct scratches *ss, const char *block, const char *model,
			   const char *name);
enum sh_err scratch_rename(struct scratches *ss, const char *block, const char *model,
			   const char *from, const char *to);
enum sh_err scratch_write(struct scratches *ss, struct scratch *s, const char *buf, size_t size,
			  off_t off);
enum sh_err scratch_truncate(struct scratches *ss, struct scratch *s, off_t size);
/* Copy of the content (malloc'd, *len bytes), for a rename onto a record. */
char *scratch_copy(struct scratch *s, size_t *len);

void scratch_stat(struct scratch *s, uint64_t ino, struct stat *st);

/* Call fn for each linked file of (block, model); fn must not call back in. */
void scratch_list(struct scratches *ss, const char *block, const char *model,
		  void (*fn)(void *ctx, const char *name), void *ctx);

/* Forget every file of a block (rmdir). */
void scratch_drop_block(struct scratches *ss, const char *block);

#endif
