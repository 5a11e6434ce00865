/* The proto3 JSON rules for plain messages, one test per rule and per error path: names,
 * integers, floating point, bool, strings, bytes, enums, repeated, maps, oneofs, presence, null,
 * and the structural errors (duplicate keys, trailing garbage, unknown fields, wrong types,
 * depth). Messages: protobuf's own conformance messages TestAllTypesProto3/Proto2. */
#include <math.h>

#include "json_test.h"

/* ---- names ---- */

static void test_names_accepts_json_and_proto_names(void **s)
{
    (void)s;
    T3 *m = DEC3("{\"optionalInt32\": 1, \"optional_int64\": 2, \"repeatedString\": [\"a\"]}");
    assert_int_equal(m->optional_int32, 1);
    assert_int_equal(m->optional_int64, 2);
    assert_int_equal(m->n_repeated_string, 1);
}

static void test_names_lower_camel_rule_of_protoc(void **s)
{
    (void)s;
    /* protoc's ToJsonName: drop '_', upper-case the next character, keep everything else */
    T3 *m = DEC3("{\"fieldname1\":1,\"fieldName2\":2,\"FieldName3\":3,\"fieldName4\":4,\"field0name5\":5,"
                 "\"field0Name6\":6,\"fieldName7\":7,\"FieldName8\":8,\"fieldName9\":9,\"FieldName10\":10,"
                 "\"FIELDNAME11\":11,\"FIELDName12\":12,\"FieldName13\":13,\"FieldName14\":14,"
                 "\"fieldName15\":15,\"fieldName16\":16,\"fieldName17\":17,\"FieldName18\":18}");
    assert_int_equal(m->fieldname1, 1);
    assert_int_equal(m->field_name2, 2);
    assert_int_equal(m->_field_name3, 3);
    assert_int_equal(m->field__name4_, 4);
    assert_int_equal(m->field_0_name6, 6);
    assert_int_equal(m->field_name11, 11);
    assert_int_equal(m->__field_name13, 13);
    assert_int_equal(m->field__name16, 16);
    assert_int_equal(m->field_name18__, 18);
    es_json_options camel = {.lower_camel_output = 1};
    T3 one = PROTOBUF_TEST_MESSAGES__PROTO3__TEST_ALL_TYPES_PROTO3__INIT;
    one.field__name4_ = 4;
    one.__field_name14 = 14;
    assert_string_equal(jt_encode_opt(&one.base, &camel), "{\"fieldName4\":4,\"FieldName14\":14}");
}

static void test_names_encode_proto_names_by_default(void **s)
{
    (void)s;
    jt_roundtrip(T3_DESC, "{\"optionalNestedMessage\":{\"a\":1},\"field__name4_\":4}",
                 "{\"optional_nested_message\":{\"a\":1},\"field__name4_\":4}");
}

static void test_names_lower_camel_output_option(void **s)
{
    (void)s;
    T3 *m = DEC3("{\"optional_nested_message\":{\"a\":1},\"repeated_int32\":[1]}");
    es_json_options camel = {.lower_camel_output = 1};
    assert_string_equal(jt_encode_opt(&m->base, &camel), "{\"optionalNestedMessage\":{\"a\":1},\"repeatedInt32\":[1]}");
}

static void test_names_same_field_under_two_names_rejected(void **s)
{
    (void)s;
    jt_decode_fails(T3_DESC, "{\"optionalInt32\":1,\"optional_int32\":2}", "optional_int32", "twice");
}

static void test_names_registry_json_name_override(void **s)
{
    (void)s;
    /* ForeignMessage has one field "c"; give it the json_name "see" */
    static const char *const names[] = {"see"};
    static const es_json_names tbl = {&protobuf_test_messages__proto3__foreign_message__descriptor, names};
    es_json_registry_add_names(jt_reg, &tbl);
    T3 *m = DEC3("{\"optionalForeignMessage\":{\"see\":5}}");
    assert_int_equal(m->optional_foreign_message->c, 5);
    m = DEC3("{\"optionalForeignMessage\":{\"c\":6}}");   /* the proto name still works */
    assert_int_equal(m->optional_foreign_message->c, 6);
    es_json_options camel = {.lower_camel_output = 1};
    assert_string_equal(jt_encode_opt(&m->base, &camel), "{\"optionalForeignMessage\":{\"see\":6}}");
    assert_string_equal(jt_encode(&m->base), "{\"optional_foreign_message\":{\"c\":6}}");
}

/* ---- 64-bit integers ---- */

static void test_int64_encoded_as_strings(void **s)
{
    (void)s;
    jt_roundtrip(T3_DESC, "{\"optionalInt64\":-5,\"optionalUint64\":6,\"optionalSint64\":7,\"optionalFixed64\":8,"
                          "\"optionalSfixed64\":-9}",
                 "{\"optional_int64\":\"-5\",\"optional_uint64\":\"6\",\"optional_sint64\":\"7\","
                 "\"optional_fixed64\":\"8\",\"optional_sfixed64\":\"-9\"}");
}

static void test_int64_accepts_numbers_and_strings_exactly(void **s)
{
    (void)s;
    T3 *m = DEC3("{\"optionalInt64\":\"9223372036854775807\",\"optionalUint64\":18446744073709551615,"
                 "\"optionalSint64\":-9223372036854775808,\"optionalFixed64\":9007199254740993}");
    assert_true(m->optional_int64 == INT64_MAX);
    assert_true(m->optional_uint64 == UINT64_MAX);
    assert_true(m->optional_sint64 == INT64_MIN);
    assert_true(m->optional_fixed64 == 9007199254740993ULL);   /* 2^53 + 1: no double round trip */
    m = DEC3("{\"optionalUint64\":\"1.8446744073709551615e19\",\"optionalInt64\":\"-1e18\"}");
    assert_true(m->optional_uint64 == UINT64_MAX);
    assert_true(m->optional_int64 == -1000000000000000000LL);
}

static void test_int64_out_of_range_rejected(void **s)
{
    (void)s;
    jt_decode_fails(T3_DESC, "{\"optionalInt64\":9223372036854775808}", "optional_int64", "out of range");
    jt_decode_fails(T3_DESC, "{\"optionalInt64\":\"-9223372036854775809\"}", "optional_int64", "out of range");
    jt_decode_fails(T3_DESC, "{\"optionalUint64\":18446744073709551616}", "optional_uint64", "out of range");
    jt_decode_fails(T3_DESC, "{\"optionalUint64\":-1}", "optional_uint64", "out of range");
    jt_decode_fails(T3_DESC, "{\"optionalInt64\":1e400}", "optional_int64", "out of range");
}

/* ---- 32-bit integers ---- */

