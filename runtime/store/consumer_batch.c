/* A polled batch applied in one transaction: set-wise when the application gives a batch
 * handler (one read of every stream's version, one handler call, one optimistic advance), one
 * message at a time for gaps, parked streams, undecodable messages and failures (savepoint per
 * message, retries, dead letters and parking). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "es/pg_pool.h"
#include "consumer_internal.h"

/* Records one message in es_dead_letters (inside the open transaction) and, when it belongs to
 * a stream whose event could not be applied, parks the stream. */
static int dead_letter(es_consumer *c, const rd_kafka_message_t *m, const es_envelope_view *ev,
                       const es_error *why, int park, es_error *err)
{
    char part[16], off[24], ver[24], id[24];
    snprintf(part, sizeof part, "%" PRId32, m->partition);
    snprintf(off, sizeof off, "%" PRId64, m->offset);
    snprintf(ver, sizeof ver, "%" PRId64, ev ? ev->version : 0);
    char msg[520];
    snprintf(msg, sizeof msg, "%s: %s", es_strerror(why->code), why->message);
    const char *params[8] = {c->name, c->topic, part, off, ev ? ev->stream_id : "", ver, msg,
                             m->payload ? (const char *)m->payload : ""};
    int lengths[8] = {0, 0, 0, 0, 0, 0, 0, (int)m->len};
    int formats[8] = {0, 0, 0, 0, 0, 0, 0, 1};
    PGresult *r = es__consumer_run(c->d, "es_c_dead", 8, params, lengths, formats);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        int rc = es_pg_session_fail(c->d, r, "consumer: dead letter", err);
        PQclear(r);
        return rc;
    }
    snprintf(id, sizeof id, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    if (park && ev && ev->stream_id[0]) {
        const char *p3[3] = {c->name, ev->stream_id, id};
        r = es__consumer_run(c->d, "es_c_park", 3, p3, NULL, NULL);
        int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        int rc = ok ? ES_OK : es_pg_session_fail(c->d, r, "park", err);
        PQclear(r);
        if (!ok)
            return rc;
    }
    /* An operator must see it: the stream's later events wait behind it (parked). */
    es__consumer_warn(c, "dead letter %s (partition %s offset %s, stream %s v%s): %s", id, part, off,
                     ev && ev->stream_id[0] ? ev->stream_id : "?", ver, msg);
    pthread_mutex_lock(&c->mu);
    c->st.dead_letters++;
    pthread_mutex_unlock(&c->mu);
    return ES_OK;
}

/* Processes one message inside the batch transaction. Returns ES_OK (applied, skipped or
 * dead-lettered) or ES_UNAVAILABLE / another error when the batch must be retried. */
static int process_message(es_consumer *c, const rd_kafka_message_t *m, counters *cnt,
                           es_arena *arena)
{
    es_error err = {0}, derr = {0};
    es_envelope_view ev;
    es_arena_reset(arena);
    if (es_envelope_unpack(m->payload, m->len, arena, &ev, &err) != ES_OK) {
        /* Keep what the headers say about the stream for whoever investigates. */
        rd_kafka_headers_t *hdrs = NULL;
        es_envelope_view hv;
        es_envelope_view_clear(&hv);
        if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR) {
            es_envelope_header h[32];
            size_t n = 0;
            const char *name;
            const void *val;
            size_t len;
            while (n < 32 && rd_kafka_header_get_all(hdrs, n, &name, &val, &len) == 0) {
                h[n] = (es_envelope_header){name, val, len};
                n++;
            }
            es_envelope_from_headers(h, n, arena, &hv);
        }
        if (!hv.stream_id[0] && m->key)
            hv.stream_id = es_arena_strndup(arena, m->key, m->key_len);
        return dead_letter(c, m, &hv, &err, 0, &derr) == ES_OK ? ES_OK : derr.code;
    }
    for (int attempt = 1;; attempt++) {
        if (es_pg_session_exec(c->d, "SAVEPOINT es_msg", "consumer: savepoint", &derr) != ES_OK)
            return derr.code;
        counters tmp = {0};
        int64_t parked_by = 0;
        outcome o = es__consumer_apply(c->d, c->name, c->handle, c->data, &ev, &tmp, &parked_by, &err);
        if (o == DB_DOWN)
            return ES_UNAVAILABLE;
        if (o == APPLIED || o == DUPLICATE) {
            if (es_pg_session_exec(c->d, "RELEASE SAVEPOINT es_msg", "consumer: release savepoint", &derr) != ES_OK)
                return derr.code;
            cnt->applied += tmp.applied;
            cnt->duplicates += tmp.duplicates;
            cnt->gap_filled += tmp.gap_filled;
            return ES_OK;
        }
        if (es_pg_session_exec(c->d, "ROLLBACK TO SAVEPOINT es_msg", "consumer: roll back to savepoint", &derr) != ES_OK)
            return derr.code;
        if (o == FAILED && attempt < c->max_retries) {
            pthread_mutex_lock(&c->mu);
            c->st.retries++;
            pthread_mutex_unlock(&c->mu);
            es__consumer_nap_ms(20 * attempt);
            continue;
        }
        /* PARKED, or FAILED for the last time: record it, park the stream, move on. */
        if (o == FAILED) {
            char what[384];
            snprintf(what, sizeof what, "after %d attempts: %.340s", attempt, err.message);
            snprintf(err.message, sizeof err.message, "%s", what);
        }
        return dead_letter(c, m, &ev, &err, 1, &derr) == ES_OK ? ES_OK : derr.code;
    }
}

