/* Operator queries over the event store's tables; see es/admin.h. Every statement is
 * parameterised; table and column names come from the generated projection tables only. */
#include "es/admin.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "es/buf.h"

/* Runs sql once on a pooled connection. Results come in binary format, so every non-bytea
 * column is selected as text (a text value's binary form is its bytes, NUL-terminated by libpq);
 * bytea arrives raw. On success *out is the result (caller PQclears). */
static int run(es_pg_pool *pool, const char *what, const char *sql, int nparams, const char *const *params,
               PGresult **out, es_error *err)
{
    *out = NULL;
    es_pg_conn *c = NULL;
    int rc = es_pg_pool_checkout_unprepared(pool, &c, err);
    if (rc != ES_OK)
        return rc;
    PGconn *pg = es_pg_conn_pg(c);
    PGresult *r = PQexecParams(pg, sql, nparams, NULL, params, NULL, NULL, 1);
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
        *out = r;
    } else {
        rc = es_pg_error(pg, r, what, err);
        PQclear(r);
    }
    es_pg_pool_checkin(pool, c);
    return rc;
}

static const char *val(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? NULL : PQgetvalue(r, row, col);
}

static int64_t num(const PGresult *r, int row, int col)
{
    const char *s = val(r, row, col);
    return s ? strtoll(s, NULL, 10) : 0;
}

static char *dup_or_null(es_arena *a, const PGresult *r, int row, int col)
{
    const char *s = val(r, row, col);
    return s ? es_arena_strdup(a, s) : NULL;
}

static const uint8_t *bytes(es_arena *a, const PGresult *r, int row, int col, size_t *len)
{
    *len = 0;
    if (PQgetisnull(r, row, col))
        return NULL;
    *len = (size_t)PQgetlength(r, row, col);
    uint8_t *p = es_arena_alloc(a, *len ? *len : 1);
    memcpy(p, PQgetvalue(r, row, col), *len);
    return p;
}

static int count_query(es_pg_pool *pool, const char *what, const char *sql, int nparams, const char *const *params,
                       int64_t *n, es_error *err)
{
    PGresult *r;
    *n = 0;
    int rc = run(pool, what, sql, nparams, params, &r, err);
    if (rc != ES_OK)
        return rc;
    *n = PQntuples(r) ? num(r, 0, 0) : 0;
    PQclear(r);
    return ES_OK;
}

/* ---- streams and the feed ---- */

int es_admin_count_streams(es_pg_pool *pool, const char *stream_type, int64_t *n, es_error *err)
{
    const char *p[1] = {stream_type};
    return count_query(pool, "count streams",
                       "SELECT count(DISTINCT stream_id)::text FROM es_events WHERE stream_type = $1", 1, p, n, err);
}

int es_admin_count_events(es_pg_pool *pool, const char *stream_type, int64_t *n, es_error *err)
{
    const char *p[1] = {stream_type};
    return count_query(pool, "count events",
                       "SELECT count(*)::text FROM es_events WHERE $1::text IS NULL OR stream_type = $1", 1, p, n,
                       err);
}

int es_admin_list_streams(es_pg_pool *pool, const char *stream_type, const char *after, size_t limit,
                          es_arena *a, char ***ids, size_t *n, es_error *err)
{
    char lim[24];
    snprintf(lim, sizeof lim, "%zu", limit);
    const char *p[3] = {stream_type, after && after[0] ? after : NULL, lim};
    PGresult *r;
    *ids = NULL;
    *n = 0;
    /* Walks the (stream_id, version) unique index in order; the type is a filter on top. */
    int rc = run(pool, "list streams",
                 "SELECT DISTINCT stream_id FROM es_events WHERE stream_type = $1"
                 " AND ($2::text IS NULL OR stream_id > $2) ORDER BY stream_id LIMIT $3::int8",
                 3, p, &r, err);
    if (rc != ES_OK)
        return rc;
    int nt = PQntuples(r);
    *ids = es_arena_alloc(a, (size_t)(nt ? nt : 1) * sizeof **ids);
    for (int i = 0; i < nt; i++)
        (*ids)[i] = es_arena_strdup(a, PQgetvalue(r, i, 0));
    *n = (size_t)nt;
    PQclear(r);
    return ES_OK;
}

int es_admin_feed_head(es_pg_pool *pool, es_feed_cursor *out, es_error *err)
{
    PGresult *r;
    out->txid = 0;
    out->position = 0;
    /* Aliases differ from the column names on purpose: an output column named txid would
     * capture ORDER BY txid and sort by text. */
    int rc = run(pool, "feed head",
                 "SELECT txid::text AS t, position::text AS p FROM es_events"
                 " WHERE txid < pg_snapshot_xmin(pg_current_snapshot())"
                 " ORDER BY es_events.txid DESC, es_events.position DESC LIMIT 1",
                 0, NULL, &r, err);
    if (rc != ES_OK)
        return rc;
    if (PQntuples(r) == 1) {
        out->txid = es_feed_parse_txid(PQgetvalue(r, 0, 0));
        out->position = num(r, 0, 1);
    }
    PQclear(r);
    return ES_OK;
}

