/* The well-known types' special JSON forms: Timestamp, Duration, FieldMask, Struct / Value /
 * ListValue / NullValue, the wrappers, Empty and Any; each rule and each error path. */
#include <math.h>

#include "google/protobuf/empty.pb-c.h"
#include "google/protobuf/wrappers.pb-c.h"
#include "json_test.h"

/* ---- Timestamp ---- */

static void test_timestamp_round_trip_with_0_3_6_9_fraction_digits(void **s)
{
    (void)s;
    jt_roundtrip(T3_DESC, "{\"optionalTimestamp\":\"1970-01-01T00:00:00Z\"}", "{\"optional_timestamp\":\"1970-01-01T00:00:00Z\"}");
    jt_roundtrip(T3_DESC, "{\"optionalTimestamp\":\"2024-02-29T23:59:59.5Z\"}",
                 "{\"optional_timestamp\":\"2024-02-29T23:59:59.500Z\"}");
    jt_roundtrip(T3_DESC, "{\"optionalTimestamp\":\"2000-01-01T00:00:00.000001Z\"}",
                 "{\"optional_timestamp\":\"2000-01-01T00:00:00.000001Z\"}");
    jt_roundtrip(T3_DESC, "{\"optionalTimestamp\":\"1969-12-31T23:59:59.123456789Z\"}",
                 "{\"optional_timestamp\":\"1969-12-31T23:59:59.123456789Z\"}");
    T3 *m = DEC3("{\"optionalTimestamp\":\"1969-12-31T23:59:59.123456789Z\"}");
    assert_int_equal(m->optional_timestamp->seconds, -1);
    assert_int_equal(m->optional_timestamp->nanos, 123456789);
}

static void test_timestamp_offsets_accepted_and_normalised_to_z(void **s)
{
    (void)s;
    T3 *m = DEC3("{\"optionalTimestamp\":\"1970-01-01T01:00:00+01:00\"}");
    assert_int_equal(m->optional_timestamp->seconds, 0);
    m = DEC3("{\"optionalTimestamp\":\"1969-12-31T19:30:00.25-04:30\"}");
    assert_int_equal(m->optional_timestamp->seconds, 0);
    assert_string_equal(jt_encode(&m->base), "{\"optional_timestamp\":\"1970-01-01T00:00:00.250Z\"}");
}

static void test_timestamp_range_0001_to_9999(void **s)
{
    (void)s;
    jt_roundtrip(T3_DESC, "{\"optionalTimestamp\":\"0001-01-01T00:00:00Z\"}", "{\"optional_timestamp\":\"0001-01-01T00:00:00Z\"}");
    jt_roundtrip(T3_DESC, "{\"optionalTimestamp\":\"9999-12-31T23:59:59.999999999Z\"}",
                 "{\"optional_timestamp\":\"9999-12-31T23:59:59.999999999Z\"}");
    jt_decode_fails(T3_DESC, "{\"optionalTimestamp\":\"0000-12-31T00:00:00Z\"}", "optional_timestamp", "not an RFC 3339");
    jt_decode_fails(T3_DESC, "{\"optionalTimestamp\":\"0001-01-01T00:00:00+00:01\"}", "optional_timestamp", "out of range");
    jt_decode_fails(T3_DESC, "{\"optionalTimestamp\":\"9999-12-31T23:59:59-00:01\"}", "optional_timestamp", "out of range");
}

static void test_timestamp_bad_forms_rejected(void **s)
{
    (void)s;
    const char *bad[] = {
        "1970-01-01T00:00:00",          "1970-01-01t00:00:00Z",         "1970-01-01T00:00:00z",
        "1970-01-01 00:00:00Z",         "1970-1-01T00:00:00Z",          "1970-02-30T00:00:00Z",
        "1970-13-01T00:00:00Z",         "1970-01-01T24:00:00Z",         "1970-01-01T00:00:60Z",
        "1970-01-01T00:00:00.Z",        "1970-01-01T00:00:00.1234567890Z", "1970-01-01T00:00:00+01",
        "1970-01-01T00:00:00+0100",     "1970-01-01T00:00:00Z ",        "2023-02-29T00:00:00Z",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char json[128];
        snprintf(json, sizeof json, "{\"optionalTimestamp\":\"%s\"}", bad[i]);
        jt_decode_fails(T3_DESC, json, "optional_timestamp", "RFC 3339");
    }
    jt_decode_fails(T3_DESC, "{\"optionalTimestamp\":0}", "optional_timestamp", "as a string");
}

