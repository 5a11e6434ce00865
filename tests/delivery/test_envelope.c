/* es.Envelope and es-* headers: what the relay writes is what a consumer reads back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "es/envelope.h"

static es_envelope_view sample(void)
{
    static const uint8_t payload[] = {0x0a, 0x03, 'a', 'b', 'c', 0x00, 0xff};
    es_envelope_view v;
    es_envelope_view_clear(&v);
    v.event_id = "0190f3b4-0000-7000-8000-000000000001";
    v.stream_id = "order-42";
    v.stream_type = "order";
    v.event_type = "OrderPlaced";
    v.schema = "orders.v1.OrderPlaced";
    v.schema_hash = "abc123";
    v.command_id = "cmd-1";
    v.correlation_id = "corr-1";
    v.causation_id = "";
    v.actor = "alice";
    v.version = 7;
    v.position = 123456789012;
    v.schema_version = 2;
    v.recorded_at_us = 1700000000123456;
    v.payload = payload;
    v.payload_len = sizeof payload;
    return v;
}

static void envelope_round_trip(void **state)
{
    (void)state;
    es_envelope_view v = sample(), back;
    es_buf b;
    es_buf_init(&b);
    es_envelope_pack(&v, &b);
    es_arena a;
    es_arena_init(&a);
    es_error err;
    assert_int_equal(es_envelope_unpack(b.data, b.len, &a, &back, &err), ES_OK);
    assert_string_equal(back.event_id, v.event_id);
    assert_string_equal(back.stream_id, v.stream_id);
    assert_string_equal(back.stream_type, v.stream_type);
    assert_string_equal(back.event_type, v.event_type);
    assert_string_equal(back.schema, v.schema);
    assert_string_equal(back.schema_hash, v.schema_hash);
    assert_string_equal(back.command_id, v.command_id);
    assert_string_equal(back.correlation_id, v.correlation_id);
    assert_string_equal(back.causation_id, "");
    assert_string_equal(back.actor, v.actor);
    assert_int_equal(back.version, 7);
    assert_int_equal(back.position, 123456789012);
    assert_int_equal(back.schema_version, 2);
    assert_int_equal(back.recorded_at_us, v.recorded_at_us);
    assert_int_equal(back.payload_len, v.payload_len);
    assert_memory_equal(back.payload, v.payload, v.payload_len);
    es_arena_free(&a);
    es_buf_free(&b);
}

static void envelope_headers_round_trip(void **state)
{
    (void)state;
    es_envelope_view v = sample(), back;
    es_envelope_headers h;
    es_envelope_headers_of(&v, &h);
    int has_stream = 0, has_causation = 0;
    for (size_t i = 0; i < h.n; i++) {
        if (!strcmp(h.h[i].name, "es-stream-id")) {
            has_stream = 1;
            assert_int_equal(h.h[i].len, strlen("order-42"));
        }
        if (!strcmp(h.h[i].name, "es-causation-id"))
            has_causation = 1;
    }
    assert_true(has_stream);
    assert_false(has_causation); /* empty fields are not sent */
    es_arena a;
    es_arena_init(&a);
    assert_int_equal(es_envelope_from_headers(h.h, h.n, &a, &back), (int)h.n);
    assert_string_equal(back.stream_id, "order-42");
    assert_string_equal(back.event_id, v.event_id);
    assert_string_equal(back.event_type, "OrderPlaced");
    assert_string_equal(back.schema, "orders.v1.OrderPlaced");
    assert_int_equal(back.version, 7);
    assert_int_equal(back.position, 123456789012);
    assert_int_equal(back.recorded_at_us, v.recorded_at_us);
    es_arena_free(&a);
}

static void envelope_rejects_garbage_and_incomplete(void **state)
{
    (void)state;
    es_arena a;
    es_arena_init(&a);
    es_envelope_view back;
    es_error err;
    const char junk[] = "definitely not protobuf \xff\xff\xff\xff";
    assert_int_equal(es_envelope_unpack(junk, sizeof junk, &a, &back, &err), ES_INVALID_ARGUMENT);
    assert_string_equal(back.stream_id, ""); /* cleared, safe to read */

    es_envelope_view v = sample();
    v.version = 0;
    es_buf b;
    es_buf_init(&b);
    es_envelope_pack(&v, &b);
    assert_int_equal(es_envelope_unpack(b.data, b.len, &a, &back, &err), ES_INVALID_ARGUMENT);
    assert_string_equal(err.field, "version");
    /* An empty message decodes but is no event. */
    assert_int_equal(es_envelope_unpack("", 0, &a, &back, &err), ES_INVALID_ARGUMENT);
    es_buf_free(&b);
    es_arena_free(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(envelope_round_trip),
        cmocka_unit_test(envelope_headers_round_trip),
        cmocka_unit_test(envelope_rejects_garbage_and_incomplete),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
