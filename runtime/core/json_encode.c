/* protobuf-c message -> proto3 JSON, compact (no whitespace). Fields are written in field
 * number order; presence follows protobuf-c's storage (has_ flags, oneof case, NULL pointers)
 * and proto3's rule that singular fields at their default are left out. */
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_internal.h"

int es__json_enc_fail(es__json_enc *e, const char *fmt, ...)
{
    if (e->err) {
        e->err->code = ES_INVALID_ARGUMENT;
        es__json_copy_path(e->err->field, sizeof e->err->field, e->path);
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->err->message, sizeof e->err->message, fmt, ap);
        va_end(ap);
    }
    return ES_INVALID_ARGUMENT;
}

/* Appends ".name" (or "name" at the start) to the error path; returns the old length. */
static size_t push_name(es__json_enc *e, const char *name)
{
    size_t old = e->plen;
    if (e->plen < sizeof e->path - 1) {
        int k = snprintf(e->path + e->plen, sizeof e->path - e->plen, "%s%s", e->plen ? "." : "", name);
        e->plen += k > 0 ? (size_t)k : 0;
        if (e->plen >= sizeof e->path) e->plen = sizeof e->path - 1;
    }
    return old;
}

/* Appends "[idx]" to the error path; returns the old length. */
static size_t push_index(es__json_enc *e, size_t idx)
{
    size_t old = e->plen;
    if (e->plen < sizeof e->path - 1) {
        int k = snprintf(e->path + e->plen, sizeof e->path - e->plen, "[%zu]", idx);
        e->plen += k > 0 ? (size_t)k : 0;
        if (e->plen >= sizeof e->path) e->plen = sizeof e->path - 1;
    }
    return old;
}

static void pop(es__json_enc *e, size_t old)
{
    e->plen = old;
    e->path[old] = '\0';
}

int es__json_field_present(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
    const char *base = (const char *)m;
    const void *p = base + f->offset;
    if (f->label == PROTOBUF_C_LABEL_REPEATED) return *(const size_t *)(base + f->quantifier_offset) > 0;
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) return *(const uint32_t *)(base + f->quantifier_offset) == f->id;
    if (f->type == PROTOBUF_C_TYPE_MESSAGE) return *(const void *const *)p != NULL;
    if (f->label == PROTOBUF_C_LABEL_REQUIRED) return 1;
    if (f->label == PROTOBUF_C_LABEL_OPTIONAL) {
        /* as protobuf-c's packer: a string still pointing at its default is unset */
        if (f->type == PROTOBUF_C_TYPE_STRING)
            return *(const char *const *)p != NULL && *(const void *const *)p != f->default_value;
        return *(const protobuf_c_boolean *)(base + f->quantifier_offset);
    }
    /* proto3 implicit presence: present when not the zero value */
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(const char *const *)p;
        return s && *s;
    }
    case PROTOBUF_C_TYPE_BYTES: return ((const ProtobufCBinaryData *)p)->len > 0;
    case PROTOBUF_C_TYPE_FLOAT: {
        float x = *(const float *)p;
        return x != 0 || signbit(x);
    }
    case PROTOBUF_C_TYPE_DOUBLE: {
        double x = *(const double *)p;
        return x != 0 || signbit(x);
    }
    default: {
        size_t n = es__json_elem_size(f->type);
        return n == 8 ? *(const uint64_t *)p != 0 : *(const uint32_t *)p != 0;
    }
    }
}

static int put_floating(es__json_enc *e, double x, int is_float)
{
    if (isnan(x)) es_buf_puts(e->out, "\"NaN\"");
    else if (isinf(x)) es_buf_puts(e->out, x > 0 ? "\"Infinity\"" : "\"-Infinity\"");
    else if (is_float) es__json_put_float(e->out, (float)x);
    else es__json_put_double(e->out, x);
    return 0;
}

static void put_enum(es__json_enc *e, const ProtobufCEnumDescriptor *ed, int32_t v)
{
    const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(ed, v);
    if (!strcmp(ed->name, "google.protobuf.NullValue")) es_buf_puts(e->out, "null");
    else if (ev) es__json_put_string(e->out, ev->name, strlen(ev->name));
    else es_buf_printf(e->out, "%d", (int)v);
}

int es__json_enc_single(es__json_enc *e, const ProtobufCFieldDescriptor *f, const void *p)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32: es_buf_printf(e->out, "%d", (int)*(const int32_t *)p); return 0;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32: es_buf_printf(e->out, "%u", (unsigned)*(const uint32_t *)p); return 0;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        es_buf_printf(e->out, "\"%lld\"", (long long)*(const int64_t *)p);
        return 0;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        es_buf_printf(e->out, "\"%llu\"", (unsigned long long)*(const uint64_t *)p);
        return 0;
    case PROTOBUF_C_TYPE_FLOAT: return put_floating(e, *(const float *)p, 1);
    case PROTOBUF_C_TYPE_DOUBLE: return put_floating(e, *(const double *)p, 0);
    case PROTOBUF_C_TYPE_BOOL: es_buf_puts(e->out, *(const protobuf_c_boolean *)p ? "true" : "false"); return 0;
    case PROTOBUF_C_TYPE_ENUM: put_enum(e, f->descriptor, *(const int32_t *)p); return 0;
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(const char *const *)p;
        if (!s) s = "";
        if (es__json_put_string(e->out, s, strlen(s)) < 0)
            return es__json_enc_fail(e, "string is not valid UTF-8");
        return 0;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        const ProtobufCBinaryData *b = p;
        es__json_put_base64(e->out, b->data, b->len);
        return 0;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *sub = *(const ProtobufCMessage *const *)p;
        if (!sub) {
            es_buf_puts(e->out, "{}");
            return 0;
        }
        return es__json_enc_message(e, sub);
    }
    }
    return es__json_enc_fail(e, "unsupported field type");
}

