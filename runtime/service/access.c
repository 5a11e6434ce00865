/* Access rules: see es/access.h. */
#include "es/access.h"

#include <stdio.h>
#include <string.h>

static char **string_field(ProtobufCMessage *m, const char *name)
{
    const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(m->descriptor, name);
    if (!f || f->type != PROTOBUF_C_TYPE_STRING || f->label == PROTOBUF_C_LABEL_REPEATED)
        return NULL;
    return (char **)((char *)m + f->offset);
}

static int denied(es_error *err, const es_call *call, const char *role, const char *principal, const char *what)
{
    return es_error_set(err, ES_PERMISSION_DENIED, "", "%s %s may not call %s%s", role, principal, call->method->name,
                        what);
}

static int owner_check(es_pipeline *p, es_call *call, const es_access_rule *r, const char *role, const char *principal,
                       es_error *err)
{
    const es_method_def *m = call->method;
    char **idp = m->target && m->target_field ? string_field(call->request, m->target_field) : NULL;
    if (!idp || !*idp || !(*idp)[0])
        return ES_OK; /* nothing targeted: validation answers */
    ProtobufCMessage *st = NULL;
    int64_t v;
    int rc = es_pipeline_load(p, m->target, *idp, &st, &v, err);
    if (rc == ES_NOT_FOUND || rc == ES_INVALID_ARGUMENT)
        return ES_OK; /* answered as to the owner: not found / bad id */
    if (rc)
        return rc;
    char **owner = string_field(st, r->owner_field);
    int ok = owner && *owner && strcmp(*owner, principal) == 0;
    protobuf_c_message_free_unpacked(st, NULL);
    if (ok)
        return ES_OK;
    char what[96];
    snprintf(what, sizeof what, " on this %s", m->target->name);
    return denied(err, call, role, principal, what);
}

int es_access_check(es_pipeline *pipeline, es_call *call, const char *role, const char *principal, es_error *err)
{
    const es_method_def *m = call->method;
    for (size_t i = 0; i < m->n_access; i++) {
        const es_access_rule *r = &m->access[i];
        if (strcmp(r->role, role) != 0)
            continue;
        switch (r->kind) {
        case ES_ACCESS_ANY:
            return ES_OK;
        case ES_ACCESS_SELF: {
            char **f = string_field(call->request, r->self_field);
            if (!f)
                return es_error_set(err, ES_INTERNAL, "", "%s: no string field %s", m->name, r->self_field);
            if (*f && (*f)[0] && strcmp(*f, principal) != 0)
                return es_error_set(err, ES_PERMISSION_DENIED, r->self_field, "%s %s may only call %s with %s = %s", role,
                                    principal, m->name, r->self_field, principal);
            if (!*f || !(*f)[0])
                *f = es_arena_strdup(&call->arena, principal);
            return ES_OK;
        }
        case ES_ACCESS_OWNER:
            return owner_check(pipeline, call, r, role, principal, err);
        }
    }
    return denied(err, call, role, principal, "");
}
