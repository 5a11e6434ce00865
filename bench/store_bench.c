/* Store-side benchmarks, linked against the runtime as orderd is:
 *
 *   bench_store rebuild --pg <conninfo> [--events 1000000] [--cap-seconds 0]
 *     Migrates the database (it should be an empty one of its own), writes --events order events
 *     with libpq's binary COPY (realistic lifecycles: place, initiate, pay, ship, 2 updates,
 *     deliver; every 10th order is cancelled after initiation; orders interleaved 1,000 at a
 *     time as concurrent traffic would leave them), then times the rebuild of every projection
 *     (order_summary) from them: es_projection_rebuild with the projector, as `orderctl
 *     projections rebuild` runs it (one transaction, events read and rows written with COPY).
 *     With --cap-seconds > 0 the rebuild is cut off after that long (nothing commits) and the
 *     rate is taken from the events it had folded by then. With --reuse 1 a store that already
 *     holds the events of an earlier run is rebuilt from them (repeated measurements).
 *
 *   bench_store rehydrate --pg <conninfo> [--iterations 200]
 *     Builds orders of 1,000 events through the command pipeline (place, initiate, pay, then
 *     in-transit updates): one with snapshot_every 100 (snapshot at version 1000), one with
 *     snapshots off (-1, none stored), one of 999 events with snapshots (snapshot at 900 and 99
 *     events to fold, the worst case), then times es_pipeline_load of each.
 *
 * Each prints one JSON object on stdout; diagnostics go to stderr. Exit status 1 on any error or
 * wrong result (a rebuilt row count or a loaded version that is not what was written). */
#include <arpa/inet.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"
#include "es/consumer.h"
#include "es/json.h"
#include "es/migrate.h"
#include "es/pipeline.h"
#include "es/projection.h"
#include "es/projection_rebuild.h"
#include "es/store.h"
#include "orders/v1/commands.pb-c.h"
#include "orders/v1/events.pb-c.h"
#include "orders/v1/orders_v1.es.h"
#include "orders/v1/state.pb-c.h"
#include "upcasters.h"

static const char *conninfo;

static int migrate(es_error *err)
{
    es_pg_pool_config pc = {.conninfo = conninfo, .size = 2};
    es_pg_pool *pool = es_pg_pool_new(&pc, err);
    if (!pool) return err->code ? err->code : ES_INTERNAL;
    es_migration m[] = {{"0001_event_store", es_event_store_sql}, {"0100_orders_v1", orders_v1_schema.migrations_sql}};
    int rc = es_migrate(pool, m, 2, NULL, err);
    es_pg_pool_free(pool);
    return rc;
}

/* ---- rebuild: event generation ---- */

typedef struct copybuf {
    char *p;
    size_t n, cap;
} copybuf;

static void cb_put(copybuf *b, const void *p, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2;
        b->p = realloc(b->p, b->cap);
        if (!b->p) abort();
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
}

static void cb_i16(copybuf *b, int16_t v)
{
    uint16_t x = htons((uint16_t)v);
    cb_put(b, &x, 2);
}

static void cb_i32(copybuf *b, int32_t v)
{
    uint32_t x = htonl((uint32_t)v);
    cb_put(b, &x, 4);
}

static void cb_field(copybuf *b, const void *p, size_t n)
{
    cb_i32(b, (int32_t)n);
    cb_put(b, p, n);
}

static void cb_text(copybuf *b, const char *s) { cb_field(b, s, strlen(s)); }

static void cb_i64(copybuf *b, int64_t v)
{
    cb_i32(b, 8);
    uint32_t hi = htonl((uint32_t)((uint64_t)v >> 32)), lo = htonl((uint32_t)v);
    cb_put(b, &hi, 4);
    cb_put(b, &lo, 4);
}

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Order ids: UUIDv7 layout, a fixed millisecond time and the order number (distinct, valid). */
static void order_id(long i, char out[ES_UUID_STRLEN + 1])
{
    uint64_t ms = 1764211200000ULL + (uint64_t)i / 64;
    snprintf(out, ES_UUID_STRLEN + 1, "%08" PRIx64 "-%04" PRIx64 "-7%03lx-8%03lx-%012lx", ms >> 16, ms & 0xffff,
             (unsigned long)(i >> 12) & 0xfff, (unsigned long)i & 0xfff, (unsigned long)i * 2654435761UL & 0xffffffffffffUL);
}

