/* Structured logs: one JSON object per line on stderr,
 *   {"ts":"2026-11-27T04:31:02.123456Z","level":"warn","component":"relay","msg":"...","correlation_id":"..."}
 * with a process-wide level threshold. Every line is valid JSON whatever bytes the message
 * carries (invalid UTF-8 becomes U+FFFD, control characters are escaped; es/json_string.h).
 * Never log a secret (tokens, conninfo passwords). */
#ifndef ES_LOG_H
#define ES_LOG_H

typedef enum es_log_level { ES_LOG_DEBUG = 0, ES_LOG_INFO = 1, ES_LOG_WARN = 2, ES_LOG_ERROR = 3 } es_log_level;

/* Sets the threshold from "debug", "info", "warn" or "error"; returns -1 for another name. */
int es_log_set_level(const char *name);
int es_log_enabled(es_log_level level);
/* Logs one line when level passes the threshold. correlation_id may be NULL. */
void es_log(es_log_level level, const char *component, const char *correlation_id, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
