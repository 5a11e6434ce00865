/* The consumer group runner: a Kafka consumer (manual offset commits after the database's),
 * one thread polling batches for consumer_batch.c, rebalances, lag; see es/consumer.h for the
 * protocol. */
#define _GNU_SOURCE /* pthread_setname_np */
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "es/clock.h"
#include "es/log.h"
#include "es/metrics.h"
#include "consumer_internal.h"

static void say(es_consumer *c, int level, const char *fmt, va_list ap)
{
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    pthread_mutex_lock(&c->mu);
    snprintf(c->st.last_error, sizeof c->st.last_error, "%.255s", line);
    pthread_mutex_unlock(&c->mu);
    if (!c->quiet)
        es_log(level, "consumer", NULL, "[%s] %s", c->name, line);
}

void es__consumer_say(es_consumer *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    say(c, ES_LOG_INFO, fmt, ap);
    va_end(ap);
}

void es__consumer_warn(es_consumer *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    say(c, ES_LOG_WARN, fmt, ap);
    va_end(ap);
}

void es__consumer_nap_ms(int ms)
{
    es_sleep_us((int64_t)ms * 1000);
}

/* Writes "0,3,5" (the partitions of l) into out. */
static void partition_text(const rd_kafka_topic_partition_list_t *l, char *out, size_t cap)
{
    size_t used = 0;
    out[0] = '\0';
    for (int i = 0; l && i < l->cnt && used + 12 < cap; i++)
        used += (size_t)snprintf(out + used, cap - used, "%s%" PRId32, i ? "," : "", l->elems[i].partition);
}

/* Runs on the consumer thread, inside rd_kafka_consumer_poll, so never while a batch is being
 * applied: a revoke lands between two batches or while the next one is being polled (then
 * consumer_main abandons that batch's messages of the revoked partitions). With the
 * cooperative protocol (partition.assignment.strategy cooperative-sticky, the default here) a
 * rebalance moves only the partitions that change owner; the others keep being consumed.
 * Correctness never rests on who holds a partition: the per-stream versions in PostgreSQL decide
 * what is applied (docs/ARCHITECTURE.md, invariant 6). */
static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t e,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    es_consumer *c = opaque;
    int cooperative = !strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE");
    int assigning = e == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS;
    int lost = !assigning && rd_kafka_assignment_lost(rk);
    if (assigning) {
        if (cooperative)
            rd_kafka_error_destroy(rd_kafka_incremental_assign(rk, parts));
        else
            rd_kafka_assign(rk, parts);
    } else {
        if (cooperative)
            rd_kafka_error_destroy(rd_kafka_incremental_unassign(rk, parts));
        else
            rd_kafka_assign(rk, NULL);
    }
    int64_t now_cnt = -1;
    rd_kafka_topic_partition_list_t *now = NULL;
    if (rd_kafka_assignment(rk, &now) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        now_cnt = now->cnt;
        rd_kafka_topic_partition_list_destroy(now);
    }
    pthread_mutex_lock(&c->mu);
    if (now_cnt >= 0)
        c->st.assigned_partitions = now_cnt;
    if (parts && parts->cnt > 0)
        c->st.rebalances++;
    pthread_mutex_unlock(&c->mu);
    if (parts && parts->cnt > 0) {
        char list[256];
        partition_text(parts, list, sizeof list);
        es__consumer_say(c, "%s partitions %s of %s (%s protocol%s); %" PRId64 " assigned now",
                         assigning ? "assigned" : lost ? "lost" : "revoked", list, c->topic,
                         cooperative ? "cooperative" : "eager", lost ? ", session or generation expired" : "", now_cnt);
    }
}

static const char *kafka_prop(const es_consumer *c, const char *key);

static void on_kafka_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    es_consumer *c = rd_kafka_opaque(rk);
    /* with kafka.debug set, librdkafka's debug lines too (they were asked for) */
    if (c && !c->quiet && (level <= 2 || kafka_prop(c, "debug")))
        es_log(level <= 2 ? ES_LOG_WARN : ES_LOG_INFO, "consumer", NULL, "[%s] kafka %s: %s", c->name, fac, buf);
}

