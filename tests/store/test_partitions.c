/* es_events partitioned by position (sql/event_store.sql, runtime/store/partitions.c) against a
 * real PostgreSQL, with partitions of 10 positions so that a few appends span many of them:
 * stream reads, loads from a snapshot, the feed and a replay (the rebuild's store path) across
 * partition boundaries, in order; two appends of the same stream version racing across a
 * boundary (exactly one wins; plain inserts would both land); the default partition when
 * maintenance lagged; the listing and the metrics. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "es/clock.h"
#include "es/consumer.h"
#include "es/feed.h"
#include "es/partitions.h"
#include "es/store.h"
#include "pgt_fixture.h"

#define SIZE 10
#define STREAMS 5

static es_pg_pool *pool;
static es_store *store;

/* Per test: a pool and a store over the group's cluster (pgt_fixture.h). */
static int setup(void **state)
{
    (void)state;
    es_pg_pool_config pc = {.conninfo = pg.conninfo, .size = 4};
    es_error err = {0};
    pool = es_pg_pool_new(&pc, &err);
    es_store_config sc = {0};
    store = pool ? es_store_new(pool, &sc, &err) : NULL;
    return store ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    es_store_free(store);
    es_pg_pool_free(pool);
    store = NULL;
    pool = NULL;
    return 0;
}

/* The migration made a first partition of 10,000,000 positions; this test wants small ones. */
static void small_partitions(void)
{
    pgt_exec(&pg, "DROP TABLE es_events_p1");
}

static void maintain(void)
{
    es_error err = {0};
    es_partition_status st;
    assert_int_equal(es_partitions_maintain(pool, SIZE, &st, &err), ES_OK);
    assert_false(st.skipped);
}

/* Appends n events to stream at expected, optionally with a snapshot of the state at its last
 * version; returns the store's status. */
static int append(const char *stream, int64_t expected, size_t n, int snapshot)
{
    es_event_data evs[4];
    char payload[4][24];
    for (size_t i = 0; i < n; i++) {
        snprintf(payload[i], sizeof payload[i], "%s:%lld", stream, (long long)(expected + 1 + (int64_t)i));
        evs[i] = (es_event_data){.event_type = "Ticked", .schema_name = "test.Ticked", .schema_version = 1,
                                 .schema_hash = "h", .payload = (const uint8_t *)payload[i],
                                 .payload_len = strlen(payload[i])};
    }
    char state_text[24];
    snprintf(state_text, sizeof state_text, "state@%lld", (long long)(expected + (int64_t)n));
    es_snapshot_data snap = {.version = expected + (int64_t)n, .schema_name = "test.State", .schema_hash = "s",
                             .state = (const uint8_t *)state_text, .state_len = strlen(state_text)};
    es_append a = {.stream_type = "ticker", .stream_id = stream, .expected_version = expected,
                   .events = evs, .n_events = n, .snapshot = snapshot ? &snap : NULL};
    es_append_result r;
    es_error err = {0};
    return es_store_append(store, &a, &r, &err);
}

typedef struct seen {
    int n;
    int64_t version[64], position[64];
    int64_t snapshot_version;
} seen;

static int on_event(const es_event_record *ev, void *ctx, es_error *err)
{
    (void)err;
    seen *s = ctx;
    if (s->n < 64) {
        s->version[s->n] = ev->version;
        s->position[s->n] = ev->position;
    }
    s->n++;
    return ES_OK;
}

static int on_snapshot(const es_snapshot_record *snap, void *ctx, es_error *err)
{
    (void)err;
    ((seen *)ctx)->snapshot_version = snap->version;
    return 0;
}

typedef struct replayed {
    int n;
    int64_t last_version[STREAMS];
    int out_of_order;
} replayed;

static int on_replay(void *data, es_consumer_tx *tx, const es_envelope_view *ev, es_error *err)
{
    (void)tx;
    (void)err;
    replayed *r = data;
    int k = ev->stream_id[1] - '0';
    if (ev->version != r->last_version[k] + 1)
        r->out_of_order++;
    r->last_version[k] = ev->version;
    r->n++;
    return ES_OK;
}

/* 5 streams, 2 events per append, maintenance after every append as orderd runs it: 100 events
 * over 10 partitions, each stream's events in several of them. */
