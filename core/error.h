/* error.h - the one error enum of sharded's core.
 *
 * Every core function that can fail returns an enum sh_err. The FUSE layer
 * maps it to an errno in exactly one place (fs/errmap.c); tools map it to an
 * exit code. Human-readable detail travels separately, in caller-provided
 * buffers or through sh_log().
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
	SH_ENOSPC,	/* local storage is full (SQLITE_FULL, ENOSPC) */
	SH_ERR_COUNT
};

/* A short lowercase description, never NULL. */
const char *sh_strerror(enum sh_err err);

#endif
