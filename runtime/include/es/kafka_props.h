/* librdkafka properties given by the application's configuration (a real cluster's security
 * settings, timeouts, client ids), passed through to the relay's producer and the consumers. */
#ifndef ES_KAFKA_PROPS_H
#define ES_KAFKA_PROPS_H

#include "es/status.h"

/* Checks "key", "value", ..., NULL pairs against librdkafka before any client starts: an unknown
 * property or a bad value is INVALID_ARGUMENT naming "kafka.<key>" with librdkafka's reason; a
 * property the runtime must own for its guarantees (acks, enable.idempotence, group.id,
 * enable.auto.commit, enable.auto.offset.store) is refused the same way. */
int es_kafka_props_check(const char *const *props, es_error *err);

#endif
