/* Setting one field from URL text (HTTP path variables and query parameters): the text is
 * turned into the JSON value it stands for and handed to the JSON walker, so the scalar rules
 * (ranges, enums by name or number, base64, Timestamp, wrappers) are the same as for bodies. */
#include <string.h>

#include "json_internal.h"
#include "es/utf8.h"

/* The JSON kind the text stands for when the field has type t (and message type md). */
static es__json_kind text_kind(ProtobufCType t, const ProtobufCMessageDescriptor *md, const char *text)
{
    if (t == PROTOBUF_C_TYPE_MESSAGE && es__json_wkt_of(md) == ES__WKT_WRAPPER) {
        const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(md, "value");
        if (f) t = f->type;
    }
    if (t == PROTOBUF_C_TYPE_BOOL) {
        if (!strcmp(text, "true")) return ES__JSON_TRUE;
        if (!strcmp(text, "false")) return ES__JSON_FALSE;
        return ES__JSON_STRING;   /* rejected by the walker with a clear message */
    }
    if (t == PROTOBUF_C_TYPE_ENUM && es__json_is_number(text, strlen(text))) return ES__JSON_NUMBER;
    return ES__JSON_STRING;   /* numbers are accepted as strings by the proto3 rules */
}

int es_json_set_from_string(const es_json_registry *r, ProtobufCMessage *msg, const char *path,
                            const char *value, es_arena *arena, es_error *err)
{
    es_arena scratch;
    es_arena_init(&scratch);
    es__json_dec d = {.r = r, .arena = arena, .scratch = &scratch, .err = err};
    int rc = 0;
    if (!msg || !path || !value) {
        rc = es_error_set(err, ES_INVALID_ARGUMENT, path ? path : "", "missing field path or value");
        goto out;
    }
    ProtobufCMessage *m = msg;
    const char *seg = path;
    for (;;) {
        const char *dot = strchr(seg, '.');
        size_t n = dot ? (size_t)(dot - seg) : strlen(seg);
        char *name = es_arena_strndup(&scratch, seg, n);
        const ProtobufCFieldDescriptor *f = es__json_find_field(r, m->descriptor, name, n);
        if (!f) {
            es__json_path_push_field(&d, name);
            rc = es__json_dec_fail(&d, "unknown field \"%.60s\" in %s", name, m->descriptor->name);
            goto out;
        }
        es__json_path_push_field(&d, f->name);
        if (dot) {
            /* an intermediate segment: a singular message, created when absent */
            if (f->type != PROTOBUF_C_TYPE_MESSAGE || f->label == PROTOBUF_C_LABEL_REPEATED) {
                rc = es__json_dec_fail(&d, "\"%s\" is not a singular message field", f->name);
                goto out;
            }
            ProtobufCMessage **pm = (ProtobufCMessage **)((char *)m + f->offset);
            int oneof_other = (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
                              *(uint32_t *)((char *)m + f->quantifier_offset) != f->id;
            if (!*pm || oneof_other) *pm = es__json_new_message(&d, f->descriptor);
            es__json_mark_set(m, f);
            m = *pm;
            seg = dot + 1;
            continue;
        }
        if (f->label == PROTOBUF_C_LABEL_REPEATED && es__json_is_map(m->descriptor, f)) {
            rc = es__json_dec_fail(&d, "map fields cannot be set from a URL");
            goto out;
        }
        if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
            es__json_wkt w = es__json_wkt_of(f->descriptor);
            if (w != ES__WKT_WRAPPER && w != ES__WKT_TIMESTAMP && w != ES__WKT_DURATION && w != ES__WKT_FIELD_MASK) {
                rc = es__json_dec_fail(&d, "message field \"%s\" cannot be set from a string", f->name);
                goto out;
            }
        }
        es__json_value v = {.kind = text_kind(f->type, f->descriptor, value), .str = value, .len = strlen(value)};
        if (v.kind == ES__JSON_STRING && !es_utf8_valid(value, v.len)) {
            rc = es__json_dec_fail(&d, "value is not valid UTF-8");
            goto out;
        }
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            es__json_value *items[1] = {&v};
            es__json_value arr = {.kind = ES__JSON_ARRAY, .items = items, .n = 1};
            rc = es__json_dec_field(&d, m, f, &arr);
        } else {
            rc = es__json_dec_field(&d, m, f, &v);
        }
        goto out;
    }
out:
    es_arena_free(&scratch);
    return rc;
}
