/* Internal to runtime/store: opening a PostgreSQL connection the one way the pool and the
 * dedicated sessions share. Not a public header. */
#ifndef ES_STORE_PG_CONNECT_H
#define ES_STORE_PG_CONNECT_H

#include <libpq-fe.h>

/* Opens a connection to conninfo. Defaults come before the conninfo, so its own settings win
 * (connect_timeout: connect_timeout_s, 0 meaning 2; TCP keepalives, which make a vanished
 * server fail a waiting call in about 10 s instead of hanging it). app_name is the
 * application_name: a fallback the conninfo may override when fallback is 1, else set after
 * the conninfo so that it wins. Returns libpq's handle (check PQstatus; NULL only when libpq
 * is out of memory); the caller PQfinishes it. */
PGconn *es__pg_connect(const char *conninfo, int connect_timeout_s, const char *app_name, int fallback);

#endif
