/* The PostgreSQL connection pool: lazy connections, statements prepared per connection, a
 * liveness probe at checkout so that a restart of PostgreSQL costs no failed request, and a
 * short fail-fast window after a failed connect so an outage does not stall every caller. */
#include "es/clock.h"
#include "es/pg_pool.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "es/arena.h"
#include "es/metrics.h"
#include "pg_connect.h"

typedef struct stmt {
    char *name;
    char *sql;
    int n_params;
    Oid *param_types;
} stmt;

struct es_pg_conn {
    es_pg_pool *pool;
    PGconn *pg;
    size_t prepared;      /* registry entries [0, prepared) are prepared on pg */
    int in_use;
    int bad;              /* close and reopen at next use */
    int opened_before;    /* a connection was open on this slot once: the next open is a reconnect */
};

struct es_pg_pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;    /* a connection was checked in */
    char *conninfo;
    char *app_name;
    int connect_timeout_s;
    int checkout_timeout_ms, retry_interval_ms;
    size_t size;
    es_pg_conn *conns;
    stmt **stmts;         /* append-only; entries never move (the array may) */
    size_t n_stmts, cap_stmts;
    int64_t last_fail_us; /* monotonic time of the last failed connect, 0 when none */
    char last_fail[256];
    /* Metrics (es_pg_pool_get_stats). Gauges that need a consistent view (in use, idle,
     * waiters) are read under mu; n_open changes where c->pg does, outside the lock. */
    size_t waiters;       /* under mu */
    atomic_size_t n_open;
    atomic_uint_fast64_t checkouts, connects, reconnects, connect_failures;
    atomic_uint_fast64_t refused_exhausted, refused_unavailable, refused_error;
    es_histogram wait;
    atomic_int up;        /* the last checkout found or opened a live connection (es_pg_pool_up) */
    atomic_uint_fast64_t fallbacks; /* a read replica's pool: reads served elsewhere (es_pg_pool_note_fallback) */
};

/* First line of a libpq message, without the trailing newline. */
static void first_line(char *out, size_t cap, const char *msg)
{
    size_t n = 0;
    if (!msg) msg = "";
    while (msg[n] && msg[n] != '\n' && n + 1 < cap) n++;
    memcpy(out, msg, n);
    out[n] = 0;
}

es_pg_pool *es_pg_pool_new(const es_pg_pool_config *cfg, es_error *err)
{
    if (!cfg || !cfg->conninfo || !cfg->conninfo[0]) {
        es_error_set(err, ES_INVALID_ARGUMENT, "conninfo", "a PostgreSQL conninfo is required");
        return NULL;
    }
    es_pg_pool *p = es_xcalloc(1, sizeof *p);
    pthread_mutex_init(&p->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->cv, &ca);
    pthread_condattr_destroy(&ca);
    p->conninfo = es_xstrdup(cfg->conninfo);
    p->app_name = es_xstrdup(cfg->application_name && cfg->application_name[0] ? cfg->application_name : "es");
    p->connect_timeout_s = cfg->connect_timeout_s;
    p->checkout_timeout_ms = cfg->checkout_timeout_ms > 0 ? cfg->checkout_timeout_ms : 5000;
    p->retry_interval_ms = cfg->retry_interval_ms > 0 ? cfg->retry_interval_ms : 100;
    p->size = cfg->size ? cfg->size : 8;
    p->conns = es_xcalloc(p->size, sizeof *p->conns);
    for (size_t i = 0; i < p->size; i++) p->conns[i].pool = p;
    return p;
}

/* Closes c->pg (NULL allowed) and keeps the open-connection gauge right. */
static void close_conn(es_pg_pool *p, es_pg_conn *c)
{
    if (!c->pg) return;
    PQfinish(c->pg);
    c->pg = NULL;
    atomic_fetch_sub(&p->n_open, 1);
}

