/* The hand-written business rules of the order aggregate: what the generated guard (allowed_from
 * in proto/orders/v1/commands.proto) cannot say. Each decide() is a pure function of the current
 * state and the command; it returns the events to append or an error naming the field.
 * The rule table in README.md lists every cell; tests/app/test_rules.c tests each. */
#include "rules.h"

#include <stdio.h>
#include <string.h>

#include "currency.h"
#include "es/uuid.h"

Google__Protobuf__Timestamp *orders_timestamp(es_arena *a, int64_t us)
{
    Google__Protobuf__Timestamp *t = orders_v1_new_google_protobuf_Timestamp(a);
    t->seconds = us / 1000000;
    t->nanos = (int32_t)(us % 1000000) * 1000;
    return t;
}

static Orders__V1__Money *money(es_arena *a, char *currency, int64_t amount)
{
    Orders__V1__Money *m = orders_v1_new_Money(a);
    m->currency_code = currency;
    m->amount_minor = amount;
    return m;
}

/* "IN_TRANSIT" for SHIPPING_STATUS_IN_TRANSIT: the name a client sends. */
static const char *shipping_name(Orders__V1__ShippingStatus s)
{
    const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(&orders__v1__shipping_status__descriptor, s);
    return v ? v->name + strlen("SHIPPING_STATUS_") : "UNKNOWN";
}

int orders_shipping_rank(Orders__V1__ShippingStatus s)
{
    switch (s) {
    case ORDERS__V1__SHIPPING_STATUS__SHIPPING_STATUS_WAITING_FOR_SHIPMENT: return 1;
    case ORDERS__V1__SHIPPING_STATUS__SHIPPING_STATUS_IN_TRANSIT: return 2;
    case ORDERS__V1__SHIPPING_STATUS__SHIPPING_STATUS_OUT_FOR_DELIVERY: return 3;
    case ORDERS__V1__SHIPPING_STATUS__SHIPPING_STATUS_DELIVERED: return 4;
    case ORDERS__V1__SHIPPING_STATUS__SHIPPING_STATUS_WAITING_FOR_PAYMENT: return 0;
    default: return -1;
    }
}

int orders_v1_decide_PlaceOrder(const es_decide_ctx *ctx, const Orders__V1__OrderState *state,
                                const Orders__V1__PlaceOrderRequest *cmd, es_decision *out, es_error *err)
{
    (void)state; /* the pipeline guarantees a new stream for a creating command */
    es_arena *a = ctx->arena;
    char *currency = cmd->items[0]->unit_price->currency_code;
    int64_t total = 0, units = 0;
    Orders__V1__LineItem **items = es_arena_alloc(a, cmd->n_items * sizeof *items);
    for (size_t i = 0; i < cmd->n_items; i++) {
        const Orders__V1__LineItem *in = cmd->items[i];
        char field[64];
        if (!orders_currency_known(in->unit_price->currency_code)) {
            snprintf(field, sizeof field, "items[%zu].unit_price.currency_code", i);
            return es_error_set(err, ES_INVALID_ARGUMENT, field, "%s: %s is not an ISO 4217 currency code", field,
                                in->unit_price->currency_code);
        }
        if (strcmp(in->unit_price->currency_code, currency) != 0) {
            snprintf(field, sizeof field, "items[%zu].unit_price.currency_code", i);
            return es_error_set(err, ES_INVALID_ARGUMENT, field,
                                "%s must be %s like items[0]: an order has one currency", field, currency);
        }
        int64_t line;
        if (__builtin_mul_overflow((int64_t)in->quantity, in->unit_price->amount_minor, &line) ||
            __builtin_add_overflow(total, line, &total)) {
            snprintf(field, sizeof field, "items[%zu].unit_price.amount_minor", i);
            return es_error_set(err, ES_INVALID_ARGUMENT, field, "%s: the order total does not fit in 64 bits", field);
        }
        units += in->quantity;
        Orders__V1__LineItem *li = orders_v1_new_LineItem(a);
        li->product_id = in->product_id;
        li->title = in->title;
        li->quantity = in->quantity;
        li->unit_price = in->unit_price;
        li->line_total = money(a, currency, line); /* computed here, never trusted from the client */
        items[i] = li;
    }
    if (units > INT32_MAX)
        return es_error_set(err, ES_INVALID_ARGUMENT, "items", "items: too many units in one order");
    Orders__V1__OrderPlaced *ev = orders_v1_new_OrderPlaced(a);
    ev->order_id = es_arena_strdup(ctx->arena, ctx->stream_id);
    ev->customer_id = cmd->customer_id;
    ev->vendor_id = cmd->vendor_id;
    ev->n_items = cmd->n_items;
    ev->items = items;
    ev->item_count = (int32_t)units;
    ev->total = money(a, currency, total);
    ev->payment_method = cmd->payment_method;
    ev->shipping_address = cmd->shipping_address;
    ev->placed_at = orders_timestamp(a, ctx->now_us);
    return orders_v1_emit_OrderPlaced(out, ev);
}