/* Offsets are committed to Kafka after the database committed their batch, merged per partition,
 * without waiting for the broker's answer: the stream versions in the database are what makes
 * processing exactly-once, so a commit lost, refused or late only means redelivery, which is
 * deduplicated.
 *
 * They are sent only while the member is known to be in a steady group: from the statistics
 * callback (every STATS_MS), when the statistics say join_state "steady" and are at most
 * STATS_FRESH_US old. A member's requests to the coordinator are answered in order, so an
 * OffsetCommit sent after the member's JoinGroup is answered only once the join completed, with
 * the old generation: ILLEGAL_GENERATION, on which librdkafka (2.0) drops the member's whole
 * assignment as lost and joins again, which starts the next rebalance of the whole group.
 * Committing after every batch kept a commit in flight nearly all the time, so nearly every
 * rebalance was followed by another: tens to hundreds per run on the mock cluster, whose joins
 * last session.timeout.ms - 1 s. With statistics turned off (kafka.statistics.interval.ms = 0)
 * offsets go once a second, rebalance or not. */
#define STATS_MS 500
#define STATS_FRESH_US 100000
#define COMMIT_EVERY_US 1000000

typedef struct pending_offsets {
    rd_kafka_topic_partition_list_t *l; /* per partition: the offset after its last applied message */
    int64_t sent_us;                    /* when offsets were last sent (monotonic) */
    int by_stats;                       /* sent from the statistics callback (else by the clock) */
} pending_offsets;

/* The consumer thread's pending offsets, for the statistics callback (which runs on that thread,
 * inside its poll). */
static _Thread_local pending_offsets *thread_pending;

/* Records, after the database committed the batch, the offsets following its messages. */
static void note_offsets(pending_offsets *po, rd_kafka_message_t **msgs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (msgs[i]->err)
            continue;
        const char *t = rd_kafka_topic_name(msgs[i]->rkt);
        rd_kafka_topic_partition_t *p = rd_kafka_topic_partition_list_find(po->l, t, msgs[i]->partition);
        if (!p)
            p = rd_kafka_topic_partition_list_add(po->l, t, msgs[i]->partition);
        if (msgs[i]->offset + 1 > p->offset)
            p->offset = msgs[i]->offset + 1;
    }
}

/* Sends the pending offsets of the partitions this member still holds (an offset of a partition
 * revoked meanwhile is its new owner's to commit: from here it could only move it backwards). */
static void send_offsets(es_consumer *c, pending_offsets *po)
{
    po->sent_us = es_mono_us();
    if (po->l->cnt == 0)
        return;
    rd_kafka_topic_partition_list_t *a = NULL, *send = rd_kafka_topic_partition_list_new(po->l->cnt);
    if (rd_kafka_assignment(c->rk, &a) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        for (int i = 0; i < po->l->cnt; i++)
            if (rd_kafka_topic_partition_list_find(a, po->l->elems[i].topic, po->l->elems[i].partition))
                rd_kafka_topic_partition_list_add(send, po->l->elems[i].topic, po->l->elems[i].partition)->offset =
                    po->l->elems[i].offset;
        rd_kafka_topic_partition_list_destroy(a);
    }
    if (send->cnt > 0) {
        rd_kafka_resp_err_t e = rd_kafka_commit(c->rk, send, 1);
        if (e)
            es__consumer_say(c, "offset commit refused (%s): those messages will be redelivered and skipped",
                             rd_kafka_err2str(e));
    }
    rd_kafka_topic_partition_list_destroy(send);
    rd_kafka_topic_partition_list_destroy(po->l);
    po->l = rd_kafka_topic_partition_list_new(8);
}

