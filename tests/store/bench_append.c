/* Throughput of the command path next to its yardstick, in one run on one
 * PostgreSQL (fsync and synchronous_commit on):
 *   1. pgbench: C clients, one single-row INSERT per transaction into a table shaped like
 *      es_events (same columns and indexes);
 *   2. the pipeline, C threads: creating commands on new streams (each with an idempotency key);
 *   3. the pipeline, C threads: a create then 5 adds on the thread's stream (cache hits).
 * Prints commands/s, p50/p99 latency and the ratio to pgbench. Fails only on errors or wrong
 * results, never on the figures.   usage: bench_append [seconds=10] [clients=32] [rounds=3] */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"

static pgt pg;
static es_pipeline *pl;
static int seconds = 10, clients = 32;
static volatile int stop;
static int round_no;               /* keeps idempotency keys unique across rounds */

typedef struct worker {
    int idx, mode;
    long ok, errors;
    double *lat;                   /* seconds per command */
    size_t n_lat, cap_lat;
    char error[512];
} worker;

static void record(worker *w, double dt)
{
    if (w->n_lat == w->cap_lat) {
        w->cap_lat = w->cap_lat ? 2 * w->cap_lat : 4096;
        w->lat = realloc(w->lat, w->cap_lat * sizeof *w->lat);
        if (!w->lat) abort();
    }
    w->lat[w->n_lat++] = dt;
}

