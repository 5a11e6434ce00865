/* A view of several instances' /metrics from one of them: a small bounded HTTP/1.1 GET client
 * and a scraper that keeps the latest answer of each instance, for an operator's dashboard.
 *
 * Each configured instance gets a thread that fetches `<base URL>/metrics` every interval, but
 * only while someone watches (es_fleet_write_json was called in the last minute): a fleet whose
 * every instance lists every other does not scrape itself N^2 times while nobody looks. Every
 * fetch is bounded (see docs/ARCHITECTURE.md, invariant 10): one deadline covers name lookup
 * wait, connect, send and receive, and the answer is cut at max_bytes, so an instance that never
 * answers or sends an endless body costs one thread at most timeout_ms per round and max_bytes
 * of memory. The reader (an HTTP handler on an event loop) never waits on a fetch: it formats
 * what the threads last stored. An instance that does not answer is reported as down with the
 * reason, never dropped. */
#ifndef ES_FLEET_H
#define ES_FLEET_H

#include <stddef.h>
#include "es/buf.h"
#include "es/status.h"

typedef struct es_fleet es_fleet;

/* Writes this process's own metrics (Prometheus text) to out; used when no URL is configured. */
typedef void (*es_fleet_self_fn)(void *data, es_buf *out);

typedef struct es_fleet_config {
    const char *urls;           /* comma-separated base URLs, "http://host:port[/prefix]" (IPv4, a
                                 * name, or [IPv6]); NULL or "": this instance only, through self */
    const char *token;          /* bearer token sent to every instance (NULL: none); borrowed */
    unsigned timeout_ms;        /* one fetch, from connect to the last byte; 0: 2000 */
    size_t max_bytes;           /* largest answer, headers included; 0: 4 MiB */
    unsigned interval_ms;       /* time between fetches of one instance while watched; 0: 2000 */
    es_fleet_self_fn self;      /* this instance's metrics, when urls is empty */
    void *self_data;
} es_fleet_config;

#define ES_FLEET_MAX_INSTANCES 64

/* Checks the URLs (ES_INVALID_ARGUMENT naming field "fleet" for one that is not
 * http://host[:port][/path], or more than ES_FLEET_MAX_INSTANCES) and starts one scraping thread
 * per instance. Returns NULL with err filled on a bad configuration. Free with es_fleet_free. */
es_fleet *es_fleet_new(const es_fleet_config *cfg, es_error *err);

/* Appends the fleet's latest state as JSON to out and marks the fleet watched:
 *   {"interval_ms":N,"timeout_ms":N,"now_ms":<Unix ms>,"instances":[
 *     {"url":"...","instance":"host:port","state":"up"|"down"|"pending","error":"..."|null,
 *      "scraped_at_ms":<Unix ms of the last answer or attempt>|null,"duration_ms":N|null,
 *      "metrics":"<Prometheus text of the last good answer>"|null}, ...]}
 * in configuration order. "pending": not fetched since the fleet was last watched. Never blocks
 * on the network; safe from any thread. */
void es_fleet_write_json(es_fleet *f, es_buf *out);

/* Stops the threads (each ends within its current fetch's timeout) and frees. NULL is ok. */
void es_fleet_free(es_fleet *f);

/* The bounded client: GET <base_url><path> over HTTP/1.1 (Connection: close), with
 * "Authorization: Bearer <token>" when token is set. Within timeout_ms from the call and
 * max_bytes of answer. On an answer, *status is its HTTP status and body holds its decoded body
 * (Content-Length, chunked, or up to the close); returns ES_OK. Otherwise returns
 * ES_INVALID_ARGUMENT (a bad URL), ES_UNAVAILABLE (no connection, reset, malformed answer),
 * ES_DEADLINE_EXCEEDED (timeout) or ES_RESOURCE_EXHAUSTED (larger than max_bytes), err saying
 * what happened. Blocking: call it from a thread of its own. */
int es_fleet_get(const char *base_url, const char *path, const char *token, unsigned timeout_ms, size_t max_bytes,
                 es_buf *body, int *status, es_error *err);

#endif
