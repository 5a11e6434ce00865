/* Support routines for generated code; see es/gen.h. */
#include "es/gen.h"
#include "es/arena.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void es_gen_set_string(char **dst, const char *src)
{
    if (*dst && *dst != protobuf_c_empty_string)
        free(*dst);
    *dst = (src && src[0]) ? es_xstrdup(src) : (char *)protobuf_c_empty_string;
}

void es_gen_set_bytes(ProtobufCBinaryData *dst, ProtobufCBinaryData src)
{
    free(dst->data);
    dst->len = src.len;
    dst->data = src.len ? memcpy(es_xmalloc(src.len), src.data, src.len) : NULL;
}

static ProtobufCMessage *deep_copy(const ProtobufCMessage *src)
{
    size_t n = protobuf_c_message_get_packed_size(src);
    uint8_t stackbuf[512], *buf = n <= sizeof stackbuf ? stackbuf : es_xmalloc(n);
    protobuf_c_message_pack(src, buf);
    ProtobufCMessage *m = protobuf_c_message_unpack(src->descriptor, NULL, n, buf);
    if (buf != stackbuf)
        free(buf);
    if (!m)
        es_oom(); /* a message we just packed always unpacks; failure means allocation failed */
    return m;
}

void es_gen_set_message(ProtobufCMessage **dst, const ProtobufCMessage *src)
{
    if (*dst)
        protobuf_c_message_free_unpacked(*dst, NULL);
    *dst = src ? deep_copy(src) : NULL;
}

void es_gen_set_repeated_message(size_t *n_dst, void *dst_array, size_t n_src, const void *src_array)
{
    ProtobufCMessage ***dst = dst_array;
    ProtobufCMessage *const *src = *(ProtobufCMessage *const *const *)&src_array;
    for (size_t i = 0; i < *n_dst; i++)
        protobuf_c_message_free_unpacked((*dst)[i], NULL);
    free(*dst);
    *dst = n_src ? es_xmalloc(n_src * sizeof **dst) : NULL;
    for (size_t i = 0; i < n_src; i++)
        (*dst)[i] = deep_copy(src[i]);
    *n_dst = n_src;
}

void es_gen_set_repeated_string(size_t *n_dst, char ***dst, size_t n_src, char *const *src)
{
    for (size_t i = 0; i < *n_dst; i++)
        free((*dst)[i]);
    free(*dst);
    *dst = n_src ? es_xmalloc(n_src * sizeof **dst) : NULL;
    for (size_t i = 0; i < n_src; i++)
        (*dst)[i] = es_xstrdup(src[i]);
    *n_dst = n_src;
}

void es_gen_set_repeated_scalar(size_t *n_dst, void *dst_array, size_t n_src, const void *src, size_t elem_size)
{
    void **dst = dst_array;
    free(*dst);
    *dst = n_src ? memcpy(es_xmalloc(n_src * elem_size), src, n_src * elem_size) : NULL;
    *n_dst = n_src;
}

size_t es_gen_path_push(es_gen_path *p, const char *field)
{
    size_t mark = p->len;
    int n = snprintf(p->buf + p->len, sizeof p->buf - p->len, "%s%s", p->len ? "." : "", field);
    if (n > 0)
        p->len = p->len + (size_t)n < sizeof p->buf ? p->len + (size_t)n : sizeof p->buf - 1;
    return mark;
}

size_t es_gen_path_index(es_gen_path *p, size_t index)
{
    size_t mark = p->len;
    int n = snprintf(p->buf + p->len, sizeof p->buf - p->len, "[%zu]", index);
    if (n > 0)
        p->len = p->len + (size_t)n < sizeof p->buf ? p->len + (size_t)n : sizeof p->buf - 1;
    return mark;
}

void es_gen_path_pop(es_gen_path *p, size_t mark)
{
    p->len = mark;
    p->buf[mark] = 0;
}

int es_gen_invalid(es_error *err, const es_gen_path *p, const char *fmt, ...)
{
    if (err) {
        char msg[300];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        es_error_set(err, ES_INVALID_ARGUMENT, p->buf, "%s %s", p->buf, msg);
    }
    return ES_INVALID_ARGUMENT;
}

size_t es_gen_utf8_len(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xc0) != 0x80)
            n++;
    return n;
}

int es_gen_regex_match(es_gen_regex *r, const char *s)
{
    pthread_mutex_lock(&r->lock);
    if (r->state == 0)
        r->state = regcomp(&r->re, r->pattern, REG_EXTENDED | REG_NOSUB) == 0 ? 1 : -1;
    pthread_mutex_unlock(&r->lock);
    return r->state == 1 && regexec(&r->re, s, 0, NULL, 0) == 0;
}

const char *es_gen_enum_name(const ProtobufCEnumDescriptor *d, int v)
{
    const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(d, v);
    if (ev)
        return ev->name;
    static __thread char buf[32];
    snprintf(buf, sizeof buf, "UNKNOWN(%d)", v);
    return buf;
}

const char *es_gen_enum_short(const ProtobufCEnumDescriptor *d, int v, size_t prefix)
{
    const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(d, v);
    if (ev && strlen(ev->name) > prefix)
        return ev->name + prefix;
    return es_gen_enum_name(d, v);
}
