/* Emits the C tables of one package: aggregates with apply per event, commands with
 * validation, guard and the declaration of the hand-written decide, projections, the service's
 * gRPC method table and HTTP routes, json names, the type registry and the descriptor set. */
#include "gen_c.h"

#include <stdlib.h>
#include <string.h>



static char *command_name(const cg_message *m)
{
    size_t n = strlen(m->name);
    if (n > 7 && strcmp(m->name + n - 7, "Request") == 0)
        return strndup(m->name, n - 7);
    return cg_strdup(m->name);
}

static const char *event_type(const cg_message *m)
{
    return m->event->type && m->event->type[0] ? m->event->type : m->name;
}

/* ---- aggregates and events -------------------------------------------------------------- */

static void emit_copy(pkg *p, const cg_field *ef, const cg_field *sf)
{
    cg_out *c = p->c;
    const char *s = sf->name, *e = ef->name;
    if (ef->repeated) {
        if (ef->msg_type)
            cg_printf(c, "    es_gen_set_repeated_message(&st->n_%s, &st->%s, ev->n_%s, ev->%s);\n", s, s, e, e);
        else if (ef->fd->type == T(STRING))
            cg_printf(c, "    es_gen_set_repeated_string(&st->n_%s, &st->%s, ev->n_%s, ev->%s);\n", s, s, e, e);
        else
            cg_printf(c, "    es_gen_set_repeated_scalar(&st->n_%s, &st->%s, ev->n_%s, ev->%s, sizeof *ev->%s);\n", s, s,
                      e, e, e);
        return;
    }
    switch (ef->fd->type) {
    case T(STRING):
        cg_printf(c, "    es_gen_set_string(&st->%s, ev->%s);\n", s, e);
        break;
    case T(BYTES):
        cg_printf(c, "    es_gen_set_bytes(&st->%s, ev->%s);\n", s, e);
        break;
    case T(MESSAGE):
        cg_printf(c, "    es_gen_set_message((ProtobufCMessage **)&st->%s, (const ProtobufCMessage *)ev->%s);\n", s, e);
        break;
    default:
        cg_printf(c, "    st->%s = ev->%s;\n", s, e);
        if (sf->has_presence)
            cg_printf(c, "    st->has_%s = %s;\n", s, ef->has_presence ? cg_sprintf("ev->has_%s", e) : "1");
        break;
    }
}

/* Counters and sums ("field+=1", "field+=event_field" in sets) are computed before the state
 * changes: one that would overflow its state field refuses the whole event (ES_OUT_OF_RANGE),
 * leaving the state as it was, so the command that decided it fails and appends nothing. */
static void emit_increments(pkg *p, const cg_message *ev, const cg_message *state)
{
    for (size_t i = 0; i < ev->event->n_sets; i++) {
        cg_increment inc;
        if (cg_parse_increment(p->ctx, ev, state, ev->event->sets[i], &inc) != 0)
            continue;
        const char *s = inc.state_field->name;
        char *by = inc.event_field ? cg_sprintf("ev->%s", inc.event_field->name) : cg_sprintf("%lldLL", inc.step);
        cg_printf(p->c, "    __typeof__(st->%s) sum%zu; /* sets \"", s, i);
        cg_c_string(p->c, ev->event->sets[i]);
        cg_printf(p->c, "\" */\n    if (__builtin_add_overflow(st->%s, %s, &sum%zu)) return ES_OUT_OF_RANGE;\n", s, by, i);
        free(by);
    }
}

