/* The upgrade in place of es_events (sql/event_store.sql): a database made by the previous
 * release's DDL (tests/store/fixtures/event_store_prev.sql, its sql/event_store.sql) with events
 * appended through its es_append, a rolled-back append and a view over es_events; then this
 * release's migration, as orderd applies it at start. The events keep their positions and ids,
 * the feed continues after them, the old table is the first partition, new appends land in the
 * partition the upgrade made after it (at positions past every one the old identity handed out), the
 * streams' heads guard the old streams; a second start changes nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "es/feed.h"
#include "es/partitions.h"
#include "es/store.h"
#include "pgt_fixture.h"

extern const char test_prev_event_store_sql[];

/* One event through the previous release's es_append (22 arguments). */
static void old_append(const char *stream, int expected, int n)
{
    char sql[1024];
    snprintf(sql, sizeof sql,
             "DO $$ BEGIN IF (SELECT status FROM es_append('ticker', '%s', %d, 'old-%s-%d', true, NULL, NULL, 'alice',"
             " (SELECT array_agg(gen_random_uuid()) FROM generate_series(1, %d)), array_fill('Ticked'::text, ARRAY[%d]),"
             " array_fill('test.Ticked'::text, ARRAY[%d]), array_fill(1, ARRAY[%d]), array_fill('h'::text, ARRAY[%d]),"
             " array_fill('\\x01'::bytea, ARRAY[%d]), NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)) <> 'ok'"
             " THEN RAISE EXCEPTION 'old append failed'; END IF; END $$",
             stream, expected, stream, expected, n, n, n, n, n, n);
    pgt_exec(&pg, sql);
}

static const char FINGERPRINT[] =
    "SELECT md5(string_agg(position || ':' || event_id || ':' || stream_id || ':' || version || ':' || txid,"
    " ',' ORDER BY position)) FROM es_events";

