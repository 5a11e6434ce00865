/* The command pipeline against a real PostgreSQL, with the hand-built counter aggregate:
 * round trip with metadata, the outcomes (NOT_FOUND, ALREADY_EXISTS, ABORTED, INTERNAL),
 * idempotency (also concurrent), 16 threads racing on one stream, snapshots, and
 * es_pipeline_execute_async (answered once from the committer, the cache, idempotency, shutdown). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "es/uuid.h"
#include "support.h"

static pgt pg;
static es_pipeline *pl;

static int setup(void **state)
{
    pgt_start(&pg, "pipeline");
    es_pipeline_config cfg = {.conninfo = pg.conninfo, .pool_size = 8, .snapshot_every = 10, .max_retries = 40};
    es_error err = {0};
    pl = es_pipeline_new(&cfg, &err);
    return pl ? 0 : -1;
}

static int teardown(void **state)
{
    es_pipeline_free(pl);
    pgt_stop(&pg);
    return 0;
}

static int exec3(const es_command_def *def, const char *a0, const char *a1, const char *a2,
                 const es_command_meta *meta, es_command_result *r, es_error *err)
{
    counter_cmd c;
    return es_pipeline_execute(pl, def, counter_cmd_make(&c, a0, a1, a2), meta, r, err);
}

static int64_t load_value(const char *id, int64_t *version)
{
    ProtobufCMessage *st = NULL;
    es_error err = {0};
    int rc = es_pipeline_load(pl, &counter_aggregate, id, &st, version, &err);
    if (rc) return rc;
    int64_t v = counter_value(st);
    protobuf_c_message_free_unpacked(st, NULL);
    return v;
}

typedef struct meta_seen {
    int n;
    char cmd[4][64], corr[4][64], cause[4][64], actor[4][64], type[4][32], schema[4][64];
    int64_t version[4];
} meta_seen;

static int see(const es_event_record *ev, void *ctx, es_error *err)
{
    meta_seen *m = ctx;
    int i = m->n++;
    snprintf(m->cmd[i], 64, "%s", ev->command_id ? ev->command_id : "(null)");
    snprintf(m->corr[i], 64, "%s", ev->correlation_id ? ev->correlation_id : "(null)");
    snprintf(m->cause[i], 64, "%s", ev->causation_id ? ev->causation_id : "(null)");
    snprintf(m->actor[i], 64, "%s", ev->actor ? ev->actor : "(null)");
    snprintf(m->type[i], 32, "%s", ev->event_type);
    snprintf(m->schema[i], 64, "%s", ev->schema_name);
    m->version[i] = ev->version;
    return ES_OK;
}

/* Create with an assigned id, add, load; every event carries the command's metadata. */
static void test_round_trip_with_metadata(void **state)
{
    es_command_result r;
    es_error err = {0};
    es_command_meta meta = {.command_id = "cmd-create-1", .correlation_id = "corr-9", .causation_id = "cause-8", .actor = "bob"};
    assert_int_equal(exec3(&counter_create, "", "5", NULL, &meta, &r, &err), ES_OK);
    assert_true(es_uuid_valid(r.stream_id));     /* assigned UUIDv7 */
    /* Canonical text: 8-4-4-4-12 lower-case hex, version 7, RFC 4122 variant. */
    assert_int_equal(strlen(r.stream_id), 36);
    for (int i = 0; i < 36; i++) {
        char ch = r.stream_id[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) assert_int_equal(ch, '-');
        else assert_true((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f'));
    }
    assert_int_equal(r.stream_id[14], '7');
    assert_non_null(strchr("89ab", r.stream_id[19]));
    assert_int_equal(r.version, 1);
    assert_int_equal(r.first_version, 1);
    assert_int_equal(r.n_events, 1);
    assert_int_equal(r.replayed, 0);
    char id[ES_STREAM_ID_MAX + 1];
    snprintf(id, sizeof id, "%s", r.stream_id);

    es_command_meta meta2 = {.actor = "carol"};
    assert_int_equal(exec3(&counter_add, id, "7", NULL, &meta2, &r, &err), ES_OK);
    assert_int_equal(r.version, 2);
    int64_t v = 0;
    assert_int_equal(load_value(id, &v), 12);
    assert_int_equal(v, 2);

    meta_seen m = {0};
    assert_int_equal(es_pipeline_read_stream(pl, id, 0, 0, see, &m, &err), ES_OK);
    assert_int_equal(m.n, 2);
    assert_string_equal(m.type[0], "Created");
    assert_string_equal(m.type[1], "Added");
    assert_string_equal(m.schema[0], "google.protobuf.Int64Value");
    assert_string_equal(m.cmd[0], "cmd-create-1");
    assert_string_equal(m.corr[0], "corr-9");
    assert_string_equal(m.cause[0], "cause-8");
    assert_string_equal(m.actor[0], "bob");
    assert_true(es_uuid_valid(m.cmd[1]));        /* no key: a fresh id, not recorded */
    assert_string_equal(m.actor[1], "carol");
    assert_string_equal(m.corr[1], "(null)");
    assert_int_equal(pgt_scalar(&pg, "SELECT count(*) FROM es_commands"), 1);

    /* A no-op decision appends nothing and reports the current version. */
    assert_int_equal(exec3(&counter_add, id, "0", NULL, NULL, &r, &err), ES_OK);
    assert_int_equal(r.version, 2);
    assert_int_equal(r.n_events, 0);
}

static void test_outcomes(void **state)
{
    es_command_result r;
    es_error err = {0};
    assert_int_equal(exec3(&counter_add, "no-such-counter", "1", NULL, NULL, &r, &err), ES_NOT_FOUND);
    assert_string_equal(err.field, "id");
    assert_int_equal(exec3(&counter_add, "", "1", NULL, NULL, &r, &err), ES_INVALID_ARGUMENT);
    assert_int_equal(exec3(&counter_add, "x", NULL, NULL, NULL, &r, &err), ES_INVALID_ARGUMENT);
    assert_string_equal(err.field, "paths[1]");

    /* A creating command with a client-chosen id: first wins, second ALREADY_EXISTS. */
    assert_int_equal(exec3(&counter_create, "counter-fixed", "1", NULL, NULL, &r, &err), ES_OK);
    assert_int_equal(exec3(&counter_create, "counter-fixed", "1", NULL, NULL, &r, &err), ES_ALREADY_EXISTS);
    assert_string_equal(err.field, "id");
    /* ... also when the state is not cached (a fresh pipeline). */
    es_pipeline_config cfg = {.conninfo = pg.conninfo, .cache_disabled = 1};
    es_pipeline *p2 = es_pipeline_new(&cfg, &err);
    counter_cmd c;
    assert_int_equal(es_pipeline_execute(p2, &counter_create, counter_cmd_make(&c, "counter-fixed", "1", NULL), NULL,
                                         &r, &err),
                     ES_ALREADY_EXISTS);
    es_pipeline_free(p2);

    /* decide refuses */
    assert_int_equal(exec3(&counter_add, "counter-fixed", "-5", NULL, NULL, &r, &err), ES_FAILED_PRECONDITION);
    /* decide emits an event its command does not declare */
    assert_int_equal(exec3(&counter_rogue, "counter-fixed", NULL, NULL, NULL, &r, &err), ES_INTERNAL);
    assert_non_null(strstr(err.message, "does not declare"));
    assert_int_equal(pgt_scalar(&pg, "SELECT count(*) FROM es_events WHERE stream_id = 'counter-fixed'"), 1);
}

/* expected_version that does not match: ABORTED with both versions, nothing written. */
static void test_expected_version_mismatch(void **state)
{
    es_command_result r;
    es_error err = {0};
    assert_int_equal(exec3(&counter_create, "counter-ev", "0", NULL, NULL, &r, &err), ES_OK);
    assert_int_equal(exec3(&counter_add, "counter-ev", "1", "1", NULL, &r, &err), ES_OK);   /* at 1: fine */
    assert_int_equal(r.version, 2);
    assert_int_equal(exec3(&counter_add, "counter-ev", "1", "1", NULL, &r, &err), ES_ABORTED);
    assert_string_equal(err.message, "expected version 1, stream is at 2");
    assert_int_equal(exec3(&counter_add, "counter-ev", "1", "7", NULL, &r, &err), ES_ABORTED);
    assert_string_equal(err.message, "expected version 7, stream is at 2");
    assert_int_equal(pgt_scalar(&pg, "SELECT max(version) FROM es_events WHERE stream_id = 'counter-ev'"), 2);
}

/* The same command id twice in a row: the second is answered from the record. Also when
 * the repeat would now be refused, and for a creating command with an assigned id. */
static void test_idempotent_sequential(void **state)
{
    es_command_result r1, r2;
    es_error err = {0};
    es_command_meta m = {.command_id = "create-once"};
    assert_int_equal(exec3(&counter_create, "", "3", NULL, &m, &r1, &err), ES_OK);
    assert_int_equal(exec3(&counter_create, "", "3", NULL, &m, &r2, &err), ES_OK);
    assert_int_equal(r2.replayed, 1);
    assert_string_equal(r2.stream_id, r1.stream_id);     /* not a second new stream */
    assert_string_equal(r2.event_ids[0], r1.event_ids[0]);
    assert_int_equal(r2.version, 1);
    assert_int_equal(pgt_scalar(&pg, "SELECT count(*) FROM es_events WHERE command_id = 'create-once'"), 1);

    char id[ES_STREAM_ID_MAX + 1];
    snprintf(id, sizeof id, "%s", r1.stream_id);
    es_command_meta t = {.command_id = "take-3"};
    assert_int_equal(exec3(&counter_add, id, "-3", NULL, &t, &r1, &err), ES_OK);   /* 3 -> 0 */
    /* Repeated, decide would refuse (0 - 3 < 0): the first answer comes back instead. */
    assert_int_equal(exec3(&counter_add, id, "-3", NULL, &t, &r2, &err), ES_OK);
    assert_int_equal(r2.replayed, 1);
    assert_int_equal(r2.version, r1.version);
    assert_string_equal(r2.event_ids[0], r1.event_ids[0]);
    int64_t v;
    assert_int_equal(load_value(id, &v), 0);
    assert_int_equal(v, 2);
}

typedef struct idem_arg {
    const es_command_def *def;
    const char *id;
    const char *key;
    es_command_result r;
    int rc;
} idem_arg;

static pthread_barrier_t barrier;

static void *idem_thread(void *p)
{
    idem_arg *a = p;
    es_error err = {0};
    es_command_meta m = {.command_id = a->key};
    pthread_barrier_wait(&barrier);
    a->rc = exec3(a->def, a->id, "10", NULL, &m, &a->r, &err);
    return NULL;
}

/* Eight copies of one command id at once: one set of events, eight identical answers. */
static void test_idempotent_concurrent(void **state)
{
    es_command_result r;
    es_error err = {0};
    assert_int_equal(exec3(&counter_create, "counter-idem", "0", NULL, NULL, &r, &err), ES_OK);
    enum { N = 8 };
    idem_arg args[N];
    pthread_t th[N];
    pthread_barrier_init(&barrier, NULL, N);
    for (int i = 0; i < N; i++) {
        args[i] = (idem_arg){.def = &counter_add, .id = "counter-idem", .key = "concurrent-key"};
        pthread_create(&th[i], NULL, idem_thread, &args[i]);
    }
    int fresh = 0;
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(args[i].rc, ES_OK);
        fresh += !args[i].r.replayed;
        assert_string_equal(args[i].r.event_ids[0], args[0].r.event_ids[0]);
        assert_int_equal(args[i].r.version, 2);
    }
    pthread_barrier_destroy(&barrier);
    assert_int_equal(fresh, 1);
    assert_int_equal(pgt_scalar(&pg, "SELECT count(*) FROM es_events WHERE stream_id = 'counter-idem'"), 2);
    int64_t v;
    assert_int_equal(load_value("counter-idem", &v), 10);

    /* Eight copies of a creating command (each would get its own new stream id): one stream. */
    pthread_barrier_init(&barrier, NULL, N);
    for (int i = 0; i < N; i++) {
        args[i] = (idem_arg){.def = &counter_create, .id = "", .key = "concurrent-create"};
        pthread_create(&th[i], NULL, idem_thread, &args[i]);
    }
    fresh = 0;
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(args[i].rc, ES_OK);
        fresh += !args[i].r.replayed;
        assert_string_equal(args[i].r.stream_id, args[0].r.stream_id);
        assert_string_equal(args[i].r.event_ids[0], args[0].r.event_ids[0]);
    }
    pthread_barrier_destroy(&barrier);
    assert_int_equal(fresh, 1);
    assert_int_equal(pgt_scalar(&pg, "SELECT count(DISTINCT stream_id) FROM es_events WHERE command_id = 'concurrent-create'"), 1);
    assert_int_equal(pgt_scalar(&pg, "SELECT count(*) FROM es_events WHERE command_id = 'concurrent-create'"), 1);
}

