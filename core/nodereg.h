/* nodereg.h - the registry of the nodes (daemons) that share one Redis.
 *
 * One Redis hash, sharded:nodes (a single key, so one Cluster slot; it has no
 * braces and so never matches a block's keys), holds a field per node name
 * whose value is a small JSON object: node, host, pid, started (Unix s),
 * version, seen (Redis server time, ms) and pending (writes not yet applied).
 * The relay thread writes its node's field every NODEREG_BEAT_MS and deletes
 * it on a clean stop; a node silent for NODEREG_SILENT_MS is taken for dead
 * (its consumer's entries are taken over, sync.h). Times are Redis's own
 * (TIME), so the hosts' clocks need not agree. Fields silent for
 * NODEREG_FORGET_MS are deleted by any live node's heartbeat.
 *
 * The JSON and the liveness rule are pure functions (tests/unit/test_nodereg.c);
 * the rest talks to Redis on a connection the caller owns.
 */
#ifndef SHARDED_NODEREG_H
#define SHARDED_NODEREG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "error.h"

#define NODEREG_KEY "sharded:nodes"
#define NODEREG_BEAT_MS 1000
#define NODEREG_SILENT_MS 5000			/* five beats missed: dead */
#define NODEREG_FORGET_MS (24LL * 3600 * 1000)	/* then dropped from the list */
#define NODEREG_NAME_MAX 128
#define NODEREG_HOST_MAX 256
#define NODEREG_VERSION_MAX 32
#define NODEREG_JSON_MAX 1024			/* a field longer than this is not ours */
#define NODEREG_NODES_MAX 1024			/* nodes read from the hash; the rest ignored */

struct nodereg_entry {
	char node[NODEREG_NAME_MAX];
	char host[NODEREG_HOST_MAX];
	char version[NODEREG_VERSION_MAX];
	int64_t pid;
	int64_t started_s;	/* Unix seconds */
	int64_t seen_ms;	/* Redis time of the last heartbeat */
	int64_t pending;	/* writes the node had not applied then */
};

/* The value of a node's field; false if it does not fit in len. */
bool nodereg_format(const struct nodereg_entry *e, char *buf, size_t len);

/* Parse a field's value; false (e zeroed) if it is not one of ours. */
bool nodereg_parse(const char *json, struct nodereg_entry *e);

/* Is e alive at Redis time now_ms? */
bool nodereg_alive(const struct nodereg_entry *e, int64_t now_ms);

/* Redis's clock in ms. */
enum sh_err nodereg_time(redisContext *rc, int64_t *now_ms);

/* Write e's field with seen = Redis's time now (e->seen_ms is set). */
enum sh_err nodereg_beat(redisContext *rc, struct nodereg_entry *e);

/* Delete node's field (a clean stop). */
enum sh_err nodereg_leave(redisContext *rc, const char *node);

/* Every node in the registry, sorted by name (*out malloc'd, caller frees),
 * and Redis's time now. With forget, also deletes the fields silent past
 * NODEREG_FORGET_MS (and leaves them out). */
enum sh_err nodereg_list(redisContext *rc, bool forget, struct nodereg_entry **out, size_t *n,
			 int64_t *now_ms);

/* Is node alive in list (as read at now_ms)? */
bool nodereg_is_alive(const struct nodereg_entry *list, size_t n, const char *node,
		      int64_t now_ms);

#endif
