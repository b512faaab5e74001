/* thread.c - starting a named background thread with every signal blocked. */
#include "thread.h"

#include <signal.h>

#include "engine.h"	/* declares thread_start again, for fs/: the compiler checks both */

int thread_start(pthread_t *t, const char *name, void *(*fn)(void *), void *arg)
{
	sigset_t all, old;
	int rc;

	/* blocked before the thread exists, so no signal can reach it in between;
	 * the new thread inherits this mask, the caller gets its own back */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	rc = pthread_create(t, NULL, fn, arg);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc == 0)
		pthread_setname_np(*t, name);	/* a name too long is only a worse name */
	return rc;
}
