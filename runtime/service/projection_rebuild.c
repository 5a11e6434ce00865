/* Set-based projection rebuild: one snapshot of the events read with one COPY, folded a stream
 * at a time, rows written with one COPY, all in one transaction. See es/projection_rebuild.h. */
#include "es/projection_rebuild.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "es/buf.h"
#include "es/pg_copy.h"
#include "es/pg_session.h"
#include "es/projection_binary.h"

#define FLUSH_AT (256 * 1024)       /* COPY data sent to W in pieces of about this size */
#define PROGRESS_EVERY 16384        /* events between progress calls */

typedef struct rebuild {
    const es_rebuild_config *cfg;
    const es_projection_def *def;
    const es_aggregate_def *agg;
    es_pg_session *ws, *rs;         /* the writer W and the reader R */
    PGconn *w, *r;                  /* their connections */
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
    /* ... and written straight from the state (es/projection_binary.h) when the projector's
     * JSON registry is known (es__projector_json), else converted from es__projector_row_text's text. */
    int direct;
    unsigned char *kinds;           /* per parameter: its es_pg_copy_type (binary) */
    es_buf rows;                    /* COPY data of rows not yet sent to W */
    es_buf versions;                /* COPY text of the consumer's (consumer, stream, version) */
    es_buf name;                    /* the consumer name, escaped for COPY text */
    int64_t done, total, nrows;
} rebuild;

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
    int rc;
    if (rb->direct) {
        if ((rc = es_projection_binary_row(rb->def, es__projector_json(rb->cfg->projector), rb->state, rb->version, &rb->rowa, &rb->rows,
                                           rb->err)) != ES_OK) {
            char why[sizeof rb->err->message], field[sizeof rb->err->field];
            snprintf(why, sizeof why, "%s", rb->err->message);
            snprintf(field, sizeof field, "%s", rb->err->field);
            return es_error_set(rb->err, rc, field, "rebuild %s: stream %s: %s", rb->def->name, rb->sid.data, why);
        }
        goto written;
    }
    rc = es__projector_row_text(rb->cfg->projector, rb->state, rb->version, &rb->rowa, rb->params, rb->err);
    if (rc != ES_OK)
        return rc;
    if (rb->binary) {
        es_pg_copy_binary_tuple(&rb->rows, (uint16_t)rb->nparams);
        for (size_t i = 0; i < rb->nparams; i++) {
            if (!rb->params[i])
                es_pg_copy_binary_null(&rb->rows);
            else if (es_pg_copy_binary_value(&rb->rows, (es_pg_copy_type)rb->kinds[i], rb->params[i]) != ES_OK)
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
                es_pg_copy_text_escape(&rb->rows, rb->params[i], strlen(rb->params[i]));
            else
                es_buf_append(&rb->rows, "\\N", 2);
        }
        es_buf_putc(&rb->rows, '\n');
    }
written:;
    char v[32];
    int vn = snprintf(v, sizeof v, "\t%" PRId64 "\n", rb->version);
    es_buf_append(&rb->versions, rb->name.data, rb->name.len);
    es_buf_putc(&rb->versions, '\t');
    es_pg_copy_text_escape(&rb->versions, rb->sid.data, rb->sid.len);
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

/* ---- reading the events ------------------------------------------------------------------- */

/* One tuple of R's COPY: stream_id, version, event_type, schema_version, payload. */
static int on_tuple(void *data, const unsigned char *const *f, const size_t *len)
{
    rebuild *rb = data;
    if (len[1] != 8 || len[3] != 4)
        return es_error_set(rb->err, ES_INTERNAL, "", "rebuild %s: unexpected COPY data from the server (integer width)",
                            rb->def->name);
    uint32_t v = (uint32_t)f[3][0] << 24 | (uint32_t)f[3][1] << 16 | (uint32_t)f[3][2] << 8 | f[3][3];
    uint64_t version = 0;
    for (int i = 0; i < 8; i++)
        version = version << 8 | f[1][i];
    return on_event(rb, (const char *)f[0], len[0], (int64_t)version, (const char *)f[2], len[2], v, f[4], len[4]);
}

