/* Scalar text forms of proto3 JSON: exact integers from number lexemes, floating point both
 * ways, quoted strings, base64. Pure functions over bytes, no descriptors. */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_internal.h"
#include "es/json_string.h"

static int is_digit(char c) { return c >= '0' && c <= '9'; }

int es__json_is_number(const char *s, size_t n)
{
    size_t i = 0;
    if (i < n && s[i] == '-') i++;
    if (i >= n) return 0;
    if (s[i] == '0') {
        i++;
    } else if (s[i] >= '1' && s[i] <= '9') {
        while (i < n && is_digit(s[i])) i++;
    } else {
        return 0;
    }
    if (i < n && s[i] == '.') {
        i++;
        if (i >= n || !is_digit(s[i])) return 0;
        while (i < n && is_digit(s[i])) i++;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-')) i++;
        if (i >= n || !is_digit(s[i])) return 0;
        while (i < n && is_digit(s[i])) i++;
    }
    return i == n;
}

/* value = digits(int part ++ fraction part) * 10^(exp - len(fraction)); decided with integer
 * arithmetic only, so 18446744073709551615 and 1.8446744073709551615e19 are both exact. */
int es__json_parse_integer(const char *s, size_t n, int *neg, uint64_t *mag)
{
    if (!es__json_is_number(s, n)) return ES__NUM_SYNTAX;
    size_t i = 0;
    *neg = 0;
    *mag = 0;
    if (s[i] == '-') { *neg = 1; i++; }
    const char *dig = s + i;             /* integer digits, then '.', then fraction digits */
    size_t int_len = 0, frac_len = 0;
    while (i < n && is_digit(s[i])) { i++; int_len++; }
    const char *frac = NULL;
    if (i < n && s[i] == '.') {
        frac = s + ++i;
        while (i < n && is_digit(s[i])) { i++; frac_len++; }
    }
    long long exp = 0;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        int eneg = 0;
        i++;
        if (s[i] == '+' || s[i] == '-') eneg = s[i++] == '-';
        while (i < n) {
            if (exp < 1000000000LL) exp = exp * 10 + (s[i] - '0');   /* saturate */
            i++;
        }
        if (eneg) exp = -exp;
    }
    /* Significant digits: skip leading zeros of the combined sequence, drop trailing zeros. */
    size_t total = int_len + frac_len;
#define DIGIT(k) ((k) < int_len ? dig[(k)] : frac[(k) - int_len])
    size_t first = 0, last = total;
    while (first < total && DIGIT(first) == '0') first++;
    if (first == total) return ES__NUM_OK;   /* zero, whatever the exponent; "-0" is 0 */
    while (last > first && DIGIT(last - 1) == '0') last--;
    /* The digit at index k has weight 10^(int_len - 1 - k + exp). The last significant digit
     * must have weight >= 1. */
    long long e_last = (long long)int_len - 1 - (long long)(last - 1) + exp;
    if (e_last < 0) return ES__NUM_FRACTION;
    long long ndig = (long long)(last - first) + e_last;
    if (ndig > 20) return ES__NUM_RANGE;
    uint64_t v = 0;
    for (size_t k = first; k < last; k++) {
        unsigned d = (unsigned)(DIGIT(k) - '0');
        if (v > (UINT64_MAX - d) / 10) return ES__NUM_RANGE;
        v = v * 10 + d;
    }
    for (long long k = 0; k < e_last; k++) {
        if (v > UINT64_MAX / 10) return ES__NUM_RANGE;
        v *= 10;
    }
#undef DIGIT
    *mag = v;
    return ES__NUM_OK;
}

/* strtod needs a NUL-terminated copy; lexemes longer than the stack buffer are rare. */
static int to_cstr(const char *s, size_t n, char *stackbuf, size_t cap, char **out)
{
    if (!es__json_is_number(s, n)) return ES__NUM_SYNTAX;
    char *b = n < cap ? stackbuf : es_xmalloc(n + 1);
    memcpy(b, s, n);
    b[n] = '\0';
    *out = b;
    return 0;
}

int es__json_parse_double(const char *s, size_t n, double *out)
{
    char sb[64], *b;
    int rc = to_cstr(s, n, sb, sizeof sb, &b);
    if (rc) return rc;
    double d = strtod(b, NULL);
    if (b != sb) free(b);
    if (isinf(d)) return ES__NUM_RANGE;
    *out = d;
    return ES__NUM_OK;
}

int es__json_parse_float(const char *s, size_t n, float *out)
{
    char sb[64], *b;
    int rc = to_cstr(s, n, sb, sizeof sb, &b);
    if (rc) return rc;
    float f = strtof(b, NULL);
    if (b != sb) free(b);
    if (isinf(f)) return ES__NUM_RANGE;
    *out = f;
    return ES__NUM_OK;
}

void es__json_put_double(es_buf *b, double v)
{
    char t[40];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(t, sizeof t, "%.*g", prec, v);
        if (prec == 17 || strtod(t, NULL) == v) break;
    }
    es_buf_puts(b, t);
}

void es__json_put_float(es_buf *b, float v)
{
    char t[40];
    for (int prec = 6; prec <= 9; prec++) {
        snprintf(t, sizeof t, "%.*g", prec, (double)v);
        if (prec == 9 || strtof(t, NULL) == v) break;
    }
    es_buf_puts(b, t);
}

int es__json_put_string(es_buf *b, const char *s, size_t n)
{
    size_t mark = b->len;
    if (es_json_quote(b, s, n) == 0)
        return 0;
    b->len = mark; /* proto3 JSON refuses a string that is not UTF-8 rather than altering it */
    if (b->cap > mark)
        b->data[mark] = 0;
    return -1;
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

void es__json_put_base64(es_buf *b, const uint8_t *p, size_t n)
{
    es_buf_reserve(b, (n + 2) / 3 * 4 + 2);
    es_buf_putc(b, '"');
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        char q[4] = {b64[v >> 18], b64[(v >> 12) & 63], b64[(v >> 6) & 63], b64[v & 63]};
        es_buf_append(b, q, 4);
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        char q[4] = {b64[v >> 18], b64[(v >> 12) & 63], '=', '='};
        es_buf_append(b, q, 4);
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        char q[4] = {b64[v >> 18], b64[(v >> 12) & 63], b64[(v >> 6) & 63], '='};
        es_buf_append(b, q, 4);
    }
    es_buf_putc(b, '"');
}

static int b64val(char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
}

int es__json_base64_decode(const char *s, size_t n, es_arena *a, uint8_t **out, size_t *out_len)
{
    size_t pad = 0;
    if (n % 4 == 0) {
        while (pad < 2 && n > pad && s[n - 1 - pad] == '=') pad++;
    }
    size_t m = n - pad;           /* significant characters */
    if (m % 4 == 1) return -1;
    if (pad && (n % 4 != 0)) return -1;
    uint8_t *o = es_arena_alloc(a, m / 4 * 3 + 3);
    size_t k = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < m; i++) {
        int v = b64val(s[i]);
        if (v < 0) return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            o[k++] = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    *out = o;
    *out_len = k;
    return 0;
}

int es_json_put_string(es_buf *out, const char *s)
{
    return es__json_put_string(out, s, strlen(s)) == 0 ? ES_OK : ES_INVALID_ARGUMENT;
}
