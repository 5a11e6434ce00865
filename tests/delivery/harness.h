/* Shared fixtures of the delivery tests: a real PostgreSQL (scripts/pg.sh, one cluster, one
 * database per test program), a real Kafka protocol endpoint (es-kafka-mock process, one per
 * test program), appends by plain INSERT (+ pg_notify, as the store does), a reader of a whole
 * topic and the delivery checks every relay test makes. */
#ifndef DELIVERY_HARNESS_H
#define DELIVERY_HARNESS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <libpq-fe.h>

#include "es/arena.h"
#include "es/envelope.h"

typedef struct dh_env {
    char dir[512];             /* this test program's work folder */
    char conninfo[1024];       /* its own database */
    char bootstrap_file[600];
    char ctl_sock[600];
    pid_t mock_pid;
} dh_env;

/* Creates dir, starts the shared cluster (scripts/pg.sh under a file lock), recreates database
 * `db` and loads sql/event_store.sql. Aborts the test program on failure. */
void dh_pg_start(dh_env *e, const char *name);
/* A new connection to the test database; aborts on failure. */
PGconn *dh_connect(const dh_env *e);
/* Runs SQL (no parameters) and aborts with the message on failure. */
void dh_exec(PGconn *c, const char *sql);
/* First column of the first row as int64 (0 when no row). */
int64_t dh_query_int(PGconn *c, const char *sql);

/* Starts es-kafka-mock with 3 brokers and the given topics ("name:partitions", NULL-ended);
 * waits for its bootstrap file. */
void dh_mock_start(dh_env *e, const char *const *topics);
/* SIGTERM and wait. */
void dh_mock_stop(dh_env *e);
/* Sends one control line ("down all"); returns 0 when the mock answered ok. */
int dh_mock_ctl(const dh_env *e, const char *cmd);
/* The current bootstrap address. */
void dh_bootstrap(const dh_env *e, char *out, size_t sz);

/* Appends `count` events to stream_id at versions from..from+count-1 in one transaction with a
 * pg_notify('es_events'), as the store does. Payload is "e<version>". Returns 0 or -1. */
int dh_append(PGconn *c, const char *stream_id, int64_t from, int count);

/* Every message of a topic, partition by partition in offset order. */
typedef struct dh_msg {
    char *key;
    int32_t partition;
    int64_t offset;
    es_envelope_view ev;       /* decoded value */
    const char *hdr_stream_id; /* es-stream-id header ("" when absent) */
    int64_t hdr_version;
} dh_msg;

typedef struct dh_dump {
    dh_msg *m;
    size_t n;
    es_arena arena;
} dh_dump;

/* Reads every message of topic up to its current high watermarks. Returns 0 or -1. */
int dh_dump_topic(const char *bootstrap, const char *topic, dh_dump *out);
void dh_dump_free(dh_dump *d);

/* Checks the topic against es_events: every stored event is present, keyed by stream id (key,
 * envelope and header agree, one partition per key), and each key's first occurrences come in
 * version order 1, 2, 3...; a consumer-side fold that skips versions already applied therefore
 * applies each event exactly once. Returns 0, or -1 with why filled. *dups gets the number of
 * duplicate messages the fold skipped. */
int dh_check_delivery(PGconn *c, const dh_dump *d, int64_t *dups, char *why, size_t whysz);

/* The newest feed position (txid, position) in es_events; all rows must be committed. */
void dh_feed_end(PGconn *c, uint64_t *txid, int64_t *position);
/* Waits until es_relay_checkpoint(name) reaches (txid, position); returns 0, -1 on timeout. */
int dh_wait_checkpoint(PGconn *c, const char *name, uint64_t txid, int64_t position, int timeout_ms);

/* fork + exec; returns the child's pid (aborts on failure). */
pid_t dh_spawn(char *const argv[]);
int64_t dh_now_ms(void);
void dh_sleep_ms(int ms);

/* Status line a relay_proc child writes: returns 0 and fills the fields, -1 when unreadable. */
typedef struct dh_relay_status {
    int role;
    long long published, failed, republishes;
    unsigned long long txid;
    long long position;
    int kafka_ok;
} dh_relay_status;
int dh_read_relay_status(const char *path, dh_relay_status *out);

/* Path of the relay_proc helper and of es-kafka-mock (compile definitions). */
const char *dh_relay_proc_path(void);

#endif
