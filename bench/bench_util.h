/* Small helpers shared by the bench/ drivers: a monotonic clock and a latency sample set with
 * percentiles. Header-only (static functions) so each driver stays one file plus this. */
#ifndef BENCH_UTIL_H
#define BENCH_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "es/clock.h"

/* Seconds on the monotonic clock (es/clock.h). */
static inline double bench_now(void) { return (double)es_mono_us() / 1e6; }

/* Latency samples in seconds; grows on demand (aborts on out-of-memory, as es_xmalloc does). */
typedef struct bench_lat {
    double *v;
    size_t n, cap;
} bench_lat;

static inline void bench_lat_add(bench_lat *l, double s)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 4096;
        l->v = realloc(l->v, l->cap * sizeof *l->v);
        if (!l->v) abort();
    }
    l->v[l->n++] = s;
}

static int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static inline void bench_lat_sort(bench_lat *l)
{
    if (l->n) qsort(l->v, l->n, sizeof *l->v, bench_cmp_double);
}

/* The q-quantile (0..1) of sorted samples, nearest rank; 0 when there are none. */
static inline double bench_lat_q(const bench_lat *l, double q)
{
    if (!l->n) return 0;
    size_t i = (size_t)(q * (double)l->n);
    if (i >= l->n) i = l->n - 1;
    return l->v[i];
}

static inline void bench_lat_free(bench_lat *l)
{
    free(l->v);
    memset(l, 0, sizeof *l);
}

#endif
