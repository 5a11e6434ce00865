/* The command pipeline (see es/pipeline.h): load, decide, append, retry on conflict. */
#include "es/pipeline.h"
#include "es/metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "es/arena.h"
#include "es/clock.h"
#include "es/uuid.h"
#include "state_cache.h"

struct es_pipeline {
    es_pg_pool *pool;
    int own_pool;
    es_store *store;
    es__state_cache *cache;        /* NULL when disabled */
    int snapshot_every;
    unsigned max_retries;
    const es_json_registry *json;  /* NULL: no payload_json */
    const es_upcaster *upcasters;
    size_t n_upcasters;
    es_pipeline_stats stats;       /* updated with atomic adds */
};

/* How long a command waits for another command on the same stream before going ahead
 * unserialised (optimistic concurrency still holds then). */
#define CACHE_WAIT_MS 2000

#define STAT_ADD(p, field) __atomic_add_fetch(&(p)->stats.field, 1, __ATOMIC_RELAXED)

es_pipeline *es_pipeline_new(const es_pipeline_config *cfg, es_error *err)
{
    es_pipeline *p = es_xcalloc(1, sizeof *p);
    es_pipeline_config none = {0};
    if (!cfg) cfg = &none;
    p->pool = cfg->pool;
    if (!p->pool) {
        /* Each committer keeps one connection for itself; loads need at least one more. */
        size_t committers = cfg->committers ? cfg->committers : 1, size = cfg->pool_size ? cfg->pool_size : 8;
        if (size < committers + 1) size = committers + 1;
        es_pg_pool_config pc = {.conninfo = cfg->conninfo, .size = size};
        p->pool = es_pg_pool_new(&pc, err);
        if (!p->pool) goto fail;
        p->own_pool = 1;
    }
    es_store_config sc = {.max_batch = cfg->max_batch, .committers = cfg->committers};
    p->store = es_store_new(p->pool, &sc, err);
    if (!p->store) goto fail;
    if (!cfg->cache_disabled) p->cache = es__state_cache_new(cfg->cache_size ? cfg->cache_size : 10000);
    p->snapshot_every = cfg->snapshot_every;
    p->max_retries = cfg->max_retries ? cfg->max_retries : 10;
    p->json = cfg->json;
    p->upcasters = cfg->upcasters;
    p->n_upcasters = cfg->n_upcasters;
    return p;
fail:
    es_pipeline_free(p);
    return NULL;
}

void es_pipeline_free(es_pipeline *p)
{
    if (!p) return;
    es_store_free(p->store);
    es__state_cache_free(p->cache);
    if (p->own_pool) es_pg_pool_free(p->pool);
    free(p);
}

es_store *es_pipeline_store(es_pipeline *p) { return p->store; }
es_pg_pool *es_pipeline_pool(es_pipeline *p) { return p->pool; }

void es_pipeline_get_stats(es_pipeline *p, es_pipeline_stats *out)
{
    out->executed = __atomic_load_n(&p->stats.executed, __ATOMIC_RELAXED);
    out->retries = __atomic_load_n(&p->stats.retries, __ATOMIC_RELAXED);
    out->cache_hits = __atomic_load_n(&p->stats.cache_hits, __ATOMIC_RELAXED);
    out->loads = __atomic_load_n(&p->stats.loads, __ATOMIC_RELAXED);
    out->snapshots = __atomic_load_n(&p->stats.snapshots, __ATOMIC_RELAXED);
}

/* An empty state of the aggregate, on the heap (freed with free_unpacked(NULL)). */
static ProtobufCMessage *new_state(const es_aggregate_def *agg)
{
    ProtobufCMessage *m = es_xmalloc(agg->state_descriptor->sizeof_message);
    agg->state_descriptor->message_init(m);
    return m;
}

static int has_nul_escape(const char *s, size_t len)
{
    for (size_t i = 0; i + 6 <= len; i++)
        if (s[i] == '\\' && memcmp(s + i, "\\u0000", 6) == 0)
            return 1;
    return 0;
}

/* The event as proto3 JSON text in the arena, for es_events.payload_json; NULL when it has no
 * JSON form or may hold a U+0000 (jsonb refuses it; the check is conservative). Never fails the command: the protobuf payload
 * is the record, the JSON a convenience for SQL readers. */
