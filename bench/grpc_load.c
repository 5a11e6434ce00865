/* gRPC load generator for PlaceOrder, on grpc core's C client.
 *
 * Keeps C calls in flight (closed loop: a finished call starts the next at once) or, with
 * --rate, starts calls on a fixed schedule while a call slot is free (open loop). Every request
 * is a different order with a unique request_id (the idempotency key); every answer must be
 * status OK and a CommandResult at version 1 naming an order, else it counts as an error.
 * Prints one JSON line: requests, ok, errors, duration_s, tps, p50/p90/p99/max latency (ms),
 * late (scheduled sends that found no free slot) and the first error.
 *
 *   bench_grpc_load --target 127.0.0.1:8081 [--clients 32] [--seconds 15] [--rate R]
 *                   [--channels 2] [--run tag] [--token bearer-token]
 *
 * One thread drives one completion queue; the calls are spread over several channels (each its
 * own HTTP/2 connection) as a pool of client connections would be. */
#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "orders/v1/commands.pb-c.h"
#include "orders/v1/types.pb-c.h"

typedef struct slot {
    int busy;
    grpc_call *call;
    grpc_metadata_array init_md, trail_md;
    grpc_byte_buffer *send, *recv;
    grpc_status_code status;
    grpc_slice details;
    double t0;
} slot;

static const char *target = "127.0.0.1:8081", *run = "g", *token;
static grpc_metadata auth_md;      /* "authorization: Bearer <token>", alive for the whole run */
static int clients = 32, seconds = 15, channels = 2;
static double rate = 0;
static long seq, ok, errors, late;
static char first_error[512];
static bench_lat lat;

/* A packed PlaceOrderRequest for order number n (heap; the caller frees). */
static uint8_t *place_order(long n, size_t *len)
{
    char cust[32], vendor[32], sku[32], rid[96];
    snprintf(cust, sizeof cust, "cust-%ld", n % 50000);
    snprintf(vendor, sizeof vendor, "vendor-%ld", n % 97);
    snprintf(sku, sizeof sku, "sku-%ld", n % 1000);
    snprintf(rid, sizeof rid, "%s-%ld", run, n);
    Orders__V1__Money p1 = ORDERS__V1__MONEY__INIT, p2 = ORDERS__V1__MONEY__INIT;
    p1.currency_code = p2.currency_code = "EUR";
    p1.amount_minor = 1250;
    p2.amount_minor = 199;
    Orders__V1__LineItem i1 = ORDERS__V1__LINE_ITEM__INIT, i2 = ORDERS__V1__LINE_ITEM__INIT;
    i1.product_id = sku;
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
    req.customer_id = cust;
    req.vendor_id = vendor;
    req.payment_method = "card";
    req.n_items = 2;
    req.items = items;
    req.shipping_address = &addr;
    req.request_id = rid;
    *len = orders__v1__place_order_request__get_packed_size(&req);
    uint8_t *buf = malloc(*len ? *len : 1);
    if (!buf) abort();
    orders__v1__place_order_request__pack(&req, buf);
    return buf;
}

static void start_call(slot *s, grpc_channel *ch, grpc_completion_queue *cq, grpc_slice method)
{
    size_t len;
    uint8_t *body = place_order(seq++, &len);
    grpc_slice sl = grpc_slice_from_copied_buffer((const char *)body, len);
    free(body);
    s->send = grpc_raw_byte_buffer_create(&sl, 1);
    grpc_slice_unref(sl);
    s->recv = NULL;
    grpc_metadata_array_init(&s->init_md);
    grpc_metadata_array_init(&s->trail_md);
    s->call = grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq, method, NULL,
                                       gpr_time_add(gpr_now(GPR_CLOCK_REALTIME), gpr_time_from_seconds(30, GPR_TIMESPAN)),
                                       NULL);
    grpc_op ops[6];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    if (token) {
        ops[0].data.send_initial_metadata.count = 1;
        ops[0].data.send_initial_metadata.metadata = &auth_md;
    }
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = s->send;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &s->init_md;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &s->recv;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = &s->trail_md;
    ops[5].data.recv_status_on_client.status = &s->status;
    ops[5].data.recv_status_on_client.status_details = &s->details;
    s->busy = 1;
    s->t0 = bench_now();
    if (grpc_call_start_batch(s->call, ops, 6, s, NULL) != GRPC_CALL_OK) {
        fprintf(stderr, "grpc_load: start_batch failed\n");
        exit(1);
    }
}

static void note_error(const char *fmt, const char *a, long b)
{
    if (!errors++) snprintf(first_error, sizeof first_error, fmt, a, b);
}

