/* The outbox relay thread; see es/relay.h for the guarantees and why they hold. */
#define _GNU_SOURCE /* pthread_setname_np */
#include "es/clock.h"
#include "es/relay.h"
#include "es/metrics.h"
#include "es/log.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>
#include <librdkafka/rdkafka.h>

#include "es/buf.h"
#include "es/pg_session.h"
#include "event_rows.h"
#include "relay_topics.h"

struct es_relay {
    /* configuration (owned copies) */
    char *conninfo, *bootstrap, *bootstrap_file, *name, *lock_name;
    es__relay_topics topics;     /* where each stream type's events go (relay_topics.c) */
    char **props;
    int poll_ms, lock_retry_ms, msg_timeout_ms, stats_ms, checkpoint_ms, quiet;
    size_t batch;
    es__relay_partitioner partitioner;  /* the producer's, to order a round (NULL: keep the feed's) */

    pthread_t thread;
    atomic_int stop;
    pthread_mutex_t mu;          /* guards st */
    es_relay_status st;

    /* relay thread only */
    es_pg_session *lock;         /* session holding the advisory lock; writes the checkpoint */
    int holder;
    es_feed *feed;
    rd_kafka_t *rk;
    char bootstrap_used[1024];
    char cluster_id[64];
    es_feed_cursor cursor;
    int backoff_ms;
    int64_t next_stats_ms, next_check_ms;
    int64_t next_save_ms;          /* the checkpoint is written again no sooner (checkpoint_ms) */
    es_feed_cursor saved;          /* what es_relay_checkpoint holds (r->cursor: delivered) */
};

/* Outcome of one produce round, filled by the delivery report callback (relay thread). */
typedef struct round {
    size_t pending, failed;
    rd_kafka_resp_err_t first_err;
} round;

void es__relay_say(es_relay *r, const char *fmt, ...)
{
    if (r->quiet)
        return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    es_log(ES_LOG_INFO, "relay", NULL, "[%s] %s", r->name, line);
}

void es__relay_set_error(es_relay *r, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&r->mu);
    int fresh = strcmp(r->st.last_error, msg) != 0;
    snprintf(r->st.last_error, sizeof r->st.last_error, "%s", msg);
    pthread_mutex_unlock(&r->mu);
    if (fresh)
        es__relay_say(r, "%s", msg);
}

static void set_role(es_relay *r, es_relay_role role)
{
    pthread_mutex_lock(&r->mu);
    es_relay_role old = r->st.role;
    r->st.role = role;
    pthread_mutex_unlock(&r->mu);
    if (old != role)
        es__relay_say(r, "%s", role == ES_RELAY_ACTIVE    ? "active: holds the relay lock"
                               : role == ES_RELAY_STANDBY ? "standby: another relay holds the lock"
                                                          : "disconnected");
}

/* Sleeps up to ms, waking early when stop is requested. */
static void nap(es_relay *r, int ms)
{
    while (ms > 0 && !atomic_load(&r->stop)) {
        int step = ms < 50 ? ms : 50;
        es_sleep_us((int64_t)step * 1000);
        ms -= step;
    }
}

static void backoff(es_relay *r)
{
    r->backoff_ms = r->backoff_ms ? r->backoff_ms * 2 : 250;
    if (r->backoff_ms > 5000)
        r->backoff_ms = 5000;
    nap(r, r->backoff_ms);
}

/* ---- PostgreSQL: lock session and checkpoint ---- */

/* Ends the lock session: the advisory lock goes with it. */
static void drop_lock_session(es_relay *r)
{
    es_pg_session_close(r->lock);
    r->holder = 0;
}

static int lock_held_session(es_relay *r) { return es_pg_session_conn(r->lock) != NULL; }

static int lock_session(es_relay *r)
{
    es_error err = {0};
    if (es_pg_session_ensure(r->lock, &err) != ES_OK) {
        es__relay_set_error(r, "%s", err.message);
        drop_lock_session(r);
        return -1;
    }
    return 0;
}

/* Runs a parameterised statement on the lock session; returns the result or NULL (error
 * recorded; the session dropped when the connection is the problem). */