static void emit_event(pkg *p, const cg_message *ev, const cg_message *state)
{
    cg_out *c = p->c;
    const char *agg = state->agg->name;
    cg_printf(c, "static int apply_%s(ProtobufCMessage *state_, const ProtobufCMessage *event_)\n{\n", ev->name);
    cg_printf(c, "    %s *st = (%s *)state_;\n    const %s *ev = (const %s *)event_;\n", state->c_type, state->c_type,
              ev->c_type, ev->c_type);
    if (ev->event->has_creates && ev->event->creates)
        cg_printf(c, "    if (st->%s && st->%s[0]) return ES_FAILED_PRECONDITION; /* creates: stream must be new */\n",
                  state->agg->id_field, state->agg->id_field);
    emit_increments(p, ev, state);
    for (size_t i = 0; i < ev->n_fields; i++) {
        const cg_field *f = &ev->fields[i];
        if (!f->opt || !f->opt->state || !f->opt->state[0])
            continue;
        char *list = cg_strdup(f->opt->state), *save = NULL;
        for (char *tok = strtok_r(list, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save))
            emit_copy(p, f, cg_find_field(state, tok));
        free(list);
    }
    for (size_t i = 0; i < ev->event->n_sets; i++) {
        cg_field *sf;
        int v;
        cg_increment inc;
        if (cg_parse_increment(p->ctx, ev, state, ev->event->sets[i], &inc) == 0) {
            cg_printf(c, "    st->%s = sum%zu;\n", inc.state_field->name, i);
            if (inc.state_field->has_presence)
                cg_printf(c, "    st->has_%s = 1;\n", inc.state_field->name);
            continue;
        }
        cg_parse_assignment(p->ctx, ev, "sets", state, ev->event->sets[i], &sf, &v);
        const char *vname = NULL;
        cg_enum_value(sf->enum_type, strchr(ev->event->sets[i], '=') ? strchr(ev->event->sets[i], '=') + 1
                                                                      : ev->event->sets[i], &vname);
        cg_printf(c, "    st->%s = %s__%s;\n", sf->name, sf->enum_type->c_upper, vname);
    }
    cg_printf(c, "    (void)ev;\n    return ES_OK;\n}\n\n");
    cg_printf(c, "const es_event_def %sevent_%s = {\n    .type = \"", p->prefix, ev->name);
    cg_c_string(c, event_type(ev));
    cg_printf(c, "\",\n    .schema = \"%s\",\n    .schema_version = %u,\n    .creates = %d,\n    .descriptor = &%s__descriptor,\n"
                 "    .apply = apply_%s,\n    .aggregate = &%saggregate_%s,\n};\n\n", ev->full,
              ev->event->has_version && ev->event->version ? ev->event->version : 1,
              ev->event->has_creates && ev->event->creates, ev->c_lower, ev->name, p->prefix, agg);
    cg_printf(p->h, "extern const es_event_def %sevent_%s;\n", p->prefix, ev->name);
    cg_printf(p->h, "static inline int %semit_%s(es_decision *d, %s *ev)\n{\n    return es_decision_emit(d, &%sevent_%s, &ev->base);\n}\n",
              p->prefix, ev->name, ev->c_type, p->prefix, ev->name);
}

static void emit_aggregates(pkg *p)
{
    for (size_t i = 0; i < p->n_msgs; i++) {
        const cg_message *st = p->msgs[i];
        if (!st->agg)
            continue;
        const char *agg = st->agg->name;
        cg_printf(p->h, "\n/* aggregate \"%s\" (state %s) */\nextern const es_aggregate_def %saggregate_%s;\n", agg,
                  st->full, p->prefix, agg);
        cg_printf(p->c, "/* ---- aggregate \"%s\" ---- */\n\n", agg);
        size_t n = 0;
        for (size_t k = 0; k < p->n_msgs; k++) {
            const cg_message *ev = p->msgs[k];
            if (ev->event && strcmp(ev->event->aggregate, agg) == 0) {
                emit_event(p, ev, st);
                n++;
            }
        }
        cg_printf(p->c, "static const es_event_def *const events_%s[] = {\n", agg);
        for (size_t k = 0; k < p->n_msgs; k++)
            if (p->msgs[k]->event && strcmp(p->msgs[k]->event->aggregate, agg) == 0)
                cg_printf(p->c, "    &%sevent_%s,\n", p->prefix, p->msgs[k]->name);
        cg_printf(p->c, "};\n\nconst es_aggregate_def %saggregate_%s = {\n    .name = \"%s\",\n    .state_descriptor = &%s__descriptor,\n"
                        "    .id_field = \"%s\",\n    .snapshot_every = %u,\n    .events = events_%s,\n    .n_events = %zu,\n"
                        "    .topic = \"%s\",\n};\n\n",
                  p->prefix, agg, agg, st->c_lower, st->agg->id_field,
                  st->agg->has_snapshot_every ? st->agg->snapshot_every : 0, agg, n,
                  st->agg->topic && st->agg->topic[0] ? st->agg->topic : cg_sprintf("%s.events", agg));
    }
}

/* ---- commands ----------------------------------------------------------------------------- */

