/* A per-request arena: everything a request decodes, validates and encodes comes from one
 * arena freed in one call. Out-of-memory aborts the process (decided once, in es_oom). */
#ifndef ES_ARENA_H
#define ES_ARENA_H

#include <stddef.h>
#include <protobuf-c/protobuf-c.h>

typedef struct es_arena_chunk es_arena_chunk;
typedef struct es_arena {
    es_arena_chunk *head;
    size_t used, cap;
    ProtobufCAllocator pb;   /* allocator view for protobuf-c; free is a no-op */
} es_arena;

void es_arena_init(es_arena *a);
/* Frees every allocation made from the arena; the arena stays usable. */
void es_arena_reset(es_arena *a);
void es_arena_free(es_arena *a);
/* Never returns NULL. Memory lives until es_arena_reset/free. Aligned to 16. */
void *es_arena_alloc(es_arena *a, size_t n);
void *es_arena_calloc(es_arena *a, size_t n);
char *es_arena_strndup(es_arena *a, const char *s, size_t n);
char *es_arena_strdup(es_arena *a, const char *s);
char *es_arena_sprintf(es_arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Aborts with a message: the single out-of-memory policy of the project. */
_Noreturn void es_oom(void);
/* Aborts naming the thread that could not start and why (pthread_create's error): for threads a
 * component cannot run without and whose start cannot be undone. */
_Noreturn void es_no_thread(const char *what, int error);
void *es_xmalloc(size_t n);
void *es_xcalloc(size_t n, size_t m);
void *es_xrealloc(void *p, size_t n);
char *es_xstrdup(const char *s);

#endif
