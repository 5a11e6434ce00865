/* Test support: PostgreSQL per test program, migration, the counter aggregate. */
#include "support.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "es/arena.h"
#include "es/clock.h"

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "test setup: %s: %s\n", what, detail ? detail : "");
    exit(1);
}

/* A port free right now, away from the range pg.sh scans from (55432 up), where the other
 * clusters on this shared machine live: a cluster keeps its port across stop/start, and
 * another cluster created while ours is stopped must not take it. */
static int free_port(void)
{
    unsigned seed = (unsigned)getpid() ^ (unsigned)time(NULL);
    for (int i = 0; i < 200; i++) {
        int port = 57000 + (int)(rand_r(&seed) % 7000);
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        int ok = fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
        if (fd >= 0) close(fd);
        if (ok) return port;
    }
    die("no free port", "");
    return 0;
}

/* Runs scripts/pg.sh; returns 0 on success. */
static int pg_sh_try(pgt *t, const char *cmd, int want_conninfo, int port)
{
    char line[2048];
    if (port) snprintf(line, sizeof line, "%s %s %s %d", PG_SH, cmd, t->dir, port);
    else snprintf(line, sizeof line, "%s %s %s", PG_SH, cmd, t->dir);
    FILE *f = popen(line, "r");
    if (!f) die("popen", line);
    char out[2048] = "";
    while (fgets(line, sizeof line, f))
        if (strstr(line, "host=")) snprintf(out, sizeof out, "%s", line);
    int rc = pclose(f);
    if (rc != 0) return -1;
    if (want_conninfo) {
        out[strcspn(out, "\n")] = 0;
        if (!out[0]) return -1;
        snprintf(t->conninfo, sizeof t->conninfo, "%s", out);
    }
    return 0;
}

static void pg_sh(pgt *t, const char *cmd, int want_conninfo)
{
    if (pg_sh_try(t, cmd, want_conninfo, 0) != 0) die("pg.sh failed", cmd);
}

void pgt_start(pgt *t, const char *name)
{
    snprintf(t->dir, sizeof t->dir, "%s/pg-%s", PG_BASE, name);
    /* A fresh cluster each run, on a port free now (a cluster keeps the port it was created
     * with; kept clusters could share one). Another cluster created at the same moment on this
     * shared machine may still take it first: then start afresh on another. */
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "%s stop %s >/dev/null 2>&1; rm -rf %s", PG_SH, t->dir, t->dir);
    int started = 0;
    for (int attempt = 0; attempt < 4 && !started; attempt++) {
        if (system(cmd) != 0) die("cannot remove", t->dir);
        started = pg_sh_try(t, "start", 1, free_port()) == 0;
    }
    if (!started) die("pg.sh start failed 4 times", t->dir);
    pgt_reset(t);
}

void pgt_reset(pgt *t)
{
    pgt_exec(t, "SET client_min_messages = warning; DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public");
    es_pg_pool_config pc = {.conninfo = t->conninfo, .size = 1};
    es_error err = {0};
    es_pg_pool *pool = es_pg_pool_new(&pc, &err);
    if (!pool || pgt_migrate(pool, NULL, &err) != ES_OK) die("migrate", err.message);
    es_pg_pool_free(pool);
}

void pgt_stop(pgt *t) { pg_sh(t, "stop", 0); }
void pgt_restart(pgt *t) { pg_sh(t, "restart", 0); }
void pgt_resume(pgt *t) { pg_sh(t, "start", 0); }

static PGresult *run(pgt *t, PGconn **pg, const char *sql)
{
    *pg = PQconnectdb(t->conninfo);
    if (PQstatus(*pg) != CONNECTION_OK) die("connect", PQerrorMessage(*pg));
    PGresult *r = PQexec(*pg, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) die(sql, PQerrorMessage(*pg));
    return r;
}

long long pgt_scalar(pgt *t, const char *sql)
{
    PGconn *pg;
    PGresult *r = run(t, &pg, sql);
    long long v = PQntuples(r) > 0 && !PQgetisnull(r, 0, 0) ? atoll(PQgetvalue(r, 0, 0)) : 0;
    PQclear(r);
    PQfinish(pg);
    return v;
}

void pgt_exec(pgt *t, const char *sql)
{
    PGconn *pg;
    PQclear(run(t, &pg, sql));
    PQfinish(pg);
}

int pgt_migrate(es_pg_pool *pool, size_t *applied, es_error *err)
{
    es_migration m = {"0001_event_store", test_event_store_sql};
    return es_migrate(pool, &m, 1, applied, err);
}

double now_s(void) { return (double)es_mono_us() / 1e6; }

/* ---- the counter aggregate ---- */

int64_t counter_value(const ProtobufCMessage *state)
{
    return state ? ((const Google__Protobuf__Int64Value *)state)->value : -1;
}

static int apply_created(ProtobufCMessage *state, const ProtobufCMessage *event)
{
    ((Google__Protobuf__Int64Value *)state)->value = ((const Google__Protobuf__Int64Value *)event)->value;
    return ES_OK;
}

