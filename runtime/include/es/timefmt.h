/* RFC 3339 text of a wall-clock time, as PostgreSQL and proto3 JSON read it. */
#ifndef ES_TIMEFMT_H
#define ES_TIMEFMT_H

#include <stdint.h>

#define ES_RFC3339_LEN 32
/* Writes "YYYY-MM-DDTHH:MM:SS.ffffffZ" (microseconds, UTC) for us microseconds since the epoch
 * into out; returns out ("" when the time is outside what gmtime can represent). */
char *es_rfc3339_us(int64_t us, char out[ES_RFC3339_LEN]);

#endif
