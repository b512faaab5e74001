/* store.h - one block's local copy: a SQLite file in WAL mode.
 *
 * Tables (an operator may read them with sqlite3):
 *   records(model, pk, doc, mtime_ns)   the cached rows as JSON documents
 *   outbox(seq, op, model, pk, doc, relayed_ns, origin, base, after, after_seq)
 *                                       writes not yet applied to PostgreSQL
 *   meta(key, value)                    block settings and bookkeeping
 *   ids(model, id, handed)              ids reserved from key sequences
 * outbox.op is 'U' (upsert), 'C' (a write of a record the block did not
 * hold: a create, op.h) or 'D'.
 *
 * A write changes records and appends to outbox in one transaction, so an
 * acknowledged write is never in one without the other. Sequence numbers
 * start at the block's creation time in microseconds and grow by one per
 * write (meta last_seq). Each write also carries its origin (op.h): meta
 * origin names the one the file's last write went out under. A process
 * begins a new origin at its first write to a file it opened from disk, and
 * whenever the file's origin or last_seq is not what it left there (another
 * process wrote; the file was restored from a backup or rolled back by a
 * power loss, parked or not), so a seq counted again never reuses a name
 * PostgreSQL already holds. Files from before origins are migrated at open:
 * their outbox rows take OP_ORIGIN_LEGACY with the block's base_seq.
 *
 * Every function is safe to call from any thread: a store serialises its
 * own SQLite connection with a mutex.
 */
#ifndef SHARDED_STORE_H
#define SHARDED_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "op.h"

struct store;

struct store_stats {
	int64_t pending;	/* outbox entries */
	int64_t in_flight;	/* of those, handed to Redis at least once */
	int64_t records;	/* cached records */
	int64_t oldest_pending_ns;	/* mtime of the oldest outbox entry, 0 if none */
};

/* Open (create when create is set) the block file at path. */
enum sh_err store_open(const char *path, bool create, bool sync_full, struct store **out);

/* Accepts NULL. */
void store_close(struct store *st);

/* At most max block connections are open at once (default 64): beyond that
 * the least recently used store is parked, its SQLite connection closed. A
 * parked store answers store_stats and store_meta_get from memory while its
 * files stay as they were, and opens again on any other call. */
void store_set_max_open(size_t max);
size_t store_open_count(void);
bool store_is_parked(struct store *st);

/* Park st now; remember: answer from memory as above, else open on the next
 * call of any kind. SQLite connections must not cross a fork: park every
 * store before one, and without remember in the child for any opened since. */
void store_park(struct store *st, bool remember);

/* The stored document of a record; *doc is malloc'd. SH_ENOENT when absent. */
enum sh_err store_get(struct store *st, const char *model, const char *pk, char **doc,
		      int64_t *mtime_ns);

/* Cache a row read from PostgreSQL, unless the block already holds the record. */
enum sh_err store_cache(struct store *st, const char *model, const char *pk, const char *doc);

/* A user's write: upsert (doc) or delete (doc NULL) the record and append it
 * to the outbox, in one transaction. *seq receives its sequence number (its
 * origin is in meta "origin" once it committed). An
 * upsert also turns a deletion of the record still held back from Redis
 * into this write. */
enum sh_err store_write(struct store *st, const char *model, const char *pk, const char *doc,
			int64_t *seq);

/* Builds the document to store from the stored one (existing NULL when the
 * block does not hold the record): *doc malloc'd, never NULL on SH_OK; and
 * *sent (NULL on entry) what the outbox entry carries when it is not all of
 * *doc (an update's changed columns, doc.h doc_prepare_update), malloc'd.
 * Anything but SH_OK is returned by store_write_merged and nothing is written. */
typedef enum sh_err (*store_merge_fn)(void *ctx, const char *existing, char **doc, char **sent);

/* store_write of an upsert whose document is merge's answer, with the read of
 * the stored record inside the write's transaction (BEGIN IMMEDIATE, under the
 * store's lock): concurrent partial writes of one record compose. The outbox
 * gets merge's *sent for an update; a create (the block did not hold the
 * record) and a write that takes a held-back deletion's place carry the
 * whole document. */
