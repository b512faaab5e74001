/* kcache.h - what the kernel may hold of each record, so that reads can use
 * its page cache and still never show a stale or torn record.
 *
 * The page cache and the size (i_size) belong to the inode, shared by every
 * open. A read-only open gets the page cache ("cached open": no direct_io)
 * only when both are known to fit the snapshot it reads:
 *  - pages: they were filled from a snapshot with the same fingerprint
 *    (FOPEN_KEEP_CACHE), or the open drops them (no keep_cache);
 *  - size: the kernel's size is the snapshot's length: the last attributes
 *    sent gave it, or the only writer since wrote that many bytes from
 *    empty (O_TRUNC or a new record; its writes set the size), or the
 *    notifier stored the whole record into the kernel, and nothing
 *    made it unknown since (an invalidation queued and not yet sent, a
 *    dropped one, another writer). Stale attributes are fine: the read past
 *    the end asks GETATTR, which answers a size that fits, and a reply the
 *    kernel drops (an invalidation crossed it) leaves the size as it was;
 *  - no writer is open, and every other cached open reads the same snapshot
 *    (one size for all of them).
 * A writer's O_TRUNC sets the size to 0 for every open and its writes move
 * it, so an open that may write waits (a bounded time) until the cached
 * opens of its inode are closed; meanwhile new readers open direct_io.
 * A GETATTR while a cached open reads an older snapshot (changed behind the
 * kernel: sync, invalidate) answers that snapshot's length, for no time, so
 * that a reader that opened before a change reads its snapshot whole.
 * Everything else is a direct_io open, as before.
 * Thread-safe; keyed by inode number (never reused while mounted). A NULL
 * kcache caches nothing: every open is direct_io.
 */
#ifndef SHARDED_KCACHE_H
#define SHARDED_KCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct kcache;

struct kcache *kcache_new(void);
void kcache_free(struct kcache *k);

/* A record content's fingerprint (never 0: 0 is "nothing cached"). */
uint64_t kcache_fp(const char *buf, size_t len);

/* A read-only open of ino reading a snapshot (fp, len): true for a cached
 * open (the caller must call kcache_close_read), and *keep tells whether the
 * pages may be kept. false: use direct_io. */
bool kcache_open_read(struct kcache *k, uint64_t ino, uint64_t fp, size_t len, bool *keep);
void kcache_close_read(struct kcache *k, uint64_t ino);

/* Read-only opens of records so far, by what they got. */
enum kcache_open_kind {
	KCACHE_KEPT,	/* the page cache, its pages kept */
	KCACHE_FILLED,	/* the page cache, its pages dropped first */
	KCACHE_DIRECT,	/* direct_io */
	KCACHE_OPEN_KINDS
};
void kcache_counts(struct kcache *k, unsigned long long counts[KCACHE_OPEN_KINDS]);

/* An open that may write (or truncate) ino, and its release: waits up to
 * wait_ms for ino's cached opens to close; false if some stayed open. */
bool kcache_open_write(struct kcache *k, uint64_t ino, int wait_ms);
void kcache_close_write(struct kcache *k, uint64_t ino);

/* A writer stored a change; from_empty: it opened with O_TRUNC (or created
 * the record) and wrote len bytes from offset 0 on, nothing else. */
void kcache_written(struct kcache *k, uint64_t ino, bool from_empty, size_t len);

/* The attributes about to be sent for ino, whose record is (fp, len) now.
 * Returns the size to send; *cacheable: whether they may carry a timeout
 * (false: send them with no timeout). */
size_t kcache_attr(struct kcache *k, uint64_t ino, uint64_t fp, size_t len, bool *cacheable);

/* Invalidation of ino queued for the kernel, and then sent (sent=false:
 * dropped from a full queue, the kernel still holds what it held). */
void kcache_inval_queued(struct kcache *k, uint64_t ino);
void kcache_inval_done(struct kcache *k, uint64_t ino, bool sent);

/* ino was just made by a CREATE whose reply gave the kernel size 0 (call it
 * before kcache_open_write): its writer's size is then known, as after an
 * O_TRUNC. Nothing if the daemon already knew ino. */
void kcache_created(struct kcache *k, uint64_t ino);

/* Instead of invalidating ino (queued, the only one pending), the notifier
 * may store the record's whole new content (len bytes) into the kernel's
 * page cache: the kernel then holds it whole, its size len, and its mode
 * stays valid (an invalidation drops every attribute, costing the next open
 * a GETATTR). Allowed only when that grows the size the kernel is known to
 * hold and no open of ino reads or writes. true: send the store, then call
 * kcache_store_done with the ticket (it ends the pending invalidation);
 * false: invalidate as usual. */
bool kcache_store_begin(struct kcache *k, uint64_t ino, size_t len, uint64_t *ticket);
void kcache_store_done(struct kcache *k, uint64_t ino, uint64_t ticket, size_t len, uint64_t fp);

/* The kernel forgot ino. */
void kcache_forget(struct kcache *k, uint64_t ino);

#endif
