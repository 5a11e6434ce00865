/* JSON string literals; see es/json_string.h. */
#include "es/json_string.h"

#include <string.h>

#include "es/hex.h"
#include "es/utf8.h"

size_t es_json_quote(es_buf *b, const char *s, size_t n)
{
    size_t run = 0, replaced = 0; /* run: start of the bytes not yet copied verbatim */
    es_buf_reserve(b, n + 2);
    es_buf_putc(b, '"');
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            i++;
            continue;
        }
        if (c >= 0x80) {
            size_t k = es_utf8_seq(s + i, n - i);
            if (k) {
                i += k;
                continue;
            }
        }
        if (i > run)
            es_buf_append(b, s + run, i - run);
        switch (c) {
        case '"': es_buf_append(b, "\\\"", 2); break;
        case '\\': es_buf_append(b, "\\\\", 2); break;
        case '\n': es_buf_append(b, "\\n", 2); break;
        case '\r': es_buf_append(b, "\\r", 2); break;
        case '\t': es_buf_append(b, "\\t", 2); break;
        case '\b': es_buf_append(b, "\\b", 2); break;
        case '\f': es_buf_append(b, "\\f", 2); break;
        default:
            if (c < 0x20) {
                char u[7] = "\\u00";
                es_hex_encode(&c, 1, u + 4);
                es_buf_append(b, u, 6);
            } else {
                es_buf_append(b, "\\ufffd", 6);
                replaced++;
            }
        }
        run = ++i;
    }
    if (n > run)
        es_buf_append(b, s + run, n - run);
    es_buf_putc(b, '"');
    return replaced;
}

size_t es_json_quote_str(es_buf *b, const char *s)
{
    if (!s) {
        es_buf_append(b, "null", 4);
        return 0;
    }
    return es_json_quote(b, s, strlen(s));
}