static void emit_guard(pkg *p, const cg_message *cmd, const cg_message *state, const char *name)
{
    cg_out *c = p->c;
    cg_printf(c, "static int guard_%s(const ProtobufCMessage *state_, es_error *err)\n{\n", name);
    if (!cmd->cmd->n_allowed_from) {
        cg_printf(c, "    (void)state_; (void)err;\n    return ES_OK;\n}\n\n");
        return;
    }
    cg_printf(c, "    const %s *st = (const %s *)state_;\n    if (!st) return ES_OK;\n", state->c_type, state->c_type);
    /* Group entries by field: alternatives within a field, all fields must hold. */
    int done[64] = {0};
    size_t n = cmd->cmd->n_allowed_from < 64 ? cmd->cmd->n_allowed_from : 64;
    for (size_t i = 0; i < n; i++) {
        if (done[i])
            continue;
        cg_field *f0;
        int v0;
        /* "!VALUE" entries exclude (checks.c refuses a field with both kinds). */
        int neg = cmd->cmd->allowed_from[i][0] == '!';
        cg_parse_assignment(p->ctx, cmd, "allowed_from", state, cmd->cmd->allowed_from[i] + neg, &f0, &v0);
        cg_out *names = cg_scratch();
        cg_printf(c, neg ? "    if ((" : "    if (!(");
        int first = 1;
        for (size_t k = i; k < n; k++) {
            cg_field *f;
            int v;
            const char *entry = cmd->cmd->allowed_from[k] + (cmd->cmd->allowed_from[k][0] == '!');
            cg_parse_assignment(p->ctx, cmd, "allowed_from", state, entry, &f, &v);
            if (f != f0)
                continue;
            done[k] = 1;
            const char *vn = NULL;
            cg_enum_value(f->enum_type, strchr(entry, '=') ? strchr(entry, '=') + 1 : entry, &vn);
            cg_printf(c, "%sst->%s == %s__%s", first ? "" : " || ", f->name, f->enum_type->c_upper, vn);
            (void)v;
            cg_printf(names, "%s%s", first ? "" : ", ", vn + strlen(f->enum_type->prefix));
            first = 0;
        }
        cg_printf(c, "))\n        return es_error_set(err, ES_FAILED_PRECONDITION, \"%s\",\n"
                     "            \"%s is not allowed when %s is %%s (allowed: %s%s)\",\n"
                     "            es_gen_enum_short(&%s__descriptor, (int)st->%s, %zu));\n",
                  f0->name, name, f0->name, neg ? "every value but " : "", names->data ? names->data : "",
                  f0->enum_type->c_lower, f0->name, strlen(f0->enum_type->prefix));
    }
    cg_printf(c, "    return ES_OK;\n}\n\n");
}

static void emit_command(pkg *p, const cg_message *cmd)
{
    cg_out *c = p->c, *h = p->h;
    cg_message *state = cg_find_aggregate(&p->ctx->model, cmd->cmd->aggregate);
    char *name = command_name(cmd);
    const char *idf = cmd->cmd->id_field && cmd->cmd->id_field[0] ? cmd->cmd->id_field : state->agg->id_field;
    cg_printf(h, "\n/* command %s: hand-written rule, in app/ */\nextern const es_command_def %scommand_%s;\n", cmd->full,
              p->prefix, name);
    cg_printf(h, "int %sdecide_%s(const es_decide_ctx *ctx, const %s *state, const %s *cmd, es_decision *out, es_error *err);\n",
              p->prefix, name, state->c_type, cmd->c_type);
    cg_printf(c, "/* ---- command %s ---- */\n\n", name);
    cg_printf(c, "static const char *target_%s(const ProtobufCMessage *m)\n{\n    const char *s = ((const %s *)m)->%s;\n    return s ? s : \"\";\n}\n\n",
              name, cmd->c_type, idf);
    if (cg_find_field(cmd, "request_id"))
        cg_printf(c, "static const char *request_id_%s(const ProtobufCMessage *m)\n{\n    const char *s = ((const %s *)m)->request_id;\n    return s ? s : \"\";\n}\n\n",
                  name, cmd->c_type);
    else
        cg_printf(c, "static const char *request_id_%s(const ProtobufCMessage *m)\n{\n    (void)m;\n    return \"\";\n}\n\n", name);
    if (cg_find_field(cmd, "expected_version"))
        cg_printf(c, "static int expected_version_%s(const ProtobufCMessage *m, int64_t *out)\n{\n"
                     "    const %s *c = (const %s *)m;\n    if (!c->expected_version) return 0;\n"
                     "    *out = c->expected_version->value;\n    return 1;\n}\n\n",
                  name, cmd->c_type, cmd->c_type);
    else
        cg_printf(c, "static int expected_version_%s(const ProtobufCMessage *m, int64_t *out)\n{\n    (void)m; (void)out;\n    return 0;\n}\n\n",
                  name);
    emit_guard(p, cmd, state, name);
    cg_printf(c, "static int decide_%s(const es_decide_ctx *ctx, const ProtobufCMessage *state, const ProtobufCMessage *cmd,\n"
                 "                      es_decision *out, es_error *err)\n{\n"
                 "    return %sdecide_%s(ctx, (const %s *)state, (const %s *)cmd, out, err);\n}\n\n",
              name, p->prefix, name, state->c_type, cmd->c_type);
    cg_printf(c, "static const es_event_def *const emits_%s[] = {\n", name);
    for (size_t i = 0; i < cmd->cmd->n_emits; i++)
        cg_printf(c, "    &%sevent_%s,\n", p->prefix, cmd->cmd->emits[i]);
    cg_printf(c, "};\n\n");
    cg_printf(c, "const es_command_def %scommand_%s = {\n    .name = \"%s\",\n    .descriptor = &%s__descriptor,\n"
                 "    .aggregate = &%saggregate_%s,\n    .creates = %d,\n    .target_id = target_%s,\n"
                 "    .request_id = request_id_%s,\n    .expected_version = expected_version_%s,\n    .validate = %s,\n"
                 "    .guard = guard_%s,\n    .decide = decide_%s,\n    .emits = emits_%s,\n    .n_emits = %zu,\n};\n\n",
              p->prefix, name, cmd->name, cmd->c_lower, p->prefix, state->agg->name,
              cmd->cmd->has_creates && cmd->cmd->creates, name, name, name,
              cg_needs_validation(cmd, 0) ? cg_sprintf("%svalidate_%s", p->prefix, cmd->name) : "NULL", name, name, name,
              cmd->cmd->n_emits);
    free(name);
}

