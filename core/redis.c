/* redis.c - Redis URLs and connections. */
#include "redis.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct redis_url {
	char host[256];
	int port;
	char user[128];
	char password[256];
	int db;
};

static enum sh_err parse_hostport(const char *s, size_t n, struct redis_url *u)
{
	const char *colon = memchr(s, ':', n);
	size_t hlen = colon ? (size_t)(colon - s) : n;
	char *end;

	if (hlen >= sizeof(u->host))
		return SH_EINVAL;
	if (hlen) {
		memcpy(u->host, s, hlen);
		u->host[hlen] = '\0';
	}
	if (colon) {
		long port = strtol(colon + 1, &end, 10);
		if (end != s + n || port < 1 || port > 65535)
			return SH_EINVAL;
		u->port = (int)port;
	}
	return SH_OK;
}

/* [user]:password@ */
static enum sh_err parse_userinfo(const char *s, size_t n, struct redis_url *u)
{
	const char *colon = memchr(s, ':', n);
	size_t ulen = colon ? (size_t)(colon - s) : 0;
	size_t plen = colon ? n - ulen - 1 : n;

	if (ulen >= sizeof(u->user) || plen >= sizeof(u->password))
		return SH_EINVAL;
	memcpy(u->user, s, ulen);
	u->user[ulen] = '\0';
	memcpy(u->password, colon ? colon + 1 : s, plen);
	u->password[plen] = '\0';
	return SH_OK;
}

static enum sh_err parse_url(const char *url, struct redis_url *u)
{
	const char *p, *at, *slash, *end;
	enum sh_err err;

	memset(u, 0, sizeof(*u));
	strcpy(u->host, "127.0.0.1");
	u->port = 6379;
	if (!url || !*url)
		return SH_OK;
	if (strncmp(url, "redis://", 8) != 0)
		return SH_EINVAL;
	p = url + 8;
	end = p + strlen(p);
	slash = strchr(p, '/');
	if (slash)
		end = slash;
	at = memchr(p, '@', (size_t)(end - p));
	if (at) {
		err = parse_userinfo(p, (size_t)(at - p), u);
		if (err)
			return err;
		p = at + 1;
	}
	err = parse_hostport(p, (size_t)(end - p), u);
	if (!err && slash && slash[1]) {
		char *dbend;
		long db = strtol(slash + 1, &dbend, 10);
		if (*dbend || db < 0 || db > 1000)
			return SH_EINVAL;
		u->db = (int)db;
	}
	return err;
}

/* Run a command that must answer OK; false with the reason in err otherwise. */
static int command_ok(redisContext *c, char *err, size_t errlen, const char *what,
		      int argc, const char **argv)
{
	redisReply *r = redisCommandArgv(c, argc, argv, NULL);
	int ok = r && r->type != REDIS_REPLY_ERROR;

	if (!ok)
		snprintf(err, errlen, "redis %s failed: %s", what,
			 r ? r->str : (c->errstr[0] ? c->errstr : "no reply"));
	freeReplyObject(r);
	return ok;
}

static int authenticate(redisContext *c, const struct redis_url *u, char *err, size_t errlen)
{
	char db[16];
	const char *auth[] = { "AUTH", u->user, u->password };
	const char *sel[] = { "SELECT", db };

	if (u->password[0] && !command_ok(c, err, errlen, "AUTH", u->user[0] ? 3 : 2,
					  u->user[0] ? auth : (const char *[]){ "AUTH", u->password }))
		return 0;
	snprintf(db, sizeof(db), "%d", u->db);
	return u->db == 0 || command_ok(c, err, errlen, "SELECT", 2, sel);
}

/* A TCP connection is not a server: something in between (a proxy, a load
 * balancer) may accept and close at once. Only an answer counts. */
static int ping(redisContext *c, const struct redis_url *u, char *err, size_t errlen)
{
	redisReply *r = redisCommand(c, "PING");
	int ok = r && r->type == REDIS_REPLY_STATUS;

	if (!ok)
		snprintf(err, errlen, "redis at %s:%d does not answer: %s", u->host, u->port,
			 r && r->type == REDIS_REPLY_ERROR ? r->str : c->errstr);
	freeReplyObject(r);
	return ok;
}

enum sh_err redis_open(const char *url, int timeout_ms, redisContext **out, char *err,
		       size_t errlen)
{
	struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };
	struct redis_url u;
	redisContext *c;

	*out = NULL;
	if (parse_url(url, &u) != SH_OK) {
		snprintf(err, errlen, "malformed redis URL (expected redis://[:password@]host:port[/db])");
		return SH_EINVAL;
	}
	c = redisConnectWithTimeout(u.host, u.port, tv);
	if (!c || c->err) {
		snprintf(err, errlen, "cannot connect to redis at %s:%d: %s", u.host, u.port,
			 c ? c->errstr : "out of memory");
		redisFree(c);
		return SH_EUNAVAIL;
	}
	redisSetTimeout(c, tv);
	if (!authenticate(c, &u, err, errlen) || !ping(c, &u, err, errlen)) {
		redisFree(c);
		return SH_EUNAVAIL;
	}
	*out = c;
	return SH_OK;
}

void redis_key(char *buf, size_t len, const char *block, const char *what)
{
	snprintf(buf, len, "sharded:{%s}:%s", block, what);
}

#define REDIS_CMD_STACK 4096	/* commands up to this size are formatted on the stack */

static size_t uint_len(uint64_t v)
{
	size_t n = 1;

	while (v >= 10) {
		v /= 10;
		n++;
	}
	return n;
}

/* "<c><v>\r\n" at p; returns its length. */
static size_t put_header(char *p, char c, size_t v)
{
	size_t n = uint_len(v);

	p[0] = c;
	for (size_t i = n; i > 0; i--, v /= 10)
		p[i] = (char)('0' + v % 10);
	p[n + 1] = '\r';
	p[n + 2] = '\n';
	return n + 3;
}

size_t redis_format_argv(char *buf, size_t cap, int argc, const char *const *argv,
			 const size_t *lens)
{
	size_t need = 1 + uint_len((size_t)argc) + 2, off;

	for (int i = 0; i < argc; i++) {
		size_t len = lens ? lens[i] : strlen(argv[i]);

		need += 1 + uint_len(len) + 2 + len + 2;
	}
	if (need > cap)
		return need;
	off = put_header(buf, '*', (size_t)argc);
	for (int i = 0; i < argc; i++) {
		size_t len = lens ? lens[i] : strlen(argv[i]);

		off += put_header(buf + off, '$', len);
		memcpy(buf + off, argv[i], len);
		off += len;
		buf[off++] = '\r';
		buf[off++] = '\n';
	}
	return off;
}

int redis_append_argv(redisContext *rc, int argc, const char *const *argv, const size_t *lens)
{
	char stack[REDIS_CMD_STACK], *buf = stack;
	size_t len = redis_format_argv(stack, sizeof(stack), argc, argv, lens);
	int ret;

	if (len > sizeof(stack)) {
		if (!(buf = malloc(len)))
			return REDIS_ERR;
		redis_format_argv(buf, len, argc, argv, lens);
	}
	ret = redisAppendFormattedCommand(rc, buf, len);
	if (buf != stack)
		free(buf);
	return ret;
}

size_t redis_i64_arg(char buf[REDIS_I64_MAX], int64_t v)
{
	uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
	size_t n = uint_len(u) + (v < 0);

	buf[n] = '\0';
	for (size_t i = n; i > (size_t)(v < 0); u /= 10)
		buf[--i] = (char)('0' + u % 10);
	if (v < 0)
		buf[0] = '-';
	return n;
}