static void test_int32_accepts_numbers_strings_and_integral_exponents(void **s)
{
    (void)s;
    T3 *m = DEC3("{\"optionalInt32\":\"-7\",\"optionalUint32\":1e5,\"optionalSint32\":2.147483647e9,"
                 "\"optionalFixed32\":100000.000,\"optionalSfixed32\":-2147483648,\"optionalNestedEnum\":-0}");
    assert_int_equal(m->optional_int32, -7);
    assert_int_equal(m->optional_uint32, 100000);
    assert_int_equal(m->optional_sint32, 2147483647);
    assert_int_equal(m->optional_fixed32, 100000);
    assert_int_equal(m->optional_sfixed32, INT32_MIN);
    m = DEC3("{\"optionalUint32\":4294967295,\"optionalInt32\":\"1E2\"}");
    assert_true(m->optional_uint32 == UINT32_MAX);
    assert_int_equal(m->optional_int32, 100);
}

static void test_int32_fraction_rejected(void **s)
{
    (void)s;
    jt_decode_fails(T3_DESC, "{\"optionalInt32\":0.5}", "optional_int32", "not an integer");
    jt_decode_fails(T3_DESC, "{\"optionalInt32\":\"1.5\"}", "optional_int32", "not an integer");
    jt_decode_fails(T3_DESC, "{\"optionalUint32\":1e-1}", "optional_uint32", "not an integer");
}

static void test_int32_out_of_range_rejected(void **s)
{
    (void)s;
    jt_decode_fails(T3_DESC, "{\"optionalInt32\":2147483648}", "optional_int32", "out of range for int32");
    jt_decode_fails(T3_DESC, "{\"optionalInt32\":-2147483649}", "optional_int32", "out of range");
    jt_decode_fails(T3_DESC, "{\"optionalUint32\":4294967296}", "optional_uint32", "out of range for uint32");
    jt_decode_fails(T3_DESC, "{\"optionalUint32\":-1}", "optional_uint32", "out of range");
    jt_decode_fails(T3_DESC, "{\"optionalInt32\":1e10}", "optional_int32", "out of range");
}

static void test_int_bad_number_forms_rejected(void **s)
{
    (void)s;
    jt_decode_fails(T3_DESC, "{\"optionalInt32\":01}", "", "invalid JSON");
    jt_decode_fails(T3_DESC, "{\"optionalInt32\":+1}", "optional_int32", "invalid JSON");
    jt_decode_fails(T3_DESC, "{\"optionalInt32\":\" 1\"}", "optional_int32", "not a number");
    jt_decode_fails(T3_DESC, "{\"optionalInt32\":\"0x10\"}", "optional_int32", "not a number");
    jt_decode_fails(T3_DESC, "{\"optionalInt32\":\"\"}", "optional_int32", "not a number");
    jt_decode_fails(T3_DESC, "{\"optionalInt32\":true}", "optional_int32", "expected an integer");
    jt_decode_fails(T3_DESC, "{\"optionalInt64\":[1]}", "optional_int64", "expected an integer");
}

/* ---- float / double ---- */

static void test_float_special_values(void **s)
{
    (void)s;
    T3 *m = DEC3("{\"optionalFloat\":\"NaN\",\"optionalDouble\":\"-Infinity\",\"repeatedDouble\":[\"Infinity\"]}");
    assert_true(isnan(m->optional_float));
    assert_true(isinf(m->optional_double) && m->optional_double < 0);
    assert_true(isinf(m->repeated_double[0]) && m->repeated_double[0] > 0);
    assert_string_equal(jt_encode(&m->base),
                        "{\"optional_float\":\"NaN\",\"optional_double\":\"-Infinity\",\"repeated_double\":[\"Infinity\"]}");
    jt_decode_fails(T3_DESC, "{\"optionalDouble\":\"nan\"}", "optional_double", "not a number");
    jt_decode_fails(T3_DESC, "{\"optionalDouble\":NaN}", "optional_double", "invalid JSON");
}

static void test_float_range_checked(void **s)
{
    (void)s;
    T3 *m = DEC3("{\"optionalFloat\":3.402823e+38,\"optionalDouble\":1.7976931348623157e308}");
    assert_true(m->optional_float > 3.4e38f);
    jt_decode_fails(T3_DESC, "{\"optionalFloat\":3.502823e+38}", "optional_float", "out of range for float");
    jt_decode_fails(T3_DESC, "{\"optionalFloat\":-3.502823e+38}", "optional_float", "out of range");
    jt_decode_fails(T3_DESC, "{\"optionalDouble\":1.89769e+308}", "optional_double", "out of range for double");
    jt_decode_fails(T3_DESC, "{\"optionalDouble\":\"-1e999\"}", "optional_double", "out of range");
}

static void test_float_shortest_round_trip_output(void **s)
{
    (void)s;
    jt_roundtrip(T3_DESC, "{\"optionalFloat\":0.1,\"optionalDouble\":0.1,\"repeatedDouble\":[1e300,-2.5,5e-324,3]}",
                 "{\"optional_float\":0.1,\"optional_double\":0.1,\"repeated_double\":[1e+300,-2.5,4.94065645841247e-324,3]}");
    T3 *m = DEC3("{\"optionalFloat\":\"1.5\",\"optionalDouble\":\"-0.25e1\"}");   /* numbers as strings */
    assert_true(m->optional_float == 1.5f);
    assert_true(m->optional_double == -2.5);
    jt_decode_fails(T3_DESC, "{\"optionalFloat\":true}", "optional_float", "expected a number");
}

/* ---- bool ---- */

static void test_bool_true_false_only(void **s)
{
    (void)s;
    T3 *m = DEC3("{\"optionalBool\":true,\"repeatedBool\":[false,true]}");
    assert_true(m->optional_bool);
    assert_false(m->repeated_bool[0]);
    jt_decode_fails(T3_DESC, "{\"optionalBool\":1}", "optional_bool", "expected true or false");
    jt_decode_fails(T3_DESC, "{\"optionalBool\":\"true\"}", "optional_bool", "expected true or false");
    jt_decode_fails(T3_DESC, "{\"optionalBool\":TRUE}", "optional_bool", "invalid JSON");
}

/* ---- strings ---- */

static void test_string_escapes_and_surrogate_pairs(void **s)
{
    (void)s;
    T3 *m = DEC3("{\"optionalString\":\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\\u00e9\\ud83d\\ude00\\u4e2d\"}");
    assert_string_equal(m->optional_string, "a\"b\\c/d\b\f\n\r\t\xc3\xa9\xf0\x9f\x98\x80\xe4\xb8\xad");
    assert_string_equal(jt_encode(&m->base),
                        "{\"optional_string\":\"a\\\"b\\\\c/d\\b\\f\\n\\r\\t\xc3\xa9\xf0\x9f\x98\x80\xe4\xb8\xad\"}");
    T3 raw = PROTOBUF_TEST_MESSAGES__PROTO3__TEST_ALL_TYPES_PROTO3__INIT;
    raw.optional_string = "\x01\x1f";
    assert_string_equal(jt_encode(&raw.base), "{\"optional_string\":\"\\u0001\\u001f\"}");
}