typedef struct race_arg {
    es_pipeline *pl;
    const char *stream;
    int ok, aborted, other, retries;
} race_arg;

#define RACE_THREADS 16
#define RACE_EACH 25

static void *race_thread(void *p)
{
    race_arg *a = p;
    pthread_barrier_wait(&barrier);
    for (int i = 0; i < RACE_EACH; i++) {
        es_command_result r;
        es_error err = {0};
        counter_cmd c;
        int rc = es_pipeline_execute(a->pl, &counter_add, counter_cmd_make(&c, a->stream, "1", NULL), NULL, &r, &err);
        if (rc == ES_OK) a->ok++, a->retries += (int)r.attempts - 1;
        else if (rc == ES_ABORTED) a->aborted++;
        else a->other++;
    }
    return NULL;
}

/* 16 threads add 1 to one counter through the given pipelines (threads spread over them):
 * every acknowledged add is in the count (no lost update), versions are 1..N without a gap,
 * the feed order keeps version order, and every loser was retried or told ABORTED. Returns
 * the retries. */
static int race(es_pipeline **pls, int n_pls, const char *stream, const char *label)
{
    es_command_result r;
    es_error err = {0};
    assert_int_equal(exec3(&counter_create, stream, "0", NULL, NULL, &r, &err), ES_OK);
    race_arg args[RACE_THREADS];
    pthread_t th[RACE_THREADS];
    pthread_barrier_init(&barrier, NULL, RACE_THREADS);
    double t0 = now_s();
    for (int i = 0; i < RACE_THREADS; i++) {
        args[i] = (race_arg){.pl = pls[i % n_pls], .stream = stream};
        pthread_create(&th[i], NULL, race_thread, &args[i]);
    }
    int ok = 0, aborted = 0, other = 0, retries = 0;
    for (int i = 0; i < RACE_THREADS; i++) {
        pthread_join(th[i], NULL);
        ok += args[i].ok, aborted += args[i].aborted, other += args[i].other, retries += args[i].retries;
    }
    pthread_barrier_destroy(&barrier);
    printf("race (%s): %d ok, %d aborted, %d retries, %.2f s\n", label, ok, aborted, retries, now_s() - t0);
    assert_int_equal(other, 0);
    assert_int_equal(ok + aborted, RACE_THREADS * RACE_EACH);
    assert_true(ok > 0);
    int64_t v;
    assert_int_equal(load_value(stream, &v), ok);
    assert_int_equal(v, ok + 1);
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT count(*) * 1000000 + max(version) * 1000 + count(DISTINCT version) FROM es_events "
             "WHERE stream_id = '%s'", stream);
    long long n = ok + 1;
    assert_int_equal(pgt_scalar(&pg, sql), n * 1000000 + n * 1000 + n);
    /* The feed's order (txid, position) keeps the stream's version order. */
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM (SELECT version, lag(version) OVER (ORDER BY txid, position) AS prev "
             "FROM es_events WHERE stream_id = '%s') x WHERE prev IS NOT NULL AND version <> prev + 1", stream);
    assert_int_equal(pgt_scalar(&pg, sql), 0);
    return retries;
}