/* Statistics (JSON, every STATS_MS ms): the group's join state decides whether offsets go now. */
static int on_stats(rd_kafka_t *rk, char *json, size_t len, void *opaque)
{
    (void)rk, (void)len;
    es_consumer *c = opaque;
    pending_offsets *po = thread_pending;
    if (po) {
        po->by_stats = 1;
        /* Only fresh news: statistics wait in the queue while the thread applies a batch, and the
         * group may have started a rebalance meanwhile ("ts" is librdkafka's CLOCK_MONOTONIC). */
        const char *ts = strstr(json, "\"ts\":");
        int64_t at = ts ? strtoll(ts + 5, NULL, 10) : 0;
        if (at > 0 && es_mono_us() - at < STATS_FRESH_US && strstr(json, "\"join_state\": \"steady\""))
            send_offsets(c, po);
    }
    return 0; /* librdkafka frees json */
}

/* Without statistics (they were turned off), offsets go once a second, rebalance or not. */
static void offsets_by_clock(es_consumer *c, pending_offsets *po)
{
    if (!po->by_stats && es_mono_us() - po->sent_us >= COMMIT_EVERY_US)
        send_offsets(c, po);
}

/* Consumer lag: high watermark minus position over the assigned partitions (both known
 * locally: watermarks come with every fetch, so this does not call the brokers), at most twice
 * a second. */
