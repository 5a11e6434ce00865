/* A thread that cannot be started is reported as such (ES_RESOURCE_EXHAUSTED naming the thread
 * and the system's reason), not as out of memory nor an internal error, and nothing is left
 * behind: the relay, a consumer, the store's committers. pthread_create is wrapped at link time
 * (-Wl,--wrap=pthread_create) so that a test can make the next calls fail with EAGAIN, as they
 * do when the process hits its thread limit. Real PostgreSQL (a consumer connects first). */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "es/consumer.h"
#include "es/relay.h"
#include "es/store.h"
#include "pgt_fixture.h"

static int fail_after = -1; /* -1: never; n: the n calls after this succeed, then EAGAIN */

int __real_pthread_create(pthread_t *t, const pthread_attr_t *a, void *(*fn)(void *), void *arg);
int __wrap_pthread_create(pthread_t *t, const pthread_attr_t *a, void *(*fn)(void *), void *arg);
int __wrap_pthread_create(pthread_t *t, const pthread_attr_t *a, void *(*fn)(void *), void *arg)
{
    if (fail_after == 0)
        return EAGAIN;
    if (fail_after > 0)
        fail_after--;
    return __real_pthread_create(t, a, fn, arg);
}

static void relay(void **state)
{
    (void)state;
    es_error err = {0};
    es_relay_config cfg = {.conninfo = pg.conninfo, .bootstrap_servers = "127.0.0.1:1", .topic = "t", .quiet = 1};
    es_relay *r = (es_relay *)&err; /* must be reset to NULL */
    fail_after = 0;
    assert_int_equal(es_relay_start(&cfg, &r, &err), ES_RESOURCE_EXHAUSTED);
    fail_after = -1;
    assert_null(r);
    assert_int_equal(err.code, ES_RESOURCE_EXHAUSTED);
    assert_non_null(strstr(err.message, "relay: cannot start its thread"));
    assert_non_null(strstr(err.message, strerror(EAGAIN)));
}

static int noop(void *data, es_consumer_tx *tx, const es_envelope_view *ev, es_error *err)
{
    (void)data, (void)tx, (void)ev, (void)err;
    return ES_OK;
}

static void consumer(void **state)
{
    (void)state;
    es_error err = {0};
    es_consumer_config cfg = {.name = "thread-test", .conninfo = pg.conninfo, .bootstrap_servers = "127.0.0.1:1", .topic = "t",
                              .handle = noop, .quiet = 1};
    es_consumer *c = (es_consumer *)&err;
    /* librdkafka starts threads of its own first: fail only the runner's, the last one. */
    fail_after = 0;
    int rc = es_consumer_start(&cfg, &c, &err);
    fail_after = -1;
    /* Either rd_kafka_new refused (its own threads) or the runner's thread could not start;
     * only the latter reaches our message, so retry with librdkafka's threads allowed. */
    if (rc != ES_RESOURCE_EXHAUSTED) {
        for (int allowed = 1; allowed < 64; allowed++) {
            fail_after = allowed;
            rc = es_consumer_start(&cfg, &c, &err);
            int left = fail_after;
            fail_after = -1;
            if (rc == ES_OK) {
                es_consumer_stop(c);
                fail();
            }
            if (rc == ES_RESOURCE_EXHAUSTED && left == 0)
                break;
        }
    }
    assert_int_equal(rc, ES_RESOURCE_EXHAUSTED);
    assert_null(c);
    assert_non_null(strstr(err.message, "consumer thread-test: cannot start its thread"));
    assert_non_null(strstr(err.message, strerror(EAGAIN)));
}

static void committers(void **state)
{
    (void)state;
    es_error err = {0};
    es_pg_pool_config pc = {.conninfo = pg.conninfo, .size = 4};
    es_pg_pool *pool = es_pg_pool_new(&pc, &err);
    es_store_config sc = {.committers = 3};
    fail_after = 1; /* the first committer starts, the second cannot */
    es_store *s = es_store_new(pool, &sc, &err);
    fail_after = -1;
    assert_null(s);
    assert_int_equal(err.code, ES_RESOURCE_EXHAUSTED);
    assert_non_null(strstr(err.message, "cannot start committer thread 1"));
    assert_non_null(strstr(err.message, strerror(EAGAIN)));
    /* The started committer was stopped and its connection given back. */
    es_pg_pool_stats st;
    es_pg_pool_get_stats(pool, &st);
    assert_int_equal(st.in_use, 0);
    es_pg_pool_free(pool);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(relay),
        cmocka_unit_test(consumer),
        cmocka_unit_test(committers),
    };
    return PGT_RUN_GROUP("threads", tests);
}