static void test_reads_across_partitions(void **state)
{
    (void)state;
    assert_int_equal(pgt_scalar(&pg, "SELECT count(*) FROM es_events_partitions() WHERE NOT is_default"
                                     " AND from_position = 1 AND to_position = 10000001"), 1);
    small_partitions();
    maintain();
    assert_int_equal(pgt_scalar(&pg, "SELECT count(*) FROM es_events_partitions() WHERE NOT is_default"), 2);
    char stream[STREAMS][8];
    for (int k = 0; k < STREAMS; k++) snprintf(stream[k], sizeof stream[k], "s%d", k);
    for (int round = 0; round < 10; round++) {
        for (int k = 0; k < STREAMS; k++) {
            /* s0 takes a snapshot at version 8 (round 3), in the middle of its history. */
            assert_int_equal(append(stream[k], 2 * round, 2, k == 0 && round == 3), ES_OK);
            maintain();
        }
    }
    assert_int_equal(pgt_scalar(&pg, "SELECT count(*) FROM es_events"), 100);
    assert_int_equal(pgt_scalar(&pg, "SELECT count(*) FROM es_events_default"), 0);
    assert_true(pgt_scalar(&pg, "SELECT count(DISTINCT tableoid) FROM es_events") >= 10);
    /* Every stream's events lie in at least 3 partitions. */
    assert_int_equal(pgt_scalar(&pg, "SELECT count(*) FROM (SELECT stream_id FROM es_events GROUP BY 1"
                                     " HAVING count(DISTINCT tableoid) >= 3) s"), STREAMS);

    es_error err = {0};
    for (int k = 0; k < STREAMS; k++) {
        seen s = {0};
        int64_t last = 0;
        assert_int_equal(es_store_read_stream(store, stream[k], 0, 0, on_event, &s, &last, &err), ES_OK);
        assert_int_equal(s.n, 20);
        assert_int_equal(last, 20);
        for (int i = 0; i < 20; i++) {
            assert_int_equal(s.version[i], i + 1);
            if (i) assert_true(s.position[i] > s.position[i - 1]);
        }
    }
    /* A load from the snapshot: the state at 8, then versions 9..20 from later partitions. */
    seen s = {0};
    int64_t version = 0;
    assert_int_equal(es_store_load(store, "s0", on_snapshot, on_event, &s, &version, &err), ES_OK);
    assert_int_equal(s.snapshot_version, 8);
    assert_int_equal(version, 20);
    assert_int_equal(s.n, 12);
    assert_int_equal(s.version[0], 9);

    /* The feed, in small pages: every event once, in (txid, position) order. */
    es_feed *f = NULL;
    assert_int_equal(es_feed_open(pg.conninfo, &f, &err), ES_OK);
    es_feed_batch b;
    es_feed_batch_init(&b);
    es_feed_cursor cur = {0, 0};
    int total = 0;
    for (;;) {
        assert_int_equal(es_feed_read(f, cur, 7, &b, &err), ES_OK);
        if (b.n == 0) break;
        for (size_t i = 0; i < b.n; i++) {
            const es_envelope_view *e = &b.events[i];
            assert_true(e->txid > cur.txid || (e->txid == cur.txid && e->position > cur.position));
            cur.txid = e->txid;
            cur.position = e->position;
            total++;
        }
        assert_int_equal(b.last.position, cur.position);
    }
    assert_int_equal(total, 100);
    es_feed_batch_free(&b);
    es_feed_close(f);

    /* A replay from the store alone (what a projection rebuild reads): every event, each stream
     * in version order. */
    replayed r = {0};
    es_replay_config rc = {.name = "partition-test", .conninfo = pg.conninfo, .handle = on_replay, .data = &r};
    int64_t applied = 0;
    assert_int_equal(es_consumer_replay(&rc, &applied, &err), ES_OK);
    assert_int_equal(applied, 100);
    assert_int_equal(r.n, 100);
    assert_int_equal(r.out_of_order, 0);
    for (int k = 0; k < STREAMS; k++) assert_int_equal(r.last_version[k], 20);
    assert_int_equal(pgt_scalar(&pg, "SELECT count(*) FROM es_events_json"), 100);
}

static PGconn *connect_or_fail(void)
{
    PGconn *c = PQconnectdb(pg.conninfo);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    return c;
}

static void exec_ok(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("%s: %s", sql, PQerrorMessage(c));
    PQclear(r);
}

/* es_append's status for one event of stream at version 1 (the 22-argument call). */
static const char APPEND_SQL[] =
    "SELECT status FROM es_append('ticker', '%s', 0, 'c-%s-%d', false, NULL, NULL, NULL,"
    " ARRAY[gen_random_uuid()], ARRAY['Ticked'], ARRAY['test.Ticked'], ARRAY[1], ARRAY['h'], ARRAY['\\x01'::bytea],"
    " NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)";

/* Two partitions above every other, and the sequence on the last position of the lower one:
 * the racing appends then take positions on either side of their boundary. Returns it. */
