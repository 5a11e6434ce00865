/* Every decision of the payment-flow reactor (app/payment_flow.c): which command an event causes
 * in which state, whether money moves, and that command ids derive from the causing event. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "payment_flow.h"

typedef struct fake_gateway {
    payment_gateway g;
    int answer;        /* what charge/refund return */
    int charges, refunds;
} fake_gateway;

static int fake_charge(void *self, const char *pid, const char *cur, int64_t amt, char *reason, size_t n)
{
    fake_gateway *f = self;
    (void)pid; (void)cur; (void)amt;
    f->charges++;
    if (f->answer == 1)
        snprintf(reason, n, "insufficient funds");
    return f->answer;
}

static int fake_refund(void *self, const char *pid, const char *cur, int64_t amt, char *reason, size_t n)
{
    fake_gateway *f = self;
    (void)pid; (void)cur; (void)amt; (void)reason; (void)n;
    f->refunds++;
    return f->answer;
}

static void fake_init(fake_gateway *f, int answer)
{
    memset(f, 0, sizeof *f);
    f->g.self = f;
    f->g.charge = fake_charge;
    f->g.refund = fake_refund;
    f->answer = answer;
}

static Orders__V1__Money total = {PROTOBUF_C_MESSAGE_INIT(&orders__v1__money__descriptor), "EUR", 3000};

static Orders__V1__OrderState state(Orders__V1__OrderStatus s, Orders__V1__PaymentStatus p, int refund_due)
{
    Orders__V1__OrderState st = ORDERS__V1__ORDER_STATE__INIT;
    st.order_id = "0190b6c4-8e3a-7cc1-9a4e-3f1d2c3b4a59";
    st.status = s;
    st.payment_status = p;
    st.payment_id = "pay-1";
    st.total = &total;
    st.paid_amount = p == ORDERS__V1__PAYMENT_STATUS__PAYMENT_STATUS_PAID ? &total : NULL;
    st.refund_due = refund_due;
    return st;
}

static es_envelope_view event(const char *type, const char *event_id)
{
    es_envelope_view v;
    es_envelope_view_clear(&v);
    v.event_id = event_id;
    v.stream_id = "0190b6c4-8e3a-7cc1-9a4e-3f1d2c3b4a59";
    v.stream_type = "order";
    v.event_type = type;
    v.version = 1;
    return v;
}

#define PLACED ORDERS__V1__ORDER_STATUS__ORDER_STATUS_PLACED
#define PAID_S ORDERS__V1__ORDER_STATUS__ORDER_STATUS_PAID
#define CANCELLED ORDERS__V1__ORDER_STATUS__ORDER_STATUS_CANCELLED
#define P_PENDING ORDERS__V1__PAYMENT_STATUS__PAYMENT_STATUS_PENDING
#define P_INITIATED ORDERS__V1__PAYMENT_STATUS__PAYMENT_STATUS_INITIATED
#define P_AUTHORISED ORDERS__V1__PAYMENT_STATUS__PAYMENT_STATUS_AUTHORISED
#define P_PAID ORDERS__V1__PAYMENT_STATUS__PAYMENT_STATUS_PAID

static const es_command_def *step(const char *type, Orders__V1__OrderState st, fake_gateway *g, int *rc,
                                  payment_step *out)
{
    es_arena a;
    es_arena_init(&a);
    es_envelope_view ev = event(type, "11111111-1111-4111-8111-111111111111");
    es_error err;
    *rc = payment_flow_step(&ev, &st, &g->g, &a, out, &err);
    const es_command_def *def = out->def;
    es_arena_free(&a);
    return def;
}

static void test_placed_initiates_payment(void **u)
{
    (void)u;
    fake_gateway g;
    fake_init(&g, 0);
    payment_step s;
    int rc;
    assert_ptr_equal(step("OrderPlaced", state(PLACED, P_PENDING, 0), &g, &rc, &s), &orders_v1_command_InitiatePayment);
    assert_int_equal(rc, ES_OK);
    assert_int_equal(g.charges, 0);
    assert_true(es_uuid_valid(s.command_id));
    /* Already initiated (a redelivery after the command ran): nothing. */
    assert_null(step("OrderPlaced", state(PLACED, P_INITIATED, 0), &g, &rc, &s));
    /* Cancelled before the flow ran: nothing. */
    assert_null(step("OrderPlaced", state(CANCELLED, P_PENDING, 0), &g, &rc, &s));
}

static void test_command_id_derives_from_event(void **u)
{
    (void)u;
    fake_gateway g;
    fake_init(&g, 0);
    es_arena a;
    es_arena_init(&a);
    Orders__V1__OrderState st = state(PLACED, P_PENDING, 0);
    es_envelope_view e1 = event("OrderPlaced", "11111111-1111-4111-8111-111111111111");
    es_envelope_view e2 = event("OrderPlaced", "22222222-2222-4222-8222-222222222222");
    payment_step s1, s1b, s2;
    es_error err;
    assert_int_equal(payment_flow_step(&e1, &st, &g.g, &a, &s1, &err), ES_OK);
    assert_int_equal(payment_flow_step(&e1, &st, &g.g, &a, &s1b, &err), ES_OK);
    assert_int_equal(payment_flow_step(&e2, &st, &g.g, &a, &s2, &err), ES_OK);
    assert_string_equal(s1.command_id, s1b.command_id); /* redelivery: same id, appended once */
    assert_string_not_equal(s1.command_id, s2.command_id);
    es_arena_free(&a);
}

