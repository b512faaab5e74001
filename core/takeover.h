/* takeover.h - finding the stream entries that no live node will read.
 *
 * A node reads a block's stream only while it works on that block (it has
 * writes of its own pending there, or entries it read), so what a node that
 * died had handed to Redis would wait for another node to write to the block.
 * The apply thread of every node therefore scans, every few seconds, the
 * ops streams of all blocks in the Redis (SCAN, never KEYS) and per stream:
 *   - claims (XCLAIM) the entries pending to a consumer whose node is not
 *     alive in the registry (nodereg.h): a node killed after reading them;
 *   - notes entries that no consumer read for TAKEOVER_UNREAD_MS: a node
 *     killed after its relay sent them, before its apply thread read them;
 *   - notes entries its own consumer holds (claimed now or in an earlier scan
 *     and left waiting for another origin's entries).
 * and hands each stream with such entries to the caller, which applies them
 * (sync.c; it needs the catalog, not the block's file). Exactly-once does not
 * rest on this choice: two nodes that take the same entries apply them under
 * the block's advisory lock and sharded_applied (plan.h).
 * The scan is cheap (one pipelined XINFO GROUPS per SCAN page) but reads every
 * stream, so it runs only when something may be left: while a node in the
 * registry is silent (for its first TAKEOVER_SILENT_MS), for
 * TAKEOVER_CHANGE_MS after the set of live nodes
 * changed (a node left cleanly, or started again), and otherwise every
 * TAKEOVER_QUIET_MS (a live node cut off from PostgreSQL but not from Redis).
 */
#ifndef SHARDED_TAKEOVER_H
#define SHARDED_TAKEOVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "error.h"
#include "nodereg.h"

#define TAKEOVER_UNREAD_MS 3000		/* unread this long: its node is not reading */
#define TAKEOVER_CLAIM_IDLE_MS 1000	/* an entry a dead node read this long ago */
#define TAKEOVER_CLAIM_MAX 2000		/* entries claimed per stream and scan */
#define TAKEOVER_CHANGE_MS 10000	/* scans go on this long after the live nodes changed */
#define TAKEOVER_QUIET_MS 30000		/* the scan when every node is alive and none changed */
#define TAKEOVER_SILENT_MS 60000	/* a node silent longer is left to that scan */

/* What the decision to scan remembers between calls (zeroed at the start). */
struct takeover_state {
	uint64_t members;	/* hash of the live nodes (name, pid, start) */
	int64_t changed_ms;	/* Redis time they last changed */
	int64_t scanned_ms;	/* Redis time of the last scan */
};

/* One stream with entries for this node to apply. */
struct takeover_stream {
	const char *block;	/* the block id */
	const char *key;	/* its ops stream */
	size_t claimed;		/* entries just claimed from dead nodes' consumers */
	bool own_pending;	/* this consumer holds entries there (claimed or earlier) */
	bool unread;		/* entries nobody read for TAKEOVER_UNREAD_MS: read new ones */
};

/* Apply what st says; a non-SH_OK return ends the scan with that error. */
typedef enum sh_err (*takeover_fn)(void *ctx, const struct takeover_stream *st);

/* Is a scan due, with the registry nodes[0..n) read at Redis time now_ms?
 * Updates ts (a due scan counts as done). Pure. */
bool takeover_due(struct takeover_state *ts, const struct nodereg_entry *nodes, size_t n,
		  int64_t now_ms);

/* If takeover_due says so, scan every block's ops stream for this node
 * (consumer self, as named in the registry) as described above, calling fn
 * for each stream with work. *claimed counts the entries claimed.
 * SH_EUNAVAIL when Redis failed. */
enum sh_err takeover_scan(redisContext *rc, const char *self, struct takeover_state *ts,
			  takeover_fn fn, void *ctx, size_t *claimed);

/* The milliseconds part of a stream id ("<ms>-<n>"); -1 if malformed. */
int64_t takeover_id_ms(const char *id);

#endif
