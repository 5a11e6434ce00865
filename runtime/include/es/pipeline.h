/* The command pipeline: runs one command against its aggregate's stream.
 *
 *   target id (assigned UUIDv7 for a creating command without one)
 *   -> validate -> load state (recent-state cache, else snapshot + later events, folded with
 *   each event's apply) -> existence and expected-version checks -> guard -> decide
 *   -> append with the loaded version as expected version (group commit, es/store.h)
 *   -> on a version conflict, the whole command again on fresh state (bounded), then ABORTED.
 *
 * Idempotency: with a command id, the append records it atomically with the events; a repeat
 * is answered from that record (replayed = 1) and appends nothing, also when both copies run
 * concurrently. A repeat that now fails (decide refuses, the stream changed) is looked up in
 * the record before the error is returned, so it is answered with the first result too.
 *
 * Thread-safe and blocking: meant to be called from many worker threads at once; concurrent
 * calls are what the group committer batches. Knows aggregates only through es/schema.h. */
#ifndef ES_PIPELINE_H
#define ES_PIPELINE_H

#include <stddef.h>
#include <stdint.h>
#include <protobuf-c/protobuf-c.h>
#include "es/buf.h"
#include "es/json.h"
#include "es/pg_pool.h"
#include "es/schema.h"
#include "es/status.h"
#include "es/store.h"
#include "es/upcast.h"

typedef struct es_pipeline es_pipeline;

typedef struct es_pipeline_config {
    es_pg_pool *pool;              /* shared pool (not owned); NULL: one is made from conninfo */
    const char *conninfo;          /* used when pool is NULL */
    size_t pool_size;              /* when the pipeline makes its pool (0: 8; at least committers + 1) */
    int snapshot_every;            /* events between snapshots: >0 this, 0 the aggregate's
                                      snapshot_every (or 100 when that is 0), <0 never */
    size_t cache_size;             /* recent stream states kept (0: 10000) */
    int cache_disabled;            /* 1: always load from the store */
    unsigned max_retries;          /* re-runs after a version conflict (0: 10) */
    size_t max_batch;              /* most commands per group commit (0: 64) */
    size_t committers;             /* group committers (0: 1), see es_store_config */
    /* Borrowed; NULL: events are stored without JSON. Else each event is also stored as proto3
     * JSON (es_events.payload_json, the es_events_json view) for SQL readers; an event with no
     * JSON form (or one jsonb cannot hold) is stored with NULL there, never refused. */
    const es_json_registry *json;
    /* Borrowed, n_upcasters entries (NULL/0: none): run on stored events older than their
     * definition while a stream loads (es/upcast.h). */
    const es_upcaster *upcasters;
    size_t n_upcasters;
} es_pipeline_config;

/* Who and why, stored with every event of the command. Any field may be NULL. */
typedef struct es_command_meta {
    const char *command_id;        /* idempotency key; NULL/"" => def->request_id(cmd), if any */
    const char *correlation_id;    /* NULL => the command id, when there is one */
    const char *causation_id;
    const char *actor;
    /* A client's key (see es_append): the request's fingerprint, so that a repeat with another
     * request is refused instead of answered with the first result, and the key's retention in
     * seconds (0: kept for ever). NULL/0 for ids the service derives itself. */
    const uint8_t *request_hash;
    size_t request_hash_len;
    int64_t retention_s;
} es_command_meta;

typedef struct es_command_result {
    char stream_id[ES_STREAM_ID_MAX + 1];
    int64_t version;               /* the stream's version after the command */
    int64_t first_version;         /* version of the first new event (0 when none) */
    size_t n_events;
    char event_ids[ES_DECISION_MAX][ES_UUID_STRLEN + 1];
    int replayed;                  /* 1: a repeat of a recorded command id; the first result */
    unsigned attempts;             /* executions (1 + retries after version conflicts) */
} es_command_result;

/* Returns a pipeline (its store and committer started), or NULL with err set. No connection
 * is opened here. Free with es_pipeline_free. */
