/* Schema evolution (es/upcast.h): release 1 of the "item" aggregate writes ItemCreated with two
 * fields at schema version 1; release 2 added `colour` (schema version 2). Old events must load
 * with the new binary: the added field decodes as its default, an upcaster can fill it in, new
 * events are not upcast, and release 1 still reads release 2's events. Real PostgreSQL. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "es/pipeline.h"
#include "es/upcast.h"
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
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
