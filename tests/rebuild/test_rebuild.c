/* es_projection_rebuild (the set-based rebuild) against a real PostgreSQL, with the orders
 * projection (order_summary: uuid, text, integer, bigint, jsonb, timestamptz, NULLs and the
 * bytea es_state), compared row by row with what the live projector's per-event path
 * (es_consumer_replay with es_projector_handle) writes from the same events:
 *   - equals_fold (rows sent in COPY's binary format, then in its text format): a few thousand events over hundreds of streams, strings full of tabs,
 *     newlines, CRs, backslashes, quotes, "\N" and "\."; a corrupted table and a parked stream
 *     are repaired; the consumer's versions are the fold's; progress ends at done == total;
 *   - gap_is_data_loss, unknown_type_fails, apply_error_fails: nothing changes on failure;
 *   - upcasts: an event stored with an older schema version is upcast as the projector does;
 *   - waits_for_open_batch, waits_for_optimistic_batch: a live batch that locked a stream's
 *     bookkeeping row (per-message path) or only read it (set-wise path, which then writes the
 *     projection before the bookkeeping) is waited for, without deadlock, and the rebuild then
 *     replaces what it wrote;
 *   - concurrent_live_consumer: events appended and a live per-event consumer running through
 *     three rebuilds end equal to the fold, and the consumer never fails (a version recorded too
 *     low would re-apply OrderPlaced and fail; too high would leave the rows behind). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "es/consumer.h"
#include "es/json.h"
#include "es/projection.h"
#include "es/projection_binary.h"
#include "es/projection_rebuild.h"
#include "orders/v1/events.pb-c.h"
#include "orders/v1/orders_v1.es.h"
#include "support.h"

#define CONSUMER "projection.order_summary"
#define N_STREAMS 600

static pgt pg;
static es_json_registry *json;
static es_projector *proj, *active;   /* active: the one replay() and rebuild() use */

static const char *weird[] = {
    "tab\there",        "new\nline",         "back\\slash",  "quote\"s and 'single'", "cr\rlf\r\n",
    "\\N",              "\\.",               "unicode \xc3\xa9 \xe2\x9c\x93", "", "trailing\\",
    "\t\\t\n\\n",       "{\"json\": [1]}",   "a,b;c|d",      "NULL",
};
#define N_WEIRD (sizeof weird / sizeof weird[0])

static PGconn *connect_pg(void)
{
    PGconn *c = PQconnectdb(pg.conninfo);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    return c;
}

static void exec_ok(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("%s: %s", sql, PQerrorMessage(c));
    PQclear(r);
}

/* The first value of a query, malloc'ed ("" for NULL or no row). */
static char *query_text(const char *sql)
{
    PGconn *c = connect_pg();
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("%s: %s", sql, PQerrorMessage(c));
    char *s = strdup(PQntuples(r) && !PQgetisnull(r, 0, 0) ? PQgetvalue(r, 0, 0) : "");
    PQclear(r);
    PQfinish(c);
    return s;
}

/* Every row of the projection, every column (es_state included), as text, in key order. */
static char *dump_rows(void)
{
    return query_text("SELECT count(*) || E'\\n' || coalesce(string_agg(t::text, E'\\n' ORDER BY order_id), '')"
                      " FROM order_summary t");
}

/* The table's indexes, as defined. */
static char *dump_indexes(void)
{
    return query_text("SELECT count(*) || ':' || string_agg(indexdef, ';' ORDER BY indexname) FROM pg_indexes"
                      " WHERE tablename = 'order_summary'");
}

/* The consumer's bookkeeping of the order streams (version and parking). */
static char *dump_versions(void)
{
    return query_text("SELECT count(*) || ':' || coalesce(string_agg(s.stream_id || '=' || s.version || '/' ||"
                      " coalesce(s.dead_letter_id::text, '-'), ',' ORDER BY s.stream_id), '')"
                      " FROM es_consumer_streams s WHERE s.consumer = '" CONSUMER "'"
                      " AND s.stream_id IN (SELECT stream_id FROM es_events WHERE stream_type = 'order')");
}

static void stream_id(int i, char out[40])
{
    snprintf(out, 40, "00000000-0000-4000-8000-%012d", i);
}