static void test_initiated_charges_then_marks_paid(void **u)
{
    (void)u;
    fake_gateway g;
    fake_init(&g, 0);
    payment_step s;
    int rc;
    assert_ptr_equal(step("OrderPaymentInitiated", state(PLACED, P_INITIATED, 0), &g, &rc, &s),
                     &orders_v1_command_MarkOrderPaid);
    assert_int_equal(g.charges, 1);
    assert_ptr_equal(step("OrderPaymentInitiated", state(PLACED, P_AUTHORISED, 0), &g, &rc, &s),
                     &orders_v1_command_MarkOrderPaid);
    assert_int_equal(g.charges, 2);
}

static void test_declined_charge_fails_payment(void **u)
{
    (void)u;
    fake_gateway g;
    fake_init(&g, 1);
    payment_step s;
    int rc;
    es_arena a;
    es_arena_init(&a);
    es_envelope_view ev = event("OrderPaymentInitiated", "11111111-1111-4111-8111-111111111111");
    Orders__V1__OrderState st = state(PLACED, P_INITIATED, 0);
    es_error err;
    rc = payment_flow_step(&ev, &st, &g.g, &a, &s, &err);
    assert_int_equal(rc, ES_OK);
    assert_ptr_equal(s.def, &orders_v1_command_FailPayment);
    assert_string_equal(((Orders__V1__FailPaymentRequest *)s.cmd)->reason, "insufficient funds");
    es_arena_free(&a);
}

static void test_unreachable_gateway_is_retried(void **u)
{
    (void)u;
    fake_gateway g;
    fake_init(&g, -1);
    payment_step s;
    int rc;
    assert_null(step("OrderPaymentInitiated", state(PLACED, P_INITIATED, 0), &g, &rc, &s));
    assert_int_equal(rc, ES_UNAVAILABLE);
}

static void test_no_charge_after_cancel_or_settlement(void **u)
{
    (void)u;
    fake_gateway g;
    fake_init(&g, 0);
    payment_step s;
    int rc;
    assert_null(step("OrderPaymentInitiated", state(CANCELLED, P_INITIATED, 0), &g, &rc, &s));
    assert_null(step("OrderPaymentInitiated", state(PAID_S, P_PAID, 0), &g, &rc, &s));
    assert_int_equal(g.charges, 0);
}

static void test_cancel_after_payment_refunds(void **u)
{
    (void)u;
    fake_gateway g;
    fake_init(&g, 0);
    payment_step s;
    int rc;
    assert_ptr_equal(step("OrderCancelled", state(CANCELLED, P_PAID, 1), &g, &rc, &s), &orders_v1_command_RefundPayment);
    assert_int_equal(g.refunds, 1);
    assert_null(step("OrderCancelled", state(CANCELLED, P_PENDING, 0), &g, &rc, &s));
    assert_null(step("OrderCancelled", state(CANCELLED, ORDERS__V1__PAYMENT_STATUS__PAYMENT_STATUS_REFUNDED, 0), &g, &rc, &s));
    assert_int_equal(g.refunds, 1);
}

static void test_other_events_and_streams_ignored(void **u)
{
    (void)u;
    fake_gateway g;
    fake_init(&g, 0);
    payment_step s;
    int rc;
    assert_null(step("OrderPaid", state(PAID_S, P_PAID, 0), &g, &rc, &s));
    assert_null(step("OrderShippingStatusUpdated", state(PAID_S, P_PAID, 0), &g, &rc, &s));
    es_arena a;
    es_arena_init(&a);
    es_envelope_view ev = event("OrderPlaced", "11111111-1111-4111-8111-111111111111");
    ev.stream_type = "ticket";
    Orders__V1__OrderState st = state(PLACED, P_PENDING, 0);
    es_error err;
    assert_int_equal(payment_flow_step(&ev, &st, &g.g, &a, &s, &err), ES_OK);
    assert_null(s.def);
    assert_int_equal(payment_flow_step(&ev, NULL, &g.g, &a, &s, &err), ES_OK);
    assert_null(s.def);
    es_arena_free(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_placed_initiates_payment),
        cmocka_unit_test(test_command_id_derives_from_event),
        cmocka_unit_test(test_initiated_charges_then_marks_paid),
        cmocka_unit_test(test_declined_charge_fails_payment),
        cmocka_unit_test(test_unreachable_gateway_is_retried),
        cmocka_unit_test(test_no_charge_after_cancel_or_settlement),
        cmocka_unit_test(test_cancel_after_payment_refunds),
        cmocka_unit_test(test_other_events_and_streams_ignored),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
