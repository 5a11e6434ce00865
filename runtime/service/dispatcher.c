/* Worker-pool dispatcher: see es/dispatcher.h. */
#define _GNU_SOURCE /* pthread_setname_np */
#include "es/clock.h"
#include "es/dispatcher.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "es/log.h"
#include "es/metrics.h"
#include "es/store.h"
#include "es/uuid.h"
#include "es/waiters.h"
#include "idempotency.h"

#define MAX_METHODS 128
/* run_query's "the call is parked": not an es_status (those are 0 or negative). */
#define PARKED 1

/* Per method and transport (0 http, 1 grpc, 2 other): answers by code and latency. */
typedef struct method_stats {
    const es_method_def *m;
    void *query_app;                 /* es_query_ctx.app of its queries */
    atomic_uint_fast64_t by_code[3][17];
    es_histogram latency;
} method_stats;

typedef struct dispatcher {
    es_dispatcher base;              /* first: the transports hold an es_dispatcher * */
    es_dispatcher_config cfg;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    es_call **ring;
    size_t cap, head, count;
    int stopping;
    pthread_t *threads;
    size_t n_threads;
    es_dispatcher_stats stats;
    method_stats *methods;
    size_t n_methods;
    es_waiters *waiters;             /* queries parked until their data arrives */
    es_call *rerun_head, *rerun_tail; /* fired parked queries, in order (dispatch.next) */
    size_t reruns_running, reruns_max;
    int closing_waits;               /* set at free: re-runs answer instead of parking */
    size_t direct_max;               /* commands decided on the transport's thread, in flight at most */
    size_t direct_running;           /* under lock */
    uint64_t direct_total, direct_rerun; /* under lock: taken directly; conflicts run again by a worker */
    pthread_cond_t direct_idle;      /* signalled when direct_running drops to 0 */
} dispatcher;

static method_stats *stats_of(dispatcher *d, const es_method_def *m)
{
    for (size_t i = 0; i < d->n_methods; i++)
        if (d->methods[i].m == m)
            return &d->methods[i];
    return NULL;
}

static int transport_index(const es_call *call)
{
    if (!call->transport)
        return 2;
    return strcmp(call->transport, "http") == 0 ? 0 : strcmp(call->transport, "grpc") == 0 ? 1 : 2;
}

static void set_string(ProtobufCMessage *m, const char *name, const char *v, es_arena *a)
{
    const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(m->descriptor, name);
    if (f && f->type == PROTOBUF_C_TYPE_STRING && f->label != PROTOBUF_C_LABEL_REPEATED)
        *(char **)((char *)m + f->offset) = es_arena_strdup(a, v);
}

ProtobufCMessage *es_command_answer(const ProtobufCMessageDescriptor *d, const es_command_def *def,
                                    const es_command_result *r, es_arena *a)
{
    ProtobufCMessage *m = es_arena_alloc(a, d->sizeof_message);
    protobuf_c_message_init(d, m);
    set_string(m, def->aggregate->id_field, r->stream_id, a);
    set_string(m, "stream_id", r->stream_id, a);
    const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(d, "version");
    if (f && f->type == PROTOBUF_C_TYPE_INT64 && f->label != PROTOBUF_C_LABEL_REPEATED)
        *(int64_t *)((char *)m + f->offset) = r->version;
    f = protobuf_c_message_descriptor_get_field_by_name(d, "replayed");
    if (f && f->type == PROTOBUF_C_TYPE_BOOL && f->label != PROTOBUF_C_LABEL_REPEATED)
        *(protobuf_c_boolean *)((char *)m + f->offset) = r->replayed != 0;
    f = protobuf_c_message_descriptor_get_field_by_name(d, "event_ids");
    if (f && f->type == PROTOBUF_C_TYPE_STRING && f->label == PROTOBUF_C_LABEL_REPEATED && r->n_events) {
        char **ids = es_arena_alloc(a, r->n_events * sizeof *ids);
        for (size_t i = 0; i < r->n_events; i++)
            ids[i] = es_arena_strdup(a, r->event_ids[i]);
        *(size_t *)((char *)m + f->quantifier_offset) = r->n_events;
        *(char ***)((char *)m + f->offset) = ids;
    }
    return m;
}

