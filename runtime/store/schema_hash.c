/* Shape hashes of message types (es_store_schema_hash): what a stored event or snapshot was
 * written with, so that a reader can tell whether its own type still means the same bytes. */
#include "es/store.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "es/arena.h"
#include "es/hex.h"
#include "es/sha256.h"

typedef struct seen {
    const void *d[64];
    size_t n;
} seen;

static void put_str(es_sha256 *h, const char *s)
{
    es_sha256_update(h, s ? s : "", s ? strlen(s) + 1 : 1);
}

static void put_u32(es_sha256 *h, uint32_t v)
{
    char b[16];
    int n = snprintf(b, sizeof b, "%u;", v);
    es_sha256_update(h, b, (size_t)n);
}

static void hash_enum(es_sha256 *h, const ProtobufCEnumDescriptor *e)
{
    put_str(h, "E");
    put_str(h, e->name);
    for (unsigned i = 0; i < e->n_values; i++) {
        put_str(h, e->values[i].name);
        put_u32(h, (uint32_t)e->values[i].value);
    }
}

static void hash_message(es_sha256 *h, const ProtobufCMessageDescriptor *d, seen *s)
{
    put_str(h, "M");
    put_str(h, d->name);
    /* A recursive type is hashed once; later mentions are by name only. */
    for (size_t i = 0; i < s->n; i++)
        if (s->d[i] == d) return;
    if (s->n < sizeof s->d / sizeof s->d[0]) s->d[s->n++] = d;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        put_u32(h, f->id);
        put_str(h, f->name);
        put_u32(h, (uint32_t)f->label);
        put_u32(h, (uint32_t)f->type);
        if (f->type == PROTOBUF_C_TYPE_MESSAGE)
            hash_message(h, f->descriptor, s);
        else if (f->type == PROTOBUF_C_TYPE_ENUM)
            hash_enum(h, f->descriptor);
    }
    put_str(h, "end");
}

typedef struct cached {
    const ProtobufCMessageDescriptor *d;
    char hex[65];
    struct cached *next;
} cached;

static pthread_mutex_t cache_mu = PTHREAD_MUTEX_INITIALIZER;
static cached *cache;

const char *es_store_schema_hash(const ProtobufCMessageDescriptor *d)
{
    pthread_mutex_lock(&cache_mu);
    for (cached *c = cache; c; c = c->next)
        if (c->d == d) {
            pthread_mutex_unlock(&cache_mu);
            return c->hex;
        }
    cached *c = es_xcalloc(1, sizeof *c);
    c->d = d;
    es_sha256 h;
    seen s = {.n = 0};
    uint8_t digest[32];
    es_sha256_init(&h);
    hash_message(&h, d, &s);
    es_sha256_final(&h, digest);
    es_hex_encode(digest, sizeof digest, c->hex);
    c->next = cache;
    cache = c;
    pthread_mutex_unlock(&cache_mu);
    return c->hex;
}
