/* The C table generator's validation part: per-message validators from the (es.field) rules
 * (lengths, ranges, patterns, uuid form, required, enums, nested messages) and canonicalisers
 * that rewrite uuid fields to their one stored spelling before authorization. */
#include "gen_c.h"

#include <stdlib.h>
#include <string.h>

/* ---- validation ------------------------------------------------------------------------ */

int cg_needs_validation(const cg_message *m, int depth)
{
    if (depth > 32)
        return 0;
    for (size_t i = 0; i < m->n_fields; i++) {
        const cg_field *f = &m->fields[i];
        if (f->opt && (f->opt->has_required || f->opt->has_min_len || f->opt->has_max_len || f->opt->has_min ||
                       f->opt->has_max || (f->opt->pattern && f->opt->pattern[0]) || f->opt->has_uuid ||
                       f->opt->has_max_items))
            return 1;
        if (f->enum_type)
            return 1;
        if (f->msg_type && f->msg_type != m && cg_needs_validation(f->msg_type, depth + 1))
            return 1;
    }
    return 0;
}

void cg_emit_regexes(pkg *p)
{
    for (size_t i = 0; i < p->n_msgs; i++) {
        const cg_message *m = p->msgs[i];
        for (size_t k = 0; k < m->n_fields; k++) {
            const cg_field *f = &m->fields[k];
            if (f->opt && f->opt->pattern && f->opt->pattern[0]) {
                cg_printf(p->c, "static es_gen_regex re_%s_%s = ES_GEN_REGEX(\"", m->c_lower, f->name);
                cg_c_string(p->c, f->opt->pattern);
                cg_printf(p->c, "\");\n");
            }
        }
    }
    cg_printf(p->c, "\n");
}

/* Emits the checks of one value `v` (an lvalue expression) of field f. */
static void emit_value_checks(pkg *p, const cg_message *m, const cg_field *f, const char *v, const char *ind)
{
    const Es__FieldOptions *o = f->opt;
    cg_out *c = p->c;
    switch (f->fd->type) {
    case T(STRING):
        if (!o)
            break;
        cg_printf(c, "%sif (%s && %s[0]) {\n", ind, v, v);
        if (o->has_min_len && o->min_len)
            cg_printf(c, "%s    if (es_gen_utf8_len(%s) < %u) return es_gen_invalid(err, p, \"must be at least %u characters\");\n",
                      ind, v, o->min_len, o->min_len);
        if (o->has_max_len && o->max_len)
            cg_printf(c, "%s    if (es_gen_utf8_len(%s) > %u) return es_gen_invalid(err, p, \"must be at most %u characters\");\n",
                      ind, v, o->max_len, o->max_len);
        if (o->has_uuid && o->uuid)
            cg_printf(c, "%s    if (!es_uuid_valid(%s)) return es_gen_invalid(err, p, \"must be a UUID (8-4-4-4-12 hex digits)\");\n",
                      ind, v);
        if (o->pattern && o->pattern[0]) {
            cg_printf(c, "%s    if (!es_gen_regex_match(&re_%s_%s, %s)) return es_gen_invalid(err, p, \"must match ", ind,
                      m->c_lower, f->name, v);
            cg_c_string(c, o->pattern);
            cg_printf(c, "\");\n");
        }
        cg_printf(c, "%s}\n", ind);
        break;
    case T(BYTES):
        if (o && o->has_min_len && o->min_len)
            cg_printf(c, "%sif (%s.len && %s.len < %u) return es_gen_invalid(err, p, \"must be at least %u bytes\");\n", ind,
                      v, v, o->min_len, o->min_len);
        if (o && o->has_max_len && o->max_len)
            cg_printf(c, "%sif (%s.len > %u) return es_gen_invalid(err, p, \"must be at most %u bytes\");\n", ind, v,
                      o->max_len, o->max_len);
        break;
    case T(ENUM):
        cg_printf(c, "%sif (!protobuf_c_enum_descriptor_get_value(&%s__descriptor, (int)%s)) "
                     "return es_gen_invalid(err, p, \"has unknown value %%d\", (int)%s);\n",
                  ind, f->enum_type->c_lower, v, v);
        break;
    case T(MESSAGE):
        if (f->msg_type && cg_needs_validation(f->msg_type, 0))
            cg_printf(c, "%sif (%s) { int r = v_%s(%s, p, err); if (r) return r; }\n", ind, v, f->msg_type->c_lower, v);
        break;
    case T(DOUBLE): case T(FLOAT):
        if (o && o->has_min)
            cg_printf(c, "%sif (%s < %lld) return es_gen_invalid(err, p, \"must be at least %lld\");\n", ind, v,
                      (long long)o->min, (long long)o->min);
        if (o && o->has_max)
            cg_printf(c, "%sif (%s > %lld) return es_gen_invalid(err, p, \"must be at most %lld\");\n", ind, v,
                      (long long)o->max, (long long)o->max);
        break;
    default: /* integers and bool */
        if (o && o->has_min)
            cg_printf(c, "%sif ((long long)%s < %lldLL) return es_gen_invalid(err, p, \"must be at least %lld\");\n", ind,
                      v, (long long)o->min, (long long)o->min);
        if (o && o->has_max)
            cg_printf(c, "%sif ((long long)%s > %lldLL) return es_gen_invalid(err, p, \"must be at most %lld\");\n", ind,
                      v, (long long)o->max, (long long)o->max);
        break;
    }
}

