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
#include <stdint.h>

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

/* The RESP form of a command (what redisFormatCommandArgv makes) into
 * buf[0..cap); lens NULL means strlen of each argument. Returns the length
 * it needs: buf is written only when that fits in cap. */
size_t redis_format_argv(char *buf, size_t cap, int argc, const char *const *argv,
			 const size_t *lens);

/* redisAppendCommandArgv, formatted by redis_format_argv: hiredis 0.14 builds
 * it with sdscatfmt, some 700 instructions per argument, which made the
 * relay's XADD the daemon's largest single formatting cost. Returns
 * REDIS_OK or REDIS_ERR (out of memory). */
int redis_append_argv(redisContext *rc, int argc, const char *const *argv, const size_t *lens);

#define REDIS_I64_MAX 21	/* "-9223372036854775808" and its NUL */

/* v in decimal (what snprintf's PRId64 writes) into buf, for an argument of
 * redis_append_argv; returns its length. */
size_t redis_i64_arg(char buf[REDIS_I64_MAX], int64_t v);

/* Write "sharded:{<block>}:<what>" into buf. */
void redis_key(char *buf, size_t len, const char *block, const char *what);

#endif
