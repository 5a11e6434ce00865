/* orderd's configuration: one table of keys, each settable by command-line flag (--key value),
 * environment variable (ORDERD_KEY) or its default, in that order of precedence. */
#ifndef ORDERS_CONFIG_H
#define ORDERS_CONFIG_H

/* The topic key's default; set to anything else, it is every aggregate's one topic. */
#define ORDERD_TOPIC_DEFAULT "orders.events"

#define ORDERD_MAX_KAFKA_PROPS 64

typedef struct orderd_config {
    /* librdkafka properties for the relay and the consumers ("key", "value", ..., NULL), from
     * "kafka.<property>" keys: a config-file line, ORDERD_KAFKA__<PROPERTY> (dots as single
     * underscores) or --kafka.<property>. */
    const char *kafka_props[2 * ORDERD_MAX_KAFKA_PROPS + 1];
    int n_kafka_props;
    const char *pg;                 /* libpq conninfo */
    const char *pg_read;            /* conninfo of a read replica ("": none) */
    const char *http_listen;
    const char *grpc_listen;
    const char *kafka_bootstrap;
    const char *kafka_bootstrap_file;
    const char *topic;  /* see orderd_topic_of (app/main.c) */
    int partitions;
    int pool_size;
    int workers;
    int direct_commands;
    int committers;
    int consumer_fetch_wait_ms;
    int projection_consumers;
    int relay_batch;
    int relay_checkpoint_ms;
    int http_threads;
    int grpc_threads;
    int max_body;
    int http_max_connections;
    int http_request_timeout_ms;
    int http_idle_timeout_ms;
    int http_max_connections_per_client;
    int http_body_timeout_ms;
    int http_stall_timeout_ms;
    int http_max_pending_bytes;
    int http_max_resets_per_second;
    const char *metrics_listen;     /* "" : /metrics on the HTTP port, admin token required */
    const char *fleet;              /* base URLs of the instances on /fleet; "": this one */
    const char *fleet_token_file;
    int fleet_timeout_ms;
    int grpc_max_streams;
    int grpc_max_message;
    int grpc_max_connections;
    int grpc_max_connections_per_client;
    int grpc_max_resets_per_second;
    int grpc_reset_ban_ms;
    int grpc_idle_timeout_ms;
    int grpc_max_connection_age_ms;
    int grpc_max_connection_age_grace_ms;
    int grpc_keepalive_time_ms;
    int grpc_keepalive_timeout_ms;
    int grpc_min_ping_interval_ms;
    int grpc_max_ping_strikes;
    const char *grpc_reflection;    /* "auth", "on" or "off" */
    int snapshot_every;
    const char *payment_gateway;
    int payment_delay_ms;
    int relay;
    int projections;
    int payments;
    int payment_flow_concurrency;
    int min_version_wait_ms;
    int max_waiting_reads;
    int waiting_read_recheck_ms;
    int waiting_read_reruns;
    int idempotency_retention_s;
    int event_partition_size;       /* positions per es_events partition (es/partitions.h) */
    int projection_old_grace_s;
    int ready_max_dead_letters;
    const char *page_token_key;
    const char *auth;               /* "required" or "disabled" */
    const char *auth_tokens;        /* token file (hashes, roles, principals) */
    const char *tls_cert;
    const char *tls_key;
    const char *log_level;
} orderd_config;

/* Fills cfg from defaults, the environment and argv. Returns 0, 1 when --help or
 * --print-config was answered (exit 0), or -1 after printing an error (exit 2). */
int orderd_config_load(orderd_config *cfg, int argc, char **argv);
/* Frees what orderd_config_load allocated (values read from a config file). */
void orderd_config_free(orderd_config *cfg);

#endif
