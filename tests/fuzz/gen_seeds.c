/* Writes the seed corpora of the fuzz targets into <dir>/<target>/, from the current schema:
 * a valid request per OrderService method as JSON (fuzz_json) and packed protobuf (fuzz_protobuf),
 * typical request targets (fuzz_router), and packed envelopes and header sets (fuzz_envelope).
 * Every seed starts with the selector byte its target documents.
 * Usage: fuzz_seeds <dir>. Exit status 1 if a seed does not decode, a request seed does not
 * pass its method's validation, or a method, route or event type of the generated tables has no
 * seed or target (the tables here are out of date with proto/; each such one is named). */
#include <errno.h>
#include <sys/stat.h>

#include "fuzz_common.h"
#include "es/envelope.h"

#define UUID "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"
#define ADDRESS "{\"name\":\"Ada Lovelace\",\"line1\":\"12 St James's Sq\",\"city\":\"London\"," \
                "\"postal_code\":\"SW1Y 4JH\",\"country_code\":\"GB\"}"

/* One valid input per method, by method name (proto names; a camelCase variant is derived). */
static const struct { const char *method, *json; } requests[] = {
    {"PlaceOrder", "{\"customer_id\":\"c-1\",\"vendor_id\":\"v-1\",\"payment_method\":\"card\",\"items\":["
                   "{\"product_id\":\"sku-1\",\"title\":\"Tea\",\"quantity\":2,\"unit_price\":{\"currency_code\":\"EUR\","
                   "\"amount_minor\":\"1250\"}},{\"product_id\":\"sku-2\",\"quantity\":1,\"unit_price\":{\"currency_code\":"
                   "\"EUR\",\"amount_minor\":500}}],\"shipping_address\":" ADDRESS ",\"request_id\":\"r-1\"}"},
    {"PlaceOrder", "{\"orderId\":\"" UUID "\",\"customerId\":\"c\",\"vendorId\":\"v\",\"paymentMethod\":\"x\","
                   "\"items\":[{\"productId\":\"p\",\"quantity\":1,\"unitPrice\":{\"currencyCode\":\"USD\","
                   "\"amountMinor\":\"1\"}}],\"shippingAddress\":" ADDRESS ",\"expectedVersion\":\"0\"}"},
    {"CancelOrder", "{\"order_id\":\"" UUID "\",\"reason\":\"changed my mind\",\"expected_version\":3}"},
    {"UpdateOrderShippingStatus", "{\"order_id\":\"" UUID "\",\"status\":\"SHIPPING_STATUS_IN_TRANSIT\","
                                  "\"carrier\":\"DHL\",\"tracking_number\":\"JD0001\",\"location\":\"Leipzig\","
                                  "\"occurred_at\":\"2024-05-01T10:00:00.250Z\"}"},
    {"UpdateOrderShippingStatus", "{\"order_id\":\"" UUID "\",\"status\":4,\"carrier\":\"UPS\","
                                  "\"tracking_number\":\"1Z\"}"},
    {"InitiatePayment", "{\"order_id\":\"" UUID "\",\"payment_id\":\"pay-1\",\"request_id\":\"r\"}"},
    {"AuthorisePayment", "{\"order_id\":\"" UUID "\",\"authorisation_code\":\"A1B2\"}"},
    {"MarkOrderPaid", "{\"order_id\":\"" UUID "\",\"amount\":{\"currency_code\":\"EUR\",\"amount_minor\":\"3000\"}}"},
    {"FailPayment", "{\"order_id\":\"" UUID "\",\"reason\":\"card declined\"}"},
    {"RefundPayment", "{\"order_id\":\"" UUID "\",\"reason\":\"damaged\"}"},
    {"GetOrder", "{\"order_id\":\"" UUID "\",\"min_version\":\"2\"}"},
    {"ListOrders", "{\"customer_id\":\"c-1\",\"status\":\"ORDER_STATUS_PAID\",\"limit\":10,\"page_token\":\"abc\"}"},
    {"GetOrderEvents", "{\"order_id\":\"" UUID "\"}"},
};