/* One instance: its commands on one stream queue behind each other, so none is lost or
 * refused and none needs a retry. */
static void test_race_one_stream_one_instance(void **state)
{
    race(&pl, 1, "counter-race-1", "one instance");
    es_pipeline_stats st;
    es_pipeline_get_stats(pl, &st);
}

/* Two instances (two pipelines, each with its own cache and committer) on one stream: their
 * commands do conflict on the version, and losers are retried on fresh state. */
static void test_race_one_stream_two_instances(void **state)
{
    es_pipeline_config cfg = {.conninfo = pg.conninfo, .pool_size = 8, .max_retries = 40};
    es_error err = {0};
    es_pipeline *two[2] = {pl, es_pipeline_new(&cfg, &err)};
    assert_non_null(two[1]);
    int retries = race(two, 2, "counter-race-2", "two instances");
    assert_true(retries > 0);
    es_pipeline_free(two[1]);
}

/* No cache, no queueing: every thread loads and races; the conflict retries resolve it. */
static void test_race_one_stream_no_cache(void **state)
{
    es_pipeline_config cfg = {.conninfo = pg.conninfo, .pool_size = 8, .max_retries = 40, .cache_disabled = 1};
    es_error err = {0};
    es_pipeline *nc = es_pipeline_new(&cfg, &err);
    assert_non_null(nc);
    int retries = race(&nc, 1, "counter-race-3", "no cache");
    assert_true(retries > 0);
    es_pipeline_free(nc);
}

