/* Consumer group runner and store replay with per-stream exactly-once effects; see
 * es/consumer.h for the protocol. */
#define _GNU_SOURCE /* pthread_setname_np */
#include "es/consumer.h"
#include "es/log.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>
#include <librdkafka/rdkafka.h>

#include "es/feed.h"
#include "es/pg_pool.h"
#include "event_rows.h"

/* ---- a connection with prepared statements ---- */

typedef struct stmt {
    char *sql;
    uint64_t hash;
    char name[24];
} stmt;

typedef struct db {
    char *conninfo;
    PGconn *conn;
    stmt *stmts;
    size_t nstmts, capstmts;
    int next_id;
} db;

struct es_consumer_tx {
    db *d;
    const char *name;
};

struct es_sql_rows {
    PGresult *r;
};

static const struct {
    const char *name, *sql;
} INTERNAL[] = {
    /* Locks the stream's row (creating it at 0) and reads the applied version in one trip. */
    {"es_c_lock",
     "INSERT INTO es_consumer_streams AS s (consumer, stream_id, version) VALUES ($1, $2, 0)"
     " ON CONFLICT (consumer, stream_id) DO UPDATE SET version = s.version"
     " RETURNING version, coalesce(dead_letter_id, 0)"},
    {"es_c_done", "UPDATE es_consumer_streams SET version = $3::int8"
                  " WHERE consumer = $1 AND stream_id = $2"},
    {"es_c_gap", "SELECT " ES__EVENT_COLUMNS " FROM es_events"
                 " WHERE stream_id = $1 AND version > $2::int8 AND version < $3::int8"
                 " ORDER BY version"},
    {"es_c_dead", "INSERT INTO es_dead_letters (consumer, topic, kafka_partition, kafka_offset,"
                  " stream_id, version, error, message) VALUES ($1, $2, $3::int4, $4::int8,"
                  " nullif($5, ''), nullif($6, '0')::int8, $7, $8::bytea) RETURNING id"},
    /* An upsert: when the stream's first event fails, the savepoint rollback has also removed
     * the row that would record it, and the stream must still be parked. */
    {"es_c_park", "INSERT INTO es_consumer_streams (consumer, stream_id, version, dead_letter_id)"
                  " VALUES ($1, $2, 0, $3::int8) ON CONFLICT (consumer, stream_id)"
                  " DO UPDATE SET dead_letter_id = EXCLUDED.dead_letter_id"},
    /* The set-wise path is optimistic, so that its transaction holds a transaction id (which
     * holds back the feed, DESIGN invariant 3) only while it writes: it reads the streams'
     * versions without locks, and es_c_advance_many moves each from the version read to the new
     * one only if nobody moved it meanwhile (the count tells; a mismatch rolls the batch back). */
    {"es_c_read_many",
     "SELECT stream_id, version, coalesce(dead_letter_id, 0) FROM es_consumer_streams"
     " WHERE consumer = $1 AND stream_id = ANY($2::text[])"},
    {"es_c_advance_many",
     "WITH v AS (SELECT * FROM unnest($2::text[], $3::int8[], $4::int8[], $5::bool[])"
     "             AS v(stream_id, version, expected, existed)),"
     " upd AS (UPDATE es_consumer_streams s SET version = v.version FROM v"
     "          WHERE v.existed AND s.consumer = $1 AND s.stream_id = v.stream_id"
     "            AND s.version = v.expected AND s.dead_letter_id IS NULL RETURNING 1),"
     " ins AS (INSERT INTO es_consumer_streams (consumer, stream_id, version)"
     "          SELECT $1, stream_id, version FROM v WHERE NOT existed ORDER BY stream_id"
     "          ON CONFLICT (consumer, stream_id) DO NOTHING RETURNING 1)"
     " SELECT (SELECT count(*) FROM upd) + (SELECT count(*) FROM ins)"},
    {"es_c_stream", "SELECT " ES__EVENT_COLUMNS " FROM es_events"
                    " WHERE stream_id = $1 AND version > $2::int8 ORDER BY version LIMIT $3::int8"},
    {"es_c_feed", "SELECT " ES__EVENT_COLUMNS " FROM es_events"
                  " WHERE (txid, position) > ($1::xid8, $2::int8)"
                  "   AND txid < pg_snapshot_xmin(pg_current_snapshot())"
                  " ORDER BY es_events.txid, es_events.position LIMIT $3::int8"},
};

