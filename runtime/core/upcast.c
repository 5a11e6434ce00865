/* es_event_decode: decode, then upcast events older than their definition (es/upcast.h). */
#include "es/upcast.h"

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
