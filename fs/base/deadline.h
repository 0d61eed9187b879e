/* SPDX-License-Identifier: MIT */
/*
 * Deadlines for timed waits, on CLOCK_MONOTONIC.  The daemon's timed
 * waits are intervals (a lease renewal, a scheduler tick, a sync period):
 * pthread_cond_timedwait's default clock is the wall clock, and a wait
 * until "now + 10 s" on it lasts an hour more when the clock is stepped
 * back an hour (NTP at boot, a VM resumed), long enough for a writer's
 * lease to lapse.  pthread_cond_clockwait and pthread_mutex_clocklock
 * (glibc 2.30) take the clock per call, whatever the condition variable
 * was made with.  Any thread.
 */
#ifndef MLFS_FS_DEADLINE_H
#define MLFS_FS_DEADLINE_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

/* The monotonic time ms milliseconds (>= 0) from now. */
static inline struct timespec deadline_in(int64_t ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += (time_t)(ms / 1000);
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return ts;
}

/* pthread_cond_timedwait until at, a deadline_in() time. */
static inline int cond_wait_until(pthread_cond_t *cond, pthread_mutex_t *m,
				  const struct timespec *at)
{
	return pthread_cond_clockwait(cond, m, CLOCK_MONOTONIC, at);
}

#endif