static int cancelled(long order) { return order % 10 == 9; }
static int events_of(long order) { return cancelled(order) ? 3 : 7; }

/* Packs event number v (1-based) of order i into buf (big enough); returns its def. */
static const es_event_def *make_event(long i, int v, const char *id, uint8_t *buf, size_t *len)
{
    char cust[32], vendor[32], sku[32], pay[64], track[32];
    snprintf(cust, sizeof cust, "cust-%ld", i % 50000);
    snprintf(vendor, sizeof vendor, "vendor-%ld", i % 97);
    snprintf(sku, sizeof sku, "sku-%ld", i % 1000);
    snprintf(pay, sizeof pay, "pay-%s", id);
    snprintf(track, sizeof track, "JD%09ld", i);
    Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
    ts.seconds = 1764211200 + i / 100 + v * 60;
    ts.nanos = (int32_t)(i % 1000) * 1000000;
    Orders__V1__Money p1 = ORDERS__V1__MONEY__INIT, p2 = ORDERS__V1__MONEY__INIT, l1 = ORDERS__V1__MONEY__INIT,
                      l2 = ORDERS__V1__MONEY__INIT, total = ORDERS__V1__MONEY__INIT;
    p1.currency_code = p2.currency_code = l1.currency_code = l2.currency_code = total.currency_code = "EUR";
    p1.amount_minor = 1250;
    l1.amount_minor = 2500;
    p2.amount_minor = l2.amount_minor = 199;
    total.amount_minor = 2699;
    const es_event_def *def;
    ProtobufCMessage *m;
    Orders__V1__OrderPlaced placed = ORDERS__V1__ORDER_PLACED__INIT;
    Orders__V1__OrderPaymentInitiated init = ORDERS__V1__ORDER_PAYMENT_INITIATED__INIT;
    Orders__V1__OrderPaid paid = ORDERS__V1__ORDER_PAID__INIT;
    Orders__V1__OrderShippingStatusUpdated ship = ORDERS__V1__ORDER_SHIPPING_STATUS_UPDATED__INIT;
    Orders__V1__OrderDelivered deliv = ORDERS__V1__ORDER_DELIVERED__INIT;
    Orders__V1__OrderCancelled canc = ORDERS__V1__ORDER_CANCELLED__INIT;
    Orders__V1__LineItem i1 = ORDERS__V1__LINE_ITEM__INIT, i2 = ORDERS__V1__LINE_ITEM__INIT;
    Orders__V1__LineItem *items[2] = {&i1, &i2};
    Orders__V1__Address addr = ORDERS__V1__ADDRESS__INIT;
    static const char *where[] = {"", "", "", "", "Leipzig", "Berlin", "Paris"};
    if (v == 1) {
        i1.product_id = sku;
        i1.title = "Paperback book";
        i1.quantity = 2;
        i1.unit_price = &p1;
        i1.line_total = &l1;
        i2.product_id = "sku-77";
        i2.title = "Bookmark";
        i2.quantity = 1;
        i2.unit_price = &p2;
        i2.line_total = &l2;
        addr.name = "Ada Lovelace";
        addr.line1 = "1 Main St";
        addr.city = "Paris";
        addr.postal_code = "75001";
        addr.country_code = "FR";
        placed.order_id = (char *)id;
        placed.customer_id = cust;
        placed.vendor_id = vendor;
        placed.n_items = 2;
        placed.items = items;
        placed.item_count = 3;
        placed.total = &total;
        placed.payment_method = "card";
        placed.shipping_address = &addr;
        placed.placed_at = &ts;
        def = &orders_v1_event_OrderPlaced, m = &placed.base;
    } else if (v == 2) {
        init.order_id = (char *)id;
        init.payment_id = pay;
        init.amount = &total;
        init.initiated_at = &ts;
        def = &orders_v1_event_OrderPaymentInitiated, m = &init.base;
    } else if (v == 3 && cancelled(i)) {
        canc.order_id = (char *)id;
        canc.reason = "changed my mind";
        canc.cancelled_at = &ts;
        def = &orders_v1_event_OrderCancelled, m = &canc.base;
    } else if (v == 3) {
        paid.order_id = (char *)id;
        paid.payment_id = pay;
        paid.amount = &total;
        paid.paid_at = &ts;
        def = &orders_v1_event_OrderPaid, m = &paid.base;
    } else if (v < 7) {
        ship.order_id = (char *)id;
        ship.status = v == 6 ? ORDERS__V1__SHIPPING_STATUS__SHIPPING_STATUS_OUT_FOR_DELIVERY
                             : ORDERS__V1__SHIPPING_STATUS__SHIPPING_STATUS_IN_TRANSIT;
        ship.carrier = "DHL";
        ship.tracking_number = track;
        ship.location = (char *)where[v];
        ship.occurred_at = &ts;
        ship.updated_at = &ts;
        def = &orders_v1_event_OrderShippingStatusUpdated, m = &ship.base;
    } else {
        deliv.order_id = (char *)id;
        deliv.carrier = "DHL";
        deliv.tracking_number = track;
        deliv.location = "Paris";
        deliv.occurred_at = &ts;
        deliv.delivered_at = &ts;
        def = &orders_v1_event_OrderDelivered, m = &deliv.base;
    }
    *len = protobuf_c_message_pack(m, buf);
    return def;
}

