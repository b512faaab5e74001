/* backoff.h - capped exponential backoff with jitter, for retrying backends.
 *
 * Pure arithmetic: the caller supplies the random numbers and does the
 * waiting, so the policy is tested without sleeping.
 *
 *   full jitter:         delay = random in [0, min(cap, base * 2^attempt)]
 *   decorrelated jitter: delay = random in [base, min(cap, 3 * previous delay)]
 *
 * Both spread retries of many clients so they do not hit a recovering server
 * in lockstep; decorrelated never returns less than base.
 */
#ifndef SHARDED_BACKOFF_H
#define SHARDED_BACKOFF_H

#include <stdint.h>

enum backoff_jitter {
	BACKOFF_FULL,
	BACKOFF_DECORRELATED
};

struct backoff {
	uint64_t base_ms;	/* first ceiling; at least 1 */
	uint64_t cap_ms;	/* no delay exceeds this; at least base_ms */
	enum backoff_jitter jitter;
	unsigned attempt;	/* retries since the last reset */
	uint64_t prev_ms;	/* last delay (decorrelated jitter) */
};

/* base_ms 0 is taken as 1 and cap_ms below base as base. */
void backoff_init(struct backoff *b, uint64_t base_ms, uint64_t cap_ms, enum backoff_jitter jitter);

/* The delay before the next attempt, given a uniformly random 64-bit number. */
uint64_t backoff_next_ms(struct backoff *b, uint64_t random);

/* After a success: start again from base. */
void backoff_reset(struct backoff *b);

#endif
