/* The one SQLSTATE-to-status map and the one PostgreSQL error report of the runtime. */
#include "es/pg_error.h"

#include <stdio.h>
#include <string.h>

/* First line of a libpq message, without the trailing newline. */
static void first_line(char *out, size_t cap, const char *msg)
{
    size_t n = 0;
    if (!msg) msg = "";
    while (msg[n] && msg[n] != '\n' && n + 1 < cap) n++;
    memcpy(out, msg, n);
    out[n] = 0;
}

int es_pg_sqlstate_status(const char *st, int fallback)
{
    if (!st || strlen(st) != 5) return fallback;
    if (strncmp(st, "08", 2) == 0 || strncmp(st, "53", 2) == 0 || strcmp(st, "25006") == 0 ||
        strcmp(st, "57000") == 0 || strncmp(st, "57P", 3) == 0)
        return ES_UNAVAILABLE;
    if (strcmp(st, "23505") == 0 || strcmp(st, "40001") == 0 || strcmp(st, "40P01") == 0) return ES_ABORTED;
    /* query_canceled is a statement_timeout (ours, the role's or the database's) or a cancel
     * request (pg_cancel_backend, a client's PQcancel). Either way the server gave up on the
     * statement in time, not on the connection nor the data: the transaction rolled back and the
     * same work may succeed when run again. DEADLINE_EXCEEDED says exactly that to a client
     * (504, retry with a larger budget) where UNAVAILABLE would blame the database being down;
     * background workers treat both alike (es_pg_retry_later), so a slow statement never turns
     * a good event into a dead letter. */
    if (strcmp(st, "57014") == 0) return ES_DEADLINE_EXCEEDED;
    return fallback;
}

int es_pg_unavailable(PGconn *conn, const PGresult *r)
{
    if (!conn || PQstatus(conn) != CONNECTION_OK) return 1;
    const char *st = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    if (!st) return r == NULL;
    return strncmp(st, "08", 2) == 0 || strncmp(st, "57P", 3) == 0 || strcmp(st, "53300") == 0;
}

int es_pg_status(PGconn *conn, const PGresult *r)
{
    if (es_pg_unavailable(conn, r)) return ES_UNAVAILABLE;
    return es_pg_sqlstate_status(r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL, ES_INTERNAL);
}

int es_pg_error(PGconn *conn, const PGresult *r, const char *what, es_error *err)
{
    char msg[300];
    const char *primary = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    first_line(msg, sizeof msg, primary ? primary : (conn ? PQerrorMessage(conn) : "no connection"));
    if (es_pg_unavailable(conn, r))
        return es_error_set(err, ES_UNAVAILABLE, "", "PostgreSQL unavailable (%s): %s", what, msg);
    const char *st = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    int code = es_pg_sqlstate_status(st, ES_INTERNAL);
    /* The server's reason (read-only, disk full, ...) stays in the message for the log; the
     * dispatcher answers clients with a generic text for these codes. */
    if (code == ES_UNAVAILABLE)
        return es_error_set(err, code, "", "PostgreSQL cannot take the work now (%s, SQLSTATE %s): %s", what, st, msg);
    return es_error_set(err, code, "", "%s: %s", what, msg);
}

int es_pg_retry_later(int status) { return status == ES_UNAVAILABLE || status == ES_DEADLINE_EXCEEDED; }
