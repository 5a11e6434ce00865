/* What protoc-gen-es derives from tests/codegen/derived/tally/v1/tally.proto, compiled and run:
 * counters and sums declared in (es.event) sets folded by the generated apply (and so mirrored by
 * the projection row, and by a rebuild, which folds with the same apply); the constructors of the
 * package's messages and of the imported ones its fields name; the typed reactor dispatch. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "tally/v1/tally_v1.es.h"

#define ACCOUNT_ID "0190b6c4-8e3a-7cc1-9a4e-3f1d2c3b4a59"

static Tally__V1__Account *new_state(void)
{
    Tally__V1__Account *st = calloc(1, sizeof *st);
    tally__v1__account__init(st);
    return st;
}

static int apply(Tally__V1__Account *st, const es_event_def *def, const ProtobufCMessage *ev)
{
    return def->apply(&st->base, ev);
}

/* The fold of: opened, three notes, refunds of 250 and 1000, two charges. */
static Tally__V1__Account *fold_sample(void)
{
    Tally__V1__Account *st = new_state();
    Tally__V1__AccountOpened opened = TALLY__V1__ACCOUNT_OPENED__INIT;
    opened.account_id = ACCOUNT_ID;
    assert_int_equal(apply(st, &tally_v1_event_AccountOpened, &opened.base), ES_OK);
    Tally__V1__NoteAdded note = TALLY__V1__NOTE_ADDED__INIT;
    for (int i = 0; i < 3; i++)
        assert_int_equal(apply(st, &tally_v1_event_NoteAdded, &note.base), ES_OK);
    Tally__V1__Refunded refund = TALLY__V1__REFUNDED__INIT;
    refund.amount_minor = 250;
    assert_int_equal(apply(st, &tally_v1_event_Refunded, &refund.base), ES_OK);
    refund.amount_minor = 1000;
    assert_int_equal(apply(st, &tally_v1_event_Refunded, &refund.base), ES_OK);
    Tally__V1__Charged charge = TALLY__V1__CHARGED__INIT;
    for (int i = 0; i < 2; i++)
        assert_int_equal(apply(st, &tally_v1_event_Charged, &charge.base), ES_OK);
    return st;
}

static void test_counters_and_sums_fold(void **unused)
{
    (void)unused;
    Tally__V1__Account *st = fold_sample();
    assert_int_equal(st->status, TALLY__V1__ACCOUNT_STATUS__ACCOUNT_STATUS_OPEN);
    assert_int_equal(st->note_count, 3);
    assert_int_equal(st->refunded_minor, 1250);
    assert_int_equal(st->refund_count, 2);
    assert_int_equal(st->balance_minor, -200);
    /* Events that declare no counter leave them alone. */
    Tally__V1__AccountClosed closed = TALLY__V1__ACCOUNT_CLOSED__INIT;
    assert_int_equal(apply(st, &tally_v1_event_AccountClosed, &closed.base), ES_OK);
    assert_int_equal(st->note_count, 3);
    assert_int_equal(st->refunded_minor, 1250);
    protobuf_c_message_free_unpacked(&st->base, NULL);
}

/* A sum that would overflow its state field refuses the whole event and changes nothing. */
static void test_overflow_refuses_the_event(void **unused)
{
    (void)unused;
    Tally__V1__Account *st = fold_sample();
    Tally__V1__Refunded refund = TALLY__V1__REFUNDED__INIT;
    refund.amount_minor = INT64_MAX;
    assert_int_equal(apply(st, &tally_v1_event_Refunded, &refund.base), ES_OUT_OF_RANGE);
    assert_int_equal(st->refunded_minor, 1250);
    assert_int_equal(st->refund_count, 2); /* the counter of the same event did not move either */
    st->note_count = INT32_MAX;
    Tally__V1__NoteAdded note = TALLY__V1__NOTE_ADDED__INIT;
    assert_int_equal(apply(st, &tally_v1_event_NoteAdded, &note.base), ES_OUT_OF_RANGE);
    assert_int_equal(st->note_count, INT32_MAX);
    protobuf_c_message_free_unpacked(&st->base, NULL);
}

/* The projection row mirrors the counted and summed state fields (what a rebuild writes too:
 * it folds the same apply). */
static void test_projection_row_mirrors_them(void **unused)
{
    (void)unused;
    Tally__V1__Account *st = fold_sample();
    es_arena a;
    es_arena_init(&a);
    const es_projection_def *p = &tally_v1_projection_account_row;
    ProtobufCMessage *row_ = p->from_state(&st->base, 7, &a);
    assert_ptr_equal(row_->descriptor, &tally__v1__account_row__descriptor);
    const Tally__V1__AccountRow *row = (const Tally__V1__AccountRow *)row_;
    assert_int_equal(row->note_count, 3);
    assert_int_equal(row->refunded_minor, 1250);
    assert_int_equal(row->version, 7);
    assert_non_null(strstr(p->ddl, "note_count integer"));
    assert_non_null(strstr(p->ddl, "refunded_minor bigint"));
    es_arena_free(&a);
    protobuf_c_message_free_unpacked(&st->base, NULL);
}

/* Every message of the package, and google.protobuf.Timestamp that a field names, has a typed
 * constructor: arena-allocated, initialised (its descriptor set, defaults in place). */
