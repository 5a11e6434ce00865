/* The well-known types whose JSON form is not an object of their fields: Timestamp (RFC 3339),
 * Duration ("1.5s"), FieldMask ("a.fooBar,b"), Struct / Value / ListValue (plain JSON), the
 * wrappers (the bare value) and Any ("@type" plus the payload's fields, or "value" for a
 * well-known payload). Types are recognised by descriptor->name and their fields reached
 * through the descriptor, so any copy of the generated WKT code works. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_internal.h"
#include "es/timefmt.h"

#define TS_MIN ES_RFC3339_MIN_S       /* 0001-01-01T00:00:00Z */
#define TS_MAX ES_RFC3339_MAX_S       /* 9999-12-31T23:59:59Z */
#define DUR_MAX 315576000000LL        /* 10000 years */

es__json_wkt es__json_wkt_of(const ProtobufCMessageDescriptor *d)
{
    static const struct { const char *name; es__json_wkt w; } table[] = {
        {"Any", ES__WKT_ANY},              {"Timestamp", ES__WKT_TIMESTAMP},
        {"Duration", ES__WKT_DURATION},    {"FieldMask", ES__WKT_FIELD_MASK},
        {"Struct", ES__WKT_STRUCT},        {"Value", ES__WKT_VALUE},
        {"ListValue", ES__WKT_LIST_VALUE}, {"DoubleValue", ES__WKT_WRAPPER},
        {"FloatValue", ES__WKT_WRAPPER},   {"Int64Value", ES__WKT_WRAPPER},
        {"UInt64Value", ES__WKT_WRAPPER},  {"Int32Value", ES__WKT_WRAPPER},
        {"UInt32Value", ES__WKT_WRAPPER},  {"BoolValue", ES__WKT_WRAPPER},
        {"StringValue", ES__WKT_WRAPPER},  {"BytesValue", ES__WKT_WRAPPER},
    };
    if (!d || strncmp(d->name, "google.protobuf.", 16)) return ES__WKT_NONE;
    for (size_t i = 0; i < sizeof table / sizeof *table; i++)
        if (!strcmp(d->name + 16, table[i].name)) return table[i].w;
    return ES__WKT_NONE;
}

static const ProtobufCFieldDescriptor *fld(const ProtobufCMessage *m, const char *name)
{
    return protobuf_c_message_descriptor_get_field_by_name(m->descriptor, name);
}

#define AT(m, f, T) (*(T *)((char *)(m) + (f)->offset))
#define CAT(m, f, T) (*(T const *)((const char *)(m) + (f)->offset))

static int digits(const char *s, size_t n, unsigned *out)
{
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    *out = v;
    return 0;
}

/* Fraction of 1 to 9 digits at s -> nanoseconds; returns digits consumed or -1. */
static int fraction(const char *s, size_t n, int32_t *nanos)
{
    size_t k = 0;
    int32_t v = 0;
    while (k < n && s[k] >= '0' && s[k] <= '9') {
        if (k == 9) return -1;
        v = v * 10 + (s[k] - '0');
        k++;
    }
    if (!k) return -1;
    for (size_t i = k; i < 9; i++) v *= 10;
    *nanos = v;
    return (int)k;
}

/* Duration fraction digits: none, 3, 6 or 9, the fewest exact ones (as es_rfc3339's FRAC_AUTO). */
static void put_nanos(es_buf *b, int32_t nanos)
{
    if (!nanos) return;
    if (nanos % 1000000 == 0) es_buf_printf(b, ".%03d", (int)(nanos / 1000000));
    else if (nanos % 1000 == 0) es_buf_printf(b, ".%06d", (int)(nanos / 1000));
    else es_buf_printf(b, ".%09d", (int)nanos);
}

