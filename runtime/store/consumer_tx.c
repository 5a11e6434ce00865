/* The transaction API consumer handlers write through (es_consumer_tx, es_sql_rows): SQL text
 * prepared once per connection, run inside the runner's open transaction. */
#include <stdlib.h>

#include "consumer_internal.h"

struct es_sql_rows {
    PGresult *r;
};


static PGresult *tx_run(es_consumer_tx *tx, const char *sql, int nparams, const char *const *params,
                        ExecStatusType want, es_error *err, int *rc)
{
    *rc = ES_OK;
    if (!tx || !tx->s || !sql) {
        *rc = es_error_set(err, ES_INVALID_ARGUMENT, "", "es_consumer_tx: no transaction or sql");
        return NULL;
    }
    const char *name = es_pg_session_stmt(tx->s, sql, nparams, err, rc);
    if (!name)
        return NULL;
    PGresult *r = PQexecPrepared(es_pg_session_conn(tx->s), name, nparams, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(r);
    if (st == want || (want == PGRES_COMMAND_OK && st == PGRES_TUPLES_OK))
        return r;
    *rc = es_pg_session_fail(tx->s, r, "sql", err);
    PQclear(r);
    return NULL;
}

int es_consumer_tx_exec(es_consumer_tx *tx, const char *sql, int nparams, const char *const *params,
                        int64_t *rows_affected, es_error *err)
{
    int rc;
    PGresult *r = tx_run(tx, sql, nparams, params, PGRES_COMMAND_OK, err, &rc);
    if (!r)
        return rc;
    if (rows_affected)
        *rows_affected = strtoll(PQcmdTuples(r), NULL, 10);
    PQclear(r);
    return ES_OK;
}

int es_consumer_tx_query(es_consumer_tx *tx, const char *sql, int nparams,
                         const char *const *params, es_sql_rows **out, es_error *err)
{
    int rc;
    *out = NULL;
    PGresult *r = tx_run(tx, sql, nparams, params, PGRES_TUPLES_OK, err, &rc);
    if (!r)
        return rc;
    *out = es_xmalloc(sizeof **out);
    (*out)->r = r;
    return ES_OK;
}

const char *es_consumer_tx_name(const es_consumer_tx *tx) { return tx ? tx->name : ""; }

int es_sql_rows_count(const es_sql_rows *rows) { return rows ? PQntuples(rows->r) : 0; }
int es_sql_rows_columns(const es_sql_rows *rows) { return rows ? PQnfields(rows->r) : 0; }

const char *es_sql_rows_value(const es_sql_rows *rows, int row, int col)
{
    if (!rows || row < 0 || col < 0 || row >= PQntuples(rows->r) || col >= PQnfields(rows->r) ||
        PQgetisnull(rows->r, row, col))
        return NULL;
    return PQgetvalue(rows->r, row, col);
}

void es_sql_rows_free(es_sql_rows *rows)
{
    if (!rows)
        return;
    PQclear(rows->r);
    free(rows);
}
