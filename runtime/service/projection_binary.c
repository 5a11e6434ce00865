/* A projection row in COPY's binary format straight from the folded state (see
 * es/projection_binary.h). Each value is what es__projector_row_text's text becomes once the
 * server (or es_pg_copy_binary_value) parses it: strings and enum names as their bytes, numbers
 * as their big-endian bits, Timestamp as microseconds from 2000-01-01 (nanoseconds truncated, as
 * the text form's six digits), jsonb as version 1 and the projector's JSON. */
#include "es/projection_binary.h"

#include <stdio.h>
#include <string.h>

#define KIND_TEXT_ENUM 100          /* internal: an enum's name (or number) as text */
#define POSTGRES_EPOCH_US INT64_C(946684800000000) /* 2000-01-01 in microseconds from 1970 */

static int is_timestamp(const ProtobufCFieldDescriptor *f)
{
    return f->type == PROTOBUF_C_TYPE_MESSAGE &&
           !strcmp(((const ProtobufCMessageDescriptor *)f->descriptor)->name, "google.protobuf.Timestamp");
}

int es_projection_binary_kind(const char *sql_type, const ProtobufCFieldDescriptor *f)
{
    if (!f || !sql_type)
        return ES_PROJECTION_BINARY_NONE;
    int repeated = f->label == PROTOBUF_C_LABEL_REPEATED;
    int ts = is_timestamp(f);
    if (!strcmp(sql_type, "jsonb"))
        return repeated || (f->type == PROTOBUF_C_TYPE_MESSAGE && !ts) ? ES_PG_COPY_JSONB : ES_PROJECTION_BINARY_NONE;
    if (repeated)
        return ES_PROJECTION_BINARY_NONE;
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING:
        return !strcmp(sql_type, "text") ? ES_PG_COPY_TEXT
               : !strcmp(sql_type, "uuid") ? ES_PG_COPY_UUID : ES_PROJECTION_BINARY_NONE;
    case PROTOBUF_C_TYPE_ENUM:
        return !strcmp(sql_type, "text") ? ES_PG_COPY_TEXT : ES_PROJECTION_BINARY_NONE;
    case PROTOBUF_C_TYPE_INT32: case PROTOBUF_C_TYPE_SINT32: case PROTOBUF_C_TYPE_SFIXED32:
        return !strcmp(sql_type, "integer") ? ES_PG_COPY_INT4
               : !strcmp(sql_type, "bigint") ? ES_PG_COPY_INT8 : ES_PROJECTION_BINARY_NONE;
    case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64: case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT32: case PROTOBUF_C_TYPE_FIXED32:
        return !strcmp(sql_type, "bigint") ? ES_PG_COPY_INT8 : ES_PROJECTION_BINARY_NONE;
    case PROTOBUF_C_TYPE_BOOL:
        return !strcmp(sql_type, "boolean") ? ES_PG_COPY_BOOL : ES_PROJECTION_BINARY_NONE;
    case PROTOBUF_C_TYPE_FLOAT:
        return !strcmp(sql_type, "real") ? ES_PG_COPY_FLOAT4 : ES_PROJECTION_BINARY_NONE;
    case PROTOBUF_C_TYPE_DOUBLE:
        return !strcmp(sql_type, "double precision") ? ES_PG_COPY_FLOAT8 : ES_PROJECTION_BINARY_NONE;
    case PROTOBUF_C_TYPE_BYTES:
        return !strcmp(sql_type, "bytea") ? ES_PG_COPY_BYTEA : ES_PROJECTION_BINARY_NONE;
    case PROTOBUF_C_TYPE_MESSAGE:
        return ts && !strcmp(sql_type, "timestamptz") ? ES_PG_COPY_TIMESTAMPTZ : ES_PROJECTION_BINARY_NONE;
    default:
        return ES_PROJECTION_BINARY_NONE;
    }
}

static const ProtobufCFieldDescriptor *column_field(const es_projection_def *def, size_t i)
{
    return protobuf_c_message_descriptor_get_field(def->descriptor, def->columns[i].field_id);
}

