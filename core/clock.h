/* clock.h - the wall clock, in one place.
 *
 * Record mtimes, outbox timestamps, TTLs and retry deadlines are wall-clock
 * times (CLOCK_REALTIME) because they are stored in block files and compared
 * across restarts. Code that takes a time as a parameter instead (e.g.
 * life_expire_pass) can be tested without sleeping.
 */
#ifndef SHARDED_CLOCK_H
#define SHARDED_CLOCK_H

#include <stdint.h>

/* CLOCK_REALTIME in nanoseconds since the epoch. */
int64_t clock_wall_ns(void);

#endif
