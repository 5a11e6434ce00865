/* conformance-testee: the program protobuf's conformance_test_runner drives.
 *
 * Protocol: read until EOF a 4-byte little-endian length and a serialized
 * conformance.ConformanceRequest; answer each with the same framing and a
 * conformance.ConformanceResponse on stdout. Binary goes through protobuf-c (read through
 * es_pb_unpack, es/pb_unpack.h), JSON through the runtime's codec (es/json.h). Exit 0 at EOF,
 * 1 on a broken frame (the runner treats that as a crash, which it is: the stream is out of
 * sync). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conformance/conformance.pb-c.h"
#include "es/arena.h"
#include "es/json.h"
#include "es/pb_unpack.h"
#include "google/protobuf/test_messages_proto2.pb-c.h"
#include "google/protobuf/test_messages_proto3.pb-c.h"

/* Reads exactly n bytes; 0 on success, 1 at a clean EOF before the first byte, -1 otherwise. */
static int read_full(void *p, size_t n)
{
    size_t got = fread(p, 1, n, stdin);
    if (got == n) return 0;
    return got == 0 && feof(stdin) ? 1 : -1;
}

static int write_response(const Conformance__ConformanceResponse *resp)
{
    size_t n = protobuf_c_message_get_packed_size(&resp->base);
    uint8_t *buf = es_xmalloc(n ? n : 1);
    protobuf_c_message_pack(&resp->base, buf);
    uint8_t hdr[4] = {(uint8_t)n, (uint8_t)(n >> 8), (uint8_t)(n >> 16), (uint8_t)(n >> 24)};
    int rc = fwrite(hdr, 1, 4, stdout) == 4 && fwrite(buf, 1, n, stdout) == n && fflush(stdout) == 0 ? 0 : -1;
    free(buf);
    return rc;
}

