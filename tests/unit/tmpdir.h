/* tmpdir.h - for unit tests: remove a test's temporary directory and all it
 * holds (block files, their -wal and -shm files). */
#ifndef SHARDED_TEST_TMPDIR_H
#define SHARDED_TEST_TMPDIR_H

#include <ftw.h>
#include <stdio.h>
#include <sys/stat.h>

static inline int tmpdir_rm_entry(const char *path, const struct stat *sb, int flag,
				  struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static inline void tmpdir_remove(const char *dir)
{
	nftw(dir, tmpdir_rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

#endif