static int apply_added(ProtobufCMessage *state, const ProtobufCMessage *event)
{
    ((Google__Protobuf__Int64Value *)state)->value += ((const Google__Protobuf__Int64Value *)event)->value;
    return ES_OK;
}

const es_event_def counter_created = {
    "Created", "google.protobuf.Int64Value", 1, 1, &google__protobuf__int64_value__descriptor, apply_created,
    &counter_aggregate,
};
const es_event_def counter_added = {
    "Added", "google.protobuf.Int64Value", 1, 0, &google__protobuf__int64_value__descriptor, apply_added,
    &counter_aggregate,
};
static const es_event_def *const counter_events[] = {&counter_created, &counter_added};
const es_aggregate_def counter_aggregate = {
    "counter", &google__protobuf__int64_value__descriptor, "id", 0, counter_events, 2, "counter.events",
};

static const Google__Protobuf__FieldMask *fm(const ProtobufCMessage *m)
{
    return (const Google__Protobuf__FieldMask *)m;
}

static const char *arg(const ProtobufCMessage *m, size_t i)
{
    return fm(m)->n_paths > i && fm(m)->paths[i] ? fm(m)->paths[i] : "";
}

static const char *target(const ProtobufCMessage *m) { return arg(m, 0); }

static int expected(const ProtobufCMessage *m, int64_t *out)
{
    if (!arg(m, 2)[0]) return 0;
    *out = atoll(arg(m, 2));
    return 1;
}

static int validate(const ProtobufCMessage *m, es_error *err)
{
    if (fm(m)->n_paths < 2 || !arg(m, 1)[0])
        return es_error_set(err, ES_INVALID_ARGUMENT, "paths[1]", "an amount is required");
    return ES_OK;
}

static ProtobufCMessage *int64_event(es_arena *a, int64_t v)
{
    Google__Protobuf__Int64Value *e = es_arena_alloc(a, sizeof *e);
    google__protobuf__int64_value__init(e);
    e->value = v;
    return &e->base;
}

static int decide_create(const es_decide_ctx *ctx, const ProtobufCMessage *state, const ProtobufCMessage *cmd,
                         es_decision *out, es_error *err)
{
    return es_decision_emit(out, &counter_created, int64_event(ctx->arena, atoll(arg(cmd, 1))));
}

static int decide_add(const es_decide_ctx *ctx, const ProtobufCMessage *state, const ProtobufCMessage *cmd,
                      es_decision *out, es_error *err)
{
    int64_t delta = atoll(arg(cmd, 1));
    if (delta == 0) return ES_OK;
    if (counter_value(state) + delta < 0)
        return es_error_set(err, ES_FAILED_PRECONDITION, "paths[1]", "the count cannot go below 0");
    return es_decision_emit(out, &counter_added, int64_event(ctx->arena, delta));
}

static int decide_many(const es_decide_ctx *ctx, const ProtobufCMessage *state, const ProtobufCMessage *cmd,
                       es_decision *out, es_error *err)
{
    int k = atoi(arg(cmd, 1));
    for (int i = 0; i < k; i++) {
        int rc = es_decision_emit(out, &counter_added, int64_event(ctx->arena, 1));
        if (rc) return es_error_set(err, rc, "paths[1]", "too many events");
    }
    return ES_OK;
}

static int decide_rogue(const es_decide_ctx *ctx, const ProtobufCMessage *state, const ProtobufCMessage *cmd,
                        es_decision *out, es_error *err)
{
    return es_decision_emit(out, &counter_created, int64_event(ctx->arena, 1));
}

static const es_event_def *const emits_created[] = {&counter_created};
static const es_event_def *const emits_added[] = {&counter_added};

const es_command_def counter_create = {
    "CreateCounter", &google__protobuf__field_mask__descriptor, &counter_aggregate, 1, target, NULL, expected,
    validate, NULL, decide_create, emits_created, 1,
};
const es_command_def counter_add = {
    "AddToCounter", &google__protobuf__field_mask__descriptor, &counter_aggregate, 0, target, NULL, expected,
    validate, NULL, decide_add, emits_added, 1,
};
const es_command_def counter_add_many = {
    "AddMany", &google__protobuf__field_mask__descriptor, &counter_aggregate, 0, target, NULL, NULL,
    validate, NULL, decide_many, emits_added, 1,
};
const es_command_def counter_rogue = {
    "Rogue", &google__protobuf__field_mask__descriptor, &counter_aggregate, 0, target, NULL, NULL,
    NULL, NULL, decide_rogue, emits_added, 1,
};

const ProtobufCMessage *counter_cmd_make(counter_cmd *c, const char *a0, const char *a1, const char *a2)
{
    google__protobuf__field_mask__init(&c->msg);
    const char *args[3] = {a0, a1, a2};
    size_t n = 0;
    for (size_t i = 0; i < 3 && args[i]; i++, n++) {
        snprintf(c->buf[i], sizeof c->buf[i], "%s", args[i]);
        c->paths[i] = c->buf[i];
    }
    c->msg.n_paths = n;
    c->msg.paths = c->paths;
    return &c->msg.base;
}
