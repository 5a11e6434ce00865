/* The global feed over es_events; see es/feed.h for the ordering argument. */
#include "es/feed.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "event_rows.h"

struct es_feed {
    char *conninfo;
    PGconn *conn;
    int ready;                  /* connected, LISTENing, statements prepared */
};

/* Rows after the cursor written by transactions that are all finished: below the snapshot's
 * xmin nothing can still commit, so nothing can later appear before the cursor. */
static const char READ_SQL[] =
    "SELECT " ES__EVENT_COLUMNS " FROM es_events"
    " WHERE (txid, position) > ($1::xid8, $2::int8)"
    "   AND txid < pg_snapshot_xmin(pg_current_snapshot())"
    " ORDER BY es_events.txid, es_events.position LIMIT $3::int8";

static const char STATS_SQL[] =
    "WITH s AS (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin),"
    " p AS (SELECT txid, recorded_at FROM es_events"
    "       WHERE (txid, position) > ($1::xid8, $2::int8) ORDER BY txid, position LIMIT 1000000)"
    " SELECT (SELECT count(*) FROM p),"
    "  coalesce((SELECT extract(epoch from clock_timestamp() - min(recorded_at)) FROM p), 0)::float8,"
    "  (SELECT count(*) FROM p, s WHERE p.txid >= s.xmin),"
    "  coalesce((SELECT extract(epoch from clock_timestamp() - min(recorded_at))"
    "            FROM p, s WHERE p.txid >= s.xmin), 0)::float8,"
    "  coalesce((SELECT extract(epoch from max(clock_timestamp() - xact_start))"
    "            FROM pg_stat_activity WHERE backend_xid IS NOT NULL), 0)::float8,"
    "  (SELECT xmin::text FROM s)";

int es__pg_error(es_error *err, int code, PGconn *conn, const PGresult *r, const char *what)
{
    const char *msg = r ? PQresultErrorMessage(r) : NULL;
    if (!msg || !msg[0])
        msg = conn ? PQerrorMessage(conn) : "no connection";
    char clean[300];
    snprintf(clean, sizeof clean, "%s", msg);
    size_t n = strlen(clean);
    while (n && (clean[n - 1] == '\n' || clean[n - 1] == ' '))
        clean[--n] = '\0';
    return es_error_set(err, code, "", "%s: %s", what, clean);
}

uint64_t es_feed_parse_txid(const char *s)
{
    if (!s)
        return 0;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    return (errno || end == s) ? 0 : (uint64_t)v;
}

size_t es__event_rows(const PGresult *r, es_arena *arena, es_envelope_view **out)
{
    size_t n = (size_t)PQntuples(r);
    es_envelope_view *v = es_arena_alloc(arena, (n ? n : 1) * sizeof *v);
    for (size_t i = 0; i < n; i++) {
        int row = (int)i;
#define COL(c) es_arena_strndup(arena, PQgetvalue(r, row, c), (size_t)PQgetlength(r, row, c))
        es_envelope_view *e = &v[i];
        e->txid = es_feed_parse_txid(PQgetvalue(r, row, 0));
        e->position = strtoll(PQgetvalue(r, row, 1), NULL, 10);
        e->event_id = COL(2);
        e->stream_type = COL(3);
        e->stream_id = COL(4);
        e->version = strtoll(PQgetvalue(r, row, 5), NULL, 10);
        e->event_type = COL(6);
        e->schema = COL(7);
        e->schema_version = (uint32_t)strtoul(PQgetvalue(r, row, 8), NULL, 10);
        e->schema_hash = COL(9);
        size_t len = 0;
        unsigned char *raw = PQunescapeBytea((const unsigned char *)PQgetvalue(r, row, 10), &len);
        if (!raw)
            es_oom();
        uint8_t *payload = es_arena_alloc(arena, len ? len : 1);
        memcpy(payload, raw, len);
        PQfreemem(raw);
        e->payload = payload;
        e->payload_len = len;
        e->command_id = COL(11);
        e->correlation_id = COL(12);
        e->causation_id = COL(13);
        e->actor = COL(14);
        e->recorded_at_us = strtoll(PQgetvalue(r, row, 15), NULL, 10);
#undef COL
    }
    *out = v;
    return n;
}

/* (Re)connects, LISTENs and prepares; a no-op while the connection is healthy. */
static int ensure_ready(es_feed *f, es_error *err)
{
    if (f->ready && PQstatus(f->conn) == CONNECTION_OK)
        return ES_OK;
    f->ready = 0;
    if (f->conn)
        PQfinish(f->conn);
    f->conn = PQconnectdb(f->conninfo);
    if (PQstatus(f->conn) != CONNECTION_OK)
        return es__pg_error(err, ES_UNAVAILABLE, f->conn, NULL, "feed: connect");
    PGresult *r = PQexec(f->conn, "LISTEN es_events");
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok)
        es__pg_error(err, ES_UNAVAILABLE, f->conn, r, "feed: LISTEN");
    PQclear(r);
    if (!ok)
        return err ? err->code : ES_UNAVAILABLE;
    static const struct { const char *name, *sql; } stmts[] = {
        {"es_feed_read", READ_SQL}, {"es_feed_stats", STATS_SQL}};
    for (size_t i = 0; i < sizeof stmts / sizeof stmts[0]; i++) {
        r = PQprepare(f->conn, stmts[i].name, stmts[i].sql, 0, NULL);
        ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        if (!ok)
            es__pg_error(err, ES_INTERNAL, f->conn, r, "feed: prepare");
        PQclear(r);
        if (!ok)
            return err ? err->code : ES_INTERNAL;
    }
    f->ready = 1;
    return ES_OK;
}

