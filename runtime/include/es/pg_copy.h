/* PostgreSQL's COPY data formats: writing rows in the text format (escaping) and in the binary
 * format (header, tuples, values converted from their text form, trailer), and reading a binary
 * COPY ... TO STDOUT stream tuple by tuple as libpq hands out its pieces. Pure encoding: no
 * connection is touched; the caller moves the bytes with PQputCopyData / PQgetCopyData. */
#ifndef ES_PG_COPY_H
#define ES_PG_COPY_H

#include <stddef.h>
#include <stdint.h>

#include "es/buf.h"
#include "es/status.h"

/* ---- text format ---- */

/* Appends s[0..n) escaped for COPY's text format: the delimiter (tab), the row end (newline,
 * CR) and the escape character itself (backslash) are the only bytes with a meaning. s holds
 * no NUL byte (the text format cannot carry one). */
void es_pg_copy_text_escape(es_buf *b, const char *s, size_t n);

/* ---- binary format, writing ---- */

/* The column types whose binary value es_pg_copy_binary_value writes from the text form. */
typedef enum es_pg_copy_type {
    ES_PG_COPY_TEXT,        /* text, varchar: the bytes */
    ES_PG_COPY_UUID,        /* uuid: the spellings es_uuid_parse reads */
    ES_PG_COPY_INT4,        /* integer: decimal, in range */
    ES_PG_COPY_INT8,        /* bigint: decimal */
    ES_PG_COPY_BOOL,        /* boolean: "true" or "false" */
    ES_PG_COPY_FLOAT4,      /* real: strtof's forms */
    ES_PG_COPY_FLOAT8,      /* double precision: strtod's forms */
    ES_PG_COPY_JSONB,       /* jsonb: the JSON text */
    ES_PG_COPY_BYTEA,       /* bytea: "\x" and hexadecimal digits */
    ES_PG_COPY_TIMESTAMPTZ, /* timestamptz: YYYY-MM-DDTHH:MM:SS.ffffffZ (es_rfc3339_us's form) */
} es_pg_copy_type;

/* Appends the 19-byte header (signature, no flags, no extension). */
void es_pg_copy_binary_header(es_buf *b);
/* Starts a tuple of nfields values. */
void es_pg_copy_binary_tuple(es_buf *b, uint16_t nfields);
/* Appends a NULL value. */
void es_pg_copy_binary_null(es_buf *b);
/* Appends one value of type t from its text form. Returns ES_OK, or ES_INVALID_ARGUMENT when
 * text is not a value of the type in the form above (b may then hold part of it: the COPY is
 * abandoned anyway). */
int es_pg_copy_binary_value(es_buf *b, es_pg_copy_type t, const char *text);
/* Appends the trailer that ends the data. */
void es_pg_copy_binary_trailer(es_buf *b);

/* ---- binary format, reading ---- */

/* Called for each complete tuple: field i is f[i][0..len[i]) (never NULL: a NULL value is a
 * format error). A status other than ES_OK stops the reading and is returned by feed. */
typedef int (*es_pg_copy_tuple_fn)(void *data, const unsigned char *const *f, const size_t *len);

typedef struct es_pg_copy_reader {
    int nfields;                /* every tuple has this many fields (at most 16) */
    es_pg_copy_tuple_fn on_tuple;
    void *data;
    es_buf pend;                /* bytes of an incomplete tuple carried to the next piece */
    int header_seen, trailer_seen;
} es_pg_copy_reader;

/* Prepares r for one COPY stream of tuples of nfields (1..16) fields. */
void es_pg_copy_reader_init(es_pg_copy_reader *r, int nfields, es_pg_copy_tuple_fn on_tuple, void *data);
/* Parses the next piece p[0..n) of the stream, calling on_tuple for each tuple it completes.
 * Returns ES_OK, on_tuple's status, or ES_INTERNAL with err set when the bytes are not binary
 * COPY data of the expected shape. */
int es_pg_copy_reader_feed(es_pg_copy_reader *r, const void *p, size_t n, es_error *err);
/* After the last piece: ES_OK when the stream ended with its trailer and nothing after it, else
 * ES_INTERNAL with err set (truncated). */
int es_pg_copy_reader_finish(es_pg_copy_reader *r, es_error *err);
/* Frees what r holds. Accepts NULL. */
void es_pg_copy_reader_free(es_pg_copy_reader *r);

#endif
