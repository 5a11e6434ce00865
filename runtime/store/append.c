/* The append path: es_store_append builds its es_append() call on the caller's thread, then
 * the committer that owns the stream sends every waiting call in one transaction over libpq
 * pipeline mode (BEGIN, N calls, COMMIT, Sync: one round trip and one WAL flush for N commands)
 * and wakes each caller with its own outcome.
 *
 * Why committers own streams (hash of the stream id): batches in flight at the same time then
 * never write the same stream's rows, so they cannot deadlock or conflict with each other, and
 * each batch's transaction id is taken after every read its commands were decided on (DESIGN
 * invariant 4). Why more than one: a batch spends most of its time waiting for its commit's
 * WAL flush; a second committer fills that wait with the next batch. While a batch waits, its
 * committer's next batch gathers the callers that arrived meanwhile: the batch size follows the
 * load with no timer. */
#define _GNU_SOURCE /* pthread_setname_np */
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "es/arena.h"
#include "es/buf.h"
#include "es/uuid.h"
#include "pgbin.h"
#include "store_internal.h"

#define N_PARAMS 22

struct es__append_req {
    const es_append *a;
    es_append_result *out;
    const char *values[N_PARAMS];
    int lengths[N_PARAMS];
    int formats[N_PARAMS];
    es_buf arr[8];                 /* ids, types, names, versions, hashes, payloads, result, json */
    char expected[24], snap_version[24], retention[24];
    char command_id[ES_UUID_STRLEN + 1];
    int status;                    /* outcome */
    es_error err;
    sem_t done;                    /* posted once by the committer: the outcome is set */
    es_append_done_fn done_fn;     /* es_store_append_async: called instead of the post */
    void *done_data;
    es_append_result result;       /* es_store_append_async: out points here */
    es__append_req *next;
};

void es__result_ids(es_append_result *out, const uint8_t *ids, size_t len)
{
    size_t n = len / 16;
    if (n > ES_APPEND_MAX_EVENTS) n = ES_APPEND_MAX_EVENTS;
    for (size_t i = 0; i < n; i++) es_uuid_format(ids + 16 * i, out->event_ids[i]);
    out->n_events = n;
}

static int check(const es_append *a, es_error *err)
{
    if (!a->stream_type || !a->stream_type[0])
        return es_error_set(err, ES_INVALID_ARGUMENT, "stream_type", "stream type is required");
    if (!a->stream_id || !a->stream_id[0])
        return es_error_set(err, ES_INVALID_ARGUMENT, "stream_id", "stream id is required");
    if (strlen(a->stream_id) > ES_STREAM_ID_MAX)
        return es_error_set(err, ES_INVALID_ARGUMENT, "stream_id", "stream id is longer than %d bytes",
                            ES_STREAM_ID_MAX);
    if (a->expected_version < 0)
        return es_error_set(err, ES_INVALID_ARGUMENT, "expected_version", "expected version is negative");
    if (a->n_events < 1 || a->n_events > ES_APPEND_MAX_EVENTS)
        return es_error_set(err, ES_INVALID_ARGUMENT, "events", "an append carries 1 to %d events",
                            ES_APPEND_MAX_EVENTS);
    if (a->idempotent && (!a->command_id || !a->command_id[0]))
        return es_error_set(err, ES_INVALID_ARGUMENT, "command_id", "an idempotent append needs a command id");
    for (size_t i = 0; i < a->n_events; i++) {
        const es_event_data *e = &a->events[i];
        if (!e->event_type || !e->schema_name || !e->schema_hash || (!e->payload && e->payload_len))
            return es_error_set(err, ES_INVALID_ARGUMENT, "events", "event %zu is incomplete", i);
        if (e->event_id && !es_uuid_valid(e->event_id))
            return es_error_set(err, ES_INVALID_ARGUMENT, "events", "event %zu: id is not a UUID", i);
    }
    if (a->snapshot && (!a->snapshot->schema_name || !a->snapshot->schema_hash || !a->snapshot->state))
        return es_error_set(err, ES_INVALID_ARGUMENT, "snapshot", "snapshot is incomplete");
    return ES_OK;
}

static void set_param(es__append_req *q, int i, const void *v, size_t len, int binary)
{
    q->values[i] = v;
    q->lengths[i] = (int)len;
    q->formats[i] = binary;
}

