/* Several streams of a batch at once; see es/stream_groups.h. */
#include "es/stream_groups.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

typedef struct groups_run {
    const es_envelope_view *evs;
    const size_t *starts;     /* ngroups + 1 entries: group g is evs[starts[g] .. starts[g + 1]) */
    size_t ngroups;
    atomic_size_t next;       /* the next group a thread takes */
    es_stream_event_fn fn;
    void *data;
    int *rcs;                 /* per group */
    es_error *errs;           /* per group */
} groups_run;

static void *worker(void *arg)
{
    groups_run *r = arg;
    for (;;) {
        size_t g = atomic_fetch_add(&r->next, 1);
        if (g >= r->ngroups)
            return NULL;
        for (size_t i = r->starts[g]; i < r->starts[g + 1]; i++) {
            int rc = r->fn(r->data, &r->evs[i], &r->errs[g]);
            if (rc != ES_OK) {
                r->rcs[g] = rc;
                break;
            }
        }
    }
}

static int retryable(int rc) { return rc == ES_UNAVAILABLE || rc == ES_DEADLINE_EXCEEDED; }

/* The error to report (see the header): the first non-retryable, else the first retryable. */
static int pick(const groups_run *r, es_error *err)
{
    size_t first_retry = r->ngroups;
    for (size_t g = 0; g < r->ngroups; g++) {
        if (r->rcs[g] == ES_OK)
            continue;
        if (!retryable(r->rcs[g])) {
            if (err)
                *err = r->errs[g];
            return r->rcs[g];
        }
        if (first_retry == r->ngroups)
            first_retry = g;
    }
    if (first_retry == r->ngroups)
        return ES_OK;
    if (err)
        *err = r->errs[first_retry];
    return r->rcs[first_retry];
}

int es_stream_groups_run(const es_envelope_view *evs, size_t n, unsigned concurrency, es_stream_event_fn fn,
                         void *data, es_error *err)
{
    if (!n)
        return ES_OK;
    size_t *starts = malloc((n + 1) * sizeof *starts);
    int *rcs = calloc(n, sizeof *rcs);
    es_error *errs = calloc(n, sizeof *errs);
    if (!starts || !rcs || !errs) {
        free(starts);
        free(rcs);
        free(errs);
        return es_error_set(err, ES_RESOURCE_EXHAUSTED, "", "stream groups: out of memory for %zu events", n);
    }
    size_t ngroups = 0;
    for (size_t i = 0; i < n; i++)
        if (i == 0 || strcmp(evs[i].stream_id, evs[i - 1].stream_id) != 0)
            starts[ngroups++] = i;
    starts[ngroups] = n;
    groups_run r = {.evs = evs, .starts = starts, .ngroups = ngroups, .fn = fn, .data = data, .rcs = rcs,
                    .errs = errs};
    atomic_init(&r.next, 0);
    size_t want = concurrency ? concurrency : 1;
    if (want > ngroups)
        want = ngroups;
    pthread_t *threads = want > 1 ? malloc((want - 1) * sizeof *threads) : NULL;
    size_t started = 0;
    /* A thread that cannot be started leaves its share to the others (this one included). */
    while (threads && started + 1 < want && pthread_create(&threads[started], NULL, worker, &r) == 0)
        started++;
    worker(&r);
    for (size_t t = 0; t < started; t++)
        pthread_join(threads[t], NULL);
    int rc = pick(&r, err);
    free(threads);
    free(starts);
    free(rcs);
    free(errs);
    return rc;
}
