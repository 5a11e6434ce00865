/* es_pb_unpack (runtime/core/pb_unpack.c): a singular message field read more than once is
 * merged, also where protobuf-c 1.4.1 alone refuses or replaces (message types with a oneof);
 * everything else reads exactly as protobuf-c reads it. The payloads are the conformance
 * suite's RepeatedScalarMessageMerge and ValidDataOneof.MESSAGE.Merge and variations. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "es/pb_unpack.h"
#include "google/protobuf/struct.pb-c.h"
#include "google/protobuf/test_messages_proto2.pb-c.h"
#include "google/protobuf/test_messages_proto3.pb-c.h"
#include "google/protobuf/timestamp.pb-c.h"

typedef ProtobufTestMessages__Proto3__TestAllTypesProto3 T3;
typedef ProtobufTestMessages__Proto2__TestAllTypesProto2 T2;
#define T3_DESC (&protobuf_test_messages__proto3__test_all_types_proto3__descriptor)
#define T2_DESC (&protobuf_test_messages__proto2__test_all_types_proto2__descriptor)

/* A payload under construction. */
typedef struct wire {
    uint8_t b[4096];
    size_t n;
} wire;

static void put_varint(wire *w, uint64_t v)
{
    do {
        assert_true(w->n < sizeof w->b);
        w->b[w->n++] = (uint8_t)((v & 0x7F) | (v > 0x7F ? 0x80 : 0));
        v >>= 7;
    } while (v);
}

static void put_int(wire *w, unsigned field, uint64_t v)
{
    put_varint(w, field << 3);
    put_varint(w, v);
}

static void put_sub(wire *w, unsigned field, const wire *sub)
{
    put_varint(w, field << 3 | 2);
    put_varint(w, sub->n);
    assert_true(w->n + sub->n <= sizeof w->b);
    memcpy(w->b + w->n, sub->b, sub->n);
    w->n += sub->n;
}

/* NestedMessage{corecursive: {field_i: value_i ...}} (pairs end at field 0) */
static wire nested_corecursive(unsigned f1, uint64_t v1, unsigned f2, uint64_t v2, unsigned f3, uint64_t v3)
{
    wire inner = {0}, nested = {0};
    if (f1) put_int(&inner, f1, v1);
    if (f2) put_int(&inner, f2, v2);
    if (f3) put_int(&inner, f3, v3);
    put_sub(&nested, 2, &inner);
    return nested;
}

/* conformance RepeatedScalarMessageMerge: optional_nested_message (18) twice */
static wire repeated_scalar_message_merge(void)
{
    wire w = {0}, a = nested_corecursive(1, 1234, 2, 1234, 31, 1234), b = nested_corecursive(1, 4321, 3, 4321, 31, 4321);
    put_sub(&w, 18, &a);
    put_sub(&w, 18, &b);
    return w;
}

static void test_repeated_singular_message_merged(void **s)
{
    (void)s;
    wire w = repeated_scalar_message_merge();
    /* the upstream limit this works around: protobuf-c alone refuses the payload */
    assert_null(protobuf_c_message_unpack(T3_DESC, NULL, w.n, w.b));
    T3 *m = (T3 *)es_pb_unpack(T3_DESC, NULL, w.n, w.b);
    assert_non_null(m);
    T3 *c = m->optional_nested_message->corecursive;
    assert_int_equal(c->optional_int32, 4321);
    assert_int_equal(c->optional_int64, 1234);
    assert_int_equal(c->optional_uint32, 4321);
    assert_int_equal(c->n_repeated_int32, 2);
    assert_int_equal(c->repeated_int32[0], 1234);
    assert_int_equal(c->repeated_int32[1], 4321);
    protobuf_c_message_free_unpacked(&m->base, NULL);

    T2 *m2 = (T2 *)es_pb_unpack(T2_DESC, NULL, w.n, w.b);   /* proto2: same numbers, presence */
    assert_non_null(m2);
    assert_true(m2->optional_nested_message->corecursive->has_optional_int64);
    assert_int_equal(m2->optional_nested_message->corecursive->optional_int64, 1234);
    assert_int_equal(m2->optional_nested_message->corecursive->n_repeated_int32, 2);
    protobuf_c_message_free_unpacked(&m2->base, NULL);
}

/* conformance ValidDataOneof.MESSAGE.Merge: oneof_nested_message (112) twice merges, where
 * protobuf-c alone keeps only the second */