static uint64_t fnv(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static int classify(PGconn *conn, const PGresult *r)
{
    if (PQstatus(conn) != CONNECTION_OK)
        return ES_UNAVAILABLE;
    const char *st = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    if (!st)
        return ES_INTERNAL;
    if (!strcmp(st, "40001") || !strcmp(st, "40P01"))
        return ES_ABORTED;
    if (!strcmp(st, "23505"))
        return ES_ALREADY_EXISTS;
    if (!strncmp(st, "08", 2) || !strncmp(st, "57", 2))
        return ES_UNAVAILABLE;
    /* Read-only, disk full, out of memory, too many connections: retried like an outage. */
    if (es_pg_sqlstate_status(st, ES_INTERNAL) == ES_UNAVAILABLE)
        return ES_UNAVAILABLE;
    if (!strncmp(st, "22", 2) || !strncmp(st, "23", 2))
        return ES_INVALID_ARGUMENT;
    return ES_INTERNAL;
}

static void db_clear_stmts(db *d)
{
    for (size_t i = 0; i < d->nstmts; i++)
        free(d->stmts[i].sql);
    d->nstmts = 0;
}

static void db_close(db *d)
{
    if (d->conn)
        PQfinish(d->conn);
    d->conn = NULL;
    db_clear_stmts(d);
}

static void db_free(db *d)
{
    db_close(d);
    free(d->stmts);
    free(d->conninfo);
    d->stmts = NULL;
    d->capstmts = 0;
    d->conninfo = NULL;
}

/* Connects and prepares the runner's own statements; a no-op while healthy. */
static int db_ready(db *d, es_error *err)
{
    if (d->conn && PQstatus(d->conn) == CONNECTION_OK)
        return ES_OK;
    db_close(d);
    d->conn = PQconnectdb(d->conninfo);
    if (PQstatus(d->conn) != CONNECTION_OK)
        return es__pg_error(err, ES_UNAVAILABLE, d->conn, NULL, "consumer: connect");
    PQclear(PQexec(d->conn, "SET application_name = 'es-consumer'"));
    for (size_t i = 0; i < sizeof INTERNAL / sizeof INTERNAL[0]; i++) {
        PGresult *r = PQprepare(d->conn, INTERNAL[i].name, INTERNAL[i].sql, 0, NULL);
        int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        int rc = ok ? ES_OK : es__pg_error(err, classify(d->conn, r), d->conn, r, "consumer: prepare");
        PQclear(r);
        if (!ok)
            return rc;
    }
    return ES_OK;
}

/* Executes a prepared internal statement (text params, optional binary last param). */
static PGresult *db_run(db *d, const char *name, int n, const char *const *params,
                        const int *lengths, const int *formats)
{
    return PQexecPrepared(d->conn, name, n, params, lengths, formats, 0);
}

static int db_simple(db *d, const char *sql, es_error *err)
{
    PGresult *r = PQexec(d->conn, sql);
    int rc = PQresultStatus(r) == PGRES_COMMAND_OK
                 ? ES_OK
                 : es__pg_error(err, classify(d->conn, r), d->conn, r, sql);
    PQclear(r);
    return rc;
}

/* The statement name for sql, preparing it on first use on this connection. */
static const char *db_stmt(db *d, const char *sql, int nparams, es_error *err, int *rc)
{
    uint64_t h = fnv(sql);
    for (size_t i = 0; i < d->nstmts; i++)
        if (d->stmts[i].hash == h && !strcmp(d->stmts[i].sql, sql))
            return d->stmts[i].name;
    char name[24];
    snprintf(name, sizeof name, "es_h_%d", d->next_id++);
    PGresult *r = PQprepare(d->conn, name, sql, nparams, NULL);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        *rc = es__pg_error(err, classify(d->conn, r), d->conn, r, "prepare");
        PQclear(r);
        return NULL;
    }
    PQclear(r);
    if (d->nstmts == d->capstmts) {
        d->capstmts = d->capstmts ? d->capstmts * 2 : 16;
        d->stmts = es_xrealloc(d->stmts, d->capstmts * sizeof *d->stmts);
    }
    stmt *s = &d->stmts[d->nstmts++];
    s->sql = es_xstrdup(sql);
    s->hash = h;
    memcpy(s->name, name, sizeof name);
    return s->name;
}

static PGresult *tx_run(es_consumer_tx *tx, const char *sql, int nparams, const char *const *params,
                        ExecStatusType want, es_error *err, int *rc)
{
    *rc = ES_OK;
    if (!tx || !tx->d || !sql) {
        *rc = es_error_set(err, ES_INVALID_ARGUMENT, "", "es_consumer_tx: no transaction or sql");
        return NULL;
    }
    const char *name = db_stmt(tx->d, sql, nparams, err, rc);
    if (!name)
        return NULL;
    PGresult *r = PQexecPrepared(tx->d->conn, name, nparams, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(r);
    if (st == want || (want == PGRES_COMMAND_OK && st == PGRES_TUPLES_OK))
        return r;
    *rc = es__pg_error(err, classify(tx->d->conn, r), tx->d->conn, r, "sql");
    PQclear(r);
    return NULL;
}

int es_consumer_tx_exec(es_consumer_tx *tx, const char *sql, int nparams, const char *const *params,
                        int64_t *rows_affected, es_error *err)
{
    int rc;
    PGresult *r = tx_run(tx, sql, nparams, params, PGRES_COMMAND_OK, err, &rc);
    if (!r)
        return rc;
    if (rows_affected)
        *rows_affected = strtoll(PQcmdTuples(r), NULL, 10);
    PQclear(r);
    return ES_OK;
}

int es_consumer_tx_query(es_consumer_tx *tx, const char *sql, int nparams,
                         const char *const *params, es_sql_rows **out, es_error *err)
{
    int rc;
    *out = NULL;
    PGresult *r = tx_run(tx, sql, nparams, params, PGRES_TUPLES_OK, err, &rc);
    if (!r)
        return rc;
    *out = es_xmalloc(sizeof **out);
    (*out)->r = r;
    return ES_OK;
}

const char *es_consumer_tx_name(const es_consumer_tx *tx) { return tx ? tx->name : ""; }

int es_sql_rows_count(const es_sql_rows *rows) { return rows ? PQntuples(rows->r) : 0; }
int es_sql_rows_columns(const es_sql_rows *rows) { return rows ? PQnfields(rows->r) : 0; }

const char *es_sql_rows_value(const es_sql_rows *rows, int row, int col)
{
    if (!rows || row < 0 || col < 0 || row >= PQntuples(rows->r) || col >= PQnfields(rows->r) ||
        PQgetisnull(rows->r, row, col))
        return NULL;
    return PQgetvalue(rows->r, row, col);
}

void es_sql_rows_free(es_sql_rows *rows)
{
    if (!rows)
        return;
    PQclear(rows->r);
    free(rows);
}

/* ---- the apply path shared by the Kafka runner and replay ---- */

typedef struct counters {
    int64_t applied, duplicates, gap_filled;
} counters;

typedef enum outcome {
    APPLIED,         /* handler ran (with any gap filled); version recorded */
    DUPLICATE,       /* nothing to do */
    PARKED,          /* the stream waits behind an open dead letter */
    FAILED,          /* handler or gap error: err set; the caller rolls back */
    DB_DOWN,         /* connection problem: the caller retries the whole batch */
} outcome;

static outcome db_failure(db *d, const PGresult *r, es_error *err, const char *what)
{
    int code = classify(d->conn, r);
    es__pg_error(err, code, d->conn, r, what);
    return code == ES_UNAVAILABLE ? DB_DOWN : FAILED;
}

/* Applies ev for consumer name inside the caller's open transaction (and savepoint).
 * *dead_letter receives the parking dead letter's id for PARKED. */
static outcome apply_event(db *d, const char *name, es_consumer_handle_fn handle, void *data,
                           const es_envelope_view *ev, counters *cnt, int64_t *dead_letter,
                           es_error *err)
{
    char ver[24], applied_s[24];
    snprintf(ver, sizeof ver, "%" PRId64, ev->version);
    const char *p2[2] = {name, ev->stream_id};
    PGresult *r = db_run(d, "es_c_lock", 2, p2, NULL, NULL);
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
        r = db_run(d, "es_c_gap", 3, p3, NULL, NULL);
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
                o = PQstatus(d->conn) == CONNECTION_OK && err->code != ES_UNAVAILABLE ? FAILED : DB_DOWN;
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
        return PQstatus(d->conn) == CONNECTION_OK && err->code != ES_UNAVAILABLE ? FAILED : DB_DOWN;
    const char *p3[3] = {name, ev->stream_id, ver};
    r = db_run(d, "es_c_done", 3, p3, NULL, NULL);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        outcome o = db_failure(d, r, err, "consumer: record version");
        PQclear(r);
        return o;
    }
    PQclear(r);
    cnt->applied++;
    return APPLIED;
}

