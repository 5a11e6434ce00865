/* Projection tables: the projector (consumer handler) and the reader. See es/projection.h. */
#include "es/projection.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "es/hex.h"
#include "es/projection_shape.h"
#include "es/sha256.h"
#include "es/timefmt.h"

#define MAX_COLUMNS 96

struct es_projector {
    const es_projection_def *def;
    const es_json_registry *json;
    const es_upcaster *ups;          /* applied to events stored with an older schema version */
    size_t n_ups;
    const ProtobufCFieldDescriptor *fields[MAX_COLUMNS];
    char *select_sql;
    char *upsert_sql;
    char *select_many_sql;           /* the rows of many keys (the batch path) */
    char *upsert_many_sql;           /* many rows from text arrays (the batch path) */
    char *delete_sql;
    char *truncate_sql;
    char shape[65];                  /* the shape this binary writes (es_projection_shape_hash) */
    const char *release;             /* this binary's descriptor-set hash (NULL: not given) */
};

struct es_projection_reader {
    es_pg_pool *pool;
    const es_projection_def *def;
    char get_name[64];
};

/* ---- values as text ------------------------------------------------------------------------ */

static char *bytea_hex(es_arena *a, const uint8_t *p, size_t n)
{
    char *s = es_arena_alloc(a, 2 * n + 3);
    s[0] = '\\';
    s[1] = 'x';
    es_hex_encode(p, n, s + 2);
    return s;
}

/* Decodes PostgreSQL's text form of bytea ("\x..."); returns the length or -1. */
static long bytea_unhex(const char *s, uint8_t **out, es_arena *a)
{
    if (!s || s[0] != '\\' || s[1] != 'x')
        return -1;
    size_t len = strlen(s + 2);
    uint8_t *p = es_arena_alloc(a, len / 2 ? len / 2 : 1);
    long n = es_hex_decode(s + 2, len, p);
    if (n >= 0)
        *out = p;
    return n;
}

static int is_timestamp(const ProtobufCFieldDescriptor *f)
{
    return f->type == PROTOBUF_C_TYPE_MESSAGE &&
           strcmp(((const ProtobufCMessageDescriptor *)f->descriptor)->name, "google.protobuf.Timestamp") == 0;
}

static char *timestamp_text(es_arena *a, const ProtobufCMessage *m)
{
    /* Timestamp: field 1 seconds (int64), field 2 nanos (int32), as protobuf-c lays them out. */
    const ProtobufCMessageDescriptor *d = m->descriptor;
    int64_t secs = *(const int64_t *)((const char *)m + d->fields[0].offset);
    int32_t nanos = *(const int32_t *)((const char *)m + d->fields[1].offset);
    char buf[ES_RFC3339_LEN];
    return es_arena_strdup(a, es_rfc3339_us(secs * 1000000 + nanos / 1000, buf));
}

/* Strings reach projections through the JSON or protobuf decoders, both of which check UTF-8;
 * one that is not stays out of the JSON rather than making it invalid. */
static void json_string(es_buf *b, const char *s)
{
    if (es_json_put_string(b, s) != ES_OK)
        es_buf_puts(b, "null");
}

/* One scalar element of a field as text (JSON-ready when quote is set). */
static void scalar_text(es_buf *b, const ProtobufCFieldDescriptor *f, const void *p, int quote)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32: case PROTOBUF_C_TYPE_SINT32: case PROTOBUF_C_TYPE_SFIXED32:
        es_buf_printf(b, "%d", *(const int32_t *)p);
        break;
    case PROTOBUF_C_TYPE_UINT32: case PROTOBUF_C_TYPE_FIXED32:
        es_buf_printf(b, "%u", *(const uint32_t *)p);
        break;
    case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64: case PROTOBUF_C_TYPE_SFIXED64:
        es_buf_printf(b, quote ? "\"%lld\"" : "%lld", (long long)*(const int64_t *)p);
        break;
    case PROTOBUF_C_TYPE_UINT64: case PROTOBUF_C_TYPE_FIXED64:
        es_buf_printf(b, quote ? "\"%llu\"" : "%llu", (unsigned long long)*(const uint64_t *)p);
        break;
    case PROTOBUF_C_TYPE_FLOAT:
        es_buf_printf(b, "%.9g", (double)*(const float *)p);
        break;
    case PROTOBUF_C_TYPE_DOUBLE:
        es_buf_printf(b, "%.17g", *(const double *)p);
        break;
    case PROTOBUF_C_TYPE_BOOL:
        es_buf_puts(b, *(const protobuf_c_boolean *)p ? "true" : "false");
        break;
    case PROTOBUF_C_TYPE_ENUM: {
        const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(f->descriptor, *(const int *)p);
        char num[16];
        snprintf(num, sizeof num, "%d", *(const int *)p);
        if (quote)
            json_string(b, v ? v->name : num);
        else
            es_buf_puts(b, v ? v->name : num);
        break;
    }
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)p;
        if (quote)
            json_string(b, s ? s : "");
        else
            es_buf_puts(b, s ? s : "");
        break;
    }
    default:
        break;
    }
}

