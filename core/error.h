/* error.h - the one error enum of sharded's core.
 *
 * Every core function that can fail returns an enum sh_err, and so does
 * every helper of the FUSE layer: fs/ maps it to an errno in exactly one
 * place (fs/errmap.c), when it replies; tools map it to an exit code.
 * Human-readable detail travels separately, in caller-provided buffers or
 * through sh_log().
 */
#ifndef SHARDED_ERROR_H
#define SHARDED_ERROR_H

enum sh_err {
	SH_OK = 0,
	SH_ENOENT,	/* no such block, model or record */
	SH_EEXIST,	/* already exists */
	SH_EINVAL,	/* invalid input: bad JSON, wrong type, bad name, bad value */
	SH_ETOOBIG,	/* input above a size cap */
	SH_EBUSY,	/* in use: e.g. a block with writes still pending */
	SH_ENOMEM,	/* allocation failed */
	SH_EIO,		/* local storage (SQLite, file system) failed */
	SH_EUNAVAIL,	/* a backend (PostgreSQL, Redis) is unreachable: transient */
	SH_EREMOTE,	/* a backend refused the operation: permanent */
	SH_EPERM,	/* operation not allowed on this object */
	SH_ENAMETOOLONG,	/* a name above its cap */
	SH_ENOTDIR,	/* not a directory, where one is needed (opendir of a file) */
	SH_EISDIR,	/* a directory, where a file is needed (open of a directory) */
	SH_EACCES,	/* access mode not allowed (a read-only control file opened to write) */
	SH_EXDEV,	/* across directories that do not share content (rename to another) */
	SH_EBADMSG,	/* a refused document, where SH_EINVAL would mean something else */
	SH_ENOSPC,	/* a cap on the space of many objects together was reached,
			 * or local storage is full (SQLITE_FULL, ENOSPC) */
	SH_EROFS,	/* a record write on a mount whose records are read-only */
	SH_ENOSYS,	/* not implemented: tells the kernel to stop asking (OPEN, FLUSH) */
	SH_ERR_COUNT
};

/* A short lowercase description, never NULL. */
const char *sh_strerror(enum sh_err err);

#endif