static void measure_lag(es_consumer *c)
{
    int64_t now_us = es_mono_us();
    if (now_us - c->lag_at_us < 500000)
        return;
    c->lag_at_us = now_us;
    rd_kafka_topic_partition_list_t *a = NULL;
    if (rd_kafka_assignment(c->rk, &a) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return;
    if (rd_kafka_position(c->rk, a) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        rd_kafka_topic_partition_list_destroy(a);
        return;
    }
    /* A partition assigned by a rebalance has no position until a message of it is consumed:
     * where the load has stopped, none comes. Its committed offset (where the member will start)
     * stands in; asking the coordinator for it is a round trip, so only then. */
    rd_kafka_topic_partition_list_t *u = rd_kafka_topic_partition_list_new(a->cnt > 0 ? a->cnt : 1);
    for (int i = 0; i < a->cnt; i++)
        if (a->elems[i].offset < 0)
            rd_kafka_topic_partition_list_add(u, a->elems[i].topic, a->elems[i].partition);
    if (u->cnt > 0) {
        if (rd_kafka_committed(c->rk, u, 1000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
            rd_kafka_topic_partition_list_destroy(u);
            rd_kafka_topic_partition_list_destroy(a);
            return;
        }
        for (int i = 0; i < u->cnt; i++) {
            rd_kafka_topic_partition_t *p = rd_kafka_topic_partition_list_find(a, u->elems[i].topic, u->elems[i].partition);
            if (p && !u->elems[i].err)
                p->offset = u->elems[i].offset; /* still < 0 when nothing was committed: from the start */
        }
    }
    rd_kafka_topic_partition_list_destroy(u);
    int64_t lag = 0;
    /* A member the group gave no partition (more members than partitions) is behind on nothing;
     * before its first assignment the lag is not known. */
    pthread_mutex_lock(&c->mu);
    int joined = c->st.rebalances > 0;
    pthread_mutex_unlock(&c->mu);
    int known = a->cnt > 0 || joined;
    for (int i = 0; known && i < a->cnt; i++) {
        int64_t lo = -1, hi = -1;
        if (rd_kafka_get_watermark_offsets(c->rk, a->elems[i].topic, a->elems[i].partition, &lo, &hi) ||
            hi < 0) {
            known = 0;
            break;
        }
        int64_t pos = a->elems[i].offset >= 0 ? a->elems[i].offset : lo;
        if (hi > pos)
            lag += hi - pos;
    }
    rd_kafka_topic_partition_list_destroy(a);
    int64_t now_ms = es_now_us() / 1000; /* compared with Kafka's wall-clock timestamps */
    pthread_mutex_lock(&c->mu);
    c->st.lag_messages = known ? lag : -1;
    c->st.lag_seconds = known && lag > 0 && c->last_ts_ms > 0 && now_ms > c->last_ts_ms
                            ? (double)(now_ms - c->last_ts_ms) / 1000.0
                            : 0.0;
    pthread_mutex_unlock(&c->mu);
}

static int64_t rebalances(es_consumer *c)
{
    pthread_mutex_lock(&c->mu);
    int64_t n = c->st.rebalances;
    pthread_mutex_unlock(&c->mu);
    return n;
}

static int rebalanced(es_consumer *c, int64_t seen) { return rebalances(c) != seen; }

/* A rebalance ran while the batch was being polled: its messages from partitions this member no
 * longer holds are abandoned, unapplied and uncommitted. Their new owner starts at the last
 * committed offset, which is at or before them (offsets are committed only after the database
 * committed), so nothing is skipped; not applying them here means the two members do not work on
 * the same streams at once (which the stored versions would make safe, at the price of a rolled
 * back batch), and an offset commit from this member cannot move a partition it lost backwards.
 * Returns the number of messages kept (moved to the front of msgs). */
static size_t drop_revoked(es_consumer *c, rd_kafka_message_t **msgs, size_t n)
{
    rd_kafka_topic_partition_list_t *a = NULL;
    if (rd_kafka_assignment(c->rk, &a) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return n; /* cannot tell: apply them all, the stored versions keep it exactly-once */
    size_t kept = 0, dropped = 0;
    for (size_t i = 0; i < n; i++) {
        if (rd_kafka_topic_partition_list_find(a, rd_kafka_topic_name(msgs[i]->rkt), msgs[i]->partition)) {
            msgs[kept++] = msgs[i];
        } else {
            rd_kafka_message_destroy(msgs[i]);
            dropped++;
        }
    }
    rd_kafka_topic_partition_list_destroy(a);
    if (dropped) {
        pthread_mutex_lock(&c->mu);
        c->st.abandoned += (int64_t)dropped;
        pthread_mutex_unlock(&c->mu);
        es__consumer_say(c, "left %zu polled messages of revoked partitions to their new owner", dropped);
    }
    return kept;
}

static void *consumer_main(void *arg)
{
    es_consumer *c = arg;
    pthread_setname_np(pthread_self(), "es-consumer");
    size_t cap = (size_t)c->batch_max;
    rd_kafka_message_t **msgs = es_xcalloc(cap, sizeof *msgs);
    pending_offsets po = {.l = rd_kafka_topic_partition_list_new(8), .sent_us = es_mono_us()};
    thread_pending = &po;
    while (!atomic_load(&c->stop)) {
        measure_lag(c);
        offsets_by_clock(c, &po);
        int64_t seen = rebalances(c);
        size_t n = 0;
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c->rk, 200);
        while (m) {
            if (m->err) {
                if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                    es__consumer_say(c, "kafka: %s", rd_kafka_message_errstr(m));
                rd_kafka_message_destroy(m);
            } else {
                msgs[n++] = m;
            }
            if (n == cap)
                break;
            m = rd_kafka_consumer_poll(c->rk, 0);
        }
        if (n == 0)
            continue;
        if (rebalanced(c, seen))
            n = drop_revoked(c, msgs, n);
        if (n == 0)
            continue;
        if (es__consumer_process_batch(c, msgs, n) == 0)
            note_offsets(&po, msgs, n);
        for (size_t i = 0; i < n; i++)
            rd_kafka_message_destroy(msgs[i]);
    }
    send_offsets(c, &po); /* rd_kafka_consumer_close waits for it */
    thread_pending = NULL;
    rd_kafka_topic_partition_list_destroy(po.l);
    free(msgs);
    return NULL;
}

/* The value the application's librdkafka properties give key (the last one wins, as in
 * rd_kafka_conf_set), or NULL. */
static const char *kafka_prop(const es_consumer *c, const char *key)
{
    const char *v = NULL;
    for (size_t i = 0; c->props[i] && c->props[i + 1]; i += 2)
        if (!strcmp(c->props[i], key))
            v = c->props[i + 1];
    return v;
}

/* heartbeat.interval.ms for a session timeout: a third of it (Kafka's rule of thumb), at least
 * 100 ms. It follows the session timeout in effect, kafka.session.timeout.ms included: a heartbeat
 * derived from the 10 s default while a property shortened the session to 3 s came every 3.3 s,
 * so each member's session expired between two heartbeats, over and over, and every expiry set
 * off a rebalance of the whole group (hundreds in a run on the mock cluster, with either
 * assignment protocol). A kafka.heartbeat.interval.ms, applied after it, still wins. */
static int heartbeat_ms(int session_ms) { return session_ms / 3 > 100 ? session_ms / 3 : 100; }

static void consumer_free(es_consumer *c)
{
    if (!c)
        return;
    if (c->rk)
        rd_kafka_destroy(c->rk);
    es_pg_session_free(c->d);
    for (size_t i = 0; c->props && c->props[i]; i++)
        free(c->props[i]);
    free(c->props);
    free(c->name);
    free(c->group);
    free(c->topic);
    free(c->bootstrap);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

static int start_member(const es_consumer_config *cfg, const char *boot, es_consumer **out, es_error *err);

int es_consumer_start(const es_consumer_config *cfg, es_consumer **out, es_error *err)
{
    *out = NULL;
    if (!cfg || !cfg->name || !cfg->name[0] || !cfg->conninfo || !cfg->handle)
        return es_error_set(err, ES_INVALID_ARGUMENT, "", "consumer: name, conninfo and handle are required");
    char boot[1024] = "";
    if (cfg->bootstrap_file) {
        FILE *f = fopen(cfg->bootstrap_file, "r");
        if (f) {
            if (fgets(boot, sizeof boot, f))
                boot[strcspn(boot, "\r\n")] = '\0';
            fclose(f);
        }
    }
    if (!boot[0] && cfg->bootstrap_servers)
        snprintf(boot, sizeof boot, "%s", cfg->bootstrap_servers);
    if (!boot[0])
        return es_error_set(err, ES_INVALID_ARGUMENT, "bootstrap_servers",
                            "consumer: no Kafka bootstrap servers");

    if (!cfg->topic || !cfg->topic[0]) /* the application's to name: no topic is the runtime's */
        return es_error_set(err, ES_INVALID_ARGUMENT, "topic", "consumer: no Kafka topic");
    if (cfg->members < 0 || cfg->members > ES_CONSUMER_MAX_MEMBERS)
        return es_error_set(err, ES_INVALID_ARGUMENT, "members", "consumer %s: members must be 1 to %d, not %d",
                            cfg->name, ES_CONSUMER_MAX_MEMBERS, cfg->members);
    /* Each member its own es_consumer, chained through next: the first is the caller's handle. */
    int n = cfg->members > 0 ? cfg->members : 1;
    es_consumer **link = out;
    for (int i = 0; i < n; i++) {
        int rc = start_member(cfg, boot, link, err);
        if (rc != ES_OK) {
            es_consumer_stop(*out);
            *out = NULL;
            return rc;
        }
        link = &(*link)->next;
    }
    return ES_OK;
}

/* Starts one member of cfg's consumer: its session, its Kafka consumer subscribed, its thread. */
static int start_member(const es_consumer_config *cfg, const char *boot, es_consumer **out, es_error *err)
{
    es_consumer *c = es_xcalloc(1, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    atomic_init(&c->stop, 0);
    c->name = es_xstrdup(cfg->name);
    c->group = es_xstrdup(cfg->group_id && cfg->group_id[0] ? cfg->group_id : cfg->name);
    c->topic = es_xstrdup(cfg->topic);
    c->bootstrap = es_xstrdup(boot);
    size_t np = 0;
    while (cfg->kafka_props && cfg->kafka_props[np])
        np++;
    c->props = es_xcalloc(np + 1, sizeof *c->props);
    for (size_t i = 0; i < np; i++)
        c->props[i] = es_xstrdup(cfg->kafka_props[i]);
    c->handle = cfg->handle;
    c->handle_batch = cfg->handle_batch;
    c->data = cfg->data;
    c->committed = cfg->committed;
    c->committed_data = cfg->committed_data;
    c->st.lag_messages = -1;
    c->max_retries = cfg->max_retries > 0 ? cfg->max_retries : 3;
    c->batch_max = cfg->batch_max > 0 ? cfg->batch_max : 1000;
    c->session_ms = cfg->session_timeout_ms > 0 ? cfg->session_timeout_ms : 10000;
    c->quiet = cfg->quiet;
    int rc;
    if (!(c->d = es__consumer_session(cfg->conninfo, err))) {
        rc = err ? err->code : ES_INVALID_ARGUMENT;
        goto fail;
    }
    if ((rc = es_pg_session_ensure(c->d, err)) != ES_OK)
        goto fail;

    const char *prop_session = kafka_prop(c, "session.timeout.ms");
    if (prop_session && atoi(prop_session) > 0)
        c->session_ms = atoi(prop_session); /* a bad value: librdkafka refuses it below */
    char errstr[512], session[16], heartbeat[16], stats[16];
    snprintf(stats, sizeof stats, "%d", STATS_MS);
    snprintf(session, sizeof session, "%d", c->session_ms);
    snprintf(heartbeat, sizeof heartbeat, "%d", heartbeat_ms(c->session_ms));
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    const char *base[] = {"bootstrap.servers", c->bootstrap, "group.id", c->group,
                          "enable.auto.commit", "false", "auto.offset.reset", "earliest",
                          "session.timeout.ms", session, "heartbeat.interval.ms", heartbeat,
                          /* Instances share the partitions; a member joining or leaving moves
                           * only the partitions that change owner (see on_rebalance). */
                          "partition.assignment.strategy", "cooperative-sticky",
                          "client.id", "es-consumer", "log.connection.close", "false",
                          "reconnect.backoff.max.ms", "1000", "socket.nagle.disable", "true",
                          "statistics.interval.ms", stats /* when offsets are committed */, NULL};
    for (size_t i = 0; base[i]; i += 2)
        if (rd_kafka_conf_set(conf, base[i], base[i + 1], errstr, sizeof errstr) != RD_KAFKA_CONF_OK)
            goto bad_conf;
    for (size_t i = 0; c->props[i] && c->props[i + 1]; i += 2)
        if (rd_kafka_conf_set(conf, c->props[i], c->props[i + 1], errstr, sizeof errstr) !=
            RD_KAFKA_CONF_OK)
            goto bad_conf;
    rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
    rd_kafka_conf_set_stats_cb(conf, on_stats);
    rd_kafka_conf_set_log_cb(conf, on_kafka_log);
    rd_kafka_conf_set_opaque(conf, c);
    c->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
    if (!c->rk) {
        rc = es_error_set(err, ES_INVALID_ARGUMENT, "kafka", "consumer: %s", errstr);
        goto fail;
    }
    rd_kafka_poll_set_consumer(c->rk);
    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(topics, c->topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(c->rk, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (e) {
        rc = es_error_set(err, ES_INVALID_ARGUMENT, "topic", "consumer: subscribe %s: %s",
                          c->topic, rd_kafka_err2str(e));
        goto fail;
    }
    int e2 = pthread_create(&c->thread, NULL, consumer_main, c);
    if (e2 != 0) {
        rc = es_error_set(err, ES_RESOURCE_EXHAUSTED, "", "consumer %s: cannot start its thread: %s", c->name,
                          strerror(e2));
        goto fail;
    }
    *out = c;
    return ES_OK;

bad_conf:
    rd_kafka_conf_destroy(conf);
    rc = es_error_set(err, ES_INVALID_ARGUMENT, "kafka", "consumer configuration: %s", errstr);
fail:
    consumer_free(c);
    return rc;
}

void es_consumer_stop(es_consumer *c)
{
    if (!c)
        return;
    /* All members finish their batch at once, then each leaves the group. */
    for (es_consumer *m = c; m; m = m->next)
        atomic_store(&m->stop, 1);
    while (c) {
        es_consumer *next = c->next;
        pthread_join(c->thread, NULL);
        rd_kafka_consumer_close(c->rk);
        consumer_free(c);
        c = next;
    }
}

/* Adds member m's counters into sum (the first member's copied as they are). */
static void add_stats(es_consumer_stats *sum, const es_consumer_stats *m)
{
    sum->messages += m->messages;
    sum->applied += m->applied;
    sum->duplicates += m->duplicates;
    sum->gap_filled += m->gap_filled;
    sum->dead_letters += m->dead_letters;
    sum->retries += m->retries;
    sum->assigned_partitions += m->assigned_partitions;
    sum->batches += m->batches;
    sum->batch_fallbacks += m->batch_fallbacks;
    sum->lag_messages = sum->lag_messages < 0 || m->lag_messages < 0 ? -1 : sum->lag_messages + m->lag_messages;
    if (m->lag_seconds > sum->lag_seconds)
        sum->lag_seconds = m->lag_seconds;
    sum->rebalances += m->rebalances;
    sum->abandoned += m->abandoned;
    if (!sum->last_error[0])
        memcpy(sum->last_error, m->last_error, sizeof sum->last_error);
}

void es_consumer_stats_get(es_consumer *c, es_consumer_stats *out)
{
    pthread_mutex_lock(&c->mu);
    *out = c->st;
    pthread_mutex_unlock(&c->mu);
    for (es_consumer *m = c->next; m; m = m->next) {
        es_consumer_stats st;
        pthread_mutex_lock(&m->mu);
        st = m->st;
        pthread_mutex_unlock(&m->mu);
        add_stats(out, &st);
    }
}

void es_consumer_write_metrics(es_consumer *const *cs, size_t n, es_buf *b)
{
    static const char *const fam[] = {"es_consumer_messages_total", "es_consumer_applied_total",
                                      "es_consumer_duplicates_total", "es_consumer_gap_filled_total",
                                      "es_consumer_dead_letters_total", "es_consumer_retries_total",
                                      "es_consumer_assigned_partitions", "es_consumer_batches_total",
                                      "es_consumer_batch_fallbacks_total", "es_consumer_lag_messages",
                                      "es_consumer_lag_seconds", "es_consumer_rebalances_total",
                                      "es_consumer_abandoned_total"};
    static const char *const help[] = {"Kafka messages processed.", "Events applied and committed.",
                                       "Events skipped as already applied.", "Events read from the store to close a gap.",
                                       "Events written to es_dead_letters.", "Handler re-attempts.",
                                       "Partitions assigned to this member.", "PostgreSQL transactions committed.",
                                       "Batches the set-wise path gave back to one-message-at-a-time processing.",
                                       "Messages behind the partitions' high watermarks (consumer lag; -1 until known).",
                                       "Age of the last message applied while behind; 0 when caught up.",
                                       "Rebalances that assigned or revoked partitions of this member.",
                                       "Polled messages left to the new owner of their revoked partition."};
    static const int gauge[] = {0, 0, 0, 0, 0, 0, 1, 0, 0, 1, 1, 0, 0};
    es_consumer_stats *st = es_xcalloc(n ? n : 1, sizeof *st);
    for (size_t k = 0; k < n; k++)
        if (cs[k])
            es_consumer_stats_get(cs[k], &st[k]);
    for (size_t i = 0; i < sizeof fam / sizeof fam[0]; i++) {
        es_metrics_family(b, fam[i], gauge[i] ? "gauge" : "counter", help[i]);
        for (size_t k = 0; k < n; k++) {
            if (!cs[k])
                continue;
            const double v[] = {(double)st[k].messages, (double)st[k].applied, (double)st[k].duplicates,
                                (double)st[k].gap_filled, (double)st[k].dead_letters, (double)st[k].retries,
                                (double)st[k].assigned_partitions, (double)st[k].batches,
                                (double)st[k].batch_fallbacks, (double)st[k].lag_messages, st[k].lag_seconds,
                                (double)st[k].rebalances, (double)st[k].abandoned};
            char labels[300], name[256];
            es_metrics_label_value(name, sizeof name, cs[k]->name);
            snprintf(labels, sizeof labels, "consumer=\"%s\"", name);
            es_metrics_sample(b, fam[i], labels, v[i]);
        }
    }
    free(st);
}
