/* Internal to runtime/store (feed.c, the consumer_*.c files): the es_events column list every
 * reader selects and its conversion into envelope views. Not a public header. */
#ifndef ES_STORE_EVENT_ROWS_H
#define ES_STORE_EVENT_ROWS_H

#include <libpq-fe.h>

#include "es/arena.h"
#include "es/envelope.h"

/* Columns in the order es__event_rows expects, read with binary results (resultFormat 1):
 * the payload travels as raw bytes (text results hex-encode it, twice its size, encoded by the
 * server and decoded here), numbers and the event id as fixed-width binary, recorded_at as
 * PostgreSQL's microseconds. */
#define ES__EVENT_COLUMNS                                                                       \
    "txid, position, event_id, stream_type, stream_id, version, event_type, schema_name, "       \
    "schema_version, schema_hash, payload, coalesce(command_id, ''), coalesce(correlation_id, ''), " \
    "coalesce(causation_id, ''), coalesce(actor, ''), recorded_at"

/* Converts every row of r (binary results, ES__EVENT_COLUMNS) into views allocated from arena.
 * *out and its strings live until the arena is reset. Returns the row count. */
size_t es__event_rows(const PGresult *r, es_arena *arena, es_envelope_view **out);

#endif
