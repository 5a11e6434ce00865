/* The two clocks, in microseconds: the one place that reads the system time. */
#ifndef ES_CLOCK_H
#define ES_CLOCK_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

/* Wall-clock time (CLOCK_REALTIME) in microseconds since the Unix epoch, UTC: for timestamps
 * that leave the process (event times, UUIDv7, log lines). It can jump when the system time is
 * set, so never measure a duration or a deadline with it. Thread-safe. */
int64_t es_now_us(void);
/* Monotonic time (CLOCK_MONOTONIC) in microseconds from an arbitrary start: only differences
 * mean something. For durations, deadlines, timeouts and rates. Thread-safe. */
int64_t es_mono_us(void);
/* The CLOCK_MONOTONIC instant after_us microseconds from now, as the absolute timespec
 * pthread_cond_timedwait takes (for a condition variable whose pthread_condattr_setclock is
 * CLOCK_MONOTONIC) and clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, ...) too. */
struct timespec es_mono_deadline(int64_t after_us);
/* Initialises cv to measure pthread_cond_timedwait deadlines on CLOCK_MONOTONIC, the clock
 * es_mono_deadline answers in: a wait then neither ends early nor hangs when the system time is
 * set. Destroy it with pthread_cond_destroy. */
void es_mono_cond_init(pthread_cond_t *cv);
/* Sleeps us microseconds on CLOCK_MONOTONIC (a signal does not cut it short; us <= 0 returns at
 * once). For back-offs and pacing; a wait for a condition waits on the condition instead. */
void es_sleep_us(int64_t us);

#endif
