/* es_event_decode: decode, then upcast events older than their definition (es/upcast.h); and
 * es_event_upcast_payload, the same for readers that show payloads instead of folding them. */
#include "es/upcast.h"

#include <string.h>

int es_event_decode(const es_event_def *def, uint32_t stored_version, const uint8_t *payload, size_t len,
                    const es_upcaster *ups, size_t n_ups, es_arena *arena, ProtobufCMessage **out,
                    es_error *err)
{
    *out = NULL;
    ProtobufCMessage *m = protobuf_c_message_unpack(def->descriptor, &arena->pb, len, payload);
    if (!m)
        return es_error_set(err, ES_DATA_LOSS, "", "%s (schema version %u) does not decode as %s", def->type,
                            stored_version, def->schema);
    /* Version 0 never reaches the store (the generator's default is 1), so treat it as 1. */
    uint32_t v = stored_version ? stored_version : 1;
    if (v < def->schema_version) {
        for (size_t i = 0; i < n_ups; i++) {
            if (ups[i].event != def || !ups[i].upcast)
                continue;
            int rc = ups[i].upcast(v, m, arena, err);
            if (rc != ES_OK)
                return rc;
            break;
        }
    }
    *out = m;
    return ES_OK;
}

const es_event_def *es_schema_event_by_type(const es_schema *schema, const char *stream_type, const char *type)
{
    if (!schema || !type)
        return NULL;
    for (size_t i = 0; stream_type && i < schema->n_aggregates; i++)
        if (strcmp(schema->aggregates[i]->name, stream_type) == 0)
            return es_schema_find_event(schema->aggregates[i], type);
    for (size_t i = 0; i < schema->n_aggregates; i++) {
        const es_event_def *d = es_schema_find_event(schema->aggregates[i], type);
        if (d)
            return d;
    }
    return NULL;
}

static const es_upcaster *upcaster_for(const es_event_def *def, const es_upcaster *ups, size_t n_ups)
{
    for (size_t i = 0; i < n_ups; i++)
        if (ups[i].event == def && ups[i].upcast)
            return &ups[i];
    return NULL;
}

int es_event_upcast_payload(const es_event_def *def, uint32_t stored_version, const uint8_t *payload, size_t len,
                            const es_upcaster *ups, size_t n_ups, es_arena *arena, const uint8_t **out,
                            size_t *out_len, int *upcast, es_error *err)
{
    *out = payload;
    *out_len = len;
    if (upcast)
        *upcast = 0;
    uint32_t v = stored_version ? stored_version : 1;
    if (!def || v >= def->schema_version || !upcaster_for(def, ups, n_ups))
        return ES_OK;
    ProtobufCMessage *m = NULL;
    int rc = es_event_decode(def, stored_version, payload, len, ups, n_ups, arena, &m, err);
    if (rc != ES_OK)
        return rc;
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *bytes = es_arena_alloc(arena, n ? n : 1);
    *out_len = protobuf_c_message_pack(m, bytes);
    *out = bytes;
    if (upcast)
        *upcast = 1;
    return ES_OK;
}
