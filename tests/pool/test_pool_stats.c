/* The pool counts what it does (es_pg_pool_get_stats): connections open, in use, idle,
 * waiters, checkouts, the checkout wait histogram, connects and reconnects, refused checkouts
 * by reason. And PostgreSQL's "cannot take the work now" errors (read-only, disk full, out of
 * memory, too many connections) classify as ES_UNAVAILABLE. Real PostgreSQL. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "es/pg_pool.h"
#include "pgt_fixture.h"


static es_pg_pool_stats stats(es_pg_pool *p)
{
    es_pg_pool_stats st;
    es_pg_pool_get_stats(p, &st);
    return st;
}

typedef struct waiter {
    es_pg_pool *pool;
    es_pg_conn *got;
    int rc;
} waiter;

static void *wait_checkout(void *arg)
{
    waiter *w = arg;
    es_error err = {0};
    w->rc = es_pg_pool_checkout(w->pool, &w->got, &err);
    return NULL;
}

static void counts_connections_checkouts_and_waits(void **state)
{
    (void)state;
    es_error err = {0};
    es_pg_pool_config pc = {.conninfo = pg.conninfo, .size = 2, .checkout_timeout_ms = 300, .application_name = "es-pool-test"};
    es_pg_pool *p = es_pg_pool_new(&pc, &err);
    assert_non_null(p);
    es_pg_pool_stats st = stats(p);
    assert_int_equal(st.size, 2);
    assert_int_equal(st.open + st.in_use + st.idle + st.waiters, 0);
    assert_int_equal(st.checkouts + st.connects + st.wait.count, 0);

    es_pg_conn *a, *b, *c;
    assert_int_equal(es_pg_pool_checkout(p, &a, &err), ES_OK);
    assert_int_equal(es_pg_pool_checkout(p, &b, &err), ES_OK);
    st = stats(p);
    assert_int_equal(st.open, 2);
    assert_int_equal(st.in_use, 2);
    assert_int_equal(st.idle, 0);
    assert_int_equal(st.checkouts, 2);
    assert_int_equal(st.connects, 2);
    assert_int_equal(st.reconnects, 0);
    assert_int_equal(st.wait.count, 2);

    /* Exhausted: the third caller waits, counted as a waiter, and is refused after 300 ms. */
    double t0 = now_s();
    assert_int_equal(es_pg_pool_checkout(p, &c, &err), ES_UNAVAILABLE);
    assert_true(now_s() - t0 >= 0.29);
    st = stats(p);
    assert_int_equal(st.refused_exhausted, 1);
    assert_int_equal(st.waiters, 0);
    assert_int_equal(st.checkouts, 2);
    assert_int_equal(st.wait.count, 3);
    assert_true(st.wait.sum_us >= 290000);
    /* 300 ms lands in a bucket above 0.25 s (buckets are non-cumulative in memory). */
    uint64_t slow = 0;
    for (int i = 0; i <= ES_HIST_BUCKETS; i++)
        if (i == ES_HIST_BUCKETS || es_hist_bounds[i] >= 0.25)
            slow += st.wait.buckets[i];
    assert_true(slow >= 1);

    /* A waiter shows while it waits and gets the connection checked in. */
    waiter w = {p, NULL, -1};
    pthread_t th;
    pthread_create(&th, NULL, wait_checkout, &w);
    for (int i = 0; i < 100 && stats(p).waiters == 0; i++)
        usleep(1000);
    assert_int_equal(stats(p).waiters, 1);
    es_pg_pool_checkin(p, a);
    pthread_join(th, NULL);
    assert_int_equal(w.rc, ES_OK);
    st = stats(p);
    assert_int_equal(st.waiters, 0);
    assert_int_equal(st.checkouts, 3);
    assert_int_equal(st.in_use, 2);

    es_pg_pool_checkin(p, w.got);
    es_pg_pool_checkin(p, b);
    st = stats(p);
    assert_int_equal(st.in_use, 0);
    assert_int_equal(st.idle, 2);
    assert_int_equal(st.open, 2);

    /* A connection killed by the server is reopened at the next checkout: a reconnect. */
    pgt_exec(&pg, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                  "WHERE application_name = 'es-pool-test' AND pid <> pg_backend_pid()");
    /* Until the server has ended both backends (pg_terminate_backend only signals them). */
    for (int i = 0; i < 3000 && pgt_scalar(&pg, "SELECT count(*) FROM pg_stat_activity "
                                                "WHERE application_name = 'es-pool-test'") > 0; i++)
        usleep(10 * 1000);
    assert_int_equal(es_pg_pool_checkout(p, &a, &err), ES_OK);
    PGresult *r = PQexec(es_pg_conn_pg(a), "SELECT 1");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    PQclear(r);
    es_pg_pool_checkin(p, a);
    st = stats(p);
    assert_true(st.reconnects >= 1);
    assert_int_equal(st.connects, 2 + st.reconnects);
    assert_true(st.open <= 2);
    es_pg_pool_free(p);
}

