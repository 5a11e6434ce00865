/* SHA-256 (FIPS 180-4) and HMAC-SHA-256 (RFC 2104), for derived ids, token hashes, idempotency
 * fingerprints and page tokens; computed by libcrypto (OpenSSL 3), not by hand. */
#ifndef ES_SHA256_H
#define ES_SHA256_H

#include <stddef.h>
#include <stdint.h>

/* A digest in progress. es_sha256_init acquires a libcrypto context that es_sha256_final
 * releases: every init must reach final (on every path), and a finished state may be init'ed
 * again. Not shared between threads while in progress. */
typedef struct es_sha256 {
    void *ctx; /* EVP_MD_CTX */
} es_sha256;

void es_sha256_init(es_sha256 *s);
void es_sha256_update(es_sha256 *s, const void *data, size_t n);
/* Writes the 32-byte digest and releases the context. */
void es_sha256_final(es_sha256 *s, uint8_t out[32]);
/* One-shot digest as 64 lowercase hex characters plus NUL. */
void es_sha256_hex(const void *data, size_t n, char out[65]);
/* HMAC-SHA-256 (RFC 2104) of data under key (any length, 0 included). */
void es_hmac_sha256(const void *key, size_t key_len, const void *data, size_t n, uint8_t out[32]);

/* Out-of-memory aborts (es_oom); any other libcrypto failure aborts with a message, since no
 * caller could go on without the digest. All functions are thread-safe on distinct states. */

#endif
