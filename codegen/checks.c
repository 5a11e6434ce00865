/* Checks the es annotations of every file being generated, so a mistake fails at generation
 * time with the file, message and option named, never as a compile error in generated code. */
#include "cg.h"

#include <errno.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>

#define T(x) GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_##x

cg_message *cg_find_aggregate(const cg_model *m, const char *name)
{
    for (size_t i = 0; i < m->n_messages; i++)
        if (m->messages[i]->agg && m->messages[i]->agg->name && strcmp(m->messages[i]->agg->name, name) == 0)
            return m->messages[i];
    return NULL;
}

static int is_string(const cg_field *f) { return f->fd->type == T(STRING); }
static int is_numeric(const cg_field *f)
{
    switch (f->fd->type) {
    case T(INT32): case T(INT64): case T(UINT32): case T(UINT64): case T(SINT32): case T(SINT64):
    case T(FIXED32): case T(FIXED64): case T(SFIXED32): case T(SFIXED64): case T(DOUBLE): case T(FLOAT):
        return 1;
    default:
        return 0;
    }
}

/* Same wire type and same message/enum type, same cardinality: apply may copy one into the other. */
int cg_same_type(const cg_field *a, const cg_field *b)
{
    if (a->fd->type != b->fd->type || a->repeated != b->repeated)
        return 0;
    if (a->msg_type || b->msg_type)
        return a->msg_type == b->msg_type;
    if (a->enum_type || b->enum_type)
        return a->enum_type == b->enum_type;
    return 1;
}

/* Parses "field=VALUE" or "VALUE" against a state message; returns the field and value number. */
int cg_parse_assignment(cg_ctx *ctx, const cg_message *owner, const char *what, const cg_message *state,
                        const char *entry, cg_field **field_out, int *value_out)
{
    const char *eq = strchr(entry, '=');
    char *fname = eq ? strndup(entry, (size_t)(eq - entry)) : NULL;
    const char *value = eq ? eq + 1 : entry;
    const char *status = state->agg && state->agg->status_field ? state->agg->status_field : "";
    cg_field *f = cg_find_field(state, fname ? fname : status);
    if (!f) {
        int r = cg_fail(ctx, "%s: message %s: %s \"%s\": %s", owner->file->name, owner->name, what, entry,
                        fname ? "no such field in the state message" : "the aggregate has no status_field");
        free(fname);
        return r;
    }
    free(fname);
    if (!f->enum_type || f->repeated)
        return cg_fail(ctx, "%s: message %s: %s \"%s\": state field %s is not an enum", owner->file->name,
                       owner->name, what, entry, f->name);
    int v = cg_enum_value(f->enum_type, value, NULL);
    if (v < 0)
        return cg_fail(ctx, "%s: message %s: %s \"%s\": %s has no value %s", owner->file->name, owner->name,
                       what, entry, f->enum_type->full, value);
    *field_out = f;
    *value_out = v;
    return 0;
}

static int is_integer(const cg_field *f)
{
    return is_numeric(f) && f->fd->type != T(DOUBLE) && f->fd->type != T(FLOAT);
}

/* A derived entry of (es.event).sets: "state_field+=<integer>" (a counter each such event moves)
 * or "state_field+=<event field>" (the sum of an integer field over the stream's events). */
