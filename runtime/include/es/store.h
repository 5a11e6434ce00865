/* The event store on PostgreSQL: append with optimistic concurrency and idempotency, load a
 * stream (snapshot + later events), read stored events, register schemas.
 *
 * Appends go through group committers: concurrent es_store_append calls are gathered by a
 * committer thread into a single transaction sent in libpq pipeline mode (one round trip, one
 * commit/fsync for the batch). Each stream belongs to one committer (hash of its id), so
 * batches in flight together never touch the same stream. Each command runs as one es_append() call whose exception block
 * is its own savepoint, so a conflicting command is undone alone and every waiter gets its own
 * outcome. synchronous_commit is left as configured (on). All reads an append depends on happen
 * before its batch writes anything (docs/ARCHITECTURE.md invariant 4): the caller decided on state it read
 * earlier, and the batch's transaction id is taken at its first write. */
#ifndef ES_STORE_H
#define ES_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <protobuf-c/protobuf-c.h>
#include "es/pg_pool.h"
#include "es/schema.h"
#include "es/status.h"
#include "es/uuid.h"

#define ES_STREAM_ID_MAX 200       /* longest stream id, in bytes */
#define ES_APPEND_MAX_EVENTS 64    /* most events in one append */

typedef struct es_store es_store;

typedef struct es_store_config {
    size_t max_batch;              /* most commands per group-commit transaction (0 or more
                                      than 64: 64; each command is a subtransaction, and past
                                      64 PostgreSQL's per-backend subxid cache overflows) */
    size_t committers;             /* group committers, each with its own connection and the
                                      streams whose id hashes to it (0: 1; at most 8) */
} es_store_config;

/* Returns a store over pool (not owned; must outlive the store), with its statements
 * registered and its committer thread started; NULL with err set on failure. No connection is
 * made here, so the schema may be migrated afterwards (but before the first append). */
es_store *es_store_new(es_pg_pool *pool, const es_store_config *cfg, es_error *err);

/* Stops the committer (pending appends fail with ES_UNAVAILABLE) and frees. Accepts NULL. */
void es_store_free(es_store *s);

/* One event to append. All strings must be set; payload is the packed protobuf. */
typedef struct es_event_data {
    const char *event_id;          /* UUID text; NULL: the store assigns a UUIDv7 */
    const char *event_type;        /* "OrderPlaced" */
    const char *schema_name;       /* "orders.v1.OrderPlaced" */
    uint32_t schema_version;
    const char *schema_hash;       /* es_store_schema_hash of the event's descriptor */
    const uint8_t *payload;
    size_t payload_len;
} es_event_data;

/* A snapshot written with an append (only when the append succeeds). */
typedef struct es_snapshot_data {
    int64_t version;               /* stream version the state reflects */
    const char *schema_name;       /* state message full name */
    const char *schema_hash;
    const uint8_t *state;          /* packed state */
    size_t state_len;
} es_snapshot_data;

typedef struct es_append {
    const char *stream_type;       /* aggregate name */
    const char *stream_id;
    int64_t expected_version;      /* the stream's version the events were decided on (0: new) */
    const char *command_id;        /* NULL: none (the store still stamps a fresh id on events) */
    int idempotent;                /* 1: record command_id; a repeat returns the first result */
    const char *correlation_id;    /* NULL: none */
    const char *causation_id;      /* NULL: none */
    const char *actor;             /* NULL: none */
    const es_event_data *events;
    size_t n_events;               /* 1..ES_APPEND_MAX_EVENTS */
    const es_snapshot_data *snapshot; /* NULL: none */
    /* NULL, or n_events entries: each event as proto3 JSON text (an entry may be NULL), stored
     * in es_events.payload_json for SQL readers. Must be valid JSON: it is cast to jsonb. */
    const char *const *payload_json;
    /* Idempotency of client keys (command_id scoped by the caller): a fingerprint of the request
     * the key came with (NULL: none; a repeat with another fingerprint is refused with
     * ES_ALREADY_EXISTS naming idempotency_key) and how long the key is kept (seconds; 0: for
     * ever, as for ids derived from events). */
    const uint8_t *request_hash;
    size_t request_hash_len;
    int64_t retention_s;
} es_append;

typedef struct es_append_result {
    char stream_id[ES_STREAM_ID_MAX + 1];
    int64_t first_version;         /* version of the first event */
    int64_t last_version;          /* the stream's version after the append */
    size_t n_events;
    char event_ids[ES_APPEND_MAX_EVENTS][ES_UUID_STRLEN + 1];
    int replayed;                  /* 1: command_id was seen; this is the first result */
    uint8_t request_hash[32];      /* es_store_find_command: the recorded fingerprint, if any */
    size_t request_hash_len;
} es_append_result;

/* Appends events at versions expected_version+1.. in one transaction (batched with concurrent
 * appends) that also records the command id, writes the snapshot and notifies channel
 * 'es_events'. Blocks until committed. Thread-safe.
 * Returns ES_OK (out filled; replayed=1 when the command id was already recorded: nothing was
 * written and out holds the first result); ES_ABORTED when the stream is no longer at
 * expected_version (a concurrent writer won; retry on fresh state); ES_INVALID_ARGUMENT for a
 * malformed request; ES_UNAVAILABLE when PostgreSQL is unreachable (the outcome is unknown if
 * the connection broke during commit: retry with the same command id); ES_INTERNAL otherwise. */
int es_store_append(es_store *s, const es_append *a, es_append_result *out, es_error *err);

