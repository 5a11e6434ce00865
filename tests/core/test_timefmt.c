/* es/timefmt.h (RFC 3339 text, the calendar) and es/clock.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "es/clock.h"
#include "es/timefmt.h"

static const char *us_text(int64_t us)
{
    static char b[ES_RFC3339_LEN];
    return es_rfc3339_us(us, b);
}

static void rfc3339_us_known_values(void **state)
{
    (void)state;
    assert_string_equal(us_text(0), "1970-01-01T00:00:00.000000Z");
    assert_string_equal(us_text(1), "1970-01-01T00:00:00.000001Z");
    /* before 1970 the fraction counts forward from the second below */
    assert_string_equal(us_text(-1), "1969-12-31T23:59:59.999999Z");
    assert_string_equal(us_text(-1000000), "1969-12-31T23:59:59.000000Z");
    assert_string_equal(us_text(-1500000), "1969-12-31T23:59:58.500000Z");
    assert_string_equal(us_text(-86400LL * 1000000), "1969-12-31T00:00:00.000000Z");
    assert_string_equal(us_text(-14182940LL * 1000000 + 123456), "1969-07-20T20:17:40.123456Z");
    assert_string_equal(us_text(951782400LL * 1000000), "2000-02-29T00:00:00.000000Z");
    assert_string_equal(us_text(1709251199LL * 1000000 + 500000), "2024-02-29T23:59:59.500000Z");
    assert_string_equal(us_text(-2208988800LL * 1000000), "1900-01-01T00:00:00.000000Z");
    assert_string_equal(us_text(ES_RFC3339_MIN_S * 1000000), "0001-01-01T00:00:00.000000Z");
    assert_string_equal(us_text(ES_RFC3339_MAX_S * 1000000 + 999999), "9999-12-31T23:59:59.999999Z");
    assert_string_equal(us_text(ES_RFC3339_MIN_S * 1000000 - 1), "");
    assert_string_equal(us_text((ES_RFC3339_MAX_S + 1) * 1000000), "");
    assert_string_equal(us_text(INT64_MIN), "");
    assert_string_equal(us_text(INT64_MAX), "");
}

static void rfc3339_fraction_digits(void **state)
{
    (void)state;
    char b[ES_RFC3339_LEN];
    assert_string_equal(es_rfc3339(0, 0, ES_RFC3339_FRAC_AUTO, b), "1970-01-01T00:00:00Z");
    assert_string_equal(es_rfc3339(0, 250000000, ES_RFC3339_FRAC_AUTO, b), "1970-01-01T00:00:00.250Z");
    assert_string_equal(es_rfc3339(0, 1000, ES_RFC3339_FRAC_AUTO, b), "1970-01-01T00:00:00.000001Z");
    assert_string_equal(es_rfc3339(0, 1, ES_RFC3339_FRAC_AUTO, b), "1970-01-01T00:00:00.000000001Z");
    assert_string_equal(es_rfc3339(-1, 999999999, 9, b), "1969-12-31T23:59:59.999999999Z");
    assert_string_equal(es_rfc3339(-1, 999999999, 3, b), "1969-12-31T23:59:59.999Z");
    assert_string_equal(es_rfc3339(-1, 999999999, 0, b), "1969-12-31T23:59:59Z");
    assert_string_equal(es_rfc3339(0, -1, 6, b), "");
    assert_string_equal(es_rfc3339(0, 1000000000, 6, b), "");
    assert_string_equal(es_rfc3339(0, 0, 4, b), "");
}

/* Every day from year 1 to 9999 (in steps of a prime number of seconds) agrees with glibc's
 * gmtime_r, and the calendar round-trips. */
static void agrees_with_gmtime(void **state)
{
    (void)state;
    for (int64_t s = ES_RFC3339_MIN_S; s <= ES_RFC3339_MAX_S; s += 86399 * 7 + 13) {
        time_t t = (time_t)s;
        struct tm tm;
        assert_non_null(gmtime_r(&t, &tm));
        char want[64], got[ES_RFC3339_LEN];
        snprintf(want, sizeof want, "%04d-%02d-%02dT%02d:%02d:%02d.000042Z", tm.tm_year + 1900, tm.tm_mon + 1,
                 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
        assert_string_equal(es_rfc3339_us(s * 1000000 + 42, got), want);
        int64_t y;
        unsigned m, d;
        int64_t day = s >= 0 ? s / 86400 : -((-s + 86399) / 86400);
        es_civil_from_days(day, &y, &m, &d);
        assert_int_equal(es_days_from_civil(y, m, d), day);
    }
}

static void clocks(void **state)
{
    (void)state;
    int64_t wall = es_now_us();
    int64_t sys = (int64_t)time(NULL) * 1000000;
    assert_true(wall >= sys - 2000000 && wall <= sys + 2000000);
    int64_t prev = es_mono_us();
    for (int i = 0; i < 10000; i++) {
        int64_t now = es_mono_us();
        assert_true(now >= prev);
        prev = now;
    }
    struct timespec d = es_mono_deadline(1500000);
    int64_t d_us = (int64_t)d.tv_sec * 1000000 + d.tv_nsec / 1000;
    assert_true(d.tv_nsec >= 0 && d.tv_nsec < 1000000000L);
    assert_true(d_us >= prev + 1500000);
    assert_true(d_us <= es_mono_us() + 1500000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(rfc3339_us_known_values),
        cmocka_unit_test(rfc3339_fraction_digits),
        cmocka_unit_test(agrees_with_gmtime),
        cmocka_unit_test(clocks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