/* ---- projection rows ---- */

/* The SQL expression giving a column's value as the proto3 JSON of its field. */
static void column_json(es_buf *b, const es_projection_column *c)
{
    if (strcmp(c->sql_type, "timestamptz") == 0)
        es_buf_printf(b, "to_jsonb(to_char(%s AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'))", c->column);
    else if (strcmp(c->sql_type, "bytea") == 0)
        es_buf_printf(b, "to_jsonb(translate(encode(%s, 'base64'), E'\\n', ''))", c->column);
    else
        es_buf_printf(b, "to_jsonb(%s)", c->column);
}

int es_admin_projection_row(es_pg_pool *pool, const es_projection_def *def, const es_json_registry *json,
                            const char *key, es_arena *a, es_admin_row *out, es_error *err)
{
    memset(out, 0, sizeof *out);
    es_buf sql;
    es_buf_init(&sql);
    /* jsonb_build_object takes at most 100 arguments: chunks of 40 pairs joined with ||. */
    es_buf_puts(&sql, "SELECT version::text, es_state, jsonb_strip_nulls(jsonb_build_object(");
    size_t in_chunk = 0;
    for (size_t i = 0; i < def->n_columns; i++) {
        const ProtobufCFieldDescriptor *f =
            protobuf_c_message_descriptor_get_field(def->descriptor, def->columns[i].field_id);
        if (!f)
            continue;
        if (in_chunk == 40) {
            es_buf_puts(&sql, ") || jsonb_build_object(");
            in_chunk = 0;
        }
        es_buf_printf(&sql, "%s'%s', ", in_chunk ? ", " : "", f->name);
        column_json(&sql, &def->columns[i]);
        in_chunk++;
    }
    es_buf_printf(&sql, "))::text FROM %s WHERE %s = $1", def->name, def->key);
    PGresult *r = NULL;
    const char *p[1] = {key};
    int rc = run(pool, def->name, sql.data, 1, p, &r, err);
    if (rc != ES_OK)
        goto done;
    if (PQntuples(r) == 0) {
        rc = es_error_set(err, ES_NOT_FOUND, def->key, "%s %s: no row", def->name, key);
        goto done;
    }
    out->version = num(r, 0, 0);
    out->state = bytes(a, r, 0, 1, &out->state_len);
    const char *cols = PQgetvalue(r, 0, 2);
    es_json_options o = {0};
    if (es_json_decode(json, def->descriptor, cols, strlen(cols), &o, a, &out->columns, &out->columns_error) != ES_OK)
        out->columns = NULL;
    rc = ES_OK;
done:
    PQclear(r);
    es_buf_free(&sql);
    return rc;
}

int es_admin_projection_orphans(es_pg_pool *pool, const es_projection_def *def, size_t limit, es_arena *a,
                                char ***keys, size_t *n, es_error *err)
{
    char lim[24];
    snprintf(lim, sizeof lim, "%zu", limit);
    const char *p[2] = {def->aggregate->name, lim};
    char *sql = es_arena_sprintf(a,
                                 "SELECT t.%s::text AS k FROM %s t WHERE NOT EXISTS (SELECT 1 FROM es_events e"
                                 " WHERE e.stream_id = t.%s::text AND e.stream_type = $1) ORDER BY 1 LIMIT $2::int8",
                                 def->key, def->name, def->key);
    PGresult *r;
    *keys = NULL;
    *n = 0;
    int rc = run(pool, def->name, sql, 2, p, &r, err);
    if (rc != ES_OK)
        return rc;
    int nt = PQntuples(r);
    *keys = es_arena_alloc(a, (size_t)(nt ? nt : 1) * sizeof **keys);
    for (int i = 0; i < nt; i++)
        (*keys)[i] = es_arena_strdup(a, PQgetvalue(r, i, 0));
    *n = (size_t)nt;
    PQclear(r);
    return ES_OK;
}

int es_admin_projection_count(es_pg_pool *pool, const es_projection_def *def, int64_t *n, es_error *err)
{
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT count(*)::text FROM %s", def->name);
    return count_query(pool, def->name, sql, 0, NULL, n, err);
}

/* ---- dead letters ---- */