/* ---- the set-wise path ---- */

typedef struct item {
    const rd_kafka_message_t *m;
    es_envelope_view ev;
} item;

static int item_cmp(const void *a, const void *b)
{
    const item *x = *(const item *const *)a, *y = *(const item *const *)b;
    int c = strcmp(x->ev.stream_id, y->ev.stream_id);
    if (c)
        return c;
    if (x->ev.version != y->ev.version)
        return x->ev.version < y->ev.version ? -1 : 1;
    return x->m->offset < y->m->offset ? -1 : x->m->offset > y->m->offset;
}

/* Applies msgs set-wise inside the open transaction: one statement reads the versions of every
 * stream of the batch, the batch handler applies the clean streams' events together, one
 * statement advances their versions if nobody else did meanwhile; streams with a gap or a
 * parking, and messages that do not decode, go through process_message (same transaction).
 * Returns ES_OK, ES_UNAVAILABLE, another database error, ES_ABORTED when the batch handler
 * failed (the caller rolls back and processes the batch one message at a time), or
 * ES_FAILED_PRECONDITION when another consumer moved a stream meanwhile (roll back, retry). */
static int process_set(es_consumer *c, rd_kafka_message_t **msgs, size_t n, counters *cnt, es_arena *arena,
                       es_error *err)
{
    es_arena fa;
    es_arena_init(&fa);
    es_buf ids, vers, expect, existed;
    es_buf_init(&ids);
    es_buf_init(&vers);
    es_buf_init(&expect);
    es_buf_init(&existed);
    int64_t nstreams = 0;
    item *items = es_arena_alloc(&fa, (n ? n : 1) * sizeof *items);
    item **sorted = es_arena_alloc(&fa, (n ? n : 1) * sizeof *sorted);
    const rd_kafka_message_t **slow = es_arena_alloc(&fa, (n ? n : 1) * sizeof *slow);
    es_envelope_view *fast = es_arena_alloc(&fa, (n ? n : 1) * sizeof *fast);
    size_t ni = 0, nslow = 0, nfast = 0;
    PGresult *r = NULL;
    int rc = ES_OK;
    for (size_t i = 0; i < n; i++) {
        if (msgs[i]->err)
            continue;
        es_error derr = {0};
        items[ni].m = msgs[i];
        if (es_envelope_unpack(msgs[i]->payload, msgs[i]->len, &fa, &items[ni].ev, &derr) != ES_OK)
            slow[nslow++] = msgs[i];   /* dead-lettered by process_message */
        else
            sorted[ni] = &items[ni], ni++;
    }
    qsort(sorted, ni, sizeof *sorted, item_cmp);
    size_t nkeys = 0;
    for (size_t i = 0; i < ni; i++)
        if (i == 0 || strcmp(sorted[i]->ev.stream_id, sorted[i - 1]->ev.stream_id))
            es_pg_array_elem(&ids, sorted[i]->ev.stream_id), nkeys++;
    if (ni) {
        const char *p2[2] = {c->name, es_pg_array_end(&ids)};
        r = es__consumer_run(c->d, "es_c_read_many", 2, p2, NULL, NULL);
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            rc = es_pg_session_fail(c->d, r, "consumer: read versions", err);
            goto out;
        }
    }
    es_buf_reset(&ids);
    /* Each key's row (-1: none yet), by the key's place in the array sent, which is the order of
     * the distinct streams below: a search per stream cost ~n^2/2 string compares per batch. */
    int *row_of = es_arena_alloc(&fa, (nkeys ? nkeys : 1) * sizeof *row_of);
    for (size_t k = 0; k < nkeys; k++)
        row_of[k] = -1;
    for (int k = 0, nrows = r ? PQntuples(r) : 0; k < nrows; k++) {
        long at = strtol(PQgetvalue(r, k, 0), NULL, 10) - 1;
        if (at >= 0 && (size_t)at < nkeys)
            row_of[at] = k;
    }
    for (size_t i = 0, key = 0; i < ni; key++) {
        size_t j = i;
        while (j < ni && !strcmp(sorted[j]->ev.stream_id, sorted[i]->ev.stream_id))
            j++;
        int64_t applied = 0, parked = 0;
        int found = row_of[key] >= 0;
        if (found) {
            applied = strtoll(PQgetvalue(r, row_of[key], 1), NULL, 10);
            parked = strtoll(PQgetvalue(r, row_of[key], 2), NULL, 10);
        }
        /* Clean: not parked, and the versions above applied run on from applied + 1. */
        int clean = !parked;
        int64_t next = applied + 1;
        size_t first_fast = nfast;
        for (size_t k = i; clean && k < j; k++) {
            int64_t v = sorted[k]->ev.version;
            if (v < next) {
                cnt->duplicates++;
                continue;
            }
            if (v != next) {
                clean = 0;
                break;
            }
            fast[nfast++] = sorted[k]->ev;
            next++;
        }
        if (!clean) {
            nfast = first_fast;
            for (size_t k = i; k < j; k++)
                slow[nslow++] = sorted[k]->m;
        } else if (nfast > first_fast) {
            char v[24], e[24];
            snprintf(v, sizeof v, "%" PRId64, next - 1);
            snprintf(e, sizeof e, "%" PRId64, applied);
            es_pg_array_elem(&ids, sorted[i]->ev.stream_id);
            es_pg_array_elem(&vers, v);
            es_pg_array_elem(&expect, e);
            es_pg_array_elem(&existed, found ? "t" : "f");
            nstreams++;
        }
        i = j;
    }
    if (nfast) {
        es_consumer_tx tx = {c->d, c->name};
        if (c->handle_batch(c->data, &tx, fast, nfast, err) != ES_OK) {
            rc = es__consumer_handler_failed(c->d, err) == FAILED ? ES_ABORTED : ES_UNAVAILABLE;
            goto out;
        }
        const char *p5[5] = {c->name, es_pg_array_end(&ids), es_pg_array_end(&vers), es_pg_array_end(&expect), es_pg_array_end(&existed)};
        PQclear(r);
        r = es__consumer_run(c->d, "es_c_advance_many", 5, p5, NULL, NULL);
        if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
            rc = es_pg_session_fail(c->d, r, "consumer: record versions", err);
            goto out;
        }
        if (strtoll(PQgetvalue(r, 0, 0), NULL, 10) != nstreams) {
            rc = es_error_set(err, ES_FAILED_PRECONDITION, "version",
                              "consumer: another consumer advanced a stream of this batch meanwhile");
            goto out;
        }
        cnt->applied += (int64_t)nfast;
    }
    /* The rest, one message at a time, in Kafka order (a stream's messages keep their order). */
    for (size_t i = 0; i < n && nslow; i++) {
        int is_slow = 0;
        for (size_t k = 0; k < nslow && !is_slow; k++)
            is_slow = slow[k] == msgs[i];
        if (is_slow && (rc = process_message(c, msgs[i], cnt, arena)) != ES_OK) {
            es_error_set(err, rc, "", "consumer: a message of the batch could not be processed");
            goto out;
        }
    }
