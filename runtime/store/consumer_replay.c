/* Replay of the store's events through a consumer's handler (a rebuild from scratch, one
 * stream again), in batches of one transaction, with the same exactly-once bookkeeping as the
 * Kafka runner. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "es/feed.h"
#include "consumer_internal.h"
#include "event_rows.h"

int es_consumer_replay(const es_replay_config *cfg, int64_t *applied, es_error *out_err)
{
    es_error e = {0}, *err = &e;
    if (applied)
        *applied = 0;
    if (!cfg || !cfg->name || !cfg->conninfo || !cfg->handle)
        return es_error_set(out_err, ES_INVALID_ARGUMENT, "", "replay: name, conninfo and handle are required");
    es_pg_session *d = es__consumer_session(cfg->conninfo, err);
    es_arena arena;
    es_arena_init(&arena);
    int batch = cfg->batch_max > 0 ? cfg->batch_max : 500;
    counters cnt = {0};
    es_consumer_tx tx = {d, cfg->name};
    int rc = d ? es_pg_session_ensure(d, err) : err->code;
    if (rc != ES_OK)
        goto done;

    if (cfg->reset) {
        if ((rc = es_pg_session_exec(d, "BEGIN", "replay: begin", err)) != ES_OK)
            goto done;
        const char *p[2] = {cfg->name, cfg->stream_id};
        PGresult *r = PQexecParams(es_pg_session_conn(d),
                                   cfg->stream_id ? "DELETE FROM es_consumer_streams WHERE consumer = $1"
                                                    " AND stream_id = $2"
                                                  : "DELETE FROM es_consumer_streams WHERE consumer = $1",
                                   cfg->stream_id ? 2 : 1, NULL, p, NULL, NULL, 0);
        rc = PQresultStatus(r) == PGRES_COMMAND_OK
                 ? ES_OK
                 : es_pg_session_fail(d, r, "replay: forget", err);
        PQclear(r);
        if (rc == ES_OK)
            rc = cfg->reset(cfg->data, &tx, cfg->stream_id, err);
        if (rc == ES_OK)
            rc = es_pg_session_exec(d, "COMMIT", "replay: commit", err);
        if (rc != ES_OK)
            goto done;
    }

    es_feed_cursor cur = {0, 0};
    int64_t after_version = 0;
    for (;;) {
        char a[24], b[24], lim[24];
        snprintf(lim, sizeof lim, "%d", batch);
        PGresult *r;
        if (cfg->stream_id) {
            snprintf(a, sizeof a, "%" PRId64, after_version);
            const char *p[3] = {cfg->stream_id, a, lim};
            r = es__consumer_read_events(d, "es_c_stream", 3, p);
        } else {
            snprintf(a, sizeof a, "%" PRIu64, cur.txid);
            snprintf(b, sizeof b, "%" PRId64, cur.position);
            const char *p[3] = {a, b, lim};
            r = es__consumer_read_events(d, "es_c_feed", 3, p);
        }
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            rc = es_pg_session_fail(d, r, "replay: read", err);
            PQclear(r);
            goto done;
        }
        es_arena_reset(&arena);
        es_envelope_view *evs = NULL;
        size_t n = es__event_rows(r, &arena, &evs);
        PQclear(r);
        if (n == 0)
            break;
        if ((rc = es_pg_session_exec(d, "BEGIN", "replay: begin", err)) != ES_OK)
            goto done;
        counters bc = {0};
        for (size_t i = 0; i < n; i++) {
            int64_t parked = 0;
            outcome o = es__consumer_apply(d, cfg->name, cfg->handle, cfg->data, &evs[i], &bc, &parked, err);
            if (o == FAILED || o == DB_DOWN || o == PARKED) {
                rc = err->code ? err->code : ES_INTERNAL;
                es_pg_session_rollback(d, "replay: roll back the batch");
                goto done;
            }
        }
        if ((rc = es_pg_session_exec(d, "COMMIT", "replay: commit", err)) != ES_OK)
            goto done;
        cnt.applied += bc.applied + bc.gap_filled;
        cur.txid = evs[n - 1].txid;
        cur.position = evs[n - 1].position;
        after_version = evs[n - 1].version;
        if ((int)n < batch)
            break;
    }
    rc = ES_OK;
done:
    if (rc != ES_OK && out_err)
        *out_err = e;
    if (applied)
        *applied = cnt.applied;
    es_arena_free(&arena);
    es_pg_session_free(d);
    return rc;
}

