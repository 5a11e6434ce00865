/* Projection shapes: a projection table is rebuilt from the event store when the generated shape
 * it serves changed since its rows were written (a column added, a type widened, an index), so
 * that rows written before the change carry the new column's value instead of NULL.
 *
 * The shape is the SHA-256 of the projection's generated DDL (es_projection_def.ddl). The shape a
 * table was last built with lives in es_projection_shapes (sql/event_store.sql). At start, before
 * the projection's consumer runs, es_projection_ensure_shape compares them under an advisory lock
 * (instances starting together take turns; the later ones find the work done): the same shape,
 * or an empty table with no event to fold, only records it; another shape, or none beside rows,
 * builds the new version BESIDE the table that serves reads, and switches:
 *
 *   1. the table is created from its generated DDL in a staging schema (es_next_<table>), so the
 *      new version has exactly the generated columns and indexes, under the same name;
 *   2. it is filled set-based from the event store (es/projection_rebuild.h), under a consumer
 *      name of its own (<consumer>@next) in es_consumer_streams;
 *   3. it catches up from the event store: every stream with events newer than the fill's
 *      snapshot (found on es_events' (txid, position) index) is folded again from its events,
 *      until a pass finds few;
 *   4. in ONE short transaction: es_consumer_streams and the serving table are locked (ACCESS
 *      EXCLUSIVE, in the rebuild's order: no deadlock with a consumer), the last events are
 *      folded in, the consumer's per-stream versions become the new table's, the serving table
 *      moves to es_old_<table>_<old shape> and the new one takes its place (same schema, same
 *      name: PostgreSQL re-plans prepared statements that named it), and the shape is recorded;
 *   5. the table is ANALYZEd; the old version is dropped after old_grace_s (0: at once).
 *
 * Readers keep reading the old version until the switch commits, then the new one: never a
 * half-built table. Commands never touch projections and never wait. The projection's own
 * migration must not add the new columns to the serving table meanwhile (they would read NULL):
 * es_projection_shape_prepare says when to hold it back, and es_shape_config.after runs it once
 * the table has its shape. A table that serves no rows yet (new, or empty while the event store
 * holds the aggregate's events) is built the same way, and es_shape_status.first says so (a
 * service is not ready meanwhile). */
#ifndef ES_PROJECTION_SHAPE_H
#define ES_PROJECTION_SHAPE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "es/buf.h"
#include "es/json.h"
#include "es/migrate.h"
#include "es/pg_pool.h"
#include "es/projection.h"
#include "es/projection_rebuild.h"
#include "es/status.h"

typedef enum es_shape_state {
    ES_SHAPE_STARTING = 0,           /* not looked at yet */
    ES_SHAPE_WAITING,                /* for another instance's build (the advisory lock) */
    ES_SHAPE_BUILDING,               /* the set-based fill of the new version */
    ES_SHAPE_CATCHING_UP,            /* folding the events appended since */
    ES_SHAPE_SWITCHING,              /* the switch's transaction */
    ES_SHAPE_CURRENT,                /* the table serves its current shape */
    ES_SHAPE_FAILED                  /* the build failed; the old version still serves */
} es_shape_state;

/* Progress of es_projection_ensure_shape, written by it and read from any thread (/readyz,
 * /metrics). Zero-initialise; es_projection_shape_status_fini stops the retirement thread. */
typedef struct es_shape_status {
    atomic_int state;                /* es_shape_state */
    atomic_int first;                /* 1: the build is the table's first (it serves no rows yet) */
    _Atomic int64_t done, total;     /* events folded, and expected (0: unknown) */
    /* private: the thread that drops the old version after the grace period */
    atomic_int stop;
    int retiring;
    pthread_t retirer;
    es_pg_pool *pool;
    char table[64];
    int64_t drop_at_us;              /* es_now_us deadline */
} es_shape_status;

