/* proto3 JSON -> protobuf-c message: walks the parsed tree (json_lex.c) along the message
 * descriptors. Every value is written where protobuf-c expects it (has_ flags, oneof case,
 * n_ counts), allocated from the caller's arena, so the result packs with
 * protobuf_c_message_pack. Errors carry the proto field path of the offending value. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "json_internal.h"

/* ---- errors and paths ---- */

void es__json_copy_path(char *dst, size_t cap, const char *path)
{
    size_t n = strlen(path);
    const char *src = path;
    if (n >= cap) {   /* keep the leaf end, which says most */
        src = path + (n - (cap - 1));
        n = cap - 1;
    }
    memcpy(dst, src, n);
    dst[n] = '\0';
}

int es__json_dec_fail(es__json_dec *d, const char *fmt, ...)
{
    if (d->err) {
        d->err->code = ES_INVALID_ARGUMENT;
        es__json_copy_path(d->err->field, sizeof d->err->field, d->path);
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(d->err->message, sizeof d->err->message, fmt, ap);
        va_end(ap);
    }
    return ES_INVALID_ARGUMENT;
}

size_t es__json_path_push_field(es__json_dec *d, const char *name)
{
    size_t old = d->plen;
    if (d->plen < sizeof d->path) {
        int k = snprintf(d->path + d->plen, sizeof d->path - d->plen, "%s%s", d->plen ? "." : "", name);
        d->plen += k > 0 ? (size_t)k : 0;
        if (d->plen >= sizeof d->path) d->plen = sizeof d->path - 1;
    }
    return old;
}

size_t es__json_path_push_index(es__json_dec *d, size_t i)
{
    size_t old = d->plen;
    if (d->plen < sizeof d->path) {
        int k = snprintf(d->path + d->plen, sizeof d->path - d->plen, "[%zu]", i);
        d->plen += k > 0 ? (size_t)k : 0;
        if (d->plen >= sizeof d->path) d->plen = sizeof d->path - 1;
    }
    return old;
}

static size_t path_push_key(es__json_dec *d, const char *key)
{
    size_t old = d->plen;
    if (d->plen < sizeof d->path) {
        int k = snprintf(d->path + d->plen, sizeof d->path - d->plen, "[\"%s\"]", key);
        d->plen += k > 0 ? (size_t)k : 0;
        if (d->plen >= sizeof d->path) d->plen = sizeof d->path - 1;
    }
    return old;
}

void es__json_path_pop(es__json_dec *d, size_t old)
{
    d->plen = old;
    d->path[old] = '\0';
}

/* printf arguments for "%.*s" of a value's text: number lexemes are not NUL-terminated (they
 * point into the input), so the length is always given, capped for the message. */
#define LEX(v) (int)((v)->len < 40 ? (v)->len : 40), (v)->str

static const char *kind_name(const es__json_value *v)
{
    switch (v->kind) {
    case ES__JSON_NULL: return "null";
    case ES__JSON_FALSE:
    case ES__JSON_TRUE: return "a boolean";
    case ES__JSON_NUMBER: return "a number";
    case ES__JSON_STRING: return "a string";
    case ES__JSON_ARRAY: return "an array";
    case ES__JSON_OBJECT: return "an object";
    }
    return "?";
}

/* ---- storage ---- */

size_t es__json_elem_size(ProtobufCType t)
{
    switch (t) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_ENUM: return 4;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64: return 8;
    case PROTOBUF_C_TYPE_FLOAT: return sizeof(float);
    case PROTOBUF_C_TYPE_DOUBLE: return sizeof(double);
    case PROTOBUF_C_TYPE_BOOL: return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_STRING: return sizeof(char *);
    case PROTOBUF_C_TYPE_BYTES: return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_MESSAGE: return sizeof(ProtobufCMessage *);
    }
    return 0;
}