#define DEAD_LETTER_COLUMNS                                                                                \
    "d.id::text, d.consumer, d.topic, d.kafka_partition::text, d.kafka_offset::text, d.stream_id,"          \
    " coalesce(d.version, 0)::text, d.error, (extract(epoch from d.recorded_at) * 1000000)::int8::text,"   \
    " coalesce((extract(epoch from d.retried_at) * 1000000)::int8, 0)::text,"                               \
    " EXISTS (SELECT 1 FROM es_consumer_streams s WHERE s.consumer = d.consumer"                           \
    "         AND s.stream_id = d.stream_id AND s.dead_letter_id = d.id)::text, d.message"

static void dead_letter_row(es_arena *a, const PGresult *r, int i, es_admin_dead_letter *d)
{
    d->id = num(r, i, 0);
    d->consumer = dup_or_null(a, r, i, 1);
    d->topic = dup_or_null(a, r, i, 2);
    d->partition = (int32_t)num(r, i, 3);
    d->offset = num(r, i, 4);
    d->stream_id = dup_or_null(a, r, i, 5);
    d->version = num(r, i, 6);
    d->error = dup_or_null(a, r, i, 7);
    d->recorded_at_us = num(r, i, 8);
    d->retried_at_us = num(r, i, 9);
    d->parks = val(r, i, 10) && strcmp(val(r, i, 10), "true") == 0;
    d->message = bytes(a, r, i, 11, &d->message_len);
}

int es_admin_dead_letter_counts(es_pg_pool *pool, int64_t *open, int64_t *parked, es_error *err)
{
    PGresult *r;
    *open = *parked = 0;
    /* Both through partial or small indexes: cheap enough for a probe once a second. */
    int rc = run(pool, "dead letter counts",
                 "SELECT (SELECT count(*) FROM es_dead_letters WHERE retried_at IS NULL)::text,"
                 " (SELECT count(*) FROM es_consumer_streams WHERE dead_letter_id IS NOT NULL)::text",
                 0, NULL, &r, err);
    if (rc != ES_OK)
        return rc;
    *open = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    *parked = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
    PQclear(r);
    return ES_OK;
}

int es_admin_dead_letters(es_pg_pool *pool, int include_resolved, es_arena *a, es_admin_dead_letter **out,
                          size_t *n, es_error *err)
{
    const char *p[1] = {include_resolved ? "true" : "false"};
    PGresult *r;
    *out = NULL;
    *n = 0;
    int rc = run(pool, "dead letters",
                 "SELECT " DEAD_LETTER_COLUMNS " FROM es_dead_letters d"
                 " WHERE $1::bool OR d.retried_at IS NULL ORDER BY d.id",
                 1, p, &r, err);
    if (rc != ES_OK)
        return rc;
    int nt = PQntuples(r);
    *out = es_arena_calloc(a, (size_t)(nt ? nt : 1) * sizeof **out);
    for (int i = 0; i < nt; i++)
        dead_letter_row(a, r, i, &(*out)[i]);
    *n = (size_t)nt;
    PQclear(r);
    return ES_OK;
}

int es_admin_dead_letter_get(es_pg_pool *pool, int64_t id, es_arena *a, es_admin_dead_letter *out, es_error *err)
{
    char ids[24];
    snprintf(ids, sizeof ids, "%" PRId64, id);
    const char *p[1] = {ids};
    PGresult *r;
    memset(out, 0, sizeof *out);
    int rc = run(pool, "dead letter", "SELECT " DEAD_LETTER_COLUMNS " FROM es_dead_letters d WHERE d.id = $1::int8",
                 1, p, &r, err);
    if (rc != ES_OK)
        return rc;
    if (PQntuples(r) == 1)
        dead_letter_row(a, r, 0, out);
    else
        rc = es_error_set(err, ES_NOT_FOUND, "id", "no dead letter %" PRId64, id);
    PQclear(r);
    return rc;
}

int es_admin_unpark(es_pg_pool *pool, const char *consumer, const char *stream_id, int64_t *was, es_error *err)
{
    const char *p[2] = {consumer, stream_id};
    PGresult *r;
    *was = 0;
    /* The CTE reads the row under lock before the update, so RETURNING can report what it held. */
    int rc = run(pool, "unpark",
                 "WITH old AS (SELECT dead_letter_id FROM es_consumer_streams"
                 "             WHERE consumer = $1 AND stream_id = $2 FOR UPDATE)"
                 " UPDATE es_consumer_streams s SET dead_letter_id = NULL FROM old"
                 " WHERE s.consumer = $1 AND s.stream_id = $2"
                 " RETURNING coalesce(old.dead_letter_id, 0)::text",
                 2, p, &r, err);
    if (rc != ES_OK)
        return rc;
    if (PQntuples(r) == 1)
        *was = num(r, 0, 0);
    PQclear(r);
    return ES_OK;
}

