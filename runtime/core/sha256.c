/* SHA-256 and HMAC-SHA-256 over libcrypto; see es/sha256.h. The digest is fetched once (an
 * implicit fetch per call costs a provider lookup each time in OpenSSL 3). */
#include "es/sha256.h"

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "es/arena.h"
#include "es/hex.h"

static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static _Noreturn void crypto_failed(const char *what)
{
    fprintf(stderr, "orderd: libcrypto %s failed\n", what);
    abort();
}

static void fetch_md(void)
{
    sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (!sha256_md)
        crypto_failed("EVP_MD_fetch(SHA256)");
}

static const EVP_MD *md(void)
{
    pthread_once(&sha256_once, fetch_md);
    return sha256_md;
}

void es_sha256_init(es_sha256 *s)
{
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    if (!c)
        es_oom();
    if (!EVP_DigestInit_ex2(c, md(), NULL))
        crypto_failed("EVP_DigestInit_ex2");
    s->ctx = c;
}

void es_sha256_update(es_sha256 *s, const void *data, size_t n)
{
    if (n && !EVP_DigestUpdate(s->ctx, data, n))
        crypto_failed("EVP_DigestUpdate");
}

void es_sha256_final(es_sha256 *s, uint8_t out[32])
{
    unsigned len = 0;
    if (!EVP_DigestFinal_ex(s->ctx, out, &len) || len != 32)
        crypto_failed("EVP_DigestFinal_ex");
    EVP_MD_CTX_free(s->ctx);
    s->ctx = NULL;
}

void es_sha256_hex(const void *data, size_t n, char out[65])
{
    uint8_t d[32];
    unsigned len = 0;
    if (!EVP_Digest(data, n, d, &len, md(), NULL) || len != 32)
        crypto_failed("EVP_Digest");
    es_hex_encode(d, sizeof d, out);
}

void es_hmac_sha256(const void *key, size_t key_len, const void *data, size_t n, uint8_t out[32])
{
    unsigned len = 0;
    static const unsigned char empty[1];
    if (key_len > INT_MAX)
        crypto_failed("HMAC (key longer than INT_MAX)");
    /* A NULL key means "keep the previous key" to libcrypto: an empty key is passed as "" */
    if (!HMAC(md(), key_len ? key : empty, (int)key_len, data ? data : empty, n, out, &len) || len != 32)
        crypto_failed("HMAC");
}
