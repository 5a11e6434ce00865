/* The checkpoint's pace: a relay with a checkpoint interval delivers a backlog in many rounds and
 * writes its checkpoint once or twice, the last position when it is due.
 * Kafka unavailable: with every mock broker down for 20 s appends keep succeeding at full speed;
 * the relay backs off and, once the brokers are back, delivers everything (docs/ARCHITECTURE.md invariant 5).
 * Then the whole mock cluster is replaced (it keeps nothing across a restart): the relay follows
 * the new bootstrap address, sees a new cluster and republishes the feed from the start. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "es/relay.h"
#include "harness.h"

static dh_env env;
static es_relay *relay;
static const char *TOPIC = "outage";

static void wait_delivered(PGconn *c, int timeout_ms)
{
    uint64_t txid;
    int64_t pos;
    dh_feed_end(c, &txid, &pos);
    assert_int_equal(dh_wait_checkpoint(c, "outage", txid, pos, timeout_ms), 0);
}

static void check_topic(PGconn *c, size_t at_least)
{
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
    fprintf(stderr, "topic: %zu messages (%lld duplicates)\n", d.n, (long long)dups);
    assert_true(d.n >= at_least);
    dh_dump_free(&d);
}

static es_relay_status wait_relay(es_relay *r, int64_t published_at_least)
{
    es_relay_status st;
    int64_t deadline = dh_now_ms() + 60000;
    do {
        dh_sleep_ms(50);
        es_relay_status_get(r, &st);
    } while ((st.published < published_at_least || st.saved.position != st.checkpoint.position) &&
             dh_now_ms() < deadline);
    return st;
}

static void checkpoint_written_once_per_interval(void **state)
{
    (void)state;
    PGconn *c = dh_connect(&env);
    assert_int_equal(dh_append(c, "paced-0", 1, 5), 0);
    const char *props[] = {"log_level", "3", NULL};
    es_relay_config cfg = {.conninfo = env.conninfo, .bootstrap_file = env.bootstrap_file, .topic = "paced",
                           .name = "paced", .partitions = 2, .batch_size = 5, .poll_interval_ms = 200,
                           .lock_retry_ms = 300, .message_timeout_ms = 6000, .stats_interval_ms = 500,
                           .checkpoint_interval_ms = 3000, .kafka_props = props};
    es_relay *paced = NULL;
    es_error err;
    assert_int_equal(es_relay_start(&cfg, &paced, &err), ES_OK);
    int64_t before = dh_query_int(c, "SELECT count(*) FROM es_events");
    es_relay_status st = wait_relay(paced, before);
    assert_int_equal(st.saved.position, st.checkpoint.position);

    /* 200 events in one transaction: 40 rounds of 5 with no dry feed between them. */
    dh_exec(c, "BEGIN");
    for (int s = 0; s < 20; s++) {
        char id[24];
        snprintf(id, sizeof id, "paced-%d", s + 1);
        assert_int_equal(dh_append(c, id, 1, 10), 0);
    }
    dh_exec(c, "COMMIT");
    es_relay_status st2 = wait_relay(paced, st.published + 200);
    fprintf(stderr, "paced relay: %lld rounds, %lld checkpoint writes for the 200 events\n",
            (long long)(st2.batches - st.batches), (long long)(st2.checkpoints - st.checkpoints));
    assert_true(st2.published >= st.published + 200);
    assert_true(st2.batches - st.batches >= 40);
    assert_true(st2.checkpoints - st.checkpoints <= 2); /* 3 s apart, the last one when due */
    uint64_t txid;
    int64_t pos;
    dh_feed_end(c, &txid, &pos);
    assert_int_equal(dh_wait_checkpoint(c, "paced", txid, pos, 10000), 0);
    es_relay_stop(paced);

    /* The relay of the other tests writes after every round (no interval). */
    es_relay_status_get(relay, &st);
    assert_true(st.checkpoints >= st.batches);
    PQfinish(c);
}