static void test_string_lone_surrogates_rejected(void **s)
{
    (void)s;
    jt_decode_fails(T3_DESC, "{\"optionalString\":\"\\ud83d\"}", "optional_string", "surrogate");
    jt_decode_fails(T3_DESC, "{\"optionalString\":\"\\ude00x\"}", "optional_string", "surrogate");
    jt_decode_fails(T3_DESC, "{\"optionalString\":\"\\ud83d\\u0041\"}", "optional_string", "surrogate");
    jt_decode_fails(T3_DESC, "{\"optionalString\":\"\\u12G4\"}", "optional_string", "escape");
    jt_decode_fails(T3_DESC, "{\"optionalString\":\"\\x\"}", "optional_string", "escape");
}

static void test_string_invalid_utf8_rejected(void **s)
{
    (void)s;
    jt_decode_fails(T3_DESC, "{\"optionalString\":\"\xff\"}", "optional_string", "UTF-8");
    jt_decode_fails(T3_DESC, "{\"optionalString\":\"\xc0\xaf\"}", "optional_string", "UTF-8");            /* overlong */
    jt_decode_fails(T3_DESC, "{\"optionalString\":\"\xed\xa0\x80\"}", "optional_string", "UTF-8");        /* surrogate */
    jt_decode_fails(T3_DESC, "{\"optionalString\":\"\xf4\x90\x80\x80\"}", "optional_string", "UTF-8");    /* > U+10FFFF */
    jt_decode_fails(T3_DESC, "{\"optionalString\":\"\xe4\xb8\"}", "optional_string", "UTF-8");            /* truncated */
    /* the path of a syntax error is given in proto names, through repeated and nested messages */
    jt_decode_fails(T3_DESC, "{\"repeatedNestedMessage\":[{},{\"a\":\"\xff\"}]}", "repeated_nested_message[1].a", "UTF-8");
    jt_decode_fails(T3_DESC, "{\"optional_nested_message\":{\"corecursive\":{\"optionalString\":\"\xff\"}}}",
                    "optional_nested_message.corecursive.optional_string", "UTF-8");
    T3 bad = PROTOBUF_TEST_MESSAGES__PROTO3__TEST_ALL_TYPES_PROTO3__INIT;
    bad.optional_string = "\xff";
    jt_encode_fails(&bad.base, "optional_string", "UTF-8");
}

static void test_string_control_characters_and_nul_rejected(void **s)
{
    (void)s;
    jt_decode_fails(T3_DESC, "{\"optionalString\":\"a\nb\"}", "optional_string", "control character");
    jt_decode_fails(T3_DESC, "{\"optionalString\":\"a\\u0000b\"}", "optional_string", "NUL");
    jt_decode_fails(T3_DESC, "{\"optionalString\":\"abc}", "optional_string", "unterminated");
    jt_decode_fails(T3_DESC, "{\"optionalString\":5}", "optional_string", "expected a string");
}

/* ---- bytes ---- */

static void test_bytes_standard_base64_out(void **s)
{
    (void)s;
    T3 m = PROTOBUF_TEST_MESSAGES__PROTO3__TEST_ALL_TYPES_PROTO3__INIT;
    m.optional_bytes = (ProtobufCBinaryData){5, (uint8_t *)"\xfb\xff\x00" "ab"};
    assert_string_equal(jt_encode(&m.base), "{\"optional_bytes\":\"+/8AYWI=\"}");
}

static void test_bytes_standard_and_url_safe_with_or_without_padding_in(void **s)
{
    (void)s;
    const char *forms[] = {"+/8AYWI=", "-_8AYWI=", "+/8AYWI", "-_8AYWI"};
    for (size_t i = 0; i < 4; i++) {
        char json[64];
        snprintf(json, sizeof json, "{\"optionalBytes\":\"%s\"}", forms[i]);
        T3 *m = DEC3(json);
        assert_int_equal(m->optional_bytes.len, 5);
        assert_memory_equal(m->optional_bytes.data, "\xfb\xff\x00" "ab", 5);
    }
    T3 *m = DEC3("{\"optionalBytes\":\"\"}");
    assert_int_equal(m->optional_bytes.len, 0);
}

static void test_bytes_invalid_base64_rejected(void **s)
{
    (void)s;
    jt_decode_fails(T3_DESC, "{\"optionalBytes\":\"a\"}", "optional_bytes", "base64");
    jt_decode_fails(T3_DESC, "{\"optionalBytes\":\"ab!d\"}", "optional_bytes", "base64");
    jt_decode_fails(T3_DESC, "{\"optionalBytes\":\"ab=d\"}", "optional_bytes", "base64");
    jt_decode_fails(T3_DESC, "{\"optionalBytes\":\"abc==\"}", "optional_bytes", "base64");
    jt_decode_fails(T3_DESC, "{\"optionalBytes\":[1]}", "optional_bytes", "base64");
}

/* ---- enums ---- */

static void test_enum_name_out_name_or_number_in(void **s)
{
    (void)s;
    T3 *m = DEC3("{\"optionalNestedEnum\":\"BAZ\",\"optionalForeignEnum\":1,\"repeatedNestedEnum\":[\"NEG\",2]}");
    assert_int_equal(m->optional_nested_enum, 2);
    assert_int_equal(m->optional_foreign_enum, 1);
    assert_int_equal(m->repeated_nested_enum[0], -1);
    assert_string_equal(jt_encode(&m->base), "{\"optional_nested_enum\":\"BAZ\",\"optional_foreign_enum\":"
                                             "\"FOREIGN_BAR\",\"repeated_nested_enum\":[\"NEG\",\"BAZ\"]}");
    m = DEC3("{\"optionalAliasedEnum\":\"bAz\"}");   /* aliases are names too */
    assert_int_equal(m->optional_aliased_enum, 2);
}

/* allow_alias: protoc-c lists every alias in values_by_name (and one name per number in values),
 * so each name reads as the number and the value is written by its first name, as protobuf does
 * (conformance EnumFieldWithAlias*). Names are case-sensitive: "qux" and "QUX" are two aliases,
 * "Qux" is neither. */
