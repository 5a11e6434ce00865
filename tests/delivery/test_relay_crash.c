/* docs/ARCHITECTURE.md invariant 5 under crashes: the relay process (its checkpoint written at most once a
 * second) is SIGKILLed at random points while 10,000 events are appended, and restarted each time. Afterwards every event is in Kafka at least
 * once, keyed by stream id, each key's first occurrences in version order; the projector (the
 * consumer framework) folds the topic, duplicates included, into exactly the store's fold. */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "es/consumer.h"
#include "harness.h"

#define WRITERS 4
#define STREAMS_PER_WRITER 50
#define VERSIONS 50              /* 4 x 50 x 50 = 10,000 events */

static dh_env env;
static const char *TOPIC = "crash";

typedef struct writer {
    int id;
    unsigned seed;
    volatile int done;
} writer;

/* Appends 1-3 events at a time to a random unfinished stream of its own until all are full. */
static void *write_events(void *arg)
{
    writer *w = arg;
    PGconn *c = dh_connect(&env);
    int64_t v[STREAMS_PER_WRITER] = {0};
    int open = STREAMS_PER_WRITER;
    while (open > 0) {
        int s = (int)(rand_r(&w->seed) % STREAMS_PER_WRITER);
        if (v[s] == VERSIONS)
            continue;
        int n = 1 + (int)(rand_r(&w->seed) % 3);
        if (v[s] + n > VERSIONS)
            n = (int)(VERSIONS - v[s]);
        char id[32];
        snprintf(id, sizeof id, "c%d-%d", w->id, s);
        if (dh_append(c, id, v[s] + 1, n) != 0)
            abort();
        v[s] += n;
        if (v[s] == VERSIONS)
            open--;
    }
    PQfinish(c);
    w->done = 1;
    return NULL;
}

static pid_t start_relay(const char *status)
{
    /* The checkpoint written at most once a second: a kill leaves it behind what was delivered,
     * and the next relay publishes that part again. */
    char *argv[] = {(char *)dh_relay_proc_path(), env.conninfo, env.bootstrap_file, (char *)TOPIC,
                    "crash", (char *)status, "1000", NULL};
    return dh_spawn(argv);
}

/* The projection: per stream, how many events and the sum of their versions. Applying an
 * event out of order is an error (the WHERE makes the upsert a no-op, caught below). */
static int project(void *data, es_consumer_tx *tx, const es_envelope_view *ev, es_error *err)
{
    (void)data;
    char v[24];
    snprintf(v, sizeof v, "%lld", (long long)ev->version);
    const char *p[2] = {ev->stream_id, v};
    int64_t n = 0;
    int rc = es_consumer_tx_exec(tx,
        "INSERT INTO crash_proj AS p (stream_id, n, vsum) VALUES ($1, 1, $2::int8)"
        " ON CONFLICT (stream_id) DO UPDATE SET n = p.n + 1, vsum = p.vsum + excluded.vsum"
        " WHERE p.n = $2::int8 - 1", 2, p, &n, err);
    if (rc != ES_OK)
        return rc;
    if (n != 1)
        return es_error_set(err, ES_FAILED_PRECONDITION, "version", "%s v%s applied out of order",
                            ev->stream_id, v);
    return ES_OK;
}

