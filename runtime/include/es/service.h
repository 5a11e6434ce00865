/* The call a transport (HTTP or gRPC) hands to the service, and the dispatcher that serves it.
 * Both transports build an es_call the same way, so both report the same outcome. */
#ifndef ES_SERVICE_H
#define ES_SERVICE_H

#include <protobuf-c/protobuf-c.h>
#include "es/arena.h"
#include "es/schema.h"
#include "es/status.h"

typedef struct es_call es_call;
struct es_call {
    /* Set by the transport before submit. */
    const es_method_def *method;
    ProtobufCMessage *request;     /* decoded, allocated from arena */
    es_arena arena;                /* per-call; the transport frees it after done() */
    const char *idempotency_key;   /* HTTP Idempotency-Key / gRPC metadata, NULL when absent */
    const char *authorization;     /* raw bearer token or NULL */
    const char *correlation_id;    /* x-correlation-id / x-request-id, NULL when absent */
    const char *transport;         /* "http" or "grpc" (metrics and logs) */
    /* Set by the dispatcher before done(). */
    int status;                    /* es_status */
    es_error err;
    ProtobufCMessage *response;    /* allocated from arena; NULL unless status == ES_OK */
    /* The dispatcher's own while it holds the call (reset by submit): a query parked until its
     * data arrives keeps here what its later runs need. */
    struct {
        int64_t first_us;          /* CLOCK_MONOTONIC us when a worker first took the call */
        const char *actor;         /* from authorization, for the query's later runs */
        int runs;                  /* query runs so far */
        int holds_slot;            /* parked once: holds a waiting slot until answered */
        es_call *next;             /* the dispatcher's re-run list */
        void *owner;               /* the dispatcher, while an append it queued is in flight */
    } dispatch;
    /* Called exactly once, from any thread, when the call is finished. */
    void (*done)(es_call *call);
    void *transport_data;
};

/* Serves calls. submit() never blocks on I/O; it runs validation, authorization, the command
 * pipeline or the query, and then call->done(call), from any thread: a worker's, a committer's
 * (a command decided on the transport's thread, answered once its append committed) or the
 * transport's own inside submit(). */
typedef struct es_dispatcher es_dispatcher;
struct es_dispatcher {
    void (*submit)(es_dispatcher *d, es_call *call);
    /* Set by the application: the JSON registry transports use for bodies. */
    const struct es_json_registry *json;
    void *data;
};

#endif