/* The text of a column, NULL for SQL NULL. */
static int column_text(const es_projector *pj, const ProtobufCFieldDescriptor *f, const ProtobufCMessage *row,
                       es_arena *a, const char **out, es_error *err)
{
    const char *base = (const char *)row + f->offset;
    es_buf b;
    es_buf_init(&b);
    int rc = ES_OK;
    *out = NULL;
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
        size_t n = *(const size_t *)((const char *)row + f->quantifier_offset);
        const char *arr = *(char *const *)base;
        es_buf_putc(&b, '[');
        for (size_t i = 0; i < n && rc == ES_OK; i++) {
            if (i)
                es_buf_putc(&b, ',');
            if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
                es_json_options o = {0};
                rc = es_json_encode(pj->json, ((ProtobufCMessage *const *)arr)[i], &o, &b, err);
            } else {
                size_t sz = f->type == PROTOBUF_C_TYPE_STRING ? sizeof(char *)
                            : (f->type == PROTOBUF_C_TYPE_INT64 || f->type == PROTOBUF_C_TYPE_UINT64 ||
                               f->type == PROTOBUF_C_TYPE_SINT64 || f->type == PROTOBUF_C_TYPE_FIXED64 ||
                               f->type == PROTOBUF_C_TYPE_SFIXED64 || f->type == PROTOBUF_C_TYPE_DOUBLE) ? 8
                            : f->type == PROTOBUF_C_TYPE_BOOL ? sizeof(protobuf_c_boolean) : 4;
                scalar_text(&b, f, arr + i * sz, 1);
            }
        }
        es_buf_putc(&b, ']');
    } else if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
        const ProtobufCMessage *m = *(ProtobufCMessage *const *)base;
        if (!m)
            goto done;
        if (is_timestamp(f)) {
            *out = timestamp_text(a, m);
            goto done;
        }
        es_json_options o = {0};
        rc = es_json_encode(pj->json, m, &o, &b, err);
    } else if (f->type == PROTOBUF_C_TYPE_BYTES) {
        const ProtobufCBinaryData *d = (const ProtobufCBinaryData *)base;
        *out = bytea_hex(a, d->data, d->len);
        goto done;
    } else {
        scalar_text(&b, f, base, 0);
    }
    if (rc == ES_OK)
        *out = es_arena_strndup(a, b.data ? b.data : "", b.len);
done:
    es_buf_free(&b);
    return rc;
}

/* ---- projector ------------------------------------------------------------------------------ */

static const char *key_column(const es_projection_def *def)
{
    return def->key;
}

