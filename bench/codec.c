/* Codec figure: proto3 JSON encode/decode MB/s of the project's codec (es/json.h)
 * beside protobuf-c binary pack/unpack of the same message, for the two messages every HTTP
 * client meets most: a PlaceOrderRequest (the command body) and an OrderSummary (the read model
 * GetOrder returns: enums, int64, Timestamps, nested Money and Address, repeated items).
 * MB/s counts each format's own bytes; messages/s are printed too, since JSON is ~2-3x larger.
 * Checks that each decode gives back the message it was encoded from (re-packed bytes equal).
 * Prints one JSON object.   usage: bench_codec [seconds per measurement = 1.0] */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "es/arena.h"
#include "es/buf.h"
#include "es/json.h"
#include "orders/v1/commands.pb-c.h"
#include "orders/v1/orders_v1.es.h"
#include "orders/v1/queries.pb-c.h"

static double secs = 1.0;
static int failures;

typedef struct figure {
    double mb_s, msg_s;
} figure;

/* Runs fn until secs have passed; returns the rate over bytes per call. */
#define MEASURE(out, bytes, body)                                                                  \
    do {                                                                                           \
        long n_ = 0;                                                                               \
        double t0_ = bench_now(), t_;                                                              \
        do {                                                                                       \
            for (int k_ = 0; k_ < 256; k_++) { body; }                                             \
            n_ += 256;                                                                             \
        } while ((t_ = bench_now()) - t0_ < secs);                                                 \
        (out).msg_s = (double)n_ / (t_ - t0_);                                                     \
        (out).mb_s = (out).msg_s * (double)(bytes) / 1e6;                                          \
    } while (0)

static void bench_message(const char *name, const es_json_registry *reg, const ProtobufCMessage *m, int last)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    es_json_options opt = {0};
    es_error err = {0};
    es_buf json;
    es_buf_init(&json);
    if (es_json_encode(reg, m, &opt, &json, &err) != ES_OK) {
        fprintf(stderr, "codec: encode %s: %s\n", name, err.message);
        exit(1);
    }
    size_t pb_len = protobuf_c_message_get_packed_size(m);
    uint8_t *pb = malloc(pb_len), *pb2 = malloc(pb_len);
    protobuf_c_message_pack(m, pb);

    /* Round trips: JSON back to the same binary, binary back to the same binary. */
    es_arena arena;
    es_arena_init(&arena);
    ProtobufCMessage *back = NULL;
    if (es_json_decode(reg, d, json.data, json.len, &opt, &arena, &back, &err) != ES_OK ||
        protobuf_c_message_get_packed_size(back) != pb_len || (protobuf_c_message_pack(back, pb2), memcmp(pb, pb2, pb_len))) {
        fprintf(stderr, "codec: %s does not survive a JSON round trip: %s\n", name, err.message);
        failures++;
    }
    es_arena_reset(&arena);

    figure enc, dec, pack, unpack;
    es_buf out;
    es_buf_init(&out);
    MEASURE(enc, json.len, {
        es_buf_reset(&out);
        es_json_encode(reg, m, &opt, &out, &err);
    });
    MEASURE(dec, json.len, {
        es_json_decode(reg, d, json.data, json.len, &opt, &arena, &back, &err);
        es_arena_reset(&arena);
    });
    MEASURE(pack, pb_len, protobuf_c_message_pack(m, pb2));
    MEASURE(unpack, pb_len, {
        ProtobufCMessage *u = protobuf_c_message_unpack(d, &arena.pb, pb_len, pb);
        if (!u) abort();
        es_arena_reset(&arena);
    });
    printf("  \"codec_%s_json_bytes\": %zu, \"codec_%s_pb_bytes\": %zu,\n", name, json.len, name, pb_len);
    printf("  \"codec_%s_json_encode_mb_s\": %.1f, \"codec_%s_json_decode_mb_s\": %.1f,\n", name, enc.mb_s, name,
           dec.mb_s);
    printf("  \"codec_%s_pb_pack_mb_s\": %.1f, \"codec_%s_pb_unpack_mb_s\": %.1f,\n", name, pack.mb_s, name,
           unpack.mb_s);
    printf("  \"codec_%s_json_encode_msg_s\": %.0f, \"codec_%s_json_decode_msg_s\": %.0f,\n", name, enc.msg_s, name,
           dec.msg_s);
    printf("  \"codec_%s_pb_pack_msg_s\": %.0f, \"codec_%s_pb_unpack_msg_s\": %.0f%s\n", name, pack.msg_s, name,
           unpack.msg_s, last ? "" : ",");
    es_buf_free(&out);
    es_buf_free(&json);
    es_arena_free(&arena);
    free(pb);
    free(pb2);
}