/* A map key is always a JSON string: integers and bools are quoted. */
static int put_map_key(es__json_enc *e, const ProtobufCFieldDescriptor *kf, const void *p)
{
    switch (kf->type) {
    case PROTOBUF_C_TYPE_STRING: return es__json_enc_single(e, kf, p);
    case PROTOBUF_C_TYPE_BOOL: es_buf_puts(e->out, *(const protobuf_c_boolean *)p ? "\"true\"" : "\"false\""); return 0;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64: return es__json_enc_single(e, kf, p);   /* already quoted */
    default:
        es_buf_putc(e->out, '"');
        es__json_enc_single(e, kf, p);
        es_buf_putc(e->out, '"');
        return 0;
    }
}

/* Map keys are strings, bools or integers (protoc allows nothing else); a NULL string is "". */
static int map_key_equal(ProtobufCType t, const void *a, const void *b)
{
    if (t == PROTOBUF_C_TYPE_STRING) {
        const char *x = *(const char *const *)a, *y = *(const char *const *)b;
        return !strcmp(x ? x : "", y ? y : "");
    }
    if (t == PROTOBUF_C_TYPE_BOOL) return !*(const protobuf_c_boolean *)a == !*(const protobuf_c_boolean *)b;
    return !memcmp(a, b, es__json_elem_size(t));
}

static uint64_t map_key_hash(ProtobufCType t, const void *p)
{
    const unsigned char *s;
    size_t n;
    if (t == PROTOBUF_C_TYPE_STRING) {
        s = *(const unsigned char *const *)p;
        n = s ? strlen((const char *)s) : 0;
    } else if (t == PROTOBUF_C_TYPE_BOOL) {
        return *(const protobuf_c_boolean *)p != 0;
    } else {
        s = p;
        n = es__json_elem_size(t);
    }
    uint64_t h = 1469598103934665603ULL;   /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 1099511628211ULL;
    return h;
}

/* Below this many entries a pairwise scan is cheaper than building a hash table. */
#define MAP_PAIRWISE_MAX 16

/* protobuf-c keeps one entry per occurrence on the wire, so a key may repeat (binary input may
 * repeat it, and protobuf's rule is that the last entry wins, its value whole: a message value
 * replaces the earlier one, it is not merged). A JSON object must not repeat a key, so the
 * entries another entry with the same key follows are left out. Returns a malloc'd array of n
 * flags (1 = superseded), or NULL when no key repeats or n is small enough for
 * map_entry_superseded to scan. NULL entries are never superseded: the writer refuses them. */
static unsigned char *map_superseded(const ProtobufCFieldDescriptor *kf, ProtobufCMessage *const *entries, size_t n)
{
    if (n <= MAP_PAIRWISE_MAX) return NULL;
    size_t cap = 1;
    while (cap < 2 * n) cap <<= 1;
    size_t *slot = es_xmalloc(cap * sizeof *slot);
    for (size_t i = 0; i < cap; i++) slot[i] = SIZE_MAX;
    unsigned char *gone = NULL;
    for (size_t i = n; i-- > 0;) {   /* from the last entry: the first seen of a key is kept */
        if (!entries[i]) continue;
        const void *k = (const char *)entries[i] + kf->offset;
        size_t h = (size_t)map_key_hash(kf->type, k) & (cap - 1);
        for (;; h = (h + 1) & (cap - 1)) {
            if (slot[h] == SIZE_MAX) {
                slot[h] = i;
                break;
            }
            if (map_key_equal(kf->type, (const char *)entries[slot[h]] + kf->offset, k)) {
                if (!gone) gone = es_xcalloc(n, 1);
                gone[i] = 1;
                break;
            }
        }
    }
    free(slot);
    return gone;
}

/* Small maps: is entry i followed by an entry with the same key? */
static int map_entry_superseded(const ProtobufCFieldDescriptor *kf, ProtobufCMessage *const *entries, size_t n,
                                size_t i)
{
    if (!entries[i]) return 0;
    const void *k = (const char *)entries[i] + kf->offset;
    for (size_t j = i + 1; j < n; j++)
        if (entries[j] && map_key_equal(kf->type, (const char *)entries[j] + kf->offset, k)) return 1;
    return 0;
}