static void test_oneof_message_member_merged(void **s)
{
    (void)s;
    wire w = {0}, a = nested_corecursive(1, 1, 2, 1, 89, 1), b = nested_corecursive(2, 1, 89, 1, 0, 0);
    put_sub(&w, 112, &a);
    put_sub(&w, 112, &b);
    T3 *alone = (T3 *)protobuf_c_message_unpack(T3_DESC, NULL, w.n, w.b);
    assert_non_null(alone);
    assert_int_equal(alone->oneof_nested_message->corecursive->optional_int32, 0);   /* the first was lost */
    protobuf_c_message_free_unpacked(&alone->base, NULL);

    T3 *m = (T3 *)es_pb_unpack(T3_DESC, NULL, w.n, w.b);
    assert_non_null(m);
    assert_int_equal(m->oneof_field_case, PROTOBUF_TEST_MESSAGES__PROTO3__TEST_ALL_TYPES_PROTO3__ONEOF_FIELD_ONEOF_NESTED_MESSAGE);
    T3 *c = m->oneof_nested_message->corecursive;
    assert_int_equal(c->optional_int32, 1);
    assert_int_equal(c->optional_int64, 1);
    assert_int_equal(c->n_unpacked_int32, 2);
    protobuf_c_message_free_unpacked(&m->base, NULL);
}

/* Another member of the oneof between two occurrences replaces the first: only the second is
 * kept; another member last wins outright. */
static void test_oneof_other_member_replaces(void **s)
{
    (void)s;
    wire a = nested_corecursive(1, 1, 0, 0, 0, 0), b = nested_corecursive(2, 2, 0, 0, 0, 0);
    wire w = {0};
    put_sub(&w, 112, &a);
    put_int(&w, 111, 5);   /* oneof_uint32 */
    put_sub(&w, 112, &b);
    T3 *m = (T3 *)es_pb_unpack(T3_DESC, NULL, w.n, w.b);
    assert_non_null(m);
    assert_int_equal(m->oneof_field_case, PROTOBUF_TEST_MESSAGES__PROTO3__TEST_ALL_TYPES_PROTO3__ONEOF_FIELD_ONEOF_NESTED_MESSAGE);
    assert_int_equal(m->oneof_nested_message->corecursive->optional_int32, 0);
    assert_int_equal(m->oneof_nested_message->corecursive->optional_int64, 2);
    protobuf_c_message_free_unpacked(&m->base, NULL);

    w.n = 0;
    put_sub(&w, 112, &a);
    put_sub(&w, 112, &b);
    put_int(&w, 111, 5);
    m = (T3 *)es_pb_unpack(T3_DESC, NULL, w.n, w.b);
    assert_non_null(m);
    assert_int_equal(m->oneof_field_case, PROTOBUF_TEST_MESSAGES__PROTO3__TEST_ALL_TYPES_PROTO3__ONEOF_FIELD_ONEOF_UINT32);
    assert_int_equal(m->oneof_uint32, 5);
    protobuf_c_message_free_unpacked(&m->base, NULL);
}

/* A repeat deep inside: a repeated message's element and a map value hold a field twice. */
static void test_repeat_inside_repeated_and_map_values(void **s)
{
    (void)s;
    wire a = nested_corecursive(1, 1, 0, 0, 0, 0), b = nested_corecursive(31, 3, 0, 0, 0, 0);
    wire elem = {0}, w = {0}, entry = {0}, value = {0};
    elem = a;
    memcpy(elem.b + elem.n, b.b, b.n);   /* one NestedMessage with corecursive twice */
    elem.n += b.n;
    put_sub(&w, 48, &elem);   /* repeated_nested_message */
    value = elem;
    wire key = {0};
    memcpy(key.b, "k", 1);
    key.n = 1;
    put_sub(&entry, 1, &key);
    put_sub(&entry, 2, &value);
    put_sub(&w, 71, &entry);   /* map_string_nested_message */
    T3 *m = (T3 *)es_pb_unpack(T3_DESC, NULL, w.n, w.b);
    assert_non_null(m);
    assert_int_equal(m->n_repeated_nested_message, 1);
    assert_int_equal(m->repeated_nested_message[0]->corecursive->optional_int32, 1);
    assert_int_equal(m->repeated_nested_message[0]->corecursive->n_repeated_int32, 1);
    assert_string_equal(m->map_string_nested_message[0]->key, "k");
    assert_int_equal(m->map_string_nested_message[0]->value->corecursive->optional_int32, 1);
    assert_int_equal(m->map_string_nested_message[0]->value->corecursive->repeated_int32[0], 3);
    protobuf_c_message_free_unpacked(&m->base, NULL);
}

/* Bytes that need no rewrite read exactly as protobuf-c reads them (packed back identically),
 * and bytes protobuf-c refuses stay refused. */
