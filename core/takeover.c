/* takeover.c - the scan for entries of dead nodes (takeover.h says why). */
#include "takeover.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "redis.h"

#define SCAN_COUNT 500
#define ID_MAX 48

int64_t takeover_id_ms(const char *id)
{
	char *end;
	long long ms;

	if (!id || *id < '0' || *id > '9')
		return -1;
	ms = strtoll(id, &end, 10);
	return (*end == '-' || *end == '\0') ? ms : -1;
}

static bool is_str(const redisReply *r)
{
	return r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS);
}

/* The value after name in a flat [name, value, ...] reply, or NULL. */
static const redisReply *field(const redisReply *r, const char *name)
{
	for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements; i += 2)
		if (is_str(r->element[i]) && strcmp(r->element[i]->str, name) == 0)
			return r->element[i + 1];
	return NULL;
}

/* Move the entries pending to consumer dead to self; returns how many. */
static size_t claim_from(redisContext *rc, const char *key, const char *dead, const char *self)
{
	char idle[24];
	const char **argv = NULL;
	redisReply *r = redisCommand(rc, "XPENDING %s %s - + %d %s", key, REDIS_GROUP,
				     TAKEOVER_CLAIM_MAX, dead);
	size_t n = 0, argc = 0;

	if (!r || r->type != REDIS_REPLY_ARRAY || r->elements == 0 ||
	    !(argv = malloc((r->elements + 7) * sizeof(*argv))))
		goto out;
	snprintf(idle, sizeof(idle), "%d", TAKEOVER_CLAIM_IDLE_MS);
	argv[argc++] = "XCLAIM";
	argv[argc++] = key;
	argv[argc++] = REDIS_GROUP;
	argv[argc++] = self;
	argv[argc++] = idle;
	for (size_t i = 0; i < r->elements; i++) {
		const redisReply *p = r->element[i];

		if (p->type == REDIS_REPLY_ARRAY && p->elements >= 1 && is_str(p->element[0]))
			argv[argc++] = p->element[0]->str;
	}
	argv[argc++] = "JUSTID";
	if (argc > 6) {
		redisReply *c = redisCommandArgv(rc, (int)argc, argv, NULL);

		n = c && c->type == REDIS_REPLY_ARRAY ? c->elements : 0;
		freeReplyObject(c);
	}
out:
	free(argv);
	freeReplyObject(r);
	return n;
}

/* Claim from the dead consumers of key; note whether self holds entries.
 * false when the stream has no group (nothing to take over). */
static bool scan_consumers(redisContext *rc, const struct nodereg_entry *nodes, size_t nn,
			   int64_t now_ms, const char *self, struct takeover_stream *st)
{
	redisReply *r = redisCommand(rc, "XINFO CONSUMERS %s %s", st->key, REDIS_GROUP);

	if (!r || r->type != REDIS_REPLY_ARRAY) {	/* NOGROUP, or gone */
		freeReplyObject(r);
		return false;
	}
	for (size_t i = 0; i < r->elements; i++) {
		const redisReply *c = r->element[i], *name = field(c, "name"),
				 *pending = field(c, "pending");

		if (!is_str(name) || !pending || pending->type != REDIS_REPLY_INTEGER ||
		    pending->integer <= 0)
			continue;
		if (strcmp(name->str, self) == 0) {
			st->own_pending = true;
		} else if (!nodereg_is_alive(nodes, nn, name->str, now_ms)) {
			size_t got = claim_from(rc, st->key, name->str, self);

			st->claimed += got;
			st->own_pending = st->own_pending || got > 0;
		}
	}
	freeReplyObject(r);
	return true;
}

/* What XINFO GROUPS says of group "sharded" of one stream. */
struct group_info {
	bool found;
	long long pending;	/* entries read and not acknowledged */
	bool lag_zero;		/* Redis 7 says no entry waits to be delivered */
	char ld[ID_MAX];	/* last-delivered-id */
};

static void group_info(const redisReply *r, struct group_info *g)
{
	memset(g, 0, sizeof(*g));
	for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
		const redisReply *e = r->element[i], *name = field(e, "name"),
				 *id = field(e, "last-delivered-id"), *pending = field(e, "pending"),
				 *lag = field(e, "lag");

		if (!is_str(name) || strcmp(name->str, REDIS_GROUP) != 0 || !is_str(id))
			continue;
		g->found = true;
		snprintf(g->ld, sizeof(g->ld), "%s", id->str);
		g->pending = pending && pending->type == REDIS_REPLY_INTEGER ? pending->integer : 1;
		/* no lag (Redis 6) or an unknown one (nil): look at the stream */
		g->lag_zero = lag && lag->type == REDIS_REPLY_INTEGER && lag->integer == 0;
	}
}

/* Is the oldest entry after the group's last-delivered-id older than
 * TAKEOVER_UNREAD_MS? (Entry ids are Redis's clock, as now_ms is.) */
static bool stale_unread(redisContext *rc, const char *key, const char *ld, int64_t now_ms)
{
	char start[ID_MAX + 2];
	redisReply *r;
	bool stale = false;

	snprintf(start, sizeof(start), strcmp(ld, "0-0") == 0 ? "-" : "(%s", ld);
	r = redisCommand(rc, "XRANGE %s %s + COUNT 1", key, start);
	if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 1 &&
	    r->element[0]->type == REDIS_REPLY_ARRAY && r->element[0]->elements >= 1 &&
	    is_str(r->element[0]->element[0])) {
		int64_t ms = takeover_id_ms(r->element[0]->element[0]->str);

		stale = ms >= 0 && now_ms - ms >= TAKEOVER_UNREAD_MS;
	}
	freeReplyObject(r);
	return stale;
}

