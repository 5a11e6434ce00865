/* PostgreSQL binary formats: arrays for parameters, integers/timestamps/uuids in results. UUID
 * text is parsed by es_uuid_parse (es/uuid.h). */
#include "pgbin.h"

#include <string.h>

static void put_be32(es_buf *b, uint32_t v)
{
    unsigned char x[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16), (unsigned char)(v >> 8),
                          (unsigned char)v};
    es_buf_append(b, x, 4);
}

void es__pg_array_begin(es_buf *b, uint32_t elem, uint32_t n)
{
    es_buf_reset(b);
    put_be32(b, 1);       /* dimensions */
    put_be32(b, 0);       /* no NULLs */
    put_be32(b, elem);
    put_be32(b, n);       /* length of the dimension */
    put_be32(b, 1);       /* lower bound */
}

void es__pg_array_elem(es_buf *b, const void *p, size_t len)
{
    put_be32(b, (uint32_t)len);
    es_buf_append(b, p, len);
}

void es__pg_array_null(es_buf *b)
{
    put_be32(b, 0xffffffffu); /* length -1: a NULL element (array_recv ignores the has-null flag) */
}

void es__pg_array_int4(es_buf *b, int32_t v)
{
    put_be32(b, 4);
    put_be32(b, (uint32_t)v);
}

static uint64_t be64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = (v << 8) | p[i];
    return v;
}

int64_t es__pg_int8(const PGresult *r, int row, int col)
{
    if (PQgetlength(r, row, col) != 8) return 0;
    return (int64_t)be64((const unsigned char *)PQgetvalue(r, row, col));
}

int32_t es__pg_int4(const PGresult *r, int row, int col)
{
    if (PQgetlength(r, row, col) != 4) return 0;
    const unsigned char *p = (const unsigned char *)PQgetvalue(r, row, col);
    return (int32_t)((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]);
}

const char *es__pg_text(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? NULL : PQgetvalue(r, row, col);
}

int64_t es__pg_timestamptz_us(const PGresult *r, int row, int col)
{
    /* PostgreSQL counts microseconds from 2000-01-01 UTC. */
    return es__pg_int8(r, row, col) + INT64_C(946684800000000);
}

