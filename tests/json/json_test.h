/* Shared helpers of the JSON codec tests: one arena and registry per test, decode / encode
 * shortcuts that assert, and an error check that names the expected field path. */
#ifndef JSON_TEST_H
#define JSON_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "es/json.h"
#include "google/protobuf/test_messages_proto2.pb-c.h"
#include "google/protobuf/test_messages_proto3.pb-c.h"

typedef ProtobufTestMessages__Proto3__TestAllTypesProto3 T3;
typedef ProtobufTestMessages__Proto2__TestAllTypesProto2 T2;
#define T3_DESC (&protobuf_test_messages__proto3__test_all_types_proto3__descriptor)
#define T2_DESC (&protobuf_test_messages__proto2__test_all_types_proto2__descriptor)

static es_arena jt_arena;
static es_json_registry *jt_reg;
static es_error jt_err;
static es_buf jt_out;

static inline int jt_setup(void **state)
{
    (void)state;
    es_arena_init(&jt_arena);
    es_buf_init(&jt_out);
    jt_reg = es_json_registry_new();
    es_json_registry_add_message(jt_reg, T3_DESC);
    es_json_registry_add_message(jt_reg, T2_DESC);
    memset(&jt_err, 0, sizeof jt_err);
    return 0;
}

static inline int jt_teardown(void **state)
{
    (void)state;
    es_json_registry_free(jt_reg);
    es_buf_free(&jt_out);
    es_arena_free(&jt_arena);
    return 0;
}

#define JT(fn) cmocka_unit_test_setup_teardown(fn, jt_setup, jt_teardown)

static inline ProtobufCMessage *jt_decode_opt(const ProtobufCMessageDescriptor *d, const char *json,
                                       const es_json_options *opt)
{
    ProtobufCMessage *m = NULL;
    int rc = es_json_decode(jt_reg, d, json, strlen(json), opt, &jt_arena, &m, &jt_err);
    if (rc) fail_msg("decode of %s failed: [%s] %s", json, jt_err.field, jt_err.message);
    assert_non_null(m);
    return m;
}

static inline ProtobufCMessage *jt_decode(const ProtobufCMessageDescriptor *d, const char *json)
{
    return jt_decode_opt(d, json, NULL);
}

#define DEC3(json) ((T3 *)jt_decode(T3_DESC, json))
#define DEC2(json) ((T2 *)jt_decode(T2_DESC, json))

/* Asserts that decoding fails with INVALID_ARGUMENT, err->field == field and the message
 * containing needle (when not NULL). */
static inline void jt_decode_fails_opt(const ProtobufCMessageDescriptor *d, const char *json, const es_json_options *opt,
                                const char *field, const char *needle)
{
    ProtobufCMessage *m = (ProtobufCMessage *)1;
    memset(&jt_err, 0, sizeof jt_err);
    int rc = es_json_decode(jt_reg, d, json, strlen(json), opt, &jt_arena, &m, &jt_err);
    if (rc != ES_INVALID_ARGUMENT) fail_msg("decode of %s: expected INVALID_ARGUMENT, got %d", json, rc);
    assert_null(m);
    assert_int_equal(jt_err.code, ES_INVALID_ARGUMENT);
    if (strcmp(jt_err.field, field))
        fail_msg("decode of %s: field \"%s\" (message %s), expected \"%s\"", json, jt_err.field, jt_err.message,
                 field);
    if (needle && !strstr(jt_err.message, needle))
        fail_msg("decode of %s: message \"%s\" lacks \"%s\"", json, jt_err.message, needle);
}

static inline void jt_decode_fails(const ProtobufCMessageDescriptor *d, const char *json, const char *field,
                            const char *needle)
{
    jt_decode_fails_opt(d, json, NULL, field, needle);
}

static inline const char *jt_encode_opt(const ProtobufCMessage *m, const es_json_options *opt)
{
    es_buf_reset(&jt_out);
    int rc = es_json_encode(jt_reg, m, opt, &jt_out, &jt_err);
    if (rc) fail_msg("encode failed: [%s] %s", jt_err.field, jt_err.message);
    return jt_out.data ? jt_out.data : "";
}

static inline const char *jt_encode(const ProtobufCMessage *m) { return jt_encode_opt(m, NULL); }

static inline void jt_encode_fails(const ProtobufCMessage *m, const char *field, const char *needle)
{
    es_buf_reset(&jt_out);
    memset(&jt_err, 0, sizeof jt_err);
    int rc = es_json_encode(jt_reg, m, NULL, &jt_out, &jt_err);
    assert_int_equal(rc, ES_INVALID_ARGUMENT);
    assert_int_equal(jt_out.len, 0);
    if (strcmp(jt_err.field, field)) fail_msg("encode: field \"%s\", expected \"%s\"", jt_err.field, field);
    if (needle && !strstr(jt_err.message, needle))
        fail_msg("encode: message \"%s\" lacks \"%s\"", jt_err.message, needle);
}

/* decode(json) then encode must give exactly want. */
static inline void jt_roundtrip(const ProtobufCMessageDescriptor *d, const char *json, const char *want)
{
    ProtobufCMessage *m = jt_decode(d, json);
    const char *got = jt_encode(m);
    if (strcmp(got, want)) fail_msg("%s\n  encoded as %s\n  expected   %s", json, got, want);
}

/* The message survives protobuf-c pack/unpack and encodes the same afterwards. */
static inline void jt_pack_check(const ProtobufCMessage *m)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(n ? n : 1);
    assert_int_equal(protobuf_c_message_pack(m, buf), n);
    ProtobufCMessage *back = protobuf_c_message_unpack(m->descriptor, NULL, n, buf);
    assert_non_null(back);
    char *a = strdup(jt_encode(m));
    const char *b = jt_encode(back);
    assert_string_equal(a, b);
    free(a);
    protobuf_c_message_free_unpacked(back, NULL);
    free(buf);
}

#endif
