/* perm.h - who owns the mount, and with which modes (uid=, gid=, umask=).
 *
 * Every file and directory of a mount shows the one owner, group and mode
 * set given at mount time, and the kernel enforces them
 * (default_permissions) before a request reaches the daemon. What is here
 * is pure: option text in, numbers out; no FUSE.
 */
#ifndef SHARDED_PERM_H
#define SHARDED_PERM_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct perm {
	uid_t uid;
	gid_t gid;
	mode_t umask;
};

/* Resolve uid=, gid=, umask= (NULL: not given). A name is looked up now; a
 * number is taken as it is. Defaults: the daemon's user; the uid= user's
 * primary group, else the daemon's group; umask 022, or 027 when other users
 * can reach the mount (allow_other). -1 with a one-line reason in err for an
 * unknown name, a bad number, or allow_other without uid=. */
int perm_resolve(const char *uid, const char *gid, const char *umask, bool allow_other,
		 uid_t daemon_uid, gid_t daemon_gid, struct perm *p, char *err, size_t errlen);

/* The mode shown for a node of type (S_IFREG, S_IFDIR) at most `widest`
 * (0666 records, 0444 read-only files, 0777 directories). A class that may
 * not read records gets no search permission on directories: it cannot name
 * a record, so a lookup never reads a row through for it. */
mode_t perm_mode(const struct perm *p, mode_t type, mode_t widest);

#endif
