/* SHA-256 (FIPS 180-4), for derived ids and token hashes. */
#ifndef ES_SHA256_H
#define ES_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct es_sha256 {
    uint32_t h[8];
    uint64_t len;
    uint8_t block[64];
    size_t fill;
} es_sha256;

void es_sha256_init(es_sha256 *s);
void es_sha256_update(es_sha256 *s, const void *data, size_t n);
void es_sha256_final(es_sha256 *s, uint8_t out[32]);
/* One-shot digest as 64 lowercase hex characters plus NUL. */
void es_sha256_hex(const void *data, size_t n, char out[65]);
/* HMAC-SHA-256 (RFC 2104) of data under key. */
void es_hmac_sha256(const void *key, size_t key_len, const void *data, size_t n, uint8_t out[32]);

#endif