static void sqlstates_that_mean_retry_later(void **state)
{
    (void)state;
    const char *unavailable[] = {"25006", "53100", "53200", "53300", "08006", "57P01", "57P03"};
    for (size_t i = 0; i < sizeof unavailable / sizeof unavailable[0]; i++)
        assert_int_equal(es_pg_sqlstate_status(unavailable[i], ES_INTERNAL), ES_UNAVAILABLE);
    assert_int_equal(es_pg_sqlstate_status("23505", ES_INTERNAL), ES_ABORTED);
    assert_int_equal(es_pg_sqlstate_status("40001", ES_INTERNAL), ES_ABORTED);
    assert_int_equal(es_pg_sqlstate_status("57014", ES_INTERNAL), ES_DEADLINE_EXCEEDED);
    assert_int_equal(es_pg_sqlstate_status("42501", ES_INTERNAL), ES_INTERNAL);
    assert_int_equal(es_pg_sqlstate_status("53", ES_INTERNAL), ES_INTERNAL);
    assert_int_equal(es_pg_sqlstate_status(NULL, ES_UNKNOWN), ES_UNKNOWN);

    /* A real read-only transaction: es_pg_error says UNAVAILABLE and keeps the reason. */
    es_error err = {0};
    es_pg_pool_config pc = {.conninfo = pg.conninfo, .size = 1};
    es_pg_pool *p = es_pg_pool_new(&pc, &err);
    es_pg_conn *c;
    assert_int_equal(es_pg_pool_checkout(p, &c, &err), ES_OK);
    PGconn *conn = es_pg_conn_pg(c);
    PQclear(PQexec(conn, "CREATE TABLE IF NOT EXISTS pool_ro (x int)"));
    PQclear(PQexec(conn, "BEGIN READ ONLY"));
    PGresult *r = PQexec(conn, "INSERT INTO pool_ro VALUES (1)");
    assert_int_equal(PQresultStatus(r), PGRES_FATAL_ERROR);
    assert_int_equal(es_pg_error(conn, r, "insert", &err), ES_UNAVAILABLE);
    assert_non_null(strstr(err.message, "read-only"));
    assert_non_null(strstr(err.message, "25006"));
    PQclear(r);
    PQclear(PQexec(conn, "ROLLBACK"));
    /* Anything else stays INTERNAL. */
    r = PQexec(conn, "SELECT * FROM no_such_table");
    assert_int_equal(es_pg_error(conn, r, "select", &err), ES_INTERNAL);
    PQclear(r);
    es_pg_pool_checkin(p, c);
    es_pg_pool_free(p);
}

static void an_outage_counts_as_refused_unavailable(void **state)
{
    (void)state;
    es_error err = {0};
    es_pg_pool_config pc = {.conninfo = pg.conninfo, .size = 2, .connect_timeout_s = 1};
    es_pg_pool *p = es_pg_pool_new(&pc, &err);
    pgt_stop(&pg);
    es_pg_conn *c;
    assert_int_equal(es_pg_pool_checkout(p, &c, &err), ES_UNAVAILABLE);
    assert_int_equal(es_pg_pool_checkout(p, &c, &err), ES_UNAVAILABLE);   /* fail-fast window or a second try */
    es_pg_pool_stats st = stats(p);
    assert_int_equal(st.refused_unavailable, 2);
    assert_true(st.connect_failures >= 1);
    assert_int_equal(st.in_use + st.open + st.checkouts, 0);
    pgt_resume(&pg);
    for (int i = 0; i < 50 && es_pg_pool_checkout(p, &c, &err) != ES_OK; i++)
        usleep(100 * 1000);
    assert_int_equal(stats(p).checkouts, 1);
    es_pg_pool_checkin(p, c);
    es_pg_pool_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(counts_connections_checkouts_and_waits),
        cmocka_unit_test(sqlstates_that_mean_retry_later),
        cmocka_unit_test(an_outage_counts_as_refused_unavailable),
    };
    return PGT_RUN_GROUP("pool", tests);
}