static void fingerprint(char *out, size_t len)
{
    PGconn *c = PQconnectdb(pg.conninfo);
    PGresult *r = PQexec(c, FINGERPRINT);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    snprintf(out, len, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    PQfinish(c);
}

static int64_t feed_count(es_feed_cursor *cur)
{
    es_error err = {0};
    es_feed *f = NULL;
    assert_int_equal(es_feed_open(pg.conninfo, &f, &err), ES_OK);
    es_feed_batch b;
    es_feed_batch_init(&b);
    int64_t n = 0;
    for (;;) {
        assert_int_equal(es_feed_read(f, *cur, 5, &b, &err), ES_OK);
        if (b.n == 0) break;
        n += (int64_t)b.n;
        *cur = b.last;
    }
    es_feed_batch_free(&b);
    es_feed_close(f);
    return n;
}

static void test_upgrade_in_place(void **state)
{
    (void)state;
    /* The previous release's database (pgt_start applied this release's DDL: start over). */
    pgt_exec(&pg, "SET client_min_messages = warning; DROP SCHEMA public CASCADE; CREATE SCHEMA public");
    es_pg_pool_config pc = {.conninfo = pg.conninfo, .size = 2};
    es_error err = {0};
    es_pg_pool *pool = es_pg_pool_new(&pc, &err);
    assert_non_null(pool);
    es_migration prev = {"0001_event_store", test_prev_event_store_sql};
    size_t applied = 0;
    assert_int_equal(es_migrate(pool, &prev, 1, &applied, &err), ES_OK);
    assert_int_equal(applied, 1);
    assert_int_equal(pgt_scalar(&pg, "SELECT count(*) FROM pg_class WHERE relname = 'es_events' AND relkind = 'r'"), 1);
    for (int k = 0; k < 6; k++) {
        char stream[16];
        snprintf(stream, sizeof stream, "old-%d", k);
        old_append(stream, 0, 3);
        old_append(stream, 3, 2);
    }
    /* A rolled-back append takes identity values past every stored position. */
    pgt_exec(&pg, "BEGIN; SELECT nextval(pg_get_serial_sequence('es_events', 'position'))"
                  " FROM generate_series(1, 5); ROLLBACK");
    pgt_exec(&pg, "CREATE VIEW old_streams AS SELECT stream_id, max(version) AS version FROM es_events GROUP BY 1");
    long long max_pos = pgt_scalar(&pg, "SELECT max(position) FROM es_events");
    assert_int_equal(max_pos, 30);
    char before[64], after[64];
    fingerprint(before, sizeof before);
    es_feed_cursor cur = {0, 0};
    assert_int_equal(feed_count(&cur), 30);

    /* This release starts: its migration converts in place, maintenance makes partitions. */
    es_migration next = {"0001_event_store", test_event_store_sql};
    assert_int_equal(es_migrate(pool, &next, 1, &applied, &err), ES_OK);
    assert_int_equal(applied, 1);
    es_partition_status st;
    assert_int_equal(es_partitions_maintain(pool, 1000, &st, &err), ES_OK);
    assert_int_equal(st.created, 0); /* the upgrade made the first one after es_events_p0 */
    assert_int_equal(pgt_scalar(&pg, "SELECT count(*) FROM es_events_partitions() WHERE name = 'es_events_p36'"
                                     " AND from_position = 36 AND to_position = 10000036"), 1);
    assert_int_equal(pgt_scalar(&pg, "SELECT count(*) FROM pg_class WHERE relname = 'es_events' AND relkind = 'p'"), 1);
    assert_int_equal(pgt_scalar(&pg, "SELECT count(*) FROM es_events_partitions() WHERE name = 'es_events_p0'"
                                     " AND from_position IS NULL AND to_position = 36"), 1);
    assert_int_equal(pgt_scalar(&pg, "SELECT count(*) FROM es_events_p0"), 30);
    fingerprint(after, sizeof after);
    assert_string_equal(after, before);
    assert_int_equal(pgt_scalar(&pg, "SELECT count(*) FROM es_events_json"), 30);
    assert_int_equal(pgt_scalar(&pg, "SELECT sum(version) FROM old_streams"), 30);
    assert_int_equal(pgt_scalar(&pg, "SELECT count(*) FROM es_streams WHERE version = 5"), 6);
    assert_int_equal(pgt_scalar(&pg, "SELECT count(*) FROM es_event_ids"), 30);

    /* New appends: past every position the identity handed out, in the new partitions; the feed
     * goes on from where it was. */
    es_store_config sc = {0};
    es_store *store = es_store_new(pool, &sc, &err);
    assert_non_null(store);
    es_event_data ev = {.event_type = "Ticked", .schema_name = "test.Ticked", .schema_version = 1, .schema_hash = "h",
                        .payload = (const uint8_t *)"x", .payload_len = 1};
    es_append a = {.stream_type = "ticker", .stream_id = "old-2", .expected_version = 5, .events = &ev, .n_events = 1};
    es_append_result r;
    assert_int_equal(es_store_append(store, &a, &r, &err), ES_OK);
    assert_int_equal(r.last_version, 6);
    a.expected_version = 4; /* stale: version 5 is in the old table */
    assert_int_equal(es_store_append(store, &a, &r, &err), ES_ABORTED);
    a.stream_id = "new-1";
    a.expected_version = 0;
    assert_int_equal(es_store_append(store, &a, &r, &err), ES_OK);
    assert_int_equal(pgt_scalar(&pg, "SELECT min(position) FROM es_events WHERE position > 30"), 36);
    assert_int_equal(pgt_scalar(&pg, "SELECT count(*) FROM es_events_p36"), 2);
    assert_int_equal(feed_count(&cur), 2);
    /* The previous release's binaries call es_append with 22 arguments: it goes on working. */
    old_append("old-3", 5, 1);
    assert_int_equal(pgt_scalar(&pg, "SELECT count(*) FROM es_events_p36"), 3);

    /* A second start: recorded, nothing runs; and the DDL itself run again changes nothing. */
    assert_int_equal(es_migrate(pool, &next, 1, &applied, &err), ES_OK);
    assert_int_equal(applied, 0);
    pgt_exec(&pg, "DELETE FROM es_migrations");
    assert_int_equal(es_migrate(pool, &next, 1, &applied, &err), ES_OK);
    assert_int_equal(applied, 1);
    assert_int_equal(es_partitions_maintain(pool, 1000, &st, &err), ES_OK);
    assert_int_equal(st.created, 0);
    assert_int_equal(pgt_scalar(&pg, "SELECT count(*) FROM es_events_partitions()"), 3);
    assert_int_equal(pgt_scalar(&pg, "SELECT count(*) FROM es_events"), 33);
    assert_int_equal(pgt_scalar(&pg, "SELECT count(*) FROM es_events_p0"), 30);
    es_store_free(store);
    es_pg_pool_free(pool);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_upgrade_in_place),
    };
    return PGT_RUN_GROUP("partition_upgrade", tests);
}