/* Runs a query's handler: its answer, or PARKED when the handler asked to wait and the call is
 * now in the waiters set (from then on another thread may hold it: the caller must not touch
 * it). A parked call comes back through the re-run list and runs here again, without the checks
 * before it (authorization, validation) that its first run passed. */
static int run_query(dispatcher *d, es_call *call, es_error *err)
{
    const es_method_def *m = call->method;
    int64_t now = es_mono_us() / 1000;
    const method_stats *ms = stats_of(d, m);
    es_query_ctx q = {.arena = &call->arena, .actor = call->dispatch.actor,
                      .app = ms ? ms->query_app : d->cfg.query_app,
                      .first_run_ms = call->dispatch.first_us / 1000, .now_ms = now,
                      .can_wait = !__atomic_load_n(&d->closing_waits, __ATOMIC_RELAXED)};
    /* Taken before the handler reads: a commit landing between its read and the park below
     * makes the park run the query again instead of sleeping through the change. */
    uint64_t epoch = es_waiters_epoch(d->waiters);
    int runs = call->dispatch.runs++;
    ProtobufCMessage *out = NULL;
    int rc = m->query(&q, call->request, &out, err);
    if (rc != ES_OK)
        return rc;
    if (!q.wait.stream_id || !q.can_wait) {
        if (!out)
            return es_error_set(err, ES_INTERNAL, "", "%s answered nothing", m->name);
        call->response = out;
        return ES_OK;
    }
    const char *field = q.wait.field ? q.wait.field : "";
    if (q.wait.deadline_ms <= now) /* the handler must answer at its own deadline; never spin */
        return es_error_set(err, ES_DEADLINE_EXCEEDED, field, "%s: gave up waiting for %s", m->name, field);
    /* Re-checks back off (recheck, 2x, 4x, 8x): a flood of parked reads costs the read model a
     * bounded number of lookups a second while the commit wake-ups do the prompt work. */
    int64_t step = (int64_t)(d->cfg.recheck_ms > 0 ? d->cfg.recheck_ms : 50) << (runs < 3 ? runs : 3);
    /* Up to half a step later, spread by call: reads parked together do not re-check together. */
    step += (int64_t)((((uintptr_t)call >> 4) * 2654435761u + (unsigned)runs * 40503u) % (uint64_t)(step / 2 + 1));
    /* Set before the park: once parked, another thread may hold the call. */
    int again = call->dispatch.holds_slot;
    call->dispatch.holds_slot = 1;
    rc = es_waiters_park(d->waiters, call, q.wait.stream_id, now + step, q.wait.deadline_ms, epoch, again);
    if (rc == ES_OK)
        return PARKED;
    call->dispatch.holds_slot = again;
    if (rc == ES_RESOURCE_EXHAUSTED) {
        es_waiters_stats st;
        es_waiters_get_stats(d->waiters, &st);
        return es_error_set(err, rc, field,
                            "%s cannot be waited for now: %zu reads are waiting already, the most this server "
                            "holds; retry later", field, st.max);
    }
    return es_error_set(err, ES_ABORTED, field, "the service is stopping: %s cannot be waited for; retry", field);
}

/* A command's idempotency key, scoped and fingerprinted, in meta. */
typedef struct command_key {
    es_command_meta meta;
    char scoped[ES_UUID_STRLEN + 1];
    uint8_t fingerprint[32];
} command_key;

/* "The call is answered": a positive code, never an es_status. */
#define ANSWERED 2

/* Fills k for call's command. Returns ES_OK; an error; ANSWERED when a key of the release before
 * scoped keys already answered the call (call->response set); or, with may_block 0,
 * ES_PIPELINE_BLOCKING when finding that out may need a query. */