static const char *event_json(const es_json_registry *r, const ProtobufCMessage *ev, es_arena *arena)
{
    es_buf b;
    es_error err = {0};
    const char *out = NULL;
    es_buf_init(&b);
    if (es_json_encode(r, ev, NULL, &b, &err) == ES_OK && !has_nul_escape(b.data, b.len)) {
        char *t = es_arena_alloc(arena, b.len + 1);
        memcpy(t, b.data, b.len);
        t[b.len] = '\0';
        out = t;
    }
    es_buf_free(&b);
    return out;
}

static int snapshot_interval(const es_pipeline *p, const es_aggregate_def *agg)
{
    if (p->snapshot_every < 0) return 0;
    if (p->snapshot_every > 0) return p->snapshot_every;
    return agg->snapshot_every ? (int)agg->snapshot_every : 100;
}

/* ---- loading: snapshot + later events, folded ---- */

typedef struct fold {
    const es_pipeline *p;
    const es_aggregate_def *agg;
    ProtobufCMessage *state;
    es_arena arena;                /* decoded events; reset as it goes */
    size_t since_reset;
} fold;

static int fold_snapshot(const es_snapshot_record *snap, void *ctx, es_error *err)
{
    fold *f = ctx;
    const ProtobufCMessageDescriptor *d = f->agg->state_descriptor;
    /* A snapshot of another state shape is ignored (replayed from events), never trusted. */
    if (!snap->stream_type || strcmp(snap->stream_type, f->agg->name) != 0 || !snap->schema_name ||
        strcmp(snap->schema_name, d->name) != 0 || !snap->schema_hash ||
        strcmp(snap->schema_hash, es_store_schema_hash(d)) != 0)
        return 1;
    ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, snap->state_len, snap->state);
    if (!m) return 1;
    f->state = m;
    return 0;
}

/* An event type this binary does not know. One of the aggregate's own package was written by a
 * newer release (event types are never removed: the plugin's breaking-change check refuses it):
 * during a rolling deploy this instance cannot load the stream, so it answers UNAVAILABLE (a
 * client retries, reaching an upgraded instance; a reactor waits, never dead-letters) instead of
 * reporting the stream damaged. Any other unknown type is DATA_LOSS. */
static int unknown_event(const es_aggregate_def *agg, const es_event_record *ev, es_error *err)
{
    const char *type = ev->event_type ? ev->event_type : "", *schema = ev->schema_name ? ev->schema_name : "";
    const char *pkg = agg->state_descriptor->package_name ? agg->state_descriptor->package_name : "";
    size_t n = strlen(pkg);
    if (n && strncmp(schema, pkg, n) == 0 && schema[n] == '.' && !strchr(schema + n + 1, '.'))
        return es_error_set(err, ES_UNAVAILABLE, "event_type",
                            "stream %s version %lld holds event type %s (%s), which a newer release wrote and "
                            "this instance does not know: an upgraded instance can act on it",
                            ev->stream_id, (long long)ev->version, type, schema);
    return es_error_set(err, ES_DATA_LOSS, "", "stream %s version %lld: unknown event type %s", ev->stream_id,
                        (long long)ev->version, type);
}

static int fold_event(const es_event_record *ev, void *ctx, es_error *err)
{
    fold *f = ctx;
    if (!ev->stream_type || strcmp(ev->stream_type, f->agg->name) != 0)
        return es_error_set(err, ES_FAILED_PRECONDITION, f->agg->id_field,
                            "stream %s is a %s, not a %s", ev->stream_id, ev->stream_type ? ev->stream_type : "?",
                            f->agg->name);
    const es_event_def *def = es_schema_find_event(f->agg, ev->event_type ? ev->event_type : "");
    if (!def)
        return unknown_event(f->agg, ev, err);
    if (f->since_reset >= 256) {
        es_arena_reset(&f->arena);
        f->since_reset = 0;
    }
    f->since_reset++;
    ProtobufCMessage *e = NULL;
    es_error derr = {0};
    int drc = es_event_decode(def, ev->schema_version, ev->payload, ev->payload_len, f->p->upcasters,
                              f->p->n_upcasters, &f->arena, &e, &derr);
    if (drc != ES_OK)
        return es_error_set(err, drc, derr.field, "stream %s version %lld: %s", ev->stream_id,
                            (long long)ev->version, derr.message[0] ? derr.message : es_strerror(drc));
    if (!f->state) f->state = new_state(f->agg);
    int rc = def->apply(f->state, e);
    if (rc)
        return es_error_set(err, ES_DATA_LOSS, "", "stream %s version %lld: %s does not apply (%s)",
                            ev->stream_id, (long long)ev->version, ev->event_type, es_strerror(rc));
    return ES_OK;
}