static void emit_validator(pkg *p, const cg_message *m)
{
    cg_out *c = p->c;
    cg_printf(c, "static int v_%s(const %s *m, es_gen_path *p, es_error *err)\n{\n    size_t mark;\n", m->c_lower,
              m->c_type);
    for (size_t i = 0; i < m->n_fields; i++) {
        const cg_field *f = &m->fields[i];
        const Es__FieldOptions *o = f->opt;
        int required = o && o->has_required && o->required;
        int has_checks = required || f->enum_type || (f->msg_type && cg_needs_validation(f->msg_type, 0)) ||
                         (o && (o->has_min_len || o->has_max_len || o->has_min || o->has_max ||
                                (o->pattern && o->pattern[0]) || o->has_uuid || o->has_max_items));
        if (!has_checks)
            continue;
        cg_printf(c, "    mark = es_gen_path_push(p, \"%s\");\n", f->name);
        if (f->repeated) {
            if (required)
                cg_printf(c, "    if (m->n_%s == 0) return es_gen_invalid(err, p, \"must have at least one item\");\n",
                          f->name);
            if (o && o->has_max_items && o->max_items)
                cg_printf(c, "    if (m->n_%s > %u) return es_gen_invalid(err, p, \"must have at most %u items\");\n",
                          f->name, o->max_items, o->max_items);
            cg_printf(c, "    for (size_t i = 0; i < m->n_%s; i++) {\n        size_t im = es_gen_path_index(p, i);\n",
                      f->name);
            char *v = cg_sprintf("m->%s[i]", f->name);
            emit_value_checks(p, m, f, v, "        ");
            free(v);
            cg_printf(c, "        es_gen_path_pop(p, im);\n    }\n");
        } else {
            if (required) {
                switch (f->fd->type) {
                case T(STRING):
                    cg_printf(c, "    if (!m->%s || !m->%s[0]) return es_gen_invalid(err, p, \"is required\");\n", f->name,
                              f->name);
                    break;
                case T(BYTES):
                    cg_printf(c, "    if (!m->%s.len) return es_gen_invalid(err, p, \"is required\");\n", f->name);
                    break;
                case T(MESSAGE):
                    cg_printf(c, "    if (!m->%s) return es_gen_invalid(err, p, \"is required\");\n", f->name);
                    break;
                case T(ENUM):
                    cg_printf(c, "    if (m->%s == 0) return es_gen_invalid(err, p, \"is required\");\n", f->name);
                    break;
                default:
                    cg_printf(c, "    if (%sm->%s == 0) return es_gen_invalid(err, p, \"is required\");\n",
                              f->has_presence ? cg_sprintf("!m->has_%s || ", f->name) : "", f->name);
                    break;
                }
            }
            char *v = cg_sprintf("m->%s", f->name);
            if (f->has_presence && o && (o->has_min || o->has_max)) {
                cg_printf(c, "    if (m->has_%s) {\n", f->name);
                emit_value_checks(p, m, f, v, "        ");
                cg_printf(c, "    }\n");
            } else {
                emit_value_checks(p, m, f, v, "    ");
            }
            free(v);
        }
        cg_printf(c, "    es_gen_path_pop(p, mark);\n");
    }
    cg_printf(c, "    (void)mark;\n    return ES_OK;\n}\n\n");
}

