/* Fixtures of the delivery tests; see harness.h. */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "es/clock.h"

#ifndef DH_SOURCE_DIR
#error DH_SOURCE_DIR must be defined
#endif

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("harness: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

int64_t dh_now_ms(void) { return es_mono_us() / 1000; }

void dh_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

const char *dh_relay_proc_path(void) { return DH_RELAY_PROC; }

static void mkdirs(const char *path)
{
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            mkdir(tmp, 0755);
            *p = '/';
        }
    mkdir(tmp, 0755);
}

void dh_exec(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        die("SQL failed: %s\n%.200s", PQresultErrorMessage(r), sql);
    PQclear(r);
}

int64_t dh_query_int(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        die("query failed: %s\n%s", PQresultErrorMessage(r), sql);
    int64_t v = PQntuples(r) && !PQgetisnull(r, 0, 0) ? strtoll(PQgetvalue(r, 0, 0), NULL, 10) : 0;
    PQclear(r);
    return v;
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = es_xmalloc((size_t)n + 1);
    size_t got = fread(s, 1, (size_t)n, f);
    s[got] = '\0';
    fclose(f);
    return s;
}

void dh_pg_start(dh_env *e, const char *name)
{
    memset(e, 0, sizeof *e);
    snprintf(e->dir, sizeof e->dir, "%s/%s", DH_BINARY_DIR, name);
    mkdirs(e->dir);
    char pgdir[600], lock[600], cmd[2048];
    snprintf(pgdir, sizeof pgdir, "%s/pg", DH_BINARY_DIR);
    snprintf(lock, sizeof lock, "%s/pg.lock", DH_BINARY_DIR);
    /* One cluster for all delivery tests; the lock keeps parallel ctest runs from racing initdb. */
    int lfd = open(lock, O_CREAT | O_RDWR, 0644);
    if (lfd < 0 || flock(lfd, LOCK_EX) != 0)
        die("lock %s: %s", lock, strerror(errno));
    snprintf(cmd, sizeof cmd, "%s/scripts/pg.sh start %s", DH_SOURCE_DIR, pgdir);
    FILE *p = popen(cmd, "r");
    char base[800] = "";
    if (!p || !fgets(base, sizeof base, p))
        die("%s failed", cmd);
    if (pclose(p) != 0)
        die("%s failed", cmd);
    flock(lfd, LOCK_UN);
    close(lfd);
    base[strcspn(base, "\n")] = '\0';

    char dbname[128];
    snprintf(dbname, sizeof dbname, "dt_%s", name);
    PGconn *admin = PQconnectdb(base);
    if (PQstatus(admin) != CONNECTION_OK)
        die("connect %s: %s", base, PQerrorMessage(admin));
    snprintf(cmd, sizeof cmd, "DROP DATABASE IF EXISTS %s WITH (FORCE)", dbname);
    dh_exec(admin, cmd);
    snprintf(cmd, sizeof cmd, "CREATE DATABASE %s", dbname);
    dh_exec(admin, cmd);
    PQfinish(admin);
    /* libpq takes the last value of a repeated keyword. */
    snprintf(e->conninfo, sizeof e->conninfo, "%.800s dbname=%.100s", base, dbname);

    char sqlpath[600];
    snprintf(sqlpath, sizeof sqlpath, "%s/sql/event_store.sql", DH_SOURCE_DIR);
    char *sql = read_file(sqlpath);
    if (!sql)
        die("read %s", sqlpath);
    PGconn *c = dh_connect(e);
    dh_exec(c, "SET client_min_messages = warning");
    dh_exec(c, sql);
    PQfinish(c);
    free(sql);
}

PGconn *dh_connect(const dh_env *e)
{
    PGconn *c = PQconnectdb(e->conninfo);
    if (PQstatus(c) != CONNECTION_OK)
        die("connect: %s", PQerrorMessage(c));
    return c;
}