/* ---- projections --------------------------------------------------------------------------- */

const char *cg_sql_type(const cg_field *f)
{
    if (f->opt && f->opt->sql_type && f->opt->sql_type[0])
        return f->opt->sql_type;
    if (f->repeated)
        return "jsonb";
    switch (f->fd->type) {
    case T(STRING): return "text";
    case T(BOOL): return "boolean";
    case T(INT32): case T(SINT32): case T(SFIXED32): return "integer";
    case T(UINT32): case T(FIXED32): case T(INT64): case T(SINT64): case T(SFIXED64): return "bigint";
    case T(UINT64): case T(FIXED64): return "numeric(20)";
    case T(FLOAT): return "real";
    case T(DOUBLE): return "double precision";
    case T(ENUM): return "text";
    case T(BYTES): return "bytea";
    case T(MESSAGE):
        if (f->msg_type && strcmp(f->msg_type->full, "google.protobuf.Timestamp") == 0)
            return "timestamptz";
        return "jsonb";
    default: return "text";
    }
}

static void emit_projection(pkg *p, const cg_message *m)
{
    cg_out *c = p->c;
    const Es__ProjectionOptions *o = m->proj;
    cg_message *state = cg_find_aggregate(&p->ctx->model, o->aggregate);
    cg_printf(c, "/* ---- projection %s ---- */\n\n", o->table);
    cg_printf(c, "static ProtobufCMessage *from_state_%s(const ProtobufCMessage *state_, int64_t version, es_arena *a)\n{\n"
                 "    const %s *st = (const %s *)state_;\n    %s *row = es_arena_alloc(a, sizeof *row);\n    %s__init(row);\n",
              o->table, state->c_type, state->c_type, m->c_type, m->c_lower);
    for (size_t i = 0; i < m->n_fields; i++) {
        const cg_field *f = &m->fields[i];
        if (f->opt && f->opt->not_in_state) {
            if (strcmp(f->name, "version") == 0)
                cg_printf(c, "    row->version = version;\n");
            continue;
        }
        if (f->repeated)
            cg_printf(c, "    row->n_%s = st->n_%s;\n    row->%s = st->%s;\n", f->name, f->name, f->name, f->name);
        else if (f->fd->type == T(STRING) || f->fd->type == T(MESSAGE))
            cg_printf(c, "    row->%s = st->%s; /* aliases the state: the row is written before the state changes */\n",
                      f->name, f->name);
        else
            cg_printf(c, "    row->%s = st->%s;\n", f->name, f->name);
    }
    cg_printf(c, "    (void)version;\n    return &row->base;\n}\n\n");
    cg_printf(c, "static const es_projection_column columns_%s[] = {\n", o->table);
    for (size_t i = 0; i < m->n_fields; i++) {
        const cg_field *f = &m->fields[i];
        cg_printf(c, "    {.column = \"%s\", .sql_type = \"%s\", .field_id = %d},\n",
                  f->opt && f->opt->column && f->opt->column[0] ? f->opt->column : f->name,
                  cg_sql_type(f), f->fd->number);
    }
    cg_printf(c, "};\n\n");
    cg_out *ddl = cg_scratch();
    cg_gen_projection_ddl(p->ctx, m, ddl);
    cg_printf(c, "const es_projection_def %sprojection_%s = {\n    .name = \"%s\",\n    .descriptor = &%s__descriptor,\n"
                 "    .aggregate = &%saggregate_%s,\n    .key = \"%s\",\n    .columns = columns_%s,\n    .n_columns = %zu,\n"
                 "    .from_state = from_state_%s,\n    .ddl = \"",
              p->prefix, o->table, o->table, m->c_lower, p->prefix, state->agg->name, o->key, o->table, m->n_fields,
              o->table);
    cg_c_string(c, ddl->data ? ddl->data : "");
    cg_printf(c, "\",\n};\n\n");
    cg_printf(p->h, "extern const es_projection_def %sprojection_%s;\n", p->prefix, o->table);
}