void es__json_mark_set(ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
        *(uint32_t *)((char *)m + f->quantifier_offset) = f->id;
    else if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->type != PROTOBUF_C_TYPE_STRING &&
             f->type != PROTOBUF_C_TYPE_MESSAGE)
        *(protobuf_c_boolean *)((char *)m + f->quantifier_offset) = 1;
}

ProtobufCMessage *es__json_new_message(es__json_dec *d, const ProtobufCMessageDescriptor *desc)
{
    ProtobufCMessage *m = es_arena_alloc(d->arena, desc->sizeof_message);
    protobuf_c_message_init(desc, m);
    return m;
}

static int is_value_type(const ProtobufCFieldDescriptor *f)
{
    return f->type == PROTOBUF_C_TYPE_MESSAGE && es__json_wkt_of(f->descriptor) == ES__WKT_VALUE;
}

static int is_null_value_enum(const ProtobufCFieldDescriptor *f)
{
    return f->type == PROTOBUF_C_TYPE_ENUM && !strcmp(((const ProtobufCEnumDescriptor *)f->descriptor)->name,
                                                      "google.protobuf.NullValue");
}

/* ---- scalars ---- */

static int dec_integer(es__json_dec *d, ProtobufCType t, const es__json_value *v, void *dst)
{
    int neg;
    uint64_t mag;
    const char *type = "int32";
    if (v->kind != ES__JSON_NUMBER && v->kind != ES__JSON_STRING)
        return es__json_dec_fail(d, "expected an integer, got %s", kind_name(v));
    int rc = es__json_parse_integer(v->str, v->len, &neg, &mag);
    if (rc == ES__NUM_SYNTAX) return es__json_dec_fail(d, "\"%.*s\" is not a number", LEX(v));
    if (rc == ES__NUM_FRACTION) return es__json_dec_fail(d, "%.*s is not an integer", LEX(v));
    int range = rc == ES__NUM_RANGE;
    switch (t) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_ENUM:
        if (range || mag > (neg ? 2147483648ULL : 2147483647ULL)) break;
        *(int32_t *)dst = neg ? (int32_t)(-(int64_t)mag) : (int32_t)mag;
        return 0;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        type = "uint32";
        if (range || (neg && mag) || mag > 4294967295ULL) break;
        *(uint32_t *)dst = (uint32_t)mag;
        return 0;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        type = "int64";
        if (range || mag > (neg ? 9223372036854775808ULL : 9223372036854775807ULL)) break;
        *(int64_t *)dst = neg ? (int64_t)(0 - mag) : (int64_t)mag;
        return 0;
    default:
        type = "uint64";
        if (range || (neg && mag)) break;
        *(uint64_t *)dst = mag;
        return 0;
    }
    return es__json_dec_fail(d, "%.*s is out of range for %s", LEX(v), type);
}

static int dec_floating(es__json_dec *d, ProtobufCType t, const es__json_value *v, void *dst)
{
    double x = 0;
    float f = 0;
    int is_float = t == PROTOBUF_C_TYPE_FLOAT;
    if (v->kind == ES__JSON_STRING) {
        if (!strcmp(v->str, "NaN")) x = NAN;
        else if (!strcmp(v->str, "Infinity")) x = INFINITY;
        else if (!strcmp(v->str, "-Infinity")) x = -INFINITY;
        else goto number;
        if (is_float) *(float *)dst = (float)x;
        else *(double *)dst = x;
        return 0;
    } else if (v->kind != ES__JSON_NUMBER) {
        return es__json_dec_fail(d, "expected a number, got %s", kind_name(v));
    }
number:;
    int rc = is_float ? es__json_parse_float(v->str, v->len, &f) : es__json_parse_double(v->str, v->len, &x);
    if (rc == ES__NUM_SYNTAX) return es__json_dec_fail(d, "\"%.*s\" is not a number", LEX(v));
    if (rc == ES__NUM_RANGE)
        return es__json_dec_fail(d, "%.*s is out of range for %s", LEX(v), is_float ? "float" : "double");
    if (is_float) *(float *)dst = f;
    else *(double *)dst = x;
    return 0;
}

