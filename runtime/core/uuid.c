/* UUID v7/v4 generation, deterministic derivation and validation. */
#include "es/uuid.h"

#include "es/clock.h"
#include "es/hex.h"
#include "es/sha256.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

static void random_bytes(uint8_t *p, size_t n)
{
    while (n) {
        ssize_t r = getrandom(p, n, 0);
        if (r > 0) {
            p += r;
            n -= (size_t)r;
        }
    }
}

void es_uuid_format(const uint8_t b[16], char out[ES_UUID_STRLEN + 1])
{
    /* 8-4-4-4-12 lower-case hex digits: groups of 4, 2, 2, 2 and 6 bytes. */
    static const int group[] = {0, 4, 6, 8, 10, 16};
    char *o = out;
    for (int g = 0; g < 5; g++) {
        if (g)
            *o++ = '-';
        es_hex_encode(b + group[g], (size_t)(group[g + 1] - group[g]), o);
        o += 2 * (group[g + 1] - group[g]);
    }
}

void es_uuid_v7(char out[ES_UUID_STRLEN + 1])
{
    uint8_t b[16];
    uint64_t ms = (uint64_t)(es_now_us() / 1000);
    random_bytes(b + 6, 10);
    for (int i = 0; i < 6; i++)
        b[i] = (uint8_t)(ms >> (40 - 8 * i));
    b[6] = (uint8_t)(0x70 | (b[6] & 0x0f));
    b[8] = (uint8_t)(0x80 | (b[8] & 0x3f));
    es_uuid_format(b, out);
}

void es_uuid_v4(char out[ES_UUID_STRLEN + 1])
{
    uint8_t b[16];
    random_bytes(b, 16);
    b[6] = (uint8_t)(0x40 | (b[6] & 0x0f));
    b[8] = (uint8_t)(0x80 | (b[8] & 0x3f));
    es_uuid_format(b, out);
}

void es_uuid_derive(const char *ns, const char *name, char out[ES_UUID_STRLEN + 1])
{
    es_sha256 s;
    uint8_t d[32];
    es_sha256_init(&s);
    es_sha256_update(&s, ns, strlen(ns) + 1);
    es_sha256_update(&s, name, strlen(name));
    es_sha256_final(&s, d);
    d[6] = (uint8_t)(0x80 | (d[6] & 0x0f)); /* version 8: custom, RFC 9562 */
    d[8] = (uint8_t)(0x80 | (d[8] & 0x3f));
    es_uuid_format(d, out);
}

int es_uuid_valid(const char *s)
{
    if (!s || strlen(s) != ES_UUID_STRLEN)
        return 0;
    for (int i = 0; i < ES_UUID_STRLEN; i++) {
        char c = s[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-')
                return 0;
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return 0;
        }
    }
    return 1;
}

int es_uuid_parse(const char *s, uint8_t out[16])
{
    if (!s)
        return 0;
    size_t n = strlen(s);
    if (n > 9 && strncasecmp(s, "urn:uuid:", 9) == 0) {
        s += 9;
        n -= 9;
    } else if (n > 2 && s[0] == '{' && s[n - 1] == '}') {
        s++;
        n -= 2;
    }
    if (n != ES_UUID_STRLEN) /* 32 digits without hyphens are refused: see es_uuid_canonicalize */
        return 0;
    size_t k = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) {
            if (s[k++] != '-')
                return 0;
        }
        if (es_hex_decode(s + k, 2, out + i) < 0)
            return 0;
        k += 2;
    }
    return 1;
}

int es_uuid_canonicalize(char *s)
{
    uint8_t b[16];
    if (!es_uuid_parse(s, b))
        return 0;
    es_uuid_format(b, s); /* every accepted spelling has at least 36 characters: the canonical form fits */
    return 1;
}