static void test_timestamp_out_of_range_encode_error_names_field(void **s)
{
    (void)s;
    Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
    T3 m = PROTOBUF_TEST_MESSAGES__PROTO3__TEST_ALL_TYPES_PROTO3__INIT;
    m.optional_timestamp = &ts;
    ts.seconds = 253402300800LL;   /* 10000-01-01 */
    jt_encode_fails(&m.base, "optional_timestamp", "outside");
    ts.seconds = -62135596801LL;
    jt_encode_fails(&m.base, "optional_timestamp", "outside");
    ts.seconds = 0;
    ts.nanos = -1;
    jt_encode_fails(&m.base, "optional_timestamp", "nanos");
    Google__Protobuf__Timestamp *list[] = {&ts};
    ts.nanos = 1000000000;
    m.optional_timestamp = NULL;
    m.n_repeated_timestamp = 1;
    m.repeated_timestamp = list;
    jt_encode_fails(&m.base, "repeated_timestamp[0]", "nanos");
}

/* ---- Duration ---- */

static void test_duration_round_trip(void **s)
{
    (void)s;
    jt_roundtrip(T3_DESC, "{\"optionalDuration\":\"1.5s\"}", "{\"optional_duration\":\"1.500s\"}");
    jt_roundtrip(T3_DESC, "{\"optionalDuration\":\"-0.5s\"}", "{\"optional_duration\":\"-0.500s\"}");
    jt_roundtrip(T3_DESC, "{\"optionalDuration\":\"0s\"}", "{\"optional_duration\":\"0s\"}");
    jt_roundtrip(T3_DESC, "{\"optionalDuration\":\"1.000001s\"}", "{\"optional_duration\":\"1.000001s\"}");
    jt_roundtrip(T3_DESC, "{\"optionalDuration\":\"-315576000000.999999999s\"}",
                 "{\"optional_duration\":\"-315576000000.999999999s\"}");
    T3 *m = DEC3("{\"optionalDuration\":\"-1.25s\"}");
    assert_int_equal(m->optional_duration->seconds, -1);
    assert_int_equal(m->optional_duration->nanos, -250000000);
}

static void test_duration_range_and_form_checked(void **s)
{
    (void)s;
    jt_decode_fails(T3_DESC, "{\"optionalDuration\":\"315576000001s\"}", "optional_duration", "out of range");
    jt_decode_fails(T3_DESC, "{\"optionalDuration\":\"-9999999999999s\"}", "optional_duration", "out of range");
    const char *bad[] = {"1.5", "1.5 s", "s", "-s", "+1s", "1.s", "1.0000000001s", "1e3s", ".5s", "1,5s"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char json[96];
        snprintf(json, sizeof json, "{\"optionalDuration\":\"%s\"}", bad[i]);
        jt_decode_fails(T3_DESC, json, "optional_duration", "not a duration");
    }
    jt_decode_fails(T3_DESC, "{\"optionalDuration\":1.5}", "optional_duration", "as a string");
}

static void test_duration_encode_errors(void **s)
{
    (void)s;
    Google__Protobuf__Duration d = GOOGLE__PROTOBUF__DURATION__INIT;
    T3 m = PROTOBUF_TEST_MESSAGES__PROTO3__TEST_ALL_TYPES_PROTO3__INIT;
    m.optional_duration = &d;
    d.seconds = 315576000001LL;
    jt_encode_fails(&m.base, "optional_duration", "out of range");
    d.seconds = 1;
    d.nanos = -1;
    jt_encode_fails(&m.base, "optional_duration", "signs");
    d.seconds = 0;
    d.nanos = 1000000000;
    jt_encode_fails(&m.base, "optional_duration", "out of range");
}

/* ---- FieldMask ---- */

