/* Comments of .proto elements, from the source_code_info protoc passes to the plugin: the
 * descriptions of generated documents. */
#include "cg.h"

#include <stdlib.h>
#include <string.h>


/* The comment attached to the element at path in f ("" when none), one paragraph per blank line,
 * each line trimmed. */
char *cg_comment_at(const cg_file *f, const int32_t *path, size_t n)
{
    const Google__Protobuf__SourceCodeInfo *sci = f->fd->source_code_info;
    for (size_t i = 0; sci && i < sci->n_location; i++) {
        const Google__Protobuf__SourceCodeInfo__Location *l = sci->location[i];
        if (l->n_path != n || memcmp(l->path, path, n * sizeof *path) != 0)
            continue;
        const char *c = l->leading_comments && l->leading_comments[0] ? l->leading_comments : l->trailing_comments;
        if (!c)
            return cg_strdup("");
        cg_out *o = cg_scratch();
        int blank = 0;   /* a blank line since the last text: the next text starts a paragraph */
        while (*c) {
            const char *e = strchr(c, '\n');
            size_t len = e ? (size_t)(e - c) : strlen(c);
            while (len && (*c == ' ' || *c == '\t'))
                c++, len--;
            while (len && (c[len - 1] == ' ' || c[len - 1] == '\t' || c[len - 1] == '\r'))
                len--;
            if (!len) {
                blank = o->len > 0;
            } else {
                if (o->len)
                    cg_write(o, blank ? "\n\n" : " ", blank ? 2 : 1);
                cg_write(o, c, len);
                blank = 0;
            }
            c = e ? e + 1 : c + strlen(c);
        }
        return o->data ? o->data : cg_strdup("");
    }
    return cg_strdup("");
}

/* Writes the source path of message d (nested anywhere under msgs) into path; returns its length
 * or 0 when d is not there. tag is 4 for a file's messages, 3 for nested ones. */
static size_t message_path(cg_msg_proto *const *msgs, size_t n, int32_t tag, const cg_msg_proto *d, int32_t *path,
                           size_t depth)
{
    if (depth + 2 > 60)
        return 0;
    for (size_t i = 0; i < n; i++) {
        path[depth] = tag;
        path[depth + 1] = (int32_t)i;
        if (msgs[i] == d)
            return depth + 2;
        size_t k = message_path(msgs[i]->nested_type, msgs[i]->n_nested_type, 3, d, path, depth + 2);
        if (k)
            return k;
    }
    return 0;
}

size_t cg_enum_path(const cg_file *f, const cg_enum_proto *ed, int32_t *path)
{
    for (size_t i = 0; i < f->fd->n_enum_type; i++)
        if (f->fd->enum_type[i] == ed) {
            path[0] = 5;
            path[1] = (int32_t)i;
            return 2;
        }
    /* Nested: find the message that declares it. */
    for (size_t m = 0; m < f->fd->n_message_type; m++) {
        int32_t tmp[64];
        const cg_msg_proto *stack[32];
        size_t sp = 0;
        stack[sp++] = f->fd->message_type[m];
        while (sp) {
            const cg_msg_proto *d = stack[--sp];
            for (size_t e = 0; e < d->n_enum_type; e++)
                if (d->enum_type[e] == ed) {
                    size_t k = message_path(f->fd->message_type, f->fd->n_message_type, 4, d, tmp, 0);
                    if (!k)
                        return 0;
                    memcpy(path, tmp, k * sizeof *tmp);
                    path[k] = 4;
                    path[k + 1] = (int32_t)e;
                    return k + 2;
                }
            for (size_t k = 0; k < d->n_nested_type && sp < 32; k++)
                stack[sp++] = d->nested_type[k];
        }
    }
    return 0;
}

char *cg_message_comment(const cg_message *m)
{
    int32_t path[64];
    size_t n = message_path(m->file->fd->message_type, m->file->fd->n_message_type, 4, m->d, path, 0);
    return n ? cg_comment_at(m->file, path, n) : cg_strdup("");
}

char *cg_field_comment(const cg_message *m, const cg_field *f)
{
    int32_t path[66];
    size_t n = message_path(m->file->fd->message_type, m->file->fd->n_message_type, 4, m->d, path, 0);
    if (!n)
        return cg_strdup("");
    path[n] = 2;
    path[n + 1] = (int32_t)(f - m->fields);
    return cg_comment_at(m->file, path, n + 2);
}