es_projector *es_projector_new(const es_projection_def *def, const es_json_registry *json)
{
    es_projector *p = es_xcalloc(1, sizeof *p);
    p->def = def;
    p->json = json;
    es_projection_shape_hash(def, p->shape);
    es_buf cols, vals, sets;
    es_buf_init(&cols);
    es_buf_init(&vals);
    es_buf_init(&sets);
    size_t n = def->n_columns < MAX_COLUMNS ? def->n_columns : MAX_COLUMNS;
    for (size_t i = 0; i < n; i++) {
        p->fields[i] = protobuf_c_message_descriptor_get_field(def->descriptor, def->columns[i].field_id);
        es_buf_printf(&cols, "%s, ", def->columns[i].column);
        es_buf_printf(&vals, "$%zu, ", i + 1);
        if (strcmp(def->columns[i].column, key_column(def)) != 0)
            es_buf_printf(&sets, "%s = EXCLUDED.%s, ", def->columns[i].column, def->columns[i].column);
    }
    size_t len = (size_t)snprintf(NULL, 0, "INSERT INTO %s (%ses_state) VALUES (%s$%zu) ON CONFLICT (%s) DO UPDATE SET %ses_state = EXCLUDED.es_state",
                                  def->name, cols.data, vals.data, n + 1, key_column(def), sets.data ? sets.data : "");
    p->upsert_sql = es_xmalloc(len + 1);
    snprintf(p->upsert_sql, len + 1, "INSERT INTO %s (%ses_state) VALUES (%s$%zu) ON CONFLICT (%s) DO UPDATE SET %ses_state = EXCLUDED.es_state",
             def->name, cols.data, vals.data, n + 1, key_column(def), sets.data ? sets.data : "");
    es_buf_free(&cols);
    es_buf_free(&vals);
    es_buf_free(&sets);
    es_buf b;
    es_buf_init(&b);
    es_buf_printf(&b, "SELECT es_state FROM %s WHERE %s = $1 FOR UPDATE", def->name, key_column(def));
    p->select_sql = es_buf_steal(&b, NULL);
    const char *key_type = "text";
    for (size_t i = 0; i < n; i++)
        if (!strcmp(def->columns[i].column, key_column(def)))
            key_type = def->columns[i].sql_type;
    /* One index probe per key whatever the table's statistics (a projection filling from empty
     * has none): LATERAL with OFFSET 0 keeps the lookup inside the loop. */
    es_buf_printf(&b, "SELECT k.i, t.es_state FROM unnest($1::text[]) WITH ORDINALITY AS k(id, i),"
                      " LATERAL (SELECT es_state FROM %s WHERE %s = k.id::%s OFFSET 0) t",
                  def->name, key_column(def), key_type);
    p->select_many_sql = es_buf_steal(&b, NULL);
    /* INSERT .. SELECT FROM unnest(text arrays, one per column) cast to the column types. */
    es_buf_printf(&b, "INSERT INTO %s (", def->name);
    for (size_t i = 0; i < n; i++)
        es_buf_printf(&b, "%s, ", def->columns[i].column);
    es_buf_puts(&b, "es_state) SELECT ");
    for (size_t i = 0; i < n; i++)
        es_buf_printf(&b, "u.c%zu::%s, ", i, def->columns[i].sql_type);
    es_buf_puts(&b, "u.s::bytea FROM unnest(");
    for (size_t i = 0; i <= n; i++)
        es_buf_printf(&b, "%s$%zu::text[]", i ? ", " : "", i + 1);
    es_buf_puts(&b, ") AS u(");
    for (size_t i = 0; i < n; i++)
        es_buf_printf(&b, "c%zu, ", i);
    es_buf_printf(&b, "s) ON CONFLICT (%s) DO UPDATE SET ", key_column(def));
    for (size_t i = 0; i < n; i++)
        if (strcmp(def->columns[i].column, key_column(def)) != 0)
            es_buf_printf(&b, "%s = EXCLUDED.%s, ", def->columns[i].column, def->columns[i].column);
    es_buf_puts(&b, "es_state = EXCLUDED.es_state");
    p->upsert_many_sql = es_buf_steal(&b, NULL);
    es_buf_printf(&b, "DELETE FROM %s WHERE %s = $1", def->name, key_column(def));
    p->delete_sql = es_buf_steal(&b, NULL);
    es_buf_printf(&b, "TRUNCATE %s", def->name);
    p->truncate_sql = es_buf_steal(&b, NULL);
    return p;
}

void es_projector_set_upcasters(es_projector *p, const es_upcaster *ups, size_t n)
{
    p->ups = ups;
    p->n_ups = n;
}

void es_projector_set_release(es_projector *p, const char *descriptor_set_hash)
{
    p->release = descriptor_set_hash;
}

void es_projector_free(es_projector *p)
{
    if (!p)
        return;
    free(p->select_sql);
    free(p->upsert_sql);
    free(p->select_many_sql);
    free(p->upsert_many_sql);
    free(p->delete_sql);
    free(p->truncate_sql);
    free(p);
}

size_t es__projector_n_params(const es_projector *p)
{
    return (p->def->n_columns < MAX_COLUMNS ? p->def->n_columns : MAX_COLUMNS) + 1;
}

const es_projection_def *es__projector_def(const es_projector *p) { return p->def; }