/* ---- services -------------------------------------------------------------------------------- */

static void emit_service(pkg *p, const cg_service *s)
{
    cg_out *c = p->c, *h = p->h;
    const char *sn = s->sd->name;
    cg_printf(c, "/* ---- service %s ---- */\n\n", s->full);
    cg_printf(h, "\n/* service %s */\nextern const es_service_def %sservice_%s;\n", s->full, p->prefix, sn);
    for (size_t i = 0; i < s->n_methods; i++) {
        const cg_method *me = &s->methods[i];
        if (me->input->cmd)
            continue;
        cg_printf(h, "int %squery_%s(es_query_ctx *ctx, const %s *req, %s **out, es_error *err);\n", p->prefix, me->name,
                  me->input->c_type, me->output->c_type);
        cg_printf(c, "static int query_%s(es_query_ctx *ctx, const ProtobufCMessage *req, ProtobufCMessage **out, es_error *err)\n{\n"
                     "    return %squery_%s(ctx, (const %s *)req, (%s **)out, err);\n}\n\n",
                  me->name, p->prefix, me->name, me->input->c_type, me->output->c_type);
    }
    for (size_t i = 0; i < s->n_methods; i++) {
        const cg_method *me = &s->methods[i];
        size_t na = me->access ? me->access->n_allow : 0;
        if (!na)
            continue;
        cg_printf(c, "static const es_access_rule access_%s_%s[] = {\n", sn, me->name);
        for (size_t k = 0; k < na; k++) {
            const char *e = me->access->allow[k], *colon = strchr(e, ':');
            size_t rl = colon ? (size_t)(colon - e) : strlen(e);
            if (!colon) {
                cg_printf(c, "    {.role = \"%.*s\", .kind = ES_ACCESS_ANY},\n", (int)rl, e);
            } else if (strcmp(colon + 1, "owner") == 0) {
                const char *of = cg_owner_field(cg_method_aggregate(&p->ctx->model, me), e, rl);
                cg_printf(c, "    {.role = \"%.*s\", .kind = ES_ACCESS_OWNER, .owner_field = \"%s\"},\n", (int)rl, e,
                          of ? of : "");
            } else {
                cg_printf(c, "    {.role = \"%.*s\", .kind = ES_ACCESS_SELF, .self_field = \"%s\"},\n", (int)rl, e,
                          colon + 1 + strlen("self="));
            }
        }
        cg_printf(c, "};\n");
    }
    for (size_t i = 0; i < s->n_methods; i++) {
        const cg_method *me = &s->methods[i];
        char *cmdname = me->input->cmd ? command_name(me->input) : NULL;
        cg_printf(c, "static const es_method_def method_%s_%s = {\n    .name = \"%s\",\n    .grpc_path = \"/%s/%s\",\n"
                     "    .input = &%s__descriptor,\n    .output = &%s__descriptor,\n    .command = %s,\n    .query = %s,\n"
                     "    .validate = %s,\n    .canonicalize = %s,\n",
                  sn, me->name, me->name, s->full, me->name, me->input->c_lower, me->output->c_lower,
                  cmdname ? cg_sprintf("&%scommand_%s", p->prefix, cmdname) : "NULL",
                  cmdname ? "NULL" : cg_sprintf("query_%s", me->name),
                  cg_needs_validation(me->input, 0) ? cg_sprintf("%svalidate_%s", p->prefix, me->input->name) : "NULL",
                  cg_needs_canon(p, me->input, 0) ? cg_sprintf("%scanonicalize_%s", p->prefix, me->input->name) : "NULL");
        if (me->access && me->access->n_allow)
            cg_printf(c, "    .access = access_%s_%s,\n    .n_access = %zu,\n", sn, me->name, me->access->n_allow);
        const cg_message *target = cg_method_aggregate(&p->ctx->model, me);
        if (target && strcmp(target->file->package, p->package) == 0) {
            const char *tf = me->input->cmd && me->input->cmd->id_field && me->input->cmd->id_field[0]
                                 ? me->input->cmd->id_field
                                 : target->agg->id_field;
            cg_printf(c, "    .target = &%saggregate_%s,\n    .target_field = \"%s\",\n", p->prefix, target->agg->name, tf);
        }
        cg_printf(c, "};\n");
        free(cmdname);
    }
    cg_printf(c, "\nstatic const es_method_def *const methods_%s[] = {\n", sn);
    for (size_t i = 0; i < s->n_methods; i++)
        cg_printf(c, "    &method_%s_%s,\n", sn, s->methods[i].name);
    cg_printf(c, "};\n\nstatic const es_route_def routes_%s[] = {\n", sn);
    size_t n_routes = 0;
    for (size_t i = 0; i < s->n_methods; i++) {
        const cg_method *me = &s->methods[i];
        if (!me->http)
            continue;
        /* The rule and every additional binding, without a limit (the OpenAPI output lists the
         * same ones, so the document never names a route that is not served). */
        for (size_t k = 0; k <= me->http->n_additional_bindings; k++) {
            const Google__Api__HttpRule *r = k == 0 ? me->http : me->http->additional_bindings[k - 1];
            const char *verb = NULL, *path = NULL;
            switch (r->pattern_case) {
            case GOOGLE__API__HTTP_RULE__PATTERN_GET: verb = "GET"; path = r->get; break;
            case GOOGLE__API__HTTP_RULE__PATTERN_PUT: verb = "PUT"; path = r->put; break;
            case GOOGLE__API__HTTP_RULE__PATTERN_POST: verb = "POST"; path = r->post; break;
            case GOOGLE__API__HTTP_RULE__PATTERN_DELETE: verb = "DELETE"; path = r->delete_; break;
            case GOOGLE__API__HTTP_RULE__PATTERN_PATCH: verb = "PATCH"; path = r->patch; break;
            default: continue;
            }
            cg_printf(c, "    {.http_method = \"%s\", .path = \"", verb);
            cg_c_string(c, path);
            if (r->body && r->body[0]) {
                cg_printf(c, "\", .body = \"");
                cg_c_string(c, r->body);
                cg_printf(c, "\", .method = &method_%s_%s},\n", sn, me->name);
            } else {
                cg_printf(c, "\", .body = NULL, .method = &method_%s_%s},\n", sn, me->name);
            }
            n_routes++;
        }
    }
    cg_printf(c, "};\n\nconst es_service_def %sservice_%s = {\n    .name = \"%s\",\n    .methods = methods_%s,\n"
                 "    .n_methods = %zu,\n    .routes = routes_%s,\n    .n_routes = %zu,\n};\n\n", p->prefix,
              sn, s->full, sn, s->n_methods, sn, n_routes);
}

