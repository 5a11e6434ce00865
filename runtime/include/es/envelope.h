/* The event as it travels: one stored event (a feed row) seen as an es.Envelope, its Kafka
 * routing headers, and the decoding of both back into a view.
 *
 * A view borrows every string and the payload from whoever filled it (a feed batch, an arena,
 * a Kafka message); it owns nothing and is never freed itself. Absent strings are "", never NULL. */
#ifndef ES_ENVELOPE_H
#define ES_ENVELOPE_H

#include <stddef.h>
#include <stdint.h>

#include "es/arena.h"
#include "es/buf.h"
#include "es/status.h"

typedef struct es_envelope_view {
    const char *event_id;        /* UUID */
    const char *stream_id;       /* aggregate id; the Kafka key */
    const char *stream_type;     /* aggregate name */
    const char *event_type;      /* e.g. "OrderPlaced" */
    const char *schema;          /* full protobuf message name of the payload */
    const char *schema_hash;     /* descriptor set the event was written with */
    const char *command_id;
    const char *correlation_id;
    const char *causation_id;
    const char *actor;
    int64_t version;             /* 1-based position in its stream */
    int64_t position;            /* global position in es_events */
    uint32_t schema_version;
    int64_t recorded_at_us;      /* microseconds since the epoch */
    const uint8_t *payload;      /* protobuf binary of the event message */
    size_t payload_len;
    uint64_t txid;               /* writing transaction (xid8) from the feed; 0 from Kafka */
} es_envelope_view;

/* Sets every string to "" and every number to 0, so a partly filled view is safe to read. */
void es_envelope_view_clear(es_envelope_view *v);

/* Appends the es.Envelope protobuf encoding of v to out (the Kafka message value). */
void es_envelope_pack(const es_envelope_view *v, es_buf *out);

/* Decodes an es.Envelope from data into out; strings and payload are allocated from arena and
 * live until it is reset. Returns ES_OK, or ES_INVALID_ARGUMENT (err says why) when the bytes are
 * not an envelope or lack the fields every event has (event id, stream id, version >= 1,
 * event type): such a message is poison for a consumer. */
int es_envelope_unpack(const void *data, size_t len, es_arena *arena, es_envelope_view *out,
                       es_error *err);

/* One Kafka header. value is not NUL-terminated in general; len is its length. */
typedef struct es_envelope_header {
    const char *name;
    const char *value;
    size_t len;
} es_envelope_header;

#define ES_ENVELOPE_MAX_HEADERS 12

/* The routing headers of one event: es-event-id, es-stream-id, es-stream-type, es-version,
 * es-position, es-event-type, es-schema, es-schema-version, es-recorded-at (microseconds) and,
 * when not empty, es-command-id, es-correlation-id, es-causation-id. Numbers are decimal text. */
typedef struct es_envelope_headers {
    es_envelope_header h[ES_ENVELOPE_MAX_HEADERS];
    size_t n;
    char num[4][24];             /* storage for the decimal numbers */
} es_envelope_headers;

/* Fills out with the headers of v. Values borrow v's strings and out->num: keep both alive
 * while the headers are used. */
void es_envelope_headers_of(const es_envelope_view *v, es_envelope_headers *out);

/* Reads the es-* routing headers back into out (es_envelope_view_clear first, then fills what is
 * present; strings copied into arena). Used to route or dead-letter a message whose value does
 * not decode. Returns how many es-* headers were recognised. */
int es_envelope_from_headers(const es_envelope_header *h, size_t n, es_arena *arena,
                             es_envelope_view *out);

#endif
