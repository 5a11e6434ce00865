/* The consumer framework: runs a projector or reactor handler over the events topic as a Kafka
 * consumer group, with effectively-once effects in PostgreSQL (docs/ARCHITECTURE.md invariant 6).
 *
 * For each message the runner, inside one PostgreSQL transaction:
 *   1. decodes the es.Envelope (undecodable: a dead letter, never a silent skip);
 *   2. locks the (consumer, stream_id) row of es_consumer_streams and reads the applied version;
 *   3. skips the event when version <= applied (a duplicate);
 *   4. when version > applied + 1, first applies the missing versions read from es_events;
 *   5. calls the handler, which writes through es_consumer_tx, and records the new version.
 * It commits (a batch of messages per transaction, a savepoint per message) and only then
 * commits the Kafka offsets (enable.auto.commit=false): a crash or rebalance in between makes
 * Kafka redeliver, and step 3 drops the redelivery. A handler error is retried max_retries
 * times; then the message is written to es_dead_letters with the error and the raw message and
 * its stream is parked: later events of that stream also go to es_dead_letters (their version is
 * not applied) until the dead letter is resolved (retried_at set), so a projection never jumps
 * over an event it could not apply.
 *
 * With a batch handler (es_consumer_batch_fn) the runner works set-wise and optimistically: it
 * reads the versions of every stream of a polled batch without locking, lets the handler apply
 * the batch, and advances each stream's version only from the version it read (a stream moved
 * meanwhile by another consumer rolls the batch back for a fresh read): the transaction holds a
 * transaction id, and so holds back the feed, only while it writes.
 *
 * Several processes may run the same consumer (same name, same group): the group spreads the
 * topic's partitions over them with cooperative-sticky assignment (a member joining or leaving
 * moves only the partitions that change owner). A revoke is handled between batches; messages
 * polled for a partition revoked before their batch ran are abandoned to the new owner, which
 * starts at the last committed offset. A member that dies keeps its partitions until its
 * session_timeout_ms expires. Who holds a partition never decides what is applied: the stored
 * versions do, so a rebalance neither doubles nor skips an event.
 *
 * The same path replays events from the store without Kafka (es_consumer_replay): a projection
 * can be dropped and rebuilt from es_events alone (docs/ARCHITECTURE.md invariant 7). */
#ifndef ES_CONSUMER_H
#define ES_CONSUMER_H

#include <stddef.h>
#include <stdint.h>

#include "es/buf.h"
#include "es/envelope.h"
#include "es/status.h"

typedef struct es_consumer es_consumer;

/* The most group members one es_consumer runs (es_consumer_config.members). */
#define ES_CONSUMER_MAX_MEMBERS 16

/* The handler's window on the runner's open transaction. Valid only during the handler call. */
typedef struct es_consumer_tx es_consumer_tx;

/* Rows of a query, text format. */
typedef struct es_sql_rows es_sql_rows;

/* Applies one event. Return ES_OK, or an es_status with err set: the runner rolls the event's
 * effects back and retries (a persistent error ends in es_dead_letters). Must not commit. */
typedef int (*es_consumer_handle_fn)(void *data, es_consumer_tx *tx, const es_envelope_view *ev,
                                     es_error *err);

/* Optional, for handlers that can apply many events at once (projections): evs holds the
 * events of a polled batch to apply, stream by stream, each stream's events in version order,
 * each once and contiguous from the stream's applied version + 1 (the runner has dropped
 * duplicates; streams with a gap or parked behind a dead letter go through handle instead).
 * The runner records the versions. An error makes the runner roll the whole batch back and
 * apply its messages one at a time through handle (retries, dead letters). Must not commit. */
typedef int (*es_consumer_batch_fn)(void *data, es_consumer_tx *tx, const es_envelope_view *evs, size_t n,
                                    es_error *err);

typedef struct es_consumer_config {
    const char *name;                /* consumer name: es_consumer_streams key; required */
    const char *group_id;            /* Kafka group; default name */
    const char *conninfo;            /* PostgreSQL; required */
    const char *bootstrap_servers;   /* Kafka; or NULL and bootstrap_file */
    const char *bootstrap_file;      /* first line = bootstrap.servers, read at start */
    const char *topic;               /* required: the application names its topics */
    es_consumer_handle_fn handle;    /* required */
    void *data;                      /* passed to handle */
    es_consumer_batch_fn handle_batch;  /* optional: the set-wise path (see above) */
    int max_retries;                 /* handler attempts before dead-lettering; default 3 */
    int batch_max;                   /* messages per PostgreSQL transaction; default 1000 (a batch
                                      * takes only messages already fetched: small at a steady rate) */
    int session_timeout_ms;          /* Kafka session.timeout.ms; default 10000 (tests: less) */
    int members;                     /* group members in this process, each its own thread, Kafka
                                      * consumer and PostgreSQL session (the group splits the
                                      * partitions between them, so one's commit wait overlaps
                                      * another's work); default 1, at most ES_CONSUMER_MAX_MEMBERS.
                                      * handle, handle_batch and committed are then called from
                                      * several threads at once. */
    const char *const *kafka_props;  /* extra librdkafka settings: "key", "value", ..., NULL */
    int quiet;                       /* 1: no log lines on stderr */
    /* Optional: called on the consumer thread after each batch's transaction committed, with the
     * stream ids (Kafka keys) of its messages (repeats possible; borrowed for the call). Must be
     * quick: the next batch waits. A read model uses it to wake the reads waiting on it. */
    void (*committed)(void *data, const char *const *stream_ids, size_t n);
    void *committed_data;
} es_consumer_config;

