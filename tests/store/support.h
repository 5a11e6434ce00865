/* Shared by the store tests: a throwaway PostgreSQL (scripts/pg.sh) per test program, the
 * event-store migration, and "counter", a tiny aggregate built by hand from well-known
 * wrapper messages (runtime/ knows nothing about orders, so neither do its tests).
 *
 * counter: state google.protobuf.Int64Value (the count).
 *   events  Created (Int64Value initial, creates)   Added (Int64Value delta)
 *   commands take a google.protobuf.FieldMask whose paths are the arguments:
 *     CreateCounter [id or "", initial]              creates; emits Created
 *     AddToCounter  [id, delta, expected_version?]   emits Added (none when delta is 0);
 *                                                    refuses a count below 0 (FAILED_PRECONDITION)
 *     AddMany       [id, k]                          emits k Added(1) events (k <= 8)
 *     Rogue         [id]                             emits Created, which it does not declare */
#ifndef TESTS_STORE_SUPPORT_H
#define TESTS_STORE_SUPPORT_H

#include <stdint.h>
#include <libpq-fe.h>

#include "es/migrate.h"
#include "es/pg_pool.h"
#include "es/pipeline.h"
#include "es/schema.h"
#include "es/store.h"
#include "google/protobuf/field_mask.pb-c.h"
#include "google/protobuf/wrappers.pb-c.h"

typedef struct pgt {
    char dir[512];
    char conninfo[2048];
} pgt;

/* Starts (creating if needed) the cluster <build>/tests/store/pg-<name>, empties its public
 * schema and applies the event-store DDL. Aborts the test program on failure. */
void pgt_start(pgt *t, const char *name);
/* Empties the public schema of the running cluster and applies the event-store DDL again. */
void pgt_reset(pgt *t);
void pgt_stop(pgt *t);             /* scripts/pg.sh stop */
void pgt_restart(pgt *t);          /* scripts/pg.sh restart */
void pgt_resume(pgt *t);           /* scripts/pg.sh start after a stop */
/* Runs SQL on a fresh connection; returns the first column of the first row as an integer
 * (0 when there is none). Aborts on error. */
long long pgt_scalar(pgt *t, const char *sql);
void pgt_exec(pgt *t, const char *sql);
/* Applies the event-store DDL (sql/event_store.sql) through es_migrate. */
int pgt_migrate(es_pg_pool *pool, size_t *applied, es_error *err);

extern const char test_event_store_sql[];

extern const es_aggregate_def counter_aggregate;
extern const es_event_def counter_created, counter_added;
extern const es_command_def counter_create, counter_add, counter_add_many, counter_rogue;

/* A FieldMask command with up to 4 arguments (NULL-terminated list), stack-friendly. */
typedef struct counter_cmd {
    Google__Protobuf__FieldMask msg;
    char *paths[4];
    char buf[4][64];
} counter_cmd;
const ProtobufCMessage *counter_cmd_make(counter_cmd *c, const char *a0, const char *a1, const char *a2);

/* The count of a state message. */
int64_t counter_value(const ProtobufCMessage *state);

/* Monotonic seconds (es_mono_us), for durations. */
double now_s(void);

#endif
