/* The event store's lifecycle and read side: statements, stream reads, the one-round-trip
 * load (snapshot + later events), command lookups and the schema registry. The append path
 * (group commit) is append.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "es/arena.h"
#include "es/clock.h"
#include "es/uuid.h"
#include "pgbin.h"
#include "store_internal.h"

#define READ_PAGE 1000
#define EVENT_COLUMNS                                                                              \
    "position, event_id, stream_type, stream_id, version, event_type, schema_name, "              \
    "schema_version, schema_hash, payload, command_id, correlation_id, causation_id, actor, "     \
    "recorded_at"

static const Oid append_types[] = {
    ES__OID_TEXT, ES__OID_TEXT, ES__OID_INT8, ES__OID_TEXT, ES__OID_BOOL, ES__OID_TEXT,
    ES__OID_TEXT, ES__OID_TEXT, ES__OID_UUID_ARRAY, ES__OID_TEXT_ARRAY, ES__OID_TEXT_ARRAY,
    ES__OID_INT4_ARRAY, ES__OID_TEXT_ARRAY, ES__OID_BYTEA_ARRAY, ES__OID_BYTEA, ES__OID_INT8,
    ES__OID_TEXT, ES__OID_TEXT, ES__OID_BYTEA, ES__OID_TEXT_ARRAY, ES__OID_BYTEA, ES__OID_INT8,
};
static const Oid read_types[] = {ES__OID_TEXT, ES__OID_INT8, ES__OID_INT8, ES__OID_INT8};
static const Oid text1[] = {ES__OID_TEXT};
static const Oid schema_types[] = {ES__OID_TEXT, ES__OID_TEXT, ES__OID_BYTEA};

static const es_pg_statement statements[] = {
    {ES__ST_BEGIN, "BEGIN", 0, NULL},
    {ES__ST_COMMIT, "COMMIT", 0, NULL},
    {ES__ST_ROLLBACK, "ROLLBACK", 0, NULL},
    {ES__ST_APPEND,
     "SELECT status, first_version, last_version, stream_id, event_ids, message FROM es_append("
     "$1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, "
     "now() + $22 * interval '1 second')",
     22, append_types},
    {ES__ST_READ,
     "SELECT " EVENT_COLUMNS " FROM es_events WHERE stream_id = $1 AND version > $2 AND version <= $3 "
     "ORDER BY version LIMIT $4",
     4, read_types},
    /* Kind 0 is the snapshot row (state in the payload column), kind 1 the events after it;
     * one statement, so both come from one MVCC snapshot. */
    {ES__ST_LOAD,
     "SELECT 0 AS kind, NULL::bigint, NULL::uuid, s.stream_type, s.stream_id, s.version, NULL::text,"
     " s.schema_name, NULL::integer, s.schema_hash, s.state, NULL::text, NULL::text, NULL::text,"
     " NULL::text, s.taken_at FROM es_snapshots s WHERE s.stream_id = $1 "
     "UNION ALL "
     "SELECT 1, " EVENT_COLUMNS " FROM es_events e WHERE e.stream_id = $1 AND e.version > "
     "COALESCE((SELECT version FROM es_snapshots WHERE stream_id = $1), 0) "
     "ORDER BY 1, 6",
     1, text1},
    {ES__ST_FIND_COMMAND,
     "SELECT stream_id, first_version, last_version, result, request_hash FROM es_commands "
     "WHERE command_id = $1 AND (expires_at IS NULL OR expires_at > now())",
     1, text1},
    /* Keys of the release before scoped keys (es_store_find_legacy_command): the key itself as
     * the id, no fingerprint, no expiry; the principal from the command's first event. */
    {ES__ST_FIND_LEGACY_COMMAND,
     "SELECT c.stream_id, c.first_version, c.last_version, c.result FROM es_commands c "
     "JOIN es_events e ON e.stream_id = c.stream_id AND e.version = c.first_version "
     "WHERE c.command_id = $1 AND c.request_hash IS NULL AND c.expires_at IS NULL AND e.actor = $2 "
     "AND c.recorded_at > now() - make_interval(secs => $3::float8)",
     3, NULL},
    {ES__ST_REGISTER_SCHEMA,
     "INSERT INTO es_schemas (hash, package, descriptor_set) VALUES ($1, $2, $3) "
     "ON CONFLICT (hash) DO NOTHING",
     3, schema_types},
};

