/* orders_read_model over the runtime: the order_summary projection reader and the event store. */
#ifndef ORDERS_READ_MODEL_IMPL_H
#define ORDERS_READ_MODEL_IMPL_H

#include "es/pipeline.h"
#include "es/projection.h"
#include "read_model.h"

typedef struct orders_read_model_impl {
    orders_read_model rm;
    es_projection_reader *summary;
    es_pipeline *pipeline;
} orders_read_model_impl;

void orders_read_model_init(orders_read_model_impl *impl, es_pipeline *pipeline);
void orders_read_model_fini(orders_read_model_impl *impl);

#endif