static void test_field_mask_camel_case_both_ways(void **s)
{
    (void)s;
    T3 *m = DEC3("{\"optionalFieldMask\":\"fooBar,baz.quxQuux,x\"}");
    assert_int_equal(m->optional_field_mask->n_paths, 3);
    assert_string_equal(m->optional_field_mask->paths[0], "foo_bar");
    assert_string_equal(m->optional_field_mask->paths[1], "baz.qux_quux");
    assert_string_equal(jt_encode(&m->base), "{\"optional_field_mask\":\"fooBar,baz.quxQuux,x\"}");
    m = DEC3("{\"optionalFieldMask\":\"\"}");
    assert_int_equal(m->optional_field_mask->n_paths, 0);
    assert_string_equal(jt_encode(&m->base), "{\"optional_field_mask\":\"\"}");
}

static void test_field_mask_errors(void **s)
{
    (void)s;
    jt_decode_fails(T3_DESC, "{\"optionalFieldMask\":\"foo_bar\"}", "optional_field_mask", "lowerCamelCase");
    jt_decode_fails(T3_DESC, "{\"optionalFieldMask\":[\"a\"]}", "optional_field_mask", "as a string");
    Google__Protobuf__FieldMask fm = GOOGLE__PROTOBUF__FIELD_MASK__INIT;
    char *paths[] = {"foo_3_bar"};
    fm.n_paths = 1;
    fm.paths = paths;
    T3 m = PROTOBUF_TEST_MESSAGES__PROTO3__TEST_ALL_TYPES_PROTO3__INIT;
    m.optional_field_mask = &fm;
    jt_encode_fails(&m.base, "optional_field_mask", "lowerCamelCase");
    paths[0] = "fooBar";   /* would not read back as itself */
    jt_encode_fails(&m.base, "optional_field_mask", "lowerCamelCase");
}

/* ---- Struct / Value / ListValue / NullValue ---- */

static void test_struct_value_list_round_trip(void **s)
{
    (void)s;
    const char *json = "{\"optional_struct\":{\"a\":1.5,\"b\":\"x\",\"c\":true,\"d\":null,\"e\":[1,[],{}],\"f\":{\"g\":-2}},"
                       "\"optional_value\":[null,\"s\"],\"repeated_value\":[1,null],"
                       "\"repeated_list_value\":[[1,\"two\"]]}";
    T3 *m = (T3 *)jt_decode(T3_DESC, json);
    assert_string_equal(jt_encode(&m->base), json);
    jt_pack_check(&m->base);
}

static void test_value_null_is_null_value_not_unset(void **s)
{
    (void)s;
    T3 *m = DEC3("{\"optionalValue\":null}");
    assert_non_null(m->optional_value);
    assert_int_equal(m->optional_value->kind_case, GOOGLE__PROTOBUF__VALUE__KIND_NULL_VALUE);
    assert_string_equal(jt_encode(&m->base), "{\"optional_value\":null}");
    m = DEC3("{\"optionalNullValue\":null}");   /* a NullValue enum field: null is its value */
    assert_int_equal(m->optional_null_value, 0);
    m = DEC3("{\"optionalStruct\":{\"k\":null}}");
    assert_int_equal(m->optional_struct->fields[0]->value->kind_case, GOOGLE__PROTOBUF__VALUE__KIND_NULL_VALUE);
}

static void test_value_errors(void **s)
{
    (void)s;
    jt_decode_fails(T3_DESC, "{\"optionalValue\":1e999}", "optional_value", "out of range");
    jt_decode_fails(T3_DESC, "{\"optionalStruct\":[]}", "optional_struct", "expected an object");
    jt_decode_fails(T3_DESC, "{\"repeatedListValue\":[{}]}", "repeated_list_value[0]", "expected an array");
    Google__Protobuf__Value v = GOOGLE__PROTOBUF__VALUE__INIT;
    T3 m = PROTOBUF_TEST_MESSAGES__PROTO3__TEST_ALL_TYPES_PROTO3__INIT;
    m.optional_value = &v;
    jt_encode_fails(&m.base, "optional_value", "no kind");
    v.kind_case = GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE;
    v.number_value = NAN;
    jt_encode_fails(&m.base, "optional_value", "NaN");
}

/* ---- wrappers ---- */

