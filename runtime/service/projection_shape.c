/* Projection shapes: see es/projection_shape.h. */
#include "es/projection_shape.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "es/log.h"
#include "es/sha256.h"

void es_projection_shape_hash(const es_projection_def *def, char out[65])
{
    const char *ddl = def && def->ddl ? def->ddl : "";
    es_sha256_hex(ddl, strlen(ddl), out);
}

/* Runs sql with text parameters; *r receives the result when wanted (else cleared). */
static int exec(PGconn *pg, const char *sql, int n, const char *const *params, const char *what, PGresult **r,
                es_error *err)
{
    PGresult *res = PQexecParams(pg, sql, n, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        int rc = es_pg_error(pg, res, what, err);
        PQclear(res);
        return rc;
    }
    if (r) *r = res;
    else PQclear(res);
    return ES_OK;
}

static int record(PGconn *pg, const es_projection_def *def, int64_t events, int64_t rows, es_error *err)
{
    char hash[65], ev[24], rw[24];
    es_projection_shape_hash(def, hash);
    snprintf(ev, sizeof ev, "%lld", (long long)events);
    snprintf(rw, sizeof rw, "%lld", (long long)rows);
    const char *p[4] = {def->name, hash, ev, rw};
    return exec(pg,
                "INSERT INTO es_projection_shapes (name, shape_hash, events, rows) VALUES ($1, $2, $3, $4) "
                "ON CONFLICT (name) DO UPDATE SET shape_hash = EXCLUDED.shape_hash, events = EXCLUDED.events, "
                "rows = EXCLUDED.rows, built_at = now()",
                4, p, "record the projection's shape", NULL, err);
}

int es_projection_record_shape(es_pg_pool *pool, const es_projection_def *def, int64_t events, int64_t rows,
                               es_error *err)
{
    es_pg_conn *c = NULL;
    int rc = es_pg_pool_checkout_unprepared(pool, &c, err);
    if (rc) return rc;
    rc = record(es_pg_conn_pg(c), def, events, rows, err);
    es_pg_pool_checkin(pool, c);
    return rc;
}

int es_projection_ensure_shape(const es_shape_config *cfg, es_shape_result *out, es_error *err)
{
    es_shape_result local;
    if (!out) out = &local;
    memset(out, 0, sizeof *out);
    if (!cfg || !cfg->pool || !cfg->conninfo || !cfg->name || !cfg->projector || !cfg->def)
        return es_error_set(err, ES_INVALID_ARGUMENT, "", "es_projection_ensure_shape: incomplete config");
    const es_projection_def *def = cfg->def;
    char hash[65];
    es_projection_shape_hash(def, hash);
    es_pg_conn *c = NULL;
    int rc = es_pg_pool_checkout_unprepared(cfg->pool, &c, err);
    if (rc) return rc;
    PGconn *pg = es_pg_conn_pg(c);
    char lock_name[200];
    snprintf(lock_name, sizeof lock_name, "es_projection_shape:%s", def->name);
    const char *lp[1] = {lock_name};
    /* A session lock: the rebuild runs on connections of its own, for as long as it takes. */
    if ((rc = exec(pg, "SELECT pg_advisory_lock(hashtextextended($1, 0))", 1, lp, "projection shape lock", NULL, err)))
        goto done_nolock;
    PGresult *r = NULL;
    const char *np[1] = {def->name};
    if ((rc = exec(pg, "SELECT shape_hash FROM es_projection_shapes WHERE name = $1", 1, np, "read the projection's shape",
                   &r, err)))
        goto done;
    char *recorded = PQntuples(r) ? strdup(PQgetvalue(r, 0, 0)) : NULL;
    PQclear(r);
    if (recorded && strcmp(recorded, hash) == 0) {
        snprintf(out->reason, sizeof out->reason, "projection %s is at its current shape", def->name);
        free(recorded);
        goto done;
    }
    char sql[300];
    snprintf(sql, sizeof sql, "SELECT EXISTS (SELECT 1 FROM %s)", def->name);
    if ((rc = exec(pg, sql, 0, NULL, "look at the projection table", &r, err))) {
        free(recorded);
        goto done;
    }
    int has_rows = PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    if (!has_rows) {
        snprintf(out->reason, sizeof out->reason, "projection %s is empty: its shape is recorded", def->name);
        free(recorded);
        rc = record(pg, def, 0, 0, err);
        goto done;
    }
    snprintf(out->reason, sizeof out->reason, "projection %s %s: rebuilding it from the event store", def->name,
             recorded ? "changed shape" : "has rows of an unrecorded shape");
    free(recorded);
    es_log(ES_LOG_WARN, "projection", NULL, "%s", out->reason);
    es_rebuild_config rcfg = {.conninfo = cfg->conninfo, .name = cfg->name, .projector = cfg->projector,
                              .progress = cfg->progress, .progress_data = cfg->progress_data};
    es_rebuild_result res = {0};
    /* A deadlock or serialization failure rolled everything back: it may simply run again. */
    rc = ES_ABORTED;
    for (int attempt = 0; attempt < 5 && rc == ES_ABORTED; attempt++) {
        if (attempt) usleep(200 * 1000);
        rc = es_projection_rebuild(&rcfg, &res, err);
    }
    if (rc) goto done;
    out->rebuilt = 1;
    out->events = res.events;
    out->rows = res.rows;
    if ((rc = record(pg, def, res.events, res.rows, err)))
        goto done;
    /* Fresh statistics: on a table just filled the planner would otherwise guess. */
    snprintf(sql, sizeof sql, "ANALYZE %s", def->name);
    if ((rc = exec(pg, sql, 0, NULL, "analyze the rebuilt projection", NULL, err)))
        goto done;
    es_log(ES_LOG_INFO, "projection", NULL, "projection %s rebuilt at its new shape: %lld events, %lld rows",
           def->name, (long long)res.events, (long long)res.rows);
done:
    {
        es_error uerr = {0};
        exec(pg, "SELECT pg_advisory_unlock(hashtextextended($1, 0))", 1, lp, "projection shape unlock", NULL, &uerr);
    }
done_nolock:
    es_pg_pool_checkin(cfg->pool, c);
    return rc;
}