/* ---- json names, registry, event unpacking ------------------------------------------------- */

static int cmp_number(const void *a, const void *b)
{
    const cg_field *x = *(const cg_field *const *)a, *y = *(const cg_field *const *)b;
    return (x->fd->number > y->fd->number) - (x->fd->number < y->fd->number);
}

static void emit_json_names(pkg *p)
{
    cg_out *c = p->c;
    size_t n = 0;
    for (size_t i = 0; i < p->n_msgs; i++) {
        const cg_message *m = p->msgs[i];
        if (!m->n_fields)
            continue;
        /* protobuf-c orders descriptor->fields by field number. */
        const cg_field **sorted = malloc(m->n_fields * sizeof *sorted);
        for (size_t k = 0; k < m->n_fields; k++)
            sorted[k] = &m->fields[k];
        qsort(sorted, m->n_fields, sizeof *sorted, cmp_number);
        cg_printf(c, "static const char *const json_%s[] = {", m->c_lower);
        for (size_t k = 0; k < m->n_fields; k++) {
            const char *jn = sorted[k]->fd->json_name ? sorted[k]->fd->json_name : cg_json_name(sorted[k]->name);
            cg_printf(c, "%s\"%s\"", k ? ", " : "", jn);
        }
        cg_printf(c, "};\n");
        free(sorted);
        n++;
    }
    cg_printf(c, "\nstatic const es_json_names json_names[] = {\n");
    for (size_t i = 0; i < p->n_msgs; i++)
        if (p->msgs[i]->n_fields)
            cg_printf(c, "    {.descriptor = &%s__descriptor, .json_names = json_%s},\n", p->msgs[i]->c_lower,
                      p->msgs[i]->c_lower);
    cg_printf(c, "};\n\nstatic const ProtobufCMessageDescriptor *const messages[] = {\n");
    for (size_t i = 0; i < p->n_msgs; i++)
        cg_printf(c, "    &%s__descriptor,\n", p->msgs[i]->c_lower);
    cg_printf(c, "};\n\n");
    (void)n;
}