const es_json_registry *es__projector_json(const es_projector *p) { return p->json; }

const es_upcaster *es__projector_upcasters(const es_projector *p, size_t *n)
{
    *n = p->n_ups;
    return p->ups;
}

int es__projector_row_text(const es_projector *p, const ProtobufCMessage *state, int64_t version, es_arena *a,
                           const char **params, es_error *err)
{
    ProtobufCMessage *row = p->def->from_state(state, version, a);
    size_t n = es__projector_n_params(p) - 1;
    for (size_t i = 0; i < n; i++) {
        int rc = column_text(p, p->fields[i], row, a, &params[i], err);
        if (rc != ES_OK)
            return rc;
    }
    size_t len = protobuf_c_message_get_packed_size(state);
    uint8_t *packed = es_arena_alloc(a, len ? len : 1);
    protobuf_c_message_pack(state, packed);
    params[n] = bytea_hex(a, packed, len);
    return ES_OK;
}

/* A rolling deploy (README "Changing the schema") runs instances of two releases on one topic and
 * one table. Once the newer release switched the table to its shape (es/projection_shape.h), rows
 * an older instance wrote would lack the new columns; and an event type only the newer release
 * knows cannot be folded by the older one. Both are left to the instances that can: the batch is
 * retried later (ES_UNAVAILABLE: the consumer waits, nothing is dead-lettered) and its partitions
 * move to them when this instance stops. Run after the consumer's first statement on
 * es_consumer_streams, whose lock the switch waits for, so a switch is seen or has not begun. */
static int writes_current_shape(const es_projector *p, es_consumer_tx *tx, es_error *err)
{
    es_sql_rows *rows = NULL;
    const char *name = p->def->name;
    int rc = es_consumer_tx_query(tx, "SELECT shape_hash FROM es_projection_shapes WHERE name = $1", 1, &name,
                                  &rows, err);
    if (rc == ES_OK && es_sql_rows_count(rows) > 0 && strcmp(es_sql_rows_value(rows, 0, 0), p->shape) != 0)
        rc = es_error_set(err, ES_UNAVAILABLE, "shape",
                          "projection %s: the table serves shape %.12s, this binary writes %.12s; its events "
                          "wait for an instance of that shape (a rolling deploy)",
                          p->def->name, es_sql_rows_value(rows, 0, 0), p->shape);
    es_sql_rows_free(rows);
    return rc;
}

/* An event type this binary does not know: when a newer release of the package writes on this
 * database (es_schemas holds its descriptor set, first seen after this binary's, and that set
 * names the event's message) it is that release's event and waits for an instance that knows it,
 * as above; anything else is refused (the consumer dead-letters it). */
static int unknown_event(const es_projector *p, es_consumer_tx *tx, const es_envelope_view *ev, es_error *err)
{
    int newer = 0;
    if (p->release) {
        const char *schema = ev->schema && ev->schema[0] ? ev->schema : ev->event_type;
        const char *dot = strrchr(schema, '.');
        const char *params[2] = {p->release, dot ? dot + 1 : schema};
        es_sql_rows *rows = NULL;
        int rc = es_consumer_tx_query(tx, "SELECT 1 FROM es_schemas n JOIN es_schemas me ON me.hash = $1 "
                                      "WHERE n.package = me.package AND n.first_seen > me.first_seen "
                                      "AND position(convert_to($2, 'UTF8') IN n.descriptor_set) > 0 LIMIT 1",
                                      2, params, &rows, err);
        newer = rc == ES_OK && es_sql_rows_count(rows) > 0;
        es_sql_rows_free(rows);
        if (rc != ES_OK)
            return rc;
    }
    if (newer)
        return es_error_set(err, ES_UNAVAILABLE, "event_type",
                            "projection %s: %s event type %s is a newer release's; it waits for an instance "
                            "that knows it (a rolling deploy)",
                            p->def->name, p->def->aggregate->name, ev->event_type);
    return es_error_set(err, ES_INVALID_ARGUMENT, "event_type", "projection %s: unknown %s event type %s",
                        p->def->name, p->def->aggregate->name, ev->event_type);
}

