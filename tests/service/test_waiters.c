/* runtime/service/waiters.c: items fired by stream, by re-check and at their deadline, each
 * exactly once; the cap counts an item from its first park to its release; a wake between a
 * read and its park is not lost; close fires what is left. Waits are on conditions (bounded),
 * never fixed sleeps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "es/clock.h"
#include "es/status.h"
#include "es/waiters.h"

#define MAXLOG 4096

typedef struct fired_log {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    size_t n;
    void *item[MAXLOG];
    es_wake_reason why[MAXLOG];
    int64_t at_ms[MAXLOG];
} fired_log;

static int64_t now_ms(void) { return es_mono_us() / 1000; }

static void on_fire(void *data, void *item, es_wake_reason why)
{
    fired_log *l = data;
    pthread_mutex_lock(&l->mu);
    if (l->n < MAXLOG) {
        l->item[l->n] = item;
        l->why[l->n] = why;
        l->at_ms[l->n] = now_ms();
        l->n++;
    }
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
}

static fired_log *log_new(void)
{
    fired_log *l = calloc(1, sizeof *l);
    pthread_mutex_init(&l->mu, NULL);
    es_mono_cond_init(&l->cv);
    return l;
}

static void log_free(fired_log *l)
{
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv);
    free(l);
}

/* Waits (at most 10 s) until n items were fired; returns how many were. */
static size_t wait_fired(fired_log *l, size_t n)
{
    struct timespec until = es_mono_deadline(10 * 1000000);
    pthread_mutex_lock(&l->mu);
    while (l->n < n && pthread_cond_timedwait(&l->cv, &l->mu, &until) == 0)
        ;
    size_t got = l->n;
    pthread_mutex_unlock(&l->mu);
    return got;
}

static es_waiters *start(fired_log *l, size_t max)
{
    es_waiters_config c = {.max = max, .fire = on_fire, .data = l};
    return es_waiters_new(&c);
}

static void test_wake_by_stream(void **state)
{
    (void)state;
    fired_log *l = log_new();
    es_waiters *w = start(l, 16);
    int items[5];
    int64_t far = now_ms() + 60000;
    const char *streams[5] = {"a", "a", "b", "a", "b"};
    for (int i = 0; i < 5; i++)
        assert_int_equal(es_waiters_park(w, &items[i], streams[i], far, far, es_waiters_epoch(w), 0), ES_OK);
    const char *wake[] = {"a", "zzz"};
    es_waiters_wake(w, wake, 2);
    assert_int_equal(wait_fired(l, 3), 3); /* fired on this thread: already there */
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(l->why[i], ES_WAKE_COMMIT);
        assert_true(l->item[i] == &items[0] || l->item[i] == &items[1] || l->item[i] == &items[3]);
    }
    es_waiters_stats st;
    es_waiters_get_stats(w, &st);
    assert_int_equal(st.parked, 2);
    assert_int_equal(st.held, 5); /* the fired ones keep their slots until released */
    assert_int_equal(st.fired[ES_WAKE_COMMIT], 3);
    for (int i = 0; i < 3; i++)
        es_waiters_release(w);
    es_waiters_free(w); /* fires b's two with ES_WAKE_CLOSE */
    assert_int_equal(l->n, 5);
    assert_int_equal(l->why[3], ES_WAKE_CLOSE);
    assert_int_equal(l->why[4], ES_WAKE_CLOSE);
    log_free(l);
}

static void test_cap_counts_from_park_to_release(void **state)
{
    (void)state;
    fired_log *l = log_new();
    es_waiters *w = start(l, 4);
    int items[6];
    int64_t far = now_ms() + 60000;
    for (int i = 0; i < 4; i++)
        assert_int_equal(es_waiters_park(w, &items[i], "s", far, far, 0, 0), ES_OK);
    assert_int_equal(es_waiters_park(w, &items[4], "t", far, far, 0, 0), ES_RESOURCE_EXHAUSTED);
    const char *s[] = {"s"};
    es_waiters_wake(w, s, 1);
    assert_int_equal(wait_fired(l, 4), 4);
    /* all four fired and running again: still four slots held, so a new one is refused ... */
    assert_int_equal(es_waiters_park(w, &items[5], "t", far, far, es_waiters_epoch(w), 0), ES_RESOURCE_EXHAUSTED);
    /* ... while an admitted one parks again */
    assert_int_equal(es_waiters_park(w, &items[0], "s", far, far, es_waiters_epoch(w), 1), ES_OK);
    es_waiters_release(w); /* items[1] answered */
    assert_int_equal(es_waiters_park(w, &items[5], "t", far, far, es_waiters_epoch(w), 0), ES_OK);
    es_waiters_stats st;
    es_waiters_get_stats(w, &st);
    assert_int_equal(st.refused, 2);
    assert_int_equal(st.held, 4);
    assert_int_equal(st.max, 4);
    es_waiters_close(w);
    assert_int_equal(es_waiters_park(w, &items[1], "s", far, far, es_waiters_epoch(w), 1), ES_UNAVAILABLE);
    es_waiters_free(w);
    log_free(l);
}