static PGresult *lock_exec(es_relay *r, const char *sql, int n, const char *const *params,
                           ExecStatusType want)
{
    PGresult *res = PQexecParams(es_pg_session_conn(r->lock), sql, n, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) == want)
        return res;
    es_error err = {0};
    es_pg_session_fail(r->lock, res, "relay", &err);
    es__relay_set_error(r, "%s", err.message);
    if (PQstatus(es_pg_session_conn(r->lock)) != CONNECTION_OK)
        drop_lock_session(r);
    PQclear(res);
    return NULL;
}

static int try_lock(es_relay *r)
{
    const char *p[1] = {r->lock_name};
    PGresult *res = lock_exec(r, "SELECT pg_try_advisory_lock(hashtextextended($1, 0))", 1, p,
                              PGRES_TUPLES_OK);
    if (!res)
        return -1;
    r->holder = PQgetvalue(res, 0, 0)[0] == 't';
    PQclear(res);
    return r->holder;
}

/* Loads (creating when absent) the checkpoint row into r->cursor and stored_cluster. */
static int load_checkpoint(es_relay *r, char *stored_cluster, size_t sz)
{
    const char *p[1] = {r->name};
    PGresult *res = lock_exec(r, "INSERT INTO es_relay_checkpoint (name) VALUES ($1)"
                                 " ON CONFLICT (name) DO NOTHING", 1, p, PGRES_COMMAND_OK);
    if (!res)
        return -1;
    PQclear(res);
    res = lock_exec(r, "SELECT txid::text, position, coalesce(cluster_id, '')"
                       " FROM es_relay_checkpoint WHERE name = $1", 1, p, PGRES_TUPLES_OK);
    if (!res)
        return -1;
    if (PQntuples(res) != 1) {
        PQclear(res);
        es__relay_set_error(r, "checkpoint row %s vanished", r->name);
        return -1;
    }
    r->cursor.txid = es_feed_parse_txid(PQgetvalue(res, 0, 0));
    r->cursor.position = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
    r->saved = r->cursor;
    snprintf(stored_cluster, sz, "%s", PQgetvalue(res, 0, 2));
    PQclear(res);
    return 0;
}

/* Writes the checkpoint through the lock session: fails when the lock is gone with it. */
static int save_checkpoint(es_relay *r, es_feed_cursor c)
{
    char txid[24], pos[24];
    snprintf(txid, sizeof txid, "%" PRIu64, c.txid);
    snprintf(pos, sizeof pos, "%" PRId64, c.position);
    const char *p[4] = {r->name, txid, pos, r->cluster_id[0] ? r->cluster_id : NULL};
    PGresult *res = lock_exec(r, "UPDATE es_relay_checkpoint SET txid = $2::xid8,"
                                 " position = $3::int8, cluster_id = $4, updated_at = now()"
                                 " WHERE name = $1", 4, p, PGRES_COMMAND_OK);
    if (!res)
        return -1;
    int ok = strcmp(PQcmdTuples(res), "1") == 0;
    PQclear(res);
    if (!ok) {
        es__relay_set_error(r, "checkpoint row %s vanished", r->name);
        return -1;
    }
    r->cursor = r->saved = c;
    r->next_save_ms = es_mono_us() / 1000 + r->checkpoint_ms;
    pthread_mutex_lock(&r->mu);
    r->st.checkpoint = r->st.saved = c;
    r->st.checkpoints++;
    pthread_mutex_unlock(&r->mu);
    return 0;
}

static int unsaved(const es_relay *r)
{
    return r->cursor.txid != r->saved.txid || r->cursor.position != r->saved.position;
}

/* Writes the delivered position when it moved since the last write and checkpoint_ms have
 * passed since then (force: at once, the relay stops). */
static int save_progress(es_relay *r, int force)
{
    if (!unsaved(r) || (!force && es_mono_us() / 1000 < r->next_save_ms))
        return 0;
    return save_checkpoint(r, r->cursor);
}

/* Nothing (more) to read: waits for a notification of new events, at most poll_ms (events
 * written without one, or held back by an older transaction that ended without one, are found
 * by the read after the timeout), and no longer than until the unwritten position is due. */
static void wait_for_events(es_relay *r)
{
    int wait_ms = r->poll_ms;
    if (unsaved(r)) {
        int64_t due = r->next_save_ms - es_mono_us() / 1000;
        wait_ms = due < 1 ? 1 : due < wait_ms ? (int)due : wait_ms;
    }
    if (es_feed_wait(r->feed, wait_ms) < 0)
        nap(r, wait_ms);
}