static void emit_unpack_event(pkg *p)
{
    cg_printf(p->h, "\n/* Decodes a stored event payload by event type; NULL when the type is unknown or the bytes\n"
                    " * are invalid. Free with protobuf_c_message_free_unpacked(msg, allocator). */\n"
                    "ProtobufCMessage *%sunpack_event(const char *event_type, const uint8_t *data, size_t len,\n"
                    "                                 ProtobufCAllocator *allocator);\n",
              p->prefix);
    cg_printf(p->c, "ProtobufCMessage *%sunpack_event(const char *event_type, const uint8_t *data, size_t len,\n"
                    "                                 ProtobufCAllocator *allocator)\n{\n",
              p->prefix);
    for (size_t i = 0; i < p->n_msgs; i++) {
        const cg_message *m = p->msgs[i];
        if (!m->event)
            continue;
        cg_printf(p->c, "    if (strcmp(event_type, %sevent_%s.type) == 0)\n        return protobuf_c_message_unpack(&%s__descriptor, allocator, len, data);\n",
                  p->prefix, m->name, m->c_lower);
    }
    cg_printf(p->c, "    (void)data; (void)len; (void)allocator;\n    return NULL;\n}\n\n");
}

static int package_has_service(const cg_ctx *ctx, const char *package)
{
    for (size_t i = 0; i < ctx->model.n_services; i++)
        if (strcmp(ctx->model.services[i]->file->package, package) == 0 && ctx->model.services[i]->file->generate)
            return 1;
    return 0;
}