/* Inserts one event in c's current transaction. */
static void put_event(PGconn *c, const char *type, const char *sid, int64_t version, const char *event_type,
                      const char *schema, const ProtobufCMessage *m)
{
    size_t len = m ? protobuf_c_message_get_packed_size(m) : 0;
    uint8_t *buf = malloc(len ? len : 1);
    if (m)
        protobuf_c_message_pack(m, buf);
    char v[24];
    snprintf(v, sizeof v, "%" PRId64, version);
    const char *p[6] = {type, sid, v, event_type, schema, (const char *)buf};
    int lens[6] = {0, 0, 0, 0, 0, (int)len}, fmts[6] = {0, 0, 0, 0, 0, 1};
    PGresult *r = PQexecParams(c,
                               "INSERT INTO es_events (event_id, stream_type, stream_id, version, event_type,"
                               " schema_name, schema_version, schema_hash, payload)"
                               " VALUES (gen_random_uuid(), $1, $2, $3::int8, $4, $5, 1, 'test', $6)",
                               6, NULL, p, lens, fmts, 0);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        fail_msg("insert %s v%" PRId64 ": %s", sid, version, PQerrorMessage(c));
    PQclear(r);
    free(buf);
}

/* Event v (1-based) of order i: placed (odd strings, sometimes no address: a NULL column),
 * payment initiated, then failed, cancelled or paid, shipping updates, sometimes delivered.
 * Returns 0 when order i has fewer than v events. */
static int order_event(PGconn *c, int i, int v, const char *suffix)
{
    char sid[40], text[256], title[128];
    stream_id(i, sid);
    int n_updates = i % 6, paid = !(i % 4 == 0 || i % 10 == 3);
    int last = i % 7 == 0 ? 1 : 3 + (paid ? n_updates + (i % 3 == 0) : 0);
    if (v > last)
        return 0;
    snprintf(text, sizeof text, "%s #%d%s", weird[(size_t)(i + v) % N_WEIRD], i, suffix ? suffix : "");
    Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
    ts.seconds = 1764211200 + i * 60 + v;
    ts.nanos = (i % 1000) * 1000 + 123000;
    Orders__V1__Money money = ORDERS__V1__MONEY__INIT;
    money.currency_code = "EUR";
    money.amount_minor = 100 + i;
    if (v == 1) {
        Orders__V1__LineItem it = ORDERS__V1__LINE_ITEM__INIT;
        snprintf(title, sizeof title, "%s", weird[(size_t)i % N_WEIRD]);
        it.product_id = "sku\\1";
        it.title = title;
        it.quantity = 1 + i % 3;
        it.unit_price = &money;
        it.line_total = &money;
        Orders__V1__LineItem *items[1] = {&it};
        Orders__V1__Address addr = ORDERS__V1__ADDRESS__INIT;
        addr.name = text;
        addr.line1 = "1 \"Main\"\tSt";
        addr.city = "Paris";
        addr.postal_code = "75001";
        addr.country_code = "FR";
        Orders__V1__OrderPlaced m = ORDERS__V1__ORDER_PLACED__INIT;
        m.order_id = sid;
        m.customer_id = text;
        m.vendor_id = (char *)weird[(size_t)i % N_WEIRD];
        m.n_items = 1;
        m.items = items;
        m.item_count = it.quantity;
        m.total = &money;
        m.payment_method = "card";
        m.shipping_address = i % 5 == 0 ? NULL : &addr;
        m.placed_at = &ts;
        put_event(c, "order", sid, v, "OrderPlaced", "orders.v1.OrderPlaced", &m.base);
    } else if (v == 2) {
        Orders__V1__OrderPaymentInitiated m = ORDERS__V1__ORDER_PAYMENT_INITIATED__INIT;
        m.order_id = sid;
        m.payment_id = text;
        m.amount = &money;
        m.initiated_at = &ts;
        put_event(c, "order", sid, v, "OrderPaymentInitiated", "orders.v1.OrderPaymentInitiated", &m.base);
    } else if (v == 3 && i % 4 == 0) {
        Orders__V1__OrderPaymentFailed m = ORDERS__V1__ORDER_PAYMENT_FAILED__INIT;
        m.order_id = sid;
        m.reason = text;
        m.failed_at = &ts;
        put_event(c, "order", sid, v, "OrderPaymentFailed", "orders.v1.OrderPaymentFailed", &m.base);
    } else if (v == 3 && i % 10 == 3) {
        Orders__V1__OrderCancelled m = ORDERS__V1__ORDER_CANCELLED__INIT;
        m.order_id = sid;
        m.reason = text;
        m.cancelled_at = &ts;
        put_event(c, "order", sid, v, "OrderCancelled", "orders.v1.OrderCancelled", &m.base);
    } else if (v == 3) {
        Orders__V1__OrderPaid m = ORDERS__V1__ORDER_PAID__INIT;
        m.order_id = sid;
        m.payment_id = "pay";
        m.amount = &money;
        m.paid_at = &ts;
        put_event(c, "order", sid, v, "OrderPaid", "orders.v1.OrderPaid", &m.base);
    } else if (v <= 3 + n_updates) {
        Orders__V1__OrderShippingStatusUpdated m = ORDERS__V1__ORDER_SHIPPING_STATUS_UPDATED__INIT;
        m.order_id = sid;
        m.status = ORDERS__V1__SHIPPING_STATUS__SHIPPING_STATUS_IN_TRANSIT;
        m.carrier = "DHL\\Express";
        m.tracking_number = "JD\t1";
        m.location = text;
        m.occurred_at = &ts;
        m.updated_at = &ts;
        put_event(c, "order", sid, v, "OrderShippingStatusUpdated", "orders.v1.OrderShippingStatusUpdated", &m.base);
    } else {
        Orders__V1__OrderDelivered m = ORDERS__V1__ORDER_DELIVERED__INIT;
        m.order_id = sid;
        m.carrier = "DHL";
        m.location = text;
        m.occurred_at = &ts;
        m.delivered_at = &ts;
        put_event(c, "order", sid, v, "OrderDelivered", "orders.v1.OrderDelivered", &m.base);
    }
    return 1;
}

