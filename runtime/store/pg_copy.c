/* COPY's text and binary data formats (see es/pg_copy.h). */
#include "es/hex.h"
#include "es/timefmt.h"
#include "es/pg_copy.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "es/uuid.h"

/* ---- text format ---- */

void es_pg_copy_text_escape(es_buf *b, const char *s, size_t n)
{
    /* Runs of plain bytes are copied whole (most values have none to escape). */
    es_buf_reserve(b, 2 * n);
    char *o = b->data + b->len;
    size_t i = 0;
    while (i < n) {
        size_t run = strcspn(s + i, "\\\t\n\r");
        if (run > n - i)
            run = n - i;
        memcpy(o, s + i, run);
        o += run;
        i += run;
        if (i >= n)
            break;
        char c = s[i++];
        *o++ = '\\';
        *o++ = c == '\t' ? 't' : c == '\n' ? 'n' : c == '\r' ? 'r' : '\\';
    }
    b->len = (size_t)(o - b->data);
    b->data[b->len] = 0;
}

/* ---- binary format, writing ---- */

static void put_be(es_buf *b, uint64_t v, int bytes)
{
    char x[8];
    for (int i = 0; i < bytes; i++)
        x[i] = (char)(v >> (8 * (bytes - 1 - i)));
    es_buf_append(b, x, (size_t)bytes);
}

void es_pg_copy_binary_header(es_buf *b)
{
    static const char header[19] = "PGCOPY\n\377\r\n\0\0\0\0\0\0\0\0\0";
    es_buf_append(b, header, sizeof header);
}

void es_pg_copy_binary_tuple(es_buf *b, uint16_t nfields) { put_be(b, nfields, 2); }

void es_pg_copy_binary_null(es_buf *b) { put_be(b, 0xffffffffu, 4); }

void es_pg_copy_binary_trailer(es_buf *b) { put_be(b, 0xffff, 2); }



