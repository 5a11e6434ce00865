/* Schema evolution (es/upcast.h): release 1 of the "item" aggregate writes ItemCreated with two
 * fields at schema version 1; release 2 added `colour` (schema version 2). Old events must load
 * with the new binary: the added field decodes as its default, an upcaster can fill it in, new
 * events are not upcast, and release 1 still reads release 2's events. The readers that show
 * events instead of folding them (the audit-trail query, orderctl history and tail) read the
 * stream and bring each payload to the current schema with es_event_upcast_payload before
 * rendering it as JSON: the last test does exactly that. Real PostgreSQL. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "es/json.h"
#include "es/pipeline.h"
#include "es/upcast.h"
#include "google/protobuf/any.pb-c.h"
#include "evo/v1/evo_v1.es.h"
#include "evo/v2/evo_v2.es.h"
#include "support.h"

static pgt pg;

/* ---- the two releases' only rule ---- */

int evo_v1_decide_CreateItem(const es_decide_ctx *ctx, const Evo__V1__Item *state, const Evo__V1__CreateItemRequest *cmd,
                             es_decision *out, es_error *err)
{
    (void)state, (void)err;
    Evo__V1__ItemCreated *ev = es_arena_calloc(ctx->arena, sizeof *ev);
    evo__v1__item_created__init(ev);
    ev->item_id = es_arena_strdup(ctx->arena, ctx->stream_id);
    ev->name = cmd->name;
    return evo_v1_emit_ItemCreated(out, ev);
}

int evo_v2_decide_CreateItem(const es_decide_ctx *ctx, const Evo__V2__Item *state, const Evo__V2__CreateItemRequest *cmd,
                             es_decision *out, es_error *err)
{
    (void)state, (void)err;
    Evo__V2__ItemCreated *ev = es_arena_calloc(ctx->arena, sizeof *ev);
    evo__v2__item_created__init(ev);
    ev->item_id = es_arena_strdup(ctx->arena, ctx->stream_id);
    ev->name = cmd->name;
    ev->colour = cmd->colour;
    return evo_v2_emit_ItemCreated(out, ev);
}

/* ---- the upcaster release 2 registers ---- */

static int upcasts, last_from;

/* Items created before colours existed were all "unpainted". */
static int upcast_item_created(uint32_t stored_version, ProtobufCMessage *event, es_arena *arena, es_error *err)
{
    (void)err;
    Evo__V2__ItemCreated *ev = (Evo__V2__ItemCreated *)event;
    upcasts++;
    last_from = (int)stored_version;
    if (!ev->colour || !ev->colour[0])
        ev->colour = es_arena_strdup(arena, "unpainted");
    return ES_OK;
}

static int upcast_refuses(uint32_t stored_version, ProtobufCMessage *event, es_arena *arena, es_error *err)
{
    (void)stored_version, (void)event, (void)arena;
    return es_error_set(err, ES_FAILED_PRECONDITION, "colour", "cannot upcast");
}

static const es_upcaster upcasters[] = {{&evo_v2_event_ItemCreated, upcast_item_created}};
static const es_upcaster refusing[] = {{&evo_v2_event_ItemCreated, upcast_refuses}};

static es_pipeline *pipeline(const es_upcaster *ups, size_t n)
{
    es_pipeline_config cfg = {.conninfo = pg.conninfo, .pool_size = 2, .cache_disabled = 1, .upcasters = ups,
                              .n_upcasters = n};
    es_error err = {0};
    es_pipeline *p = es_pipeline_new(&cfg, &err);
    assert_non_null(p);
    return p;
}

static void create_v1(es_pipeline *p, const char *name, char *id_out)
{
    Evo__V1__CreateItemRequest req;
    evo__v1__create_item_request__init(&req);
    req.name = (char *)name;
    es_command_result res;
    es_error err = {0};
    assert_int_equal(es_pipeline_execute(p, &evo_v1_command_CreateItem, &req.base, NULL, &res, &err), ES_OK);
    strcpy(id_out, res.stream_id);
}