out:
    PQclear(r);
    es_buf_free(&ids);
    es_buf_free(&vers);
    es_buf_free(&expect);
    es_buf_free(&existed);
    es_arena_free(&fa);
    return rc;
}

/* Tells the committed hook which streams the batch just committed (the Kafka keys). */
static void tell_committed(es_consumer *c, rd_kafka_message_t **msgs, size_t n, es_arena *arena)
{
    const char **ids = es_arena_alloc(arena, (n ? n : 1) * sizeof *ids);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (!msgs[i]->err && msgs[i]->key)
            ids[k++] = es_arena_strndup(arena, msgs[i]->key, msgs[i]->key_len);
    if (k)
        c->committed(c->committed_data, ids, k);
}

/* See consumer_internal.h. */
int es__consumer_process_batch(es_consumer *c, rd_kafka_message_t **msgs, size_t n)
{
    es_arena arena;
    es_arena_init(&arena);
    int backoff = 100, rc = -1, set_wise = c->handle_batch != NULL, fell_back = 0, raced = 0;
    while (!atomic_load(&c->stop)) {
        es_error err = {0};
        counters cnt = {0};
        int64_t handled = 0;
        int st = es_pg_session_ensure(c->d, &err);
        if (st == ES_OK)
            st = es_pg_session_exec(c->d, "BEGIN", "consumer: begin", &err);
        if (st == ES_OK && set_wise) {
            st = process_set(c, msgs, n, &cnt, &arena, &err);
            for (size_t i = 0; i < n; i++)
                handled += !msgs[i]->err;
            if (st == ES_FAILED_PRECONDITION && ++raced < 3) {
                /* Another consumer (a rebalance's overlap, a rebuild) moved a stream: read again. */
                es_pg_session_rollback(c->d, "consumer: roll back the batch");
                continue;
            }
            if (st == ES_ABORTED || st == ES_FAILED_PRECONDITION) {
                /* The batch handler failed: apply one message at a time, which retries and
                 * dead-letters the message at fault. */
                es__consumer_say(c, "batch of %zu: set-wise apply failed (%s); applying one message at a time",
                                 n, err.message);
                es_pg_session_rollback(c->d, "consumer: roll back the batch");
                set_wise = 0;
                fell_back = 1;
                continue;
            }
        }
        for (size_t i = 0; !set_wise && st == ES_OK && i < n; i++) {
            if (msgs[i]->err)
                continue;
            st = process_message(c, msgs[i], &cnt, &arena);
            handled++;
        }
        if (st == ES_OK)
            st = es_pg_session_exec(c->d, "COMMIT", "consumer: commit", &err);
        if (st == ES_OK) {
            pthread_mutex_lock(&c->mu);
            c->st.messages += handled;
            c->st.applied += cnt.applied;
            c->st.duplicates += cnt.duplicates;
            c->st.gap_filled += cnt.gap_filled;
            c->st.batches++;
            c->st.batch_fallbacks += fell_back;
            pthread_mutex_unlock(&c->mu);
            if (c->committed)
                tell_committed(c, msgs, n, &arena);
            for (size_t i = n; i-- > 0;)
                if (!msgs[i]->err) {
                    rd_kafka_timestamp_type_t tt;
                    int64_t ts = rd_kafka_message_timestamp(msgs[i], &tt);
                    if (ts > 0)
                        c->last_ts_ms = ts;
                    break;
                }
            rc = 0;
            break;
        }
        es__consumer_say(c, "batch of %zu not committed (%s: %s); retrying", n, es_strerror(st),
                         err.message[0] ? err.message : "see above");
        es_pg_session_rollback(c->d, "consumer: roll back the batch");
        es__consumer_nap_ms(backoff);
        backoff = backoff < 2000 ? backoff * 2 : 2000;
    }
    es_arena_free(&arena);
    return rc;
}