static int command_key_of(dispatcher *d, es_call *call, const char *actor, int may_block, command_key *k,
                          es_error *err)
{
    const es_method_def *m = call->method;
    const char *key = call->idempotency_key && call->idempotency_key[0] ? call->idempotency_key : NULL;
    const char *rid = m->command->request_id(call->request);
    if (key && rid[0] && strcmp(key, rid) != 0)
        return es_error_set(err, ES_INVALID_ARGUMENT, "request_id",
                            "request_id \"%s\" differs from the Idempotency-Key header \"%s\"", rid, key);
    const char *client_key = key ? key : rid[0] ? rid : NULL;
    memset(k, 0, sizeof *k);
    k->meta = (es_command_meta){.correlation_id = call->correlation_id, .actor = actor};
    if (!client_key)
        return ES_OK;
    if (strlen(client_key) > ES_IDEMPOTENCY_KEY_MAX)
        return es_error_set(err, ES_INVALID_ARGUMENT, key ? "idempotency_key" : "request_id",
                            "an idempotency key has at most %d characters", ES_IDEMPOTENCY_KEY_MAX);
    /* The key is the caller's: looked up with the principal and the method, and tied to the
     * request it first came with (docs/ARCHITECTURE.md, "idempotency"). */
    es__idem_scope(actor, m->grpc_path, client_key, k->scoped);
    es__idem_fingerprint(call->request, rid, &call->arena, k->fingerprint);
    k->meta.command_id = k->scoped;
    k->meta.request_hash = k->fingerprint;
    k->meta.request_hash_len = sizeof k->fingerprint;
    k->meta.retention_s = d->cfg.idempotency_retention_s > 0 ? d->cfg.idempotency_retention_s : 86400;
    es_store *store = es_pipeline_store(d->cfg.pipeline);
    if (!may_block && !es_store_legacy_keys_settled(store))
        return ES_PIPELINE_BLOCKING;
    /* A retry across the upgrade from the release that recorded the key itself. */
    es_append_result old;
    int lrc = es_store_find_legacy_command(store, client_key, actor, k->meta.retention_s, &old, err);
    const char *tid = m->command->target_id ? m->command->target_id(call->request) : NULL;
    if (lrc == ES_OK && (!tid || !tid[0] || !strcmp(tid, old.stream_id))) {
        es_command_result res = {.version = old.last_version, .replayed = 1, .attempts = 1};
        snprintf(res.stream_id, sizeof res.stream_id, "%s", old.stream_id);
        res.n_events = old.n_events < ES_DECISION_MAX ? old.n_events : ES_DECISION_MAX;
        res.first_version = res.n_events ? old.first_version : 0;
        for (size_t i = 0; i < res.n_events; i++)
            memcpy(res.event_ids[i], old.event_ids[i], sizeof res.event_ids[i]);
        call->response = es_command_answer(m->output, m->command, &res, &call->arena);
        return ANSWERED;
    }
    return lrc == ES_OK || lrc == ES_NOT_FOUND ? ES_OK : lrc;
}

/* Canonical ids, then the caller's identity and rights (*actor). */
static int admit(dispatcher *d, es_call *call, const char **actor, es_error *err)
{
    *actor = "";
    /* One identity per entity: ids are rewritten to their canonical spelling before the owner
     * check reads them, so that no other spelling can pass it and then match another row. */
    if (call->method->canonicalize)
        call->method->canonicalize(call->request);
    return d->cfg.authorize ? d->cfg.authorize(d->cfg.authorize_data, call, actor, err) : ES_OK;
}

static int run_call(dispatcher *d, es_call *call, es_error *err)
{
    const es_method_def *m = call->method;
    const char *actor;
    int rc;
    if ((rc = admit(d, call, &actor, err)) != ES_OK)
        return rc;
    if (m->command) {
        command_key k;
        if ((rc = command_key_of(d, call, actor, 1, &k, err)) != ES_OK)
            return rc == ANSWERED ? ES_OK : rc;
        es_command_result res;
        if ((rc = es_pipeline_execute(d->cfg.pipeline, m->command, call->request, &k.meta, &res, err)) != ES_OK)
            return rc;
        call->response = es_command_answer(m->output, m->command, &res, &call->arena);
        return ES_OK;
    }
    if (m->validate && (rc = m->validate(call->request, err)) != ES_OK)
        return rc;
    if (!m->query)
        return es_error_set(err, ES_UNIMPLEMENTED, "", "%s has no handler", m->name);
    call->dispatch.actor = actor;
    return run_query(d, call, err);
}

/* 1 for the codes whose message comes from inside the server (PostgreSQL's errors with
 * SQLSTATEs, constraint and statement names, stream internals): clients get a generic text. */