es_store *es_store_new(es_pg_pool *pool, const es_store_config *cfg, es_error *err)
{
    if (!pool) {
        es_error_set(err, ES_INVALID_ARGUMENT, "pool", "a connection pool is required");
        return NULL;
    }
    es_store *s = es_xcalloc(1, sizeof *s);
    s->pool = pool;
    /* Each command of a batch is a subtransaction; past 64 a backend's subtransaction cache
     * overflows and every concurrent snapshot gets slower. */
    s->max_batch = cfg && cfg->max_batch ? cfg->max_batch : 64;
    if (s->max_batch > 64) s->max_batch = 64;
    s->n_committers = cfg && cfg->committers ? cfg->committers : 1;
    if (s->n_committers > ES__MAX_COMMITTERS) s->n_committers = ES__MAX_COMMITTERS;
    /* Each committer keeps a connection for good: with no connection left over, every load,
     * query and snapshot would wait for a checkout that never comes. */
    es_pg_pool_stats ps;
    es_pg_pool_get_stats(pool, &ps);
    if (ps.size <= s->n_committers) {
        es_error_set(err, ES_INVALID_ARGUMENT, "pool_size",
                     "a pool of %zu connections cannot serve %zu committers and reads: it needs at least %zu",
                     ps.size, s->n_committers, s->n_committers + 1);
        free(s);
        return NULL;
    }
    pthread_mutex_init(&s->mu, NULL);
    if (es_pg_pool_register(pool, statements, sizeof statements / sizeof statements[0], err) != ES_OK ||
        es__committer_start(s, err) != ES_OK) {
        es_store_free(s);
        return NULL;
    }
    return s;
}

void es_store_free(es_store *s)
{
    if (!s) return;
    es__committer_stop(s);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

void es_store_get_stats(es_store *s, es_store_stats *out)
{
    pthread_mutex_lock(&s->mu);
    *out = s->stats;
    pthread_mutex_unlock(&s->mu);
}

/* Runs a prepared statement with text parameters and binary results on a pooled connection.
 * On ES_OK *res holds the tuples (caller PQclears) and *c the connection to check in. */
static int query(es_store *s, const char *stmt, int n, const char *const *params, es_pg_conn **c,
                 PGresult **res, es_error *err)
{
    *res = NULL;
    int rc = es_pg_pool_checkout(s->pool, c, err);
    if (rc) return rc;
    PGconn *pg = es_pg_conn_pg(*c);
    PGresult *r = PQexecPrepared(pg, stmt, n, params, NULL, NULL, 1);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
        rc = es_pg_error(pg, r, stmt, err);
        PQclear(r);
        es_pg_pool_checkin(s->pool, *c);
        *c = NULL;
        return rc;
    }
    *res = r;
    return ES_OK;
}

/* Fills an event record from row i of a result whose columns start at col (EVENT_COLUMNS). */
static void row_event(const PGresult *r, int i, int col, es_event_record *ev)
{
    memset(ev, 0, sizeof *ev);
    ev->position = es__pg_int8(r, i, col + 0);
    if (PQgetlength(r, i, col + 1) == 16)
        es_uuid_format((const uint8_t *)PQgetvalue(r, i, col + 1), ev->event_id);
    ev->stream_type = es__pg_text(r, i, col + 2);
    ev->stream_id = es__pg_text(r, i, col + 3);
    ev->version = es__pg_int8(r, i, col + 4);
    ev->event_type = es__pg_text(r, i, col + 5);
    ev->schema_name = es__pg_text(r, i, col + 6);
    ev->schema_version = (uint32_t)es__pg_int4(r, i, col + 7);
    ev->schema_hash = es__pg_text(r, i, col + 8);
    ev->payload = (const uint8_t *)PQgetvalue(r, i, col + 9);
    ev->payload_len = (size_t)PQgetlength(r, i, col + 9);
    ev->command_id = es__pg_text(r, i, col + 10);
    ev->correlation_id = es__pg_text(r, i, col + 11);
    ev->causation_id = es__pg_text(r, i, col + 12);
    ev->actor = es__pg_text(r, i, col + 13);
    ev->recorded_at_us = es__pg_timestamptz_us(r, i, col + 14);
}

/* Delivers rows [from, ntuples) as events, checking that versions follow *last. */
static int deliver(const PGresult *r, int from, int col, int64_t *last, es_event_fn fn, void *ctx,
                   es_error *err)
{
    int n = PQntuples(r);
    for (int i = from; i < n; i++) {
        es_event_record ev;
        row_event(r, i, col, &ev);
        if (ev.version != *last + 1)
            return es_error_set(err, ES_DATA_LOSS, "", "stream %s: version %lld follows %lld",
                                ev.stream_id ? ev.stream_id : "", (long long)ev.version, (long long)*last);
        int rc = fn ? fn(&ev, ctx, err) : ES_OK;
        if (rc) return rc;
        *last = ev.version;
    }
    return ES_OK;
}

