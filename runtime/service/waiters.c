/* Parked calls keyed by stream id, with a timer: see es/waiters.h.
 *
 * Every parked item is in two structures under one lock: a hash table of chains by stream id
 * (wake finds the items of a stream without looking at the others) and a min-heap by the time
 * the timer must fire it (the earlier of its re-check and its deadline), so the timer thread
 * sleeps exactly until the next one is due. */
#define _GNU_SOURCE /* pthread_setname_np */
#include "es/clock.h"
#include "es/waiters.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "es/arena.h"
#include "es/metrics.h"
#include "es/status.h"

/* Slots remembering the epoch of the last wake per stream hash; a collision only costs the
 * colliding item one extra run. */
#define RECENT 4096

typedef struct node node;
struct node {
    void *item;
    const char *stream;
    uint64_t hash;
    int64_t due_ms;                /* min(recheck, deadline) */
    int64_t deadline_ms;
    size_t heap_idx;
    node *hnext, *hprev;           /* hash chain */
    node *fnext;                   /* fired list, outside the lock */
};

struct es_waiters {
    es_waiters_config cfg;
    pthread_mutex_t lock;
    pthread_cond_t cond;           /* CLOCK_MONOTONIC: the timer's sleep */
    pthread_t timer;
    int closed;
    node **buckets;
    size_t nbuckets;               /* power of two */
    node **heap;
    size_t n;                      /* parked now (heap size) */
    size_t held;                   /* slots taken: parked, or fired and not yet released */
    uint64_t epoch;
    uint64_t recent[RECENT];
    uint64_t refused;
    uint64_t fired[4];
};

static uint64_t hash_of(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

/* ---- min-heap by due_ms ------------------------------------------------------------------ */

static void heap_set(es_waiters *w, size_t i, node *x)
{
    w->heap[i] = x;
    x->heap_idx = i;
}

static void sift_up(es_waiters *w, size_t i)
{
    node *x = w->heap[i];
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (w->heap[p]->due_ms <= x->due_ms)
            break;
        heap_set(w, i, w->heap[p]);
        i = p;
    }
    heap_set(w, i, x);
}

static void sift_down(es_waiters *w, size_t i)
{
    node *x = w->heap[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= w->n)
            break;
        if (c + 1 < w->n && w->heap[c + 1]->due_ms < w->heap[c]->due_ms)
            c++;
        if (w->heap[c]->due_ms >= x->due_ms)
            break;
        heap_set(w, i, w->heap[c]);
        i = c;
    }
    heap_set(w, i, x);
}

/* Takes x out of both structures. Caller holds the lock. */
static void unlink_node(es_waiters *w, node *x)
{
    if (x->hprev)
        x->hprev->hnext = x->hnext;
    else
        w->buckets[x->hash & (w->nbuckets - 1)] = x->hnext;
    if (x->hnext)
        x->hnext->hprev = x->hprev;
    size_t i = x->heap_idx;
    node *last = w->heap[--w->n];
    if (i < w->n) {
        heap_set(w, i, last);
        sift_up(w, i);
        sift_down(w, last->heap_idx);
    }
}

/* Fires a list collected under the lock, after releasing it. */
static void fire_list(es_waiters *w, node *list, es_wake_reason why_default)
{
    while (list) {
        node *next = list->fnext;
        es_wake_reason why = why_default;
        if (why == ES_WAKE_RECHECK && list->deadline_ms <= list->due_ms)
            why = ES_WAKE_DEADLINE;
        w->cfg.fire(w->cfg.data, list->item, why);
        free(list);
        list = next;
    }
}

