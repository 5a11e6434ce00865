/* orderd: the order service. Walks the generated packages the build linked (es/packages.h:
 * orders.v1 for orderd) into the runtime: migrations, the command pipeline, HTTP and gRPC
 * transports, the outbox relay, one projector and consumer per projection; and wires the
 * hand-written rules of orders: queries, authorization, the payment flow. See README "Command
 * path" and docs/ARCHITECTURE.md "The start-up walk". */
#define _GNU_SOURCE /* pthread_setname_np */
#include <pthread.h>
#include <stdarg.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <sys/random.h>
#include <unistd.h>

#include "auth.h"
#include "config.h"
#include "es/clock.h"
#include "es/admin.h"
#include "es/consumer.h"
#include "es/dispatcher.h"
#include "es/fleet.h"
#include "es/grpc_server.h"
#include "es/http_server.h"
#include "es/json.h"
#include "es/kafka_props.h"
#include "es/log.h"
#include "es/migrate.h"
#include "es/packages.h"
#include "es/partitions.h"
#include "es/pipeline.h"
#include "es/projection.h"
#include "es/projection_shape.h"
#include "es/relay.h"
#include "es/sha256.h"
#include "gateway.h"
#include "payment_flow.h"
#include "read_model_impl.h"
#include "upcasters.h"
#include "web.h"

/* The projections of the linked packages that one orderd serves. */
#define ORDERD_MAX_PROJECTIONS 16
#define ORDERD_MAX_PACKAGES 16
#define ORDERD_MAX_SERVICES 32
#define ORDERD_MAX_AGGREGATES 32

/* One projection served: its projector, its consumer ("projection.<table>") and its shape. */
typedef struct served_projection {
    const es_projection_def *def;
    size_t package;                     /* index in es_linked_packages */
    char name[96];                      /* "projection.<table>": the consumer's name */
    es_projector *projector;
    es_consumer *consumer;
    es_shape_status shape;              /* its shape check (built beside the serving table) */
} served_projection;

typedef struct app {
    orderd_config cfg;
    es_json_registry *json;
    es_pg_pool *pool;
    es_pg_pool *read_pool;   /* pg-read: the replica serving queries, NULL without one */
    es_pipeline *pipeline;
    orders_read_model_impl rm;
    orders_query_env qenv;
    es_dispatcher *dispatcher;
    es_http_server *http;
    es_http_server *metrics_http;   /* --metrics-listen: /metrics alone, without a token */
    es_grpc_server *grpc;
    es_relay *relay;
    served_projection proj[ORDERD_MAX_PROJECTIONS];
    size_t n_proj;
    int held[ORDERD_MAX_PACKAGES];      /* a package's migration waits for its tables' shape */
    payment_gateway *gateway;
    orders_auth *auth;
    payment_flow flow;
    es_consumer *payment_consumer;
    es_fleet *fleet;                    /* the dashboard's view of the fleet's /metrics (/fleet) */
    es_partitions *partitions;          /* es_events' partitions made ahead of need */
    atomic_int migrated, stopping;
    _Atomic int64_t dead_open, dead_parked; /* open dead letters and parked streams (-1: unknown) */
    pthread_t health_thread;
} app;

static void *health_loop(void *arg)
{
    app *a = arg;
    pthread_setname_np(pthread_self(), "orderd-health");
    unsigned ticks = 0;
    while (!atomic_load(&a->stopping)) {
        /* A checkout refreshes the pool's view of PostgreSQL (es_pg_pool_up, es_postgres_up). */
        es_pg_conn *c;
        es_error err;
        int ok = es_pg_pool_checkout_unprepared(a->pool, &c, &err) == ES_OK;
        if (ok)
            es_pg_pool_checkin(a->pool, c);
        if (ok) {
            int64_t open = -1, parked = -1;
            es_error derr = {0};
            if (es_admin_dead_letter_counts(a->pool, &open, &parked, &derr) != ES_OK)
                open = parked = -1;
            atomic_store(&a->dead_open, open);
            atomic_store(&a->dead_parked, parked);
        }
        /* Client idempotency keys past their retention give their rows back, once a minute. */
        if (ok && a->pipeline && ++ticks % 60 == 1) {
            size_t gone = 0;
            if (es_store_expire_commands(es_pipeline_store(a->pipeline), 0, &gone, &err) != ES_OK)
                es_log(ES_LOG_WARN, "orderd", NULL, "expiring idempotency keys: %s", err.message);
        }
        /* es_events' next partition made ahead of need, once a minute (es/partitions.h). */
        if (ok && a->partitions && ticks % 60 == 30) {
            es_error perr = {0};
            (void)es_partitions_run(a->partitions, &perr);
        }
        for (int i = 0; i < 10 && !atomic_load(&a->stopping); i++)
            es_sleep_us(100 * 1000);
    }
    return NULL;
}

