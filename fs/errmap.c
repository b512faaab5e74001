/* errmap.c - the one place where core errors become errno values. */
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
	[SH_ENOSPC] = ENOSPC,
};

int sh_errno(enum sh_err err)
{
	if ((unsigned)err >= SH_ERR_COUNT)
		return EIO;
	return errnos[err];
}
