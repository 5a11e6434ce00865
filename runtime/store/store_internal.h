/* Internal: the es_store shared by store.c (reads, lifecycle) and append.c (group commit). */
#ifndef ES_STORE_INTERNAL_H
#define ES_STORE_INTERNAL_H

#include <pthread.h>
#include "es/store.h"

/* Prepared statement names (unique in the process: the pool is shared with other modules). */
#define ES__ST_APPEND "es_store_append"
#define ES__ST_BEGIN "es_store_begin"
#define ES__ST_COMMIT "es_store_commit"
#define ES__ST_ROLLBACK "es_store_rollback"
#define ES__ST_READ "es_store_read"
#define ES__ST_LOAD "es_store_load"
#define ES__ST_FIND_COMMAND "es_store_find_command"
#define ES__ST_FIND_LEGACY_COMMAND "es_store_find_legacy_command"
#define ES__ST_REGISTER_SCHEMA "es_store_register_schema"

typedef struct es__append_req es__append_req;

#define ES__MAX_COMMITTERS 8

/* One committer thread and the FIFO of the streams it owns (stream hash % n_committers). */
typedef struct es__committer {
    struct es_store *s;
    pthread_cond_t work;           /* its queue got a request, or stop */
    es__append_req *head, *tail;   /* FIFO of waiting appends */
    pthread_t thread;
    int running;
    es_pg_conn *conn;              /* its own connection, kept across batches */
} es__committer;

struct es_store {
    es_pg_pool *pool;
    size_t max_batch;
    pthread_mutex_t mu;            /* the queues, stop and stats */
    int stop;
    es__committer committers[ES__MAX_COMMITTERS];
    size_t n_committers;
    es_store_stats stats;
    /* es_store_find_legacy_command: until when (es_now_us) keys of the release before scoped
     * keys may be found; 0 not known yet, -1 never (a database created with scoped keys). */
    int64_t legacy_until_us;      /* __atomic */
};

/* Starts / stops the committer threads (append.c). Stop fails queued appends. */
int es__committer_start(es_store *s, es_error *err);
void es__committer_stop(es_store *s);

/* Fills out from a packed list of 16-byte event ids (es_commands.result). */
void es__result_ids(es_append_result *out, const uint8_t *ids, size_t len);

#endif
