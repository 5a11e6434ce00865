/* Internal to runtime/store (relay.c, relay_topics.c): the relay's Kafka topics, apart from its
 * cursor over es_events and its publishing. Which topic a stream type's events go to, creating
 * the topics, and how many messages they hold. Not a public header; es/relay.h has the contract. */
#ifndef ES_STORE_RELAY_TOPICS_H
#define ES_STORE_RELAY_TOPICS_H

#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

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
} es__relay_topics;

/* Copies cfg's topic (non-empty, checked by the caller), routes, partitions and replication
 * factor (defaults 6 and 3) into t; es__relay_topics_free releases them. */
void es__relay_topics_init(es__relay_topics *t, const es_relay_config *cfg);
void es__relay_topics_free(es__relay_topics *t);

/* The topic of a stream type: its route's, else the default. Borrowed from t. */
const char *es__relay_topic_of(const es__relay_topics *t, const char *stream_type);

/* Creates every topic of t the cluster does not list yet (a cluster refusing CreateTopics is
 * logged, not fatal): -1 when metadata failed for one. Logs through r (relay thread). */
int es__relay_topics_ensure(es_relay *r, const es__relay_topics *t, rd_kafka_t *rk);

/* Sum of the high watermarks of every topic of t, or -1 when unknown. 0 means nothing was ever
 * written. */
int64_t es__relay_topics_messages(const es__relay_topics *t, rd_kafka_t *rk);

/* relay.c's log line and status error (recorded, logged once per distinct message). */
void es__relay_say(es_relay *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void es__relay_set_error(es_relay *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
