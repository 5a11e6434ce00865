/* The HTTP route matcher (es/router.h): compiles google.api.http templates once, then matches
 * request targets by a linear scan. Tables hold tens of routes, so a scan that compares at most
 * a few segments per route costs less than the JSON decode that follows; a trie would buy
 * nothing measurable and cost clarity. */
#include "es/router.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "es/hex.h"

enum seg_kind { SEG_LIT = 0, SEG_STAR = 1, SEG_DSTAR = 2 };

typedef struct seg {
    enum seg_kind kind;
    char *lit;          /* SEG_LIT: the literal, compared to the decoded request segment */
} seg;

typedef struct var {
    char *name;         /* field path, "order_id" or "shipping_address.city" */
    size_t first, last; /* template segments [first, last) it captures */
} var;

typedef struct tmpl {
    const es_route_def *def;
    char *method;       /* upper-cased copy of def->http_method */
    seg *segs;
    size_t n_segs;
    var *vars;
    size_t n_vars;
    char *verb;         /* custom verb after ':' in the last segment, or NULL */
    int has_dstar;      /* last segment is "**" */
} tmpl;

struct es_router {
    tmpl *t;
    size_t n, cap;
};

es_router *es_router_new(void) { return es_xcalloc(1, sizeof(es_router)); }

static void tmpl_clear(tmpl *t)
{
    for (size_t i = 0; i < t->n_segs; i++)
        free(t->segs[i].lit);
    for (size_t i = 0; i < t->n_vars; i++)
        free(t->vars[i].name);
    free(t->segs);
    free(t->vars);
    free(t->verb);
    free(t->method);
    memset(t, 0, sizeof *t);
}

void es_router_free(es_router *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n; i++)
        tmpl_clear(&r->t[i]);
    free(r->t);
    free(r);
}

size_t es_router_count(const es_router *r) { return r ? r->n : 0; }

/* ---- template compilation ---- */

static int is_ident_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* Characters a literal segment or verb may hold: RFC 3986 pchar minus what the grammar uses
 * and minus '%' (a literal is compared to the decoded request segment, so it is stored decoded). */
static int is_literal_char(char c)
{
    if (is_ident_char(c))
        return 1;
    return c != '\0' && strchr("-._~!$&'()+,;=@", c) != NULL;
}

static int valid_field_path(const char *s, size_t n)
{
    if (n == 0 || s[0] == '.' || s[n - 1] == '.')
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '.') {
            if (s[i + 1] == '.')
                return 0;
        } else if (!is_ident_char(s[i])) {
            return 0;
        }
    }
    return !(s[0] >= '0' && s[0] <= '9');
}

static void push_seg(tmpl *t, size_t *cap, enum seg_kind kind, const char *lit, size_t n)
{
    if (t->n_segs == *cap) {
        *cap = *cap ? *cap * 2 : 8;
        t->segs = es_xrealloc(t->segs, *cap * sizeof *t->segs);
    }
    seg *s = &t->segs[t->n_segs++];
    s->kind = kind;
    s->lit = NULL;
    if (kind == SEG_LIT) {
        s->lit = es_xmalloc(n + 1);
        memcpy(s->lit, lit, n);
        s->lit[n] = '\0';
    }
}

/* Parses one segment token (up to '/', '}' or the verb ':') at *pp; "*", "**" or a literal. */
static int parse_segment(tmpl *t, size_t *cap, const char **pp)
{
    const char *p = *pp, *start = p;
    if (p[0] == '*' && p[1] == '*') {
        push_seg(t, cap, SEG_DSTAR, NULL, 0);
        *pp = p + 2;
        return 0;
    }
    if (p[0] == '*') {
        push_seg(t, cap, SEG_STAR, NULL, 0);
        *pp = p + 1;
        return 0;
    }
    while (is_literal_char(*p))
        p++;
    if (p == start)
        return -1;
    push_seg(t, cap, SEG_LIT, start, (size_t)(p - start));
    *pp = p;
    return 0;
}