/* Loads stream_id from the store. *state is NULL and *version 0 when the stream is absent. */
static int load(es_pipeline *p, const es_aggregate_def *agg, const char *stream_id, ProtobufCMessage **state,
                int64_t *version, es_error *err)
{
    fold f = {.p = p, .agg = agg};
    es_arena_init(&f.arena);
    STAT_ADD(p, loads);
    int rc = es_store_load(p->store, stream_id, fold_snapshot, fold_event, &f, version, err);
    es_arena_free(&f.arena);
    if (rc || *version == 0) {
        protobuf_c_message_free_unpacked(f.state, NULL);
        f.state = NULL;
        if (rc) *version = 0;
    }
    *state = f.state;
    return rc;
}

int es_pipeline_load(es_pipeline *p, const es_aggregate_def *agg, const char *stream_id,
                     ProtobufCMessage **state_out, int64_t *version_out, es_error *err)
{
    *state_out = NULL;
    if (version_out) *version_out = 0;
    int64_t version = 0;
    ProtobufCMessage *state = NULL;
    int rc = load(p, agg, stream_id, &state, &version, err);
    if (rc) return rc;
    if (!state) return es_error_set(err, ES_NOT_FOUND, agg->id_field, "%s %s not found", agg->name, stream_id);
    *state_out = state;
    if (version_out) *version_out = version;
    return ES_OK;
}

int es_pipeline_read_stream(es_pipeline *p, const char *stream_id, int64_t after_version,
                            int64_t to_version, es_event_fn fn, void *ctx, es_error *err)
{
    return es_store_read_stream(p->store, stream_id, after_version, to_version, fn, ctx, NULL, err);
}

/* ---- executing ---- */

static void fill_result(es_command_result *out, const es_append_result *a)
{
    snprintf(out->stream_id, sizeof out->stream_id, "%s", a->stream_id);
    out->version = a->last_version;
    out->first_version = a->n_events ? a->first_version : 0;
    out->n_events = a->n_events < ES_DECISION_MAX ? a->n_events : ES_DECISION_MAX;
    for (size_t i = 0; i < out->n_events; i++) memcpy(out->event_ids[i], a->event_ids[i], sizeof out->event_ids[i]);
    out->replayed = a->replayed;
}

static int emits(const es_command_def *def, const es_event_def *ev)
{
    for (size_t i = 0; i < def->n_emits; i++)
        if (def->emits[i] == ev) return 1;
    return 0;
}

/* A short random pause before re-running after a conflict, growing with the attempt, so that
 * losers of a race do not collide again in the very next batch. */
static void backoff(unsigned attempt)
{
    static _Thread_local unsigned seed;
    if (!seed) seed = (unsigned)(uintptr_t)&seed ^ (unsigned)es_now_us();
    unsigned cap = 100u << (attempt < 5 ? attempt : 5);  /* microseconds */
    long us = (long)(rand_r(&seed) % cap);
    es_sleep_us(us);
}

/* One attempt's decision, appended. Returns ES_OK (out filled), ES_ABORTED on a version
 * conflict, or another error. refused is set when the command itself was refused (existence,
 * expected version, guard, decide) or decided nothing: the caller may then answer a recorded
 * repeat instead. Consumes state: *keep receives the committed state worth caching (at
 * *keep_version), or NULL. */
typedef struct attempt {
    const es_command_def *def;
    const ProtobufCMessage *cmd;
    const char *stream_id;
    const char *command_id;
    int idempotent;
    const es_command_meta *meta;
    int has_expected;
    int64_t expected;
} attempt;

/* The checks and the decision of one attempt on (state, version): ES_OK with d filled, or the
 * refusal (existence, expected version, guard, decide: *refused = 1) or a server error (an event
 * the command does not declare: *refused = 0). A decision of no events is ES_OK, *refused = 1. */