int es_projection_binary_supported(const es_projection_def *def)
{
    for (size_t i = 0; i < def->n_columns; i++) {
        const ProtobufCFieldDescriptor *f = column_field(def, i);
        /* A repeated scalar's JSON array is left to the text path, which has its one writer. */
        if (f && f->label == PROTOBUF_C_LABEL_REPEATED && f->type != PROTOBUF_C_TYPE_MESSAGE)
            return 0;
        if (es_projection_binary_kind(def->columns[i].sql_type, f) == ES_PROJECTION_BINARY_NONE)
            return 0;
    }
    return 1;
}

/* ---- values -------------------------------------------------------------------------------- */

static void put_be(es_buf *b, uint64_t v, int bytes)
{
    char x[8];
    for (int i = 0; i < bytes; i++)
        x[i] = (char)(v >> (8 * (bytes - 1 - i)));
    es_buf_append(b, x, (size_t)bytes);
}

static void put_bytes(es_buf *b, const void *p, size_t n)
{
    put_be(b, n, 4);
    es_buf_append(b, p, n);
}

/* An enum value as the text path writes it: its name, else its number. */
static void put_enum(es_buf *b, const ProtobufCFieldDescriptor *f, int v)
{
    const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(f->descriptor, v);
    if (ev) {
        put_bytes(b, ev->name, strlen(ev->name));
        return;
    }
    char num[16];
    int n = snprintf(num, sizeof num, "%d", v);
    put_bytes(b, num, (size_t)n);
}

static void put_timestamp(es_buf *b, const ProtobufCMessage *m)
{
    /* Timestamp: field 1 seconds (int64), field 2 nanos (int32), as protobuf-c lays them out. */
    const ProtobufCMessageDescriptor *d = m->descriptor;
    int64_t secs = *(const int64_t *)((const char *)m + d->fields[0].offset);
    int32_t nanos = *(const int32_t *)((const char *)m + d->fields[1].offset);
    put_be(b, 8, 4);
    put_be(b, (uint64_t)(secs * 1000000 + nanos / 1000 - POSTGRES_EPOCH_US), 8);
}

/* A jsonb value: the length is known only once the JSON is written, so it is patched in. */
static int put_json(es_buf *b, const es_projection_def *def, const es_json_registry *json,
                    const ProtobufCFieldDescriptor *f, const ProtobufCMessage *row, es_error *err)
{
    const char *base = (const char *)row + f->offset;
    size_t at = b->len;
    put_be(b, 0, 4);
    es_buf_putc(b, 1); /* jsonb's binary format: version 1, then the JSON text */
    es_json_options o = {0};
    int rc = ES_OK;
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
        size_t n = *(const size_t *)((const char *)row + f->quantifier_offset);
        ProtobufCMessage *const *arr = *(ProtobufCMessage *const *const *)base;
        es_buf_putc(b, '[');
        for (size_t i = 0; i < n && rc == ES_OK; i++) {
            if (i)
                es_buf_putc(b, ',');
            rc = es_json_encode(json, arr[i], &o, b, err);
        }
        es_buf_putc(b, ']');
    } else {
        rc = es_json_encode(json, *(ProtobufCMessage *const *)base, &o, b, err);
    }
    if (rc != ES_OK) {
        char why[sizeof err->message];
        snprintf(why, sizeof why, "%s", err->message);
        return es_error_set(err, rc, f->name, "projection %s: column %s: %s", def->name, f->name, why);
    }
    uint32_t n = (uint32_t)(b->len - at - 4);
    for (int i = 0; i < 4; i++)
        b->data[at + (size_t)i] = (char)(n >> (8 * (3 - i)));
    return ES_OK;
}

