/* Forward migrations of projection tables from the schema diff (README "Changing the schema").
 *
 * The released schema is a descriptor set (proto/baseline/image.binpb) named by the plugin
 * parameter baseline=<path>. Each projection table of the package being generated is compared
 * with the released table of the same name, and what changed becomes numbered steps, each
 * idempotent on its own: a new table (its whole generated DDL), an added column, a widened type
 * (ALTER TYPE to the type it already has is a no-op), an added, dropped or changed index (named
 * <table>_idx<n> by position, as the DDL names them). A removed column gets no step: it stays in
 * the table, since instances of the released version still read and write it during a deploy.
 *
 * What cannot be migrated in place (a narrowed type, a type changed to another kind, another
 * key) is refused naming file, message, field and option, unless the projection says
 * (es.projection) rebuild: then the table's changes get no in-place step and orderd builds it
 * anew beside the serving table (docs/ARCHITECTURE.md, invariant 12). */
#include "cg.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The released schema, loaded once per plugin run; NULL when no baseline parameter was given. */
static cg_ctx *baseline;
static int baseline_loaded;

static char *param_value(const char *params, const char *key)
{
    size_t kl = strlen(key);
    for (const char *p = params; p && *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len > kl && strncmp(p, key, kl) == 0 && p[kl] == '=')
            return strndup(p + kl + 1, len - kl - 1);
        p = end ? end + 1 : NULL;
    }
    return NULL;
}