static int enc_map(es__json_enc *e, const ProtobufCFieldDescriptor *f, ProtobufCMessage *const *entries, size_t n)
{
    const ProtobufCMessageDescriptor *ed = f->descriptor;
    const ProtobufCFieldDescriptor *kf = &ed->fields[0], *vf = &ed->fields[1];
    unsigned char *gone = map_superseded(kf, entries, n);
    int rc = 0, first = 1;
    es_buf_putc(e->out, '{');
    for (size_t i = 0; i < n; i++) {
        if (gone ? gone[i] : n <= MAP_PAIRWISE_MAX && map_entry_superseded(kf, entries, n, i)) continue;
        const ProtobufCMessage *entry = entries[i];
        if (!first) es_buf_putc(e->out, ',');
        first = 0;
        size_t saved = push_index(e, i);
        rc = entry ? put_map_key(e, kf, (const char *)entry + kf->offset) : es__json_enc_fail(e, "null map entry");
        if (rc) goto out;
        es_buf_putc(e->out, ':');
        const void *vp = (const char *)entry + vf->offset;
        if (vf->type == PROTOBUF_C_TYPE_MESSAGE && !*(const void *const *)vp && es__json_wkt_of(vf->descriptor) == ES__WKT_VALUE)
            es_buf_puts(e->out, "null");
        else if ((rc = es__json_enc_single(e, vf, vp))) goto out;
        pop(e, saved);
    }
    es_buf_putc(e->out, '}');
out:
    free(gone);
    return rc;
}

static int enc_field(es__json_enc *e, const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
    const char *base = (const char *)m;
    if (f->label != PROTOBUF_C_LABEL_REPEATED) return es__json_enc_single(e, f, base + f->offset);
    size_t n = *(const size_t *)(base + f->quantifier_offset);
    const char *arr = *(const char *const *)(base + f->offset);
    if (es__json_is_map(m->descriptor, f)) return enc_map(e, f, (ProtobufCMessage *const *)arr, n);
    size_t es = es__json_elem_size(f->type);
    es_buf_putc(e->out, '[');
    for (size_t i = 0; i < n; i++) {
        if (i) es_buf_putc(e->out, ',');
        size_t saved = push_index(e, i);
        int rc = es__json_enc_single(e, f, arr + i * es);
        if (rc) return rc;
        pop(e, saved);
    }
    es_buf_putc(e->out, ']');
    return 0;
}

static void put_key(es__json_enc *e, const ProtobufCMessageDescriptor *d, unsigned idx)
{
    const ProtobufCFieldDescriptor *f = &d->fields[idx];
    if (e->opt && e->opt->lower_camel_output) {
        const char *ov = es__json_name_override(e->r, d, idx);
        if (ov) {
            es__json_put_string(e->out, ov, strlen(ov));
        } else {
            es_buf_putc(e->out, '"');
            es__json_put_camel(e->out, f->name);
            es_buf_putc(e->out, '"');
        }
    } else {
        es__json_put_string(e->out, f->name, strlen(f->name));
    }
    es_buf_putc(e->out, ':');
}

int es__json_enc_fields(es__json_enc *e, const ProtobufCMessage *m, int *first)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    int defaults = e->opt && e->opt->emit_defaults;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        int present = es__json_field_present(m, f);
        /* emit_defaults writes fields without presence (proto3 scalars, repeated, maps);
         * fields that track presence (messages, oneofs, proto2 optionals) stay out when unset. */
        if (!present && !(defaults && !(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
                          (f->label == PROTOBUF_C_LABEL_REPEATED ||
                           (f->label == PROTOBUF_C_LABEL_NONE && f->type != PROTOBUF_C_TYPE_MESSAGE))))
            continue;
        if (!*first) es_buf_putc(e->out, ',');
        *first = 0;
        put_key(e, d, i);
        size_t saved = push_name(e, f->name);
        int rc = enc_field(e, m, f);
        if (rc) return rc;
        pop(e, saved);
    }
    return 0;
}

int es__json_enc_message(es__json_enc *e, const ProtobufCMessage *m)
{
    if (++e->depth > e->max_depth) return es__json_enc_fail(e, "message nesting deeper than %zu", e->max_depth);
    int rc;
    es__json_wkt w = es__json_wkt_of(m->descriptor);
    if (w != ES__WKT_NONE) {
        rc = es__json_wkt_encode(e, w, m);
    } else {
        int first = 1;
        es_buf_putc(e->out, '{');
        rc = es__json_enc_fields(e, m, &first);
        es_buf_putc(e->out, '}');
    }
    e->depth--;
    return rc;
}

int es_json_encode(const es_json_registry *r, const ProtobufCMessage *m, const es_json_options *opt,
                   es_buf *out, es_error *err)
{
    es__json_enc e = {.r = r, .opt = opt, .out = out, .err = err};
    e.max_depth = opt && opt->max_depth ? opt->max_depth : ES__JSON_DEFAULT_DEPTH;
    if (e.max_depth > ES__JSON_MAX_DEPTH) e.max_depth = ES__JSON_MAX_DEPTH;
    size_t mark = out->len;
    int rc = es__json_enc_message(&e, m);
    if (rc) {
        out->len = mark;   /* leave no half-written JSON behind */
        if (out->data && out->len < out->cap) out->data[out->len] = '\0';
    }
    return rc;
}