/* Encodes the es_append() parameters on the caller's thread (spreads the work over cores). */
static void build(es__append_req *q, const es_append *a, es_append_result *out)
{
    for (int i = 0; i < 8; i++) es_buf_init(&q->arr[i]);
    uint32_t n = (uint32_t)a->n_events;
    es__pg_array_begin(&q->arr[0], ES__OID_UUID, n);
    es__pg_array_begin(&q->arr[1], ES__OID_TEXT, n);
    es__pg_array_begin(&q->arr[2], ES__OID_TEXT, n);
    es__pg_array_begin(&q->arr[3], ES__OID_INT4, n);
    es__pg_array_begin(&q->arr[4], ES__OID_TEXT, n);
    es__pg_array_begin(&q->arr[5], ES__OID_BYTEA, n);
    if (a->payload_json) es__pg_array_begin(&q->arr[7], ES__OID_TEXT, n);
    for (uint32_t i = 0; i < n; i++) {
        const es_event_data *e = &a->events[i];
        if (e->event_id)
            snprintf(out->event_ids[i], sizeof out->event_ids[i], "%s", e->event_id);
        else
            es_uuid_v7(out->event_ids[i]);
        uint8_t id[16];
        es_uuid_parse(out->event_ids[i], id);
        es__pg_array_elem(&q->arr[0], id, 16);
        es_buf_append(&q->arr[6], id, 16);
        es__pg_array_elem(&q->arr[1], e->event_type, strlen(e->event_type));
        es__pg_array_elem(&q->arr[2], e->schema_name, strlen(e->schema_name));
        es__pg_array_int4(&q->arr[3], (int32_t)e->schema_version);
        es__pg_array_elem(&q->arr[4], e->schema_hash, strlen(e->schema_hash));
        es__pg_array_elem(&q->arr[5], e->payload ? (const void *)e->payload : "", e->payload_len);
        if (a->payload_json && a->payload_json[i])
            es__pg_array_elem(&q->arr[7], a->payload_json[i], strlen(a->payload_json[i]));
        else if (a->payload_json)
            es__pg_array_null(&q->arr[7]);
    }
    out->n_events = n;
    snprintf(q->expected, sizeof q->expected, "%lld", (long long)a->expected_version);
    const char *cmd = a->command_id;
    if (!cmd || !cmd[0]) {
        /* Events of one execution still share a command id, for tracing; nothing is recorded. */
        es_uuid_v4(q->command_id);
        cmd = q->command_id;
    }
    set_param(q, 0, a->stream_type, 0, 0);
    set_param(q, 1, a->stream_id, 0, 0);
    set_param(q, 2, q->expected, 0, 0);
    set_param(q, 3, cmd, 0, 0);
    set_param(q, 4, a->idempotent ? "t" : "f", 0, 0);
    set_param(q, 5, a->correlation_id, 0, 0);
    set_param(q, 6, a->causation_id, 0, 0);
    set_param(q, 7, a->actor, 0, 0);
    for (int i = 0; i < 6; i++) set_param(q, 8 + i, q->arr[i].data, q->arr[i].len, 1);
    set_param(q, 14, q->arr[6].data, q->arr[6].len, 1);
    if (a->snapshot) {
        snprintf(q->snap_version, sizeof q->snap_version, "%lld", (long long)a->snapshot->version);
        set_param(q, 15, q->snap_version, 0, 0);
        set_param(q, 16, a->snapshot->schema_name, 0, 0);
        set_param(q, 17, a->snapshot->schema_hash, 0, 0);
        set_param(q, 18, a->snapshot->state, a->snapshot->state_len, 1);
    } else {
        for (int i = 15; i < 19; i++) set_param(q, i, NULL, 0, 0);
    }
    if (a->payload_json) set_param(q, 19, q->arr[7].data, q->arr[7].len, 1);
    else set_param(q, 19, NULL, 0, 0);
    if (a->request_hash && a->request_hash_len) set_param(q, 20, (const char *)a->request_hash, a->request_hash_len, 1);
    else set_param(q, 20, NULL, 0, 0);
    if (a->retention_s > 0) {
        snprintf(q->retention, sizeof q->retention, "%lld", (long long)a->retention_s);
        set_param(q, 21, q->retention, 0, 0);
    } else {
        set_param(q, 21, NULL, 0, 0);
    }
}

static void set_outcome(es__append_req *q, int status, const es_error *err)
{
    q->status = status;
    if (err) q->err = *err;
    else memset(&q->err, 0, sizeof q->err);
}

