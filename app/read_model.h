/* What the order queries need from storage, as an interface: the queries stay free of any I/O
 * library; main.c implements it over the runtime's projection store and event store. */
#ifndef ORDERS_READ_MODEL_H
#define ORDERS_READ_MODEL_H

#include "orders/v1/orders_v1.es.h"

typedef struct orders_list_query {
    const char *customer_id;   /* NULL: any */
    const char *vendor_id;     /* NULL: any */
    const char *status;        /* enum value name, NULL: any */
    int has_after;             /* keyset cursor: rows strictly after (created_at, order_id) */
    int64_t after_created_us;
    const char *after_order_id;
    size_t limit;              /* rows to return (the query asks for one more to detect a next page) */
    size_t offset;             /* the seed's paging, used when there is no cursor */
} orders_list_query;

typedef struct orders_read_model {
    void *self;
    /* The summary row of an order, or ES_NOT_FOUND. *out is arena-allocated. */
    int (*get)(void *self, const char *order_id, es_arena *a, Orders__V1__OrderSummary **out, es_error *err);
    /* Rows newest first (created_at DESC, order_id DESC). */
    int (*list)(void *self, const orders_list_query *q, es_arena *a, Orders__V1__OrderSummary ***rows, size_t *n,
                es_error *err);
    /* Every stored event of the order, in version order, from the event store. */
    int (*events)(void *self, const char *order_id, es_arena *a, Orders__V1__EventRecord ***out, size_t *n,
                  es_error *err);
} orders_read_model;

/* The context app/queries.c expects in es_query_ctx.app. */
typedef struct orders_query_env {
    const orders_read_model *rm;
    int min_version_wait_ms;   /* how long GetOrder waits for min_version (default 2000) */
    uint8_t page_key[32];      /* HMAC key of ListOrders page tokens (config page-token-key) */
} orders_query_env;

#endif