/* The live projector's per-event path over every stored event (what orderd's consumer writes),
 * from an empty table (reset) or carrying on from the recorded versions. */
static int replay(int reset, int64_t *applied, es_error *err)
{
    es_replay_config rc = {.name = CONSUMER, .conninfo = pg.conninfo, .handle = es_projector_handle, .data = active,
                           .reset = reset ? es_projector_reset : NULL, .batch_max = 50};
    return es_consumer_replay(&rc, applied, err);
}

typedef struct progress_seen {
    int calls;
    int64_t last_done, last_total;
} progress_seen;

static void on_progress(void *data, int64_t done, int64_t total)
{
    progress_seen *p = data;
    p->calls++;
    p->last_done = done;
    p->last_total = total;
}

static int text_format;
static int direct_rows = 1;         /* 0: rows converted from their text (via_text) */
static const es_upcaster *upcasters;
static size_t n_upcasters;

static int rebuild(es_rebuild_result *res, progress_seen *seen, es_error *err)
{
    es_rebuild_config cfg = {.conninfo = pg.conninfo, .name = CONSUMER, .projector = active,
                             .progress = seen ? on_progress : NULL, .progress_data = seen,
                             .via_text = !direct_rows, .text_format = text_format, .upcasters = upcasters, .n_upcasters = n_upcasters};
    return es_projection_rebuild(&cfg, res, err);
}

static int setup(void **state)
{
    (void)state;
    pgt_start(&pg, "rebuild");
    pgt_exec(&pg, orders_v1_schema.migrations_sql);
    json = es_json_registry_new();
    es_json_registry_add_schema(json, &orders_v1_schema);
    proj = es_projector_new(&orders_v1_projection_order_summary, json);
    active = proj;
    /* Orders interleaved as concurrent traffic leaves them: event v of every order, then v+1,
     * one transaction per round; and a stream of another aggregate the projection ignores. */
    PGconn *c = connect_pg();
    for (int v = 1; v <= 10; v++) {
        exec_ok(c, "BEGIN");
        for (int i = 0; i < N_STREAMS; i++)
            order_event(c, i, v, NULL);
        if (v <= 3)
            put_event(c, "counter", "counter-1", v, "Created", "google.protobuf.Int64Value", NULL);
        exec_ok(c, "COMMIT");
    }
    PQfinish(c);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    es_projector_free(proj);
    es_json_registry_free(json);
    pgt_stop(&pg);
    return 0;
}