/* ---- Kafka ---- */

/* The bootstrap servers to use now: the file's first line when configured, else the setting. */
static void current_bootstrap(es_relay *r, char *out, size_t sz)
{
    out[0] = '\0';
    if (r->bootstrap_file) {
        FILE *f = fopen(r->bootstrap_file, "r");
        if (f) {
            if (fgets(out, (int)sz, f))
                out[strcspn(out, "\r\n")] = '\0';
            fclose(f);
        }
    }
    if (!out[0] && r->bootstrap)
        snprintf(out, sz, "%s", r->bootstrap);
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    (void)opaque;
    round *rd = m->_private;
    if (!rd)
        return;
    rd->pending--;
    if (m->err) {
        if (!rd->failed)
            rd->first_err = m->err;
        rd->failed++;
    }
}

/* librdkafka repeats every refused connection while Kafka is away; the relay reports that state
 * itself (set_error), so only critical library messages are passed through. */
static void on_kafka_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    es_relay *r = rd_kafka_opaque(rk);
    if (level <= 2 && r && !r->quiet)
        es_log(ES_LOG_WARN, "relay", NULL, "[%s] kafka %s: %s", r->name, fac, buf);
}

static void producer_close(es_relay *r)
{
    if (!r->rk)
        return;
    rd_kafka_purge(r->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_poll(r->rk, 0);
    rd_kafka_destroy(r->rk);
    r->rk = NULL;
    pthread_mutex_lock(&r->mu);
    r->st.kafka_ok = 0;
    pthread_mutex_unlock(&r->mu);
}

/* Connects a producer, learns the cluster id, makes sure the topic exists, and restarts the
 * cursor at the feed's beginning when this is not the cluster the checkpoint was delivered to.
 * Returns 0 ready, -1 not now (error recorded, backoff is the caller's). */
static int producer_open(es_relay *r, const char *stored_cluster)
{
    char errstr[512], bootstrap[1024], num[32];
    current_bootstrap(r, bootstrap, sizeof bootstrap);
    if (!bootstrap[0]) {
        es__relay_set_error(r, "no Kafka bootstrap servers (%s)",
                            r->bootstrap_file ? r->bootstrap_file : "not configured");
        return -1;
    }
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    snprintf(num, sizeof num, "%d", r->msg_timeout_ms);
    const char *base[] = {
        "bootstrap.servers", bootstrap, "enable.idempotence", "true", "acks", "all",
        "linger.ms", "1", "message.timeout.ms", num, "client.id", "es-relay",
        "reconnect.backoff.ms", "100", "reconnect.backoff.max.ms", "1000",
        "log.connection.close", "false",
        /* Latency over packet count: a batch's requests are sent at once, not after an ACK. */
        "socket.nagle.disable", "true", NULL};
    for (size_t i = 0; base[i]; i += 2)
        if (rd_kafka_conf_set(conf, base[i], base[i + 1], errstr, sizeof errstr) != RD_KAFKA_CONF_OK)
            goto bad_conf;
    for (size_t i = 0; r->props && r->props[i] && r->props[i + 1]; i += 2)
        if (rd_kafka_conf_set(conf, r->props[i], r->props[i + 1], errstr, sizeof errstr) !=
            RD_KAFKA_CONF_OK)
            goto bad_conf;
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_log_cb(conf, on_kafka_log);
    rd_kafka_conf_set_opaque(conf, r);
    r->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!r->rk) {
        es__relay_set_error(r, "Kafka producer: %s", errstr);
        return -1;
    }
    snprintf(r->bootstrap_used, sizeof r->bootstrap_used, "%s", bootstrap);

    char *cid = rd_kafka_clusterid(r->rk, 5000);
    if (!cid) {
        es__relay_set_error(r, "Kafka unreachable at %s (no cluster id)", bootstrap);
        producer_close(r);
        return -1;
    }
    snprintf(r->cluster_id, sizeof r->cluster_id, "%s", cid);
    rd_kafka_mem_free(r->rk, cid);
    if (es__relay_topics_ensure(r, &r->topics, r->rk) < 0) {
        es__relay_set_error(r, "Kafka metadata failed at %s", bootstrap);
        producer_close(r);
        return -1;
    }
    int fresh = 0;
    if (stored_cluster[0] && strcmp(stored_cluster, r->cluster_id) != 0) {
        es__relay_say(r, "Kafka cluster changed (%s -> %s): republishing from the start of the feed",
                      stored_cluster, r->cluster_id);
        fresh = 1;
    } else if (r->cursor.position > 0) {
        int64_t n = es__relay_topics_messages(&r->topics, r->rk);
        if (n == 0) {
            es__relay_say(r, "topic %s%s is empty but the checkpoint is at %" PRId64
                             ": new cluster, republishing from the start of the feed", r->topics.names[0],
                          r->topics.n > 1 ? " (and every other topic of the relay)" : "",
                          r->cursor.position);
            fresh = 1;
        }
    }
    if (fresh || !stored_cluster[0]) {
        es_feed_cursor c = fresh ? (es_feed_cursor){0, 0} : r->cursor;
        if (save_checkpoint(r, c) != 0) {
            producer_close(r);
            return -1;
        }
        if (fresh) {
            pthread_mutex_lock(&r->mu);
            r->st.republishes++;
            pthread_mutex_unlock(&r->mu);
        }
    }
    pthread_mutex_lock(&r->mu);
    r->st.kafka_ok = 1;
    snprintf(r->st.cluster_id, sizeof r->st.cluster_id, "%s", r->cluster_id);
    pthread_mutex_unlock(&r->mu);
    es__relay_say(r, "connected to Kafka cluster %s at %s, topic %s, from (%" PRIu64 ", %" PRId64 ")",
                  r->cluster_id, bootstrap, r->topics.names[0], r->cursor.txid, r->cursor.position);
    return 0;

bad_conf:
    es__relay_set_error(r, "Kafka configuration: %s", errstr);
    rd_kafka_conf_destroy(conf);
    return -1;
}

