/* Drives conformance-testee (argv[1]) as protobuf's runner would: length-framed
 * ConformanceRequests on its stdin, ConformanceResponses read back from its stdout. Covers the
 * FailureSet handshake, one JSON and one binary request, the error answers (parse_error,
 * serialize_error, skipped), the ignore-unknown category and a clean exit at EOF. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "conformance/conformance.pb-c.h"
#include "google/protobuf/test_messages_proto3.pb-c.h"

static const char *testee_path;

typedef struct child {
    pid_t pid;
    FILE *in, *out;   /* in: we write requests; out: we read responses */
} child;

static void start(child *c)
{
    int to[2], from[2];
    assert_int_equal(pipe(to), 0);
    assert_int_equal(pipe(from), 0);
    c->pid = fork();
    assert_true(c->pid >= 0);
    if (c->pid == 0) {
        dup2(to[0], 0);
        dup2(from[1], 1);
        close(to[0]); close(to[1]); close(from[0]); close(from[1]);
        execl(testee_path, testee_path, (char *)NULL);
        _exit(127);
    }
    close(to[0]);
    close(from[1]);
    c->in = fdopen(to[1], "w");
    c->out = fdopen(from[0], "r");
    assert_non_null(c->in);
    assert_non_null(c->out);
}

static int finish(child *c)
{
    int status = 0;
    fclose(c->in);
    fclose(c->out);
    assert_int_equal(waitpid(c->pid, &status, 0), c->pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* Sends one request and returns its response (free with ..._free_unpacked). */
static Conformance__ConformanceResponse *roundtrip(child *c, const Conformance__ConformanceRequest *req)
{
    size_t n = conformance__conformance_request__get_packed_size(req);
    uint8_t *buf = malloc(n + 4);
    buf[0] = (uint8_t)n; buf[1] = (uint8_t)(n >> 8); buf[2] = (uint8_t)(n >> 16); buf[3] = (uint8_t)(n >> 24);
    conformance__conformance_request__pack(req, buf + 4);
    assert_int_equal(fwrite(buf, 1, n + 4, c->in), n + 4);
    assert_int_equal(fflush(c->in), 0);
    free(buf);
    uint8_t hdr[4];
    assert_int_equal(fread(hdr, 1, 4, c->out), 4);
    size_t len = (size_t)hdr[0] | (size_t)hdr[1] << 8 | (size_t)hdr[2] << 16 | (size_t)hdr[3] << 24;
    uint8_t *body = malloc(len ? len : 1);
    assert_int_equal(fread(body, 1, len, c->out), len);
    Conformance__ConformanceResponse *resp = conformance__conformance_response__unpack(NULL, len, body);
    free(body);
    assert_non_null(resp);
    return resp;
}

static Conformance__ConformanceRequest json_request(const char *type, const char *json, int out_format,
                                                    int category)
{
    Conformance__ConformanceRequest r = CONFORMANCE__CONFORMANCE_REQUEST__INIT;
    r.message_type = (char *)type;
    r.payload_case = CONFORMANCE__CONFORMANCE_REQUEST__PAYLOAD_JSON_PAYLOAD;
    r.json_payload = (char *)json;
    r.requested_output_format = out_format;
    r.test_category = category;
    return r;
}

#define P3 "protobuf_test_messages.proto3.TestAllTypesProto3"

static void test_failure_set_then_json_and_binary(void **state)
{
    (void)state;
    child c;
    start(&c);

    /* 1. the runner's first request: an empty FailureSet back */
    Conformance__ConformanceRequest fs = CONFORMANCE__CONFORMANCE_REQUEST__INIT;
    fs.message_type = "conformance.FailureSet";
    fs.payload_case = CONFORMANCE__CONFORMANCE_REQUEST__PAYLOAD_PROTOBUF_PAYLOAD;
    fs.requested_output_format = CONFORMANCE__WIRE_FORMAT__PROTOBUF;
    Conformance__ConformanceResponse *r = roundtrip(&c, &fs);
    assert_int_equal(r->result_case, CONFORMANCE__CONFORMANCE_RESPONSE__RESULT_PROTOBUF_PAYLOAD);
    assert_int_equal(r->protobuf_payload.len, 0);
    conformance__conformance_response__free_unpacked(r, NULL);

    /* 2. JSON in, JSON out: both names accepted, lowerCamelCase and int64 strings out */
    Conformance__ConformanceRequest jr = json_request(P3, "{\"optionalInt32\": 5, \"optional_int64\": 9}",
                                                      CONFORMANCE__WIRE_FORMAT__JSON,
                                                      CONFORMANCE__TEST_CATEGORY__JSON_TEST);
    r = roundtrip(&c, &jr);
    assert_int_equal(r->result_case, CONFORMANCE__CONFORMANCE_RESPONSE__RESULT_JSON_PAYLOAD);
    assert_string_equal(r->json_payload, "{\"optionalInt32\":5,\"optionalInt64\":\"9\"}");
    conformance__conformance_response__free_unpacked(r, NULL);

    /* 3. binary in, binary out and JSON out */
    ProtobufTestMessages__Proto3__TestAllTypesProto3 m = PROTOBUF_TEST_MESSAGES__PROTO3__TEST_ALL_TYPES_PROTO3__INIT;
    m.optional_int32 = 7;
    m.optional_string = "héllo";
    size_t n = protobuf_c_message_get_packed_size(&m.base);
    uint8_t *bin = malloc(n);
    protobuf_c_message_pack(&m.base, bin);
    Conformance__ConformanceRequest br = CONFORMANCE__CONFORMANCE_REQUEST__INIT;
    br.message_type = P3;
    br.payload_case = CONFORMANCE__CONFORMANCE_REQUEST__PAYLOAD_PROTOBUF_PAYLOAD;
    br.protobuf_payload = (ProtobufCBinaryData){n, bin};
    br.requested_output_format = CONFORMANCE__WIRE_FORMAT__PROTOBUF;
    r = roundtrip(&c, &br);
    assert_int_equal(r->result_case, CONFORMANCE__CONFORMANCE_RESPONSE__RESULT_PROTOBUF_PAYLOAD);
    assert_int_equal(r->protobuf_payload.len, n);
    assert_memory_equal(r->protobuf_payload.data, bin, n);
    conformance__conformance_response__free_unpacked(r, NULL);
    br.requested_output_format = CONFORMANCE__WIRE_FORMAT__JSON;
    r = roundtrip(&c, &br);
    assert_int_equal(r->result_case, CONFORMANCE__CONFORMANCE_RESPONSE__RESULT_JSON_PAYLOAD);
    assert_string_equal(r->json_payload, "{\"optionalInt32\":7,\"optionalString\":\"héllo\"}");
    conformance__conformance_response__free_unpacked(r, NULL);
    free(bin);

    assert_int_equal(finish(&c), 0);
}

static void test_error_answers(void **state)
{
    (void)state;
    child c;
    start(&c);

    /* trailing garbage: parse_error */
    Conformance__ConformanceRequest jr = json_request(P3, "{} x", CONFORMANCE__WIRE_FORMAT__JSON,
                                                      CONFORMANCE__TEST_CATEGORY__JSON_TEST);
    Conformance__ConformanceResponse *r = roundtrip(&c, &jr);
    assert_int_equal(r->result_case, CONFORMANCE__CONFORMANCE_RESPONSE__RESULT_PARSE_ERROR);
    assert_non_null(strstr(r->parse_error, "trailing"));
    conformance__conformance_response__free_unpacked(r, NULL);

    /* unknown field: rejected in JSON_TEST, ignored in JSON_IGNORE_UNKNOWN_PARSING_TEST */
    jr = json_request(P3, "{\"noSuchField\": 1, \"optionalBool\": true}", CONFORMANCE__WIRE_FORMAT__JSON,
                      CONFORMANCE__TEST_CATEGORY__JSON_TEST);
    r = roundtrip(&c, &jr);
    assert_int_equal(r->result_case, CONFORMANCE__CONFORMANCE_RESPONSE__RESULT_PARSE_ERROR);
    assert_non_null(strstr(r->parse_error, "noSuchField"));
    conformance__conformance_response__free_unpacked(r, NULL);
    jr.test_category = CONFORMANCE__TEST_CATEGORY__JSON_IGNORE_UNKNOWN_PARSING_TEST;
    r = roundtrip(&c, &jr);
    assert_int_equal(r->result_case, CONFORMANCE__CONFORMANCE_RESPONSE__RESULT_JSON_PAYLOAD);
    assert_string_equal(r->json_payload, "{\"optionalBool\":true}");
    conformance__conformance_response__free_unpacked(r, NULL);

    /* a Duration JSON cannot carry: serialize_error */
    Google__Protobuf__Duration d = GOOGLE__PROTOBUF__DURATION__INIT;
    d.seconds = 315576000001LL;
    ProtobufTestMessages__Proto3__TestAllTypesProto3 m = PROTOBUF_TEST_MESSAGES__PROTO3__TEST_ALL_TYPES_PROTO3__INIT;
    m.optional_duration = &d;
    size_t n = protobuf_c_message_get_packed_size(&m.base);
    uint8_t *bin = malloc(n);
    protobuf_c_message_pack(&m.base, bin);
    Conformance__ConformanceRequest br = CONFORMANCE__CONFORMANCE_REQUEST__INIT;
    br.message_type = P3;
    br.payload_case = CONFORMANCE__CONFORMANCE_REQUEST__PAYLOAD_PROTOBUF_PAYLOAD;
    br.protobuf_payload = (ProtobufCBinaryData){n, bin};
    br.requested_output_format = CONFORMANCE__WIRE_FORMAT__JSON;
    r = roundtrip(&c, &br);
    assert_int_equal(r->result_case, CONFORMANCE__CONFORMANCE_RESPONSE__RESULT_SERIALIZE_ERROR);
    assert_non_null(strstr(r->serialize_error, "optional_duration"));   /* paths use proto names */
    conformance__conformance_response__free_unpacked(r, NULL);

    /* broken binary: parse_error */
    br.protobuf_payload = (ProtobufCBinaryData){3, (uint8_t *)"\x0a\x05x"};
    br.requested_output_format = CONFORMANCE__WIRE_FORMAT__PROTOBUF;
    r = roundtrip(&c, &br);
    assert_int_equal(r->result_case, CONFORMANCE__CONFORMANCE_RESPONSE__RESULT_PARSE_ERROR);
    conformance__conformance_response__free_unpacked(r, NULL);
    free(bin);

    /* text format output: skipped */
    jr = json_request(P3, "{}", CONFORMANCE__WIRE_FORMAT__TEXT_FORMAT, CONFORMANCE__TEST_CATEGORY__JSON_TEST);
    r = roundtrip(&c, &jr);
    assert_int_equal(r->result_case, CONFORMANCE__CONFORMANCE_RESPONSE__RESULT_SKIPPED);
    conformance__conformance_response__free_unpacked(r, NULL);

    /* proto2 message type, JSON to binary */
    jr = json_request("protobuf_test_messages.proto2.TestAllTypesProto2", "{\"optionalInt32\": 0}",
                      CONFORMANCE__WIRE_FORMAT__PROTOBUF, CONFORMANCE__TEST_CATEGORY__JSON_TEST);
    r = roundtrip(&c, &jr);
    assert_int_equal(r->result_case, CONFORMANCE__CONFORMANCE_RESPONSE__RESULT_PROTOBUF_PAYLOAD);
    assert_int_equal(r->protobuf_payload.len, 2);   /* proto2 presence: field 1 = 0 is written */
    assert_memory_equal(r->protobuf_payload.data, "\x08\x00", 2);
    conformance__conformance_response__free_unpacked(r, NULL);

    assert_int_equal(finish(&c), 0);
}

static void test_truncated_frame_exits_nonzero_without_crash(void **state)
{
    (void)state;
    child c;
    start(&c);
    assert_int_equal(fwrite("\x10\x00\x00\x00\x0a", 1, 5, c.in), 5);   /* promises 16 bytes, sends 1 */
    assert_int_equal(finish(&c), 1);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s PATH-TO-conformance-testee\n", argv[0]);
        return 2;
    }
    testee_path = argv[1];
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_failure_set_then_json_and_binary),
        cmocka_unit_test(test_error_answers),
        cmocka_unit_test(test_truncated_frame_exits_nonzero_without_crash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
