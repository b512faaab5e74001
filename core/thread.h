/* thread.h - how sharded starts its background threads (relay, apply,
 * expiry, notify).
 *
 * Signals go to the thread that runs the FUSE loop alone (it unmounts on
 * SIGINT/SIGTERM), so a worker starts with every signal blocked, and it is
 * named (sharded-<what>) so that top -H, gdb and /proc show which is which.
 */
#ifndef SHARDED_THREAD_H
#define SHARDED_THREAD_H

#include <pthread.h>

/* Start fn(arg) as a thread named name (at most 15 bytes are kept) that
 * takes no signals. 0, or pthread_create's error number. */
int thread_start(pthread_t *t, const char *name, void *(*fn)(void *), void *arg);

#endif