/* RFC 3339: YYYY-MM-DDTHH:MM:SS[.f{1,9}](Z|+HH:MM|-HH:MM) */
static int parse_timestamp(const char *s, size_t n, int64_t *sec, int32_t *nanos)
{
    unsigned y, mo, dd, h, mi, se, oh = 0, om = 0;
    static const unsigned mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (n < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':') return -1;
    if (digits(s, 4, &y) || digits(s + 5, 2, &mo) || digits(s + 8, 2, &dd) || digits(s + 11, 2, &h) ||
        digits(s + 14, 2, &mi) || digits(s + 17, 2, &se))
        return -1;
    if (y < 1 || mo < 1 || mo > 12 || h > 23 || mi > 59 || se > 59) return -1;
    unsigned dim = mdays[mo - 1] + (mo == 2 && (y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)));
    if (dd < 1 || dd > dim) return -1;
    size_t i = 19;
    *nanos = 0;
    if (s[i] == '.') {
        int k = fraction(s + i + 1, n - i - 1, nanos);
        if (k < 0) return -1;
        i += 1 + (size_t)k;
    }
    if (i >= n) return -1;
    int sign = 0;
    if (s[i] == 'Z') {
        i++;
    } else if (s[i] == '+' || s[i] == '-') {
        sign = s[i] == '-' ? -1 : 1;
        if (n - i != 6 || s[i + 3] != ':' || digits(s + i + 1, 2, &oh) || digits(s + i + 4, 2, &om) || oh > 23 ||
            om > 59)
            return -1;
        i += 6;
    } else {
        return -1;
    }
    if (i != n) return -1;
    int64_t t = es_days_from_civil(y, mo, dd) * 86400 + h * 3600 + mi * 60 + se;
    t -= sign * (int64_t)(oh * 3600 + om * 60);
    if (t < TS_MIN || t > TS_MAX) return -2;
    *sec = t;
    return 0;
}

/* -?\d+(\.\d{1,9})?s */
static int parse_duration(const char *s, size_t n, int64_t *sec, int32_t *nanos)
{
    size_t i = 0;
    int neg = 0;
    int64_t v = 0;
    if (i < n && s[i] == '-') { neg = 1; i++; }
    size_t start = i;
    while (i < n && s[i] >= '0' && s[i] <= '9') {
        if (i - start >= 12) return -2;   /* more than 12 digits is beyond 10000 years */
        v = v * 10 + (s[i] - '0');
        i++;
    }
    if (i == start) return -1;
    *nanos = 0;
    if (i < n && s[i] == '.') {
        int k = fraction(s + i + 1, n - i - 1, nanos);
        if (k < 0) return -1;
        i += 1 + (size_t)k;
    }
    if (i + 1 != n || s[i] != 's') return -1;
    if (v > DUR_MAX) return -2;
    *sec = neg ? -v : v;
    if (neg) *nanos = -*nanos;
    return 0;
}

/* ---- decode ---- */

static int need_string(es__json_dec *d, const es__json_value *v, const char *what)
{
    if (v->kind == ES__JSON_STRING && strlen(v->str) == v->len) return 0;
    return es__json_dec_fail(d, "expected %s as a string", what);
}

static int dec_time(es__json_dec *d, es__json_wkt w, const es__json_value *v, ProtobufCMessage *m)
{
    int64_t sec = 0;
    int32_t nanos = 0;
    const char *what = w == ES__WKT_TIMESTAMP ? "an RFC 3339 timestamp" : "a duration like \"1.5s\"";
    int rc = need_string(d, v, what);
    if (rc) return rc;
    rc = w == ES__WKT_TIMESTAMP ? parse_timestamp(v->str, v->len, &sec, &nanos)
                                : parse_duration(v->str, v->len, &sec, &nanos);
    if (rc == -2)
        return es__json_dec_fail(d, "\"%.40s\" is out of range (%s)", v->str,
                                 w == ES__WKT_TIMESTAMP ? "0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z"
                                                        : "+-315576000000s");
    if (rc) return es__json_dec_fail(d, "\"%.40s\" is not %s", v->str, what);
    const ProtobufCFieldDescriptor *fs = fld(m, "seconds"), *fn = fld(m, "nanos");
    AT(m, fs, int64_t) = sec;
    AT(m, fn, int32_t) = nanos;
    es__json_mark_set(m, fs);
    es__json_mark_set(m, fn);
    return 0;
}

