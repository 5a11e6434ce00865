/* A pool of PostgreSQL connections (libpq) for the short checkouts of the command and query
 * path: the store, the pipeline, the queries, migrations, administration. Long-lived jobs that
 * keep one connection to themselves (the feed, the relay, the consumers, the rebuild) hold a
 * dedicated session instead (es/pg_session.h); both classify failures with es/pg_error.h.
 *
 * - Sized by config; connections are opened lazily, on first checkout.
 * - Prepared statements only: modules register their statements once (es_pg_pool_register);
 *   each connection prepares every registered statement when it is opened and, for statements
 *   registered later, at its next checkout.
 * - Survives PostgreSQL restarts: a checkout probes the connection without a round trip
 *   (PQconsumeInput sees the server's goodbye) and reopens a dead one; an operation during an
 *   outage fails fast with ES_UNAVAILABLE (connect_timeout bounds a connect to an unreachable
 *   host, and after a failed connect further checkouts fail at once for retry_interval_ms).
 * - Thread-safe checkout/checkin; a connection is used by one thread at a time. */
#ifndef ES_PG_POOL_H
#define ES_PG_POOL_H

#include <stddef.h>
#include <stdint.h>
#include <libpq-fe.h>
#include "es/metrics.h"
#include "es/buf.h"
#include "es/status.h"
#include "es/pg_error.h"

typedef struct es_pg_pool es_pg_pool;
typedef struct es_pg_conn es_pg_conn;

/* A statement prepared on every connection of the pool. name must be unique in the process. */
typedef struct es_pg_statement {
    const char *name;
    const char *sql;
    int n_params;
    const Oid *param_types;        /* n_params OIDs, or NULL to let the server infer them */
} es_pg_statement;

typedef struct es_pg_pool_config {
    const char *conninfo;          /* libpq conninfo or URI (required) */
    size_t size;                   /* maximum open connections (0: 8) */
    int connect_timeout_s;         /* libpq connect_timeout unless conninfo sets one (0: 2) */
    int checkout_timeout_ms;       /* wait for a free connection (0: 5000) */
    int retry_interval_ms;         /* fail fast this long after a failed connect (0: 100) */
    const char *application_name;  /* pg_stat_activity's name for these sessions (NULL: "es") */
} es_pg_pool_config;

/* Returns a pool (no connection is opened yet), or NULL with err set when the config is
 * invalid. The pool copies what it keeps from cfg. Free with es_pg_pool_free. */
es_pg_pool *es_pg_pool_new(const es_pg_pool_config *cfg, es_error *err);

/* Closes every connection. All connections must be checked in. Accepts NULL. */
void es_pg_pool_free(es_pg_pool *p);

/* Registers statements to prepare on every connection (copies them). Registering a name
 * again with the same SQL is a no-op; with different SQL it fails with ES_ALREADY_EXISTS.
 * Statements are prepared at checkout, so the tables they use must exist by then. */
int es_pg_pool_register(es_pg_pool *p, const es_pg_statement *st, size_t n, es_error *err);

/* Takes a live connection on which every registered statement is prepared. Opens or reopens
 * it when needed. Returns ES_OK; ES_UNAVAILABLE when PostgreSQL cannot be reached or no
 * connection frees up within checkout_timeout_ms; ES_INTERNAL when a statement fails to
 * prepare (e.g. the schema is not migrated), with the server's message. Give it back with
 * es_pg_pool_checkin. */
int es_pg_pool_checkout(es_pg_pool *p, es_pg_conn **out, es_error *err);

/* Like es_pg_pool_checkout, but prepares nothing: for migrations and other DDL that run
 * before the statements' tables exist. */
int es_pg_pool_checkout_unprepared(es_pg_pool *p, es_pg_conn **out, es_error *err);

/* Returns a connection to the pool. A connection left inside a transaction, in pipeline
 * mode or broken is closed (it reopens at a later checkout). Accepts NULL. */
void es_pg_pool_checkin(es_pg_pool *p, es_pg_conn *c);

/* Re-checks a connection held for a long time (e.g. by a committer thread): reopens it if it
 * died and prepares statements registered since. Same results as es_pg_pool_checkout. */
int es_pg_conn_ensure(es_pg_pool *p, es_pg_conn *c, es_error *err);

/* The libpq handle of a checked-out connection; valid until checkin. */
PGconn *es_pg_conn_pg(es_pg_conn *c);

/* Marks the connection broken: it is closed and reopened at its next use. */
void es_pg_conn_discard(es_pg_conn *c);

/* What the pool has done and is doing, for metrics. Counters only grow. */
typedef struct es_pg_pool_stats {
    size_t size;                   /* most connections the pool may open */
    size_t open;                   /* connections open (checked out or idle) */
    size_t in_use;                 /* connections checked out (incl. one being opened) */
    size_t idle;                   /* open connections waiting in the pool */
    size_t waiters;                /* callers waiting for a connection to be checked in */
    uint64_t checkouts;            /* successful checkouts */
    uint64_t connects;             /* connections opened */
    uint64_t reconnects;           /* of those, re-openings after a connection died or was discarded */
    uint64_t connect_failures;     /* failed connection attempts */
    uint64_t refused_exhausted;    /* checkouts refused: no connection freed within checkout_timeout_ms */
    uint64_t refused_unavailable;  /* checkouts refused: PostgreSQL unreachable (incl. the fail-fast window) */
    uint64_t refused_error;        /* checkouts refused: a statement failed to prepare */
    es_histogram wait;             /* time a checkout waited for a free slot (refused ones included) */
} es_pg_pool_stats;

/* Fills out with a consistent-enough snapshot (gauges under the pool lock, counters atomic). */
void es_pg_pool_get_stats(es_pg_pool *p, es_pg_pool_stats *out);

/* Builds a PostgreSQL array literal in b (text form): es_pg_array_elem appends s as one quoted
 * element (NULL: SQL NULL; "{" comes before the first), es_pg_array_end closes the literal ("{}"
 * when empty) and returns b->data. */
void es_pg_array_elem(es_buf *b, const char *s);
const char *es_pg_array_end(es_buf *b);

/* 1 while PostgreSQL answers: the last checkout found a live connection or opened one; 0 after
 * one could not (ES_UNAVAILABLE) and before the first. A caller that needs a fresh answer checks
 * a connection out and in first. */
int es_pg_pool_up(es_pg_pool *p);

/* Appends the pool's Prometheus families (es_postgres_up, connections in use, idle, open and max, waiters,
 * checkouts and their refusals by reason, connects, reconnects, the checkout wait histogram). */
void es_pg_pool_write_metrics(es_pg_pool *pool, es_buf *out);

/* A pool over a read replica: es_pg_pool_note_fallback counts a read that the primary served
 * because this pool was unavailable (any thread; accepts NULL). es_pg_pool_write_replica_metrics
 * appends its es_pg_replica_* families (up, connections open, checkouts, connect failures,
 * fallbacks) in place of es_pg_pool_write_metrics, whose names the primary's pool uses. */
void es_pg_pool_note_fallback(es_pg_pool *p);
void es_pg_pool_write_replica_metrics(es_pg_pool *pool, es_buf *out);

#endif