/* ---- the Kafka runner ---- */

struct es_consumer {
    char *name, *group, *topic, *bootstrap;
    char **props;
    es_consumer_handle_fn handle;
    es_consumer_batch_fn handle_batch;
    void *data;
    void (*committed)(void *data, const char *const *stream_ids, size_t n);
    void *committed_data;
    int max_retries, batch_max, session_ms, quiet;
    int64_t last_ts_ms;              /* Kafka timestamp of the last message applied */
    struct timespec lag_at;          /* when the lag was last measured */
    db d;
    rd_kafka_t *rk;
    pthread_t thread;
    atomic_int stop;
    pthread_mutex_t mu;
    es_consumer_stats st;
};

static void say(es_consumer *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(es_consumer *c, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&c->mu);
    snprintf(c->st.last_error, sizeof c->st.last_error, "%.255s", line);
    pthread_mutex_unlock(&c->mu);
    if (!c->quiet)
        es_log(ES_LOG_INFO, "consumer", NULL, "[%s] %s", c->name, line);
}

static void nap_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t e,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    es_consumer *c = opaque;
    int cooperative = !strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE");
    if (e == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        if (cooperative)
            rd_kafka_error_destroy(rd_kafka_incremental_assign(rk, parts));
        else
            rd_kafka_assign(rk, parts);
    } else {
        if (cooperative)
            rd_kafka_error_destroy(rd_kafka_incremental_unassign(rk, parts));
        else
            rd_kafka_assign(rk, NULL);
    }
    rd_kafka_topic_partition_list_t *now = NULL;
    if (rd_kafka_assignment(rk, &now) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        pthread_mutex_lock(&c->mu);
        c->st.assigned_partitions = now->cnt;
        pthread_mutex_unlock(&c->mu);
        rd_kafka_topic_partition_list_destroy(now);
    }
}

static void on_kafka_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    es_consumer *c = rd_kafka_opaque(rk);
    if (level <= 2 && c && !c->quiet)
        es_log(ES_LOG_WARN, "consumer", NULL, "[%s] kafka %s: %s", c->name, fac, buf);
}

/* Records one message in es_dead_letters (inside the open transaction) and, when it belongs to
 * a stream whose event could not be applied, parks the stream. */
static int dead_letter(es_consumer *c, const rd_kafka_message_t *m, const es_envelope_view *ev,
                       const es_error *why, int park, es_error *err)
{
    char part[16], off[24], ver[24], id[24];
    snprintf(part, sizeof part, "%" PRId32, m->partition);
    snprintf(off, sizeof off, "%" PRId64, m->offset);
    snprintf(ver, sizeof ver, "%" PRId64, ev ? ev->version : 0);
    char msg[520];
    snprintf(msg, sizeof msg, "%s: %s", es_strerror(why->code), why->message);
    const char *params[8] = {c->name, c->topic, part, off, ev ? ev->stream_id : "", ver, msg,
                             m->payload ? (const char *)m->payload : ""};
    int lengths[8] = {0, 0, 0, 0, 0, 0, 0, (int)m->len};
    int formats[8] = {0, 0, 0, 0, 0, 0, 0, 1};
    PGresult *r = db_run(&c->d, "es_c_dead", 8, params, lengths, formats);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        int rc = es__pg_error(err, classify(c->d.conn, r), c->d.conn, r, "consumer: dead letter");
        PQclear(r);
        return rc;
    }
    snprintf(id, sizeof id, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    if (park && ev && ev->stream_id[0]) {
        const char *p3[3] = {c->name, ev->stream_id, id};
        r = db_run(&c->d, "es_c_park", 3, p3, NULL, NULL);
        int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        int rc = ok ? ES_OK : es__pg_error(err, classify(c->d.conn, r), c->d.conn, r, "park");
        PQclear(r);
        if (!ok)
            return rc;
    }
    say(c, "dead letter %s (partition %s offset %s, stream %s v%s): %s", id, part, off,
        ev && ev->stream_id[0] ? ev->stream_id : "?", ver, msg);
    pthread_mutex_lock(&c->mu);
    c->st.dead_letters++;
    pthread_mutex_unlock(&c->mu);
    return ES_OK;
}

