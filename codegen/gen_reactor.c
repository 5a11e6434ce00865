/* The C table generator's typed reactors: per aggregate, a struct with one handler per event type
 * and a dispatch function that checks the stream type, decodes the payload once (upcast when an
 * older schema version has an upcaster) into the event's own message and calls its handler, so a
 * reactor in app/ neither compares type names nor casts payloads. */
#include "gen_c.h"

#include <string.h>

static void emit_struct(pkg *p, const cg_message *st, const char *agg)
{
    cg_printf(p->h, "\n/* A typed reactor of aggregate \"%s\": one handler per event type; a NULL handler ignores its\n"
                    " * events. A handler gets the envelope (borrowed) and the decoded event (borrowed for the call,\n"
                    " * freed after it returns) and returns ES_OK or an error (the consumer retries the event). */\n"
                    "typedef struct %s%s_reactor {\n", agg, p->prefix, agg);
    for (size_t k = 0; k < p->n_msgs; k++) {
        const cg_message *ev = p->msgs[k];
        if (ev->event && strcmp(ev->event->aggregate, agg) == 0)
            cg_printf(p->h, "    int (*on_%s)(void *ctx, const es_envelope_view *m, const %s *ev);\n", ev->name,
                      ev->c_type);
    }
    cg_printf(p->h, "    /* Upcasters for events stored with an older schema version (es/upcast.h); may be NULL/0. */\n"
                    "    const es_upcaster *upcasters;\n    size_t n_upcasters;\n} %s%s_reactor;\n", p->prefix, agg);
    cg_printf(p->h, "/* 1 when m is an event of stream type \"%s\" that r has a handler for, else 0 (dispatch ignores it). */\n"
                    "int %s%s_reactor_handles(const %s%s_reactor *r, const es_envelope_view *m);\n",
              agg, p->prefix, agg, p->prefix, agg);
    cg_printf(p->h, "/* Calls r's handler for m: ES_OK without a call when m's stream type is not \"%s\" (state %s) or\n"
                    " * its type has no handler; ES_DATA_LOSS (err says why) when the payload does not decode as the\n"
                    " * event's message; an upcaster's error; else the handler's result. */\n"
                    "int %s%s_dispatch(const %s%s_reactor *r, void *ctx, const es_envelope_view *m, es_error *err);\n",
              agg, st->full, p->prefix, agg, p->prefix, agg);
}

static void emit_functions(pkg *p, const char *agg)
{
    cg_out *c = p->c;
    cg_printf(c, "/* ---- reactor of aggregate \"%s\" ---- */\n\n", agg);
    cg_printf(c, "int %s%s_reactor_handles(const %s%s_reactor *r, const es_envelope_view *m)\n{\n"
                 "    if (strcmp(m->stream_type, %saggregate_%s.name) != 0)\n        return 0;\n",
              p->prefix, agg, p->prefix, agg, p->prefix, agg);
    for (size_t k = 0; k < p->n_msgs; k++) {
        const cg_message *ev = p->msgs[k];
        if (ev->event && strcmp(ev->event->aggregate, agg) == 0)
            cg_printf(c, "    if (r->on_%s && strcmp(m->event_type, %sevent_%s.type) == 0)\n        return 1;\n",
                      ev->name, p->prefix, ev->name);
    }
    cg_printf(c, "    return 0;\n}\n\n");
    cg_printf(c, "int %s%s_dispatch(const %s%s_reactor *r, void *ctx, const es_envelope_view *m, es_error *err)\n{\n"
                 "    if (!%s%s_reactor_handles(r, m))\n        return ES_OK;\n"
                 "    es_arena a;\n    es_arena_init(&a);\n    ProtobufCMessage *ev = NULL;\n"
                 "    const es_event_def *def = es_schema_find_event(&%saggregate_%s, m->event_type);\n"
                 "    int rc = es_event_decode(def, m->schema_version, m->payload, m->payload_len, r->upcasters, r->n_upcasters,\n"
                 "                             &a, &ev, err);\n",
              p->prefix, agg, p->prefix, agg, p->prefix, agg, p->prefix, agg);
    for (size_t k = 0; k < p->n_msgs; k++) {
        const cg_message *ev = p->msgs[k];
        if (ev->event && strcmp(ev->event->aggregate, agg) == 0)
            cg_printf(c, "    if (rc == ES_OK && def == &%sevent_%s)\n        rc = r->on_%s(ctx, m, (const %s *)ev);\n",
                      p->prefix, ev->name, ev->name, ev->c_type);
    }
    cg_printf(c, "    es_arena_free(&a);\n    return rc;\n}\n\n");
}

void cg_emit_reactors(pkg *p)
{
    for (size_t i = 0; i < p->n_msgs; i++) {
        const cg_message *st = p->msgs[i];
        if (!st->agg)
            continue;
        emit_struct(p, st, st->agg->name);
        emit_functions(p, st->agg->name);
    }
}
