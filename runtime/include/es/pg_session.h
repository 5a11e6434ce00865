/* A dedicated PostgreSQL connection: one session kept by one thread for a long-lived job that
 * the pool cannot serve (the feed's LISTEN, the relay's advisory lock, a consumer's transaction
 * spanning a batch, the rebuild's exported snapshot). The pool (es/pg_pool.h) serves the command
 * and query path; everything else that talks to PostgreSQL holds one of these.
 *
 * - Connects lazily (es_pg_session_ensure) with the conninfo, the same defaults as the pool
 *   (connect_timeout, TCP keepalives) and the given application_name, then runs the session
 *   settings, prepares the statements and LISTENs, each checked.
 * - Reconnects: ensure is a no-op while the connection is healthy; after it broke, or after a
 *   failure marked it for a reconnect (es_pg_session_fail), the next ensure opens a new one.
 * - Statements given as SQL text at run time are prepared on first use and remembered for the
 *   life of the connection (es_pg_session_stmt).
 * - Failures are classified by the one SQLSTATE map (es/pg_error.h).
 * Not thread-safe: one thread per session. */
#ifndef ES_PG_SESSION_H
#define ES_PG_SESSION_H

#include <stddef.h>
#include <libpq-fe.h>

#include "es/pg_error.h"
#include "es/pg_pool.h"
#include "es/status.h"

typedef struct es_pg_session es_pg_session;

typedef struct es_pg_session_config {
    const char *conninfo;             /* libpq conninfo or URI (required) */
    const char *application_name;     /* shown in pg_stat_activity (required) */
    const char *settings;             /* SQL run after each connect (e.g. "SET ..."; NULL: none) */
    const char *listen;               /* a channel to LISTEN on after each connect, or NULL */
    const es_pg_statement *statements;/* prepared after each connect (n_statements entries) */
    size_t n_statements;
    int connect_timeout_s;            /* unless conninfo sets one (0: 2) */
} es_pg_session_config;

/* Returns a session holding copies of cfg's strings and statements; connects nothing yet. NULL
 * with err set (ES_INVALID_ARGUMENT) when conninfo or application_name is missing. Free with
 * es_pg_session_free. */
es_pg_session *es_pg_session_new(const es_pg_session_config *cfg, es_error *err);

/* Closes the connection and frees s. Accepts NULL. */
void es_pg_session_free(es_pg_session *s);

/* Makes the session usable: a no-op while its connection is healthy, else (re)connects, runs
 * the settings, LISTENs and prepares. Returns ES_OK, or the failure's status with err set
 * ("<application_name>: connect: ..."; ES_UNAVAILABLE when PostgreSQL cannot be reached). */
int es_pg_session_ensure(es_pg_session *s, es_error *err);

/* The libpq handle (NULL before the first successful ensure or after a close). Borrowed: valid
 * until the next ensure, close or free. */
PGconn *es_pg_session_conn(es_pg_session *s);

/* 1 when the last ensure opened a new connection since the previous call of this function
 * (prepared statements and session state of the old one are gone), else 0. */
int es_pg_session_reconnected(es_pg_session *s);

/* Closes the connection; the next ensure opens a new one. */
void es_pg_session_close(es_pg_session *s);

/* Reports a failed result r (NULL: a failed libpq call) as es_pg_error does, and marks the
 * session for a reconnect when the connection is the problem (es_pg_unavailable). Returns the
 * status. */
int es_pg_session_fail(es_pg_session *s, const PGresult *r, const char *what, es_error *err);

/* Runs one or more SQL commands with no result rows (BEGIN, COMMIT, SAVEPOINT ..., SET ...)
 * and checks that they succeeded. Returns ES_OK or the failure's status (es_pg_session_fail). */
int es_pg_session_exec(es_pg_session *s, const char *sql, const char *what, es_error *err);

/* Ends the open transaction (ROLLBACK) on a cleanup path where there is no caller to tell: a
 * failure is logged (with what) and the session marked for a reconnect, so a connection left
 * inside an aborted transaction is never reused. Nothing to do without a connection. */
void es_pg_session_rollback(es_pg_session *s, const char *what);

/* The name of a statement prepared from sql (nparams parameters, types inferred) on this
 * connection, preparing it on first use; NULL with *rc and err set when preparing failed. The
 * name is valid for the life of the connection. */
const char *es_pg_session_stmt(es_pg_session *s, const char *sql, int nparams, es_error *err, int *rc);

#endif