static int req_is_readyz(const es_http_request *req)
{
    return req && req->path && strncmp(req->path, "/readyz", 7) == 0;
}

static void health(void *data, const es_http_request *req, es_http_response *res)
{
    app *a = data;
    int pg = es_pg_pool_up(a->pool), mig = atomic_load(&a->migrated), kafka = es_relay_kafka_up(a->relay);
    /* Only a first build makes orderd unready: a rebuild beside a serving table keeps serving it. */
    const served_projection *shaping = NULL;
    for (size_t i = 0; i < a->n_proj && !shaping; i++)
        if (es_projection_shape_unready(&a->proj[i].shape))
            shaping = &a->proj[i];
    int64_t dead = atomic_load(&a->dead_open), parked = atomic_load(&a->dead_parked);
    /* Dead letters gate readiness only above a configured threshold (see ready-max-dead-letters). */
    int dead_ok = a->cfg.ready_max_dead_letters < 0 || dead <= a->cfg.ready_max_dead_letters;
    int ready = pg && mig && kafka && !shaping && (req_is_readyz(req) ? dead_ok : 1);
    res->status = ready ? 200 : 503;
    res->content_type = "application/json";
    es_buf_printf(&res->body, "{\"status\":\"%s\",\"postgres\":%s,\"migrations\":%s,\"kafka\":%s,\"projections\":%s",
                  ready ? "ok" : "unavailable", pg ? "true" : "false", mig ? "true" : "false", kafka ? "true" : "false",
                  shaping ? "false" : "true");
    es_buf_printf(&res->body, ",\"dead_letters\":%lld,\"parked_streams\":%lld", (long long)dead, (long long)parked);
    if (shaping)
        es_buf_printf(&res->body, ",\"reason\":\"projection %s is being built for the first time "
                                  "(%s: %lld of about %lld events)\"",
                      shaping->def->name, es_projection_shape_state_name(atomic_load(&shaping->shape.state)),
                      (long long)atomic_load(&shaping->shape.done), (long long)atomic_load(&shaping->shape.total));
    else if (!dead_ok && req_is_readyz(req))
        es_buf_printf(&res->body, ",\"reason\":\"%lld open dead letters (more than ready-max-dead-letters %d; "
                                  "see orderctl dead-letters list)\"", (long long)dead, a->cfg.ready_max_dead_letters);
    es_buf_puts(&res->body, "}\n");
}

/* GET /metrics on the main HTTP port: with authentication on, only an admin token may read it
 * (the counters describe the traffic of every caller). */
static void metrics(void *data, const es_http_request *req, es_http_response *res);
/* 1 when the caller may read what /metrics shows; else answers 401/403 and returns 0. */
static int admin_only(app *a, const es_http_request *req, es_http_response *res)
{
    if (a->auth) {
        const char *h = es_http_request_header(req, "Authorization", res->arena);
        const char *bearer = h && strncasecmp(h, "Bearer ", 7) == 0 ? h + 7 : NULL;
        if (!orders_auth_is_admin(a->auth, bearer)) {
            res->status = h ? 403 : 401;
            res->content_type = "application/json";
            if (!h)
                es_http_response_add_header(res, "www-authenticate", "Bearer");
            es_buf_printf(&res->body, "{\"code\":%d,\"message\":\"%s needs an admin bearer token\","
                          "\"details\":[{\"field\":\"authorization\",\"description\":\"%s\"}]}",
                          h ? 7 : 16, req->path, h ? "not an admin token" : "a bearer token is required");
            return 0;
        }
    }
    return 1;
}
static void metrics_guarded(void *data, const es_http_request *req, es_http_response *res)
{
    if (admin_only(data, req, res))
        metrics(data, req, res);
}