static void *timer_main(void *arg)
{
    es_waiters *w = arg;
    pthread_setname_np(pthread_self(), "es-waiters");
    pthread_mutex_lock(&w->lock);
    while (!w->closed) {
        int64_t now = (es_mono_us() / 1000);
        node *list = NULL, **tail = &list;
        while (w->n && w->heap[0]->due_ms <= now) {
            node *x = w->heap[0];
            unlink_node(w, x);
            w->fired[x->deadline_ms <= x->due_ms ? ES_WAKE_DEADLINE : ES_WAKE_RECHECK]++;
            *tail = x;
            tail = &x->fnext;
            x->fnext = NULL;
        }
        if (list) {
            pthread_mutex_unlock(&w->lock);
            fire_list(w, list, ES_WAKE_RECHECK);
            pthread_mutex_lock(&w->lock);
            continue;
        }
        if (!w->n) {
            pthread_cond_wait(&w->cond, &w->lock);
            continue;
        }
        int64_t due = w->heap[0]->due_ms;
        struct timespec ts = {(time_t)(due / 1000), (long)(due % 1000) * 1000000};
        pthread_cond_timedwait(&w->cond, &w->lock, &ts);
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

es_waiters *es_waiters_new(const es_waiters_config *cfg)
{
    es_waiters *w = es_xcalloc(1, sizeof *w);
    w->cfg = *cfg;
    if (!w->cfg.max)
        w->cfg.max = 1024;
    w->nbuckets = 64;
    while (w->nbuckets < w->cfg.max)
        w->nbuckets *= 2;
    w->buckets = es_xcalloc(w->nbuckets, sizeof *w->buckets);
    w->heap = es_xcalloc(w->cfg.max, sizeof *w->heap);
    pthread_mutex_init(&w->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    int e = pthread_create(&w->timer, &attr, timer_main, w);
    if (e != 0)
        es_no_thread("waiting-reads timer", e);
    pthread_attr_destroy(&attr);
    return w;
}

uint64_t es_waiters_epoch(es_waiters *w)
{
    pthread_mutex_lock(&w->lock);
    uint64_t e = w->epoch;
    pthread_mutex_unlock(&w->lock);
    return e;
}

int es_waiters_park(es_waiters *w, void *item, const char *stream_id, int64_t recheck_at_ms, int64_t deadline_ms,
                    uint64_t epoch, int again)
{
    uint64_t h = hash_of(stream_id);
    pthread_mutex_lock(&w->lock);
    if (w->closed) {
        pthread_mutex_unlock(&w->lock);
        return ES_UNAVAILABLE;
    }
    if (!again) {
        if (w->held >= w->cfg.max) {
            w->refused++;
            pthread_mutex_unlock(&w->lock);
            return ES_RESOURCE_EXHAUSTED;
        }
        w->held++;
    }
    if (w->recent[h % RECENT] > epoch) {
        /* Woken after the caller's read began: that read may predate the move. */
        w->fired[ES_WAKE_COMMIT]++;
        pthread_mutex_unlock(&w->lock);
        w->cfg.fire(w->cfg.data, item, ES_WAKE_COMMIT);
        return ES_OK;
    }
    node *x = es_xcalloc(1, sizeof *x);
    x->item = item;
    x->stream = stream_id;
    x->hash = h;
    x->deadline_ms = deadline_ms;
    x->due_ms = recheck_at_ms < deadline_ms ? recheck_at_ms : deadline_ms;
    node **b = &w->buckets[h & (w->nbuckets - 1)];
    x->hnext = *b;
    if (*b)
        (*b)->hprev = x;
    *b = x;
    heap_set(w, w->n++, x);
    sift_up(w, x->heap_idx);
    if (x->heap_idx == 0)
        pthread_cond_signal(&w->cond); /* due before what the timer sleeps for */
    pthread_mutex_unlock(&w->lock);
    return ES_OK;
}

void es_waiters_release(es_waiters *w)
{
    pthread_mutex_lock(&w->lock);
    if (w->held)
        w->held--;
    pthread_mutex_unlock(&w->lock);
}

void es_waiters_wake(es_waiters *w, const char *const *stream_ids, size_t n)
{
    node *list = NULL;
    pthread_mutex_lock(&w->lock);
    w->epoch++;
    for (size_t i = 0; i < n; i++) {
        if (!stream_ids[i])
            continue;
        uint64_t h = hash_of(stream_ids[i]);
        w->recent[h % RECENT] = w->epoch;
        node *x = w->buckets[h & (w->nbuckets - 1)];
        while (x) {
            node *next = x->hnext;
            if (x->hash == h && strcmp(x->stream, stream_ids[i]) == 0) {
                unlink_node(w, x);
                w->fired[ES_WAKE_COMMIT]++;
                x->fnext = list;
                list = x;
            }
            x = next;
        }
    }
    pthread_mutex_unlock(&w->lock);
    fire_list(w, list, ES_WAKE_COMMIT);
}

void es_waiters_close(es_waiters *w)
{
    pthread_mutex_lock(&w->lock);
    if (w->closed) {
        pthread_mutex_unlock(&w->lock);
        return;
    }
    w->closed = 1;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->timer, NULL);
    pthread_mutex_lock(&w->lock);
    node *list = NULL;
    while (w->n) {
        node *x = w->heap[0];
        unlink_node(w, x);
        w->fired[ES_WAKE_CLOSE]++;
        x->fnext = list;
        list = x;
    }
    pthread_mutex_unlock(&w->lock);
    fire_list(w, list, ES_WAKE_CLOSE);
}

void es_waiters_free(es_waiters *w)
{
    if (!w)
        return;
    es_waiters_close(w);
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->cond);
    free(w->buckets);
    free(w->heap);
    free(w);
}

void es_waiters_get_stats(es_waiters *w, es_waiters_stats *out)
{
    pthread_mutex_lock(&w->lock);
    out->parked = w->n;
    out->held = w->held;
    out->max = w->cfg.max;
    out->refused = w->refused;
    memcpy(out->fired, w->fired, sizeof out->fired);
    pthread_mutex_unlock(&w->lock);
}

void es_waiters_write_metrics(es_waiters *w, es_buf *out)
{
    static const char *const reasons[4] = {"commit", "recheck", "deadline", "close"};
    es_waiters_stats st;
    es_waiters_get_stats(w, &st);
    es_metrics_family(out, "es_waiting_reads", "gauge",
                      "Reads waiting (without a thread) until their stream's read model moves or their deadline, "
                      "parked or being checked again.");
    es_metrics_sample(out, "es_waiting_reads", "", (double)st.held);
    es_metrics_family(out, "es_waiting_reads_parked", "gauge", "Waiting reads parked now (not being checked again).");
    es_metrics_sample(out, "es_waiting_reads_parked", "", (double)st.parked);
    es_metrics_family(out, "es_waiting_reads_max", "gauge", "Reads that may be parked at once (max-waiting-reads).");
    es_metrics_sample(out, "es_waiting_reads_max", "", (double)st.max);
    es_metrics_family(out, "es_waiting_reads_refused_total", "counter",
                      "Reads refused RESOURCE_EXHAUSTED because max-waiting-reads were parked.");
    es_metrics_sample(out, "es_waiting_reads_refused_total", "", (double)st.refused);
    es_metrics_family(out, "es_waiting_reads_fired_total", "counter",
                      "Parked reads run again, by reason (commit: their stream moved; recheck: the safety-net timer; "
                      "deadline; close: shutdown).");
    char labels[32];
    for (int i = 0; i < 4; i++) {
        snprintf(labels, sizeof labels, "reason=\"%s\"", reasons[i]);
        es_metrics_sample(out, "es_waiting_reads_fired_total", labels, (double)st.fired[i]);
    }
}