static void relay_survives_sigkill_during_appends(void **state)
{
    (void)state;
    PGconn *c = dh_connect(&env);
    char status[700];
    snprintf(status, sizeof status, "%s/relay.status", env.dir);

    pthread_t t[WRITERS];
    writer w[WRITERS];
    for (int i = 0; i < WRITERS; i++) {
        w[i] = (writer){.id = i, .seed = 1234u + (unsigned)i};
        pthread_create(&t[i], NULL, write_events, &w[i]);
    }
    unsigned seed = 42;
    int kills = 0;
    for (;;) {
        int all_done = 1;
        for (int i = 0; i < WRITERS; i++)
            all_done &= w[i].done;
        if (all_done && kills >= 4)
            break;
        pid_t pid = start_relay(status);
        dh_sleep_ms(300 + (int)(rand_r(&seed) % 1200));
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        kills++;
    }
    for (int i = 0; i < WRITERS; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(dh_query_int(c, "SELECT count(*) FROM es_events"), 10000);
    int64_t before = dh_query_int(c, "SELECT position FROM es_relay_checkpoint WHERE name = 'crash'");
    fprintf(stderr, "relay killed %d times; checkpoint at position %lld of 10000 events\n", kills,
            (long long)before);

    /* A last relay finishes the job. */
    uint64_t txid;
    int64_t pos;
    dh_feed_end(c, &txid, &pos);
    pid_t pid = start_relay(status);
    assert_int_equal(dh_wait_checkpoint(c, "crash", txid, pos, 120000), 0);
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);

    char boot[1024];
    dh_bootstrap(&env, boot, sizeof boot);
    dh_dump d;
    assert_int_equal(dh_dump_topic(boot, TOPIC, &d), 0);
    int64_t dups = 0;
    char why[512] = "";
    int rc = dh_check_delivery(c, &d, &dups, why, sizeof why);
    if (rc)
        fprintf(stderr, "delivery check: %s\n", why);
    assert_int_equal(rc, 0);
    fprintf(stderr, "topic holds %zu messages for 10000 events (%lld duplicates)\n", d.n,
            (long long)dups);
    assert_true(d.n >= 10000);

    /* The projector folds the topic, duplicates and all, into the store's fold. */
    dh_exec(c, "CREATE TABLE crash_proj (stream_id text PRIMARY KEY, n bigint, vsum bigint)");
    const char *props[] = {"log_level", "3", NULL};
    es_consumer_config cc = {.name = "crash-proj", .conninfo = env.conninfo,
                             .bootstrap_file = env.bootstrap_file, .topic = TOPIC,
                             .handle = project, .session_timeout_ms = 6000, .kafka_props = props};
    es_consumer *cons = NULL;
    es_error err;
    assert_int_equal(es_consumer_start(&cc, &cons, &err), ES_OK);
    es_consumer_stats st;
    int64_t deadline = dh_now_ms() + 120000;
    do {
        dh_sleep_ms(200);
        es_consumer_stats_get(cons, &st);
    } while (st.messages < (int64_t)d.n && dh_now_ms() < deadline);
    es_consumer_stop(cons);
    fprintf(stderr, "projector: %lld messages, %lld applied, %lld duplicates skipped, %lld gap-filled\n",
            (long long)st.messages, (long long)st.applied, (long long)st.duplicates,
            (long long)st.gap_filled);
    assert_int_equal(st.messages, (int64_t)d.n);
    assert_int_equal(st.dead_letters, 0);
    assert_int_equal(st.applied + st.gap_filled, 10000);
    assert_int_equal(dh_query_int(c, "SELECT count(*) FROM ("
        " SELECT stream_id, count(*), sum(version) FROM es_events GROUP BY 1"
        " EXCEPT SELECT stream_id, n, vsum FROM crash_proj) x"), 0);
    assert_int_equal(dh_query_int(c, "SELECT count(*) FROM crash_proj"), WRITERS * STREAMS_PER_WRITER);
    assert_int_equal(dh_query_int(c, "SELECT count(*) FROM es_consumer_streams"
                                     " WHERE consumer = 'crash-proj' AND version = 50"),
                     WRITERS * STREAMS_PER_WRITER);
    dh_dump_free(&d);
    PQfinish(c);
}

static int setup(void **state)
{
    (void)state;
    dh_pg_start(&env, "relay_crash");
    const char *topics[] = {"crash:6", NULL};
    dh_mock_start(&env, topics);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    dh_mock_stop(&env);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(relay_survives_sigkill_during_appends),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
