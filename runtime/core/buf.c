/* Growable byte buffer; see es/buf.h. */
#include "es/buf.h"
#include "es/arena.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void es_buf_init(es_buf *b) { b->data = NULL; b->len = b->cap = 0; }

void es_buf_free(es_buf *b)
{
    free(b->data);
    es_buf_init(b);
}

void es_buf_reset(es_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = 0;
}

void es_buf_reserve(es_buf *b, size_t extra)
{
    if (b->len + extra + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1)
        cap *= 2;
    b->data = es_xrealloc(b->data, cap);
    b->cap = cap;
}

void es_buf_append(es_buf *b, const void *p, size_t n)
{
    es_buf_reserve(b, n);
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = 0;
}

void es_buf_puts(es_buf *b, const char *s) { es_buf_append(b, s, strlen(s)); }

void es_buf_putc(es_buf *b, char c) { es_buf_append(b, &c, 1); }

void es_buf_printf(es_buf *b, const char *fmt, ...)
{
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    es_buf_reserve(b, (size_t)n);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    b->len += (size_t)n;
}

char *es_buf_steal(es_buf *b, size_t *len)
{
    if (!b->data)
        es_buf_append(b, "", 0);
    char *p = b->data;
    if (len)
        *len = b->len;
    es_buf_init(b);
    return p;
}
