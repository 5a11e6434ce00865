/* Projection shapes: a projection table is rebuilt from the event store when the generated shape
 * it serves changed since its rows were written (a column added, a type widened, an index), so
 * that rows written before the change carry the new column's value instead of NULL.
 *
 * The shape is the SHA-256 of the projection's generated DDL (es_projection_def.ddl). The shape a
 * table was last built with lives in es_projection_shapes (sql/event_store.sql). At start, before
 * the projection's consumer runs, es_projection_ensure_shape compares them under an advisory lock
 * (instances starting together take turns; the later ones find the work done): the same shape,
 * or an empty table, only records it; another shape, or none beside rows, runs the set-based
 * rebuild (es/projection_rebuild.h: one transaction, readers never see a half-built table, the
 * event store's appends never wait), records the shape and ANALYZEs the table. */
#ifndef ES_PROJECTION_SHAPE_H
#define ES_PROJECTION_SHAPE_H

#include <stdint.h>

#include "es/pg_pool.h"
#include "es/projection.h"
#include "es/projection_rebuild.h"
#include "es/status.h"

typedef struct es_shape_config {
    es_pg_pool *pool;                /* bookkeeping and the advisory lock; borrowed, required */
    const char *conninfo;            /* the rebuild's own connections; required */
    const char *name;                /* the live consumer's name (its es_consumer_streams rows); required */
    const es_projector *projector;   /* borrowed; required */
    const es_projection_def *def;    /* the projector's definition; required */
    es_rebuild_progress_fn progress; /* optional, as for es_projection_rebuild */
    void *progress_data;
} es_shape_config;

typedef struct es_shape_result {
    int rebuilt;                     /* 1: the table was rebuilt */
    char reason[160];                /* why (or why not), for logs and /readyz */
    int64_t events, rows;            /* the rebuild's counts */
} es_shape_result;

/* Writes the shape of def (64 hex characters and NUL) into out. */
void es_projection_shape_hash(const es_projection_def *def, char out[65]);

/* Brings cfg->def's table to its current shape as described above. Blocks until done. Returns
 * ES_OK with *out (may be NULL) filled, or the rebuild's or PostgreSQL's error (nothing changed
 * then). */
int es_projection_ensure_shape(const es_shape_config *cfg, es_shape_result *out, es_error *err);

/* Records that def's table now holds rows of its current shape (after a rebuild by other means,
 * e.g. orderctl projections rebuild). */
int es_projection_record_shape(es_pg_pool *pool, const es_projection_def *def, int64_t events, int64_t rows,
                               es_error *err);

#endif
