/* Set-based projection rebuild: one snapshot of the events read with one COPY, folded a stream
 * at a time, rows written with one COPY, all in one transaction. See es/projection_rebuild.h. */
#include "es/projection_rebuild.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "es/buf.h"
#include "es/pg_pool.h"

#define FLUSH_AT (256 * 1024)       /* COPY data sent to W in pieces of about this size */
#define PROGRESS_EVERY 16384        /* events between progress calls */

typedef struct rebuild {
    const es_rebuild_config *cfg;
    const es_projection_def *def;
    const es_aggregate_def *agg;
    PGconn *w, *r;
    es_error *err;
    /* The stream being folded: its id (own copy), state (protobuf-c heap) and version. */
    es_buf sid;
    ProtobufCMessage *state;
    int64_t version;
    es_arena events;                /* the stream's decoded events; reset per stream */
    es_arena rowa;                  /* one row's text; reset per row */
    const char **params;
    size_t nparams;
    /* The last event type looked up (a stream's events mostly repeat a few types). */
    char type[256];
    size_t type_len;
    const es_event_def *edef;
    /* Rows go to W in COPY's binary format when every column's type is one encoded here (no
     * text parsing on the server, bytea and timestamps as they are), else in text format. */
    int binary;
    unsigned char *kinds;           /* per parameter: how it is encoded (binary) */
    es_buf rows;                    /* COPY data of rows not yet sent to W */
    es_buf versions;                /* COPY text of the consumer's (consumer, stream, version) */
    es_buf name;                    /* the consumer name, escaped for COPY text */
    int64_t done, total, nrows;
    /* Binary COPY parsing: bytes of an incomplete tuple carried to the next message. */
    es_buf pend;
    int header_seen, trailer_seen;
} rebuild;

/* ---- COPY text format ---------------------------------------------------------------------- */

/* Appends s[0..n) escaped for COPY's text format: the delimiter (tab), the row end (newline,
 * CR) and the escape character itself (backslash) are the only bytes with a meaning. Runs of
 * plain bytes are copied whole (most values have none to escape). */
static void copy_escape(es_buf *b, const char *s, size_t n)
{
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

/* ---- COPY binary format ------------------------------------------------------------------- */

/* How a column's text (from es__projector_row_text) becomes its binary COPY value. */
enum { K_TEXT, K_UUID, K_INT4, K_INT8, K_BOOL, K_FLOAT4, K_FLOAT8, K_JSONB, K_BYTEA, K_TIMESTAMPTZ, K_UNKNOWN };

/* The encoding for a column of sql_type filled from field f, or K_UNKNOWN: only pairs whose text
 * form es__projector_row_text is known to produce are encoded (a custom sql_type on a string
 * field, say, keeps the whole table on the text format, where the server parses it). */
static int column_kind(const char *sql_type, const ProtobufCFieldDescriptor *f)
{
    if (!f)
        return K_UNKNOWN;
    int repeated = f->label == PROTOBUF_C_LABEL_REPEATED;
    int ts = f->type == PROTOBUF_C_TYPE_MESSAGE &&
             !strcmp(((const ProtobufCMessageDescriptor *)f->descriptor)->name, "google.protobuf.Timestamp");
    if (!strcmp(sql_type, "jsonb"))
        return repeated || (f->type == PROTOBUF_C_TYPE_MESSAGE && !ts) ? K_JSONB : K_UNKNOWN;
    if (repeated)
        return K_UNKNOWN;
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING:
        return !strcmp(sql_type, "text") ? K_TEXT : !strcmp(sql_type, "uuid") ? K_UUID : K_UNKNOWN;
    case PROTOBUF_C_TYPE_ENUM:
        return !strcmp(sql_type, "text") ? K_TEXT : K_UNKNOWN;
    case PROTOBUF_C_TYPE_INT32: case PROTOBUF_C_TYPE_SINT32: case PROTOBUF_C_TYPE_SFIXED32:
        return !strcmp(sql_type, "integer") ? K_INT4 : !strcmp(sql_type, "bigint") ? K_INT8 : K_UNKNOWN;
    case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64: case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT32: case PROTOBUF_C_TYPE_FIXED32:
        return !strcmp(sql_type, "bigint") ? K_INT8 : K_UNKNOWN;
    case PROTOBUF_C_TYPE_BOOL:
        return !strcmp(sql_type, "boolean") ? K_BOOL : K_UNKNOWN;
    case PROTOBUF_C_TYPE_FLOAT:
        return !strcmp(sql_type, "real") ? K_FLOAT4 : K_UNKNOWN;
    case PROTOBUF_C_TYPE_DOUBLE:
        return !strcmp(sql_type, "double precision") ? K_FLOAT8 : K_UNKNOWN;
    case PROTOBUF_C_TYPE_BYTES:
        return !strcmp(sql_type, "bytea") ? K_BYTEA : K_UNKNOWN;
    case PROTOBUF_C_TYPE_MESSAGE:
        return ts && !strcmp(sql_type, "timestamptz") ? K_TIMESTAMPTZ : K_UNKNOWN;
    default:
        return K_UNKNOWN;
    }
}