/* Run with rows in COPY's binary format written straight from the state (the default), in the
 * binary format converted from the rows' text (no JSON registry given), then in the text
 * format: the same rows as the live path each time. */
static void test_equals_fold(void **state)
{
    text_format = *state && !strcmp(*state, "text");
    direct_rows = !*state;
    /* Every column of order_summary has a direct encoding, so the default run takes that path. */
    assert_true(es_projection_binary_supported(&orders_v1_projection_order_summary));
    es_error err = {0};
    int64_t applied = 0;
    assert_int_equal(replay(1, &applied, &err), ES_OK);
    long long events = pgt_scalar(&pg, "SELECT count(*) FROM es_events WHERE stream_type = 'order'");
    assert_true(events > 2000);
    char *want_rows = dump_rows(), *want_versions = dump_versions();
    /* Odd values went through: tabs, newlines and backslashes in text and inside jsonb, NULLs. */
    assert_true(pgt_scalar(&pg, "SELECT count(*) FROM order_summary WHERE customer_id LIKE E'tab\\there%'") > 0);
    assert_true(pgt_scalar(&pg, "SELECT count(*) FROM order_summary WHERE items->0->>'title' = E'new\\nline'") > 0);
    assert_true(pgt_scalar(&pg, "SELECT count(*) FROM order_summary WHERE vendor_id = E'\\\\N'") > 0);
    assert_true(pgt_scalar(&pg, "SELECT count(*) FROM order_summary WHERE shipping_address IS NULL") > 0);
    assert_true(pgt_scalar(&pg, "SELECT count(*) FROM order_summary WHERE paid_amount IS NULL") > 0);

    /* Damage the table and the bookkeeping the way bugs and hand-edits do. */
    pgt_exec(&pg, "UPDATE order_summary SET status = 'BOGUS', created_at = now()"
                  " WHERE order_id = '00000000-0000-4000-8000-000000000001'");
    pgt_exec(&pg, "DELETE FROM order_summary WHERE order_id = '00000000-0000-4000-8000-000000000002'");
    pgt_exec(&pg, "INSERT INTO order_summary (order_id, status, es_state)"
                  " VALUES ('10000000-0000-4000-8000-000000000000', 'X', '')");
    pgt_exec(&pg, "UPDATE es_consumer_streams SET dead_letter_id = 42, version = 1"
                  " WHERE consumer = '" CONSUMER "' AND stream_id = '00000000-0000-4000-8000-000000000003'");
    char *damaged = dump_rows(), *indexes = dump_indexes();
    assert_string_not_equal(damaged, want_rows);
    assert_non_null(strstr(indexes, "5:")); /* the key and the four list indexes */

    es_rebuild_result res = {0};
    progress_seen seen = {0};
    int rc = rebuild(&res, &seen, &err);
    if (rc != ES_OK)
        fail_msg("rebuild: %s", err.message);
    assert_int_equal(res.events, events);
    assert_int_equal(res.rows, N_STREAMS);
    assert_true(seen.calls >= 2);
    assert_int_equal(seen.last_done, events);
    assert_int_equal(seen.last_total, events);
    char *rows = dump_rows(), *versions = dump_versions(), *indexes2 = dump_indexes();
    assert_string_equal(rows, want_rows);
    assert_string_equal(versions, want_versions);
    assert_string_equal(indexes2, indexes); /* dropped for the load, made again */
    free(indexes);
    free(indexes2);
    /* The other aggregate's stream: no row, and no bookkeeping for it from the rebuild. */
    assert_int_equal(pgt_scalar(&pg, "SELECT count(*) FROM es_consumer_streams WHERE stream_id = 'counter-1'"), 0);

    /* And the live path carries on from it: nothing to apply, nothing changes. */
    assert_int_equal(replay(0, &applied, &err), ES_OK);
    assert_int_equal(applied, 3); /* only the other aggregate's stream, unknown to the rebuild */
    char *after = dump_rows();
    assert_string_equal(after, want_rows);
    free(after);
    free(rows);
    free(versions);
    free(damaged);
    free(want_rows);
    free(want_versions);
    text_format = 0;
    direct_rows = 1;
}