/* GET /fleet/metrics: the latest /metrics of every instance of the fleet key (es/fleet.h), for
 * the dashboard at /fleet; the same admin token as /metrics. */
static void fleet_metrics(void *data, const es_http_request *req, es_http_response *res)
{
    app *a = data;
    if (!admin_only(a, req, res))
        return;
    res->content_type = "application/json";
    es_http_response_add_header(res, "Cache-Control", "no-store");
    es_fleet_write_json(a->fleet, &res->body);
}

/* GET /metrics: every component's counters in Prometheus text format. */
static void metrics(void *data, const es_http_request *req, es_http_response *res)
{
    (void)req;
    app *a = data;
    es_buf *b = &res->body;
    res->content_type = "text/plain; version=0.0.4; charset=utf-8";
    es_dispatcher_write_metrics(a->dispatcher, b);
    es_http_server_metrics(a->http, b);
    es_grpc_server_metrics(a->grpc, b);
    es_pipeline_write_metrics(a->pipeline, b);
    es_relay_write_metrics(a->relay, b);
    es_consumer *cs[ORDERD_MAX_PROJECTIONS + 1] = {a->payment_consumer};
    for (size_t i = 0; i < a->n_proj; i++)
        cs[1 + i] = a->proj[i].consumer;
    es_consumer_write_metrics(cs, 1 + a->n_proj, b);
    es_pg_pool_write_metrics(a->pool, b);
    es_pg_pool_write_replica_metrics(a->read_pool, b);
    es_partitions_write_metrics(a->partitions, b);
    const es_shape_status *shapes[ORDERD_MAX_PROJECTIONS];
    const char *names[ORDERD_MAX_PROJECTIONS];
    for (size_t i = 0; i < a->n_proj; i++) {
        shapes[i] = &a->proj[i].shape;
        names[i] = a->proj[i].def->name;
    }
    es_projection_shape_write_metrics(shapes, names, a->n_proj, b);
}

/* This instance's metrics for the fleet view when the fleet key lists no URL. */
static void self_metrics(void *data, es_buf *out)
{
    es_http_response r = {.status = 200};
    es_buf_init(&r.body);
    metrics(data, NULL, &r);
    es_buf_append(out, r.body.data, r.body.len);
    es_buf_free(&r.body);
}

static void livez(void *data, const es_http_request *req, es_http_response *res)
{
    (void)data; (void)req;
    res->content_type = "application/json";
    es_buf_puts(&res->body, "{\"status\":\"ok\"}\n");
}

/* The event store's migration, then each package's projections and their generated forward
 * steps: a package waits for its shape check when a serving table has another shape (held[i];
 * see es/projection_shape.h and es/packages.h). */
static int migrate_with_retry(app *a, es_error *err)
{
    for (int attempt = 0;; attempt++) {
        int rc = es_packages_migrate(a->pool, &es_linked_packages, a->held, err);
        if (rc != ES_UNAVAILABLE || attempt >= 60)
            return rc;
        if (attempt == 0)
            es_log(ES_LOG_WARN, "orderd", NULL, "PostgreSQL unreachable (%s); retrying for 60 s", err->message);
        sleep(1);
    }
}

/* The projection committed these orders' rows: reads waiting for them run again. */
static void wake_reads(void *dispatcher, const char *const *stream_ids, size_t n)
{
    es_dispatcher_wake(dispatcher, stream_ids, n);
}

/* One projector per projection of the linked packages; each consumer starts once the servers
 * listen and its table has its current shape (start_projection). ES_INVALID_ARGUMENT when there
 * are more than orderd serves. */
static int new_projectors(app *a)
{
    for (size_t p = 0; p < es_linked_packages.n; p++) {
        const es_schema *s = es_linked_packages.schemas[p];
        for (size_t k = 0; k < s->n_projections; k++) {
            if (a->n_proj == ORDERD_MAX_PROJECTIONS)
                return ES_INVALID_ARGUMENT;
            served_projection *sp = &a->proj[a->n_proj++];
            sp->def = s->projections[k];
            sp->package = p;
            snprintf(sp->name, sizeof sp->name, "projection.%s", sp->def->name);
            sp->projector = es_projector_new(sp->def, a->json);
            /* The application's upcasters, keyed by event type: each projector finds its own. */
            es_projector_set_upcasters(sp->projector, orders_upcasters, orders_n_upcasters);
            /* Its package's release: events a newer release of it registered wait (es/projection.h). */
            es_projector_set_release(sp->projector, s->descriptor_set_hash);
        }
    }
    return ES_OK;
}