static int pg_ok(PGconn *c, PGresult *r, ExecStatusType want, const char *what)
{
    int ok = PQresultStatus(r) == want;
    if (!ok) fprintf(stderr, "bench_store: %s: %s", what, PQerrorMessage(c));
    PQclear(r);
    return ok;
}

/* Writes exactly n events (orders in waves of 1,000 interleaved orders; the last order may stop
 * early); returns orders written, or -1; *delivered_out receives the orders that reach delivery.
 * One COPY (one transaction) per group of about 100,000 events. */
static long generate(PGconn *c, long n_events, long *events_out, long *delivered_out)
{
    static const char header[] = "PGCOPY\n\377\r\n\0";
    copybuf b = {0};
    uint64_t rng = 42;
    long order = 0, events = 0;
    uint8_t payload[4096];
    char ids[1000][ES_UUID_STRLEN + 1];
    int cnt[1000];                 /* events of each order of the wave (the last order may be cut) */
    long delivered = 0;
    while (events < n_events) {
        PGresult *r = PQexec(c, "COPY es_events (event_id, stream_type, stream_id, version, event_type, schema_name,"
                                " schema_version, schema_hash, payload, command_id) FROM STDIN (FORMAT binary)");
        if (!pg_ok(c, r, PGRES_COPY_IN, "COPY")) return -1;
        b.n = 0;
        cb_put(&b, header, 11);
        cb_i32(&b, 0);
        cb_i32(&b, 0);
        long chunk_end = events + 100000;
        while (events < n_events && events < chunk_end) {
            /* A wave: up to 1,000 orders, event v of each before event v+1 of any. */
            long first = order, k = 0;
            long planned = 0;
            while (k < 1000 && events + planned < n_events) {
                cnt[k] = events_of(first + k);
                if (cnt[k] > n_events - events - planned) cnt[k] = (int)(n_events - events - planned);
                planned += cnt[k];
                delivered += cnt[k] == 7;
                order_id(first + k, ids[k]);
                k++;
            }
            for (int v = 1; v <= 7; v++) {
                for (long j = 0; j < k; j++) {
                    long o = first + j;
                    if (v > cnt[j]) continue;
                    size_t len;
                    const es_event_def *def = make_event(o, v, ids[j], payload, &len);
                    uint64_t u1 = splitmix(&rng), u2 = splitmix(&rng);
                    uint8_t uuid[16];
                    memcpy(uuid, &u1, 8);
                    memcpy(uuid + 8, &u2, 8);
                    uuid[6] = (uint8_t)((uuid[6] & 0x0f) | 0x40);
                    uuid[8] = (uint8_t)((uuid[8] & 0x3f) | 0x80);
                    char cmd[64];
                    snprintf(cmd, sizeof cmd, "bench-%ld-%d", o, v);
                    cb_i16(&b, 10);
                    cb_field(&b, uuid, 16);
                    cb_text(&b, "order");
                    cb_text(&b, ids[j]);
                    cb_i64(&b, v);
                    cb_text(&b, def->type);
                    cb_text(&b, def->schema);
                    cb_i32(&b, 4);
                    cb_i32(&b, (int32_t)def->schema_version);
                    cb_text(&b, es_store_schema_hash(def->descriptor));
                    cb_field(&b, payload, len);
                    cb_text(&b, cmd);
                    events++;
                }
                if (b.n > (1u << 20)) {
                    if (PQputCopyData(c, b.p, (int)b.n) != 1) return -1;
                    b.n = 0;
                }
            }
            order += k;
        }
        cb_i16(&b, -1);
        if (PQputCopyData(c, b.p, (int)b.n) != 1 || PQputCopyEnd(c, NULL) != 1) return -1;
        if (!pg_ok(c, PQgetResult(c), PGRES_COMMAND_OK, "COPY end")) return -1;
        while ((r = PQgetResult(c))) PQclear(r);
    }
    free(b.p);
    *events_out = events;
    *delivered_out = delivered;
    return order;
}

