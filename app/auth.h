/* Bearer-token authentication: who the caller is (role and principal). What each role may call
 * is each rpc's (es.access) rule in proto/orders/v1/service.proto, applied by es_access_check.
 *
 * Tokens live in a file, one per line: "<sha256 hex of the token> <role> <principal>", '#'
 * starts a comment. Only hashes are stored; a token is never logged. Roles: customer, vendor,
 * payments, admin. */
#ifndef ORDERS_AUTH_H
#define ORDERS_AUTH_H

#include <stddef.h>
#include "es/dispatcher.h"
#include "es/pipeline.h"

typedef struct orders_auth orders_auth;

/* Loads the token file. Returns NULL and a message in err on a bad file. */
orders_auth *orders_auth_load(const char *path, es_pipeline *pipeline, char *err, size_t err_len);
void orders_auth_free(orders_auth *a);
/* Is bearer (the token, without "Bearer ") an admin's token? For endpoints outside the
 * dispatcher (/metrics). NULL a or bearer: no. */
int orders_auth_is_admin(const orders_auth *a, const char *bearer);
/* Whether token (the bearer token alone; NULL: none) is a known token of any role: ES_OK, else
 * ES_UNAUTHENTICATED with err filled. For calls outside the order service (gRPC server
 * reflection); data is the orders_auth. */
int orders_authenticate(void *data, const char *token, es_error *err);
/* The es_authorize_fn for the dispatcher; data is the orders_auth. */
int orders_authorize(void *data, es_call *call, const char **actor, es_error *err);

#endif
