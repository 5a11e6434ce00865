/* A bounded, deterministic mutation fuzz of the decoder (it faces the network): valid documents
 * are mutated (byte flips, inserts, deletions, splices of JSON fragments) and decoded. Every
 * outcome must be OK or INVALID_ARGUMENT, and every accepted message must encode, decode again
 * and encode to the same text (encode . decode is a fixed point). Run under ASan in CI, this is
 * also the memory-safety check. A longer run: JSON_FUZZ_ITERATIONS=1000000. */
#include "json_test.h"

static const char *corpus[] = {
    "{\"optionalInt32\":1,\"optionalString\":\"h\\u00e9\",\"repeatedInt64\":[\"1\",2],\"mapStringString\":{\"a\":\"b\"}}",
    "{\"optionalNestedMessage\":{\"a\":1,\"corecursive\":{\"optionalBool\":true}},\"oneofUint32\":5}",
    "{\"optionalTimestamp\":\"2020-01-01T00:00:00.5Z\",\"optionalDuration\":\"-1.5s\",\"optionalFieldMask\":\"aB,c\"}",
    "{\"optionalStruct\":{\"a\":[1,null,{\"b\":\"c\"}],\"d\":false},\"optionalValue\":[1,\"x\"],\"repeatedValue\":[null]}",
    "{\"optionalAny\":{\"@type\":\"type.googleapis.com/google.protobuf.Duration\",\"value\":\"1s\"}}",
    "{\"optionalAny\":{\"@type\":\"type.googleapis.com/protobuf_test_messages.proto3.TestAllTypesProto3\",\"optionalInt32\":1}}",
    "{\"optionalBytes\":\"AQID\",\"optionalFloat\":\"NaN\",\"optionalDouble\":1e10,\"optionalUint64\":\"18446744073709551615\"}",
    "{\"mapInt32Int32\":{\"-1\":2},\"mapBoolBool\":{\"true\":false},\"optionalInt64Wrapper\":\"5\",\"optionalNestedEnum\":\"BAR\"}",
    "{\"repeatedNestedMessage\":[{\"a\":1},{}],\"repeatedTimestamp\":[\"1970-01-01T00:00:00Z\"],\"FieldName18\":3}",
};
static const char *fragments[] = {
    "{", "}", "[", "]", "\"", ":", ",", "null", "true", "1e999", "-0", "\\u", "\\ud800", "\xff", "\xc3", "\"@type\"",
    "18446744073709551616", "0.5", "\"NaN\"", "{\"a\":", "[[[[", "\"value\"", "\\", "\x00", " ",
};

static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static size_t mutate(const char *src, char *dst, size_t cap)
{
    size_t n = strlen(src);
    memcpy(dst, src, n);
    int rounds = 1 + (int)(next() % 4);
    for (int r = 0; r < rounds; r++) {
        size_t pos = n ? next() % n : 0;
        switch (next() % 4) {
        case 0:   /* flip a byte */
            if (n) dst[pos] = (char)next();
            break;
        case 1:   /* delete a run */
            if (n) {
                size_t k = 1 + next() % 8;
                if (pos + k > n) k = n - pos;
                memmove(dst + pos, dst + pos + k, n - pos - k);
                n -= k;
            }
            break;
        default: {   /* insert a fragment (the "\x00" one inserts a real NUL) */
            const char *f = fragments[next() % (sizeof fragments / sizeof *fragments)];
            size_t k = *f ? strlen(f) : 1;
            if (n + k >= cap) break;
            memmove(dst + pos + k, dst + pos, n - pos);
            memcpy(dst + pos, f, k);
            n += k;
        }
        }
    }
    return n;
}

static void check_one(const ProtobufCMessageDescriptor *d, const char *buf, size_t n, const es_json_options *opt)
{
    ProtobufCMessage *m = NULL;
    es_error err;
    int rc = es_json_decode(jt_reg, d, buf, n, opt, &jt_arena, &m, &err);
    if (rc != 0 && rc != ES_INVALID_ARGUMENT) fail_msg("decode returned %d for %.*s", rc, (int)n, buf);
    if (rc) {
        assert_null(m);
        assert_true(err.message[0] != '\0');
        return;
    }
    es_buf a, b;
    es_buf_init(&a);
    es_buf_init(&b);
    rc = es_json_encode(jt_reg, m, NULL, &a, &err);
    if (rc == 0) {
        ProtobufCMessage *again = NULL;
        if (es_json_decode(jt_reg, d, a.data, a.len, NULL, &jt_arena, &again, &err))
            fail_msg("re-decode of our own output failed: %s (%s: %s)", a.data, err.field, err.message);
        assert_int_equal(es_json_encode(jt_reg, again, NULL, &b, &err), 0);
        if (a.len != b.len || memcmp(a.data, b.data, a.len)) fail_msg("not a fixed point:\n%s\n%s", a.data, b.data);
        size_t pn = protobuf_c_message_get_packed_size(m);
        uint8_t *pb = malloc(pn ? pn : 1);
        assert_int_equal(protobuf_c_message_pack(m, pb), pn);
        free(pb);
    } else {
        assert_int_equal(rc, ES_INVALID_ARGUMENT);   /* e.g. a Timestamp that is valid JSON but out of range */
    }
    es_buf_free(&a);
    es_buf_free(&b);
}

static void test_fuzz_decoder_never_crashes_and_round_trips(void **s)
{
    (void)s;
    const char *env = getenv("JSON_FUZZ_ITERATIONS");
    long iterations = env ? atol(env) : 30000;
    char buf[4096];
    es_json_options ign = {.ignore_unknown = 1};
    for (long i = 0; i < iterations; i++) {
        const char *src = corpus[next() % (sizeof corpus / sizeof *corpus)];
        size_t n = mutate(src, buf, sizeof buf);
        check_one(T3_DESC, buf, n, (i & 1) ? &ign : NULL);
        if (i % 7 == 0) check_one(T2_DESC, buf, n, NULL);
        if (i % 256 == 255) es_arena_reset(&jt_arena);
    }
}

/* Random protobuf bytes that protobuf-c accepts must encode to JSON or fail cleanly. */
static void test_fuzz_encoder_on_random_binary(void **s)
{
    (void)s;
    uint8_t buf[256];
    int parsed = 0;
    for (int i = 0; i < 20000; i++) {
        size_t n = next() % sizeof buf;
        for (size_t k = 0; k < n; k++) buf[k] = (uint8_t)next();
        /* a valid-looking start: field 1 varint, or a length-delimited field */
        if (n > 2 && (i & 1)) buf[0] = 0x08;
        ProtobufCMessage *m = protobuf_c_message_unpack(T3_DESC, NULL, n, buf);
        if (!m) continue;
        parsed++;
        es_buf out;
        es_buf_init(&out);
        es_error err;
        int rc = es_json_encode(jt_reg, m, NULL, &out, &err);
        assert_true(rc == 0 || rc == ES_INVALID_ARGUMENT);
        es_buf_free(&out);
        protobuf_c_message_free_unpacked(m, NULL);
    }
    assert_true(parsed > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        JT(test_fuzz_decoder_never_crashes_and_round_trips),
        JT(test_fuzz_encoder_on_random_binary),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
