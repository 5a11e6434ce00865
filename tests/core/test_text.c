/* es/utf8.h, es/hex.h and es/json_string.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include <json-c/json.h>

#include "es/buf.h"
#include "es/hex.h"
#include "es/json_string.h"
#include "es/utf8.h"

#define S(lit) (lit), (sizeof(lit) - 1)

static void utf8_valid_and_invalid(void **state)
{
    (void)state;
    assert_true(es_utf8_valid(S("")));
    assert_true(es_utf8_valid(S("plain ascii")));
    assert_true(es_utf8_valid(S("a\0b")));                      /* NUL is a valid sequence */
    assert_true(es_utf8_valid(S("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"))); /* é € 😀 */
    assert_true(es_utf8_valid(S("\xed\x9f\xbf")));               /* U+D7FF */
    assert_true(es_utf8_valid(S("\xf4\x8f\xbf\xbf")));           /* U+10FFFF */
    assert_false(es_utf8_valid(S("\x80")));                      /* stray continuation */
    assert_false(es_utf8_valid(S("\xc3")));                      /* truncated */
    assert_false(es_utf8_valid(S("\xc0\xaf")));                  /* overlong '/' */
    assert_false(es_utf8_valid(S("\xe0\x80\xaf")));              /* overlong, 3 bytes */
    assert_false(es_utf8_valid(S("\xf0\x80\x80\xaf")));          /* overlong, 4 bytes */
    assert_false(es_utf8_valid(S("\xed\xa0\x80")));              /* surrogate U+D800 */
    assert_false(es_utf8_valid(S("\xf4\x90\x80\x80")));          /* U+110000 */
    assert_false(es_utf8_valid(S("\xff")));
    assert_int_equal(es_utf8_seq(S("\xe2\x82\xac!")), 3);
    assert_int_equal(es_utf8_seq(S("\xe2\x82")), 0);
}

static void utf8_put_round_trips(void **state)
{
    (void)state;
    static const uint32_t cps[] = {0, 0x41, 0x7f, 0x80, 0x7ff, 0x800, 0xd7ff, 0xe000, 0xfffd, 0xffff, 0x10000, 0x10ffff};
    for (size_t i = 0; i < sizeof cps / sizeof cps[0]; i++) {
        char o[4];
        size_t n = es_utf8_put(o, cps[i]);
        assert_int_equal(n, cps[i] < 0x80 ? 1 : cps[i] < 0x800 ? 2 : cps[i] < 0x10000 ? 3 : 4);
        assert_int_equal(es_utf8_seq(o, n), n);
    }
}

static void hex_encode_decode(void **state)
{
    (void)state;
    const uint8_t b[] = {0x00, 0x01, 0x7f, 0x80, 0xab, 0xff};
    char t[2 * sizeof b + 1];
    assert_string_equal(es_hex_encode(b, sizeof b, t), "00017f80abff");
    uint8_t back[sizeof b];
    assert_int_equal(es_hex_decode(t, strlen(t), back), sizeof b);
    assert_memory_equal(back, b, sizeof b);
    assert_int_equal(es_hex_decode(S("00017F80ABFF"), back), sizeof b); /* either case */
    assert_memory_equal(back, b, sizeof b);
    assert_int_equal(es_hex_decode(S("abc"), back), -1);  /* odd */
    assert_int_equal(es_hex_decode(S("0g"), back), -1);
    assert_int_equal(es_hex_decode(S(""), back), 0);
    assert_string_equal(es_hex_encode(b, 0, t), "");
    assert_int_equal(es_hex_value('F'), 15);
    assert_int_equal(es_hex_value('x'), -1);
}

/* Quotes s, checks the text is exactly want and that json-c reads it back as expect_back. */
static void quote_case(const char *s, size_t n, const char *want, size_t want_replaced, const char *back, size_t back_len)
{
    es_buf b;
    es_buf_init(&b);
    assert_int_equal(es_json_quote(&b, s, n), want_replaced);
    es_buf_putc(&b, 0);
    assert_string_equal(b.data, want);
    assert_true(es_utf8_valid(b.data, strlen(b.data)));
    json_tokener *tok = json_tokener_new();
    json_object *o = json_tokener_parse_ex(tok, b.data, (int)strlen(b.data));
    assert_int_equal(json_tokener_get_error(tok), json_tokener_success);
    assert_true(json_object_is_type(o, json_type_string));
    assert_int_equal(json_object_get_string_len(o), back_len);
    assert_memory_equal(json_object_get_string(o), back, back_len);
    json_object_put(o);
    json_tokener_free(tok);
    es_buf_free(&b);
}

static void json_quote_escapes_and_replaces(void **state)
{
    (void)state;
    quote_case(S("plain"), "\"plain\"", 0, S("plain"));
    quote_case(S("q\"b\\s/"), "\"q\\\"b\\\\s/\"", 0, S("q\"b\\s/"));
    quote_case(S("\n\r\t\b\f\x01\x1f\x7f"), "\"\\n\\r\\t\\b\\f\\u0001\\u001f\x7f\"", 0, S("\n\r\t\b\f\x01\x1f\x7f"));
    quote_case(S("a\0b"), "\"a\\u0000b\"", 0, S("a\0b"));
    quote_case(S("\xc3\xa9\xf0\x9f\x98\x80"), "\"\xc3\xa9\xf0\x9f\x98\x80\"", 0, S("\xc3\xa9\xf0\x9f\x98\x80"));
    /* every byte outside a well-formed sequence becomes one U+FFFD */
    quote_case(S("a\xff" "b\xc3"), "\"a\\ufffdb\\ufffd\"", 2, S("a\xef\xbf\xbd" "b\xef\xbf\xbd"));
    quote_case(S("\xed\xa0\x80"), "\"\\ufffd\\ufffd\\ufffd\"", 3, S("\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"));

    es_buf b;
    es_buf_init(&b);
    assert_int_equal(es_json_quote_str(&b, NULL), 0);
    es_buf_putc(&b, 0);
    assert_string_equal(b.data, "null");
    es_buf_free(&b);
}

/* Whatever the bytes, the output is valid JSON and valid UTF-8: every byte value, alone and
 * after each lead byte. */
static void json_quote_any_bytes(void **state)
{
    (void)state;
    for (int lead = 0; lead < 256; lead++)
        for (int c = 0; c < 256; c++) {
            char in[3] = {(char)lead, (char)c, (char)0x80};
            es_buf b;
            es_buf_init(&b);
            size_t bad = es_json_quote(&b, in, sizeof in);
            assert_true(es_utf8_valid(b.data, b.len));
            assert_int_equal(bad == 0, es_utf8_valid(in, sizeof in));
            json_object *o = json_tokener_parse(b.data);
            assert_non_null(o);
            json_object_put(o);
            es_buf_free(&b);
        }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(utf8_valid_and_invalid),
        cmocka_unit_test(utf8_put_round_trips),
        cmocka_unit_test(hex_encode_decode),
        cmocka_unit_test(json_quote_escapes_and_replaces),
        cmocka_unit_test(json_quote_any_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
