/* es_stream_groups_run: each stream's events once and in order, streams at once up to the bound,
 * and which error a batch reports. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "es/stream_groups.h"

#define MAX_EVS 64

typedef struct batch {
    es_envelope_view evs[MAX_EVS];
    char ids[MAX_EVS][16];
    size_t n;
} batch;

/* Streams "s0".."s<k-1>", stream i with lens[i] events at versions 1..lens[i], contiguous. */
static void make_batch(batch *b, const int *lens, int k)
{
    memset(b, 0, sizeof *b);
    for (int s = 0; s < k; s++)
        for (int v = 1; v <= lens[s]; v++) {
            snprintf(b->ids[b->n], sizeof b->ids[b->n], "s%d", s);
            b->evs[b->n].stream_id = b->ids[b->n];
            b->evs[b->n].version = v;
            b->n++;
        }
}

typedef struct seen {
    pthread_mutex_t lock;
    int next_version[8];     /* per stream: the version expected next */
    int calls, out_of_order;
    atomic_int inside, most_inside;
    /* the rendezvous: every stream's first event waits here until `want` of them arrived */
    pthread_cond_t cond;
    int arrived, want, timed_out;
    pthread_t callers[MAX_EVS];
    /* failures to inject: stream, version, status */
    int fail_stream[2], fail_version[2], fail_rc[2], nfail;
} seen;

static void seen_init(seen *s)
{
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->cond, NULL);
    for (int i = 0; i < 8; i++)
        s->next_version[i] = 1;
}

static void rendezvous(seen *s)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 20;
    pthread_mutex_lock(&s->lock);
    if (++s->arrived >= s->want)
        pthread_cond_broadcast(&s->cond);
    while (s->arrived < s->want && !s->timed_out)
        if (pthread_cond_timedwait(&s->cond, &s->lock, &until) == ETIMEDOUT)
            s->timed_out = 1;
    pthread_mutex_unlock(&s->lock);
}

static int on_event(void *data, const es_envelope_view *ev, es_error *err)
{
    seen *s = data;
    int now = atomic_fetch_add(&s->inside, 1) + 1, most = atomic_load(&s->most_inside);
    while (now > most && !atomic_compare_exchange_weak(&s->most_inside, &most, now))
        ;
    int stream = ev->stream_id[1] - '0';
    if (s->want && ev->version == 1)
        rendezvous(s);
    pthread_mutex_lock(&s->lock);
    s->callers[s->calls++] = pthread_self();
    if (ev->version != s->next_version[stream])
        s->out_of_order++;
    s->next_version[stream] = (int)ev->version + 1;
    pthread_mutex_unlock(&s->lock);
    atomic_fetch_sub(&s->inside, 1);
    for (int i = 0; i < s->nfail; i++)
        if (s->fail_stream[i] == stream && s->fail_version[i] == ev->version)
            return es_error_set(err, s->fail_rc[i], "event", "stream s%d failed at version %d", stream,
                                (int)ev->version);
    return ES_OK;
}

static void test_every_event_once_in_stream_order(void **u)
{
    (void)u;
    static const int lens[] = {3, 1, 5, 2, 4};
    batch b;
    make_batch(&b, lens, 5);
    seen s;
    seen_init(&s);
    es_error err = {0};
    assert_int_equal(es_stream_groups_run(b.evs, b.n, 3, on_event, &s, &err), ES_OK);
    assert_int_equal(s.calls, (int)b.n);
    assert_int_equal(s.out_of_order, 0);
    for (int i = 0; i < 5; i++)
        assert_int_equal(s.next_version[i], lens[i] + 1);
    assert_true(atomic_load(&s.most_inside) <= 3);
}

/* Four streams, bound 4: each stream's first event waits until all four are inside, which only
 * happens when they run at the same time (a serial run would wait out the 20 s bound). */
static void test_streams_run_at_once_up_to_the_bound(void **u)
{
    (void)u;
    static const int lens[] = {2, 2, 2, 2};
    batch b;
    make_batch(&b, lens, 4);
    seen s;
    seen_init(&s);
    s.want = 4;
    es_error err = {0};
    assert_int_equal(es_stream_groups_run(b.evs, b.n, 4, on_event, &s, &err), ES_OK);
    assert_false(s.timed_out);
    assert_int_equal(s.calls, 8);
    assert_int_equal(s.out_of_order, 0);
    assert_true(atomic_load(&s.most_inside) >= 2);
}

static void test_bound_of_one_runs_on_the_calling_thread(void **u)
{
    (void)u;
    static const int lens[] = {2, 3, 1};
    batch b;
    make_batch(&b, lens, 3);
    for (unsigned bound = 0; bound <= 1; bound++) {
        seen s;
        seen_init(&s);
        es_error err = {0};
        assert_int_equal(es_stream_groups_run(b.evs, b.n, bound, on_event, &s, &err), ES_OK);
        assert_int_equal(s.calls, 6);
        for (int i = 0; i < s.calls; i++)
            assert_true(pthread_equal(s.callers[i], pthread_self()));
        assert_int_equal(atomic_load(&s.most_inside), 1);
    }
    seen s;
    seen_init(&s);
    assert_int_equal(es_stream_groups_run(b.evs, 0, 4, on_event, &s, NULL), ES_OK);
    assert_int_equal(s.calls, 0);
}

/* A failing stream stops at its failure; the others run to their end; a non-retryable error wins
 * over a retryable one whatever their order in the batch. */
static void test_errors_stop_their_stream_and_the_worst_is_reported(void **u)
{
    (void)u;
    static const int lens[] = {3, 3, 3};
    batch b;
    make_batch(&b, lens, 3);
    seen s;
    seen_init(&s);
    s.fail_stream[0] = 0, s.fail_version[0] = 2, s.fail_rc[0] = ES_UNAVAILABLE;
    s.fail_stream[1] = 2, s.fail_version[1] = 1, s.fail_rc[1] = ES_DATA_LOSS;
    s.nfail = 2;
    es_error err = {0};
    assert_int_equal(es_stream_groups_run(b.evs, b.n, 2, on_event, &s, &err), ES_DATA_LOSS);
    assert_string_equal(err.message, "stream s2 failed at version 1");
    assert_int_equal(s.next_version[0], 3);   /* 1 and 2 ran, 3 did not */
    assert_int_equal(s.next_version[1], 4);   /* ran to its end */
    assert_int_equal(s.next_version[2], 2);   /* 1 ran and failed */

    seen r;
    seen_init(&r);
    r.fail_stream[0] = 1, r.fail_version[0] = 3, r.fail_rc[0] = ES_DEADLINE_EXCEEDED;
    r.fail_stream[1] = 2, r.fail_version[1] = 2, r.fail_rc[1] = ES_UNAVAILABLE;
    r.nfail = 2;
    memset(&err, 0, sizeof err);
    assert_int_equal(es_stream_groups_run(b.evs, b.n, 3, on_event, &r, &err), ES_DEADLINE_EXCEEDED);
    assert_string_equal(err.message, "stream s1 failed at version 3");
    assert_int_equal(r.calls, 8);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_event_once_in_stream_order),
        cmocka_unit_test(test_streams_run_at_once_up_to_the_bound),
        cmocka_unit_test(test_bound_of_one_runs_on_the_calling_thread),
        cmocka_unit_test(test_errors_stop_their_stream_and_the_worst_is_reported),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