static void create_v2(es_pipeline *p, const char *name, const char *colour, char *id_out)
{
    Evo__V2__CreateItemRequest req;
    evo__v2__create_item_request__init(&req);
    req.name = (char *)name;
    req.colour = (char *)colour;
    es_command_result res;
    es_error err = {0};
    assert_int_equal(es_pipeline_execute(p, &evo_v2_command_CreateItem, &req.base, NULL, &res, &err), ES_OK);
    strcpy(id_out, res.stream_id);
}

static Evo__V2__Item *load_v2(es_pipeline *p, const char *id)
{
    ProtobufCMessage *state = NULL;
    int64_t version = 0;
    es_error err = {0};
    assert_int_equal(es_pipeline_load(p, &evo_v2_aggregate_item, id, &state, &version, &err), ES_OK);
    assert_int_equal(version, 1);
    return (Evo__V2__Item *)state;
}

static long long stored_version(const char *id)
{
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT schema_version FROM es_events WHERE stream_id = '%s'", id);
    return pgt_scalar(&pg, sql);
}

static void old_events_load_in_the_new_release(void **st)
{
    (void)st;
    char old_id[ES_STREAM_ID_MAX + 1], new_id[ES_STREAM_ID_MAX + 1];
    es_pipeline *r1 = pipeline(NULL, 0);
    create_v1(r1, "lamp", old_id);
    assert_int_equal(stored_version(old_id), 1);

    /* Without an upcaster the added field reads as its default: nothing breaks. */
    es_pipeline *plain = pipeline(NULL, 0);
    Evo__V2__Item *s = load_v2(plain, old_id);
    assert_string_equal(s->name, "lamp");
    assert_string_equal(s->colour, "");
    assert_int_equal(s->status, EVO__V2__ITEM_STATUS__ITEM_STATUS_OPEN);
    protobuf_c_message_free_unpacked(&s->base, NULL);

    /* With one, old events get their meaning before apply. */
    es_pipeline *r2 = pipeline(upcasters, 1);
    upcasts = 0;
    s = load_v2(r2, old_id);
    assert_string_equal(s->name, "lamp");
    assert_string_equal(s->colour, "unpainted");
    assert_int_equal(upcasts, 1);
    assert_int_equal(last_from, 1);
    protobuf_c_message_free_unpacked(&s->base, NULL);

    /* Events of the current version are not upcast. */
    create_v2(r2, "chair", "red", new_id);
    assert_int_equal(stored_version(new_id), 2);
    upcasts = 0;
    s = load_v2(r2, new_id);
    assert_string_equal(s->colour, "red");
    assert_int_equal(upcasts, 0);
    protobuf_c_message_free_unpacked(&s->base, NULL);

    /* Release 1 still reads release 2's event (the unknown field is skipped). */
    ProtobufCMessage *old_state = NULL;
    int64_t version = 0;
    es_error err = {0};
    assert_int_equal(es_pipeline_load(r1, &evo_v1_aggregate_item, new_id, &old_state, &version, &err), ES_OK);
    assert_string_equal(((Evo__V1__Item *)old_state)->name, "chair");
    protobuf_c_message_free_unpacked(old_state, NULL);

    /* The schema registry keeps both releases' descriptor sets. */
    assert_int_equal(es_store_register_schema(es_pipeline_store(r1), &evo_v1_schema, &err), ES_OK);
    assert_int_equal(es_store_register_schema(es_pipeline_store(r2), &evo_v2_schema, &err), ES_OK);
    assert_int_equal(pgt_scalar(&pg, "SELECT count(DISTINCT hash) FROM es_schemas WHERE package LIKE 'evo.%'"), 2);
    es_pipeline_free(r1);
    es_pipeline_free(plain);
    es_pipeline_free(r2);
}