int es_store_read_stream(es_store *s, const char *stream_id, int64_t after_version,
                         int64_t to_version, es_event_fn fn, void *ctx, int64_t *last_version,
                         es_error *err)
{
    int64_t last = after_version;
    int rc = ES_OK;
    char after[24], to[24], limit[24];
    snprintf(limit, sizeof limit, "%d", READ_PAGE);
    snprintf(to, sizeof to, "%lld", (long long)(to_version > 0 ? to_version : INT64_MAX));
    for (;;) {
        snprintf(after, sizeof after, "%lld", (long long)last);
        const char *params[4] = {stream_id, after, to, limit};
        es_pg_conn *c = NULL;
        PGresult *r = NULL;
        rc = query(s, ES__ST_READ, 4, params, &c, &r, err);
        if (rc) break;
        int n = PQntuples(r);
        rc = deliver(r, 0, 0, &last, fn, ctx, err);
        PQclear(r);
        es_pg_pool_checkin(s->pool, c);
        if (rc || n < READ_PAGE) break;
    }
    if (last_version) *last_version = last;
    return rc;
}

int es_store_load(es_store *s, const char *stream_id, es_snapshot_fn snap_fn, es_event_fn ev_fn,
                  void *ctx, int64_t *version, es_error *err)
{
    int64_t last = 0;
    es_pg_conn *c = NULL;
    PGresult *r = NULL;
    const char *params[1] = {stream_id};
    if (!snap_fn) {
        int rc = es_store_read_stream(s, stream_id, 0, 0, ev_fn, ctx, &last, err);
        if (version) *version = rc == ES_OK ? last : 0;
        return rc;
    }
    int rc = query(s, ES__ST_LOAD, 1, params, &c, &r, err);
    if (rc) goto done;
    int from = 0;
    if (PQntuples(r) > 0 && es__pg_int4(r, 0, 0) == 0) {
        from = 1;
        es_snapshot_record snap = {
            .stream_type = es__pg_text(r, 0, 3),
            .version = es__pg_int8(r, 0, 5),
            .schema_name = es__pg_text(r, 0, 7),
            .schema_hash = es__pg_text(r, 0, 9),
            .state = (const uint8_t *)PQgetvalue(r, 0, 10),
            .state_len = (size_t)PQgetlength(r, 0, 10),
        };
        int use = snap_fn(&snap, ctx, err);
        if (use < 0) { rc = use; goto done; }
        if (use > 0) {
            /* Refused (other schema, or the caller wants no snapshot): replay everything. */
            PQclear(r);
            r = NULL;
            es_pg_pool_checkin(s->pool, c);
            c = NULL;
            rc = es_store_read_stream(s, stream_id, 0, 0, ev_fn, ctx, &last, err);
            goto done;
        }
        last = snap.version;
    }
    rc = deliver(r, from, 1, &last, ev_fn, ctx, err);
done:
    PQclear(r);
    es_pg_pool_checkin(s->pool, c);
    if (version) *version = rc == ES_OK ? last : 0;
    return rc;
}

/* The first result of a recorded command from row 0 of a lookup whose columns start with
 * stream_id, first_version, last_version, result. */
static void command_row(const PGresult *r, es_append_result *out)
{
    snprintf(out->stream_id, sizeof out->stream_id, "%s", PQgetvalue(r, 0, 0));
    out->first_version = es__pg_int8(r, 0, 1);
    out->last_version = es__pg_int8(r, 0, 2);
    if (!PQgetisnull(r, 0, 3))
        es__result_ids(out, (const uint8_t *)PQgetvalue(r, 0, 3), (size_t)PQgetlength(r, 0, 3));
    out->replayed = 1;
}

int es_store_find_command(es_store *s, const char *command_id, es_append_result *out, es_error *err)
{
    memset(out, 0, sizeof *out);
    es_pg_conn *c = NULL;
    PGresult *r = NULL;
    const char *params[1] = {command_id};
    int rc = query(s, ES__ST_FIND_COMMAND, 1, params, &c, &r, err);
    if (rc) return rc;
    if (PQntuples(r) == 0) {
        rc = ES_NOT_FOUND;
    } else {
        command_row(r, out);
        size_t hl = PQgetisnull(r, 0, 4) ? 0 : (size_t)PQgetlength(r, 0, 4);
        if (hl && hl <= sizeof out->request_hash) {
            memcpy(out->request_hash, PQgetvalue(r, 0, 4), hl);
            out->request_hash_len = hl;
        }
    }
    PQclear(r);
    es_pg_pool_checkin(s->pool, c);
    return rc;
}

/* Until when keys recorded by the release before scoped keys can still be within retention: one
 * retention after the event store's schema last changed, on a database that holds an earlier
 * version of it. Asked once per process: the answer only shrinks with time. */
