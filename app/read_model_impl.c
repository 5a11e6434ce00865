/* orders_read_model over the runtime's projection reader and event store. */
#include "read_model_impl.h"

#include "es/clock.h"
#include "es/log.h"
#include "es/timefmt.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

/* A read the replica could not serve (it is down or unreachable) is served by the primary:
 * the primary is never behind the replica, so an answer that satisfies min_version there is
 * still correct, and a replica outage costs load on the primary rather than failed reads. A
 * replica that answers but lags is never bypassed: GetOrder compares the row's version with
 * min_version and parks the read until the replica shows it (the dispatcher's re-check timer
 * runs it again). A read the replica cancelled because it conflicted with its replay (ABORTED:
 * a serialization failure or deadlock can have no other cause on a read-only standby) is served by
 * the primary too, without marking the replica down. README, "A read replica", states the rules;
 * faults.replica proves them. */
static int replica_failed(orders_read_model_impl *impl, int rc, const es_error *err)
{
    if (rc == ES_ABORTED) {
        /* logged at most once a minute: a burst of conflicts counts in the fallbacks metric */
        static _Atomic int64_t logged_us;
        int64_t now = es_mono_us(), last = atomic_load(&logged_us);
        es_pg_pool_note_fallback(impl->replica_pool);
        if ((last == 0 || now - last >= 60 * 1000000LL) && atomic_compare_exchange_strong(&logged_us, &last, now))
            es_log(ES_LOG_WARN, "read_model", NULL, "the read replica cancelled a read (%s); the primary serves it",
                   err->message[0] ? err->message : "a conflict with its replay");
        return 1;
    }
    if (rc != ES_UNAVAILABLE)
        return 0;
    es_pg_pool_note_fallback(impl->replica_pool);
    if (!atomic_exchange(&impl->replica_down, 1))
        es_log(ES_LOG_WARN, "read_model", NULL, "read replica unavailable (%s); reads fall back to the primary",
               err->message[0] ? err->message : "no connection");
    return 1;
}

static void replica_served(orders_read_model_impl *impl)
{
    if (atomic_exchange(&impl->replica_down, 0))
        es_log(ES_LOG_INFO, "read_model", NULL, "read replica answers again; reads go to it");
}

static int get(void *self, const char *order_id, es_arena *a, Orders__V1__OrderSummary **out, es_error *err)
{
    orders_read_model_impl *impl = self;
    ProtobufCMessage *row;
    int rc = ES_UNAVAILABLE, from_primary = 1;
    if (impl->replica) {
        rc = es_projection_get(impl->replica, order_id, a, &row, err);
        if (replica_failed(impl, rc, err)) {
            *err = (es_error){0};
        } else {
            replica_served(impl);
            from_primary = 0;
        }
    }
    if (from_primary)
        rc = es_projection_get(impl->summary, order_id, a, &row, err);
    if (rc == ES_OK)
        *out = (Orders__V1__OrderSummary *)row;
    return rc;
}

static int list(void *self, const orders_list_query *q, es_arena *a, Orders__V1__OrderSummary ***rows, size_t *n,
                es_error *err)
{
    orders_read_model_impl *impl = self;
    es_projection_filter f[3];
    size_t nf = 0;
    if (q->customer_id)
        f[nf++] = (es_projection_filter){"customer_id", q->customer_id};
    if (q->vendor_id)
        f[nf++] = (es_projection_filter){"vendor_id", q->vendor_id};
    if (q->status)
        f[nf++] = (es_projection_filter){"status", q->status};
    es_projection_list_query lq = {f, nf, "created_at", NULL, NULL, q->limit, q->offset};
    if (q->has_after) {
        char buf[ES_RFC3339_LEN];
        lq.after_value = es_arena_strdup(a, es_rfc3339_us(q->after_created_us, buf));
        lq.after_key = q->after_order_id;
    }
    if (impl->replica) {
        int rc = es_projection_list(impl->replica, &lq, a, (ProtobufCMessage ***)rows, n, err);
        if (!replica_failed(impl, rc, err)) {
            replica_served(impl);
            return rc;
        }
        *err = (es_error){0};
    }
    return es_projection_list(impl->summary, &lq, a, (ProtobufCMessage ***)rows, n, err);
}

typedef struct collect {
    es_arena *a;
    Orders__V1__EventRecord **recs;
    size_t n, cap;
} collect;

static char *opt(es_arena *a, const char *s) { return es_arena_strdup(a, s ? s : ""); }

static int on_event(const es_event_record *ev, void *ctx, es_error *err)
{
    (void)err;
    collect *c = ctx;
    es_arena *a = c->a;
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 16;
        Orders__V1__EventRecord **n = es_arena_alloc(a, cap * sizeof *n);
        if (c->n)
            memcpy(n, c->recs, c->n * sizeof *n);
        c->recs = n;
        c->cap = cap;
    }
    Orders__V1__EventRecord *r = es_arena_alloc(a, sizeof *r);
    orders__v1__event_record__init(r);
    r->event_id = es_arena_strdup(a, ev->event_id);
    r->stream_id = opt(a, ev->stream_id);
    r->version = ev->version;
    r->position = ev->position;
    r->event_type = opt(a, ev->event_type);
    r->schema_version = ev->schema_version;
    Google__Protobuf__Timestamp *t = es_arena_alloc(a, sizeof *t);
    google__protobuf__timestamp__init(t);
    t->seconds = ev->recorded_at_us / 1000000;
    t->nanos = (int32_t)(ev->recorded_at_us % 1000000) * 1000;
    r->recorded_at = t;
    r->command_id = opt(a, ev->command_id);
    r->correlation_id = opt(a, ev->correlation_id);
    r->causation_id = opt(a, ev->causation_id);
    r->actor = opt(a, ev->actor);
    Google__Protobuf__Any *any = es_arena_alloc(a, sizeof *any);
    google__protobuf__any__init(any);
    any->type_url = es_arena_sprintf(a, "type.googleapis.com/%s", ev->schema_name);
    any->value.len = ev->payload_len;
    any->value.data = ev->payload_len ? memcpy(es_arena_alloc(a, ev->payload_len), ev->payload, ev->payload_len) : NULL;
    r->data = any;
    c->recs[c->n++] = r;
    return 0;
}

static int events(void *self, const char *order_id, es_arena *a, Orders__V1__EventRecord ***out, size_t *n,
                  es_error *err)
{
    orders_read_model_impl *impl = self;
    collect c = {a, NULL, 0, 0};
    int rc = es_pipeline_read_stream(impl->pipeline, order_id, 0, 0, on_event, &c, err);
    *out = c.recs;
    *n = c.n;
    return rc;
}

void orders_read_model_init(orders_read_model_impl *impl, es_pipeline *pipeline)
{
    impl->pipeline = pipeline;
    impl->replica_pool = NULL;
    impl->replica = NULL;
    atomic_init(&impl->replica_down, 0);
    impl->summary = es_projection_reader_new(es_pipeline_pool(pipeline), &orders_v1_projection_order_summary);
    impl->rm.self = impl;
    impl->rm.get = get;
    impl->rm.list = list;
    impl->rm.events = events;
}

void orders_read_model_use_replica(orders_read_model_impl *impl, es_pg_pool *replica_pool)
{
    impl->replica_pool = replica_pool;
    impl->replica = es_projection_reader_new(replica_pool, &orders_v1_projection_order_summary);
}

void orders_read_model_fini(orders_read_model_impl *impl)
{
    es_projection_reader_free(impl->summary);
    es_projection_reader_free(impl->replica);
}