/* One column's value (or NULL) from the row message. */
static int put_column(es_buf *b, const es_projection_def *def, const es_json_registry *json, size_t i,
                      const ProtobufCMessage *row, es_error *err)
{
    const ProtobufCFieldDescriptor *f = column_field(def, i);
    const char *base = (const char *)row + f->offset;
    int kind = es_projection_binary_kind(def->columns[i].sql_type, f);
    switch (kind) {
    case ES_PG_COPY_JSONB:
        if (f->label != PROTOBUF_C_LABEL_REPEATED && !*(ProtobufCMessage *const *)base)
            break;
        return put_json(b, def, json, f, row, err);
    case ES_PG_COPY_TEXT:
        if (f->type == PROTOBUF_C_TYPE_ENUM) {
            put_enum(b, f, *(const int *)base);
        } else {
            const char *s = *(char *const *)base;
            put_bytes(b, s ? s : "", s ? strlen(s) : 0);
        }
        return ES_OK;
    case ES_PG_COPY_UUID: {
        const char *s = *(char *const *)base;
        if (es_pg_copy_binary_value(b, ES_PG_COPY_UUID, s ? s : "") != ES_OK)
            return es_error_set(err, ES_INVALID_ARGUMENT, f->name, "projection %s: column %s: \"%.100s\" is not a uuid",
                                def->name, def->columns[i].column, s ? s : "");
        return ES_OK;
    }
    case ES_PG_COPY_INT4:
        put_be(b, 4, 4);
        put_be(b, (uint32_t) * (const int32_t *)base, 4);
        return ES_OK;
    case ES_PG_COPY_INT8: {
        int64_t v = f->type == PROTOBUF_C_TYPE_UINT32 || f->type == PROTOBUF_C_TYPE_FIXED32 ? *(const uint32_t *)base
                    : f->type == PROTOBUF_C_TYPE_INT64 || f->type == PROTOBUF_C_TYPE_SINT64 ||
                            f->type == PROTOBUF_C_TYPE_SFIXED64 ? *(const int64_t *)base
                                                                : *(const int32_t *)base;
        put_be(b, 8, 4);
        put_be(b, (uint64_t)v, 8);
        return ES_OK;
    }
    case ES_PG_COPY_BOOL:
        put_be(b, 1, 4);
        es_buf_putc(b, *(const protobuf_c_boolean *)base ? 1 : 0);
        return ES_OK;
    case ES_PG_COPY_FLOAT4: {
        uint32_t bits;
        memcpy(&bits, base, 4);
        put_be(b, 4, 4);
        put_be(b, bits, 4);
        return ES_OK;
    }
    case ES_PG_COPY_FLOAT8: {
        uint64_t bits;
        memcpy(&bits, base, 8);
        put_be(b, 8, 4);
        put_be(b, bits, 8);
        return ES_OK;
    }
    case ES_PG_COPY_BYTEA: {
        const ProtobufCBinaryData *d = (const ProtobufCBinaryData *)base;
        put_bytes(b, d->data, d->len);
        return ES_OK;
    }
    case ES_PG_COPY_TIMESTAMPTZ: {
        const ProtobufCMessage *m = *(ProtobufCMessage *const *)base;
        if (!m)
            break;
        put_timestamp(b, m);
        return ES_OK;
    }
    default:
        return es_error_set(err, ES_INTERNAL, f->name, "projection %s: column %s has no binary encoding", def->name,
                            def->columns[i].column);
    }
    es_pg_copy_binary_null(b);
    return ES_OK;
}

int es_projection_binary_row(const es_projection_def *def, const es_json_registry *json, const ProtobufCMessage *state,
                             int64_t version, es_arena *a, es_buf *out, es_error *err)
{
    ProtobufCMessage *row = def->from_state(state, version, a);
    es_pg_copy_binary_tuple(out, (uint16_t)(def->n_columns + 1));
    for (size_t i = 0; i < def->n_columns; i++) {
        int rc = put_column(out, def, json, i, row, err);
        if (rc != ES_OK)
            return rc;
    }
    /* es_state: the state packed straight into the buffer. */
    size_t len = protobuf_c_message_get_packed_size(state);
    put_be(out, len, 4);
    es_buf_reserve(out, len);
    protobuf_c_message_pack(state, (uint8_t *)out->data + out->len);
    out->len += len;
    out->data[out->len] = 0;
    return ES_OK;
}
