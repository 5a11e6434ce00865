/* Internal to runtime/store (relay.c, relay_topics.c): the relay's Kafka topics, apart from its
 * cursor over es_events and its publishing. Which topic a stream type's events go to, creating
 * the topics, and how many messages they hold. Not a public header; es/relay.h has the contract. */
#ifndef ES_STORE_RELAY_TOPICS_H
#define ES_STORE_RELAY_TOPICS_H

#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "es/envelope.h"
#include "es/relay.h"

/* The topics published to: names[0] is the default (es_relay_config.topic), then each route's,
 * once; route_topic[i] (one of names) is where stream type route_type[i] goes. partitions and
 * replication are those of a topic the relay creates. */
typedef struct es__relay_topics {
    char **names;
    size_t n;
    char **route_type;
    const char **route_topic;
    size_t n_routes;
    int partitions, replication;
    int *partition_cnt;          /* per name: partitions seen or created at ensure (0: unknown) */
} es__relay_topics;

/* Copies cfg's topic (non-empty, checked by the caller), routes, partitions and replication
 * factor (defaults 6 and 3) into t; es__relay_topics_free releases them. */
void es__relay_topics_init(es__relay_topics *t, const es_relay_config *cfg);
void es__relay_topics_free(es__relay_topics *t);

/* The topic of a stream type: its route's, else the default. Borrowed from t. */
const char *es__relay_topic_of(const es__relay_topics *t, const char *stream_type);

/* Creates every topic of t the cluster does not list yet (a cluster refusing CreateTopics is
 * logged, not fatal): -1 when metadata failed for one. Logs through r (relay thread). */
int es__relay_topics_ensure(es_relay *r, es__relay_topics *t, rd_kafka_t *rk);

/* The index in t->names of a stream type's topic. */
size_t es__relay_topic_index(const es__relay_topics *t, const char *stream_type);

/* The partitioner function of librdkafka's `partitioner` property value (NULL: the default,
 * consistent_random), or NULL for one that does not follow the key (random) or is unknown. */
typedef int32_t (*es__relay_partitioner)(const rd_kafka_topic_t *rkt, const void *key, size_t keylen,
                                         int32_t partition_cnt, void *rkt_opaque, void *msg_opaque);
es__relay_partitioner es__relay_partitioner_of(const char *name);

/* The order to produce a round of the feed in (n indexes into evs; the caller frees it):
 * partition by partition, by fn and the partition counts seen at ensure, each partition's events
 * in feed order. The producer lingers only linger.ms (1), so a round produced in feed order over
 * many partitions left about one event per record batch; each partition's events now reach the
 * producer back to back and leave in one batch: fewer, larger produce requests for the broker and
 * fewer fetches for the consumers. The order is only a hint, the producer still picks the
 * partition: an unknown count, a partitioner that does not follow the key or a topic grown since
 * give a less tidy order, never a key's events out of order (a stable order). NULL (produce in
 * feed order) when fn is NULL or n < 2. */
size_t *es__relay_round_order(const es__relay_topics *t, es__relay_partitioner fn, const es_envelope_view *evs,
                              size_t n);

/* Sum of the high watermarks of every topic of t, or -1 when unknown. 0 means nothing was ever
 * written. */
int64_t es__relay_topics_messages(const es__relay_topics *t, rd_kafka_t *rk);

/* relay.c's log line and status error (recorded, logged once per distinct message). */
void es__relay_say(es_relay *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void es__relay_set_error(es_relay *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
