/* Several streams of a batch at once: for reactors whose work per event waits on something
 * outside the process (a command's group commit, a payment gateway), so that one slow stream
 * does not hold the others behind it (docs/ARCHITECTURE.md, invariant 16).
 *
 * The batch is the consumer's set-wise batch (es_consumer_batch_fn): each stream's events
 * contiguous and in version order. es_stream_groups_run hands each stream to one thread, which
 * calls fn on its events in order and stops that stream at its first error; up to `concurrency`
 * streams run at a time (the calling thread is one of them). Streams never share a thread's
 * call of fn, so fn needs to be safe only for calls on different streams at the same time. */
#ifndef ES_STREAM_GROUPS_H
#define ES_STREAM_GROUPS_H

#include <stddef.h>

#include "es/envelope.h"
#include "es/status.h"

typedef int (*es_stream_event_fn)(void *data, const es_envelope_view *ev, es_error *err);

/* Returns ES_OK when fn returned ES_OK for every event. Otherwise the error of the first stream
 * (in batch order) that failed with an error other than ES_UNAVAILABLE / ES_DEADLINE_EXCEEDED,
 * so that a consumer falls back to one message at a time and isolates it; failing that, the
 * first stream's retryable error (the consumer retries the batch later). Either way every
 * stream ran as far as it could: fn must make a repeat of an event harmless (a reactor's
 * command ids derive from the event). concurrency 0 counts as 1 (no thread is started). */
int es_stream_groups_run(const es_envelope_view *evs, size_t n, unsigned concurrency, es_stream_event_fn fn,
                         void *data, es_error *err);

#endif