typedef struct es_shape_config {
    es_pg_pool *pool;                /* bookkeeping, the advisory lock, the switch; borrowed, required */
    const char *conninfo;            /* the rebuild's own connections; required */
    const char *name;                /* the live consumer's name (its es_consumer_streams rows); required */
    const es_projector *projector;   /* borrowed; required */
    const es_projection_def *def;    /* the projector's definition; required */
    const es_json_registry *json;    /* the projector's (message columns as jsonb); required */
    int old_grace_s;                 /* the old version is dropped this long after the switch (0: at once) */
    const es_migration *after;       /* migrations held back by es_projection_shape_prepare (may be NULL) */
    size_t n_after;
    es_shape_status *status;         /* optional: progress for readiness and metrics; borrowed */
} es_shape_config;

typedef struct es_shape_result {
    int rebuilt;                     /* 1: a new version was built and switched to */
    char reason[160];                /* why (or why not), for logs and /readyz */
    int64_t events, rows;            /* the build's counts */
} es_shape_result;

/* Writes the shape of def (64 hex characters and NUL) into out. */
void es_projection_shape_hash(const es_projection_def *def, char out[65]);

/* Before def's own migration runs: *hold = 1 when the table serves rows of another (or an
 * unrecorded) shape, so that the migration must wait for es_projection_ensure_shape (pass it as
 * es_shape_config.after); else 0. */
int es_projection_shape_prepare(es_pg_pool *pool, const es_projection_def *def, int *hold, es_error *err);

/* Brings cfg->def's table to its current shape as described above, then runs cfg->after. Blocks
 * until done (the servers may serve meanwhile; run the projection's consumer after it). Returns
 * ES_OK with *out (may be NULL) filled, or the build's or PostgreSQL's error (the old version
 * still serves then, and its consumer versions are untouched). With old_grace_s > 0 and a
 * status, a thread drops the old version when its grace ends. */
int es_projection_ensure_shape(const es_shape_config *cfg, es_shape_result *out, es_error *err);

/* 1 while st's projection serves no rows yet because its first build runs (not ready). */
int es_projection_shape_unready(const es_shape_status *st);
/* The state's name: "starting", "waiting", "building", "catching_up", "switching", "current",
 * "failed". */
const char *es_projection_shape_state_name(int state);
/* Appends es_projection_rebuilding, es_projection_rebuild_events and es_projection_shape_state
 * for each of the n statuses st[i], labelled projection="<projection[i]>" (each family's header
 * once, so several projections make one valid exposition). */
void es_projection_shape_write_metrics(const es_shape_status *const *st, const char *const *projection, size_t n,
                                       es_buf *out);
/* Stops and joins the retirement thread (the old version stays until the next start). */
void es_projection_shape_status_fini(es_shape_status *st);

/* What the database says of def's shape, for operators (orderctl projections status). */
typedef struct es_shape_report {
    char recorded[65];               /* the shape recorded ("" when none) */
    char current[65];                /* def's shape (this binary's) */
    char built_at[40];               /* when it was recorded */
    int64_t events, rows;            /* the recorded build's counts (-1: none) */
    int building;                    /* 1: a staging table exists (a build beside runs, or was cut short) */
    int builder;                     /* 1: an instance holds the shape lock (the build runs) */
    int64_t staged_streams;          /* streams the staging table holds */
    int64_t staged_events;           /* events folded into them */
    int64_t store_events;            /* the aggregate's events in the store (progress total) */
    char retired[200];               /* old versions waiting for their grace, comma-separated */
} es_shape_report;

/* Fills *out for def, whose live consumer is named consumer. */
int es_projection_shape_describe(es_pg_pool *pool, const es_projection_def *def, const char *consumer,
                                 es_shape_report *out, es_error *err);

/* Records that def's table now holds rows of its current shape (after a rebuild by other means,
 * e.g. orderctl projections rebuild). */
int es_projection_record_shape(es_pg_pool *pool, const es_projection_def *def, int64_t events, int64_t rows,
                               es_error *err);

#endif