typedef struct rebuild_job {
    es_projector *proj;
    int via_text;                  /* rows through the projector's text form (es_rebuild_config) */
    es_rebuild_result res;
    int64_t folded;                /* events folded so far (progress), read by the main thread */
    int rc;
    es_error err;
    int done;
} rebuild_job;

static void rebuild_progress(void *data, int64_t done, int64_t total)
{
    (void)total;
    __atomic_store_n(&((rebuild_job *)data)->folded, done, __ATOMIC_RELAXED);
}

static void *rebuild_thread(void *arg)
{
    rebuild_job *j = arg;
    es_rebuild_config rc = {.conninfo = conninfo, .name = "projection.order_summary", .projector = j->proj,
                            .progress = rebuild_progress, .progress_data = j, .via_text = j->via_text, .upcasters = orders_upcasters,
                            .n_upcasters = orders_n_upcasters};
    j->rc = es_projection_rebuild(&rc, &j->res, &j->err);
    __atomic_store_n(&j->done, 1, __ATOMIC_RELEASE);
    return NULL;
}

static long long scalar(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    long long v = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 ? atoll(PQgetvalue(r, 0, 0)) : -1;
    if (v < 0) fprintf(stderr, "bench_store: %s: %s", sql, PQerrorMessage(c));
    PQclear(r);
    return v;
}

