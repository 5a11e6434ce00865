/* Hexadecimal text; see es/hex.h. */
#include "es/hex.h"

int es_hex_value(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

char *es_hex_encode(const void *p, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    const uint8_t *b = p;
    char *o = out;
    for (size_t i = 0; i < n; i++) {
        *o++ = digits[b[i] >> 4];
        *o++ = digits[b[i] & 15];
    }
    *o = 0;
    return out;
}

long es_hex_decode(const char *s, size_t len, uint8_t *out)
{
    if (len % 2)
        return -1;
    for (size_t i = 0; i < len / 2; i++) {
        int hi = es_hex_value((unsigned char)s[2 * i]), lo = es_hex_value((unsigned char)s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return (long)(len / 2);
}
