/* orders_read_model over the runtime: the order_summary projection reader and the event store. */
#ifndef ORDERS_READ_MODEL_IMPL_H
#define ORDERS_READ_MODEL_IMPL_H

#include <stdatomic.h>

#include "es/pg_pool.h"
#include "es/pipeline.h"
#include "es/projection.h"
#include "read_model.h"

typedef struct orders_read_model_impl {
    orders_read_model rm;
    es_projection_reader *summary;
    es_pipeline *pipeline;
    es_pg_pool *replica_pool;            /* borrowed; NULL: the primary serves every read */
    es_projection_reader *replica;       /* the summary reader over replica_pool */
    atomic_int replica_down;             /* logs the fall-back once per outage, not once per read */
} orders_read_model_impl;

void orders_read_model_init(orders_read_model_impl *impl, es_pipeline *pipeline);
/* Serves get and list from a streaming replica's pool (borrowed, outlives impl); while it is
 * unavailable they fall back to the primary, with a log line and es_pg_replica_fallbacks_total.
 * The audit trail (events) stays on the primary's event store. */
void orders_read_model_use_replica(orders_read_model_impl *impl, es_pg_pool *replica_pool);
void orders_read_model_fini(orders_read_model_impl *impl);

#endif
