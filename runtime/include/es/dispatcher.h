/* The service dispatcher: serves es_calls from the transports with a pool of worker threads.
 * A command goes through the pipeline (es/pipeline.h) and is answered with the method's output
 * message filled generically (the aggregate's id field, version, event_ids, replayed); a query
 * is validated and handed to its hand-written handler. Both transports share it, so HTTP and
 * gRPC give the same outcome for the same request. */
#ifndef ES_DISPATCHER_H
#define ES_DISPATCHER_H

#include <stddef.h>
#include <stdint.h>
#include "es/buf.h"
#include "es/pipeline.h"
#include "es/service.h"

/* Optional authorization hook: ES_OK to proceed, or an error (UNAUTHENTICATED, PERMISSION_DENIED)
 * in err. *actor receives the principal recorded with events (static or from the call arena). */
typedef int (*es_authorize_fn)(void *data, es_call *call, const char **actor, es_error *err);

typedef struct es_dispatcher_config {
    es_pipeline *pipeline;           /* required for commands (borrowed) */
    const struct es_json_registry *json;
    void *query_app;                 /* es_query_ctx.app for query handlers */
    size_t workers;                  /* threads (0: 64): commands block on group commit */
    /* Creating commands that need no read (es_pipeline_execute_async) are decided on the
     * transport's thread and answered from the committer, without a worker: at most this many
     * at once (0: as many as workers; beyond, they queue for a worker like any call). Needs an
     * authorize hook that never blocks for such commands (no owner rule: es/access.h). */
    size_t direct_commands;
    int direct_off;                  /* 1: every command goes through a worker */
    size_t queue;                    /* calls waiting for a worker (0: 4096); beyond: RESOURCE_EXHAUSTED */
    es_authorize_fn authorize;       /* NULL: everyone may call everything */
    void *authorize_data;
    int64_t idempotency_retention_s; /* how long a client's idempotency key is kept (0: 86400) */
    const es_service_def *const *services; /* methods counted per name in the metrics */
    size_t n_services;
    /* es_query_ctx.app per service (parallel to services; the array or an entry may be NULL:
     * query_app), so each package's queries get their own context (es/packages.h). */
    void *const *query_apps;
    /* Queries that ask to wait (es_query_ctx.wait) are parked without a thread: */
    size_t max_waiting;              /* parked at once (0: 1024); beyond: RESOURCE_EXHAUSTED naming the field */
    int recheck_ms;                  /* first safety-net re-run of a parked query (0: 50), doubling to 8x */
    size_t max_reruns;               /* fired parked queries running at once (0: 4); new calls go first */
} es_dispatcher_config;

typedef struct es_dispatcher_stats {
    uint64_t calls;
    uint64_t by_code[17];            /* answered calls by gRPC code */
    uint64_t rejected;               /* queue full */
    uint64_t queued;                 /* waiting now */
} es_dispatcher_stats;

/* Starts the workers. Returns NULL with err set on a bad config. */
es_dispatcher *es_dispatcher_new(const es_dispatcher_config *cfg, es_error *err);
/* Stops the workers after the queued calls are answered. Accepts NULL. */
void es_dispatcher_free(es_dispatcher *d);
void es_dispatcher_get_stats(es_dispatcher *d, es_dispatcher_stats *out);
/* Appends the dispatcher's Prometheus metrics: es_requests_total{method,transport,code},
 * es_request_duration_seconds{method} (histogram), queue depth and rejections, and the parked
 * queries' es_waiting_reads* families (es/waiters.h). */
void es_dispatcher_write_metrics(es_dispatcher *d, es_buf *out);

/* Runs the queries parked on any of stream_ids (n, borrowed) again: call it once the read model
 * of those streams has committed a change (the projection consumer's es_consumer_config.committed).
 * Any thread; cheap when nothing waits. */
void es_dispatcher_wake(es_dispatcher *d, const char *const *stream_ids, size_t n);

/* Fills the answer of a command from a pipeline result: the output message's string field
 * named like the aggregate's id field (or "stream_id"), int64 "version", repeated string
 * "event_ids", bool "replayed", where the message has them. Allocated from arena. */
ProtobufCMessage *es_command_answer(const ProtobufCMessageDescriptor *out_desc, const es_command_def *def,
                                    const es_command_result *r, es_arena *arena);

#endif
