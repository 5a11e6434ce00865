/* The pipeline's recent-state cache: a chained hash table plus an LRU list, one mutex. */
#include "state_cache.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "es/arena.h"

typedef struct entry {
    char *key;
    uint64_t hash;
    ProtobufCMessage *state;
    int64_t version;
    struct entry *chain;           /* bucket list */
    struct entry *prev, *next;     /* LRU list, most recent at head */
} entry;

struct es__state_cache {
    pthread_mutex_t mu;
    entry **buckets;
    size_t n_buckets, n, cap;
    entry *head, *tail;
};

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ULL;        /* FNV-1a */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

es__state_cache *es__state_cache_new(size_t cap)
{
    es__state_cache *c = es_xcalloc(1, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    c->cap = cap ? cap : 1;
    c->n_buckets = 16;
    while (c->n_buckets < 2 * c->cap) c->n_buckets *= 2;
    c->buckets = es_xcalloc(c->n_buckets, sizeof *c->buckets);
    return c;
}

static void free_entry(entry *e)
{
    protobuf_c_message_free_unpacked(e->state, NULL);
    free(e->key);
    free(e);
}

void es__state_cache_free(es__state_cache *c)
{
    if (!c) return;
    for (entry *e = c->head, *next; e; e = next) {
        next = e->next;
        free_entry(e);
    }
    free(c->buckets);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

/* Unlinks e from its bucket and the LRU list (caller holds the lock). */
static void unlink_entry(es__state_cache *c, entry *e)
{
    entry **pp = &c->buckets[e->hash & (c->n_buckets - 1)];
    while (*pp != e) pp = &(*pp)->chain;
    *pp = e->chain;
    if (e->prev) e->prev->next = e->next;
    else c->head = e->next;
    if (e->next) e->next->prev = e->prev;
    else c->tail = e->prev;
    c->n--;
}

static entry *find(es__state_cache *c, const char *key, uint64_t h)
{
    for (entry *e = c->buckets[h & (c->n_buckets - 1)]; e; e = e->chain)
        if (e->hash == h && strcmp(e->key, key) == 0) return e;
    return NULL;
}

int es__state_cache_take(es__state_cache *c, const char *stream_id, const ProtobufCMessageDescriptor *d,
                         int64_t min_version, ProtobufCMessage **state, int64_t *version)
{
    uint64_t h = hash_str(stream_id);
    int taken = 0;
    pthread_mutex_lock(&c->mu);
    entry *e = find(c, stream_id, h);
    if (e && e->state->descriptor == d && e->version >= min_version) {
        unlink_entry(c, e);
        *state = e->state;
        *version = e->version;
        e->state = NULL;
        taken = 1;
    } else {
        e = NULL;
    }
    pthread_mutex_unlock(&c->mu);
    if (e) {
        free(e->key);
        free(e);
    }
    return taken;
}

void es__state_cache_put(es__state_cache *c, const char *stream_id, ProtobufCMessage *state,
                         int64_t version)
{
    uint64_t h = hash_str(stream_id);
    entry *drop = NULL;
    pthread_mutex_lock(&c->mu);
    entry *e = find(c, stream_id, h);
    if (e) {
        if (e->version > version) {
            pthread_mutex_unlock(&c->mu);
            protobuf_c_message_free_unpacked(state, NULL);
            return;
        }
        unlink_entry(c, e);
        drop = e;
    } else if (c->n >= c->cap) {
        drop = c->tail;
        unlink_entry(c, drop);
    }
    e = es_xcalloc(1, sizeof *e);
    e->key = es_xstrdup(stream_id);
    e->hash = h;
    e->state = state;
    e->version = version;
    entry **b = &c->buckets[h & (c->n_buckets - 1)];
    e->chain = *b;
    *b = e;
    e->next = c->head;
    if (c->head) c->head->prev = e;
    c->head = e;
    if (!c->tail) c->tail = e;
    c->n++;
    pthread_mutex_unlock(&c->mu);
    if (drop) free_entry(drop);   /* outside the lock: freeing a big state takes time */
}