int es_projector_handle(void *data, es_consumer_tx *tx, const es_envelope_view *ev, es_error *err)
{
    es_projector *p = data;
    const es_aggregate_def *agg = p->def->aggregate;
    if (strcmp(ev->stream_type, agg->name) != 0)
        return ES_OK;
    const es_event_def *edef = es_schema_find_event(agg, ev->event_type);
    if (!edef)
        return unknown_event(p, tx, ev, err);
    int rc = writes_current_shape(p, tx, err);
    if (rc != ES_OK)
        return rc;
    es_arena a;
    es_arena_init(&a);
    ProtobufCMessage *state = NULL, *event = NULL;
    es_sql_rows *rows = NULL;
    const char *key = ev->stream_id;
    if ((rc = es_consumer_tx_query(tx, p->select_sql, 1, &key, &rows, err)) != ES_OK)
        goto out;
    if (es_sql_rows_count(rows) > 0) {
        uint8_t *bytes = NULL;
        long n = bytea_unhex(es_sql_rows_value(rows, 0, 0), &bytes, &a);
        state = n >= 0 ? protobuf_c_message_unpack(agg->state_descriptor, NULL, (size_t)n, bytes) : NULL;
        if (!state) {
            rc = es_error_set(err, ES_DATA_LOSS, "es_state", "projection %s: stored state of %s does not decode",
                              p->def->name, key);
            goto out;
        }
    } else {
        state = es_xmalloc(agg->state_descriptor->sizeof_message);
        protobuf_c_message_init(agg->state_descriptor, state);
    }
    if ((rc = es_event_decode(edef, ev->schema_version, ev->payload, ev->payload_len, p->ups, p->n_ups, &a, &event,
                              err)) != ES_OK)
        goto out;
    if ((rc = edef->apply(state, event)) != ES_OK) {
        es_error_set(err, rc, "event_type", "projection %s: %s cannot apply to %s at version %lld", p->def->name,
                     ev->event_type, key, (long long)ev->version);
        goto out;
    }
    size_t n = es__projector_n_params(p);
    const char **params = es_arena_alloc(&a, n * sizeof *params);
    if ((rc = es__projector_row_text(p, state, ev->version, &a, params, err)) != ES_OK)
        goto out;
    rc = es_consumer_tx_exec(tx, p->upsert_sql, (int)n, params, NULL, err);
out:
    es_sql_rows_free(rows);
    if (state)
        protobuf_c_message_free_unpacked(state, NULL);
    es_arena_free(&a);
    return rc;
}

/* A stream being folded by the batch path. */
typedef struct folding {
    const char *key;
    ProtobufCMessage *state;
    int64_t version;
} folding;

