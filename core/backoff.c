/* backoff.c - capped exponential backoff with jitter (see backoff.h). */
#include "backoff.h"

void backoff_init(struct backoff *b, uint64_t base_ms, uint64_t cap_ms, enum backoff_jitter jitter)
{
	b->base_ms = base_ms ? base_ms : 1;
	b->cap_ms = cap_ms < b->base_ms ? b->base_ms : cap_ms;
	b->jitter = jitter;
	backoff_reset(b);
}

void backoff_reset(struct backoff *b)
{
	b->attempt = 0;
	b->prev_ms = b->base_ms;
}

/* Uniform in [lo, hi]; the modulo bias is irrelevant at these ranges. */
static uint64_t between(uint64_t lo, uint64_t hi, uint64_t random)
{
	uint64_t span = hi - lo;

	if (span == UINT64_MAX)
		return random;
	return lo + random % (span + 1);
}

/* min(cap, base * 2^attempt) without overflow: attempt stops at 64, where a shift would be
 * undefined; at 63 base 1 still reaches 2^63 when the cap allows. */
static uint64_t ceiling(const struct backoff *b)
{
	if (b->attempt >= 64 || b->base_ms > (b->cap_ms >> b->attempt))
		return b->cap_ms;
	return b->base_ms << b->attempt;
}

static uint64_t decorrelated(const struct backoff *b, uint64_t random)
{
	uint64_t hi = b->prev_ms > b->cap_ms / 3 ? b->cap_ms : b->prev_ms * 3;

	return between(b->base_ms, hi, random);
}

uint64_t backoff_next_ms(struct backoff *b, uint64_t random)
{
	uint64_t delay;

	if (b->jitter == BACKOFF_DECORRELATED)
		delay = decorrelated(b, random);
	else
		delay = between(0, ceiling(b), random);
	if (b->attempt < 64)	/* from 64 on the ceiling is the cap anyway */
		b->attempt++;
	b->prev_ms = delay;
	return delay;
}