static int check_and_decide(const attempt *at, const ProtobufCMessage *state, int64_t version, es_arena *arena,
                            es_decision *d, int *refused, es_error *err)
{
    const es_command_def *def = at->def;
    const es_aggregate_def *agg = def->aggregate;
    int rc;
    *refused = 1;
    if (def->creates && state)
        return es_error_set(err, ES_ALREADY_EXISTS, agg->id_field, "%s %s already exists", agg->name, at->stream_id);
    if (!def->creates && !state)
        return es_error_set(err, ES_NOT_FOUND, agg->id_field, "%s %s not found", agg->name, at->stream_id);
    if (at->has_expected && at->expected != version)
        return es_error_set(err, ES_ABORTED, "expected_version", "expected version %lld, stream is at %lld",
                            (long long)at->expected, (long long)version);
    if (def->guard && (rc = def->guard(state, err)) != ES_OK) return rc;

    memset(d, 0, sizeof *d);
    es_decide_ctx ctx = {
        .stream_id = at->stream_id,
        .version = version,
        .now_us = es_now_us(),
        .command_id = at->command_id ? at->command_id : "",
        .actor = at->meta && at->meta->actor ? at->meta->actor : "",
        .arena = arena,
    };
    if ((rc = def->decide(&ctx, state, at->cmd, d, err)) != ES_OK) return rc;
    for (size_t i = 0; i < d->n; i++)
        if (!emits(def, d->defs[i]) || d->events[i]->descriptor != d->defs[i]->descriptor) {
            *refused = 0;
            return es_error_set(err, ES_INTERNAL, "", "%s emitted %s, which it does not declare", def->name,
                                d->defs[i] ? d->defs[i]->type : "an unknown event");
        }
    *refused = d->n == 0;      /* nothing to record: a no-op on this state */
    return ES_OK;
}

/* An attempt's append, ready to send: the decision's events folded into the state, packed,
 * their JSON views, the snapshot when one is due. Everything lives in the attempt's arena. */
typedef struct prepared {
    es_event_data evs[ES_DECISION_MAX];
    const char *jsons[ES_DECISION_MAX];
    es_snapshot_data snap;
    es_append a;
    int64_t new_version;
} prepared;

/* Folds d into *state (a new state when NULL) and fills pr. ES_OK, or ES_INTERNAL when an
 * event does not apply. */
static int prepare(es_pipeline *p, const attempt *at, ProtobufCMessage **state, int64_t version,
                   const es_decision *d, es_arena *arena, prepared *pr, es_error *err)
{
    const es_command_def *def = at->def;
    const es_aggregate_def *agg = def->aggregate;
    if (!*state) *state = new_state(agg);
    for (size_t i = 0; i < d->n; i++) {
        const es_event_def *ed = d->defs[i];
        int rc = ed->apply(*state, d->events[i]);
        if (rc != ES_OK)
            return es_error_set(err, ES_INTERNAL, "", "%s: %s does not apply to %s %s (%s)", def->name, ed->type,
                                agg->name, at->stream_id, es_strerror(rc));
        size_t len = protobuf_c_message_get_packed_size(d->events[i]);
        uint8_t *buf = es_arena_alloc(arena, len ? len : 1);
        protobuf_c_message_pack(d->events[i], buf);
        pr->evs[i] = (es_event_data){
            .event_type = ed->type,
            .schema_name = ed->schema,
            .schema_version = ed->schema_version,
            .schema_hash = es_store_schema_hash(ed->descriptor),
            .payload = buf,
            .payload_len = len,
        };
        pr->jsons[i] = p->json ? event_json(p->json, d->events[i], arena) : NULL;
    }
    pr->new_version = version + (int64_t)d->n;
    es_snapshot_data *snapp = NULL;
    int every = snapshot_interval(p, agg);
    if (every > 0 && pr->new_version / every > version / every) {
        size_t len = protobuf_c_message_get_packed_size(*state);
        uint8_t *buf = es_arena_alloc(arena, len ? len : 1);
        protobuf_c_message_pack(*state, buf);
        pr->snap = (es_snapshot_data){pr->new_version, agg->state_descriptor->name,
                                      es_store_schema_hash(agg->state_descriptor), buf, len};
        snapp = &pr->snap;
    }
    const es_command_meta *m = at->meta;
    pr->a = (es_append){
        .stream_type = agg->name,
        .stream_id = at->stream_id,
        .expected_version = version,
        .command_id = at->command_id,
        .idempotent = at->idempotent,
        .correlation_id = m && m->correlation_id ? m->correlation_id : at->command_id,
        .causation_id = m ? m->causation_id : NULL,
        .actor = m ? m->actor : NULL,
        .events = pr->evs,
        .n_events = d->n,
        .snapshot = snapp,
        .payload_json = p->json ? pr->jsons : NULL,
        .request_hash = m ? m->request_hash : NULL,
        .request_hash_len = m ? m->request_hash_len : 0,
        .retention_s = m ? m->retention_s : 0,
    };
    return ES_OK;
}

