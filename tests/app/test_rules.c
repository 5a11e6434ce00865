/* Every cell of the order rule table (README "Business rules"): each command against each
 * state, allowed or refused with the right code, through the generated validation, guard and
 * apply and the hand-written decide. States are built by running the commands themselves. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "rules.h"

#define ORDER_ID "0190b6c4-8e3a-7cc1-9a4e-3f1d2c3b4a59"

typedef struct world {
    es_arena arena;
    Orders__V1__OrderState *state; /* NULL: no stream */
    int64_t version;
    es_decision last;
} world;

/* A miniature of the pipeline's decision path (existence, validate, guard, decide, apply). */
static int exec(world *w, const es_command_def *def, ProtobufCMessage *cmd, es_error *err)
{
    memset(err, 0, sizeof *err);
    if (!w->state && !def->creates)
        return ES_NOT_FOUND;
    if (w->state && def->creates)
        return ES_ALREADY_EXISTS;
    if (def->validate) {
        int r = def->validate(cmd, err);
        if (r)
            return r;
    }
    int r = def->guard(w->state ? &w->state->base : NULL, err);
    if (r)
        return r;
    es_decide_ctx ctx = {.stream_id = ORDER_ID, .version = w->version, .now_us = 1700000000000000LL,
                         .command_id = "c", .actor = "", .arena = &w->arena};
    memset(&w->last, 0, sizeof w->last);
    r = def->decide(&ctx, w->state ? &w->state->base : NULL, cmd, &w->last, err);
    if (r)
        return r;
    for (size_t i = 0; i < w->last.n; i++) {
        int allowed = 0;
        for (size_t k = 0; k < def->n_emits; k++)
            allowed |= def->emits[k] == w->last.defs[i];
        assert_true(allowed);
        if (!w->state) {
            w->state = calloc(1, sizeof *w->state);
            orders__v1__order_state__init(w->state);
        }
        assert_int_equal(w->last.defs[i]->apply(&w->state->base, w->last.events[i]), ES_OK);
        w->version++;
    }
    return ES_OK;
}

static Orders__V1__Money *money(es_arena *a, const char *cur, int64_t amt)
{
    Orders__V1__Money *m = orders_v1_new_Money(a);
    m->currency_code = (char *)cur;
    m->amount_minor = amt;
    return m;
}

static Orders__V1__LineItem *item(es_arena *a, const char *product, int qty, const char *cur, int64_t price)
{
    Orders__V1__LineItem *li = orders_v1_new_LineItem(a);
    li->product_id = (char *)product;
    li->quantity = qty;
    li->unit_price = money(a, cur, price);
    return li;
}

static Orders__V1__PlaceOrderRequest *place_cmd(es_arena *a)
{
    Orders__V1__PlaceOrderRequest *c = orders_v1_new_PlaceOrderRequest(a);
    c->customer_id = "cust-1";
    c->vendor_id = "vend-1";
    c->payment_method = "card";
    c->n_items = 2;
    c->items = es_arena_alloc(a, 2 * sizeof *c->items);
    c->items[0] = item(a, "sku-1", 2, "EUR", 1250);
    c->items[1] = item(a, "sku-2", 1, "EUR", 500);
    Orders__V1__Address *ad = orders_v1_new_Address(a);
    ad->name = "Ada";
    ad->line1 = "1 Main St";
    ad->city = "Paris";
    ad->postal_code = "75001";
    ad->country_code = "FR";
    c->shipping_address = ad;
    return c;
}

enum cmd_kind { PLACE, INITIATE, AUTHORISE, MARK_PAID, FAIL, REFUND, CANCEL, SHIP_WAIT, SHIP_TRANSIT, SHIP_OFD, SHIP_DELIVERED, N_CMDS };
static const char *cmd_names[N_CMDS] = {"Place", "Initiate", "Authorise", "MarkPaid", "Fail", "Refund", "Cancel",
                                        "Ship(WAITING_FOR_SHIPMENT)", "Ship(IN_TRANSIT)", "Ship(OUT_FOR_DELIVERY)",
                                        "Ship(DELIVERED)"};

/* The command each column runs (the shipping columns share one). */
static const es_command_def *const kind_command[N_CMDS] = {
    [PLACE] = &orders_v1_command_PlaceOrder,
    [INITIATE] = &orders_v1_command_InitiatePayment,
    [AUTHORISE] = &orders_v1_command_AuthorisePayment,
    [MARK_PAID] = &orders_v1_command_MarkOrderPaid,
    [FAIL] = &orders_v1_command_FailPayment,
    [REFUND] = &orders_v1_command_RefundPayment,
    [CANCEL] = &orders_v1_command_CancelOrder,
    [SHIP_WAIT] = &orders_v1_command_UpdateOrderShippingStatus,
    [SHIP_TRANSIT] = &orders_v1_command_UpdateOrderShippingStatus,
    [SHIP_OFD] = &orders_v1_command_UpdateOrderShippingStatus,
    [SHIP_DELIVERED] = &orders_v1_command_UpdateOrderShippingStatus,
};

