/* error.c - descriptions of the core error enum. */
#include "error.h"

static const char *const descriptions[SH_ERR_COUNT] = {
	[SH_OK] = "success",
	[SH_ENOENT] = "not found",
	[SH_EEXIST] = "already exists",
	[SH_EINVAL] = "invalid input",
	[SH_ETOOBIG] = "too big",
	[SH_EBUSY] = "busy",
	[SH_ENOMEM] = "out of memory",
	[SH_EIO] = "local storage error",
	[SH_EUNAVAIL] = "backend unavailable",
	[SH_EREMOTE] = "refused by backend",
	[SH_EPERM] = "not permitted",
	[SH_ENAMETOOLONG] = "name too long",
	[SH_ENOTDIR] = "not a directory",
	[SH_EISDIR] = "is a directory",
	[SH_EACCES] = "access denied",
	[SH_EXDEV] = "across directories",
	[SH_EBADMSG] = "refused document",
	[SH_ENOSPC] = "no space left",
	[SH_EROFS] = "read-only records",
	[SH_ENOSYS] = "not implemented",
};

const char *sh_strerror(enum sh_err err)
{
	if ((unsigned)err >= SH_ERR_COUNT || !descriptions[err])
		return "unknown error";
	return descriptions[err];
}
