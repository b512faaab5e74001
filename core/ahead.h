/* ahead.h - ids reserved ahead of need, off the reader's path.
 *
 * .next-id hands out ids the block reserved from the table's sequence; the
 * reservation is a PostgreSQL round trip (20 ms to a remote server). A read
 * of .next-id that leaves a block's reserve low asks for more here and
 * returns at once; one background thread does the reservations. How many it
 * reserves adapts to the block's pace: a block that asks again within
 * AHEAD_FAST_NS of its last reservation gets twice as many (up to
 * AHEAD_MAX), one quiet for AHEAD_QUIET_NS starts again at AHEAD_MIN, and
 * the reserve counts as low below half of the last reservation, so a block
 * consuming ids faster than one round trip's worth rarely runs dry.
 *
 * The sizing (ahead_size, ahead_low) is pure bookkeeping under a lock and
 * runs without the thread (unit tests).
 */
#ifndef SHARDED_AHEAD_H
#define SHARDED_AHEAD_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"

#define AHEAD_MIN 100
#define AHEAD_MAX 1600
#define AHEAD_FAST_NS 1000000000LL		/* asked again sooner: double */
#define AHEAD_QUIET_NS (10 * 1000000000LL)	/* quiet longer: back to AHEAD_MIN */

struct ahead;

/* Reserve ids of model in block, as many as ahead_size says (called on the
 * ahead thread). */
typedef void (*ahead_fn)(void *ctx, const char *block, const void *model);

/* The bookkeeping, no thread yet. NULL when out of memory. */
struct ahead *ahead_new(ahead_fn fn, void *ctx);
/* Start the thread: asks from now on are served in the background. */
enum sh_err ahead_start(struct ahead *a);
/* Stop the thread; asks still queued are dropped, later ones refused (a
 * later read of .next-id asks again). Accepts NULL. */
void ahead_stop(struct ahead *a);
/* ahead_stop, then free a. Accepts NULL. */
void ahead_free(struct ahead *a);

/* How many ids to reserve now for (block, model), counted as a reservation
 * made at now_ns. */
int ahead_size(struct ahead *a, const char *block, const void *model, int64_t now_ns);
/* Is a reserve of left ids low for (block, model)? */
bool ahead_low(struct ahead *a, const char *block, const void *model, int64_t left);
/* left ids remain: when low, queue a reservation for the thread (once per
 * block and model until it ran). false: low, and the thread cannot take it
 * (not running, or its queue full): the caller reserves itself. */
bool ahead_need(struct ahead *a, const char *block, const void *model, int64_t left);

#endif
