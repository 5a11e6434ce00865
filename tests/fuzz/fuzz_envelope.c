/* libFuzzer target: what a Kafka consumer decodes from the wire (es/envelope.h).
 *
 * Input: one selector byte, then
 *   even selector: the message value, decoded with es_envelope_unpack. An accepted envelope
 *     must have the fields every event has, pack again and unpack to the same view, and give
 *     headers that read back to the same view. Its payload is decoded as the named orders event
 *     (orders_v1_unpack_event, as a projector does) and encoded as JSON.
 *   odd selector: the message headers, "name:value" lines separated by '\n', read with
 *     es_envelope_from_headers (the dead-letter path). Each name is its own NUL-terminated
 *     block and each value its own block of exactly its length, as librdkafka hands them over.
 *     What was read must survive es_envelope_headers_of and a second read unchanged. */
#include <inttypes.h>

#include "fuzz_common.h"
#include "es/envelope.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void same_view(const es_envelope_view *a, const es_envelope_view *b, int with_binary)
{
    FUZZ_CHECK(strcmp(a->event_id, b->event_id) == 0);
    FUZZ_CHECK(strcmp(a->stream_id, b->stream_id) == 0);
    FUZZ_CHECK(strcmp(a->stream_type, b->stream_type) == 0);
    FUZZ_CHECK(strcmp(a->event_type, b->event_type) == 0);
    FUZZ_CHECK(strcmp(a->schema, b->schema) == 0);
    FUZZ_CHECK(strcmp(a->command_id, b->command_id) == 0);
    FUZZ_CHECK(strcmp(a->correlation_id, b->correlation_id) == 0);
    FUZZ_CHECK(strcmp(a->causation_id, b->causation_id) == 0);
    FUZZ_CHECK(a->version == b->version);
    FUZZ_CHECK(a->position == b->position);
    FUZZ_CHECK(a->schema_version == b->schema_version);
    FUZZ_CHECK(a->recorded_at_us == b->recorded_at_us);
    if (with_binary) {   /* fields the headers do not carry */
        FUZZ_CHECK(strcmp(a->schema_hash, b->schema_hash) == 0);
        FUZZ_CHECK(strcmp(a->actor, b->actor) == 0);
        FUZZ_CHECK(a->payload_len == b->payload_len);
        FUZZ_CHECK(a->payload_len == 0 || memcmp(a->payload, b->payload, a->payload_len) == 0);
    }
}

/* headers_of(v) read back must give v again (header values borrow v and hdr). */
static void headers_roundtrip(const es_envelope_view *v, es_arena *arena)
{
    es_envelope_headers hdr;
    es_envelope_headers_of(v, &hdr);
    FUZZ_CHECK(hdr.n <= ES_ENVELOPE_MAX_HEADERS);
    es_envelope_view back;
    int found = es_envelope_from_headers(hdr.h, hdr.n, arena, &back);
    FUZZ_CHECK(found == (int)hdr.n);
    same_view(v, &back, 0);
}

static void value(const uint8_t *p, size_t n, es_arena *arena)
{
    es_envelope_view v;
    es_error err = {0};
    int rc = es_envelope_unpack(p, n, arena, &v, &err);
    FUZZ_CHECK(rc == ES_OK || rc == ES_INVALID_ARGUMENT);
    if (rc != ES_OK) {
        fuzz_check_error(&err, rc);
        return;
    }
    FUZZ_CHECK(v.event_id[0] && v.stream_id[0] && v.event_type[0] && v.version >= 1);

    es_buf b;
    es_buf_init(&b);
    es_envelope_pack(&v, &b);
    es_envelope_view again;
    rc = es_envelope_unpack(b.data, b.len, arena, &again, &err);
    FUZZ_CHECK(rc == ES_OK);
    same_view(&v, &again, 1);
    es_buf_free(&b);
    headers_roundtrip(&v, arena);

    ProtobufCMessage *ev = orders_v1_unpack_event(v.event_type, v.payload, v.payload_len, &arena->pb);
    if (ev)
        fuzz_json_roundtrip(ev, &(es_json_options){0}, 0);
}

static void headers(const uint8_t *p, size_t n, es_arena *arena)
{
    es_envelope_header h[32];
    size_t nh = 0;
    while (n && nh < sizeof h / sizeof *h) {
        const uint8_t *nl = memchr(p, '\n', n);
        size_t line = nl ? (size_t)(nl - p) : n;
        const uint8_t *colon = memchr(p, ':', line);
        size_t nlen = colon ? (size_t)(colon - p) : line;
        char *name = es_arena_strndup(arena, (const char *)p, nlen);
        char *val = NULL;
        size_t vlen = 0;
        if (colon) {
            vlen = line - nlen - 1;
            val = es_arena_alloc(arena, vlen ? vlen : 1);   /* exactly vlen bytes, no NUL */
            memcpy(val, colon + 1, vlen);
        }
        h[nh++] = (es_envelope_header){name, val, vlen};
        p += line;
        n -= line;
        if (nl) {
            p++;
            n--;
        }
    }
    es_envelope_view v;
    int found = es_envelope_from_headers(h, nh, arena, &v);
    FUZZ_CHECK(found >= 0 && (size_t)found <= nh);
    headers_roundtrip(&v, arena);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    es_arena arena;
    es_arena_init(&arena);
    if (data[0] & 1)
        headers(data + 1, size - 1, &arena);
    else
        value(data + 1, size - 1, &arena);
    es_arena_free(&arena);
    return 0;
}
