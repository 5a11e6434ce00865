/* Structured JSON-lines logging; see es/log.h. */
#include "es/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "es/buf.h"
#include "es/clock.h"
#include "es/json_string.h"
#include "es/timefmt.h"

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

void es_log(es_log_level level, const char *component, const char *correlation_id, const char *fmt, ...)
{
    if (!es_log_enabled(level))
        return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char ts[ES_RFC3339_LEN];
    es_buf b;
    es_buf_init(&b);
    /* Every string goes through es_json_quote: a message may quote client input or be cut inside
     * a UTF-8 sequence by the buffer above, and the line stays valid JSON all the same. */
    es_buf_printf(&b, "{\"ts\":\"%s\",\"level\":\"%s\",\"component\":", es_rfc3339_us(es_now_us(), ts), names[level]);
    es_json_quote_str(&b, component);
    es_buf_puts(&b, ",\"msg\":");
    es_json_quote_str(&b, msg);
    if (correlation_id && correlation_id[0]) {
        es_buf_puts(&b, ",\"correlation_id\":");
        es_json_quote_str(&b, correlation_id);
    }
    es_buf_puts(&b, "}\n");
    fwrite(b.data, 1, b.len, stderr); /* one write per line: lines from threads do not interleave */
    es_buf_free(&b);
}
