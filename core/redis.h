/* redis.h - connecting to Redis from a redis:// URL, and the key names.
 *
 * Keys of one block share the hash tag {<block>} so that they live in one
 * Redis Cluster slot:
 *   sharded:{<block>}:ops    stream of outbox entries, consumer group "sharded"
 *   sharded:{<block>}:dead   stream of entries PostgreSQL refused, with the error
 */
#ifndef SHARDED_REDIS_H
#define SHARDED_REDIS_H

#include <stddef.h>

#include <hiredis/hiredis.h>

#include "error.h"

#define REDIS_GROUP "sharded"
#define REDIS_KEY_MAX 256

/* Connect, AUTH and SELECT as the URL says: redis://[[user]:password@]host[:port][/db].
 * NULL or "" means redis://127.0.0.1:6379. On failure err gets a one-line
 * reason without the password, and the return is SH_EINVAL (bad URL) or
 * SH_EUNAVAIL. timeout_ms bounds connect and every command. */
enum sh_err redis_open(const char *url, int timeout_ms, redisContext **out, char *err,
		       size_t errlen);

/* Write "sharded:{<block>}:<what>" into buf. */
void redis_key(char *buf, size_t len, const char *block, const char *what);

#endif