int cg_parse_increment(cg_ctx *ctx, const cg_message *ev, const cg_message *state, const char *entry,
                       cg_increment *out)
{
    const char *op = strstr(entry, "+=");
    memset(out, 0, sizeof *out);
    if (!op)
        return 1;
    const char *file = ev->file->name;
    char *target = strndup(entry, (size_t)(op - entry));
    const char *src = op + 2;
    cg_field *sf = cg_find_field(state, target);
    if (!sf) {
        int r = cg_fail(ctx, "%s: message %s: (es.event) sets \"%s\": no field %s in the state message %s", file,
                        ev->name, entry, target, state->full);
        free(target);
        return r;
    }
    free(target);
    if (!is_integer(sf) || sf->repeated)
        return cg_fail(ctx, "%s: message %s: (es.event) sets \"%s\": state field %s.%s must be a single integer "
                            "field to count or sum into",
                       file, ev->name, entry, state->full, sf->name);
    out->state_field = sf;
    size_t digits = strspn(src + (src[0] == '-'), "0123456789");
    if (digits && !src[(src[0] == '-') + digits]) {
        errno = 0;
        out->step = strtoll(src, NULL, 10);
        if (errno == ERANGE)
            return cg_fail(ctx, "%s: message %s: (es.event) sets \"%s\": the step %s does not fit in 64 bits", file,
                           ev->name, entry, src);
        if (!out->step)
            return cg_fail(ctx, "%s: message %s: (es.event) sets \"%s\": a step of 0 changes nothing", file, ev->name,
                           entry);
        return 0;
    }
    cg_field *ef = cg_find_field(ev, src);
    if (!ef)
        return cg_fail(ctx, "%s: message %s: (es.event) sets \"%s\": %s is neither an integer step nor a field of %s",
                       file, ev->name, entry, src, ev->full);
    if (!is_integer(ef) || ef->repeated)
        return cg_fail(ctx, "%s: message %s: field %s: (es.event) sets \"%s\": the field added must be a single "
                            "integer field (not %s%s)",
                       file, ev->name, ef->name, entry, ef->repeated ? "repeated " : "",
                       ef->enum_type ? "an enum" : ef->msg_type ? "a message" : is_numeric(ef) ? "floating point"
                                                                                              : "a string, bytes or bool");
    out->event_field = ef;
    return 0;
}

static int check_field_rules(cg_ctx *ctx, const cg_message *m, const cg_field *f)
{
    const Es__FieldOptions *o = f->opt;
    if (!o)
        return 0;
    const char *file = m->file->name;
    if ((o->has_min_len || o->has_max_len) && !(is_string(f) || f->fd->type == T(BYTES)))
        return cg_fail(ctx, "%s: message %s: field %s: (es.field) min_len/max_len need a string or bytes field",
                       file, m->name, f->name);
    if ((o->has_min || o->has_max) && !is_numeric(f))
        return cg_fail(ctx, "%s: message %s: field %s: (es.field) min/max need a numeric field", file, m->name, f->name);
    if (o->has_uuid && o->uuid && !is_string(f))
        return cg_fail(ctx, "%s: message %s: field %s: (es.field) uuid needs a string field", file, m->name, f->name);
    if (o->has_max_items && !f->repeated)
        return cg_fail(ctx, "%s: message %s: field %s: (es.field) max_items needs a repeated field", file, m->name,
                       f->name);
    if (o->pattern && o->pattern[0]) {
        if (!is_string(f))
            return cg_fail(ctx, "%s: message %s: field %s: (es.field) pattern needs a string field", file, m->name,
                           f->name);
        regex_t re;
        if (regcomp(&re, o->pattern, REG_EXTENDED | REG_NOSUB) != 0)
            return cg_fail(ctx, "%s: message %s: field %s: (es.field) pattern \"%s\" is not a valid POSIX extended regex",
                           file, m->name, f->name, o->pattern);
        regfree(&re);
    }
    if (o->state && o->state[0] && !m->event)
        return cg_fail(ctx, "%s: message %s: field %s: (es.field) state is only allowed on events", file, m->name,
                       f->name);
    return 0;
}