enum sh_err store_write_merged(struct store *st, const char *model, const char *pk,
			       store_merge_fn merge, void *ctx, int64_t *seq);

/* Call fn for each record of model, in key order; fn returns non-zero to stop. */
typedef int (*store_list_fn)(void *ctx, const char *pk, size_t doc_len, int64_t mtime_ns);
enum sh_err store_list(struct store *st, const char *model, store_list_fn fn, void *ctx);

/* Outbox entries to send to Redis: never sent, or sent before resend_before_ns,
 * in seq order, stopping before a deletion made after hold_deletes_after_ns
 * (a short grace in which a new write to the record can revoke it, see
 * store_write). At most max; *ops is malloc'd (op_free_array). */
enum sh_err store_outbox_to_relay(struct store *st, int64_t resend_before_ns,
				  int64_t hold_deletes_after_ns, size_t max, struct op **ops, size_t *n);

/* Record that entries up to seq were handed to Redis at now_ns. */
enum sh_err store_outbox_relayed(struct store *st, int64_t from_seq, int64_t upto_seq,
				 int64_t now_ns);

/* Forget that anything was sent (after Redis lost its data). */
enum sh_err store_outbox_unrelay(struct store *st);

/* PostgreSQL has applied origin's writes up to seq: drop those outbox
 * entries and count what left as applied (meta applied_total), in one
 * transaction, less up to *not_applied of them (refused: dead
 * letters; *not_applied is lowered by what was taken off). Counting here
 * rather than when a batch commits in PostgreSQL keeps the count exact when
 * that commit's answer was lost (a crash, a cut connection): such writes are
 * found applied on a later pass and leave the outbox then. *applied gets
 * what was counted. */
enum sh_err store_outbox_settle(struct store *st, const char *origin, int64_t upto_seq,
				int64_t *not_applied, int64_t *applied);

/* The distinct origins of the outbox entries sent to Redis (at most max, in
 * origin order) into out[0..*n): what to ask PostgreSQL about when another
 * node may have applied this file's writes (the stream is shared by every
 * node holding the block). */
enum sh_err store_outbox_origins(struct store *st, char (*out)[OP_ORIGIN_MAX], size_t max,
				 size_t *n);

/* The records (model, pk: keys[2i], keys[2i+1], each once, at most max) of
 * origin's outbox entries up to upto_seq: writes PostgreSQL has that are
 * still here, i.e. applied by a run that died before it settled them, or by
 * another node. *keys is freed with store_keys_free. */
enum sh_err store_outbox_applied_keys(struct store *st, const char *origin, int64_t upto_seq,
				      size_t max, char ***keys, size_t *n);
void store_keys_free(char **keys, size_t n);

/* The highest seq among ops[0..n) that this file wrote ((origin, seq) in its
 * outbox), 0 when none: a batch also holds other nodes' writes, whose seqs
 * are another file's counter and say nothing about this one's. */
int64_t store_own_upto(struct store *st, const struct op *ops, size_t n);

/* Drop the block's copy of a record unless a write to it is pending (it
 * reads through from PostgreSQL again). */
enum sh_err store_evict(struct store *st, const char *model, const char *pk);

/* Replace the cached record with what PostgreSQL holds (doc NULL: gone),
 * unless a write newer than applied_seq is still pending for it. */
enum sh_err store_refresh(struct store *st, const char *model, const char *pk, const char *doc,
			  int64_t applied_seq);

/* What store_remote did. */
enum store_remote_result {
	STORE_REMOTE_SAME,	/* nothing to do: held as it is, or not held and not to add */
	STORE_REMOTE_CHANGED,	/* the copy was replaced, added or dropped */
	STORE_REMOTE_KEPT	/* a local write to it is pending: it wins (read-your-writes) */
};

/* A change made in PostgreSQL by someone else (capture.c): replace the
 * record with doc, or drop it (doc NULL), unless any write to it is pending.
 * A record the block does not hold is added only with add set (a new row
 * that its loader rule takes). In one locked step, so that a write that
 * commits meanwhile is either seen pending or made after. */
