/* A growable byte buffer (heap). */
#ifndef ES_BUF_H
#define ES_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct es_buf {
    char *data;   /* NUL-terminated while len < cap */
    size_t len, cap;
} es_buf;

void es_buf_init(es_buf *b);
void es_buf_free(es_buf *b);
void es_buf_reset(es_buf *b);
void es_buf_reserve(es_buf *b, size_t extra);
void es_buf_append(es_buf *b, const void *p, size_t n);
void es_buf_puts(es_buf *b, const char *s);
void es_buf_putc(es_buf *b, char c);
void es_buf_printf(es_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Takes the data out; the caller frees it with free(). The buffer is left empty. */
char *es_buf_steal(es_buf *b, size_t *len);

#endif