static int64_t legacy_until(es_store *s, int64_t retention_s, es_error *err)
{
    int64_t until = __atomic_load_n(&s->legacy_until_us, __ATOMIC_ACQUIRE);
    if (until) return until;
    es_pg_conn *c = NULL;
    if (es_pg_pool_checkout_unprepared(s->pool, &c, err) != ES_OK) return 0;
    const char *params[1] = {ES_EVENT_STORE_MIGRATION};
    PGresult *r = PQexecParams(es_pg_conn_pg(c),
                               "SELECT (extract(epoch FROM max(applied_at)) * 1000000)::bigint FROM es_migrations "
                               "WHERE name = $1 HAVING count(*) > 1",
                               1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        es_pg_error(es_pg_conn_pg(c), r, "legacy keys", err);
        until = 0;
    } else if (PQntuples(r) == 0 || PQgetisnull(r, 0, 0)) {
        until = -1;
    } else {
        until = strtoll(PQgetvalue(r, 0, 0), NULL, 10) + retention_s * 1000000;
        if (until <= 0) until = -1;
    }
    PQclear(r);
    es_pg_pool_checkin(s->pool, c);
    if (until) __atomic_store_n(&s->legacy_until_us, until, __ATOMIC_RELEASE);
    return until;
}

int es_store_legacy_keys_settled(es_store *s)
{
    int64_t until = __atomic_load_n(&s->legacy_until_us, __ATOMIC_ACQUIRE);
    return until < 0 || (until > 0 && es_now_us() > until);
}

int es_store_find_legacy_command(es_store *s, const char *key, const char *actor, int64_t retention_s,
                                 es_append_result *out, es_error *err)
{
    memset(out, 0, sizeof *out);
    if (!key || !key[0] || !actor) return ES_NOT_FOUND;
    int64_t until = legacy_until(s, retention_s, err);
    if (until == 0) return err->code ? err->code : ES_UNAVAILABLE;
    if (until < 0 || es_now_us() > until) return ES_NOT_FOUND;
    es_pg_conn *c = NULL;
    PGresult *r = NULL;
    char secs[24];
    snprintf(secs, sizeof secs, "%lld", (long long)retention_s);
    const char *params[3] = {key, actor, secs};
    int rc = query(s, ES__ST_FIND_LEGACY_COMMAND, 3, params, &c, &r, err);
    if (rc) return rc;
    if (PQntuples(r) == 0)
        rc = ES_NOT_FOUND;
    else
        command_row(r, out);
    PQclear(r);
    es_pg_pool_checkin(s->pool, c);
    return rc;
}

int es_store_expire_commands(es_store *s, size_t limit, size_t *deleted, es_error *err)
{
    if (deleted) *deleted = 0;
    es_pg_conn *c = NULL;
    int rc = es_pg_pool_checkout_unprepared(s->pool, &c, err);
    if (rc) return rc;
    char n[24];
    snprintf(n, sizeof n, "%zu", limit ? limit : 10000);
    const char *params[1] = {n};
    /* Bounded batches through the partial index: a long backlog never holds one big lock. */
    PGresult *r = PQexecParams(es_pg_conn_pg(c),
                               "DELETE FROM es_commands WHERE command_id IN (SELECT command_id FROM es_commands "
                               "WHERE expires_at IS NOT NULL AND expires_at <= now() LIMIT $1::int)",
                               1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        rc = es_pg_error(es_pg_conn_pg(c), r, "expire idempotency keys", err);
    } else if (deleted) {
        *deleted = (size_t)strtoull(PQcmdTuples(r), NULL, 10);
    }
    PQclear(r);
    es_pg_pool_checkin(s->pool, c);
    return rc;
}

int es_store_register_schema(es_store *s, const es_schema *schema, es_error *err)
{
    if (!schema || !schema->descriptor_set || !schema->descriptor_set_hash)
        return es_error_set(err, ES_INVALID_ARGUMENT, "schema", "schema has no descriptor set");
    es_pg_conn *c = NULL;
    int rc = es_pg_pool_checkout(s->pool, &c, err);
    if (rc) return rc;
    PGconn *pg = es_pg_conn_pg(c);
    const char *params[3] = {schema->descriptor_set_hash, schema->package ? schema->package : "",
                             (const char *)schema->descriptor_set};
    int lengths[3] = {0, 0, (int)schema->descriptor_set_len};
    int formats[3] = {0, 0, 1};
    PGresult *r = PQexecPrepared(pg, ES__ST_REGISTER_SCHEMA, 3, params, lengths, formats, 0);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) rc = es_pg_error(pg, r, "register schema", err);
    PQclear(r);
    es_pg_pool_checkin(s->pool, c);
    return rc;
}