/* A table written by an earlier shape gets its new version built beside it from the event store
 * while the servers take commands and the old version serves reads; the consumer runs on the new
 * version once it switched (see es/projection_shape.h). A package held back at migration is
 * migrated once its table has its shape. */
/* An aggregate's Kafka topic: its own ((es.aggregate).topic), unless the topic key was set to
 * something else than its default, which a deployment of a release before topics per aggregate
 * chose as the one topic of every event: then that topic, for every aggregate, as before. */
static const char *topic_of(const orderd_config *cfg, const es_aggregate_def *agg)
{
    return strcmp(cfg->topic, ORDERD_TOPIC_DEFAULT) != 0 ? cfg->topic : agg->topic;
}

static int start_projection(app *a, served_projection *sp, const char *const *consumer_props, es_error *err)
{
    const orderd_config *cfg = &a->cfg;
    const es_schema *s = es_linked_packages.schemas[sp->package];
    int held = a->held[sp->package];
    char mname[128];
    es_migration after;
    es_package_migration(s, mname, sizeof mname, &after);
    es_shape_config sc = {.pool = a->pool, .conninfo = cfg->pg, .name = sp->name,
                          .projector = sp->projector, .def = sp->def,
                          .json = a->json, .old_grace_s = cfg->projection_old_grace_s,
                          .after = held ? &after : NULL, .n_after = held ? 1 : 0,
                          .status = &sp->shape};
    es_shape_result sr;
    if (es_projection_ensure_shape(&sc, &sr, err) != ES_OK || (held && es_package_migrate(a->pool, s, err) != ES_OK))
        return err->code;
    const char *bootstrap = cfg->kafka_bootstrap[0] ? cfg->kafka_bootstrap : NULL;
    const char *bootstrap_file = cfg->kafka_bootstrap_file[0] ? cfg->kafka_bootstrap_file : NULL;
    es_consumer_config cc = {.name = sp->name, .conninfo = cfg->pg, .bootstrap_servers = bootstrap,
                             .bootstrap_file = bootstrap_file, .topic = topic_of(cfg, sp->def->aggregate),
                             .kafka_props = consumer_props, .handle = es_projector_handle,
                             .handle_batch = es_projector_handle_batch,
                             .data = sp->projector, .members = cfg->projection_consumers,
                             .committed = wake_reads, .committed_data = a->dispatcher};
    return es_consumer_start(&cc, &sp->consumer, err);
}

