/* The outbox relay: publishes the global feed to Kafka, at least once, keyed by stream id, in
 * stream order (docs/ARCHITECTURE.md invariant 5).
 *
 * Any number of processes may start a relay; one is active. The active one holds a session-level
 * advisory lock on its own PostgreSQL connection and writes its checkpoint through that same
 * connection, so a relay that lost its lock can no longer move the checkpoint. The others retry
 * the lock every lock_retry_ms and take over as soon as the holder's session ends (a killed
 * process closes its socket; TCP keepalives on the lock session cover a vanished host).
 *
 * The active relay reads the feed after its checkpoint (es_relay_checkpoint), produces each
 * event (key = stream id, value = es.Envelope, es-* headers) with an idempotent producer and
 * acks=all, waits for every delivery report of the batch, and only then moves past it. A failed
 * batch is produced again from the last delivered position after a backoff: Kafka may hold
 * duplicates, never gaps, and each key's first occurrences keep stream order. Appends never wait
 * for Kafka. The delivered position is written to the checkpoint at most once every
 * checkpoint_interval_ms (also when the feed goes quiet: then when it is due) and at once when
 * the relay stops: a crash or a lost lock costs only duplicates, the next active relay
 * publishing again from the checkpoint.
 *
 * The relay records the Kafka cluster id with its checkpoint. When it meets another cluster, or
 * the topic it has published to is empty (the mock cluster keeps nothing across its restart and
 * may reuse an id), it republishes from the start of the feed; consumers dedupe. */
#ifndef ES_RELAY_H
#define ES_RELAY_H

#include <stddef.h>
#include <stdint.h>

#include "es/buf.h"
#include "es/feed.h"
#include "es/status.h"

typedef struct es_relay es_relay;

/* Where the events of one stream type go (a topic per aggregate: the application passes each
 * aggregate's (es.aggregate).topic; see README "Kafka topics"). */
typedef struct es_relay_route {
    const char *stream_type;         /* the aggregate name, "order" */
    const char *topic;               /* "orders.events" */
} es_relay_route;

typedef struct es_relay_config {
    const char *conninfo;            /* PostgreSQL (libpq conninfo); required */
    const char *bootstrap_servers;   /* Kafka bootstrap.servers; or NULL and bootstrap_file */
    const char *bootstrap_file;      /* file holding bootstrap.servers; re-read while running so
                                        a restarted mock cluster (new ports) is followed */
    const char *topic;               /* required: the topic of stream types no route names (the
                                        application names its topics) */
    const es_relay_route *routes;    /* each event goes to its stream type's topic (may be NULL) */
    size_t n_routes;
    int partitions;                  /* when the relay creates a topic; default 6 */
    int replication_factor;          /* when the relay creates a topic; default 3 */
    const char *name;                /* checkpoint row and lock name; default "default" */
    size_t batch_size;               /* events per produce/checkpoint round; default 1000 */
    int poll_interval_ms;            /* feed poll when no notification arrives; default 500 */
    int lock_retry_ms;               /* standby: how often to try the lock; default 1000 */
    int message_timeout_ms;          /* librdkafka message.timeout.ms; default 30000 */
    int stats_interval_ms;           /* lag/hold-back measurement period; default 2000 */
    int checkpoint_interval_ms;      /* least time between two checkpoint writes (0: after every
                                        round); the delivered position is written when it is
                                        due, also while the feed is quiet, and at once when the
                                        relay stops, so only a crash or a lost lock leaves the
                                        checkpoint behind, by at most this long's deliveries
                                        (published again, and skipped by consumers) */
    const char *const *kafka_props;  /* extra librdkafka settings: "key", "value", ..., NULL */
    int quiet;                       /* 1: no log lines on stderr */
} es_relay_config;

typedef enum es_relay_role {
    ES_RELAY_STARTING = 0,           /* not connected to PostgreSQL yet */
    ES_RELAY_STANDBY = 1,            /* another instance holds the lock */
    ES_RELAY_ACTIVE = 2,             /* holds the lock and publishes */
} es_relay_role;

typedef struct es_relay_status {
    es_relay_role role;
    int kafka_ok;                    /* 1 while the last produce round or metadata call worked */
    es_feed_cursor checkpoint;       /* last delivered (txid, position) */
    es_feed_cursor saved;            /* last written to es_relay_checkpoint */
    int64_t published;               /* messages delivered by this instance since start */
    int64_t batches;                 /* rounds delivered by this instance */
    int64_t checkpoints;             /* checkpoint writes by this instance */
    int64_t failed_batches;          /* rounds abandoned (Kafka errors) and retried */
    int64_t republishes;             /* restarts from the feed's start after a new cluster */
    int64_t lag_events;              /* committed events not yet delivered */
    double lag_seconds;              /* age of the oldest of them */
    int64_t held_back_events;        /* committed but behind a running transaction */
    double held_back_seconds;
    double oldest_xact_age_s;
    char cluster_id[64];
    char last_error[256];
} es_relay_status;

/* Validates cfg, copies what it needs (cfg may be freed afterwards) and starts the relay thread.
 * *out is freed by es_relay_stop. Returns ES_OK, ES_INVALID_ARGUMENT or ES_RESOURCE_EXHAUSTED
 * (its thread could not start); connection problems are not errors here: the thread retries
 * them and reports them in the status. */
int es_relay_start(const es_relay_config *cfg, es_relay **out, es_error *err);

/* Stops the thread (undelivered messages are dropped: they are not checkpointed, the next active
 * relay publishes them), releases the lock and frees r. NULL is a no-op. */
void es_relay_stop(es_relay *r);

/* A consistent snapshot of the relay's state; safe from any thread. */
void es_relay_status_get(es_relay *r, es_relay_status *out);

/* 1 while events can reach Kafka from here: this relay is active and its last round or metadata
 * call worked, or another instance holds the relay lock. NULL r (no relay on this instance): 1. */
int es_relay_kafka_up(es_relay *r);

/* Appends the relay's Prometheus families (es_kafka_up, active, position, published, batches,
 * lag, the feed's hold-back). NULL r (no relay on this instance): nothing. */
void es_relay_write_metrics(es_relay *r, es_buf *out);

#endif