static void *run(void *p)
{
    worker *w = p;
    counter_cmd c;
    es_command_result r;
    es_error err = {0};
    long k = 0;
    char id[ES_STREAM_ID_MAX + 1] = "";
    while (!stop) {
        char key[64];
        snprintf(key, sizeof key, "b%d-%d-%d-%ld", round_no, w->mode, w->idx, k);
        es_command_meta m = {.command_id = key, .actor = "bench"};
        int add = w->mode == 1 && k % 6 != 0;
        double t0 = now_s();
        int rc = add ? es_pipeline_execute(pl, &counter_add, counter_cmd_make(&c, id, "1", NULL), &m, &r, &err)
                     : es_pipeline_execute(pl, &counter_create, counter_cmd_make(&c, "", "0", NULL), &m, &r, &err);
        record(w, now_s() - t0);
        if (rc == ES_OK && r.replayed) {
            rc = es_error_set(&err, ES_INTERNAL, "", "unexpected replay of %s", key);
        }
        if (rc == ES_OK) {
            w->ok++;
            if (!add) snprintf(id, sizeof id, "%s", r.stream_id);
        } else if (!w->errors++) {
            snprintf(w->error, sizeof w->error, "%s: %s", es_strerror(rc), err.message);
        }
        k++;
    }
    return NULL;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Runs the pipeline with all clients in one mode; returns commands/s. */
static double run_mode(int mode, const char *name, long *errors)
{
    worker *w = calloc((size_t)clients, sizeof *w);
    pthread_t *th = calloc((size_t)clients, sizeof *th);
    es_store_stats s0, s1;
    es_store_get_stats(es_pipeline_store(pl), &s0);
    stop = 0;
    double t0 = now_s();
    for (int i = 0; i < clients; i++) {
        w[i].idx = i;
        w[i].mode = mode;
        pthread_create(&th[i], NULL, run, &w[i]);
    }
    struct timespec ts = {seconds, 0};
    nanosleep(&ts, NULL);
    stop = 1;
    long ok = 0;
    size_t n = 0;
    for (int i = 0; i < clients; i++) {
        pthread_join(th[i], NULL);
        ok += w[i].ok;
        *errors += w[i].errors;
        n += w[i].n_lat;
        if (w[i].errors) fprintf(stderr, "%s worker %d: %ld errors, first: %s\n", name, i, w[i].errors, w[i].error);
    }
    double dt = now_s() - t0;
    double *all = malloc((n ? n : 1) * sizeof *all);
    size_t k = 0;
    for (int i = 0; i < clients; i++) {
        memcpy(all + k, w[i].lat, w[i].n_lat * sizeof *all);
        k += w[i].n_lat;
        free(w[i].lat);
    }
    qsort(all, n, sizeof *all, cmp);
    es_store_get_stats(es_pipeline_store(pl), &s1);
    double tps = (double)ok / dt;
    printf("%-28s %9.0f commands/s  p50 %6.2f ms  p99 %6.2f ms  (%.1f commands per commit)\n", name, tps,
           n ? all[n / 2] * 1e3 : 0, n ? all[(size_t)((double)n * 0.99)] * 1e3 : 0,
           (double)(s1.appends - s0.appends) / (double)(s1.batches - s0.batches ? s1.batches - s0.batches : 1));
    free(all);
    free(w);
    free(th);
    return tps;
}

static double pgbench(void)
{
    pgt_exec(&pg, "SET client_min_messages = warning; DROP TABLE IF EXISTS bench_events; CREATE TABLE bench_events (LIKE es_events INCLUDING ALL)");
    char script[600], cmd[2048];
    snprintf(script, sizeof script, "%s/bench_insert.sql", PG_BASE_DIR);
    FILE *f = fopen(script, "w");
    if (!f) return 0;
    fprintf(f, "INSERT INTO bench_events (event_id, stream_type, stream_id, version, event_type, schema_name, "
               "schema_version, schema_hash, payload, command_id, actor) VALUES (gen_random_uuid(), 'counter', "
               "gen_random_uuid()::text, 1, 'Created', 'google.protobuf.Int64Value', 1, "
               "'0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef', '\\x0800', "
               "gen_random_uuid()::text, 'bench');\n");
    fclose(f);
    char host[512] = "", port[32] = "";
    sscanf(strstr(pg.conninfo, "host="), "host=%511s", host);
    sscanf(strstr(pg.conninfo, "port="), "port=%31s", port);
    snprintf(cmd, sizeof cmd, "%s -n -M prepared -c %d -j 2 -T %d -f %s -r -h %s -p %s -U orderd orderd 2>&1",
             PGBENCH, clients, seconds, script, host, port);
    FILE *p = popen(cmd, "r");
    if (!p) return 0;
    char line[512];
    double tps = 0, lat = 0;
    while (fgets(line, sizeof line, p)) {
        if (sscanf(line, "tps = %lf", &tps) == 1) continue;
        if (strstr(line, "latency average")) sscanf(strstr(line, "=") + 1, "%lf", &lat);
    }
    pclose(p);
    printf("%-28s %9.0f tx/s        avg %6.2f ms\n", "pgbench single-row INSERT", tps, lat);
    return tps;
}

static int cmp_d(const void *a, const void *b) { return cmp(a, b); }

int main(int argc, char **argv)
{
    if (argc > 1) seconds = atoi(argv[1]);
    if (argc > 2) clients = atoi(argv[2]);
    int rounds = argc > 3 ? atoi(argv[3]) : 3;
    if (rounds < 1) rounds = 1;
    pgt_start(&pg, "bench");
    printf("%d clients, %d s per phase, %d rounds (phases alternate: this machine is shared, so each "
           "round's ratio compares neighbours in time), fsync and synchronous_commit on\n",
           clients, seconds, rounds);
    es_pipeline_config cfg = {.conninfo = pg.conninfo, .pool_size = 8};
    es_error err = {0};
    pl = es_pipeline_new(&cfg, &err);
    if (!pl) return 1;
    long errors = 0;
    double rc[16], rl[16];
    if (rounds > 16) rounds = 16;
    for (int i = 0; i < rounds; i++) {
        round_no = i;
        double base = pgbench();
        double create = run_mode(0, "pipeline: create", &errors);
        double life = run_mode(1, "pipeline: create + 5 adds", &errors);
        rc[i] = base > 0 ? create / base : 0;
        rl[i] = base > 0 ? life / base : 0;
        printf("round %d ratio to pgbench: create %.2f, create+adds %.2f\n", i + 1, rc[i], rl[i]);
    }
    qsort(rc, (size_t)rounds, sizeof rc[0], cmp_d);
    qsort(rl, (size_t)rounds, sizeof rl[0], cmp_d);
    printf("median ratio to pgbench: create %.2f, create+adds %.2f\n", rc[rounds / 2], rl[rounds / 2]);
    es_pipeline_stats ps;
    es_pipeline_get_stats(pl, &ps);
    printf("pipeline: %llu executed, %llu retries, %llu cache hits, %llu loads\n", (unsigned long long)ps.executed,
           (unsigned long long)ps.retries, (unsigned long long)ps.cache_hits, (unsigned long long)ps.loads);
    es_pipeline_free(pl);
    /* Sanity: every stream's versions are contiguous. */
    long long bad = pgt_scalar(&pg, "SELECT count(*) FROM (SELECT stream_id FROM es_events GROUP BY stream_id "
                                    "HAVING max(version) <> count(*)) x");
    pgt_stop(&pg);
    printf("errors: %ld, streams with gaps: %lld\n", errors, bad);
    return errors == 0 && bad == 0 ? 0 : 1;
}