/* A snapshot every 10 events; a 1,000-event stream loads from it with the same state as a
 * full replay; a snapshot of another shape is ignored. */
static void test_snapshots(void **state)
{
    es_command_result r;
    es_error err = {0};
    assert_int_equal(exec3(&counter_create, "counter-long", "0", NULL, NULL, &r, &err), ES_OK);
    int64_t want = 0;
    for (int i = 0; i < 142; i++) {               /* 1 + 142 * 7 = 995 events */
        assert_int_equal(exec3(&counter_add_many, "counter-long", "7", NULL, NULL, &r, &err), ES_OK);
        want += 7;
    }
    while (r.version < 1000) {
        assert_int_equal(exec3(&counter_add, "counter-long", "1", NULL, NULL, &r, &err), ES_OK);
        want += 1;
    }
    assert_int_equal(r.version, 1000);
    long long snap = pgt_scalar(&pg, "SELECT version FROM es_snapshots WHERE stream_id = 'counter-long'");
    assert_true(snap >= 991 && snap <= 1000);
    es_pipeline_stats st;
    es_pipeline_get_stats(pl, &st);
    assert_true(st.snapshots >= 99);

    int64_t v;
    assert_int_equal(load_value("counter-long", &v), want);
    assert_int_equal(v, 1000);
    double t0 = now_s();
    for (int i = 0; i < 20; i++) assert_int_equal(load_value("counter-long", &v), want);
    double with_snap = (now_s() - t0) / 20;

    /* A snapshot written with another state shape: ignored, the load replays all events. */
    pgt_exec(&pg, "UPDATE es_snapshots SET schema_hash = 'other' WHERE stream_id = 'counter-long'");
    assert_int_equal(load_value("counter-long", &v), want);
    assert_int_equal(v, 1000);
    t0 = now_s();
    for (int i = 0; i < 20; i++) assert_int_equal(load_value("counter-long", &v), want);
    double replay = (now_s() - t0) / 20;
    printf("load of a 1000-event stream: %.3f ms from the snapshot, %.3f ms replaying all (mean of 20)\n",
           with_snap * 1e3, replay * 1e3);

    /* Proof that the snapshot is what a load uses: without the events it covers, the state is
     * still whole. (Events are forever; this is a test database.) */
    char sql[256];
    snprintf(sql, sizeof sql, "UPDATE es_snapshots SET schema_hash = '%s' WHERE stream_id = 'counter-long'",
             es_store_schema_hash(&google__protobuf__int64_value__descriptor));
    pgt_exec(&pg, sql);
    snprintf(sql, sizeof sql, "DELETE FROM es_events WHERE stream_id = 'counter-long' AND version <= %lld", snap);
    pgt_exec(&pg, sql);
    assert_int_equal(load_value("counter-long", &v), want);
    assert_int_equal(v, 1000);
}

