/* PostgreSQL failures as es_status codes: the one SQLSTATE map of the runtime, shared by the
 * connection pool (es/pg_pool.h) and the dedicated sessions (es/pg_session.h) of the feed, the
 * relay, the consumers and the rebuild, so that one server answer means one status everywhere. */
#ifndef ES_PG_ERROR_H
#define ES_PG_ERROR_H

#include <libpq-fe.h>
#include "es/status.h"

/* The es_status for a SQLSTATE (five characters; NULL or unknown => fallback):
 *   08xxx connection exception, 57000 operator intervention, 57P01-57P05 shutdown, crash,
 *   cannot connect now, database dropped, idle session timeout, 25006 read-only transaction (a
 *   standby or default_transaction_read_only), 53xxx insufficient resources (disk full, out of
 *   memory, too many connections) => ES_UNAVAILABLE (the server cannot take the work now; the
 *   same call may succeed later);
 *   23505 unique violation, 40001 serialization failure, 40P01 deadlock => ES_ABORTED (lost a
 *   race: run again against the new state);
 *   57014 query cancelled => ES_DEADLINE_EXCEEDED (see pg_error.c for why).
 * For callers that receive a SQLSTATE as text (e.g. one caught inside a PL/pgSQL function). */
int es_pg_sqlstate_status(const char *sqlstate, int fallback);

/* 1 when a result (or connection) failure means the database is unreachable: the connection is
 * gone, or the failure carries no SQLSTATE (nothing came back from the server). */
int es_pg_unavailable(PGconn *conn, const PGresult *r);

/* The es_status of a failed result (or NULL result) on conn: ES_UNAVAILABLE when unreachable
 * (es_pg_unavailable), else es_pg_sqlstate_status with ES_INTERNAL as the fallback. */
int es_pg_status(PGconn *conn, const PGresult *r);

/* Fills err for a failed result (or NULL result) on conn and returns its status
 * (es_pg_status): "<what>: <server message>" (the server's primary message, first line only,
 * never the conninfo). Every runtime module reports PostgreSQL failures through this one. */
int es_pg_error(PGconn *conn, const PGresult *r, const char *what, es_error *err);

/* 1 when a failure of this status is the database's state, not the work's: ES_UNAVAILABLE and
 * ES_DEADLINE_EXCEEDED. Background workers (relay, consumers) wait and retry such work as it is,
 * never dead-letter it. */
int es_pg_retry_later(int status);

#endif