int es_projector_handle_batch(void *data, es_consumer_tx *tx, const es_envelope_view *evs, size_t n,
                              es_error *err)
{
    es_projector *p = data;
    const es_aggregate_def *agg = p->def->aggregate;
    es_arena a;
    es_arena_init(&a);
    size_t ncols = es__projector_n_params(p), nf = 0;
    folding *f = es_arena_alloc(&a, (n ? n : 1) * sizeof *f);
    es_buf keys, *cols = es_arena_alloc(&a, ncols * sizeof *cols);
    es_buf_init(&keys);
    for (size_t i = 0; i < ncols; i++)
        es_buf_init(&cols[i]);
    es_sql_rows *rows = NULL;
    int rc = ES_OK;
    /* The streams of this aggregate, in the order they come (grouped by stream). */
    for (size_t i = 0; i < n; i++) {
        if (strcmp(evs[i].stream_type, agg->name) != 0)
            continue;
        if (nf && !strcmp(f[nf - 1].key, evs[i].stream_id))
            continue;
        f[nf++] = (folding){evs[i].stream_id, NULL, 0};
        es_pg_array_elem(&keys, evs[i].stream_id);
    }
    if (!nf || (rc = writes_current_shape(p, tx, err)) != ES_OK)
        goto out;
    const char *k = es_pg_array_end(&keys);
    if ((rc = es_consumer_tx_query(tx, p->select_many_sql, 1, &k, &rows, err)) != ES_OK)
        goto out;
    for (int r = 0; r < es_sql_rows_count(rows); r++) {
        long i = strtol(es_sql_rows_value(rows, r, 0), NULL, 10) - 1;
        uint8_t *bytes = NULL;
        long len = bytea_unhex(es_sql_rows_value(rows, r, 1), &bytes, &a);
        if (i < 0 || (size_t)i >= nf || f[i].state)
            continue;
        f[i].state = len >= 0 ? protobuf_c_message_unpack(agg->state_descriptor, NULL, (size_t)len, bytes) : NULL;
        if (!f[i].state) {
            rc = es_error_set(err, ES_DATA_LOSS, "es_state", "projection %s: stored state of %s does not decode",
                              p->def->name, f[i].key);
            goto out;
        }
    }
    es_sql_rows_free(rows);
    rows = NULL;
    for (size_t i = 0; i < nf; i++)
        if (!f[i].state) {
            f[i].state = es_xmalloc(agg->state_descriptor->sizeof_message);
            protobuf_c_message_init(agg->state_descriptor, f[i].state);
        }
    /* Fold: evs are grouped by stream in version order, f in the same order. */
    size_t cur = 0;
    for (size_t i = 0; i < n; i++) {
        const es_envelope_view *ev = &evs[i];
        if (strcmp(ev->stream_type, agg->name) != 0)
            continue;
        while (strcmp(f[cur].key, ev->stream_id) != 0)
            cur++;
        const es_event_def *edef = es_schema_find_event(agg, ev->event_type);
        if (!edef) {
            rc = unknown_event(p, tx, ev, err);
            goto out;
        }
        ProtobufCMessage *event = NULL;
        if ((rc = es_event_decode(edef, ev->schema_version, ev->payload, ev->payload_len, p->ups, p->n_ups, &a,
                                  &event, err)) != ES_OK)
            goto out;
        if ((rc = edef->apply(f[cur].state, event)) != ES_OK) {
            es_error_set(err, rc, "event_type", "projection %s: %s cannot apply to %s at version %lld",
                         p->def->name, ev->event_type, ev->stream_id, (long long)ev->version);
            goto out;
        }
        f[cur].version = ev->version;
    }
    const char **params = es_arena_alloc(&a, ncols * sizeof *params);
    for (size_t i = 0; i < nf; i++) {
        if ((rc = es__projector_row_text(p, f[i].state, f[i].version, &a, params, err)) != ES_OK)
            goto out;
        for (size_t c = 0; c < ncols; c++)
            es_pg_array_elem(&cols[c], params[c]);
    }
    for (size_t c = 0; c < ncols; c++)
        params[c] = es_pg_array_end(&cols[c]);
    rc = es_consumer_tx_exec(tx, p->upsert_many_sql, (int)ncols, params, NULL, err);
out:
    es_sql_rows_free(rows);
    for (size_t i = 0; i < nf; i++)
        if (f[i].state)
            protobuf_c_message_free_unpacked(f[i].state, NULL);
    es_buf_free(&keys);
    for (size_t i = 0; i < ncols; i++)
        es_buf_free(&cols[i]);
    es_arena_free(&a);
    return rc;
}

int es_projector_reset(void *data, es_consumer_tx *tx, const char *stream_id, es_error *err)
{
    es_projector *p = data;
    if (stream_id)
        return es_consumer_tx_exec(tx, p->delete_sql, 1, &stream_id, NULL, err);
    return es_consumer_tx_exec(tx, p->truncate_sql, 0, NULL, NULL, err);
}

/* ---- reader --------------------------------------------------------------------------------- */

es_projection_reader *es_projection_reader_new(es_pg_pool *pool, const es_projection_def *def)
{
    es_projection_reader *r = es_xcalloc(1, sizeof *r);
    r->pool = pool;
    r->def = def;
    snprintf(r->get_name, sizeof r->get_name, "esproj_get_%s", def->name);
    return r;
}

void es_projection_reader_free(es_projection_reader *r) { free(r); }

static const es_projection_column *find_column(const es_projection_def *def, const char *name)
{
    for (size_t i = 0; i < def->n_columns; i++)
        if (strcmp(def->columns[i].column, name) == 0)
            return &def->columns[i];
    return NULL;
}

