/* orderctl's output lines: events as one JSON object per line (history, tail). */
#include <string.h>
#include <time.h>

#include "orderctl.h"

void ctl_json_str(es_buf *b, const char *s)
{
    if (!s) {
        es_buf_puts(b, "null");
        return;
    }
    es_buf_putc(b, '"');
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            es_buf_printf(b, "\\%c", ch);
        else if (ch == '\n')
            es_buf_puts(b, "\\n");
        else if (ch == '\t')
            es_buf_puts(b, "\\t");
        else if (ch < 0x20 || ch == 0x7f)
            es_buf_printf(b, "\\u%04x", ch);
        else
            es_buf_putc(b, (char)ch);
    }
    es_buf_putc(b, '"');
}

const char *ctl_time_text(int64_t us, char *out, size_t len)
{
    time_t t = (time_t)(us / 1000000);
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(out, len, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
             tm.tm_min, tm.tm_sec, (int)(us % 1000000));
    return out;
}

void ctl_json_time(es_buf *b, int64_t us)
{
    char s[40];
    es_buf_printf(b, "\"%s\"", ctl_time_text(us, s, sizeof s));
}

/* "key": "value" for a metadata string that is set; absent ones are left out. */
static void opt_str(es_buf *b, const char *key, const char *v)
{
    if (!v || !v[0])
        return;
    es_buf_printf(b, ",\"%s\":", key);
    ctl_json_str(b, v);
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
    ctl_json_str(out, ev->stream_type);
    es_buf_puts(out, ",\"stream_id\":");
    ctl_json_str(out, ev->stream_id);
    es_buf_printf(out, ",\"version\":%lld,\"event_id\":", (long long)ev->version);
    ctl_json_str(out, ev->event_id);
    es_buf_puts(out, ",\"event_type\":");
    ctl_json_str(out, ev->event_type);
    es_buf_puts(out, ",\"schema\":");
    ctl_json_str(out, ev->schema);
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
        for (size_t i = 0; i < ev->payload_len; i++)
            es_buf_printf(out, "%02x", ev->payload[i]);
        es_buf_putc(out, '"');
    }
    if (m)
        protobuf_c_message_free_unpacked(m, NULL);
    es_buf_putc(out, '}');
}
