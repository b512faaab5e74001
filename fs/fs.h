/* fs.h - state shared by the FUSE layer's files.
 *
 * fs/ translates kernel requests into engine calls (core/engine.h) and
 * engine results into replies; it holds no rule about records itself.
 */
#ifndef SHARDED_FS_H
#define SHARDED_FS_H

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>

#include "engine.h"
#include "error.h"
#include "nodes.h"

struct notifier;

struct fs {
	struct engine *engine;
	struct nodes *nodes;
	struct fuse_session *se;
	struct notifier *notifier;
	double entry_timeout;
	double attr_timeout;
	size_t max_doc;
	int64_t mount_ns;	/* directories show this as their times */
};

/* The one map from the core error enum to errno. */
int sh_errno(enum sh_err err);

/* Low-level operations (ops.c). */
extern const struct fuse_lowlevel_ops sharded_ops;

/* Kernel cache invalidation from a thread of its own (notify.c). */
struct notifier *notifier_start(struct fs *fs);
void notifier_stop(struct notifier *n);
/* engine_change_fn: queue invalidation of a record, or of a whole block when model is NULL. */
void notifier_change(void *fs, const char *block, const char *model, const char *pk);

#endif