/* Processes one message inside the batch transaction. Returns ES_OK (applied, skipped or
 * dead-lettered) or ES_UNAVAILABLE / another error when the batch must be retried. */
static int process_message(es_consumer *c, const rd_kafka_message_t *m, counters *cnt,
                           es_arena *arena)
{
    es_error err = {0}, derr = {0};
    es_envelope_view ev;
    es_arena_reset(arena);
    if (es_envelope_unpack(m->payload, m->len, arena, &ev, &err) != ES_OK) {
        /* Keep what the headers say about the stream for whoever investigates. */
        rd_kafka_headers_t *hdrs = NULL;
        es_envelope_view hv;
        es_envelope_view_clear(&hv);
        if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR) {
            es_envelope_header h[32];
            size_t n = 0;
            const char *name;
            const void *val;
            size_t len;
            while (n < 32 && rd_kafka_header_get_all(hdrs, n, &name, &val, &len) == 0) {
                h[n] = (es_envelope_header){name, val, len};
                n++;
            }
            es_envelope_from_headers(h, n, arena, &hv);
        }
        if (!hv.stream_id[0] && m->key)
            hv.stream_id = es_arena_strndup(arena, m->key, m->key_len);
        return dead_letter(c, m, &hv, &err, 0, &derr) == ES_OK ? ES_OK : derr.code;
    }
    for (int attempt = 1;; attempt++) {
        if (db_simple(&c->d, "SAVEPOINT es_msg", &derr) != ES_OK)
            return derr.code;
        counters tmp = {0};
        int64_t parked_by = 0;
        outcome o = apply_event(&c->d, c->name, c->handle, c->data, &ev, &tmp, &parked_by, &err);
        if (o == DB_DOWN)
            return ES_UNAVAILABLE;
        if (o == APPLIED || o == DUPLICATE) {
            if (db_simple(&c->d, "RELEASE SAVEPOINT es_msg", &derr) != ES_OK)
                return derr.code;
            cnt->applied += tmp.applied;
            cnt->duplicates += tmp.duplicates;
            cnt->gap_filled += tmp.gap_filled;
            return ES_OK;
        }
        if (db_simple(&c->d, "ROLLBACK TO SAVEPOINT es_msg", &derr) != ES_OK)
            return derr.code;
        if (o == FAILED && attempt < c->max_retries) {
            pthread_mutex_lock(&c->mu);
            c->st.retries++;
            pthread_mutex_unlock(&c->mu);
            nap_ms(20 * attempt);
            continue;
        }
        /* PARKED, or FAILED for the last time: record it, park the stream, move on. */
        if (o == FAILED) {
            char what[384];
            snprintf(what, sizeof what, "after %d attempts: %.340s", attempt, err.message);
            snprintf(err.message, sizeof err.message, "%s", what);
        }
        return dead_letter(c, m, &ev, &err, 1, &derr) == ES_OK ? ES_OK : derr.code;
    }
}

/* ---- the set-wise path ---- */

typedef struct item {
    const rd_kafka_message_t *m;
    es_envelope_view ev;
} item;

static int item_cmp(const void *a, const void *b)
{
    const item *x = *(const item *const *)a, *y = *(const item *const *)b;
    int c = strcmp(x->ev.stream_id, y->ev.stream_id);
    if (c)
        return c;
    if (x->ev.version != y->ev.version)
        return x->ev.version < y->ev.version ? -1 : 1;
    return x->m->offset < y->m->offset ? -1 : x->m->offset > y->m->offset;
}

/* Applies msgs set-wise inside the open transaction: one statement reads the versions of every
 * stream of the batch, the batch handler applies the clean streams' events together, one
 * statement advances their versions if nobody else did meanwhile; streams with a gap or a
 * parking, and messages that do not decode, go through process_message (same transaction).
 * Returns ES_OK, ES_UNAVAILABLE, another database error, ES_ABORTED when the batch handler
 * failed (the caller rolls back and processes the batch one message at a time), or
 * ES_FAILED_PRECONDITION when another consumer moved a stream meanwhile (roll back, retry). */