static int server_fault(int rc)
{
    return rc == ES_INTERNAL || rc == ES_UNAVAILABLE || rc == ES_DATA_LOSS || rc == ES_UNKNOWN;
}

/* Logs a server fault in full at error level and replaces what the client will see with a
 * generic message naming the request, so that an operator can find the log line: the call's
 * correlation id, or a fresh UUID when the client sent none (logged as the correlation id). */
static void conceal(es_call *call, int rc, es_error *err, int64_t took_us)
{
    char fresh[ES_UUID_STRLEN + 1];
    const char *id = call->correlation_id;
    if (!id || !id[0]) {
        es_uuid_v4(fresh);
        id = fresh;
    }
    es_log(ES_LOG_ERROR, "dispatcher", id, "%s via %s: %s after %lld us: %s%s%s", call->method->name,
           call->transport ? call->transport : "?", es_strerror(rc), (long long)took_us,
           err->message[0] ? err->message : "(no message)", err->field[0] ? " field=" : "", err->field);
    if (rc == ES_UNAVAILABLE && !strcmp(err->field, "event_type")) /* pipeline.c's unknown_event */
        es_error_set(err, rc, "", "the stream holds an event of a newer release than this instance's; retry "
                                  "(request %s)", id);
    else if (rc == ES_UNAVAILABLE)
        es_error_set(err, rc, "", "PostgreSQL is unavailable; retry (request %s)", id);
    else
        es_error_set(err, rc, "", "internal error; see the server log for request %s", id);
}

static void finish(dispatcher *d, es_call *call, int rc, const es_error *err)
{
    call->status = rc;
    if (rc != ES_OK) {
        call->err = *err;
        call->err.code = rc;
        if (!call->err.message[0])
            es_error_set(&call->err, rc, "", "%s", es_strerror(rc));
        call->response = NULL;
    }
    /* Counted without the queue's lock: every answer would otherwise take it once more, and
     * the workers and transports already meet on it for each call. */
    __atomic_add_fetch(&d->stats.calls, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&d->stats.by_code[es_grpc_code(rc)], 1, __ATOMIC_RELAXED);
    call->done(call);
}

/* Answers a call a worker took: logs, per-method counters and latency (from its first run, a
 * parked query's waiting included), then done(). */
static void complete(dispatcher *d, es_call *call, int rc, es_error *err)
{
    if (call->dispatch.holds_slot)
        es_waiters_release(d->waiters);
    int64_t took = es_mono_us() - call->dispatch.first_us;
    method_stats *ms = stats_of(d, call->method);
    if (server_fault(rc))
        conceal(call, rc, err, took);
    else if (es_log_enabled(ES_LOG_DEBUG))
        es_log(ES_LOG_DEBUG, "dispatcher", call->correlation_id, "%s via %s: %s in %lld us", call->method->name,
               call->transport ? call->transport : "?", es_strerror(rc), (long long)took);
    if (ms) {
        es_histogram_observe_us(&ms->latency, took);
        atomic_fetch_add(&ms->by_code[transport_index(call)][es_grpc_code(rc)], 1);
    }
    finish(d, call, rc, err);
}

static void *worker(void *arg)
{
    dispatcher *d = arg;
    pthread_setname_np(pthread_self(), "es-worker");
    for (;;) {
        es_call *call = NULL;
        int rerun = 0;
        pthread_mutex_lock(&d->lock);
        for (;;) {
            /* New calls first; fired parked queries only reruns_max at a time, so that a crowd
             * of them fired together (their common deadline) holds a few workers and pool
             * connections, never all of them. */
            if (d->count) {
                call = d->ring[d->head];
                d->head = (d->head + 1) % d->cap;
                d->count--;
                break;
            }
            if (d->rerun_head && d->reruns_running < d->reruns_max) {
                call = d->rerun_head;
                if (!(d->rerun_head = call->dispatch.next))
                    d->rerun_tail = NULL;
                d->reruns_running++;
                rerun = 1;
                break;
            }
            if (d->stopping && !d->rerun_head) {
                pthread_mutex_unlock(&d->lock);
                return NULL;
            }
            pthread_cond_wait(&d->cond, &d->lock);
        }
        pthread_mutex_unlock(&d->lock);
        es_error err = {0};
        int rc;
        if (!rerun) {
            call->dispatch.first_us = es_mono_us();
            rc = run_call(d, call, &err);
        } else {
            rc = run_query(d, call, &err);
            pthread_mutex_lock(&d->lock);
            d->reruns_running--;
            if (d->rerun_head)
                pthread_cond_signal(&d->cond);
            pthread_mutex_unlock(&d->lock);
        }
        if (rc == PARKED)
            continue;
        complete(d, call, rc, &err);
    }
}

