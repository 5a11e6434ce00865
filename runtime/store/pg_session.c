/* Dedicated PostgreSQL sessions (see es/pg_session.h) and the connect call they share with the
 * pool. */
#include "es/pg_session.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "es/arena.h"
#include "es/log.h"
#include "pg_connect.h"

PGconn *es__pg_connect(const char *conninfo, int connect_timeout_s, const char *app_name, int fallback)
{
    char timeout[16];
    snprintf(timeout, sizeof timeout, "%d", connect_timeout_s > 0 ? connect_timeout_s : 2);
    const char *keys[] = {"connect_timeout", "keepalives", "keepalives_idle", "keepalives_interval",
                          "keepalives_count", "fallback_application_name", "dbname", NULL, NULL};
    const char *vals[] = {timeout, "1", "5", "2", "3", app_name, conninfo, NULL, NULL};
    if (!fallback) {
        keys[7] = "application_name";
        vals[7] = app_name;
    }
    return PQconnectdbParams(keys, vals, 1);
}

typedef struct stmt {
    char *sql;
    uint64_t hash;
    char name[24];
} stmt;

struct es_pg_session {
    char *conninfo, *app, *settings, *listen;
    es_pg_statement *fixed;     /* copies of the configured statements */
    size_t n_fixed;
    int connect_timeout_s;
    PGconn *pg;
    int bad;                    /* reconnect at the next ensure */
    int reconnected;            /* a new connection since es_pg_session_reconnected was asked */
    stmt *stmts;                /* prepared from SQL text on this connection */
    size_t n_stmts, cap_stmts;
    unsigned next_id;
};

static char *dup_or_null(const char *s) { return s ? es_xstrdup(s) : NULL; }

es_pg_session *es_pg_session_new(const es_pg_session_config *cfg, es_error *err)
{
    if (!cfg || !cfg->conninfo || !cfg->conninfo[0] || !cfg->application_name) {
        es_error_set(err, ES_INVALID_ARGUMENT, "conninfo", "a PostgreSQL conninfo and an application name are required");
        return NULL;
    }
    es_pg_session *s = es_xcalloc(1, sizeof *s);
    s->conninfo = es_xstrdup(cfg->conninfo);
    s->app = es_xstrdup(cfg->application_name);
    s->settings = dup_or_null(cfg->settings);
    s->listen = dup_or_null(cfg->listen);
    s->connect_timeout_s = cfg->connect_timeout_s;
    s->n_fixed = cfg->n_statements;
    s->fixed = es_xcalloc(s->n_fixed ? s->n_fixed : 1, sizeof *s->fixed);
    for (size_t i = 0; i < s->n_fixed; i++) {
        const es_pg_statement *st = &cfg->statements[i];
        s->fixed[i].name = es_xstrdup(st->name);
        s->fixed[i].sql = es_xstrdup(st->sql);
        s->fixed[i].n_params = st->n_params;
        if (st->param_types && st->n_params > 0) {
            Oid *t = es_xmalloc((size_t)st->n_params * sizeof *t);
            memcpy(t, st->param_types, (size_t)st->n_params * sizeof *t);
            s->fixed[i].param_types = t;
        }
    }
    return s;
}

static void forget_stmts(es_pg_session *s)
{
    for (size_t i = 0; i < s->n_stmts; i++) free(s->stmts[i].sql);
    s->n_stmts = 0;
}

void es_pg_session_close(es_pg_session *s)
{
    if (!s) return;
    if (s->pg) PQfinish(s->pg);
    s->pg = NULL;
    s->bad = 0;
    forget_stmts(s);
}

void es_pg_session_free(es_pg_session *s)
{
    if (!s) return;
    es_pg_session_close(s);
    for (size_t i = 0; i < s->n_fixed; i++) {
        free((char *)s->fixed[i].name);
        free((char *)s->fixed[i].sql);
        free((Oid *)s->fixed[i].param_types);
    }
    free(s->fixed);
    free(s->stmts);
    free(s->conninfo);
    free(s->app);
    free(s->settings);
    free(s->listen);
    free(s);
}

/* Runs sql on the fresh connection, checked; what names the step in the error. */
static int setup_step(es_pg_session *s, const char *sql, const char *what, es_error *err)
{
    char label[96];
    snprintf(label, sizeof label, "%s: %s", s->app, what);
    return es_pg_session_exec(s, sql, label, err);
}

