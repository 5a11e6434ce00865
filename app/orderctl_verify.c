/* orderctl verify: reconciliation of the event store with the projections.
 *
 * For every stream of a projection's aggregate: fold its events from the store alone (no
 * snapshot, no cache) with the generated apply, then compare with the projection row three ways:
 * the row's version column; its es_state (the state the projector advances) field by field; and
 * its SQL columns, read back as they are stored and compared field by field with from_state of
 * the folded state, which is what a rebuild would write (docs/ARCHITECTURE.md invariant 7). The stream's
 * snapshot-based load (what the command path uses) is also compared with the fold. Rows whose
 * key has no stream are reported as extra.
 *
 * A live projection trails the store by a moment, so a stream whose row is at another version is
 * re-checked for up to --settle-ms before it counts as a difference. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "es/clock.h"
#include "orderctl.h"
#include "upcasters.h"

#define PAGE 500
#define MAX_FIELD_DIFFS 64

typedef struct verify {
    ctl *c;
    const es_projection_def *def;
    es_pipeline *pipeline;
    int settle_ms;
    int64_t settle_budget_ms;      /* waiting left for the whole run */
    int64_t max_diffs;             /* lines printed at most */
    int64_t diffs, printed;
    int64_t missing, extra, version, state, column, fold, snapshot;
    int64_t streams;
    ctl_progress progress;
    unsigned column_ids[128];
    size_t n_column_ids;
} verify;

