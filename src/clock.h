/* clock.h: milliseconds from the monotonic clock (intervals, deadlines) and
 * from the wall clock (times the database also knows, such as expiries). */
#ifndef OTPD_CLOCK_H
#define OTPD_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline int64_t
clock_ms(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* clock_mono_ms: monotonic milliseconds, for intervals only. */
static inline int64_t
clock_mono_ms(void)
{
	return clock_ms(CLOCK_MONOTONIC);
}

/* clock_wall_ms: milliseconds since the Unix epoch. */
static inline int64_t
clock_wall_ms(void)
{
	return clock_ms(CLOCK_REALTIME);
}

#endif
