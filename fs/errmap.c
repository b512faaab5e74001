/* errmap.c - the one place where core errors become errno values.
 *
 * fs/'s helpers return enum sh_err like the core does; an operation turns
 * its result into an errno once, when it replies (reply_err).
 */
#include <errno.h>

#include "fs.h"

static const int errnos[SH_ERR_COUNT] = {
	[SH_OK] = 0,
	[SH_ENOENT] = ENOENT,
	[SH_EEXIST] = EEXIST,
	[SH_EINVAL] = EINVAL,
	[SH_ETOOBIG] = EFBIG,
	[SH_EBUSY] = EBUSY,
	[SH_ENOMEM] = ENOMEM,
	[SH_EIO] = EIO,
	[SH_EUNAVAIL] = EAGAIN,
	[SH_EREMOTE] = EIO,
	[SH_EPERM] = EPERM,
	[SH_ENAMETOOLONG] = ENAMETOOLONG,
	[SH_ENOTDIR] = ENOTDIR,
	[SH_EISDIR] = EISDIR,
	[SH_EACCES] = EACCES,
	[SH_EXDEV] = EXDEV,
	[SH_EBADMSG] = EBADMSG,
	[SH_ENOSPC] = ENOSPC,
	[SH_EROFS] = EROFS,
	[SH_ENOSYS] = ENOSYS,
};

int sh_errno(enum sh_err err)
{
	if ((unsigned)err >= SH_ERR_COUNT || (err != SH_OK && errnos[err] == 0))
		return EIO;	/* a code this table lacks must not read as success */
	return errnos[err];
}

void reply_err(fuse_req_t req, enum sh_err err)
{
	fuse_reply_err(req, sh_errno(err));
}