/* es_waiters_fire_fn: a parked query joins the re-run list, to run again on a worker. The list
 * needs no bound of its own: each call in it was admitted by a transport and parked once. */
static void refire(void *data, void *item, es_wake_reason why)
{
    (void)why;
    dispatcher *d = data;
    es_call *call = item;
    call->dispatch.next = NULL;
    pthread_mutex_lock(&d->lock);
    if (d->rerun_tail)
        d->rerun_tail->dispatch.next = call;
    else
        d->rerun_head = call;
    d->rerun_tail = call;
    pthread_cond_signal(&d->cond);
    pthread_mutex_unlock(&d->lock);
}

void es_dispatcher_wake(es_dispatcher *base, const char *const *stream_ids, size_t n)
{
    dispatcher *d = (dispatcher *)base;
    if (d && n)
        es_waiters_wake(d->waiters, stream_ids, n);
}

/* Queues call for a worker, or answers it at once when the queue is full or the service stops. */
static void enqueue(dispatcher *d, es_call *call)
{
    pthread_mutex_lock(&d->lock);
    if (d->count == d->cap || d->stopping) {
        d->stats.rejected++;
        pthread_mutex_unlock(&d->lock);
        es_error err;
        es_error_set(&err, d->stopping ? ES_UNAVAILABLE : ES_RESOURCE_EXHAUSTED, "",
                     d->stopping ? "the service is stopping" : "too many requests in flight; retry later");
        finish(d, call, err.code, &err);
        return;
    }
    d->ring[(d->head + d->count) % d->cap] = call;
    d->count++;
    pthread_cond_signal(&d->cond);
    pthread_mutex_unlock(&d->lock);
}

/* A direct attempt is over (taken: answered or run again without a worker's first try; rerun:
 * after a conflict): one fewer in flight (es_dispatcher_free waits for none). */
static void direct_end(dispatcher *d, int taken, int rerun)
{
    pthread_mutex_lock(&d->lock);
    d->direct_total += taken != 0;
    d->direct_rerun += rerun != 0;
    if (--d->direct_running == 0)
        pthread_cond_broadcast(&d->direct_idle);
    pthread_mutex_unlock(&d->lock);
}

/* es_pipeline_done_fn of a direct command, on the committer's thread. */
static void direct_done(void *data, int status, const es_command_result *res, const es_error *err)
{
    es_call *call = data;
    dispatcher *d = call->dispatch.owner;
    call->dispatch.owner = NULL;
    if (status == ES_ABORTED) {
        /* A version conflict on a stream assigned as new: run the command the blocking way
         * (load, decide again, retry), as es_pipeline_execute does after a conflict. */
        enqueue(d, call);
    } else {
        es_error e = {0};
        if (status == ES_OK)
            call->response = es_command_answer(call->method->output, call->method->command, res, &call->arena);
        else if (err)
            e = *err;
        complete(d, call, status, &e);
    }
    direct_end(d, 1, status == ES_ABORTED);
}

/* A creating command that needs no read, decided here on the transport's thread with its
 * append queued for the committer, which answers it (direct_done): no worker takes it and
 * wakes twice for it. 1 when the call is taken care of; 0 when it needs a worker. */
