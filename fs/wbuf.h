/* wbuf.h - what the write path of records may hold in memory.
 *
 * Every open record being written keeps its document in a buffer until
 * close() commits it. Two rules bound that memory and keep write() honest:
 * - one budget over all those buffers (like the scratch files' total cap):
 *   a buffer that would take it past its cap is refused (ENOSPC at the FUSE
 *   layer), so thousands of open writers cannot grow the daemon without end;
 * - a write() whose data would take a document past its cap must fail as a
 *   whole with EFBIG. The kernel cuts a large write() into requests of at most
 *   its largest request size and returns a short count when a later one fails,
 *   so a request that may be followed by more and ends near the cap is
 *   refused already (wbuf_write_refused). The kernel (6.x) cuts at file
 *   offsets: a write() at an offset that is not page-aligned first sends the
 *   head up to the next page boundary, then requests of max_write bytes, the
 *   last one shorter; every request but the last ends on a page boundary.
 */
#ifndef SHARDED_WBUF_H
#define SHARDED_WBUF_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

struct wbudget {
	size_t cap;		/* 0: no cap */
	atomic_size_t used;
};

void wbudget_init(struct wbudget *b, size_t cap);

/* Take n bytes: false (nothing taken) when that would pass the cap. */
bool wbudget_take(struct wbudget *b, size_t n);

/* Give back n bytes taken before. */
void wbudget_give(struct wbudget *b, size_t n);

size_t wbudget_used(struct wbudget *b);

/* Must a write request of size bytes at offset off of a record be refused
 * (EFBIG) when documents are capped at cap bytes and the kernel sends
 * requests of at most max_req bytes (its max_write), cut at page boundaries
 * of the writer's buffer (page bytes)?
 * - yes when it ends past the cap;
 * - yes when more of the same write() may follow it (it ends on a page
 *   boundary and is a head shorter than a page, or as large as a request can
 *   be, within a page for kernels that cut at the writer's buffer pages) and
 *   it ends within one page of the cap: the next request would cross the cap
 *   after this one was counted as written.
 * With cap <= max_req (the default) every write() at a page-aligned offset
 * that crosses the cap fails at its first request, so write() returns EFBIG
 * instead of a short count. The price: a document of exactly cap bytes (cap
 * a multiple of the page size) may be refused, when its last request is one
 * of those shapes. */
bool wbuf_write_refused(size_t off, size_t size, size_t cap, size_t max_req, size_t page);

#endif
