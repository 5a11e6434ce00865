/* The JSON tree of generated documents: see json_tree.h. */
#include "json_tree.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


jv *j_new(jkind k)
{
    jv *v = calloc(1, sizeof *v);
    if (!v)
        abort();
    v->kind = k;
    return v;
}

jv *j_obj(void) { return j_new(J_OBJ); }
jv *j_arr(void) { return j_new(J_ARR); }

jv *j_str(const char *s)
{
    jv *v = j_new(J_STR);
    v->s = cg_strdup(s);
    return v;
}

jv *j_raw(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    jv *v = j_new(J_RAW);
    v->s = malloc((size_t)n + 1);
    if (!v->s)
        abort();
    va_start(ap, fmt);
    vsnprintf(v->s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return v;
}

void j_grow(jv *c)
{
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 8;
        c->vals = realloc(c->vals, c->cap * sizeof *c->vals);
        c->keys = realloc(c->keys, c->cap * sizeof *c->keys);
        if (!c->vals || !c->keys)
            abort();
    }
}

jv *j_get(const jv *o, const char *key)
{
    for (size_t i = 0; o && i < o->n; i++)
        if (strcmp(o->keys[i], key) == 0)
            return o->vals[i];
    return NULL;
}

/* Sets key (replacing an earlier value in place) and returns v. */
jv *j_put(jv *o, const char *key, jv *v)
{
    for (size_t i = 0; i < o->n; i++)
        if (strcmp(o->keys[i], key) == 0)
            return o->vals[i] = v;
    j_grow(o);
    o->keys[o->n] = cg_strdup(key);
    o->vals[o->n++] = v;
    return v;
}

/* A new object holding the one member key: v. */
jv *j_kv(const char *key, jv *v)
{
    jv *o = j_obj();
    j_put(o, key, v);
    return o;
}

/* Removes key from o (the value is leaked: the plugin is a short-lived process). */
void j_del(jv *o, const char *key)
{
    for (size_t i = 0; i < o->n; i++)
        if (strcmp(o->keys[i], key) == 0) {
            memmove(&o->keys[i], &o->keys[i + 1], (o->n - i - 1) * sizeof *o->keys);
            memmove(&o->vals[i], &o->vals[i + 1], (o->n - i - 1) * sizeof *o->vals);
            o->n--;
            return;
        }
}

jv *j_push(jv *a, jv *v)
{
    j_grow(a);
    a->keys[a->n] = NULL;
    a->vals[a->n++] = v;
    return v;
}

void j_string(cg_out *o, const char *s)
{
    cg_write(o, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            cg_printf(o, "\\%c", c);
        else if (c == '\n')
            cg_write(o, "\\n", 2);
        else if (c == '\t')
            cg_write(o, "\\t", 2);
        else if (c < 0x20)
            cg_printf(o, "\\u%04x", c);
        else
            cg_write(o, s, 1);
    }
    cg_write(o, "\"", 1);
}

/* Length of v printed on one line, or -1 when it holds a container (those get their own lines). */
long j_flat_len(const jv *v, int top)
{
    if (v->kind == J_STR)
        return (long)strlen(v->s) + 2;
    if (v->kind == J_RAW)
        return (long)strlen(v->s);
    if (v->n == 0)
        return 2;
    if (!top)
        return -1;
    long n = 2;
    for (size_t i = 0; i < v->n; i++) {
        long k = j_flat_len(v->vals[i], 0);
        if (k < 0)
            return -1;
        n += k + 2 + (v->keys[i] ? (long)strlen(v->keys[i]) + 4 : 0);
    }
    return n;
}

/* Pretty-prints with two-space indentation; short containers of scalars stay on one line so the
 * document reads (and diffs) like a hand-written one. */
void j_print(cg_out *o, const jv *v, int indent)
{
    if (v->kind == J_STR) {
        j_string(o, v->s);
        return;
    }
    if (v->kind == J_RAW) {
        cg_printf(o, "%s", v->s);
        return;
    }
    const char *open = v->kind == J_OBJ ? "{" : "[", *close = v->kind == J_OBJ ? "}" : "]";
    long flat = j_flat_len(v, 1);
    int inline_ = v->n == 0 || (flat >= 0 && flat + indent <= 100);
    cg_printf(o, "%s", open);
    for (size_t i = 0; i < v->n; i++) {
        if (inline_)
            cg_printf(o, "%s", i ? ", " : "");
        else
            cg_printf(o, "%s\n%*s", i ? "," : "", indent + 2, "");
        if (v->kind == J_OBJ) {
            j_string(o, v->keys[i]);
            cg_write(o, ": ", 2);
        }
        j_print(o, v->vals[i], indent + 2);
    }
    if (!inline_)
        cg_printf(o, "\n%*s", indent, "");
    cg_printf(o, "%s", close);
}