int main(int argc, char **argv)
{
    if (argc > 1) secs = atof(argv[1]);
    es_json_registry *reg = es_json_registry_new();
    es_json_registry_add_schema(reg, &orders_v1_schema);

    Orders__V1__Money p1 = ORDERS__V1__MONEY__INIT, p2 = ORDERS__V1__MONEY__INIT, l1 = ORDERS__V1__MONEY__INIT,
                      l2 = ORDERS__V1__MONEY__INIT, total = ORDERS__V1__MONEY__INIT, paid = ORDERS__V1__MONEY__INIT;
    p1.currency_code = p2.currency_code = l1.currency_code = l2.currency_code = "EUR";
    total.currency_code = paid.currency_code = "EUR";
    p1.amount_minor = 1250;
    l1.amount_minor = 2500;
    p2.amount_minor = l2.amount_minor = 199;
    total.amount_minor = paid.amount_minor = 2699;
    Orders__V1__LineItem i1 = ORDERS__V1__LINE_ITEM__INIT, i2 = ORDERS__V1__LINE_ITEM__INIT;
    i1.product_id = "sku-1042";
    i1.title = "Paperback book";
    i1.quantity = 2;
    i1.unit_price = &p1;
    i2.product_id = "sku-77";
    i2.title = "Bookmark";
    i2.quantity = 1;
    i2.unit_price = &p2;
    Orders__V1__LineItem *items[2] = {&i1, &i2};
    Orders__V1__Address addr = ORDERS__V1__ADDRESS__INIT;
    addr.name = "Ada Lovelace";
    addr.line1 = "1 Main St";
    addr.city = "Paris";
    addr.postal_code = "75001";
    addr.country_code = "FR";

    Orders__V1__PlaceOrderRequest req = ORDERS__V1__PLACE_ORDER_REQUEST__INIT;
    req.customer_id = "cust-42";
    req.vendor_id = "vendor-7";
    req.payment_method = "card";
    req.n_items = 2;
    req.items = items;
    req.shipping_address = &addr;
    req.request_id = "3b0e8f3e-0d4b-4a8e-9a51-6b7f4f2c8d10";

    /* The summary of a paid, in-transit order: the items now carry their line totals. */
    i1.line_total = &l1;
    i2.line_total = &l2;
    Google__Protobuf__Timestamp created = GOOGLE__PROTOBUF__TIMESTAMP__INIT, updated = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
    created.seconds = 1764211200;
    created.nanos = 123456000;
    updated.seconds = 1764214800;
    updated.nanos = 654321000;
    Orders__V1__OrderSummary sum = ORDERS__V1__ORDER_SUMMARY__INIT;
    sum.order_id = "0193a4f2-7c1e-7b3a-9f00-2d4e5f6a7b8c";
    sum.status = ORDERS__V1__ORDER_STATUS__ORDER_STATUS_PAID;
    sum.payment_status = ORDERS__V1__PAYMENT_STATUS__PAYMENT_STATUS_PAID;
    sum.shipping_status = ORDERS__V1__SHIPPING_STATUS__SHIPPING_STATUS_IN_TRANSIT;
    sum.customer_id = "cust-42";
    sum.vendor_id = "vendor-7";
    sum.item_count = 3;
    sum.total = &total;
    sum.payment_method = "card";
    sum.carrier = "DHL";
    sum.tracking_number = "JD014600003";
    sum.location = "Leipzig";
    sum.created_at = &created;
    sum.updated_at = &updated;
    sum.version = 5;
    sum.n_items = 2;
    sum.items = items;
    sum.shipping_address = &addr;
    sum.paid_amount = &paid;

    /* The request as a client sends it: without line totals. */
    i1.line_total = i2.line_total = NULL;
    printf("{\n");
    bench_message("place_order", reg, &req.base, 0);
    i1.line_total = &l1;
    i2.line_total = &l2;
    bench_message("order_summary", reg, &sum.base, 1);
    printf("}\n");
    es_json_registry_free(reg);
    return failures ? 1 : 0;
}