static int process_set(es_consumer *c, rd_kafka_message_t **msgs, size_t n, counters *cnt, es_arena *arena,
                       es_error *err)
{
    es_arena fa;
    es_arena_init(&fa);
    es_buf ids, vers, expect, existed;
    es_buf_init(&ids);
    es_buf_init(&vers);
    es_buf_init(&expect);
    es_buf_init(&existed);
    int64_t nstreams = 0;
    item *items = es_arena_alloc(&fa, (n ? n : 1) * sizeof *items);
    item **sorted = es_arena_alloc(&fa, (n ? n : 1) * sizeof *sorted);
    const rd_kafka_message_t **slow = es_arena_alloc(&fa, (n ? n : 1) * sizeof *slow);
    es_envelope_view *fast = es_arena_alloc(&fa, (n ? n : 1) * sizeof *fast);
    size_t ni = 0, nslow = 0, nfast = 0;
    PGresult *r = NULL;
    int rc = ES_OK;
    for (size_t i = 0; i < n; i++) {
        if (msgs[i]->err)
            continue;
        es_error derr = {0};
        items[ni].m = msgs[i];
        if (es_envelope_unpack(msgs[i]->payload, msgs[i]->len, &fa, &items[ni].ev, &derr) != ES_OK)
            slow[nslow++] = msgs[i];   /* dead-lettered by process_message */
        else
            sorted[ni] = &items[ni], ni++;
    }
    qsort(sorted, ni, sizeof *sorted, item_cmp);
    for (size_t i = 0; i < ni; i++)
        if (i == 0 || strcmp(sorted[i]->ev.stream_id, sorted[i - 1]->ev.stream_id))
            es_pg_array_elem(&ids, sorted[i]->ev.stream_id);
    if (ni) {
        const char *p2[2] = {c->name, es_pg_array_end(&ids)};
        r = db_run(&c->d, "es_c_read_many", 2, p2, NULL, NULL);
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            rc = es__pg_error(err, classify(c->d.conn, r), c->d.conn, r, "consumer: read versions");
            goto out;
        }
    }
    es_buf_reset(&ids);
    int nrows = r ? PQntuples(r) : 0;
    for (size_t i = 0; i < ni;) {
        size_t j = i;
        while (j < ni && !strcmp(sorted[j]->ev.stream_id, sorted[i]->ev.stream_id))
            j++;
        /* The stream's row: RETURNING keeps no order, so look it up (batches are small). */
        int64_t applied = 0, parked = 0;
        int found = 0;
        for (int k = 0; k < nrows && !found; k++)
            if (!strcmp(PQgetvalue(r, k, 0), sorted[i]->ev.stream_id)) {
                applied = strtoll(PQgetvalue(r, k, 1), NULL, 10);
                parked = strtoll(PQgetvalue(r, k, 2), NULL, 10);
                found = 1;
            }
        /* Clean: not parked, and the versions above applied run on from applied + 1. */
        int clean = !parked;
        int64_t next = applied + 1;
        size_t first_fast = nfast;
        for (size_t k = i; clean && k < j; k++) {
            int64_t v = sorted[k]->ev.version;
            if (v < next) {
                cnt->duplicates++;
                continue;
            }
            if (v != next) {
                clean = 0;
                break;
            }
            fast[nfast++] = sorted[k]->ev;
            next++;
        }
        if (!clean) {
            nfast = first_fast;
            for (size_t k = i; k < j; k++)
                slow[nslow++] = sorted[k]->m;
        } else if (nfast > first_fast) {
            char v[24], e[24];
            snprintf(v, sizeof v, "%" PRId64, next - 1);
            snprintf(e, sizeof e, "%" PRId64, applied);
            es_pg_array_elem(&ids, sorted[i]->ev.stream_id);
            es_pg_array_elem(&vers, v);
            es_pg_array_elem(&expect, e);
            es_pg_array_elem(&existed, found ? "t" : "f");
            nstreams++;
        }
        i = j;
    }
    if (nfast) {
        es_consumer_tx tx = {&c->d, c->name};
        if (c->handle_batch(c->data, &tx, fast, nfast, err) != ES_OK) {
            rc = PQstatus(c->d.conn) == CONNECTION_OK && err->code != ES_UNAVAILABLE ? ES_ABORTED : ES_UNAVAILABLE;
            goto out;
        }
        const char *p5[5] = {c->name, es_pg_array_end(&ids), es_pg_array_end(&vers), es_pg_array_end(&expect), es_pg_array_end(&existed)};
        PQclear(r);
        r = db_run(&c->d, "es_c_advance_many", 5, p5, NULL, NULL);
        if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
            rc = es__pg_error(err, classify(c->d.conn, r), c->d.conn, r, "consumer: record versions");
            goto out;
        }
        if (strtoll(PQgetvalue(r, 0, 0), NULL, 10) != nstreams) {
            rc = es_error_set(err, ES_FAILED_PRECONDITION, "version",
                              "consumer: another consumer advanced a stream of this batch meanwhile");
            goto out;
        }
        cnt->applied += (int64_t)nfast;
    }
    /* The rest, one message at a time, in Kafka order (a stream's messages keep their order). */
    for (size_t i = 0; i < n && nslow; i++) {
        int is_slow = 0;
        for (size_t k = 0; k < nslow && !is_slow; k++)
            is_slow = slow[k] == msgs[i];
        if (is_slow && (rc = process_message(c, msgs[i], cnt, arena)) != ES_OK) {
            es_error_set(err, rc, "", "consumer: a message of the batch could not be processed");
            goto out;
        }
    }
out:
    PQclear(r);
    es_buf_free(&ids);
    es_buf_free(&vers);
    es_buf_free(&expect);
    es_buf_free(&existed);
    es_arena_free(&fa);
    return rc;
}

/* Tells the committed hook which streams the batch just committed (the Kafka keys). */
static void tell_committed(es_consumer *c, rd_kafka_message_t **msgs, size_t n, es_arena *arena)
{
    const char **ids = es_arena_alloc(arena, (n ? n : 1) * sizeof *ids);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (!msgs[i]->err && msgs[i]->key)
            ids[k++] = es_arena_strndup(arena, msgs[i]->key, msgs[i]->key_len);
    if (k)
        c->committed(c->committed_data, ids, k);
}