typedef struct es_consumer_stats {
    int64_t messages;                /* Kafka messages processed */
    int64_t applied;                 /* events handed to the handler and committed */
    int64_t duplicates;              /* skipped: version already applied */
    int64_t gap_filled;              /* events applied from es_events to close a gap */
    int64_t dead_letters;            /* rows written to es_dead_letters */
    int64_t retries;                 /* handler re-attempts */
    int64_t assigned_partitions;     /* partitions currently assigned to this member */
    int64_t batches;                 /* transactions committed */
    int64_t batch_fallbacks;         /* batches the set-wise path gave back to handle */
    int64_t lag_messages;            /* high watermark - position, summed over the assigned
                                        partitions, after the last batch (-1: not known yet) */
    double lag_seconds;              /* now - Kafka timestamp of the last message applied while
                                        lag_messages > 0; 0 when caught up */
    int64_t rebalances;              /* rebalance callbacks that assigned or revoked partitions
                                        of this member (cooperative: incremental changes) */
    int64_t abandoned;               /* polled messages left unapplied because their partition was
                                        revoked before the batch ran: its new owner reads them from
                                        the committed offset */
    char last_error[256];
} es_consumer_stats;

/* Validates cfg, copies it and starts the consumer's threads, one per member (each joins the
 * group, polls, applies).
 * *out is freed by es_consumer_stop. Returns ES_OK or ES_INVALID_ARGUMENT / ES_UNAVAILABLE
 * (PostgreSQL unreachable at start) / ES_RESOURCE_EXHAUSTED (its thread could not start). */
int es_consumer_start(const es_consumer_config *cfg, es_consumer **out, es_error *err);

/* Finishes every member's current batch, commits, leaves the group and frees c. NULL is a
 * no-op. */
void es_consumer_stop(es_consumer *c);

/* A snapshot of the counters, summed over the consumer's members (lag_seconds: the largest;
 * lag_messages: -1 while any member's is not known); safe from any thread. */
void es_consumer_stats_get(es_consumer *c, es_consumer_stats *out);

/* Runs a parameterised statement ($1..$n, text values, NULL = SQL NULL) in the runner's
 * transaction; each distinct sql text is prepared once per connection. Returns ES_OK, or an
 * error classified by the runtime's one SQLSTATE map (es/pg_error.h; err has PostgreSQL's
 * message): ES_ABORTED for unique violations, serialization failures and deadlocks,
 * ES_DEADLINE_EXCEEDED for a cancelled statement (statement_timeout), ES_UNAVAILABLE when the
 * database is unreachable or cannot take the work now, ES_INTERNAL otherwise. A handler that
 * passes on ES_UNAVAILABLE or ES_DEADLINE_EXCEEDED makes the runner wait and run the batch again
 * (es_pg_retry_later), never dead-letter the event. When rows_affected is not NULL it receives
 * the affected row count. */
int es_consumer_tx_exec(es_consumer_tx *tx, const char *sql, int nparams,
                        const char *const *params, int64_t *rows_affected, es_error *err);

/* Like es_consumer_tx_exec for a query; *out (caller frees with es_sql_rows_free) holds its
 * rows. */
int es_consumer_tx_query(es_consumer_tx *tx, const char *sql, int nparams,
                         const char *const *params, es_sql_rows **out, es_error *err);

/* The consumer name the runner applies for (for handlers shared by several consumers). */
const char *es_consumer_tx_name(const es_consumer_tx *tx);

int es_sql_rows_count(const es_sql_rows *rows);
int es_sql_rows_columns(const es_sql_rows *rows);
/* Text value of (row, col), or NULL for SQL NULL or out of range. Owned by rows. */
const char *es_sql_rows_value(const es_sql_rows *rows, int row, int col);
void es_sql_rows_free(es_sql_rows *rows);

typedef struct es_replay_config {
    const char *name;                /* consumer name (es_consumer_streams rows); required */
    const char *conninfo;            /* required */
    es_consumer_handle_fn handle;    /* required */
    void *data;
    const char *stream_id;           /* only this stream; NULL = every event in feed order */
    /* Optional: runs first, in the transaction that forgets the consumer's applied versions
     * (all of them, or stream_id's), e.g. to TRUNCATE the projection. NULL: nothing forgotten,
     * already applied events are skipped as duplicates. */
    int (*reset)(void *data, es_consumer_tx *tx, const char *stream_id, es_error *err);
    int batch_max;                   /* events per transaction; default 500 */
} es_replay_config;

/* Replays committed events from es_events into the handler through the same apply path as the
 * Kafka runner (per-stream versions recorded, duplicates skipped), without Kafka. Stops at the
 * first handler error (nothing of the failing batch commits). Returns ES_OK and, when applied is
 * not NULL, the number of events applied; or an error with err set. */
int es_consumer_replay(const es_replay_config *cfg, int64_t *applied, es_error *err);

/* Appends the consumers' Prometheus families, one family at a time across them (the text format
 * groups families), labelled consumer="<name>" (each is its own Kafka consumer group). NULL
 * entries are skipped. */
void es_consumer_write_metrics(es_consumer *const *cs, size_t n, es_buf *out);

#endif
