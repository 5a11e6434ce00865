/* orderctl dead-letters list|retry.
 *
 * The consumer framework (es/consumer.h) writes a message it could not apply to es_dead_letters
 * and parks the message's stream (es_consumer_streams.dead_letter_id) so that later events of the
 * stream are not applied past the gap. A dead letter is resolved by re-applying and then setting
 * retried_at and clearing the parking. Retry does that through the consumer's own apply path:
 * it unparks the stream and replays it from the event store (es_consumer_replay with the
 * consumer's name and handler, as orderd wires them), which applies every version the consumer
 * has not recorded (the dead-lettered one and any dead-lettered after it) and skips the rest. The
 * store, not the raw Kafka message, is the source: the message may be the undecodable part. On
 * success every open dead letter of that (consumer, stream) is marked resolved; on failure the
 * stream is parked behind the letter again (also when the consumer's own parking missed it) and
 * the letters stay open. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "es/json_string.h"
#include "es/timefmt.h"
#include "orderctl.h"

static void print_json(const es_admin_dead_letter *d)
{
    es_buf b;
    es_buf_init(&b);
    es_buf_printf(&b, "{\"id\":%" PRId64 ",\"consumer\":", d->id);
    es_json_quote_str(&b, d->consumer);
    es_buf_puts(&b, ",\"topic\":");
    es_json_quote_str(&b, d->topic);
    es_buf_printf(&b, ",\"partition\":%d,\"offset\":%" PRId64 ",\"stream_id\":", (int)d->partition, d->offset);
    es_json_quote_str(&b, d->stream_id);
    es_buf_printf(&b, ",\"version\":%" PRId64 ",\"error\":", d->version);
    es_json_quote_str(&b, d->error);
    es_buf_puts(&b, ",\"recorded_at\":");
    ctl_json_time(&b, d->recorded_at_us);
    es_buf_puts(&b, ",\"retried_at\":");
    if (d->retried_at_us)
        ctl_json_time(&b, d->retried_at_us);
    else
        es_buf_puts(&b, "null");
    es_buf_printf(&b, ",\"parks_stream\":%s,\"message_bytes\":%zu}\n", d->parks ? "true" : "false", d->message_len);
    fwrite(b.data, 1, b.len, stdout);
    es_buf_free(&b);
}

static void print_text(const es_admin_dead_letter *d)
{
    char when[ES_RFC3339_LEN];
    printf("%-6" PRId64 " %-26s %-38s v%-5" PRId64 " %s %s%s\n    %s\n", d->id, d->consumer,
           d->stream_id ? d->stream_id : "(no stream)", d->version, es_rfc3339_us(d->recorded_at_us, when),
           d->retried_at_us ? "resolved" : "OPEN", d->parks ? ", parks its stream" : "", d->error);
}

static int list(ctl *c, int argc, char **argv)
{
    int all = 0, json = 0;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--all"))
            all = 1;
        else if (!strcmp(argv[i], "--json"))
            json = 1;
        else {
            fprintf(stderr, "usage: orderctl dead-letters list [--all] [--json]\n");
            return CTL_ERROR;
        }
    }
    es_arena a;
    es_arena_init(&a);
    es_admin_dead_letter *d;
    size_t n;
    es_error err = {0};
    int rc = CTL_OK;
    if (es_admin_dead_letters(c->pool, all, &a, &d, &n, &err) != ES_OK) {
        rc = ctl_fail("dead-letters list", &err);
        goto done;
    }
    for (size_t i = 0; i < n; i++)
        (json ? print_json : print_text)(&d[i]);
    if (!json)
        printf("%zu %sdead letter%s\n", n, all ? "" : "open ", n == 1 ? "" : "s");
done:
    es_arena_free(&a);
    return rc;
}

/* The stream a dead letter concerns: its column, else the envelope in the raw message. */
static const char *stream_of(const es_admin_dead_letter *d, es_arena *a)
{
    if (d->stream_id && d->stream_id[0])
        return d->stream_id;
    es_envelope_view ev;
    es_error err = {0};
    if (d->message && es_envelope_unpack(d->message, d->message_len, a, &ev, &err) == ES_OK && ev.stream_id[0])
        return ev.stream_id;
    return NULL;
}

/* Retries one dead letter. CTL_OK (re-applied or already resolved), CTL_FOUND (the handler
 * still fails: parked again) or CTL_ERROR. */