static int run(world *w, enum cmd_kind k, es_error *err)
{
    es_arena *a = &w->arena;
    switch (k) {
    case PLACE:
        return exec(w, kind_command[k], &place_cmd(a)->base, err);
    case INITIATE: {
        Orders__V1__InitiatePaymentRequest *c = orders_v1_new_InitiatePaymentRequest(a);
        c->order_id = ORDER_ID;
        return exec(w, kind_command[k], &c->base, err);
    }
    case AUTHORISE: {
        Orders__V1__AuthorisePaymentRequest *c = orders_v1_new_AuthorisePaymentRequest(a);
        c->order_id = ORDER_ID;
        c->authorisation_code = "AUTH1";
        return exec(w, kind_command[k], &c->base, err);
    }
    case MARK_PAID: {
        Orders__V1__MarkOrderPaidRequest *c = orders_v1_new_MarkOrderPaidRequest(a);
        c->order_id = ORDER_ID;
        return exec(w, kind_command[k], &c->base, err);
    }
    case FAIL: {
        Orders__V1__FailPaymentRequest *c = orders_v1_new_FailPaymentRequest(a);
        c->order_id = ORDER_ID;
        c->reason = "card declined";
        return exec(w, kind_command[k], &c->base, err);
    }
    case REFUND: {
        Orders__V1__RefundPaymentRequest *c = orders_v1_new_RefundPaymentRequest(a);
        c->order_id = ORDER_ID;
        return exec(w, kind_command[k], &c->base, err);
    }
    case CANCEL: {
        Orders__V1__CancelOrderRequest *c = orders_v1_new_CancelOrderRequest(a);
        c->order_id = ORDER_ID;
        c->reason = "changed my mind";
        return exec(w, kind_command[k], &c->base, err);
    }
    default: {
        static const Orders__V1__ShippingStatus st[] = {
            ORDERS__V1__SHIPPING_STATUS__SHIPPING_STATUS_WAITING_FOR_SHIPMENT,
            ORDERS__V1__SHIPPING_STATUS__SHIPPING_STATUS_IN_TRANSIT,
            ORDERS__V1__SHIPPING_STATUS__SHIPPING_STATUS_OUT_FOR_DELIVERY,
            ORDERS__V1__SHIPPING_STATUS__SHIPPING_STATUS_DELIVERED};
        Orders__V1__UpdateOrderShippingStatusRequest *c = orders_v1_new_UpdateOrderShippingStatusRequest(a);
        c->order_id = ORDER_ID;
        c->status = st[k - SHIP_WAIT];
        c->carrier = "DHL";
        c->tracking_number = "TRK1";
        c->location = "Lyon";
        return exec(w, kind_command[k], &c->base, err);
    }
    }
}

/* The states of the table, each reached by a sequence of commands. */
enum state_kind { S_NONE, S_PLACED, S_INITIATED, S_AUTHORISED, S_PAY_FAILED, S_PAID, S_IN_TRANSIT, S_OUT_FOR_DELIVERY,
                  S_DELIVERED, S_CANCELLED, S_CANCELLED_PAID, S_REFUNDED, N_STATES };
static const char *state_names[N_STATES] = {"none", "placed", "initiated", "authorised", "payment failed", "paid",
                                            "in transit", "out for delivery", "delivered", "cancelled unpaid",
                                            "cancelled after payment", "cancelled and refunded"};
static const int paths[N_STATES][8] = {
    [S_NONE] = {-1},
    [S_PLACED] = {PLACE, -1},
    [S_INITIATED] = {PLACE, INITIATE, -1},
    [S_AUTHORISED] = {PLACE, INITIATE, AUTHORISE, -1},
    [S_PAY_FAILED] = {PLACE, INITIATE, FAIL, -1},
    [S_PAID] = {PLACE, INITIATE, MARK_PAID, -1},
    [S_IN_TRANSIT] = {PLACE, INITIATE, MARK_PAID, SHIP_TRANSIT, -1},
    [S_OUT_FOR_DELIVERY] = {PLACE, INITIATE, MARK_PAID, SHIP_TRANSIT, SHIP_OFD, -1},
    [S_DELIVERED] = {PLACE, INITIATE, MARK_PAID, SHIP_TRANSIT, SHIP_DELIVERED, -1},
    [S_CANCELLED] = {PLACE, CANCEL, -1},
    [S_CANCELLED_PAID] = {PLACE, INITIATE, MARK_PAID, CANCEL, -1},
    [S_REFUNDED] = {PLACE, INITIATE, MARK_PAID, CANCEL, REFUND, -1},
};

