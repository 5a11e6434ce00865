/* One event applied exactly once in effect for a consumer, inside the caller's transaction:
 * the per-stream version row, duplicates, parking and gap filling. Shared by the Kafka runner's
 * per-message path and the replay. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "consumer_internal.h"
#include "event_rows.h"

/* The runner's own statements, prepared at each connect of its session. */
static const es_pg_statement INTERNAL[] = {
    /* Locks the stream's row (creating it at 0) and reads the applied version in one trip. */
    {.name = "es_c_lock",
     .sql = "INSERT INTO es_consumer_streams AS s (consumer, stream_id, version) VALUES ($1, $2, 0)"
     " ON CONFLICT (consumer, stream_id) DO UPDATE SET version = s.version"
     " RETURNING version, coalesce(dead_letter_id, 0)"},
    {.name = "es_c_done", .sql = "UPDATE es_consumer_streams SET version = $3::int8"
                  " WHERE consumer = $1 AND stream_id = $2"},
    {.name = "es_c_gap", .sql = "SELECT " ES__EVENT_COLUMNS " FROM es_events"
                 " WHERE stream_id = $1 AND version > $2::int8 AND version < $3::int8"
                 " ORDER BY version"},
    {.name = "es_c_dead", .sql = "INSERT INTO es_dead_letters (consumer, topic, kafka_partition, kafka_offset,"
                  " stream_id, version, error, message) VALUES ($1, $2, $3::int4, $4::int8,"
                  " nullif($5, ''), nullif($6, '0')::int8, $7, $8::bytea) RETURNING id"},
    /* An upsert: when the stream's first event fails, the savepoint rollback has also removed
     * the row that would record it, and the stream must still be parked. */
    {.name = "es_c_park", .sql = "INSERT INTO es_consumer_streams (consumer, stream_id, version, dead_letter_id)"
                  " VALUES ($1, $2, 0, $3::int8) ON CONFLICT (consumer, stream_id)"
                  " DO UPDATE SET dead_letter_id = EXCLUDED.dead_letter_id"},
    /* The set-wise path is optimistic, so that its transaction holds a transaction id (which
     * holds back the feed, docs/ARCHITECTURE.md invariant 3) only while it writes: it reads the streams'
     * versions without locks, and es_c_advance_many moves each from the version read to the new
     * one only if nobody moved it meanwhile (the count tells; a mismatch rolls the batch back). */
    /* Both look each stream up by its whole key, one index probe per stream (LATERAL, OFFSET 0
     * keeps the lookup inside the loop): the plan must not depend on statistics, which the
     * table lacks while it grows from empty (ANALYZE of an empty table gathers none). Without
     * them the planner guessed a few rows for "consumer = $1" and scanned every stream of the
     * consumer once per batch, joined in a nested loop: ~0.8 s per batch at 20,000 streams. */
    {.name = "es_c_read_many",
     /* k.i: the key's place in $2, so the caller finds each stream's row without a search. */
     .sql = "SELECT k.i, s.version, coalesce(s.dead_letter_id, 0) FROM unnest($2::text[]) WITH ORDINALITY AS k(id, i),"
     " LATERAL (SELECT stream_id, version, dead_letter_id FROM es_consumer_streams t"
     "          WHERE t.consumer = $1 AND t.stream_id = k.id OFFSET 0) s"},
    {.name = "es_c_advance_many",
     .sql = "WITH v AS (SELECT * FROM unnest($2::text[], $3::int8[], $4::int8[], $5::bool[])"
     "             AS v(stream_id, version, expected, existed)),"
     /* The rows still at the version read, found by key; updated by their tuple id (a row
      * another transaction updated meanwhile has a new one and is not counted). */
     " cur AS (SELECT c.tid, v.version FROM v, LATERAL (SELECT t.ctid AS tid FROM es_consumer_streams t"
     "          WHERE t.consumer = $1 AND t.stream_id = v.stream_id AND t.version = v.expected"
     "            AND t.dead_letter_id IS NULL OFFSET 0) c WHERE v.existed),"
     " upd AS (UPDATE es_consumer_streams s SET version = cur.version FROM cur"
     "          WHERE s.ctid = cur.tid AND s.dead_letter_id IS NULL RETURNING 1),"
     " ins AS (INSERT INTO es_consumer_streams (consumer, stream_id, version)"
     "          SELECT $1, stream_id, version FROM v WHERE NOT existed ORDER BY stream_id"
     "          ON CONFLICT (consumer, stream_id) DO NOTHING RETURNING 1)"
     " SELECT (SELECT count(*) FROM upd) + (SELECT count(*) FROM ins)"},
    {.name = "es_c_stream", .sql = "SELECT " ES__EVENT_COLUMNS " FROM es_events"
                    " WHERE stream_id = $1 AND version > $2::int8 ORDER BY version LIMIT $3::int8"},
    {.name = "es_c_feed", .sql = "SELECT " ES__EVENT_COLUMNS " FROM es_events"
                  " WHERE (txid, position) > ($1::xid8, $2::int8)"
                  "   AND txid < pg_snapshot_xmin(pg_current_snapshot())"
                  " ORDER BY es_events.txid, es_events.position LIMIT $3::int8"},
};

