/* wbuf.c - the budget of record write buffers, and the write() cap rule. */
#include "wbuf.h"

void wbudget_init(struct wbudget *b, size_t cap)
{
	b->cap = cap;
	atomic_init(&b->used, 0);
}

bool wbudget_take(struct wbudget *b, size_t n)
{
	size_t used = atomic_load(&b->used);

	do {
		if (b->cap && (n > b->cap || used > b->cap - n))
			return false;
	} while (!atomic_compare_exchange_weak(&b->used, &used, used + n));
	return true;
}

void wbudget_give(struct wbudget *b, size_t n)
{
	atomic_fetch_sub(&b->used, n);
}

size_t wbudget_used(struct wbudget *b)
{
	return atomic_load(&b->used);
}

bool wbuf_write_refused(size_t off, size_t size, size_t cap, size_t max_req, size_t page)
{
	size_t end = off + size;

	if (end < off || end > cap)
		return true;
	if (!max_req || !page || end % page != 0 || end + page <= cap)
		return false;
	/* a head up to a page boundary, or a request as large as they come */
	return size < page || size + page > max_req;
}