static int dec_enum(es__json_dec *d, const ProtobufCEnumDescriptor *ed, const es__json_value *v,
                    int32_t *dst, int *skipped)
{
    if (v->kind == ES__JSON_NUMBER) return dec_integer(d, PROTOBUF_C_TYPE_ENUM, v, dst);
    if (v->kind == ES__JSON_NULL && !strcmp(ed->name, "google.protobuf.NullValue")) {
        *dst = 0;
        return 0;
    }
    if (v->kind != ES__JSON_STRING)
        return es__json_dec_fail(d, "expected an enum name or number, got %s", kind_name(v));
    const ProtobufCEnumValue *ev =
        strlen(v->str) == v->len ? protobuf_c_enum_descriptor_get_value_by_name(ed, v->str) : NULL;
    if (ev) {
        *dst = ev->value;
        return 0;
    }
    if (d->ignore_unknown) {
        *skipped = 1;
        return 0;
    }
    return es__json_dec_fail(d, "unknown value \"%.60s\" for enum %s", v->str, ed->name);
}

/* Decodes one value (not an array of them) of field f's type into dst, the storage of one
 * element. *skipped is set when ignore_unknown drops the value (unknown enum name). */
static int dec_single(es__json_dec *d, const ProtobufCFieldDescriptor *f, const es__json_value *v, void *dst,
                      int *skipped)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return dec_integer(d, f->type, v, dst);
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_DOUBLE:
        return dec_floating(d, f->type, v, dst);
    case PROTOBUF_C_TYPE_BOOL:
        if (v->kind != ES__JSON_TRUE && v->kind != ES__JSON_FALSE)
            return es__json_dec_fail(d, "expected true or false, got %s", kind_name(v));
        *(protobuf_c_boolean *)dst = v->kind == ES__JSON_TRUE;
        return 0;
    case PROTOBUF_C_TYPE_ENUM:
        return dec_enum(d, f->descriptor, v, dst, skipped);
    case PROTOBUF_C_TYPE_STRING:
        if (v->kind != ES__JSON_STRING) return es__json_dec_fail(d, "expected a string, got %s", kind_name(v));
        if (strlen(v->str) != v->len)
            return es__json_dec_fail(d, "string contains a NUL character, which this runtime cannot store");
        *(char **)dst = es_arena_strndup(d->arena, v->str, v->len);
        return 0;
    case PROTOBUF_C_TYPE_BYTES: {
        ProtobufCBinaryData *b = dst;
        if (v->kind != ES__JSON_STRING)
            return es__json_dec_fail(d, "expected a base64 string, got %s", kind_name(v));
        if (es__json_base64_decode(v->str, v->len, d->arena, &b->data, &b->len) < 0)
            return es__json_dec_fail(d, "invalid base64");
        return 0;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        ProtobufCMessage **pm = dst;
        if (!*pm || (const void *)*pm == f->default_value) *pm = es__json_new_message(d, f->descriptor);
        return es__json_dec_message(d, v, *pm);
    }
    }
    return es__json_dec_fail(d, "unsupported field type");
}

/* ---- repeated and map ---- */

static int dec_repeated(es__json_dec *d, ProtobufCMessage *m, const ProtobufCFieldDescriptor *f,
                        const es__json_value *v)
{
    if (v->kind != ES__JSON_ARRAY) return es__json_dec_fail(d, "expected an array, got %s", kind_name(v));
    size_t *pn = (size_t *)((char *)m + f->quantifier_offset);
    void **parr = (void **)((char *)m + f->offset);
    size_t es = es__json_elem_size(f->type), old = *pn, kept = old;
    if (!v->n) return 0;
    char *arr = es_arena_calloc(d->arena, (old + v->n) * es);
    if (old) memcpy(arr, *parr, old * es);
    for (size_t i = 0; i < v->n; i++) {
        size_t saved = es__json_path_push_index(d, i);
        int skipped = 0, rc;
        if (v->items[i]->kind == ES__JSON_NULL && !is_value_type(f) && !is_null_value_enum(f))
            rc = es__json_dec_fail(d, "null is not allowed in a repeated field");
        else
            rc = dec_single(d, f, v->items[i], arr + kept * es, &skipped);
        if (rc) return rc;
        es__json_path_pop(d, saved);
        if (!skipped) kept++;
    }
    *parr = arr;
    *pn = kept;
    return 0;
}

