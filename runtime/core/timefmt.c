/* RFC 3339 formatting; see es/timefmt.h. */
#include "es/timefmt.h"

#include <stdio.h>
#include <time.h>

char *es_rfc3339_us(int64_t us, char out[ES_RFC3339_LEN])
{
    int64_t secs = us / 1000000, frac = us % 1000000;
    if (frac < 0) {
        frac += 1000000;
        secs -= 1;
    }
    time_t t = (time_t)secs;
    struct tm tm;
    out[0] = 0;
    if (!gmtime_r(&t, &tm))
        return out;
    snprintf(out, ES_RFC3339_LEN, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
             tm.tm_hour, tm.tm_min, tm.tm_sec, (int)frac);
    return out;
}
