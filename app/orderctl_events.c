/* orderctl history and tail: events as JSON lines, from one stream or from the live feed. Old
 * events are shown upcast to the current schema (upcasters.h), as the command path folds them. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "es/feed.h"
#include "es/upcast.h"
#include "orderctl.h"
#include "es/uuid.h"
#include "upcasters.h"

/* Points v->payload at the event in the current schema (bytes in arena when an upcaster ran).
 * When the upcaster refuses, says so on stderr and leaves the stored payload. Returns 0 or -1. */
static int upcast_view(const ctl *c, es_envelope_view *v, es_arena *arena, const char *what)
{
    const es_event_def *def = ctl_event_def(c, v->stream_type, v->event_type);
    const uint8_t *bytes;
    size_t len;
    int up = 0;
    es_error err = {0};
    if (es_event_upcast_payload(def, v->schema_version, v->payload, v->payload_len, orders_upcasters,
                                orders_n_upcasters, arena, &bytes, &len, &up, &err) != ES_OK) {
        fprintf(stderr, "orderctl: %s: %s %s version %lld (%s, schema version %u) cannot be brought to the current "
                "schema, shown as stored: %s: %s\n", what, v->stream_type, v->stream_id, (long long)v->version,
                v->event_type, v->schema_version, es_strerror(err.code), err.message);
        return -1;
    }
    v->payload = bytes;
    v->payload_len = len;
    if (up) /* "data" is now a message of the current definition (schema_version stays as stored) */
        v->schema = def->schema;
    return 0;
}

/* ---- history ---- */

typedef struct history {
    const ctl *c;
    es_buf line;
    es_arena arena;       /* upcast payloads, reset per event */
    int64_t n;
    int failed_upcasts;
} history;

static int print_record(const es_event_record *r, void *ctx, es_error *err)
{
    (void)err;
    history *h = ctx;
    es_envelope_view v;
    es_envelope_view_clear(&v);
    v.event_id = r->event_id;
    v.stream_id = r->stream_id;
    v.stream_type = r->stream_type;
    v.event_type = r->event_type;
    v.schema = r->schema_name;
    v.schema_hash = r->schema_hash ? r->schema_hash : "";
    v.command_id = r->command_id ? r->command_id : "";
    v.correlation_id = r->correlation_id ? r->correlation_id : "";
    v.causation_id = r->causation_id ? r->causation_id : "";
    v.actor = r->actor ? r->actor : "";
    v.version = r->version;
    v.position = r->position;
    v.schema_version = r->schema_version;
    v.recorded_at_us = r->recorded_at_us;
    v.payload = r->payload;
    v.payload_len = r->payload_len;
    es_arena_reset(&h->arena);
    if (upcast_view(h->c, &v, &h->arena, "history") != 0)
        h->failed_upcasts++;
    es_buf_reset(&h->line);
    ctl_event_json(h->c, &v, &h->line);
    es_buf_putc(&h->line, '\n');
    fwrite(h->line.data, 1, h->line.len, stdout);
    h->n++;
    return 0;
}

int ctl_history(ctl *c, int argc, char **argv)
{
    if (argc != 2 || argv[1][0] == '-') {
        fprintf(stderr, "usage: orderctl history <order_id>\n");
        return CTL_ERROR;
    }
    /* The id as the service stores it, whatever spelling the operator pasted. */
    es_uuid_canonicalize(argv[1]);
    es_pipeline *p = ctl_pipeline(c);
    if (!p)
        return CTL_ERROR;
    history h = {c, {0}, {0}, 0, 0};
    es_buf_init(&h.line);
    es_arena_init(&h.arena);
    es_error err = {0};
    int rc = CTL_OK;
    if (es_pipeline_read_stream(p, argv[1], 0, 0, print_record, &h, &err) != ES_OK)
        rc = ctl_fail("history", &err);
    else if (h.n == 0) {
        fprintf(stderr, "orderctl: history: order %s has no events\n", argv[1]);
        rc = CTL_FOUND;
    } else if (h.failed_upcasts) {
        rc = CTL_ERROR;
    }
    fflush(stdout);
    es_buf_free(&h.line);
    es_arena_free(&h.arena);
    return rc;
}

/* ---- tail ---- */

static volatile sig_atomic_t stop_tail;

static void on_signal(int sig)
{
    (void)sig;
    stop_tail = 1;
}

int ctl_tail(ctl *c, int argc, char **argv)
{
    int from_start = 0;
    long long max = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--from-start")) {
            from_start = 1;
        } else if (!strcmp(argv[i], "--max") && i + 1 < argc) {
            max = atoll(argv[++i]);
        } else {
            fprintf(stderr, "usage: orderctl tail [--from-start] [--max N]\n");
            return CTL_ERROR;
        }
    }
    /* No SA_RESTART: the signal interrupts the feed's poll, so Ctrl-C ends the wait at once. */
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    es_error err = {0};
    es_feed_cursor cur = {0, 0};
    if (!from_start && es_admin_feed_head(c->pool, &cur, &err) != ES_OK)
        return ctl_fail("tail: feed head", &err);
    es_feed *f = NULL;
    if (es_feed_open(c->pg, &f, &err) != ES_OK)
        return ctl_fail("tail: feed", &err);
    es_feed_batch b;
    es_feed_batch_init(&b);
    es_buf line;
    es_buf_init(&line);
    es_arena arena;
    es_arena_init(&arena);
    long long printed = 0;
    int warned = 0;
    while (!stop_tail && (max == 0 || printed < max)) {
        if (es_feed_read(f, cur, 500, &b, &err) != ES_OK) {
            if (!warned)
                fprintf(stderr, "orderctl: tail: %s: %s (retrying)\n", es_strerror(err.code), err.message);
            warned = 1;
            sleep(1);
            continue;
        }
        warned = 0;
        for (size_t i = 0; i < b.n && (max == 0 || printed < max); i++) {
            es_envelope_view v = b.events[i];
            es_arena_reset(&arena);
            upcast_view(c, &v, &arena, "tail");
            es_buf_reset(&line);
            ctl_event_json(c, &v, &line);
            es_buf_putc(&line, '\n');
            fwrite(line.data, 1, line.len, stdout);
            printed++;
        }
        fflush(stdout);
        cur = b.last;
        if (b.n == 0)
            es_feed_wait(f, 500);
    }
    es_buf_free(&line);
    es_arena_free(&arena);
    es_feed_batch_free(&b);
    es_feed_close(f);
    return CTL_OK;
}
