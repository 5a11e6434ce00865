/* orderctl projections list|status|rebuild: a projection emptied and rebuilt from the event store alone
 * (docs/ARCHITECTURE.md invariant 7), set-wise (es_projection_rebuild: one transaction that reads the events
 * with one COPY, folds each stream in memory with the generated apply and writes the rows with
 * COPY), with the projector orderd runs and under orderd's consumer name, so the rebuilt rows and
 * the per-stream applied versions are exactly what the live consumer would have written and it
 * carries on from them. A running orderd may keep consuming meanwhile: its consumers wait on the
 * rebuild's lock of es_consumer_streams (a batch that read its versions before is waited for),
 * then skip what the rebuild applied as duplicates; reads of the projection wait too. The rebuild forgets the consumer's parkings; once it committed,
 * the consumer's dead letters recorded before it started are marked resolved. */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "es/clock.h"
#include "es/projection_rebuild.h"
#include "es/projection_shape.h"
#include "orderctl.h"
#include "upcasters.h"

/* Progress of the rebuild: its total is the aggregate's events in the rebuild's snapshot,
 * known once the rebuild holds its locks. */
static void on_progress(void *data, int64_t done, int64_t total)
{
    ctl_progress *p = data;
    p->total = total;
    ctl_progress_update(p, done);
}

static double now_s(void) { return (double)es_mono_us() / 1e6; }

static int rebuild_one(ctl *c, const es_projection_def *def)
{
    char name[160], what[200];
    ctl_projection_consumer_name(def, name, sizeof name);
    snprintf(what, sizeof what, "rebuild %s", def->name);
    ctl_consumer cc = {0};
    if (ctl_consumer_get(c, name, &cc) != CTL_OK)
        return CTL_ERROR;
    es_error err = {0};
    es_rebuild_result res = {0};
    int64_t rows = 0;
    int rc = CTL_OK;
    /* The open dead letters the rebuild will settle: those recorded before it starts. */
    int64_t max_letter = 0, resolved = 0;
    {
        es_arena a;
        es_arena_init(&a);
        es_admin_dead_letter *d;
        size_t n;
        int st = es_admin_dead_letters(c->pool, 0, &a, &d, &n, &err);
        for (size_t i = 0; st == ES_OK && i < n; i++)
            if (!strcmp(d[i].consumer, name) && d[i].id > max_letter)
                max_letter = d[i].id;
        es_arena_free(&a);
        if (st != ES_OK) {
            rc = ctl_fail(what, &err);
            goto done;
        }
    }
    double t0 = now_s();
    ctl_progress progress;
    es_rebuild_config rcfg = {.conninfo = c->pg, .name = name, .projector = cc.data, .progress = on_progress,
                              .progress_data = &progress, .upcasters = orders_upcasters,
                              .n_upcasters = orders_n_upcasters};
    /* The locks are taken so that a live consumer cannot deadlock with the rebuild (see
     * es/projection_rebuild.h); should PostgreSQL still abort the transaction as a deadlock or
     * serialization failure, nothing was written and it simply runs again. */
    int st = ES_ABORTED;
    for (int attempt = 0; attempt < 5 && st == ES_ABORTED; attempt++) {
        ctl_progress_start(&progress, c->progress, what, "events", 0);
        st = es_projection_rebuild(&rcfg, &res, &err);
        ctl_progress_end(&progress);
        if (st == ES_ABORTED)
            es_sleep_us(200 * 1000);
    }
    if (st != ES_OK) {
        rc = ctl_fail(what, &err);
        goto done;
    }
    if (es_admin_projection_count(c->pool, def, &rows, &err) != ES_OK) {
        rc = ctl_fail(what, &err);
        goto done;
    }
    /* The table now holds rows of the shape this binary generates: orderd need not rebuild it. */
    if (es_projection_record_shape(c->pool, def, res.events, res.rows, &err) != ES_OK) {
        rc = ctl_fail(what, &err);
        goto done;
    }
    if (max_letter && es_admin_resolve_consumer_dead_letters(c->pool, name, max_letter, &resolved, &err) != ES_OK) {
        rc = ctl_fail(what, &err);
        goto done;
    }
    printf("rebuild: %s: %lld events replayed, %lld rows, %lld open dead letters resolved, %.1fs\n", def->name,
           (long long)res.events, (long long)rows, (long long)resolved, now_s() - t0);
done:
    ctl_consumer_release(&cc);
    return rc;
}

/* projections status: the shape each projection serves, against this binary's, and the build
 * beside it when one runs (es/projection_shape.h). */
static int status_one(ctl *c, const es_projection_def *def)
{
    char name[160];
    ctl_projection_consumer_name(def, name, sizeof name);
    es_shape_report r;
    es_error err = {0};
    if (es_projection_shape_describe(c->pool, def, name, &r, &err) != ES_OK)
        return ctl_fail("projections status", &err);
    int due = strcmp(r.recorded, r.current) != 0;
    const char *state = r.builder && (due || r.building) ? "building"
                        : r.building ? "interrupted (the next orderd start builds again)"
                        : !r.recorded[0] ? "unrecorded (orderd's next start builds it beside the table)"
                        : due ? "changed (orderd's next start builds it beside the table)"
                                                        : "current";
    printf("%s\tshape %.12s\tthis binary %.12s\tstate %s", def->name, r.recorded[0] ? r.recorded : "-", r.current,
           state);
    if (r.building)
        printf("\tprogress %lld of %lld events (%lld streams)", (long long)r.staged_events, (long long)r.store_events,
               (long long)r.staged_streams);
    if (r.events >= 0)
        printf("\tlast build %lld events, %lld rows, %s", (long long)r.events, (long long)r.rows, r.built_at);
    if (r.retired[0])
        printf("\told versions %s", r.retired);
    printf("\n");
    return CTL_OK;
}

int ctl_projections(ctl *c, int argc, char **argv)
{
    if (argc == 2 && !strcmp(argv[1], "status")) {
        for (size_t i = 0; i < c->n_projections; i++)
            if (status_one(c, c->projections[i]) != CTL_OK)
                return CTL_ERROR;
        return CTL_OK;
    }
    if (argc >= 2 && !strcmp(argv[1], "list") && argc == 2) {
        for (size_t i = 0; i < c->n_projections; i++) {
            const es_projection_def *def = c->projections[i];
            es_error err = {0};
            int64_t rows = 0;
            if (es_admin_projection_count(c->pool, def, &rows, &err) != ES_OK)
                return ctl_fail("projections list", &err);
            printf("%s\taggregate %s\tconsumer projection.%s\t%lld rows\n", def->name, def->aggregate->name,
                   def->name, (long long)rows);
        }
        return CTL_OK;
    }
    if (argc < 2 || argc > 3 || strcmp(argv[1], "rebuild") != 0) {
        fprintf(stderr, "usage: orderctl projections list | projections status | projections rebuild [name]\n");
        return CTL_ERROR;
    }
    const char *name = argc == 3 ? argv[2] : NULL;
    int found = 0;
    for (size_t i = 0; i < c->n_projections; i++) {
        const es_projection_def *def = c->projections[i];
        if (name && strcmp(name, def->name) != 0)
            continue;
        found = 1;
        int rc = rebuild_one(c, def);
        if (rc != CTL_OK)
            return rc;
    }
    if (!found) {
        fprintf(stderr, "orderctl: projections rebuild: no projection named %s\n", name);
        return CTL_ERROR;
    }
    return CTL_OK;
}