static long long next_at_boundary(void)
{
    long long base = pgt_scalar(&pg, "SELECT max(to_position) + 100 FROM es_events_partitions()");
    char sql[300];
    snprintf(sql, sizeof sql,
             "SELECT es_events_partition_create('es_events_p%lld', %lld, %lld),"
             " es_events_partition_create('es_events_p%lld', %lld, %lld),"
             " setval('es_events_position_seq', %lld, false)",
             base, base, base + SIZE, base + SIZE, base + SIZE, base + 2 * SIZE, base + SIZE - 1);
    pgt_exec(&pg, sql);
    return base + SIZE;
}

/* The second append waits for the first's stream lock; the first ends with `end`. Returns the
 * second's status. */
static void race(const char *stream, const char *end, char *second_status, size_t len)
{
    PGconn *a = connect_or_fail(), *b = connect_or_fail();
    char sql[512];
    exec_ok(a, "BEGIN");
    snprintf(sql, sizeof sql, APPEND_SQL, stream, stream, 1);
    PGresult *r = PQexec(a, sql);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_string_equal(PQgetvalue(r, 0, 0), "ok");
    PQclear(r);
    snprintf(sql, sizeof sql, APPEND_SQL, stream, stream, 2);
    assert_int_equal(PQsendQuery(b, sql), 1);
    /* b is waiting on a lock a holds (never a fixed sleep). */
    char wait_sql[200];
    snprintf(wait_sql, sizeof wait_sql, "SELECT count(*) FROM pg_stat_activity WHERE pid = %d AND wait_event_type = 'Lock'",
             PQbackendPID(b));
    int waited = 0;
    for (int i = 0; i < 2000 && !waited; i++) {
        waited = pgt_scalar(&pg, wait_sql) == 1;
        if (!waited) es_sleep_us(5000);
    }
    assert_true(waited);
    exec_ok(a, end);
    r = PQgetResult(b);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    snprintf(second_status, len, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    while ((r = PQgetResult(b))) PQclear(r);
    PQfinish(a);
    PQfinish(b);
}

static void test_boundary_race(void **state)
{
    (void)state;
    /* The per-partition unique index alone would let both land: plain inserts of the same stream
     * version on either side of a boundary both succeed. */
    long long boundary = next_at_boundary();
    char sql[600];
    snprintf(sql, sizeof sql,
             "INSERT INTO es_events (position, event_id, stream_type, stream_id, version, event_type, schema_name,"
             " schema_version, schema_hash, payload) VALUES"
             " (%lld, gen_random_uuid(), 'ticker', 'plain', 1, 'Ticked', 'test.Ticked', 1, 'h', '\\x01'),"
             " (%lld, gen_random_uuid(), 'ticker', 'plain', 1, 'Ticked', 'test.Ticked', 1, 'h', '\\x01')",
             boundary - 1, boundary);
    pgt_exec(&pg, sql);
    assert_int_equal(pgt_scalar(&pg, "SELECT count(DISTINCT tableoid) FROM es_events WHERE stream_id = 'plain'"), 2);
    pgt_exec(&pg, "DELETE FROM es_events WHERE stream_id = 'plain'");

    /* es_append: the first commits at boundary - 1; the second, waiting, then conflicts. */
    boundary = next_at_boundary();
    char status[32];
    race("race-commit", "COMMIT", status, sizeof status);
    assert_string_equal(status, "conflict");
    assert_int_equal(pgt_scalar(&pg, "SELECT count(*) FROM es_events WHERE stream_id = 'race-commit'"), 1);
    snprintf(sql, sizeof sql, "SELECT position FROM es_events WHERE stream_id = 'race-commit'");
    assert_int_equal(pgt_scalar(&pg, sql), boundary - 1);

    /* The first rolls back: the second appends, across the boundary. */
    boundary = next_at_boundary();
    race("race-rollback", "ROLLBACK", status, sizeof status);
    assert_string_equal(status, "ok");
    assert_int_equal(pgt_scalar(&pg, "SELECT count(*) FROM es_events WHERE stream_id = 'race-rollback'"), 1);
    assert_int_equal(pgt_scalar(&pg, "SELECT position FROM es_events WHERE stream_id = 'race-rollback'"), boundary);

    /* Through the store: a stale expected version across partitions is ES_ABORTED, a duplicate
     * event id in another partition too. */
    assert_int_equal(append("s1", 5, 1, 0), ES_ABORTED);
    assert_int_equal(pgt_scalar(&pg, "SELECT count(*) FROM (SELECT stream_id, version FROM es_events"
                                     " GROUP BY 1, 2 HAVING count(*) > 1) d"), 0);
    long long first = pgt_scalar(&pg, "SELECT min(position) FROM es_events WHERE stream_id = 's1'");
    snprintf(sql, sizeof sql,
             "SELECT (status = 'conflict')::int FROM es_append('ticker', 'dup-id', 0, 'c-dup', false, NULL, NULL, NULL,"
             " ARRAY[(SELECT event_id FROM es_events WHERE position = %lld)], ARRAY['Ticked'], ARRAY['test.Ticked'],"
             " ARRAY[1], ARRAY['h'], ARRAY['\\x01'::bytea], NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)", first);
    assert_int_equal(pgt_scalar(&pg, sql), 1);
    assert_int_equal(pgt_scalar(&pg, "SELECT count(*) FROM es_events WHERE stream_id = 'dup-id'"), 0);
}

/* Maintenance lagging: positions past the highest partition go to the default partition, an
 * append never fails; the next maintenance starts above them; they stay readable. */
static void test_default_partition(void **state)
{
    (void)state;
    maintain();
    long long top = pgt_scalar(&pg, "SELECT max(to_position) FROM es_events_partitions() WHERE NOT is_default");
    char sql[200];
    snprintf(sql, sizeof sql, "SELECT setval('es_events_position_seq', %lld, false)", top - 1);
    pgt_exec(&pg, sql);
    for (int v = 0; v < 4; v++) assert_int_equal(append("lag", v, 1, 0), ES_OK);
    assert_int_equal(pgt_scalar(&pg, "SELECT count(*) FROM es_events_default WHERE stream_id = 'lag'"), 3);
    es_error err = {0};
    es_partition_status st;
    assert_int_equal(es_partitions_maintain(pool, SIZE, &st, &err), ES_OK);
    assert_true(st.created >= 1);
    assert_int_equal(st.default_events, 3);
    assert_true(st.headroom > SIZE);
    /* The new partition starts a margin (here 1 position) past the sequence: version 5 takes
     * that position, in the default partition; version 6 is in the new partition. */
    assert_int_equal(append("lag", 4, 2, 0), ES_OK);
    assert_int_equal(pgt_scalar(&pg, "SELECT count(*) FROM es_events_default"), 4);
    assert_int_equal(pgt_scalar(&pg, "SELECT count(*) FROM es_events e JOIN es_events_partitions() p"
                                     " ON p.name = e.tableoid::regclass::text WHERE e.stream_id = 'lag'"
                                     " AND NOT p.is_default"), 2);
    seen s = {0};
    int64_t last = 0;
    assert_int_equal(es_store_read_stream(store, "lag", 0, 0, on_event, &s, &last, &err), ES_OK);
    assert_int_equal(s.n, 6);
    assert_int_equal(last, 6);
    pgt_exec(&pg, "DELETE FROM es_events WHERE stream_id = 'lag'");
}

/* The listing orderctl prints, and the metric families. */
static void test_listing_and_metrics(void **state)
{
    (void)state;
    es_partition_info *v = NULL;
    size_t n = 0;
    es_error err = {0};
    assert_int_equal(es_partitions_list(pool, &v, &n, &err), ES_OK);
    assert_true(n >= 10);
    assert_true(v[n - 1].is_default);
    assert_string_equal(v[n - 1].name, "es_events_default");
    for (size_t i = 1; i + 1 < n; i++) {
        assert_true(v[i].has_from && v[i].has_to);
        assert_true(v[i].from >= v[i - 1].to);
        assert_true(v[i].to > v[i].from);
    }
    free(v);
    es_partitions *p = es_partitions_new(pool, SIZE);
    es_buf b;
    es_buf_init(&b);
    es_partitions_write_metrics(p, &b);
    assert_non_null(strstr(b.data, "es_event_partitions -1"));
    assert_int_equal(es_partitions_run(p, &err), ES_OK);
    es_buf_reset(&b);
    es_partitions_write_metrics(p, &b);
    char want[64];
    snprintf(want, sizeof want, "es_event_partitions %lld\n",
             pgt_scalar(&pg, "SELECT count(*) FROM es_events_partitions()"));
    assert_non_null(strstr(b.data, want));
    assert_non_null(strstr(b.data, "es_event_partition_headroom "));
    assert_non_null(strstr(b.data, "es_event_partition_maintenance_failures_total 0"));
    es_buf_free(&b);
    es_partitions_free(p);
    /* Another instance maintaining at the same moment: this run is skipped, not blocked. */
    PGconn *c = connect_or_fail();
    exec_ok(c, "BEGIN");
    exec_ok(c, "SELECT pg_advisory_xact_lock(7310291549124359273)");
    es_partition_status st;
    assert_int_equal(es_partitions_maintain(pool, SIZE, &st, &err), ES_OK);
    assert_true(st.skipped);
    exec_ok(c, "ROLLBACK");
    PQfinish(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_reads_across_partitions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_boundary_race, setup, teardown),
        cmocka_unit_test_setup_teardown(test_default_partition, setup, teardown),
        cmocka_unit_test_setup_teardown(test_listing_and_metrics, setup, teardown),
    };
    return PGT_RUN_GROUP("partitions", tests);
}
