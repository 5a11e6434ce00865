/* Chunked bump allocator; see es/arena.h.
 *
 * Built with ES_ARENA_EXACT (the fuzz build does), every allocation is instead its own heap
 * block of exactly the requested size: a bump allocator puts the next allocation right after
 * this one, so a write one byte past it would go unseen by AddressSanitizer; a block of its own
 * ends at a redzone. The contract is the same either way. */
#include "es/arena.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct es_arena_chunk {
    es_arena_chunk *next;
    size_t size;
    _Alignas(16) unsigned char data[];
};

#define ES_ARENA_MIN 4096

_Noreturn void es_oom(void)
{
    fputs("es: out of memory\n", stderr);
    abort();
}

_Noreturn void es_no_thread(const char *what, int error)
{
    fprintf(stderr, "es: cannot start the %s thread: %s\n", what, strerror(error));
    abort();
}

void *es_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        es_oom();
    return p;
}

void *es_xcalloc(size_t n, size_t m)
{
    void *p = calloc(n ? n : 1, m ? m : 1);
    if (!p)
        es_oom();
    return p;
}

void *es_xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (!p)
        es_oom();
    return p;
}

char *es_xstrdup(const char *s)
{
    char *p = strdup(s ? s : "");
    if (!p)
        es_oom();
    return p;
}

static void *pb_alloc(void *data, size_t n) { return es_arena_alloc(data, n); }
static void pb_free(void *data, void *p) { (void)data; (void)p; }

void es_arena_init(es_arena *a)
{
    a->head = NULL;
    a->used = a->cap = 0;
    a->pb.alloc = pb_alloc;
    a->pb.free = pb_free;
    a->pb.allocator_data = a;
}

void es_arena_free(es_arena *a)
{
    es_arena_chunk *c = a->head;
    while (c) {
        es_arena_chunk *n = c->next;
        free(c);
        c = n;
    }
    a->head = NULL;
    a->used = a->cap = 0;
}

#ifdef ES_ARENA_EXACT

void es_arena_reset(es_arena *a) { es_arena_free(a); }

void *es_arena_alloc(es_arena *a, size_t n)
{
    if (n > SIZE_MAX - sizeof(es_arena_chunk))
        es_oom();
    es_arena_chunk *c = es_xmalloc(sizeof *c + n);
    c->size = n;
    c->next = a->head;
    a->head = c;
    a->used += n;
    return c->data;
}

#else

void es_arena_reset(es_arena *a)
{
    /* Keep the newest (largest) chunk to avoid malloc churn across requests. */
    if (!a->head)
        return;
    es_arena_chunk *keep = a->head, *c = keep->next;
    while (c) {
        es_arena_chunk *n = c->next;
        free(c);
        c = n;
    }
    keep->next = NULL;
    a->used = 0;
}

void *es_arena_alloc(es_arena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (!a->head || a->used + n > a->cap) {
        size_t size = n > ES_ARENA_MIN ? n : ES_ARENA_MIN;
        if (a->head && a->cap * 2 > size && a->cap * 2 <= (1u << 20))
            size = a->cap * 2 >= n ? a->cap * 2 : size;
        es_arena_chunk *c = es_xmalloc(sizeof *c + size);
        c->size = size;
        c->next = a->head;
        a->head = c;
        a->used = 0;
        a->cap = size;
    }
    void *p = a->head->data + a->used;
    a->used += n;
    return p;
}

#endif

void *es_arena_calloc(es_arena *a, size_t n)
{
    void *p = es_arena_alloc(a, n);
    memset(p, 0, n);
    return p;
}

char *es_arena_strndup(es_arena *a, const char *s, size_t n)
{
    char *p = es_arena_alloc(a, n + 1);
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

char *es_arena_strdup(es_arena *a, const char *s) { return es_arena_strndup(a, s, strlen(s)); }

char *es_arena_sprintf(es_arena *a, const char *fmt, ...)
{
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *p = es_arena_alloc(a, (size_t)n + 1);
    vsnprintf(p, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    return p;
}
