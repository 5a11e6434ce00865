/* The payment flow: a reactor on its own consumer group.
 *   OrderPlaced            -> InitiatePayment
 *   OrderPaymentInitiated  -> charge through the gateway -> MarkOrderPaid or FailPayment
 *   OrderCancelled (refund due) -> refund through the gateway -> RefundPayment
 * Each command's id is derived from the event that caused it, so a redelivered event appends
 * nothing twice; the gateway is called with the payment id as its idempotency key and only while
 * the current state still needs it, so a redelivery never charges twice, and a cancel that won
 * the race is never followed by a charge. */
#ifndef ORDERS_PAYMENT_FLOW_H
#define ORDERS_PAYMENT_FLOW_H

#include "es/consumer.h"
#include "es/pipeline.h"
#include "gateway.h"
#include "orders/v1/orders_v1.es.h"

/* One reaction: the command to send (def NULL: nothing to do). */
typedef struct payment_step {
    const es_command_def *def;
    ProtobufCMessage *cmd;               /* arena-allocated */
    char command_id[ES_UUID_STRLEN + 1];
} payment_step;

/* Decides the reaction to one event given the order's current state (NULL: no stream), through
 * the generated typed dispatch (orders_v1_order_dispatch: one handler per event type it reacts
 * to, the payload decoded once). Calls the gateway when money must move. Pure apart from the
 * gateway. Returns ES_OK, ES_UNAVAILABLE when the gateway could not be reached, or ES_DATA_LOSS
 * when the payload does not decode as its event (the event is retried, then dead-lettered). */
int payment_flow_step(const es_envelope_view *ev, const Orders__V1__OrderState *state, payment_gateway *g,
                      es_arena *a, payment_step *out, es_error *err);

typedef struct payment_flow {
    es_pipeline *pipeline;
    payment_gateway *gateway;
    unsigned concurrency;   /* orders reacted to at once in a batch (key payment-flow-concurrency) */
} payment_flow;

/* es_consumer_handle_fn over a payment_flow: loads the order, decides, sends the command. */
int payment_flow_handle(void *data, es_consumer_tx *tx, const es_envelope_view *ev, es_error *err);

/* es_consumer_batch_fn over a payment_flow: payment_flow_handle for every event of the batch,
 * up to `concurrency` orders at a time, each order's events in order (es_stream_groups_run), so
 * that the flow is not one gateway call and one group commit per event behind the orders. */
int payment_flow_handle_batch(void *data, es_consumer_tx *tx, const es_envelope_view *evs, size_t n,
                              es_error *err);

#endif
