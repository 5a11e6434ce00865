/* orderctl internals: what the subcommand files share. Not a library interface.
 *
 * Exit codes of every subcommand: 0 done (and, for checks, nothing wrong); 1 the check found
 * something (differences, unregistered schema, a retry that failed); 2 bad usage or an
 * operational error (PostgreSQL unreachable, migrations missing). */
#ifndef ORDERCTL_H
#define ORDERCTL_H

#include <stdint.h>
#include <stdio.h>

#include "es/admin.h"
#include "es/buf.h"
#include "es/consumer.h"
#include "es/envelope.h"
#include "es/packages.h"
#include "es/json.h"
#include "es/pg_pool.h"
#include "es/pipeline.h"
#include "es/projection.h"
#include "orders/v1/orders_v1.es.h"

#define CTL_OK 0
#define CTL_FOUND 1
#define CTL_ERROR 2

#define CTL_MAX_PROJECTIONS 32

typedef struct ctl {
    const char *pg;                 /* libpq conninfo */
    const char *payment_gateway;    /* for re-applying payment-flow dead letters */
    int payment_delay_ms;
    int progress;                   /* 1: progress lines on stderr (a terminal) */
    const es_package_list *packages; /* the generated packages linked into orderctl (es/packages.h) */
    const es_projection_def *projections[CTL_MAX_PROJECTIONS]; /* theirs, in list order */
    size_t n_projections;
    es_json_registry *json;
    es_pg_pool *pool;               /* opened by ctl_connect */
    es_pipeline *pipeline;          /* made on first use by ctl_pipeline */
} ctl;

/* Opens the pool (no connection yet). Returns 0 or CTL_ERROR after printing why. */
int ctl_connect(ctl *c);
/* The pipeline over c's pool (payment flow, store reads), made on first call; NULL after printing
 * why. Freed at exit by main. */
es_pipeline *ctl_pipeline(ctl *c);

/* The definition of a stored event in any linked package (es_schema_event_by_type), or NULL. */
const es_event_def *ctl_event_def(const ctl *c, const char *stream_type, const char *type);

/* Prints "orderctl: <what>: <status>: <message>" on stderr and returns CTL_ERROR. */
int ctl_fail(const char *what, const es_error *err);

/* Subcommands: argv[0] is the subcommand's name; global options are already removed. */
int ctl_migrate(ctl *c, int argc, char **argv);
int ctl_history(ctl *c, int argc, char **argv);
int ctl_tail(ctl *c, int argc, char **argv);
int ctl_projections(ctl *c, int argc, char **argv);
int ctl_verify(ctl *c, int argc, char **argv);
int ctl_dead_letters(ctl *c, int argc, char **argv);
int ctl_schema(ctl *c, int argc, char **argv);
int ctl_events(ctl *c, int argc, char **argv);

/* ---- orderctl_json.c: output lines ---- */

/* Strings are written with es_json_quote_str (es/json_string.h), times as text with
 * es_rfc3339_us (es/timefmt.h). */
/* Appends a microsecond Unix time as an RFC 3339 UTC string (quoted). */
void ctl_json_time(es_buf *b, int64_t us);
/* Appends one event as a JSON object: its metadata and "data", the payload decoded with the
 * generated unpack (or the registry by schema name) and rendered as proto3 JSON; "data" is null
 * and "payload_hex" carries the bytes when the payload does not decode. */
void ctl_event_json(const ctl *c, const es_envelope_view *ev, es_buf *out);

/* ---- orderctl_progress.c: progress on a terminal ---- */

typedef struct ctl_progress {
    int enabled;
    const char *what;               /* "verify order_summary" */
    const char *unit;               /* "streams", "events" */
    int64_t total;                  /* 0: unknown */
    int64_t done;
    double started, last_drawn;
} ctl_progress;

/* Starts a progress line when enabled (drawn at most 10 times a second). */
void ctl_progress_start(ctl_progress *p, int enabled, const char *what, const char *unit, int64_t total);
/* Records done units; redraws "what: done/total unit (pct), rate/s, ETA" when due. */
void ctl_progress_update(ctl_progress *p, int64_t done);
/* Draws the final state and ends the line. */
void ctl_progress_end(ctl_progress *p);

/* ---- orderctl_consumers.c: the handlers orderd runs, by consumer name ---- */

/* How to re-apply events for one named consumer, as orderd wires it. */
typedef struct ctl_consumer {
    const char *name;               /* "projection.order_summary", "payment-flow" */
    es_consumer_handle_fn handle;
    void *data;
    int (*reset)(void *data, es_consumer_tx *tx, const char *stream_id, es_error *err);
    const es_projection_def *projection;   /* non-NULL for projection consumers */
} ctl_consumer;

/* Fills out for consumer name. Returns 0, or CTL_ERROR after printing why (unknown consumer,
 * gateway or pipeline could not be made). Release with ctl_consumer_release. */
int ctl_consumer_get(ctl *c, const char *name, ctl_consumer *out);
void ctl_consumer_release(ctl_consumer *cc);
/* The consumer name orderd gives a projection's consumer ("projection.<table>"). */
void ctl_projection_consumer_name(const es_projection_def *def, char *out, size_t len);

/* ---- orderctl_diff.c: field-by-field message comparison ---- */

/* One differing field of two messages of the same type. */
typedef struct ctl_field_diff {
    const char *field;              /* proto field name */
    const char *expected;           /* proto3 JSON of the value (arena) */
    const char *actual;
} ctl_field_diff;

/* Compares a and b (same descriptor; either may be NULL = all defaults) field by field, over the
 * fields whose numbers are in only[0..n_only) (n_only 0: every field), by their packed bytes.
 * Writes up to max differences into out (values rendered with json, allocated from arena) and
 * returns how many fields differ. */
size_t ctl_diff_fields(const es_json_registry *json, const ProtobufCMessageDescriptor *d, const ProtobufCMessage *a,
                       const ProtobufCMessage *b, const unsigned *only, size_t n_only, es_arena *arena,
                       ctl_field_diff *out, size_t max);

#endif