static void test_enum_every_alias_name_accepted(void **s)
{
    (void)s;
    static const char *const names[] = {"ALIAS_BAZ", "QUX", "qux", "bAz"};
    char json[96];
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        snprintf(json, sizeof json, "{\"optionalAliasedEnum\":\"%s\"}", names[i]);
        T3 *m = DEC3(json);
        assert_int_equal(m->optional_aliased_enum, 2);
        assert_string_equal(jt_encode(&m->base), "{\"optional_aliased_enum\":\"ALIAS_BAZ\"}");
    }
    jt_roundtrip(T3_DESC, "{\"optionalAliasedEnum\":\"ALIAS_BAR\"}", "{\"optional_aliased_enum\":\"ALIAS_BAR\"}");
    jt_roundtrip(T3_DESC, "{\"optionalAliasedEnum\":2}", "{\"optional_aliased_enum\":\"ALIAS_BAZ\"}");
    jt_decode_fails(T3_DESC, "{\"optionalAliasedEnum\":\"Qux\"}", "optional_aliased_enum", "unknown value");
    jt_decode_fails(T3_DESC, "{\"optionalAliasedEnum\":\"BAZ\"}", "optional_aliased_enum", "unknown value");
    /* the URL parameter setter shares the lookup */
    T3 *m = DEC3("{}");
    assert_int_equal(es_json_set_from_string(jt_reg, &m->base, "optional_aliased_enum", "qux", &jt_arena, &jt_err), 0);
    assert_int_equal(m->optional_aliased_enum, 2);
}

static void test_enum_unknown_number_kept_and_written_as_number(void **s)
{
    (void)s;
    jt_roundtrip(T3_DESC, "{\"optionalNestedEnum\":123}", "{\"optional_nested_enum\":123}");
    jt_decode_fails(T3_DESC, "{\"optionalNestedEnum\":2147483648}", "optional_nested_enum", "out of range");
    jt_decode_fails(T3_DESC, "{\"optionalNestedEnum\":1.5}", "optional_nested_enum", "not an integer");
}

static void test_enum_unknown_name_rejected(void **s)
{
    (void)s;
    jt_decode_fails(T3_DESC, "{\"optionalNestedEnum\":\"QUUX\"}", "optional_nested_enum", "QUUX");
    jt_decode_fails(T3_DESC, "{\"optionalNestedEnum\":\"baz\"}", "optional_nested_enum", "unknown value");
    jt_decode_fails(T3_DESC, "{\"repeatedNestedEnum\":[\"FOO\",\"QUUX\"]}", "repeated_nested_enum[1]", "QUUX");
    jt_decode_fails(T3_DESC, "{\"optionalNestedEnum\":true}", "optional_nested_enum", "enum");
}

static void test_enum_unknown_name_skipped_with_ignore_unknown(void **s)
{
    (void)s;
    es_json_options ign = {.ignore_unknown = 1};
    T3 *m = (T3 *)jt_decode_opt(T3_DESC,
                                "{\"optionalNestedEnum\":\"QUUX\",\"repeatedNestedEnum\":[\"BAR\",\"QUUX\",\"BAZ\"],"
                                "\"mapStringNestedEnum\":{\"a\":\"QUUX\",\"b\":\"BAR\"}}", &ign);
    assert_int_equal(m->optional_nested_enum, 0);
    assert_int_equal(m->n_repeated_nested_enum, 2);
    assert_int_equal(m->repeated_nested_enum[1], 2);
    assert_int_equal(m->n_map_string_nested_enum, 1);
    assert_string_equal(m->map_string_nested_enum[0]->key, "b");
    T2 *p = (T2 *)jt_decode_opt(T2_DESC, "{\"optionalNestedEnum\":\"QUUX\"}", &ign);
    assert_false(p->has_optional_nested_enum);   /* skipped, not set to 0 */
}

/* ---- repeated ---- */

static void test_repeated_round_trip(void **s)
{
    (void)s;
    const char *json = "{\"repeated_int32\":[1,-2],\"repeated_uint64\":[\"3\"],\"repeated_float\":[1.5],"
                       "\"repeated_bool\":[true],\"repeated_string\":[\"x\",\"\"],\"repeated_bytes\":[\"AQ==\"],"
                       "\"repeated_nested_message\":[{\"a\":1},{}],\"repeated_foreign_enum\":[\"FOREIGN_BAZ\"]}";
    jt_roundtrip(T3_DESC, json, json);
    jt_roundtrip(T3_DESC, "{\"repeatedInt32\":[],\"repeatedString\":null}", "{}");
}

static void test_repeated_wrong_element_names_the_index(void **s)
{
    (void)s;
    jt_decode_fails(T3_DESC, "{\"repeatedInt32\":[1,\"x\"]}", "repeated_int32[1]", "not a number");
    jt_decode_fails(T3_DESC, "{\"repeatedNestedMessage\":[{\"a\":1},{\"a\":true}]}", "repeated_nested_message[1].a",
                    "expected an integer");
    jt_decode_fails(T3_DESC, "{\"repeatedInt32\":[[1]]}", "repeated_int32[0]", "expected an integer");
}

static void test_repeated_null_element_rejected(void **s)
{
    (void)s;
    jt_decode_fails(T3_DESC, "{\"repeatedInt32\":[1,null]}", "repeated_int32[1]", "null");
    jt_decode_fails(T3_DESC, "{\"repeatedNestedMessage\":[null]}", "repeated_nested_message[0]", "null");
}

static void test_repeated_not_an_array_rejected(void **s)
{
    (void)s;
    jt_decode_fails(T3_DESC, "{\"repeatedInt32\":1}", "repeated_int32", "expected an array");
    jt_decode_fails(T3_DESC, "{\"repeatedString\":{}}", "repeated_string", "expected an array");
}

/* ---- maps ---- */

static void test_map_keys_are_strings_of_every_key_type(void **s)
{
    (void)s;
    const char *json = "{\"map_int32_int32\":{\"-1\":2,\"3\":4},\"map_int64_int64\":{\"-9223372036854775808\":\"5\"},"
                       "\"map_uint32_uint32\":{\"4294967295\":1},\"map_uint64_uint64\":{\"18446744073709551615\":\"1\"},"
                       "\"map_bool_bool\":{\"true\":true,\"false\":false},\"map_string_string\":{\"k\":\"v\",\"\":\"\"},"
                       "\"map_string_bytes\":{\"b\":\"AQI=\"},\"map_string_nested_message\":{\"m\":{\"a\":1}},"
                       "\"map_string_foreign_enum\":{\"e\":\"FOREIGN_BAR\"}}";
    T3 *m = (T3 *)jt_decode(T3_DESC, json);
    assert_int_equal(m->n_map_int32_int32, 2);
    assert_int_equal(m->map_int32_int32[0]->key, -1);
    assert_int_equal(m->map_int32_int32[0]->value, 2);
    assert_true(m->map_uint64_uint64[0]->key == UINT64_MAX);
    assert_true(m->map_bool_bool[0]->key);
    assert_string_equal(jt_encode(&m->base), json);
    jt_pack_check(&m->base);
}

