/* libFuzzer target: the proto3 JSON decoder on the input of every OrderService method, as the
 * HTTP server uses it for a request body.
 *
 * Input: one selector byte, then the JSON text.
 *   bits 0-3  the message type: below the method count, that method's input in
 *             orders_v1_service_OrderService; above it, one of the well-known types with their
 *             own JSON forms (Struct, Value, Any, Duration, FieldMask), which no orders input
 *             uses today but the same codec serves
 *   bit 4     decode option ignore_unknown
 *   bit 5     encode option lower_camel_output
 *   bit 6     encode option emit_defaults
 *   bit 7     es_json_merge into a fresh message instead of es_json_decode
 * A decoded message is validated (es_method_def.validate) and must encode, and re-decode to a
 * fixed point (fuzz_common.h). The decoder's error contract is checked on every failure. */
#include "fuzz_common.h"
#include "google/protobuf/any.pb-c.h"
#include "google/protobuf/duration.pb-c.h"
#include "google/protobuf/field_mask.pb-c.h"
#include "google/protobuf/struct.pb-c.h"

static const ProtobufCMessageDescriptor *const wkt[] = {
    &google__protobuf__struct__descriptor, &google__protobuf__value__descriptor, &google__protobuf__any__descriptor,
    &google__protobuf__duration__descriptor, &google__protobuf__field_mask__descriptor,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const es_service_def *svc = &orders_v1_service_OrderService;
    uint8_t sel = data[0];
    size_t idx = sel & 0x0f;
    const es_method_def *m = idx < svc->n_methods ? svc->methods[idx] : NULL;
    const ProtobufCMessageDescriptor *d = m ? m->input : wkt[(idx - svc->n_methods) % (sizeof wkt / sizeof *wkt)];
    es_json_options dopt = {0}, eopt = {0};
    dopt.ignore_unknown = (sel & 0x10) != 0;
    eopt.lower_camel_output = (sel & 0x20) != 0;
    eopt.emit_defaults = (sel & 0x40) != 0;
    /* A copy of exactly the JSON bytes, so a read past the end hits ASan's redzone. */
    size_t len = size - 1;
    char *json = malloc(len ? len : 1);
    memcpy(json, data + 1, len);

    es_arena arena;
    es_arena_init(&arena);
    es_error err = {0};
    ProtobufCMessage *msg = NULL;
    int rc;
    if (sel & 0x80) {
        msg = fuzz_message_new(d, &arena);
        rc = es_json_merge(fuzz_registry(), msg, json, len, &dopt, &arena, &err);
    } else {
        rc = es_json_decode(fuzz_registry(), d, json, len, &dopt, &arena, &msg, &err);
        FUZZ_CHECK(rc == ES_OK ? msg != NULL : msg == NULL);
    }
    FUZZ_CHECK(rc == ES_OK || rc == ES_INVALID_ARGUMENT);
    if (rc != ES_OK) {
        fuzz_check_error(&err, rc);
        goto out;
    }
    FUZZ_CHECK(msg->descriptor == d);
    if (m)
        fuzz_validate(m, msg);
    fuzz_json_roundtrip(msg, &eopt, 1);
out:
    es_arena_free(&arena);
    free(json);
    return 0;
}
