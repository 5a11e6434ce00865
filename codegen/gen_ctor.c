/* The C table generator's constructors: one <prefix>new_<Message>(es_arena *) per message of the
 * package and per message of another package that a field of it names (google.protobuf.Timestamp,
 * ...), so hand-written code allocates typed, initialised messages without casts or init calls. */
#include "gen_c.h"

#include <stdlib.h>
#include <string.h>

/* "orders.v1.Outer.Inner" in package "orders.v1" -> "Outer_Inner";
 * "google.protobuf.Timestamp" -> "google_protobuf_Timestamp". */
static char *ctor_suffix(const pkg *p, const cg_message *m)
{
    size_t pl = strlen(p->package);
    const char *rest = strncmp(m->full, p->package, pl) == 0 && m->full[pl] == '.' ? m->full + pl + 1 : m->full;
    char *s = cg_strdup(rest);
    for (char *c = s; *c; c++)
        if (*c == '.')
            *c = '_';
    return s;
}

static void emit_ctor(pkg *p, const cg_message *m)
{
    char *sfx = ctor_suffix(p, m);
    cg_printf(p->h, "%s *%snew_%s(es_arena *a);\n", m->c_type, p->prefix, sfx);
    cg_printf(p->c, "%s *%snew_%s(es_arena *a)\n{\n    %s *m = es_arena_alloc(a, sizeof *m);\n"
                    "    if (m)\n        %s__init(m);\n    return m;\n}\n\n",
              m->c_type, p->prefix, sfx, m->c_type, m->c_lower);
    free(sfx);
}

static int listed(cg_message *const *list, size_t n, const cg_message *m)
{
    for (size_t i = 0; i < n; i++)
        if (list[i] == m)
            return 1;
    return 0;
}

void cg_emit_constructors(pkg *p)
{
    cg_printf(p->h, "\n/* Constructors: a message allocated in the arena and initialised to its defaults (owned by the\n"
                    " * arena: it lives until es_arena_reset/es_arena_free; NULL when the arena cannot allocate). */\n");
    cg_printf(p->c, "/* ---- constructors ---- */\n\n");
    for (size_t i = 0; i < p->n_msgs; i++)
        emit_ctor(p, p->msgs[i]);
    /* Messages of other packages named by this package's fields, each once, in first-use order. */
    cg_message **seen = calloc(p->ctx->model.n_messages + 1, sizeof *seen);
    size_t n_seen = 0;
    for (size_t i = 0; i < p->n_msgs; i++) {
        const cg_message *m = p->msgs[i];
        for (size_t k = 0; k < m->n_fields; k++) {
            cg_message *t = m->fields[k].msg_type;
            if (!t || t->map_entry || strcmp(t->file->package, p->package) == 0 || listed(seen, n_seen, t))
                continue;
            seen[n_seen++] = t;
            emit_ctor(p, t);
        }
    }
    free(seen);
}