void es_pg_pool_free(es_pg_pool *p)
{
    if (!p) return;
    for (size_t i = 0; i < p->size; i++)
        if (p->conns[i].pg) PQfinish(p->conns[i].pg);
    for (size_t i = 0; i < p->n_stmts; i++) {
        free(p->stmts[i]->name);
        free(p->stmts[i]->sql);
        free(p->stmts[i]->param_types);
        free(p->stmts[i]);
    }
    free(p->stmts);
    free(p->conns);
    free(p->conninfo);
    free(p->app_name);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

int es_pg_pool_register(es_pg_pool *p, const es_pg_statement *st, size_t n, es_error *err)
{
    int rc = ES_OK;
    pthread_mutex_lock(&p->mu);
    for (size_t i = 0; i < n; i++) {
        size_t j;
        for (j = 0; j < p->n_stmts; j++)
            if (strcmp(p->stmts[j]->name, st[i].name) == 0) break;
        if (j < p->n_stmts) {
            if (strcmp(p->stmts[j]->sql, st[i].sql) != 0) {
                rc = es_error_set(err, ES_ALREADY_EXISTS, "", "statement %s is already registered "
                                  "with different SQL", st[i].name);
                goto done;
            }
            continue;
        }
        if (p->n_stmts == p->cap_stmts) {
            p->cap_stmts = p->cap_stmts ? 2 * p->cap_stmts : 16;
            p->stmts = es_xrealloc(p->stmts, p->cap_stmts * sizeof *p->stmts);
        }
        stmt *s = es_xcalloc(1, sizeof *s);
        s->name = es_xstrdup(st[i].name);
        s->sql = es_xstrdup(st[i].sql);
        s->n_params = st[i].n_params;
        if (st[i].param_types && st[i].n_params > 0) {
            s->param_types = es_xmalloc((size_t)st[i].n_params * sizeof(Oid));
            memcpy(s->param_types, st[i].param_types, (size_t)st[i].n_params * sizeof(Oid));
        }
        p->stmts[p->n_stmts++] = s;
    }
done:
    pthread_mutex_unlock(&p->mu);
    return rc;
}

/* Opens c->pg, honouring the fail-fast window. Called without the pool lock. */
static int connect_conn(es_pg_pool *p, es_pg_conn *c, es_error *err)
{
    pthread_mutex_lock(&p->mu);
    int64_t now = es_mono_us();
    if (p->last_fail_us && now - p->last_fail_us < (int64_t)p->retry_interval_ms * 1000) {
        int rc = es_error_set(err, ES_UNAVAILABLE, "", "PostgreSQL unavailable: %s", p->last_fail);
        pthread_mutex_unlock(&p->mu);
        return rc;
    }
    pthread_mutex_unlock(&p->mu);

    close_conn(p, c);
    c->prepared = 0;
    c->bad = 0;
    c->pg = es__pg_connect(p->conninfo, p->connect_timeout_s, p->app_name, 1);
    if (c->pg && PQstatus(c->pg) == CONNECTION_OK) {
        atomic_fetch_add(&p->n_open, 1);
        atomic_fetch_add(&p->connects, 1);
        if (c->opened_before) atomic_fetch_add(&p->reconnects, 1);
        c->opened_before = 1;
        pthread_mutex_lock(&p->mu);
        p->last_fail_us = 0;
        pthread_mutex_unlock(&p->mu);
        return ES_OK;
    }
    atomic_fetch_add(&p->connect_failures, 1);
    char msg[256];
    first_line(msg, sizeof msg, c->pg ? PQerrorMessage(c->pg) : "out of memory");
    if (c->pg) PQfinish(c->pg);   /* never counted as open */
    c->pg = NULL;
    pthread_mutex_lock(&p->mu);
    p->last_fail_us = es_mono_us();
    snprintf(p->last_fail, sizeof p->last_fail, "%s", msg);
    pthread_mutex_unlock(&p->mu);
    return es_error_set(err, ES_UNAVAILABLE, "", "PostgreSQL unavailable: %s", msg);
}

/* Prepares the registry entries this connection has not seen yet. */
static int prepare_new(es_pg_pool *p, es_pg_conn *c, es_error *err)
{
    for (;;) {
        pthread_mutex_lock(&p->mu);
        stmt *s = c->prepared < p->n_stmts ? p->stmts[c->prepared] : NULL;
        pthread_mutex_unlock(&p->mu);
        if (!s) return ES_OK;
        PGresult *r = PQprepare(c->pg, s->name, s->sql, s->n_params, s->param_types);
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            char what[160];
            snprintf(what, sizeof what, "prepare %s", s->name);
            int rc = es_pg_error(c->pg, r, what, err);
            PQclear(r);
            if (rc == ES_UNAVAILABLE) c->bad = 1;
            return rc;
        }
        PQclear(r);
        c->prepared++;
    }
}

/* 1 when an idle connection still looks alive, without a round trip. An idle connection
 * receives nothing but the odd notification; a server that restarted or killed the backend
 * sent a FATAL message and closed the socket. So: anything readable is consumed, and a
 * hang-up, an EOF (libpq marks the connection bad) or a second readable round (the EOF
 * behind the goodbye message) means dead. No request is spent discovering it. */
