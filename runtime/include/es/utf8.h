/* UTF-8 validation and encoding (RFC 3629), the one implementation every decoder and escaper uses. */
#ifndef ES_UTF8_H
#define ES_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Length (1 to 4) of the well-formed UTF-8 sequence that starts at s, reading at most n bytes
 * (n >= 1), or 0 when the bytes there are not one: a stray continuation byte, a truncated
 * sequence, an overlong form, a surrogate (U+D800..U+DFFF) or a code point above U+10FFFF.
 * A NUL byte is a valid one-byte sequence; callers that refuse U+0000 check it themselves. */
size_t es_utf8_seq(const char *s, size_t n);
/* 1 when s[0..n) is entirely well-formed UTF-8 (as es_utf8_seq defines it), else 0. */
int es_utf8_valid(const char *s, size_t n);
/* Writes the UTF-8 encoding of code point cp (at most U+10FFFF, not a surrogate: the caller
 * checks) into out and returns its length, 1 to 4. */
size_t es_utf8_put(char out[4], uint32_t cp);

#endif