es_pg_session *es__consumer_session(const char *conninfo, es_error *err)
{
    /* Every statement of this session looks rows up by key (the batch path's LATERAL ... OFFSET 0
     * probes and updates by tuple id, the projector's lookups and upserts, the feed's and a
     * stream's ranges): with sequential scans off their plans are index probes whatever the
     * tables' size and statistics, so PostgreSQL's default plan caching is safe. Without it a
     * generic plan made while es_consumer_streams was small and analysed (a seq scan per key,
     * a hash join) stayed cached while the table grew, until autovacuum analysed it again; the
     * earlier cure, a custom plan for every batch statement, cost ~15% of the consumer's
     * PostgreSQL CPU per event (bench/NOTES.md, "Live drain"). */
    es_pg_session_config cfg = {.conninfo = conninfo, .application_name = "es-consumer",
                                .settings = "SET enable_seqscan = off",
                                .statements = INTERNAL, .n_statements = sizeof INTERNAL / sizeof INTERNAL[0]};
    return es_pg_session_new(&cfg, err);
}

PGresult *es__consumer_run(es_pg_session *s, const char *name, int n, const char *const *params,
                           const int *lengths, const int *formats)
{
    return PQexecPrepared(es_pg_session_conn(s), name, n, params, lengths, formats, 0);
}

PGresult *es__consumer_read_events(es_pg_session *s, const char *name, int n, const char *const *params)
{
    return PQexecPrepared(es_pg_session_conn(s), name, n, params, NULL, NULL, 1);
}

/* A database that cannot take writes now (down, read-only, full, too slow) is waited for,
 * never a reason to dead-letter the event. */
outcome es__consumer_handler_failed(es_pg_session *s, const es_error *err)
{
    PGconn *conn = es_pg_session_conn(s);
    return conn && PQstatus(conn) == CONNECTION_OK && !es_pg_retry_later(err->code) ? FAILED : DB_DOWN;
}

static outcome db_failure(es_pg_session *s, const PGresult *r, es_error *err, const char *what)
{
    return es_pg_retry_later(es_pg_session_fail(s, r, what, err)) ? DB_DOWN : FAILED;
}

/* Applies ev for consumer name inside the caller's open transaction (and savepoint).
 * *dead_letter receives the parking dead letter's id for PARKED. */
outcome es__consumer_apply(es_pg_session *d, const char *name, es_consumer_handle_fn handle, void *data,
                           const es_envelope_view *ev, counters *cnt, int64_t *dead_letter, es_error *err)
{
    char ver[24], applied_s[24];
    snprintf(ver, sizeof ver, "%" PRId64, ev->version);
    const char *p2[2] = {name, ev->stream_id};
    PGresult *r = es__consumer_run(d, "es_c_lock", 2, p2, NULL, NULL);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        outcome o = db_failure(d, r, err, "consumer: lock stream");
        PQclear(r);
        return o;
    }
    int64_t applied = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    int64_t parked = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
    PQclear(r);
    if (ev->version <= applied) {
        cnt->duplicates++;
        return DUPLICATE;
    }
    if (parked) {
        *dead_letter = parked;
        es_error_set(err, ES_FAILED_PRECONDITION, "stream_id",
                     "stream %s is parked behind dead letter %" PRId64, ev->stream_id, parked);
        return PARKED;
    }
    es_consumer_tx tx = {d, name};
    if (ev->version > applied + 1) {
        /* A gap: the missing versions come from the store, in order, before this event. */
        snprintf(applied_s, sizeof applied_s, "%" PRId64, applied);
        const char *p3[3] = {ev->stream_id, applied_s, ver};
        r = es__consumer_read_events(d, "es_c_gap", 3, p3);
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            outcome o = db_failure(d, r, err, "consumer: read gap");
            PQclear(r);
            return o;
        }
        es_arena arena;
        es_arena_init(&arena);
        es_envelope_view *missing = NULL;
        size_t n = es__event_rows(r, &arena, &missing);
        PQclear(r);
        outcome o = APPLIED;
        if ((int64_t)n != ev->version - applied - 1) {
            es_error_set(err, ES_DATA_LOSS, "version",
                         "stream %s: versions %" PRId64 "..%" PRId64
                         " are missing from es_events (found %zu)",
                         ev->stream_id, applied + 1, ev->version - 1, n);
            o = FAILED;
        }
        for (size_t i = 0; o == APPLIED && i < n; i++) {
            if (missing[i].version != applied + 1 + (int64_t)i) {
                es_error_set(err, ES_DATA_LOSS, "version", "stream %s: version %" PRId64
                             " missing from es_events", ev->stream_id, applied + 1 + (int64_t)i);
                o = FAILED;
            } else if (handle(data, &tx, &missing[i], err) != ES_OK) {
                o = es__consumer_handler_failed(d, err);
            } else {
                cnt->gap_filled++;
            }
        }
        es_arena_free(&arena);
        if (o != APPLIED)
            return o;
    }
    /* A database that cannot take writes now (down, read-only, full) is waited for, never a
     * reason to dead-letter the event. */
    if (handle(data, &tx, ev, err) != ES_OK)
        return es__consumer_handler_failed(d, err);
    const char *p3[3] = {name, ev->stream_id, ver};
    r = es__consumer_run(d, "es_c_done", 3, p3, NULL, NULL);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        outcome o = db_failure(d, r, err, "consumer: record version");
        PQclear(r);
        return o;
    }
    PQclear(r);
    cnt->applied++;
    return APPLIED;
}
