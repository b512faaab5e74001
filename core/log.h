/* log.h - the one logging function of sharded.
 *
 * Messages are single lines at syslog levels. They go to stderr while the
 * daemon runs in the foreground and to syslog once it has detached. Never
 * pass a password or a full connection string: use sh_redact_conninfo().
 */
#ifndef SHARDED_LOG_H
#define SHARDED_LOG_H

#include <stddef.h>
#include <syslog.h>

/* use_syslog: send to syslog instead of stderr; max_level: LOG_INFO or LOG_DEBUG. */
void sh_log_init(int use_syslog, int max_level);

void sh_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Copy a libpq conninfo or a redis:// URL into out with any password replaced by "***". */
void sh_redact(const char *conninfo, char *out, size_t outlen);

#endif