/* ---- es_pipeline_execute_async ---- */

typedef struct async_seen {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int calls, status;
    es_command_result r;
    es_error err;
} async_seen;

static void seen_init(async_seen *s)
{
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
}

static void async_cb(void *data, int status, const es_command_result *r, const es_error *err)
{
    async_seen *s = data;
    pthread_mutex_lock(&s->mu);
    s->calls++;
    s->status = status;
    if (r) s->r = *r;
    if (err) s->err = *err;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* The outcome, once done ran (the test fails after 20 s without it). */
static int async_wait(async_seen *s, int calls)
{
    double until = now_s() + 20;
    pthread_mutex_lock(&s->mu);
    while (s->calls < calls && now_s() < until) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 50 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) { ts.tv_sec++; ts.tv_nsec -= 1000000000L; }
        pthread_cond_timedwait(&s->cv, &s->mu, &ts);
    }
    int n = s->calls, st = s->status;
    pthread_mutex_unlock(&s->mu);
    assert_int_equal(n, calls);
    return st;
}

static int async3(const es_command_def *def, const char *a0, const char *a1, const es_command_meta *meta,
                  async_seen *s, counter_cmd *c, es_error *err)
{
    return es_pipeline_execute_async(pl, def, counter_cmd_make(c, a0, a1, NULL), meta, async_cb, s, err);
}

