/* Parked calls: work that waits for a stream's read model to move, held without a thread.
 *
 * A query whose answer is not there yet (a read asking for a version the read model has not
 * reached) is parked here under its stream id until one of three things fires it:
 *   - a wake for its stream (es_waiters_wake, called after a projection batch commits);
 *   - a re-check: recheck_after_ms after parking, a safety net for moves this process does not
 *     see (another instance keeps the read model, or owns the stream's Kafka partition);
 *   - its deadline.
 * Firing removes the item from the set and hands it to the fire callback, which runs the work
 * again (and may park it again). The set is bounded: an item takes a slot when first parked and
 * keeps it until released; beyond max slots parking is refused, so a flood of waiting reads
 * costs memory in proportion to max and no thread at all.
 *
 * A wake that lands between the work's read and its park would be lost; the caller takes an
 * epoch (es_waiters_epoch) before reading and passes it to park, which fires at once when the
 * stream was woken since. */
#ifndef ES_WAITERS_H
#define ES_WAITERS_H

#include <stddef.h>
#include <stdint.h>
#include "es/buf.h"

typedef struct es_waiters es_waiters;

/* Why an item was fired. */
typedef enum es_wake_reason {
    ES_WAKE_COMMIT = 0,            /* its stream moved (or was woken after the read began) */
    ES_WAKE_RECHECK = 1,           /* the safety-net re-check */
    ES_WAKE_DEADLINE = 2,          /* its deadline passed */
    ES_WAKE_CLOSE = 3              /* es_waiters_close */
} es_wake_reason;

/* Called without the set's lock, on the thread that fired the item (the timer, a waker, or
 * es_waiters_close's caller). The item is no longer in the set. */
typedef void (*es_waiters_fire_fn)(void *data, void *item, es_wake_reason why);

typedef struct es_waiters_config {
    size_t max;                    /* parked at once (0: 1024); beyond, es_waiters_park refuses */
    es_waiters_fire_fn fire;       /* required */
    void *data;
} es_waiters_config;

/* Starts the timer thread. Never NULL. */
es_waiters *es_waiters_new(const es_waiters_config *cfg);

/* The wake epoch now: take it before reading what the parked work depends on. */
uint64_t es_waiters_epoch(es_waiters *w);

/* Parks item until stream_id moves, recheck_at_ms or deadline_ms (CLOCK_MONOTONIC ms; the
 * earlier of the two is when the timer fires it). stream_id is borrowed and must live until the
 * item is fired. The first park of an item (again = 0) takes one of the max slots, which the
 * item keeps while it is fired and parked again (again = 1) until es_waiters_release: an item
 * once admitted is never refused later. Returns ES_OK (parked; or, when stream_id was woken
 * after epoch, fired at once on this thread), ES_RESOURCE_EXHAUSTED when max slots are taken
 * (counted as refused) or ES_UNAVAILABLE once closed; on an error the item was not taken (and
 * a first park took no slot). */
int es_waiters_park(es_waiters *w, void *item, const char *stream_id, int64_t recheck_at_ms, int64_t deadline_ms,
                    uint64_t epoch, int again);

/* Gives back the slot of an item that was parked: call it once the item is finished for good. */
void es_waiters_release(es_waiters *w);

/* Fires the items parked on any of stream_ids (n of them, borrowed). Cheap when none waits:
 * one lock and a hash per id. Any thread. */
void es_waiters_wake(es_waiters *w, const char *const *stream_ids, size_t n);

/* Refuses further parks, stops the timer and fires every parked item with ES_WAKE_CLOSE. */
void es_waiters_close(es_waiters *w);

/* Closes (when not yet) and frees. Accepts NULL. */
void es_waiters_free(es_waiters *w);

typedef struct es_waiters_stats {
    size_t held;                   /* slots taken now: parked, or fired and not finished */
    size_t parked;                 /* in the set now */
    size_t max;
    uint64_t refused;              /* parks refused because max were parked */
    uint64_t fired[4];             /* by es_wake_reason */
} es_waiters_stats;

void es_waiters_get_stats(es_waiters *w, es_waiters_stats *out);

/* Appends es_waiting_reads (gauge: slots held), es_waiting_reads_parked, es_waiting_reads_max (gauges),
 * es_waiting_reads_refused_total and es_waiting_reads_fired_total{reason} (counters). */
void es_waiters_write_metrics(es_waiters *w, es_buf *out);

#endif