/* Binary input may repeat a map key (one entry per occurrence; protobuf-c keeps them all). The
 * concatenation of two encoded messages is their merge, so packing two documents back to back
 * gives a payload whose map entries repeat. */
static T3 *unpack_concat(const char *json1, const char *json2)
{
    ProtobufCMessage *a = jt_decode(T3_DESC, json1), *b = jt_decode(T3_DESC, json2);
    size_t na = protobuf_c_message_get_packed_size(a), nb = protobuf_c_message_get_packed_size(b);
    uint8_t *buf = es_arena_alloc(&jt_arena, na + nb + 1);
    protobuf_c_message_pack(a, buf);
    protobuf_c_message_pack(b, buf + na);
    T3 *m = (T3 *)protobuf_c_message_unpack(T3_DESC, &jt_arena.pb, na + nb, buf);
    assert_non_null(m);
    return m;
}

/* conformance ValidDataMap.*.DuplicateKey.JsonOutput: one member per key, the last entry's. */
static void test_map_repeated_key_written_once_last_wins(void **s)
{
    (void)s;
    T3 *m = unpack_concat("{\"mapInt32Int32\":{\"1\":0}}", "{\"mapInt32Int32\":{\"1\":1}}");
    assert_int_equal(m->n_map_int32_int32, 2);   /* protobuf-c keeps both entries */
    assert_string_equal(jt_encode(&m->base), "{\"map_int32_int32\":{\"1\":1}}");
    m = unpack_concat("{\"mapBoolBool\":{\"true\":false,\"false\":true}}", "{\"mapBoolBool\":{\"true\":true}}");
    assert_string_equal(jt_encode(&m->base), "{\"map_bool_bool\":{\"false\":true,\"true\":true}}");
    m = unpack_concat("{\"mapStringString\":{\"\":\"a\",\"k\":\"b\"},\"mapInt64Int64\":{\"-1\":\"1\"}}",
                      "{\"mapStringString\":{\"\":\"c\"},\"mapInt64Int64\":{\"-1\":\"2\",\"1\":\"3\"}}");
    assert_string_equal(jt_encode(&m->base), "{\"map_int64_int64\":{\"-1\":\"2\",\"1\":\"3\"},"
                                             "\"map_string_string\":{\"k\":\"b\",\"\":\"c\"}}");
    m = unpack_concat("{\"mapUint64Uint64\":{\"18446744073709551615\":\"1\"},\"mapStringBytes\":{\"b\":\"AQI=\"},"
                      "\"mapStringForeignEnum\":{\"e\":\"FOREIGN_BAR\"}}",
                      "{\"mapUint64Uint64\":{\"18446744073709551615\":\"0\"},\"mapStringBytes\":{\"b\":\"\"},"
                      "\"mapStringForeignEnum\":{\"e\":\"FOREIGN_FOO\"}}");
    assert_string_equal(jt_encode(&m->base), "{\"map_uint64_uint64\":{\"18446744073709551615\":\"0\"},"
                                             "\"map_string_bytes\":{\"b\":\"\"},"
                                             "\"map_string_foreign_enum\":{\"e\":\"FOREIGN_FOO\"}}");
}

/* conformance ValidDataMap.STRING.MESSAGE.MergeValue: a message value is replaced by the later
 * entry's, not merged into it. */
static void test_map_repeated_key_message_value_replaced_not_merged(void **s)
{
    (void)s;
    T3 *m = unpack_concat("{\"mapStringNestedMessage\":{\"\":{\"corecursive\":{\"optionalInt32\":1,\"repeatedInt32\":[1]}}}}",
                          "{\"mapStringNestedMessage\":{\"\":{\"corecursive\":{\"optionalInt64\":\"1\",\"repeatedInt32\":[1]}}}}");
    assert_int_equal(m->n_map_string_nested_message, 2);
    assert_string_equal(jt_encode(&m->base),
                        "{\"map_string_nested_message\":{\"\":{\"corecursive\":{\"optional_int64\":\"1\","
                        "\"repeated_int32\":[1]}}}}");
}

/* Above the pairwise-scan size the encoder finds repeats with a hash table: 40 entries over 10
 * keys give 10 members holding the last values; 1000 distinct keys all stay. */
static void test_map_repeated_key_in_a_large_map(void **s)
{
    (void)s;
    typedef ProtobufTestMessages__Proto3__TestAllTypesProto3__MapInt32Int32Entry E;
    T3 m = PROTOBUF_TEST_MESSAGES__PROTO3__TEST_ALL_TYPES_PROTO3__INIT;
    enum { N = 1000 };
    E *e = es_arena_alloc(&jt_arena, N * sizeof *e);
    E **p = es_arena_alloc(&jt_arena, N * sizeof *p);
    for (int i = 0; i < 40; i++) {
        e[i] = (E)PROTOBUF_TEST_MESSAGES__PROTO3__TEST_ALL_TYPES_PROTO3__MAP_INT32_INT32_ENTRY__INIT;
        e[i].key = i % 10;
        e[i].value = i;
        p[i] = &e[i];
    }
    m.n_map_int32_int32 = 40;
    m.map_int32_int32 = p;
    assert_string_equal(jt_encode(&m.base), "{\"map_int32_int32\":{\"0\":30,\"1\":31,\"2\":32,\"3\":33,\"4\":34,"
                                            "\"5\":35,\"6\":36,\"7\":37,\"8\":38,\"9\":39}}");
    /* the same through the pairwise scan: 12 entries over 4 keys */
    m.n_map_int32_int32 = 12;
    for (int i = 0; i < 12; i++) e[i].key = i % 4;
    assert_string_equal(jt_encode(&m.base), "{\"map_int32_int32\":{\"0\":8,\"1\":9,\"2\":10,\"3\":11}}");
    for (int i = 0; i < N; i++) {
        e[i] = (E)PROTOBUF_TEST_MESSAGES__PROTO3__TEST_ALL_TYPES_PROTO3__MAP_INT32_INT32_ENTRY__INIT;
        e[i].key = i * 1024;   /* keys that share their low bits */
        e[i].value = i;
        p[i] = &e[i];
    }
    m.n_map_int32_int32 = N;
    ProtobufCMessage *back = jt_decode(T3_DESC, jt_encode(&m.base));
    assert_int_equal(((T3 *)back)->n_map_int32_int32, N);
    /* a NULL entry is still refused, repeats or not */
    p[N - 1] = NULL;
    jt_encode_fails(&m.base, "map_int32_int32[999]", "null map entry");
}

