/* COPY's data formats (es/pg_copy.h), the codec the set-based rebuild writes and reads with:
 * text escaping, every binary value type byte for byte with its refusals, and the binary reader
 * fed in every possible split (a tuple cut anywhere, even one byte at a time, gives the same
 * tuples) and refusing what is not binary COPY data of the expected shape. No server. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "es/pg_copy.h"

static void text_escaping(void **state)
{
    (void)state;
    es_buf b;
    es_buf_init(&b);
    const char in[] = "a\tb\nc\rd\\e plain";
    es_pg_copy_text_escape(&b, in, sizeof in - 1);
    assert_string_equal(b.data, "a\\tb\\nc\\rd\\\\e plain");
    es_buf_reset(&b);
    es_pg_copy_text_escape(&b, "abcdef", 3); /* n bounds it */
    assert_string_equal(b.data, "abc");
    es_buf_free(&b);
}

/* The value's bytes after its 4-byte length, which must be len. */
static void want_value(es_pg_copy_type t, const char *text, const void *bytes, size_t len)
{
    es_buf b;
    es_buf_init(&b);
    assert_int_equal(es_pg_copy_binary_value(&b, t, text), ES_OK);
    assert_int_equal(b.len, 4 + len);
    const unsigned char *p = (const unsigned char *)b.data;
    assert_int_equal((size_t)p[0] << 24 | (size_t)p[1] << 16 | (size_t)p[2] << 8 | p[3], len);
    assert_memory_equal(p + 4, bytes, len);
    es_buf_free(&b);
}

static void refuses(es_pg_copy_type t, const char *text)
{
    es_buf b;
    es_buf_init(&b);
    assert_int_equal(es_pg_copy_binary_value(&b, t, text), ES_INVALID_ARGUMENT);
    es_buf_free(&b);
}

static void binary_values(void **state)
{
    (void)state;
    want_value(ES_PG_COPY_TEXT, "héllo", "h\xc3\xa9llo", 6);
    want_value(ES_PG_COPY_JSONB, "{\"a\":1}", "\x01{\"a\":1}", 8);
    static const unsigned char u[16] = {0x01, 0x93, 0x4b, 0x1c, 0x2d, 0x3e, 0x7f, 0x00,
                                        0x80, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77};
    want_value(ES_PG_COPY_UUID, "01934b1c-2d3e-7f00-8011-223344556677", u, 16);
    want_value(ES_PG_COPY_UUID, "{01934B1C-2D3E-7F00-8011-223344556677}", u, 16);
    refuses(ES_PG_COPY_UUID, "01934b1c-2d3e-7f00-8011-22334455667");
    refuses(ES_PG_COPY_UUID, "not a uuid");
    want_value(ES_PG_COPY_INT4, "-2", "\xff\xff\xff\xfe", 4);
    refuses(ES_PG_COPY_INT4, "2147483648");
    refuses(ES_PG_COPY_INT4, "");
    refuses(ES_PG_COPY_INT4, "12x");
    want_value(ES_PG_COPY_INT8, "4294967296", "\0\0\0\x01\0\0\0\0", 8);
    refuses(ES_PG_COPY_INT8, "99999999999999999999");
    want_value(ES_PG_COPY_BOOL, "true", "\x01", 1);
    want_value(ES_PG_COPY_BOOL, "false", "\x00", 1);
    refuses(ES_PG_COPY_BOOL, "t");
    want_value(ES_PG_COPY_FLOAT4, "1.5", "\x3f\xc0\0\0", 4);
    want_value(ES_PG_COPY_FLOAT8, "-2", "\xc0\0\0\0\0\0\0\0", 8);
    refuses(ES_PG_COPY_FLOAT8, "1.5e");
    want_value(ES_PG_COPY_BYTEA, "\\xdeadBEEF", "\xde\xad\xbe\xef", 4);
    want_value(ES_PG_COPY_BYTEA, "\\x", "", 0);
    refuses(ES_PG_COPY_BYTEA, "\\xabc");
    refuses(ES_PG_COPY_BYTEA, "\\xzz");
    refuses(ES_PG_COPY_BYTEA, "dead");
    /* 2000-01-01T00:00:00.000001Z is 1 microsecond after PostgreSQL's epoch. */
    want_value(ES_PG_COPY_TIMESTAMPTZ, "2000-01-01T00:00:00.000001Z", "\0\0\0\0\0\0\0\x01", 8);
    /* 1970-01-01 is 946684800 s before it. */
    int64_t us = -INT64_C(946684800000000);
    unsigned char be[8];
    for (int i = 0; i < 8; i++)
        be[i] = (unsigned char)((uint64_t)us >> (56 - 8 * i));
    want_value(ES_PG_COPY_TIMESTAMPTZ, "1970-01-01T00:00:00.000000Z", be, 8);
    refuses(ES_PG_COPY_TIMESTAMPTZ, "2000-01-01T00:00:00Z");
    refuses(ES_PG_COPY_TIMESTAMPTZ, "2000-13-01T00:00:00.000000Z");
    refuses((es_pg_copy_type)99, "x");
}