static void test_wake_before_park_not_lost(void **state)
{
    (void)state;
    fired_log *l = log_new();
    es_waiters *w = start(l, 4);
    int item, other;
    int64_t far = now_ms() + 60000;
    uint64_t e = es_waiters_epoch(w); /* the caller reads ... */
    const char *x[] = {"x"};
    es_waiters_wake(w, x, 1);         /* ... the stream moves ... */
    assert_int_equal(es_waiters_park(w, &item, "x", far, far, e, 0), ES_OK); /* ... then it parks */
    assert_int_equal(l->n, 1);        /* fired at once, on this thread */
    assert_ptr_equal(l->item[0], &item);
    /* a park with a fresh epoch, or on another stream, waits */
    assert_int_equal(es_waiters_park(w, &other, "y", far, far, e, 0), ES_OK);
    assert_int_equal(es_waiters_park(w, &item, "x", far, far, es_waiters_epoch(w), 1), ES_OK);
    assert_int_equal(l->n, 1);
    es_waiters_free(w);
    assert_int_equal(l->n, 3);
    log_free(l);
}

static void test_recheck_then_deadline(void **state)
{
    (void)state;
    fired_log *l = log_new();
    es_waiters *w = start(l, 4);
    int item;
    int64_t t0 = now_ms();
    assert_int_equal(es_waiters_park(w, &item, "r", t0 + 30, t0 + 120, es_waiters_epoch(w), 0), ES_OK);
    assert_int_equal(wait_fired(l, 1), 1);
    assert_int_equal(l->why[0], ES_WAKE_RECHECK);
    assert_true(l->at_ms[0] >= t0 + 30);
    /* parked again with a re-check past its deadline: the deadline comes first */
    assert_int_equal(es_waiters_park(w, &item, "r", t0 + 100000, t0 + 120, es_waiters_epoch(w), 1), ES_OK);
    assert_int_equal(wait_fired(l, 2), 2);
    assert_int_equal(l->why[1], ES_WAKE_DEADLINE);
    assert_true(l->at_ms[1] >= t0 + 120);
    es_waiters_stats st;
    es_waiters_get_stats(w, &st);
    assert_int_equal(st.fired[ES_WAKE_RECHECK], 1);
    assert_int_equal(st.fired[ES_WAKE_DEADLINE], 1);
    es_waiters_free(w);
    log_free(l);
}

/* Many items with scattered due times, some woken by stream: each fires exactly once, and the
 * timer fires them no earlier than due (the heap keeps its order through removals). */
static void test_each_fires_once(void **state)
{
    (void)state;
    enum { N = 1000 };
    fired_log *l = log_new();
    es_waiters *w = start(l, N);
    static int items[N];
    static char names[N][8];
    static int64_t due[N];
    int64_t t0 = now_ms();
    srand(7);
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof names[i], "s%d", i % 97);
        due[i] = t0 + 20 + rand() % 400;
        assert_int_equal(es_waiters_park(w, &items[i], names[i], due[i], due[i] + rand() % 50, es_waiters_epoch(w), 0),
                         ES_OK);
    }
    const char *wake[10];
    for (int k = 0; k < 10; k++)
        wake[k] = names[k * 7];
    es_waiters_wake(w, wake, 10);
    assert_int_equal(wait_fired(l, N), N);
    static int seen[N];
    for (size_t i = 0; i < l->n; i++) {
        int idx = (int)((int *)l->item[i] - items);
        assert_true(idx >= 0 && idx < N);
        assert_int_equal(seen[idx]++, 0);
        if (l->why[i] != ES_WAKE_COMMIT)
            assert_true(l->at_ms[i] >= due[idx]);
    }
    es_waiters_stats st;
    es_waiters_get_stats(w, &st);
    assert_int_equal(st.parked, 0);
    assert_int_equal(st.fired[ES_WAKE_COMMIT] + st.fired[ES_WAKE_RECHECK] + st.fired[ES_WAKE_DEADLINE], N);
    assert_true(st.fired[ES_WAKE_COMMIT] >= 10);
    es_waiters_free(w);
    log_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wake_by_stream),
        cmocka_unit_test(test_cap_counts_from_park_to_release),
        cmocka_unit_test(test_wake_before_park_not_lost),
        cmocka_unit_test(test_recheck_then_deadline),
        cmocka_unit_test(test_each_fires_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