/* Reads one es_append() row into q's tentative outcome. */
static void take_row(es__append_req *q, const PGresult *r)
{
    const char *st = es__pg_text(r, 0, 0);
    const char *msg = es__pg_text(r, 0, 5);
    es_append_result *out = q->out;
    if (st && strcmp(st, "ok") == 0) {
        snprintf(out->stream_id, sizeof out->stream_id, "%s", q->a->stream_id);
        out->first_version = es__pg_int8(r, 0, 1);
        out->last_version = es__pg_int8(r, 0, 2);
        out->replayed = 0;
        set_outcome(q, ES_OK, NULL);
    } else if (st && strcmp(st, "duplicate") == 0) {
        const char *sid = es__pg_text(r, 0, 3);
        snprintf(out->stream_id, sizeof out->stream_id, "%s", sid ? sid : "");
        out->first_version = es__pg_int8(r, 0, 1);
        out->last_version = es__pg_int8(r, 0, 2);
        if (!PQgetisnull(r, 0, 4))
            es__result_ids(out, (const uint8_t *)PQgetvalue(r, 0, 4), (size_t)PQgetlength(r, 0, 4));
        else
            out->n_events = 0;
        out->replayed = 1;
        set_outcome(q, ES_OK, NULL);
    } else if (st && strcmp(st, "mismatch") == 0) {
        q->status = es_error_set(&q->err, ES_ALREADY_EXISTS, "idempotency_key",
                                 "this idempotency key was already used with a different request");
    } else if (st && strcmp(st, "conflict") == 0) {
        q->status = es_error_set(&q->err, ES_ABORTED, "", "stream %s is no longer at version %lld (%s)",
                                 q->a->stream_id, (long long)q->a->expected_version, msg ? msg : "");
    } else {
        /* es_append catches the error and reports "<SQLSTATE>: <message>": a read-only
         * database, a full disk, ... are UNAVAILABLE (retryable), not a server bug. */
        char state[6] = "";
        if (msg && strlen(msg) > 7 && msg[5] == ':') memcpy(state, msg, 5);
        q->status = es_error_set(&q->err, es_pg_sqlstate_status(state, ES_INTERNAL), "", "append to %s failed: %s",
                                 q->a->stream_id, msg ? msg : "unknown status");
    }
}

/* Runs q[0..n) in one pipelined transaction. Returns ES_OK when the transaction committed
 * (each q holds its own outcome); otherwise nothing was written, or the outcome is unknown
 * (connection lost: ES_UNAVAILABLE), and err says why. */
static int run_pipeline(es__committer *c, es__append_req **q, size_t n, es_error *err)
{
    PGconn *pg = es_pg_conn_pg(c->conn);
    if (!PQenterPipelineMode(pg)) return es_pg_error(pg, NULL, "enter pipeline mode", err);
    int ok = PQsendQueryPrepared(pg, ES__ST_BEGIN, 0, NULL, NULL, NULL, 0);
    for (size_t i = 0; ok && i < n; i++)
        ok = PQsendQueryPrepared(pg, ES__ST_APPEND, N_PARAMS, q[i]->values, q[i]->lengths, q[i]->formats, 1);
    ok = ok && PQsendQueryPrepared(pg, ES__ST_COMMIT, 0, NULL, NULL, NULL, 0);
    ok = ok && PQpipelineSync(pg);
    if (!ok) {
        /* Nothing is committed without COMMIT reaching the server, but a half-sent batch
         * cannot be told from a sent one: the connection is unusable either way. */
        es_pg_error(pg, NULL, "send batch", err);
        es_pg_conn_discard(c->conn);
        return es_error_set(err, ES_UNAVAILABLE, "", "PostgreSQL unavailable: batch not sent");
    }

    int rc = ES_OK, committed = 0, failed = 0;
    for (size_t k = 0; k < n + 2; k++) {
        PGresult *r = PQgetResult(pg);
        if (!r) { failed = 1; break; }
        ExecStatusType st = PQresultStatus(r);
        if (k == 0) {
            if (st != PGRES_COMMAND_OK && !failed) { failed = 1; rc = es_pg_error(pg, r, "begin batch", err); }
        } else if (k <= n) {
            if (st == PGRES_TUPLES_OK && PQntuples(r) == 1 && PQnfields(r) == 6) {
                take_row(q[k - 1], r);
            } else if (!failed) {
                failed = 1;
                rc = st == PGRES_PIPELINE_ABORTED
                         ? es_error_set(err, ES_INTERNAL, "", "batch aborted")
                         : es_pg_error(pg, r, "append", err);
            }
        } else {
            if (st == PGRES_COMMAND_OK && strcmp(PQcmdStatus(r), "COMMIT") == 0) committed = 1;
            else if (!failed) { failed = 1; rc = es_pg_error(pg, r, "commit batch", err); }
        }
        PQclear(r);
        r = PQgetResult(pg);       /* each query's results end with NULL */
        if (r) PQclear(r);
    }
    PGresult *r = PQgetResult(pg);
    int synced = r && PQresultStatus(r) == PGRES_PIPELINE_SYNC;
    PQclear(r);
    if (!synced || !PQexitPipelineMode(pg) || PQstatus(pg) != CONNECTION_OK) {
        es_pg_conn_discard(c->conn);
        if (!committed)
            return es_error_set(err, ES_UNAVAILABLE, "", "PostgreSQL connection lost during commit; "
                                "the outcome is unknown (retry with the same command id)");
    }
    if (committed) return ES_OK;
    /* An error inside BEGIN..COMMIT leaves the transaction aborted past the Sync. */
    if (PQstatus(pg) == CONNECTION_OK && PQtransactionStatus(pg) != PQTRANS_IDLE) {
        PGresult *rb = PQexecPrepared(pg, ES__ST_ROLLBACK, 0, NULL, NULL, NULL, 0);
        if (PQresultStatus(rb) != PGRES_COMMAND_OK) es_pg_conn_discard(c->conn);
        PQclear(rb);
    }
    return rc ? rc : es_error_set(err, ES_INTERNAL, "", "batch was not committed");
}