static void test_constructors(void **unused)
{
    (void)unused;
    es_arena a;
    es_arena_init(&a);
    Tally__V1__Refunded *r = tally_v1_new_Refunded(&a);
    assert_non_null(r);
    assert_ptr_equal(r->base.descriptor, &tally__v1__refunded__descriptor);
    assert_int_equal(r->amount_minor, 0);
    assert_string_equal(r->account_id, "");
    Tally__V1__Account *st = tally_v1_new_Account(&a);
    assert_ptr_equal(st->base.descriptor, &tally__v1__account__descriptor);
    assert_null(st->updated_at);
    Google__Protobuf__Timestamp *t = tally_v1_new_google_protobuf_Timestamp(&a);
    assert_ptr_equal(t->base.descriptor, &google__protobuf__timestamp__descriptor);
    assert_int_equal(t->seconds, 0);
    Tally__V1__AccountOpened *o = tally_v1_new_AccountOpened(&a);
    o->at = t;
    assert_int_equal(protobuf_c_message_get_packed_size(&o->base), 2); /* field 2, empty Timestamp */
    assert_ptr_equal(tally_v1_new_AccountRow(&a)->base.descriptor, &tally__v1__account_row__descriptor);
    assert_ptr_equal(tally_v1_new_NoteAdded(&a)->base.descriptor, &tally__v1__note_added__descriptor);
    es_arena_free(&a);
}

/* What a reactor's handlers saw. */
typedef struct seen {
    int refunds, notes;
    int64_t amount;
    const char *stream_id;
} seen;

static int on_refunded(void *ctx, const es_envelope_view *m, const Tally__V1__Refunded *ev)
{
    seen *s = ctx;
    s->refunds++;
    s->amount += ev->amount_minor;
    s->stream_id = m->stream_id;
    return ev->amount_minor < 0 ? ES_FAILED_PRECONDITION : ES_OK;
}

static int on_note(void *ctx, const es_envelope_view *m, const Tally__V1__NoteAdded *ev)
{
    (void)m;
    seen *s = ctx;
    s->notes += strcmp(ev->text, "hello") == 0;
    return ES_OK;
}

static es_envelope_view envelope(const char *stream_type, const char *event_type, const uint8_t *payload, size_t len)
{
    return (es_envelope_view){.event_id = "e-1", .stream_id = ACCOUNT_ID, .stream_type = stream_type,
                              .event_type = event_type, .schema = "", .schema_hash = "", .command_id = "",
                              .correlation_id = "", .causation_id = "", .actor = "", .version = 2,
                              .schema_version = 1, .payload = payload, .payload_len = len};
}

/* The dispatch checks the stream type, decodes the payload once into the event's own message and
 * calls its handler; an event without a handler, or of another stream type, is ignored. */
static void test_reactor_dispatch(void **unused)
{
    (void)unused;
    es_arena a;
    es_arena_init(&a);
    Tally__V1__Refunded *r = tally_v1_new_Refunded(&a);
    r->amount_minor = 425;
    uint8_t buf[64];
    size_t len = tally__v1__refunded__pack(r, buf);
    Tally__V1__NoteAdded *n = tally_v1_new_NoteAdded(&a);
    n->text = "hello";
    uint8_t nbuf[64];
    size_t nlen = tally__v1__note_added__pack(n, nbuf);
    tally_v1_account_reactor rx = {.on_Refunded = on_refunded, .on_NoteAdded = on_note};
    seen s = {0};
    es_error err = {0};

    es_envelope_view m = envelope("account", "Refunded", buf, len);
    assert_int_equal(tally_v1_account_reactor_handles(&rx, &m), 1);
    assert_int_equal(tally_v1_account_dispatch(&rx, &s, &m, &err), ES_OK);
    assert_int_equal(s.refunds, 1);
    assert_int_equal(s.amount, 425);
    assert_string_equal(s.stream_id, ACCOUNT_ID);
    m = envelope("account", "NoteAdded", nbuf, nlen);
    assert_int_equal(tally_v1_account_dispatch(&rx, &s, &m, &err), ES_OK);
    assert_int_equal(s.notes, 1);

    /* No handler: ignored, nothing decoded (a payload that is not even protobuf is not read). */
    static const uint8_t junk[] = {0xff, 0xff, 0xff};
    m = envelope("account", "Charged", junk, sizeof junk);
    assert_int_equal(tally_v1_account_reactor_handles(&rx, &m), 0);
    assert_int_equal(tally_v1_account_dispatch(&rx, &s, &m, &err), ES_OK);
    /* Another stream type with the same event type: ignored. */
    m = envelope("ledger", "Refunded", buf, len);
    assert_int_equal(tally_v1_account_reactor_handles(&rx, &m), 0);
    assert_int_equal(tally_v1_account_dispatch(&rx, &s, &m, &err), ES_OK);
    assert_int_equal(s.refunds, 1);
    /* A payload that does not decode as its event: refused, the handler not called. */
    m = envelope("account", "Refunded", junk, sizeof junk);
    assert_int_equal(tally_v1_account_dispatch(&rx, &s, &m, &err), ES_DATA_LOSS);
    assert_int_equal(s.refunds, 1);
    /* The handler's result is the dispatch's. */
    r->amount_minor = -1;
    len = tally__v1__refunded__pack(r, buf);
    m = envelope("account", "Refunded", buf, len);
    assert_int_equal(tally_v1_account_dispatch(&rx, &s, &m, &err), ES_FAILED_PRECONDITION);
    assert_int_equal(s.refunds, 2);
    es_arena_free(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counters_and_sums_fold),
        cmocka_unit_test(test_overflow_refuses_the_event),
        cmocka_unit_test(test_projection_row_mirrors_them),
        cmocka_unit_test(test_constructors),
        cmocka_unit_test(test_reactor_dispatch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