/* Reads R's COPY to the end, folding as the data arrives (each message holds about a row). */
static int read_events(rebuild *rb)
{
    es_pg_copy_reader rd;
    es_pg_copy_reader_init(&rd, 5, on_tuple, rb);
    int rc = ES_OK;
    for (;;) {
        char *msg = NULL;
        int n = PQgetCopyData(rb->r, &msg, 0);
        if (n == -1)
            break;
        if (n < 0) {
            rc = es_pg_error(rb->r, NULL, "rebuild: read events", rb->err);
            goto out;
        }
        rc = es_pg_copy_reader_feed(&rd, msg, (size_t)n, rb->err);
        PQfreemem(msg);
        if (rc != ES_OK)
            goto out;
    }
    PGresult *res = PQgetResult(rb->r);
    rc = PQresultStatus(res) == PGRES_COMMAND_OK ? ES_OK : es_pg_error(rb->r, res, "rebuild: read events", rb->err);
    PQclear(res);
    while ((res = PQgetResult(rb->r)))
        PQclear(res);
    if (rc == ES_OK)
        rc = es_pg_copy_reader_finish(&rd, rb->err);
out:
    es_pg_copy_reader_free(&rd);
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
static void abandon(es_pg_session *ws)
{
    PGconn *w = es_pg_session_conn(ws);
    if (!w || PQstatus(w) != CONNECTION_OK)
        return;
    PGresult *res;
    if (PQtransactionStatus(w) == PQTRANS_ACTIVE) {
        PQputCopyEnd(w, "rebuild abandoned");
        while ((res = PQgetResult(w)))
            PQclear(res);
    }
    es_pg_session_rollback(ws, "rebuild: roll back");
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

/* A session of the rebuild's own, connected; NULL with *rc and err set. */
static es_pg_session *connect_to(const char *conninfo, es_error *err, int *rc)
{
    es_pg_session_config sc = {.conninfo = conninfo, .application_name = "es-rebuild"};
    es_pg_session *s = es_pg_session_new(&sc, err);
    if (!s) {
        *rc = err ? err->code : ES_INVALID_ARGUMENT;
        return NULL;
    }
    if ((*rc = es_pg_session_ensure(s, err)) != ES_OK) {
        es_pg_session_free(s);
        return NULL;
    }
    return s;
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
        int kind = es_projection_binary_kind(
            col->sql_type, protobuf_c_message_descriptor_get_field(rb.def->descriptor, col->field_id));
        rb.kinds[i] = (unsigned char)kind;
        rb.binary &= kind != ES_PROJECTION_BINARY_NONE;
    }
    rb.kinds[rb.nparams - 1] = ES_PG_COPY_BYTEA; /* es_state */
    rb.direct = rb.binary && !cfg->via_text && es__projector_json(cfg->projector) && rb.nparams == rb.def->n_columns + 1 && es_projection_binary_supported(rb.def);
    es_arena_init(&rb.events);
    es_arena_init(&rb.rowa);
    es_buf_init(&rb.sid);
    es_buf_init(&rb.rows);
    es_buf_init(&rb.versions);
    es_buf_init(&rb.name);
    es_pg_copy_text_escape(&rb.name, cfg->name, strlen(cfg->name));
    if (rb.binary)
        es_pg_copy_binary_header(&rb.rows);
    es_buf sql;
    es_buf_init(&sql);
    char *type_lit = NULL, *name_lit = NULL, *snap_lit = NULL;
    PGresult *res = NULL, *indexes = NULL;
    int rc = ES_OK, committed = 0;

    if (!(rb.ws = connect_to(cfg->conninfo, err, &rc)) || !(rb.rs = connect_to(cfg->conninfo, err, &rc)))
        goto done;
    rb.w = es_pg_session_conn(rb.ws);
    rb.r = es_pg_session_conn(rb.rs);
    type_lit = PQescapeLiteral(rb.r, rb.agg->name, strlen(rb.agg->name));
    name_lit = PQescapeLiteral(rb.w, cfg->name, strlen(cfg->name));
    if (!type_lit || !name_lit) {
        rc = es_pg_error(rb.w, NULL, "rebuild: quote", err);
        goto done;
    }
    /* W: the locks (bookkeeping first: every live consumer transaction touches it before the
     * projection, see es/projection_rebuild.h), then the snapshot R reads, taken with both held. */
    es_buf_printf(&sql, "BEGIN;%s LOCK TABLE %s IN ACCESS EXCLUSIVE MODE; SELECT pg_export_snapshot()",
                  cfg->beside ? "" : " LOCK TABLE es_consumer_streams IN ACCESS EXCLUSIVE MODE;", rb.def->name);
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
        /* PostgreSQL's row estimate of es_events, summed over its partitions (a partitioned
         * parent's own estimate is -1; a count would cost a scan before the work starts); the
         * last call reports the real total. */
        if ((rc = run(rb.r, "SELECT coalesce(sum(greatest(c.reltuples, 0)), 0)::int8 FROM pg_class c"
                            " WHERE c.oid = 'es_events'::regclass OR c.oid IN (SELECT inhrelid FROM pg_inherits"
                            " WHERE inhparent = 'es_events'::regclass)",
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
        es_pg_copy_binary_trailer(&rb.rows);
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
        abandon(rb.ws);
    PQfreemem(type_lit);
    PQfreemem(name_lit);
    PQfreemem(snap_lit);
    es_pg_session_free(rb.rs);
    es_pg_session_free(rb.ws);
    if (rb.state)
        protobuf_c_message_free_unpacked(rb.state, NULL);
    es_arena_free(&rb.events);
    es_arena_free(&rb.rowa);
    es_buf_free(&rb.sid);
    es_buf_free(&rb.rows);
    es_buf_free(&rb.versions);
    es_buf_free(&rb.name);
    es_buf_free(&sql);
    free(rb.params);
    free(rb.kinds);
    return rc;
}
