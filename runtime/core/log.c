/* Structured JSON-lines logging; see es/log.h. */
#include "es/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "es/buf.h"

static atomic_int threshold = ES_LOG_INFO;
static const char *const names[] = {"debug", "info", "warn", "error"};

int es_log_set_level(const char *name)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(name, names[i]) == 0) {
            atomic_store(&threshold, i);
            return 0;
        }
    return -1;
}

int es_log_enabled(es_log_level level) { return (int)level >= atomic_load(&threshold); }

static void json_str(es_buf *b, const char *s)
{
    es_buf_putc(b, '"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            es_buf_printf(b, "\\%c", c);
        else if (c < 0x20)
            es_buf_printf(b, "\\u%04x", c);
        else
            es_buf_putc(b, (char)c);
    }
    es_buf_putc(b, '"');
}

void es_log(es_log_level level, const char *component, const char *correlation_id, const char *fmt, ...)
{
    if (!es_log_enabled(level))
        return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    es_buf b;
    es_buf_init(&b);
    es_buf_printf(&b, "{\"ts\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\",\"level\":\"%s\",\"component\":", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, names[level]);
    json_str(&b, component);
    es_buf_puts(&b, ",\"msg\":");
    json_str(&b, msg);
    if (correlation_id && correlation_id[0]) {
        es_buf_puts(&b, ",\"correlation_id\":");
        json_str(&b, correlation_id);
    }
    es_buf_puts(&b, "}\n");
    fwrite(b.data, 1, b.len, stderr); /* one write per line: lines from threads do not interleave */
    es_buf_free(&b);
}