/* Parses a map key (always a JSON string) into the entry's key field. */
static int dec_map_key(es__json_dec *d, const ProtobufCFieldDescriptor *kf, const char *key, size_t klen,
                       ProtobufCMessage *entry)
{
    void *dst = (char *)entry + kf->offset;
    es__json_value kv = {.kind = ES__JSON_STRING, .str = key, .len = klen};
    int skipped = 0;
    if (kf->type == PROTOBUF_C_TYPE_BOOL) {
        if (klen == 4 && !memcmp(key, "true", 4)) *(protobuf_c_boolean *)dst = 1;
        else if (klen == 5 && !memcmp(key, "false", 5)) *(protobuf_c_boolean *)dst = 0;
        else return es__json_dec_fail(d, "map key \"%.40s\" is not true or false", key);
    } else {
        int rc = dec_single(d, kf, &kv, dst, &skipped);
        if (rc) return rc;
    }
    es__json_mark_set(entry, kf);
    return 0;
}

static int dec_map(es__json_dec *d, ProtobufCMessage *m, const ProtobufCFieldDescriptor *f,
                   const es__json_value *v)
{
    if (v->kind != ES__JSON_OBJECT) return es__json_dec_fail(d, "expected an object (map), got %s", kind_name(v));
    const ProtobufCMessageDescriptor *ed = f->descriptor;
    const ProtobufCFieldDescriptor *kf = &ed->fields[0], *vf = &ed->fields[1];
    size_t *pn = (size_t *)((char *)m + f->quantifier_offset);
    ProtobufCMessage ***parr = (ProtobufCMessage ***)((char *)m + f->offset);
    size_t old = *pn, kept = old;
    if (!v->n) return 0;
    ProtobufCMessage **arr = es_arena_calloc(d->arena, (old + v->n) * sizeof *arr);
    if (old) memcpy(arr, *parr, old * sizeof *arr);
    for (size_t i = 0; i < v->n; i++) {
        size_t saved = path_push_key(d, v->keys[i]);
        ProtobufCMessage *entry = es__json_new_message(d, ed);
        int skipped = 0, rc = dec_map_key(d, kf, v->keys[i], v->key_lens[i], entry);
        if (rc) return rc;
        const es__json_value *val = v->items[i];
        if (val->kind == ES__JSON_NULL && !is_value_type(vf) && !is_null_value_enum(vf))
            return es__json_dec_fail(d, "null is not allowed as a map value");
        rc = dec_single(d, vf, val, (char *)entry + vf->offset, &skipped);
        if (rc) return rc;
        es__json_mark_set(entry, vf);
        es__json_path_pop(d, saved);
        if (!skipped) arr[kept++] = entry;
    }
    *parr = arr;
    *pn = kept;
    return 0;
}

/* ---- fields and messages ---- */

int es__json_dec_field(es__json_dec *d, ProtobufCMessage *m, const ProtobufCFieldDescriptor *f,
                       const es__json_value *v)
{
    if (v->kind == ES__JSON_NULL && !is_value_type(f) && !is_null_value_enum(f)) return 0;  /* unset */
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
        if (v->kind == ES__JSON_NULL) return 0;
        return es__json_is_map(m->descriptor, f) ? dec_map(d, m, f, v) : dec_repeated(d, m, f, v);
    }
    void *dst = (char *)m + f->offset;
    if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) && *(uint32_t *)((char *)m + f->quantifier_offset) != f->id)
        memset(dst, 0, es__json_elem_size(f->type));   /* the union holds another member */
    int skipped = 0;
    int rc = dec_single(d, f, v, dst, &skipped);
    if (rc) return rc;
    if (!skipped) es__json_mark_set(m, f);
    return 0;
}

