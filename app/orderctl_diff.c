/* Field-by-field comparison of two protobuf-c messages: each field is moved alone into an empty
 * message of the type and the two are compared by their packed bytes, so "equal" means equal on
 * the wire (a NULL string and "" agree, as do an absent and an empty sub-message's defaults). */
#include <string.h>

#include "orderctl.h"

static size_t value_size(const ProtobufCFieldDescriptor *f)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64: case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64: case PROTOBUF_C_TYPE_FIXED64: case PROTOBUF_C_TYPE_DOUBLE:
        return 8;
    case PROTOBUF_C_TYPE_BOOL:
        return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_STRING: case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof(void *);
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof(ProtobufCBinaryData);
    default:
        return 4;   /* 32-bit integers, float, enum */
    }
}

/* Copies field f's storage (value, count or presence flag, oneof case) from src into dst, an
 * initialised message of the same type. Pointers are shared, not copied: dst is only packed. */
static void copy_field(const ProtobufCFieldDescriptor *f, ProtobufCMessage *dst, const ProtobufCMessage *src)
{
    if (!src)
        return;
    char *d = (char *)dst;
    const char *s = (const char *)src;
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
        memcpy(d + f->quantifier_offset, s + f->quantifier_offset, sizeof(size_t));
        memcpy(d + f->offset, s + f->offset, sizeof(void *));
        return;
    }
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
        uint32_t which;
        memcpy(&which, s + f->quantifier_offset, sizeof which);
        if (which != f->id)
            return;
        memcpy(d + f->quantifier_offset, &which, sizeof which);
    } else if (f->quantifier_offset) {
        memcpy(d + f->quantifier_offset, s + f->quantifier_offset, sizeof(protobuf_c_boolean));
    }
    memcpy(d + f->offset, s + f->offset, value_size(f));
}

static ProtobufCMessage *only_field(const ProtobufCMessageDescriptor *d, const ProtobufCFieldDescriptor *f,
                                    const ProtobufCMessage *src, es_arena *a)
{
    ProtobufCMessage *m = es_arena_alloc(a, d->sizeof_message);
    protobuf_c_message_init(d, m);
    copy_field(f, m, src);
    return m;
}

static uint8_t *packed(const ProtobufCMessage *m, es_arena *a, size_t *len)
{
    *len = protobuf_c_message_get_packed_size(m);
    uint8_t *p = es_arena_alloc(a, *len ? *len : 1);
    protobuf_c_message_pack(m, p);
    return p;
}

/* The proto3 JSON of field f, the one field that may be set in m. */
static const char *render(const es_json_registry *json, const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f,
                          es_arena *a)
{
    es_buf b;
    es_buf_init(&b);
    es_json_options o = {0};
    es_error err = {0};
    const char *out = "null";
    if (es_json_encode(json, m, &o, &b, &err) != ES_OK) {
        out = es_arena_sprintf(a, "<no JSON form: %s>", err.message);
    } else if (b.len > 2) {
        /* {"name":VALUE} -> VALUE; the key is a proto name, so it holds no colon. */
        const char *colon = strchr(b.data, ':');
        if (colon)
            out = es_arena_strndup(a, colon + 1, (size_t)(b.data + b.len - 1 - (colon + 1)));
    } else {
        /* At its default: written only with emit_defaults, among every other field's default.
         * Those are all "", 0, false, enum names, [] or {}, so the key is found unambiguously and
         * the value runs to the next key or the end. */
        es_json_options od = {.emit_defaults = 1};
        es_buf_reset(&b);
        char *key = es_arena_sprintf(a, "\"%s\":", f->name);
        const char *at;
        if (es_json_encode(json, m, &od, &b, &err) == ES_OK && b.data && (at = strstr(b.data, key))) {
            const char *v = at + strlen(key), *end = strstr(v, ",\"");
            out = es_arena_strndup(a, v, end ? (size_t)(end - v) : strlen(v) - 1);
        }
    }
    es_buf_free(&b);
    return out;
}

static int wanted(unsigned id, const unsigned *only, size_t n_only)
{
    if (n_only == 0)
        return 1;
    for (size_t i = 0; i < n_only; i++)
        if (only[i] == id)
            return 1;
    return 0;
}

size_t ctl_diff_fields(const es_json_registry *json, const ProtobufCMessageDescriptor *d, const ProtobufCMessage *a,
                       const ProtobufCMessage *b, const unsigned *only, size_t n_only, es_arena *arena,
                       ctl_field_diff *out, size_t max)
{
    size_t n = 0;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (!wanted(f->id, only, n_only))
            continue;
        ProtobufCMessage *ma = only_field(d, f, a, arena), *mb = only_field(d, f, b, arena);
        size_t la, lb;
        uint8_t *pa = packed(ma, arena, &la), *pb = packed(mb, arena, &lb);
        if (la == lb && memcmp(pa, pb, la) == 0)
            continue;
        if (n < max)
            out[n] = (ctl_field_diff){f->name, render(json, ma, f, arena), render(json, mb, f, arena)};
        n++;
    }
    return n;
}