static void test_wrappers_are_bare_values(void **s)
{
    (void)s;
    const char *json = "{\"optional_bool_wrapper\":false,\"optional_int32_wrapper\":0,\"optional_int64_wrapper\":\"-5\","
                       "\"optional_uint32_wrapper\":7,\"optional_uint64_wrapper\":\"18446744073709551615\","
                       "\"optional_float_wrapper\":1.5,\"optional_double_wrapper\":\"NaN\","
                       "\"optional_string_wrapper\":\"\",\"optional_bytes_wrapper\":\"AQ==\","
                       "\"repeated_int32_wrapper\":[1,0]}";
    T3 *m = (T3 *)jt_decode(T3_DESC, json);
    assert_non_null(m->optional_int32_wrapper);   /* a zero wrapper is present and written */
    assert_string_equal(jt_encode(&m->base), json);
    jt_pack_check(&m->base);
}

static void test_wrapper_errors(void **s)
{
    (void)s;
    jt_decode_fails(T3_DESC, "{\"optionalInt32Wrapper\":\"x\"}", "optional_int32_wrapper", "not a number");
    jt_decode_fails(T3_DESC, "{\"optionalBoolWrapper\":{\"value\":true}}", "optional_bool_wrapper", "true or false");
    jt_decode_fails(T3_DESC, "{\"repeatedInt32Wrapper\":[null]}", "repeated_int32_wrapper[0]", "null");
}

/* A well-known type as the top-level message; the input is not NUL-terminated, so an error
 * message quoting a number lexeme must not read past it (ASan checks). */
static void test_top_level_well_known_types(void **s)
{
    (void)s;
    ProtobufCMessage *m = NULL;
    const char ts[] = "\"1970-01-01T00:00:01Z\"";
    assert_int_equal(es_json_decode(jt_reg, &google__protobuf__timestamp__descriptor, ts, strlen(ts), NULL, &jt_arena,
                                    &m, &jt_err), 0);
    assert_int_equal(((Google__Protobuf__Timestamp *)m)->seconds, 1);
    assert_string_equal(jt_encode(m), ts);
    char *exact = malloc(3);
    memcpy(exact, "1.5", 3);
    assert_int_equal(es_json_decode(jt_reg, &google__protobuf__int32_value__descriptor, exact, 3, NULL, &jt_arena, &m,
                                    &jt_err), ES_INVALID_ARGUMENT);
    assert_string_equal(jt_err.message, "1.5 is not an integer");
    memcpy(exact, "1e9", 3);
    assert_int_equal(es_json_decode(jt_reg, &google__protobuf__int64_value__descriptor, exact, 3, NULL, &jt_arena, &m,
                                    &jt_err), 0);
    assert_string_equal(jt_encode(m), "\"1000000000\"");
    free(exact);
    jt_decode_fails(&google__protobuf__int32_value__descriptor, "null", "", "null is not a value");
    m = jt_decode(&google__protobuf__value__descriptor, "null");
    assert_string_equal(jt_encode(m), "null");
    m = jt_decode(&google__protobuf__list_value__descriptor, "[1,{\"a\":[]}]");
    assert_string_equal(jt_encode(m), "[1,{\"a\":[]}]");
}

/* ---- Empty ---- */

static void test_empty_is_an_empty_object(void **s)
{
    (void)s;
    Google__Protobuf__Empty *e = (Google__Protobuf__Empty *)jt_decode(&google__protobuf__empty__descriptor, "{}");
    assert_string_equal(jt_encode(&e->base), "{}");
    jt_decode_fails(&google__protobuf__empty__descriptor, "{\"a\":1}", "a", "unknown field");
}

/* ---- Any ---- */

static void test_any_message_fields_inline(void **s)
{
    (void)s;
    const char *json = "{\"optional_any\":{\"@type\":\"type.googleapis.com/protobuf_test_messages.proto3.TestAllTypesProto3\","
                       "\"optional_int32\":12345,\"optional_nested_message\":{\"a\":1}}}";
    T3 *m = (T3 *)jt_decode(T3_DESC, json);
    assert_string_equal(m->optional_any->type_url, "type.googleapis.com/protobuf_test_messages.proto3.TestAllTypesProto3");
    assert_true(m->optional_any->value.len > 0);
    assert_string_equal(jt_encode(&m->base), json);
    /* @type need not come first; json names work inside */
    m = DEC3("{\"optionalAny\":{\"optionalInt32\":5,\"@type\":\"type.googleapis.com/protobuf_test_messages.proto3.TestAllTypesProto3\"}}");
    assert_string_equal(jt_encode(&m->base), "{\"optional_any\":{\"@type\":\"type.googleapis.com/protobuf_test_messages."
                                             "proto3.TestAllTypesProto3\",\"optional_int32\":5}}");
    jt_roundtrip(T3_DESC, "{\"optionalAny\":{}}", "{\"optional_any\":{}}");
}