int es__json_dec_fields(es__json_dec *d, const es__json_value *v, ProtobufCMessage *m, const char *skip_key)
{
    const ProtobufCMessageDescriptor *desc = m->descriptor;
    if (v->kind != ES__JSON_OBJECT)
        return es__json_dec_fail(d, "expected an object (%s), got %s", desc->name, kind_name(v));
    /* Per field: 1 = named by a key, 2 = set to a non-null value (oneof conflict check). */
    unsigned char *seen = es_arena_calloc(d->scratch, desc->n_fields + 1);
    for (size_t i = 0; i < v->n; i++) {
        const char *key = v->keys[i];
        if (skip_key && v->key_lens[i] == strlen(skip_key) && !strcmp(key, skip_key)) continue;
        const ProtobufCFieldDescriptor *f = es__json_find_field(d->r, desc, key, v->key_lens[i]);
        if (!f) {
            if (d->ignore_unknown) continue;
            size_t saved = es__json_path_push_field(d, key);
            int rc = es__json_dec_fail(d, "unknown field \"%.60s\" in %s", key, desc->name);
            es__json_path_pop(d, saved);
            return rc;
        }
        size_t fi = (size_t)(f - desc->fields);
        size_t saved = es__json_path_push_field(d, f->name);
        if (seen[fi]) {
            int rc = es__json_dec_fail(d, "field given twice (as \"%.60s\" and another name)", key);
            es__json_path_pop(d, saved);
            return rc;
        }
        seen[fi] = 1;
        int sets = v->items[i]->kind != ES__JSON_NULL || is_value_type(f) || is_null_value_enum(f);
        if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) && sets) {
            for (unsigned j = 0; j < desc->n_fields; j++) {
                const ProtobufCFieldDescriptor *g = &desc->fields[j];
                if (j != fi && (seen[j] & 2) && (g->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
                    g->quantifier_offset == f->quantifier_offset) {
                    int rc = es__json_dec_fail(d, "\"%s\" and \"%s\" belong to the same oneof; set only one",
                                               g->name, f->name);
                    es__json_path_pop(d, saved);
                    return rc;
                }
            }
            seen[fi] |= 2;
        }
        int rc = es__json_dec_field(d, m, f, v->items[i]);
        if (rc) return rc;
        es__json_path_pop(d, saved);
    }
    return 0;
}

int es__json_dec_message(es__json_dec *d, const es__json_value *v, ProtobufCMessage *m)
{
    es__json_wkt w = es__json_wkt_of(m->descriptor);
    if (w != ES__WKT_NONE) return es__json_wkt_decode(d, w, v, m);
    return es__json_dec_fields(d, v, m, NULL);
}

/* ---- public entry points ---- */

/* Appends s[0..n) to out (cap bytes, NUL-terminated, truncating). */
static void path_append(char *out, size_t cap, size_t *len, const char *s, size_t n)
{
    if (*len + 1 >= cap) return;
    if (n > cap - 1 - *len) n = cap - 1 - *len;
    memcpy(out + *len, s, n);
    *len += n;
    out[*len] = '\0';
}

/* A syntax error names the member's path with the keys as the client wrote them (json_lex.c);
 * every other decode error names proto field names. Rewrite the keys to proto names as far as
 * they follow fields of desc and its plain message fields (a map key, a well-known type's
 * inside or an unknown key ends the rewriting: the rest stays as written). */