static int try_direct(dispatcher *d, es_call *call)
{
    const es_method_def *m = call->method;
    if (d->cfg.direct_off || !m->command || !m->command->creates)
        return 0;
    for (size_t i = 0; i < m->n_access; i++)
        if (m->access[i].kind == ES_ACCESS_OWNER)   /* the owner check reads the stream */
            return 0;
    pthread_mutex_lock(&d->lock);
    int room = !d->stopping && d->direct_running < d->direct_max;
    if (room)
        d->direct_running++;
    pthread_mutex_unlock(&d->lock);
    if (!room)
        return 0;
    call->dispatch.first_us = es_mono_us();
    call->dispatch.owner = d;
    es_error err = {0};
    const char *actor;
    command_key k;
    int rc = admit(d, call, &actor, &err);
    if (rc == ES_OK && (rc = command_key_of(d, call, actor, 0, &k, &err)) == ES_OK) {
        rc = es_pipeline_execute_async(d->cfg.pipeline, m->command, call->request, &k.meta, direct_done, call, &err);
        if (rc == ES_OK)
            return 1;              /* the committer holds the call now */
    }
    call->dispatch.owner = NULL;
    if (rc == ES_PIPELINE_BLOCKING) {
        direct_end(d, 0, 0);
        memset(&call->dispatch, 0, sizeof call->dispatch);
        return 0;
    }
    if (rc == ANSWERED)
        rc = ES_OK;
    complete(d, call, rc, &err);
    direct_end(d, 1, 0);
    return 1;
}

static void submit(es_dispatcher *base, es_call *call)
{
    dispatcher *d = (dispatcher *)base;
    memset(&call->dispatch, 0, sizeof call->dispatch);
    if (!try_direct(d, call))
        enqueue(d, call);
}

es_dispatcher *es_dispatcher_new(const es_dispatcher_config *cfg, es_error *err)
{
    dispatcher *d = es_xcalloc(1, sizeof *d);
    d->cfg = *cfg;
    d->base.submit = submit;
    d->base.json = cfg->json;
    d->base.data = NULL;
    d->cap = cfg->queue ? cfg->queue : 4096;
    d->methods = es_xcalloc(MAX_METHODS, sizeof *d->methods);
    for (size_t i = 0; i < cfg->n_services; i++)
        for (size_t k = 0; k < cfg->services[i]->n_methods && d->n_methods < MAX_METHODS; k++) {
            d->methods[d->n_methods].m = cfg->services[i]->methods[k];
            d->methods[d->n_methods++].query_app =
                cfg->query_apps && cfg->query_apps[i] ? cfg->query_apps[i] : cfg->query_app;
        }
    d->ring = es_xcalloc(d->cap, sizeof *d->ring);
    d->reruns_max = cfg->max_reruns ? cfg->max_reruns : 4;
    d->direct_max = cfg->direct_commands ? cfg->direct_commands : cfg->workers ? cfg->workers : 64;
    pthread_cond_init(&d->direct_idle, NULL);
    es_waiters_config wc = {.max = cfg->max_waiting, .fire = refire, .data = d};
    d->waiters = es_waiters_new(&wc);
    pthread_mutex_init(&d->lock, NULL);
    pthread_cond_init(&d->cond, NULL);
    size_t n = cfg->workers ? cfg->workers : 64;
    d->threads = es_xcalloc(n, sizeof *d->threads);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 512 * 1024);
    for (size_t i = 0; i < n; i++) {
        if (pthread_create(&d->threads[i], &attr, worker, d) != 0) {
            es_error_set(err, ES_RESOURCE_EXHAUSTED, "workers", "cannot start worker thread %zu", i);
            break;
        }
        d->n_threads++;
    }
    pthread_attr_destroy(&attr);
    if (d->n_threads == 0) {
        es_dispatcher_free(&d->base);
        return NULL;
    }
    return &d->base;
}

void es_dispatcher_free(es_dispatcher *base)
{
    if (!base)
        return;
    dispatcher *d = (dispatcher *)base;
    /* Parked queries first, while the workers still run: each runs once more and answers
     * (ABORTED naming the field it waited for, or its data when it arrived). */
    __atomic_store_n(&d->closing_waits, 1, __ATOMIC_RELAXED);
    es_waiters_close(d->waiters);
    pthread_mutex_lock(&d->lock);
    d->stopping = 1;
    pthread_cond_broadcast(&d->cond);
    /* Direct commands end on their committer (which outlives the dispatcher): wait for them. */
    while (d->direct_running)
        pthread_cond_wait(&d->direct_idle, &d->lock);
    pthread_mutex_unlock(&d->lock);
    for (size_t i = 0; i < d->n_threads; i++)
        pthread_join(d->threads[i], NULL);
    pthread_mutex_destroy(&d->lock);
    pthread_cond_destroy(&d->cond);
    pthread_cond_destroy(&d->direct_idle);
    es_waiters_free(d->waiters);
    free(d->threads);
    free(d->ring);
    free(d->methods);
    free(d);
}

