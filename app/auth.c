/* Bearer tokens and the per-role policy; see auth.h. */
#include "auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "es/sha256.h"
#include "orders/v1/orders_v1.es.h"

typedef enum { ROLE_CUSTOMER, ROLE_VENDOR, ROLE_PAYMENTS, ROLE_ADMIN } role;
static const char *const role_names[] = {"customer", "vendor", "payments", "admin"};

typedef struct token {
    char hash[65];
    role role;
    char *principal;
} token;

struct orders_auth {
    token *tokens;
    size_t n;
    es_pipeline *pipeline;
};

orders_auth *orders_auth_load(const char *path, es_pipeline *pipeline, char *err, size_t err_len)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, err_len, "cannot read the token file %s", path);
        return NULL;
    }
    orders_auth *a = es_xcalloc(1, sizeof *a);
    a->pipeline = pipeline;
    char line[1024];
    int lineno = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        char *hash_s = strtok(line, " \t\r\n");
        if (!hash_s || hash_s[0] == '#')
            continue;
        char *role_s = strtok(NULL, " \t\r\n"), *principal = strtok(NULL, " \t\r\n");
        int r = -1;
        for (int i = 0; role_s && i < 4; i++)
            if (strcmp(role_s, role_names[i]) == 0)
                r = i;
        if (strlen(hash_s) != 64 || strspn(hash_s, "0123456789abcdef") != 64 || r < 0 || !principal) {
            snprintf(err, err_len, "%s:%d: expected \"<sha256 hex> customer|vendor|payments|admin <principal>\"", path,
                     lineno);
            fclose(f);
            orders_auth_free(a);
            return NULL;
        }
        a->tokens = es_xrealloc(a->tokens, (a->n + 1) * sizeof *a->tokens);
        token *t = &a->tokens[a->n++];
        memcpy(t->hash, hash_s, 65);
        t->role = (role)r;
        t->principal = es_xstrdup(principal);
    }
    fclose(f);
    return a;
}

void orders_auth_free(orders_auth *a)
{
    if (!a)
        return;
    for (size_t i = 0; i < a->n; i++)
        free(a->tokens[i].principal);
    free(a->tokens);
    free(a);
}

static int is(const es_call *c, const char *name) { return strcmp(c->method->name, name) == 0; }

static int is_payment_command(const es_call *c)
{
    return is(c, "InitiatePayment") || is(c, "AuthorisePayment") || is(c, "MarkOrderPaid") || is(c, "FailPayment") ||
           is(c, "RefundPayment");
}

/* The order id a call targets, or NULL. */
static const char *target_order(const es_call *c)
{
    const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(c->request->descriptor, "order_id");
    if (!f || f->type != PROTOBUF_C_TYPE_STRING)
        return NULL;
    return *(char *const *)((const char *)c->request + f->offset);
}

/* Whether the principal owns the order (customer or vendor side). A missing order is let through:
 * the command or query then answers NOT_FOUND, the same as for its owner. */
static int owns(orders_auth *a, const es_call *c, role r, const char *principal, es_error *err, int *ok)
{
    const char *id = target_order(c);
    *ok = 1;
    if (!id || !id[0])
        return ES_OK;
    ProtobufCMessage *m = NULL;
    int64_t v;
    int rc = es_pipeline_load(a->pipeline, &orders_v1_aggregate_order, id, &m, &v, err);
    if (rc == ES_NOT_FOUND || rc == ES_INVALID_ARGUMENT)
        return ES_OK;
    if (rc)
        return rc;
    const Orders__V1__OrderState *st = (const Orders__V1__OrderState *)m;
    const char *owner = r == ROLE_CUSTOMER ? st->customer_id : st->vendor_id;
    *ok = owner && strcmp(owner, principal) == 0;
    protobuf_c_message_free_unpacked(m, NULL);
    return ES_OK;
}

static int denied(es_error *err, const es_call *c, const token *t)
{
    return es_error_set(err, ES_PERMISSION_DENIED, "", "%s %s may not call %s%s", role_names[t->role], t->principal,
                        c->method->name, target_order(c) ? " on this order" : "");
}

