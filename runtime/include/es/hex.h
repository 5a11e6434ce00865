/* Hexadecimal text of bytes (base 16, RFC 4648 section 8): the one encoder and decoder for
 * digests, tokens, bytea text and UUIDs. */
#ifndef ES_HEX_H
#define ES_HEX_H

#include <stddef.h>
#include <stdint.h>

/* The value (0..15) of the hexadecimal digit c, either case, or -1 when c is not one. */
int es_hex_value(int c);
/* Writes the 2n lower-case digits of p[0..n) into out, then a NUL: out needs 2n + 1 bytes.
 * Returns out. */
char *es_hex_encode(const void *p, size_t n, char *out);
/* Decodes the 2n digits s[0..len) (either case, len even) into out (room for len / 2 bytes) and
 * returns the number of bytes written, len / 2; returns -1, with out partly written, when len is
 * odd or a character is not a hexadecimal digit. */
long es_hex_decode(const char *s, size_t len, uint8_t *out);

#endif