/* Periodic health checks while active: the lock session answers, the bootstrap file did not
 * move to another cluster. Returns 0 to carry on, -1 to leave the active loop. */
static int still_active(es_relay *r)
{
    int64_t now = (es_mono_us() / 1000);
    if (now < r->next_check_ms)
        return 0;
    r->next_check_ms = now + 1000;
    PGresult *res = lock_exec(r, "SELECT 1", 0, NULL, PGRES_TUPLES_OK);
    if (!res) {
        es__relay_set_error(r, "lock session lost; giving up the active role");
        return -1;
    }
    PQclear(res);
    if (r->rk && r->bootstrap_file) {
        char b[1024];
        current_bootstrap(r, b, sizeof b);
        if (b[0] && strcmp(b, r->bootstrap_used) != 0) {
            es__relay_say(r, "bootstrap address changed (%s -> %s): reconnecting", r->bootstrap_used, b);
            producer_close(r);
        }
    }
    return 0;
}

static void update_stats(es_relay *r)
{
    int64_t now = (es_mono_us() / 1000);
    if (now < r->next_stats_ms || !r->feed)
        return;
    r->next_stats_ms = now + r->stats_ms;
    es_feed_stats s;
    if (es_feed_stats_get(r->feed, r->cursor, &s, NULL) != ES_OK)
        return;
    pthread_mutex_lock(&r->mu);
    r->st.lag_events = s.pending_events;
    r->st.lag_seconds = s.pending_age_s;
    r->st.held_back_events = s.held_back_events;
    r->st.held_back_seconds = s.held_back_age_s;
    r->st.oldest_xact_age_s = s.oldest_xact_age_s;
    pthread_mutex_unlock(&r->mu);
    if (s.held_back_events > 0 && s.held_back_age_s > 10)
        es__relay_say(r, "feed held back: %" PRId64 " committed events wait behind a transaction running"
                         " for %.0f s", s.held_back_events, s.oldest_xact_age_s);
}

/* Produces one batch and waits for every delivery report. Returns 0 when all were delivered,
 * -1 otherwise (the producer is closed so the next round starts clean from the checkpoint). */