static void test_async_create(void **state)
{
    counter_cmd c;
    es_error err = {0};
    async_seen s;
    seen_init(&s);
    assert_int_equal(async3(&counter_create, "", "5", NULL, &s, &c, &err), ES_OK);
    assert_int_equal(async_wait(&s, 1), ES_OK);
    assert_int_equal(s.r.version, 1);
    assert_int_equal(s.r.first_version, 1);
    assert_int_equal(s.r.n_events, 1);
    assert_int_equal(s.r.attempts, 1);
    assert_false(s.r.replayed);
    assert_true(es_uuid_valid(s.r.stream_id));
    int64_t v = 0;
    assert_int_equal(load_value(s.r.stream_id, &v), 5);
    assert_int_equal(v, 1);
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM es_events WHERE stream_id = '%s' AND version = 1", s.r.stream_id);
    assert_int_equal(pgt_scalar(&pg, sql), 1);

    /* The committed state went into the cache: the next command on the stream reads nothing. */
    es_pipeline_stats before, after;
    es_pipeline_get_stats(pl, &before);
    es_command_result r;
    assert_int_equal(exec3(&counter_add, s.r.stream_id, "2", NULL, NULL, &r, &err), ES_OK);
    es_pipeline_get_stats(pl, &after);
    assert_int_equal(after.cache_hits, before.cache_hits + 1);
    assert_int_equal(after.loads, before.loads);
    assert_int_equal(load_value(s.r.stream_id, &v), 7);
}

static void test_async_needs_blocking(void **state)
{
    counter_cmd c;
    es_error err = {0};
    async_seen s;
    seen_init(&s);
    /* A stream the client names may exist; a non-creating command reads its stream first. */
    assert_int_equal(async3(&counter_create, "named-by-client", "1", NULL, &s, &c, &err), ES_PIPELINE_BLOCKING);
    assert_int_equal(async3(&counter_add, "named-by-client", "1", NULL, &s, &c, &err), ES_PIPELINE_BLOCKING);
    /* Invalid input is answered at once, naming the field; done never runs. */
    assert_int_equal(async3(&counter_create, "", "", NULL, &s, &c, &err), ES_INVALID_ARGUMENT);
    assert_string_equal(err.field, "paths[1]");
    assert_int_equal(s.calls, 0);
    assert_int_equal(pgt_scalar(&pg, "SELECT count(*) FROM es_streams WHERE stream_id = 'named-by-client'"), 0);
}