#define OK ES_OK
#define FP ES_FAILED_PRECONDITION
#define NF ES_NOT_FOUND
#define AE ES_ALREADY_EXISTS
/* The rule table: expected outcome of [state][command]. Mirrors README "Business rules". */
static const int expected[N_STATES][N_CMDS] = {
    /*                   Place Init Auth Paid Fail Refund Cancel Wait Transit OFD Delivered */
    [S_NONE] =            {OK, NF, NF, NF, NF, NF, NF, NF, NF, NF, NF},
    [S_PLACED] =          {AE, OK, FP, FP, OK, FP, OK, FP, FP, FP, FP},
    [S_INITIATED] =       {AE, FP, OK, OK, OK, FP, OK, FP, FP, FP, FP},
    [S_AUTHORISED] =      {AE, FP, FP, OK, OK, FP, OK, FP, FP, FP, FP},
    [S_PAY_FAILED] =      {AE, FP, FP, FP, FP, FP, OK, FP, FP, FP, FP},
    [S_PAID] =            {AE, FP, FP, FP, FP, OK, OK, OK, OK, OK, OK},
    [S_IN_TRANSIT] =      {AE, FP, FP, FP, FP, OK, FP, FP, OK, OK, OK},
    [S_OUT_FOR_DELIVERY] ={AE, FP, FP, FP, FP, OK, FP, FP, FP, OK, OK},
    [S_DELIVERED] =       {AE, FP, FP, FP, FP, OK, FP, FP, FP, FP, FP},
    [S_CANCELLED] =       {AE, FP, FP, FP, FP, FP, FP, FP, FP, FP, FP},
    [S_CANCELLED_PAID] =  {AE, FP, FP, FP, FP, OK, FP, FP, FP, FP, FP},
    [S_REFUNDED] =        {AE, FP, FP, FP, FP, FP, FP, FP, FP, FP, FP},
};

static void world_init(world *w, enum state_kind s)
{
    memset(w, 0, sizeof *w);
    es_arena_init(&w->arena);
    es_error err;
    for (int i = 0; paths[s][i] >= 0; i++) {
        int r = run(w, (enum cmd_kind)paths[s][i], &err);
        if (r != ES_OK)
            fail_msg("building state '%s': %s failed: %s %s", state_names[s], cmd_names[paths[s][i]], es_strerror(r),
                     err.message);
    }
}

static void world_free(world *w)
{
    if (w->state)
        protobuf_c_message_free_unpacked(&w->state->base, NULL);
    es_arena_free(&w->arena);
}

static void test_rule_table(void **unused)
{
    (void)unused;
    int failures = 0;
    for (int s = 0; s < N_STATES; s++) {
        for (int k = 0; k < N_CMDS; k++) {
            world w;
            world_init(&w, (enum state_kind)s);
            es_error err;
            int64_t before = w.version;
            int r = run(&w, (enum cmd_kind)k, &err);
            if (r != expected[s][k]) {
                print_error("state '%s', command %s: got %s (%s), expected %s\n", state_names[s], cmd_names[k],
                            es_strerror(r), err.message, es_strerror(expected[s][k]));
                failures++;
            }
            if (r != ES_OK && w.version != before) {
                print_error("state '%s', command %s: refused but appended\n", state_names[s], cmd_names[k]);
                failures++;
            }
            if (r == FP && !err.message[0]) {
                print_error("state '%s', command %s: refusal without a message\n", state_names[s], cmd_names[k]);
                failures++;
            }
            world_free(&w);
        }
    }
    assert_int_equal(failures, 0);
}

/* The table has a column for every command of the generated schema: a command added to proto/
 * fails here, named, until its column (cmd_kind, run, expected, README "Business rules") exists. */
static void test_every_command_has_a_column(void **unused)
{
    (void)unused;
    int missing = 0;
    for (size_t i = 0; i < orders_v1_schema.n_commands; i++) {
        const es_command_def *def = orders_v1_schema.commands[i];
        int found = 0;
        for (int k = 0; k < N_CMDS; k++)
            found |= kind_command[k] == def;
        if (!found) {
            print_error("command %s of %s has no column in the rule table (tests/app/test_rules.c: cmd_kind, "
                        "kind_command, run, expected; README \"Business rules\")\n",
                        def->name, orders_v1_schema.package);
            missing++;
        }
    }
    assert_int_equal(missing, 0);
}