static int dec_field_mask(es__json_dec *d, const es__json_value *v, ProtobufCMessage *m)
{
    int rc = need_string(d, v, "a field mask");
    if (rc) return rc;
    const ProtobufCFieldDescriptor *fp = fld(m, "paths");
    size_t *pn = (size_t *)((char *)m + fp->quantifier_offset);
    char ***parr = (char ***)((char *)m + fp->offset);
    if (!v->len) return 0;
    size_t count = 1;
    for (size_t i = 0; i < v->len; i++) count += v->str[i] == ',';
    char **arr = es_arena_alloc(d->arena, (*pn + count) * sizeof *arr);
    if (*pn) memcpy(arr, *parr, *pn * sizeof *arr);
    size_t k = *pn;
    const char *p = v->str, *end = v->str + v->len;
    while (p <= end) {
        const char *c = memchr(p, ',', (size_t)(end - p));
        if (!c) c = end;
        es_buf b;
        es_buf_init(&b);
        for (const char *q = p; q < c; q++) {
            if (*q == '_') {
                es_buf_free(&b);
                return es__json_dec_fail(d, "field mask path \"%.*s\" must be lowerCamelCase",
                                         (int)(c - p > 60 ? 60 : c - p), p);
            }
            if (*q >= 'A' && *q <= 'Z') {
                es_buf_putc(&b, '_');
                es_buf_putc(&b, (char)(*q + 32));
            } else {
                es_buf_putc(&b, *q);
            }
        }
        arr[k++] = es_arena_strndup(d->arena, b.data ? b.data : "", b.len);
        es_buf_free(&b);
        p = c + 1;
    }
    *parr = arr;
    *pn = k;
    return 0;
}

static int dec_value(es__json_dec *d, const es__json_value *v, ProtobufCMessage *m)
{
    const char *name;
    switch (v->kind) {
    case ES__JSON_NULL: name = "null_value"; break;
    case ES__JSON_NUMBER: name = "number_value"; break;
    case ES__JSON_STRING: name = "string_value"; break;
    case ES__JSON_TRUE:
    case ES__JSON_FALSE: name = "bool_value"; break;
    case ES__JSON_OBJECT: name = "struct_value"; break;
    default: name = "list_value"; break;
    }
    const ProtobufCFieldDescriptor *f = fld(m, name);
    if (!f) return es__json_dec_fail(d, "google.protobuf.Value has no field %s", name);
    return es__json_dec_field(d, m, f, v);
}

/* Object member i is named exactly lit (keys may hold NULs, so the length counts). */
static int key_is(const es__json_value *v, size_t i, const char *lit)
{
    return v->key_lens[i] == strlen(lit) && !memcmp(v->keys[i], lit, v->key_lens[i]);
}

/* Decodes the payload of an Any (v minus "@type") into a new message of type desc; the result
 * is left in d->any_payload. */
static int dec_any_payload(es__json_dec *d, const es__json_value *v, const ProtobufCMessageDescriptor *desc,
                           const es__json_value *value)
{
    int rc;
    size_t saved;
    ProtobufCMessage *inner = es__json_new_message(d, desc);
    /* Empty is written inline ({"@type": ".../Empty"}, as C++ and Python do) but Go's form with
     * "value": {} is accepted too. */
    int special = es__json_wkt_of(desc) != ES__WKT_NONE || (value && !strcmp(desc->name, "google.protobuf.Empty"));
    if (special) {
        for (size_t i = 0; i < v->n; i++) {
            if (!key_is(v, i, "@type") && !key_is(v, i, "value") && !d->ignore_unknown) {
                saved = es__json_path_push_field(d, v->keys[i]);
                return es__json_dec_fail(d, "unknown field \"%.60s\" in google.protobuf.Any of %s", v->keys[i],
                                         desc->name);
            }
        }
        if (value) {
            saved = es__json_path_push_field(d, "value");
            rc = es__json_dec_message(d, value, inner);
            if (rc) return rc;
            es__json_path_pop(d, saved);
        }
    } else {
        rc = es__json_dec_fields(d, v, inner, "@type");
        if (rc) return rc;
    }
    d->any_payload = inner;
    return 0;
}

