/* The order queries (declared by the generated service table): GetOrder, ListOrders with keyset
 * page tokens (and the seed's offset), and the audit trail. Storage is behind orders_read_model. */
#include "read_model.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <time.h>

#include "es/buf.h"
#include "es/hex.h"
#include "es/sha256.h"
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

/* Page tokens are opaque to clients and cannot be forged: hex of
 *   version (1) | created_at µs (8, big-endian) | order id (16) | HMAC-SHA-256 (16 of 32)
 * where the MAC covers those bytes and the list's filters (customer, vendor, status) under the
 * service's page-token key. A token from another list, another key or edited by hand is
 * refused with INVALID_ARGUMENT naming page_token before any SQL sees it. */
#define TOKEN_VERSION 1
#define TOKEN_BODY 25
#define TOKEN_MAC 16
#define TOKEN_LEN (TOKEN_BODY + TOKEN_MAC)
/* created_at bounds a token may carry: 1970 .. 9999-12-31 (PostgreSQL's timestamptz range is
 * wider, but no order is placed outside this one). */
#define TOKEN_MAX_US INT64_C(253402300799999999)

static void token_mac(const orders_query_env *env, const orders_list_query *q, const uint8_t *body, uint8_t out[32])
{
    es_buf b;
    es_buf_init(&b);
    es_buf_append(&b, body, TOKEN_BODY);
    const char *parts[3] = {q->customer_id, q->vendor_id, q->status};
    for (int i = 0; i < 3; i++) {
        const char *v = parts[i] ? parts[i] : "";
        char len[24];
        int n = snprintf(len, sizeof len, "%zu:", strlen(v));
        es_buf_append(&b, len, (size_t)n);
        es_buf_append(&b, v, strlen(v));
    }
    es_hmac_sha256(env->page_key, sizeof env->page_key, b.data, b.len, out);
    es_buf_free(&b);
}

static char *encode_token(const orders_query_env *env, es_arena *a, const orders_list_query *q,
                          const Orders__V1__OrderSummary *last)
{
    int64_t us = last->created_at ? last->created_at->seconds * 1000000 + last->created_at->nanos / 1000 : 0;
    uint8_t t[TOKEN_LEN], mac[32];
    t[0] = TOKEN_VERSION;
    for (int i = 0; i < 8; i++)
        t[1 + i] = (uint8_t)((uint64_t)us >> (56 - 8 * i));
    if (!es_uuid_parse(last->order_id, t + 9))
        memset(t + 9, 0, 16);
    token_mac(env, q, t, mac);
    memcpy(t + TOKEN_BODY, mac, TOKEN_MAC);
    return es_hex_encode(t, TOKEN_LEN, es_arena_alloc(a, 2 * TOKEN_LEN + 1));
}


static int decode_token(const orders_query_env *env, es_arena *a, const char *tok, orders_list_query *q, es_error *err)
{
    uint8_t t[TOKEN_LEN], mac[32];
    if (strlen(tok) != 2 * TOKEN_LEN || es_hex_decode(tok, 2 * TOKEN_LEN, t) != TOKEN_LEN)
        goto bad;
    if (t[0] != TOKEN_VERSION)
        goto bad;
    token_mac(env, q, t, mac);
    /* Compared in constant time: the comparison must not tell a forger how many bytes match. */
    uint8_t diff = 0;
    for (int i = 0; i < TOKEN_MAC; i++)
        diff |= (uint8_t)(mac[i] ^ t[TOKEN_BODY + i]);
    if (diff)
        goto bad;
    uint64_t u = 0;
    for (int i = 0; i < 8; i++)
        u = u << 8 | t[1 + i];
    int64_t us = (int64_t)u;
    if (us < 0 || us > TOKEN_MAX_US)
        goto bad;
    char *id = es_arena_alloc(a, ES_UUID_STRLEN + 1);
    es_uuid_format(t + 9, id);
    q->has_after = 1;
    q->after_created_us = us;
    q->after_order_id = id;
    return ES_OK;
bad:
    return es_error_set(err, ES_INVALID_ARGUMENT, "page_token",
                        "page_token is not a token this service issued for this list (it may come from another "
                        "list, another page-token key, or have been altered)");
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
        int r = decode_token(env, ctx->arena, req->page_token, &q, err);
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
        resp->next_page_token = encode_token(env, ctx->arena, &q, rows[want - 1]);
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
