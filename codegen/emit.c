/* Output buffers and name conversions for protoc-gen-es. Memory is never freed: the plugin is a
 * short-lived process and aborts on out-of-memory. */
#include "cg.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (!p) {
        fputs("protoc-gen-es: out of memory\n", stderr);
        abort();
    }
    return p;
}

char *cg_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    return memcpy(xrealloc(NULL, n), s, n);
}

char *cg_sprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *p = xrealloc(NULL, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

cg_out *cg_open(cg_ctx *ctx, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *name = xrealloc(NULL, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(name, (size_t)n + 1, fmt, ap);
    va_end(ap);
    ctx->outs = xrealloc(ctx->outs, (ctx->n_outs + 1) * sizeof *ctx->outs);
    cg_out *o = cg_scratch();
    o->name = name;
    ctx->outs[ctx->n_outs++] = o;
    return o;
}

cg_out *cg_scratch(void)
{
    cg_out *o = xrealloc(NULL, sizeof *o);
    memset(o, 0, sizeof *o);
    return o;
}

void cg_write(cg_out *o, const void *p, size_t n)
{
    if (o->len + n + 1 > o->cap) {
        size_t cap = o->cap ? o->cap : 4096;
        while (cap < o->len + n + 1)
            cap *= 2;
        o->data = xrealloc(o->data, cap);
        o->cap = cap;
    }
    memcpy(o->data + o->len, p, n);
    o->len += n;
    o->data[o->len] = 0;
}

void cg_printf(cg_out *o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *tmp = xrealloc(NULL, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(tmp, (size_t)n + 1, fmt, ap);
    va_end(ap);
    cg_write(o, tmp, (size_t)n);
    free(tmp);
}

char *cg_camel_to_lower(const char *s)
{
    size_t n = strlen(s);
    char *out = xrealloc(NULL, 2 * n + 1), *p = out;
    for (size_t i = 0; i < n; i++) {
        if (isupper((unsigned char)s[i]) && i > 0)
            *p++ = '_';
        *p++ = (char)tolower((unsigned char)s[i]);
    }
    *p = 0;
    return out;
}

char *cg_to_upper(const char *s)
{
    char *out = cg_strdup(s);
    for (char *p = out; *p; p++)
        *p = (char)toupper((unsigned char)*p);
    return out;
}

void cg_c_string(cg_out *o, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            cg_printf(o, "\\%c", c);
        else if (c == '\n')
            cg_printf(o, "\\n");
        else if (c < 0x20 || c >= 0x7f)
            cg_printf(o, "\\%03o", c);
        else
            cg_write(o, s, 1);
    }
}

char *cg_json_name(const char *s)
{
    char *out = cg_strdup(s), *p = out;
    int upper = 0;
    for (; *s; s++) {
        if (*s == '_') {
            upper = 1;
        } else if (upper) {
            *p++ = (char)toupper((unsigned char)*s);
            upper = 0;
        } else {
            *p++ = *s;
        }
    }
    *p = 0;
    return out;
}
