/* Emits the OpenAPI 3.0 document of a package's HTTP surface, from the same annotations the
 * route table comes from: google.api.http rules give the paths, verbs, path/query parameters and
 * request bodies; the messages give the schemas in the proto3 JSON mapping orderd speaks (proto
 * field names, 64-bit integers as strings, enums by name, Timestamp as RFC 3339); (es.field)
 * rules become JSON Schema constraints; every operation answers the runtime's error body on 4xx
 * and 5xx. Comments in the .proto files become descriptions.
 *
 * Outputs per package with a service: openapi/<pkg>.openapi.json (the document) and
 * <dir>/<pkg>.openapi.{h,c} (the same bytes as a C string, so a server can serve it without
 * reading files). The document is built as a small tree first, then printed, so that objects can
 * be completed in any order (path items shared by two verbs, schemas discovered while walking). */
#include "cg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define T(x) GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_##x

#include "json_tree.h"

/* ---- schemas ------------------------------------------------------------------------------ */

typedef struct gen {
    cg_ctx *ctx;
    const char *package;
    /* Types referenced so far; their component schemas are written after the paths. */
    const cg_message **msgs;
    size_t n_msgs;
    const cg_enum **enums;
    size_t n_enums;
    int uses_idempotency;
} gen;

static const char *wkt_prefix = "google.protobuf.";

static int is_wkt(const char *full)
{
    return strncmp(full, wkt_prefix, strlen(wkt_prefix)) == 0;
}

static jv *ref(const char *name)
{
    jv *o = j_obj();
    char *r = cg_sprintf("#/components/schemas/%s", name);
    j_put(o, "$ref", j_str(r));
    free(r);
    return o;
}

static jv *typed(const char *type, const char *format)
{
    jv *o = j_obj();
    j_put(o, "type", j_str(type));
    if (format)
        j_put(o, "format", j_str(format));
    return o;
}

/* The inline schema of a well-known type in its proto3 JSON form, or NULL for other types. */
static jv *wkt_schema(const char *full)
{
    if (!is_wkt(full))
        return NULL;
    const char *n = full + strlen(wkt_prefix);
    jv *s;
    if (strcmp(n, "Timestamp") == 0) {
        s = typed("string", "date-time");
    } else if (strcmp(n, "Duration") == 0) {
        s = typed("string", NULL);
        j_put(s, "pattern", j_str("^-?[0-9]+(\\.[0-9]{1,9})?s$"));
        j_put(s, "description", j_str("Duration in seconds with an \"s\" suffix, e.g. 1.5s"));
    } else if (strcmp(n, "FieldMask") == 0) {
        s = typed("string", NULL);
        j_put(s, "description", j_str("Comma-separated lowerCamelCase field paths"));
    } else if (strcmp(n, "Struct") == 0) {
        s = typed("object", NULL);
        j_put(s, "additionalProperties", j_raw("true"));
    } else if (strcmp(n, "Value") == 0) {
        s = j_obj();
        j_put(s, "description", j_str("Any JSON value"));
    } else if (strcmp(n, "ListValue") == 0) {
        s = typed("array", NULL);
        j_put(s, "items", j_obj());
    } else if (strcmp(n, "Empty") == 0) {
        s = typed("object", NULL);
    } else if (strcmp(n, "Any") == 0) {
        s = typed("object", NULL);
        jv *req = j_put(s, "required", j_arr());
        j_push(req, j_str("@type"));
        jv *props = j_put(s, "properties", j_obj());
        jv *t = j_put(props, "@type", typed("string", NULL));
        j_put(t, "description", j_str("type.googleapis.com/<full message name>"));
        j_put(s, "additionalProperties", j_raw("true"));
        j_put(s, "description", j_str("A message of the type @type names, its fields beside @type"));
    } else if (strcmp(n, "DoubleValue") == 0) {
        s = typed("number", "double");
    } else if (strcmp(n, "FloatValue") == 0) {
        s = typed("number", "float");
    } else if (strcmp(n, "Int64Value") == 0) {
        s = typed("string", "int64");
    } else if (strcmp(n, "UInt64Value") == 0) {
        s = typed("string", "uint64");
    } else if (strcmp(n, "Int32Value") == 0) {
        s = typed("integer", "int32");
    } else if (strcmp(n, "UInt32Value") == 0) {
        s = typed("integer", "int64");
        j_put(s, "minimum", j_raw("0"));
        j_put(s, "maximum", j_raw("4294967295"));
    } else if (strcmp(n, "BoolValue") == 0) {
        s = typed("boolean", NULL);
    } else if (strcmp(n, "StringValue") == 0) {
        s = typed("string", NULL);
    } else if (strcmp(n, "BytesValue") == 0) {
        s = typed("string", "byte");
    } else {
        return NULL;
    }
    return s;
}