static void proto_path(const es_json_registry *r, const ProtobufCMessageDescriptor *desc, es_error *err)
{
    if (!err || !err->field[0]) return;
    char out[sizeof err->field];
    size_t n = 0;
    const char *p = err->field;
    const ProtobufCMessageDescriptor *d = desc;
    const ProtobufCFieldDescriptor *prev = NULL;
    out[0] = '\0';
    while (*p) {
        if (*p == '[') {   /* an element of the repeated field just named */
            const char *e = strchr(p, ']');
            if (!prev || prev->label != PROTOBUF_C_LABEL_REPEATED || !e) break;
            path_append(out, sizeof out, &n, p, (size_t)(e + 1 - p));
            p = e + 1;
            prev = NULL;
            continue;
        }
        if (!d) break;
        const char *k = *p == '.' && n ? p + 1 : p;
        size_t klen = strcspn(k, ".[");
        char key[sizeof err->field];
        memcpy(key, k, klen);   /* es__json_find_field wants the key to end there */
        key[klen] = '\0';
        const ProtobufCFieldDescriptor *f = klen ? es__json_find_field(r, d, key, klen) : NULL;
        if (!f) break;
        if (n) path_append(out, sizeof out, &n, ".", 1);
        path_append(out, sizeof out, &n, f->name, strlen(f->name));
        p = k + klen;
        prev = f;
        d = f->type == PROTOBUF_C_TYPE_MESSAGE && !es__json_is_map(d, f) &&
                    es__json_wkt_of(f->descriptor) == ES__WKT_NONE
                ? f->descriptor
                : NULL;
    }
    path_append(out, sizeof out, &n, p, strlen(p));
    memcpy(err->field, out, n + 1);
}

static int run(const es_json_registry *r, ProtobufCMessage *msg, const char *json, size_t len,
               const es_json_options *opt, es_arena *arena, es_error *err)
{
    es_arena scratch;
    es_arena_init(&scratch);
    es__json_dec d = {.r = r, .ignore_unknown = opt && opt->ignore_unknown, .arena = arena,
                      .scratch = &scratch, .err = err};
    es__json_value *root = NULL;
    int rc = es__json_parse(json, len, opt ? opt->max_depth : 0, &scratch, &root, err);
    if (rc) {
        proto_path(r, msg->descriptor, err);
        goto out;
    }
    rc = es__json_dec_message(&d, root, msg);
out:
    es_arena_free(&scratch);
    return rc;
}

int es_json_decode(const es_json_registry *r, const ProtobufCMessageDescriptor *desc, const char *json,
                   size_t len, const es_json_options *opt, es_arena *arena, ProtobufCMessage **out,
                   es_error *err)
{
    es__json_dec d = {.arena = arena};
    ProtobufCMessage *m = es__json_new_message(&d, desc);
    int rc = run(r, m, json, len, opt, arena, err);
    *out = rc ? NULL : m;
    return rc;
}

int es_json_merge(const es_json_registry *r, ProtobufCMessage *msg, const char *json, size_t len,
                  const es_json_options *opt, es_arena *arena, es_error *err)
{
    return run(r, msg, json, len, opt, arena, err);
}

int es_json_merge_field(const es_json_registry *r, ProtobufCMessage *msg, const char *field, const char *json,
                        size_t len, const es_json_options *opt, es_arena *arena, es_error *err)
{
    es_arena scratch;
    es_arena_init(&scratch);
    es__json_dec d = {.r = r, .ignore_unknown = opt && opt->ignore_unknown, .arena = arena,
                      .scratch = &scratch, .err = err};
    es__json_value *root = NULL;
    const ProtobufCFieldDescriptor *f = field ? es__json_find_field(r, msg->descriptor, field, strlen(field)) : NULL;
    int rc;
    if (!f) {
        rc = es_error_set(err, ES_INVALID_ARGUMENT, field ? field : "", "no field \"%s\" in %s", field ? field : "",
                          msg->descriptor->name);
        goto out;
    }
    es__json_path_push_field(&d, f->name);
    rc = es__json_parse(json, len, opt ? opt->max_depth : 0, &scratch, &root, err);
    if (rc) {
        if (err) es__json_copy_path(err->field, sizeof err->field, d.path);
        goto out;
    }
    rc = es__json_dec_field(&d, msg, f, root);
out:
    es_arena_free(&scratch);
    return rc;
}