static int check_aggregate(cg_ctx *ctx, const cg_message *m)
{
    const Es__AggregateOptions *a = m->agg;
    if (!a->name || !a->name[0])
        return cg_fail(ctx, "%s: message %s: (es.aggregate) needs a name", m->file->name, m->name);
    cg_field *id = a->id_field ? cg_find_field(m, a->id_field) : NULL;
    if (!id || !is_string(id) || id->repeated)
        return cg_fail(ctx, "%s: message %s: (es.aggregate) id_field \"%s\" must name a string field", m->file->name,
                       m->name, a->id_field ? a->id_field : "");
    /* Kafka's own rule for topic names: 1..249 of [a-zA-Z0-9._-]. */
    if (a->topic && (!a->topic[0] || strlen(a->topic) > 249 ||
                     strspn(a->topic, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") !=
                         strlen(a->topic)))
        return cg_fail(ctx, "%s: message %s: (es.aggregate) topic \"%s\" must be 1 to 249 of a-z, A-Z, 0-9, '.', '_', '-'",
                       m->file->name, m->name, a->topic);
    if (a->status_field && a->status_field[0]) {
        cg_field *st = cg_find_field(m, a->status_field);
        if (!st || !st->enum_type || st->repeated)
            return cg_fail(ctx, "%s: message %s: (es.aggregate) status_field \"%s\" must name an enum field",
                           m->file->name, m->name, a->status_field);
    }
    return 0;
}

/* A counted or summed state field is moved by one entry per event, and not copied into by the same
 * event: two writers of one field would leave it to the order of the generated statements. */
static int check_increment_alone(cg_ctx *ctx, const cg_message *m, size_t i, const cg_field *sf)
{
    const Es__EventOptions *e = m->event;
    size_t n = strlen(sf->name);
    for (size_t k = 0; k < e->n_sets; k++) {
        const char *o = e->sets[k];
        if (k != i && strncmp(o, sf->name, n) == 0 && (o[n] == '=' || strncmp(o + n, "+=", 2) == 0))
            return cg_fail(ctx, "%s: message %s: (es.event) sets \"%s\" and \"%s\" both write state field %s",
                           m->file->name, m->name, e->sets[k < i ? k : i], e->sets[k < i ? i : k], sf->name);
    }
    for (size_t k = 0; k < m->n_fields; k++) {
        const cg_field *f = &m->fields[k];
        if (!f->opt || !f->opt->state || !f->opt->state[0])
            continue;
        char *list = cg_strdup(f->opt->state), *save = NULL;
        for (char *tok = strtok_r(list, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save))
            if (strcmp(tok, sf->name) == 0)
                return cg_fail(ctx, "%s: message %s: field %s: (es.field) state \"%s\" copies into the field that "
                                    "(es.event) sets \"%s\" counts or sums",
                               m->file->name, m->name, f->name, tok, e->sets[i]);
        free(list);
    }
    return 0;
}

static int check_event(cg_ctx *ctx, const cg_message *m)
{
    const Es__EventOptions *e = m->event;
    cg_message *state = e->aggregate ? cg_find_aggregate(&ctx->model, e->aggregate) : NULL;
    if (!state)
        return cg_fail(ctx, "%s: message %s: (es.event) aggregate \"%s\" is not declared by any (es.aggregate)",
                       m->file->name, m->name, e->aggregate ? e->aggregate : "");
    for (size_t i = 0; i < e->n_sets; i++) {
        cg_field *f;
        int v;
        cg_increment inc;
        int r = cg_parse_increment(ctx, m, state, e->sets[i], &inc);
        if (r < 0)
            return -1;
        if (r > 0 && cg_parse_assignment(ctx, m, "(es.event) sets", state, e->sets[i], &f, &v))
            return -1;
        if (r == 0 && check_increment_alone(ctx, m, i, inc.state_field))
            return -1;
    }
    for (size_t i = 0; i < m->n_fields; i++) {
        const cg_field *f = &m->fields[i];
        if (!f->opt || !f->opt->state || !f->opt->state[0])
            continue;
        char *list = cg_strdup(f->opt->state), *save = NULL;
        for (char *tok = strtok_r(list, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
            cg_field *sf = cg_find_field(state, tok);
            if (!sf)
                return cg_fail(ctx, "%s: message %s: field %s: (es.field) state \"%s\": no such field in %s",
                               m->file->name, m->name, f->name, tok, state->full);
            if (!cg_same_type(f, sf))
                return cg_fail(ctx, "%s: message %s: field %s: (es.field) state \"%s\": type differs from %s.%s",
                               m->file->name, m->name, f->name, tok, state->full, sf->name);
        }
        free(list);
    }
    return 0;
}

static int check_command(cg_ctx *ctx, const cg_message *m)
{
    const Es__CommandOptions *c = m->cmd;
    cg_message *state = c->aggregate ? cg_find_aggregate(&ctx->model, c->aggregate) : NULL;
    if (!state)
        return cg_fail(ctx, "%s: message %s: (es.command) aggregate \"%s\" is not declared by any (es.aggregate)",
                       m->file->name, m->name, c->aggregate ? c->aggregate : "");
    const char *idf = c->id_field && c->id_field[0] ? c->id_field : state->agg->id_field;
    cg_field *id = cg_find_field(m, idf);
    if (!id || !is_string(id) || id->repeated)
        return cg_fail(ctx, "%s: message %s: (es.command) target id field \"%s\" must be a string field of the command",
                       m->file->name, m->name, idf);
    if (c->creates && c->n_allowed_from)
        return cg_fail(ctx, "%s: message %s: (es.command) a creating command cannot have allowed_from", m->file->name,
                       m->name);
    for (size_t i = 0; i < c->n_allowed_from; i++) {
        cg_field *f, *g;
        int v, neg = c->allowed_from[i][0] == '!';
        if (cg_parse_assignment(ctx, m, "(es.command) allowed_from", state, c->allowed_from[i] + neg, &f, &v))
            return -1;
        for (size_t k = 0; k < i; k++) {
            int kneg = c->allowed_from[k][0] == '!';
            if (cg_parse_assignment(ctx, m, "(es.command) allowed_from", state, c->allowed_from[k] + kneg, &g, &v))
                return -1;
            if (g == f && kneg != neg)
                return cg_fail(ctx, "%s: message %s: (es.command) allowed_from: \"%s\" and \"%s\" mix inclusions and "
                                    "exclusions of field %s (use one or the other)",
                               m->file->name, m->name, c->allowed_from[k], c->allowed_from[i], f->name);
        }
    }
    if (!c->n_emits)
        return cg_fail(ctx, "%s: message %s: (es.command) emits must list at least one event", m->file->name, m->name);
    for (size_t i = 0; i < c->n_emits; i++) {
        int found = 0;
        for (size_t k = 0; k < ctx->model.n_messages; k++) {
            cg_message *e = ctx->model.messages[k];
            if (e->event && strcmp(e->name, c->emits[i]) == 0 && e->event->aggregate &&
                strcmp(e->event->aggregate, c->aggregate) == 0)
                found = 1;
        }
        if (!found)
            return cg_fail(ctx, "%s: message %s: (es.command) emits \"%s\": no event of aggregate \"%s\" has that name",
                           m->file->name, m->name, c->emits[i], c->aggregate);
    }
    cg_field *rid = cg_find_field(m, "request_id");
    if (rid && (!is_string(rid) || rid->repeated))
        return cg_fail(ctx, "%s: message %s: field request_id must be a string", m->file->name, m->name);
    cg_field *ev = cg_find_field(m, "expected_version");
    if (ev && (!ev->msg_type || strcmp(ev->msg_type->full, "google.protobuf.Int64Value") != 0))
        return cg_fail(ctx, "%s: message %s: field expected_version must be a google.protobuf.Int64Value",
                       m->file->name, m->name);
    return 0;
}

static int check_projection(cg_ctx *ctx, const cg_message *m)
{
    const Es__ProjectionOptions *p = m->proj;
    if (!p->table || !p->table[0])
        return cg_fail(ctx, "%s: message %s: (es.projection) needs a table", m->file->name, m->name);
    cg_message *state = p->aggregate ? cg_find_aggregate(&ctx->model, p->aggregate) : NULL;
    if (!state)
        return cg_fail(ctx, "%s: message %s: (es.projection) aggregate \"%s\" is not declared by any (es.aggregate)",
                       m->file->name, m->name, p->aggregate ? p->aggregate : "");
    if (!p->key || !cg_find_field(m, p->key))
        return cg_fail(ctx, "%s: message %s: (es.projection) key \"%s\" is not a field of the row", m->file->name,
                       m->name, p->key ? p->key : "");
    for (size_t i = 0; i < m->n_fields; i++) {
        const cg_field *f = &m->fields[i];
        if (f->opt && f->opt->not_in_state)
            continue;
        cg_field *sf = cg_find_field(state, f->name);
        if (!sf || !cg_same_type(f, sf))
            return cg_fail(ctx, "%s: message %s: field %s: no field of the same name and type in %s "
                           "(mark it (es.field).not_in_state to fill it by hand)",
                           m->file->name, m->name, f->name, state->full);
    }
    for (size_t i = 0; i < p->n_indexes; i++) {
        char *list = cg_strdup(p->indexes[i]), *save = NULL;
        for (char *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            while (*tok == ' ')
                tok++;
            char *sp = strchr(tok, ' ');
            if (sp)
                *sp = 0;
            if (!cg_find_field(m, tok))
                return cg_fail(ctx, "%s: message %s: (es.projection) index \"%s\": no column %s", m->file->name,
                               m->name, p->indexes[i], tok);
        }
        free(list);
    }
    return 0;
}

cg_message *cg_method_aggregate(const cg_model *m, const cg_method *me)
{
    if (!me->input)
        return NULL;
    if (me->input->cmd)
        return cg_find_aggregate(m, me->input->cmd->aggregate);
    cg_message *found = NULL;
    for (size_t i = 0; i < m->n_messages; i++) {
        cg_message *st = m->messages[i];
        if (!st->agg || strcmp(st->file->package, me->input->file->package) != 0 || !st->agg->id_field)
            continue;
        cg_field *f = cg_find_field(me->input, st->agg->id_field);
        if (f && is_string(f) && !f->repeated) {
            if (found)
                return NULL; /* ambiguous */
            found = st;
        }
    }
    return found;
}

const char *cg_owner_field(const cg_message *state, const char *role, size_t role_len)
{
    for (size_t i = 0; state && state->agg && i < state->agg->n_owners; i++) {
        const char *o = state->agg->owners[i], *eq = strchr(o, '=');
        if (eq && (size_t)(eq - o) == role_len && strncmp(o, role, role_len) == 0)
            return eq + 1;
    }
    return NULL;
}

static int package_annotated(const cg_model *m, const char *package)
{
    for (size_t i = 0; i < m->n_messages; i++) {
        const cg_message *x = m->messages[i];
        if (strcmp(x->file->package, package) == 0 && (x->agg || x->event || x->cmd || x->proj))
            return 1;
    }
    return 0;
}

/* Every RPC says who may call it: nothing is callable by accident. */
static int check_access(cg_ctx *ctx, const cg_service *s, const cg_method *me)
{
    const Es__AccessOptions *a = me->access;
    if (!a || !a->n_allow)
        return cg_fail(ctx, "%s: service %s: rpc %s has no (es.access) rule: say who may call it, e.g. "
                            "option (es.access) = { allow: [\"admin\"] }",
                       s->file->name, s->sd->name, me->name);
    for (size_t i = 0; i < a->n_allow; i++) {
        const char *e = a->allow[i];
        size_t rl = strspn(e, "abcdefghijklmnopqrstuvwxyz_0123456789");
        if (!rl || (e[rl] && e[rl] != ':'))
            return cg_fail(ctx, "%s: service %s: rpc %s: (es.access) \"%s\": expected \"role\", \"role:owner\" or "
                                "\"role:self=field\" (role in lower case)",
                           s->file->name, s->sd->name, me->name, e);
        const char *kind = e[rl] ? e + rl + 1 : "";
        if (!*kind)
            continue;
        if (strcmp(kind, "owner") == 0) {
            cg_message *st = cg_method_aggregate(&ctx->model, me);
            if (!st)
                return cg_fail(ctx, "%s: service %s: rpc %s: (es.access) \"%s\": no aggregate is the target of this rpc "
                                    "(a command's, or the one whose id field the request carries)",
                               s->file->name, s->sd->name, me->name, e);
            const char *of = cg_owner_field(st, e, rl);
            if (!of)
                return cg_fail(ctx, "%s: service %s: rpc %s: (es.access) \"%s\": aggregate \"%s\" names no owner for role "
                                    "\"%.*s\" (add \"%.*s=<state field>\" to its owners)",
                               s->file->name, s->sd->name, me->name, e, st->agg->name, (int)rl, e, (int)rl, e);
            cg_field *f = cg_find_field(st, of);
            if (!f || !is_string(f) || f->repeated)
                return cg_fail(ctx, "%s: message %s: (es.aggregate) owners: \"%s\" is not a string field of the state",
                               st->file->name, st->name, of);
        } else if (strncmp(kind, "self=", 5) == 0) {
            cg_field *f = cg_find_field(me->input, kind + 5);
            if (!f || !is_string(f) || f->repeated)
                return cg_fail(ctx, "%s: service %s: rpc %s: (es.access) \"%s\": %s is not a string field of %s",
                               s->file->name, s->sd->name, me->name, e, kind + 5, me->input->full);
        } else {
            return cg_fail(ctx, "%s: service %s: rpc %s: (es.access) \"%s\": expected \"role\", \"role:owner\" or "
                                "\"role:self=field\"",
                           s->file->name, s->sd->name, me->name, e);
        }
    }
    return 0;
}

static int check_methods(cg_ctx *ctx, const cg_service *s)
{
    int annotated = package_annotated(&ctx->model, s->file->package);
    for (size_t i = 0; i < s->n_methods; i++) {
        const cg_method *me = &s->methods[i];
        if (!me->input || !me->output)
            return cg_fail(ctx, "%s: service %s: rpc %s: unknown input or output type", s->file->name, s->sd->name,
                           me->name);
        if (me->md->has_client_streaming && me->md->client_streaming)
            return cg_fail(ctx, "%s: service %s: rpc %s: streaming methods are not supported", s->file->name,
                           s->sd->name, me->name);
        if (me->md->has_server_streaming && me->md->server_streaming)
            return cg_fail(ctx, "%s: service %s: rpc %s: streaming methods are not supported", s->file->name,
                           s->sd->name, me->name);
        if (annotated && check_access(ctx, s, me))
            return -1;
        const Google__Api__HttpRule *h = me->http;
        if (!h)
            continue;
        const char *path = NULL;
        switch (h->pattern_case) {
        case GOOGLE__API__HTTP_RULE__PATTERN_GET: path = h->get; break;
        case GOOGLE__API__HTTP_RULE__PATTERN_PUT: path = h->put; break;
        case GOOGLE__API__HTTP_RULE__PATTERN_POST: path = h->post; break;
        case GOOGLE__API__HTTP_RULE__PATTERN_DELETE: path = h->delete_; break;
        case GOOGLE__API__HTTP_RULE__PATTERN_PATCH: path = h->patch; break;
        default:
            return cg_fail(ctx, "%s: service %s: rpc %s: (google.api.http) needs get, put, post, delete or patch",
                           s->file->name, s->sd->name, me->name);
        }
        if (!path || path[0] != '/')
            return cg_fail(ctx, "%s: service %s: rpc %s: (google.api.http) path must start with /", s->file->name,
                           s->sd->name, me->name);
        for (const char *p = strchr(path, '{'); p; p = strchr(p + 1, '{')) {
            const char *end = p + strcspn(p, "=}");
            char *var = strndup(p + 1, (size_t)(end - p - 1));
            char *dot = strchr(var, '.');
            if (dot)
                *dot = 0;
            if (!cg_find_field(me->input, var))
                return cg_fail(ctx, "%s: service %s: rpc %s: (google.api.http) path variable {%s} is not a field of %s",
                               s->file->name, s->sd->name, me->name, var, me->input->full);
            free(var);
        }
        if (h->body && h->body[0] && strcmp(h->body, "*") != 0 && !cg_find_field(me->input, h->body))
            return cg_fail(ctx, "%s: service %s: rpc %s: (google.api.http) body \"%s\" is not a field of %s",
                           s->file->name, s->sd->name, me->name, h->body, me->input->full);
    }
    return 0;
}

int cg_check(cg_ctx *ctx)
{
    cg_model *m = &ctx->model;
    for (size_t i = 0; i < m->n_messages; i++) {
        cg_message *msg = m->messages[i];
        if (!msg->file->generate)
            continue;
        int kinds = !!msg->agg + !!msg->event + !!msg->cmd + !!msg->proj;
        if (kinds > 1)
            return cg_fail(ctx, "%s: message %s: a message can be only one of aggregate, event, command, projection",
                           msg->file->name, msg->name);
        for (size_t k = 0; k < msg->n_fields; k++)
            if (check_field_rules(ctx, msg, &msg->fields[k]))
                return -1;
        if ((msg->agg && check_aggregate(ctx, msg)) || (msg->event && check_event(ctx, msg)) ||
            (msg->cmd && check_command(ctx, msg)) || (msg->proj && check_projection(ctx, msg)))
            return -1;
    }
    for (size_t i = 0; i < m->n_services; i++)
        if (m->services[i]->file->generate && check_methods(ctx, m->services[i]))
            return -1;
    return 0;
}
