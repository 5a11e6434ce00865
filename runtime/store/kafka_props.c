/* Kafka properties from configuration: see es/kafka_props.h. */
#include "es/kafka_props.h"

#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <string.h>

/* The relay's at-least-once delivery and the consumers' offset handling rest on these. */
static const char *const owned[] = {"acks", "request.required.acks", "enable.idempotence", "group.id",
                                    "enable.auto.commit", "enable.auto.offset.store"};

int es_kafka_props_check(const char *const *props, es_error *err)
{
    if (!props)
        return ES_OK;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    int rc = ES_OK;
    char errstr[512];
    for (size_t i = 0; props[i] && props[i + 1]; i += 2) {
        char field[160];
        snprintf(field, sizeof field, "kafka.%s", props[i]);
        for (size_t k = 0; k < sizeof owned / sizeof owned[0]; k++)
            if (strcmp(props[i], owned[k]) == 0) {
                rc = es_error_set(err, ES_INVALID_ARGUMENT, field,
                                  "%s is set by orderd itself (its delivery guarantees depend on it)", field);
                goto out;
            }
        if (rd_kafka_conf_set(conf, props[i], props[i + 1], errstr, sizeof errstr) != RD_KAFKA_CONF_OK) {
            rc = es_error_set(err, ES_INVALID_ARGUMENT, field, "%s: %s", field, errstr);
            goto out;
        }
    }
out:
    rd_kafka_conf_destroy(conf);
    return rc;
}
