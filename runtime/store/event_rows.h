/* Internal to runtime/store (feed.c, the consumer_*.c files): the es_events column list every
 * reader selects and its conversion into envelope views. Not a public header. */
#ifndef ES_STORE_EVENT_ROWS_H
#define ES_STORE_EVENT_ROWS_H

#include <libpq-fe.h>

#include "es/arena.h"
#include "es/envelope.h"

/* Columns in the order es__event_rows expects. recorded_at travels as integer microseconds.
 * The converted columns get names of their own on purpose: an output column named "txid"
 * would capture ORDER BY txid and sort the feed by text ("1000" < "729"), reordering and
 * skipping events once transaction ids gain a digit. */
#define ES__EVENT_COLUMNS                                                                       \
    "txid::text AS txid_text, position, event_id::text, stream_type, stream_id, version, event_type, "       \
    "schema_name, schema_version, schema_hash, payload, coalesce(command_id, ''), "             \
    "coalesce(correlation_id, ''), coalesce(causation_id, ''), coalesce(actor, ''), "           \
    "(extract(epoch from recorded_at) * 1000000)::int8 AS recorded_us"

/* Converts every row of r (text format, ES__EVENT_COLUMNS) into views allocated from arena.
 * *out and its strings live until the arena is reset. Returns the row count. */
size_t es__event_rows(const PGresult *r, es_arena *arena, es_envelope_view **out);

#endif