/* A rebuild that must fail, and leave the table and the bookkeeping exactly as they were. */
static void expect_failure(int want, const char *in_message)
{
    char *rows = dump_rows(), *versions = dump_versions(), *indexes = dump_indexes();
    es_error err = {0};
    es_rebuild_result res = {0};
    int rc = rebuild(&res, NULL, &err);
    assert_int_equal(rc, want);
    if (!strstr(err.message, in_message))
        fail_msg("error \"%s\" does not mention \"%s\"", err.message, in_message);
    char *rows2 = dump_rows(), *versions2 = dump_versions();
    assert_string_equal(rows2, rows);
    assert_string_equal(versions2, versions);
    char *indexes2 = dump_indexes();
    assert_string_equal(indexes2, indexes);
    free(indexes);
    free(indexes2);
    /* Nothing left locked. */
    PGconn *c = connect_pg();
    exec_ok(c, "SET lock_timeout = '5s'; BEGIN; LOCK TABLE es_consumer_streams IN SHARE ROW EXCLUSIVE MODE;"
               " LOCK TABLE order_summary IN ACCESS EXCLUSIVE MODE; ROLLBACK");
    PQfinish(c);
    free(rows);
    free(versions);
    free(rows2);
    free(versions2);
}

static void test_gap_is_data_loss(void **state)
{
    (void)state;
    const char *sid = "00000000-0000-4000-8000-000000000005"; /* 5 events and more */
    assert_true(pgt_scalar(&pg, "SELECT max(version) FROM es_events WHERE stream_id = '00000000-0000-4000-8000-000000000005'") >= 4);
    pgt_exec(&pg, "CREATE TABLE saved AS SELECT * FROM es_events WHERE stream_id = '00000000-0000-4000-8000-000000000005'"
                  " AND version = 3; DELETE FROM es_events WHERE stream_id = '00000000-0000-4000-8000-000000000005'"
                  " AND version = 3");
    char want[128];
    snprintf(want, sizeof want, "stream %s: version 3 is missing", sid);
    expect_failure(ES_DATA_LOSS, want);
    pgt_exec(&pg, "INSERT INTO es_events OVERRIDING SYSTEM VALUE SELECT * FROM saved; DROP TABLE saved");
    es_error err = {0};
    assert_int_equal(rebuild(NULL, NULL, &err), ES_OK);
}

static void test_unknown_type_fails(void **state)
{
    (void)state;
    pgt_exec(&pg, "INSERT INTO es_events (event_id, stream_type, stream_id, version, event_type, schema_name,"
                  " schema_version, schema_hash, payload) SELECT gen_random_uuid(), 'order', stream_id, max(version) + 1,"
                  " 'OrderTeleported', 'orders.v1.OrderTeleported', 1, 'x', '' FROM es_events"
                  " WHERE stream_id = '00000000-0000-4000-8000-000000000007' GROUP BY stream_id");
    expect_failure(ES_INVALID_ARGUMENT, "OrderTeleported");
    pgt_exec(&pg, "DELETE FROM es_events WHERE event_type = 'OrderTeleported'");
}

static void test_apply_error_fails(void **state)
{
    (void)state;
    /* A second OrderPlaced: the generated apply refuses a creating event on an existing stream. */
    pgt_exec(&pg, "INSERT INTO es_events (event_id, stream_type, stream_id, version, event_type, schema_name,"
                  " schema_version, schema_hash, payload) SELECT gen_random_uuid(), 'order', stream_id, max(version) + 1,"
                  " 'OrderPlaced', 'orders.v1.OrderPlaced', 1, 'x',"
                  " (SELECT payload FROM es_events WHERE stream_id = '00000000-0000-4000-8000-000000000008' AND version = 1)"
                  " FROM es_events WHERE stream_id = '00000000-0000-4000-8000-000000000008' GROUP BY stream_id");
    expect_failure(ES_FAILED_PRECONDITION, "00000000-0000-4000-8000-000000000008");
    pgt_exec(&pg, "DELETE FROM es_events WHERE stream_id = '00000000-0000-4000-8000-000000000008' AND version > 1"
                  " AND event_type = 'OrderPlaced'");
}

/* An upcaster for shipping updates stored with schema version 0: marks the location. */
static int upcast_location(uint32_t stored_version, ProtobufCMessage *event, es_arena *arena, es_error *err)
{
    (void)err;
    Orders__V1__OrderShippingStatusUpdated *m = (Orders__V1__OrderShippingStatusUpdated *)event;
    m->location = es_arena_sprintf(arena, "upcast from v%u: %s", stored_version, m->location);
    return ES_OK;
}

