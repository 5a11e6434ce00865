/* The two clocks; see es/clock.h. */
#include "es/clock.h"

#include <errno.h>

static int64_t read_us(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t es_now_us(void) { return read_us(CLOCK_REALTIME); }

int64_t es_mono_us(void) { return read_us(CLOCK_MONOTONIC); }

struct timespec es_mono_deadline(int64_t after_us)
{
    int64_t t = es_mono_us() + after_us;
    return (struct timespec){.tv_sec = (time_t)(t / 1000000), .tv_nsec = (long)(t % 1000000) * 1000};
}

void es_sleep_us(int64_t us)
{
    if (us <= 0)
        return;
    struct timespec until = es_mono_deadline(us);
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &until, NULL) == EINTR)
        ; /* the deadline is absolute: sleeping again loses nothing */
}

void es_mono_cond_init(pthread_cond_t *cv)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(cv, &ca);
    pthread_condattr_destroy(&ca);
}