static int run_once(es_pipeline *p, const attempt *at, ProtobufCMessage *state, int64_t version,
                    es_command_result *out, int *refused, ProtobufCMessage **keep, int64_t *keep_version,
                    es_error *err)
{
    es_arena arena;
    es_arena_init(&arena);
    *keep = NULL;
    es_decision d;
    prepared pr;
    int rc = check_and_decide(at, state, version, &arena, &d, refused, err);
    if (*refused) {
        if (rc == ES_OK) {         /* a recorded first run, if any, is the better answer */
            snprintf(out->stream_id, sizeof out->stream_id, "%s", at->stream_id);
            out->version = version;
        }
        /* The state was only read: it is still the committed state, worth keeping. */
        *keep = state;
        *keep_version = version;
        state = NULL;
        goto out;
    }
    if (rc != ES_OK || (rc = prepare(p, at, &state, version, &d, &arena, &pr, err)) != ES_OK) goto out;
    es_append_result ar;
    rc = es_store_append(p->store, &pr.a, &ar, err);
    if (rc != ES_OK) goto out;
    fill_result(out, &ar);
    if (!ar.replayed) {
        if (pr.a.snapshot) STAT_ADD(p, snapshots);
        *keep = state;             /* committed: the stream's new state */
        *keep_version = pr.new_version;
        state = NULL;
    }
out:
    protobuf_c_message_free_unpacked(state, NULL);
    es_arena_free(&arena);
    return rc;
}

int es_pipeline_execute(es_pipeline *p, const es_command_def *def, const ProtobufCMessage *cmd,
                        const es_command_meta *meta, es_command_result *out, es_error *err)
{
    memset(out, 0, sizeof *out);
    if (!def || !cmd || cmd->descriptor != def->descriptor || !def->aggregate || !def->decide)
        return es_error_set(err, ES_INTERNAL, "", "command does not match its definition");
    STAT_ADD(p, executed);
    const es_aggregate_def *agg = def->aggregate;
    int rc;

    if (def->validate && (rc = def->validate(cmd, err)) != ES_OK) return rc;

    attempt at = {.def = def, .cmd = cmd, .meta = meta};
    at.command_id = meta && meta->command_id && meta->command_id[0] ? meta->command_id
                    : def->request_id                               ? def->request_id(cmd)
                                                                    : NULL;
    if (at.command_id && !at.command_id[0]) at.command_id = NULL;
    at.idempotent = at.command_id != NULL;
    at.has_expected = def->expected_version && def->expected_version(cmd, &at.expected);
    if (at.has_expected && at.expected < 0)   /* no stream is ever there: bad input, not a conflict */
        return es_error_set(err, ES_INVALID_ARGUMENT, "expected_version", "expected_version must be at least 0");

    char sid[ES_STREAM_ID_MAX + 1];
    const char *tid = def->target_id ? def->target_id(cmd) : "";
    if (!tid || !tid[0]) {
        if (!def->creates)
            return es_error_set(err, ES_INVALID_ARGUMENT, agg->id_field, "%s is required", agg->id_field);
        es_uuid_v7(sid);
    } else {
        if (strlen(tid) > ES_STREAM_ID_MAX)
            return es_error_set(err, ES_INVALID_ARGUMENT, agg->id_field, "%s is longer than %d bytes",
                                agg->id_field, ES_STREAM_ID_MAX);
        snprintf(sid, sizeof sid, "%s", tid);
    }
    at.stream_id = sid;

    int64_t tried = -1;            /* version the last attempt conflicted at */
    int reload = 0;                /* confirm a refusal made on cached state against the store */
    for (unsigned n = 0;; n++) {
        ProtobufCMessage *state = NULL, *keep = NULL;
        int64_t version = 0, keep_version = 0;
        uint64_t ticket = 0;
        int from_cache = 0;
        if (p->cache && es__state_cache_checkout(p->cache, sid, agg->state_descriptor, reload ? INT64_MAX : tried + 1,
                                                 CACHE_WAIT_MS, &ticket, &state, &version)) {
            STAT_ADD(p, cache_hits);
            from_cache = 1;
        } else if (def->creates && n == 0) {
            /* A creating command presumes a new stream (an assigned UUIDv7 is new by
             * construction): if it exists after all, version 1 conflicts and the retry
             * loads it and answers ALREADY_EXISTS. */
        } else if ((rc = load(p, agg, sid, &state, &version, err)) != ES_OK) {
            if (p->cache) es__state_cache_checkin(p->cache, sid, ticket, NULL, 0);
            return rc;
        }

        int refused = 0;
        out->attempts = n + 1;
        rc = run_once(p, &at, state, version, out, &refused, &keep, &keep_version, err);
        if (p->cache) es__state_cache_checkin(p->cache, sid, ticket, keep, keep_version);
        else protobuf_c_message_free_unpacked(keep, NULL);
        if (rc == ES_OK && !refused) return ES_OK;
        if (refused && at.idempotent) {
            /* A repeat that is now refused (or a no-op) still gets its first answer. */
            es_append_result ar;
            es_error lerr;
            if (es_store_find_command(p->store, at.command_id, &ar, &lerr) == ES_OK) {
                if (meta && meta->request_hash_len && ar.request_hash_len &&
                    (ar.request_hash_len != meta->request_hash_len ||
                     memcmp(ar.request_hash, meta->request_hash, ar.request_hash_len) != 0))
                    return es_error_set(err, ES_ALREADY_EXISTS, "idempotency_key",
                                        "this idempotency key was already used with a different request");
                unsigned attempts = out->attempts;
                memset(out, 0, sizeof *out);
                fill_result(out, &ar);
                out->attempts = attempts;
                return ES_OK;
            }
        }
        if (refused && from_cache && !reload) {
            /* Another instance may have moved the stream on since this state was cached (an
             * append would notice, a refusal does not): refuse only on the store's state. */
            reload = 1;
            continue;
        }
        if (refused || rc != ES_ABORTED) return rc;
        /* Version conflict: someone else appended first. Run again on fresher state. */
        if (n >= p->max_retries)
            return es_error_set(err, ES_ABORTED, "", "gave up on %s %s after %u version conflicts", agg->name,
                                sid, n + 1);
        STAT_ADD(p, retries);
        tried = version;
        backoff(n);
    }
}

