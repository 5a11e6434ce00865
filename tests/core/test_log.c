/* es/log.h: every line is one valid JSON object, whatever bytes the message carries. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <json-c/json.h>

#include "es/log.h"
#include "es/utf8.h"

/* Runs fn with stderr sent to a temporary file and returns what it wrote (caller frees). */
static char *capture_stderr(void (*fn)(void))
{
    FILE *tmp = tmpfile();
    assert_non_null(tmp);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    assert_true(saved >= 0);
    assert_true(dup2(fileno(tmp), STDERR_FILENO) >= 0);
    fn();
    fflush(stderr);
    assert_true(dup2(saved, STDERR_FILENO) >= 0);
    close(saved);
    long n = ftell(tmp);
    if (n <= 0) {
        fseek(tmp, 0, SEEK_END);
        n = ftell(tmp);
    }
    char *out = calloc(1, (size_t)n + 1);
    rewind(tmp);
    assert_int_equal(fread(out, 1, (size_t)n, tmp), (size_t)n);
    fclose(tmp);
    return out;
}

static void log_hostile(void)
{
    es_log(ES_LOG_WARN, "comp\"onent", "corr\x01\xff", "bad utf-8 %s and controls %s", "\xff\xfe\xc3(\xed\xa0\x80",
           "\n\r\t\b\f\x01\x1f\"\\");
    /* a message longer than the line buffer, cut inside a 3-byte sequence */
    char big[3000];
    for (size_t i = 0; i + 3 <= sizeof big - 1; i += 3)
        memcpy(big + i, "\xe2\x82\xac", 3);
    big[sizeof big - 1] = 0;
    es_log(ES_LOG_ERROR, "long", NULL, "x%s", big);
    es_log(ES_LOG_DEBUG, "hidden", NULL, "below the threshold"); /* not written */
}

static json_object *field(json_object *o, const char *k)
{
    json_object *v = NULL;
    assert_true(json_object_object_get_ex(o, k, &v));
    return v;
}

static void lines_are_json_whatever_the_bytes(void **state)
{
    (void)state;
    assert_int_equal(es_log_set_level("info"), 0);
    char *out = capture_stderr(log_hostile);
    assert_true(es_utf8_valid(out, strlen(out)));
    int lines = 0;
    for (char *save = NULL, *line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        json_tokener *tok = json_tokener_new();
        json_object *o = json_tokener_parse_ex(tok, line, (int)strlen(line));
        if (json_tokener_get_error(tok) != json_tokener_success)
            fail_msg("not JSON: %s", line);
        assert_true(json_object_is_type(o, json_type_object));
        const char *ts = json_object_get_string(field(o, "ts"));
        assert_int_equal(strlen(ts), 27); /* YYYY-MM-DDTHH:MM:SS.ffffffZ */
        assert_true(ts[4] == '-' && ts[10] == 'T' && ts[19] == '.' && ts[26] == 'Z');
        if (lines == 0) {
            assert_string_equal(json_object_get_string(field(o, "level")), "warn");
            assert_string_equal(json_object_get_string(field(o, "component")), "comp\"onent");
            assert_string_equal(json_object_get_string(field(o, "correlation_id")), "corr\x01\xef\xbf\xbd");
            /* invalid bytes read back as U+FFFD, controls as themselves */
            assert_string_equal(json_object_get_string(field(o, "msg")),
                                "bad utf-8 \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd(\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
                                " and controls \n\r\t\b\f\x01\x1f\"\\");
        } else {
            assert_string_equal(json_object_get_string(field(o, "level")), "error");
            assert_false(json_object_object_get_ex(o, "correlation_id", NULL));
            assert_true(json_object_get_string_len(field(o, "msg")) > 2000);
        }
        json_object_put(o);
        json_tokener_free(tok);
        lines++;
    }
    assert_int_equal(lines, 2);
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(lines_are_json_whatever_the_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