/* Applies a polled batch in one transaction; retries it whole while PostgreSQL is away.
 * Returns 0 when committed, -1 when stopping before that. */
static int process_batch(es_consumer *c, rd_kafka_message_t **msgs, size_t n)
{
    es_arena arena;
    es_arena_init(&arena);
    int backoff = 100, rc = -1, set_wise = c->handle_batch != NULL, fell_back = 0, raced = 0;
    while (!atomic_load(&c->stop)) {
        es_error err = {0};
        counters cnt = {0};
        int64_t handled = 0;
        int st = db_ready(&c->d, &err);
        if (st == ES_OK)
            st = db_simple(&c->d, "BEGIN", &err);
        if (st == ES_OK && set_wise) {
            st = process_set(c, msgs, n, &cnt, &arena, &err);
            for (size_t i = 0; i < n; i++)
                handled += !msgs[i]->err;
            if (st == ES_FAILED_PRECONDITION && ++raced < 3) {
                /* Another consumer (a rebalance's overlap, a rebuild) moved a stream: read again. */
                PQclear(PQexec(c->d.conn, "ROLLBACK"));
                continue;
            }
            if (st == ES_ABORTED || st == ES_FAILED_PRECONDITION) {
                /* The batch handler failed: apply one message at a time, which retries and
                 * dead-letters the message at fault. */
                say(c, "batch of %zu: set-wise apply failed (%s); applying one message at a time", n,
                    err.message);
                PQclear(PQexec(c->d.conn, "ROLLBACK"));
                set_wise = 0;
                fell_back = 1;
                continue;
            }
        }
        for (size_t i = 0; !set_wise && st == ES_OK && i < n; i++) {
            if (msgs[i]->err)
                continue;
            st = process_message(c, msgs[i], &cnt, &arena);
            handled++;
        }
        if (st == ES_OK)
            st = db_simple(&c->d, "COMMIT", &err);
        if (st == ES_OK) {
            pthread_mutex_lock(&c->mu);
            c->st.messages += handled;
            c->st.applied += cnt.applied;
            c->st.duplicates += cnt.duplicates;
            c->st.gap_filled += cnt.gap_filled;
            c->st.batches++;
            c->st.batch_fallbacks += fell_back;
            pthread_mutex_unlock(&c->mu);
            if (c->committed)
                tell_committed(c, msgs, n, &arena);
            for (size_t i = n; i-- > 0;)
                if (!msgs[i]->err) {
                    rd_kafka_timestamp_type_t tt;
                    int64_t ts = rd_kafka_message_timestamp(msgs[i], &tt);
                    if (ts > 0)
                        c->last_ts_ms = ts;
                    break;
                }
            rc = 0;
            break;
        }
        say(c, "batch of %zu not committed (%s: %s); retrying", n, es_strerror(st),
            err.message[0] ? err.message : "see above");
        if (c->d.conn && PQstatus(c->d.conn) == CONNECTION_OK)
            PQclear(PQexec(c->d.conn, "ROLLBACK"));
        else
            db_close(&c->d);
        nap_ms(backoff);
        backoff = backoff < 2000 ? backoff * 2 : 2000;
    }
    es_arena_free(&arena);
    return rc;
}

/* Commits, after the database did, the offsets following the batch's last message per
 * partition, without waiting for the broker's answer: the stream versions in the database are
 * what makes processing exactly-once, so a commit lost or refused (rebalance) only means
 * redelivery, which is deduplicated. Waiting put a broker round trip between batches. */
static void commit_offsets(es_consumer *c, rd_kafka_message_t **msgs, size_t n)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)n);
    for (size_t i = 0; i < n; i++) {
        if (msgs[i]->err)
            continue;
        const char *t = rd_kafka_topic_name(msgs[i]->rkt);
        rd_kafka_topic_partition_t *p = rd_kafka_topic_partition_list_find(l, t, msgs[i]->partition);
        if (!p)
            p = rd_kafka_topic_partition_list_add(l, t, msgs[i]->partition);
        if (msgs[i]->offset + 1 > p->offset)
            p->offset = msgs[i]->offset + 1;
    }
    if (l->cnt > 0) {
        rd_kafka_resp_err_t e = rd_kafka_commit(c->rk, l, 1);
        if (e)
            say(c, "offset commit refused (%s): those messages will be redelivered and skipped",
                rd_kafka_err2str(e));
    }
    rd_kafka_topic_partition_list_destroy(l);
}

/* Consumer lag: high watermark minus position over the assigned partitions (both known
 * locally: watermarks come with every fetch, so this does not call the brokers), at most twice
 * a second. */
static void measure_lag(es_consumer *c)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if ((now.tv_sec - c->lag_at.tv_sec) * 1000 + (now.tv_nsec - c->lag_at.tv_nsec) / 1000000 < 500)
        return;
    c->lag_at = now;
    rd_kafka_topic_partition_list_t *a = NULL;
    if (rd_kafka_assignment(c->rk, &a) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return;
    int64_t lag = 0;
    int known = a->cnt > 0;
    if (rd_kafka_position(c->rk, a) != RD_KAFKA_RESP_ERR_NO_ERROR)
        known = 0;
    for (int i = 0; known && i < a->cnt; i++) {
        int64_t lo = -1, hi = -1;
        if (rd_kafka_get_watermark_offsets(c->rk, a->elems[i].topic, a->elems[i].partition, &lo, &hi) ||
            hi < 0) {
            known = 0;
            break;
        }
        int64_t pos = a->elems[i].offset >= 0 ? a->elems[i].offset : lo;
        if (hi > pos)
            lag += hi - pos;
    }
    rd_kafka_topic_partition_list_destroy(a);
    struct timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    int64_t now_ms = (int64_t)wall.tv_sec * 1000 + wall.tv_nsec / 1000000;
    pthread_mutex_lock(&c->mu);
    c->st.lag_messages = known ? lag : -1;
    c->st.lag_seconds = known && lag > 0 && c->last_ts_ms > 0 && now_ms > c->last_ts_ms
                            ? (double)(now_ms - c->last_ts_ms) / 1000.0
                            : 0.0;
    pthread_mutex_unlock(&c->mu);
}

