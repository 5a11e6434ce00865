/* Bearer tokens and the per-role policy; see auth.h. */
#include "auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "es/sha256.h"
#include "es/access.h"

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
    /* Who may call what is the rpc's (es.access) rule, generated into the method table. */
    return es_access_check(a->pipeline, call, role_names[t->role], t->principal, err);
}
