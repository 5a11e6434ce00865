/* The event store API against a real PostgreSQL: migrations, append/read round trip with
 * metadata, optimistic concurrency, idempotency, the schema registry. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "es/uuid.h"
#include "support.h"

static pgt pg;
static es_pg_pool *pool;
static es_store *store;

static int setup(void **state)
{
    pgt_start(&pg, "store");
    es_pg_pool_config pc = {.conninfo = pg.conninfo, .size = 4};
    es_error err = {0};
    pool = es_pg_pool_new(&pc, &err);
    store = es_store_new(pool, NULL, &err);
    return pool && store ? 0 : -1;
}

static int teardown(void **state)
{
    es_store_free(store);
    es_pg_pool_free(pool);
    pgt_stop(&pg);
    return 0;
}

static void *migrate_thread(void *arg)
{
    es_error err = {0};
    es_pg_pool_config pc = {.conninfo = pg.conninfo, .size = 1};
    es_pg_pool *p = es_pg_pool_new(&pc, &err);
    es_migration m[2] = {{"0001_event_store", test_event_store_sql},
                         {"9000_test_projection", "CREATE TABLE IF NOT EXISTS test_projection (id text PRIMARY KEY);"
                                                  "CREATE INDEX IF NOT EXISTS test_projection_i ON test_projection (id)"}};
    intptr_t rc = es_migrate(p, m, 2, NULL, &err);
    es_pg_pool_free(p);
    return (void *)rc;
}

/* Applying twice applies nothing the second time; instances migrating together do not race. */
static void test_migrate_idempotent_and_concurrent(void **state)
{
    size_t applied = 99;
    es_error err = {0};
    assert_int_equal(pgt_migrate(pool, &applied, &err), ES_OK);
    assert_int_equal(applied, 0);   /* setup already applied it */
    pthread_t th[6];
    for (int i = 0; i < 6; i++) pthread_create(&th[i], NULL, migrate_thread, NULL);
    for (int i = 0; i < 6; i++) {
        void *rc;
        pthread_join(th[i], &rc);
        assert_int_equal((intptr_t)rc, ES_OK);
    }
    assert_int_equal(pgt_scalar(&pg, "SELECT count(*) FROM es_migrations WHERE name = '9000_test_projection'"), 1);
    assert_int_equal(pgt_scalar(&pg, "SELECT count(*) FROM es_migrations"), 2);
    /* A migration that fails reports the server's message and its name. */
    es_migration bad = {"9001_bad", "CREATE TABLE nope (x no_such_type)"};
    assert_int_equal(es_migrate(pool, &bad, 1, NULL, &err), ES_INTERNAL);
    assert_string_equal(err.field, "9001_bad");
    assert_non_null(strstr(err.message, "no_such_type"));
}

typedef struct collected {
    int n;
    es_event_record ev[8];
    char strings[8][6][64];
    uint8_t payload[8][32];
} collected;

static int collect(const es_event_record *ev, void *ctx, es_error *err)
{
    collected *c = ctx;
    int i = c->n++;
    c->ev[i] = *ev;
    const char *src[6] = {ev->event_type, ev->command_id, ev->correlation_id, ev->causation_id, ev->actor,
                          ev->schema_hash};
    for (int k = 0; k < 6; k++) snprintf(c->strings[i][k], 64, "%s", src[k] ? src[k] : "(null)");
    memcpy(c->payload[i], ev->payload, ev->payload_len < 32 ? ev->payload_len : 32);
    return ES_OK;
}

