/* The payment flow reactor; see payment_flow.h. */
#include "payment_flow.h"

#include <stdio.h>
#include <string.h>

#include "es/stream_groups.h"
#include "es/uuid.h"
#include "upcasters.h"

static void derive_id(const es_envelope_view *ev, const es_command_def *def, char out[ES_UUID_STRLEN + 1])
{
    char ns[128];
    snprintf(ns, sizeof ns, "orders.payment-flow/%s", def->name);
    es_uuid_derive(ns, ev->event_id, out);
}

/* One event's reaction being decided: what the handlers below read and fill. */
typedef struct flow_call {
    const Orders__V1__OrderState *st;
    payment_gateway *g;
    es_arena *a;
    payment_step *out;
    es_error *err;
} flow_call;

static int placed(const Orders__V1__OrderState *st)
{
    return st->status == ORDERS__V1__ORDER_STATUS__ORDER_STATUS_PLACED;
}

static int on_placed(void *ctx, const es_envelope_view *m, const Orders__V1__OrderPlaced *ev)
{
    (void)ev;
    flow_call *f = ctx;
    if (!placed(f->st) || f->st->payment_status != ORDERS__V1__PAYMENT_STATUS__PAYMENT_STATUS_PENDING)
        return ES_OK;
    Orders__V1__InitiatePaymentRequest *c = orders_v1_new_InitiatePaymentRequest(f->a);
    c->order_id = es_arena_strdup(f->a, m->stream_id);
    f->out->def = &orders_v1_command_InitiatePayment;
    f->out->cmd = &c->base;
    return ES_OK;
}

static int on_payment_initiated(void *ctx, const es_envelope_view *m, const Orders__V1__OrderPaymentInitiated *ev)
{
    (void)ev;
    flow_call *f = ctx;
    const Orders__V1__OrderState *st = f->st;
    if (!placed(st) || (st->payment_status != ORDERS__V1__PAYMENT_STATUS__PAYMENT_STATUS_INITIATED &&
                        st->payment_status != ORDERS__V1__PAYMENT_STATUS__PAYMENT_STATUS_AUTHORISED))
        return ES_OK; /* cancelled or settled meanwhile: no money moves */
    char reason[256] = "";
    int r = f->g->charge(f->g->self, st->payment_id, st->total ? st->total->currency_code : "",
                         st->total ? st->total->amount_minor : 0, reason, sizeof reason);
    if (r < 0)
        return es_error_set(f->err, ES_UNAVAILABLE, "gateway", "payment gateway unreachable: %s", reason);
    if (r == 0) {
        Orders__V1__MarkOrderPaidRequest *c = orders_v1_new_MarkOrderPaidRequest(f->a);
        c->order_id = es_arena_strdup(f->a, m->stream_id);
        f->out->def = &orders_v1_command_MarkOrderPaid;
        f->out->cmd = &c->base;
    } else {
        Orders__V1__FailPaymentRequest *c = orders_v1_new_FailPaymentRequest(f->a);
        c->order_id = es_arena_strdup(f->a, m->stream_id);
        c->reason = es_arena_strdup(f->a, reason);
        f->out->def = &orders_v1_command_FailPayment;
        f->out->cmd = &c->base;
    }
    return ES_OK;
}

static int on_cancelled(void *ctx, const es_envelope_view *m, const Orders__V1__OrderCancelled *ev)
{
    (void)ev; /* the state's refund_due, not the event's, decides: a refund may have happened since */
    flow_call *f = ctx;
    const Orders__V1__OrderState *st = f->st;
    if (!st->refund_due || st->payment_status != ORDERS__V1__PAYMENT_STATUS__PAYMENT_STATUS_PAID)
        return ES_OK;
    char reason[256] = "";
    int r = f->g->refund(f->g->self, st->payment_id, st->paid_amount ? st->paid_amount->currency_code : "",
                         st->paid_amount ? st->paid_amount->amount_minor : 0, reason, sizeof reason);
    if (r != 0)
        return es_error_set(f->err, ES_UNAVAILABLE, "gateway", "refund not accepted by the gateway: %s", reason);
    Orders__V1__RefundPaymentRequest *c = orders_v1_new_RefundPaymentRequest(f->a);
    c->order_id = es_arena_strdup(f->a, m->stream_id);
    c->reason = "order cancelled";
    f->out->def = &orders_v1_command_RefundPayment;
    f->out->cmd = &c->base;
    return ES_OK;
}

/* The events the flow reacts to; every other event of an order (and every other stream type) is
 * ignored by the generated dispatch. */
static orders_v1_order_reactor flow_reactor(void)
{
    return (orders_v1_order_reactor){.on_OrderPlaced = on_placed,
                                     .on_OrderPaymentInitiated = on_payment_initiated,
                                     .on_OrderCancelled = on_cancelled,
                                     .upcasters = orders_upcasters,
                                     .n_upcasters = orders_n_upcasters};
}

int payment_flow_step(const es_envelope_view *ev, const Orders__V1__OrderState *st, payment_gateway *g, es_arena *a,
                      payment_step *out, es_error *err)
{
    memset(out, 0, sizeof *out);
    if (!st)
        return ES_OK;
    flow_call f = {.st = st, .g = g, .a = a, .out = out, .err = err};
    orders_v1_order_reactor r = flow_reactor();
    int rc = orders_v1_order_dispatch(&r, &f, ev, err);
    if (rc == ES_OK && out->def)
        derive_id(ev, out->def, out->command_id);
    return rc;
}

int payment_flow_handle(void *data, es_consumer_tx *tx, const es_envelope_view *ev, es_error *err)
{
    (void)tx; /* the flow writes through the pipeline, idempotently, not in the runner's transaction */
    payment_flow *pf = data;
    orders_v1_order_reactor r = flow_reactor();
    if (!orders_v1_order_reactor_handles(&r, ev))
        return ES_OK; /* not loaded: nothing to react to */
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

static int handle_one(void *data, const es_envelope_view *ev, es_error *err)
{
    return payment_flow_handle(data, NULL, ev, err);
}

int payment_flow_handle_batch(void *data, es_consumer_tx *tx, const es_envelope_view *evs, size_t n,
                              es_error *err)
{
    (void)tx; /* as payment_flow_handle: the flow writes through the pipeline */
    payment_flow *pf = data;
    return es_stream_groups_run(evs, n, pf->concurrency, handle_one, pf, err);
}
