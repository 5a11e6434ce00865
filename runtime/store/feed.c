/* The global feed over es_events; see es/feed.h for the ordering argument. */
#include "es/feed.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "es/pg_session.h"
#include "es/uuid.h"
#include "event_rows.h"
#include "pgbin.h"

struct es_feed {
    es_pg_session *s;           /* LISTENs on es_events; es_feed_read / es_feed_stats prepared */
};

/* Rows after the cursor written by transactions that are all finished: below the snapshot's
 * xmin nothing can still commit, so nothing can later appear before the cursor. */
static const char READ_SQL[] =
    "SELECT " ES__EVENT_COLUMNS " FROM es_events"
    " WHERE (txid, position) > ($1::xid8, $2::int8)"
    "   AND txid < pg_snapshot_xmin(pg_current_snapshot())"
    " ORDER BY es_events.txid, es_events.position LIMIT $3::int8";

/* Sent as text with the cursor's two numbers in it (simple query protocol): planned for them
 * each time, since this session's plan cache keeps generic plans (es_feed_open), and a generic
 * plan of this count, which cannot know how far behind the cursor is, scanned the whole feed. */
static const char STATS_SQL[] =
    "WITH s AS (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin),"
    " p AS (SELECT txid, recorded_at FROM es_events"
    "       WHERE (txid, position) > ('%" PRIu64 "'::xid8, %" PRId64 "::int8) ORDER BY txid, position LIMIT 1000000)"
    " SELECT (SELECT count(*) FROM p),"
    "  coalesce((SELECT extract(epoch from clock_timestamp() - min(recorded_at)) FROM p), 0)::float8,"
    "  (SELECT count(*) FROM p, s WHERE p.txid >= s.xmin),"
    "  coalesce((SELECT extract(epoch from clock_timestamp() - min(recorded_at))"
    "            FROM p, s WHERE p.txid >= s.xmin), 0)::float8,"
    "  coalesce((SELECT extract(epoch from max(clock_timestamp() - xact_start))"
    "            FROM pg_stat_activity WHERE backend_xid IS NOT NULL), 0)::float8,"
    "  (SELECT xmin::text FROM s)";

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
        e->txid = (uint64_t)es__pg_int8(r, row, 0); /* xid8: an unsigned 64-bit integer */
        e->position = es__pg_int8(r, row, 1);
        char *id = es_arena_alloc(arena, ES_UUID_STRLEN + 1);
        id[0] = '\0';
        if (PQgetlength(r, row, 2) == 16)
            es_uuid_format((const uint8_t *)PQgetvalue(r, row, 2), id);
        e->event_id = id;
        e->stream_type = COL(3);
        e->stream_id = COL(4);
        e->version = es__pg_int8(r, row, 5);
        e->event_type = COL(6);
        e->schema = COL(7);
        e->schema_version = (uint32_t)es__pg_int4(r, row, 8);
        e->schema_hash = COL(9);
        size_t len = (size_t)PQgetlength(r, row, 10);
        uint8_t *payload = es_arena_alloc(arena, len ? len : 1);
        memcpy(payload, PQgetvalue(r, row, 10), len);
        e->payload = payload;
        e->payload_len = len;
        e->command_id = COL(11);
        e->correlation_id = COL(12);
        e->causation_id = COL(13);
        e->actor = COL(14);
        e->recorded_at_us = es__pg_timestamptz_us(r, row, 15);
#undef COL
    }
    *out = v;
    return n;
}