static void test_map_bad_keys_rejected(void **s)
{
    (void)s;
    jt_decode_fails(T3_DESC, "{\"mapInt32Int32\":{\"x\":1}}", "map_int32_int32[\"x\"]", "not a number");
    jt_decode_fails(T3_DESC, "{\"mapInt32Int32\":{\"2147483648\":1}}", "map_int32_int32[\"2147483648\"]", "range");
    jt_decode_fails(T3_DESC, "{\"mapBoolBool\":{\"1\":true}}", "map_bool_bool[\"1\"]", "true or false");
    jt_decode_fails(T3_DESC, "{\"mapInt32Int32\":{\"1\":1,\"1\":2}}", "map_int32_int32.1", "duplicate key");
}

static void test_map_bad_values_rejected(void **s)
{
    (void)s;
    jt_decode_fails(T3_DESC, "{\"mapInt32Int32\":{\"1\":null}}", "map_int32_int32[\"1\"]", "null");
    jt_decode_fails(T3_DESC, "{\"mapStringString\":{\"a\":1}}", "map_string_string[\"a\"]", "expected a string");
    jt_decode_fails(T3_DESC, "{\"mapStringString\":[]}", "map_string_string", "expected an object");
}

/* ---- oneof ---- */

static void test_oneof_member_set_even_at_default(void **s)
{
    (void)s;
    T3 *m = DEC3("{\"oneofUint32\":0}");
    assert_int_equal(m->oneof_field_case, PROTOBUF_TEST_MESSAGES__PROTO3__TEST_ALL_TYPES_PROTO3__ONEOF_FIELD_ONEOF_UINT32);
    assert_string_equal(jt_encode(&m->base), "{\"oneof_uint32\":0}");
    jt_roundtrip(T3_DESC, "{\"oneofNestedMessage\":{}}", "{\"oneof_nested_message\":{}}");
    jt_roundtrip(T3_DESC, "{\"oneofNullValue\":null}", "{\"oneof_null_value\":null}");
    jt_pack_check(&m->base);
}

static void test_oneof_two_members_rejected(void **s)
{
    (void)s;
    jt_decode_fails(T3_DESC, "{\"oneofUint32\":1,\"oneofString\":\"x\"}", "oneof_string", "same oneof");
    jt_decode_fails(T3_DESC, "{\"oneofNestedMessage\":{},\"oneofBool\":false}", "oneof_bool", "same oneof");
}

static void test_oneof_null_member_does_not_count(void **s)
{
    (void)s;
    T3 *m = DEC3("{\"oneofUint32\":null,\"oneofString\":\"x\"}");
    assert_string_equal(m->oneof_string, "x");
    m = DEC3("{\"oneofString\":\"y\",\"oneofUint32\":null}");
    assert_string_equal(m->oneof_string, "y");
}

/* ---- presence, defaults, null ---- */

static void test_proto3_defaults_omitted(void **s)
{
    (void)s;
    jt_roundtrip(T3_DESC, "{\"optionalInt32\":0,\"optionalString\":\"\",\"optionalBool\":false,\"optionalBytes\":\"\","
                          "\"optionalNestedEnum\":\"FOO\",\"optionalDouble\":0}",
                 "{}");
    jt_roundtrip(T3_DESC, "{\"optionalDouble\":-0}", "{\"optional_double\":-0}");   /* -0 is not the default */
}

static void test_proto2_presence_keeps_explicit_zero(void **s)
{
    (void)s;
    T2 *m = DEC2("{\"optionalInt32\":0,\"optionalString\":\"\",\"optionalBytes\":\"\",\"optionalNestedEnum\":\"FOO\"}");
    assert_true(m->has_optional_int32);
    assert_true(m->has_optional_bytes);
    assert_true(m->has_optional_nested_enum);
    assert_string_equal(jt_encode(&m->base), "{\"optional_int32\":0,\"optional_string\":\"\",\"optional_bytes\":\"\","
                                             "\"optional_nested_enum\":\"FOO\"}");
    jt_pack_check(&m->base);
    m = DEC2("{}");
    assert_false(m->has_optional_int32);
    assert_string_equal(jt_encode(&m->base), "{}");
    jt_roundtrip(T2_DESC, "{\"data\":{\"groupInt32\":1}}", "{\"data\":{\"group_int32\":1}}");   /* a group */
}

static void test_emit_defaults_option(void **s)
{
    (void)s;
    ProtobufTestMessages__Proto3__ForeignMessage f = PROTOBUF_TEST_MESSAGES__PROTO3__FOREIGN_MESSAGE__INIT;
    es_json_options o = {.emit_defaults = 1};
    assert_string_equal(jt_encode_opt(&f.base, &o), "{\"c\":0}");
    T3 *m = DEC3("{}");
    const char *all = jt_encode_opt(&m->base, &o);
    assert_non_null(strstr(all, "\"optional_int64\":\"0\""));
    assert_non_null(strstr(all, "\"repeated_int32\":[]"));
    assert_non_null(strstr(all, "\"map_int32_int32\":{}"));
    assert_null(strstr(all, "optional_nested_message"));   /* messages keep presence */
    assert_null(strstr(all, "oneof_"));
}

static void test_null_means_unset(void **s)
{
    (void)s;
    T3 *m = DEC3("{\"optionalInt32\":null,\"optionalNestedMessage\":null,\"repeatedInt32\":null,\"mapBoolBool\":null,"
                 "\"optionalTimestamp\":null,\"optionalInt32Wrapper\":null,\"optionalString\":null}");
    assert_null(m->optional_nested_message);
    assert_null(m->optional_timestamp);
    assert_null(m->optional_int32_wrapper);
    assert_string_equal(jt_encode(&m->base), "{}");
    T2 *p = DEC2("{\"optionalInt32\":null}");
    assert_false(p->has_optional_int32);
}

/* ---- structure errors ---- */

static void test_duplicate_keys_rejected(void **s)
{
    (void)s;
    jt_decode_fails(T3_DESC, "{\"optionalInt32\":1,\"optionalInt32\":1}", "optional_int32", "duplicate key");
    /* many keys: the sorted check */
    char json[2048] = "{\"optionalStruct\":{";
    for (int i = 0; i < 40; i++) snprintf(json + strlen(json), 40, "\"k%d\":1,", i);
    strcat(json, "\"k7\":2}}");
    jt_decode_fails(T3_DESC, json, "optional_struct.k7", "duplicate key");
}