static void *consumer_main(void *arg)
{
    es_consumer *c = arg;
    pthread_setname_np(pthread_self(), "es-consumer");
    size_t cap = (size_t)c->batch_max;
    rd_kafka_message_t **msgs = es_xcalloc(cap, sizeof *msgs);
    while (!atomic_load(&c->stop)) {
        measure_lag(c);
        size_t n = 0;
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c->rk, 200);
        while (m) {
            if (m->err) {
                if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                    say(c, "kafka: %s", rd_kafka_message_errstr(m));
                rd_kafka_message_destroy(m);
            } else {
                msgs[n++] = m;
            }
            if (n == cap)
                break;
            m = rd_kafka_consumer_poll(c->rk, 0);
        }
        if (n == 0)
            continue;
        if (process_batch(c, msgs, n) == 0)
            commit_offsets(c, msgs, n);
        for (size_t i = 0; i < n; i++)
            rd_kafka_message_destroy(msgs[i]);
    }
    free(msgs);
    return NULL;
}

static void consumer_free(es_consumer *c)
{
    if (!c)
        return;
    if (c->rk)
        rd_kafka_destroy(c->rk);
    db_free(&c->d);
    for (size_t i = 0; c->props && c->props[i]; i++)
        free(c->props[i]);
    free(c->props);
    free(c->name);
    free(c->group);
    free(c->topic);
    free(c->bootstrap);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

int es_consumer_start(const es_consumer_config *cfg, es_consumer **out, es_error *err)
{
    *out = NULL;
    if (!cfg || !cfg->name || !cfg->name[0] || !cfg->conninfo || !cfg->handle)
        return es_error_set(err, ES_INVALID_ARGUMENT, "", "consumer: name, conninfo and handle are required");
    char boot[1024] = "";
    if (cfg->bootstrap_file) {
        FILE *f = fopen(cfg->bootstrap_file, "r");
        if (f) {
            if (fgets(boot, sizeof boot, f))
                boot[strcspn(boot, "\r\n")] = '\0';
            fclose(f);
        }
    }
    if (!boot[0] && cfg->bootstrap_servers)
        snprintf(boot, sizeof boot, "%s", cfg->bootstrap_servers);
    if (!boot[0])
        return es_error_set(err, ES_INVALID_ARGUMENT, "bootstrap_servers",
                            "consumer: no Kafka bootstrap servers");

    es_consumer *c = es_xcalloc(1, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    atomic_init(&c->stop, 0);
    c->name = es_xstrdup(cfg->name);
    c->group = es_xstrdup(cfg->group_id && cfg->group_id[0] ? cfg->group_id : cfg->name);
    c->topic = es_xstrdup(cfg->topic && cfg->topic[0] ? cfg->topic : "orders.events");
    c->bootstrap = es_xstrdup(boot);
    size_t np = 0;
    while (cfg->kafka_props && cfg->kafka_props[np])
        np++;
    c->props = es_xcalloc(np + 1, sizeof *c->props);
    for (size_t i = 0; i < np; i++)
        c->props[i] = es_xstrdup(cfg->kafka_props[i]);
    c->handle = cfg->handle;
    c->handle_batch = cfg->handle_batch;
    c->data = cfg->data;
    c->committed = cfg->committed;
    c->committed_data = cfg->committed_data;
    c->st.lag_messages = -1;
    c->max_retries = cfg->max_retries > 0 ? cfg->max_retries : 3;
    c->batch_max = cfg->batch_max > 0 ? cfg->batch_max : 200;
    c->session_ms = cfg->session_timeout_ms > 0 ? cfg->session_timeout_ms : 10000;
    c->quiet = cfg->quiet;
    c->d.conninfo = es_xstrdup(cfg->conninfo);

    int rc = db_ready(&c->d, err);
    if (rc != ES_OK)
        goto fail;

    char errstr[512], session[16], heartbeat[16];
    snprintf(session, sizeof session, "%d", c->session_ms);
    snprintf(heartbeat, sizeof heartbeat, "%d", c->session_ms / 3 > 100 ? c->session_ms / 3 : 100);
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    const char *base[] = {"bootstrap.servers", c->bootstrap, "group.id", c->group,
                          "enable.auto.commit", "false", "auto.offset.reset", "earliest",
                          "session.timeout.ms", session, "heartbeat.interval.ms", heartbeat,
                          "client.id", "es-consumer", "log.connection.close", "false",
                          "reconnect.backoff.max.ms", "1000", "socket.nagle.disable", "true", NULL};
    for (size_t i = 0; base[i]; i += 2)
        if (rd_kafka_conf_set(conf, base[i], base[i + 1], errstr, sizeof errstr) != RD_KAFKA_CONF_OK)
            goto bad_conf;
    for (size_t i = 0; c->props[i] && c->props[i + 1]; i += 2)
        if (rd_kafka_conf_set(conf, c->props[i], c->props[i + 1], errstr, sizeof errstr) !=
            RD_KAFKA_CONF_OK)
            goto bad_conf;
    rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
    rd_kafka_conf_set_log_cb(conf, on_kafka_log);
    rd_kafka_conf_set_opaque(conf, c);
    c->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
    if (!c->rk) {
        rc = es_error_set(err, ES_INVALID_ARGUMENT, "kafka", "consumer: %s", errstr);
        goto fail;
    }
    rd_kafka_poll_set_consumer(c->rk);
    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(topics, c->topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(c->rk, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (e) {
        rc = es_error_set(err, ES_INVALID_ARGUMENT, "topic", "consumer: subscribe %s: %s",
                          c->topic, rd_kafka_err2str(e));
        goto fail;
    }
    if (pthread_create(&c->thread, NULL, consumer_main, c) != 0) {
        rc = es_error_set(err, ES_INTERNAL, "", "consumer: cannot start thread");
        goto fail;
    }
    *out = c;
    return ES_OK;

bad_conf:
    rd_kafka_conf_destroy(conf);
    rc = es_error_set(err, ES_INVALID_ARGUMENT, "kafka", "consumer configuration: %s", errstr);
fail:
    consumer_free(c);
    return rc;
}

void es_consumer_stop(es_consumer *c)
{
    if (!c)
        return;
    atomic_store(&c->stop, 1);
    pthread_join(c->thread, NULL);
    rd_kafka_consumer_close(c->rk);
    consumer_free(c);
}

void es_consumer_stats_get(es_consumer *c, es_consumer_stats *out)
{
    pthread_mutex_lock(&c->mu);
    *out = c->st;
    pthread_mutex_unlock(&c->mu);
}

/* ---- replay from the store ---- */

int es_consumer_replay(const es_replay_config *cfg, int64_t *applied, es_error *out_err)
{
    es_error e = {0}, *err = &e;
    if (applied)
        *applied = 0;
    if (!cfg || !cfg->name || !cfg->conninfo || !cfg->handle)
        return es_error_set(out_err, ES_INVALID_ARGUMENT, "", "replay: name, conninfo and handle are required");
    db d = {.conninfo = es_xstrdup(cfg->conninfo)};
    es_arena arena;
    es_arena_init(&arena);
    int batch = cfg->batch_max > 0 ? cfg->batch_max : 500;
    counters cnt = {0};
    es_consumer_tx tx = {&d, cfg->name};
    int rc = db_ready(&d, err);
    if (rc != ES_OK)
        goto done;

    if (cfg->reset) {
        if ((rc = db_simple(&d, "BEGIN", err)) != ES_OK)
            goto done;
        const char *p[2] = {cfg->name, cfg->stream_id};
        PGresult *r = PQexecParams(d.conn,
                                   cfg->stream_id ? "DELETE FROM es_consumer_streams WHERE consumer = $1"
                                                    " AND stream_id = $2"
                                                  : "DELETE FROM es_consumer_streams WHERE consumer = $1",
                                   cfg->stream_id ? 2 : 1, NULL, p, NULL, NULL, 0);
        rc = PQresultStatus(r) == PGRES_COMMAND_OK
                 ? ES_OK
                 : es__pg_error(err, classify(d.conn, r), d.conn, r, "replay: forget");
        PQclear(r);
        if (rc == ES_OK)
            rc = cfg->reset(cfg->data, &tx, cfg->stream_id, err);
        if (rc == ES_OK)
            rc = db_simple(&d, "COMMIT", err);
        if (rc != ES_OK)
            goto done;
    }

    es_feed_cursor cur = {0, 0};
    int64_t after_version = 0;
    for (;;) {
        char a[24], b[24], lim[24];
        snprintf(lim, sizeof lim, "%d", batch);
        PGresult *r;
        if (cfg->stream_id) {
            snprintf(a, sizeof a, "%" PRId64, after_version);
            const char *p[3] = {cfg->stream_id, a, lim};
            r = db_run(&d, "es_c_stream", 3, p, NULL, NULL);
        } else {
            snprintf(a, sizeof a, "%" PRIu64, cur.txid);
            snprintf(b, sizeof b, "%" PRId64, cur.position);
            const char *p[3] = {a, b, lim};
            r = db_run(&d, "es_c_feed", 3, p, NULL, NULL);
        }
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            rc = es__pg_error(err, classify(d.conn, r), d.conn, r, "replay: read");
            PQclear(r);
            goto done;
        }
        es_arena_reset(&arena);
        es_envelope_view *evs = NULL;
        size_t n = es__event_rows(r, &arena, &evs);
        PQclear(r);
        if (n == 0)
            break;
        if ((rc = db_simple(&d, "BEGIN", err)) != ES_OK)
            goto done;
        counters bc = {0};
        for (size_t i = 0; i < n; i++) {
            int64_t parked = 0;
            outcome o = apply_event(&d, cfg->name, cfg->handle, cfg->data, &evs[i], &bc, &parked, err);
            if (o == FAILED || o == DB_DOWN || o == PARKED) {
                rc = err->code ? err->code : ES_INTERNAL;
                PQclear(PQexec(d.conn, "ROLLBACK"));
                goto done;
            }
        }
        if ((rc = db_simple(&d, "COMMIT", err)) != ES_OK)
            goto done;
        cnt.applied += bc.applied + bc.gap_filled;
        cur.txid = evs[n - 1].txid;
        cur.position = evs[n - 1].position;
        after_version = evs[n - 1].version;
        if ((int)n < batch)
            break;
    }
    rc = ES_OK;
done:
    if (rc != ES_OK && out_err)
        *out_err = e;
    if (applied)
        *applied = cnt.applied;
    es_arena_free(&arena);
    db_free(&d);
    return rc;
}