/* The order aggregate as a later schema would have it: OrderShippingStatusUpdated at schema
 * version 2, so the stored events (version 1) are older than their definition. */
static es_event_def ship_v2;
static const es_event_def *events_v2[32];
static es_aggregate_def order_v2;
static es_projection_def summary_v2;

static void test_upcasts(void **state)
{
    (void)state;
    ship_v2 = orders_v1_event_OrderShippingStatusUpdated;
    ship_v2.schema_version = 2;
    order_v2 = orders_v1_aggregate_order;
    assert_true(order_v2.n_events <= 32);
    for (size_t i = 0; i < order_v2.n_events; i++)
        events_v2[i] = order_v2.events[i] == &orders_v1_event_OrderShippingStatusUpdated ? &ship_v2 : order_v2.events[i];
    order_v2.events = events_v2;
    summary_v2 = orders_v1_projection_order_summary;
    summary_v2.aggregate = &order_v2;
    static const es_upcaster ups[] = {{&ship_v2, upcast_location}};
    es_projector *p2 = es_projector_new(&summary_v2, json);
    es_projector_set_upcasters(p2, ups, 1);
    active = p2;
    es_error err = {0};
    int64_t applied = 0;
    assert_int_equal(replay(1, &applied, &err), ES_OK);
    char *want_rows = dump_rows();
    assert_non_null(strstr(want_rows, "upcast from v1: "));
    upcasters = ups;
    n_upcasters = 1;
    int rc = rebuild(NULL, NULL, &err);
    if (rc != ES_OK)
        fail_msg("rebuild with upcasters: %s", err.message);
    char *rows = dump_rows();
    assert_string_equal(rows, want_rows);
    /* None in the config: the rebuild takes the projector's own, the same rows. */
    upcasters = NULL;
    n_upcasters = 0;
    assert_int_equal(rebuild(NULL, NULL, &err), ES_OK);
    char *dflt = dump_rows();
    assert_string_equal(dflt, want_rows);
    /* A projector without upcasters folds the events as stored: another result. */
    es_projector *p3 = es_projector_new(&summary_v2, json);
    active = p3;
    assert_int_equal(rebuild(NULL, NULL, &err), ES_OK);
    char *plain = dump_rows();
    assert_string_not_equal(plain, want_rows);
    active = proj;
    es_projector_free(p2);
    es_projector_free(p3);
    assert_int_equal(rebuild(NULL, NULL, &err), ES_OK);
    free(dflt);
    free(plain);
    free(rows);
    free(want_rows);
}

typedef struct rebuild_job {
    int rc;
    es_error err;
    volatile int done;
} rebuild_job;

static void *rebuild_thread(void *arg)
{
    rebuild_job *j = arg;
    j->rc = rebuild(NULL, NULL, &j->err);
    __atomic_store_n(&j->done, 1, __ATOMIC_RELEASE);
    return NULL;
}

/* Waits (up to 60 s) until the rebuild's writer is blocked on a lock: the condition the
 * lock-order tests need before they let the live transaction go on. */
static void wait_rebuild_blocked(void)
{
    for (int i = 0; i < 3000; i++) {
        if (pgt_scalar(&pg, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'es-rebuild'"
                            " AND wait_event_type = 'Lock'") >= 1)
            return;
        usleep(20 * 1000);
    }
    fail_msg("the rebuild never waited for the live transaction's lock");
}