static void a_failing_upcaster_stops_the_load(void **st)
{
    (void)st;
    char id[ES_STREAM_ID_MAX + 1];
    es_pipeline *r1 = pipeline(NULL, 0);
    create_v1(r1, "desk", id);
    es_pipeline *r2 = pipeline(refusing, 1);
    ProtobufCMessage *state = NULL;
    int64_t version = 0;
    es_error err = {0};
    assert_int_equal(es_pipeline_load(r2, &evo_v2_aggregate_item, id, &state, &version, &err), ES_FAILED_PRECONDITION);
    assert_null(state);
    assert_non_null(strstr(err.message, "cannot upcast"));
    assert_non_null(strstr(err.message, id));
    es_pipeline_free(r1);
    es_pipeline_free(r2);
}

/* ---- the read paths that show events (audit trail, orderctl history/tail) ---- */

typedef struct shown {
    es_arena arena;                /* upcast payloads and copies */
    const es_upcaster *ups;
    size_t n_ups;
    es_json_registry *json;
    es_buf json_out;               /* one JSON line per event, as the readers render it */
    int n, upcast, status;
    es_error err;
    const uint8_t *stored;         /* the last event's stored bytes (the read's own buffer) */
    const uint8_t *bytes;          /* what the reader shows */
} shown;

/* The reader's per-event work: find the definition, bring the payload to the current schema,
 * wrap it in an Any named by the stored schema (GetOrderEvents' EventRecord.data) and render it
 * as proto3 JSON through the registry, as the HTTP answer does. */
static int show_event(const es_event_record *ev, void *ctx, es_error *err)
{
    (void)err;
    shown *s = ctx;
    const es_event_def *def = es_schema_event_by_type(&evo_v2_schema, ev->stream_type, ev->event_type);
    assert_ptr_equal(def, &evo_v2_event_ItemCreated);
    const uint8_t *bytes;
    size_t len;
    int up = -1;
    s->status = es_event_upcast_payload(def, ev->schema_version, ev->payload, ev->payload_len, s->ups, s->n_ups,
                                        &s->arena, &bytes, &len, &up, &s->err);
    if (s->status != ES_OK)
        return 0;
    s->n++;
    s->upcast += up;
    s->stored = ev->payload;
    s->bytes = bytes;
    Google__Protobuf__Any any;
    google__protobuf__any__init(&any);
    /* An upcast payload is a message of the current definition (whose name may differ from the
     * stored one: here release 1 wrote evo.v1.ItemCreated). */
    any.type_url = es_arena_sprintf(&s->arena, "type.googleapis.com/%s", up ? def->schema : ev->schema_name);
    any.value.data = (uint8_t *)bytes;
    any.value.len = len;
    es_json_options o = {0};
    es_error jerr = {0};
    if (es_json_encode(s->json, &any.base, &o, &s->json_out, &jerr) != ES_OK)
        fail_msg("%s: %s", any.type_url, jerr.message);
    es_buf_putc(&s->json_out, '\n');
    return 0;
}

static void show_stream(es_pipeline *p, const char *id, const es_upcaster *ups, size_t n, shown *s)
{
    memset(s, 0, sizeof *s);
    es_arena_init(&s->arena);
    es_buf_init(&s->json_out);
    s->ups = ups;
    s->n_ups = n;
    s->json = es_json_registry_new();
    es_json_registry_add_schema(s->json, &evo_v2_schema);
    es_json_registry_add_schema(s->json, &evo_v1_schema);   /* what a stored, not upcast, v1 event names */
    es_error err = {0};
    assert_int_equal(es_pipeline_read_stream(p, id, 0, 0, show_event, s, &err), ES_OK);
    es_buf_putc(&s->json_out, 0);
}

static void shown_free(shown *s)
{
    es_arena_free(&s->arena);
    es_buf_free(&s->json_out);
    es_json_registry_free(s->json);
}