static void appends_succeed_while_all_brokers_are_down(void **state)
{
    (void)state;
    PGconn *c = dh_connect(&env);
    int64_t v[20] = {0};
    for (int s = 0; s < 20; s++) {
        char id[16];
        snprintf(id, sizeof id, "o%d", s);
        assert_int_equal(dh_append(c, id, 1, 10), 0);
        v[s] = 10;
    }
    wait_delivered(c, 30000);

    assert_int_equal(dh_mock_ctl(&env, "down all"), 0);
    int64_t t0 = dh_now_ms(), worst = 0;
    int appended = 0, saw_kafka_down = 0;
    es_relay_status st;
    while (dh_now_ms() - t0 < 20000) {
        int s = appended % 20;
        char id[16];
        snprintf(id, sizeof id, "o%d", s);
        int64_t a = dh_now_ms();
        assert_int_equal(dh_append(c, id, v[s] + 1, 1), 0);
        int64_t took = dh_now_ms() - a;
        worst = took > worst ? took : worst;
        v[s]++;
        appended++;
        es_relay_status_get(relay, &st);
        saw_kafka_down |= !st.kafka_ok;
        dh_sleep_ms(5);
    }
    es_relay_status_get(relay, &st);
    fprintf(stderr, "during the outage: %d appends, slowest %lld ms; relay failed rounds %lld, lag %lld events\n",
            appended, (long long)worst, (long long)st.failed_batches, (long long)st.lag_events);
    assert_true(appended > 500);
    assert_true(worst < 2000);       /* appends never wait for Kafka */
    assert_true(saw_kafka_down);     /* the relay noticed */
    assert_true(st.failed_batches >= 1);
    assert_true(dh_query_int(c, "SELECT position FROM es_relay_checkpoint WHERE name = 'outage'") <
                dh_query_int(c, "SELECT max(position) FROM es_events"));

    assert_int_equal(dh_mock_ctl(&env, "up all"), 0);
    int64_t t1 = dh_now_ms();
    wait_delivered(c, 90000);
    fprintf(stderr, "caught up %lld ms after the brokers came back\n", (long long)(dh_now_ms() - t1));
    check_topic(c, (size_t)(200 + appended));
    PQfinish(c);
}

static void relay_republishes_to_a_new_cluster(void **state)
{
    (void)state;
    PGconn *c = dh_connect(&env);
    es_relay_status st;
    es_relay_status_get(relay, &st);
    char old_cluster[64];
    snprintf(old_cluster, sizeof old_cluster, "%s", st.cluster_id);
    int64_t republishes = st.republishes;
    int64_t events = dh_query_int(c, "SELECT count(*) FROM es_events");

    /* A new, empty cluster at a new address; the topic does not exist there yet. */
    dh_mock_stop(&env);
    dh_mock_start(&env, NULL);
    assert_int_equal(dh_append(c, "after-restart", 1, 3), 0);
    int64_t deadline = dh_now_ms() + 60000;
    do {
        dh_sleep_ms(200);
        es_relay_status_get(relay, &st);
    } while (st.republishes == republishes && dh_now_ms() < deadline);
    assert_true(st.republishes > republishes);
    fprintf(stderr, "new cluster %s (was %s)\n", st.cluster_id, old_cluster);
    wait_delivered(c, 90000);
    check_topic(c, (size_t)events + 3);
    PQfinish(c);
}

static int setup(void **state)
{
    (void)state;
    dh_pg_start(&env, "relay_outage");
    const char *topics[] = {"outage:4", NULL};
    dh_mock_start(&env, topics);
    const char *props[] = {"log_level", "3", NULL};
    es_relay_config cfg = {.conninfo = env.conninfo, .bootstrap_file = env.bootstrap_file,
                           .topic = TOPIC, .name = "outage", .partitions = 4,
                           .batch_size = 200, .poll_interval_ms = 200, .lock_retry_ms = 300,
                           .message_timeout_ms = 6000, .stats_interval_ms = 500,
                           .kafka_props = props};
    es_error err;
    assert_int_equal(es_relay_start(&cfg, &relay, &err), ES_OK);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    es_relay_stop(relay);
    dh_mock_stop(&env);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(checkpoint_written_once_per_interval),
        cmocka_unit_test(appends_succeed_while_all_brokers_are_down),
        cmocka_unit_test(relay_republishes_to_a_new_cluster),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