/* Packs the payload into the Any m (type_url and value in the caller's arena). */
static int pack_any(es__json_dec *d, ProtobufCMessage *m, const es__json_value *type, const ProtobufCMessage *inner)
{
    size_t len = protobuf_c_message_get_packed_size(inner);
    uint8_t *buf = es_arena_alloc(d->arena, len ? len : 1);
    protobuf_c_message_pack(inner, buf);
    const ProtobufCFieldDescriptor *fu = fld(m, "type_url"), *fv = fld(m, "value");
    AT(m, fu, char *) = es_arena_strndup(d->arena, type->str, type->len);
    AT(m, fv, ProtobufCBinaryData) = (ProtobufCBinaryData){.len = len, .data = buf};
    es__json_mark_set(m, fu);
    es__json_mark_set(m, fv);
    return 0;
}

static int dec_any(es__json_dec *d, const es__json_value *v, ProtobufCMessage *m)
{
    if (v->kind != ES__JSON_OBJECT) return es__json_dec_fail(d, "expected an object (google.protobuf.Any)");
    if (!v->n) return 0;
    const es__json_value *type = NULL, *value = NULL;
    for (size_t i = 0; i < v->n; i++) {
        if (key_is(v, i, "@type")) type = v->items[i];
        else if (key_is(v, i, "value")) value = v->items[i];
    }
    if (!type) return es__json_dec_fail(d, "google.protobuf.Any needs \"@type\"");
    size_t saved = es__json_path_push_field(d, "@type");
    int rc = need_string(d, type, "a type URL");
    if (rc) return rc;
    const char *slash = strrchr(type->str, '/');
    const char *name = slash ? slash + 1 : type->str;
    const ProtobufCMessageDescriptor *desc = es_json_registry_find(d->r, name);
    if (!desc) return es__json_dec_fail(d, "unknown type \"%.80s\" (not in the registry)", type->str);
    es__json_path_pop(d, saved);
    /* The payload only lives until it is packed: build it in the scratch arena. */
    es_arena *keep = d->arena;
    d->arena = d->scratch;
    rc = dec_any_payload(d, v, desc, value);
    d->arena = keep;
    return rc ? rc : pack_any(d, m, type, d->any_payload);
}

    /* Empty is written inline ({"@type": ".../Empty"}, as C++ and Python do) but Go's form with
     * "value": {} is accepted too. */
int es__json_wkt_decode(es__json_dec *d, es__json_wkt w, const es__json_value *v, ProtobufCMessage *m)
{
    switch (w) {
    case ES__WKT_TIMESTAMP:
    case ES__WKT_DURATION: return dec_time(d, w, v, m);
    case ES__WKT_FIELD_MASK: return dec_field_mask(d, v, m);
    case ES__WKT_STRUCT:
        if (v->kind != ES__JSON_OBJECT) return es__json_dec_fail(d, "expected an object (google.protobuf.Struct)");
        return es__json_dec_field(d, m, fld(m, "fields"), v);
    case ES__WKT_LIST_VALUE:
        if (v->kind != ES__JSON_ARRAY) return es__json_dec_fail(d, "expected an array (google.protobuf.ListValue)");
        return es__json_dec_field(d, m, fld(m, "values"), v);
    case ES__WKT_VALUE: return dec_value(d, v, m);
    case ES__WKT_WRAPPER: {
        const ProtobufCFieldDescriptor *f = fld(m, "value");
        if (v->kind == ES__JSON_NULL) return es__json_dec_fail(d, "null is not a value of %s", m->descriptor->name);
        return es__json_dec_field(d, m, f, v);
    }
    case ES__WKT_ANY: return dec_any(d, v, m);
    case ES__WKT_NONE: break;
    }
    return es__json_dec_fields(d, v, m, NULL);
}

/* ---- encode ---- */

