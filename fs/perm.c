/* perm.c - uid=, gid=, umask= resolved once at mount time (see perm.h). */
#include "perm.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define NSS_BUF 16384		/* getpw*_r/getgr*_r scratch: ample for one entry */
#define ID_MAX 4294967294UL	/* (uid_t)-1 means "no change" to chown(2) */
#define UMASK_DEFAULT 022
#define UMASK_SHARED 027	/* allow_other: others get nothing unless asked */

/* A whole decimal number within ID_MAX? */
static bool parse_id(const char *s, unsigned long *out)
{
	if (!*s || strspn(s, "0123456789") != strlen(s))
		return false;
	errno = 0;
	*out = strtoul(s, NULL, 10);
	return !errno && *out <= ID_MAX;
}

/* The user s names (a number is taken as given); primary: that user's
 * group if known, else keeps its value. */
static int resolve_user(const char *s, uid_t *uid, gid_t *primary)
{
	struct passwd pw, *found = NULL;
	unsigned long n;
	char *buf = malloc(NSS_BUF);

	if (!buf)
		return -1;
	if (parse_id(s, &n)) {
		*uid = (uid_t)n;
		if (getpwuid_r(*uid, &pw, buf, NSS_BUF, &found) == 0 && found)
			*primary = found->pw_gid;
		free(buf);
		return 0;
	}
	if (getpwnam_r(s, &pw, buf, NSS_BUF, &found) == 0 && found) {
		*uid = found->pw_uid;
		*primary = found->pw_gid;
	}
	free(buf);
	return found ? 0 : -1;
}

static int resolve_group(const char *s, gid_t *gid)
{
	struct group gr, *found = NULL;
	unsigned long n;
	char *buf;

	if (parse_id(s, &n)) {
		*gid = (gid_t)n;
		return 0;
	}
	if (!(buf = malloc(NSS_BUF)))
		return -1;
	if (getgrnam_r(s, &gr, buf, NSS_BUF, &found) == 0 && found)
		*gid = found->gr_gid;
	free(buf);
	return found ? 0 : -1;
}

static int parse_umask(const char *s, mode_t *out)
{
	unsigned long n;

	if (!*s || strspn(s, "01234567") != strlen(s))
		return -1;
	errno = 0;
	n = strtoul(s, NULL, 8);
	if (errno || n > 0777)
		return -1;
	*out = (mode_t)n;
	return 0;
}

int perm_resolve(const char *uid, const char *gid, const char *umask, bool allow_other,
		 uid_t daemon_uid, gid_t daemon_gid, struct perm *p, char *err, size_t errlen)
{
	gid_t primary = daemon_gid;

	p->uid = daemon_uid;
	p->umask = allow_other ? UMASK_SHARED : UMASK_DEFAULT;
	if (allow_other && !uid) {
		snprintf(err, errlen, "allow_other needs uid= (who owns the tree, e.g. uid=app; "
			 "uid=root to keep it root's): see 'Users and permissions' in "
			 "mount.sharded(8)");
		return -1;
	}
	if (uid && resolve_user(uid, &p->uid, &primary) != 0) {
		snprintf(err, errlen, "unknown user '%s' (uid=)", uid);
		return -1;
	}
	p->gid = primary;
	if (gid && resolve_group(gid, &p->gid) != 0) {
		snprintf(err, errlen, "unknown group '%s' (gid=)", gid);
		return -1;
	}
	if (umask && parse_umask(umask, &p->umask) != 0) {
		snprintf(err, errlen, "invalid umask '%s' (octal, at most 0777)", umask);
		return -1;
	}
	return 0;
}

mode_t perm_mode(const struct perm *p, mode_t type, mode_t widest)
{
	mode_t mode = widest & ~p->umask & 0777;

	if (S_ISDIR(type)) {
		mode_t readers = 0666 & ~p->umask & 0444;	/* who may read records */

		mode &= ~(0111 & ~(readers >> 2));
	}
	return type | mode;
}