int es_feed_open(const char *conninfo, es_feed **out, es_error *err)
{
    es_feed *f = es_xcalloc(1, sizeof *f);
    f->conninfo = es_xstrdup(conninfo);
    int rc = ensure_ready(f, err);
    if (rc != ES_OK) {
        es_feed_close(f);
        *out = NULL;
        return rc;
    }
    *out = f;
    return ES_OK;
}

void es_feed_close(es_feed *f)
{
    if (!f)
        return;
    if (f->conn)
        PQfinish(f->conn);
    free(f->conninfo);
    free(f);
}

void es_feed_batch_init(es_feed_batch *b)
{
    memset(b, 0, sizeof *b);
    es_arena_init(&b->arena);
}

void es_feed_batch_free(es_feed_batch *b)
{
    if (!b)
        return;
    es_arena_free(&b->arena);
    es_feed_batch_init(b);
}

/* A failed statement on a healthy-looking connection may still mean the server went away
 * (restart, admin shutdown): mark the connection for a reconnect in either case. */
static int fail(es_feed *f, es_error *err, PGresult *r, const char *what)
{
    int code = PQstatus(f->conn) == CONNECTION_OK ? ES_INTERNAL : ES_UNAVAILABLE;
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    if (state && (strncmp(state, "08", 2) == 0 || strncmp(state, "57", 2) == 0))
        code = ES_UNAVAILABLE;
    es__pg_error(err, code, f->conn, r, what);
    f->ready = 0;
    return code;
}

int es_feed_read(es_feed *f, es_feed_cursor after, size_t max, es_feed_batch *out, es_error *err)
{
    es_arena_reset(&out->arena);
    out->events = NULL;
    out->n = 0;
    out->last = after;
    int rc = ensure_ready(f, err);
    if (rc != ES_OK)
        return rc;
    char txid[24], pos[24], lim[24];
    snprintf(txid, sizeof txid, "%" PRIu64, after.txid);
    snprintf(pos, sizeof pos, "%" PRId64, after.position);
    snprintf(lim, sizeof lim, "%zu", max ? max : 1);
    const char *params[3] = {txid, pos, lim};
    PGresult *r = PQexecPrepared(f->conn, "es_feed_read", 3, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        rc = fail(f, err, r, "feed: read");
        PQclear(r);
        return rc;
    }
    out->n = es__event_rows(r, &out->arena, &out->events);
    PQclear(r);
    if (out->n) {
        out->last.txid = out->events[out->n - 1].txid;
        out->last.position = out->events[out->n - 1].position;
    }
    return ES_OK;
}

/* Drains pending notifications; returns how many there were. */
static int drain(PGconn *conn)
{
    int n = 0;
    PGnotify *note;
    while ((note = PQnotifies(conn)) != NULL) {
        PQfreemem(note);
        n++;
    }
    return n;
}

int es_feed_wait(es_feed *f, int timeout_ms)
{
    if (!f->ready || PQstatus(f->conn) != CONNECTION_OK) {
        f->ready = 0;
        return ES_UNAVAILABLE;
    }
    if (!PQconsumeInput(f->conn)) {
        f->ready = 0;
        return ES_UNAVAILABLE;
    }
    if (drain(f->conn))
        return 1;
    struct pollfd p = {.fd = PQsocket(f->conn), .events = POLLIN};
    int n = poll(&p, 1, timeout_ms);
    if (n <= 0)
        return 0;
    if (!PQconsumeInput(f->conn)) {
        f->ready = 0;
        return ES_UNAVAILABLE;
    }
    return drain(f->conn) ? 1 : 0;
}

int es_feed_stats_get(es_feed *f, es_feed_cursor after, es_feed_stats *out, es_error *err)
{
    memset(out, 0, sizeof *out);
    int rc = ensure_ready(f, err);
    if (rc != ES_OK)
        return rc;
    char txid[24], pos[24];
    snprintf(txid, sizeof txid, "%" PRIu64, after.txid);
    snprintf(pos, sizeof pos, "%" PRId64, after.position);
    const char *params[2] = {txid, pos};
    PGresult *r = PQexecPrepared(f->conn, "es_feed_stats", 2, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        rc = fail(f, err, r, "feed: stats");
        PQclear(r);
        return rc;
    }
    out->pending_events = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    out->pending_age_s = strtod(PQgetvalue(r, 0, 1), NULL);
    out->held_back_events = strtoll(PQgetvalue(r, 0, 2), NULL, 10);
    out->held_back_age_s = strtod(PQgetvalue(r, 0, 3), NULL);
    out->oldest_xact_age_s = strtod(PQgetvalue(r, 0, 4), NULL);
    out->xmin = es_feed_parse_txid(PQgetvalue(r, 0, 5));
    PQclear(r);
    return ES_OK;
}