static int cmd_rebuild(long n_events, double cap, int reuse)
{
    es_error err = {0};
    if (migrate(&err) != ES_OK) {
        fprintf(stderr, "bench_store: migrate: %s\n", err.message);
        return 1;
    }
    PGconn *c = PQconnectdb(conninfo);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "bench_store: connect: %s", PQerrorMessage(c));
        return 1;
    }
    long long stored = scalar(c, "SELECT count(*) FROM es_events");
    double t0 = bench_now();
    long events = 0, expect_delivered = 0, orders;
    if (stored != 0 && !reuse) {
        fprintf(stderr, "bench_store: rebuild wants an empty event store (or --reuse 1)\n");
        return 1;
    }
    if (stored > 0) {
        /* The events of an earlier run (--reuse 1): what it wrote, read back. */
        events = (long)stored;
        orders = (long)scalar(c, "SELECT count(DISTINCT stream_id) FROM es_events");
        expect_delivered = (long)scalar(c, "SELECT count(*) FROM es_events WHERE version = 7");
    } else {
        orders = generate(c, n_events, &events, &expect_delivered);
        if (orders < 0) return 1;
        /* A settled database, as a rebuild meets it in production: statistics, visibility map,
         * and the generator's dirty pages written out (not the rebuild's I/O to pay). */
        PQclear(PQexec(c, "VACUUM ANALYZE es_events"));
        PQclear(PQexec(c, "CHECKPOINT"));
    }
    double gen_s = bench_now() - t0;
    fprintf(stderr, "bench_store: %ld events of %ld orders written in %.1f s\n", events, orders, gen_s);

    es_json_registry *json = es_json_registry_new();
    es_json_registry_add_schema(json, &orders_v1_schema);
    /* BENCH_REBUILD_TEXT_ROWS=1: rows through the projector's text form converted to binary (the
     * path without es/projection_binary.h), for A/B comparisons. */
    const char *text_rows = getenv("BENCH_REBUILD_TEXT_ROWS");
    rebuild_job job = {.proj = es_projector_new(&orders_v1_projection_order_summary, json),
                       .via_text = text_rows && !strcmp(text_rows, "1")};
    pthread_t th;
    t0 = bench_now();
    pthread_create(&th, NULL, rebuild_thread, &job);
    int capped = 0;
    while (!__atomic_load_n(&job.done, __ATOMIC_ACQUIRE)) {
        if (cap > 0 && bench_now() - t0 >= cap) {
            capped = 1;
            break;
        }
        usleep(20000);
    }
    double dt = bench_now() - t0;
    long long applied, rows = -1, delivered = -1, recorded = -1;
    if (capped) {
        /* The events folded so far (the rebuild commits all at once, so nothing is committed);
         * the process exits without waiting for it. */
        applied = __atomic_load_n(&job.folded, __ATOMIC_RELAXED);
    } else {
        pthread_join(th, NULL);
        if (job.rc != ES_OK) {
            fprintf(stderr, "bench_store: rebuild: %s: %s\n", es_strerror(job.rc), job.err.message);
            return 1;
        }
        applied = job.res.events;
        rows = scalar(c, "SELECT count(*) FROM order_summary");
        delivered = scalar(c, "SELECT count(*) FROM order_summary WHERE status = 'ORDER_STATUS_DELIVERED'"
                              " AND version = 7");
        recorded = scalar(c, "SELECT coalesce(sum(version), 0) FROM es_consumer_streams"
                             " WHERE consumer = 'projection.order_summary'");
    }
    int bad = !capped && (applied != events || rows != orders || delivered != expect_delivered || recorded != events);
    printf("{\"events\":%ld,\"orders\":%ld,\"generate_s\":%.2f,\"rebuild_s\":%.2f,\"applied\":%lld,"
           "\"complete\":%s,\"rows\":%lld,\"delivered_rows\":%lld,\"events_per_s\":%.0f}\n",
           events, orders, gen_s, dt, applied, capped ? "false" : "true", rows, delivered,
           dt > 0 ? (double)applied / dt : 0);
    fflush(stdout);
    if (bad)
        fprintf(stderr, "bench_store: rebuild mismatch: applied %lld of %ld events, %lld rows for %ld orders, "
                        "%lld delivered rows (want %ld), versions recorded sum to %lld\n", applied, events, rows, orders,
                delivered, expect_delivered, recorded);
    PQfinish(c);
    if (capped) _exit(0); /* the rebuild thread still holds its connections; the server rolls back */
    es_projector_free(job.proj);
    es_json_registry_free(json);
    return bad;
}

/* ---- rehydration ---- */

typedef struct stream_job {
    es_pipeline *pl;
    int n;                         /* events to write */
    char id[ES_STREAM_ID_MAX + 1];
    int rc;
    es_error err;
} stream_job;

static int exec_cmd(stream_job *j, const es_command_def *def, ProtobufCMessage *m)
{
    es_command_result r;
    es_command_meta meta = {.actor = "bench"};
    int rc = es_pipeline_execute(j->pl, def, m, &meta, &r, &j->err);
    if (rc == ES_OK && !j->id[0]) snprintf(j->id, sizeof j->id, "%s", r.stream_id);
    return rc;
}