static int compile(const es_route_def *def, tmpl *t, es_error *err)
{
    const char *path = def->path;
    size_t seg_cap = 0, var_cap = 0;
    memset(t, 0, sizeof *t);
    t->def = def;
    if (!def->http_method || !def->http_method[0] || !def->method)
        goto bad;
    t->method = es_xstrdup(def->http_method);
    for (char *m = t->method; *m; m++) {
        if (*m >= 'a' && *m <= 'z')
            *m = (char)(*m - 'a' + 'A');
        else if (!(*m >= 'A' && *m <= 'Z'))
            goto bad;
    }
    if (!path || path[0] != '/')
        goto bad;
    const char *p = path + 1;
    for (;;) {
        if (*p == '{') {
            const char *name = ++p;
            while (*p && *p != '=' && *p != '}')
                p++;
            if (!valid_field_path(name, (size_t)(p - name)))
                goto bad;
            if (t->n_vars == var_cap) {
                var_cap = var_cap ? var_cap * 2 : 4;
                t->vars = es_xrealloc(t->vars, var_cap * sizeof *t->vars);
            }
            var *v = &t->vars[t->n_vars++];
            v->name = es_xmalloc((size_t)(p - name) + 1);
            memcpy(v->name, name, (size_t)(p - name));
            v->name[p - name] = '\0';
            v->first = t->n_segs;
            if (*p == '=') {
                p++;
                for (;;) {
                    if (parse_segment(t, &seg_cap, &p) < 0)
                        goto bad;
                    if (*p != '/')
                        break;
                    p++;
                }
            } else {
                push_seg(t, &seg_cap, SEG_STAR, NULL, 0);
            }
            if (*p != '}')
                goto bad;
            p++;
            v->last = t->n_segs;
        } else if (parse_segment(t, &seg_cap, &p) < 0) {
            goto bad;
        }
        if (*p == '/') {
            p++;
            continue;
        }
        if (*p == ':') {
            const char *verb = ++p;
            while (is_literal_char(*p))
                p++;
            if (p == verb || *p)
                goto bad;
            t->verb = es_xstrdup(verb);
            break;
        }
        if (*p)
            goto bad;
        break;
    }
    /* "**" swallows everything after it, so it may only come last. */
    for (size_t i = 0; i < t->n_segs; i++) {
        if (t->segs[i].kind == SEG_DSTAR) {
            if (i + 1 != t->n_segs)
                goto bad;
            t->has_dstar = 1;
        }
    }
    for (size_t i = 0; i < t->n_vars; i++)
        for (size_t j = 0; j < i; j++)
            if (strcmp(t->vars[i].name, t->vars[j].name) == 0)
                goto bad;
    if (t->n_segs > ES_ROUTER_MAX_SEGMENTS)
        goto bad;
    return ES_OK;
bad:
    tmpl_clear(t);
    return es_error_set(err, ES_INVALID_ARGUMENT, def->path ? def->path : "",
                        "invalid route template \"%s %s\"",
                        def->http_method ? def->http_method : "(null)",
                        def->path ? def->path : "(null)");
}

/* Two templates that match exactly the same requests (method, verb and segments alike; the
 * variables' names do not matter): the second could never be reached. */
static int same_requests(const tmpl *a, const tmpl *b)
{
    if (strcmp(a->method, b->method) != 0 || a->n_segs != b->n_segs || !a->verb != !b->verb ||
        (a->verb && strcmp(a->verb, b->verb) != 0))
        return 0;
    for (size_t i = 0; i < a->n_segs; i++)
        if (a->segs[i].kind != b->segs[i].kind ||
            (a->segs[i].kind == SEG_LIT && strcmp(a->segs[i].lit, b->segs[i].lit) != 0))
            return 0;
    return 1;
}

/* A route that repeats one already added (two packages, or one package twice) is refused at
 * start, naming both methods, instead of being silently shadowed by the first. */
static const char *method_name(const tmpl *t)
{
    const es_method_def *m = t->def->method;
    return m->grpc_path ? m->grpc_path : m->name ? m->name : "?";
}