/* The token entry of bearer (the token itself), or NULL. */
static const token *find_token(const orders_auth *a, const char *bearer)
{
    char hash[65];
    es_sha256_hex(bearer, strlen(bearer), hash);
    const token *t = NULL;
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->tokens[i].hash, hash) == 0)
            t = &a->tokens[i];
    return t;
}

int orders_auth_is_admin(const orders_auth *a, const char *bearer)
{
    const token *t = a && bearer && bearer[0] ? find_token(a, bearer) : NULL;
    return t && t->role == ROLE_ADMIN;
}

int orders_authenticate(void *data, const char *token, es_error *err)
{
    if (!token || !token[0])
        return es_error_set(err, ES_UNAUTHENTICATED, "authorization", "a bearer token is required (Authorization: Bearer <token>)");
    if (!find_token(data, token))
        return es_error_set(err, ES_UNAUTHENTICATED, "authorization", "unknown bearer token");
    return ES_OK;
}

int orders_authorize(void *data, es_call *call, const char **actor, es_error *err)
{
    orders_auth *a = data;
    if (!call->authorization || !call->authorization[0])
        return es_error_set(err, ES_UNAUTHENTICATED, "authorization", "a bearer token is required (Authorization: Bearer <token>)");
    const token *t = find_token(a, call->authorization);
    if (!t)
        return es_error_set(err, ES_UNAUTHENTICATED, "authorization", "unknown bearer token");
    *actor = es_arena_sprintf(&call->arena, "%s:%s", role_names[t->role], t->principal);
    int ok = 0, rc;
    switch (t->role) {
    case ROLE_ADMIN:
        return ES_OK;
    case ROLE_PAYMENTS:
        if (is_payment_command(call) || is(call, "GetOrder") || is(call, "GetOrderEvents"))
            return ES_OK;
        return denied(err, call, t);
    case ROLE_CUSTOMER:
        if (is(call, "PlaceOrder")) {
            const Orders__V1__PlaceOrderRequest *r = (const Orders__V1__PlaceOrderRequest *)call->request;
            if (r->customer_id && r->customer_id[0] && strcmp(r->customer_id, t->principal) != 0)
                return es_error_set(err, ES_PERMISSION_DENIED, "customer_id",
                                    "customer %s may only place orders as themselves", t->principal);
            return ES_OK;
        }
        if (is(call, "ListOrders")) {
            Orders__V1__ListOrdersRequest *r = (Orders__V1__ListOrdersRequest *)call->request;
            if (r->customer_id && r->customer_id[0] && strcmp(r->customer_id, t->principal) != 0)
                return es_error_set(err, ES_PERMISSION_DENIED, "customer_id", "customer %s may only list their own orders",
                                    t->principal);
            r->customer_id = es_arena_strdup(&call->arena, t->principal);
            return ES_OK;
        }
        if (!(is(call, "CancelOrder") || is(call, "GetOrder") || is(call, "GetOrderEvents")))
            return denied(err, call, t);
        break;
    case ROLE_VENDOR:
        if (is(call, "ListOrders")) {
            Orders__V1__ListOrdersRequest *r = (Orders__V1__ListOrdersRequest *)call->request;
            if (r->vendor_id && r->vendor_id[0] && strcmp(r->vendor_id, t->principal) != 0)
                return es_error_set(err, ES_PERMISSION_DENIED, "vendor_id", "vendor %s may only list their own orders",
                                    t->principal);
            r->vendor_id = es_arena_strdup(&call->arena, t->principal);
            return ES_OK;
        }
        if (!(is(call, "UpdateOrderShippingStatus") || is(call, "GetOrder") || is(call, "GetOrderEvents")))
            return denied(err, call, t);
        break;
    }
    if ((rc = owns(a, call, t->role, t->principal, err, &ok)) != ES_OK)
        return rc;
    return ok ? ES_OK : denied(err, call, t);
}
