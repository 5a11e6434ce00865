/* Group commit under 32 threads: many commands share a transaction, and the result is still
 * exactly right: every acknowledged event stored once, each stream's versions contiguous, the
 * shared streams' counts equal to their acknowledged adds, nothing acknowledged missing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "pgt_fixture.h"

#define THREADS 32
#define EACH 60
#define SHARED 4

static es_pipeline *pl;
static pthread_barrier_t barrier;

typedef struct worker {
    int idx;
    char own[ES_STREAM_ID_MAX + 1];
    int own_ok;                    /* adds acknowledged on the thread's own stream */
    int shared_ok[SHARED];         /* adds acknowledged on the shared streams */
    int aborted, other, replays;
    char first_error[512];
} worker;

static void *run(void *p)
{
    worker *w = p;
    es_command_result r;
    es_error err = {0};
    counter_cmd c;
    pthread_barrier_wait(&barrier);
    int rc = es_pipeline_execute(pl, &counter_create, counter_cmd_make(&c, "", "0", NULL), NULL, &r, &err);
    if (rc != ES_OK) {
        w->other++;
        snprintf(w->first_error, sizeof w->first_error, "%s", err.message);
        return NULL;
    }
    snprintf(w->own, sizeof w->own, "%s", r.stream_id);
    for (int i = 0; i < EACH; i++) {
        int shared = i % 5 == 4;   /* every fifth command contends on a shared stream */
        char sid[32], key[64];
        snprintf(sid, sizeof sid, "shared-%d", (w->idx + i) % SHARED);
        snprintf(key, sizeof key, "gc-%d-%d", w->idx, i);
        es_command_meta m = {.command_id = key};
        rc = es_pipeline_execute(pl, &counter_add, counter_cmd_make(&c, shared ? sid : w->own, "1", NULL), &m, &r,
                                 &err);
        if (rc == ES_OK) {
            w->replays += r.replayed;
            if (shared) w->shared_ok[(w->idx + i) % SHARED]++;
            else w->own_ok++;
        } else if (rc == ES_ABORTED) {
            w->aborted++;
        } else {
            if (!w->other++) snprintf(w->first_error, sizeof w->first_error, "%s: %s", es_strerror(rc), err.message);
        }
    }
    return NULL;
}

static void test_group_commit_32_threads(void **state)
{
    es_pipeline_config cfg = {.conninfo = pg.conninfo, .pool_size = 8, .max_retries = 50};
    es_error err = {0};
    pl = es_pipeline_new(&cfg, &err);
    assert_non_null(pl);
    es_command_result r;
    counter_cmd c;
    for (int i = 0; i < SHARED; i++) {
        char sid[32];
        snprintf(sid, sizeof sid, "shared-%d", i);
        assert_int_equal(es_pipeline_execute(pl, &counter_create, counter_cmd_make(&c, sid, "0", NULL), NULL, &r, &err),
                         ES_OK);
    }

    static worker w[THREADS];
    pthread_t th[THREADS];
    pthread_barrier_init(&barrier, NULL, THREADS);
    double t0 = now_s();
    for (int i = 0; i < THREADS; i++) {
        w[i] = (worker){.idx = i};
        pthread_create(&th[i], NULL, run, &w[i]);
    }
    for (int i = 0; i < THREADS; i++) pthread_join(th[i], NULL);
    double dt = now_s() - t0;
    pthread_barrier_destroy(&barrier);

    int total_ok = 0, aborted = 0, shared_ok[SHARED] = {0};
    for (int i = 0; i < THREADS; i++) {
        if (w[i].other) fail_msg("worker %d: %s", i, w[i].first_error);
        assert_int_equal(w[i].replays, 0);
        aborted += w[i].aborted;
        total_ok += 1 + w[i].own_ok;
        for (int k = 0; k < SHARED; k++) shared_ok[k] += w[i].shared_ok[k], total_ok += w[i].shared_ok[k];
        /* The thread's own stream: nobody else wrote it, so no add was lost or refused. */
        assert_int_equal(w[i].own_ok, EACH - EACH / 5);
        char sql[512];
        snprintf(sql, sizeof sql,
                 "SELECT count(*) * 1000000 + max(version) * 1000 + count(DISTINCT version) FROM es_events "
                 "WHERE stream_id = '%s'",
                 w[i].own);
        long long n = 1 + w[i].own_ok;
        assert_int_equal(pgt_scalar(&pg, sql), n * 1000000 + n * 1000 + n);
    }
    for (int k = 0; k < SHARED; k++) {
        char sql[256];
        snprintf(sql, sizeof sql,
                 "SELECT count(*) * 1000000 + max(version) * 1000 + count(DISTINCT version) FROM es_events "
                 "WHERE stream_id = 'shared-%d'",
                 k);
        long long n = 1 + shared_ok[k];
        assert_int_equal(pgt_scalar(&pg, sql), n * 1000000 + n * 1000 + n);
        ProtobufCMessage *st;
        int64_t v;
        snprintf(sql, sizeof sql, "shared-%d", k);
        assert_int_equal(es_pipeline_load(pl, &counter_aggregate, sql, &st, &v, &err), ES_OK);
        assert_int_equal(counter_value(st), shared_ok[k]);
        protobuf_c_message_free_unpacked(st, NULL);
    }
    assert_int_equal(pgt_scalar(&pg, "SELECT count(*) FROM es_events"), total_ok + SHARED);
    /* Every acknowledged keyed command is recorded exactly once. */
    assert_int_equal(pgt_scalar(&pg, "SELECT count(*) FROM es_commands"), total_ok - THREADS);

    es_store_stats st;
    es_store_get_stats(es_pipeline_store(pl), &st);
    es_pipeline_stats ps;
    es_pipeline_get_stats(pl, &ps);
    printf("group commit: %d commands ok (%d aborted) in %.2f s = %.0f/s; %llu appends in %llu transactions "
           "(%.1f per commit, largest %llu); %llu conflicts retried; %llu cache hits, %llu loads\n",
           total_ok, aborted, dt, total_ok / dt, (unsigned long long)st.appends, (unsigned long long)st.batches,
           (double)st.appends / (double)st.batches, (unsigned long long)st.max_batch, (unsigned long long)ps.retries,
           (unsigned long long)ps.cache_hits, (unsigned long long)ps.loads);
    /* Commands really were grouped. */
    assert_true(st.batches < st.appends);
    assert_true(st.max_batch > 1);

    es_pipeline_free(pl);
}