static int probe_alive(PGconn *pg)
{
    if (PQstatus(pg) != CONNECTION_OK || PQtransactionStatus(pg) != PQTRANS_IDLE) return 0;
    for (int round = 0; round < 2; round++) {
        struct pollfd pfd = {.fd = PQsocket(pg), .events = POLLIN};
        int n = poll(&pfd, 1, 0);
        if (n == 0) return 1;
        if (n < 0 || (pfd.revents & (POLLHUP | POLLERR | POLLNVAL))) return 0;
        if (!PQconsumeInput(pg) || PQstatus(pg) != CONNECTION_OK) return 0;
        PGnotify *note;
        while ((note = PQnotifies(pg))) PQfreemem(note);
    }
    return 0;
}

/* Makes c usable: alive (probed without a round trip) and, when asked, fully prepared. */
static int ensure(es_pg_pool *p, es_pg_conn *c, int prepare, es_error *err)
{
    int alive = c->pg && !c->bad && probe_alive(c->pg);
    if (!alive) {
        int rc = connect_conn(p, c, err);
        if (rc != ES_OK) return rc;
    }
    return prepare ? prepare_new(p, c, err) : ES_OK;
}

int es_pg_conn_ensure(es_pg_pool *p, es_pg_conn *c, es_error *err) { return ensure(p, c, 1, err); }

static int checkout(es_pg_pool *p, es_pg_conn **out, int prepare, es_error *err)
{
    *out = NULL;
    es_pg_conn *c = NULL;
    struct timespec deadline = es_mono_deadline((int64_t)p->checkout_timeout_ms * 1000);

    int64_t t0 = es_mono_us();
    pthread_mutex_lock(&p->mu);
    for (;;) {
        /* Prefer an open connection over opening a new one. */
        for (size_t i = 0; i < p->size; i++) {
            if (p->conns[i].in_use) continue;
            if (!c || (!c->pg && p->conns[i].pg)) c = &p->conns[i];
            if (c->pg) break;
        }
        if (c) break;
        p->waiters++;
        int timed_out = pthread_cond_timedwait(&p->cv, &p->mu, &deadline) == ETIMEDOUT;
        p->waiters--;
        if (timed_out) {
            pthread_mutex_unlock(&p->mu);
            es_histogram_observe_us(&p->wait, es_mono_us() - t0);
            atomic_fetch_add(&p->refused_exhausted, 1);
            return es_error_set(err, ES_UNAVAILABLE, "", "no free database connection within %d ms",
                                p->checkout_timeout_ms);
        }
    }
    c->in_use = 1;
    pthread_mutex_unlock(&p->mu);
    es_histogram_observe_us(&p->wait, es_mono_us() - t0);

    int rc = ensure(p, c, prepare, err);
    if (rc == ES_UNAVAILABLE)
        atomic_store(&p->up, 0);
    else if (c->pg)
        atomic_store(&p->up, 1);
    if (rc != ES_OK) {
        atomic_fetch_add(rc == ES_UNAVAILABLE ? &p->refused_unavailable : &p->refused_error, 1);
        es_pg_pool_checkin(p, c);
        return rc;
    }
    atomic_fetch_add(&p->checkouts, 1);
    *out = c;
    return ES_OK;
}

int es_pg_pool_checkout(es_pg_pool *p, es_pg_conn **out, es_error *err) { return checkout(p, out, 1, err); }

int es_pg_pool_checkout_unprepared(es_pg_pool *p, es_pg_conn **out, es_error *err)
{
    return checkout(p, out, 0, err);
}