static void test_place_computes_totals_and_ignores_client_totals(void **unused)
{
    (void)unused;
    world w;
    world_init(&w, S_NONE);
    es_error err;
    Orders__V1__PlaceOrderRequest *c = place_cmd(&w.arena);
    c->items[0]->line_total = money(&w.arena, "EUR", 1); /* a lie the service must ignore */
    assert_int_equal(exec(&w, &orders_v1_command_PlaceOrder, &c->base, &err), ES_OK);
    assert_int_equal(w.state->total->amount_minor, 2 * 1250 + 500);
    assert_string_equal(w.state->total->currency_code, "EUR");
    assert_int_equal(w.state->item_count, 3);
    assert_int_equal(w.state->items[0]->line_total->amount_minor, 2500);
    assert_int_equal(w.state->status, ORDERS__V1__ORDER_STATUS__ORDER_STATUS_PLACED);
    assert_int_equal(w.state->payment_status, ORDERS__V1__PAYMENT_STATUS__PAYMENT_STATUS_PENDING);
    assert_string_equal(w.state->order_id, ORDER_ID);
    world_free(&w);
}

static void expect_invalid(void (*mutate)(Orders__V1__PlaceOrderRequest *, es_arena *), const char *field)
{
    world w;
    world_init(&w, S_NONE);
    es_error err;
    Orders__V1__PlaceOrderRequest *c = place_cmd(&w.arena);
    mutate(c, &w.arena);
    assert_int_equal(exec(&w, &orders_v1_command_PlaceOrder, &c->base, &err), ES_INVALID_ARGUMENT);
    assert_string_equal(err.field, field);
    assert_null(w.state);
    world_free(&w);
}

static void m_no_items(Orders__V1__PlaceOrderRequest *c, es_arena *a) { (void)a; c->n_items = 0; }
static void m_zero_qty(Orders__V1__PlaceOrderRequest *c, es_arena *a) { (void)a; c->items[1]->quantity = 0; }
static void m_neg_qty(Orders__V1__PlaceOrderRequest *c, es_arena *a) { (void)a; c->items[0]->quantity = -3; }
static void m_neg_price(Orders__V1__PlaceOrderRequest *c, es_arena *a) { (void)a; c->items[1]->unit_price->amount_minor = -1; }
static void m_mixed(Orders__V1__PlaceOrderRequest *c, es_arena *a) { c->items[1]->unit_price = money(a, "USD", 5); }
static void m_bad_cur(Orders__V1__PlaceOrderRequest *c, es_arena *a) { c->items[0]->unit_price = money(a, "eur", 5); }
static void m_no_customer(Orders__V1__PlaceOrderRequest *c, es_arena *a) { (void)a; c->customer_id = ""; }
static void m_no_vendor(Orders__V1__PlaceOrderRequest *c, es_arena *a) { (void)a; c->vendor_id = ""; }
static void m_no_payment(Orders__V1__PlaceOrderRequest *c, es_arena *a) { (void)a; c->payment_method = ""; }
static void m_no_address(Orders__V1__PlaceOrderRequest *c, es_arena *a) { (void)a; c->shipping_address = NULL; }
static void m_bad_country(Orders__V1__PlaceOrderRequest *c, es_arena *a) { (void)a; c->shipping_address->country_code = "France"; }
static void m_bad_id(Orders__V1__PlaceOrderRequest *c, es_arena *a) { (void)a; c->order_id = "not-a-uuid"; }
static void m_overflow(Orders__V1__PlaceOrderRequest *c, es_arena *a)
{
    (void)a;
    c->items[0]->quantity = 100000;
    c->items[0]->unit_price->amount_minor = INT64_MAX / 2;
}

static void test_place_refusals_name_the_field(void **unused)
{
    (void)unused;
    expect_invalid(m_no_items, "items");
    expect_invalid(m_zero_qty, "items[1].quantity");
    expect_invalid(m_neg_qty, "items[0].quantity");
    expect_invalid(m_neg_price, "items[1].unit_price.amount_minor");
    expect_invalid(m_mixed, "items[1].unit_price.currency_code");
    expect_invalid(m_bad_cur, "items[0].unit_price.currency_code");
    expect_invalid(m_no_customer, "customer_id");
    expect_invalid(m_no_vendor, "vendor_id");
    expect_invalid(m_no_payment, "payment_method");
    expect_invalid(m_no_address, "shipping_address");
    expect_invalid(m_bad_country, "shipping_address.country_code");
    expect_invalid(m_bad_id, "order_id");
    expect_invalid(m_overflow, "items[0].unit_price.amount_minor");
}