static void put_be(es_buf *b, uint64_t v, int bytes)
{
    char x[8];
    for (int i = 0; i < bytes; i++)
        x[i] = (char)(v >> (8 * (bytes - 1 - i)));
    es_buf_append(b, x, (size_t)bytes);
}

static int hexval(int c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* Days since 1970-01-01 of a proleptic Gregorian date. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

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

/* Appends one non-NULL value (length word and bytes) in kind's binary form; ES_INVALID_ARGUMENT
 * when the text is not what the type reads (the live projector's statement would fail on it
 * too). */
static int put_binary(es_buf *b, int kind, const char *v)
{
    size_t n = strlen(v);
    switch (kind) {
    case K_TEXT:
        put_be(b, n, 4);
        es_buf_append(b, v, n);
        return ES_OK;
    case K_JSONB:
        put_be(b, n + 1, 4);
        es_buf_putc(b, 1); /* jsonb's binary format: version 1, then the JSON text */
        es_buf_append(b, v, n);
        return ES_OK;
    case K_UUID: {
        /* uuid_in's forms: optional braces, hyphens only between groups of four digits. */
        unsigned char u[16];
        size_t i = 0, nd = 0, end = n;
        if (n && v[0] == '{') {
            if (v[n - 1] != '}')
                return ES_INVALID_ARGUMENT;
            i = 1;
            end = n - 1;
        }
        for (; i < end; i++) {
            if (v[i] == '-' && nd && nd < 32 && nd % 4 == 0 && i + 1 < end && v[i + 1] != '-')
                continue;
            int h = hexval(v[i]);
            if (h < 0 || nd >= 32)
                return ES_INVALID_ARGUMENT;
            if (nd % 2 == 0)
                u[nd / 2] = (unsigned char)(h << 4);
            else
                u[nd / 2] |= (unsigned char)h;
            nd++;
        }
        if (nd != 32)
            return ES_INVALID_ARGUMENT;
        put_be(b, 16, 4);
        es_buf_append(b, u, 16);
        return ES_OK;
    }
    case K_INT4:
    case K_INT8: {
        char *e;
        errno = 0;
        long long x = strtoll(v, &e, 10);
        if (!n || *e || errno || (kind == K_INT4 && (x < INT32_MIN || x > INT32_MAX)))
            return ES_INVALID_ARGUMENT;
        put_be(b, kind == K_INT4 ? 4 : 8, 4);
        put_be(b, (uint64_t)x, kind == K_INT4 ? 4 : 8);
        return ES_OK;
    }
    case K_BOOL:
        if (strcmp(v, "true") && strcmp(v, "false"))
            return ES_INVALID_ARGUMENT;
        put_be(b, 1, 4);
        es_buf_putc(b, v[0] == 't');
        return ES_OK;
    case K_FLOAT4: {
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
    case K_FLOAT8: {
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
    case K_BYTEA: {
        if (n < 2 || v[0] != '\\' || v[1] != 'x' || n % 2)
            return ES_INVALID_ARGUMENT;
        size_t len = (n - 2) / 2;
        put_be(b, len, 4);
        es_buf_reserve(b, len);
        unsigned char *o = (unsigned char *)b->data + b->len;
        for (size_t i = 0; i < len; i++) {
            int h = hexval(v[2 + 2 * i]), l = hexval(v[3 + 2 * i]);
            if (h < 0 || l < 0)
                return ES_INVALID_ARGUMENT;
            o[i] = (unsigned char)(h << 4 | l);
        }
        b->len += len;
        b->data[b->len] = 0;
        return ES_OK;
    }
    case K_TIMESTAMPTZ: {
        /* es_rfc3339_us's form, YYYY-MM-DDTHH:MM:SS.ffffffZ; binary timestamptz counts
         * microseconds from 2000-01-01 UTC. */
        int y = n == 27 ? digits(v, 4) : -1, mo = digits(v + 5, 2), d = digits(v + 8, 2), h = digits(v + 11, 2),
            mi = digits(v + 14, 2), se = digits(v + 17, 2), us = digits(v + 20, 6);
        if (y < 0 || mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 || h > 23 || mi < 0 || mi > 59 || se < 0 ||
            se > 60 || us < 0 || v[4] != '-' || v[7] != '-' || v[10] != 'T' || v[13] != ':' || v[16] != ':' ||
            v[19] != '.' || v[26] != 'Z')
            return ES_INVALID_ARGUMENT;
        int64_t t = ((days_from_civil(y, mo, d) * 24 + h) * 60 + mi) * 60 + se;
        t = t * 1000000 + us - INT64_C(946684800000000);
        put_be(b, 8, 4);
        put_be(b, (uint64_t)t, 8);
        return ES_OK;
    }
    default:
        return ES_INVALID_ARGUMENT;
    }
}

/* Sends b to W's open COPY and empties it. */
static int send_copy(rebuild *rb, es_buf *b)
{
    if (!b->len)
        return ES_OK;
    if (PQputCopyData(rb->w, b->data, (int)b->len) != 1)
        return es_pg_error(rb->w, NULL, "rebuild: write rows", rb->err);
    es_buf_reset(b);
    return ES_OK;
}

/* ---- folding ------------------------------------------------------------------------------- */

/* The stream is complete: its row goes to the projection's COPY, its version to the
 * bookkeeping's. */
static int finish_stream(rebuild *rb)
{
    if (!rb->state)
        return ES_OK;
    es_arena_reset(&rb->rowa);
    int rc = es__projector_row_text(rb->cfg->projector, rb->state, rb->version, &rb->rowa, rb->params, rb->err);
    if (rc != ES_OK)
        return rc;
    if (rb->binary) {
        put_be(&rb->rows, rb->nparams, 2);
        for (size_t i = 0; i < rb->nparams; i++) {
            if (!rb->params[i])
                put_be(&rb->rows, 0xffffffffu, 4);
            else if (put_binary(&rb->rows, rb->kinds[i], rb->params[i]) != ES_OK)
                return es_error_set(rb->err, ES_INVALID_ARGUMENT, "",
                                    "rebuild %s: stream %s: column %s: \"%.100s\" is not a valid value", rb->def->name,
                                    rb->sid.data, i + 1 < rb->nparams ? rb->def->columns[i].column : "es_state",
                                    rb->params[i]);
        }
    } else {
        for (size_t i = 0; i < rb->nparams; i++) {
            if (i)
                es_buf_putc(&rb->rows, '\t');
            if (rb->params[i])
                copy_escape(&rb->rows, rb->params[i], strlen(rb->params[i]));
            else
                es_buf_append(&rb->rows, "\\N", 2);
        }
        es_buf_putc(&rb->rows, '\n');
    }
    char v[32];
    int vn = snprintf(v, sizeof v, "\t%" PRId64 "\n", rb->version);
    es_buf_append(&rb->versions, rb->name.data, rb->name.len);
    es_buf_putc(&rb->versions, '\t');
    copy_escape(&rb->versions, rb->sid.data, rb->sid.len);
    es_buf_append(&rb->versions, v, (size_t)vn);
    protobuf_c_message_free_unpacked(rb->state, NULL);
    rb->state = NULL;
    es_arena_reset(&rb->events);
    rb->nrows++;
    return rb->rows.len >= FLUSH_AT ? send_copy(rb, &rb->rows) : ES_OK;
}

static const es_event_def *find_event(rebuild *rb, const char *type, size_t len)
{
    if (rb->edef && len == rb->type_len && !memcmp(type, rb->type, len))
        return rb->edef;
    if (len >= sizeof rb->type)
        return NULL;
    memcpy(rb->type, type, len);
    rb->type[len] = 0;
    rb->type_len = len;
    rb->edef = es_schema_find_event(rb->agg, rb->type);
    return rb->edef;
}

/* One event, in (stream_id, version) order. */
static int on_event(rebuild *rb, const char *sid, size_t sid_len, int64_t version, const char *type, size_t type_len,
                    uint32_t schema_version, const uint8_t *payload, size_t payload_len)
{
    int rc;
    if (!rb->state || sid_len != rb->sid.len || memcmp(sid, rb->sid.data, sid_len) != 0) {
        if ((rc = finish_stream(rb)) != ES_OK)
            return rc;
        es_buf_reset(&rb->sid);
        es_buf_append(&rb->sid, sid, sid_len);
        rb->state = es_xmalloc(rb->agg->state_descriptor->sizeof_message);
        protobuf_c_message_init(rb->agg->state_descriptor, rb->state);
        rb->version = 0;
    }
    if (version != rb->version + 1)
        return es_error_set(rb->err, ES_DATA_LOSS, "version",
                            "rebuild %s: stream %s: version %" PRId64 " is missing from the event store (next stored "
                            "version %" PRId64 ")", rb->def->name, rb->sid.data, rb->version + 1, version);
    const es_event_def *edef = find_event(rb, type, type_len);
    if (!edef)
        return es_error_set(rb->err, ES_INVALID_ARGUMENT, "event_type",
                            "rebuild %s: unknown %s event type %.*s (stream %s version %" PRId64 ")", rb->def->name,
                            rb->agg->name, (int)(type_len > 200 ? 200 : type_len), type, rb->sid.data, version);
    /* Decoded (and upcast when stored with an older schema version) as the live projector does. */
    ProtobufCMessage *event = NULL;
    /* The configured upcasters, else the projector's own (es_projector_set_upcasters). */
    size_t n_ups = rb->cfg->n_upcasters;
    const es_upcaster *ups = rb->cfg->upcasters;
    if (!ups)
        ups = es__projector_upcasters(rb->cfg->projector, &n_ups);
    if ((rc = es_event_decode(edef, schema_version, payload, payload_len, ups, n_ups, &rb->events, &event,
                              rb->err)) != ES_OK) {
        char why[sizeof rb->err->message];
        snprintf(why, sizeof why, "%s", rb->err->message);
        return es_error_set(rb->err, rc, "payload", "rebuild %s: stream %s version %" PRId64 ": %s", rb->def->name,
                            rb->sid.data, version, why);
    }
    if ((rc = edef->apply(rb->state, event)) != ES_OK)
        return es_error_set(rb->err, rc, "event_type", "rebuild %s: %s cannot apply to %s at version %" PRId64,
                            rb->def->name, edef->type, rb->sid.data, version);
    rb->version = version;
    if (++rb->done % PROGRESS_EVERY == 0 && rb->cfg->progress)
        rb->cfg->progress(rb->cfg->progress_data, rb->done, rb->total > rb->done ? rb->total : rb->done);
    return ES_OK;
}

/* ---- binary COPY parsing ------------------------------------------------------------------- */

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int copy_format_error(rebuild *rb, const char *what)
{
    return es_error_set(rb->err, ES_INTERNAL, "", "rebuild %s: unexpected COPY data from the server (%s)",
                        rb->def->name, what);
}

/* Parses the complete tuples of p[0..n) (stream_id, version, event_type, schema_version,
 * payload) and stores how many bytes it consumed (an incomplete tuple is left for the next call). */
static int parse_copy(rebuild *rb, const unsigned char *p, size_t n, size_t *used)
{
    static const unsigned char sig[11] = "PGCOPY\n\377\r\n";
    size_t off = 0;
    int rc = ES_OK;
    if (!rb->header_seen) {
        if (n < 19)
            goto out;
        if (memcmp(p, sig, 11) != 0)
            return copy_format_error(rb, "signature");
        size_t ext = be32(p + 15);
        if (n < 19 + ext)
            goto out;
        off = 19 + ext;
        rb->header_seen = 1;
    }
    while (off < n && !rb->trailer_seen) {
        if (n - off < 2)
            break;
        int16_t nf = (int16_t)(p[off] << 8 | p[off + 1]);
        if (nf == -1) {
            rb->trailer_seen = 1;
            off += 2;
            break;
        }
        if (nf != 5)
            return copy_format_error(rb, "field count");
        /* Field boundaries; stop at the first that is not all there. */
        const unsigned char *f[5];
        size_t len[5], at = off + 2;
        int complete = 1;
        for (int i = 0; i < 5 && complete; i++) {
            if (n - at < 4) {
                complete = 0;
                break;
            }
            uint32_t l = be32(p + at);
            if (l == 0xffffffffu)
                return copy_format_error(rb, "NULL column");
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
        if (len[1] != 8 || len[3] != 4)
            return copy_format_error(rb, "integer width");
        int64_t version = (int64_t)((uint64_t)be32(f[1]) << 32 | be32(f[1] + 4));
        if ((rc = on_event(rb, (const char *)f[0], len[0], version, (const char *)f[2], len[2], be32(f[3]), f[4],
                           len[4])) != ES_OK)
            return rc;
        off = at;
    }
out:
    *used = off;
    return rc;
}

/* Reads R's COPY to the end, folding as the data arrives (each message holds about a row). */
static int read_events(rebuild *rb)
{
    for (;;) {
        char *msg = NULL;
        int n = PQgetCopyData(rb->r, &msg, 0);
        if (n == -1)
            break;
        if (n < 0)
            return es_pg_error(rb->r, NULL, "rebuild: read events", rb->err);
        size_t used = 0;
        int rc;
        if (!rb->pend.len) {
            rc = parse_copy(rb, (const unsigned char *)msg, (size_t)n, &used);
            if (rc == ES_OK && used < (size_t)n)
                es_buf_append(&rb->pend, msg + used, (size_t)n - used);
        } else {
            es_buf_append(&rb->pend, msg, (size_t)n);
            rc = parse_copy(rb, (const unsigned char *)rb->pend.data, rb->pend.len, &used);
            memmove(rb->pend.data, rb->pend.data + used, rb->pend.len - used);
            rb->pend.len -= used;
        }
        PQfreemem(msg);
        if (rc != ES_OK)
            return rc;
    }
    PGresult *res = PQgetResult(rb->r);
    int rc = PQresultStatus(res) == PGRES_COMMAND_OK ? ES_OK : es_pg_error(rb->r, res, "rebuild: read events", rb->err);
    PQclear(res);
    while ((res = PQgetResult(rb->r)))
        PQclear(res);
    if (rc == ES_OK && (!rb->header_seen || !rb->trailer_seen || rb->pend.len))
        rc = copy_format_error(rb, "truncated");
    return rc;
}

/* ---- the transaction ----------------------------------------------------------------------- */

/* Runs sql (one or more statements) and wants the last result to have status want; *out (may be
 * NULL) receives it, else it is cleared. */
static int run(PGconn *c, const char *sql, ExecStatusType want, const char *what, PGresult **out, es_error *err)
{
    PGresult *res = PQexec(c, sql);
    if (PQresultStatus(res) != want) {
        int rc = es_pg_error(c, res, what, err);
        PQclear(res);
        return rc;
    }
    if (out)
        *out = res;
    else
        PQclear(res);
    return ES_OK;
}

/* Ends W's COPY (with an error, so it aborts) if one is open, and rolls back. */
static void abandon(PGconn *w)
{
    if (!w || PQstatus(w) != CONNECTION_OK)
        return;
    PGresult *res;
    if (PQtransactionStatus(w) == PQTRANS_ACTIVE) {
        PQputCopyEnd(w, "rebuild abandoned");
        while ((res = PQgetResult(w)))
            PQclear(res);
    }
    PQclear(PQexec(w, "ROLLBACK"));
}

/* Ends W's COPY and checks its result. */
static int end_copy(rebuild *rb, const char *what)
{
    if (PQputCopyEnd(rb->w, NULL) != 1)
        return es_pg_error(rb->w, NULL, what, rb->err);
    PGresult *res = PQgetResult(rb->w);
    int rc = PQresultStatus(res) == PGRES_COMMAND_OK ? ES_OK : es_pg_error(rb->w, res, what, rb->err);
    PQclear(res);
    while ((res = PQgetResult(rb->w)))
        PQclear(res);
    return rc;
}

static PGconn *connect_to(const char *conninfo, es_error *err, int *rc)
{
    PGconn *c = PQconnectdb(conninfo);
    if (PQstatus(c) != CONNECTION_OK) {
        *rc = es_pg_error(c, NULL, "rebuild: connect", err);
        PQfinish(c);
        return NULL;
    }
    PQclear(PQexec(c, "SET application_name = 'es-rebuild'"));
    return c;
}

int es_projection_rebuild(const es_rebuild_config *cfg, es_rebuild_result *out, es_error *err)
{
    if (out)
        *out = (es_rebuild_result){0};
    if (!cfg || !cfg->conninfo || !cfg->name || !cfg->projector)
        return es_error_set(err, ES_INVALID_ARGUMENT, "", "rebuild: conninfo, name and projector are required");
    rebuild rb = {.cfg = cfg, .err = err};
    rb.def = es__projector_def(cfg->projector);
    rb.agg = rb.def->aggregate;
    rb.nparams = es__projector_n_params(cfg->projector);
    rb.params = es_xcalloc(rb.nparams, sizeof *rb.params);
    rb.kinds = es_xcalloc(rb.nparams, 1);
    rb.binary = !cfg->text_format;
    for (size_t i = 0; i + 1 < rb.nparams; i++) {
        const es_projection_column *col = &rb.def->columns[i];
        rb.kinds[i] = (unsigned char)column_kind(
            col->sql_type, protobuf_c_message_descriptor_get_field(rb.def->descriptor, col->field_id));
        rb.binary &= rb.kinds[i] != K_UNKNOWN;
    }
    rb.kinds[rb.nparams - 1] = K_BYTEA; /* es_state */
    es_arena_init(&rb.events);
    es_arena_init(&rb.rowa);
    es_buf_init(&rb.sid);
    es_buf_init(&rb.rows);
    es_buf_init(&rb.versions);
    es_buf_init(&rb.name);
    es_buf_init(&rb.pend);
    copy_escape(&rb.name, cfg->name, strlen(cfg->name));
    if (rb.binary) {
        static const char header[19] = "PGCOPY\n\377\r\n\0\0\0\0\0\0\0\0\0";
        es_buf_append(&rb.rows, header, sizeof header);
    }
    es_buf sql;
    es_buf_init(&sql);
    char *type_lit = NULL, *name_lit = NULL, *snap_lit = NULL;
    PGresult *res = NULL, *indexes = NULL;
    int rc = ES_OK, committed = 0;

    if (!(rb.w = connect_to(cfg->conninfo, err, &rc)) || !(rb.r = connect_to(cfg->conninfo, err, &rc)))
        goto done;
    type_lit = PQescapeLiteral(rb.r, rb.agg->name, strlen(rb.agg->name));
    name_lit = PQescapeLiteral(rb.w, cfg->name, strlen(cfg->name));
    if (!type_lit || !name_lit) {
        rc = es_pg_error(rb.w, NULL, "rebuild: quote", err);
        goto done;
    }
    /* W: the locks (bookkeeping first: every live consumer transaction touches it before the
     * projection, see es/projection_rebuild.h), then the snapshot R reads, taken with both held. */
    es_buf_printf(&sql, "BEGIN; LOCK TABLE es_consumer_streams IN ACCESS EXCLUSIVE MODE;"
                        " LOCK TABLE %s IN ACCESS EXCLUSIVE MODE; SELECT pg_export_snapshot()", rb.def->name);
    if ((rc = run(rb.w, sql.data, PGRES_TUPLES_OK, "rebuild: lock", &res, err)) != ES_OK)
        goto done;
    snap_lit = PQescapeLiteral(rb.r, PQgetvalue(res, 0, 0), strlen(PQgetvalue(res, 0, 0)));
    PQclear(res);
    res = NULL;
    if (!snap_lit) {
        rc = es_pg_error(rb.r, NULL, "rebuild: quote", err);
        goto done;
    }
    es_buf_reset(&sql);
    /* JIT compiling the scan's expressions costs more than it saves on a plain index scan. */
    es_buf_printf(&sql, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT %s;"
                        " SET LOCAL jit = off", snap_lit);
    if ((rc = run(rb.r, sql.data, PGRES_COMMAND_OK, "rebuild: snapshot", NULL, err)) != ES_OK)
        goto done;
    if (cfg->progress) {
        /* PostgreSQL's row estimate of es_events (a count would cost a scan before the work
         * starts); the last call reports the real total. */
        if ((rc = run(rb.r, "SELECT greatest(reltuples, 0)::int8 FROM pg_class WHERE oid = 'es_events'::regclass",
                      PGRES_TUPLES_OK, "rebuild: estimate events", &res, err)) != ES_OK)
            goto done;
        rb.total = PQntuples(res) ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : 0;
        PQclear(res);
        res = NULL;
        cfg->progress(cfg->progress_data, 0, rb.total);
    }
    /* R: every event of the aggregate, a stream's events together and in version order; sent
     * now so that the scan starts while W empties the table. */
    es_buf_reset(&sql);
    es_buf_printf(&sql, "COPY (SELECT stream_id, version, event_type, schema_version, payload FROM es_events"
                        " WHERE stream_type = %s ORDER BY stream_id, version) TO STDOUT (FORMAT binary)", type_lit);
    if (!PQsendQuery(rb.r, sql.data)) {
        rc = es_pg_error(rb.r, NULL, "rebuild: read events", err);
        goto done;
    }
    /* W: the table's plain indexes (not backing a constraint, the replica identity or CLUSTER)
     * are dropped and made again after the load: one sorted build each instead of an insert
     * per row and index, the largest part of the load's cost. */
    es_buf_reset(&sql);
    es_buf_printf(&sql, "SELECT format('DROP INDEX %%I.%%I', n.nspname, c.relname), pg_get_indexdef(i.indexrelid)"
                        " FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
                        " JOIN pg_namespace n ON n.oid = c.relnamespace"
                        " WHERE i.indrelid = '%s'::regclass AND NOT i.indisreplident AND NOT i.indisclustered"
                        " AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)"
                        " ORDER BY c.relname", rb.def->name);
    if ((rc = run(rb.w, sql.data, PGRES_TUPLES_OK, "rebuild: list indexes", &indexes, err)) != ES_OK)
        goto done;
    /* W: drop them, empty the table, forget the consumer's versions and parkings, open the
     * rows' COPY. */
    es_buf_reset(&sql);
    for (int i = 0; i < PQntuples(indexes); i++)
        es_buf_printf(&sql, "%s; ", PQgetvalue(indexes, i, 0));
    es_buf_printf(&sql, "TRUNCATE %s; DELETE FROM es_consumer_streams WHERE consumer = %s; COPY %s (", rb.def->name,
                  name_lit, rb.def->name);
    for (size_t i = 0; i + 1 < rb.nparams; i++)
        es_buf_printf(&sql, "%s, ", rb.def->columns[i].column);
    es_buf_puts(&sql, rb.binary ? "es_state) FROM STDIN (FORMAT binary)" : "es_state) FROM STDIN");
    if ((rc = run(rb.w, sql.data, PGRES_COPY_IN, "rebuild: empty the table", NULL, err)) != ES_OK)
        goto done;
    res = PQgetResult(rb.r);
    if (PQresultStatus(res) != PGRES_COPY_OUT) {
        rc = es_pg_error(rb.r, res, "rebuild: read events", err);
        goto done;
    }
    PQclear(res);
    res = NULL;
    if ((rc = read_events(&rb)) != ES_OK || (rc = finish_stream(&rb)) != ES_OK)
        goto done;
    if (rb.binary)
        put_be(&rb.rows, 0xffff, 2); /* the trailer */
    if ((rc = send_copy(&rb, &rb.rows)) != ES_OK || (rc = end_copy(&rb, "rebuild: write rows")) != ES_OK)
        goto done;
    /* The indexes again, over the loaded table. */
    for (int i = 0; i < PQntuples(indexes); i++)
        if ((rc = run(rb.w, PQgetvalue(indexes, i, 1), PGRES_COMMAND_OK, "rebuild: index", NULL, err)) != ES_OK)
            goto done;
    /* The consumer's versions: what the live runner finds when it resumes. */
    if ((rc = run(rb.w, "COPY es_consumer_streams (consumer, stream_id, version) FROM STDIN", PGRES_COPY_IN,
                  "rebuild: record versions", NULL, err)) != ES_OK)
        goto done;
    for (size_t off = 0; off < rb.versions.len; off += FLUSH_AT) {
        size_t n = rb.versions.len - off < FLUSH_AT ? rb.versions.len - off : FLUSH_AT;
        if (PQputCopyData(rb.w, rb.versions.data + off, (int)n) != 1) {
            rc = es_pg_error(rb.w, NULL, "rebuild: record versions", err);
            goto done;
        }
    }
    if ((rc = end_copy(&rb, "rebuild: record versions")) != ES_OK)
        goto done;
    if ((rc = run(rb.w, "COMMIT", PGRES_COMMAND_OK, "rebuild: commit", &res, err)) != ES_OK)
        goto done;
    committed = !strcmp(PQcmdStatus(res), "COMMIT");
    PQclear(res);
    res = NULL;
    if (!committed) {
        rc = es_error_set(err, ES_INTERNAL, "", "rebuild %s: the transaction did not commit", rb.def->name);
        goto done;
    }
    if (cfg->progress)
        cfg->progress(cfg->progress_data, rb.done, rb.done);
    if (out)
        *out = (es_rebuild_result){.events = rb.done, .rows = rb.nrows};
done:
    PQclear(res);
    PQclear(indexes);
    if (rc != ES_OK && !committed)
        abandon(rb.w);
    PQfreemem(type_lit);
    PQfreemem(name_lit);
    PQfreemem(snap_lit);
    PQfinish(rb.r);
    PQfinish(rb.w);
    if (rb.state)
        protobuf_c_message_free_unpacked(rb.state, NULL);
    es_arena_free(&rb.events);
    es_arena_free(&rb.rowa);
    es_buf_free(&rb.sid);
    es_buf_free(&rb.rows);
    es_buf_free(&rb.versions);
    es_buf_free(&rb.name);
    es_buf_free(&rb.pend);
    es_buf_free(&sql);
    free(rb.params);
    free(rb.kinds);
    return rc;
}