static int enc_timestamp(es__json_enc *e, const ProtobufCMessage *m)
{
    int64_t sec = CAT(m, fld(m, "seconds"), int64_t);
    int32_t nanos = CAT(m, fld(m, "nanos"), int32_t);
    if (sec < TS_MIN || sec > TS_MAX || nanos < 0 || nanos > 999999999)
        return es__json_enc_fail(e, "timestamp %lld.%09d is outside 0001-01-01..9999-12-31 or has bad nanos",
                                 (long long)sec, (int)nanos);
    char text[ES_RFC3339_LEN];
    es_buf_printf(e->out, "\"%s\"", es_rfc3339(sec, nanos, ES_RFC3339_FRAC_AUTO, text));
    return 0;
}

static int enc_duration(es__json_enc *e, const ProtobufCMessage *m)
{
    int64_t sec = CAT(m, fld(m, "seconds"), int64_t);
    int32_t nanos = CAT(m, fld(m, "nanos"), int32_t);
    if (sec < -DUR_MAX || sec > DUR_MAX || nanos < -999999999 || nanos > 999999999 || (sec > 0 && nanos < 0) ||
        (sec < 0 && nanos > 0))
        return es__json_enc_fail(e, "duration %llds %dns is out of range or has inconsistent signs", (long long)sec,
                                 (int)nanos);
    int neg = sec < 0 || nanos < 0;
    es_buf_printf(e->out, "\"%s%lld", neg ? "-" : "", (long long)(sec < 0 ? -sec : sec));
    put_nanos(e->out, nanos < 0 ? -nanos : nanos);
    es_buf_puts(e->out, "s\"");
    return 0;
}

static int enc_field_mask(es__json_enc *e, const ProtobufCMessage *m)
{
    const ProtobufCFieldDescriptor *fp = fld(m, "paths");
    size_t n = *(const size_t *)((const char *)m + fp->quantifier_offset);
    char *const *paths = CAT(m, fp, char **);
    es_buf tmp;
    es_buf_init(&tmp);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        if (i) es_buf_putc(&tmp, ',');
        for (const char *p = paths[i]; *p; p++) {
            if (*p >= 'A' && *p <= 'Z') goto bad;
            if (*p == '_') {
                if (p[1] < 'a' || p[1] > 'z') goto bad;
                es_buf_putc(&tmp, (char)(*++p - 32));
            } else {
                es_buf_putc(&tmp, *p);
            }
        }
        continue;
    bad:
        rc = es__json_enc_fail(e, "field mask path \"%.60s\" has no lowerCamelCase form", paths[i]);
        goto out;
    }
    if (es__json_put_string(e->out, tmp.data ? tmp.data : "", tmp.len) < 0)
        rc = es__json_enc_fail(e, "field mask path is not valid UTF-8");
out:
    es_buf_free(&tmp);
    return rc;
}

static int enc_value(es__json_enc *e, const ProtobufCMessage *m)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (!(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) || !es__json_field_present(m, f)) continue;
        if (f->type == PROTOBUF_C_TYPE_DOUBLE) {
            double x = CAT(m, f, double);
            if (isnan(x) || isinf(x))
                return es__json_enc_fail(e, "google.protobuf.Value cannot hold NaN or Infinity in JSON");
            es__json_put_double(e->out, x);
            return 0;
        }
        if (f->type == PROTOBUF_C_TYPE_MESSAGE && !CAT(m, f, void *)) {
            es_buf_puts(e->out, f->id == 5 ? "{}" : "[]");
            return 0;
        }
        return es__json_enc_single(e, f, (const char *)m + f->offset);
    }
    return es__json_enc_fail(e, "google.protobuf.Value has no kind set");
}

