/* outbox_util.h - for unit tests: tell a store that PostgreSQL applied the
 * writes of its current origin (store.h) up to seq, as the apply thread
 * does. A store that never wrote has no origin and nothing to drop. */
#ifndef SHARDED_TEST_OUTBOX_UTIL_H
#define SHARDED_TEST_OUTBOX_UTIL_H

#include <stdlib.h>

#include "store.h"

/* PostgreSQL applied origin's writes up to seq, none of them refused. */
static inline enum sh_err origin_applied(struct store *st, const char *origin, int64_t seq)
{
	int64_t dead = 0, counted;

	return store_outbox_settle(st, origin, seq, &dead, &counted);
}

static inline enum sh_err outbox_applied(struct store *st, int64_t seq)
{
	char *origin = NULL;
	enum sh_err err = store_meta_get(st, "origin", &origin);

	if (err == SH_ENOENT)
		return SH_OK;
	if (!err)
		err = origin_applied(st, origin, seq);
	free(origin);
	return err;
}

#endif