/* Each committer keeps a connection for good, so a pool no larger than the committers would
 * leave loads waiting forever: the store refuses it, naming the field, and a pipeline that
 * makes its own pool makes it large enough. (bench_store once ran 2 committers on a pool of 2
 * and its loads timed out whenever its streams hashed to both committers.) */
static void test_pool_must_outnumber_committers(void **state)
{
    (void)state;
    es_error err = {0};
    es_pg_pool_config pc = {.conninfo = pg.conninfo, .size = 2};
    es_pg_pool *pool = es_pg_pool_new(&pc, &err);
    assert_non_null(pool);
    es_store_config sc = {.committers = 2};
    assert_null(es_store_new(pool, &sc, &err));
    assert_int_equal(err.code, ES_INVALID_ARGUMENT);
    assert_string_equal(err.field, "pool_size");
    assert_non_null(strstr(err.message, "at least 3"));
    sc.committers = 1;
    es_store *s = es_store_new(pool, &sc, &err);
    assert_non_null(s);
    es_store_free(s);
    es_pg_pool_free(pool);

    /* Asked for 2 connections and 4 committers, the pipeline opens 5: with a stream on every
     * committer (so each holds its connection), loads still get one. */
    es_pipeline_config cfg = {.conninfo = pg.conninfo, .pool_size = 2, .committers = 4};
    es_pipeline *p = es_pipeline_new(&cfg, &err);
    assert_non_null(p);
    es_command_result r;
    counter_cmd c;
    char sid[32];
    for (int i = 0; i < 16; i++) {
        snprintf(sid, sizeof sid, "small-pool-%d", i);
        assert_int_equal(es_pipeline_execute(p, &counter_create, counter_cmd_make(&c, sid, "0", NULL), NULL, &r, &err),
                         ES_OK);
    }
    es_pg_pool_stats ps;
    es_pg_pool_get_stats(es_pipeline_pool(p), &ps);
    assert_int_equal(ps.size, 5);
    for (int i = 0; i < 16; i++) {
        snprintf(sid, sizeof sid, "small-pool-%d", i);
        ProtobufCMessage *st;
        int64_t v;
        assert_int_equal(es_pipeline_load(p, &counter_aggregate, sid, &st, &v, &err), ES_OK);
        assert_int_equal(v, 1);
        protobuf_c_message_free_unpacked(st, NULL);
    }
    es_pipeline_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_group_commit_32_threads),
        cmocka_unit_test(test_pool_must_outnumber_committers),
    };
    return PGT_RUN_GROUP("group-commit", tests);
}
