/* Emits a package's embedded FileDescriptorSet: the package's files and every file they import,
 * transitively (in the request's order, dependencies first), without source info, as a C byte
 * array, and its FNV-1a 64-bit hash that names the package's schema version. Another package in
 * the same request is not in the set, so adding one changes no other package's hash. */
#include "cg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t file_index(const cg_model *m, const char *name)
{
    for (size_t i = 0; i < m->n_files; i++)
        if (strcmp(m->files[i].name, name) == 0)
            return i;
    return m->n_files;
}

/* Marks file i and, recursively, every file it imports. */
static void mark(const cg_model *m, size_t i, char *in)
{
    if (i >= m->n_files || in[i])
        return;
    in[i] = 1;
    const cg_file_proto *fd = m->files[i].fd;
    for (size_t k = 0; k < fd->n_dependency; k++)
        mark(m, file_index(m, fd->dependency[k]), in);
}

int cg_gen_descriptor_set(cg_ctx *ctx, const char *package, cg_out *o, const char *symbol, char hash_hex[17])
{
    const cg_model *m = &ctx->model;
    size_t cap = m->n_files ? m->n_files : 1;
    char *in = calloc(cap, 1);
    for (size_t i = 0; i < m->n_files; i++)
        if (strcmp(m->files[i].package, package) == 0)
            mark(m, i, in);
    Google__Protobuf__FileDescriptorSet set = GOOGLE__PROTOBUF__FILE_DESCRIPTOR_SET__INIT;
    Google__Protobuf__FileDescriptorProto *copies = calloc(cap, sizeof *copies);
    Google__Protobuf__FileDescriptorProto **ptrs = calloc(cap, sizeof *ptrs);
    size_t n_set = 0;
    for (size_t i = 0; i < m->n_files; i++) {
        if (!in[i])
            continue;
        copies[n_set] = *m->files[i].fd;
        copies[n_set].source_code_info = NULL;
        ptrs[n_set] = &copies[n_set];
        n_set++;
    }
    set.n_file = n_set;
    set.file = ptrs;
    size_t n = google__protobuf__file_descriptor_set__get_packed_size(&set);
    uint8_t *buf = malloc(n ? n : 1);
    google__protobuf__file_descriptor_set__pack(&set, buf);
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= buf[i];
        h *= 0x100000001b3ULL;
    }
    snprintf(hash_hex, 17, "%016llx", (unsigned long long)h);
    cg_printf(o, "/* FileDescriptorSet of the package and its imports (%zu bytes, fnv1a64 %s). */\n", n, hash_hex);
    cg_printf(o, "static const uint8_t %s[] = {", symbol);
    for (size_t i = 0; i < n; i++)
        cg_printf(o, "%s0x%02x,", i % 16 ? "" : "\n    ", buf[i]);
    cg_printf(o, "\n};\n\n");
    free(buf);
    free(ptrs);
    free(copies);
    free(in);
    return 0;
}