enum sh_err store_remote(struct store *st, const char *model, const char *pk, const char *doc,
			 bool add, enum store_remote_result *res);

/* Is a write to this record waiting in the outbox? */
bool store_has_pending(struct store *st, const char *model, const char *pk);

/* Ids reserved from a model's key sequence (engine_next_id): kept in table
 * ids(model, id, handed) so that they hand out with PostgreSQL down, and
 * remembered once handed out (ids=strict admits only those as new keys).
 * They hand out of a lease marked handed in the file by one fsynced commit
 * (whatever sync= says), so an id never hands out twice, also after a crash
 * or a power loss: a later open counts the whole lease as handed. */
enum sh_err store_ids_add(struct store *st, const char *model, const int64_t *ids, size_t n);
/* Hand out the lowest reserved id; *left: how many remain (leased or free).
 * SH_ENOENT: none. */
enum sh_err store_ids_take(struct store *st, const char *model, int64_t *id, int64_t *left);
bool store_ids_handed(struct store *st, const char *model, int64_t id);
/* id was handed out and no record with that key was ever stored in this file
 * since: PostgreSQL cannot have its row (it comes from our reservation). */
bool store_ids_unstored(struct store *st, const char *model, int64_t id);

/* store_refresh for each applied upsert of a batch (op->returned set, not
 * dead), in one transaction; changed[i] tells whether record i now reads
 * differently (so the kernel must be told). */
enum sh_err store_refresh_batch(struct store *st, const struct op *ops, size_t n,
				int64_t applied_seq, bool *changed);

/* Drop every cached record that has no pending write. */
enum sh_err store_drop_synced(struct store *st, int64_t *dropped);

enum sh_err store_stats(struct store *st, struct store_stats *stats);

/* Just stats->pending, without counting the records (for the sync's passes,
 * which ask of every block several times a second). */
enum sh_err store_pending(struct store *st, int64_t *pending);

/* The outbox count read from the file now, never a parked store's remembered
 * one (another process, such as sharded dlq retry, may have written since):
 * for decisions that drop data, such as expiry. */
enum sh_err store_pending_fresh(struct store *st, int64_t *pending);

/* rmdir's decision: count the outbox under SQLite's write lock and, when it
 * is empty, unlink the block's files before letting the lock go, so that a
 * write committed by another process is either counted (*pending > 0,
 * nothing removed) or made after the files are gone (that process sees its
 * file unlinked). */
enum sh_err store_remove_if_idle(struct store *st, int64_t *pending, bool *removed);

/* Loading rows from PostgreSQL in one transaction, on a connection of its
 * own so that readers of the block (and its sync-status) are not held up.
 * Rows for records with a pending write are skipped: the local write wins. */
struct store_load;

/* Begin; with replace, records without pending writes are dropped first
 * (in the same transaction, so readers see the old or the new set). */
enum sh_err store_load_begin(struct store *st, bool replace, struct store_load **out);
enum sh_err store_load_row(struct store_load *ld, const char *model, const char *pk,
			   const char *doc);
/* Commit (or roll back) and free. Accepts NULL. */
enum sh_err store_load_end(struct store_load *ld, bool commit);

/* Drop every record without a pending write and give the space back. */
enum sh_err store_expire(struct store *st, int64_t *dropped);

/* Settings and bookkeeping. store_meta_get: SH_ENOENT when unset; *value malloc'd. */
enum sh_err store_meta_get(struct store *st, const char *key, char **value);
enum sh_err store_meta_set(struct store *st, const char *key, const char *value);
/* Add delta to an integer setting (missing = 0), never going below 0, in one
 * statement: safe against another thread or process doing the same. */
enum sh_err store_meta_add(struct store *st, const char *key, int64_t delta);

/* What a failed SQLite call (extended result code rc, the OS errno SQLite
 * saw) means: SH_ENOSPC when the disk is full (SQLITE_FULL, or an I/O error
 * with ENOSPC), so that a writer learns the cause; SH_EIO otherwise. */
enum sh_err store_sqlite_err(int rc, int sys_errno);

#endif