struct scan {
	redisContext *rc;
	const char *self;
	const struct nodereg_entry *nodes;
	size_t nn;
	int64_t now_ms;
	takeover_fn fn;
	void *ctx;
	size_t claimed;
};

/* Look at one ops stream, whose group g is; call fn if it has work for us.
 * Most streams have nothing read and nothing waiting: no further command. */
static enum sh_err scan_stream(struct scan *sc, const char *key, const struct group_info *g)
{
	char block[REDIS_KEY_MAX], what[16];
	struct takeover_stream st = { .block = block, .key = key };

	if (!g->found || !admin_key_parse(key, block, sizeof(block), what, sizeof(what)) ||
	    strcmp(what, "ops") != 0)
		return SH_OK;
	if (g->pending > 0 && !scan_consumers(sc->rc, sc->nodes, sc->nn, sc->now_ms, sc->self, &st))
		return sc->rc->err ? SH_EUNAVAIL : SH_OK;
	if (!g->lag_zero)
		st.unread = stale_unread(sc->rc, key, g->ld, sc->now_ms);
	if (sc->rc->err)
		return SH_EUNAVAIL;
	sc->claimed += st.claimed;
	return st.own_pending || st.unread ? sc->fn(sc->ctx, &st) : SH_OK;
}

/* XINFO GROUPS of every key of a SCAN page in one pipeline, then each stream. */
static enum sh_err scan_keys(struct scan *sc, const redisReply *keys)
{
	struct group_info *g = calloc(keys->elements + 1, sizeof(*g));
	enum sh_err rv = SH_OK;

	if (!g)
		return SH_ENOMEM;
	for (size_t i = 0; i < keys->elements; i++)
		redisAppendCommand(sc->rc, "XINFO GROUPS %s",
				   is_str(keys->element[i]) ? keys->element[i]->str : "");
	for (size_t i = 0; i < keys->elements; i++) {
		redisReply *r = NULL;

		if (redisGetReply(sc->rc, (void **)&r) != REDIS_OK) {
			free(g);
			return SH_EUNAVAIL;
		}
		group_info(r, &g[i]);
		freeReplyObject(r);
	}
	for (size_t i = 0; rv == SH_OK && i < keys->elements; i++)
		if (is_str(keys->element[i]))
			rv = scan_stream(sc, keys->element[i]->str, &g[i]);
	free(g);
	return rv;
}

/* One SCAN page; the next cursor into cursor. */
static enum sh_err scan_page(struct scan *sc, char *cursor, size_t len)
{
	redisReply *r = redisCommand(sc->rc, "SCAN %s MATCH sharded:{*}:ops COUNT %d TYPE stream",
				     cursor, SCAN_COUNT);
	enum sh_err rv;

	if (!r)
		return SH_EUNAVAIL;
	if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 || !is_str(r->element[0]) ||
	    r->element[1]->type != REDIS_REPLY_ARRAY) {
		freeReplyObject(r);
		return SH_EREMOTE;
	}
	snprintf(cursor, len, "%s", r->element[0]->str);
	rv = scan_keys(sc, r->element[1]);
	freeReplyObject(r);
	return rv;
}

static uint64_t fnv(uint64_t h, const void *p, size_t len)
{
	for (const unsigned char *c = p; len--; c++)
		h = (h ^ *c) * 1099511628211ULL;
	return h;
}

bool takeover_due(struct takeover_state *ts, const struct nodereg_entry *nodes, size_t n,
		  int64_t now_ms)
{
	uint64_t h = 1469598103934665603ULL;
	bool silent = false;

	for (size_t i = 0; i < n; i++) {
		if (!nodereg_alive(&nodes[i], now_ms)) {
			silent |= now_ms - nodes[i].seen_ms < TAKEOVER_SILENT_MS;
			continue;
		}
		h = fnv(h, nodes[i].node, strlen(nodes[i].node) + 1);
		h = fnv(h, &nodes[i].pid, sizeof(nodes[i].pid));
		h = fnv(h, &nodes[i].started_s, sizeof(nodes[i].started_s));
	}
	if (h != ts->members || !ts->changed_ms) {
		ts->members = h;
		ts->changed_ms = now_ms;
	}
	if (!silent && now_ms - ts->changed_ms >= TAKEOVER_CHANGE_MS &&
	    now_ms - ts->scanned_ms < TAKEOVER_QUIET_MS)
		return false;
	ts->scanned_ms = now_ms;
	return true;
}

enum sh_err takeover_scan(redisContext *rc, const char *self, struct takeover_state *ts,
			  takeover_fn fn, void *ctx, size_t *claimed)
{
	struct nodereg_entry *nodes;
	struct scan sc = { .rc = rc, .self = self, .fn = fn, .ctx = ctx };
	char cursor[32] = "0";
	enum sh_err rv;

	*claimed = 0;
	if ((rv = nodereg_list(rc, false, &nodes, &sc.nn, &sc.now_ms)) != SH_OK)
		return rv;
	sc.nodes = nodes;
	if (!takeover_due(ts, nodes, sc.nn, sc.now_ms)) {
		free(nodes);
		return SH_OK;
	}
	do
		rv = scan_page(&sc, cursor, sizeof(cursor));
	while (rv == SH_OK && strcmp(cursor, "0") != 0);
	free(nodes);
	*claimed = sc.claimed;
	return rv;
}