int es_admin_park(es_pg_pool *pool, const char *consumer, const char *stream_id, int64_t id, es_error *err)
{
    char ids[24];
    snprintf(ids, sizeof ids, "%" PRId64, id);
    const char *p[3] = {consumer, stream_id, ids};
    PGresult *r;
    /* An upsert: when the consumer failed on a stream's first event, the savepoint that rolled
     * the failure back also took its es_consumer_streams row (created at version 0) with it. */
    int rc = run(pool, "park",
                 "INSERT INTO es_consumer_streams AS s (consumer, stream_id, version, dead_letter_id)"
                 " VALUES ($1, $2, 0, $3::int8)"
                 " ON CONFLICT (consumer, stream_id) DO UPDATE SET dead_letter_id = EXCLUDED.dead_letter_id",
                 3, p, &r, err);
    PQclear(r);
    return rc;
}

int es_admin_resolve_dead_letters(es_pg_pool *pool, int64_t id, const char *consumer, const char *stream_id,
                                  int64_t *resolved, es_error *err)
{
    char ids[24];
    snprintf(ids, sizeof ids, "%" PRId64, id);
    const char *p[3] = {ids, consumer, stream_id};
    PGresult *r;
    if (resolved)
        *resolved = 0;
    int rc = run(pool, "resolve dead letters",
                 "UPDATE es_dead_letters SET retried_at = now() WHERE retried_at IS NULL"
                 " AND (id = $1::int8 OR ($3::text IS NOT NULL AND consumer = $2 AND stream_id = $3))",
                 3, p, &r, err);
    if (rc != ES_OK)
        return rc;
    if (resolved)
        *resolved = strtoll(PQcmdTuples(r), NULL, 10);
    PQclear(r);
    return ES_OK;
}

int es_admin_resolve_consumer_dead_letters(es_pg_pool *pool, const char *consumer, int64_t max_id,
                                           int64_t *resolved, es_error *err)
{
    char ids[24];
    snprintf(ids, sizeof ids, "%" PRId64, max_id);
    const char *p[2] = {consumer, ids};
    PGresult *r;
    if (resolved)
        *resolved = 0;
    int rc = run(pool, "resolve dead letters",
                 "UPDATE es_dead_letters SET retried_at = now() WHERE retried_at IS NULL AND consumer = $1"
                 " AND id <= $2::int8",
                 2, p, &r, err);
    if (rc != ES_OK)
        return rc;
    if (resolved)
        *resolved = strtoll(PQcmdTuples(r), NULL, 10);
    PQclear(r);
    return ES_OK;
}

/* ---- schema registry ---- */

int es_admin_schemas(es_pg_pool *pool, es_arena *a, es_admin_schema **out, size_t *n, es_error *err)
{
    PGresult *r;
    *out = NULL;
    *n = 0;
    int rc = run(pool, "schemas",
                 "SELECT hash, package, (extract(epoch from first_seen) * 1000000)::int8::text, descriptor_set"
                 " FROM es_schemas ORDER BY first_seen, hash",
                 0, NULL, &r, err);
    if (rc != ES_OK)
        return rc;
    int nt = PQntuples(r);
    *out = es_arena_calloc(a, (size_t)(nt ? nt : 1) * sizeof **out);
    for (int i = 0; i < nt; i++) {
        es_admin_schema *s = &(*out)[i];
        s->hash = dup_or_null(a, r, i, 0);
        s->package = dup_or_null(a, r, i, 1);
        s->first_seen_us = num(r, i, 2);
        s->descriptor_set = bytes(a, r, i, 3, &s->descriptor_set_len);
    }
    *n = (size_t)nt;
    PQclear(r);
    return ES_OK;
}

int es_admin_event_types(es_pg_pool *pool, es_arena *a, es_admin_event_type **out, size_t *n, es_error *err)
{
    PGresult *r;
    *out = NULL;
    *n = 0;
    int rc = run(pool, "event types",
                 "SELECT stream_type, event_type, schema_name, schema_version::text, schema_hash,"
                 " count(*)::text, max(position)::text FROM es_events GROUP BY 1, 2, 3, 4, 5"
                 " ORDER BY 1, 2, 4, 5",
                 0, NULL, &r, err);
    if (rc != ES_OK)
        return rc;
    int nt = PQntuples(r);
    *out = es_arena_calloc(a, (size_t)(nt ? nt : 1) * sizeof **out);
    for (int i = 0; i < nt; i++) {
        es_admin_event_type *t = &(*out)[i];
        t->stream_type = dup_or_null(a, r, i, 0);
        t->event_type = dup_or_null(a, r, i, 1);
        t->schema_name = dup_or_null(a, r, i, 2);
        t->schema_version = (uint32_t)num(r, i, 3);
        t->schema_hash = dup_or_null(a, r, i, 4);
        t->count = num(r, i, 5);
        t->last_position = num(r, i, 6);
    }
    *n = (size_t)nt;
    PQclear(r);
    return ES_OK;
}
