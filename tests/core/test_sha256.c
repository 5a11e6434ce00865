/* es/sha256.h against published test vectors: FIPS 180-4 (the NIST examples) for SHA-256,
 * RFC 4231 for HMAC-SHA-256; and es_uuid_derive, whose ids are stored, against a fixed value. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "es/hex.h"
#include "es/sha256.h"
#include "es/uuid.h"

static void sha256_vectors(void **state)
{
    (void)state;
    char hex[65];
    es_sha256_hex("abc", 3, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    es_sha256_hex("", 0, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    es_sha256_hex(two, strlen(two), hex);
    assert_string_equal(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");

    /* one million 'a', fed in uneven pieces through the incremental API */
    char *a = malloc(1000000);
    memset(a, 'a', 1000000);
    es_sha256 s;
    uint8_t d[32];
    es_sha256_init(&s);
    for (size_t off = 0, step = 1; off < 1000000; off += step, step = step * 3 % 1021 + 1)
        es_sha256_update(&s, a + off, off + step <= 1000000 ? step : 1000000 - off);
    es_sha256_final(&s, d);
    assert_string_equal(es_hex_encode(d, sizeof d, hex),
                        "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    /* a finished state can be used again */
    es_sha256_init(&s);
    es_sha256_update(&s, "ab", 2);
    es_sha256_update(&s, "", 0);
    es_sha256_update(&s, "c", 1);
    es_sha256_final(&s, d);
    assert_string_equal(es_hex_encode(d, sizeof d, hex),
                        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    free(a);
}

static void hmac_case(const void *key, size_t klen, const void *data, size_t n, const char *want)
{
    uint8_t mac[32];
    char hex[65];
    es_hmac_sha256(key, klen, data, n, mac);
    assert_string_equal(es_hex_encode(mac, sizeof mac, hex), want);
}

static void hmac_rfc4231(void **state)
{
    (void)state;
    uint8_t k[131], m[50];
    memset(k, 0x0b, 20);
    hmac_case(k, 20, "Hi There", 8, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"); /* 1 */
    hmac_case("Jefe", 4, "what do ya want for nothing?", 28,
              "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"); /* 2 */
    memset(k, 0xaa, 20);
    memset(m, 0xdd, 50);
    hmac_case(k, 20, m, 50, "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"); /* 3 */
    for (int i = 0; i < 25; i++)
        k[i] = (uint8_t)(i + 1);
    memset(m, 0xcd, 50);
    hmac_case(k, 25, m, 50, "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"); /* 4 */
    memset(k, 0xaa, 131);
    const char *d6 = "Test Using Larger Than Block-Size Key - Hash Key First";
    hmac_case(k, 131, d6, strlen(d6), "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"); /* 6 */
    const char *d7 = "This is a test using a larger than block-size key and a larger than block-size data. The key "
                     "needs to be hashed before being used by the HMAC algorithm.";
    hmac_case(k, 131, d7, strlen(d7), "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"); /* 7 */
    /* an empty key and empty data are valid HMAC inputs */
    hmac_case(NULL, 0, NULL, 0, "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad");
}

/* Derived ids are stored (command ids of reactions): the digest behind them must not change. */
static void derived_uuid_is_stable(void **state)
{
    (void)state;
    char id[ES_UUID_STRLEN + 1];
    es_uuid_derive("ns", "name", id);
    assert_string_equal(id, "40620770-7c9e-8bf7-860e-95f7a24e8d61");
    assert_true(es_uuid_valid(id));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sha256_vectors),
        cmocka_unit_test(hmac_rfc4231),
        cmocka_unit_test(derived_uuid_is_stable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
