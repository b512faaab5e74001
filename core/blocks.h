/* blocks.h - the set of blocks this daemon holds, one store each.
 *
 * A block is named by its id, which is also its file name in the data
 * directory (<data>/<id>.sqlite), so ids are checked by block_id_check().
 * Blocks are reference counted: a block removed while a request or the sync
 * thread still uses it stays valid until the last block_put().
 */
#ifndef SHARDED_BLOCKS_H
#define SHARDED_BLOCKS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "store.h"

#define BLOCK_ID_MAX 128

/* What a block's records are: readers wait while LOADING and trigger a
 * reload when EXPIRED (life.c, through life_ready()). */
enum block_state { BLOCK_READY, BLOCK_LOADING, BLOCK_EXPIRED };

struct block {
	char *id;
	struct store *store;
	atomic_int refs;
	atomic_bool removed;
	/* removed with writes still pending: hidden from lookups, still synced,
	 * and deleted once the last one is in PostgreSQL (blockset_remove) */
	atomic_bool retiring;
	atomic_llong last_access_ns;
	int64_t gap_logged;	/* apply thread only: last stream gap reported */
	int64_t gap_seq, gap_since_ms;	/* apply thread only: the wait seen, and since when */
	/* apply thread only: entries this node read and left pending in Redis
	 * (they wait for another node's), and whether its pending entries were
	 * read since the start: a block with either is read even with nothing
	 * of its own to send, or the other node's writes would wait in our
	 * pending list for the 60 s takeover */
	size_t held;
	bool held_checked;
	/* apply thread only: PostgreSQL refuses this block's bookkeeping or
	 * batch (not an outage): held back until then, others go on (sync.c) */
	int64_t refused_until_ms;
	bool refused_checked;	/* apply thread only: its sync_refused meta was read */
	/* Held shared by every writer, exclusively by blockset_remove(), so a
	 * write can never land in a block that is being deleted. */
	pthread_rwlock_t life;
	/* under the set's lock: a blockset_remove() waits for this block's
	 * writes or deletes its files; hidden from lookups, its id still taken */
	bool removing;
	/* state and its waiters (life.c); progress of the current load */
	pthread_mutex_t state_lock;
	pthread_cond_t state_cond;
	enum block_state state;		/* under state_lock */
	atomic_llong load_rows, load_total;	/* total -1: unknown */
	atomic_llong reload_after_ns;	/* an expired block's failed reload: not before this */
};

struct blockset;

/* Is id usable as a block id (and file name)? why gets the reason when not. */
enum sh_err block_id_check(const char *id, char *why, size_t whylen);

/* Open every <id>.sqlite in data_dir (created if missing), holding the
 * directory's lock: SH_EBUSY when another daemon has it. */
enum sh_err blockset_open(const char *data_dir, bool sync_full, struct blockset **out);

/* Open every block's file again, in this process (after a fork), and note
 * this process in the directory's lock file. */
enum sh_err blockset_reopen(struct blockset *bs);

/* Accepts NULL. Every block must have been put. */
void blockset_close(struct blockset *bs);

/* A counted reference to block id: SH_ENOENT when absent, retiring or
 * being removed. */
enum sh_err blockset_get(struct blockset *bs, const char *id, struct block **out);

/* Create a new, empty block in state BLOCK_LOADING; SH_EEXIST when it
 * exists, SH_EBUSY while a removed block of that id still has writes to
 * send or is being removed. Returns a reference. Blocks opened from disk
 * start BLOCK_READY. */
enum sh_err blockset_create(struct blockset *bs, const char *id, struct block **out);

/* Delete block id and its file. With writes still pending, the block
 * retires instead (*retired set): it is hidden and takes no more writes,
 * the sync goes on sending its outbox, and a call once nothing is pending
 * deletes it. The retiring mark is kept in the file, across restarts.
 * It waits for the writes in flight in that block, holding no lock of the
 * set meanwhile: the block is hidden (SH_ENOENT to lookups and to another
 * remove, SH_EBUSY to a create of its id) until it is gone or, on an
 * error, back. */
enum sh_err blockset_remove(struct blockset *bs, const char *id, bool *retired);

/* References to every block, retiring ones included, sorted by id; put
 * each, then free(*out). */
enum sh_err blockset_snapshot(struct blockset *bs, struct block ***out, size_t *n);

size_t blockset_count(struct blockset *bs);

/* The data directory (absolute). */
const char *blockset_dir(const struct blockset *bs);

/* Drop a reference. Accepts NULL. */
void block_put(struct block *b);

#endif
