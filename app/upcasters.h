/* The order service's upcasters (es/upcast.h): what old stored events mean in the current
 * schema. Every path that reads events uses this one table: the command pipeline while a stream
 * loads (main.c), the audit-trail query (queries.c), `orderctl history` and `tail`.
 *
 * None yet: every orders.v1 event is still at schema version 1. To add one, raise the event's
 * schema version in proto/orders/v1 (the field added), write the function here and list it. */
#ifndef ORDERS_UPCASTERS_H
#define ORDERS_UPCASTERS_H

#include <stddef.h>
#include "es/upcast.h"

extern const es_upcaster *const orders_upcasters;  /* orders_n_upcasters entries; NULL when none */
extern const size_t orders_n_upcasters;

#endif
