/* The payment flow reactor; see payment_flow.h. */
#include "payment_flow.h"

#include <stdio.h>
#include <string.h>

#include "es/uuid.h"

static void derive_id(const es_envelope_view *ev, const es_command_def *def, char out[ES_UUID_STRLEN + 1])
{
    char ns[128];
    snprintf(ns, sizeof ns, "orders.payment-flow/%s", def->name);
    es_uuid_derive(ns, ev->event_id, out);
}

static void *new_cmd(es_arena *a, const ProtobufCMessageDescriptor *d)
{
    ProtobufCMessage *m = es_arena_alloc(a, d->sizeof_message);
    protobuf_c_message_init(d, m);
    return m;
}

int payment_flow_step(const es_envelope_view *ev, const Orders__V1__OrderState *st, payment_gateway *g, es_arena *a,
                      payment_step *out, es_error *err)
{
    memset(out, 0, sizeof *out);
    if (!st || strcmp(ev->stream_type, orders_v1_aggregate_order.name) != 0)
        return ES_OK;
    char *order_id = es_arena_strdup(a, ev->stream_id);
    int placed = st->status == ORDERS__V1__ORDER_STATUS__ORDER_STATUS_PLACED;
    if (strcmp(ev->event_type, orders_v1_event_OrderPlaced.type) == 0) {
        if (!placed || st->payment_status != ORDERS__V1__PAYMENT_STATUS__PAYMENT_STATUS_PENDING)
            return ES_OK;
        Orders__V1__InitiatePaymentRequest *c = new_cmd(a, &orders__v1__initiate_payment_request__descriptor);
        c->order_id = order_id;
        out->def = &orders_v1_command_InitiatePayment;
        out->cmd = &c->base;
    } else if (strcmp(ev->event_type, orders_v1_event_OrderPaymentInitiated.type) == 0) {
        if (!placed || (st->payment_status != ORDERS__V1__PAYMENT_STATUS__PAYMENT_STATUS_INITIATED &&
                        st->payment_status != ORDERS__V1__PAYMENT_STATUS__PAYMENT_STATUS_AUTHORISED))
            return ES_OK; /* cancelled or settled meanwhile: no money moves */
        char reason[256] = "";
        int r = g->charge(g->self, st->payment_id, st->total ? st->total->currency_code : "",
                          st->total ? st->total->amount_minor : 0, reason, sizeof reason);
        if (r < 0)
            return es_error_set(err, ES_UNAVAILABLE, "gateway", "payment gateway unreachable: %s", reason);
        if (r == 0) {
            Orders__V1__MarkOrderPaidRequest *c = new_cmd(a, &orders__v1__mark_order_paid_request__descriptor);
            c->order_id = order_id;
            out->def = &orders_v1_command_MarkOrderPaid;
            out->cmd = &c->base;
        } else {
            Orders__V1__FailPaymentRequest *c = new_cmd(a, &orders__v1__fail_payment_request__descriptor);
            c->order_id = order_id;
            c->reason = es_arena_strdup(a, reason);
            out->def = &orders_v1_command_FailPayment;
            out->cmd = &c->base;
        }
    } else if (strcmp(ev->event_type, orders_v1_event_OrderCancelled.type) == 0) {
        if (!st->refund_due || st->payment_status != ORDERS__V1__PAYMENT_STATUS__PAYMENT_STATUS_PAID)
            return ES_OK;
        char reason[256] = "";
        int r = g->refund(g->self, st->payment_id, st->paid_amount ? st->paid_amount->currency_code : "",
                          st->paid_amount ? st->paid_amount->amount_minor : 0, reason, sizeof reason);
        if (r != 0)
            return es_error_set(err, ES_UNAVAILABLE, "gateway", "refund not accepted by the gateway: %s", reason);
        Orders__V1__RefundPaymentRequest *c = new_cmd(a, &orders__v1__refund_payment_request__descriptor);
        c->order_id = order_id;
        c->reason = "order cancelled";
        out->def = &orders_v1_command_RefundPayment;
        out->cmd = &c->base;
    }
    if (out->def)
        derive_id(ev, out->def, out->command_id);
    return ES_OK;
}

int payment_flow_handle(void *data, es_consumer_tx *tx, const es_envelope_view *ev, es_error *err)
{
    (void)tx; /* the flow writes through the pipeline, idempotently, not in the runner's transaction */
    payment_flow *pf = data;
    if (strcmp(ev->stream_type, orders_v1_aggregate_order.name) != 0)
        return ES_OK;
    if (strcmp(ev->event_type, orders_v1_event_OrderPlaced.type) != 0 &&
        strcmp(ev->event_type, orders_v1_event_OrderPaymentInitiated.type) != 0 &&
        strcmp(ev->event_type, orders_v1_event_OrderCancelled.type) != 0)
        return ES_OK;
    ProtobufCMessage *state = NULL;
    int64_t version = 0;
    int rc = es_pipeline_load(pf->pipeline, &orders_v1_aggregate_order, ev->stream_id, &state, &version, err);
    if (rc == ES_NOT_FOUND)
        return ES_OK;
    if (rc)
        return rc;
    es_arena a;
    es_arena_init(&a);
    payment_step step;
    rc = payment_flow_step(ev, (const Orders__V1__OrderState *)state, pf->gateway, &a, &step, err);
    if (rc == ES_OK && step.def) {
        es_command_meta meta = {.command_id = step.command_id,
                                .correlation_id = ev->correlation_id[0] ? ev->correlation_id : NULL,
                                .causation_id = ev->event_id,
                                .actor = "payment-flow"};
        es_command_result res;
        rc = es_pipeline_execute(pf->pipeline, step.def, step.cmd, &meta, &res, err);
        if (rc == ES_FAILED_PRECONDITION && step.def == &orders_v1_command_MarkOrderPaid) {
            /* Charged, but the order was cancelled in between: give the money back. */
            const Orders__V1__OrderState *st = (const Orders__V1__OrderState *)state;
            char reason[256] = "";
            if (pf->gateway->refund(pf->gateway->self, st->payment_id, st->total ? st->total->currency_code : "",
                                    st->total ? st->total->amount_minor : 0, reason, sizeof reason) != 0)
                rc = es_error_set(err, ES_UNAVAILABLE, "gateway", "compensating refund failed: %s", reason);
        }
        /* Refused by the rules: the order moved on (e.g. cancelled); nothing left to do. */
        if (rc == ES_FAILED_PRECONDITION || rc == ES_NOT_FOUND || rc == ES_ALREADY_EXISTS)
            rc = ES_OK;
    }
    es_arena_free(&a);
    protobuf_c_message_free_unpacked(state, NULL);
    return rc;
}