/* ---- executing without blocking (es_pipeline_execute_async) ---- */

typedef struct async_cmd {
    es_pipeline *p;
    attempt at;
    es_command_meta meta;          /* the caller's, its strings copied into arena */
    char sid[ES_STREAM_ID_MAX + 1];
    es_arena arena;
    ProtobufCMessage *state;       /* the new state, cached once committed */
    uint64_t ticket;
    prepared pr;
    es_pipeline_done_fn done;
    void *data;
} async_cmd;

static const char *arena_dup(es_arena *a, const char *s) { return s ? es_arena_strdup(a, s) : NULL; }

static void async_free(async_cmd *x)
{
    if (x->p->cache) es__state_cache_checkin(x->p->cache, x->sid, x->ticket, NULL, 0);
    protobuf_c_message_free_unpacked(x->state, NULL);
    es_arena_free(&x->arena);
    free(x);
}

/* es_append_done_fn: the committer's outcome, on its thread. */
static void async_done(void *data, int status, const es_append_result *ar, const es_error *err)
{
    async_cmd *x = data;
    es_pipeline *p = x->p;
    es_command_result res;
    memset(&res, 0, sizeof res);
    res.attempts = 1;
    if (status == ES_OK) {
        fill_result(&res, ar);
        if (!ar->replayed) {
            if (x->pr.a.snapshot) STAT_ADD(p, snapshots);
            if (p->cache) {        /* committed: the stream's new state */
                es__state_cache_checkin(p->cache, x->sid, x->ticket, x->state, x->pr.new_version);
                x->state = NULL;
                x->ticket = 0;
            }
        }
    }
    es_pipeline_done_fn done = x->done;
    void *done_data = x->data;
    async_free(x);
    done(done_data, status, &res, err);
}

