/* RFC 3339 text of a wall-clock time, as PostgreSQL and proto3 JSON read it, and the calendar
 * under it: the one formatter of time text (JSON Timestamps, logs, projections, orderctl). */
#ifndef ES_TIMEFMT_H
#define ES_TIMEFMT_H

#include <stdint.h>

#define ES_RFC3339_LEN 32
/* The range proto3's Timestamp allows: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z. */
#define ES_RFC3339_MIN_S (-62135596800LL)
#define ES_RFC3339_MAX_S 253402300799LL
/* Fraction digits for es_rfc3339: proto3 JSON's choice, none, 3, 6 or 9, the fewest exact ones. */
#define ES_RFC3339_FRAC_AUTO (-1)

/* Day number (days since 1970-01-01, negative before) of year y, month m (1..12), day d
 * (1..31) in the proleptic Gregorian calendar, and back. Exact for any day of years -10^9..10^9;
 * es_days_from_civil does not check that d exists in that month (callers validate). */
int64_t es_days_from_civil(int64_t y, unsigned m, unsigned d);
void es_civil_from_days(int64_t days, int64_t *y, unsigned *m, unsigned *d);

/* Writes "YYYY-MM-DDTHH:MM:SS[.f]Z" (UTC) for secs seconds since the Unix epoch plus nanos
 * (0..999999999) into out and returns out. frac_digits is 0, 3, 6 or 9 (nanos truncated to
 * that many digits) or ES_RFC3339_FRAC_AUTO. Times before 1970 are exact: the fraction counts
 * forward from the whole second secs. Out of ES_RFC3339_MIN_S..ES_RFC3339_MAX_S, with nanos
 * out of range or another frac_digits, out is "". Pure arithmetic (no leap seconds, no time
 * zone): thread-safe. */
char *es_rfc3339(int64_t secs, int32_t nanos, int frac_digits, char out[ES_RFC3339_LEN]);
/* es_rfc3339 with six fraction digits of us microseconds since the epoch (floored: -1 us is
 * 1969-12-31T23:59:59.999999Z), the form PostgreSQL's timestamptz reads back exactly. */
char *es_rfc3339_us(int64_t us, char out[ES_RFC3339_LEN]);

#endif