static jv *message_ref(gen *g, const cg_message *m)
{
    jv *w = wkt_schema(m->full);
    if (w)
        return w;
    size_t i = 0;
    while (i < g->n_msgs && g->msgs[i] != m)
        i++;
    if (i == g->n_msgs) {
        g->msgs = realloc(g->msgs, (g->n_msgs + 1) * sizeof *g->msgs);
        if (!g->msgs)
            abort();
        g->msgs[g->n_msgs++] = m;
    }
    return ref(m->full);
}

static jv *enum_ref(gen *g, const cg_enum *e)
{
    size_t i = 0;
    while (i < g->n_enums && g->enums[i] != e)
        i++;
    if (i == g->n_enums) {
        g->enums = realloc(g->enums, (g->n_enums + 1) * sizeof *g->enums);
        if (!g->enums)
            abort();
        g->enums[g->n_enums++] = e;
    }
    return ref(e->full);
}

/* "Money" -> its schema with a description: a $ref cannot carry siblings in OpenAPI 3.0, so a
 * described reference is wrapped in allOf. */
static jv *describe(jv *s, const char *text)
{
    if (!text || !text[0])
        return s;
    if (j_get(s, "$ref")) {
        jv *w = j_obj();
        j_push(j_put(w, "allOf", j_arr()), s);
        s = w;
    }
    jv *had = j_get(s, "description");
    char *d = had ? cg_sprintf("%s. %s", text, had->s) : cg_strdup(text);
    j_put(s, "description", j_str(d));
    free(d);
    return s;
}

static int required_of(const cg_field *f)
{
    return f->opt && f->opt->has_required && f->opt->required;
}

/* Whether f must appear in a JSON object: required, or a plain number whose range excludes
 * zero (proto3 JSON leaves zero out, and the validator then refuses it). */
static int must_appear(const cg_field *f)
{
    if (required_of(f))
        return 1;
    const Es__FieldOptions *o = f->opt;
    if (!o || f->repeated || f->has_presence || f->msg_type || f->enum_type || f->fd->type == T(STRING) ||
        f->fd->type == T(BYTES) || f->fd->type == T(BOOL))
        return 0;
    return (o->has_min && o->min > 0) || (o->has_max && o->max < 0);
}

/* One value of f (an element when f is repeated) with the (es.field) rules that apply to each
 * value; proto3 JSON types: 64-bit integers are decimal strings, bytes base64. */
