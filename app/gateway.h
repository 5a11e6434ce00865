/* The payment-gateway interface the payment flow charges and refunds through, and the shipped
 * simulator. A real gateway plugs in behind the same two calls. */
#ifndef ORDERS_GATEWAY_H
#define ORDERS_GATEWAY_H

#include <stddef.h>
#include <stdint.h>

typedef struct payment_gateway {
    void *self;
    /* Charges amount for payment_id. The payment id is the idempotency key: charging the same
     * id again returns the first outcome and moves no money. Returns 0 when paid, 1 when
     * declined (reason filled), <0 when the gateway could not be reached (retry later). */
    int (*charge)(void *self, const char *payment_id, const char *currency, int64_t amount_minor, char *reason,
                  size_t reason_len);
    /* Refunds a paid payment_id; same conventions (idempotent per payment id). */
    int (*refund)(void *self, const char *payment_id, const char *currency, int64_t amount_minor, char *reason,
                  size_t reason_len);
} payment_gateway;

/* The simulator: mode "succeed", "fail" or "random:<fraction that fails>" (the outcome for a
 * payment id is a pure function of the id, so a retried charge gets the same answer), plus a
 * delay per call. Returns NULL (and a message in err) for a bad mode. */
payment_gateway *gateway_sim_new(const char *mode, int delay_ms, char *err, size_t err_len);
void gateway_sim_free(payment_gateway *g);
/* Charges and refunds the simulator has answered (tests count double charges with these). */
uint64_t gateway_sim_charges(const payment_gateway *g);
uint64_t gateway_sim_refunds(const payment_gateway *g);

#endif