static int check_unique(const es_router *r, const tmpl *fresh, size_t n, es_error *err)
{
    for (size_t i = 0; i < n; i++) {
        const tmpl *t = &fresh[i], *other = NULL;
        for (size_t k = 0; k < r->n && !other; k++)
            if (same_requests(&r->t[k], t))
                other = &r->t[k];
        for (size_t k = 0; k < i && !other; k++)
            if (same_requests(&fresh[k], t))
                other = &fresh[k];
        if (other)
            return es_error_set(err, ES_ALREADY_EXISTS, t->def->path,
                                "route \"%s %s\" of %s matches the same requests as \"%s %s\" of %s",
                                t->method, t->def->path, method_name(t), other->method, other->def->path,
                                method_name(other));
    }
    return ES_OK;
}

int es_router_add(es_router *r, const es_route_def *routes, size_t n, es_error *err)
{
    tmpl *fresh = n ? es_xcalloc(n, sizeof *fresh) : NULL;
    int rc = ES_OK;
    size_t done = 0;
    for (; done < n; done++) {
        rc = compile(&routes[done], &fresh[done], err);
        if (rc != ES_OK)
            goto fail;
    }
    if ((rc = check_unique(r, fresh, n, err)) != ES_OK)
        goto fail;
    if (r->n + n > r->cap) {
        r->cap = (r->n + n) * 2;
        r->t = es_xrealloc(r->t, r->cap * sizeof *r->t);
    }
    if (n)
        memcpy(&r->t[r->n], fresh, n * sizeof *fresh);
    r->n += n;
    free(fresh);
    return ES_OK;
fail:
    for (size_t i = 0; i < done; i++)
        tmpl_clear(&fresh[i]);
    free(fresh);
    return rc;
}

/* ---- decoding ---- */

/* Decodes into out (room for len + 1 bytes); returns the decoded length or -1. */
static long unescape_into(const char *s, size_t len, int plus_is_space, int keep_slash, char *out)
{
    size_t j = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '%') {
            if (len - i < 3)
                return -1;
            int h = es_hex_value((unsigned char)s[i + 1]), l = es_hex_value((unsigned char)s[i + 2]);
            if (h < 0 || l < 0)
                return -1;
            int v = h * 16 + l;
            if (v == 0) /* an encoded NUL would silently cut every C string downstream */
                return -1;
            if (keep_slash && v == '/') {
                memcpy(out + j, s + i, 3);
                j += 3;
            } else {
                out[j++] = (char)v;
            }
            i += 2;
        } else if (c == '\0') {
            return -1;
        } else if (plus_is_space && c == '+') {
            out[j++] = ' ';
        } else {
            out[j++] = c;
        }
    }
    out[j] = '\0';
    return (long)j;
}

char *es_router_unescape(const char *s, size_t len, int plus_is_space, int keep_slash, es_arena *arena)
{
    char *out = es_arena_alloc(arena, len + 1);
    return unescape_into(s, len, plus_is_space, keep_slash, out) < 0 ? NULL : out;
}

int es_router_parse_query(const char *q, size_t len, es_arena *arena, es_route_kv **params,
                          size_t *n_params, es_error *err)
{
    size_t pieces = 1;
    for (size_t i = 0; i < len; i++)
        pieces += q[i] == '&';
    size_t have = *n_params;
    es_route_kv *out = NULL;
    const char *p = q, *end = q + len;
    while (p <= end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *stop = amp ? amp : end;
        if (stop > p) {
            if (have >= ES_ROUTER_MAX_PARAMS)
                return es_error_set(err, ES_INVALID_ARGUMENT, "", "more than %d query parameters",
                                    ES_ROUTER_MAX_PARAMS);
            if (!out) {
                size_t cap = have + (pieces < ES_ROUTER_MAX_PARAMS ? pieces : ES_ROUTER_MAX_PARAMS);
                out = es_arena_alloc(arena, cap * sizeof *out);
                if (have)
                    memcpy(out, *params, have * sizeof *out);
            }
            const char *eq = memchr(p, '=', (size_t)(stop - p));
            const char *kend = eq ? eq : stop;
            char *key = es_router_unescape(p, (size_t)(kend - p), 1, 0, arena);
            if (!key)
                return es_error_set(err, ES_INVALID_ARGUMENT, "",
                                    "malformed percent-encoding in a query parameter name");
            if (!key[0])
                return es_error_set(err, ES_INVALID_ARGUMENT, "", "query parameter with an empty name");
            char *val = eq ? es_router_unescape(eq + 1, (size_t)(stop - eq - 1), 1, 0, arena)
                           : es_arena_strdup(arena, "");
            if (!val)
                return es_error_set(err, ES_INVALID_ARGUMENT, key,
                                    "malformed percent-encoding in query parameter \"%s\"", key);
            out[have].name = key;
            out[have].value = val;
            have++;
        }
        if (!amp)
            break;
        p = amp + 1;
    }
    if (out) {
        *params = out;
        *n_params = have;
    }
    return ES_OK;
}