int orders_v1_decide_InitiatePayment(const es_decide_ctx *ctx, const Orders__V1__OrderState *state,
                                     const Orders__V1__InitiatePaymentRequest *cmd, es_decision *out, es_error *err)
{
    (void)err;
    es_arena *a = ctx->arena;
    Orders__V1__OrderPaymentInitiated *ev = orders_v1_new_OrderPaymentInitiated(a);
    ev->order_id = es_arena_strdup(ctx->arena, ctx->stream_id);
    if (cmd->payment_id && cmd->payment_id[0]) {
        ev->payment_id = cmd->payment_id;
    } else {
        ev->payment_id = es_arena_alloc(a, ES_UUID_STRLEN + 1);
        es_uuid_derive("orders.v1.payment", ctx->stream_id, ev->payment_id);
    }
    ev->amount = state->total;
    ev->initiated_at = orders_timestamp(a, ctx->now_us);
    return orders_v1_emit_OrderPaymentInitiated(out, ev);
}

int orders_v1_decide_AuthorisePayment(const es_decide_ctx *ctx, const Orders__V1__OrderState *state,
                                      const Orders__V1__AuthorisePaymentRequest *cmd, es_decision *out, es_error *err)
{
    (void)err;
    Orders__V1__OrderPaymentAuthorised *ev = orders_v1_new_OrderPaymentAuthorised(ctx->arena);
    ev->order_id = es_arena_strdup(ctx->arena, ctx->stream_id);
    ev->payment_id = state->payment_id;
    ev->authorisation_code = cmd->authorisation_code;
    ev->authorised_at = orders_timestamp(ctx->arena, ctx->now_us);
    return orders_v1_emit_OrderPaymentAuthorised(out, ev);
}

static int same_money(const Orders__V1__Money *x, const Orders__V1__Money *y)
{
    return x && y && x->amount_minor == y->amount_minor && strcmp(x->currency_code, y->currency_code) == 0;
}

int orders_v1_decide_MarkOrderPaid(const es_decide_ctx *ctx, const Orders__V1__OrderState *state,
                                   const Orders__V1__MarkOrderPaidRequest *cmd, es_decision *out, es_error *err)
{
    if (cmd->amount && !same_money(cmd->amount, state->total))
        return es_error_set(err, ES_INVALID_ARGUMENT, "amount", "amount must equal the order total (%lld %s)",
                            state->total ? (long long)state->total->amount_minor : 0LL,
                            state->total ? state->total->currency_code : "");
    Orders__V1__OrderPaid *ev = orders_v1_new_OrderPaid(ctx->arena);
    ev->order_id = es_arena_strdup(ctx->arena, ctx->stream_id);
    ev->payment_id = state->payment_id;
    ev->amount = state->total;
    ev->paid_at = orders_timestamp(ctx->arena, ctx->now_us);
    return orders_v1_emit_OrderPaid(out, ev);
}

int orders_v1_decide_FailPayment(const es_decide_ctx *ctx, const Orders__V1__OrderState *state,
                                 const Orders__V1__FailPaymentRequest *cmd, es_decision *out, es_error *err)
{
    (void)err;
    Orders__V1__OrderPaymentFailed *ev = orders_v1_new_OrderPaymentFailed(ctx->arena);
    ev->order_id = es_arena_strdup(ctx->arena, ctx->stream_id);
    ev->payment_id = state->payment_id;
    ev->reason = cmd->reason;
    ev->failed_at = orders_timestamp(ctx->arena, ctx->now_us);
    return orders_v1_emit_OrderPaymentFailed(out, ev);
}

