/* The JSON tokenizer and tree builder of the proto3 JSON codec.
 *
 * Why our own and not a library (libraries are preferred): proto3 JSON needs the number
 * lexeme exactly as written, and the libraries at hand throw it away. jansson parses integers
 * into json_int_t (int64) and rejects anything above INT64_MAX, so uint64 max
 * (18446744073709551615) cannot be read exactly, and it turns 1e5 into a real so "integral
 * exponent" forms need a double round trip that loses exactness beyond 2^53. json-c silently keeps
 * the last of duplicate keys, where proto3 JSON requires an error, and also converts numbers
 * before we can look at them. Both are tree parsers anyway, so the tree here costs nothing more.
 * This file is small, bounded and fuzzed: it never recurses deeper than max_depth, never reads
 * past len, and allocates only from the scratch arena it is given.
 *
 * What it guarantees to the walker: exactly one value with only whitespace around it; strings
 * are valid UTF-8 after unescaping (lone surrogates rejected), numbers match RFC 8259, object keys
 * are unique. A syntax error inside a member names where it is in err->field, as the keys and
 * indices were written ("items[0].title"), so that a client learns which field to fix. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_internal.h"
#include "es/hex.h"
#include "es/utf8.h"

/* One level of the path to the value being parsed: an object member (key) or array element. */
typedef struct path_level {
    const char *key;     /* NULL: an array element */
    size_t klen, index;
    int active;          /* the member's value is being parsed */
} path_level;

typedef struct parser {
    const char *start, *p, *end;
    es_arena *a;
    size_t depth, max_depth;
    /* One stack shared by every open container: children are pushed while a container is
     * open and moved into the arena when it closes. */
    es__json_value **stack;
    const char **kstack;
    size_t *klstack;
    size_t sn, scap;
    path_level *path;    /* path[d - 1]: the member being parsed in the container at depth d */
    size_t path_cap;
    es_error *err;
} parser;

/* Writes the path of the members being parsed, outermost first, into out (truncated to cap). */
static void format_path(const parser *ps, size_t levels, char *out, size_t cap)
{
    size_t n = 0;
    out[0] = '\0';
    for (size_t i = 0; i < levels && i < ps->path_cap && ps->path[i].active && n + 1 < cap; i++) {
        const path_level *l = &ps->path[i];
        int w = l->key ? snprintf(out + n, cap - n, "%s%.*s", n ? "." : "", (int)(l->klen > 100 ? 100 : l->klen), l->key)
                       : snprintf(out + n, cap - n, "[%zu]", l->index);
        if (w < 0)
            break;
        n += (size_t)w;
        if (n >= cap)
            n = cap - 1;
    }
}

static int fail(parser *ps, const char *what)
{
    char field[sizeof ps->err->field];
    if (!ps->err)
        return ES_INVALID_ARGUMENT;
    format_path(ps, ps->depth, field, sizeof field);
    es_error_set(ps->err, ES_INVALID_ARGUMENT, field, "invalid JSON at offset %zu: %s",
                 (size_t)(ps->p - ps->start), what);
    return ES_INVALID_ARGUMENT;
}

/* The path entry of the container at the current depth (grown on demand). */
static path_level *level(parser *ps)
{
    if (ps->depth > ps->path_cap) {
        size_t cap = ps->path_cap ? ps->path_cap * 2 : 16;
        while (cap < ps->depth)
            cap *= 2;
        ps->path = es_xrealloc(ps->path, cap * sizeof *ps->path);
        memset(ps->path + ps->path_cap, 0, (cap - ps->path_cap) * sizeof *ps->path);
        ps->path_cap = cap;
    }
    return &ps->path[ps->depth - 1];
}

static void skip_ws(parser *ps)
{
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
        ps->p++;
}

