/* Projection shapes, built beside the serving table and switched to: see es/projection_shape.h. */
#include "es/projection_shape.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "es/clock.h"
#include "es/log.h"
#include "es/metrics.h"
#include "es/pg_error.h"
#include "es/sha256.h"

#define CATCH_UP_PASSES 8           /* passes outside the switch's lock at most */
#define CATCH_UP_CLOSE 500          /* a pass that folded fewer events: close enough to switch */
#define SWITCH_ATTEMPTS 5           /* the switch waits lock_timeout for its locks, this many times */

void es_projection_shape_hash(const es_projection_def *def, char out[65])
{
    const char *ddl = def && def->ddl ? def->ddl : "";
    es_sha256_hex(ddl, strlen(ddl), out);
}

static void set_state(const es_shape_config *cfg, es_shape_state s)
{
    if (cfg->status)
        atomic_store(&cfg->status->state, (int)s);
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

/* Runs the statements of a formatted text (simple protocol: several statements, no parameters). */
static int execf(PGconn *pg, const char *what, es_error *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char small[2];
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    char *sql = es_xmalloc((size_t)n + 1);
    vsnprintf(sql, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    PGresult *res = PQexec(pg, sql);
    ExecStatusType st = PQresultStatus(res);
    int rc = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? ES_OK : es_pg_error(pg, res, what, err);
    PQclear(res);
    free(sql);
    return rc;
}

static void rollback(PGconn *pg)
{
    if (PQtransactionStatus(pg) != PQTRANS_IDLE)
        PQclear(PQexec(pg, "ROLLBACK"));
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

/* The staging and retirement schemas are named after the table: only plain identifiers. */
static int plain_name(const char *s)
{
    size_t n = strlen(s);
    if (!n || n > 40 || isdigit((unsigned char)s[0]))
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!(islower((unsigned char)s[i]) || isdigit((unsigned char)s[i]) || s[i] == '_'))
            return 0;
    return 1;
}

/* The shape recorded for def (strdup'ed into *out, NULL when none). */
static int recorded_shape(PGconn *pg, const es_projection_def *def, char **out, es_error *err)
{
    PGresult *r = NULL;
    const char *np[1] = {def->name};
    *out = NULL;
    int rc = exec(pg, "SELECT shape_hash FROM es_projection_shapes WHERE name = $1", 1, np,
                  "read the projection's shape", &r, err);
    if (rc == ES_OK && PQntuples(r))
        *out = strdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    return rc;
}

/* *exists: the table is there; *rows: it has a row. */
static int table_rows(PGconn *pg, const char *table, int *exists, int *rows, es_error *err)
{
    PGresult *r = NULL;
    const char *p[1] = {table};
    *exists = *rows = 0;
    int rc = exec(pg, "SELECT to_regclass($1) IS NOT NULL", 1, p, "look for the projection table", &r, err);
    if (rc) return rc;
    *exists = PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    if (!*exists)
        return ES_OK;
    char sql[200];
    snprintf(sql, sizeof sql, "SELECT EXISTS (SELECT 1 FROM %s)", table);
    if ((rc = exec(pg, sql, 0, NULL, "look at the projection table", &r, err)))
        return rc;
    *rows = PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    return ES_OK;
}

int es_projection_shape_prepare(es_pg_pool *pool, const es_projection_def *def, int *hold, es_error *err)
{
    *hold = 0;
    es_pg_conn *c = NULL;
    int rc = es_pg_pool_checkout_unprepared(pool, &c, err);
    if (rc) return rc;
    PGconn *pg = es_pg_conn_pg(c);
    char hash[65], *recorded = NULL;
    es_projection_shape_hash(def, hash);
    int exists = 0, rows = 0;
    if ((rc = recorded_shape(pg, def, &recorded, err)) == ES_OK && !(recorded && !strcmp(recorded, hash)) &&
        (rc = table_rows(pg, def->name, &exists, &rows, err)) == ES_OK)
        *hold = rows;
    free(recorded);
    es_pg_pool_checkin(pool, c);
    return rc;
}

/* ---- retirement ------------------------------------------------------------------------------ */

/* Drops every retired version of table (schemas es_old_<table>_*). */
static int drop_retired(PGconn *pg, const char *table, es_error *err)
{
    char like[120];
    snprintf(like, sizeof like, "es\\_old\\_%s\\_%%", table);
    const char *p[1] = {like};
    PGresult *r = NULL;
    int rc = exec(pg, "SELECT nspname FROM pg_namespace WHERE nspname LIKE $1", 1, p, "list retired versions", &r, err);
    for (int i = 0; rc == ES_OK && i < PQntuples(r); i++) {
        rc = execf(pg, "drop a retired version", err, "DROP SCHEMA %s CASCADE", PQgetvalue(r, i, 0));
        if (rc == ES_OK)
            es_log(ES_LOG_INFO, "projection", NULL, "projection %s: the old version (%s) is dropped", table,
                   PQgetvalue(r, i, 0));
    }
    PQclear(r);
    return rc;
}

static void *retire_loop(void *arg)
{
    es_shape_status *st = arg;
    while (!atomic_load(&st->stop) && es_now_us() < st->drop_at_us)
        es_sleep_us(100 * 1000);
    if (atomic_load(&st->stop))
        return NULL;
    es_pg_conn *c = NULL;
    es_error err = {0};
    if (es_pg_pool_checkout_unprepared(st->pool, &c, &err) == ES_OK) {
        /* DROP SCHEMA ... CASCADE's NOTICE stays out of the service's stderr. */
        PQclear(PQexec(es_pg_conn_pg(c), "SET client_min_messages = warning"));
        if (drop_retired(es_pg_conn_pg(c), st->table, &err) != ES_OK)
            es_log(ES_LOG_WARN, "projection", NULL, "projection %s: dropping the old version: %s", st->table,
                   err.message);
        PGresult *r = PQexec(es_pg_conn_pg(c), "RESET client_min_messages");
        if (PQresultStatus(r) != PGRES_COMMAND_OK)
            es_pg_conn_discard(c);
        PQclear(r);
        es_pg_pool_checkin(st->pool, c);
    } else {
        es_log(ES_LOG_WARN, "projection", NULL, "projection %s: dropping the old version: %s", st->table, err.message);
    }
    return NULL;
}

/* Retired versions of cfg's table go when the grace after the last switch (built_at) ends: now,
 * or from a thread of the status when there is one (else at a later start). */
static int retire(PGconn *pg, const es_shape_config *cfg, es_error *err)
{
    const char *table = cfg->def->name;
    char like[120];
    snprintf(like, sizeof like, "es\\_old\\_%s\\_%%", table);
    char grace[24];
    snprintf(grace, sizeof grace, "%d", cfg->old_grace_s > 0 ? cfg->old_grace_s : 0);
    const char *p[3] = {like, table, grace};
    PGresult *r = NULL;
    /* Seconds left of the grace (0 or less: drop now), when a retired version exists. */
    int rc = exec(pg,
                  "SELECT extract(epoch FROM (s.built_at + make_interval(secs => $3::int) - now()))::float8"
                  " FROM es_projection_shapes s WHERE s.name = $2"
                  " AND EXISTS (SELECT 1 FROM pg_namespace WHERE nspname LIKE $1)",
                  3, p, "look for retired versions", &r, err);
    if (rc) return rc;
    double left = PQntuples(r) ? strtod(PQgetvalue(r, 0, 0), NULL) : -1e9;
    int any = PQntuples(r) > 0;
    PQclear(r);
    if (!any)
        return ES_OK;
    if (left <= 0)
        return drop_retired(pg, table, err);
    es_shape_status *st = cfg->status;
    if (!st || st->retiring)
        return ES_OK;
    st->pool = cfg->pool;
    snprintf(st->table, sizeof st->table, "%s", table);
    st->drop_at_us = es_now_us() + (int64_t)(left * 1e6);
    if (pthread_create(&st->retirer, NULL, retire_loop, st) == 0)
        st->retiring = 1;
    else
        es_log(ES_LOG_WARN, "projection", NULL, "projection %s: no thread to drop the old version later", table);
    return ES_OK;
}

/* ---- catching up ----------------------------------------------------------------------------- */

typedef struct beside {
    const es_shape_config *cfg;
    es_projection_def def;          /* cfg->def, named after the staging table */
    es_projector *projector;        /* over def */
    char staging[64];               /* es_next_<table> */
    char qualified[140];            /* es_next_<table>.<table> */
    char consumer[200];             /* <consumer>@next */
    char *upsert;                   /* a row of the staging table */
    int64_t events, rows;
} beside;

static uint64_t be64(const char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | (unsigned char)p[i];
    return v;
}

/* Folds one stream's events (rows [from, to) of r, in version order) into a row of the staging
 * table and records its version for the staging consumer. */
static int fold_stream(PGconn *pg, beside *b, PGresult *r, int from, int to, es_error *err)
{
    const es_aggregate_def *agg = b->def.aggregate;
    size_t n_ups = 0;
    const es_upcaster *ups = es__projector_upcasters(b->cfg->projector, &n_ups);
    const char *sid = PQgetvalue(r, from, 0);
    es_arena a;
    es_arena_init(&a);
    ProtobufCMessage *state = es_xmalloc(agg->state_descriptor->sizeof_message);
    protobuf_c_message_init(agg->state_descriptor, state);
    int64_t version = 0;
    int rc = ES_OK;
    for (int i = from; i < to && rc == ES_OK; i++) {
        int64_t v = (int64_t)be64(PQgetvalue(r, i, 1));
        if (v != version + 1) {
            rc = es_error_set(err, ES_DATA_LOSS, "version",
                              "shape %s: stream %s: version %" PRId64 " is missing from the event store",
                              b->def.name, sid, version + 1);
            break;
        }
        const char *type = PQgetvalue(r, i, 2);
        const es_event_def *edef = es_schema_find_event(agg, type);
        if (!edef) {
            rc = es_error_set(err, ES_INVALID_ARGUMENT, "event_type", "shape %s: unknown %s event type %s",
                              b->def.name, agg->name, type);
            break;
        }
        const char *sv4 = PQgetvalue(r, i, 3);
        uint32_t sv = (uint32_t)(unsigned char)sv4[0] << 24 | (uint32_t)(unsigned char)sv4[1] << 16 |
             (uint32_t)(unsigned char)sv4[2] << 8 | (unsigned char)sv4[3];
        ProtobufCMessage *event = NULL;
        if ((rc = es_event_decode(edef, sv, (const uint8_t *)PQgetvalue(r, i, 4), (size_t)PQgetlength(r, i, 4), ups,
                                  n_ups, &a, &event, err)) != ES_OK)
            break;
        if ((rc = edef->apply(state, event)) != ES_OK) {
            es_error_set(err, rc, "event_type", "shape %s: %s cannot apply to %s at version %" PRId64, b->def.name,
                         type, sid, v);
            break;
        }
        version = v;
    }
    if (rc == ES_OK) {
        size_t n = es__projector_n_params(b->projector);
        const char **params = es_arena_alloc(&a, n * sizeof *params);
        if ((rc = es__projector_row_text(b->projector, state, version, &a, params, err)) == ES_OK)
            rc = exec(pg, b->upsert, (int)n, params, "shape: write a caught-up row", NULL, err);
    }
    if (rc == ES_OK) {
        char v[24];
        snprintf(v, sizeof v, "%" PRId64, version);
        const char *p[3] = {b->consumer, sid, v};
        rc = exec(pg,
                  "INSERT INTO es_consumer_streams (consumer, stream_id, version) VALUES ($1, $2, $3)"
                  " ON CONFLICT (consumer, stream_id) DO UPDATE SET version = EXCLUDED.version",
                  3, p, "shape: record a caught-up stream", NULL, err);
    }
    protobuf_c_message_free_unpacked(state, NULL);
    es_arena_free(&a);
    return rc;
}

/* Folds again every stream of the aggregate with events from transactions at or after xmin that
 * the staging table does not hold yet. *folded: the events those streams were behind. */
static int catch_up(PGconn *pg, beside *b, const char *xmin, int64_t *folded, es_error *err)
{
    *folded = 0;
    const char *p[3] = {b->def.aggregate->name, xmin, b->consumer};
    /* The candidate streams come from es_events' (txid, position) index; each one's events whole,
     * with the version the staging table holds. */
    PGresult *r = PQexecParams(pg,
                               "SELECT e.stream_id, e.version, e.event_type, e.schema_version, e.payload,"
                               " coalesce(s.version, 0)"
                               " FROM (SELECT DISTINCT stream_id FROM es_events WHERE txid >= $2::xid8"
                               " AND stream_type = $1) c"
                               " JOIN es_events e ON e.stream_id = c.stream_id AND e.stream_type = $1"
                               " LEFT JOIN es_consumer_streams s ON s.consumer = $3 AND s.stream_id = c.stream_id"
                               " ORDER BY e.stream_id, e.version",
                               3, NULL, p, NULL, NULL, 1);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        int rc = es_pg_error(pg, r, "shape: read the events to catch up", err);
        PQclear(r);
        return rc;
    }
    int rc = ES_OK, n = PQntuples(r);
    for (int i = 0; i < n && rc == ES_OK;) {
        int j = i + 1;
        while (j < n && PQgetlength(r, j, 0) == PQgetlength(r, i, 0) &&
               !memcmp(PQgetvalue(r, j, 0), PQgetvalue(r, i, 0), (size_t)PQgetlength(r, i, 0)))
            j++;
        int64_t held = (int64_t)be64(PQgetvalue(r, i, 5));
        int64_t last = (int64_t)be64(PQgetvalue(r, j - 1, 1));
        if (last > held) {
            rc = fold_stream(pg, b, r, i, j, err);
            *folded += last - held;
            if (!held)
                b->rows++;
        }
        i = j;
    }
    PQclear(r);
    b->events += *folded;
    if (b->cfg->status)
        atomic_fetch_add(&b->cfg->status->done, *folded);
    return rc;
}

/* pg_snapshot_xmin now: every transaction before it has ended (its events are visible to any
 * later snapshot). */
static int snapshot_xmin(PGconn *pg, char out[32], es_error *err)
{
    PGresult *r = NULL;
    int rc = exec(pg, "SELECT pg_snapshot_xmin(pg_current_snapshot())", 0, NULL, "shape: snapshot", &r, err);
    if (rc == ES_OK)
        snprintf(out, 32, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    return rc;
}

static void on_progress(void *data, int64_t done, int64_t total)
{
    es_shape_status *st = data;
    atomic_store(&st->done, done);
    atomic_store(&st->total, total);
}

/* The upsert of a staging row: the columns of def, then es_state (the live projector's form). */
static char *upsert_sql(const beside *b)
{
    const es_projection_def *def = &b->def;
    es_buf s;
    es_buf_init(&s);
    es_buf_printf(&s, "INSERT INTO %s (", def->name);
    for (size_t i = 0; i < def->n_columns; i++)
        es_buf_printf(&s, "%s, ", def->columns[i].column);
    es_buf_puts(&s, "es_state) VALUES (");
    for (size_t i = 0; i <= def->n_columns; i++)
        es_buf_printf(&s, "%s$%zu", i ? ", " : "", i + 1);
    es_buf_printf(&s, ") ON CONFLICT (%s) DO UPDATE SET ", def->key);
    for (size_t i = 0; i < def->n_columns; i++)
        if (strcmp(def->columns[i].column, def->key) != 0)
            es_buf_printf(&s, "%s = EXCLUDED.%s, ", def->columns[i].column, def->columns[i].column);
    es_buf_puts(&s, "es_state = EXCLUDED.es_state");
    return es_buf_steal(&s, NULL);
}

/* ---- the build beside and the switch ---------------------------------------------------------- */

/* The switch's transaction (see es/projection_shape.h, step 4). */
static int switch_over(PGconn *pg, beside *b, const char *xmin, const char *old_schema, const char *live_schema,
                       es_error *err)
{
    const es_shape_config *cfg = b->cfg;
    const char *table = cfg->def->name;
    int64_t folded = 0, events = b->events, rows = b->rows;
    int rc = execf(pg, "shape: lock for the switch", err,
                   "BEGIN; SET LOCAL lock_timeout = '5s';"
                   " LOCK TABLE es_consumer_streams IN ACCESS EXCLUSIVE MODE;"
                   " LOCK TABLE %s.%s IN ACCESS EXCLUSIVE MODE", live_schema, table);
    if (rc == ES_OK)
        rc = catch_up(pg, b, xmin, &folded, err);
    if (rc == ES_OK) {
        const char *p[2] = {cfg->name, b->consumer};
        rc = exec(pg, "DELETE FROM es_consumer_streams WHERE consumer = $1", 1, p, "shape: forget the old versions",
                  NULL, err);
        if (rc == ES_OK)
            rc = exec(pg, "UPDATE es_consumer_streams SET consumer = $1 WHERE consumer = $2", 2, p,
                      "shape: take the new versions", NULL, err);
    }
    if (rc == ES_OK)
        rc = execf(pg, "shape: switch the tables", err,
                   "DROP SCHEMA IF EXISTS %s CASCADE; CREATE SCHEMA %s; ALTER TABLE %s.%s SET SCHEMA %s;"
                   " ALTER TABLE %s.%s SET SCHEMA %s; DROP SCHEMA %s",
                   old_schema, old_schema, live_schema, table, old_schema, b->staging, table, live_schema,
                   b->staging);
    if (rc == ES_OK)
        rc = record(pg, cfg->def, b->events, b->rows, err);
    if (rc == ES_OK)
        rc = execf(pg, "shape: commit the switch", err, "COMMIT");
    if (rc != ES_OK) {
        /* Rolled back: the next attempt folds those events again. */
        rollback(pg);
        if (cfg->status)
            atomic_fetch_sub(&cfg->status->done, b->events - events);
        b->events = events;
        b->rows = rows;
    } else {
        es_log(ES_LOG_INFO, "projection", NULL,
               "projection %s: switched to its new version (%" PRId64 " events folded in the switch)", table, folded);
    }
    return rc;
}

static int build_beside(PGconn *pg, const es_shape_config *cfg, const char *recorded, es_shape_result *out,
                        es_error *err)
{
    const char *table = cfg->def->name;
    beside b = {.cfg = cfg, .def = *cfg->def};
    snprintf(b.staging, sizeof b.staging, "es_next_%s", table);
    snprintf(b.qualified, sizeof b.qualified, "%s.%s", b.staging, table);
    snprintf(b.consumer, sizeof b.consumer, "%s@next", cfg->name);
    b.def.name = b.qualified;
    char old_schema[64], live_schema[64], xmin[32];
    snprintf(old_schema, sizeof old_schema, "es_old_%s_%.12s", table, recorded ? recorded : "unrecorded");
    PGresult *r = NULL;
    const char *tp[1] = {table};
    int rc = exec(pg, "SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                      " WHERE c.oid = to_regclass($1)", 1, tp, "shape: the table's schema", &r, err);
    if (rc) return rc;
    snprintf(live_schema, sizeof live_schema, "%s", PQntuples(r) ? PQgetvalue(r, 0, 0) : "");
    PQclear(r);
    if (!plain_name(live_schema))
        return es_error_set(err, ES_FAILED_PRECONDITION, "", "shape %s: the table's schema \"%s\" is not a plain name",
                            table, live_schema);
    /* 1. The staging table from the generated DDL, in a schema of its own (a crashed build's
     * leftovers first gone). */
    set_state(cfg, ES_SHAPE_BUILDING);
    const char *cp[1] = {b.consumer};
    if ((rc = execf(pg, "shape: staging schema", err, "DROP SCHEMA IF EXISTS %s CASCADE; CREATE SCHEMA %s",
                    b.staging, b.staging)) ||
        (rc = exec(pg, "DELETE FROM es_consumer_streams WHERE consumer = $1", 1, cp, "shape: staging versions", NULL,
                   err)) ||
        (rc = execf(pg, "shape: create the new version", err,
                    "BEGIN; SELECT set_config('search_path', '%s, ' || current_setting('search_path'), true);\n%s\n"
                    "COMMIT", b.staging, cfg->def->ddl))) {
        rollback(pg);
        return rc;
    }
    b.projector = es_projector_new(&b.def, cfg->json);
    size_t n_ups = 0;
    const es_upcaster *ups = es__projector_upcasters(cfg->projector, &n_ups);
    es_projector_set_upcasters(b.projector, ups, n_ups);
    b.upsert = upsert_sql(&b);

    /* 2. The set-based fill. Every transaction before xmin is in its snapshot. */
    if ((rc = snapshot_xmin(pg, xmin, err)))
        goto done;
    es_rebuild_config rcfg = {.conninfo = cfg->conninfo, .name = b.consumer, .projector = b.projector, .beside = 1,
                              .progress = cfg->status ? on_progress : NULL, .progress_data = cfg->status};
    es_rebuild_result res = {0};
    rc = ES_ABORTED;
    for (int attempt = 0; attempt < 5 && rc == ES_ABORTED; attempt++) {
        if (attempt) es_sleep_us(200 * 1000);
        rc = es_projection_rebuild(&rcfg, &res, err);
    }
    if (rc) goto done;
    b.events = res.events;
    b.rows = res.rows;

    /* 3. Catching up outside the lock until a pass finds little. */
    set_state(cfg, ES_SHAPE_CATCHING_UP);
    for (int pass = 0; pass < CATCH_UP_PASSES; pass++) {
        char next[32];
        int64_t folded = 0;
        if ((rc = snapshot_xmin(pg, next, err)) || (rc = catch_up(pg, &b, xmin, &folded, err)))
            goto done;
        memcpy(xmin, next, sizeof next);
        if (folded < CATCH_UP_CLOSE)
            break;
    }
    /* 4. The switch, again after a short catch-up when its locks were not had in time. */
    set_state(cfg, ES_SHAPE_SWITCHING);
    for (int attempt = 0; attempt < SWITCH_ATTEMPTS; attempt++) {
        char next[32];
        int64_t folded = 0;
        if ((rc = snapshot_xmin(pg, next, err)))
            goto done;
        if ((rc = switch_over(pg, &b, xmin, old_schema, live_schema, err)) == ES_OK)
            break;
        es_log(ES_LOG_WARN, "projection", NULL, "projection %s: switch attempt %d: %s", table, attempt + 1,
               err ? err->message : "");
        if ((rc = catch_up(pg, &b, xmin, &folded, err)))
            goto done;
        memcpy(xmin, next, sizeof next);
    }
    if (rc) goto done;
    out->rebuilt = 1;
    out->events = b.events;
    out->rows = b.rows;
    /* 5. Fresh statistics: on a table just filled the planner would otherwise guess. */
    rc = execf(pg, "shape: analyze the new version", err, "ANALYZE %s.%s", live_schema, table);
done:
    if (rc) {
        /* The old version serves on; the staging table goes (the next start builds again). */
        es_error derr = {0};
        rollback(pg);
        execf(pg, "shape: drop the staging table", &derr, "DROP SCHEMA IF EXISTS %s CASCADE", b.staging);
        exec(pg, "DELETE FROM es_consumer_streams WHERE consumer = $1", 1, cp, "shape: staging versions", NULL, &derr);
    }
    free(b.upsert);
    es_projector_free(b.projector);
    return rc;
}

int es_projection_ensure_shape(const es_shape_config *cfg, es_shape_result *out, es_error *err)
{
    es_shape_result local;
    if (!out) out = &local;
    memset(out, 0, sizeof *out);
    if (!cfg || !cfg->pool || !cfg->conninfo || !cfg->name || !cfg->projector || !cfg->def || !cfg->json)
        return es_error_set(err, ES_INVALID_ARGUMENT, "", "es_projection_ensure_shape: incomplete config");
    const es_projection_def *def = cfg->def;
    if (!plain_name(def->name))
        return es_error_set(err, ES_INVALID_ARGUMENT, "", "es_projection_ensure_shape: table name %s is not a plain "
                            "identifier of at most 40 characters", def->name);
    char hash[65];
    es_projection_shape_hash(def, hash);
    es_pg_conn *c = NULL;
    int rc = es_pg_pool_checkout_unprepared(cfg->pool, &c, err);
    if (rc) return rc;
    PGconn *pg = es_pg_conn_pg(c);
    char lock_name[200];
    snprintf(lock_name, sizeof lock_name, "es_projection_shape:%s", def->name);
    const char *lp[1] = {lock_name};
    char *recorded = NULL;
    /* A session lock: the build runs on connections of its own, for as long as it takes. NOTICEs
     * ("column already exists, skipping", "drop cascades to ...") stay out of the service's stderr. */
    set_state(cfg, ES_SHAPE_WAITING);
    if ((rc = exec(pg, "SET client_min_messages = warning", 0, NULL, "quiet notices", NULL, err)) ||
        (rc = exec(pg, "SELECT pg_advisory_lock(hashtextextended($1, 0))", 1, lp, "projection shape lock", NULL, err)))
        goto done_nolock;
    if ((rc = recorded_shape(pg, def, &recorded, err)))
        goto done;
    if (recorded && strcmp(recorded, hash) == 0) {
        snprintf(out->reason, sizeof out->reason, "projection %s is at its current shape", def->name);
        /* What a build cut short (a crash, a kill) left behind; nobody builds while we hold the lock. */
        char next[200];
        snprintf(next, sizeof next, "%s@next", cfg->name);
        const char *np2[1] = {next};
        if ((rc = execf(pg, "shape: drop a cut-short build", err, "DROP SCHEMA IF EXISTS es_next_%s CASCADE",
                        def->name)) ||
            (rc = exec(pg, "DELETE FROM es_consumer_streams WHERE consumer = $1", 1, np2, "shape: staging versions",
                       NULL, err)))
            goto done;
        goto after;
    }
    int exists = 0, rows = 0;
    if ((rc = table_rows(pg, def->name, &exists, &rows, err)))
        goto done;
    if (!rows) {
        PGresult *r = NULL;
        const char *ap[1] = {def->aggregate->name};
        if ((rc = exec(pg, "SELECT EXISTS (SELECT 1 FROM es_events WHERE stream_type = $1)", 1, ap,
                       "look for the aggregate's events", &r, err)))
            goto done;
        int events = PQgetvalue(r, 0, 0)[0] == 't';
        PQclear(r);
        if (!events && exists) {
            snprintf(out->reason, sizeof out->reason, "projection %s is empty: its shape is recorded", def->name);
            rc = record(pg, def, 0, 0, err);
            goto after;
        }
        if (!exists) {
            /* Its migration was held back although the table has no rows: nothing to serve. */
            rc = es_error_set(err, ES_FAILED_PRECONDITION, "", "projection %s: the table does not exist (run its "
                              "migration first)", def->name);
            goto done;
        }
        if (cfg->status)
            atomic_store(&cfg->status->first, 1);
    }
    snprintf(out->reason, sizeof out->reason, "projection %s %s: building its new version beside it", def->name,
             !rows ? "serves no rows yet" : recorded ? "changed shape" : "has rows of an unrecorded shape");
    es_log(ES_LOG_WARN, "projection", NULL, "%s", out->reason);
    if ((rc = build_beside(pg, cfg, recorded, out, err))) {
        set_state(cfg, ES_SHAPE_FAILED);
        goto done;
    }
    es_log(ES_LOG_INFO, "projection", NULL, "projection %s built at its new shape: %lld events, %lld rows", def->name,
           (long long)out->events, (long long)out->rows);
after:
    /* The migrations held back for the switch: on the new version they find their work done. */
    if (rc == ES_OK && cfg->n_after)
        rc = es_migrate(cfg->pool, cfg->after, cfg->n_after, NULL, err);
    if (rc == ES_OK) {
        es_error rerr = {0};
        if (retire(pg, cfg, &rerr) != ES_OK)
            es_log(ES_LOG_WARN, "projection", NULL, "projection %s: old versions: %s", def->name, rerr.message);
        set_state(cfg, ES_SHAPE_CURRENT);
        if (cfg->status)
            atomic_store(&cfg->status->first, 0);
    }
done:
    {
        es_error uerr = {0};
        rollback(pg);
        exec(pg, "SELECT pg_advisory_unlock(hashtextextended($1, 0))", 1, lp, "projection shape unlock", NULL, &uerr);
    }
done_nolock:
    free(recorded);
    {
        es_error rerr = {0};
        rollback(pg);
        if (exec(pg, "RESET client_min_messages", 0, NULL, "reset notices", NULL, &rerr) != ES_OK)
            es_pg_conn_discard(c); /* the pool's other users do not expect the setting */
    }
    es_pg_pool_checkin(cfg->pool, c);
    return rc;
}

/* ---- reports ---------------------------------------------------------------------------------- */

int es_projection_shape_describe(es_pg_pool *pool, const es_projection_def *def, const char *consumer,
                                 es_shape_report *out, es_error *err)
{
    memset(out, 0, sizeof *out);
    out->events = out->rows = -1;
    es_projection_shape_hash(def, out->current);
    if (!plain_name(def->name))
        return es_error_set(err, ES_INVALID_ARGUMENT, "", "table name %s is not a plain identifier", def->name);
    es_pg_conn *c = NULL;
    int rc = es_pg_pool_checkout_unprepared(pool, &c, err);
    if (rc) return rc;
    PGconn *pg = es_pg_conn_pg(c);
    char staging[64], qualified[140], next[200], lock_name[200], like[120];
    snprintf(staging, sizeof staging, "es_next_%s", def->name);
    snprintf(qualified, sizeof qualified, "%s.%s", staging, def->name);
    snprintf(next, sizeof next, "%s@next", consumer);
    snprintf(lock_name, sizeof lock_name, "es_projection_shape:%s", def->name);
    snprintf(like, sizeof like, "es\\_old\\_%s\\_%%", def->name);
    const char *p[6] = {def->name, qualified, next, lock_name, like, def->aggregate->name};
    PGresult *r = NULL;
    /* The advisory lock's key is shown by pg_locks as two 32-bit halves. */
    rc = exec(pg,
              "SELECT s.shape_hash, s.built_at::text, s.events, s.rows, to_regclass($2) IS NOT NULL,"
              " EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1"
              "  AND ((classid::int8 << 32) | objid::int8) = hashtextextended($4, 0)),"
              " (SELECT count(*) FROM es_consumer_streams WHERE consumer = $3),"
              " (SELECT coalesce(sum(version), 0) FROM es_consumer_streams WHERE consumer = $3),"
              " (SELECT count(*) FROM es_events WHERE stream_type = $6),"
              " (SELECT coalesce(string_agg(nspname, ',' ORDER BY nspname), '') FROM pg_namespace"
              "  WHERE nspname LIKE $5)"
              " FROM (SELECT 1) one LEFT JOIN es_projection_shapes s ON s.name = $1",
              6, p, "describe the projection's shape", &r, err);
    if (rc == ES_OK) {
        snprintf(out->recorded, sizeof out->recorded, "%s", PQgetvalue(r, 0, 0));
        snprintf(out->built_at, sizeof out->built_at, "%s", PQgetvalue(r, 0, 1));
        if (!PQgetisnull(r, 0, 2)) out->events = strtoll(PQgetvalue(r, 0, 2), NULL, 10);
        if (!PQgetisnull(r, 0, 3)) out->rows = strtoll(PQgetvalue(r, 0, 3), NULL, 10);
        out->building = PQgetvalue(r, 0, 4)[0] == 't';
        out->builder = PQgetvalue(r, 0, 5)[0] == 't';
        out->staged_streams = strtoll(PQgetvalue(r, 0, 6), NULL, 10);
        out->staged_events = strtoll(PQgetvalue(r, 0, 7), NULL, 10);
        out->store_events = strtoll(PQgetvalue(r, 0, 8), NULL, 10);
        snprintf(out->retired, sizeof out->retired, "%s", PQgetvalue(r, 0, 9));
    }
    PQclear(r);
    es_pg_pool_checkin(pool, c);
    return rc;
}

/* ---- status ---------------------------------------------------------------------------------- */

int es_projection_shape_unready(const es_shape_status *st)
{
    if (!st || !atomic_load(&st->first))
        return 0;
    int s = atomic_load(&st->state);
    return s != ES_SHAPE_CURRENT;
}

const char *es_projection_shape_state_name(int state)
{
    static const char *const names[] = {"starting", "waiting", "building", "catching_up", "switching", "current",
                                        "failed"};
    return state >= 0 && state <= ES_SHAPE_FAILED ? names[state] : "unknown";
}

void es_projection_shape_write_metrics(const es_shape_status *const *st, const char *const *projection, size_t n,
                                       es_buf *out)
{
    char labels[160];
    es_metrics_family(out, "es_projection_rebuilding", "gauge",
                      "1 while a projection's new shape is built beside the serving table (reads stay on the old "
                      "version; not ready only for a first build).");
    for (size_t k = 0; k < n; k++) {
        int s = atomic_load(&st[k]->state);
        snprintf(labels, sizeof labels, "projection=\"%s\"", projection[k]);
        es_metrics_sample(out, "es_projection_rebuilding", labels,
                          s == ES_SHAPE_BUILDING || s == ES_SHAPE_CATCHING_UP || s == ES_SHAPE_SWITCHING);
    }
    es_metrics_family(out, "es_projection_rebuild_events", "gauge",
                      "Events folded by the running (or last) shape build, and the events expected.");
    for (size_t k = 0; k < n; k++) {
        snprintf(labels, sizeof labels, "projection=\"%s\",state=\"done\"", projection[k]);
        es_metrics_sample(out, "es_projection_rebuild_events", labels, (double)atomic_load(&st[k]->done));
        snprintf(labels, sizeof labels, "projection=\"%s\",state=\"expected\"", projection[k]);
        es_metrics_sample(out, "es_projection_rebuild_events", labels, (double)atomic_load(&st[k]->total));
    }
    es_metrics_family(out, "es_projection_shape_state", "gauge",
                      "1 for the state of the projection's shape check: starting, waiting, building, catching_up, "
                      "switching, current, failed.");
    for (size_t k = 0; k < n; k++) {
        int s = atomic_load(&st[k]->state);
        for (int i = 0; i <= ES_SHAPE_FAILED; i++) {
            snprintf(labels, sizeof labels, "projection=\"%s\",state=\"%s\"", projection[k],
                     es_projection_shape_state_name(i));
            es_metrics_sample(out, "es_projection_shape_state", labels, i == s);
        }
    }
}

void es_projection_shape_status_fini(es_shape_status *st)
{
    if (!st || !st->retiring)
        return;
    atomic_store(&st->stop, 1);
    pthread_join(st->retirer, NULL);
    st->retiring = 0;
}
