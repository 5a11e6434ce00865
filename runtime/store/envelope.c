/* es.Envelope encoding and the es-* Kafka headers; see es/envelope.h. */
#include "es/envelope.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "es/envelope.pb-c.h"

void es_envelope_view_clear(es_envelope_view *v)
{
    memset(v, 0, sizeof *v);
    v->event_id = v->stream_id = v->stream_type = v->event_type = v->schema = "";
    v->schema_hash = v->command_id = v->correlation_id = v->causation_id = v->actor = "";
}

static char *s(const char *p) { return (char *)(p ? p : ""); }

void es_envelope_pack(const es_envelope_view *v, es_buf *out)
{
    Es__Envelope e = ES__ENVELOPE__INIT;
    Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
    e.event_id = s(v->event_id);
    e.stream_id = s(v->stream_id);
    e.stream_type = s(v->stream_type);
    e.version = v->version;
    e.position = v->position;
    e.event_type = s(v->event_type);
    e.schema = s(v->schema);
    e.schema_version = v->schema_version;
    /* Floor division keeps nanos in [0, 1e9) for times before the epoch too. */
    int64_t sec = v->recorded_at_us / 1000000, us = v->recorded_at_us % 1000000;
    if (us < 0) {
        us += 1000000;
        sec -= 1;
    }
    ts.seconds = sec;
    ts.nanos = (int32_t)(us * 1000);
    e.recorded_at = &ts;
    e.command_id = s(v->command_id);
    e.correlation_id = s(v->correlation_id);
    e.causation_id = s(v->causation_id);
    e.actor = s(v->actor);
    e.payload.data = (uint8_t *)v->payload;
    e.payload.len = v->payload ? v->payload_len : 0;
    e.schema_hash = s(v->schema_hash);

    size_t n = es__envelope__get_packed_size(&e);
    es_buf_reserve(out, n);
    es__envelope__pack(&e, (uint8_t *)out->data + out->len);
    out->len += n;
    if (out->len < out->cap)
        out->data[out->len] = '\0';
}

int es_envelope_unpack(const void *data, size_t len, es_arena *arena, es_envelope_view *out,
                       es_error *err)
{
    es_envelope_view_clear(out);
    if (!data && len)
        return es_error_set(err, ES_INVALID_ARGUMENT, "", "envelope: no data");
    Es__Envelope *e = es__envelope__unpack(&arena->pb, len, data);
    if (!e)
        return es_error_set(err, ES_INVALID_ARGUMENT, "", "envelope: not an es.Envelope (%zu bytes)",
                            len);
    out->event_id = e->event_id;
    out->stream_id = e->stream_id;
    out->stream_type = e->stream_type;
    out->event_type = e->event_type;
    out->schema = e->schema;
    out->schema_hash = e->schema_hash;
    out->command_id = e->command_id;
    out->correlation_id = e->correlation_id;
    out->causation_id = e->causation_id;
    out->actor = e->actor;
    out->version = e->version;
    out->position = e->position;
    out->schema_version = e->schema_version;
    if (e->recorded_at) {
        /* The Timestamp range (0001-01-01 .. 9999-12-31): anything else is a forged message,
         * and seconds * 10^6 would overflow. */
        if (e->recorded_at->seconds < -62135596800LL || e->recorded_at->seconds > 253402300799LL ||
            e->recorded_at->nanos < 0 || e->recorded_at->nanos > 999999999)
            return es_error_set(err, ES_INVALID_ARGUMENT, "recorded_at", "envelope: recorded_at out of range");
        out->recorded_at_us = e->recorded_at->seconds * 1000000 + e->recorded_at->nanos / 1000;
    }
    out->payload = e->payload.data;
    out->payload_len = e->payload.len;
    if (!out->event_id[0])
        return es_error_set(err, ES_INVALID_ARGUMENT, "event_id", "envelope: no event id");
    if (!out->stream_id[0])
        return es_error_set(err, ES_INVALID_ARGUMENT, "stream_id", "envelope: no stream id");
    if (out->version < 1)
        return es_error_set(err, ES_INVALID_ARGUMENT, "version", "envelope: version %" PRId64,
                            out->version);
    if (!out->event_type[0])
        return es_error_set(err, ES_INVALID_ARGUMENT, "event_type", "envelope: no event type");
    return ES_OK;
}

static void add(es_envelope_headers *o, const char *name, const char *value)
{
    if (o->n < ES_ENVELOPE_MAX_HEADERS)
        o->h[o->n++] = (es_envelope_header){name, value, strlen(value)};
}

static void add_opt(es_envelope_headers *o, const char *name, const char *value)
{
    if (value && value[0])
        add(o, name, value);
}

void es_envelope_headers_of(const es_envelope_view *v, es_envelope_headers *out)
{
    out->n = 0;
    snprintf(out->num[0], sizeof out->num[0], "%" PRId64, v->version);
    snprintf(out->num[1], sizeof out->num[1], "%" PRId64, v->position);
    snprintf(out->num[2], sizeof out->num[2], "%" PRIu32, v->schema_version);
    snprintf(out->num[3], sizeof out->num[3], "%" PRId64, v->recorded_at_us);
    add(out, "es-event-id", s(v->event_id));
    add(out, "es-stream-id", s(v->stream_id));
    add(out, "es-stream-type", s(v->stream_type));
    add(out, "es-version", out->num[0]);
    add(out, "es-position", out->num[1]);
    add(out, "es-event-type", s(v->event_type));
    add(out, "es-schema", s(v->schema));
    add(out, "es-schema-version", out->num[2]);
    add(out, "es-recorded-at", out->num[3]);
    add_opt(out, "es-command-id", v->command_id);
    add_opt(out, "es-correlation-id", v->correlation_id);
    add_opt(out, "es-causation-id", v->causation_id);
}

static int64_t num(const char *p, size_t n)
{
    char tmp[32];
    if (n >= sizeof tmp)
        return 0;
    memcpy(tmp, p, n);
    tmp[n] = '\0';
    return strtoll(tmp, NULL, 10);
}

int es_envelope_from_headers(const es_envelope_header *h, size_t n, es_arena *arena,
                             es_envelope_view *out)
{
    es_envelope_view_clear(out);
    int found = 0;
    for (size_t i = 0; i < n; i++) {
        const char *name = h[i].name, *val = h[i].value ? h[i].value : "";
        size_t len = h[i].value ? h[i].len : 0;
        if (!name || strncmp(name, "es-", 3) != 0)
            continue;
        const char **str = NULL;
        found++;
        if (!strcmp(name, "es-event-id"))
            str = &out->event_id;
        else if (!strcmp(name, "es-stream-id"))
            str = &out->stream_id;
        else if (!strcmp(name, "es-stream-type"))
            str = &out->stream_type;
        else if (!strcmp(name, "es-event-type"))
            str = &out->event_type;
        else if (!strcmp(name, "es-schema"))
            str = &out->schema;
        else if (!strcmp(name, "es-command-id"))
            str = &out->command_id;
        else if (!strcmp(name, "es-correlation-id"))
            str = &out->correlation_id;
        else if (!strcmp(name, "es-causation-id"))
            str = &out->causation_id;
        else if (!strcmp(name, "es-version"))
            out->version = num(val, len);
        else if (!strcmp(name, "es-position"))
            out->position = num(val, len);
        else if (!strcmp(name, "es-schema-version"))
            out->schema_version = (uint32_t)num(val, len);
        else if (!strcmp(name, "es-recorded-at"))
            out->recorded_at_us = num(val, len);
        else
            found--;
        if (str)
            *str = es_arena_strndup(arena, val, len);
    }
    return found;
}