static jv *value_schema(gen *g, const cg_field *f)
{
    const Es__FieldOptions *o = f->opt;
    int required = required_of(f) && !f->repeated;
    jv *s = NULL;
    switch (f->fd->type) {
    case T(MESSAGE):
        return f->msg_type ? message_ref(g, f->msg_type) : typed("object", NULL);
    case T(ENUM):
        if (!f->enum_type)
            return typed("string", NULL);
        s = enum_ref(g, f->enum_type);
        if (required) {
            /* Required enums must not be the zero value. */
            for (size_t i = 0; i < f->enum_type->ed->n_value; i++)
                if (f->enum_type->ed->value[i]->number == 0) {
                    jv *w = j_obj();
                    j_push(j_put(w, "allOf", j_arr()), s);
                    jv *no = j_put(j_put(w, "not", j_obj()), "enum", j_arr());
                    j_push(no, j_str(f->enum_type->ed->value[i]->name));
                    s = w;
                    break;
                }
        }
        return s;
    case T(STRING): {
        s = typed("string", o && o->has_uuid && o->uuid ? "uuid" : NULL);
        unsigned min = o && o->has_min_len ? o->min_len : 0;
        if (required && min < 1)
            min = 1;
        if (min)
            j_put(s, "minLength", j_raw("%u", min));
        if (o && o->has_max_len && o->max_len)
            j_put(s, "maxLength", j_raw("%u", o->max_len));
        if (o && o->pattern && o->pattern[0])
            j_put(s, "pattern", j_str(o->pattern));
        return s;
    }
    case T(BYTES):
        s = typed("string", "byte");
        if (required)
            j_put(s, "minLength", j_raw("1"));
        if (o && o->has_max_len && o->max_len) /* padded base64 of max_len bytes */
            j_put(s, "maxLength", j_raw("%u", (o->max_len + 2) / 3 * 4));
        return s;
    case T(BOOL):
        s = typed("boolean", NULL);
        if (required)
            j_push(j_put(s, "enum", j_arr()), j_raw("true"));
        return s;
    case T(DOUBLE): case T(FLOAT):
        s = typed("number", f->fd->type == T(FLOAT) ? "float" : "double");
        break;
    case T(INT64): case T(SINT64): case T(SFIXED64): case T(UINT64): case T(FIXED64): {
        int unsig = f->fd->type == T(UINT64) || f->fd->type == T(FIXED64);
        s = typed("string", unsig ? "uint64" : "int64");
        int nonneg = unsig || (o && o->has_min && o->min >= 0);
        j_put(s, "pattern", j_str(nonneg ? "^[0-9]+$" : "^-?[0-9]+$"));
        /* JSON Schema cannot bound a number written as a string; the range goes in words. */
        if (o && (o->has_min || o->has_max)) {
            char *d = o->has_min && o->has_max
                          ? cg_sprintf("Decimal string, %lld to %lld", (long long)o->min, (long long)o->max)
                      : o->has_min ? cg_sprintf("Decimal string, at least %lld", (long long)o->min)
                                   : cg_sprintf("Decimal string, at most %lld", (long long)o->max);
            j_put(s, "description", j_str(d));
            free(d);
        }
        if (required)
            j_put(s, "not", j_kv("pattern", j_str("^-?0*$")));
        return s;
    }
    case T(UINT32): case T(FIXED32):
        s = typed("integer", "int64");
        j_put(s, "minimum", j_raw("0"));
        j_put(s, "maximum", j_raw("4294967295"));
        break;
    default: /* int32, sint32, sfixed32 */
        s = typed("integer", "int32");
        break;
    }
    /* Numbers: ranges as minimum/maximum; "required" means non-zero. */
    if (o && o->has_min)
        j_put(s, "minimum", j_raw("%lld", (long long)o->min));
    if (o && o->has_max)
        j_put(s, "maximum", j_raw("%lld", (long long)o->max));
    if (required)
        j_push(j_put(j_put(s, "not", j_obj()), "enum", j_arr()), j_raw("0"));
    return s;
}

/* The schema of field f of message m: a map, an array of values or one value, described by the
 * field's comment. */
static jv *field_schema(gen *g, const cg_message *m, const cg_field *f)
{
    const Es__FieldOptions *o = f->opt;
    jv *s;
    if (f->repeated && f->msg_type && f->msg_type->map_entry && f->msg_type->n_fields == 2) {
        s = typed("object", NULL);
        j_put(s, "additionalProperties", value_schema(g, &f->msg_type->fields[1]));
    } else if (f->repeated) {
        s = typed("array", NULL);
        j_put(s, "items", value_schema(g, f));
        if (required_of(f))
            j_put(s, "minItems", j_raw("1"));
        if (o && o->has_max_items && o->max_items)
            j_put(s, "maxItems", j_raw("%u", o->max_items));
    } else {
        s = value_schema(g, f);
    }
    char *c = cg_field_comment(m, f);
    s = describe(s, c);
    free(c);
    return s;
}

/* An object schema of m's fields, leaving out the top-level fields named in skip (those a route
 * binds to the path). */