/* Request targets: selector byte (method, table) and target. */
static const struct { uint8_t sel; const char *target; } targets[] = {
    {1, "/v1/orders"},
    {0, "/v1/orders?customer_id=c-1&status=ORDER_STATUS_PAID&limit=10&offset=0&page_token=abc"},
    {0, "/v1/orders?vendor_id=v%201&status=2&limit=+5"},
    {0, "/v1/orders/" UUID},
    {0, "/v1/orders/" UUID "?min_version=3"},
    {0, "/v1/orders/" UUID "/events"},
    {1, "/v1/orders/" UUID "/cancel"},
    {2, "/v1/orders/" UUID "/shipping-status"},
    {1, "/v1/orders/" UUID "/payment:initiate"},
    {1, "/v1/orders/" UUID "/payment:authorise"},
    {1, "/v1/orders/" UUID "/payment:paid"},
    {1, "/v1/orders/" UUID "/payment:fail"},
    {1, "/v1/orders/" UUID "/payment:refund"},
    {4, "/v1/orders/" UUID},                    /* 405 */
    {0, "/v1/orders/a%2Fb%20c/events?x=%E2%82%AC&&y"},
    {7, "BREW /v1/orders"},
    {0x08, "/v1/shelves/s1/books/b%2F2"},
    {0x08, "/files/a/b/c.txt"},
    {0x08, "/v1/cities/S%C3%A3o%20Paulo/orders?q=a+b"},
    {0x09, "/v1/projects/p1/things:batchGet"},
    {0x0c, "/v1/things/t1:purge"},
    {0x0b, "/v1/z/x/abc/d/e/f"},
    {0x38, "/v1/orders/search?a=1&b=%2F+x"},
};

/* One valid payload per event type, by aggregate and event type; every event of every package
 * the fuzz build links must have one (check_every_event_seeded). */
#define EUR(minor) "{\"currency_code\":\"EUR\",\"amount_minor\":\"" minor "\"}"
static const struct { const char *aggregate, *type, *json; } events[] = {
    {"order", "OrderPlaced",
     "{\"order_id\":\"" UUID "\",\"customer_id\":\"c-1\",\"vendor_id\":\"v-1\",\"items\":["
     "{\"product_id\":\"sku-1\",\"quantity\":2,\"unit_price\":" EUR("1250") ",\"line_total\":" EUR("2500") "}],"
     "\"item_count\":2,\"total\":" EUR("2500") ",\"payment_method\":\"card\",\"shipping_address\":" ADDRESS ","
     "\"placed_at\":\"2024-05-01T10:00:00Z\"}"},
    {"order", "OrderPaymentInitiated",
     "{\"order_id\":\"" UUID "\",\"payment_id\":\"pay-1\",\"amount\":" EUR("2500") ","
     "\"initiated_at\":\"2024-05-01T10:30:00Z\"}"},
    {"order", "OrderPaymentAuthorised",
     "{\"order_id\":\"" UUID "\",\"payment_id\":\"pay-1\",\"authorisation_code\":\"A1B2\","
     "\"authorised_at\":\"2024-05-01T10:45:00.5Z\"}"},
    {"order", "OrderPaid",
     "{\"order_id\":\"" UUID "\",\"payment_id\":\"pay-1\",\"amount\":" EUR("2500") ","
     "\"paid_at\":\"2024-05-01T11:00:00Z\"}"},
    {"order", "OrderPaymentFailed",
     "{\"order_id\":\"" UUID "\",\"payment_id\":\"pay-1\",\"reason\":\"card declined\","
     "\"failed_at\":\"2024-05-01T11:00:00Z\"}"},
    {"order", "OrderPaymentRefunded",
     "{\"order_id\":\"" UUID "\",\"payment_id\":\"pay-1\",\"amount\":" EUR("2500") ",\"reason\":\"damaged\","
     "\"refunded_at\":\"2024-05-03T09:00:00Z\",\"refund_due\":false}"},
    {"order", "OrderShippingStatusUpdated",
     "{\"order_id\":\"" UUID "\",\"status\":\"SHIPPING_STATUS_IN_TRANSIT\",\"carrier\":\"DHL\","
     "\"tracking_number\":\"JD0001\",\"location\":\"Leipzig\",\"occurred_at\":\"2024-05-02T08:00:00Z\","
     "\"updated_at\":\"2024-05-02T08:00:01Z\"}"},
    {"order", "OrderDelivered",
     "{\"order_id\":\"" UUID "\",\"carrier\":\"DHL\",\"tracking_number\":\"JD0001\",\"location\":\"London\","
     "\"occurred_at\":\"2024-05-03T08:00:00Z\",\"delivered_at\":\"2024-05-03T08:00:02Z\"}"},
    {"order", "OrderCancelled",
     "{\"order_id\":\"" UUID "\",\"reason\":\"late\",\"cancelled_at\":\"2024-05-02T00:00:00Z\","
     "\"refund_due\":true}"},
};

