/* PostgreSQL array literals in text form, for the set-wise statements that pass a batch as
 * arrays (unnest($1::text[], ...)). See es/pg_pool.h. */
#include "es/pg_pool.h"

void es_pg_array_elem(es_buf *b, const char *s)
{
    es_buf_putc(b, b->len ? ',' : '{');
    if (!s) {
        es_buf_puts(b, "NULL");
        return;
    }
    es_buf_putc(b, '"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            es_buf_putc(b, '\\');
        es_buf_putc(b, *s);
    }
    es_buf_putc(b, '"');
}

const char *es_pg_array_end(es_buf *b)
{
    if (!b->len)
        es_buf_putc(b, '{');
    es_buf_putc(b, '}');
    return b->data;
}