/* Collects tuples as "f0|f1|...;" text. */
typedef struct seen {
    char text[4096];
    int tuples, stop_at;
} seen;

static int collect(void *data, const unsigned char *const *f, const size_t *len)
{
    seen *s = data;
    if (++s->tuples == s->stop_at)
        return ES_DATA_LOSS;
    size_t n = strlen(s->text);
    for (int i = 0; i < 3; i++)
        n += (size_t)snprintf(s->text + n, sizeof s->text - n, "%s%.*s", i ? "|" : "", (int)len[i], (const char *)f[i]);
    snprintf(s->text + n, sizeof s->text - n, ";");
    return ES_OK;
}

/* A stream of three 3-field tuples written with the writer (the reader reads what the writer
 * writes; the server's stream has the same layout). */
static void stream(es_buf *b)
{
    es_buf_init(b);
    es_pg_copy_binary_header(b);
    const char *rows[3][3] = {{"a", "", "ccc"}, {"tab\there", "x", "y"}, {"", "", ""}};
    for (int r = 0; r < 3; r++) {
        es_pg_copy_binary_tuple(b, 3);
        for (int i = 0; i < 3; i++)
            assert_int_equal(es_pg_copy_binary_value(b, ES_PG_COPY_TEXT, rows[r][i]), ES_OK);
    }
    es_pg_copy_binary_trailer(b);
}

static void reader_in_every_split(void **state)
{
    (void)state;
    es_buf b;
    stream(&b);
    const char *want = "a||ccc;tab\there|x|y;||;";
    for (size_t cut = 0; cut <= b.len; cut++) {
        seen s = {.stop_at = -1};
        es_pg_copy_reader r;
        es_error err = {0};
        es_pg_copy_reader_init(&r, 3, collect, &s);
        assert_int_equal(es_pg_copy_reader_feed(&r, b.data, cut, &err), ES_OK);
        assert_int_equal(es_pg_copy_reader_feed(&r, b.data + cut, b.len - cut, &err), ES_OK);
        assert_int_equal(es_pg_copy_reader_finish(&r, &err), ES_OK);
        assert_string_equal(s.text, want);
        es_pg_copy_reader_free(&r);
    }
    /* One byte at a time. */
    seen s = {.stop_at = -1};
    es_pg_copy_reader r;
    es_error err = {0};
    es_pg_copy_reader_init(&r, 3, collect, &s);
    for (size_t i = 0; i < b.len; i++)
        assert_int_equal(es_pg_copy_reader_feed(&r, b.data + i, 1, &err), ES_OK);
    assert_int_equal(es_pg_copy_reader_finish(&r, &err), ES_OK);
    assert_string_equal(s.text, want);
    es_pg_copy_reader_free(&r);
    es_buf_free(&b);
}

static int read_all(const void *p, size_t n, int nfields, int stop_at, es_error *err)
{
    seen s = {.stop_at = stop_at};
    es_pg_copy_reader r;
    es_pg_copy_reader_init(&r, nfields, collect, &s);
    int rc = es_pg_copy_reader_feed(&r, p, n, err);
    if (rc == ES_OK)
        rc = es_pg_copy_reader_finish(&r, err);
    es_pg_copy_reader_free(&r);
    return rc;
}

static void reader_refusals(void **state)
{
    (void)state;
    es_buf b;
    stream(&b);
    es_error err = {0};
    /* Truncated anywhere before the trailer's end. */
    for (size_t n = 0; n < b.len; n++) {
        assert_int_equal(read_all(b.data, n, 3, -1, &err), ES_INTERNAL);
        assert_non_null(strstr(err.message, "truncated"));
    }
    /* Bytes after the trailer. */
    es_buf_append(&b, "x", 1);
    assert_int_equal(read_all(b.data, b.len, 3, -1, &err), ES_INTERNAL);
    b.len--;
    /* Another field count than expected. */
    assert_int_equal(read_all(b.data, b.len, 4, -1, &err), ES_INTERNAL);
    assert_non_null(strstr(err.message, "field count"));
    /* The callback's status stops the reading and comes back. */
    assert_int_equal(read_all(b.data, b.len, 3, 2, &err), ES_DATA_LOSS);
    /* A bad signature. */
    b.data[0] = 'X';
    assert_int_equal(read_all(b.data, b.len, 3, -1, &err), ES_INTERNAL);
    assert_non_null(strstr(err.message, "signature"));
    es_buf_free(&b);
    /* A NULL value. */
    es_buf_init(&b);
    es_pg_copy_binary_header(&b);
    es_pg_copy_binary_tuple(&b, 1);
    es_pg_copy_binary_null(&b);
    es_pg_copy_binary_trailer(&b);
    assert_int_equal(read_all(b.data, b.len, 1, -1, &err), ES_INTERNAL);
    assert_non_null(strstr(err.message, "NULL"));
    es_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(text_escaping),
        cmocka_unit_test(binary_values),
        cmocka_unit_test(reader_in_every_split),
        cmocka_unit_test(reader_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