void es_dispatcher_get_stats(es_dispatcher *base, es_dispatcher_stats *out)
{
    dispatcher *d = (dispatcher *)base;
    pthread_mutex_lock(&d->lock);
    out->rejected = d->stats.rejected;
    out->queued = d->count;
    pthread_mutex_unlock(&d->lock);
    out->calls = __atomic_load_n(&d->stats.calls, __ATOMIC_RELAXED);
    for (size_t i = 0; i < 17; i++)
        out->by_code[i] = __atomic_load_n(&d->stats.by_code[i], __ATOMIC_RELAXED);
}

void es_dispatcher_write_metrics(es_dispatcher *base, es_buf *out)
{
    dispatcher *d = (dispatcher *)base;
    static const char *const transports[3] = {"http", "grpc", "other"};
    char labels[256];
    es_metrics_family(out, "es_requests_total", "counter", "Calls answered by the service, by method, transport and gRPC code.");
    for (size_t i = 0; i < d->n_methods; i++)
        for (int t = 0; t < 3; t++)
            for (int c = 0; c < 17; c++) {
                uint64_t v = atomic_load(&d->methods[i].by_code[t][c]);
                if (!v)
                    continue;
                snprintf(labels, sizeof labels, "method=\"%s\",transport=\"%s\",code=\"%s\"", d->methods[i].m->name,
                         transports[t], es_strerror(-c));
                es_metrics_sample(out, "es_requests_total", labels, (double)v);
            }
    es_metrics_family(out, "es_request_duration_seconds", "histogram",
                      "Time from a worker taking a call to its answer (commands include group commit).");
    for (size_t i = 0; i < d->n_methods; i++) {
        if (!atomic_load(&d->methods[i].latency.count))
            continue;
        snprintf(labels, sizeof labels, "method=\"%s\"", d->methods[i].m->name);
        es_metrics_histogram(out, "es_request_duration_seconds", labels, &d->methods[i].latency);
    }
    es_dispatcher_stats st;
    es_dispatcher_get_stats(base, &st);
    es_metrics_family(out, "es_dispatcher_queued", "gauge", "Calls waiting for a worker.");
    es_metrics_sample(out, "es_dispatcher_queued", "", (double)st.queued);
    es_metrics_family(out, "es_dispatcher_rejected_total", "counter", "Calls refused because the queue was full.");
    es_metrics_sample(out, "es_dispatcher_rejected_total", "", (double)st.rejected);
    es_waiters_write_metrics(d->waiters, out);
    pthread_mutex_lock(&d->lock);
    size_t direct_running = d->direct_running;
    uint64_t direct_total = d->direct_total, direct_rerun = d->direct_rerun;
    size_t running = d->reruns_running, pending = 0;
    for (es_call *c = d->rerun_head; c; c = c->dispatch.next)
        pending++;
    pthread_mutex_unlock(&d->lock);
    es_metrics_family(out, "es_waiting_reads_rerunning", "gauge",
                      "Fired waiting reads running again on a worker now (at most max-waiting-read-reruns).");
    es_metrics_sample(out, "es_waiting_reads_rerunning", "", (double)running);
    es_metrics_family(out, "es_waiting_reads_rerun_queued", "gauge", "Fired waiting reads queued for a worker.");
    es_metrics_sample(out, "es_waiting_reads_rerun_queued", "", (double)pending);
    es_metrics_family(out, "es_direct_commands_total", "counter",
                      "Creating commands decided on the transport's thread and answered by the committer (direct-commands).");
    es_metrics_sample(out, "es_direct_commands_total", "", (double)direct_total);
    es_metrics_family(out, "es_direct_commands_rerun_total", "counter",
                      "Direct commands whose append met a version conflict, run again by a worker.");
    es_metrics_sample(out, "es_direct_commands_rerun_total", "", (double)direct_rerun);
    es_metrics_family(out, "es_direct_commands_running", "gauge", "Direct commands in flight (at most direct-commands).");
    es_metrics_sample(out, "es_direct_commands_running", "", (double)direct_running);
}
