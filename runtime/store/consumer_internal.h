/* Internal to runtime/store: the consumer runner's parts (consumer_tx.c the handlers'
 * transaction API, consumer_apply.c one event applied exactly once in effect, consumer_batch.c a
 * polled batch in one transaction, consumer_kafka.c the Kafka runner, consumer_replay.c the
 * replay from the store). Not a public header. */
#ifndef ES_STORE_CONSUMER_INTERNAL_H
#define ES_STORE_CONSUMER_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include <libpq-fe.h>
#include <librdkafka/rdkafka.h>

#include "es/consumer.h"
#include "es/pg_session.h"

/* What a handler writes through: the runner's session, inside its open transaction. */
struct es_consumer_tx {
    es_pg_session *s;
    const char *name;
};

typedef struct counters {
    int64_t applied, duplicates, gap_filled;
} counters;

typedef enum outcome {
    APPLIED,         /* handler ran (with any gap filled); version recorded */
    DUPLICATE,       /* nothing to do */
    PARKED,          /* the stream waits behind an open dead letter */
    FAILED,          /* handler or gap error: err set; the caller rolls back */
    DB_DOWN,         /* connection problem: the caller retries the whole batch */
} outcome;

/* A session on conninfo for consumer work: application_name es-consumer, the runner's own
 * statements prepared at each connect. NULL with err set when the config is invalid. */
es_pg_session *es__consumer_session(const char *conninfo, es_error *err);

/* Executes one of the runner's prepared statements (text params; lengths and formats may be
 * NULL, or give a binary parameter). The caller PQclears the result. */
PGresult *es__consumer_run(es_pg_session *s, const char *name, int n, const char *const *params,
                           const int *lengths, const int *formats);
/* Runs one of the event reads (es_c_gap, es_c_stream, es_c_feed: text parameters, binary
 * results for es__event_rows). The caller PQclears the result. */
PGresult *es__consumer_read_events(es_pg_session *s, const char *name, int n, const char *const *params);

/* Applies ev for consumer name inside the caller's open transaction (and savepoint): skipped
 * when already applied, parked behind a dead letter (*dead_letter receives its id), gap filled
 * from the store first, then handled and its version recorded. */
outcome es__consumer_apply(es_pg_session *s, const char *name, es_consumer_handle_fn handle, void *data,
                           const es_envelope_view *ev, counters *cnt, int64_t *dead_letter, es_error *err);

/* The outcome of a handler's failure: DB_DOWN when the database (not the event) is the
 * problem, so the work is waited for and never dead-lettered. */
outcome es__consumer_handler_failed(es_pg_session *s, const es_error *err);

struct es_consumer {
    char *name, *group, *topic, *bootstrap;
    char **props;
    es_consumer_handle_fn handle;
    es_consumer_batch_fn handle_batch;
    void *data;
    void (*committed)(void *data, const char *const *stream_ids, size_t n);
    void *committed_data;
    int max_retries, batch_max, session_ms, quiet;
    int64_t last_ts_ms;              /* Kafka timestamp of the last message applied */
    int64_t lag_at_us;               /* when the lag was last measured (monotonic) */
    es_pg_session *d;                /* the runner's transaction session */
    rd_kafka_t *rk;
    pthread_t thread;
    atomic_int stop;
    pthread_mutex_t mu;
    es_consumer_stats st;
    es_consumer *next;               /* the next member of the same consumer (members > 1) */
};

/* Records line as the last error and logs it (unless quiet). */
void es__consumer_say(es_consumer *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The same at warn level: what an operator must act on (dead letters). */
void es__consumer_warn(es_consumer *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void es__consumer_nap_ms(int ms);

/* Applies a polled batch in one transaction; retries it whole while PostgreSQL is away.
 * Returns 0 when committed, -1 when stopping before that. (consumer_batch.c) */
int es__consumer_process_batch(es_consumer *c, rd_kafka_message_t **msgs, size_t n);

#endif
