/* es/arena.h for the fuzz build only, in place of runtime/core/arena.c.
 *
 * The real arena bumps a pointer through 4 KiB+ chunks, so a write one byte past an allocation
 * lands in the next allocation and AddressSanitizer cannot see it. Here every allocation is its
 * own heap block of exactly the requested size (linked through a header in front of it), so an
 * overrun of any arena allocation, by decoder, router or protobuf-c, hits a redzone. The
 * contract is the same: memory lives until es_arena_reset/free, never NULL, aligned to 16. */
#include "es/arena.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A header of 16 bytes keeps the data after it aligned to 16 (malloc aligns to 16). */
struct es_arena_chunk {
    es_arena_chunk *next;
    size_t size;
    _Alignas(16) unsigned char data[];
};

_Noreturn void es_oom(void)
{
    fputs("orderd: out of memory\n", stderr);
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