static void test_trailing_garbage_rejected(void **s)
{
    (void)s;
    jt_decode_fails(T3_DESC, "{} {}", "", "trailing");
    jt_decode_fails(T3_DESC, "{}x", "", "trailing");
    jt_decode_fails(T3_DESC, "{\"optionalInt32\":1,}", "", "invalid JSON");
    jt_decode_fails(T3_DESC, "{\"optionalInt32\" 1}", "", "':'");
    jt_decode_fails(T3_DESC, "[1 2]", "", "invalid JSON");
    T3 *m = DEC3(" \t\r\n{} \n");
    assert_non_null(m);
}

static void test_unknown_field_rejected_with_its_path(void **s)
{
    (void)s;
    jt_decode_fails(T3_DESC, "{\"noSuchField\":1}", "noSuchField", "unknown field");
    jt_decode_fails(T3_DESC, "{\"optionalNestedMessage\":{\"b\":1}}", "optional_nested_message.b",
                    "TestAllTypesProto3.NestedMessage");
}

static void test_unknown_field_ignored_with_option(void **s)
{
    (void)s;
    es_json_options ign = {.ignore_unknown = 1};
    T3 *m = (T3 *)jt_decode_opt(T3_DESC, "{\"noSuchField\":{\"deep\":[1,{}]},\"optionalInt32\":3}", &ign);
    assert_int_equal(m->optional_int32, 3);
}

static void test_wrong_types_rejected_with_path(void **s)
{
    (void)s;
    jt_decode_fails(T3_DESC, "{\"optionalNestedMessage\":1}", "optional_nested_message", "expected an object");
    jt_decode_fails(T3_DESC, "{\"recursiveMessage\":{\"optionalNestedMessage\":{\"corecursive\":{\"optionalBool\":1}}}}",
                    "recursive_message.optional_nested_message.corecursive.optional_bool", "true or false");
    jt_decode_fails(T3_DESC, "[]", "", "expected an object");
    jt_decode_fails(T3_DESC, "null", "", "expected an object");
}

static void test_bad_documents_rejected(void **s)
{
    (void)s;
    jt_decode_fails(T3_DESC, "", "", "unexpected end");
    jt_decode_fails(T3_DESC, "   ", "", "unexpected end");
    jt_decode_fails(T3_DESC, "{", "", "invalid JSON");
    jt_decode_fails(T3_DESC, "{\"a\"", "", "invalid JSON");
    jt_decode_fails(T3_DESC, "{'a':1}", "", "string key");
    jt_decode_fails(T3_DESC, "{\"optionalBool\":tru}", "optional_bool", "unexpected token");
    jt_decode_fails(T3_DESC, "{\"optionalDouble\":1.}", "optional_double", "fraction");
    jt_decode_fails(T3_DESC, "{\"optionalDouble\":1e}", "optional_double", "exponent");
    jt_decode_fails(T3_DESC, "{\"optionalDouble\":-}", "optional_double", "bad number");
    ProtobufCMessage *m = NULL;
    assert_int_equal(es_json_decode(jt_reg, T3_DESC, "{}", 1, NULL, &jt_arena, &m, &jt_err), ES_INVALID_ARGUMENT);
}

static void test_depth_limit(void **s)
{
    (void)s;
    /* 64 levels of recursive_message are fine, 65 are not (default max_depth 64) */
    char json[4096] = "";
    for (int i = 0; i < 63; i++) strcat(json, "{\"recursiveMessage\":");
    strcat(json, "{}");
    for (int i = 0; i < 63; i++) strcat(json, "}");
    DEC3(json);
    char deeper[4096] = "{\"recursiveMessage\":";
    strcat(deeper, json);
    strcat(deeper, "}");
    jt_decode_fails(T3_DESC, deeper, "recursive_message", "nesting too deep");
    es_json_options o = {.max_depth = 3};
    jt_decode_fails_opt(T3_DESC, "{\"optionalStruct\":{\"a\":[[]]}}", &o, "optional_struct", "nesting too deep");
}

static void test_deep_nesting_does_not_overflow_the_stack(void **s)
{
    (void)s;
    size_t n = 1000000;
    char *json = malloc(n + 1);
    memset(json, '[', n);
    json[n] = '\0';
    jt_decode_fails(T3_DESC, json, "[0]", "nesting too deep");
    memset(json, '{', n);
    jt_decode_fails(T3_DESC, json, "", "invalid JSON");
    free(json);
}

/* ---- arena and protobuf-c validity ---- */

static void test_decoded_message_packs_and_round_trips(void **s)
{
    (void)s;
    T3 *m = DEC3("{\"optionalInt32\":-1,\"optionalInt64\":\"-2\",\"optionalUint32\":3,\"optionalUint64\":\"4\","
                 "\"optionalSint32\":-5,\"optionalSint64\":\"-6\",\"optionalFixed32\":7,\"optionalFixed64\":\"8\","
                 "\"optionalSfixed32\":-9,\"optionalSfixed64\":\"-10\",\"optionalFloat\":1.5,\"optionalDouble\":2.5,"
                 "\"optionalBool\":true,\"optionalString\":\"s\",\"optionalBytes\":\"AQ==\","
                 "\"optionalNestedMessage\":{\"a\":1,\"corecursive\":{\"optionalInt32\":2}},"
                 "\"optionalForeignMessage\":{\"c\":3},\"optionalNestedEnum\":\"BAR\",\"repeatedInt32\":[1,2],"
                 "\"packedSint64\":[\"-1\"],\"repeatedString\":[\"a\",\"b\"],\"mapStringString\":{\"a\":\"b\"},"
                 "\"optionalTimestamp\":\"2020-01-02T03:04:05.5Z\",\"optionalDuration\":\"-1.5s\","
                 "\"optionalFieldMask\":\"a,bC\",\"optionalStruct\":{\"x\":[1,\"y\",null,true,{}]},"
                 "\"optionalAny\":{\"@type\":\"type.googleapis.com/protobuf_test_messages.proto3.ForeignMessage\",\"c\":1},"
                 "\"optionalValue\":1,\"optionalInt64Wrapper\":\"5\",\"repeatedBoolWrapper\":[true],"
                 "\"oneofString\":\"o\"}");
    jt_pack_check(&m->base);
    assert_true(protobuf_c_message_check(&m->base));
}