static void test_everything_else_as_protobuf_c(void **s)
{
    (void)s;
    T3 src = PROTOBUF_TEST_MESSAGES__PROTO3__TEST_ALL_TYPES_PROTO3__INIT;
    ProtobufTestMessages__Proto3__TestAllTypesProto3__NestedMessage nested =
        PROTOBUF_TEST_MESSAGES__PROTO3__TEST_ALL_TYPES_PROTO3__NESTED_MESSAGE__INIT;
    int32_t rep[] = {1, -2, 3};
    nested.a = 7;
    src.optional_int32 = -5;
    src.optional_string = "hello";
    src.optional_nested_message = &nested;
    src.n_repeated_int32 = 3;
    src.repeated_int32 = rep;
    src.oneof_field_case = PROTOBUF_TEST_MESSAGES__PROTO3__TEST_ALL_TYPES_PROTO3__ONEOF_FIELD_ONEOF_STRING;
    src.oneof_string = "one";
    uint8_t buf[512], again[512];
    size_t n = protobuf_c_message_pack(&src.base, buf);
    T3 *m = (T3 *)es_pb_unpack(T3_DESC, NULL, n, buf);
    assert_non_null(m);
    assert_int_equal(protobuf_c_message_get_packed_size(&m->base), n);
    protobuf_c_message_pack(&m->base, again);
    assert_memory_equal(buf, again, n);
    protobuf_c_message_free_unpacked(&m->base, NULL);

    assert_null(es_pb_unpack(T3_DESC, NULL, n - 1, buf));   /* truncated */
    static const uint8_t group[] = {0x93, 0x0c, 0x94, 0x0c}; /* a group (wire types 3/4): protobuf-c refuses them */
    assert_null(es_pb_unpack(T3_DESC, NULL, sizeof group, group));
    static const uint8_t zero_field[] = {0x00, 0x01};
    assert_null(es_pb_unpack(T3_DESC, NULL, sizeof zero_field, zero_field));
    T3 *empty = (T3 *)es_pb_unpack(T3_DESC, NULL, 0, NULL);
    assert_non_null(empty);
    protobuf_c_message_free_unpacked(&empty->base, NULL);
}

/* The rewrite keeps every other occurrence, in order: 40 repeated_int32 values (unpacked, more
 * than the scanner's first allocation holds) around two occurrences of the joined field. */
static void test_many_fields_around_the_merge(void **s)
{
    (void)s;
    wire w = {0}, a = nested_corecursive(1, 1, 0, 0, 0, 0), b = nested_corecursive(2, 2, 0, 0, 0, 0);
    for (int i = 0; i < 20; i++) put_int(&w, 31, (uint64_t)i);
    put_sub(&w, 18, &a);
    for (int i = 20; i < 40; i++) put_int(&w, 31, (uint64_t)i);
    put_sub(&w, 18, &b);
    T3 *m = (T3 *)es_pb_unpack(T3_DESC, NULL, w.n, w.b);
    assert_non_null(m);
    assert_int_equal(m->n_repeated_int32, 40);
    for (int i = 0; i < 40; i++) assert_int_equal(m->repeated_int32[i], i);
    assert_int_equal(m->optional_nested_message->corecursive->optional_int32, 1);
    assert_int_equal(m->optional_nested_message->corecursive->optional_int64, 2);
    protobuf_c_message_free_unpacked(&m->base, NULL);
}

/* Only types from which a oneof is reachable are scanned; the answer is cached. */
static void test_which_types_are_scanned(void **s)
{
    (void)s;
    for (int round = 0; round < 2; round++) {   /* the second round answers from the cache */
        assert_true(es_pb_reaches_oneof(T3_DESC));
        assert_true(es_pb_reaches_oneof(&protobuf_test_messages__proto3__test_all_types_proto3__nested_message__descriptor));
        assert_true(es_pb_reaches_oneof(&google__protobuf__struct__descriptor));   /* Value's kind */
        assert_false(es_pb_reaches_oneof(&protobuf_test_messages__proto3__foreign_message__descriptor));
        assert_false(es_pb_reaches_oneof(&google__protobuf__timestamp__descriptor));
    }
}

/* Inside a type with a oneof, nesting beyond ES_PB_MAX_DEPTH is refused rather than followed. */
static void test_depth_limit(void **s)
{
    (void)s;
    static wire w[2];
    for (int depth = 50; depth <= 150; depth += 100) {
        wire *cur = &w[0], *next = &w[1];
        cur->n = 0;
        put_int(cur, 1, 1);
        for (int i = 0; i < depth; i++) {   /* T3.recursive_message (27) */
            next->n = 0;
            put_sub(next, 27, cur);
            wire *t = cur;
            cur = next;
            next = t;
        }
        T3 *m = (T3 *)es_pb_unpack(T3_DESC, NULL, cur->n, cur->b);
        if (depth <= ES_PB_MAX_DEPTH) {
            assert_non_null(m);
            protobuf_c_message_free_unpacked(&m->base, NULL);
        } else {
            assert_null(m);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_repeated_singular_message_merged),
        cmocka_unit_test(test_oneof_message_member_merged),
        cmocka_unit_test(test_oneof_other_member_replaces),
        cmocka_unit_test(test_repeat_inside_repeated_and_map_values),
        cmocka_unit_test(test_everything_else_as_protobuf_c),
        cmocka_unit_test(test_many_fields_around_the_merge),
        cmocka_unit_test(test_which_types_are_scanned),
        cmocka_unit_test(test_depth_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