pid_t dh_spawn(char *const argv[])
{
    pid_t pid = fork();
    if (pid < 0)
        die("fork: %s", strerror(errno));
    if (pid == 0) {
        execv(argv[0], argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    return pid;
}

void dh_mock_start(dh_env *e, const char *const *topics)
{
    snprintf(e->bootstrap_file, sizeof e->bootstrap_file, "%s/kafka.bootstrap", e->dir);
    snprintf(e->ctl_sock, sizeof e->ctl_sock, "%s/kafka.sock", e->dir);
    unlink(e->bootstrap_file);
    char *argv[64];
    int n = 0;
    argv[n++] = (char *)DH_KAFKA_MOCK;
    argv[n++] = "--bootstrap-file";
    argv[n++] = e->bootstrap_file;
    argv[n++] = "--control";
    argv[n++] = e->ctl_sock;
    for (size_t i = 0; topics && topics[i] && n < 60; i++) {
        argv[n++] = "--topic";
        argv[n++] = (char *)topics[i];
    }
    argv[n] = NULL;
    e->mock_pid = dh_spawn(argv);
    for (int i = 0; i < 200; i++) {
        if (access(e->bootstrap_file, R_OK) == 0)
            return;
        dh_sleep_ms(50);
    }
    die("es-kafka-mock did not write %s", e->bootstrap_file);
}

void dh_mock_stop(dh_env *e)
{
    if (e->mock_pid <= 0)
        return;
    kill(e->mock_pid, SIGTERM);
    for (int i = 0; i < 100; i++) {
        if (waitpid(e->mock_pid, NULL, WNOHANG) == e->mock_pid) {
            e->mock_pid = 0;
            return;
        }
        dh_sleep_ms(50);
    }
    kill(e->mock_pid, SIGKILL);
    waitpid(e->mock_pid, NULL, 0);
    e->mock_pid = 0;
}

int dh_mock_ctl(const dh_env *e, const char *cmd)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%.107s", e->ctl_sock);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    char line[256], reply[256] = "";
    int n = snprintf(line, sizeof line, "%s\n", cmd);
    ssize_t w = write(fd, line, (size_t)n);
    ssize_t r = w == n ? read(fd, reply, sizeof reply - 1) : -1;
    close(fd);
    if (r > 0)
        reply[r] = '\0';
    return strncmp(reply, "ok", 2) == 0 ? 0 : -1;
}

void dh_bootstrap(const dh_env *e, char *out, size_t sz)
{
    out[0] = '\0';
    FILE *f = fopen(e->bootstrap_file, "r");
    if (!f)
        return;
    if (fgets(out, (int)sz, f))
        out[strcspn(out, "\r\n")] = '\0';
    fclose(f);
}

int dh_append(PGconn *c, const char *stream_id, int64_t from, int count)
{
    /* One statement: the versions, the event ids and the wake-up, atomically. */
    static const char sql[] =
        "WITH ins AS (INSERT INTO es_events (event_id, stream_type, stream_id, version, event_type,"
        "  schema_name, schema_version, schema_hash, payload, correlation_id)"
        " SELECT gen_random_uuid(), 'test', $1, v, 'Tested', 'test.v1.Tested', 1, 'h',"
        "        convert_to('e' || v, 'UTF8'), 'corr-' || $1"
        "   FROM generate_series($2::int8, $2::int8 + $3::int8 - 1) AS v ORDER BY v RETURNING 1)"
        " SELECT count(*), pg_notify('es_events', $1) FROM ins";
    char f[24], n[24];
    snprintf(f, sizeof f, "%" PRId64, from);
    snprintf(n, sizeof n, "%d", count);
    const char *p[3] = {stream_id, f, n};
    PGresult *r = PQexecParams(c, sql, 3, NULL, p, NULL, NULL, 0);
    int ok = PQresultStatus(r) == PGRES_TUPLES_OK;
    if (!ok)
        fprintf(stderr, "append %s@%s: %s", stream_id, f, PQresultErrorMessage(r));
    PQclear(r);
    return ok ? 0 : -1;
}

int dh_dump_topic(const char *bootstrap, const char *topic, dh_dump *out)
{
    memset(out, 0, sizeof *out);
    es_arena_init(&out->arena);
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, errstr, sizeof errstr);
    rd_kafka_conf_set(conf, "enable.partition.eof", "false", errstr, sizeof errstr);
    rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof errstr);
    rd_kafka_conf_set(conf, "group.id", "delivery-test-dump", errstr, sizeof errstr);
    rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr, sizeof errstr);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
    if (!rk)
        return -1;
    int rc = -1;
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_partition_list_t *assign = NULL;
    int64_t *hi = NULL, *next = NULL;
    int nparts = 0;
    if (rd_kafka_metadata(rk, 1, NULL, &md, 10000) != RD_KAFKA_RESP_ERR_NO_ERROR)
        goto done;
    for (int i = 0; i < md->topic_cnt; i++)
        if (!strcmp(md->topics[i].topic, topic))
            nparts = md->topics[i].partition_cnt;
    if (nparts == 0)
        goto done;
    hi = calloc((size_t)nparts, sizeof *hi);
    next = calloc((size_t)nparts, sizeof *next);
    assign = rd_kafka_topic_partition_list_new(nparts);
    int remaining = 0;
    for (int p = 0; p < nparts; p++) {
        int64_t lo;
        if (rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi[p], 10000))
            goto done;
        next[p] = lo;
        if (hi[p] > lo)
            remaining++;
        rd_kafka_topic_partition_list_add(assign, topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    }
    if (rd_kafka_assign(rk, assign))
        goto done;
    size_t cap = 1024;
    out->m = es_xmalloc(cap * sizeof *out->m);
    /* Collect per partition in offset order: messages of one partition arrive in order. */
    int64_t deadline = dh_now_ms() + 60000;
    while (remaining > 0 && dh_now_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
        if (!m)
            continue;
        if (m->err || m->partition < 0 || m->partition >= nparts || m->offset >= hi[m->partition]) {
            rd_kafka_message_destroy(m);
            continue;
        }
        if (out->n == cap) {
            cap *= 2;
            out->m = es_xrealloc(out->m, cap * sizeof *out->m);
        }
        dh_msg *d = &out->m[out->n++];
        memset(d, 0, sizeof *d);
        d->key = es_arena_strndup(&out->arena, m->key ? m->key : "", m->key ? m->key_len : 0);
        d->partition = m->partition;
        d->offset = m->offset;
        es_error err;
        if (es_envelope_unpack(m->payload, m->len, &out->arena, &d->ev, &err) != ES_OK)
            fprintf(stderr, "dump: undecodable message at %d/%" PRId64 ": %s\n", m->partition,
                    m->offset, err.message);
        d->hdr_stream_id = "";
        rd_kafka_headers_t *h = NULL;
        const void *val;
        size_t len;
        if (rd_kafka_message_headers(m, &h) == 0) {
            if (rd_kafka_header_get_last(h, "es-stream-id", &val, &len) == 0)
                d->hdr_stream_id = es_arena_strndup(&out->arena, val, len);
            if (rd_kafka_header_get_last(h, "es-version", &val, &len) == 0)
                d->hdr_version = strtoll(es_arena_strndup(&out->arena, val, len), NULL, 10);
        }
        if (m->offset + 1 >= hi[m->partition] && next[m->partition] < hi[m->partition])
            remaining--;
        next[m->partition] = m->offset + 1;
        rd_kafka_message_destroy(m);
    }
    rc = remaining == 0 ? 0 : -1;