static void run_batch(es__committer *c, es__append_req **q, size_t n)
{
    es_store *s = c->s;
    es_error err = {0};
    int rc = c->conn ? es_pg_conn_ensure(s->pool, c->conn, &err) : es_pg_pool_checkout(s->pool, &c->conn, &err);
    if (rc == ES_OK) rc = run_pipeline(c, q, n, &err);
    if (rc == ES_OK) return;
    if (rc != ES_UNAVAILABLE && n > 1) {
        /* The transaction failed outside every command's own savepoint (e.g. a parameter the
         * server refused): nothing was written, so run each alone to isolate the culprit. */
        for (size_t i = 0; i < n; i++) run_batch(c, &q[i], 1);
        return;
    }
    for (size_t i = 0; i < n; i++) set_outcome(q[i], rc, &err);
}

static void count(es_store *s, const es__append_req *q)
{
    __atomic_add_fetch(&s->stats.appends, 1, __ATOMIC_RELAXED);
    if (q->status == ES_ABORTED) __atomic_add_fetch(&s->stats.conflicts, 1, __ATOMIC_RELAXED);
    if (q->status == ES_OK && q->out->replayed) __atomic_add_fetch(&s->stats.replays, 1, __ATOMIC_RELAXED);
}

static void release(es__append_req *q)
{
    for (int i = 0; i < 8; i++) es_buf_free(&q->arr[i]);
}

/* Hands q its outcome: posts a blocked caller, or runs an asynchronous caller's callback and
 * frees q. */
static void answer(es_store *s, es__append_req *q)
{
    if (!q->done_fn) {
        sem_post(&q->done);
        return;
    }
    count(s, q);
    if (q->status != ES_OK) memset(q->out, 0, sizeof *q->out);
    q->done_fn(q->done_data, q->status, q->out, &q->err);
    release(q);
    free(q);
}

static void *committer_main(void *arg)
{
    es__committer *c = arg;
    pthread_setname_np(pthread_self(), "es-committer");
    es_store *s = c->s;
    es__append_req **batch = es_xcalloc(s->max_batch, sizeof *batch);
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!c->head && !s->stop) pthread_cond_wait(&c->work, &s->mu);
        if (s->stop) break;
        size_t n = 0;
        while (c->head && n < s->max_batch) {
            batch[n++] = c->head;
            c->head = c->head->next;
        }
        if (!c->head) c->tail = NULL;
        pthread_mutex_unlock(&s->mu);

        run_batch(c, batch, n);

        /* Each caller waits on its own semaphore, not on the queue's mutex: woken callers do
         * not pile up on a lock the committer holds. A request is not touched after its post
         * (its caller may return at once). */
        for (size_t i = 0; i < n; i++) answer(s, batch[i]);
        pthread_mutex_lock(&s->mu);
        s->stats.batches++;
        if (n > s->stats.max_batch) s->stats.max_batch = n;
    }
    /* Stopping: whoever still waits gets an answer (outside the lock: a callback may take
     * others). */
    es__append_req *left = c->head;
    c->head = c->tail = NULL;
    pthread_mutex_unlock(&s->mu);
    for (es__append_req *q = left, *next; q; q = next) {
        next = q->next;
        q->status = es_error_set(&q->err, ES_UNAVAILABLE, "", "event store is shutting down");
        answer(s, q);
    }
    free(batch);
    return NULL;
}