/* Reads n decimal digits; -1 when one is not a digit. */
static int digits(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

int es_pg_copy_binary_value(es_buf *b, es_pg_copy_type t, const char *v)
{
    size_t n = strlen(v);
    switch (t) {
    case ES_PG_COPY_TEXT:
        put_be(b, n, 4);
        es_buf_append(b, v, n);
        return ES_OK;
    case ES_PG_COPY_JSONB:
        put_be(b, n + 1, 4);
        es_buf_putc(b, 1); /* jsonb's binary format: version 1, then the JSON text */
        es_buf_append(b, v, n);
        return ES_OK;
    case ES_PG_COPY_UUID: {
        uint8_t u[16];
        if (!es_uuid_parse(v, u))
            return ES_INVALID_ARGUMENT;
        put_be(b, 16, 4);
        es_buf_append(b, u, 16);
        return ES_OK;
    }
    case ES_PG_COPY_INT4:
    case ES_PG_COPY_INT8: {
        char *e;
        errno = 0;
        long long x = strtoll(v, &e, 10);
        if (!n || *e || errno || (t == ES_PG_COPY_INT4 && (x < INT32_MIN || x > INT32_MAX)))
            return ES_INVALID_ARGUMENT;
        int w = t == ES_PG_COPY_INT4 ? 4 : 8;
        put_be(b, (uint64_t)w, 4);
        put_be(b, (uint64_t)x, w);
        return ES_OK;
    }
    case ES_PG_COPY_BOOL:
        if (strcmp(v, "true") && strcmp(v, "false"))
            return ES_INVALID_ARGUMENT;
        put_be(b, 1, 4);
        es_buf_putc(b, v[0] == 't');
        return ES_OK;
    case ES_PG_COPY_FLOAT4: {
        char *e;
        float f = strtof(v, &e);
        uint32_t bits;
        if (!n || *e)
            return ES_INVALID_ARGUMENT;
        memcpy(&bits, &f, 4);
        put_be(b, 4, 4);
        put_be(b, bits, 4);
        return ES_OK;
    }
    case ES_PG_COPY_FLOAT8: {
        char *e;
        double d = strtod(v, &e);
        uint64_t bits;
        if (!n || *e)
            return ES_INVALID_ARGUMENT;
        memcpy(&bits, &d, 8);
        put_be(b, 8, 4);
        put_be(b, bits, 8);
        return ES_OK;
    }
    case ES_PG_COPY_BYTEA: {
        if (n < 2 || v[0] != '\\' || v[1] != 'x' || n % 2)
            return ES_INVALID_ARGUMENT;
        size_t len = (n - 2) / 2;
        put_be(b, len, 4);
        es_buf_reserve(b, len);
        unsigned char *o = (unsigned char *)b->data + b->len;
        for (size_t i = 0; i < len; i++) {
            int h = es_hex_value(v[2 + 2 * i]), l = es_hex_value(v[3 + 2 * i]);
            if (h < 0 || l < 0)
                return ES_INVALID_ARGUMENT;
            o[i] = (unsigned char)(h << 4 | l);
        }
        b->len += len;
        b->data[b->len] = 0;
        return ES_OK;
    }
    case ES_PG_COPY_TIMESTAMPTZ: {
        /* Binary timestamptz counts microseconds from 2000-01-01 UTC. */
        int y = n == 27 ? digits(v, 4) : -1, mo = digits(v + 5, 2), d = digits(v + 8, 2), h = digits(v + 11, 2),
            mi = digits(v + 14, 2), se = digits(v + 17, 2), us = digits(v + 20, 6);
        if (y < 0 || mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 || h > 23 || mi < 0 || mi > 59 || se < 0 ||
            se > 60 || us < 0 || v[4] != '-' || v[7] != '-' || v[10] != 'T' || v[13] != ':' || v[16] != ':' ||
            v[19] != '.' || v[26] != 'Z')
            return ES_INVALID_ARGUMENT;
        int64_t ts = ((es_days_from_civil(y, mo, d) * 24 + h) * 60 + mi) * 60 + se;
        ts = ts * 1000000 + us - INT64_C(946684800000000);
        put_be(b, 8, 4);
        put_be(b, (uint64_t)ts, 8);
        return ES_OK;
    }
    }
    return ES_INVALID_ARGUMENT;
}

/* ---- binary format, reading ---- */

#define MAX_FIELDS 16

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int format_error(es_error *err, const char *what)
{
    return es_error_set(err, ES_INTERNAL, "", "unexpected COPY data from the server (%s)", what);
}

void es_pg_copy_reader_init(es_pg_copy_reader *r, int nfields, es_pg_copy_tuple_fn on_tuple, void *data)
{
    memset(r, 0, sizeof *r);
    r->nfields = nfields;
    r->on_tuple = on_tuple;
    r->data = data;
    es_buf_init(&r->pend);
}

void es_pg_copy_reader_free(es_pg_copy_reader *r)
{
    if (r)
        es_buf_free(&r->pend);
}

/* Parses the complete tuples of p[0..n) and stores how many bytes it consumed (an incomplete
 * tuple is left for the next piece). */
static int parse(es_pg_copy_reader *r, const unsigned char *p, size_t n, size_t *used, es_error *err)
{
    static const unsigned char sig[11] = "PGCOPY\n\377\r\n";
    size_t off = 0;
    int rc = ES_OK;
    if (r->nfields < 1 || r->nfields > MAX_FIELDS)
        return es_error_set(err, ES_INVALID_ARGUMENT, "", "COPY reader: %d fields per tuple", r->nfields);
    if (!r->header_seen) {
        if (n < 19)
            goto out;
        if (memcmp(p, sig, 11) != 0)
            return format_error(err, "signature");
        size_t ext = be32(p + 15);
        if (n < 19 + ext)
            goto out;
        off = 19 + ext;
        r->header_seen = 1;
    }
    while (off < n && !r->trailer_seen) {
        if (n - off < 2)
            break;
        int16_t nf = (int16_t)(p[off] << 8 | p[off + 1]);
        if (nf == -1) {
            r->trailer_seen = 1;
            off += 2;
            break;
        }
        if (nf != r->nfields)
            return format_error(err, "field count");
        /* Field boundaries; stop at the first that is not all there. */
        const unsigned char *f[MAX_FIELDS];
        size_t len[MAX_FIELDS], at = off + 2;
        int complete = 1;
        for (int i = 0; i < nf && complete; i++) {
            if (n - at < 4) {
                complete = 0;
                break;
            }
            uint32_t l = be32(p + at);
            if (l == 0xffffffffu)
                return format_error(err, "NULL column");
            at += 4;
            if (n - at < l) {
                complete = 0;
                break;
            }
            f[i] = p + at;
            len[i] = l;
            at += l;
        }
        if (!complete)
            break;
        if ((rc = r->on_tuple(r->data, f, len)) != ES_OK)
            return rc;
        off = at;
    }
out:
    *used = off;
    return rc;
}

int es_pg_copy_reader_feed(es_pg_copy_reader *r, const void *p, size_t n, es_error *err)
{
    size_t used = 0;
    int rc;
    if (!r->pend.len) {
        /* The common case: whole tuples in the piece, parsed where libpq put them. */
        rc = parse(r, p, n, &used, err);
        if (rc == ES_OK && used < n)
            es_buf_append(&r->pend, (const char *)p + used, n - used);
    } else {
        es_buf_append(&r->pend, p, n);
        rc = parse(r, (const unsigned char *)r->pend.data, r->pend.len, &used, err);
        memmove(r->pend.data, r->pend.data + used, r->pend.len - used);
        r->pend.len -= used;
    }
    return rc;
}

int es_pg_copy_reader_finish(es_pg_copy_reader *r, es_error *err)
{
    if (!r->header_seen || !r->trailer_seen || r->pend.len)
        return format_error(err, "truncated");
    return ES_OK;
}