/* Checks and releases a finished call. */
static void finish_call(slot *s, int success, int measuring)
{
    double dt = bench_now() - s->t0;
    if (!success) {
        note_error("%s%ld", "batch failed", 0);
    } else if (s->status != GRPC_STATUS_OK) {
        char *d = grpc_slice_to_c_string(s->details);
        note_error("status %s (code %ld)", d, (long)s->status);
        gpr_free(d);
    } else if (!s->recv) {
        note_error("%sno message%ld", "", 0);
    } else {
        grpc_byte_buffer_reader rd;
        grpc_byte_buffer_reader_init(&rd, s->recv);
        grpc_slice all = grpc_byte_buffer_reader_readall(&rd);
        grpc_byte_buffer_reader_destroy(&rd);
        Orders__V1__CommandResult *r = orders__v1__command_result__unpack(NULL, GRPC_SLICE_LENGTH(all),
                                                                          GRPC_SLICE_START_PTR(all));
        grpc_slice_unref(all);
        if (!r || r->version != 1 || !r->order_id || !r->order_id[0] || r->replayed)
            note_error("%s: bad CommandResult (version %ld)", "PlaceOrder", r ? (long)r->version : -1);
        else
            ok++;
        if (r) orders__v1__command_result__free_unpacked(r, NULL);
    }
    if (measuring) bench_lat_add(&lat, dt);
    grpc_slice_unref(s->details);
    grpc_metadata_array_destroy(&s->init_md);
    grpc_metadata_array_destroy(&s->trail_md);
    grpc_byte_buffer_destroy(s->send);
    if (s->recv) grpc_byte_buffer_destroy(s->recv);
    grpc_call_unref(s->call);
    s->busy = 0;
}

int main(int argc, char **argv)
{
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--target")) target = argv[i + 1];
        else if (!strcmp(argv[i], "--clients")) clients = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--seconds")) seconds = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--rate")) rate = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--channels")) channels = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--run")) run = argv[i + 1];
        else if (!strcmp(argv[i], "--token")) token = argv[i + 1];
        else {
            fprintf(stderr, "grpc_load: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (clients < 1 || channels < 1 || seconds < 1) return 2;
    grpc_init();
    if (token) {
        char bearer[512];
        snprintf(bearer, sizeof bearer, "Bearer %s", token);
        auth_md.key = grpc_slice_from_static_string("authorization");
        auth_md.value = grpc_slice_from_copied_string(bearer);
    }
    grpc_completion_queue *cq = grpc_completion_queue_create_for_next(NULL);
    grpc_channel_credentials *creds = grpc_insecure_credentials_create();
    grpc_arg arg = {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, .value.integer = 1};
    grpc_channel_args args = {1, &arg};
    grpc_channel **ch = calloc((size_t)channels, sizeof *ch);
    for (int i = 0; i < channels; i++) ch[i] = grpc_channel_create(target, creds, &args);
    grpc_slice method = grpc_slice_from_static_string("/orders.v1.OrderService/PlaceOrder");
    slot *slots = calloc((size_t)clients, sizeof *slots);

    double t_start = bench_now(), t_end = t_start + seconds, next = t_start, interval = rate > 0 ? 1.0 / rate : 0;
    int inflight = 0;
    for (;;) {
        double now = bench_now();
        int running = now < t_end;
        /* Start what is due: every free slot (closed loop) or the scheduled sends (open loop). */
        for (int i = 0; running && i < clients; i++) {
            if (slots[i].busy) continue;
            if (interval > 0) {
                if (next > now) break;
                next += interval;
            }
            start_call(&slots[i], ch[i % channels], cq, method);
            inflight++;
        }
        if (interval > 0 && running && next + interval < now) { /* no free slot: the send is late */
            late++;
            next = now;
        }
        if (!running && !inflight) break;
        double wait = interval > 0 && running ? next - bench_now() : 1.0;
        if (wait < 0) wait = 0;
        if (wait > 1.0) wait = 1.0;
        grpc_event ev = grpc_completion_queue_next(
            cq, gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_micros((int64_t)(wait * 1e6), GPR_TIMESPAN)),
            NULL);
        if (ev.type == GRPC_OP_COMPLETE) {
            slot *s = ev.tag;
            finish_call(s, ev.success, s->t0 < t_end);
            inflight--;
        }
    }
    double dur = bench_now() - t_start;
    bench_lat_sort(&lat);
    printf("{\"requests\":%ld,\"ok\":%ld,\"errors\":%ld,\"duration_s\":%.3f,\"tps\":%.1f,\"p50_ms\":%.3f,"
           "\"p90_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f,\"late\":%ld,\"first_error\":\"",
           seq, ok, errors, dur, (double)ok / dur, bench_lat_q(&lat, .5) * 1e3, bench_lat_q(&lat, .9) * 1e3,
           bench_lat_q(&lat, .99) * 1e3, lat.n ? lat.v[lat.n - 1] * 1e3 : 0, late);
    for (const char *c = first_error; *c; c++)
        if (*c != '"' && *c != '\\' && (unsigned char)*c >= 0x20) putchar(*c);
    printf("\"}\n");
    for (int i = 0; i < channels; i++) grpc_channel_destroy(ch[i]);
    grpc_channel_credentials_release(creds);
    grpc_completion_queue_shutdown(cq);
    while (grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type != GRPC_QUEUE_SHUTDOWN) {
    }
    grpc_completion_queue_destroy(cq);
    free(slots);
    free(ch);
    bench_lat_free(&lat);
    grpc_shutdown();
    return errors ? 1 : 0;
}
