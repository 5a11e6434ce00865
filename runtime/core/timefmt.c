/* RFC 3339 formatting and the proleptic Gregorian calendar; see es/timefmt.h. Day numbers use
 * 400-year eras of 146097 days counted from 0000-03-01, so leap days fall at the end of a year
 * and negative days need only a floor division. */
#include "es/timefmt.h"

#include <stdio.h>

int64_t es_days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);                           /* [0, 399] */
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;       /* [0, 365], from March */
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;                /* [0, 146096] */
    return era * 146097 + (int64_t)doe - 719468;
}

void es_civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

char *es_rfc3339(int64_t secs, int32_t nanos, int frac_digits, char out[ES_RFC3339_LEN])
{
    out[0] = 0;
    if (secs < ES_RFC3339_MIN_S || secs > ES_RFC3339_MAX_S || nanos < 0 || nanos > 999999999)
        return out;
    if (frac_digits == ES_RFC3339_FRAC_AUTO)
        frac_digits = !nanos ? 0 : nanos % 1000000 == 0 ? 3 : nanos % 1000 == 0 ? 6 : 9;
    if (frac_digits != 0 && frac_digits != 3 && frac_digits != 6 && frac_digits != 9)
        return out;
    int64_t days = secs / 86400, sod = secs % 86400;
    if (sod < 0) { /* floor: the time of day is never negative */
        sod += 86400;
        days -= 1;
    }
    int64_t y;
    unsigned m, d;
    es_civil_from_days(days, &y, &m, &d);
    int n = snprintf(out, ES_RFC3339_LEN, "%04d-%02u-%02uT%02d:%02d:%02d", (int)y, m, d, (int)(sod / 3600),
                     (int)(sod / 60 % 60), (int)(sod % 60));
    if (frac_digits) {
        static const int32_t div[] = {1000000, 1000, 1}; /* 3, 6, 9 digits */
        n += snprintf(out + n, (size_t)(ES_RFC3339_LEN - n), ".%0*d", frac_digits,
                      (int)(nanos / div[frac_digits / 3 - 1]));
    }
    snprintf(out + n, (size_t)(ES_RFC3339_LEN - n), "Z");
    return out;
}

char *es_rfc3339_us(int64_t us, char out[ES_RFC3339_LEN])
{
    int64_t secs = us / 1000000, frac = us % 1000000;
    if (frac < 0) { /* floor: the fraction counts forward from the second below */
        frac += 1000000;
        secs -= 1;
    }
    return es_rfc3339(secs, (int32_t)(frac * 1000), 6, out);
}