void es_pg_pool_checkin(es_pg_pool *p, es_pg_conn *c)
{
    if (!c) return;
    if (c->pg && (c->bad || PQstatus(c->pg) != CONNECTION_OK ||
                  PQtransactionStatus(c->pg) != PQTRANS_IDLE ||
                  PQpipelineStatus(c->pg) != PQ_PIPELINE_OFF)) {
        close_conn(p, c);
        c->prepared = 0;
        c->bad = 0;
    }
    pthread_mutex_lock(&p->mu);
    c->in_use = 0;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

PGconn *es_pg_conn_pg(es_pg_conn *c) { return c ? c->pg : NULL; }

void es_pg_conn_discard(es_pg_conn *c)
{
    if (c) c->bad = 1;
}

void es_pg_pool_get_stats(es_pg_pool *p, es_pg_pool_stats *out)
{
    memset(out, 0, sizeof *out);
    if (!p) return;
    out->size = p->size;
    pthread_mutex_lock(&p->mu);
    /* A slot that is not checked out is only changed under the lock, so its pg is safe to
     * read here; a checked-out slot belongs to its holder. */
    for (size_t i = 0; i < p->size; i++) {
        if (p->conns[i].in_use) out->in_use++;
        else if (p->conns[i].pg) out->idle++;
    }
    out->waiters = p->waiters;
    pthread_mutex_unlock(&p->mu);
    out->open = atomic_load(&p->n_open);
    out->checkouts = atomic_load(&p->checkouts);
    out->connects = atomic_load(&p->connects);
    out->reconnects = atomic_load(&p->reconnects);
    out->connect_failures = atomic_load(&p->connect_failures);
    out->refused_exhausted = atomic_load(&p->refused_exhausted);
    out->refused_unavailable = atomic_load(&p->refused_unavailable);
    out->refused_error = atomic_load(&p->refused_error);
    for (int i = 0; i <= ES_HIST_BUCKETS; i++)
        atomic_store(&out->wait.buckets[i], atomic_load(&p->wait.buckets[i]));
    atomic_store(&out->wait.count, atomic_load(&p->wait.count));
    atomic_store(&out->wait.sum_us, atomic_load(&p->wait.sum_us));
}

int es_pg_pool_up(es_pg_pool *p) { return p && atomic_load(&p->up); }

void es_pg_pool_write_metrics(es_pg_pool *pool, es_buf *b)
{
    if (!pool)
        return;
    es_pg_pool_stats st;
    es_pg_pool_get_stats(pool, &st);
    es_metrics_family(b, "es_pg_pool_connections", "gauge",
                      "Pool connections checked out (in_use, incl. one being opened) and open in the pool (idle).");
    es_metrics_sample(b, "es_pg_pool_connections", "state=\"in_use\"", (double)st.in_use);
    es_metrics_sample(b, "es_pg_pool_connections", "state=\"idle\"", (double)st.idle);
    const es_metric_row rows[] = {
        {"es_postgres_up", "gauge", "1 while PostgreSQL answers (the last checkout found or opened a live connection).",
         es_pg_pool_up(pool)},
        {"es_pg_pool_connections_open", "gauge", "PostgreSQL connections the pool holds open.", (double)st.open},
        {"es_pg_pool_connections_max", "gauge", "Most connections the pool may open (pool-size).", (double)st.size},
        {"es_pg_pool_waiters", "gauge", "Callers waiting for a connection to be checked in.", (double)st.waiters},
        {"es_pg_pool_checkouts_total", "counter", "Connections handed out.", (double)st.checkouts},
        {"es_pg_pool_connects_total", "counter", "Connections opened.", (double)st.connects},
        {"es_pg_pool_reconnects_total", "counter", "Connections reopened after one died or was discarded.", (double)st.reconnects},
        {"es_pg_pool_connect_failures_total", "counter", "Failed connection attempts.", (double)st.connect_failures},
    };
    ES_METRICS_ROWS(b, rows);
    es_metrics_family(b, "es_pg_pool_checkouts_refused_total", "counter",
                      "Checkouts refused: no connection freed in time (exhausted), PostgreSQL unreachable "
                      "(unavailable), statements failed to prepare (error).");
    es_metrics_sample(b, "es_pg_pool_checkouts_refused_total", "reason=\"exhausted\"", (double)st.refused_exhausted);
    es_metrics_sample(b, "es_pg_pool_checkouts_refused_total", "reason=\"unavailable\"", (double)st.refused_unavailable);
    es_metrics_sample(b, "es_pg_pool_checkouts_refused_total", "reason=\"error\"", (double)st.refused_error);
    es_metrics_family(b, "es_pg_pool_checkout_wait_seconds", "histogram",
                      "Time a checkout waited for a free connection (refused ones included).");
    es_metrics_histogram(b, "es_pg_pool_checkout_wait_seconds", "", &st.wait);
}

void es_pg_pool_note_fallback(es_pg_pool *p)
{
    if (p)
        atomic_fetch_add(&p->fallbacks, 1);
}

/* The read replica's own families: the primary's pool writes the es_pg_pool_* ones, and a
 * second copy of those names would make the exposition invalid. */
void es_pg_pool_write_replica_metrics(es_pg_pool *pool, es_buf *b)
{
    if (!pool)
        return;
    es_pg_pool_stats st;
    es_pg_pool_get_stats(pool, &st);
    const es_metric_row rows[] = {
        {"es_pg_replica_up", "gauge", "1 while the read replica answers (the last checkout found or opened a live connection).",
         es_pg_pool_up(pool)},
        {"es_pg_replica_connections_open", "gauge", "Connections the read replica's pool holds open.", (double)st.open},
        {"es_pg_replica_checkouts_total", "counter", "Connections to the read replica handed out (reads it served or tried).",
         (double)st.checkouts},
        {"es_pg_replica_connect_failures_total", "counter", "Failed connection attempts to the read replica.",
         (double)st.connect_failures},
        {"es_pg_replica_fallbacks_total", "counter", "Reads the primary served because the read replica was unavailable or cancelled them.",
         (double)atomic_load(&pool->fallbacks)},
    };
    ES_METRICS_ROWS(b, rows);
}
