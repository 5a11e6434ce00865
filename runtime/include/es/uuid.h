/* UUID generation and checks. */
#ifndef ES_UUID_H
#define ES_UUID_H

#include <stdint.h>

#define ES_UUID_STRLEN 36
/* Writes a UUIDv7 (time-ordered, RFC 9562) as 36 lowercase characters plus NUL into out. */
void es_uuid_v7(char out[ES_UUID_STRLEN + 1]);
/* Writes a random UUIDv4. */
void es_uuid_v4(char out[ES_UUID_STRLEN + 1]);
/* Writes a name-based UUID (v5-like layout over SHA-256 of ns and name), deterministic:
 * the same inputs give the same id. Used to derive command ids from causing events. */
void es_uuid_derive(const char *ns, const char *name, char out[ES_UUID_STRLEN + 1]);
/* 1 when s is a canonical 8-4-4-4-12 hexadecimal UUID. */
int es_uuid_valid(const char *s);
/* Current wall-clock time in microseconds since the epoch. */
int64_t es_now_us(void);

#endif