void cg_emit_validators(pkg *p)
{
    /* Prototypes first: validators of nested messages call each other in any order. */
    for (size_t i = 0; i < p->n_msgs; i++)
        if (cg_needs_validation(p->msgs[i], 0))
            cg_printf(p->c, "static int v_%s(const %s *m, es_gen_path *p, es_error *err);\n", p->msgs[i]->c_lower,
                      p->msgs[i]->c_type);
    cg_printf(p->c, "\n");
    for (size_t i = 0; i < p->n_msgs; i++) {
        const cg_message *m = p->msgs[i];
        if (!cg_needs_validation(m, 0))
            continue;
        emit_validator(p, m);
        cg_printf(p->c, "int %svalidate_%s(const ProtobufCMessage *msg, es_error *err)\n{\n"
                        "    es_gen_path path = {{0}, 0};\n    return v_%s((const %s *)msg, &path, err);\n}\n\n",
                  p->prefix, m->name, m->c_lower, m->c_type);
        cg_printf(p->h, "int %svalidate_%s(const ProtobufCMessage *msg, es_error *err);\n", p->prefix, m->name);
    }
}

/* ---- canonical ids ----------------------------------------------------------------------- */

/* 1 when m or a message field within it (same package) has a string field marked uuid. */
int cg_needs_canon(const pkg *p, const cg_message *m, int depth)
{
    if (depth > 32 || strcmp(m->file->package, p->package) != 0)
        return 0;
    for (size_t i = 0; i < m->n_fields; i++) {
        const cg_field *f = &m->fields[i];
        if (f->opt && f->opt->has_uuid && f->opt->uuid && f->fd->type == T(STRING))
            return 1;
        if (f->msg_type && f->msg_type != m && cg_needs_canon(p, f->msg_type, depth + 1))
            return 1;
    }
    return 0;
}

/* Canonicalisers rewrite every accepted spelling of a uuid field (any case, braces, urn:uuid:)
 * to the one stored form before authorization and validation, so that one order has one id
 * on every path (docs/ARCHITECTURE.md, "one identity"). */
void cg_emit_canonicalizers(pkg *p)
{
    for (size_t i = 0; i < p->n_msgs; i++)
        if (cg_needs_canon(p, p->msgs[i], 0))
            cg_printf(p->c, "static void k_%s(%s *m);\n", p->msgs[i]->c_lower, p->msgs[i]->c_type);
    cg_printf(p->c, "\n");
    for (size_t i = 0; i < p->n_msgs; i++) {
        const cg_message *m = p->msgs[i];
        if (!cg_needs_canon(p, m, 0))
            continue;
        cg_printf(p->c, "static void k_%s(%s *m)\n{\n", m->c_lower, m->c_type);
        for (size_t k = 0; k < m->n_fields; k++) {
            const cg_field *f = &m->fields[k];
            int is_uuid = f->opt && f->opt->has_uuid && f->opt->uuid && f->fd->type == T(STRING);
            int nested = f->msg_type && cg_needs_canon(p, f->msg_type, 0);
            if (!is_uuid && !nested)
                continue;
            if (f->repeated)
                cg_printf(p->c, "    for (size_t i = 0; i < m->n_%s; i++)\n        ", f->name);
            else
                cg_printf(p->c, "    ");
            const char *v = f->repeated ? cg_sprintf("m->%s[i]", f->name) : cg_sprintf("m->%s", f->name);
            if (is_uuid)
                cg_printf(p->c, "if (%s) es_uuid_canonicalize(%s);\n", v, v);
            else
                cg_printf(p->c, "if (%s) k_%s(%s);\n", v, f->msg_type->c_lower, v);
        }
        cg_printf(p->c, "}\n\n");
        cg_printf(p->c, "void %scanonicalize_%s(ProtobufCMessage *msg)\n{\n    k_%s((%s *)msg);\n}\n\n", p->prefix,
                  m->name, m->c_lower, m->c_type);
        cg_printf(p->h, "/* Rewrites the message's uuid fields to their canonical spelling (es_uuid_canonicalize). */\n"
                        "void %scanonicalize_%s(ProtobufCMessage *msg);\n", p->prefix, m->name);
    }
}

/* Messages from other packages that this package's validators call into are not supported:
 * rules are checked within a package. */