/* place, initiate, pay, then in-transit updates with a new location each: n events. */
static void *write_stream(void *arg)
{
    stream_job *j = arg;
    Orders__V1__Money price = ORDERS__V1__MONEY__INIT;
    price.currency_code = "EUR";
    price.amount_minor = 1250;
    Orders__V1__LineItem item = ORDERS__V1__LINE_ITEM__INIT;
    item.product_id = "sku-1";
    item.title = "Paperback book";
    item.quantity = 2;
    item.unit_price = &price;
    Orders__V1__LineItem *items[1] = {&item};
    Orders__V1__Address addr = ORDERS__V1__ADDRESS__INIT;
    addr.name = "Ada Lovelace";
    addr.line1 = "1 Main St";
    addr.city = "Paris";
    addr.postal_code = "75001";
    addr.country_code = "FR";
    Orders__V1__PlaceOrderRequest place = ORDERS__V1__PLACE_ORDER_REQUEST__INIT;
    place.customer_id = "cust-rehydrate";
    place.vendor_id = "vendor-7";
    place.payment_method = "card";
    place.n_items = 1;
    place.items = items;
    place.shipping_address = &addr;
    if ((j->rc = exec_cmd(j, &orders_v1_command_PlaceOrder, &place.base)) != ES_OK) return NULL;
    Orders__V1__InitiatePaymentRequest init = ORDERS__V1__INITIATE_PAYMENT_REQUEST__INIT;
    init.order_id = j->id;
    if ((j->rc = exec_cmd(j, &orders_v1_command_InitiatePayment, &init.base)) != ES_OK) return NULL;
    Orders__V1__MarkOrderPaidRequest paid = ORDERS__V1__MARK_ORDER_PAID_REQUEST__INIT;
    paid.order_id = j->id;
    if ((j->rc = exec_cmd(j, &orders_v1_command_MarkOrderPaid, &paid.base)) != ES_OK) return NULL;
    for (int v = 4; v <= j->n; v++) {
        char loc[64];
        snprintf(loc, sizeof loc, "Hub %d, Leipzig", v);
        Orders__V1__UpdateOrderShippingStatusRequest u = ORDERS__V1__UPDATE_ORDER_SHIPPING_STATUS_REQUEST__INIT;
        u.order_id = j->id;
        u.status = ORDERS__V1__SHIPPING_STATUS__SHIPPING_STATUS_IN_TRANSIT;
        u.carrier = "DHL";
        u.tracking_number = "JD014600003";
        u.location = loc;
        if ((j->rc = exec_cmd(j, &orders_v1_command_UpdateOrderShippingStatus, &u.base)) != ES_OK) return NULL;
    }
    return NULL;
}

typedef struct load_fig {
    double p50_ms, mean_ms, p99_ms;
} load_fig;

static int time_loads(es_pipeline *pl, const char *id, int64_t want, int iterations, load_fig *out)
{
    bench_lat l = {0};
    for (int i = -5; i < iterations; i++) {
        ProtobufCMessage *state = NULL;
        int64_t version = 0;
        es_error err = {0};
        double t0 = bench_now();
        int rc = es_pipeline_load(pl, &orders_v1_aggregate_order, id, &state, &version, &err);
        double dt = bench_now() - t0;
        const Orders__V1__OrderState *s = (const Orders__V1__OrderState *)state;
        if (rc != ES_OK || version != want || !s || strcmp(s->location, "") == 0) {
            fprintf(stderr, "bench_store: load %s: rc %d version %" PRId64 " (want %" PRId64 "): %s\n", id, rc,
                    version, want, err.message);
            protobuf_c_message_free_unpacked(state, NULL);
            bench_lat_free(&l);
            return 1;
        }
        protobuf_c_message_free_unpacked(state, NULL);
        if (i >= 0) bench_lat_add(&l, dt);
    }
    double sum = 0;
    for (size_t i = 0; i < l.n; i++) sum += l.v[i];
    bench_lat_sort(&l);
    out->p50_ms = bench_lat_q(&l, .5) * 1e3;
    out->p99_ms = bench_lat_q(&l, .99) * 1e3;
    out->mean_ms = sum / (double)l.n * 1e3;
    bench_lat_free(&l);
    return 0;
}