static void push(parser *ps, es__json_value *v, const char *key, size_t klen)
{
    if (ps->sn == ps->scap) {
        ps->scap = ps->scap ? ps->scap * 2 : 64;
        ps->stack = es_xrealloc(ps->stack, ps->scap * sizeof *ps->stack);
        ps->kstack = es_xrealloc(ps->kstack, ps->scap * sizeof *ps->kstack);
        ps->klstack = es_xrealloc(ps->klstack, ps->scap * sizeof *ps->klstack);
    }
    ps->stack[ps->sn] = v;
    ps->kstack[ps->sn] = key;
    ps->klstack[ps->sn] = klen;
    ps->sn++;
}

static int read_hex4(parser *ps, unsigned *out)
{
    unsigned v = 0;
    if (ps->end - ps->p < 4) return -1;
    for (int i = 0; i < 4; i++) {
        int h = es_hex_value((unsigned char)ps->p[i]);
        if (h < 0) return -1;
        v = v * 16 + (unsigned)h;
    }
    ps->p += 4;
    *out = v;
    return 0;
}

/* At the opening quote. Unescaped output is never longer than the input, so one allocation of
 * the remaining length bound suffices; we first find the closing quote to size it. */
static int lex_string(parser *ps, const char **out, size_t *out_len)
{
    const char *q = ++ps->p;
    while (q < ps->end && *q != '"') q += (*q == '\\' && q + 1 < ps->end) ? 2 : 1;
    if (q >= ps->end) return fail(ps, "unterminated string");
    char *buf = es_arena_alloc(ps->a, (size_t)(q - ps->p) + 1);
    size_t o = 0;
    while (ps->p < q) {
        unsigned char c = (unsigned char)*ps->p;
        if (c == '\\') {
            ps->p++;
            char e = *ps->p++;
            switch (e) {
            case '"': buf[o++] = '"'; break;
            case '\\': buf[o++] = '\\'; break;
            case '/': buf[o++] = '/'; break;
            case 'b': buf[o++] = '\b'; break;
            case 'f': buf[o++] = '\f'; break;
            case 'n': buf[o++] = '\n'; break;
            case 'r': buf[o++] = '\r'; break;
            case 't': buf[o++] = '\t'; break;
            case 'u': {
                unsigned cp, lo;
                if (read_hex4(ps, &cp) < 0) return fail(ps, "bad \\u escape");
                if (cp >= 0xDC00 && cp <= 0xDFFF) return fail(ps, "lone low surrogate in \\u escape");
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    if (ps->end - ps->p < 6 || ps->p[0] != '\\' || ps->p[1] != 'u')
                        return fail(ps, "high surrogate not followed by a low surrogate");
                    ps->p += 2;
                    if (read_hex4(ps, &lo) < 0) return fail(ps, "bad \\u escape");
                    if (lo < 0xDC00 || lo > 0xDFFF)
                        return fail(ps, "high surrogate not followed by a low surrogate");
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                }
                o += es_utf8_put(buf + o, cp);
                break;
            }
            default:
                ps->p--;
                return fail(ps, "bad escape in string");
            }
        } else if (c < 0x20) {
            return fail(ps, "control character in string");
        } else if (c < 0x80) {
            buf[o++] = (char)c;
            ps->p++;
        } else {
            size_t k = es_utf8_seq(ps->p, (size_t)(q - ps->p));
            if (!k) return fail(ps, "invalid UTF-8 in string");
            memcpy(buf + o, ps->p, k);
            o += k;
            ps->p += k;
        }
    }
    ps->p = q + 1;
    buf[o] = '\0';
    *out = buf;
    *out_len = o;
    return 0;
}

