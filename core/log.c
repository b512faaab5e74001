/* log.c - one logging path: stderr in the foreground, syslog when detached. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <pthread.h>

static int log_to_syslog;
static int log_max_level = LOG_INFO;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

void sh_log_init(int use_syslog, int max_level)
{
	log_to_syslog = use_syslog;
	log_max_level = max_level;
	if (use_syslog)
		openlog("sharded", LOG_PID, LOG_DAEMON);
}

static const char *level_name(int level)
{
	switch (level) {
	case LOG_EMERG: case LOG_ALERT: case LOG_CRIT: return "fatal";
	case LOG_ERR: return "error";
	case LOG_WARNING: return "warning";
	case LOG_NOTICE: case LOG_INFO: return "info";
	default: return "debug";
	}
}

void sh_log(int level, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	if (level > log_max_level)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* one line per message, whatever the caller passed */
	for (char *p = line; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	if (log_to_syslog) {
		syslog(level, "%s", line);
		return;
	}
	pthread_mutex_lock(&log_lock);
	fprintf(stderr, "sharded: %s: %s\n", level_name(level), line);
	pthread_mutex_unlock(&log_lock);
}

/* Replace the value after "password=" (conninfo) or between ':' and '@' (URL). */
void sh_redact(const char *in, char *out, size_t outlen)
{
	const char *pw, *at, *scheme;
	size_t n;

	if (!outlen)
		return;
	snprintf(out, outlen, "%s", in ? in : "");
	if (!in)
		return;
	pw = strstr(in, "password=");
	if (pw) {
		const char *end = pw + strlen("password=");
		while (*end && *end != ' ' && *end != '&')
			end++;
		n = (size_t)(pw - in) + strlen("password=");
		snprintf(out, outlen, "%.*s***%s", (int)n, in, end);
		return;
	}
	scheme = strstr(in, "://");
	at = scheme ? strchr(scheme + 3, '@') : NULL;
	if (scheme && at) {
		const char *colon = memchr(scheme + 3, ':', (size_t)(at - scheme - 3));
		if (colon) {
			n = (size_t)(colon - in) + 1;
			snprintf(out, outlen, "%.*s***%s", (int)n, in, at);
		}
	}
}