static int start(app *a)
{
    orderd_config *cfg = &a->cfg;
    es_error err = {0};
    if (es_log_set_level(cfg->log_level) != 0) {
        es_error_set(&err, ES_INVALID_ARGUMENT, "log-level", "--log-level must be debug, info, warn or error");
        goto fail;
    }
    if (strcmp(cfg->auth, "required") == 0 && !cfg->auth_tokens[0]) {
        es_error_set(&err, ES_FAILED_PRECONDITION, "auth-tokens",
                     "authentication is required but no --auth-tokens file is given "
                     "(pass --auth disabled to run without authentication, for development only)");
        goto fail;
    }
    if (strcmp(cfg->auth, "required") != 0 && strcmp(cfg->auth, "disabled") != 0) {
        es_error_set(&err, ES_INVALID_ARGUMENT, "auth", "--auth must be required or disabled, not %s", cfg->auth);
        goto fail;
    }
    if (!cfg->auth_tokens[0])
        es_log(ES_LOG_WARN, "orderd", NULL, "authentication is disabled: every caller may call every method");
    if (es_linked_packages.n > ORDERD_MAX_PACKAGES) {
        es_error_set(&err, ES_INVALID_ARGUMENT, "packages", "%zu packages linked; orderd serves at most %d",
                     es_linked_packages.n, ORDERD_MAX_PACKAGES);
        goto fail;
    }
    a->json = es_json_registry_new();
    es_packages_add_json(a->json, &es_linked_packages);
    es_pg_pool_config pc = {.conninfo = cfg->pg, .size = (size_t)cfg->pool_size, .application_name = "orderd"};
    if (!(a->pool = es_pg_pool_new(&pc, &err)))
        goto fail;
    if (migrate_with_retry(a, &err) != ES_OK)
        goto fail;
    /* es_events' partitions ahead of need; a failure (logged) is not fatal: the default
     * partition takes the events, and the health loop tries again (es/partitions.h). */
    a->partitions = es_partitions_new(a->pool, cfg->event_partition_size);
    {
        es_error perr = {0};
        (void)es_partitions_run(a->partitions, &perr);
    }
    atomic_store(&a->migrated, 1);
    es_pipeline_config pl = {.pool = a->pool, .snapshot_every = cfg->snapshot_every, .json = a->json,
                             .committers = (size_t)cfg->committers, .upcasters = orders_upcasters,
                             .n_upcasters = orders_n_upcasters};
    if (!(a->pipeline = es_pipeline_new(&pl, &err)))
        goto fail;
    if (es_packages_register_schemas(es_pipeline_store(a->pipeline), &es_linked_packages, &err) != ES_OK)
        goto fail;
    orders_read_model_init(&a->rm, a->pipeline);
    if (cfg->pg_read && cfg->pg_read[0]) {
        /* A read replica: a pool of its own, sized like the primary's (see README, "A read replica"). */
        es_pg_pool_config rc = {.conninfo = cfg->pg_read, .size = (size_t)cfg->pool_size,
                                .application_name = "orderd-read"};
        if (!(a->read_pool = es_pg_pool_new(&rc, &err)))
            goto fail;
        orders_read_model_use_replica(&a->rm, a->read_pool);
    }
    a->qenv.rm = &a->rm.rm;
    a->qenv.min_version_wait_ms = cfg->min_version_wait_ms;
    if (cfg->page_token_key && cfg->page_token_key[0]) {
        es_sha256 h;
        es_sha256_init(&h);
        es_sha256_update(&h, cfg->page_token_key, strlen(cfg->page_token_key));
        es_sha256_final(&h, a->qenv.page_key);
    } else if (getrandom(a->qenv.page_key, sizeof a->qenv.page_key, 0) != (ssize_t)sizeof a->qenv.page_key) {
        es_error_set(&err, ES_UNAVAILABLE, "page-token-key", "no random bytes for the page-token key");
        goto fail;
    }
    static const es_service_def *services[ORDERD_MAX_SERVICES];
    size_t n_services = es_packages_services(&es_linked_packages, services, ORDERD_MAX_SERVICES);
    if (n_services > ORDERD_MAX_SERVICES) {
        es_error_set(&err, ES_INVALID_ARGUMENT, "packages", "%zu services linked; orderd serves at most %d",
                     n_services, ORDERD_MAX_SERVICES);
        goto fail;
    }
    /* A package's queries get its own context (QUERY_APP in its es_packages_library), orders'
     * the read model above. */
    static void *query_apps[ORDERD_MAX_SERVICES];
    es_package_host host = {.pipeline = a->pipeline, .pool = a->pool, .read_pool = a->read_pool};
    es_packages_query_apps(&es_linked_packages, &host, &a->qenv, query_apps, ORDERD_MAX_SERVICES);
    es_dispatcher_config dc = {.pipeline = a->pipeline, .json = a->json, .query_app = &a->qenv,
                               .query_apps = query_apps,
                               .workers = (size_t)cfg->workers, .services = services, .n_services = n_services,
                               .direct_commands = (size_t)cfg->direct_commands, .direct_off = cfg->direct_commands == 0,
                               .idempotency_retention_s = cfg->idempotency_retention_s,
                               .max_waiting = (size_t)cfg->max_waiting_reads, .recheck_ms = cfg->waiting_read_recheck_ms,
                               .max_reruns = (size_t)cfg->waiting_read_reruns};
    if (cfg->auth_tokens[0]) {
        char aerr[512];
        if (!(a->auth = orders_auth_load(cfg->auth_tokens, a->pipeline, aerr, sizeof aerr))) {
            es_error_set(&err, ES_INVALID_ARGUMENT, "auth-tokens", "%s", aerr);
            goto fail;
        }
        dc.authorize = orders_authorize;
        dc.authorize_data = a->auth;
    }
    if (!(a->dispatcher = es_dispatcher_new(&dc, &err)))
        goto fail;

    const char *bootstrap = cfg->kafka_bootstrap[0] ? cfg->kafka_bootstrap : NULL;
    const char *bootstrap_file = cfg->kafka_bootstrap_file[0] ? cfg->kafka_bootstrap_file : NULL;
    char fetch_wait[16];
    snprintf(fetch_wait, sizeof fetch_wait, "%d", cfg->consumer_fetch_wait_ms > 0 ? cfg->consumer_fetch_wait_ms : 1);
    /* The consumers' own setting first: a kafka.fetch.wait.max.ms from the config replaces it. */
    const char *consumer_props[2 * ORDERD_MAX_KAFKA_PROPS + 3] = {"fetch.wait.max.ms", fetch_wait};
    for (int i = 0; i < 2 * cfg->n_kafka_props; i++)
        consumer_props[2 + i] = cfg->kafka_props[i];

    int kafka = bootstrap || bootstrap_file;
    if (!kafka)
        es_log(ES_LOG_WARN, "orderd", NULL, "no Kafka configured (--kafka-bootstrap or --kafka-bootstrap-file): events are stored but not published");
    if (kafka && cfg->relay) {
        /* Each event to its aggregate's topic (topic_of); the topic key names the one of stream
         * types no linked package declares. */
        static es_relay_route routes[ORDERD_MAX_AGGREGATES];
        size_t n_routes = 0;
        for (size_t p = 0; p < es_linked_packages.n; p++)
            for (size_t k = 0; k < es_linked_packages.schemas[p]->n_aggregates && n_routes < ORDERD_MAX_AGGREGATES; k++) {
                const es_aggregate_def *agg = es_linked_packages.schemas[p]->aggregates[k];
                routes[n_routes++] = (es_relay_route){.stream_type = agg->name, .topic = topic_of(cfg, agg)};
            }
        es_relay_config rc = {.conninfo = cfg->pg, .bootstrap_servers = bootstrap, .bootstrap_file = bootstrap_file,
                              .topic = cfg->topic, .routes = routes, .n_routes = n_routes,
                              .partitions = cfg->partitions, .kafka_props = cfg->kafka_props,
                              .batch_size = (size_t)cfg->relay_batch,
                              .checkpoint_interval_ms = cfg->relay_checkpoint_ms};
        if (es_relay_start(&rc, &a->relay, &err) != ES_OK)
            goto fail;
    }
    if (kafka && cfg->projections && new_projectors(a) != ES_OK) {
        es_error_set(&err, ES_INVALID_ARGUMENT, "packages", "%zu projections linked; orderd serves at most %d",
                     a->n_proj, ORDERD_MAX_PROJECTIONS);
        goto fail;
    }
    if (kafka && cfg->payments) {
        char gerr[256];
        if (!(a->gateway = gateway_sim_new(cfg->payment_gateway, cfg->payment_delay_ms, gerr, sizeof gerr))) {
            es_error_set(&err, ES_INVALID_ARGUMENT, "payment-gateway", "%s", gerr);
            goto fail;
        }
        a->flow.pipeline = a->pipeline;
        a->flow.gateway = a->gateway;
        a->flow.concurrency = (unsigned)cfg->payment_flow_concurrency;
        es_consumer_config cc = {.name = "payment-flow", .conninfo = cfg->pg, .bootstrap_servers = bootstrap,
                                 .bootstrap_file = bootstrap_file, .topic = topic_of(cfg, &orders_v1_aggregate_order),
                                 .kafka_props = consumer_props, .handle = payment_flow_handle,
                                 .handle_batch = payment_flow_handle_batch,
                                 .data = &a->flow};
        if (es_consumer_start(&cc, &a->payment_consumer, &err) != ES_OK)
            goto fail;
    }
    pthread_create(&a->health_thread, NULL, health_loop, a);

    const char *cert = cfg->tls_cert[0] ? cfg->tls_cert : NULL, *key = cfg->tls_key[0] ? cfg->tls_key : NULL;
    /* gRPC listens before HTTP: /healthz answering means both transports take calls. */
    es_grpc_config gc = {.address = cfg->grpc_listen, .threads = (unsigned)cfg->grpc_threads,
                         .tls_cert_file = cert, .tls_key_file = key,
                         .max_message = cfg->grpc_max_message > 0 ? (size_t)cfg->grpc_max_message : 0,
                         .max_concurrent_streams = cfg->grpc_max_streams > 0 ? (unsigned)cfg->grpc_max_streams : 0,
                         .max_connections = (unsigned)cfg->grpc_max_connections,
                         .max_connections_per_client = (unsigned)cfg->grpc_max_connections_per_client,
                         .max_resets_per_second = (unsigned)cfg->grpc_max_resets_per_second,
                         .reset_ban_ms = (unsigned)cfg->grpc_reset_ban_ms,
                         .idle_timeout_ms = (unsigned)cfg->grpc_idle_timeout_ms,
                         .max_age_ms = (unsigned)cfg->grpc_max_connection_age_ms,
                         .max_age_grace_ms = (unsigned)cfg->grpc_max_connection_age_grace_ms,
                         .keepalive_time_ms = (unsigned)cfg->grpc_keepalive_time_ms,
                         .keepalive_timeout_ms = (unsigned)cfg->grpc_keepalive_timeout_ms,
                         .min_ping_interval_ms = (unsigned)cfg->grpc_min_ping_interval_ms,
                         .max_ping_strikes = (unsigned)cfg->grpc_max_ping_strikes,
                         .authenticate = a->auth ? orders_authenticate : NULL, .authenticate_data = a->auth};
    if (strcmp(cfg->grpc_reflection, "on") == 0)
        gc.reflection = ES_GRPC_REFLECTION_ON;
    else if (strcmp(cfg->grpc_reflection, "off") == 0)
        gc.reflection = ES_GRPC_REFLECTION_OFF;
    else if (strcmp(cfg->grpc_reflection, "auth") != 0) {
        es_error_set(&err, ES_INVALID_ARGUMENT, "grpc-reflection", "grpc-reflection must be auth, on or off, not \"%s\"",
                     cfg->grpc_reflection);
        goto fail;
    }
    if (!(a->grpc = es_grpc_server_new(&gc, a->dispatcher, &err)) ||
        es_packages_serve(&es_linked_packages, a->grpc, NULL, &err) != ES_OK ||
        es_grpc_server_start(a->grpc, &err) != ES_OK)
        goto fail;
    es_http_config hc = {.server_name = "orderd", .address = cfg->http_listen, .threads = (unsigned)cfg->http_threads,
                         .max_body = (size_t)cfg->max_body, .tls_cert_file = cert, .tls_key_file = key,
                         .max_connections = cfg->http_max_connections > 0 ? (unsigned)cfg->http_max_connections : 0,
                         .request_timeout_ms = cfg->http_request_timeout_ms > 0 ? (unsigned)cfg->http_request_timeout_ms : 0,
                         .idle_timeout_ms = cfg->http_idle_timeout_ms > 0 ? (unsigned)cfg->http_idle_timeout_ms : 0,
                         .max_connections_per_client = (unsigned)cfg->http_max_connections_per_client,
                         .body_timeout_ms = (unsigned)cfg->http_body_timeout_ms,
                         .stall_timeout_ms = (unsigned)cfg->http_stall_timeout_ms,
                         .max_pending_bytes = (size_t)cfg->http_max_pending_bytes,
                         .max_resets_per_second = (unsigned)cfg->http_max_resets_per_second};
    if (!(a->http = es_http_server_new(&hc, a->dispatcher, &err)) ||
        es_packages_serve(&es_linked_packages, NULL, a->http, &err) != ES_OK)
        goto fail;
    es_http_server_add_handler(a->http, "GET", "/healthz", ES_HTTP_EXACT, health, a);
    es_http_server_add_handler(a->http, "GET", "/readyz", ES_HTTP_EXACT, health, a);
    es_http_server_add_handler(a->http, "GET", "/livez", ES_HTTP_EXACT, livez, a);
    if (!cfg->metrics_listen[0])
        es_http_server_add_handler(a->http, "GET", "/metrics", ES_HTTP_EXACT, metrics_guarded, a);
    orders_web_register(a->http, &es_linked_packages); /* the timeline page at /, the fleet's at /fleet, /openapi.json (app/web.c) */
    char fleet_token[512] = "";
    if (cfg->fleet_token_file[0]) {
        FILE *tf = fopen(cfg->fleet_token_file, "r");
        if (!tf || !fgets(fleet_token, sizeof fleet_token, tf)) {
            es_error_set(&err, ES_INVALID_ARGUMENT, "fleet-token-file", "cannot read a token from %s", cfg->fleet_token_file);
            if (tf)
                fclose(tf);
            goto fail;
        }
        fclose(tf);
        fleet_token[strcspn(fleet_token, "\r\n")] = 0;
    }
    es_fleet_config fc = {.urls = cfg->fleet, .token = fleet_token, .timeout_ms = (unsigned)cfg->fleet_timeout_ms,
                          .self = self_metrics, .self_data = a};
    if (!(a->fleet = es_fleet_new(&fc, &err)))
        goto fail;
    es_http_server_add_handler(a->http, "GET", "/fleet/metrics", ES_HTTP_EXACT, fleet_metrics, a);
    /* The metrics listener before the main one: /healthz answering means /metrics does too. */
    if (cfg->metrics_listen[0]) {
        es_http_config mc = {.server_name = "orderd", .address = cfg->metrics_listen, .threads = 1,
                             .tls_cert_file = cert, .tls_key_file = key};
        if (!(a->metrics_http = es_http_server_new(&mc, a->dispatcher, &err)))
            goto fail;
        es_http_server_add_handler(a->metrics_http, "GET", "/metrics", ES_HTTP_EXACT, metrics, a);
        if (es_http_server_start(a->metrics_http, &err) != ES_OK)
            goto fail;
        es_log(ES_LOG_INFO, "orderd", NULL, "/metrics served on %s (port %d)", cfg->metrics_listen,
               es_http_server_port(a->metrics_http));
    }
    if (es_http_server_start(a->http, &err) != ES_OK)
        goto fail;
    for (size_t i = 0; i < a->n_proj; i++)
        if (start_projection(a, &a->proj[i], consumer_props, &err) != ES_OK)
            goto fail;
    es_log(ES_LOG_INFO, "orderd", NULL, "orderd serving HTTP on %s (port %d) and gRPC on %s (port %d)", cfg->http_listen,
          es_http_server_port(a->http), cfg->grpc_listen, es_grpc_server_port(a->grpc));
    return 0;
fail:
    es_log(ES_LOG_ERROR, "orderd", NULL, "start-up failed: %s: %s%s%s", es_strerror(err.code), err.message, err.field[0] ? " field=" : "",
          err.field);
    return -1;
}

