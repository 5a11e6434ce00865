/* protoc-gen-es: reads a CodeGeneratorRequest on stdin, writes a CodeGeneratorResponse on stdout.
 * Errors in the annotations come back in the response's error field (protoc prints it and fails),
 * naming the file, the message and the option. */
#include "cg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SANITIZE_ADDRESS__)
/* The plugin is a short-lived process that frees nothing on purpose (see emit.c); under
 * AddressSanitizer its leak report would only fail the build. */
const char *__asan_default_options(void) __attribute__((used, visibility("default")));
const char *__asan_default_options(void) { return "detect_leaks=0"; }
#endif

static uint8_t *read_all(FILE *f, size_t *len)
{
    size_t cap = 1 << 16, n = 0;
    uint8_t *buf = malloc(cap);
    size_t r;
    while (buf && (r = fread(buf + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n == cap) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
    }
    *len = n;
    return buf;
}

static int has_package(char **list, size_t n, const char *p)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i], p) == 0)
            return 1;
    return 0;
}

/* A package gets C tables when a file being generated in it declares an es option or a service. */
static int package_is_annotated(const cg_model *m, const char *package)
{
    for (size_t i = 0; i < m->n_messages; i++) {
        const cg_message *msg = m->messages[i];
        if (msg->file->generate && strcmp(msg->file->package, package) == 0 &&
            (msg->agg || msg->event || msg->cmd || msg->proj))
            return 1;
    }
    for (size_t i = 0; i < m->n_services; i++)
        if (m->services[i]->file->generate && strcmp(m->services[i]->file->package, package) == 0)
            return 1;
    return 0;
}

int main(void)
{
    size_t len;
    uint8_t *in = read_all(stdin, &len);
    Google__Protobuf__Compiler__CodeGeneratorRequest *req =
        in ? google__protobuf__compiler__code_generator_request__unpack(NULL, len, in) : NULL;
    if (!req) {
        fputs("protoc-gen-es: cannot decode the CodeGeneratorRequest on stdin\n", stderr);
        return 1;
    }
    cg_ctx ctx = {0};
    cg_model_load(&ctx, req);
    if (cg_check(&ctx) == 0) {
        char **done = calloc(ctx.model.n_files + 1, sizeof *done);
        size_t n_done = 0;
        int es_files = 0;
        for (size_t i = 0; i < ctx.model.n_files && !ctx.error; i++) {
            const cg_file *f = &ctx.model.files[i];
            if (!f->generate)
                continue;
            if (strcmp(f->package, "es") == 0)
                es_files = 1;
            if (has_package(done, n_done, f->package) || !package_is_annotated(&ctx.model, f->package))
                continue;
            done[n_done++] = (char *)f->package;
            cg_gen_package(&ctx, f->package);
            cg_gen_openapi(&ctx, f->package);
        }
        (void)es_files; /* the event-store DDL is the runtime's own (sql/event_store.sql) */
    }

    Google__Protobuf__Compiler__CodeGeneratorResponse resp = GOOGLE__PROTOBUF__COMPILER__CODE_GENERATOR_RESPONSE__INIT;
    resp.has_supported_features = 1;
    resp.supported_features = GOOGLE__PROTOBUF__COMPILER__CODE_GENERATOR_RESPONSE__FEATURE__FEATURE_PROTO3_OPTIONAL;
    Google__Protobuf__Compiler__CodeGeneratorResponse__File *files = NULL, **fptrs = NULL;
    if (ctx.error) {
        resp.error = ctx.error;
    } else {
        files = calloc(ctx.n_outs + 1, sizeof *files);
        fptrs = calloc(ctx.n_outs + 1, sizeof *fptrs);
        for (size_t i = 0; i < ctx.n_outs; i++) {
            google__protobuf__compiler__code_generator_response__file__init(&files[i]);
            files[i].name = ctx.outs[i]->name;
            files[i].content = ctx.outs[i]->data ? ctx.outs[i]->data : "";
            fptrs[i] = &files[i];
        }
        resp.n_file = ctx.n_outs;
        resp.file = fptrs;
    }
    size_t n = google__protobuf__compiler__code_generator_response__get_packed_size(&resp);
    uint8_t *out = malloc(n ? n : 1);
    google__protobuf__compiler__code_generator_response__pack(&resp, out);
    int ok = fwrite(out, 1, n, stdout) == n;
    return ok ? 0 : 1;
}