static int retry_one(ctl *c, int64_t id)
{
    es_arena a;
    es_arena_init(&a);
    es_admin_dead_letter d;
    es_error err = {0};
    ctl_consumer cc = {0};
    int rc = CTL_OK;
    int64_t was = 0, applied = 0, resolved = 0;
    if (es_admin_dead_letter_get(c->pool, id, &a, &d, &err) != ES_OK) {
        rc = err.code == ES_NOT_FOUND ? CTL_FOUND : CTL_ERROR;
        ctl_fail("dead-letters retry", &err);
        goto done;
    }
    if (d.retried_at_us) {
        printf("dead letter %" PRId64 ": already resolved\n", id);
        goto done;
    }
    const char *stream = stream_of(&d, &a);
    if (!stream) {
        /* Nothing names an event: the message never was one the consumer could apply, and the
         * consumer did not park anything for it. Resolving it is all there is to do. */
        if (es_admin_resolve_dead_letters(c->pool, id, d.consumer, NULL, &resolved, &err) != ES_OK) {
            rc = ctl_fail("dead-letters retry", &err);
            goto done;
        }
        printf("dead letter %" PRId64 ": names no stream (the message is not an event envelope); marked resolved\n",
               id);
        goto done;
    }
    if ((rc = ctl_consumer_get(c, d.consumer, &cc)) != CTL_OK)
        goto done;
    if (es_admin_unpark(c->pool, d.consumer, stream, &was, &err) != ES_OK) {
        rc = ctl_fail("dead-letters retry: unpark", &err);
        goto done;
    }
    es_replay_config rcfg = {.name = d.consumer, .conninfo = c->pg, .handle = cc.handle, .data = cc.data,
                             .stream_id = stream};
    if (es_consumer_replay(&rcfg, &applied, &err) != ES_OK) {
        es_error perr = {0};
        if (es_admin_park(c->pool, d.consumer, stream, was ? was : id, &perr) != ES_OK)
            ctl_fail("dead-letters retry: park again", &perr);
        printf("dead letter %" PRId64 ": consumer %s stream %s: still failing, left open: %s: %s\n", id, d.consumer,
               stream, es_strerror(err.code), err.message);
        rc = err.code == ES_UNAVAILABLE ? CTL_ERROR : CTL_FOUND;
        goto done;
    }
    if (es_admin_resolve_dead_letters(c->pool, id, d.consumer, stream, &resolved, &err) != ES_OK) {
        rc = ctl_fail("dead-letters retry: resolve", &err);
        goto done;
    }
    printf("dead letter %" PRId64 ": consumer %s stream %s: %lld event%s re-applied, %lld dead letter%s resolved\n",
           id, d.consumer, stream, (long long)applied, applied == 1 ? "" : "s", (long long)resolved,
           resolved == 1 ? "" : "s");
done:
    ctl_consumer_release(&cc);
    es_arena_free(&a);
    return rc;
}

static int retry(ctl *c, int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: orderctl dead-letters retry <id>|--all\n");
        return CTL_ERROR;
    }
    if (strcmp(argv[2], "--all") != 0) {
        char *end;
        long long id = strtoll(argv[2], &end, 10);
        if (*end || id <= 0) {
            fprintf(stderr, "orderctl: dead-letters retry: %s is not a dead letter id\n", argv[2]);
            return CTL_ERROR;
        }
        return retry_one(c, id);
    }
    es_arena a;
    es_arena_init(&a);
    es_admin_dead_letter *d;
    size_t n;
    es_error err = {0};
    int rc = CTL_OK;
    if (es_admin_dead_letters(c->pool, 0, &a, &d, &n, &err) != ES_OK) {
        rc = ctl_fail("dead-letters retry", &err);
        goto done;
    }
    /* Oldest first; a retry resolves its stream's later letters, which then answer "already
     * resolved" quietly below. */
    int failed = 0;
    for (size_t i = 0; i < n; i++) {
        es_admin_dead_letter now;
        es_arena one;
        es_arena_init(&one);
        int st = es_admin_dead_letter_get(c->pool, d[i].id, &one, &now, &err);
        int open = st == ES_OK && !now.retried_at_us;
        es_arena_free(&one);
        if (st != ES_OK && st != ES_NOT_FOUND) {
            rc = ctl_fail("dead-letters retry", &err);
            goto done;
        }
        if (!open)
            continue;
        int r = retry_one(c, d[i].id);
        if (r == CTL_ERROR) {
            rc = r;
            goto done;
        }
        failed |= r != CTL_OK;
    }
    printf("dead-letters retry: %zu open before, %s\n", n, failed ? "some still failing" : "all resolved");
    rc = failed ? CTL_FOUND : CTL_OK;
done:
    es_arena_free(&a);
    return rc;
}

int ctl_dead_letters(ctl *c, int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "list"))
        return list(c, argc, argv);
    if (argc >= 2 && !strcmp(argv[1], "retry"))
        return retry(c, argc, argv);
    fprintf(stderr, "usage: orderctl dead-letters list [--all] [--json] | dead-letters retry <id>|--all\n");
    return CTL_ERROR;
}