int orders_v1_decide_RefundPayment(const es_decide_ctx *ctx, const Orders__V1__OrderState *state,
                                   const Orders__V1__RefundPaymentRequest *cmd, es_decision *out, es_error *err)
{
    (void)err;
    /* The guard allows payment_status=PAID only: a refund happens once, after payment. */
    Orders__V1__OrderPaymentRefunded *ev = orders_v1_new_OrderPaymentRefunded(ctx->arena);
    ev->order_id = es_arena_strdup(ctx->arena, ctx->stream_id);
    ev->payment_id = state->payment_id;
    ev->amount = state->paid_amount; /* always the paid amount */
    ev->reason = cmd->reason && cmd->reason[0] ? cmd->reason
                 : state->status == ORDERS__V1__ORDER_STATUS__ORDER_STATUS_CANCELLED ? "order cancelled"
                                                                                     : "refund";
    ev->refunded_at = orders_timestamp(ctx->arena, ctx->now_us);
    ev->refund_due = 0;
    return orders_v1_emit_OrderPaymentRefunded(out, ev);
}

int orders_v1_decide_CancelOrder(const es_decide_ctx *ctx, const Orders__V1__OrderState *state,
                                 const Orders__V1__CancelOrderRequest *cmd, es_decision *out, es_error *err)
{
    /* The guard allows PLACED and PAID; once the parcel moves, it is too late. */
    if (orders_shipping_rank(state->shipping_status) >= 2)
        return es_error_set(err, ES_FAILED_PRECONDITION, "shipping_status",
                            "the order cannot be cancelled once shipping is %s",
                            shipping_name(state->shipping_status));
    Orders__V1__OrderCancelled *ev = orders_v1_new_OrderCancelled(ctx->arena);
    ev->order_id = es_arena_strdup(ctx->arena, ctx->stream_id);
    ev->reason = cmd->reason;
    ev->cancelled_at = orders_timestamp(ctx->arena, ctx->now_us);
    ev->refund_due = state->payment_status == ORDERS__V1__PAYMENT_STATUS__PAYMENT_STATUS_PAID;
    return orders_v1_emit_OrderCancelled(out, ev);
}

int orders_v1_decide_UpdateOrderShippingStatus(const es_decide_ctx *ctx, const Orders__V1__OrderState *state,
                                               const Orders__V1__UpdateOrderShippingStatusRequest *cmd,
                                               es_decision *out, es_error *err)
{
    int to = orders_shipping_rank(cmd->status), from = orders_shipping_rank(state->shipping_status);
    if (to < 1)
        return es_error_set(err, ES_INVALID_ARGUMENT, "status",
                            "status must be WAITING_FOR_SHIPMENT, IN_TRANSIT, OUT_FOR_DELIVERY or DELIVERED");
    if (to < from)
        return es_error_set(err, ES_FAILED_PRECONDITION, "status", "shipping status cannot move back from %s to %s",
                            shipping_name(state->shipping_status),
                            shipping_name(cmd->status));
    Google__Protobuf__Timestamp *now = orders_timestamp(ctx->arena, ctx->now_us);
    Google__Protobuf__Timestamp *occurred = cmd->occurred_at ? cmd->occurred_at : now;
    if (cmd->status == ORDERS__V1__SHIPPING_STATUS__SHIPPING_STATUS_DELIVERED) {
        Orders__V1__OrderDelivered *ev = orders_v1_new_OrderDelivered(ctx->arena);
        ev->order_id = es_arena_strdup(ctx->arena, ctx->stream_id);
        ev->carrier = cmd->carrier;
        ev->tracking_number = cmd->tracking_number;
        ev->location = cmd->location;
        ev->occurred_at = occurred;
        ev->delivered_at = now;
        return orders_v1_emit_OrderDelivered(out, ev);
    }
    Orders__V1__OrderShippingStatusUpdated *ev = orders_v1_new_OrderShippingStatusUpdated(ctx->arena);
    ev->order_id = es_arena_strdup(ctx->arena, ctx->stream_id);
    ev->status = cmd->status;
    ev->carrier = cmd->carrier;
    ev->tracking_number = cmd->tracking_number;
    ev->location = cmd->location;
    ev->occurred_at = occurred;
    ev->updated_at = now;
    return orders_v1_emit_OrderShippingStatusUpdated(out, ev);
}