static void test_waits_for_open_batch(void **state)
{
    (void)state;
    es_error err = {0};
    assert_int_equal(rebuild(NULL, NULL, &err), ES_OK);
    char *want_rows = dump_rows();
    /* A live batch: the stream's bookkeeping row first, as the runner takes it. */
    PGconn *live = connect_pg();
    exec_ok(live, "BEGIN; INSERT INTO es_consumer_streams AS s (consumer, stream_id, version)"
                  " VALUES ('" CONSUMER "', '00000000-0000-4000-8000-000000000009', 0)"
                  " ON CONFLICT (consumer, stream_id) DO UPDATE SET version = s.version RETURNING version");
    rebuild_job job = {0};
    pthread_t th;
    pthread_create(&th, NULL, rebuild_thread, &job);
    wait_rebuild_blocked();
    assert_int_equal(__atomic_load_n(&job.done, __ATOMIC_ACQUIRE), 0);
    /* The batch goes on to the projection table (which the rebuild has not locked yet: no
     * deadlock), changes a row and commits; the rebuild then runs and replaces it. */
    exec_ok(live, "UPDATE order_summary SET status = 'LIVE' WHERE order_id = '00000000-0000-4000-8000-000000000009'");
    exec_ok(live, "COMMIT");
    pthread_join(th, NULL);
    assert_int_equal(job.rc, ES_OK);
    char *rows = dump_rows();
    assert_string_equal(rows, want_rows);
    PQfinish(live);
    free(rows);
    free(want_rows);
}

/* The set-wise live path: it reads its streams' versions without locks, writes the projection,
 * then records the versions (the opposite order on the tables' write locks). The rebuild must
 * wait for it from the read on, or the two would deadlock. */
static void test_waits_for_optimistic_batch(void **state)
{
    (void)state;
    es_error err = {0};
    assert_int_equal(rebuild(NULL, NULL, &err), ES_OK);
    char *want_rows = dump_rows();
    PGconn *live = connect_pg();
    exec_ok(live, "SET lock_timeout = '10s'; SET deadlock_timeout = '100ms'; BEGIN;"
                  " SELECT stream_id, version FROM es_consumer_streams WHERE consumer = '" CONSUMER "'"
                  " AND stream_id = '00000000-0000-4000-8000-000000000010'");
    rebuild_job job = {0};
    pthread_t th;
    pthread_create(&th, NULL, rebuild_thread, &job);
    wait_rebuild_blocked();
    assert_int_equal(__atomic_load_n(&job.done, __ATOMIC_ACQUIRE), 0);
    /* The batch writes the projection, then its versions: neither waits for the rebuild. */
    exec_ok(live, "UPDATE order_summary SET status = 'LIVE' WHERE order_id = '00000000-0000-4000-8000-000000000010'");
    exec_ok(live, "UPDATE es_consumer_streams SET version = version WHERE consumer = '" CONSUMER "'"
                  " AND stream_id = '00000000-0000-4000-8000-000000000010'");
    exec_ok(live, "COMMIT");
    pthread_join(th, NULL);
    if (job.rc != ES_OK)
        fail_msg("rebuild after an optimistic batch: %s", job.err.message);
    char *rows = dump_rows();
    assert_string_equal(rows, want_rows);
    PQfinish(live);
    free(rows);
    free(want_rows);
}

/* ---- a live consumer and writers during rebuilds ---- */

typedef struct live {
    volatile int stop;
    int64_t written, applied, passes;
    int rc;
    es_error err;
    int versions[N_STREAMS + 200];
} live;

/* Appends events: shipping updates to existing orders and new orders, one transaction each. */
static void *writer_thread(void *arg)
{
    live *l = arg;
    PGconn *c = connect_pg();
    for (int k = 0; !__atomic_load_n(&l->stop, __ATOMIC_ACQUIRE) && k < 100000; k++) {
        exec_ok(c, "BEGIN");
        int i = k % 3 == 0 && N_STREAMS + k / 3 < N_STREAMS + 200 ? N_STREAMS + k / 3 : (k * 7) % N_STREAMS;
        char sid[40], loc[64];
        stream_id(i, sid);
        if (i >= N_STREAMS) {
            order_event(c, i, 1, "\tlive");
            l->versions[i] = 1;
        } else {
            Orders__V1__OrderShippingStatusUpdated m = ORDERS__V1__ORDER_SHIPPING_STATUS_UPDATED__INIT;
            snprintf(loc, sizeof loc, "live\\update\n%d", k);
            m.order_id = sid;
            m.status = ORDERS__V1__SHIPPING_STATUS__SHIPPING_STATUS_IN_TRANSIT;
            m.location = loc;
            put_event(c, "order", sid, ++l->versions[i], "OrderShippingStatusUpdated",
                      "orders.v1.OrderShippingStatusUpdated", &m.base);
        }
        exec_ok(c, "COMMIT");
        __atomic_add_fetch(&l->written, 1, __ATOMIC_RELAXED);
        usleep(2000);
    }
    PQfinish(c);
    return NULL;
}

