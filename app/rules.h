/* The order rules: helpers shared by the decide functions (declared in the generated
 * orders/v1/orders_v1.es.h, defined in rules.c). Pure functions of state and command. */
#ifndef ORDERS_RULES_H
#define ORDERS_RULES_H

#include "orders/v1/orders_v1.es.h"

/* Order of shipping statuses for the forward-only rule; -1 for values a client may not set. */
int orders_shipping_rank(Orders__V1__ShippingStatus s);
/* A Timestamp in the arena for a wall-clock time in microseconds. */
Google__Protobuf__Timestamp *orders_timestamp(es_arena *a, int64_t us);

#endif