int es__committer_start(es_store *s, es_error *err)
{
    for (size_t i = 0; i < s->n_committers; i++) {
        es__committer *c = &s->committers[i];
        c->s = s;
        pthread_cond_init(&c->work, NULL);
        int e = pthread_create(&c->thread, NULL, committer_main, c);
        if (e != 0)
            return es_error_set(err, ES_RESOURCE_EXHAUSTED, "", "cannot start committer thread %zu: %s", i,
                                strerror(e));
        c->running = 1;
    }
    return ES_OK;
}

void es__committer_stop(es_store *s)
{
    pthread_mutex_lock(&s->mu);
    s->stop = 1;
    for (size_t i = 0; i < s->n_committers; i++)
        if (s->committers[i].running) pthread_cond_broadcast(&s->committers[i].work);
    pthread_mutex_unlock(&s->mu);
    for (size_t i = 0; i < s->n_committers; i++) {
        es__committer *c = &s->committers[i];
        if (c->running) {
            pthread_join(c->thread, NULL);
            c->running = 0;
            es_pg_pool_checkin(s->pool, c->conn);
            c->conn = NULL;
        }
        if (c->s) pthread_cond_destroy(&c->work);
        c->s = NULL;
    }
}

/* The committer owning a stream: FNV-1a of its id. */
static es__committer *owner(es_store *s, const char *stream_id)
{
    uint32_t h = 2166136261u;
    for (const char *p = stream_id; *p; p++) h = (h ^ (unsigned char)*p) * 16777619u;
    return &s->committers[h % s->n_committers];
}

/* Queues q on its stream's committer; 0 when the store is stopping (q untouched). */
static int enqueue(es_store *s, es__append_req *q)
{
    pthread_mutex_lock(&s->mu);
    int queued = !s->stop;
    if (queued) {
        es__committer *c = owner(s, q->a->stream_id);
        if (c->tail) c->tail->next = q;
        else c->head = q;
        c->tail = q;
        pthread_cond_signal(&c->work);
    }
    pthread_mutex_unlock(&s->mu);
    return queued;
}

int es_store_append_async(es_store *s, const es_append *a, es_append_done_fn done, void *data, es_error *err)
{
    if (!s || !a || !done) return es_error_set(err, ES_INVALID_ARGUMENT, "", "missing argument");
    es__append_req *q = es_xcalloc(1, sizeof *q);
    int rc = check(a, err);
    if (rc) {
        free(q);
        return rc;
    }
    q->a = a;
    q->out = &q->result;
    q->done_fn = done;
    q->done_data = data;
    build(q, a, q->out);
    if (!enqueue(s, q)) {
        release(q);
        free(q);
        return es_error_set(err, ES_UNAVAILABLE, "", "event store is shutting down");
    }
    return ES_OK;
}

int es_store_append(es_store *s, const es_append *a, es_append_result *out, es_error *err)
{
    if (!s || !a || !out) return es_error_set(err, ES_INVALID_ARGUMENT, "", "missing argument");
    memset(out, 0, sizeof *out);
    int rc = check(a, err);
    if (rc) return rc;

    es__append_req q;
    memset(&q, 0, sizeof q);
    q.a = a;
    q.out = out;
    build(&q, a, out);
    sem_init(&q.done, 0, 0);

    int queued = enqueue(s, &q);
    if (!queued) q.status = es_error_set(&q.err, ES_UNAVAILABLE, "", "event store is shutting down");
    while (queued && sem_wait(&q.done) != 0) {}
    count(s, &q);

    sem_destroy(&q.done);
    release(&q);
    if (q.status != ES_OK) {
        if (err) *err = q.err;
        memset(out, 0, sizeof *out);
    }
    return q.status;
}