/* es_store_append without blocking: queues the append and returns ES_OK, after which done runs
 * exactly once on a committer thread with the outcome es_store_append would return (out filled
 * on ES_OK, err set otherwise; both borrowed for the call). a and everything it points to must
 * stay valid and unchanged until done runs. An invalid request is refused at once (its error,
 * and done never runs). done must be quick: the committer's next batch waits for it. */
typedef void (*es_append_done_fn)(void *data, int status, const es_append_result *out, const es_error *err);
int es_store_append_async(es_store *s, const es_append *a, es_append_done_fn done, void *data, es_error *err);

/* 1 when es_store_find_legacy_command would answer ES_NOT_FOUND without a query (the keys of the
 * release before scoped keys are known to be out of retention, or there never were any); 0 when
 * it may query (or does not know yet). Never blocks. */
int es_store_legacy_keys_settled(es_store *s);

/* Looks up a recorded, unexpired command id. ES_OK with out filled (replayed=1, and the
 * request fingerprint it was recorded with), ES_NOT_FOUND, or an
 * error. */
int es_store_find_command(es_store *s, const char *command_id, es_append_result *out, es_error *err);
/* A client's key as the release before scoped keys recorded it: the key itself as the command
 * id, no fingerprint, no expiry. ES_OK (out filled, replayed=1) when such a row exists, was
 * recorded within retention_s and its first event was appended by actor, so that a retry across
 * an upgrade is answered with its first result and never with another principal's. Looks only
 * while the event store's schema was upgraded less than retention_s ago (es_migrations holds
 * more than one version of ES_EVENT_STORE_MIGRATION); otherwise ES_NOT_FOUND without a query. */
int es_store_find_legacy_command(es_store *s, const char *key, const char *actor, int64_t retention_s,
                                 es_append_result *out, es_error *err);
/* Deletes up to limit (0: 10,000) recorded client keys past their retention; *deleted (may be
 * NULL) gets how many. A key past its retention is never answered again even before this runs:
 * this only gives the space back. */
int es_store_expire_commands(es_store *s, size_t limit, size_t *deleted, es_error *err);

/* A stored event as read back. Pointers are valid during the callback only. */
typedef struct es_event_record {
    int64_t position;              /* global position (identity) */
    char event_id[ES_UUID_STRLEN + 1];
    const char *stream_type;
    const char *stream_id;
    int64_t version;
    const char *event_type;
    const char *schema_name;
    uint32_t schema_version;
    const char *schema_hash;
    const uint8_t *payload;
    size_t payload_len;
    const char *command_id;        /* NULL when not recorded */
    const char *correlation_id;    /* NULL when not recorded */
    const char *causation_id;      /* NULL when not recorded */
    const char *actor;             /* NULL when not recorded */
    int64_t recorded_at_us;        /* microseconds since the Unix epoch */
} es_event_record;

/* Called per event in version order; return 0 to go on, or a nonzero es_status to stop (the
 * read then returns that status). */
typedef int (*es_event_fn)(const es_event_record *ev, void *ctx, es_error *err);

/* A stored snapshot offered to a loader. Return 0 to use it, 1 to refuse it (e.g. written with
 * another schema: the load then replays from version 1), or a negative es_status to stop. */
typedef struct es_snapshot_record {
    const char *stream_type;
    int64_t version;
    const char *schema_name;
    const char *schema_hash;
    const uint8_t *state;
    size_t state_len;
} es_snapshot_record;
typedef int (*es_snapshot_fn)(const es_snapshot_record *snap, void *ctx, es_error *err);

/* Reads the events of stream_id with after_version < version <= to_version (to_version 0: no
 * upper bound), in version order, calling fn for each. *last_version (may be NULL) receives the
 * last version read (after_version when none). Returns ES_OK, fn's status, ES_DATA_LOSS when
 * versions are not contiguous, ES_UNAVAILABLE or ES_INTERNAL. */
int es_store_read_stream(es_store *s, const char *stream_id, int64_t after_version,
                         int64_t to_version, es_event_fn fn, void *ctx, int64_t *last_version,
                         es_error *err);

/* Loads a stream for folding in one round trip: offers its snapshot (if any and snap_fn is
 * non-NULL) to snap_fn, then calls ev_fn for each later event. When snap_fn refuses the
 * snapshot, every event from version 1 is read instead. *version receives the stream's
 * version (0: the stream does not exist). Returns as es_store_read_stream. */
int es_store_load(es_store *s, const char *stream_id, es_snapshot_fn snap_fn, es_event_fn ev_fn,
                  void *ctx, int64_t *version, es_error *err);

/* Records a descriptor set in es_schemas (no-op when its hash is known). */
int es_store_register_schema(es_store *s, const es_schema *schema, es_error *err);

/* SHA-256 (hex) of a message type's shape: its full name and, recursively, every field's
 * number, name, label and type, nested messages and enum values included. Changes exactly when
 * the wire meaning of the type changes; stored with each event and snapshot so that a snapshot
 * written with an older state shape is never used. The string is cached for the life of the
 * process; do not free it. Thread-safe. */
const char *es_store_schema_hash(const ProtobufCMessageDescriptor *d);

typedef struct es_store_stats {
    uint64_t appends;              /* es_store_append calls answered */
    uint64_t batches;              /* transactions the committer ran */
    uint64_t max_batch;            /* largest batch seen */
    uint64_t conflicts;            /* appends answered ES_ABORTED */
    uint64_t replays;              /* appends answered with replayed=1 */
} es_store_stats;

/* Counters since es_store_new. */
void es_store_get_stats(es_store *s, es_store_stats *out);

#endif