static jv *object_schema(gen *g, const cg_message *m, char **skip, size_t n_skip, const char *note)
{
    jv *s = typed("object", NULL);
    char *c = cg_message_comment(m);
    char *d = cg_sprintf("%s%s%s", c, c[0] && note ? "\n\n" : "", note ? note : "");
    if (d[0])
        j_put(s, "description", j_str(d));
    free(d);
    free(c);
    jv *props = j_obj(), *req = j_arr();
    for (size_t i = 0; i < m->n_fields; i++) {
        const cg_field *f = &m->fields[i];
        size_t k = 0;
        while (k < n_skip && strcmp(skip[k], f->name) != 0)
            k++;
        if (k < n_skip)
            continue;
        j_put(props, f->name, field_schema(g, m, f));
        if (must_appear(f))
            j_push(req, j_str(f->name));
    }
    if (req->n)
        j_put(s, "required", req);
    j_put(s, "properties", props);
    return s;
}

static jv *enum_schema(const cg_enum *e)
{
    jv *s = typed("string", NULL);
    jv *vals = j_put(s, "enum", j_arr());
    int32_t path[70];
    size_t n = cg_enum_path(e->file, e->ed, path);
    cg_out *d = cg_scratch();
    if (n) {
        char *c = cg_comment_at(e->file, path, n);
        if (c[0])
            cg_printf(d, "%s\n\n", c);
        free(c);
    }
    for (size_t i = 0; i < e->ed->n_value; i++) {
        const char *name = e->ed->value[i]->name;
        j_push(vals, j_str(name));
        char *c = cg_strdup("");
        if (n) {
            free(c);
            path[n] = 2;
            path[n + 1] = (int32_t)i;
            c = cg_comment_at(e->file, path, n + 2);
        }
        cg_printf(d, "- `%s`%s%s\n", name, c[0] ? ": " : "", c);
        free(c);
    }
    while (d->len && d->data[d->len - 1] == '\n')
        d->data[--d->len] = 0;
    j_put(s, "description", j_str(d->data ? d->data : ""));
    return s;
}

/* ---- paths -------------------------------------------------------------------------------- */

/* The field at a dotted path ("shipping_address.city") of m, or NULL. */
static const cg_field *field_at(const cg_message *m, const char *dotted, const cg_message **owner)
{
    char *copy = cg_strdup(dotted), *save = NULL;
    const cg_field *f = NULL;
    for (char *tok = strtok_r(copy, ".", &save); tok; tok = strtok_r(NULL, ".", &save)) {
        if (!m || !(f = cg_find_field(m, tok))) {
            f = NULL;
            break;
        }
        if (owner)
            *owner = m;
        m = f->msg_type;
    }
    free(copy);
    return f;
}

/* Turns a google.api.http template into an OpenAPI path ("{name=<glob>}" -> "{name}") and
 * collects its variables. */
static char *openapi_path(const char *tpl, char ***vars, size_t *n_vars)
{
    cg_out *o = cg_scratch();
    *vars = NULL;
    *n_vars = 0;
    for (const char *p = tpl; *p;) {
        if (*p != '{') {
            cg_write(o, p++, 1);
            continue;
        }
        const char *e = strchr(p, '}');
        if (!e)
            break;
        size_t len = strcspn(p + 1, "=}");
        char *name = strndup(p + 1, len);
        *vars = realloc(*vars, (*n_vars + 1) * sizeof **vars);
        (*vars)[(*n_vars)++] = name;
        cg_printf(o, "{%s}", name);
        p = e + 1;
    }
    return cg_strdup(o->data ? o->data : "");
}

static int in_list(char **list, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i], s) == 0)
            return 1;
    return 0;
}

/* A parameter carries its field's description itself, not inside its schema. */
static void move_description(jv *param, jv *schema)
{
    jv *d = j_get(schema, "description");
    if (!d)
        return;
    j_put(param, "description", d);
    j_del(schema, "description");
    jv *all = j_get(schema, "allOf");
    if (all && schema->n == 1 && all->n == 1) { /* unwrap a reference that was wrapped to carry it */
        jv *inner = all->vals[0];
        *schema = *inner;
    }
}

/* Query parameters: every field not bound to the path or the body, nested messages as dotted
 * names (as the transport's query decoder accepts them). */
