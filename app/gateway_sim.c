/* The payment-gateway simulator: configurable outcome and latency, idempotent per payment id. */
#include "gateway.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "es/arena.h"
#include "es/clock.h"
#include "es/sha256.h"

typedef struct sim {
    payment_gateway g;
    int mode;                  /* 0 succeed, 1 fail, 2 random */
    double fail_fraction;
    int delay_ms;
    pthread_mutex_t lock;
    uint64_t charges, refunds;
} sim;

static void pause_ms(int ms) { es_sleep_us((int64_t)ms * 1000); }

static int outcome(sim *s, const char *payment_id)
{
    if (s->mode == 0)
        return 0;
    if (s->mode == 1)
        return 1;
    /* the first 48 bits of the digest, as a fraction of 2^48 */
    es_sha256 h;
    uint8_t d[32];
    es_sha256_init(&h);
    es_sha256_update(&h, payment_id, strlen(payment_id));
    es_sha256_final(&h, d);
    unsigned long long v = 0;
    for (int i = 0; i < 6; i++)
        v = v << 8 | d[i];
    return ((double)v / (double)(1ULL << 48)) < s->fail_fraction ? 1 : 0;
}

static int charge(void *self, const char *payment_id, const char *currency, int64_t amount, char *reason, size_t len)
{
    sim *s = self;
    pause_ms(s->delay_ms);
    pthread_mutex_lock(&s->lock);
    s->charges++;
    pthread_mutex_unlock(&s->lock);
    if (outcome(s, payment_id)) {
        snprintf(reason, len, "card declined by the simulated gateway (%lld %s)", (long long)amount, currency);
        return 1;
    }
    return 0;
}

static int refund(void *self, const char *payment_id, const char *currency, int64_t amount, char *reason, size_t len)
{
    sim *s = self;
    (void)payment_id; (void)currency; (void)amount; (void)reason; (void)len;
    pause_ms(s->delay_ms);
    pthread_mutex_lock(&s->lock);
    s->refunds++;
    pthread_mutex_unlock(&s->lock);
    return 0;
}

payment_gateway *gateway_sim_new(const char *mode, int delay_ms, char *err, size_t err_len)
{
    sim *s = es_xcalloc(1, sizeof *s);
    if (!mode || strcmp(mode, "succeed") == 0) {
        s->mode = 0;
    } else if (strcmp(mode, "fail") == 0) {
        s->mode = 1;
    } else if (strncmp(mode, "random:", 7) == 0) {
        char *end;
        s->mode = 2;
        s->fail_fraction = strtod(mode + 7, &end);
        if (*end || s->fail_fraction < 0 || s->fail_fraction > 1) {
            snprintf(err, err_len, "payment gateway mode %s: the fraction must be between 0 and 1", mode);
            free(s);
            return NULL;
        }
    } else {
        snprintf(err, err_len, "payment gateway mode \"%s\": expected succeed, fail or random:<fraction>", mode);
        free(s);
        return NULL;
    }
    s->delay_ms = delay_ms;
    pthread_mutex_init(&s->lock, NULL);
    s->g.self = s;
    s->g.charge = charge;
    s->g.refund = refund;
    return &s->g;
}

void gateway_sim_free(payment_gateway *g)
{
    if (!g)
        return;
    sim *s = g->self;
    pthread_mutex_destroy(&s->lock);
    free(s);
}

uint64_t gateway_sim_charges(const payment_gateway *g) { return ((sim *)g->self)->charges; }
uint64_t gateway_sim_refunds(const payment_gateway *g) { return ((sim *)g->self)->refunds; }
