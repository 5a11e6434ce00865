/* The partitions of es_events (sql/event_store.sql; docs/SCALING.md, "Growth: partitioned
 * es_events"): es_events is range-partitioned by position, partitions are made ahead of need by
 * es_partitions_maintain, and a DEFAULT partition takes any position none covers yet, so an
 * append never fails because maintenance lagged.
 *
 * Maintenance runs es_events_partitions_ensure(size) in PostgreSQL: under an advisory lock that
 * it only tries (while another instance maintains, the call is skipped) and a 200 ms lock
 * timeout (attaching a partition locks the default partition; queued behind a long reader it
 * would hold appends behind it, so it gives up, skipped, and the next run tries again). */
#ifndef ES_PARTITIONS_H
#define ES_PARTITIONS_H

#include <stddef.h>
#include <stdint.h>

#include "es/buf.h"
#include "es/pg_pool.h"
#include "es/status.h"

/* What one maintenance run did and saw. */
typedef struct es_partition_status {
    int created;              /* partitions made by this run */
    int skipped;              /* 1: another instance held the lock, or a lock timed out */
    int64_t partitions;       /* partitions of es_events, the default included */
    int64_t newest_events;    /* positions handed out in the partition being filled (an upper
                               * bound of its events: a rolled-back append's positions count) */
    int64_t headroom;         /* positions left before the highest partition's end (0: new
                               * events go to the default partition) */
    int64_t default_events;   /* events in the default partition (counted up to 1,000,000) */
} es_partition_status;

/* One partition, as es_events_partitions() lists it. */
typedef struct es_partition_info {
    char name[64];
    int is_default;
    int has_from, has_to;     /* 0: MINVALUE (from), or the default partition */
    int64_t from, to;         /* [from, to) */
    int64_t rows_estimate;    /* PostgreSQL's estimate; -1 before the first vacuum or analyze */
    int64_t bytes;            /* with indexes and TOAST */
    char tablespace[64];      /* "" for the database's default */
} es_partition_info;

/* Positions per partition: the default of event-partition-size, and the accepted range. */
#define ES_PARTITION_SIZE_DEFAULT 10000000
#define ES_PARTITION_SIZE_MIN 1000
#define ES_PARTITION_SIZE_MAX 1000000000

/* Makes the partitions missing ahead of the sequence for partitions of size positions (any
 * positive size; orderd validates its key against the range above), then reads the status into
 * *out (may be NULL). Returns ES_OK (a skipped run included), or the error. Thread-safe (one
 * pool checkout). */
int es_partitions_maintain(es_pg_pool *pool, int64_t size, es_partition_status *out, es_error *err);

/* The partitions in position order, the default last. *out is malloc'd (caller frees), *n its
 * length. */
int es_partitions_list(es_pg_pool *pool, es_partition_info **out, size_t *n, es_error *err);

/* A maintainer owns the last status and the metric families:
 *   es_event_partitions, es_event_partition_newest_events, es_event_partition_headroom,
 *   es_event_partition_default_events (gauges: -1 until the first run),
 *   es_event_partition_created_total, es_event_partition_maintenance_failures_total (counters). */
typedef struct es_partitions es_partitions;

/* pool is borrowed (outlives the maintainer). Never NULL. */
es_partitions *es_partitions_new(es_pg_pool *pool, int64_t size);
/* One maintenance run; logs what it made, a skip at warn level only when it keeps lagging, a
 * non-empty default partition, and failures. Returns what es_partitions_maintain returned. Called
 * from one thread at a time. */
int es_partitions_run(es_partitions *p, es_error *err);
void es_partitions_write_metrics(es_partitions *p, es_buf *out);
void es_partitions_free(es_partitions *p);

#endif