static void test_async_idempotent(void **state)
{
    counter_cmd c;
    es_error err = {0};
    uint8_t h1[32] = {1}, h2[32] = {2};
    es_command_meta m = {.command_id = "async-key", .correlation_id = "corr-async", .actor = "tester",
                         .request_hash = h1, .request_hash_len = sizeof h1, .retention_s = 3600};
    async_seen first, again, other;
    seen_init(&first);
    seen_init(&again);
    seen_init(&other);
    assert_int_equal(async3(&counter_create, "", "3", &m, &first, &c, &err), ES_OK);
    assert_int_equal(async_wait(&first, 1), ES_OK);
    assert_false(first.r.replayed);
    /* The same key and request: the first answer, nothing new written. */
    assert_int_equal(async3(&counter_create, "", "3", &m, &again, &c, &err), ES_OK);
    assert_int_equal(async_wait(&again, 1), ES_OK);
    assert_true(again.r.replayed);
    assert_string_equal(again.r.stream_id, first.r.stream_id);
    assert_string_equal(again.r.event_ids[0], first.r.event_ids[0]);
    assert_int_equal(pgt_scalar(&pg, "SELECT count(*) FROM es_events WHERE command_id = 'async-key'"), 1);
    assert_int_equal(pgt_scalar(&pg, "SELECT count(*) FROM es_events WHERE correlation_id = 'corr-async'"
                                     " AND actor = 'tester'"), 1);
    /* The same key with another request is refused. */
    m.request_hash = h2;
    assert_int_equal(async3(&counter_create, "", "3", &m, &other, &c, &err), ES_OK);
    assert_int_equal(async_wait(&other, 1), ES_ALREADY_EXISTS);
    assert_string_equal(other.err.field, "idempotency_key");
}

/* Freeing the pipeline answers every queued append (committed or "shutting down"), once. */
static void test_async_shutdown(void **state)
{
    es_pipeline_config cfg = {.conninfo = pg.conninfo, .pool_size = 4};
    es_error err = {0};
    es_pipeline *p2 = es_pipeline_new(&cfg, &err);
    assert_non_null(p2);
    enum { N = 200 };
    static counter_cmd cmds[N];
    async_seen s;
    seen_init(&s);
    int queued = 0;
    for (int i = 0; i < N; i++)
        if (es_pipeline_execute_async(p2, &counter_create, counter_cmd_make(&cmds[i], "", "1", NULL), NULL, async_cb,
                                      &s, &err) == ES_OK)
            queued++;
    assert_int_equal(queued, N);
    es_pipeline_free(p2);
    pthread_mutex_lock(&s.mu);
    int calls = s.calls;
    pthread_mutex_unlock(&s.mu);
    assert_int_equal(calls, N);
    assert_true(s.status == ES_OK || s.status == ES_UNAVAILABLE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_with_metadata),
        cmocka_unit_test(test_outcomes),
        cmocka_unit_test(test_expected_version_mismatch),
        cmocka_unit_test(test_idempotent_sequential),
        cmocka_unit_test(test_idempotent_concurrent),
        cmocka_unit_test(test_race_one_stream_one_instance),
        cmocka_unit_test(test_race_one_stream_two_instances),
        cmocka_unit_test(test_race_one_stream_no_cache),
        cmocka_unit_test(test_snapshots),
        cmocka_unit_test(test_async_create),
        cmocka_unit_test(test_async_needs_blocking),
        cmocka_unit_test(test_async_idempotent),
        cmocka_unit_test(test_async_shutdown),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
