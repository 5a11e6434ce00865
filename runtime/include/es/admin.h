/* Operator queries over the event store's own tables, for admin tools (orderctl): which streams
 * exist, the feed's head, projection rows as their SQL columns hold them, dead letters and their
 * resolution, and the schema registry. Aggregate-agnostic: every function names its aggregate,
 * projection or consumer through es/schema.h values or plain strings.
 *
 * Each call checks a connection out of the pool (no prepared statements needed, so it also works
 * before a pipeline or store registered theirs), runs parameterised SQL and checks it back in.
 * Results are allocated from the caller's arena; nothing else needs freeing. Errors are
 * ES_UNAVAILABLE (PostgreSQL unreachable) or ES_INTERNAL with the server's message, unless a
 * function says otherwise. Thread-safe as far as the pool is. */
#ifndef ES_ADMIN_H
#define ES_ADMIN_H

#include <stddef.h>
#include <stdint.h>
#include <protobuf-c/protobuf-c.h>

#include "es/arena.h"
#include "es/feed.h"
#include "es/json.h"
#include "es/pg_pool.h"
#include "es/schema.h"
#include "es/status.h"

/* ---- streams and the feed ---- */

/* *n receives the number of distinct streams of stream_type in es_events. */
int es_admin_count_streams(es_pg_pool *pool, const char *stream_type, int64_t *n, es_error *err);

/* *n receives the number of events of stream_type (NULL: of every type). */
int es_admin_count_events(es_pg_pool *pool, const char *stream_type, int64_t *n, es_error *err);

/* Up to limit stream ids of stream_type that sort after `after` (NULL or "": from the first), in
 * the database's text order, so a caller pages through every stream with the last id it got.
 * *ids (arena) holds *n strings; *n < limit means the end was reached. */
int es_admin_list_streams(es_pg_pool *pool, const char *stream_type, const char *after, size_t limit,
                          es_arena *a, char ***ids, size_t *n, es_error *err);

/* The feed cursor of the newest event a feed reader can see now ({0, 0} when none): reading from
 * it yields only events committed later, i.e. "tail from the end". */
int es_admin_feed_head(es_pg_pool *pool, es_feed_cursor *out, es_error *err);

/* ---- projection rows ---- */

/* One row of a projection table as stored. */
typedef struct es_admin_row {
    int64_t version;               /* the row's version column */
    const uint8_t *state;          /* es_state: the folded aggregate state, packed */
    size_t state_len;
    /* The row message rebuilt from the SQL columns alone (not from es_state), NULL when the
     * columns do not decode (columns_error then says why, naming the field). Each column is
     * read back as the proto3 JSON of its field (timestamptz as RFC 3339 UTC, jsonb as is,
     * enum text as the value name) and decoded with the registry; fields without a column are
     * left at their defaults. */
    ProtobufCMessage *columns;
    es_error columns_error;
} es_admin_row;

/* Reads the row of key from def's table into *out (arena). Returns ES_OK, ES_NOT_FOUND (no such
 * row) or an error. json decodes the jsonb columns (may be NULL: names are then derived). */
int es_admin_projection_row(es_pg_pool *pool, const es_projection_def *def, const es_json_registry *json,
                            const char *key, es_arena *a, es_admin_row *out, es_error *err);

/* Keys of def's table whose stream (key text = stream_id) has no event of def's aggregate: rows
 * a rebuild would not produce. *keys (arena) holds *n strings, at most limit. */
int es_admin_projection_orphans(es_pg_pool *pool, const es_projection_def *def, size_t limit, es_arena *a,
                                char ***keys, size_t *n, es_error *err);

/* *n receives the row count of def's table. */
int es_admin_projection_count(es_pg_pool *pool, const es_projection_def *def, int64_t *n, es_error *err);

/* ---- dead letters (es_dead_letters, es_consumer_streams.dead_letter_id; see es/consumer.h) ---- */

