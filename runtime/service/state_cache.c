/* The pipeline's state cache: a chained hash table plus an LRU list under one mutex; a
 * condition variable wakes commands waiting for a stream to be checked in. */
#include "state_cache.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "es/arena.h"
#include "es/clock.h"

typedef struct entry {
    char *key;
    uint64_t hash;
    ProtobufCMessage *state;       /* NULL: no usable state (being loaded, or dropped) */
    int64_t version;
    uint64_t busy;                 /* ticket of the command that has it checked out, 0: free */
    struct entry *chain;           /* bucket list */
    struct entry *prev, *next;     /* LRU list, most recent at head */
} entry;

struct es__state_cache {
    pthread_mutex_t mu;
    pthread_cond_t checked_in;
    entry **buckets;
    size_t n_buckets, n, cap;
    entry *head, *tail;
    uint64_t tickets;
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
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&c->checked_in, &ca);
    pthread_condattr_destroy(&ca);
    c->cap = cap ? cap : 1;
    c->n_buckets = 16;
    while (c->n_buckets < 2 * c->cap) c->n_buckets *= 2;
    c->buckets = es_xcalloc(c->n_buckets, sizeof *c->buckets);
    return c;
}

static void free_entry(entry *e)
{
    if (!e) return;
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
    pthread_cond_destroy(&c->checked_in);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

static void lru_unlink(es__state_cache *c, entry *e)
{
    if (e->prev) e->prev->next = e->next;
    else c->head = e->next;
    if (e->next) e->next->prev = e->prev;
    else c->tail = e->prev;
    e->prev = e->next = NULL;
}

static void lru_push(es__state_cache *c, entry *e)
{
    e->next = c->head;
    if (c->head) c->head->prev = e;
    c->head = e;
    if (!c->tail) c->tail = e;
}

/* Unlinks e from its bucket and the LRU list (caller holds the lock). */
static void unlink_entry(es__state_cache *c, entry *e)
{
    entry **pp = &c->buckets[e->hash & (c->n_buckets - 1)];
    while (*pp != e) pp = &(*pp)->chain;
    *pp = e->chain;
    lru_unlink(c, e);
    c->n--;
}

static entry *find(es__state_cache *c, const char *key, uint64_t h)
{
    for (entry *e = c->buckets[h & (c->n_buckets - 1)]; e; e = e->chain)
        if (e->hash == h && strcmp(e->key, key) == 0) return e;
    return NULL;
}

/* Adds an entry, evicting least recently used free entries beyond cap onto *dropped. */
static entry *insert(es__state_cache *c, const char *key, uint64_t h, entry **dropped)
{
    for (entry *v = c->tail; v && c->n >= c->cap;) {
        entry *prev = v->prev;
        if (!v->busy) {
            unlink_entry(c, v);
            v->chain = *dropped;
            *dropped = v;
        }
        v = prev;
    }
    entry *e = es_xcalloc(1, sizeof *e);
    e->key = es_xstrdup(key);
    e->hash = h;
    entry **b = &c->buckets[h & (c->n_buckets - 1)];
    e->chain = *b;
    *b = e;
    lru_push(c, e);
    c->n++;
    return e;
}

static void free_dropped(entry *d)
{
    while (d) {
        entry *next = d->chain;
        free_entry(d);
        d = next;
    }
}

int es__state_cache_checkout(es__state_cache *c, const char *stream_id, const ProtobufCMessageDescriptor *d,
                             int64_t min_version, int wait_ms, uint64_t *ticket, ProtobufCMessage **state,
                             int64_t *version)
{
    uint64_t h = hash_str(stream_id);
    struct timespec deadline = es_mono_deadline((int64_t)wait_ms * 1000);

    entry *dropped = NULL;
    ProtobufCMessage *stale = NULL;
    int hit = 0;
    *ticket = 0;
    pthread_mutex_lock(&c->mu);
    for (;;) {
        entry *e = find(c, stream_id, h);
        if (!e) {
            e = insert(c, stream_id, h, &dropped);
            e->busy = *ticket = ++c->tickets;
            break;
        }
        if (e->busy) {
            if (pthread_cond_timedwait(&c->checked_in, &c->mu, &deadline) == ETIMEDOUT) break;
            continue;
        }
        e->busy = *ticket = ++c->tickets;
        if (e->state && e->state->descriptor == d && e->version >= min_version) {
            *state = e->state;
            *version = e->version;
            hit = 1;
        } else {
            stale = e->state;
        }
        e->state = NULL;
        break;
    }
    pthread_mutex_unlock(&c->mu);
    protobuf_c_message_free_unpacked(stale, NULL);
    free_dropped(dropped);
    return hit;
}

void es__state_cache_checkin(es__state_cache *c, const char *stream_id, uint64_t ticket, ProtobufCMessage *state,
                             int64_t version)
{
    uint64_t h = hash_str(stream_id);
    entry *dropped = NULL;
    ProtobufCMessage *unused = NULL;
    pthread_mutex_lock(&c->mu);
    entry *e = find(c, stream_id, h);
    if (ticket && e && e->busy == ticket) {
        if (state) {
            unused = e->state;
            e->state = state;
            e->version = version;
            e->busy = 0;
            lru_unlink(c, e);
            lru_push(c, e);
        } else {
            /* Nothing to keep (e.g. no such stream): an empty entry would only evict others. */
            unlink_entry(c, e);
            e->chain = dropped;
            dropped = e;
        }
        pthread_cond_broadcast(&c->checked_in);
    } else if (!state) {
        /* nothing to keep */
    } else if (!e) {
        e = insert(c, stream_id, h, &dropped);
        e->state = state;
        e->version = version;
    } else if (!e->busy && (!e->state || e->version < version)) {
        unused = e->state;
        e->state = state;
        e->version = version;
    } else {
        unused = state;            /* someone holds it, or has something newer */
    }
    pthread_mutex_unlock(&c->mu);
    protobuf_c_message_free_unpacked(unused, NULL);
    free_dropped(dropped);
}