static int load_baseline(cg_ctx *ctx)
{
    if (baseline_loaded)
        return 0;
    baseline_loaded = 1;
    char *path = param_value(ctx->model.req->parameter, "baseline");
    if (!path)
        return 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return cg_fail(ctx, "baseline %s: cannot open the released schema (a descriptor set, see scripts/release-baseline.sh)",
                       path);
    size_t cap = 1 << 16, n = 0, r;
    uint8_t *buf = malloc(cap);
    while ((r = fread(buf + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n == cap)
            buf = realloc(buf, cap *= 2);
    }
    fclose(f);
    Google__Protobuf__FileDescriptorSet *set = google__protobuf__file_descriptor_set__unpack(NULL, n, buf);
    if (!set)
        return cg_fail(ctx, "baseline %s: not a FileDescriptorSet", path);
    /* The released files become a model of their own, built as the request's is. */
    Google__Protobuf__Compiler__CodeGeneratorRequest *req = calloc(1, sizeof *req);
    google__protobuf__compiler__code_generator_request__init(req);
    req->n_proto_file = set->n_file;
    req->proto_file = set->file;
    baseline = calloc(1, sizeof *baseline);
    cg_model_load(baseline, req);
    return 0;
}

static const char *column_of(const cg_field *f)
{
    return f->opt && f->opt->column && f->opt->column[0] ? f->opt->column : f->name;
}

static const cg_field *find_column(const cg_message *m, const char *col)
{
    for (size_t i = 0; i < m->n_fields; i++)
        if (strcmp(column_of(&m->fields[i]), col) == 0)
            return &m->fields[i];
    return NULL;
}

static const cg_message *released_table(const char *package, const char *table)
{
    for (size_t i = 0; baseline && i < baseline->model.n_messages; i++) {
        const cg_message *m = baseline->model.messages[i];
        if (m->proj && m->proj->table && strcmp(m->proj->table, table) == 0 && strcmp(m->file->package, package) == 0)
            return m;
    }
    return NULL;
}

/* A column type as a family and a capacity: integers by decimal digits held, floats by
 * precision, strings by length (text unbounded); 0 = another kind, compared by its text only. */
enum { TY_OTHER, TY_INT, TY_FLOAT, TY_STRING };
#define UNBOUNDED 1000000L

static int classify(const char *type, long *cap)
{
    char t[64];
    size_t k = 0;
    for (const char *s = type; *s && k + 1 < sizeof t; s++)
        if (*s != ' ' || (k && t[k - 1] != ' '))
            t[k++] = (char)tolower((unsigned char)*s);
    t[k] = 0;
    long n;
    char tail;
    if (!strcmp(t, "smallint") || !strcmp(t, "int2"))
        return *cap = 5, TY_INT;
    if (!strcmp(t, "integer") || !strcmp(t, "int") || !strcmp(t, "int4"))
        return *cap = 10, TY_INT;
    if (!strcmp(t, "bigint") || !strcmp(t, "int8"))
        return *cap = 19, TY_INT;
    if (!strcmp(t, "numeric") || !strcmp(t, "decimal"))
        return *cap = UNBOUNDED, TY_INT;
    if ((sscanf(t, "numeric(%ld%c", &n, &tail) == 2 || sscanf(t, "decimal(%ld%c", &n, &tail) == 2) && tail == ')')
        return *cap = n, TY_INT;
    if (!strcmp(t, "real") || !strcmp(t, "float4"))
        return *cap = 1, TY_FLOAT;
    if (!strcmp(t, "double precision") || !strcmp(t, "float8"))
        return *cap = 2, TY_FLOAT;
    if (!strcmp(t, "text") || !strcmp(t, "varchar") || !strcmp(t, "character varying"))
        return *cap = UNBOUNDED, TY_STRING;
    if ((sscanf(t, "varchar(%ld%c", &n, &tail) == 2 || sscanf(t, "character varying(%ld%c", &n, &tail) == 2) &&
        tail == ')')
        return *cap = n, TY_STRING;
    *cap = 0;
    return TY_OTHER;
}

/* 0: the same type; 1: new holds every value of old; -1: narrower; -2: another kind. */
static int compare_types(const char *old, const char *new)
{
    long oc, nc;
    int of = classify(old, &oc), nf = classify(new, &nc);
    if (of == TY_OTHER || nf == TY_OTHER)
        return strcasecmp(old, new) == 0 ? 0 : -2;
    if (of != nf)
        return -2;
    return nc == oc ? 0 : nc > oc ? 1 : -1;
}

/* Names the option a column's type comes from, for messages. */
static char *type_origin(const cg_field *f, const char *table)
{
    if (f->opt && f->opt->sql_type && f->opt->sql_type[0])
        return cg_sprintf("(es.field) sql_type \"%s\"", f->opt->sql_type);
    return cg_sprintf("(es.projection) table \"%s\"", table);
}

typedef struct steps {
    cg_out *sql;             /* sql/<package>_migrations.sql */
    cg_out *table;           /* the C initialisers */
    int n;
} steps;

static void add_step(steps *s, const char *name, const char *sql)
{
    s->n++;
    cg_printf(s->sql, "\n-- step %d: %s\n%s", s->n, name, sql);
    cg_printf(s->table, "    {.step = %d, .name = \"", s->n);
    cg_c_string(s->table, name);
    cg_printf(s->table, "\", .sql = \"");
    cg_c_string(s->table, sql);
    cg_printf(s->table, "\"},\n");
}

/* The first change of table `old` (released) to `m` (current) that cannot be migrated in place:
 * a refusal, or with (es.projection) rebuild, 1 (the table gets no in-place step); else 0. */
static int unmigratable(cg_ctx *ctx, const cg_message *m, const cg_message *old)
{
    const Es__ProjectionOptions *p = m->proj, *op = old->proj;
    const char *file = m->file->name, *table = p->table;
    int rebuild = p->has_rebuild && p->rebuild;
    const char *how = "or mark the projection (es.projection) = { rebuild: true } to have orderd build the table anew "
                      "beside the serving one";
    if (strcmp(p->key, op->key ? op->key : "") != 0) {
        if (rebuild)
            return 1;
        const cg_field *kf = cg_find_field(m, p->key);
        return cg_fail(ctx, "%s: message %s: field %s: (es.projection) key \"%s\": table %s has key \"%s\" in the released "
                            "schema (proto/baseline); a new primary key cannot be migrated in place: keep \"%s\", %s",
                       file, m->name, kf ? kf->name : p->key, p->key, table, op->key, op->key, how);
    }
    for (size_t i = 0; i < m->n_fields; i++) {
        const cg_field *f = &m->fields[i], *of = find_column(old, column_of(f));
        int cmp = of ? compare_types(cg_sql_type(of), cg_sql_type(f)) : 0;
        if (cmp >= 0)
            continue;
        if (rebuild)
            return 1;
        return cg_fail(ctx, "%s: message %s: field %s: %s: column %s.%s %s %s (released, proto/baseline) to %s; "
                            "that cannot be migrated in place: keep %s or widen it, %s",
                       file, m->name, f->name, type_origin(f, table), table, column_of(f),
                       cmp == -1 ? "narrows" : "changes its type from", cg_sql_type(of), cg_sql_type(f),
                       cg_sql_type(of), how);
    }
    return 0;
}

/* The steps that take table `old` (released) to `m` (current). */
static void diff_table(const cg_message *m, const cg_message *old, steps *s)
{
    const Es__ProjectionOptions *p = m->proj, *op = old->proj;
    const char *table = p->table;
    for (size_t i = 0; i < m->n_fields; i++) {
        const cg_field *f = &m->fields[i];
        const char *col = column_of(f), *type = cg_sql_type(f);
        const cg_field *of = find_column(old, col);
        if (!of) {
            add_step(s, cg_sprintf("%s: add column %s %s", table, col, type),
                     cg_sprintf("ALTER TABLE %s ADD COLUMN IF NOT EXISTS %s %s;\n", table, col, type));
        } else if (compare_types(cg_sql_type(of), type) > 0) {
            add_step(s, cg_sprintf("%s: widen column %s from %s to %s", table, col, cg_sql_type(of), type),
                     cg_sprintf("ALTER TABLE %s ALTER COLUMN %s TYPE %s;\n", table, col, type));
        }
    }
    for (size_t i = 0; i < old->n_fields; i++)
        if (!find_column(m, column_of(&old->fields[i])))
            cg_printf(s->sql, "\n-- %s: column %s is no longer generated; left in place (no step drops a column)\n",
                      table, column_of(&old->fields[i]));
    size_t n = p->n_indexes > op->n_indexes ? p->n_indexes : op->n_indexes;
    for (size_t i = 0; i < n; i++) {
        const char *was = i < op->n_indexes ? op->indexes[i] : NULL, *is = i < p->n_indexes ? p->indexes[i] : NULL;
        if (was && is && strcmp(was, is) == 0)
            continue;
        /* One step drops and creates, so that running it again leaves the same index. */
        char *drop = was ? cg_sprintf("DROP INDEX IF EXISTS %s_idx%zu;\n", table, i + 1) : cg_strdup("");
        char *create = is ? cg_sprintf("CREATE INDEX IF NOT EXISTS %s_idx%zu ON %s (%s);\n", table, i + 1, table, is)
                          : cg_strdup("");
        add_step(s,
                 cg_sprintf("%s: %s index %s_idx%zu%s%s%s", table, !was ? "add" : !is ? "drop" : "replace", table, i + 1,
                            is ? " (" : "", is ? is : "", is ? ")" : ""),
                 cg_sprintf("%s%s", drop, create));
    }
}

int cg_gen_migrations(cg_ctx *ctx, const char *package, const char *base, cg_out *c, int *n_steps, char hash_hex[17])
{
    *n_steps = 0;
    hash_hex[0] = 0;
    if (load_baseline(ctx))
        return -1;
    steps s = {.sql = cg_open(ctx, "sql/%s_migrations.sql", base), .table = cg_scratch()};
    cg_printf(s.sql, "-- Generated by protoc-gen-es from package %s. DO NOT EDIT.\n", package);
    if (!baseline) {
        cg_printf(s.sql, "-- Generated without a released schema (no baseline parameter): no steps.\n");
        return 0;
    }
    /* The released schema's name: fnv1a64 of its projection DDL in this package. */
    cg_out *ddl = cg_scratch();
    for (size_t i = 0; i < baseline->model.n_messages; i++) {
        const cg_message *m = baseline->model.messages[i];
        if (m->proj && m->proj->table && m->proj->key && strcmp(m->file->package, package) == 0)
            cg_gen_projection_ddl(baseline, m, ddl);
    }
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < ddl->len; i++) {
        h ^= (uint8_t)ddl->data[i];
        h *= 0x100000001b3ULL;
    }
    snprintf(hash_hex, 17, "%016llx", (unsigned long long)h);
    cg_printf(s.sql,
              "-- Forward steps of the projection tables from the released schema (proto/baseline,\n"
              "-- projection DDL fnv1a64 %s) to this one. orderd at start and `orderctl migrate`\n"
              "-- apply each step once, in its own transaction under the migrations' advisory lock,\n"
              "-- and record it in es_migration_steps.\n",
              hash_hex);
    int rebuilt = 0;
    cg_message **msgs;
    size_t n = cg_package_messages(&ctx->model, package, &msgs);
    for (size_t i = 0; i < n; i++) {
        const cg_message *m = msgs[i];
        if (!m->proj || !m->file->generate)
            continue;
        const cg_message *old = released_table(package, m->proj->table);
        if (!old) {
            cg_out *t = cg_scratch();
            cg_gen_projection_ddl(ctx, m, t);
            add_step(&s, cg_sprintf("%s: new projection table", m->proj->table), t->data ? t->data : "");
        } else {
            int r = unmigratable(ctx, m, old);
            if (r < 0)
                return -1;
            rebuilt |= r;
            if (r)
                cg_printf(s.sql, "\n-- %s: no in-place step: (es.projection) rebuild, orderd builds the table anew "
                                 "beside the serving one\n", m->proj->table);
            else
                diff_table(m, old, &s);
        }
    }
    /* Released tables no longer generated stay, like removed columns. */
    for (size_t i = 0; i < baseline->model.n_messages; i++) {
        const cg_message *m = baseline->model.messages[i];
        if (!m->proj || !m->proj->table || strcmp(m->file->package, package) != 0)
            continue;
        int kept = 0;
        for (size_t k = 0; k < n; k++)
            kept |= msgs[k]->proj && msgs[k]->proj->table && strcmp(msgs[k]->proj->table, m->proj->table) == 0;
        if (!kept)
            cg_printf(s.sql, "\n-- %s: no longer generated; left in place (no step drops a table)\n", m->proj->table);
    }
    if (!s.n && !rebuilt)
        cg_printf(s.sql, "\n-- No step.\n");
    if (s.n) {
        cg_printf(c, "/* Forward steps from the released schema (sql/%s_migrations.sql). */\n"
                     "static const es_migration_step migration_steps[] = {\n", base);
        cg_write(c, s.table->data, s.table->len);
        cg_printf(c, "};\n\n");
    }
    *n_steps = s.n;
    return ctx->error ? -1 : 0;
}
