/* Projection tables generated from (es.projection): a consumer handler that advances a row one
 * event at a time, and a reader that answers key lookups and filtered, keyset-paginated lists.
 *
 * A row stores the folded aggregate state (es_state, protobuf) and the columns derived from it by
 * the generated from_state; the projector applies each event to the stored state with the
 * generated apply and rewrites the row, in the consumer runner's transaction, so the row and the
 * stream version it reflects commit together (docs/ARCHITECTURE.md invariant 6). */
#ifndef ES_PROJECTION_H
#define ES_PROJECTION_H

#include <stddef.h>
#include <stdint.h>
#include "es/consumer.h"
#include "es/json.h"
#include "es/pg_pool.h"
#include "es/schema.h"
#include "es/upcast.h"

typedef struct es_projector es_projector;

/* A projector for def; json renders message columns as jsonb (borrowed). Never NULL. */
es_projector *es_projector_new(const es_projection_def *def, const es_json_registry *json);
void es_projector_free(es_projector *p);
/* Events stored with an older schema version are upcast with ups (n entries, borrowed) before
 * they are applied, as the command pipeline does. Default: none. */
void es_projector_set_upcasters(es_projector *p, const es_upcaster *ups, size_t n);
/* The descriptor-set hash (es_schema.descriptor_set_hash, borrowed) of the binary the projector
 * runs in. With it, an event type the projector does not know waits (the consumer retries, no
 * dead letter) while es_schemas holds a descriptor set of the same package, first seen after this
 * one, that names the event's message: a newer release writes on this database (a rolling
 * deploy, README "Changing the schema").
 * Without it, or with no newer release, such an event is refused (dead-lettered). */
void es_projector_set_release(es_projector *p, const char *descriptor_set_hash);
/* es_consumer_handle_fn: applies one event (events of other aggregates are ignored). data is
 * the es_projector. While es_projection_shapes records another shape for the table than this
 * binary's (a newer release switched it, es/projection_shape.h), it writes nothing and answers
 * ES_UNAVAILABLE: the consumer retries, and the events are applied by an instance of that shape. */
int es_projector_handle(void *data, es_consumer_tx *tx, const es_envelope_view *ev, es_error *err);
/* es_consumer_batch_fn: the same for a batch, set-wise: one query reads the rows of every stream
 * of the batch, the events are folded in memory, one statement writes every row. */
int es_projector_handle_batch(void *data, es_consumer_tx *tx, const es_envelope_view *evs, size_t n,
                              es_error *err);
/* es_replay_config.reset: empties the table (stream_id NULL) or deletes one stream's row. */
int es_projector_reset(void *data, es_consumer_tx *tx, const char *stream_id, es_error *err);

/* Internal, for the batch projector and the set-based rebuild: the number of statement parameters
 * of a row (the projection's columns, then es_state), the definition, and the text form of the
 * row folded to state at version (params[i] = the column's text, NULL for SQL NULL; the last is
 * es_state as bytea hex), allocated from a. Column order is def->columns. */
size_t es__projector_n_params(const es_projector *p);
const es_projection_def *es__projector_def(const es_projector *p);
/* The upcasters given to es_projector_set_upcasters (NULL and *n = 0: none). */
const es_upcaster *es__projector_upcasters(const es_projector *p, size_t *n);
/* The JSON registry given to es_projector_new (NULL: none). */
const es_json_registry *es__projector_json(const es_projector *p);
int es__projector_row_text(const es_projector *p, const ProtobufCMessage *state, int64_t version, es_arena *a,
                           const char **params, es_error *err);

typedef struct es_projection_reader es_projection_reader;

/* A reader over pool (borrowed). Never NULL. */
es_projection_reader *es_projection_reader_new(es_pg_pool *pool, const es_projection_def *def);
void es_projection_reader_free(es_projection_reader *r);

/* The row of key, allocated from a: ES_OK, ES_NOT_FOUND, ES_UNAVAILABLE or ES_INTERNAL. */
int es_projection_get(es_projection_reader *r, const char *key, es_arena *a, ProtobufCMessage **row, es_error *err);

typedef struct es_projection_filter {
    const char *column;            /* a column of the projection (checked against the table) */
    const char *value;             /* text form; compared with = */
} es_projection_filter;

typedef struct es_projection_list_query {
    const es_projection_filter *filters;
    size_t n_filters;
    const char *order_column;      /* rows come newest first: (order_column DESC, key DESC) */
    const char *after_value;       /* keyset cursor (text of order_column) with after_key; NULL: none */
    const char *after_key;
    size_t limit;
    size_t offset;
} es_projection_list_query;

/* Rows matching q, allocated from a. ES_INVALID_ARGUMENT when a column is not the table's. */
int es_projection_list(es_projection_reader *r, const es_projection_list_query *q, es_arena *a,
                       ProtobufCMessage ***rows, size_t *n, es_error *err);

#endif
