/* The global feed: every committed event of es_events in one total order that never skips a
 * late committer (docs/ARCHITECTURE.md invariant 4).
 *
 * Order is (txid, position): txid is the writing transaction's xid8, position the identity value.
 * A read returns only rows whose txid is below the xmin of the reader's snapshot, i.e. rows of
 * transactions that are finished; any transaction still running (or not yet started) has
 * txid >= xmin and so sorts after the cursor once it commits. A long transaction therefore holds
 * the feed back (measured by es_feed_stats) but is never skipped. Each stream keeps its version
 * order because an append reads its stream before its first write (the store's rule).
 *
 * An es_feed owns one PostgreSQL connection that LISTENs on channel "es_events" (the store
 * notifies it in each append transaction) for prompt wake-ups; es_feed_wait falls back to a
 * timeout so a lost notification only delays. Not thread-safe: one thread per es_feed. */
#ifndef ES_FEED_H
#define ES_FEED_H

#include <stddef.h>
#include <stdint.h>

#include "es/arena.h"
#include "es/envelope.h"
#include "es/status.h"

typedef struct es_feed es_feed;

/* A place in the feed: the last event read. {0, 0} is before the first event. */
typedef struct es_feed_cursor {
    uint64_t txid;
    int64_t position;
} es_feed_cursor;

/* Events of one read. events[i] borrow from the batch's arena; valid until the next read into
 * the same batch or es_feed_batch_free. */
typedef struct es_feed_batch {
    es_envelope_view *events;
    size_t n;
    es_feed_cursor last;        /* cursor of the last event; the input cursor when n == 0 */
    es_arena arena;
} es_feed_batch;

/* How far the feed is behind, for metrics and logs. */
typedef struct es_feed_stats {
    int64_t pending_events;     /* committed events after the cursor (capped at 1,000,000) */
    double pending_age_s;       /* age of the oldest of them (0 when none) */
    int64_t held_back_events;   /* committed events not readable yet: an older transaction runs */
    double held_back_age_s;     /* age of the oldest held-back event */
    double oldest_xact_age_s;   /* age of the oldest transaction holding an xid (any database) */
    uint64_t xmin;              /* the snapshot xmin the feed reads below */
} es_feed_stats;

/* Connects to conninfo and LISTENs on "es_events". On success *out is a new feed the caller
 * frees with es_feed_close. Returns ES_OK or ES_UNAVAILABLE (err has libpq's message). */
int es_feed_open(const char *conninfo, es_feed **out, es_error *err);

/* Closes the connection and frees f. NULL is a no-op. */
void es_feed_close(es_feed *f);

void es_feed_batch_init(es_feed_batch *b);
/* Frees what the batch holds; it may be initialised again. NULL is a no-op. */
void es_feed_batch_free(es_feed_batch *b);

/* Reads up to max committed events after `after` in feed order into out (reset first).
 * Reconnects when the connection was lost. Returns ES_OK (possibly with n == 0) or
 * ES_UNAVAILABLE / ES_INTERNAL with err set; out is then empty with last == after. */
int es_feed_read(es_feed *f, es_feed_cursor after, size_t max, es_feed_batch *out, es_error *err);

/* Waits up to timeout_ms for an es_events notification. Returns 1 when one (or more) arrived,
 * 0 on timeout, ES_UNAVAILABLE when the connection broke (the next read reconnects). */
int es_feed_wait(es_feed *f, int timeout_ms);

/* Measures the backlog after `after` and what holds the feed back. A few indexed queries; call
 * it about once a second, not per event. Returns ES_OK or ES_UNAVAILABLE / ES_INTERNAL. */
int es_feed_stats_get(es_feed *f, es_feed_cursor after, es_feed_stats *out, es_error *err);

/* How PostgreSQL planned this feed's reads on its current connection (pg_prepared_statements):
 * *generic reads that reused the one generic plan, *custom reads planned anew (none expected).
 * Returns ES_OK or ES_UNAVAILABLE / ES_INTERNAL. */
int es_feed_plans(es_feed *f, int64_t *generic, int64_t *custom, es_error *err);

/* Parses an xid8 in its decimal text form. Returns 0 for NULL or garbage. */
uint64_t es_feed_parse_txid(const char *s);

#endif