int cg_gen_package(cg_ctx *ctx, const char *package)
{
    pkg P = {.ctx = ctx, .package = package};
    pkg *p = &P;
    p->n_msgs = cg_package_messages(&ctx->model, package, &p->msgs);
    p->prefix = cg_strdup(package);
    p->dir = cg_strdup(package);
    for (char *s = p->prefix; *s; s++)
        if (*s == '.')
            *s = '_';
    for (char *s = p->dir; *s; s++)
        if (*s == '.')
            *s = '/';
    char *base = cg_strdup(p->prefix);
    p->prefix = cg_sprintf("%s_", base);
    char *guard = cg_to_upper(base);

    p->h = cg_open(ctx, "%s/%s.es.h", p->dir, base);
    p->c = cg_open(ctx, "%s/%s.es.c", p->dir, base);
    cg_printf(p->h, "/* Generated by protoc-gen-es from package %s. DO NOT EDIT: change proto/ and regenerate. */\n"
                    "#ifndef %s_ES_H\n#define %s_ES_H\n\n#include \"es/envelope.h\"\n#include \"es/schema.h\"\n"
                    "#include \"es/upcast.h\"\n", package, guard, guard);
    for (size_t i = 0; i < ctx->model.n_files; i++) {
        const cg_file *f = &ctx->model.files[i];
        if (strcmp(f->package, package) == 0 && f->generate) {
            char *inc = strndup(f->name, strlen(f->name) - 6);
            cg_printf(p->h, "#include \"%s.pb-c.h\"\n", inc);
            free(inc);
        }
    }
    cg_printf(p->h, "\nextern const es_schema %sschema;\n", p->prefix);
    cg_printf(p->c, "/* Generated by protoc-gen-es from package %s. DO NOT EDIT: change proto/ and regenerate. */\n"
                    "#include \"%s/%s.es.h\"\n\n#include <string.h>\n\n#include \"es/gen.h\"\n#include \"es/uuid.h\"\n",
              package, p->dir, base);
    if (package_has_service(ctx, package))
        cg_printf(p->c, "#include \"%s/%s.openapi.h\"\n", p->dir, base);
    cg_printf(p->c, "\n");

    cg_emit_constructors(p);
    cg_emit_regexes(p);
    cg_emit_validators(p);
    cg_emit_canonicalizers(p);
    emit_aggregates(p);
    cg_emit_reactors(p);
    for (size_t i = 0; i < p->n_msgs; i++)
        if (p->msgs[i]->cmd)
            emit_command(p, p->msgs[i]);
    for (size_t i = 0; i < p->n_msgs; i++)
        if (p->msgs[i]->proj)
            emit_projection(p, p->msgs[i]);
    for (size_t i = 0; i < ctx->model.n_services; i++)
        if (strcmp(ctx->model.services[i]->file->package, package) == 0 && ctx->model.services[i]->file->generate)
            emit_service(p, ctx->model.services[i]);
    emit_json_names(p);
    emit_unpack_event(p);

    /* Descriptor set and the package's schema record. */
    char hash[17];
    char *sym = cg_sprintf("descriptor_set");
    cg_gen_descriptor_set(ctx, package, p->c, sym, hash);
    cg_out *sql = cg_open(ctx, "sql/0100_%s.sql", base);
    cg_gen_sql(ctx, package, sql);
    int n_steps;
    char baseline[17];
    if (cg_gen_migrations(ctx, package, base, p->c, &n_steps, baseline))
        return -1;

    cg_out *c = p->c;
    const char *lists[4] = {"aggregates", "commands", "projections", "services"};
    for (int l = 0; l < 4; l++) {
        cg_printf(c, "static const void *const %s_list[] = {\n", lists[l]);
        size_t n = 0;
        if (l == 3) {
            for (size_t i = 0; i < ctx->model.n_services; i++)
                if (strcmp(ctx->model.services[i]->file->package, package) == 0 && ctx->model.services[i]->file->generate) {
                    cg_printf(c, "    &%sservice_%s,\n", p->prefix, ctx->model.services[i]->sd->name);
                    n++;
                }
        } else {
            for (size_t i = 0; i < p->n_msgs; i++) {
                const cg_message *m = p->msgs[i];
                if (l == 0 && m->agg) {
                    cg_printf(c, "    &%saggregate_%s,\n", p->prefix, m->agg->name);
                    n++;
                } else if (l == 1 && m->cmd) {
                    char *nm = command_name(m);
                    cg_printf(c, "    &%scommand_%s,\n", p->prefix, nm);
                    free(nm);
                    n++;
                } else if (l == 2 && m->proj) {
                    cg_printf(c, "    &%sprojection_%s,\n", p->prefix, m->proj->table);
                    n++;
                }
            }
        }
        if (!n)
            cg_printf(c, "    NULL,\n");
        cg_printf(c, "};\n");
    }
    size_t counts[4] = {0};
    for (size_t i = 0; i < p->n_msgs; i++) {
        counts[0] += !!p->msgs[i]->agg;
        counts[1] += !!p->msgs[i]->cmd;
        counts[2] += !!p->msgs[i]->proj;
    }
    for (size_t i = 0; i < ctx->model.n_services; i++)
        counts[3] += strcmp(ctx->model.services[i]->file->package, package) == 0 && ctx->model.services[i]->file->generate;
    cg_printf(c, "\nconst es_schema %sschema = {\n    .package = \"%s\",\n"
                 "    .aggregates = (const es_aggregate_def *const *)aggregates_list,\n    .n_aggregates = %zu,\n"
                 "    .commands = (const es_command_def *const *)commands_list,\n    .n_commands = %zu,\n"
                 "    .projections = (const es_projection_def *const *)projections_list,\n    .n_projections = %zu,\n"
                 "    .services = (const es_service_def *const *)services_list,\n    .n_services = %zu,\n"
                 "    .messages = messages,\n    .n_messages = %zu,\n"
                 "    .json_names = json_names,\n    .n_json_names = sizeof json_names / sizeof json_names[0],\n"
                 "    .descriptor_set = descriptor_set,\n    .descriptor_set_len = sizeof descriptor_set,\n"
                 "    .descriptor_set_hash = \"%s\",\n    .migrations_sql = \"",
              p->prefix, package, counts[0], counts[1], counts[2], counts[3], p->n_msgs, hash);
    cg_c_string(c, sql->data ? sql->data : "");
    cg_printf(c, "\",\n    .migration_steps = %s,\n    .n_migration_steps = %d,\n    .migrations_baseline = \"%s\",\n",
              n_steps ? "migration_steps" : "NULL", n_steps, baseline);
    /* The package's OpenAPI document (gen_openapi.c writes it for a package with a service). */
    if (counts[3])
        cg_printf(c, "    .openapi_json = %sopenapi_json,\n", p->prefix);
    cg_printf(c, "};\n");
    cg_printf(p->h, "\n#endif\n");
    return ctx->error ? -1 : 0;
}
