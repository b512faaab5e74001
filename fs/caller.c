/* caller.c - who sent a request: is it `rm -r` walking a block?
 *
 * `rm -r M/<block>` removes a tree the only way a file system offers: it
 * unlinks every file, then removes the directories, bottom up. Unlinking a
 * record means deleting its row in PostgreSQL, so a recursive rm would
 * delete every row the block holds before it reaches the block itself. To
 * make `rm -r` mean what `rmdir` means (drop the local copy), requests from
 * an `rm` run with -r, -R or --recursive are told apart by its command line
 * (/proc/<pid>/cmdline), and ops.c treats them as dropping local copies.
 */
#include "fs.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define CMDLINE_MAX 4096	/* read at most this much of a command line */

/* Does this argument (before any "--") ask for recursion? */
static bool recursive_arg(const char *a)
{
	if (strcmp(a, "--recursive") == 0)
		return true;
	return a[0] == '-' && a[1] != '-' && a[1] && strpbrk(a + 1, "rR") != NULL;
}

bool caller_is_recursive_rm(fuse_req_t req)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	char path[64], buf[CMDLINE_MAX];
	const char *base;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%ld/cmdline", (long)ctx->pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	base = strrchr(buf, '/');
	base = base ? base + 1 : buf;
	if (strcmp(base, "rm") != 0)
		return false;
	for (const char *a = buf + strlen(buf) + 1; a < buf + n; a += strlen(a) + 1) {
		if (strcmp(a, "--") == 0)
			break;
		if (recursive_arg(a))
			return true;
	}
	return false;
}
