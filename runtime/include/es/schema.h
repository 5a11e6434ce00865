/* The tables protoc-gen-es emits and the runtime walks. This header is the whole contract
 * between generated code and runtime/: the runtime knows aggregates, events, commands,
 * projections and RPC methods only through these descriptors, never by name. */
#ifndef ES_SCHEMA_H
#define ES_SCHEMA_H

#include <stddef.h>
#include <stdint.h>
#include <protobuf-c/protobuf-c.h>
#include "es/status.h"
#include "es/arena.h"

typedef struct es_event_def es_event_def;
typedef struct es_command_def es_command_def;
typedef struct es_aggregate_def es_aggregate_def;

/* What decide() may read besides state and command. */
typedef struct es_decide_ctx {
    const char *stream_id;     /* target stream; assigned (UUIDv7) for creating commands */
    int64_t version;           /* current stream version, 0 for a new stream */
    int64_t now_us;            /* wall clock, microseconds since the epoch */
    const char *command_id;
    const char *actor;         /* authenticated principal, "" when none */
    es_arena *arena;           /* allocate emitted events here */
} es_decide_ctx;

/* The events decide() returns, in order. Events are arena-allocated by decide. */
#define ES_DECISION_MAX 8
typedef struct es_decision {
    const es_event_def *defs[ES_DECISION_MAX];
    ProtobufCMessage *events[ES_DECISION_MAX];
    size_t n;
} es_decision;

/* Appends an event to the decision. Returns ES_INTERNAL when full or when the event's type is
 * not one the command declares in emits (checked by the pipeline). */
int es_decision_emit(es_decision *d, const es_event_def *def, ProtobufCMessage *event);

/* Hand-written business rule for one command: state is NULL when the stream does not exist.
 * Returns ES_OK with zero or more events, or an error (err names the field). */
typedef int (*es_decide_fn)(const es_decide_ctx *ctx, const ProtobufCMessage *state,
                            const ProtobufCMessage *command, es_decision *out, es_error *err);

/* Folds one event into a state (generated from the annotations). Returns ES_OK or an error
 * (e.g. a creating event applied to an existing stream). */
typedef int (*es_apply_fn)(ProtobufCMessage *state, const ProtobufCMessage *event);

/* Validates a decoded message against its field rules (generated). */
typedef int (*es_validate_fn)(const ProtobufCMessage *msg, es_error *err);
/* Rewrites a decoded message's id fields to their one canonical spelling, in place (generated
 * for messages with uuid fields). */
typedef void (*es_canonicalize_fn)(ProtobufCMessage *msg);

struct es_event_def {
    const char *type;                                /* stored event type, e.g. "OrderPlaced" */
    const char *schema;                              /* "orders.v1.OrderPlaced" */
    uint32_t schema_version;
    int creates;
    const ProtobufCMessageDescriptor *descriptor;
    es_apply_fn apply;
    const es_aggregate_def *aggregate;
};

struct es_aggregate_def {
    const char *name;                                /* "order" */
    const ProtobufCMessageDescriptor *state_descriptor;
    const char *id_field;
    unsigned snapshot_every;
    const es_event_def *const *events;
    size_t n_events;
    const char *topic;                               /* Kafka topic of its events, "orders.events" */
};

struct es_command_def {
    const char *name;                                /* message name, "CancelOrderRequest" */
    const ProtobufCMessageDescriptor *descriptor;
    const es_aggregate_def *aggregate;
    int creates;
    /* Target stream id, "" when absent. Never NULL. */
    const char *(*target_id)(const ProtobufCMessage *cmd);
    /* Idempotency key from the message, "" when absent. */
    const char *(*request_id)(const ProtobufCMessage *cmd);
    /* 1 and *out set when the command carries expected_version, else 0. */
    int (*expected_version)(const ProtobufCMessage *cmd, int64_t *out);
    es_validate_fn validate;
    /* allowed_from check against the current state (NULL state = stream absent). */
    int (*guard)(const ProtobufCMessage *state, es_error *err);
    es_decide_fn decide;
    const es_event_def *const *emits;
    size_t n_emits;
};

/* A projection table mirroring an aggregate's state (generated from es.projection). */
typedef struct es_projection_column {
    const char *column;
    const char *sql_type;
    unsigned field_id;             /* field number in the projection message */
} es_projection_column;

typedef struct es_projection_def {
    const char *name;              /* table name */
    const ProtobufCMessageDescriptor *descriptor;   /* the row message */
    const es_aggregate_def *aggregate;
    const char *key;
    const es_projection_column *columns;
    size_t n_columns;
    /* Fills a row message from a state (field-by-field copy, generated); row is arena-owned. */
    ProtobufCMessage *(*from_state)(const ProtobufCMessage *state, int64_t version, es_arena *a);
    const char *ddl;               /* CREATE TABLE/INDEX statements */
} es_projection_def;

struct es_method_def;
/* What a query handler may ask for instead of an answer: to be run again when the read model of
 * stream_id moves, at a re-check, or at deadline_ms, without holding a thread meanwhile (the
 * dispatcher parks the call; see es/waiters.h). */
typedef struct es_query_wait {
    const char *stream_id;         /* NULL: no wait asked; else borrowed (arena or request) */
    int64_t deadline_ms;           /* CLOCK_MONOTONIC ms, like es_query_ctx.now_ms */
    const char *field;             /* the request field the wait is for, named in refusals */
} es_query_wait;