/* Fills resp for one request. Strings put into resp come from the arena. */
static void serve(const es_json_registry *reg, const Conformance__ConformanceRequest *req, es_arena *arena,
                  Conformance__ConformanceResponse *resp)
{
    ProtobufCMessage *msg = NULL, *unpacked = NULL;
    es_error err = {0};
    if (!strcmp(req->message_type, "conformance.FailureSet")) {
        resp->result_case = CONFORMANCE__CONFORMANCE_RESPONSE__RESULT_PROTOBUF_PAYLOAD;
        resp->protobuf_payload = (ProtobufCBinaryData){0, NULL};   /* no expected failures */
        return;
    }
    const ProtobufCMessageDescriptor *desc = es_json_registry_find(reg, req->message_type);
    if (!desc) {
        resp->result_case = CONFORMANCE__CONFORMANCE_RESPONSE__RESULT_RUNTIME_ERROR;
        resp->runtime_error = es_arena_sprintf(arena, "unknown message type %s", req->message_type);
        return;
    }
    es_json_options opt = {.max_depth = 100};
    switch (req->payload_case) {
    case CONFORMANCE__CONFORMANCE_REQUEST__PAYLOAD_PROTOBUF_PAYLOAD:
        /* es_pb_unpack: protobuf-c itself does not merge a singular message field read twice
         * in messages with oneofs (RepeatedScalarMessageMerge, ValidDataOneof.MESSAGE.Merge) */
        unpacked = es_pb_unpack(desc, NULL, req->protobuf_payload.len, req->protobuf_payload.data);
        if (!unpacked) {
            resp->result_case = CONFORMANCE__CONFORMANCE_RESPONSE__RESULT_PARSE_ERROR;
            resp->parse_error = "protobuf-c could not parse the payload";
            return;
        }
        msg = unpacked;
        break;
    case CONFORMANCE__CONFORMANCE_REQUEST__PAYLOAD_JSON_PAYLOAD:
        opt.ignore_unknown = req->test_category == CONFORMANCE__TEST_CATEGORY__JSON_IGNORE_UNKNOWN_PARSING_TEST;
        if (es_json_decode(reg, desc, req->json_payload, strlen(req->json_payload), &opt, arena, &msg, &err)) {
            resp->result_case = CONFORMANCE__CONFORMANCE_RESPONSE__RESULT_PARSE_ERROR;
            resp->parse_error = es_arena_sprintf(arena, "%s: %s", err.field, err.message);
            return;
        }
        break;
    default:
        resp->result_case = CONFORMANCE__CONFORMANCE_RESPONSE__RESULT_SKIPPED;
        resp->skipped = "only protobuf and JSON input are supported";
        return;
    }

    switch (req->requested_output_format) {
    case CONFORMANCE__WIRE_FORMAT__PROTOBUF: {
        size_t n = protobuf_c_message_get_packed_size(msg);
        uint8_t *buf = es_arena_alloc(arena, n ? n : 1);
        protobuf_c_message_pack(msg, buf);
        resp->result_case = CONFORMANCE__CONFORMANCE_RESPONSE__RESULT_PROTOBUF_PAYLOAD;
        resp->protobuf_payload = (ProtobufCBinaryData){n, buf};
        break;
    }
    case CONFORMANCE__WIRE_FORMAT__JSON: {
        es_buf b;
        es_buf_init(&b);
        opt.ignore_unknown = 0;
        /* The runner's validators read lowerCamelCase keys (value["optionalInt64"], the
         * FieldNameIn* tests), i.e. standard proto3 JSON output, not the project's default. */
        opt.lower_camel_output = 1;
        if (es_json_encode(reg, msg, &opt, &b, &err)) {
            resp->result_case = CONFORMANCE__CONFORMANCE_RESPONSE__RESULT_SERIALIZE_ERROR;
            resp->serialize_error = es_arena_sprintf(arena, "%s: %s", err.field, err.message);
        } else {
            resp->result_case = CONFORMANCE__CONFORMANCE_RESPONSE__RESULT_JSON_PAYLOAD;
            resp->json_payload = es_arena_strndup(arena, b.data ? b.data : "", b.len);
        }
        es_buf_free(&b);
        break;
    }
    default:
        resp->result_case = CONFORMANCE__CONFORMANCE_RESPONSE__RESULT_SKIPPED;
        resp->skipped = "only protobuf and JSON output are supported";
        break;
    }
    if (unpacked) protobuf_c_message_free_unpacked(unpacked, NULL);
}

int main(void)
{
    int rc = 0;
    es_arena arena;
    es_arena_init(&arena);
    es_json_registry *reg = es_json_registry_new();
    es_json_registry_add_message(reg, &protobuf_test_messages__proto3__test_all_types_proto3__descriptor);
    es_json_registry_add_message(reg, &protobuf_test_messages__proto2__test_all_types_proto2__descriptor);
    es_json_registry_add_message(reg, &conformance__failure_set__descriptor);
    for (;;) {
        uint8_t hdr[4];
        int r = read_full(hdr, 4);
        if (r == 1) break;
        if (r < 0) goto broken;
        uint32_t len = (uint32_t)hdr[0] | (uint32_t)hdr[1] << 8 | (uint32_t)hdr[2] << 16 | (uint32_t)hdr[3] << 24;
        uint8_t *buf = es_arena_alloc(&arena, len ? len : 1);
        if (len && read_full(buf, len)) goto broken;
        Conformance__ConformanceResponse resp = CONFORMANCE__CONFORMANCE_RESPONSE__INIT;
        Conformance__ConformanceRequest *req =
            conformance__conformance_request__unpack(&arena.pb, len, buf);
        if (!req) {
            resp.result_case = CONFORMANCE__CONFORMANCE_RESPONSE__RESULT_RUNTIME_ERROR;
            resp.runtime_error = "could not parse the ConformanceRequest";
        } else {
            serve(reg, req, &arena, &resp);
        }
        if (write_response(&resp)) goto broken;
        es_arena_reset(&arena);
    }
    goto out;
broken:
    fprintf(stderr, "conformance-testee: broken frame on stdin or stdout\n");
    rc = 1;
out:
    es_json_registry_free(reg);
    es_arena_free(&arena);
    return rc;
}