/* Well-known types for fuzz_json's selectors above the method count, in its order. */
static const char *const wkt_json[] = {
    "{\"a\":[1,\"x\",null,true,{\"b\":-2.5e3}],\"c\":{}}",
    "[{\"k\":\"v\"},1e308,\"s\\u00e9\",false,null]",
    "{\"@type\":\"type.googleapis.com/orders.v1.Money\",\"currency_code\":\"EUR\",\"amount_minor\":\"5\"}",
    "\"-315576000000.999999999s\"",
    "\"fooBar,baz.quxQuux\"",
};

static const char *out_dir;
static int failures;

static void put(const char *target, const char *name, uint8_t sel, const void *data, size_t len)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", out_dir, target);
    if (mkdir(path, 0777) != 0 && errno != EEXIST) {
        perror(path);
        exit(1);
    }
    snprintf(path, sizeof path, "%s/%s/%s", out_dir, target, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(&sel, 1, 1, f) != 1 || (len && fwrite(data, 1, len, f) != len) || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

static int method_index(const char *name)
{
    const es_service_def *svc = &orders_v1_service_OrderService;
    for (size_t i = 0; i < svc->n_methods; i++)
        if (strcmp(svc->methods[i]->name, name) == 0)
            return (int)i;
    return -1;
}

/* A request target (query ignored) that a route template matches: segment by segment, a
 * "{variable}" segment matching any non-empty one. */
static int template_matches(const char *tpl, const char *target)
{
    size_t tl = strcspn(target, "?");
    while (*tpl && tl) {
        size_t a = strcspn(tpl, "/"), b = strcspn(target, "/?");
        if (b > tl)
            b = tl;
        if (!(tpl[0] == '{' && b > 0) && (a != b || strncmp(tpl, target, a) != 0))
            return 0;
        tpl += a;
        target += b;
        tl -= b;
        if ((*tpl == '/') != (tl && *target == '/'))
            return 0;
        if (*tpl == '/') {
            tpl++;
            target++;
            tl--;
        }
    }
    return !*tpl && !tl;
}

/* Every method of the generated method table has a request seed and every route of its route
 * table a request target: a method added to proto/ without them fails here, named, instead of
 * going unfuzzed. */
static void check_every_method_seeded(void)
{
    static const char *const verbs[] = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"};
    const es_service_def *svc = &orders_v1_service_OrderService;
    for (size_t i = 0; i < svc->n_methods; i++) {
        int found = 0;
        for (size_t k = 0; k < sizeof requests / sizeof *requests; k++)
            found |= strcmp(requests[k].method, svc->methods[i]->name) == 0;
        if (!found) {
            fprintf(stderr, "method %s of %s has no request seed (tests/fuzz/gen_seeds.c, requests[])\n",
                    svc->methods[i]->name, svc->name);
            failures++;
        }
    }
    for (size_t i = 0; i < svc->n_routes; i++) {
        const es_route_def *r = &svc->routes[i];
        int found = 0;
        for (size_t k = 0; k < sizeof targets / sizeof *targets; k++) {
            uint8_t sel = targets[k].sel;
            found |= !(sel & 8) && (sel & 7) < 7 && strcmp(verbs[sel & 7], r->http_method) == 0 &&
                     template_matches(r->path, targets[k].target);
        }
        if (!found) {
            fprintf(stderr, "route %s %s (method %s) has no request target (tests/fuzz/gen_seeds.c, targets[])\n",
                    r->http_method, r->path, r->method->name);
            failures++;
        }
    }
}

/* Every event type of every aggregate of every package the fuzz build links has an envelope
 * seed: an event added to proto/ without one fails here, named, instead of going unfuzzed. */
static void check_every_event_seeded(void)
{
    const es_schema *const *schemas;
    size_t n = fuzz_schemas(&schemas);
    for (size_t s = 0; s < n; s++)
        for (size_t g = 0; g < schemas[s]->n_aggregates; g++) {
            const es_aggregate_def *agg = schemas[s]->aggregates[g];
            for (size_t e = 0; e < agg->n_events; e++) {
                int found = 0;
                for (size_t k = 0; k < sizeof events / sizeof *events; k++)
                    found |= strcmp(events[k].aggregate, agg->name) == 0 &&
                             strcmp(events[k].type, agg->events[e]->type) == 0;
                if (!found) {
                    fprintf(stderr, "event %s of aggregate %s (%s) has no envelope seed (tests/fuzz/gen_seeds.c, events[])\n",
                            agg->events[e]->type, agg->name, schemas[s]->package);
                    failures++;
                }
            }
        }
}

/* The aggregate named name in the packages the fuzz build links, NULL if none. */
static const es_aggregate_def *find_aggregate(const char *name)
{
    const es_schema *const *schemas;
    size_t n = fuzz_schemas(&schemas);
    for (size_t s = 0; s < n; s++)
        for (size_t g = 0; g < schemas[s]->n_aggregates; g++)
            if (strcmp(schemas[s]->aggregates[g]->name, name) == 0)
                return schemas[s]->aggregates[g];
    return NULL;
}

static ProtobufCMessage *decode(const ProtobufCMessageDescriptor *d, const char *json, es_arena *a)
{
    ProtobufCMessage *m = NULL;
    es_error err = {0};
    es_json_options o = {0};
    if (es_json_decode(fuzz_registry(), d, json, strlen(json), &o, a, &m, &err) != ES_OK) {
        fprintf(stderr, "seed for %s does not decode: %s: %s\n", d->name, err.field, err.message);
        failures++;
        return NULL;
    }
    return m;
}

static void request_seeds(es_arena *a)
{
    for (size_t i = 0; i < sizeof requests / sizeof *requests; i++) {
        int mi = method_index(requests[i].method);
        if (mi < 0) {
            fprintf(stderr, "no method %s in OrderService\n", requests[i].method);
            failures++;
            continue;
        }
        const es_method_def *m = orders_v1_service_OrderService.methods[mi];
        const char *json = requests[i].json;
        char name[64];
        snprintf(name, sizeof name, "%02zu-%s.json", i, m->name);
        put("json", name, (uint8_t)mi, json, strlen(json));
        ProtobufCMessage *msg = decode(m->input, json, a);
        if (!msg)
            continue;
        es_error verr = {0};
        if (m->validate && m->validate(msg, &verr) != ES_OK) {
            /* A seed should reach past validation, or the fuzzer starts on the error path. */
            fprintf(stderr, "seed for %s does not validate: %s: %s\n", m->name, verr.field, verr.message);
            failures++;
        }
        /* The same message written back in lowerCamelCase with defaults, read by merge. */
        es_buf b;
        es_buf_init(&b);
        es_json_options o = {.lower_camel_output = 1, .emit_defaults = 1};
        es_error err = {0};
        if (es_json_encode(fuzz_registry(), msg, &o, &b, &err) == ES_OK) {
            snprintf(name, sizeof name, "%02zu-%s-camel.json", i, m->name);
            put("json", name, (uint8_t)(0x80 | 0x60 | mi), b.data, b.len);
        }
        es_buf_free(&b);
        size_t n = protobuf_c_message_get_packed_size(msg);
        uint8_t *bin = es_arena_alloc(a, n ? n : 1);
        protobuf_c_message_pack(msg, bin);
        snprintf(name, sizeof name, "%02zu-%s.bin", i, m->name);
        put("protobuf", name, (uint8_t)mi, bin, n);
    }
}

static void wkt_seeds(void)
{
    size_t n_methods = orders_v1_service_OrderService.n_methods;
    for (size_t i = 0; i < sizeof wkt_json / sizeof *wkt_json; i++) {
        char name[32];
        snprintf(name, sizeof name, "wkt-%zu.json", i);
        put("json", name, (uint8_t)(n_methods + i), wkt_json[i], strlen(wkt_json[i]));
    }
}

static void router_seeds(void)
{
    for (size_t i = 0; i < sizeof targets / sizeof *targets; i++) {
        char name[32];
        snprintf(name, sizeof name, "%02zu.txt", i);
        put("router", name, targets[i].sel, targets[i].target, strlen(targets[i].target));
    }
}

static void envelope_seeds(es_arena *a)
{
    for (size_t i = 0; i < sizeof events / sizeof *events; i++) {
        const es_aggregate_def *agg = find_aggregate(events[i].aggregate);
        const es_event_def *def = agg ? es_schema_find_event(agg, events[i].type) : NULL;
        if (!def) {
            fprintf(stderr, "no event %s in aggregate %s\n", events[i].type, events[i].aggregate);
            failures++;
            continue;
        }
        ProtobufCMessage *ev = decode(def->descriptor, events[i].json, a);
        if (!ev)
            continue;
        size_t n = protobuf_c_message_get_packed_size(ev);
        uint8_t *payload = es_arena_alloc(a, n ? n : 1);
        protobuf_c_message_pack(ev, payload);

        es_envelope_view v;
        es_envelope_view_clear(&v);
        v.event_id = "0190a1b2-0000-7000-8000-000000000001";
        v.stream_id = UUID;
        v.stream_type = agg->name;
        v.event_type = def->type;
        v.schema = def->schema;
        v.schema_hash = "4f1c2a";
        v.command_id = "0190a1b2-0000-7000-8000-0000000000c1";
        v.correlation_id = i ? "corr-1" : "";
        v.actor = "customer:c-1";
        v.version = (int64_t)i + 1;
        v.position = 1000 + (int64_t)i;
        v.schema_version = def->schema_version;
        v.recorded_at_us = 1714557600123456 + (int64_t)i;
        v.payload = payload;
        v.payload_len = n;
        es_buf b;
        es_buf_init(&b);
        es_envelope_pack(&v, &b);
        char name[64];
        snprintf(name, sizeof name, "value-%s-%s.bin", agg->name, def->type);
        put("envelope", name, 0, b.data, b.len);
        es_buf_free(&b);

        es_envelope_headers h;
        es_envelope_headers_of(&v, &h);
        es_buf t;
        es_buf_init(&t);
        for (size_t k = 0; k < h.n; k++) {
            es_buf_printf(&t, "%s%s:", k ? "\n" : "", h.h[k].name);
            es_buf_append(&t, h.h[k].value, h.h[k].len);
        }
        snprintf(name, sizeof name, "headers-%s-%s.txt", agg->name, def->type);
        put("envelope", name, 1, t.data, t.len);
        es_buf_free(&t);
    }
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s <dir>\n", argv[0]);
        return 2;
    }
    out_dir = argv[1];
    if (mkdir(out_dir, 0777) != 0 && errno != EEXIST) {
        perror(out_dir);
        return 1;
    }
    es_arena a;
    es_arena_init(&a);
    check_every_method_seeded();
    check_every_event_seeded();
    request_seeds(&a);
    wkt_seeds();
    router_seeds();
    envelope_seeds(&a);
    es_arena_free(&a);
    return failures ? 1 : 0;
}
