/* Internal: PostgreSQL binary wire formats used by the store (parameters and results in
 * binary, so payloads travel as raw bytes instead of hex text). */
#ifndef ES_STORE_PGBIN_H
#define ES_STORE_PGBIN_H

#include <stddef.h>
#include <stdint.h>
#include <libpq-fe.h>
#include "es/buf.h"

#define ES__OID_BOOL 16
#define ES__OID_BYTEA 17
#define ES__OID_INT8 20
#define ES__OID_INT4 23
#define ES__OID_TEXT 25
#define ES__OID_UUID 2950
#define ES__OID_BYTEA_ARRAY 1001
#define ES__OID_INT4_ARRAY 1007
#define ES__OID_TEXT_ARRAY 1009
#define ES__OID_UUID_ARRAY 2951

/* Starts a one-dimensional array of n elements of type elem in b (reset first). */
void es__pg_array_begin(es_buf *b, uint32_t elem, uint32_t n);
/* Appends one element (len bytes). */
void es__pg_array_elem(es_buf *b, const void *p, size_t len);
/* Appends a NULL element. */
void es__pg_array_null(es_buf *b);
void es__pg_array_int4(es_buf *b, int32_t v);

/* Binary result fields. The column must be non-NULL and of the named type. */
int64_t es__pg_int8(const PGresult *r, int row, int col);
int32_t es__pg_int4(const PGresult *r, int row, int col);
/* A text column, or NULL when SQL NULL (libpq NUL-terminates binary values too). */
const char *es__pg_text(const PGresult *r, int row, int col);
/* timestamptz (binary) as microseconds since the Unix epoch. */
int64_t es__pg_timestamptz_us(const PGresult *r, int row, int col);

/* 16 bytes (a binary uuid column) as canonical UUID text; text to bytes is es_uuid_parse. */

#endif
