/* orderctl's output lines: events as one JSON object per line (history, tail). */
#include <string.h>

#include "es/hex.h"
#include "es/json_string.h"
#include "es/timefmt.h"
#include "orderctl.h"

void ctl_json_time(es_buf *b, int64_t us)
{
    char s[ES_RFC3339_LEN];
    es_buf_printf(b, "\"%s\"", es_rfc3339_us(us, s));
}

/* "key": "value" for a metadata string that is set; absent ones are left out. */
static void opt_str(es_buf *b, const char *key, const char *v)
{
    if (!v || !v[0])
        return;
    es_buf_printf(b, ",\"%s\":", key);
    es_json_quote_str(b, v);
}

static ProtobufCMessage *decode_payload(const ctl *c, const es_envelope_view *ev)
{
    ProtobufCMessage *m = orders_v1_unpack_event(ev->event_type, ev->payload, ev->payload_len, NULL);
    if (m)
        return m;
    /* Not an order event this binary knows by type: try the message the store names. */
    const ProtobufCMessageDescriptor *d = es_json_registry_find(c->json, ev->schema);
    return d ? protobuf_c_message_unpack(d, NULL, ev->payload_len, ev->payload) : NULL;
}

void ctl_event_json(const ctl *c, const es_envelope_view *ev, es_buf *out)
{
    es_buf_printf(out, "{\"position\":%lld,\"stream_type\":", (long long)ev->position);
    es_json_quote_str(out, ev->stream_type);
    es_buf_puts(out, ",\"stream_id\":");
    es_json_quote_str(out, ev->stream_id);
    es_buf_printf(out, ",\"version\":%lld,\"event_id\":", (long long)ev->version);
    es_json_quote_str(out, ev->event_id);
    es_buf_puts(out, ",\"event_type\":");
    es_json_quote_str(out, ev->event_type);
    es_buf_puts(out, ",\"schema\":");
    es_json_quote_str(out, ev->schema);
    es_buf_printf(out, ",\"schema_version\":%u,\"recorded_at\":", ev->schema_version);
    ctl_json_time(out, ev->recorded_at_us);
    opt_str(out, "command_id", ev->command_id);
    opt_str(out, "correlation_id", ev->correlation_id);
    opt_str(out, "causation_id", ev->causation_id);
    opt_str(out, "actor", ev->actor);
    es_buf_puts(out, ",\"data\":");
    ProtobufCMessage *m = decode_payload(c, ev);
    es_error err = {0};
    es_json_options o = {0};
    if (!m || es_json_encode(c->json, m, &o, out, &err) != ES_OK) {
        es_buf_puts(out, "null,\"payload_hex\":\"");
        es_buf_reserve(out, 2 * ev->payload_len + 2);
        es_hex_encode(ev->payload, ev->payload_len, out->data + out->len);
        out->len += 2 * ev->payload_len;
        es_buf_putc(out, '"');
    }
    if (m)
        protobuf_c_message_free_unpacked(m, NULL);
    es_buf_putc(out, '}');
}