static void query_params(gen *g, jv *params, const cg_message *m, const char *prefix, char **vars, size_t n_vars,
                         const char *body_field, int depth)
{
    for (size_t i = 0; i < m->n_fields; i++) {
        const cg_field *f = &m->fields[i];
        char *name = cg_sprintf("%s%s", prefix, f->name);
        if (in_list(vars, n_vars, name) || (body_field && strcmp(body_field, name) == 0)) {
            free(name);
            continue;
        }
        if (f->msg_type && !wkt_schema(f->msg_type->full)) {
            if (!f->repeated && depth < 4 && f->msg_type != m) {
                char *pre = cg_sprintf("%s.", name);
                query_params(g, params, f->msg_type, pre, vars, n_vars, body_field, depth + 1);
                free(pre);
            }
            free(name);
            continue;
        }
        jv *p = j_push(params, j_obj());
        j_put(p, "name", j_str(name));
        j_put(p, "in", j_str("query"));
        if (must_appear(f))
            j_put(p, "required", j_raw("true"));
        jv *s = field_schema(g, m, f);
        move_description(p, s);
        j_put(p, "schema", s);
        free(name);
    }
}

static jv *param_ref(const char *name)
{
    jv *o = j_obj();
    char *r = cg_sprintf("#/components/parameters/%s", name);
    j_put(o, "$ref", j_str(r));
    free(r);
    return o;
}

static jv *error_ref(void)
{
    return j_kv("$ref", j_str("#/components/responses/Error"));
}

static void add_operation(gen *g, jv *paths, const cg_service *s, const cg_method *me, const Google__Api__HttpRule *r,
                          size_t binding)
{
    const char *verb = NULL, *tpl = NULL;
    switch (r->pattern_case) {
    case GOOGLE__API__HTTP_RULE__PATTERN_GET: verb = "get"; tpl = r->get; break;
    case GOOGLE__API__HTTP_RULE__PATTERN_PUT: verb = "put"; tpl = r->put; break;
    case GOOGLE__API__HTTP_RULE__PATTERN_POST: verb = "post"; tpl = r->post; break;
    case GOOGLE__API__HTTP_RULE__PATTERN_DELETE: verb = "delete"; tpl = r->delete_; break;
    case GOOGLE__API__HTTP_RULE__PATTERN_PATCH: verb = "patch"; tpl = r->patch; break;
    default: return; /* custom verbs have no OpenAPI operation */
    }
    char **vars;
    size_t n_vars;
    char *path = openapi_path(tpl, &vars, &n_vars);
    jv *item = j_get(paths, path);
    if (!item)
        item = j_put(paths, path, j_obj());
    if (j_get(item, verb)) {
        cg_fail(g->ctx, "%s: method %s: a second %s route for %s", s->file->name, me->name, verb, tpl);
        return;
    }
    jv *op = j_put(item, verb, j_obj());
    j_push(j_put(op, "tags", j_arr()), j_str(s->sd->name));
    char *opid = binding ? cg_sprintf("%s_%s_%zu", s->sd->name, me->name, binding + 1)
                         : cg_sprintf("%s_%s", s->sd->name, me->name);
    j_put(op, "operationId", j_str(opid));
    j_put(op, "summary", j_str(me->name));

    int32_t spath[4] = {6, 0, 2, 0};
    for (size_t i = 0; i < s->file->fd->n_service; i++)
        if (s->file->fd->service[i] == s->sd)
            spath[1] = (int32_t)i;
    spath[3] = (int32_t)(me - s->methods);
    char *c = cg_comment_at(s->file, spath, 4);
    char *desc = cg_sprintf("%s%sgRPC: `/%s/%s`%s", c, c[0] ? "\n\n" : "", s->full, me->name,
                            me->input->cmd ? ". A command: send an Idempotency-Key (or request_id) to make retries safe." : ".");
    j_put(op, "description", j_str(desc));
    free(desc);
    free(c);

    jv *params = j_arr();
    for (size_t i = 0; i < n_vars; i++) {
        const cg_message *owner = me->input;
        const cg_field *f = field_at(me->input, vars[i], &owner);
        if (!f) {
            cg_fail(g->ctx, "%s: method %s: path variable %s is not a field of %s", s->file->name, me->name, vars[i],
                    me->input->full);
            return;
        }
        jv *p = j_push(params, j_obj());
        j_put(p, "name", j_str(vars[i]));
        j_put(p, "in", j_str("path"));
        j_put(p, "required", j_raw("true"));
        jv *sch = field_schema(g, owner, f);
        move_description(p, sch);
        j_put(p, "schema", sch);
    }
    const char *body = r->body && r->body[0] ? r->body : NULL;
    if (!body || strcmp(body, "*") != 0)
        query_params(g, params, me->input, "", vars, n_vars, body, 0);
    if (me->input->cmd) {
        j_push(params, param_ref("IdempotencyKey"));
        g->uses_idempotency = 1;
    }
    j_push(params, param_ref("CorrelationId"));
    j_put(op, "parameters", params);

    if (body) {
        jv *schema;
        if (strcmp(body, "*") == 0) {
            /* Fields bound to the path come from the path; the body carries the rest. */
            char **top = calloc(n_vars + 1, sizeof *top);
            for (size_t i = 0; i < n_vars; i++)
                top[i] = vars[i];
            schema = n_vars ? object_schema(g, me->input, top, n_vars, NULL) : message_ref(g, me->input);
            free(top);
        } else {
            const cg_message *owner = me->input;
            const cg_field *f = field_at(me->input, body, &owner);
            if (!f) {
                cg_fail(g->ctx, "%s: method %s: body %s is not a field of %s", s->file->name, me->name, body,
                        me->input->full);
                return;
            }
            schema = field_schema(g, owner, f);
        }
        jv *rb = j_put(op, "requestBody", j_obj());
        j_put(rb, "required", j_raw("true"));
        j_put(j_put(j_put(rb, "content", j_obj()), "application/json", j_obj()), "schema", schema);
    }

    jv *resps = j_put(op, "responses", j_obj());
    jv *ok = j_put(resps, "200", j_obj());
    j_put(ok, "description", j_str(me->output->full));
    j_put(j_put(j_put(ok, "content", j_obj()), "application/json", j_obj()), "schema", message_ref(g, me->output));
    j_put(resps, "4XX", error_ref());
    j_put(resps, "5XX", error_ref());
    free(opid);
    free(path);
}