/* Registers (once) and runs a statement; rows are es_state (binary) and version (binary). */
static int run_rows(es_projection_reader *r, const char *name, const char *sql, int nparams, const char *const *params,
                    es_arena *a, ProtobufCMessage ***rows, size_t *n, es_error *err)
{
    es_pg_statement st = {name, sql, nparams, NULL};
    int rc = es_pg_pool_register(r->pool, &st, 1, err);
    if (rc)
        return rc;
    es_pg_conn *c;
    if ((rc = es_pg_pool_checkout(r->pool, &c, err)) != ES_OK)
        return rc;
    PGconn *pg = es_pg_conn_pg(c);
    PGresult *res = PQexecPrepared(pg, name, nparams, params, NULL, NULL, 1);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        rc = es_pg_error(pg, res, r->def->name, err);
        goto out;
    }
    int nt = PQntuples(res);
    *rows = es_arena_alloc(a, (size_t)(nt ? nt : 1) * sizeof **rows);
    *n = 0;
    const es_aggregate_def *agg = r->def->aggregate;
    for (int i = 0; i < nt; i++) {
        const uint8_t *v = (const uint8_t *)PQgetvalue(res, i, 1);
        int64_t version = 0;
        for (int k = 0; k < 8 && PQgetlength(res, i, 1) == 8; k++)
            version = (int64_t)((uint64_t)version << 8 | v[k]);
        ProtobufCMessage *state = protobuf_c_message_unpack(agg->state_descriptor, &a->pb, (size_t)PQgetlength(res, i, 0),
                                                            (const uint8_t *)PQgetvalue(res, i, 0));
        if (!state) {
            rc = es_error_set(err, ES_DATA_LOSS, "es_state", "%s: a stored state does not decode", r->def->name);
            goto out;
        }
        (*rows)[(*n)++] = r->def->from_state(state, version, a);
    }
    rc = ES_OK;
out:
    PQclear(res);
    es_pg_pool_checkin(r->pool, c);
    return rc;
}

int es_projection_get(es_projection_reader *r, const char *key, es_arena *a, ProtobufCMessage **row, es_error *err)
{
    char *sql = es_arena_sprintf(a, "SELECT es_state, version FROM %s WHERE %s = $1", r->def->name, r->def->key);
    ProtobufCMessage **rows;
    size_t n = 0;
    int rc = run_rows(r, r->get_name, sql, 1, &key, a, &rows, &n, err);
    if (rc)
        return rc;
    if (n == 0)
        return es_error_set(err, ES_NOT_FOUND, r->def->key, "%s %s not found", r->def->key, key);
    *row = rows[0];
    return ES_OK;
}

int es_projection_list(es_projection_reader *r, const es_projection_list_query *q, es_arena *a,
                       ProtobufCMessage ***rows, size_t *n, es_error *err)
{
    const es_projection_def *def = r->def;
    const es_projection_column *order = find_column(def, q->order_column);
    const es_projection_column *key = find_column(def, def->key);
    if (!order || !key)
        return es_error_set(err, ES_INVALID_ARGUMENT, "order", "%s has no column %s", def->name, q->order_column);
    es_buf sql;
    es_buf_init(&sql);
    const char **params = es_arena_alloc(a, (q->n_filters + 4) * sizeof *params);
    int np = 0;
    es_buf_printf(&sql, "SELECT es_state, version FROM %s WHERE true", def->name);
    for (size_t i = 0; i < q->n_filters; i++) {
        if (!find_column(def, q->filters[i].column)) {
            es_buf_free(&sql);
            return es_error_set(err, ES_INVALID_ARGUMENT, q->filters[i].column, "%s has no column %s", def->name,
                                q->filters[i].column);
        }
        params[np++] = q->filters[i].value;
        es_buf_printf(&sql, " AND %s = $%d", q->filters[i].column, np);
    }
    if (q->after_value && q->after_key) {
        params[np++] = q->after_value;
        params[np++] = q->after_key;
        es_buf_printf(&sql, " AND (%s, %s) < ($%d::%s, $%d::%s)", order->column, key->column, np - 1, order->sql_type, np,
                      key->sql_type);
    }
    char lim[24], off[24];
    snprintf(lim, sizeof lim, "%zu", q->limit);
    snprintf(off, sizeof off, "%zu", q->offset);
    params[np++] = lim;
    params[np++] = off;
    es_buf_printf(&sql, " ORDER BY %s DESC, %s DESC LIMIT $%d::bigint OFFSET $%d::bigint", order->column, key->column,
                  np - 1, np);
    char hash[65], name[64];
    es_sha256_hex(sql.data, sql.len, hash);
    snprintf(name, sizeof name, "esproj_list_%.16s", hash);
    int rc = run_rows(r, name, sql.data, np, params, a, rows, n, err);
    es_buf_free(&sql);
    return rc;
}