done:
    if (md)
        rd_kafka_metadata_destroy(md);
    if (assign)
        rd_kafka_topic_partition_list_destroy(assign);
    free(hi);
    free(next);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return rc;
}

void dh_dump_free(dh_dump *d)
{
    if (!d)
        return;
    free(d->m);
    es_arena_free(&d->arena);
    memset(d, 0, sizeof *d);
}

/* Per-stream state of the check, in a simple open-addressing table. */
typedef struct sstate {
    const char *id;
    int64_t applied, expected;
    int32_t partition;
} sstate;

static uint64_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static sstate *slot(sstate *t, size_t cap, const char *id)
{
    for (size_t i = hash(id) & (cap - 1);; i = (i + 1) & (cap - 1))
        if (!t[i].id || !strcmp(t[i].id, id))
            return &t[i];
}

int dh_check_delivery(PGconn *c, const dh_dump *d, int64_t *dups, char *why, size_t whysz)
{
    *dups = 0;
    PGresult *r = PQexec(c, "SELECT stream_id, max(version), count(*) FROM es_events GROUP BY 1");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        snprintf(why, whysz, "query: %s", PQresultErrorMessage(r));
        PQclear(r);
        return -1;
    }
    size_t cap = 16;
    while (cap < (size_t)PQntuples(r) * 4 + 16)
        cap *= 2;
    sstate *t = es_xcalloc(cap, sizeof *t);
    int rc = -1;
    for (int i = 0; i < PQntuples(r); i++) {
        sstate *s = slot(t, cap, PQgetvalue(r, i, 0));
        s->id = PQgetvalue(r, i, 0);
        s->expected = strtoll(PQgetvalue(r, i, 1), NULL, 10);
        s->partition = -1;
        if (strtoll(PQgetvalue(r, i, 2), NULL, 10) != s->expected) {
            snprintf(why, whysz, "store: stream %s has holes", s->id);
            goto done;
        }
    }
    for (size_t i = 0; i < d->n; i++) {
        const dh_msg *m = &d->m[i];
        if (strcmp(m->key, m->ev.stream_id) || strcmp(m->key, m->hdr_stream_id) ||
            m->hdr_version != m->ev.version) {
            snprintf(why, whysz, "message %d/%" PRId64 ": key %s, envelope %s v%" PRId64
                     ", header %s v%" PRId64, m->partition, m->offset, m->key, m->ev.stream_id,
                     m->ev.version, m->hdr_stream_id, m->hdr_version);
            goto done;
        }
        sstate *s = slot(t, cap, m->key);
        if (!s->id) {
            snprintf(why, whysz, "message for unknown stream %s", m->key);
            goto done;
        }
        if (s->partition >= 0 && s->partition != m->partition) {
            snprintf(why, whysz, "stream %s in partitions %d and %d", m->key, s->partition,
                     m->partition);
            goto done;
        }
        s->partition = m->partition;
        if (m->ev.version == s->applied + 1)
            s->applied++;
        else if (m->ev.version <= s->applied)
            (*dups)++;
        else {
            snprintf(why, whysz, "stream %s: version %" PRId64 " arrived before %" PRId64
                     " (offset %" PRId64 ")", m->key, m->ev.version, s->applied + 1, m->offset);
            goto done;
        }
    }
    for (size_t i = 0; i < cap; i++)
        if (t[i].id && t[i].applied != t[i].expected) {
            snprintf(why, whysz, "stream %s: delivered up to v%" PRId64 " of %" PRId64, t[i].id,
                     t[i].applied, t[i].expected);
            goto done;
        }
    rc = 0;