/* ---- components --------------------------------------------------------------------------- */

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void add_components(gen *g, jv *doc)
{
    jv *comp = j_put(doc, "components", j_obj());
    jv *schemas = j_put(comp, "schemas", j_obj());
    /* Events are what GET .../events returns inside Any: list them too, so that a client can
     * read every payload. */
    cg_message **pm;
    size_t n = cg_package_messages(&g->ctx->model, g->package, &pm);
    for (size_t i = 0; i < n; i++)
        if (pm[i]->event && pm[i]->file->generate)
            (void)message_ref(g, pm[i]);
    free(pm);

    /* Walking a schema may reference further types: loop until no new one appears. */
    jv *tmp = j_obj();
    for (size_t i = 0; i < g->n_msgs; i++) {
        char *note = g->msgs[i]->event
                         ? cg_sprintf("Event `%s`: in an EventRecord, data holds it with "
                                      "\"@type\": \"type.googleapis.com/%s\".", g->msgs[i]->name, g->msgs[i]->full)
                         : NULL;
        jv *s = object_schema(g, g->msgs[i], NULL, 0, note);
        free(note);
        j_put(tmp, g->msgs[i]->full, s);
    }
    for (size_t i = 0; i < g->n_enums; i++)
        j_put(tmp, g->enums[i]->full, enum_schema(g->enums[i]));
    jv *err = j_put(tmp, "Error", typed("object", NULL));
    j_put(err, "description", j_str("The error body of every 4xx/5xx answer."));
    jv *req = j_put(err, "required", j_arr());
    j_push(req, j_str("code"));
    j_push(req, j_str("message"));
    j_push(req, j_str("details"));
    jv *props = j_put(err, "properties", j_obj());
    jv *code = j_put(props, "code", typed("integer", "int32"));
    j_put(code, "description", j_str("gRPC status code (google.rpc.Code), e.g. 3 INVALID_ARGUMENT, 5 NOT_FOUND"));
    j_put(code, "minimum", j_raw("0"));
    j_put(code, "maximum", j_raw("16"));
    j_put(props, "message", typed("string", NULL));
    jv *det = j_put(props, "details", typed("array", NULL));
    jv *item = j_put(det, "items", typed("object", NULL));
    jv *ip = j_put(item, "properties", j_obj());
    j_put(j_put(ip, "field", typed("string", NULL)), "description",
          j_str("Proto path of the offending field, e.g. items[1].unit_price.amount_minor"));
    j_put(ip, "description", typed("string", NULL));

    char **names = calloc(tmp->n + 1, sizeof *names);
    for (size_t i = 0; i < tmp->n; i++)
        names[i] = tmp->keys[i];
    qsort(names, tmp->n, sizeof *names, by_name);
    for (size_t i = 0; i < tmp->n; i++)
        j_put(schemas, names[i], j_get(tmp, names[i]));
    free(names);

    jv *resps = j_put(comp, "responses", j_obj());
    jv *e = j_put(resps, "Error", j_obj());
    j_put(e, "description",
          j_str("Error. HTTP status from the gRPC code: 400 INVALID_ARGUMENT, FAILED_PRECONDITION, OUT_OF_RANGE; "
                "401 UNAUTHENTICATED; 403 PERMISSION_DENIED; 404 NOT_FOUND; 409 ALREADY_EXISTS, ABORTED; "
                "413 body too large; 429 RESOURCE_EXHAUSTED; 499 CANCELLED; 500 INTERNAL, UNKNOWN, DATA_LOSS; "
                "501 UNIMPLEMENTED; 503 UNAVAILABLE; 504 DEADLINE_EXCEEDED."));
    j_put(j_put(j_put(e, "content", j_obj()), "application/json", j_obj()), "schema", ref("Error"));

    jv *params = j_put(comp, "parameters", j_obj());
    if (g->uses_idempotency) {
        jv *p = j_put(params, "IdempotencyKey", j_obj());
        j_put(p, "name", j_str("Idempotency-Key"));
        j_put(p, "in", j_str("header"));
        j_put(p, "description", j_str("Makes a command safe to retry: a repeated key answers the first result "
                                      "(the request_id field does the same)."));
        jv *s = j_put(p, "schema", typed("string", NULL));
        j_put(s, "maxLength", j_raw("128"));
    }
    jv *p = j_put(params, "CorrelationId", j_obj());
    j_put(p, "name", j_str("X-Correlation-Id"));
    j_put(p, "in", j_str("header"));
    j_put(p, "description", j_str("Correlation id recorded with the events a command writes (X-Request-Id also works)."));
    j_put(p, "schema", typed("string", NULL));

    jv *sec = j_put(j_put(comp, "securitySchemes", j_obj()), "bearerAuth", j_obj());
    j_put(sec, "type", j_str("http"));
    j_put(sec, "scheme", j_str("bearer"));
    j_put(sec, "description", j_str("Bearer token, when the server requires authentication."));
}