static void stop(app *a)
{
    atomic_store(&a->stopping, 1);
    es_http_server_free(a->metrics_http);
    es_http_server_free(a->http);
    es_fleet_free(a->fleet);
    es_grpc_server_free(a->grpc);
    es_consumer_stop(a->payment_consumer);
    for (size_t i = 0; i < a->n_proj; i++)
        es_consumer_stop(a->proj[i].consumer);
    es_relay_stop(a->relay);
    if (a->health_thread)
        pthread_join(a->health_thread, NULL);
    for (size_t i = 0; i < a->n_proj; i++)
        es_projection_shape_status_fini(&a->proj[i].shape);
    es_dispatcher_free(a->dispatcher);
    if (a->pipeline)
        orders_read_model_fini(&a->rm);
    es_pipeline_free(a->pipeline);
    for (size_t i = 0; i < a->n_proj; i++)
        es_projector_free(a->proj[i].projector);
    gateway_sim_free(a->gateway);
    es_partitions_free(a->partitions);
    es_pg_pool_free(a->pool);
    es_pg_pool_free(a->read_pool);
    es_json_registry_free(a->json);
    orders_auth_free(a->auth);
}

int main(int argc, char **argv)
{
    static app a;
    int r = orderd_config_load(&a.cfg, argc, argv);
    if (r) {
        orderd_config_free(&a.cfg);
        return r > 0 ? 0 : 2;
    }
    es_error kerr = {0};
    if (es_kafka_props_check(a.cfg.kafka_props, &kerr) != ES_OK) { /* a configuration error, like any other */
        fprintf(stderr, "orderd: %s\n", kerr.message);
        orderd_config_free(&a.cfg);
        return 2;
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* every thread inherits it; main waits below */
    signal(SIGPIPE, SIG_IGN);
    if (start(&a) != 0) {
        stop(&a);
        orderd_config_free(&a.cfg);
        return 1;
    }
    int sig;
    sigwait(&set, &sig);
    es_log(ES_LOG_INFO, "orderd", NULL, "signal %d: stopping", sig);
    stop(&a);
    orderd_config_free(&a.cfg);
    return 0;
}