/* Prints one difference (up to --max-diffs lines) and counts it in *kind_count. */
static void say(verify *v, int64_t *kind_count, const char *kind, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void say(verify *v, int64_t *kind_count, const char *kind, const char *key, const char *fmt, ...)
{
    v->diffs++;
    (*kind_count)++;
    if (v->printed >= v->max_diffs)
        return;
    v->printed++;
    if (v->progress.enabled)
        fputs("\r\033[K", stderr);
    printf("DIFF %-8s %s %s", kind, v->def->name, key);
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

/* ---- folding from the store ---- */

typedef struct fold {
    const es_aggregate_def *agg;
    ProtobufCMessage *state;
    int64_t version;
} fold;

static int fold_event(const es_event_record *ev, void *ctx, es_error *err)
{
    fold *f = ctx;
    if (!ev->stream_type || strcmp(ev->stream_type, f->agg->name) != 0)
        return es_error_set(err, ES_DATA_LOSS, "stream_type", "version %lld is a %s event, not a %s event",
                            (long long)ev->version, ev->stream_type ? ev->stream_type : "?", f->agg->name);
    const es_event_def *def = es_schema_find_event(f->agg, ev->event_type);
    if (!def)
        return es_error_set(err, ES_DATA_LOSS, "event_type", "version %lld: unknown event type %s",
                            (long long)ev->version, ev->event_type);
    /* Decoded as the projector and the pipeline decode it: old schema versions upcast. */
    es_arena a;
    es_arena_init(&a);
    ProtobufCMessage *e = NULL;
    int rc = es_event_decode(def, ev->schema_version, ev->payload, ev->payload_len, orders_upcasters,
                             orders_n_upcasters, &a, &e, err);
    if (rc != ES_OK) {
        char why[sizeof err->message];
        snprintf(why, sizeof why, "%s", err->message);
        es_arena_free(&a);
        return es_error_set(err, ES_DATA_LOSS, "payload", "version %lld: %s payload does not decode: %.300s",
                            (long long)ev->version, ev->event_type, why);
    }
    if (!f->state) {
        f->state = es_xmalloc(f->agg->state_descriptor->sizeof_message);
        protobuf_c_message_init(f->agg->state_descriptor, f->state);
    }
    rc = def->apply(f->state, e);
    es_arena_free(&a);
    if (rc != ES_OK)
        return es_error_set(err, ES_DATA_LOSS, "event_type", "version %lld: %s does not apply (%s)",
                            (long long)ev->version, ev->event_type, es_strerror(rc));
    f->version = ev->version;
    return ES_OK;
}

/* ---- comparing ---- */

static int is_timestamp(const ProtobufCFieldDescriptor *f)
{
    return f->type == PROTOBUF_C_TYPE_MESSAGE && f->label != PROTOBUF_C_LABEL_REPEATED &&
           strcmp(((const ProtobufCMessageDescriptor *)f->descriptor)->name, "google.protobuf.Timestamp") == 0;
}

/* A shallow copy of row whose top-level Timestamps are cut to microseconds: what a timestamptz
 * column can hold, so the column comparison does not flag nanoseconds PostgreSQL never stores. */
static ProtobufCMessage *as_stored(const ProtobufCMessage *row, es_arena *a)
{
    const ProtobufCMessageDescriptor *d = row->descriptor;
    ProtobufCMessage *m = es_arena_alloc(a, d->sizeof_message);
    memcpy(m, row, d->sizeof_message);
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        ProtobufCMessage **slot = (ProtobufCMessage **)((char *)m + f->offset);
        if (!is_timestamp(f) || !*slot)
            continue;
        const ProtobufCMessageDescriptor *td = f->descriptor;
        ProtobufCMessage *t = es_arena_alloc(a, td->sizeof_message);
        memcpy(t, *slot, td->sizeof_message);
        /* Timestamp is {int64 seconds = 1; int32 nanos = 2}. */
        const ProtobufCFieldDescriptor *nf = protobuf_c_message_descriptor_get_field(td, 2);
        if (nf) {
            int32_t *nanos = (int32_t *)((char *)t + nf->offset);
            *nanos -= *nanos % 1000;
        }
        *slot = t;
    }
    return m;
}

static void report_fields(verify *v, int64_t *kind_count, const char *kind, const char *key,
                          const ctl_field_diff *d, size_t n)
{
    for (size_t i = 0; i < n && i < MAX_FIELD_DIFFS; i++)
        say(v, kind_count, kind, key, " %s: store %s, row %s", d[i].field, d[i].expected, d[i].actual);
}

static void sleep_ms(int ms) { es_sleep_us((int64_t)ms * 1000); }

/* Checks one stream; returns CTL_ERROR on an operational failure (already printed). */
static int check_stream(verify *v, const char *key)
{
    const es_projection_def *def = v->def;
    const es_aggregate_def *agg = def->aggregate;
    es_arena a;
    es_arena_init(&a);
    es_error err = {0};
    fold f = {.agg = agg};
    ProtobufCMessage *stored = NULL, *loaded = NULL;
    int rc = CTL_OK;
    int waited = 0;
    for (;;) {
        es_arena_reset(&a);
        protobuf_c_message_free_unpacked(f.state, NULL);
        f = (fold){.agg = agg};
        if (stored)
            protobuf_c_message_free_unpacked(stored, NULL);
        stored = NULL;
        int st = es_pipeline_read_stream(v->pipeline, key, 0, 0, fold_event, &f, &err);
        if (st == ES_UNAVAILABLE || st == ES_INTERNAL) {
            rc = ctl_fail("verify: read stream", &err);
            goto done;
        }
        if (st != ES_OK || !f.state) {
            say(v, &v->fold, "fold", key, ": the stream does not fold: %s",
                st != ES_OK ? err.message : "no events");
            goto done;
        }
        es_admin_row row;
        st = es_admin_projection_row(v->c->pool, def, v->c->json, key, &a, &row, &err);
        if (st != ES_OK && st != ES_NOT_FOUND) {
            rc = ctl_fail("verify: read row", &err);
            goto done;
        }
        int lagging = st == ES_NOT_FOUND || row.version != f.version;
        if (lagging && waited < v->settle_ms && v->settle_budget_ms > 0) {
            sleep_ms(100);
            waited += 100;
            v->settle_budget_ms -= 100;
            continue;
        }
        if (st == ES_NOT_FOUND) {
            say(v, &v->missing, "missing", key, ": no row; the store is at version %lld", (long long)f.version);
            break;
        }
        if (row.version != f.version) {
            say(v, &v->version, "version", key, ": row at version %lld, the store at %lld", (long long)row.version,
                (long long)f.version);
            break;
        }
        ctl_field_diff d[MAX_FIELD_DIFFS];
        /* es_state: the state the projector advances event by event. */
        stored = protobuf_c_message_unpack(agg->state_descriptor, NULL, row.state_len, row.state);
        if (!stored) {
            say(v, &v->state, "state", key, ": es_state does not decode as %s", agg->state_descriptor->name);
        } else {
            size_t n = ctl_diff_fields(v->c->json, agg->state_descriptor, f.state, stored, NULL, 0, &a, d,
                                       MAX_FIELD_DIFFS);
            report_fields(v, &v->state, "state", key, d, n);
        }
        /* The SQL columns, which queries filter and sort on. */
        if (!row.columns) {
            say(v, &v->column, "column", key, " %s: the stored value does not read back: %s", row.columns_error.field,
                row.columns_error.message);
        } else {
            ProtobufCMessage *want = as_stored(def->from_state(f.state, f.version, &a), &a);
            size_t n = ctl_diff_fields(v->c->json, def->descriptor, want, row.columns, v->column_ids,
                                       v->n_column_ids, &a, d, MAX_FIELD_DIFFS);
            report_fields(v, &v->column, "column", key, d, n);
        }
        break;
    }
    /* The command path's load (snapshot + later events) must agree with the plain fold. */
    int64_t lv = 0;
    int st = es_pipeline_load(v->pipeline, agg, key, &loaded, &lv, &err);
    if (st == ES_UNAVAILABLE) {
        rc = ctl_fail("verify: load", &err);
        goto done;
    }
    if (st != ES_OK || lv < f.version) {
        say(v, &v->snapshot, "snapshot", key, ": the command path's load %s",
            st != ES_OK ? err.message : "is behind the fold");
    } else if (lv == f.version) {
        ctl_field_diff d[MAX_FIELD_DIFFS];
        size_t n = ctl_diff_fields(v->c->json, agg->state_descriptor, f.state, loaded, NULL, 0, &a, d,
                                   MAX_FIELD_DIFFS);
        for (size_t i = 0; i < n && i < MAX_FIELD_DIFFS; i++)
            say(v, &v->snapshot, "snapshot", key, " %s: fold %s, load %s", d[i].field, d[i].expected, d[i].actual);
    } /* lv > f.version: a command landed in between; the next run sees it */
done:
    protobuf_c_message_free_unpacked(f.state, NULL);
    if (stored)
        protobuf_c_message_free_unpacked(stored, NULL);
    if (loaded)
        protobuf_c_message_free_unpacked(loaded, NULL);
    es_arena_free(&a);
    return rc;
}

static int verify_projection(verify *v)
{
    const es_projection_def *def = v->def;
    es_error err = {0};
    int64_t total = 0, rows = 0;
    v->n_column_ids = 0;
    for (size_t i = 0; i < def->n_columns && v->n_column_ids < 128; i++)
        v->column_ids[v->n_column_ids++] = def->columns[i].field_id;
    if (es_admin_count_streams(v->c->pool, def->aggregate->name, &total, &err) != ES_OK)
        return ctl_fail("verify: count streams", &err);
    char what[200];
    snprintf(what, sizeof what, "verify %s", def->name);
    ctl_progress_start(&v->progress, v->c->progress, what, "streams", total);
    es_arena a;
    es_arena_init(&a);
    char *after = NULL;
    int rc = CTL_OK;
    for (;;) {
        char **ids;
        size_t n;
        es_arena page;
        es_arena_init(&page);
        if (es_admin_list_streams(v->c->pool, def->aggregate->name, after, PAGE, &page, &ids, &n, &err) != ES_OK) {
            es_arena_free(&page);
            rc = ctl_fail("verify: list streams", &err);
            goto done;
        }
        for (size_t i = 0; i < n && rc == CTL_OK; i++) {
            rc = check_stream(v, ids[i]);
            v->streams++;
            ctl_progress_update(&v->progress, v->streams);
        }
        es_arena_reset(&a);
        after = n ? es_arena_strdup(&a, ids[n - 1]) : NULL;
        es_arena_free(&page);
        if (rc != CTL_OK || n < PAGE)
            break;
    }
    ctl_progress_end(&v->progress);
    if (rc != CTL_OK)
        goto done;
    char **orphans;
    size_t no;
    es_arena_reset(&a);
    if (es_admin_projection_orphans(v->c->pool, def, 100000, &a, &orphans, &no, &err) != ES_OK ||
        es_admin_projection_count(v->c->pool, def, &rows, &err) != ES_OK) {
        rc = ctl_fail("verify: rows", &err);
        goto done;
    }
    for (size_t i = 0; i < no; i++) {
        say(v, &v->extra, "extra", orphans[i], ": a row without any %s event in the store", def->aggregate->name);
    }
    printf("verify: %s: %lld streams, %lld rows: %s\n", def->name, (long long)v->streams, (long long)rows,
           v->diffs ? "DIFFERENCES FOUND" : "no differences");
done:
    es_arena_free(&a);
    return rc;
}

int ctl_verify(ctl *c, int argc, char **argv)
{
    const char *name = NULL;
    int settle_ms = 3000;
    long long max_diffs = 1000;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--settle-ms") && i + 1 < argc)
            settle_ms = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--max-diffs") && i + 1 < argc)
            max_diffs = atoll(argv[++i]);
        else if (argv[i][0] != '-' && !name)
            name = argv[i];
        else {
            fprintf(stderr, "usage: orderctl verify [projection] [--settle-ms N] [--max-diffs N]\n");
            return CTL_ERROR;
        }
    }
    es_pipeline *p = ctl_pipeline(c);
    if (!p)
        return CTL_ERROR;
    int64_t diffs = 0, found = 0;
    int64_t counts[7] = {0};
    for (size_t i = 0; i < c->n_projections; i++) {
        const es_projection_def *def = c->projections[i];
        if (name && strcmp(name, def->name) != 0)
            continue;
        found++;
        verify v = {.c = c, .def = def, .pipeline = p, .settle_ms = settle_ms,
                    .settle_budget_ms = (int64_t)settle_ms * 10, .max_diffs = max_diffs};
        int rc = verify_projection(&v);
        if (rc != CTL_OK)
            return rc;
        diffs += v.diffs;
        int64_t k[7] = {v.missing, v.extra, v.version, v.state, v.column, v.fold, v.snapshot};
        for (int j = 0; j < 7; j++)
            counts[j] += k[j];
    }
    if (!found) {
        fprintf(stderr, "orderctl: verify: no projection named %s\n", name);
        return CTL_ERROR;
    }
    printf("verify: %lld differences (%lld missing rows, %lld extra rows, %lld version, %lld state field,"
           " %lld column, %lld fold, %lld snapshot field)\n",
           (long long)diffs, (long long)counts[0], (long long)counts[1], (long long)counts[2], (long long)counts[3],
           (long long)counts[4], (long long)counts[5], (long long)counts[6]);
    return diffs ? CTL_FOUND : CTL_OK;
}