/* ---- the package -------------------------------------------------------------------------- */

static void c_literal(cg_out *o, const char *s, size_t n)
{
    /* One string literal per line; '?' escaped so no trigraph can form. */
    cg_printf(o, "    \"");
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\' || c == '?')
            cg_printf(o, "\\%c", c);
        else if (c == '\n')
            cg_printf(o, i + 1 < n ? "\\n\"\n    \"" : "\\n");
        else if (c < 0x20 || c >= 0x7f)
            cg_printf(o, "\\%03o", c);
        else
            cg_write(o, &s[i], 1);
    }
    cg_printf(o, "\"");
}

int cg_gen_openapi(cg_ctx *ctx, const char *package)
{
    const cg_model *m = &ctx->model;
    size_t n_svc = 0;
    for (size_t i = 0; i < m->n_services; i++)
        if (m->services[i]->file->generate && strcmp(m->services[i]->file->package, package) == 0)
            n_svc++;
    if (!n_svc)
        return 0;
    gen G = {.ctx = ctx, .package = package};
    gen *g = &G;
    char *base = cg_strdup(package), *dir = cg_strdup(package);
    for (char *s = base; *s; s++)
        if (*s == '.')
            *s = '_';
    for (char *s = dir; *s; s++)
        if (*s == '.')
            *s = '/';

    jv *doc = j_obj();
    j_put(doc, "openapi", j_str("3.0.3"));
    jv *info = j_put(doc, "info", j_obj());
    j_put(info, "title", j_str(package));
    char hash[17];
    cg_out *scratch = cg_scratch();
    cg_gen_descriptor_set(ctx, package, scratch, "unused", hash);
    char *ver = cg_sprintf("schema %s", hash);
    j_put(info, "version", j_str(ver));
    free(ver);
    char *d = cg_sprintf("Generated by protoc-gen-es from the google.api.http annotations and (es.field) rules of "
                         "package %s. Bodies use the proto3 JSON mapping: answers carry proto field names; requests "
                         "may use proto or lowerCamelCase names; 64-bit integers are decimal strings; enums are "
                         "written by name; timestamps are RFC 3339. Every method is also served over gRPC.",
                         package);
    j_put(info, "description", j_str(d));
    free(d);
    j_push(j_put(doc, "servers", j_arr()), j_kv("url", j_str("/")));
    /* Authentication is the server's choice: a bearer token, or none. */
    jv *sec = j_put(doc, "security", j_arr());
    j_put(j_push(sec, j_obj()), "bearerAuth", j_arr());
    j_push(sec, j_obj());

    jv *tags = j_put(doc, "tags", j_arr());
    jv *paths = j_put(doc, "paths", j_obj());
    for (size_t i = 0; i < m->n_services && !ctx->error; i++) {
        const cg_service *s = m->services[i];
        if (!s->file->generate || strcmp(s->file->package, package) != 0)
            continue;
        jv *t = j_push(tags, j_obj());
        j_put(t, "name", j_str(s->sd->name));
        int32_t spath[2] = {6, 0};
        for (size_t k = 0; k < s->file->fd->n_service; k++)
            if (s->file->fd->service[k] == s->sd)
                spath[1] = (int32_t)k;
        char *c = cg_comment_at(s->file, spath, 2);
        if (c[0])
            j_put(t, "description", j_str(c));
        free(c);
        for (size_t k = 0; k < s->n_methods && !ctx->error; k++) {
            const cg_method *me = &s->methods[k];
            if (!me->http || !me->input || !me->output)
                continue;
            add_operation(g, paths, s, me, me->http, 0);
            for (size_t b = 0; b < me->http->n_additional_bindings && !ctx->error; b++)
                add_operation(g, paths, s, me, me->http->additional_bindings[b], b + 1);
        }
    }
    if (ctx->error)
        return -1;
    add_components(g, doc);

    cg_out *json = cg_open(ctx, "openapi/%s.openapi.json", base);
    j_print(json, doc, 0);
    cg_write(json, "\n", 1);

    char *guard = cg_to_upper(base);
    cg_out *h = cg_open(ctx, "%s/%s.openapi.h", dir, base);
    cg_printf(h, "/* Generated by protoc-gen-es from package %s. DO NOT EDIT: change proto/ and regenerate. */\n"
                 "#ifndef %s_OPENAPI_H\n#define %s_OPENAPI_H\n\n#include <stddef.h>\n\n"
                 "/* The OpenAPI 3 document of the package's HTTP routes, byte for byte\n"
                 " * openapi/%s.openapi.json (NUL-terminated; length without the NUL). */\n"
                 "extern const char %s_openapi_json[];\nextern const size_t %s_openapi_json_len;\n\n#endif\n",
              package, guard, guard, base, base, base);
    cg_out *c = cg_open(ctx, "%s/%s.openapi.c", dir, base);
    cg_printf(c, "/* Generated by protoc-gen-es from package %s. DO NOT EDIT: change proto/ and regenerate. */\n"
                 "#include \"%s/%s.openapi.h\"\n\nconst char %s_openapi_json[] =\n",
              package, dir, base, base);
    c_literal(c, json->data, json->len);
    cg_printf(c, ";\n\nconst size_t %s_openapi_json_len = sizeof %s_openapi_json - 1;\n", base, base);
    free(guard);
    free(base);
    free(dir);
    return 0;
}
