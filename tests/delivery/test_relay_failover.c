/* One active relay among several: two relay processes run side by side; only the lock holder
 * publishes; when it is SIGKILLed the other takes over within seconds and delivers the rest. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <cmocka.h>

#include "harness.h"

static dh_env env;
static const char *TOPIC = "failover";

static pid_t start_relay(const char *status)
{
    char *argv[] = {(char *)dh_relay_proc_path(), env.conninfo, env.bootstrap_file, (char *)TOPIC,
                    "fo", (char *)status, NULL};
    return dh_spawn(argv);
}

static void append_round(PGconn *c, int round)
{
    for (int s = 0; s < 30; s++) {
        char id[16];
        snprintf(id, sizeof id, "f%d", s);
        assert_int_equal(dh_append(c, id, (int64_t)round * 10 + 1, 10), 0);
    }
}

static void wait_delivered(PGconn *c)
{
    uint64_t txid;
    int64_t pos;
    dh_feed_end(c, &txid, &pos);
    assert_int_equal(dh_wait_checkpoint(c, "fo", txid, pos, 30000), 0);
}

static void only_one_relay_publishes_and_the_other_takes_over(void **state)
{
    (void)state;
    PGconn *c = dh_connect(&env);
    char sa[700], sb[700];
    snprintf(sa, sizeof sa, "%s/relay-a.status", env.dir);
    snprintf(sb, sizeof sb, "%s/relay-b.status", env.dir);
    pid_t pa = start_relay(sa), pb = start_relay(sb);

    dh_relay_status a, b;
    int64_t deadline = dh_now_ms() + 20000;
    for (;;) {
        dh_sleep_ms(100);
        if (dh_read_relay_status(sa, &a) == 0 && dh_read_relay_status(sb, &b) == 0 &&
            a.role + b.role == 3)
            break;
        assert_true(dh_now_ms() < deadline);
    }
    int a_active = a.role == 2;
    pid_t active = a_active ? pa : pb, standby = a_active ? pb : pa;
    const char *active_st = a_active ? sa : sb, *standby_st = a_active ? sb : sa;

    append_round(c, 0);
    wait_delivered(c);
    dh_sleep_ms(300);
    dh_relay_status act, stb;
    assert_int_equal(dh_read_relay_status(active_st, &act), 0);
    assert_int_equal(dh_read_relay_status(standby_st, &stb), 0);
    assert_int_equal(act.role, 2);
    assert_int_equal(stb.role, 1);
    assert_int_equal(act.published, 300);
    assert_int_equal(stb.published, 0);   /* the standby never produced */

    kill(active, SIGKILL);
    waitpid(active, NULL, 0);
    int64_t t0 = dh_now_ms();
    append_round(c, 1);
    deadline = t0 + 10000;
    do {
        dh_sleep_ms(50);
        dh_read_relay_status(standby_st, &stb);
    } while (stb.role != 2 && dh_now_ms() < deadline);
    int64_t takeover = dh_now_ms() - t0;
    fprintf(stderr, "standby took over %lld ms after the active relay was killed\n", (long long)takeover);
    assert_int_equal(stb.role, 2);
    assert_true(takeover < 5000);
    wait_delivered(c);
    dh_sleep_ms(300);
    assert_int_equal(dh_read_relay_status(standby_st, &stb), 0);
    assert_true(stb.published >= 300);   /* it published what the dead one had not */

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
    assert_true(d.n >= 600);
    dh_dump_free(&d);

    kill(standby, SIGTERM);
    waitpid(standby, NULL, 0);
    PQfinish(c);
}

static int setup(void **state)
{
    (void)state;
    dh_pg_start(&env, "relay_failover");
    const char *topics[] = {"failover:4", NULL};
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
        cmocka_unit_test(only_one_relay_publishes_and_the_other_takes_over),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