static int lex_number(parser *ps, es__json_value *v)
{
    const char *s = ps->p;
    if (ps->p < ps->end && *ps->p == '-') ps->p++;
    if (ps->p >= ps->end) return fail(ps, "bad number");
    if (*ps->p == '0') {
        ps->p++;
    } else if (*ps->p >= '1' && *ps->p <= '9') {
        while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') ps->p++;
    } else {
        return fail(ps, "bad number");
    }
    if (ps->p < ps->end && *ps->p == '.') {
        ps->p++;
        if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9') return fail(ps, "bad number fraction");
        while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') ps->p++;
    }
    if (ps->p < ps->end && (*ps->p == 'e' || *ps->p == 'E')) {
        ps->p++;
        if (ps->p < ps->end && (*ps->p == '+' || *ps->p == '-')) ps->p++;
        if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9') return fail(ps, "bad number exponent");
        while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') ps->p++;
    }
    v->kind = ES__JSON_NUMBER;
    v->str = s;
    v->len = (size_t)(ps->p - s);
    return 0;
}

static int lit(parser *ps, const char *word, es__json_value *v, es__json_kind k)
{
    size_t n = strlen(word);
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0) return fail(ps, "unexpected token");
    ps->p += n;
    v->kind = k;
    return 0;
}

static int key_cmp(const void *a, const void *b, const size_t *la, const size_t *lb)
{
    size_t n = *la < *lb ? *la : *lb;
    int c = memcmp(a, b, n);
    return c ? c : (*la > *lb) - (*la < *lb);
}

/* qsort over indices needs the key arrays; a file-level pointer is not thread-safe, so sort
 * (index, key, len) triples instead. */
typedef struct key_ref { const char *k; size_t len; } key_ref;
static int key_ref_cmp(const void *a, const void *b)
{
    const key_ref *x = a, *y = b;
    return key_cmp(x->k, y->k, &x->len, &y->len);
}

/* Called with ps->depth already back at the object's parent level, so the path names the object;
 * the duplicated key is appended to it. */
static int check_duplicates(parser *ps, es__json_value *obj)
{
    size_t n = obj->n;
    key_ref dup;
    if (n < 2) return 0;
    if (n <= 16) {
        for (size_t i = 0; i < n; i++)
            for (size_t j = i + 1; j < n; j++)
                if (!key_cmp(obj->keys[i], obj->keys[j], &obj->key_lens[i], &obj->key_lens[j])) {
                    dup = (key_ref){obj->keys[i], obj->key_lens[i]};
                    goto dup;
                }
        return 0;
    }
    key_ref *refs = es_arena_alloc(ps->a, n * sizeof *refs);
    for (size_t i = 0; i < n; i++) refs[i] = (key_ref){obj->keys[i], obj->key_lens[i]};
    qsort(refs, n, sizeof *refs, key_ref_cmp);
    for (size_t i = 1; i < n; i++)
        if (!key_ref_cmp(&refs[i - 1], &refs[i])) {
            dup = refs[i];
            goto dup;
        }
    return 0;
dup:
    if (ps->err) {
        char field[sizeof ps->err->field];
        format_path(ps, ps->depth, field, sizeof field);
        size_t fl = strlen(field);
        snprintf(field + fl, sizeof field - fl, "%s%.*s", fl ? "." : "", (int)(dup.len > 100 ? 100 : dup.len), dup.k);
        es_error_set(ps->err, ES_INVALID_ARGUMENT, field, "invalid JSON: duplicate key \"%.100s\" in object at offset %zu",
                     field, obj->offset);
    }
    return ES_INVALID_ARGUMENT;
}

static int parse_value(parser *ps, es__json_value **out);

static void close_container(parser *ps, es__json_value *v, size_t base, int with_keys)
{
    v->n = ps->sn - base;
    if (!v->n) return;   /* the walkers never index an empty container */
    v->items = es_arena_alloc(ps->a, v->n * sizeof *v->items);
    memcpy(v->items, ps->stack + base, v->n * sizeof *v->items);
    if (with_keys) {
        v->keys = es_arena_alloc(ps->a, v->n * sizeof *v->keys);
        v->key_lens = es_arena_alloc(ps->a, v->n * sizeof *v->key_lens);
        memcpy(v->keys, ps->kstack + base, v->n * sizeof *v->keys);
        memcpy(v->key_lens, ps->klstack + base, v->n * sizeof *v->key_lens);
    }
    ps->sn = base;
}