int es_feed_open(const char *conninfo, es_feed **out, es_error *err)
{
    *out = NULL;
    static const es_pg_statement stmts[] = {{.name = "es_feed_read", .sql = READ_SQL}};
    /* es_events is partitioned, and the read's row comparison prunes no partition at plan time:
     * a custom plan (PostgreSQL's choice here) planned every partition anew for each read, more
     * CPU than the read itself. One generic plan, probes of each partition's (txid, position)
     * index whatever the statistics (never a sort over a sequential scan of a table just
     * loaded), serves every read. */
    es_pg_session_config cfg = {.conninfo = conninfo, .application_name = "es-feed", .listen = "es_events",
                                .settings = "SET plan_cache_mode = force_generic_plan; SET enable_seqscan = off",
                                .statements = stmts, .n_statements = sizeof stmts / sizeof stmts[0]};
    es_pg_session *s = es_pg_session_new(&cfg, err);
    if (!s)
        return err ? err->code : ES_INVALID_ARGUMENT;
    int rc = es_pg_session_ensure(s, err);
    if (rc != ES_OK) {
        es_pg_session_free(s);
        return rc;
    }
    es_feed *f = es_xcalloc(1, sizeof *f);
    f->s = s;
    *out = f;
    return ES_OK;
}

void es_feed_close(es_feed *f)
{
    if (!f)
        return;
    es_pg_session_free(f->s);
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
 * (restart, admin shutdown): reconnect at the next read whatever the status. */
static int fail(es_feed *f, es_error *err, PGresult *r, const char *what)
{
    int code = es_pg_session_fail(f->s, r, what, err);
    es_pg_session_close(f->s);
    return code;
}

int es_feed_read(es_feed *f, es_feed_cursor after, size_t max, es_feed_batch *out, es_error *err)
{
    es_arena_reset(&out->arena);
    out->events = NULL;
    out->n = 0;
    out->last = after;
    int rc = es_pg_session_ensure(f->s, err);
    if (rc != ES_OK)
        return rc;
    char txid[24], pos[24], lim[24];
    snprintf(txid, sizeof txid, "%" PRIu64, after.txid);
    snprintf(pos, sizeof pos, "%" PRId64, after.position);
    snprintf(lim, sizeof lim, "%zu", max ? max : 1);
    const char *params[3] = {txid, pos, lim};
    PGresult *r = PQexecPrepared(es_pg_session_conn(f->s), "es_feed_read", 3, params, NULL, NULL, 1);
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

/* The connection broke while waiting: the next read reconnects. */
static int lost(es_feed *f)
{
    es_pg_session_close(f->s);
    return ES_UNAVAILABLE;
}

int es_feed_wait(es_feed *f, int timeout_ms)
{
    PGconn *conn = es_pg_session_conn(f->s);
    if (!conn || PQstatus(conn) != CONNECTION_OK || !PQconsumeInput(conn))
        return lost(f);
    if (drain(conn))
        return 1;
    struct pollfd p = {.fd = PQsocket(conn), .events = POLLIN};
    int n = poll(&p, 1, timeout_ms);
    if (n <= 0)
        return 0;
    if (!PQconsumeInput(conn))
        return lost(f);
    return drain(conn) ? 1 : 0;
}

int es_feed_plans(es_feed *f, int64_t *generic, int64_t *custom, es_error *err)
{
    *generic = *custom = 0;
    int rc = es_pg_session_ensure(f->s, err);
    if (rc != ES_OK)
        return rc;
    PGresult *r = PQexec(es_pg_session_conn(f->s), "SELECT generic_plans, custom_plans FROM pg_prepared_statements"
                                                   " WHERE name = 'es_feed_read'");
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        rc = fail(f, err, r, "feed: plans");
        PQclear(r);
        return rc;
    }
    *generic = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    *custom = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
    PQclear(r);
    return ES_OK;
}

int es_feed_stats_get(es_feed *f, es_feed_cursor after, es_feed_stats *out, es_error *err)
{
    memset(out, 0, sizeof *out);
    int rc = es_pg_session_ensure(f->s, err);
    if (rc != ES_OK)
        return rc;
    char sql[sizeof STATS_SQL + 48];
    snprintf(sql, sizeof sql, STATS_SQL, after.txid, after.position);
    PGresult *r = PQexec(es_pg_session_conn(f->s), sql);
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