int es_pg_session_ensure(es_pg_session *s, es_error *err)
{
    if (s->pg && !s->bad && PQstatus(s->pg) == CONNECTION_OK) return ES_OK;
    es_pg_session_close(s);
    char label[96];
    s->pg = es__pg_connect(s->conninfo, s->connect_timeout_s, s->app, 0);
    if (!s->pg) es_oom();
    if (PQstatus(s->pg) != CONNECTION_OK) {
        snprintf(label, sizeof label, "%s: connect", s->app);
        int rc = es_pg_error(s->pg, NULL, label, err);
        es_pg_session_close(s);
        return rc;
    }
    s->reconnected = 1;
    int rc = ES_OK;
    if (s->settings && (rc = setup_step(s, s->settings, "session settings", err)) != ES_OK) goto fail;
    if (s->listen) {
        char *chan = PQescapeIdentifier(s->pg, s->listen, strlen(s->listen));
        if (!chan) {
            snprintf(label, sizeof label, "%s: LISTEN", s->app);
            rc = es_pg_error(s->pg, NULL, label, err);
            goto fail;
        }
        size_t n = strlen(chan) + 8;
        char *sql = es_xmalloc(n);
        snprintf(sql, n, "LISTEN %s", chan);
        PQfreemem(chan);
        rc = setup_step(s, sql, "LISTEN", err);
        free(sql);
        if (rc != ES_OK) goto fail;
    }
    for (size_t i = 0; i < s->n_fixed; i++) {
        const es_pg_statement *st = &s->fixed[i];
        PGresult *r = PQprepare(s->pg, st->name, st->sql, st->n_params, st->param_types);
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            snprintf(label, sizeof label, "%s: prepare %s", s->app, st->name);
            rc = es_pg_error(s->pg, r, label, err);
            PQclear(r);
            goto fail;
        }
        PQclear(r);
    }
    return ES_OK;
fail:
    /* Half set up is not set up: the next ensure starts over. */
    es_pg_session_close(s);
    return rc;
}

PGconn *es_pg_session_conn(es_pg_session *s) { return s ? s->pg : NULL; }

int es_pg_session_reconnected(es_pg_session *s)
{
    int r = s->reconnected;
    s->reconnected = 0;
    return r;
}

int es_pg_session_fail(es_pg_session *s, const PGresult *r, const char *what, es_error *err)
{
    if (es_pg_unavailable(s->pg, r)) s->bad = 1;
    return es_pg_error(s->pg, r, what, err);
}

int es_pg_session_exec(es_pg_session *s, const char *sql, const char *what, es_error *err)
{
    if (!s->pg) return es_error_set(err, ES_UNAVAILABLE, "", "PostgreSQL unavailable (%s): not connected", what);
    PGresult *r = PQexec(s->pg, sql);
    int rc = PQresultStatus(r) == PGRES_COMMAND_OK ? ES_OK : es_pg_session_fail(s, r, what, err);
    PQclear(r);
    return rc;
}

void es_pg_session_rollback(es_pg_session *s, const char *what)
{
    if (!s->pg || PQstatus(s->pg) != CONNECTION_OK) return;
    es_error err = {0};
    if (es_pg_session_exec(s, "ROLLBACK", what, &err) != ES_OK) {
        es_log(ES_LOG_WARN, s->app, NULL, "%s", err.message);
        s->bad = 1;
    }
}

static uint64_t fnv(const char *p)
{
    uint64_t h = 1469598103934665603ull;
    for (; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ull;
    return h;
}

const char *es_pg_session_stmt(es_pg_session *s, const char *sql, int nparams, es_error *err, int *rc)
{
    uint64_t h = fnv(sql);
    for (size_t i = 0; i < s->n_stmts; i++)
        if (s->stmts[i].hash == h && !strcmp(s->stmts[i].sql, sql)) return s->stmts[i].name;
    if (!s->pg) {
        *rc = es_error_set(err, ES_UNAVAILABLE, "", "PostgreSQL unavailable (prepare): not connected");
        return NULL;
    }
    char name[24];
    snprintf(name, sizeof name, "es_s_%u", s->next_id++);
    PGresult *r = PQprepare(s->pg, name, sql, nparams, NULL);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        *rc = es_pg_session_fail(s, r, "prepare", err);
        PQclear(r);
        return NULL;
    }
    PQclear(r);
    if (s->n_stmts == s->cap_stmts) {
        s->cap_stmts = s->cap_stmts ? s->cap_stmts * 2 : 16;
        s->stmts = es_xrealloc(s->stmts, s->cap_stmts * sizeof *s->stmts);
    }
    stmt *st = &s->stmts[s->n_stmts++];
    st->sql = es_xstrdup(sql);
    st->hash = h;
    memcpy(st->name, name, sizeof name);
    return st->name;
}