static int parse_container(parser *ps, es__json_value *v, int is_object)
{
    char close = is_object ? '}' : ']';
    size_t base = ps->sn;
    if (++ps->depth > ps->max_depth) {
        /* The whole path would be max_depth levels long: name the outermost member only. */
        size_t depth = ps->depth;
        ps->depth = 1;
        int rc = fail(ps, "nesting too deep");
        ps->depth = depth;
        return rc;
    }
    ps->p++;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == close) {
        ps->p++;
        goto done;
    }
    for (size_t index = 0;; index++) {
        const char *key = NULL;
        size_t klen = 0;
        es__json_value *child;
        path_level *l = level(ps);
        l->active = 0;   /* errors between members name the container, not its last member */
        skip_ws(ps);
        if (is_object) {
            if (ps->p >= ps->end || *ps->p != '"') return fail(ps, "expected a string key");
            int rc = lex_string(ps, &key, &klen);
            if (rc) return rc;
            skip_ws(ps);
            if (ps->p >= ps->end || *ps->p != ':') return fail(ps, "expected ':'");
            ps->p++;
        }
        *l = (path_level){.key = key, .klen = klen, .index = index, .active = 1};
        int rc = parse_value(ps, &child);
        if (rc) return rc;
        l = level(ps);   /* the child may have grown the path array */
        l->active = 0;
        push(ps, child, key, klen);
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == ',') {
            ps->p++;
            continue;
        }
        if (ps->p < ps->end && *ps->p == close) {
            ps->p++;
            break;
        }
        return fail(ps, is_object ? "expected ',' or '}'" : "expected ',' or ']'");
    }
done:
    ps->depth--;
    v->kind = is_object ? ES__JSON_OBJECT : ES__JSON_ARRAY;
    close_container(ps, v, base, is_object);
    return is_object ? check_duplicates(ps, v) : 0;
}

static int parse_value(parser *ps, es__json_value **out)
{
    es__json_value *v = es_arena_calloc(ps->a, sizeof *v);
    *out = v;
    skip_ws(ps);
    v->offset = (size_t)(ps->p - ps->start);
    if (ps->p >= ps->end) return fail(ps, "unexpected end of input");
    switch (*ps->p) {
    case '{': return parse_container(ps, v, 1);
    case '[': return parse_container(ps, v, 0);
    case '"': v->kind = ES__JSON_STRING; return lex_string(ps, &v->str, &v->len);
    case 't': return lit(ps, "true", v, ES__JSON_TRUE);
    case 'f': return lit(ps, "false", v, ES__JSON_FALSE);
    case 'n': return lit(ps, "null", v, ES__JSON_NULL);
    default:
        if (*ps->p == '-' || (*ps->p >= '0' && *ps->p <= '9')) return lex_number(ps, v);
        return fail(ps, "unexpected character");
    }
}

int es__json_parse(const char *json, size_t len, size_t max_depth, es_arena *a, es__json_value **out,
                   es_error *err)
{
    parser ps = {.start = json, .p = json, .end = json + len, .a = a, .err = err};
    ps.max_depth = max_depth ? max_depth : ES__JSON_DEFAULT_DEPTH;
    if (ps.max_depth > ES__JSON_MAX_DEPTH) ps.max_depth = ES__JSON_MAX_DEPTH;
    int rc = json ? parse_value(&ps, out) : fail(&ps, "no input");
    if (rc) goto out;
    skip_ws(&ps);
    if (ps.p != ps.end) rc = fail(&ps, "trailing characters after the value");
out:
    free(ps.stack);
    free(ps.kstack);
    free(ps.klstack);
    free(ps.path);
    return rc;
}