int es_pipeline_execute_async(es_pipeline *p, const es_command_def *def, const ProtobufCMessage *cmd,
                              const es_command_meta *meta, es_pipeline_done_fn done, void *data, es_error *err)
{
    if (!p || !def || !cmd || !done || cmd->descriptor != def->descriptor || !def->aggregate || !def->decide ||
        !def->creates)
        return ES_PIPELINE_BLOCKING;
    const char *tid = def->target_id ? def->target_id(cmd) : "";
    int64_t expected;
    if ((tid && tid[0]) || (def->expected_version && def->expected_version(cmd, &expected)))
        return ES_PIPELINE_BLOCKING;   /* a stream named by the client may exist: a load may be due */
    int rc;
    if (def->validate && (rc = def->validate(cmd, err)) != ES_OK) {
        STAT_ADD(p, executed);
        return rc;
    }
    const es_aggregate_def *agg = def->aggregate;
    async_cmd *x = es_xcalloc(1, sizeof *x);
    x->p = p;
    x->done = done;
    x->data = data;
    es_arena_init(&x->arena);
    if (meta) {
        x->meta = *meta;
        x->meta.command_id = arena_dup(&x->arena, meta->command_id);
        x->meta.correlation_id = arena_dup(&x->arena, meta->correlation_id);
        x->meta.causation_id = arena_dup(&x->arena, meta->causation_id);
        x->meta.actor = arena_dup(&x->arena, meta->actor);
        if (meta->request_hash && meta->request_hash_len) {
            uint8_t *h = es_arena_alloc(&x->arena, meta->request_hash_len);
            memcpy(h, meta->request_hash, meta->request_hash_len);
            x->meta.request_hash = h;
        }
    }
    attempt *at = &x->at;
    *at = (attempt){.def = def, .cmd = cmd, .meta = &x->meta};
    at->command_id = x->meta.command_id && x->meta.command_id[0] ? x->meta.command_id
                     : def->request_id ? arena_dup(&x->arena, def->request_id(cmd))
                                       : NULL;
    if (at->command_id && !at->command_id[0]) at->command_id = NULL;
    at->idempotent = at->command_id != NULL;
    /* A creating command presumes a new stream (an assigned UUIDv7 is new by construction). */
    es_uuid_v7(x->sid);
    at->stream_id = x->sid;
    int64_t version = 0;
    if (p->cache && es__state_cache_checkout(p->cache, x->sid, agg->state_descriptor, 0, 0, &x->ticket, &x->state,
                                             &version)) {
        async_free(x);             /* cached already: not new after all */
        return ES_PIPELINE_BLOCKING;
    }
    es_decision d;
    int refused;
    rc = check_and_decide(at, NULL, 0, &x->arena, &d, &refused, err);
    if (refused && (rc == ES_OK || at->idempotent)) {
        /* Nothing to record, or a refusal that a recorded first run may answer instead. */
        async_free(x);
        return ES_PIPELINE_BLOCKING;
    }
    STAT_ADD(p, executed);
    if (rc != ES_OK || (rc = prepare(p, at, &x->state, 0, &d, &x->arena, &x->pr, err)) != ES_OK ||
        (rc = es_store_append_async(p->store, &x->pr.a, async_done, x, err)) != ES_OK) {
        async_free(x);
        return rc;
    }
    return ES_OK;                  /* x belongs to the committer now */
}

void es_pipeline_write_metrics(es_pipeline *p, es_buf *b)
{
    if (!p)
        return;
    es_pipeline_stats ps;
    es_pipeline_get_stats(p, &ps);
    es_store_stats ss;
    es_store_get_stats(es_pipeline_store(p), &ss);
    const es_metric_row rows[] = {
        {"es_commands_executed_total", "counter", "Commands run by the pipeline.", (double)ps.executed},
        {"es_command_retries_total", "counter", "Commands re-run after a version conflict.", (double)ps.retries},
        {"es_state_cache_hits_total", "counter", "Commands that found their stream state in the cache.", (double)ps.cache_hits},
        {"es_state_loads_total", "counter", "Stream states loaded from the store.", (double)ps.loads},
        {"es_snapshots_written_total", "counter", "Snapshots written.", (double)ps.snapshots},
        {"es_appends_total", "counter", "Appends answered by the store.", (double)ss.appends},
        {"es_append_batches_total", "counter", "Group-commit transactions.", (double)ss.batches},
        {"es_append_batch_max", "gauge", "Largest group-commit batch seen.", (double)ss.max_batch},
        {"es_append_conflicts_total", "counter", "Appends refused by optimistic concurrency.", (double)ss.conflicts},
        {"es_append_replays_total", "counter", "Appends answered from a recorded command id.", (double)ss.replays},
    };
    ES_METRICS_ROWS(b, rows);
}