done:
    free(t);
    PQclear(r);
    return rc;
}

void dh_feed_end(PGconn *c, uint64_t *txid, int64_t *position)
{
    PGresult *r = PQexec(c, "SELECT txid::text, position FROM es_events"
                            " ORDER BY es_events.txid DESC, position DESC LIMIT 1");
    *txid = 0;
    *position = 0;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
        *txid = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
        *position = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
    }
    PQclear(r);
}

int dh_wait_checkpoint(PGconn *c, const char *name, uint64_t txid, int64_t position, int timeout_ms)
{
    int64_t deadline = dh_now_ms() + timeout_ms;
    char t[24], p[24];
    snprintf(t, sizeof t, "%" PRIu64, txid);
    snprintf(p, sizeof p, "%" PRId64, position);
    const char *params[3] = {name, t, p};
    while (dh_now_ms() < deadline) {
        PGresult *r = PQexecParams(c, "SELECT (txid, position) >= ($2::xid8, $3::int8)"
                                      " FROM es_relay_checkpoint WHERE name = $1",
                                   3, NULL, params, NULL, NULL, 0);
        int done = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 &&
                   PQgetvalue(r, 0, 0)[0] == 't';
        PQclear(r);
        if (done)
            return 0;
        dh_sleep_ms(100);
    }
    return -1;
}

int dh_read_relay_status(const char *path, dh_relay_status *out)
{
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    int n = fscanf(f, "role=%d published=%lld failed=%lld republishes=%lld txid=%llu position=%lld kafka_ok=%d",
                   &out->role, &out->published, &out->failed, &out->republishes, &out->txid,
                   &out->position, &out->kafka_ok);
    fclose(f);
    return n == 7 ? 0 : -1;
}