/* Append two events with full metadata, read them back field by field. */
static void test_append_read_round_trip(void **state)
{
    es_event_data evs[2] = {
        {NULL, "Opened", "test.Opened", 3, "hash-a", (const uint8_t *)"\x01\x02\x00\x03", 4},
        {NULL, "Noted", "test.Noted", 1, "hash-b", (const uint8_t *)"", 0},
    };
    es_append a = {.stream_type = "thing", .stream_id = "thing-1", .expected_version = 0,
                   .command_id = "cmd-1", .idempotent = 1, .correlation_id = "corr-1", .causation_id = "cause-1",
                   .actor = "alice", .events = evs, .n_events = 2};
    es_append_result r;
    es_error err = {0};
    int64_t before = es_now_us();
    assert_int_equal(es_store_append(store, &a, &r, &err), ES_OK);
    assert_int_equal(r.first_version, 1);
    assert_int_equal(r.last_version, 2);
    assert_int_equal(r.n_events, 2);
    assert_int_equal(r.replayed, 0);
    assert_string_equal(r.stream_id, "thing-1");
    assert_true(es_uuid_valid(r.event_ids[0]) && es_uuid_valid(r.event_ids[1]));

    collected c = {0};
    int64_t last = 0;
    assert_int_equal(es_store_read_stream(store, "thing-1", 0, 0, collect, &c, &last, &err), ES_OK);
    assert_int_equal(c.n, 2);
    assert_int_equal(last, 2);
    for (int i = 0; i < 2; i++) {
        assert_string_equal(c.ev[i].event_id, r.event_ids[i]);
        assert_int_equal(c.ev[i].version, i + 1);
        assert_string_equal(c.strings[i][1], "cmd-1");
        assert_string_equal(c.strings[i][2], "corr-1");
        assert_string_equal(c.strings[i][3], "cause-1");
        assert_string_equal(c.strings[i][4], "alice");
        assert_true(c.ev[i].recorded_at_us >= before - 5000000 && c.ev[i].recorded_at_us <= es_now_us() + 5000000);
    }
    assert_true(c.ev[1].position > c.ev[0].position);
    assert_string_equal(c.strings[0][0], "Opened");
    assert_string_equal(c.strings[0][5], "hash-a");
    assert_int_equal(c.ev[0].schema_version, 3);
    assert_int_equal(c.ev[0].payload_len, 4);
    assert_memory_equal(c.payload[0], "\x01\x02\x00\x03", 4);
    assert_int_equal(c.ev[1].payload_len, 0);

    /* A bounded read and a read from a version. */
    memset(&c, 0, sizeof c);
    assert_int_equal(es_store_read_stream(store, "thing-1", 1, 0, collect, &c, NULL, &err), ES_OK);
    assert_int_equal(c.n, 1);
    assert_int_equal(c.ev[0].version, 2);
    memset(&c, 0, sizeof c);
    assert_int_equal(es_store_read_stream(store, "thing-1", 0, 1, collect, &c, NULL, &err), ES_OK);
    assert_int_equal(c.n, 1);

    /* The relay's wake-up and the feed's transaction id are there. */
    assert_int_equal(pgt_scalar(&pg, "SELECT count(*) FROM es_events WHERE stream_id = 'thing-1' AND txid IS NOT NULL"), 2);
}

/* Same expected version twice: the second is a conflict (ABORTED), nothing is written. */
static void test_append_version_conflict(void **state)
{
    es_event_data ev = {NULL, "Opened", "test.Opened", 1, "h", (const uint8_t *)"x", 1};
    es_append a = {.stream_type = "thing", .stream_id = "thing-2", .expected_version = 0, .events = &ev, .n_events = 1};
    es_append_result r;
    es_error err = {0};
    assert_int_equal(es_store_append(store, &a, &r, &err), ES_OK);
    assert_int_equal(es_store_append(store, &a, &r, &err), ES_ABORTED);
    assert_int_equal(pgt_scalar(&pg, "SELECT count(*) FROM es_events WHERE stream_id = 'thing-2'"), 1);
    /* A gap is impossible too: appending at expected 5 to a stream at 1 writes version 6 only if
     * the caller says so; the store does not check contiguity, the pipeline always passes the
     * loaded version. Expected 1 works. */
    a.expected_version = 1;
    assert_int_equal(es_store_append(store, &a, &r, &err), ES_OK);
    assert_int_equal(r.last_version, 2);
}