/* ---- matching ---- */

typedef struct rseg {
    const char *raw;    /* points into the target */
    size_t len;
    char *dec;          /* decoded (arena) */
} rseg;

/* Does t match the request segments? The last segment may carry the verb; *last_len receives
 * the raw length of the last segment once the verb is cut off. */
static int tmpl_matches(const tmpl *t, const rseg *s, size_t n, size_t *last_len, size_t *last_dec_len)
{
    size_t want = t->n_segs;
    if (t->has_dstar ? n < want - 1 : n != want)
        return 0;
    *last_len = s[n - 1].len;
    *last_dec_len = strlen(s[n - 1].dec);
    if (t->verb) {
        /* The verb is matched on the raw text: an encoded ':' is data, never a verb separator. */
        size_t vl = strlen(t->verb);
        const char *raw = s[n - 1].raw;
        size_t rl = s[n - 1].len;
        if (rl < vl + 2 || raw[rl - vl - 1] != ':' || memcmp(raw + rl - vl, t->verb, vl) != 0)
            return 0;
        *last_len = rl - vl - 1;
        *last_dec_len -= vl + 1;
    }
    for (size_t i = 0; i < want; i++) {
        const seg *g = &t->segs[i];
        if (g->kind == SEG_DSTAR)
            break;
        if (g->kind == SEG_STAR)
            continue;   /* non-empty is checked for every segment up front */
        const char *dec = s[i].dec;
        size_t dl = i == n - 1 ? *last_dec_len : strlen(dec);
        if (strlen(g->lit) != dl || memcmp(g->lit, dec, dl) != 0)
            return 0;
    }
    return 1;
}

/* Orders two matching templates: negative when a is more specific. A custom verb beats no verb,
 * then segment by segment a literal beats "*" beats "**". */
static int specificity_cmp(const tmpl *a, const tmpl *b)
{
    if (!!a->verb != !!b->verb)
        return a->verb ? -1 : 1;
    size_t n = a->n_segs < b->n_segs ? a->n_segs : b->n_segs;
    for (size_t i = 0; i < n; i++)
        if (a->segs[i].kind != b->segs[i].kind)
            return (int)a->segs[i].kind - (int)b->segs[i].kind;
    return (int)b->n_segs - (int)a->n_segs;
}

static void allow_add(char *allow, size_t cap, const char *m)
{
    size_t ml = strlen(m), al = strlen(allow);
    for (const char *p = allow; (p = strstr(p, m)) != NULL; p += ml)
        if ((p == allow || p[-1] == ' ') && (p[ml] == ',' || p[ml] == '\0'))
            return;
    if (al + ml + 3 > cap)
        return;
    if (al) {
        memcpy(allow + al, ", ", 2);
        al += 2;
    }
    memcpy(allow + al, m, ml + 1);
}

/* Builds a variable's value from request segments [first, last): one segment is fully decoded;
 * several are joined with '/' keeping "%2F" encoded so the join stays unambiguous. */
