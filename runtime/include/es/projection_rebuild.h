/* The set-based rebuild of a projection table from the event store alone (docs/ARCHITECTURE.md invariant 7),
 * in one PostgreSQL transaction and without a round trip per event.
 *
 * A writer connection W opens the transaction and takes, in this order, ACCESS EXCLUSIVE on
 * es_consumer_streams and ACCESS EXCLUSIVE on the projection table. Every live consumer
 * transaction reads or locks es_consumer_streams first (the per-message path locks its stream's
 * row, the set-wise path reads its streams' versions) and touches the projection only after, so
 * a transaction holding anything on the projection already holds a lock on the bookkeeping
 * table: the rebuild waits for it to commit, and later ones wait for the rebuild at their first
 * statement, holding nothing it needs; no deadlock. (A weaker lock on the bookkeeping would let
 * the set-wise path's unlocked read through, and that transaction then writes the projection
 * before it records its versions: the opposite order.)
 *
 * W then exports its snapshot to a reader connection R (REPEATABLE READ, SET TRANSACTION
 * SNAPSHOT), so R sees exactly the events committed before the locks were held; W drops the
 * table's plain indexes (those backing no constraint, not the replica identity nor CLUSTER's),
 * empties the table and forgets the consumer's per-stream versions (and parkings). R streams the
 * aggregate's events ordered by (stream_id, version) with one COPY ... TO STDOUT (binary); each
 * stream is folded in memory with the generated apply (memory: one stream's state at a time)
 * and, once complete, its row goes to W through one COPY ... FROM STDIN as the rows are
 * produced (binary format when every column's type has an encoding here, else text). W builds
 * the indexes again, records the consumer's version of every stream with a second COPY, and
 * commits. Any error rolls everything back: the table, its indexes and the consumer's
 * bookkeeping stay as they were.
 *
 * The rows are exactly what the live projector (es_projector_handle) writes: the same apply,
 * the same es__projector_row_text (or, by default, es_projection_binary_row, which writes
 * the values that text becomes). The versions recorded are the rebuilt ones, so a live
 * consumer blocked on the lock carries on after the commit and skips what the rebuild applied
 * as duplicates. Streams of other aggregates get no es_consumer_streams row for this consumer
 * (their events are nothing to the projector; the live runner records them at their next event).
 * While it runs, every consumer's batches wait (the lock is on the whole bookkeeping table, so
 * dead-letter administration waits too) and reads of the projection table wait; appends to the
 * event store do not. */
#ifndef ES_PROJECTION_REBUILD_H
#define ES_PROJECTION_REBUILD_H

#include <stdint.h>

#include "es/projection.h"
#include "es/status.h"
#include "es/upcast.h"

/* Called from the rebuilding thread every few thousand events: events folded so far, and the
 * events expected (PostgreSQL's row estimate of es_events, never below done; 0 when unknown);
 * once more after the commit with done == total == the events folded. */
typedef void (*es_rebuild_progress_fn)(void *data, int64_t done, int64_t total);

typedef struct es_rebuild_config {
    const char *conninfo;            /* PostgreSQL; required */
    const char *name;                /* the consumer name whose es_consumer_streams rows are
                                        rewritten (the live projector's); required */
    const es_projector *projector;   /* borrowed; required */
    es_rebuild_progress_fn progress; /* optional */
    void *progress_data;
    /* Borrowed, n_upcasters entries: run on events stored with an older schema version before
     * they are applied. NULL: the projector's own (es_projector_set_upcasters), so that the
     * rebuild folds what the live projector folds. */
    const es_upcaster *upcasters;
    size_t n_upcasters;
    int beside;                      /* 1: the table is a new version built beside the serving one,
                                        which no live consumer writes (es/projection_shape.h):
                                        es_consumer_streams is not locked, only name's rows are
                                        rewritten, so the consumers do not wait */
    int via_text;                    /* 1: rows through the projector's text form, converted to
                                        COPY binary (comparison, tests); by default, when the
                                        projector was made with a JSON registry and every column
                                        allows it, rows are written straight from the folded state
                                        (es/projection_binary.h); the rows are the same */
    int text_format;                 /* 1: rows go to the server in COPY's text format even when
                                        every column has a binary encoding here (comparison,
                                        tests); by default binary when possible */
} es_rebuild_config;

typedef struct es_rebuild_result {
    int64_t events;                  /* events folded (the aggregate's events in the snapshot) */
    int64_t rows;                    /* rows written (streams) */
} es_rebuild_result;

/* Rebuilds cfg->projector's table as described above; blocks until committed or rolled back.
 * Returns ES_OK with *out (may be NULL) filled; or, with nothing changed: ES_INVALID_ARGUMENT
 * (bad config; an event type the aggregate does not know, naming the stream and version),
 * ES_DATA_LOSS (a stream's versions do not run 1, 2, 3, ...: the message names the stream and
 * the missing version; or a payload that does not decode), the upcaster's or the apply's status
 * (an event that cannot be upcast or applied, naming the stream and version), ES_UNAVAILABLE
 * (PostgreSQL unreachable), ES_ABORTED (deadlock or serialization failure: may simply run
 * again) or ES_INTERNAL. Thread-safe (no shared state). */
int es_projection_rebuild(const es_rebuild_config *cfg, es_rebuild_result *out, es_error *err);

#endif