/* The live projector's path, over and over, carrying on from the recorded versions. */
static void *consumer_thread(void *arg)
{
    live *l = arg;
    while (!__atomic_load_n(&l->stop, __ATOMIC_ACQUIRE)) {
        int64_t applied = 0;
        es_error err = {0};
        int rc = replay(0, &applied, &err);
        if (rc != ES_OK) {
            l->rc = rc;
            l->err = err;
            return NULL;
        }
        __atomic_add_fetch(&l->applied, applied, __ATOMIC_RELAXED);
        __atomic_add_fetch(&l->passes, 1, __ATOMIC_RELAXED);
    }
    return NULL;
}

static void test_concurrent_live_consumer(void **state)
{
    (void)state;
    es_error err = {0};
    assert_int_equal(rebuild(NULL, NULL, &err), ES_OK);
    static live l;
    memset(&l, 0, sizeof l);
    for (int i = 0; i < N_STREAMS; i++) {
        char sql[160];
        snprintf(sql, sizeof sql, "SELECT max(version) FROM es_events WHERE stream_id = '00000000-0000-4000-8000-%012d'",
                 i);
        l.versions[i] = (int)pgt_scalar(&pg, sql);
    }
    pthread_t w, c;
    pthread_create(&w, NULL, writer_thread, &l);
    pthread_create(&c, NULL, consumer_thread, &l);
    /* Live traffic first: the writer's first appends. */
    for (int i = 0; i < 3000 && __atomic_load_n(&l.written, __ATOMIC_RELAXED) == 0; i++)
        usleep(20 * 1000);
    /* At least three rebuilds, and until the consumer has made two passes (slow machines). */
    double deadline = now_s() + 90;
    for (int round = 0; round < 3 || (__atomic_load_n(&l.passes, __ATOMIC_RELAXED) < 2 && now_s() < deadline);
         round++) {
        int64_t before = __atomic_load_n(&l.written, __ATOMIC_RELAXED);
        es_rebuild_result res = {0};
        int rc = rebuild(&res, NULL, &err);
        if (rc != ES_OK)
            fail_msg("rebuild during live traffic: %s", err.message);
        assert_true(res.rows >= N_STREAMS);
        /* Appends went on during and after the rebuild: wait for the writer's next one. */
        for (int i = 0; i < 3000 && __atomic_load_n(&l.written, __ATOMIC_RELAXED) <= before; i++)
            usleep(20 * 1000);
        assert_true(__atomic_load_n(&l.written, __ATOMIC_RELAXED) > before);
    }
    __atomic_store_n(&l.stop, 1, __ATOMIC_RELEASE);
    pthread_join(w, NULL);
    pthread_join(c, NULL);
    if (l.rc != ES_OK)
        fail_msg("the live consumer failed: %s", l.err.message);
    assert_true(l.passes >= 2);
    assert_true(l.applied > 0);
    /* Catch up, then compare with the fold of every event by the per-event path. */
    int64_t applied = 0;
    assert_int_equal(replay(0, &applied, &err), ES_OK);
    char *rows = dump_rows(), *versions = dump_versions();
    assert_int_equal(replay(1, &applied, &err), ES_OK);
    char *want_rows = dump_rows(), *want_versions = dump_versions();
    assert_string_equal(rows, want_rows);
    assert_string_equal(versions, want_versions);
    /* And so does a rebuild. */
    assert_int_equal(rebuild(NULL, NULL, &err), ES_OK);
    char *rebuilt = dump_rows();
    assert_string_equal(rebuilt, want_rows);
    free(rebuilt);
    free(rows);
    free(versions);
    free(want_rows);
    free(want_versions);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_prestate(test_equals_fold, NULL),
        cmocka_unit_test_prestate(test_equals_fold, "converted"),
        cmocka_unit_test_prestate(test_equals_fold, "text"),
        cmocka_unit_test(test_gap_is_data_loss),
        cmocka_unit_test(test_unknown_type_fails),
        cmocka_unit_test(test_apply_error_fails),
        cmocka_unit_test(test_upcasts),
        cmocka_unit_test(test_waits_for_open_batch),
        cmocka_unit_test(test_waits_for_optimistic_batch),
        cmocka_unit_test(test_concurrent_live_consumer),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