/* A merge into an existing message appends repeated fields and keeps what JSON does not name. */
static void test_merge_into_existing_message(void **s)
{
    (void)s;
    T3 *m = DEC3("{\"optionalInt32\":1,\"repeatedInt32\":[1],\"optionalNestedMessage\":{\"a\":5}}");
    const char *more = "{\"repeatedInt32\":[2,3],\"optionalNestedMessage\":{\"corecursive\":{}},\"optionalBool\":true}";
    assert_int_equal(es_json_merge(jt_reg, &m->base, more, strlen(more), NULL, &jt_arena, &jt_err), 0);
    assert_string_equal(jt_encode(&m->base), "{\"optional_int32\":1,\"optional_bool\":true,"
                                             "\"optional_nested_message\":{\"a\":5,\"corecursive\":{}},"
                                             "\"repeated_int32\":[1,2,3]}");
    const char *bad = "{\"optionalBool\":1}";
    assert_int_equal(es_json_merge(jt_reg, &m->base, bad, strlen(bad), NULL, &jt_arena, &jt_err), ES_INVALID_ARGUMENT);
    assert_string_equal(jt_err.field, "optional_bool");
}

/* The body of a `body: "<field>"` route goes into that field only. */
static void test_merge_field_decodes_one_field(void **s)
{
    (void)s;
    T3 *m = DEC3("{\"optionalInt32\":1}");
    const char *body = "{\"a\":7}";
    assert_int_equal(es_json_merge_field(jt_reg, &m->base, "optionalNestedMessage", body, strlen(body), NULL, &jt_arena,
                                         &jt_err), 0);
    assert_int_equal(m->optional_nested_message->a, 7);
    body = "[1,2]";
    assert_int_equal(es_json_merge_field(jt_reg, &m->base, "repeated_int32", body, strlen(body), NULL, &jt_arena,
                                         &jt_err), 0);
    assert_int_equal(m->n_repeated_int32, 2);
    /* what a hand-made {"field": <body>} wrapper would let through is a syntax error here */
    body = "{}, \"optionalInt32\": 5";
    assert_int_equal(es_json_merge_field(jt_reg, &m->base, "optional_nested_message", body, strlen(body), NULL,
                                         &jt_arena, &jt_err), ES_INVALID_ARGUMENT);
    assert_string_equal(jt_err.field, "optional_nested_message");
    assert_int_equal(m->optional_int32, 1);
    body = "{\"a\":\"x\"}";
    assert_int_equal(es_json_merge_field(jt_reg, &m->base, "optional_nested_message", body, strlen(body), NULL,
                                         &jt_arena, &jt_err), ES_INVALID_ARGUMENT);
    assert_string_equal(jt_err.field, "optional_nested_message.a");
    assert_int_equal(es_json_merge_field(jt_reg, &m->base, "nope", "1", 1, NULL, &jt_arena, &jt_err),
                     ES_INVALID_ARGUMENT);
    assert_string_equal(jt_err.field, "nope");
}

static void test_registry_and_null_registry(void **s)
{
    (void)s;
    assert_ptr_equal(es_json_registry_find(jt_reg, "protobuf_test_messages.proto3.TestAllTypesProto3"), T3_DESC);
    /* nested types come with their container */
    assert_non_null(es_json_registry_find(jt_reg, "protobuf_test_messages.proto3.TestAllTypesProto3.NestedMessage"));
    assert_non_null(es_json_registry_find(jt_reg, "google.protobuf.Duration"));
    assert_null(es_json_registry_find(jt_reg, "no.Such"));
    assert_non_null(es_json_registry_find(NULL, "google.protobuf.Timestamp"));   /* WKTs without a registry */
    es_json_registry_free(NULL);
    ProtobufCMessage *m = NULL;
    const char *json = "{\"optionalInt32\":1}";
    assert_int_equal(es_json_decode(NULL, T3_DESC, json, strlen(json), NULL, &jt_arena, &m, &jt_err), 0);
    es_buf_reset(&jt_out);
    assert_int_equal(es_json_encode(NULL, m, NULL, &jt_out, &jt_err), 0);
    assert_string_equal(jt_out.data, "{\"optional_int32\":1}");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        JT(test_names_accepts_json_and_proto_names),
        JT(test_names_lower_camel_rule_of_protoc),
        JT(test_names_encode_proto_names_by_default),
        JT(test_names_lower_camel_output_option),
        JT(test_names_same_field_under_two_names_rejected),
        JT(test_names_registry_json_name_override),
        JT(test_int64_encoded_as_strings),
        JT(test_int64_accepts_numbers_and_strings_exactly),
        JT(test_int64_out_of_range_rejected),
        JT(test_int32_accepts_numbers_strings_and_integral_exponents),
        JT(test_int32_fraction_rejected),
        JT(test_int32_out_of_range_rejected),
        JT(test_int_bad_number_forms_rejected),
        JT(test_float_special_values),
        JT(test_float_range_checked),
        JT(test_float_shortest_round_trip_output),
        JT(test_bool_true_false_only),
        JT(test_string_escapes_and_surrogate_pairs),
        JT(test_string_lone_surrogates_rejected),
        JT(test_string_invalid_utf8_rejected),
        JT(test_string_control_characters_and_nul_rejected),
        JT(test_bytes_standard_base64_out),
        JT(test_bytes_standard_and_url_safe_with_or_without_padding_in),
        JT(test_bytes_invalid_base64_rejected),
        JT(test_enum_name_out_name_or_number_in),
        JT(test_enum_every_alias_name_accepted),
        JT(test_enum_unknown_number_kept_and_written_as_number),
        JT(test_enum_unknown_name_rejected),
        JT(test_enum_unknown_name_skipped_with_ignore_unknown),
        JT(test_repeated_round_trip),
        JT(test_repeated_wrong_element_names_the_index),
        JT(test_repeated_null_element_rejected),
        JT(test_repeated_not_an_array_rejected),
        JT(test_map_keys_are_strings_of_every_key_type),
        JT(test_map_repeated_key_written_once_last_wins),
        JT(test_map_repeated_key_message_value_replaced_not_merged),
        JT(test_map_repeated_key_in_a_large_map),
        JT(test_map_bad_keys_rejected),
        JT(test_map_bad_values_rejected),
        JT(test_oneof_member_set_even_at_default),
        JT(test_oneof_two_members_rejected),
        JT(test_oneof_null_member_does_not_count),
        JT(test_proto3_defaults_omitted),
        JT(test_proto2_presence_keeps_explicit_zero),
        JT(test_emit_defaults_option),
        JT(test_null_means_unset),
        JT(test_duplicate_keys_rejected),
        JT(test_trailing_garbage_rejected),
        JT(test_unknown_field_rejected_with_its_path),
        JT(test_unknown_field_ignored_with_option),
        JT(test_wrong_types_rejected_with_path),
        JT(test_bad_documents_rejected),
        JT(test_depth_limit),
        JT(test_deep_nesting_does_not_overflow_the_stack),
        JT(test_decoded_message_packs_and_round_trips),
        JT(test_merge_into_existing_message),
        JT(test_merge_field_decodes_one_field),
        JT(test_registry_and_null_registry),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