typedef struct es_query_ctx {
    es_arena *arena;
    const char *actor;
    void *app;                     /* the application's query context (app/) */
    int64_t first_run_ms;          /* CLOCK_MONOTONIC ms of the call's first run (same on re-runs) */
    int64_t now_ms;                /* CLOCK_MONOTONIC ms of this run */
    int can_wait;                  /* 1: the handler may return ES_OK with wait set and *out NULL */
    es_query_wait wait;            /* out */
} es_query_ctx;
/* A hand-written query handler. *out is arena-allocated; or, when ctx->can_wait and the answer
 * is not there yet, the handler sets ctx->wait, leaves *out NULL and returns ES_OK: it is run
 * again later with the same request (ctx->first_run_ms unchanged) and must answer by itself
 * once now_ms reaches the deadline it gave. */
typedef int (*es_query_fn)(es_query_ctx *ctx, const ProtobufCMessage *req, ProtobufCMessage **out,
                           es_error *err);

/* Who may call a method (generated from its (es.access) option): one rule per role. */
typedef enum es_access_kind {
    ES_ACCESS_ANY = 0,             /* every caller with the role */
    ES_ACCESS_OWNER,               /* only on a target stream whose owner_field equals the principal */
    ES_ACCESS_SELF,                /* the request's self_field is the principal (filled in when empty) */
} es_access_kind;

typedef struct es_access_rule {
    const char *role;              /* "customer" */
    es_access_kind kind;
    const char *owner_field;       /* ES_ACCESS_OWNER: the state field naming the owner */
    const char *self_field;        /* ES_ACCESS_SELF: the request field holding the principal */
} es_access_rule;

typedef struct es_method_def {
    const char *name;              /* "CancelOrder" */
    const char *grpc_path;         /* "/orders.v1.OrderService/CancelOrder" */
    const ProtobufCMessageDescriptor *input;
    const ProtobufCMessageDescriptor *output;
    const es_command_def *command; /* non-NULL: served by the command pipeline */
    es_query_fn query;             /* non-NULL: a hand-written query */
    es_validate_fn validate;       /* input validation (commands and queries) */
    es_canonicalize_fn canonicalize; /* run first, before authorization; NULL: nothing to rewrite */
    const es_access_rule *access;  /* who may call it (es/access.h); n_access 0: nobody but an
                                      authorizer that ignores the rules */
    size_t n_access;
    const es_aggregate_def *target;  /* the aggregate whose stream the request names (owner rules) */
    const char *target_field;        /* the request field holding that stream id */
} es_method_def;

typedef struct es_route_def {
    const char *http_method;       /* "GET", "POST", "PUT", "PATCH", "DELETE" */
    const char *path;              /* template: "/v1/orders/{order_id}/cancel" */
    const char *body;              /* "*", a field name, or NULL (query parameters) */
    const es_method_def *method;
} es_route_def;

typedef struct es_service_def {
    const char *name;              /* "orders.v1.OrderService" */
    const es_method_def *const *methods;
    size_t n_methods;
    const es_route_def *routes;
    size_t n_routes;
} es_service_def;

/* proto3 JSON names that differ from the lowerCamelCase rule, or every json_name for a
 * message; the JSON codec consults it before deriving names. */
typedef struct es_json_names {
    const ProtobufCMessageDescriptor *descriptor;
    const char *const *json_names; /* indexed like descriptor->fields */
} es_json_names;

/* One forward migration step of a package's projection tables, generated from the difference
 * between the released schema (proto/baseline) and the current one: idempotent DDL (IF NOT
 * EXISTS, a widening ALTER TYPE), applied once by es_migrate_steps (es/migrate.h). */
typedef struct es_migration_step {
    int step;                      /* 1, 2, ... */
    const char *name;              /* "order_summary: add column note text" */
    const char *sql;
} es_migration_step;

/* Everything generated for one proto package. */
typedef struct es_schema {
    const char *package;                                 /* "orders.v1" */
    const es_aggregate_def *const *aggregates; size_t n_aggregates;
    const es_command_def *const *commands; size_t n_commands;
    const es_projection_def *const *projections; size_t n_projections;
    const es_service_def *const *services; size_t n_services;
    /* Every message of the package and its imports (type registry for Any). */
    const ProtobufCMessageDescriptor *const *messages; size_t n_messages;
    const es_json_names *json_names; size_t n_json_names;
    const uint8_t *descriptor_set; size_t descriptor_set_len;   /* FileDescriptorSet */
    const char *descriptor_set_hash;                           /* sha256 hex */
    const char *migrations_sql;                                /* projection DDL */
    /* Forward steps from the released schema; migrations_baseline names it (fnv1a64 of its
     * projection DDL, "" when generated without one). */
    const es_migration_step *migration_steps; size_t n_migration_steps;
    const char *migrations_baseline;
    /* The OpenAPI 3 document of the package's HTTP routes, NUL-terminated (NULL without a service). */
    const char *openapi_json;
} es_schema;

/* The event store's own DDL (sql/event_store.sql, compiled into the store library): tables,
 * es_append and views, idempotent, applied by es_migrate before any application migration. */
extern const char es_event_store_sql[];
/* The name es_event_store_sql is recorded under in es_migrations. */
#define ES_EVENT_STORE_MIGRATION "0001_event_store"

const es_event_def *es_schema_find_event(const es_aggregate_def *agg, const char *type);

#endif
