/* log.c - one logging path: stderr in the foreground, syslog when detached. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
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

/* Copy in to out with control characters written as \xNN, so that a file
 * or block name cannot break the line or send escapes to a terminal. */
static void escape_controls(const char *in, char *out, size_t outlen)
{
	size_t o = 0;

	for (const unsigned char *p = (const unsigned char *)in; *p && o + 5 < outlen; p++) {
		if (*p < 0x20 || *p == 0x7f)
			o += (size_t)snprintf(out + o, outlen - o, "\\x%02x", *p);
		else
			out[o++] = (char)*p;
	}
	out[o] = '\0';
}

void sh_log(int level, const char *fmt, ...)
{
	char raw[1024], line[1024];
	va_list ap;

	if (level > log_max_level)
		return;
	va_start(ap, fmt);
	vsnprintf(raw, sizeof(raw), fmt, ap);
	va_end(ap);
	escape_controls(raw, line, sizeof(line));	/* one line per message, always */
	if (log_to_syslog) {
		syslog(level, "%s", line);
		return;
	}
	pthread_mutex_lock(&log_lock);
	fprintf(stderr, "sharded: %s: %s\n", level_name(level), line);
	pthread_mutex_unlock(&log_lock);
}

/* End of a conninfo value starting at p: a quoted value ends at its closing
 * quote (backslash escapes), a bare one at white space. */
static const char *value_end(const char *p)
{
	if (*p != '\'') {
		while (*p && *p != ' ' && *p != '\t')
			p++;
		return p;
	}
	for (p++; *p && *p != '\''; p++)
		if (*p == '\\' && p[1])
			p++;
	return *p ? p + 1 : p;
}

/* In a key=value conninfo, hide the value of "password" (spaces around '=' allowed). */
static int redact_conninfo(const char *in, char *out, size_t outlen)
{
	const char *pw = strstr(in, "password"), *p;

	while (pw && pw != in && pw[-1] != ' ' && pw[-1] != '\t')
		pw = strstr(pw + 1, "password");
	if (!pw)
		return 0;
	p = pw + strlen("password");
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p != '=')
		return 0;
	p++;
	while (*p == ' ' || *p == '\t')
		p++;
	snprintf(out, outlen, "%.*s***%s", (int)(p - in), in, value_end(p));
	return 1;
}

/* Hide the password of a conninfo ("password=...") or a URL (between ':' and '@'). */
void sh_redact(const char *in, char *out, size_t outlen)
{
	const char *at, *scheme;
	size_t n;

	if (!outlen)
		return;
	snprintf(out, outlen, "%s", in ? in : "");
	if (!in)
		return;
	scheme = strstr(in, "://");
	if (!scheme) {
		redact_conninfo(in, out, outlen);
		return;
	}
	at = strchr(scheme + 3, '@');
	if (at) {
		const char *colon = memchr(scheme + 3, ':', (size_t)(at - scheme - 3));
		if (colon) {
			n = (size_t)(colon - in) + 1;
			snprintf(out, outlen, "%.*s***%s", (int)n, in, at);
		}
	}
	/* a URI may also carry ?password=... */
	if (strstr(out, "password=")) {
		char *copy = strdup(out);
		const char *q, *end;

		if (!copy) {
			snprintf(out, outlen, "***");
			return;
		}
		q = strstr(copy, "password=") + strlen("password=");
		end = strchr(q, '&');
		snprintf(out, outlen, "%.*s***%s", (int)(q - copy), copy, end ? end : "");
		free(copy);
	}
}