static int enc_any(es__json_enc *e, const ProtobufCMessage *m)
{
    const char *url = CAT(m, fld(m, "type_url"), char *);
    ProtobufCBinaryData val = CAT(m, fld(m, "value"), ProtobufCBinaryData);
    if ((!url || !*url) && !val.len) {
        es_buf_puts(e->out, "{}");
        return 0;
    }
    if (!url) url = "";
    const char *slash = strrchr(url, '/');
    const ProtobufCMessageDescriptor *desc = es_json_registry_find(e->r, slash ? slash + 1 : url);
    if (!desc) return es__json_enc_fail(e, "google.protobuf.Any of unknown type \"%.80s\"", url);
    ProtobufCMessage *inner = protobuf_c_message_unpack(desc, NULL, val.len, val.data);
    if (!inner) return es__json_enc_fail(e, "google.protobuf.Any value does not parse as %s", desc->name);
    es_buf_puts(e->out, "{\"@type\":");
    int rc = 0;
    if (es__json_put_string(e->out, url, strlen(url)) < 0) {
        rc = es__json_enc_fail(e, "type URL is not valid UTF-8");
        goto out;
    }
    if (es__json_wkt_of(desc) != ES__WKT_NONE) {
        es_buf_puts(e->out, ",\"value\":");
        rc = es__json_enc_message(e, inner);
    } else {
        int first = 0;
        if (++e->depth > e->max_depth) rc = es__json_enc_fail(e, "message nesting deeper than %zu", e->max_depth);
        else rc = es__json_enc_fields(e, inner, &first);
        e->depth--;
    }
    es_buf_putc(e->out, '}');
out:
    protobuf_c_message_free_unpacked(inner, NULL);
    return rc;
}

int es__json_wkt_encode(es__json_enc *e, es__json_wkt w, const ProtobufCMessage *m)
{
    switch (w) {
    case ES__WKT_TIMESTAMP: return enc_timestamp(e, m);
    case ES__WKT_DURATION: return enc_duration(e, m);
    case ES__WKT_FIELD_MASK: return enc_field_mask(e, m);
    case ES__WKT_STRUCT: {
        const ProtobufCFieldDescriptor *f = fld(m, "fields");
        size_t n = *(const size_t *)((const char *)m + f->quantifier_offset);
        if (!n) {
            es_buf_puts(e->out, "{}");
            return 0;
        }
        es_buf_putc(e->out, '{');
        int first = 1;
        /* Struct's only field is the map; its entries are the object itself. */
        int rc = 0;
        ProtobufCMessage *const *entries = CAT(m, f, ProtobufCMessage **);
        const ProtobufCMessageDescriptor *ed = f->descriptor;
        const ProtobufCFieldDescriptor *kf = &ed->fields[0], *vf = &ed->fields[1];
        for (size_t i = 0; i < n && !rc; i++) {
            const char *k = CAT(entries[i], kf, char *);
            if (!first) es_buf_putc(e->out, ',');
            first = 0;
            if (es__json_put_string(e->out, k ? k : "", k ? strlen(k) : 0) < 0)
                return es__json_enc_fail(e, "Struct key is not valid UTF-8");
            es_buf_putc(e->out, ':');
            const ProtobufCMessage *val = CAT(entries[i], vf, ProtobufCMessage *);
            if (!val) es_buf_puts(e->out, "null");
            else rc = es__json_enc_message(e, val);
        }
        es_buf_putc(e->out, '}');
        return rc;
    }
    case ES__WKT_LIST_VALUE: {
        const ProtobufCFieldDescriptor *f = fld(m, "values");
        size_t n = *(const size_t *)((const char *)m + f->quantifier_offset);
        ProtobufCMessage *const *vals = CAT(m, f, ProtobufCMessage **);
        es_buf_putc(e->out, '[');
        for (size_t i = 0; i < n; i++) {
            if (i) es_buf_putc(e->out, ',');
            int rc = vals[i] ? es__json_enc_message(e, vals[i]) : (es_buf_puts(e->out, "null"), 0);
            if (rc) return rc;
        }
        es_buf_putc(e->out, ']');
        return 0;
    }
    case ES__WKT_VALUE: return enc_value(e, m);
    case ES__WKT_WRAPPER: {
        const ProtobufCFieldDescriptor *f = fld(m, "value");
        return es__json_enc_single(e, f, (const char *)m + f->offset);
    }
    case ES__WKT_ANY: return enc_any(e, m);
    case ES__WKT_NONE: break;
    }
    return es__json_enc_fail(e, "not a well-known type");
}
