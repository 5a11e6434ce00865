/* Emits the embedded FileDescriptorSet: every file of the request (imports included), without
 * source info, as a C byte array, and its FNV-1a 64-bit hash that names the schema version. */
#include "cg.h"

#include <stdio.h>
#include <stdlib.h>

int cg_gen_descriptor_set(cg_ctx *ctx, cg_out *o, const char *symbol, char hash_hex[17])
{
    const cg_model *m = &ctx->model;
    Google__Protobuf__FileDescriptorSet set = GOOGLE__PROTOBUF__FILE_DESCRIPTOR_SET__INIT;
    Google__Protobuf__FileDescriptorProto *copies = calloc(m->n_files ? m->n_files : 1, sizeof *copies);
    Google__Protobuf__FileDescriptorProto **ptrs = calloc(m->n_files ? m->n_files : 1, sizeof *ptrs);
    for (size_t i = 0; i < m->n_files; i++) {
        copies[i] = *m->files[i].fd;
        copies[i].source_code_info = NULL;
        ptrs[i] = &copies[i];
    }
    set.n_file = m->n_files;
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
    return 0;
}
