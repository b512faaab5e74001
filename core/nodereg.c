/* nodereg.c - the nodes registry in Redis: heartbeats, the list, liveness. */
#include "nodereg.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

bool nodereg_format(const struct nodereg_entry *e, char *buf, size_t len)
{
	json_object *o = json_object_new_object();
	bool ok;

	if (!o)
		return false;
	json_object_object_add(o, "node", json_object_new_string(e->node));
	json_object_object_add(o, "host", json_object_new_string(e->host));
	json_object_object_add(o, "pid", json_object_new_int64(e->pid));
	json_object_object_add(o, "started", json_object_new_int64(e->started_s));
	json_object_object_add(o, "version", json_object_new_string(e->version));
	json_object_object_add(o, "seen", json_object_new_int64(e->seen_ms));
	json_object_object_add(o, "pending", json_object_new_int64(e->pending));
	ok = (size_t)snprintf(buf, len, "%s",
			      json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN)) < len;
	json_object_put(o);
	return ok;
}

static bool get_str(json_object *o, const char *name, char *out, size_t len)
{
	json_object *v;

	if (!json_object_object_get_ex(o, name, &v) || !json_object_is_type(v, json_type_string))
		return false;
	return (size_t)snprintf(out, len, "%s", json_object_get_string(v)) < len;
}

static bool get_int(json_object *o, const char *name, int64_t *out)
{
	json_object *v;

	if (!json_object_object_get_ex(o, name, &v) || !json_object_is_type(v, json_type_int))
		return false;
	*out = json_object_get_int64(v);
	return true;
}

bool nodereg_parse(const char *json, struct nodereg_entry *e)
{
	json_object *o;
	bool ok;

	memset(e, 0, sizeof(*e));
	if (!json || strlen(json) > NODEREG_JSON_MAX || !(o = json_tokener_parse(json)))
		return false;
	ok = json_object_is_type(o, json_type_object) &&
	     get_str(o, "node", e->node, sizeof(e->node)) && e->node[0] &&
	     get_str(o, "host", e->host, sizeof(e->host)) &&
	     get_str(o, "version", e->version, sizeof(e->version)) &&
	     get_int(o, "pid", &e->pid) && get_int(o, "started", &e->started_s) &&
	     get_int(o, "seen", &e->seen_ms) && get_int(o, "pending", &e->pending);
	json_object_put(o);
	if (!ok)
		memset(e, 0, sizeof(*e));
	return ok;
}

bool nodereg_alive(const struct nodereg_entry *e, int64_t now_ms)
{
	/* a heartbeat "from the future" is a node whose beat landed after our TIME */
	return now_ms - e->seen_ms <= NODEREG_SILENT_MS;
}

bool nodereg_is_alive(const struct nodereg_entry *list, size_t n, const char *node,
		      int64_t now_ms)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(list[i].node, node) == 0)
			return nodereg_alive(&list[i], now_ms);
	return false;
}

enum sh_err nodereg_time(redisContext *rc, int64_t *now_ms)
{
	redisReply *r = redisCommand(rc, "TIME");
	enum sh_err rv = SH_EUNAVAIL;

	if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
	    r->element[0]->type == REDIS_REPLY_STRING && r->element[1]->type == REDIS_REPLY_STRING) {
		*now_ms = strtoll(r->element[0]->str, NULL, 10) * 1000 +
			  strtoll(r->element[1]->str, NULL, 10) / 1000;
		rv = SH_OK;
	}
	freeReplyObject(r);
	return rv;
}

static enum sh_err status_of(redisReply *r)
{
	enum sh_err rv = !r ? SH_EUNAVAIL : r->type == REDIS_REPLY_ERROR ? SH_EREMOTE : SH_OK;

	freeReplyObject(r);
	return rv;
}

enum sh_err nodereg_beat(redisContext *rc, struct nodereg_entry *e)
{
	char json[NODEREG_JSON_MAX];
	enum sh_err rv;

	if ((rv = nodereg_time(rc, &e->seen_ms)) != SH_OK)
		return rv;
	if (!nodereg_format(e, json, sizeof(json)))
		return SH_EINVAL;
	return status_of(redisCommand(rc, "HSET %s %s %s", NODEREG_KEY, e->node, json));
}

enum sh_err nodereg_leave(redisContext *rc, const char *node)
{
	return status_of(redisCommand(rc, "HDEL %s %s", NODEREG_KEY, node));
}

static int entry_cmp(const void *a, const void *b)
{
	return strcmp(((const struct nodereg_entry *)a)->node,
		      ((const struct nodereg_entry *)b)->node);
}

/* Parse HGETALL's name/value pairs into out (room for one per pair, at most
 * NODEREG_NODES_MAX used); the long-silent ones are deleted with forget. */
static size_t parse_all(redisContext *rc, const redisReply *r, bool forget, int64_t now_ms,
			struct nodereg_entry *out)
{
	size_t n = 0;

	for (size_t i = 0; i + 1 < r->elements && n < NODEREG_NODES_MAX; i += 2) {
		const redisReply *name = r->element[i], *val = r->element[i + 1];

		if (name->type != REDIS_REPLY_STRING || val->type != REDIS_REPLY_STRING ||
		    !nodereg_parse(val->str, &out[n]))
			continue;
		if (now_ms - out[n].seen_ms > NODEREG_FORGET_MS) {
			if (forget)
				freeReplyObject(redisCommand(rc, "HDEL %s %s", NODEREG_KEY,
							     name->str));
			continue;
		}
		n++;
	}
	return n;
}

enum sh_err nodereg_list(redisContext *rc, bool forget, struct nodereg_entry **out, size_t *n,
			 int64_t *now_ms)
{
	struct nodereg_entry *list;
	redisReply *r;
	enum sh_err rv;

	*out = NULL;
	*n = 0;
	if ((rv = nodereg_time(rc, now_ms)) != SH_OK)
		return rv;
	if (!(r = redisCommand(rc, "HGETALL %s", NODEREG_KEY)))
		return SH_EUNAVAIL;
	if (r->type != REDIS_REPLY_ARRAY) {
		freeReplyObject(r);
		return SH_EREMOTE;
	}
	if (!(list = calloc(r->elements / 2 + 1, sizeof(*list)))) {
		freeReplyObject(r);
		return SH_ENOMEM;
	}
	*n = parse_all(rc, r, forget, *now_ms, list);
	freeReplyObject(r);
	qsort(list, *n, sizeof(*list), entry_cmp);
	*out = list;
	return SH_OK;
}
