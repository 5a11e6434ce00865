/* The partitions of es_events: maintenance ahead of need, the listing, and their metrics (see
 * es/partitions.h). The SQL lives with the rest of the event store's DDL (sql/event_store.sql:
 * es_events_partitions_ensure, es_events_partitions, es_events_partition_status). */
#include "es/partitions.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "es/arena.h"
#include "es/log.h"
#include "es/metrics.h"
#include "es/pg_error.h"

static int64_t col_i64(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? 0 : strtoll(PQgetvalue(r, row, col), NULL, 10);
}

/* Runs sql with its parameters; on success *out holds the tuples (caller clears). */
static int query(PGconn *pg, const char *sql, int n, const char *const *params, const char *what, PGresult **out,
                 es_error *err)
{
    PGresult *r = PQexecParams(pg, sql, n, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        int rc = es_pg_error(pg, r, what, err);
        PQclear(r);
        return rc;
    }
    *out = r;
    return ES_OK;
}

static int read_status(PGconn *pg, es_partition_status *out, es_error *err)
{
    PGresult *r = NULL;
    int rc = query(pg, "SELECT partitions, newest_events, headroom, default_events FROM es_events_partition_status()",
                   0, NULL, "event partitions: status", &r, err);
    if (rc != ES_OK)
        return rc;
    if (PQntuples(r) == 1) {
        out->partitions = col_i64(r, 0, 0);
        out->newest_events = col_i64(r, 0, 1);
        out->headroom = col_i64(r, 0, 2);
        out->default_events = col_i64(r, 0, 3);
    }
    PQclear(r);
    return ES_OK;
}

int es_partitions_maintain(es_pg_pool *pool, int64_t size, es_partition_status *out, es_error *err)
{
    es_partition_status st = {0};
    if (size < 1)
        return es_error_set(err, ES_INVALID_ARGUMENT, "event-partition-size",
                            "positions per partition must be positive, not %" PRId64, size);
    es_pg_conn *c = NULL;
    int rc = es_pg_pool_checkout_unprepared(pool, &c, err);
    if (rc != ES_OK)
        return rc;
    PGconn *pg = es_pg_conn_pg(c);
    char sz[24];
    snprintf(sz, sizeof sz, "%" PRId64, size);
    const char *params[1] = {sz};
    PGresult *r = NULL;
    /* One statement, so one transaction: the advisory lock and the lock timeout end with it. */
    rc = query(pg, "SELECT created, skipped FROM es_events_partitions_ensure($1::int8)", 1, params,
               "event partitions: maintain", &r, err);
    if (rc == ES_OK) {
        st.created = (int)col_i64(r, 0, 0);
        st.skipped = PQgetvalue(r, 0, 1)[0] == 't';
        PQclear(r);
        rc = read_status(pg, &st, err);
    }
    es_pg_pool_checkin(pool, c);
    if (rc == ES_OK && out)
        *out = st;
    return rc;
}

int es_partitions_list(es_pg_pool *pool, es_partition_info **out, size_t *n, es_error *err)
{
    *out = NULL;
    *n = 0;
    es_pg_conn *c = NULL;
    int rc = es_pg_pool_checkout_unprepared(pool, &c, err);
    if (rc != ES_OK)
        return rc;
    PGresult *r = NULL;
    rc = query(es_pg_conn_pg(c),
               "SELECT name, is_default, from_position, to_position, rows_estimate, bytes, tablespace"
               " FROM es_events_partitions()",
               0, NULL, "event partitions: list", &r, err);
    es_pg_pool_checkin(pool, c);
    if (rc != ES_OK)
        return rc;
    size_t rows = (size_t)PQntuples(r);
    es_partition_info *v = es_xcalloc(rows ? rows : 1, sizeof *v);
    for (size_t i = 0; i < rows; i++) {
        int row = (int)i;
        es_partition_info *p = &v[i];
        snprintf(p->name, sizeof p->name, "%s", PQgetvalue(r, row, 0));
        p->is_default = PQgetvalue(r, row, 1)[0] == 't';
        p->has_from = !PQgetisnull(r, row, 2);
        p->from = col_i64(r, row, 2);
        p->has_to = !PQgetisnull(r, row, 3);
        p->to = col_i64(r, row, 3);
        p->rows_estimate = col_i64(r, row, 4);
        p->bytes = col_i64(r, row, 5);
        snprintf(p->tablespace, sizeof p->tablespace, "%s", PQgetvalue(r, row, 6));
    }
    PQclear(r);
    *out = v;
    *n = rows;
    return ES_OK;
}