static int cmd_rehydrate(int iterations)
{
    es_error err = {0};
    if (migrate(&err) != ES_OK) {
        fprintf(stderr, "bench_store: migrate: %s\n", err.message);
        return 1;
    }
    /* es_pipeline_load never consults the state cache, so the caches may stay on. */
    es_pipeline_config with = {.conninfo = conninfo, .pool_size = 3, .snapshot_every = 100};
    es_pipeline_config without = {.conninfo = conninfo, .pool_size = 3, .snapshot_every = -1};
    es_pipeline *ps = es_pipeline_new(&with, &err), *pn = ps ? es_pipeline_new(&without, &err) : NULL;
    if (!ps || !pn) {
        fprintf(stderr, "bench_store: pipeline: %s\n", err.message);
        return 1;
    }
    stream_job jobs[3] = {{.pl = ps, .n = 1000}, {.pl = pn, .n = 1000}, {.pl = ps, .n = 999}};
    pthread_t th[3];
    double t0 = bench_now();
    for (int i = 0; i < 3; i++) pthread_create(&th[i], NULL, write_stream, &jobs[i]);
    for (int i = 0; i < 3; i++) pthread_join(th[i], NULL);
    double write_s = bench_now() - t0;
    for (int i = 0; i < 3; i++)
        if (jobs[i].rc != ES_OK) {
            fprintf(stderr, "bench_store: writing stream %d: %s: %s\n", i, es_strerror(jobs[i].rc), jobs[i].err.message);
            return 1;
        }
    es_pipeline_stats st;
    es_pipeline_get_stats(ps, &st);
    load_fig snap, none, worst;
    if (time_loads(ps, jobs[0].id, 1000, iterations, &snap) || time_loads(pn, jobs[1].id, 1000, iterations, &none) ||
        time_loads(ps, jobs[2].id, 999, iterations, &worst))
        return 1;
    printf("{\"write_s\":%.2f,\"snapshots_written\":%" PRIu64 ",\"iterations\":%d,"
           "\"rehydrate_1000_ms\":%.3f,\"rehydrate_1000_mean_ms\":%.3f,\"rehydrate_1000_p99_ms\":%.3f,"
           "\"rehydrate_1000_snapshot_ms\":%.3f,\"rehydrate_1000_snapshot_mean_ms\":%.3f,"
           "\"rehydrate_1000_snapshot_p99_ms\":%.3f,"
           "\"rehydrate_999_snapshot_worst_ms\":%.3f,\"rehydrate_999_snapshot_worst_p99_ms\":%.3f}\n",
           write_s, st.snapshots, iterations, none.p50_ms, none.mean_ms, none.p99_ms, snap.p50_ms, snap.mean_ms,
           snap.p99_ms, worst.p50_ms, worst.p99_ms);
    es_pipeline_free(ps);
    es_pipeline_free(pn);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) goto usage;
    long events = 1000000;
    double cap = 0;
    int iterations = 200, reuse = 0;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--pg")) conninfo = argv[i + 1];
        else if (!strcmp(argv[i], "--events")) events = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--cap-seconds")) cap = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--reuse")) reuse = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--iterations")) iterations = atoi(argv[i + 1]);
        else goto usage;
    }
    if (!conninfo) goto usage;
    if (!strcmp(argv[1], "rebuild")) return cmd_rebuild(events, cap, reuse);
    if (!strcmp(argv[1], "rehydrate")) return cmd_rehydrate(iterations > 0 ? iterations : 1);
usage:
    fprintf(stderr, "usage: bench_store rebuild|rehydrate --pg <conninfo> [--events N] [--cap-seconds S]"
                    " [--reuse 1]"
                    " [--iterations N]\n");
    return 2;
}