static void old_events_show_upcast_on_the_read_paths(void **st)
{
    (void)st;
    char old_id[ES_STREAM_ID_MAX + 1], new_id[ES_STREAM_ID_MAX + 1];
    es_pipeline *r1 = pipeline(NULL, 0);
    create_v1(r1, "lamp", old_id);
    es_pipeline *r2 = pipeline(upcasters, 1);
    create_v2(r2, "chair", "red", new_id);

    /* The definition is found by stream type, or by event type alone. */
    assert_ptr_equal(es_schema_event_by_type(&evo_v2_schema, NULL, "ItemCreated"), &evo_v2_event_ItemCreated);
    assert_ptr_equal(es_schema_event_by_type(&evo_v2_schema, "nothing", "ItemCreated"), &evo_v2_event_ItemCreated);
    assert_null(es_schema_event_by_type(&evo_v2_schema, "item", "ItemPainted"));

    /* An old event is shown in the current schema: the upcaster's colour is in the JSON. */
    shown s;
    upcasts = 0;
    show_stream(r2, old_id, upcasters, 1, &s);
    assert_int_equal(s.status, ES_OK);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.upcast, 1);
    assert_int_equal(upcasts, 1);
    assert_ptr_not_equal(s.bytes, s.stored);
    const char *line = (const char *)s.json_out.data;
    assert_non_null(strstr(line, "\"@type\":\"type.googleapis.com/evo.v2.ItemCreated\""));
    assert_non_null(strstr(line, "\"name\":\"lamp\""));
    assert_non_null(strstr(line, "\"colour\":\"unpainted\""));
    /* The stored bytes are untouched (events are forever). */
    assert_int_equal(stored_version(old_id), 1);
    shown_free(&s);

    /* Without an upcaster the old event shows as stored: no decode, no copy, no colour. */
    show_stream(r2, old_id, NULL, 0, &s);
    assert_int_equal(s.upcast, 0);
    assert_ptr_equal(s.bytes, s.stored);
    assert_null(strstr((const char *)s.json_out.data, "colour"));
    shown_free(&s);

    /* A current event is not upcast. */
    upcasts = 0;
    show_stream(r2, new_id, upcasters, 1, &s);
    assert_int_equal(s.upcast, 0);
    assert_int_equal(upcasts, 0);
    assert_ptr_equal(s.bytes, s.stored);
    assert_non_null(strstr((const char *)s.json_out.data, "\"colour\":\"red\""));
    shown_free(&s);

    /* An upcaster that refuses stops the reader with its error (the query answers DATA_LOSS,
     * orderctl shows the event as stored and exits 2). */
    show_stream(r2, old_id, refusing, 1, &s);
    assert_int_equal(s.status, ES_FAILED_PRECONDITION);
    assert_non_null(strstr(s.err.message, "cannot upcast"));
    shown_free(&s);

    /* An old payload that does not decode is DATA_LOSS, not a crash. */
    es_arena a;
    es_arena_init(&a);
    const uint8_t junk[] = {0x0a, 0x7f, 0x01};
    const uint8_t *bytes;
    size_t len;
    es_error err = {0};
    assert_int_equal(es_event_upcast_payload(&evo_v2_event_ItemCreated, 1, junk, sizeof junk, upcasters, 1, &a,
                                             &bytes, &len, NULL, &err), ES_DATA_LOSS);
    /* No definition (an event type this binary does not know): shown as stored. */
    assert_int_equal(es_event_upcast_payload(NULL, 1, junk, sizeof junk, upcasters, 1, &a, &bytes, &len, NULL, &err),
                     ES_OK);
    assert_ptr_equal(bytes, junk);
    es_arena_free(&a);
    es_pipeline_free(r1);
    es_pipeline_free(r2);
}

static int setup(void **st)
{
    (void)st;
    pgt_start(&pg, "evolution");
    return 0;
}

static int teardown(void **st)
{
    (void)st;
    pgt_stop(&pg);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(old_events_load_in_the_new_release),
        cmocka_unit_test(a_failing_upcaster_stops_the_load),
        cmocka_unit_test(old_events_show_upcast_on_the_read_paths),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