static int publish(es_relay *r, const es_feed_batch *b)
{
    round rd = {0};
    es_buf value;
    es_buf_init(&value);
    int rc = -1;
    size_t *order = es__relay_round_order(&r->topics, r->partitioner, b->events, b->n);
    for (size_t k = 0; k < b->n && !atomic_load(&r->stop); k++) {
        const es_envelope_view *ev = &b->events[order ? order[k] : k];
        es_buf_reset(&value);
        es_envelope_pack(ev, &value);
        es_envelope_headers h;
        es_envelope_headers_of(ev, &h);
        rd_kafka_headers_t *hdrs = rd_kafka_headers_new(h.n);
        for (size_t k = 0; k < h.n; k++)
            rd_kafka_header_add(hdrs, h.h[k].name, -1, h.h[k].value, (ssize_t)h.h[k].len);
        for (;;) {
            rd_kafka_resp_err_t e = rd_kafka_producev(
                r->rk, RD_KAFKA_V_TOPIC(es__relay_topic_of(&r->topics, ev->stream_type)),
                RD_KAFKA_V_KEY(ev->stream_id, strlen(ev->stream_id)),
                RD_KAFKA_V_VALUE(value.data, value.len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_OPAQUE(&rd), RD_KAFKA_V_END);
            if (!e) {
                rd.pending++;
                break;
            }
            if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL && !atomic_load(&r->stop)) {
                rd_kafka_poll(r->rk, 100);
                continue;
            }
            rd_kafka_headers_destroy(hdrs);
            es__relay_set_error(r, "produce: %s", rd_kafka_err2str(e));
            goto out;
        }
        rd_kafka_poll(r->rk, 0);
    }
    while (rd.pending > 0 && !atomic_load(&r->stop)) {
        rd_kafka_poll(r->rk, 100);
        if (still_active(r) != 0 || !r->rk)
            goto out;
        update_stats(r);
    }
    if (atomic_load(&r->stop) || rd.pending > 0)
        goto out;
    if (rd.failed) {
        es__relay_set_error(r, "%zu of %zu deliveries failed: %s", rd.failed, b->n,
                            rd_kafka_err2str(rd.first_err));
        goto out;
    }
    rc = 0;
out:
    if (rc != 0 && r->rk) {
        /* Outstanding reports still point at rd on this stack frame: purge them now. */
        producer_close(r);
    }
    pthread_mutex_lock(&r->mu);
    r->st.kafka_ok = rc == 0;
    if (rc != 0)
        r->st.failed_batches++;
    pthread_mutex_unlock(&r->mu);
    es_buf_free(&value);
    free(order);
    return rc;
}

/* One active period: from taking the lock until losing it, stopping or a failure that needs
 * a fresh start (reported by returning). */
static void run_active(es_relay *r)
{
    es_error err;
    char stored[64];
    if (load_checkpoint(r, stored, sizeof stored) != 0)
        return;
    pthread_mutex_lock(&r->mu);
    r->st.checkpoint = r->cursor;
    pthread_mutex_unlock(&r->mu);
    if (!r->feed && es_feed_open(r->conninfo, &r->feed, &err) != ES_OK) {
        es__relay_set_error(r, "%s", err.message);
        backoff(r);
        return;
    }
    es_feed_batch b;
    es_feed_batch_init(&b);
    while (!atomic_load(&r->stop)) {
        if (still_active(r) != 0)
            break;
        if (!r->rk) {
            if (producer_open(r, stored) != 0) {
                if (!lock_held_session(r))
                    break;
                backoff(r);
                continue;
            }
            snprintf(stored, sizeof stored, "%s", r->cluster_id);
        }
        update_stats(r);
        if (es_feed_read(r->feed, r->cursor, r->batch, &b, &err) != ES_OK) {
            es__relay_set_error(r, "%s", err.message);
            backoff(r);
            continue;
        }
        if (b.n == 0) {
            r->backoff_ms = 0;
            if (save_progress(r, 0) != 0)
                break;
            wait_for_events(r);
            continue;
        }
        if (publish(r, &b) != 0) {
            if (!lock_held_session(r))
                break;
            backoff(r);
            continue;
        }
        /* Delivered: the next round reads after it; the checkpoint follows (save_progress). */
        r->cursor = b.last;
        r->backoff_ms = 0;
        pthread_mutex_lock(&r->mu);
        r->st.checkpoint = b.last;
        r->st.published += (int64_t)b.n;
        r->st.batches++;
        pthread_mutex_unlock(&r->mu);
        if (save_progress(r, 0) != 0)
            break;
        /* A round short of relay-batch took every event the read could see: what commits next
         * notifies (es_append's pg_notify), so wait for that rather than read again at once
         * (under load that read came back empty about once a round). */
        if (b.n < r->batch)
            wait_for_events(r);
    }
    /* Stopping (or leaving the active role): what was delivered is written while the lock
     * session, which still holds the lock if it answers, allows. */
    if (r->holder && lock_held_session(r))
        save_progress(r, 1);
    es_feed_batch_free(&b);
    producer_close(r);
}