es_pipeline *es_pipeline_new(const es_pipeline_config *cfg, es_error *err);

/* Stops the committer, frees the cache, the store and (if it made it) the pool. Accepts NULL. */
void es_pipeline_free(es_pipeline *p);

/* Executes cmd (a message of def->descriptor; read only, owned by the caller) and fills out.
 * Returns ES_OK; the validator's, guard's or decide's error (err names the field);
 * ES_NOT_FOUND (non-creating command, no such stream); ES_ALREADY_EXISTS (creating command,
 * stream exists); ES_ABORTED ("expected version X, stream is at Y", or the conflict retries
 * ran out); ES_INVALID_ARGUMENT (target id missing or too long); ES_UNAVAILABLE (PostgreSQL
 * unreachable; if it broke during commit the outcome is unknown: retry with the command id);
 * ES_INTERNAL (decide emitted an event its command does not declare, a server error). */
int es_pipeline_execute(es_pipeline *p, const es_command_def *def, const ProtobufCMessage *cmd,
                        const es_command_meta *meta, es_command_result *out, es_error *err);

/* es_pipeline_execute_async: the command needs es_pipeline_execute (a positive code, never an
 * es_status). */
#define ES_PIPELINE_BLOCKING 1
/* Called once with es_pipeline_execute's outcome (result and err borrowed for the call). */
typedef void (*es_pipeline_done_fn)(void *data, int status, const es_command_result *result, const es_error *err);

/* es_pipeline_execute without blocking, for the commands that need no read before their
 * decision: a creating command whose stream id the pipeline assigns (no target id, no expected
 * version). Decides on the caller's thread and queues the append: returns ES_OK, and done runs
 * once on a committer thread (quick, like es_append_done_fn) with the outcome; ES_ABORTED there
 * means a version conflict, to be run again with es_pipeline_execute. Returns an error at once
 * (done never runs) when the command is refused or invalid, or ES_PIPELINE_BLOCKING when it
 * needs es_pipeline_execute (another kind of command; a decision of no events; a refusal a
 * recorded command id may answer). meta's strings are copied; cmd must stay valid until done. */
int es_pipeline_execute_async(es_pipeline *p, const es_command_def *def, const ProtobufCMessage *cmd,
                              const es_command_meta *meta, es_pipeline_done_fn done, void *data, es_error *err);

/* Loads a stream's current state from the store (snapshot + later events, folded; the cache
 * is not consulted). *state_out is a heap message the caller frees with
 * protobuf_c_message_free_unpacked(state, NULL). Returns ES_OK, ES_NOT_FOUND (no such
 * stream), ES_DATA_LOSS (unknown event type or a version gap), ES_UNAVAILABLE, ES_INTERNAL. */
int es_pipeline_load(es_pipeline *p, const es_aggregate_def *agg, const char *stream_id,
                     ProtobufCMessage **state_out, int64_t *version_out, es_error *err);

/* Reads a stream's stored events (audit trail, projection gap filling): see
 * es_store_read_stream. */
int es_pipeline_read_stream(es_pipeline *p, const char *stream_id, int64_t after_version,
                            int64_t to_version, es_event_fn fn, void *ctx, es_error *err);

/* The pipeline's store and pool (owned by the pipeline unless the pool was given). */
es_store *es_pipeline_store(es_pipeline *p);
es_pg_pool *es_pipeline_pool(es_pipeline *p);

typedef struct es_pipeline_stats {
    uint64_t executed;             /* es_pipeline_execute calls */
    uint64_t retries;              /* re-runs after version conflicts */
    uint64_t cache_hits;
    uint64_t loads;                /* states loaded from the store */
    uint64_t snapshots;            /* snapshots written */
} es_pipeline_stats;
void es_pipeline_get_stats(es_pipeline *p, es_pipeline_stats *out);

/* Appends the pipeline's and its store's Prometheus families (commands executed and retried,
 * state cache, snapshots, appends, group-commit batches, conflicts, replays). NULL p: nothing. */
void es_pipeline_write_metrics(es_pipeline *p, es_buf *out);

#endif