static char *capture(const rseg *s, size_t first, size_t last, size_t last_len, size_t n,
                     es_arena *arena)
{
    if (last - first == 1) {
        size_t len = first == n - 1 ? last_len : s[first].len;
        return es_router_unescape(s[first].raw, len, 0, 0, arena);
    }
    const char *start = s[first].raw;
    const char *end = s[last - 1].raw + (last - 1 == n - 1 ? last_len : s[last - 1].len);
    return es_router_unescape(start, (size_t)(end - start), 0, 1, arena);
}

int es_router_match(const es_router *r, const char *method, const char *target, size_t len,
                    es_arena *arena, es_route_match *out)
{
    memset(out, 0, sizeof *out);
    out->http_status = 404;
    const char *q = memchr(target, '?', len);
    size_t plen = q ? (size_t)(q - target) : len;
    rseg segs[ES_ROUTER_MAX_SEGMENTS];
    size_t n = 0;

    if (plen < 2 || target[0] != '/')
        return ES_NOT_FOUND;    /* "/" or "*": no template is that short */
    for (size_t i = 1, start = 1; i <= plen; i++) {
        if (i < plen && target[i] != '/')
            continue;
        if (n == ES_ROUTER_MAX_SEGMENTS) {
            out->http_status = 400;
            return es_error_set(&out->err, ES_INVALID_ARGUMENT, "", "request path has more than %d segments",
                                ES_ROUTER_MAX_SEGMENTS);
        }
        segs[n].raw = target + start;
        segs[n].len = i - start;
        segs[n].dec = es_router_unescape(segs[n].raw, segs[n].len, 0, 0, arena);
        if (!segs[n].dec) {
            out->http_status = 400;
            return es_error_set(&out->err, ES_INVALID_ARGUMENT, "",
                                "malformed percent-encoding in the request path");
        }
        if (segs[n].len == 0)
            return ES_NOT_FOUND;    /* "//" or a trailing '/': no template has empty segments */
        n++;
        start = i + 1;
    }

    const tmpl *best = NULL;
    size_t best_last = 0, last_len, last_dec;
    int path_matched = 0;
    for (size_t i = 0; i < r->n; i++) {
        const tmpl *t = &r->t[i];
        if (!tmpl_matches(t, segs, n, &last_len, &last_dec))
            continue;
        path_matched = 1;
        if (strcmp(t->method, method) != 0)
            continue;
        if (!best || specificity_cmp(t, best) < 0) {
            best = t;
            best_last = last_len;
        }
    }
    if (!best) {
        if (!path_matched)
            return ES_NOT_FOUND;
        out->http_status = 405;
        for (size_t i = 0; i < r->n; i++)
            if (tmpl_matches(&r->t[i], segs, n, &last_len, &last_dec))
                allow_add(out->allow, sizeof out->allow, r->t[i].method);
        return ES_NOT_FOUND;
    }

    if (best->n_vars) {
        out->vars = es_arena_alloc(arena, best->n_vars * sizeof *out->vars);
        for (size_t i = 0; i < best->n_vars; i++) {
            const var *v = &best->vars[i];
            size_t last = v->last == best->n_segs && best->has_dstar ? n : v->last;
            if (last <= v->first) {
                out->vars[i].value = es_arena_strdup(arena, "");
            } else {
                out->vars[i].value = capture(segs, v->first, last, best_last, n, arena);
                /* Segments were checked already; this only fails on an impossible input. */
                if (!out->vars[i].value) {
                    out->http_status = 400;
                    return es_error_set(&out->err, ES_INVALID_ARGUMENT, v->name,
                                        "malformed percent-encoding in path variable \"%s\"", v->name);
                }
            }
            out->vars[i].name = v->name;
        }
        out->n_vars = best->n_vars;
    }
    if (q) {
        int rc = es_router_parse_query(q + 1, len - plen - 1, arena, &out->params, &out->n_params, &out->err);
        if (rc != ES_OK) {
            out->http_status = 400;
            out->vars = NULL;
            out->n_vars = 0;
            return rc;
        }
    }
    out->route = best->def;
    out->http_status = 200;
    return ES_OK;
}