struct es_partitions {
    es_pg_pool *pool;
    int64_t size;
    int skips;                               /* skipped runs in a row */
    _Atomic int64_t partitions, newest_events, headroom, default_events;
    _Atomic int64_t created, failures;
};

es_partitions *es_partitions_new(es_pg_pool *pool, int64_t size)
{
    es_partitions *p = es_xcalloc(1, sizeof *p);
    p->pool = pool;
    p->size = size;
    atomic_store(&p->partitions, -1);
    atomic_store(&p->newest_events, -1);
    atomic_store(&p->headroom, -1);
    atomic_store(&p->default_events, -1);
    return p;
}

int es_partitions_run(es_partitions *p, es_error *err)
{
    es_partition_status st;
    int rc = es_partitions_maintain(p->pool, p->size, &st, err);
    if (rc != ES_OK) {
        atomic_fetch_add(&p->failures, 1);
        es_log(ES_LOG_WARN, "partitions", NULL, "event partitions: maintenance failed: %s", err->message);
        return rc;
    }
    atomic_store(&p->partitions, st.partitions);
    atomic_store(&p->newest_events, st.newest_events);
    atomic_store(&p->headroom, st.headroom);
    atomic_store(&p->default_events, st.default_events);
    atomic_fetch_add(&p->created, st.created);
    p->skips = st.skipped ? p->skips + 1 : 0;
    if (st.created)
        es_log(ES_LOG_INFO, "partitions", NULL, "event partitions: %d made ahead (%" PRId64 " positions each); %" PRId64
               " partitions, %" PRId64 " positions of headroom", st.created, p->size, st.partitions, st.headroom);
    /* Another instance maintaining is normal; a lock that keeps timing out while the headroom
     * runs out is not. */
    if (p->skips >= 5 && st.headroom < p->size)
        es_log(ES_LOG_WARN, "partitions", NULL, "event partitions: maintenance skipped %d times in a row with %" PRId64
               " positions of headroom left (a long transaction on es_events holds the default partition?)",
               p->skips, st.headroom);
    if (st.default_events > 0)
        es_log(ES_LOG_WARN, "partitions", NULL, "event partitions: %" PRId64 " events are in es_events_default "
               "(maintenance lagged; they stay there and are read like any other; see README, \"Event partitions\")",
               st.default_events);
    return ES_OK;
}

void es_partitions_write_metrics(es_partitions *p, es_buf *out)
{
    if (!p)
        return;
    const es_metric_row rows[] = {
        {"es_event_partitions", "gauge", "partitions of es_events, the default included (-1: not read yet)",
         (double)atomic_load(&p->partitions)},
        {"es_event_partition_newest_events", "gauge",
         "positions handed out in the partition being filled (an upper bound of its events)",
         (double)atomic_load(&p->newest_events)},
        {"es_event_partition_headroom", "gauge",
         "positions left before the highest partition's end (0: new events go to the default partition)",
         (double)atomic_load(&p->headroom)},
        {"es_event_partition_default_events", "gauge", "events in es_events_default (0 unless maintenance lagged)",
         (double)atomic_load(&p->default_events)},
        {"es_event_partition_created_total", "counter", "partitions this instance made ahead of need",
         (double)atomic_load(&p->created)},
        {"es_event_partition_maintenance_failures_total", "counter", "maintenance runs that failed",
         (double)atomic_load(&p->failures)},
    };
    ES_METRICS_ROWS(out, rows);
}

void es_partitions_free(es_partitions *p)
{
    free(p);
}
