/* libFuzzer target: the protobuf binary of every OrderService method input, as the gRPC server
 * decodes a request (protobuf_c_message_unpack into the call's arena).
 *
 * Input: one selector byte, then the message bytes.
 *   bits 0-3  method index (modulo the method count) in orders_v1_service_OrderService
 *   bit 5     encode option lower_camel_output
 *   bit 6     encode option emit_defaults
 * A decoded request is validated and encoded as JSON (what an answer or a log would do with
 * it). Encoding may fail (protobuf-c does not check UTF-8, so a string may have no JSON form),
 * but when it succeeds the JSON must decode again to a fixed point. */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const es_service_def *svc = &orders_v1_service_OrderService;
    uint8_t sel = data[0];
    const es_method_def *m = svc->methods[(sel & 0x0f) % svc->n_methods];
    es_json_options eopt = {0};
    eopt.lower_camel_output = (sel & 0x20) != 0;
    eopt.emit_defaults = (sel & 0x40) != 0;

    es_arena arena;
    es_arena_init(&arena);
    ProtobufCMessage *msg = protobuf_c_message_unpack(m->input, &arena.pb, size - 1, data + 1);
    if (msg) {
        FUZZ_CHECK(msg->descriptor == m->input);
        fuzz_validate(m, msg);
        fuzz_json_roundtrip(msg, &eopt, 0);
    }
    es_arena_free(&arena);
    return 0;
}