static void *relay_main(void *arg)
{
    es_relay *r = arg;
    pthread_setname_np(pthread_self(), "es-relay");
    while (!atomic_load(&r->stop)) {
        if (lock_session(r) != 0) {
            set_role(r, ES_RELAY_STARTING);
            backoff(r);
            continue;
        }
        int got = try_lock(r);
        if (got < 0) {
            set_role(r, ES_RELAY_STARTING);
            backoff(r);
            continue;
        }
        if (!got) {
            set_role(r, ES_RELAY_STANDBY);
            r->backoff_ms = 0;
            nap(r, r->lock_retry_ms);
            continue;
        }
        set_role(r, ES_RELAY_ACTIVE);
        run_active(r);
        /* Leaving the active role: end the session so the lock goes with it. */
        drop_lock_session(r);
        if (!atomic_load(&r->stop))
            set_role(r, ES_RELAY_STARTING);
    }
    producer_close(r);
    es_feed_close(r->feed);
    r->feed = NULL;
    drop_lock_session(r);
    return NULL;
}

static char *dup_or_null(const char *s) { return s ? es_xstrdup(s) : NULL; }

static void relay_free(es_relay *r)
{
    for (size_t i = 0; r->props && r->props[i]; i++)
        free(r->props[i]);
    free(r->props);
    free(r->conninfo);
    free(r->bootstrap);
    free(r->bootstrap_file);
    es__relay_topics_free(&r->topics);
    free(r->name);
    free(r->lock_name);
    es_pg_session_free(r->lock);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

int es_relay_start(const es_relay_config *cfg, es_relay **out, es_error *err)
{
    *out = NULL;
    if (!cfg || !cfg->conninfo || !cfg->conninfo[0])
        return es_error_set(err, ES_INVALID_ARGUMENT, "conninfo", "relay: no PostgreSQL conninfo");
    if (!cfg->bootstrap_servers && !cfg->bootstrap_file)
        return es_error_set(err, ES_INVALID_ARGUMENT, "bootstrap_servers",
                            "relay: no Kafka bootstrap servers nor bootstrap file");
    if (!cfg->topic || !cfg->topic[0]) /* the application's to name: no topic is the runtime's */
        return es_error_set(err, ES_INVALID_ARGUMENT, "topic", "relay: no Kafka topic");
    es_relay *r = es_xcalloc(1, sizeof *r);
    r->conninfo = es_xstrdup(cfg->conninfo);
    r->bootstrap = dup_or_null(cfg->bootstrap_servers);
    r->bootstrap_file = dup_or_null(cfg->bootstrap_file);
    es__relay_topics_init(&r->topics, cfg);
    r->name = es_xstrdup(cfg->name && cfg->name[0] ? cfg->name : "default");
    size_t ln = strlen(r->name) + 16;
    r->lock_name = es_xmalloc(ln);
    snprintf(r->lock_name, ln, "es_relay:%s", r->name);
    size_t np = 0;
    while (cfg->kafka_props && cfg->kafka_props[np])
        np++;
    r->props = es_xcalloc(np + 1, sizeof *r->props);
    for (size_t i = 0; i < np; i++)
        r->props[i] = es_xstrdup(cfg->kafka_props[i]);
    r->batch = cfg->batch_size ? cfg->batch_size : 1000;
    const char *partitioner = NULL; /* the last one wins, as in rd_kafka_conf_set */
    for (size_t i = 0; r->props[i] && r->props[i + 1]; i += 2)
        if (!strcmp(r->props[i], "partitioner"))
            partitioner = r->props[i + 1];
    r->partitioner = es__relay_partitioner_of(partitioner);
    r->poll_ms = cfg->poll_interval_ms > 0 ? cfg->poll_interval_ms : 500;
    r->lock_retry_ms = cfg->lock_retry_ms > 0 ? cfg->lock_retry_ms : 1000;
    r->msg_timeout_ms = cfg->message_timeout_ms > 0 ? cfg->message_timeout_ms : 30000;
    r->stats_ms = cfg->stats_interval_ms > 0 ? cfg->stats_interval_ms : 2000;
    r->checkpoint_ms = cfg->checkpoint_interval_ms > 0 ? cfg->checkpoint_interval_ms : 0;
    r->quiet = cfg->quiet;
    atomic_init(&r->stop, 0);
    pthread_mutex_init(&r->mu, NULL);
    /* Server-side keepalives: a holder whose host vanished loses the lock in ~11 s instead of
     * the kernel's two hours (ignored on unix sockets). And the checkpoint commits without
     * waiting for its WAL flush: one lost in a crash only moves the restart point back, and what
     * is published again is deduplicated by every consumer (at-least-once); waiting put a disk
     * sync between every batch and the next. Commands' own commits stay synchronous. */
    es_pg_session_config sc = {.conninfo = r->conninfo, .application_name = "es-relay",
                               .settings = "SET tcp_keepalives_idle = 5; SET tcp_keepalives_interval = 2;"
                                           " SET tcp_keepalives_count = 3; SET synchronous_commit = off"};
    r->lock = es_pg_session_new(&sc, err);
    if (!r->lock) {
        relay_free(r);
        return err ? err->code : ES_INVALID_ARGUMENT;
    }
    int e = pthread_create(&r->thread, NULL, relay_main, r);
    if (e != 0) {
        relay_free(r);
        return es_error_set(err, ES_RESOURCE_EXHAUSTED, "", "relay: cannot start its thread: %s", strerror(e));
    }
    *out = r;
    return ES_OK;
}

void es_relay_stop(es_relay *r)
{
    if (!r)
        return;
    atomic_store(&r->stop, 1);
    pthread_join(r->thread, NULL);
    relay_free(r);
}

void es_relay_status_get(es_relay *r, es_relay_status *out)
{
    pthread_mutex_lock(&r->mu);
    *out = r->st;
    pthread_mutex_unlock(&r->mu);
}

static int kafka_up(const es_relay_status *st)
{
    return st->role == ES_RELAY_STANDBY || (st->role == ES_RELAY_ACTIVE && st->kafka_ok);
}

int es_relay_kafka_up(es_relay *relay)
{
    if (!relay)
        return 1;
    es_relay_status st;
    es_relay_status_get(relay, &st);
    return kafka_up(&st);
}

void es_relay_write_metrics(es_relay *relay, es_buf *b)
{
    if (!relay)
        return;
    es_relay_status st;
    es_relay_status_get(relay, &st);
    const es_metric_row r[] = {
        {"es_kafka_up", "gauge", "1 while the relay reaches Kafka (or another instance relays).", kafka_up(&st)},
        {"es_relay_active", "gauge", "1 when this instance holds the relay lock.", st.role == ES_RELAY_ACTIVE},
        {"es_relay_position", "gauge", "Global position of the last event delivered to Kafka.", (double)st.checkpoint.position},
        {"es_relay_published_total", "counter", "Messages delivered by this instance.", (double)st.published},
        {"es_relay_batches_total", "counter", "Relay rounds delivered (published / batches: events per round).", (double)st.batches},
        {"es_relay_checkpoints_total", "counter", "Checkpoint writes (at most one per checkpoint interval).", (double)st.checkpoints},
        {"es_relay_checkpoint_position", "gauge", "Global position written to the relay's checkpoint (a restart publishes again what follows).", (double)st.saved.position},
        {"es_relay_failed_batches_total", "counter", "Relay rounds abandoned and retried.", (double)st.failed_batches},
        {"es_relay_lag_events", "gauge", "Committed events not yet delivered to Kafka.", (double)st.lag_events},
        {"es_relay_lag_seconds", "gauge", "Age of the oldest undelivered event.", st.lag_seconds},
        {"es_feed_held_back_events", "gauge", "Committed events held back by an open transaction.", (double)st.held_back_events},
        {"es_feed_held_back_seconds", "gauge", "How long the feed has been held back.", st.held_back_seconds},
        {"es_feed_oldest_transaction_seconds", "gauge", "Age of the oldest open transaction.", st.oldest_xact_age_s},
    };
    ES_METRICS_ROWS(b, r);
}