/* The seed's race: a payment confirmation that arrives after a cancel must not revive the order. */
static void test_payment_after_cancel_does_not_revive(void **unused)
{
    (void)unused;
    world w;
    world_init(&w, S_INITIATED);
    es_error err;
    assert_int_equal(run(&w, CANCEL, &err), ES_OK);
    assert_int_equal(run(&w, MARK_PAID, &err), ES_FAILED_PRECONDITION);
    assert_int_equal(run(&w, AUTHORISE, &err), ES_FAILED_PRECONDITION);
    assert_int_equal(w.state->status, ORDERS__V1__ORDER_STATUS__ORDER_STATUS_CANCELLED);
    assert_int_equal(w.state->refund_due, 0);
    world_free(&w);
}

static void test_cancel_after_payment_marks_refund_due_and_refund_is_once(void **unused)
{
    (void)unused;
    world w;
    world_init(&w, S_CANCELLED_PAID);
    assert_int_equal(w.state->refund_due, 1);
    es_error err;
    assert_int_equal(run(&w, REFUND, &err), ES_OK);
    assert_int_equal(w.state->refund_due, 0);
    assert_int_equal(w.state->refunded_amount->amount_minor, w.state->paid_amount->amount_minor);
    assert_int_equal(w.state->payment_status, ORDERS__V1__PAYMENT_STATUS__PAYMENT_STATUS_REFUNDED);
    assert_int_equal(run(&w, REFUND, &err), ES_FAILED_PRECONDITION);
    world_free(&w);
}

static void test_same_status_update_keeps_history(void **unused)
{
    (void)unused;
    world w;
    world_init(&w, S_IN_TRANSIT);
    es_error err;
    int64_t v = w.version;
    assert_int_equal(run(&w, SHIP_TRANSIT, &err), ES_OK);
    assert_int_equal(w.version, v + 1);
    assert_int_equal(w.last.n, 1);
    assert_ptr_equal(w.last.defs[0], &orders_v1_event_OrderShippingStatusUpdated);
    assert_int_equal(run(&w, SHIP_WAIT, &err), ES_FAILED_PRECONDITION);
    assert_string_equal(err.field, "status");
    assert_int_equal(run(&w, SHIP_DELIVERED, &err), ES_OK);
    assert_ptr_equal(w.last.defs[0], &orders_v1_event_OrderDelivered);
    assert_int_equal(w.state->status, ORDERS__V1__ORDER_STATUS__ORDER_STATUS_DELIVERED);
    assert_int_equal(w.state->shipping_status, ORDERS__V1__SHIPPING_STATUS__SHIPPING_STATUS_DELIVERED);
    assert_string_equal(w.state->carrier, "DHL");
    world_free(&w);
}

static void test_mark_paid_amount_must_match_total(void **unused)
{
    (void)unused;
    world w;
    world_init(&w, S_INITIATED);
    es_error err;
    Orders__V1__MarkOrderPaidRequest *c = orders_v1_new_MarkOrderPaidRequest(&w.arena);
    c->order_id = ORDER_ID;
    c->amount = money(&w.arena, "EUR", 1);
    assert_int_equal(exec(&w, &orders_v1_command_MarkOrderPaid, &c->base, &err), ES_INVALID_ARGUMENT);
    assert_string_equal(err.field, "amount");
    c->amount = money(&w.arena, "EUR", 3000);
    assert_int_equal(exec(&w, &orders_v1_command_MarkOrderPaid, &c->base, &err), ES_OK);
    assert_int_equal(w.state->paid_amount->amount_minor, 3000);
    world_free(&w);
}

static void test_guard_message_names_state(void **unused)
{
    (void)unused;
    world w;
    world_init(&w, S_DELIVERED);
    es_error err;
    assert_int_equal(run(&w, CANCEL, &err), ES_FAILED_PRECONDITION);
    assert_string_equal(err.field, "status");
    assert_non_null(strstr(err.message, "DELIVERED"));
    world_free(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rule_table),
        cmocka_unit_test(test_every_command_has_a_column),
        cmocka_unit_test(test_place_computes_totals_and_ignores_client_totals),
        cmocka_unit_test(test_place_refusals_name_the_field),
        cmocka_unit_test(test_payment_after_cancel_does_not_revive),
        cmocka_unit_test(test_cancel_after_payment_marks_refund_due_and_refund_is_once),
        cmocka_unit_test(test_same_status_update_keeps_history),
        cmocka_unit_test(test_mark_paid_amount_must_match_total),
        cmocka_unit_test(test_guard_message_names_state),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
