/* UUID generation and checks. */
#ifndef ES_UUID_H
#define ES_UUID_H

#include <stdint.h>

/* es_now_us (the wall clock) lives in es/clock.h; included here for the callers that still
 * reach it through this header. */
#include "es/clock.h"

#define ES_UUID_STRLEN 36
/* Writes a UUIDv7 (time-ordered, RFC 9562) as 36 lowercase characters plus NUL into out. */
void es_uuid_v7(char out[ES_UUID_STRLEN + 1]);
/* Writes a random UUIDv4. */
void es_uuid_v4(char out[ES_UUID_STRLEN + 1]);
/* Writes a name-based UUID (v5-like layout over SHA-256 of ns and name), deterministic:
 * the same inputs give the same id. Used to derive command ids from causing events. */
void es_uuid_derive(const char *ns, const char *name, char out[ES_UUID_STRLEN + 1]);
/* 1 when s is a canonical UUID: 8-4-4-4-12 lower-case hexadecimal digits, the one spelling
 * stored and compared everywhere (stream ids, idempotency, read models). */
int es_uuid_valid(const char *s);
/* Parses the spellings clients send for one UUID: 8-4-4-4-12 hexadecimal digits in any case,
 * bare, in braces ("{...}") or as a URN ("urn:uuid:..."). Returns 1 and the 16 bytes in out, or
 * 0 when s is none of these (32 digits without hyphens included: rewriting them in place would
 * not fit, and RFC 9562 names only the hyphenated form). */
int es_uuid_parse(const char *s, uint8_t out[16]);
/* Writes the 16 bytes b as a canonical UUID (36 lower-case characters plus NUL) into out. */
void es_uuid_format(const uint8_t b[16], char out[ES_UUID_STRLEN + 1]);
/* Rewrites s in place to its canonical spelling when es_uuid_parse accepts it and returns 1;
 * leaves s untouched and returns 0 otherwise (validation then refuses it). s must be writable
 * whenever it may be a UUID; the canonical form is never longer than an accepted spelling. */
int es_uuid_canonicalize(char *s);

#endif