static void test_any_well_known_payload_uses_value(void **s)
{
    (void)s;
    const char *json = "{\"repeated_any\":[{\"@type\":\"type.googleapis.com/google.protobuf.Duration\",\"value\":\"1.500s\"},"
                       "{\"@type\":\"type.googleapis.com/google.protobuf.Int64Value\",\"value\":\"7\"},"
                       "{\"@type\":\"type.googleapis.com/google.protobuf.Struct\",\"value\":{\"a\":[true]}},"
                       "{\"@type\":\"type.googleapis.com/google.protobuf.Any\",\"value\":{\"@type\":"
                       "\"type.googleapis.com/google.protobuf.Empty\"}}]}";
    T3 *m = (T3 *)jt_decode(T3_DESC, json);
    assert_string_equal(jt_encode(&m->base), json);
    jt_pack_check(&m->base);
    /* Empty: Go's {"value": {}} form is read as well */
    m = DEC3("{\"optionalAny\":{\"@type\":\"type.googleapis.com/google.protobuf.Empty\",\"value\":{}}}");
    assert_string_equal(jt_encode(&m->base), "{\"optional_any\":{\"@type\":\"type.googleapis.com/google.protobuf.Empty\"}}");
}

static void test_any_errors(void **s)
{
    (void)s;
    jt_decode_fails(T3_DESC, "{\"optionalAny\":{\"optionalInt32\":1}}", "optional_any", "@type");
    jt_decode_fails(T3_DESC, "{\"optionalAny\":{\"@type\":\"type.googleapis.com/no.Such\"}}", "optional_any.@type",
                    "unknown type");
    jt_decode_fails(T3_DESC, "{\"optionalAny\":{\"@type\":5}}", "optional_any.@type", "type URL");
    jt_decode_fails(T3_DESC,
                    "{\"optionalAny\":{\"@type\":\"type.googleapis.com/google.protobuf.Duration\",\"value\":\"1s\",\"x\":1}}",
                    "optional_any.x", "unknown field");
    jt_decode_fails(T3_DESC,
                    "{\"optionalAny\":{\"@type\":\"type.googleapis.com/protobuf_test_messages.proto3.ForeignMessage\",\"c\":\"z\"}}",
                    "optional_any.c", "not a number");
    Google__Protobuf__Any any = GOOGLE__PROTOBUF__ANY__INIT;
    any.type_url = "type.googleapis.com/no.Such";
    T3 m = PROTOBUF_TEST_MESSAGES__PROTO3__TEST_ALL_TYPES_PROTO3__INIT;
    m.optional_any = &any;
    jt_encode_fails(&m.base, "optional_any", "unknown type");
    any.type_url = "type.googleapis.com/google.protobuf.Duration";
    any.value = (ProtobufCBinaryData){2, (uint8_t *)"\x08\xff"};   /* truncated varint */
    jt_encode_fails(&m.base, "optional_any", "does not parse");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        JT(test_timestamp_round_trip_with_0_3_6_9_fraction_digits),
        JT(test_timestamp_offsets_accepted_and_normalised_to_z),
        JT(test_timestamp_range_0001_to_9999),
        JT(test_timestamp_bad_forms_rejected),
        JT(test_timestamp_out_of_range_encode_error_names_field),
        JT(test_duration_round_trip),
        JT(test_duration_range_and_form_checked),
        JT(test_duration_encode_errors),
        JT(test_field_mask_camel_case_both_ways),
        JT(test_field_mask_errors),
        JT(test_struct_value_list_round_trip),
        JT(test_value_null_is_null_value_not_unset),
        JT(test_value_errors),
        JT(test_wrappers_are_bare_values),
        JT(test_wrapper_errors),
        JT(test_top_level_well_known_types),
        JT(test_empty_is_an_empty_object),
        JT(test_any_message_fields_inline),
        JT(test_any_well_known_payload_uses_value),
        JT(test_any_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
