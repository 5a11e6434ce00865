/* Builds the plugin's model from the CodeGeneratorRequest: every message, enum and service of
 * every file (imports included, for type resolution), with the es options and google.api.http
 * decoded from the options' unknown fields. */
#include "cg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXT_AGGREGATE 51001
#define EXT_EVENT 51002
#define EXT_COMMAND 51003
#define EXT_PROJECTION 51004
#define EXT_FIELD 51010
#define EXT_HTTP 72295728
#define EXT_ACCESS 51005

int cg_fail(cg_ctx *ctx, const char *fmt, ...)
{
    if (!ctx->error) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(NULL, 0, fmt, ap);
        va_end(ap);
        ctx->error = malloc((size_t)n + 1);
        va_start(ap, fmt);
        vsnprintf(ctx->error, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    return -1;
}

const char *cg_file_basename(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* Decodes extension `tag` of an options message (a length-delimited message extension kept by
 * protobuf-c as unknown fields: data starts with the varint length). Several occurrences merge
 * by concatenation, as protobuf's merge semantics say. */
static ProtobufCMessage *ext_unpack(const ProtobufCMessage *opts, uint32_t tag,
                                    const ProtobufCMessageDescriptor *d)
{
    if (!opts)
        return NULL;
    uint8_t *buf = NULL;
    size_t len = 0;
    int found = 0;
    for (unsigned i = 0; i < opts->n_unknown_fields; i++) {
        const ProtobufCMessageUnknownField *u = &opts->unknown_fields[i];
        if (u->tag != tag || u->wire_type != PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED)
            continue;
        size_t k = 0;
        while (k < u->len && (u->data[k] & 0x80))
            k++;
        k++;
        if (k > u->len)
            continue;
        buf = realloc(buf, len + (u->len - k) + 1);
        memcpy(buf + len, u->data + k, u->len - k);
        len += u->len - k;
        found = 1;
    }
    if (!found)
        return NULL;
    ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, len, buf);
    free(buf);
    return m;
}

static char *join_c(const char *full, int lower)
{
    /* "orders.v1.OrderPlaced" -> "Orders__V1__OrderPlaced" / "orders__v1__order_placed" */
    char *out = cg_strdup(""), *copy = cg_strdup(full);
    char *save = NULL;
    for (char *tok = strtok_r(copy, ".", &save); tok; tok = strtok_r(NULL, ".", &save)) {
        char *part = lower ? cg_camel_to_lower(tok) : cg_strdup(tok);
        if (!lower && part[0] >= 'a' && part[0] <= 'z')
            part[0] = (char)(part[0] - 'a' + 'A');
        char *n = cg_sprintf("%s%s%s", out, out[0] ? "__" : "", part);
        free(out);
        free(part);
        out = n;
    }
    free(copy);
    return out;
}

static void add_enum(cg_model *m, cg_file *f, const cg_enum_proto *ed, const char *scope)
{
    cg_enum *e = calloc(1, sizeof *e);
    e->ed = ed;
    e->file = f;
    e->full = cg_sprintf("%s.%s", scope, ed->name);
    e->c_lower = join_c(e->full, 1);
    e->c_upper = cg_to_upper(e->c_lower);
    /* Common prefix of the value names, cut at an underscore ("ORDER_STATUS_"). */
    size_t plen = ed->n_value ? strlen(ed->value[0]->name) : 0;
    for (size_t i = 1; i < ed->n_value; i++) {
        size_t k = 0;
        while (k < plen && ed->value[i]->name[k] == ed->value[0]->name[k])
            k++;
        plen = k;
    }
    while (plen && ed->n_value && ed->value[0]->name[plen - 1] != '_')
        plen--;
    e->prefix = ed->n_value > 1 ? strndup(ed->value[0]->name, plen) : "";
    m->enums = realloc(m->enums, (m->n_enums + 1) * sizeof *m->enums);
    m->enums[m->n_enums++] = e;
}

static void add_message(cg_model *m, cg_file *f, const cg_msg_proto *d, const char *scope)
{
    cg_message *msg = calloc(1, sizeof *msg);
    msg->d = d;
    msg->file = f;
    msg->name = d->name;
    msg->full = cg_sprintf("%s.%s", scope, d->name);
    msg->c_type = join_c(msg->full, 0);
    msg->c_lower = join_c(msg->full, 1);
    msg->map_entry = d->options && d->options->has_map_entry && d->options->map_entry;
    const ProtobufCMessage *o = d->options ? &d->options->base : NULL;
    msg->agg = (Es__AggregateOptions *)ext_unpack(o, EXT_AGGREGATE, &es__aggregate_options__descriptor);
    msg->event = (Es__EventOptions *)ext_unpack(o, EXT_EVENT, &es__event_options__descriptor);
    msg->cmd = (Es__CommandOptions *)ext_unpack(o, EXT_COMMAND, &es__command_options__descriptor);
    msg->proj = (Es__ProjectionOptions *)ext_unpack(o, EXT_PROJECTION, &es__projection_options__descriptor);
    msg->n_fields = d->n_field;
    msg->fields = calloc(d->n_field ? d->n_field : 1, sizeof *msg->fields);
    for (size_t i = 0; i < d->n_field; i++) {
        cg_field *fl = &msg->fields[i];
        fl->fd = d->field[i];
        fl->name = d->field[i]->name;
        fl->repeated = d->field[i]->label == GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__LABEL__LABEL_REPEATED;
        fl->opt = (Es__FieldOptions *)ext_unpack(d->field[i]->options ? &d->field[i]->options->base : NULL,
                                                 EXT_FIELD, &es__field_options__descriptor);
    }
    m->messages = realloc(m->messages, (m->n_messages + 1) * sizeof *m->messages);
    m->messages[m->n_messages++] = msg;
    for (size_t i = 0; i < d->n_nested_type; i++)
        add_message(m, f, d->nested_type[i], msg->full);
    for (size_t i = 0; i < d->n_enum_type; i++)
        add_enum(m, f, d->enum_type[i], msg->full);
}

cg_message *cg_find_message(const cg_model *m, const char *full)
{
    if (full[0] == '.')
        full++;
    for (size_t i = 0; i < m->n_messages; i++)
        if (strcmp(m->messages[i]->full, full) == 0)
            return m->messages[i];
    return NULL;
}

cg_enum *cg_find_enum(const cg_model *m, const char *full)
{
    if (full[0] == '.')
        full++;
    for (size_t i = 0; i < m->n_enums; i++)
        if (strcmp(m->enums[i]->full, full) == 0)
            return m->enums[i];
    return NULL;
}

cg_field *cg_find_field(const cg_message *m, const char *name)
{
    for (size_t i = 0; i < m->n_fields; i++)
        if (strcmp(m->fields[i].name, name) == 0)
            return &m->fields[i];
    return NULL;
}

int cg_enum_value(const cg_enum *e, const char *name, const char **full_name)
{
    for (size_t i = 0; i < e->ed->n_value; i++) {
        const char *v = e->ed->value[i]->name;
        size_t pl = strlen(e->prefix);
        if (strcmp(v, name) == 0 || (strncmp(v, e->prefix, pl) == 0 && strcmp(v + pl, name) == 0)) {
            if (full_name)
                *full_name = v;
            return e->ed->value[i]->number;
        }
    }
    return -1;
}

int cg_model_load(cg_ctx *ctx, const Google__Protobuf__Compiler__CodeGeneratorRequest *req)
{
    cg_model *m = &ctx->model;
    m->req = req;
    m->n_files = req->n_proto_file;
    m->files = calloc(m->n_files ? m->n_files : 1, sizeof *m->files);
    for (size_t i = 0; i < req->n_proto_file; i++) {
        cg_file *f = &m->files[i];
        f->fd = req->proto_file[i];
        f->name = f->fd->name;
        f->package = f->fd->package ? f->fd->package : "";
        for (size_t j = 0; j < req->n_file_to_generate; j++)
            if (strcmp(req->file_to_generate[j], f->name) == 0)
                f->generate = 1;
        for (size_t j = 0; j < f->fd->n_message_type; j++)
            add_message(m, f, f->fd->message_type[j], f->package);
        for (size_t j = 0; j < f->fd->n_enum_type; j++)
            add_enum(m, f, f->fd->enum_type[j], f->package);
    }
    /* Resolve field types once every message and enum is known. */
    for (size_t i = 0; i < m->n_messages; i++) {
        cg_message *msg = m->messages[i];
        int proto2 = !msg->file->fd->syntax || strcmp(msg->file->fd->syntax, "proto3") != 0;
        for (size_t k = 0; k < msg->n_fields; k++) {
            cg_field *fl = &msg->fields[k];
            if (fl->fd->type == GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_MESSAGE)
                fl->msg_type = cg_find_message(m, fl->fd->type_name);
            else if (fl->fd->type == GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_ENUM)
                fl->enum_type = cg_find_enum(m, fl->fd->type_name);
            fl->has_presence = proto2 && !fl->repeated && !fl->msg_type &&
                               fl->fd->type != GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_STRING &&
                               fl->fd->type != GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_BYTES;
        }
    }
    for (size_t i = 0; i < m->n_files; i++) {
        cg_file *f = &m->files[i];
        for (size_t j = 0; j < f->fd->n_service; j++) {
            const Google__Protobuf__ServiceDescriptorProto *sd = f->fd->service[j];
            cg_service *s = calloc(1, sizeof *s);
            s->sd = sd;
            s->file = f;
            s->full = cg_sprintf("%s.%s", f->package, sd->name);
            s->n_methods = sd->n_method;
            s->methods = calloc(sd->n_method ? sd->n_method : 1, sizeof *s->methods);
            for (size_t k = 0; k < sd->n_method; k++) {
                cg_method *me = &s->methods[k];
                me->md = sd->method[k];
                me->name = me->md->name;
                me->input = cg_find_message(m, me->md->input_type);
                me->output = cg_find_message(m, me->md->output_type);
                me->http = (Google__Api__HttpRule *)ext_unpack(
                    me->md->options ? &me->md->options->base : NULL, EXT_HTTP, &google__api__http_rule__descriptor);
                me->access = (Es__AccessOptions *)ext_unpack(me->md->options ? &me->md->options->base : NULL, EXT_ACCESS,
                                                             &es__access_options__descriptor);
            }
            m->services = realloc(m->services, (m->n_services + 1) * sizeof *m->services);
            m->services[m->n_services++] = s;
        }
    }
    return 0;
}

size_t cg_package_messages(const cg_model *m, const char *package, cg_message ***out)
{
    size_t n = 0;
    *out = calloc(m->n_messages ? m->n_messages : 1, sizeof **out);
    for (size_t i = 0; i < m->n_messages; i++)
        if (strcmp(m->messages[i]->file->package, package) == 0 && !m->messages[i]->map_entry)
            (*out)[n++] = m->messages[i];
    return n;
}
