/* fs.h - state shared by the FUSE layer's files.
 *
 * fs/ translates kernel requests into engine calls (core/engine.h) and
 * engine results into replies; it holds no rule about records itself.
 */
#ifndef SHARDED_FS_H
#define SHARDED_FS_H

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdatomic.h>

#include "engine.h"
#include "nodes.h"
#include "perm.h"
#include "wbuf.h"

struct notifier;
struct kcache;

/* FUSE requests counted by opcode, shown in the metrics file: what an
 * operation costs in kernel round trips, whatever the machine. */
enum fs_op {
	FS_OP_LOOKUP, FS_OP_FORGET, FS_OP_GETATTR, FS_OP_SETATTR, FS_OP_OPEN, FS_OP_CREATE,
	FS_OP_READ, FS_OP_WRITE, FS_OP_FLUSH, FS_OP_RELEASE, FS_OP_FSYNC, FS_OP_OPENDIR,
	FS_OP_READDIR, FS_OP_RELEASEDIR, FS_OP_OTHER, FS_OP_COUNT
};

/* Every open file and directory, so that what the kernel never released
 * (it sends no release after an unmount) is freed at exit. */
enum open_kind { OPEN_FILE, OPEN_DIR, OPEN_SCRATCH };

struct open_file {
	struct open_file *prev, *next;
	void (*release)(struct open_file *f);
	enum open_kind kind;
};

struct fs {
	struct engine *engine;
	struct nodes *nodes;
	struct fuse_session *se;
	struct notifier *notifier;
	struct kcache *kcache;	/* what the kernel may cache of records (kcache.h) */
	_Atomic unsigned long long requests[FS_OP_COUNT];
	double entry_timeout;
	double attr_timeout;
	size_t max_doc;
	size_t max_write, page;	/* the kernel's largest write request; the page size */
	struct wbudget wbuf;	/* all record write buffers (wbuf.h) */
	int64_t mount_ns;	/* directories show this as their times */
	pthread_mutex_t open_lock;
	struct open_file open_files;	/* list head */
	struct scratches *scratch;	/* temp, swap and backup files (scratch.h) */
	struct perm perm;	/* owner, group and modes of everything (perm.h) */
	/* -o records=ro: record writes refused (SH_EROFS); no_open: the kernel
	 * was asked to open files without a request (FUSE_CAP_NO_OPEN_SUPPORT), so
	 * READ, WRITE and FLUSH may come with no handle (fh 0), and every change
	 * is told to the kernel before it is acknowledged (notify.c) */
	bool records_ro;
	bool no_open;
};

void fs_open_track(struct fs *fs, struct open_file *f, void (*release)(struct open_file *f));
void fs_open_untrack(struct fs *fs, struct open_file *f);
/* Release every file still open (at exit, after the session loop). */
void fs_open_release_all(struct fs *fs);

/* Scratch files (scratch_ops.c): requests on NODE_SCRATCH nodes. */
void sops_create(fuse_req_t req, struct fs *fs, fuse_ino_t parent, const struct node_ref *dir,
		 const char *name, struct fuse_file_info *fi);
void sops_open(fuse_req_t req, struct fs *fs, const struct node_ref *r, struct fuse_file_info *fi);
void sops_read(fuse_req_t req, struct open_file *of, size_t size, off_t off);
void sops_write(fuse_req_t req, struct fs *fs, struct open_file *of, const char *buf, size_t size,
		off_t off, int append);
void sops_release(fuse_req_t req, struct fs *fs, struct open_file *of);
enum sh_err sops_stat(struct fs *fs, const struct node_ref *r, struct stat *st);
void sops_setattr(fuse_req_t req, struct fs *fs, const struct node_ref *r, struct stat *attr,
		  int to_set);

/* The one map from the core error enum to errno (errmap.c). */
int sh_errno(enum sh_err err);

/* Reply to req with err as its errno (0 for SH_OK): how every operation answers with an error. */
void reply_err(fuse_req_t req, enum sh_err err);

/* Low-level operations (ops.c). */
extern const struct fuse_lowlevel_ops sharded_ops;

/* Kernel cache invalidation from a thread of its own (notify.c). */
struct notifier *notifier_start(struct fs *fs);
void notifier_stop(struct notifier *n);
/* Send nothing more to the kernel (waits for a message on its way): the
 * session's fd is about to close, and its number may be reused. */
void notifier_detach(struct notifier *n);
/* Wait until every invalidation queued so far has been sent (records=ro). */
void notifier_flush(struct notifier *n);
/* Set in every thread that serves FUSE requests (ops.c): such a thread may be
 * answering for a directory the kernel holds locked, so it never waits for an
 * invalidation itself (notify.c); a handler that may, calls notifier_flush. */
extern _Thread_local bool fs_request_thread;
/* Is the request from `rm -r` (caller.c)? Its unlinks drop local copies. */
bool caller_is_recursive_rm(fuse_req_t req);

/* engine_change_fn: queue invalidation of a record, or of a whole block when model is NULL. */
void notifier_change(void *fs, const char *block, const char *model, const char *pk, bool gone);

#endif