/* The same command id twice: one set of events, the second answer is the first result. */
static void test_append_idempotent(void **state)
{
    es_event_data ev[3] = {{NULL, "A", "t.A", 1, "h", (const uint8_t *)"1", 1},
                           {NULL, "A", "t.A", 1, "h", (const uint8_t *)"2", 1},
                           {NULL, "A", "t.A", 1, "h", (const uint8_t *)"3", 1}};
    es_append a = {.stream_type = "thing", .stream_id = "thing-3", .expected_version = 0, .command_id = "cmd-idem",
                   .idempotent = 1, .events = ev, .n_events = 3};
    es_append_result r1, r2, r3;
    es_error err = {0};
    assert_int_equal(es_store_append(store, &a, &r1, &err), ES_OK);
    a.expected_version = 3;        /* even at another version: still the first result */
    assert_int_equal(es_store_append(store, &a, &r2, &err), ES_OK);
    assert_int_equal(r2.replayed, 1);
    assert_int_equal(r2.first_version, 1);
    assert_int_equal(r2.last_version, 3);
    assert_int_equal(r2.n_events, 3);
    for (int i = 0; i < 3; i++) assert_string_equal(r2.event_ids[i], r1.event_ids[i]);
    assert_int_equal(pgt_scalar(&pg, "SELECT count(*) FROM es_events WHERE stream_id = 'thing-3'"), 3);

    assert_int_equal(es_store_find_command(store, "cmd-idem", &r3, &err), ES_OK);
    assert_string_equal(r3.stream_id, "thing-3");
    assert_string_equal(r3.event_ids[2], r1.event_ids[2]);
    assert_int_equal(es_store_find_command(store, "cmd-unknown", &r3, &err), ES_NOT_FOUND);

    es_store_stats st;
    es_store_get_stats(store, &st);
    assert_true(st.replays >= 1);
}

/* Requests the store refuses before touching the database. */
static void test_append_invalid(void **state)
{
    es_event_data ev = {"not-a-uuid", "A", "t.A", 1, "h", (const uint8_t *)"1", 1};
    es_append a = {.stream_type = "thing", .stream_id = "thing-4", .events = &ev, .n_events = 1};
    es_append_result r;
    es_error err = {0};
    assert_int_equal(es_store_append(store, &a, &r, &err), ES_INVALID_ARGUMENT);
    ev.event_id = NULL;
    a.n_events = 0;
    assert_int_equal(es_store_append(store, &a, &r, &err), ES_INVALID_ARGUMENT);
    a.n_events = 1;
    a.idempotent = 1;
    assert_int_equal(es_store_append(store, &a, &r, &err), ES_INVALID_ARGUMENT);
    assert_string_equal(err.field, "command_id");
    /* Text the server refuses (a NUL-free but invalid UTF-8 stream id) fails alone. */
    a.idempotent = 0;
    a.stream_id = "bad-\xff\xfe";
    assert_int_equal(es_store_append(store, &a, &r, &err), ES_INTERNAL);
    assert_non_null(strstr(err.message, "UTF8"));
}

static void test_register_schema(void **state)
{
    static const uint8_t set[] = {0x0a, 0x03, 'a', 'b', 'c'};
    es_schema s = {.package = "test.v1", .descriptor_set = set, .descriptor_set_len = sizeof set,
                   .descriptor_set_hash = "0123abcd"};
    es_error err = {0};
    assert_int_equal(es_store_register_schema(store, &s, &err), ES_OK);
    assert_int_equal(es_store_register_schema(store, &s, &err), ES_OK);
    assert_int_equal(pgt_scalar(&pg, "SELECT length(descriptor_set) FROM es_schemas WHERE hash = '0123abcd'"), 5);
}

/* The shape hash changes with the shape and not otherwise. */
static void test_schema_hash(void **state)
{
    const char *a = es_store_schema_hash(&google__protobuf__int64_value__descriptor);
    const char *b = es_store_schema_hash(&google__protobuf__int64_value__descriptor);
    const char *c = es_store_schema_hash(&google__protobuf__uint64_value__descriptor);
    assert_ptr_equal(a, b);
    assert_int_equal(strlen(a), 64);
    assert_string_not_equal(a, c);
    /* Recursive types terminate. */
    assert_int_equal(strlen(es_store_schema_hash(&google__protobuf__field_mask__descriptor)), 64);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_migrate_idempotent_and_concurrent),
        cmocka_unit_test(test_append_read_round_trip),
        cmocka_unit_test(test_append_version_conflict),
        cmocka_unit_test(test_append_idempotent),
        cmocka_unit_test(test_append_invalid),
        cmocka_unit_test(test_register_schema),
        cmocka_unit_test(test_schema_hash),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
