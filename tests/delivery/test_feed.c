/* docs/ARCHITECTURE.md invariant 4: the global feed never skips a late committer.
 * A transaction takes an early position and stays open while 1,000 later appends commit; the
 * feed must not pass it, must say how far it is held back, and once it commits every event
 * appears exactly once with each stream in version order. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "es/feed.h"
#include "harness.h"

static dh_env env;

/* What the feed has delivered so far, by event id and per stream. */
typedef struct seen {
    char **ids;
    size_t n, cap;
    int64_t last_version[64];  /* streams s0..s49, "early" = 63 */
} seen;

static int stream_index(const char *id)
{
    if (!strcmp(id, "early"))
        return 63;
    if (!strcmp(id, "before"))
        return 62;
    return atoi(id + 1);
}

/* Reads the feed to its current end in small batches, checking order as it goes. */
static size_t drain(es_feed *f, es_feed_cursor *cur, seen *s)
{
    es_feed_batch b;
    es_feed_batch_init(&b);
    size_t total = 0;
    for (;;) {
        es_error err;
        assert_int_equal(es_feed_read(f, *cur, 37, &b, &err), ES_OK);
        if (b.n == 0)
            break;
        for (size_t i = 0; i < b.n; i++) {
            const es_envelope_view *e = &b.events[i];
            int k = stream_index(e->stream_id);
            /* Each stream in version order, no gap, no repeat. */
            assert_int_equal(e->version, s->last_version[k] + 1);
            s->last_version[k] = e->version;
            if (s->n == s->cap) {
                s->cap = s->cap ? s->cap * 2 : 1024;
                s->ids = realloc(s->ids, s->cap * sizeof *s->ids);
            }
            s->ids[s->n++] = strdup(e->event_id);
            /* Feed order is strictly increasing (txid, position). */
            assert_true(e->txid > cur->txid ||
                        (e->txid == cur->txid && e->position > cur->position));
            cur->txid = e->txid;
            cur->position = e->position;
        }
        assert_int_equal(b.last.position, cur->position);
        total += b.n;
    }
    es_feed_batch_free(&b);
    return total;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void feed_waits_for_late_committer(void **state)
{
    (void)state;
    PGconn *early = dh_connect(&env), *app = dh_connect(&env);
    es_feed *f = NULL;
    es_error err;
    assert_int_equal(es_feed_open(env.conninfo, &f, &err), ES_OK);
    seen s = {0};
    es_feed_cursor cur = {0, 0};

    /* 10 events committed before anything else: the feed delivers them. */
    assert_int_equal(dh_append(app, "before", 1, 10), 0);
    assert_int_equal(drain(f, &cur, &s), 10);

    /* The late committer: takes its xid and position now, commits last. */
    dh_exec(early, "BEGIN");
    assert_int_equal(dh_append(early, "early", 1, 1), 0);
    int64_t early_pos = dh_query_int(early, "SELECT max(position) FROM es_events WHERE stream_id = 'early'");

    /* 1,000 later appends commit (50 streams x 20 versions, one or two per transaction) while
     * the feed is read again and again: it must not pass the open transaction. */
    int64_t v[50] = {0};
    int appended = 0, round = 0;
    while (appended < 1000) {
        int k = (round * 7) % 50, n = (round % 3 == 0 && v[k] < 19) ? 2 : 1;
        if (v[k] + n > 20) {
            round++;
            continue;
        }
        char id[8];
        snprintf(id, sizeof id, "s%d", k);
        assert_int_equal(dh_append(app, id, v[k] + 1, n), 0);
        v[k] += n;
        appended += n;
        round++;
        if (round % 100 == 0)
            assert_int_equal(drain(f, &cur, &s), 0);
    }
    assert_int_equal(appended, 1000);
    assert_int_equal(drain(f, &cur, &s), 0);
    /* Every later event got a position after the open one's: a `position > last` reader would
     * have read them all and skipped the early event for good. */
    assert_true(dh_query_int(app, "SELECT min(position) FROM es_events WHERE stream_id LIKE 's%'") > early_pos);

    /* The hold-back is measured. */
    dh_sleep_ms(1100);
    es_feed_stats st;
    assert_int_equal(es_feed_stats_get(f, cur, &st, &err), ES_OK);
    assert_int_equal(st.held_back_events, 1000);
    assert_int_equal(st.pending_events, 1000);
    assert_true(st.held_back_age_s >= 1.0);
    assert_true(st.oldest_xact_age_s >= 1.0);
    assert_true(st.xmin > 0);

    /* A wake-up arrives for a committed append. */
    dh_exec(app, "NOTIFY es_events");
    assert_int_equal(es_feed_wait(f, 5000), 1);

    dh_exec(early, "COMMIT");
    assert_int_equal(drain(f, &cur, &s), 1001);
    assert_int_equal(s.n, 1011);
    assert_int_equal(s.last_version[63], 1);
    for (int k = 0; k < 50; k++)
        assert_int_equal(s.last_version[k], 20);

    /* Exactly once: no event id twice, and all of es_events seen. */
    qsort(s.ids, s.n, sizeof *s.ids, cmp_str);
    for (size_t i = 1; i < s.n; i++)
        assert_string_not_equal(s.ids[i - 1], s.ids[i]);
    assert_int_equal(dh_query_int(app, "SELECT count(*) FROM es_events"), (int64_t)s.n);
    assert_int_equal(es_feed_stats_get(f, cur, &st, &err), ES_OK);
    assert_int_equal(st.pending_events, 0);
    assert_int_equal(st.held_back_events, 0);

    for (size_t i = 0; i < s.n; i++)
        free(s.ids[i]);
    free(s.ids);
    es_feed_close(f);
    PQfinish(early);
    PQfinish(app);
}

/* Concurrent writers committing out of position order, read while they write. */
typedef struct writer {
    int id;
    int streams, per_stream;
} writer;

#include <pthread.h>
static void *write_many(void *arg)
{
    writer *w = arg;
    PGconn *c = dh_connect(&env);
    for (int v = 1; v <= w->per_stream; v++)
        for (int s = 0; s < w->streams; s++) {
            char id[32];
            snprintf(id, sizeof id, "w%d-%d", w->id, s);
            if (dh_append(c, id, v, 1) != 0)
                abort();
        }
    PQfinish(c);
    return NULL;
}

static void feed_exactly_once_under_concurrent_appends(void **state)
{
    (void)state;
    PGconn *app = dh_connect(&env);
    dh_exec(app, "TRUNCATE es_events");
    PQfinish(app);
    es_feed *f = NULL;
    es_error err;
    assert_int_equal(es_feed_open(env.conninfo, &f, &err), ES_OK);
    pthread_t t[4];
    writer w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (writer){i, 10, 25};
        pthread_create(&t[i], NULL, write_many, &w[i]);
    }
    es_feed_batch b;
    es_feed_batch_init(&b);
    es_feed_cursor cur = {0, 0};
    int64_t last[4][10] = {{0}};
    size_t got = 0;
    int64_t deadline = dh_now_ms() + 60000;
    while (got < 1000 && dh_now_ms() < deadline) {
        assert_int_equal(es_feed_read(f, cur, 50, &b, &err), ES_OK);
        for (size_t i = 0; i < b.n; i++) {
            int wi, si;
            assert_int_equal(sscanf(b.events[i].stream_id, "w%d-%d", &wi, &si), 2);
            assert_int_equal(b.events[i].version, last[wi][si] + 1);
            last[wi][si] = b.events[i].version;
        }
        got += b.n;
        cur = b.last;
        if (b.n == 0)
            es_feed_wait(f, 100);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(es_feed_read(f, cur, 50, &b, &err), ES_OK);
    assert_int_equal(b.n, 0);
    assert_int_equal(got, 1000);
    es_feed_batch_free(&b);
    es_feed_close(f);
}

/* Regression: the feed once sorted by the text form of txid (an output column named "txid"
 * captured ORDER BY), so "1000" came before "999" and events were skipped on a fresh cluster.
 * Rows with chosen txids of different lengths (all below any live xmin) must come in number
 * order. */
static void feed_orders_by_xid_not_text(void **state)
{
    (void)state;
    PGconn *app = dh_connect(&env);
    dh_exec(app, "TRUNCATE es_events");
    dh_exec(app, "INSERT INTO es_events (txid, event_id, stream_type, stream_id, version, event_type,"
                 " schema_name, schema_version, schema_hash, payload) SELECT x::text::xid8,"
                 " gen_random_uuid(), 't', 'digits', v, 'T', 'S', 1, 'h', '\\x00'"
                 " FROM (VALUES (1, 99), (2, 100), (3, 101), (4, 999), (5, 1000)) AS t(v, x)");
    es_feed *f = NULL;
    es_error err;
    assert_int_equal(es_feed_open(env.conninfo, &f, &err), ES_OK);
    es_feed_batch b;
    es_feed_batch_init(&b);
    es_feed_cursor cur = {0, 0};
    int64_t want = 1;
    for (int round = 0; round < 10 && want <= 5; round++) {
        assert_int_equal(es_feed_read(f, cur, 2, &b, &err), ES_OK);
        for (size_t i = 0; i < b.n; i++)
            assert_int_equal(b.events[i].version, want++);
        cur = b.last;
    }
    assert_int_equal(want, 6);
    /* Every read reused one generic plan: es_events is partitioned, and a custom plan per read
     * planned each partition anew, more CPU than the read. */
    int64_t generic = 0, custom = -1;
    assert_int_equal(es_feed_plans(f, &generic, &custom, &err), ES_OK);
    assert_int_equal(custom, 0);
    assert_true(generic >= 3);
    es_feed_batch_free(&b);
    es_feed_close(f);
    PQfinish(app);
}

static int setup(void **state)
{
    (void)state;
    dh_pg_start(&env, "feed");
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(feed_waits_for_late_committer),
        cmocka_unit_test(feed_exactly_once_under_concurrent_appends),
        cmocka_unit_test(feed_orders_by_xid_not_text),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
