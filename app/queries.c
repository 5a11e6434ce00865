/* The order queries (declared by the generated service table): GetOrder, ListOrders with keyset
 * page tokens (and the seed's offset), and the audit trail. Storage is behind orders_read_model. */
#include "read_model.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <time.h>

#include "es/upcast.h"
#include "es/uuid.h"
#include "upcasters.h"

#define DEFAULT_LIMIT 50

static const orders_query_env *env_of(es_query_ctx *ctx) { return ctx->app; }

int orders_v1_query_GetOrder(es_query_ctx *ctx, const Orders__V1__GetOrderRequest *req, Orders__V1__OrderSummary **out,
                             es_error *err)
{
    const orders_query_env *env = env_of(ctx);
    int limit = env->min_version_wait_ms > 0 ? env->min_version_wait_ms : 2000;
    int r = env->rm->get(env->rm->self, req->order_id, ctx->arena, out, err);
    if (r == ES_NOT_FOUND && req->min_version == 0)
        return es_error_set(err, ES_NOT_FOUND, "order_id", "order %s not found", req->order_id);
    if (r != ES_OK && r != ES_NOT_FOUND)
        return r;
    if (r == ES_OK && (*out)->version >= req->min_version)
        return ES_OK;
    /* Not there yet: the dispatcher parks the call without a thread and runs this again when the
     * order's row commits a change, at a re-check, or at the deadline. */
    int64_t deadline = ctx->first_run_ms + limit;
    if (ctx->can_wait && ctx->now_ms < deadline) {
        *out = NULL;
        ctx->wait = (es_query_wait){.stream_id = req->order_id, .deadline_ms = deadline, .field = "min_version"};
        return ES_OK;
    }
    return es_error_set(err, ES_ABORTED, "min_version",
                        "the read model of order %s is at version %" PRId64 ", not yet %" PRId64 "; retry",
                        req->order_id, r == ES_OK ? (*out)->version : (int64_t)0, req->min_version);
}

/* Page tokens are opaque to clients: "<created_at µs>.<order_id>" in hex. */
static char *encode_token(es_arena *a, const Orders__V1__OrderSummary *last)
{
    int64_t us = last->created_at ? last->created_at->seconds * 1000000 + last->created_at->nanos / 1000 : 0;
    char raw[128];
    int n = snprintf(raw, sizeof raw, "%" PRId64 ".%s", us, last->order_id);
    char *tok = es_arena_alloc(a, (size_t)n * 2 + 1);
    for (int i = 0; i < n; i++)
        snprintf(tok + 2 * i, 3, "%02x", (unsigned char)raw[i]);
    return tok;
}

static int decode_token(es_arena *a, const char *tok, orders_list_query *q, es_error *err)
{
    size_t n = strlen(tok);
    char raw[128];
    if (n % 2 || n / 2 >= sizeof raw)
        goto bad;
    for (size_t i = 0; i < n / 2; i++) {
        unsigned v;
        if (sscanf(tok + 2 * i, "%2x", &v) != 1)
            goto bad;
        raw[i] = (char)v;
    }
    raw[n / 2] = 0;
    char *dot = strchr(raw, '.');
    if (!dot || dot == raw)
        goto bad;
    *dot = 0;
    char *end;
    long long us = strtoll(raw, &end, 10);
    if (*end || !es_uuid_valid(dot + 1))
        goto bad;
    q->has_after = 1;
    q->after_created_us = us;
    q->after_order_id = es_arena_strdup(a, dot + 1);
    return ES_OK;
bad:
    return es_error_set(err, ES_INVALID_ARGUMENT, "page_token", "page_token is not a token this service issued");
}

int orders_v1_query_ListOrders(es_query_ctx *ctx, const Orders__V1__ListOrdersRequest *req,
                               Orders__V1__ListOrdersResponse **out, es_error *err)
{
    const orders_query_env *env = env_of(ctx);
    orders_list_query q = {0};
    q.customer_id = req->customer_id && req->customer_id[0] ? req->customer_id : NULL;
    q.vendor_id = req->vendor_id && req->vendor_id[0] ? req->vendor_id : NULL;
    if (req->status) {
        const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(&orders__v1__order_status__descriptor, req->status);
        q.status = v ? v->name : NULL;
    }
    q.limit = req->limit > 0 ? (size_t)req->limit : DEFAULT_LIMIT;
    if (req->page_token && req->page_token[0]) {
        if (req->offset)
            return es_error_set(err, ES_INVALID_ARGUMENT, "offset", "offset and page_token cannot be combined");
        int r = decode_token(ctx->arena, req->page_token, &q, err);
        if (r)
            return r;
    } else {
        q.offset = (size_t)req->offset;
    }
    size_t want = q.limit;
    q.limit = want + 1; /* one more tells whether a next page exists */
    Orders__V1__OrderSummary **rows = NULL;
    size_t n = 0;
    int r = env->rm->list(env->rm->self, &q, ctx->arena, &rows, &n, err);
    if (r)
        return r;
    Orders__V1__ListOrdersResponse *resp = es_arena_alloc(ctx->arena, sizeof *resp);
    orders__v1__list_orders_response__init(resp);
    resp->n_orders = n > want ? want : n;
    resp->orders = rows;
    if (n > want)
        resp->next_page_token = encode_token(ctx->arena, rows[want - 1]);
    *out = resp;
    return ES_OK;
}

int orders_v1_query_GetOrderEvents(es_query_ctx *ctx, const Orders__V1__GetOrderEventsRequest *req,
                                   Orders__V1__GetOrderEventsResponse **out, es_error *err)
{
    const orders_query_env *env = env_of(ctx);
    Orders__V1__GetOrderEventsResponse *resp = es_arena_alloc(ctx->arena, sizeof *resp);
    orders__v1__get_order_events_response__init(resp);
    int r = env->rm->events(env->rm->self, req->order_id, ctx->arena, &resp->events, &resp->n_events, err);
    if (r)
        return r;
    if (resp->n_events == 0)
        return es_error_set(err, ES_NOT_FOUND, "order_id", "order %s not found", req->order_id);
    /* Old events are shown in the current schema (their stored schema_version stays). */
    for (size_t i = 0; i < resp->n_events; i++) {
        Orders__V1__EventRecord *e = resp->events[i];
        if (!e->data)
            continue;
        const es_event_def *def = es_schema_event_by_type(&orders_v1_schema, NULL, e->event_type);
        const uint8_t *bytes;
        size_t len;
        int up = 0;
        es_error uerr = {0};
        if (es_event_upcast_payload(def, e->schema_version, e->data->value.data, e->data->value.len, orders_upcasters,
                                    orders_n_upcasters, ctx->arena, &bytes, &len, &up, &uerr) != ES_OK)
            return es_error_set(err, ES_DATA_LOSS, "", "order %s version %" PRId64 ": %s (schema version %u) cannot be "
                                "brought to the current schema: %s", req->order_id, e->version, e->event_type,
                                e->schema_version, uerr.message);
        e->data->value.data = (uint8_t *)bytes;
        e->data->value.len = len;
        if (up) /* now a message of the current definition, whose name may have changed */
            e->data->type_url = es_arena_sprintf(ctx->arena, "type.googleapis.com/%s", def->schema);
    }
    *out = resp;
    return ES_OK;
}