typedef struct es_admin_dead_letter {
    int64_t id;
    const char *consumer;
    const char *topic;
    int32_t partition;
    int64_t offset;
    const char *stream_id;         /* NULL: the message named no stream */
    int64_t version;               /* 0: unknown */
    const char *error;
    int64_t recorded_at_us;        /* microseconds since the epoch */
    int64_t retried_at_us;         /* 0: still open */
    int parks;                     /* 1: es_consumer_streams currently parks its stream behind it */
    const uint8_t *message;        /* the raw Kafka value (may be NULL) */
    size_t message_len;
} es_admin_dead_letter;

/* *open receives the open (unresolved) dead letters, *parked the streams parked behind one,
 * over every consumer: what /readyz reports. */
int es_admin_dead_letter_counts(es_pg_pool *pool, int64_t *open, int64_t *parked, es_error *err);

/* Dead letters in id order: the open ones, or all when include_resolved. *out (arena). */
int es_admin_dead_letters(es_pg_pool *pool, int include_resolved, es_arena *a, es_admin_dead_letter **out,
                          size_t *n, es_error *err);

/* One dead letter by id: ES_OK, ES_NOT_FOUND or an error. */
int es_admin_dead_letter_get(es_pg_pool *pool, int64_t id, es_arena *a, es_admin_dead_letter *out, es_error *err);

/* Clears the parking of (consumer, stream_id) so that its events are applied again; *was receives
 * the dead letter id that parked it (0: it was not parked). */
int es_admin_unpark(es_pg_pool *pool, const char *consumer, const char *stream_id, int64_t *was, es_error *err);

/* Parks (consumer, stream_id) behind dead letter id (after a failed retry), creating the
 * consumer's row for the stream at version 0 when it has none. */
int es_admin_park(es_pg_pool *pool, const char *consumer, const char *stream_id, int64_t id, es_error *err);

/* Marks resolved (retried_at = now()) dead letter id and, when stream_id is not NULL, every other
 * open dead letter of (consumer, stream_id): after the stream was re-applied up to its head they
 * are all dealt with. *resolved (may be NULL) receives how many rows changed. */
int es_admin_resolve_dead_letters(es_pg_pool *pool, int64_t id, const char *consumer, const char *stream_id,
                                  int64_t *resolved, es_error *err);

/* Marks resolved every open dead letter of consumer with id <= max_id: after a rebuild that
 * forgot the consumer's applied versions (and so its parkings) and re-applied every event that
 * was committed when it started, the letters recorded before it are dealt with. *resolved (may
 * be NULL) receives how many rows changed. */
int es_admin_resolve_consumer_dead_letters(es_pg_pool *pool, const char *consumer, int64_t max_id,
                                           int64_t *resolved, es_error *err);

/* ---- schema registry (es_schemas) and stored event types ---- */

typedef struct es_admin_schema {
    const char *hash;              /* SHA-256 hex of the descriptor set */
    const char *package;
    int64_t first_seen_us;
    const uint8_t *descriptor_set;
    size_t descriptor_set_len;
} es_admin_schema;

/* Every registered descriptor set, oldest first. *out (arena). */
int es_admin_schemas(es_pg_pool *pool, es_arena *a, es_admin_schema **out, size_t *n, es_error *err);

/* One (stream type, event type, message, version, message-shape hash) combination found in
 * es_events, with its count: what a binary must be able to decode. */
typedef struct es_admin_event_type {
    const char *stream_type;
    const char *event_type;
    const char *schema_name;
    uint32_t schema_version;
    const char *schema_hash;       /* es_store_schema_hash of the message the event was written with */
    int64_t count;
    int64_t last_position;
} es_admin_event_type;

/* The distinct event types stored (scans es_events). *out (arena). */
int es_admin_event_types(es_pg_pool *pool, es_arena *a, es_admin_event_type **out, size_t *n, es_error *err);

#endif
