/* gRPC server reflection (grpc_reflection.h), so generic tools (grpcurl, Postman, a Python
 * client with a descriptor pool) can list and call the methods without the .proto files.
 *
 * The reflection messages are a handful of string, bytes and int32 fields; they are decoded and
 * encoded here by hand (proto/grpc/reflection/v1alpha/reflection.proto documents them) rather than
 * through a generated binding, and v1alpha and v1 share the same wire format. The file
 * descriptors themselves are served as the exact bytes of the embedded FileDescriptorSet
 * entries, so custom options (es.*, google.api.http) reach the client unchanged.
 *
 * A file answer carries the file and, transitively, every file it imports (as the reference
 * server does), so a client can build its descriptor pool from one response. */
#include "grpc_reflection.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/slice.h>

#include "es/arena.h"
#include "es/buf.h"
#include "google/protobuf/descriptor.pb-c.h"

/* ---- the index ---- */

typedef struct refl_file {
    char *name;
    uint8_t *bytes;             /* the serialized FileDescriptorProto */
    size_t len;
    char **deps;
    size_t n_deps;
} refl_file;

typedef struct refl_symbol {
    char *name;                 /* fully qualified, no leading dot */
    size_t file;
} refl_symbol;

typedef struct refl_ext {
    char *extendee;             /* fully qualified, no leading dot */
    int32_t number;
    size_t file;
} refl_ext;

struct es__refl_index {
    char **services;
    size_t n_services;
    refl_file *files;
    size_t n_files;
    refl_symbol *symbols;
    size_t n_symbols;
    refl_ext *exts;
    size_t n_exts;
};

es__refl_index *es__refl_index_new(void) { return es_xcalloc(1, sizeof(es__refl_index)); }

void es__refl_index_free(es__refl_index *ix)
{
    if (!ix)
        return;
    for (size_t i = 0; i < ix->n_services; i++)
        free(ix->services[i]);
    for (size_t i = 0; i < ix->n_files; i++) {
        free(ix->files[i].name);
        free(ix->files[i].bytes);
        for (size_t j = 0; j < ix->files[i].n_deps; j++)
            free(ix->files[i].deps[j]);
        free(ix->files[i].deps);
    }
    for (size_t i = 0; i < ix->n_symbols; i++)
        free(ix->symbols[i].name);
    for (size_t i = 0; i < ix->n_exts; i++)
        free(ix->exts[i].extendee);
    free(ix->services);
    free(ix->files);
    free(ix->symbols);
    free(ix->exts);
    free(ix);
}

void es__refl_index_add_service(es__refl_index *ix, const char *name)
{
    for (size_t i = 0; i < ix->n_services; i++)
        if (strcmp(ix->services[i], name) == 0)
            return;
    ix->services = es_xrealloc(ix->services, (ix->n_services + 1) * sizeof *ix->services);
    ix->services[ix->n_services++] = es_xstrdup(name);
}

static char *join(const char *scope, const char *name)
{
    es_buf b;
    es_buf_init(&b);
    if (scope && *scope) {
        es_buf_puts(&b, scope);
        es_buf_putc(&b, '.');
    }
    es_buf_puts(&b, name ? name : "");
    return es_buf_steal(&b, NULL);
}

static void add_symbol(es__refl_index *ix, char *owned_name, size_t file)
{
    ix->symbols = es_xrealloc(ix->symbols, (ix->n_symbols + 1) * sizeof *ix->symbols);
    ix->symbols[ix->n_symbols].name = owned_name;
    ix->symbols[ix->n_symbols++].file = file;
}

static void add_fields(es__refl_index *ix, const char *scope, Google__Protobuf__FieldDescriptorProto **f,
                       size_t n, size_t file, int extensions)
{
    for (size_t i = 0; i < n; i++) {
        add_symbol(ix, join(scope, f[i]->name), file);
        if (extensions && f[i]->extendee && f[i]->has_number) {
            const char *e = f[i]->extendee[0] == '.' ? f[i]->extendee + 1 : f[i]->extendee;
            ix->exts = es_xrealloc(ix->exts, (ix->n_exts + 1) * sizeof *ix->exts);
            ix->exts[ix->n_exts++] = (refl_ext){es_xstrdup(e), f[i]->number, file};
        }
    }
}

static void add_enums(es__refl_index *ix, const char *scope, Google__Protobuf__EnumDescriptorProto **e,
                      size_t n, size_t file)
{
    for (size_t i = 0; i < n; i++) {
        add_symbol(ix, join(scope, e[i]->name), file);
        /* Enum values live in the enum's enclosing scope (C++ scoping rules). */
        for (size_t v = 0; v < e[i]->n_value; v++)
            add_symbol(ix, join(scope, e[i]->value[v]->name), file);
    }
}

static void add_messages(es__refl_index *ix, const char *scope, Google__Protobuf__DescriptorProto **m,
                         size_t n, size_t file)
{
    for (size_t i = 0; i < n; i++) {
        char *full = join(scope, m[i]->name);
        add_symbol(ix, full, file);
        add_fields(ix, full, m[i]->field, m[i]->n_field, file, 0);
        add_fields(ix, full, m[i]->extension, m[i]->n_extension, file, 1);
        add_enums(ix, full, m[i]->enum_type, m[i]->n_enum_type, file);
        add_messages(ix, full, m[i]->nested_type, m[i]->n_nested_type, file);
    }
}

/* Reads a varint at *p (bounded by end). Returns 0 on a truncated or overlong varint. */
static int read_varint(const uint8_t **p, const uint8_t *end, uint64_t *out)
{
    uint64_t v = 0;
    for (unsigned shift = 0; shift < 64 && *p < end; shift += 7) {
        uint8_t b = *(*p)++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = v;
            return 1;
        }
    }
    return 0;
}

/* Calls fn for every field of the message in [p, end): number, wire type, and for
 * length-delimited fields the payload (for varints, *val). Returns 0 on malformed input. */
typedef int (*field_fn)(void *ctx, uint32_t number, const uint8_t *data, size_t len, uint64_t val, int wt);
static int walk(const uint8_t *p, const uint8_t *end, field_fn fn, void *ctx)
{
    while (p < end) {
        uint64_t key, v = 0;
        if (!read_varint(&p, end, &key))
            return 0;
        int wt = (int)(key & 7);
        uint32_t number = (uint32_t)(key >> 3);
        const uint8_t *data = NULL;
        size_t len = 0;
        switch (wt) {
        case 0:
            if (!read_varint(&p, end, &v))
                return 0;
            break;
        case 1:
            if (end - p < 8)
                return 0;
            p += 8;
            break;
        case 2:
            if (!read_varint(&p, end, &v) || v > (uint64_t)(end - p))
                return 0;
            data = p;
            len = (size_t)v;
            p += len;
            break;
        case 5:
            if (end - p < 4)
                return 0;
            p += 4;
            break;
        default:
            return 0; /* groups are not used by descriptors or reflection */
        }
        if (!fn(ctx, number, data, len, v, wt))
            return 0;
    }
    return 1;
}

typedef struct set_ctx {
    es__refl_index *ix;
} set_ctx;

static int add_file_field(void *vctx, uint32_t number, const uint8_t *data, size_t len, uint64_t val, int wt)
{
    (void)val;
    es__refl_index *ix = ((set_ctx *)vctx)->ix;
    if (number != 1)
        return 1;                 /* FileDescriptorSet has only `repeated FileDescriptorProto file = 1` */
    if (wt != 2)
        return 0;
    Google__Protobuf__FileDescriptorProto *fd = google__protobuf__file_descriptor_proto__unpack(NULL, len, data);
    if (!fd || !fd->name)
        goto bad;
    for (size_t i = 0; i < ix->n_files; i++)
        if (strcmp(ix->files[i].name, fd->name) == 0)
            goto done;
    size_t fi = ix->n_files;
    ix->files = es_xrealloc(ix->files, (fi + 1) * sizeof *ix->files);
    refl_file *f = &ix->files[fi];
    memset(f, 0, sizeof *f);
    f->name = es_xstrdup(fd->name);
    f->bytes = es_xmalloc(len ? len : 1);
    memcpy(f->bytes, data, len);
    f->len = len;
    f->deps = es_xcalloc(fd->n_dependency ? fd->n_dependency : 1, sizeof *f->deps);
    for (size_t i = 0; i < fd->n_dependency; i++)
        f->deps[f->n_deps++] = es_xstrdup(fd->dependency[i]);
    ix->n_files++;
    const char *pkg = fd->package ? fd->package : "";
    add_messages(ix, pkg, fd->message_type, fd->n_message_type, fi);
    add_enums(ix, pkg, fd->enum_type, fd->n_enum_type, fi);
    add_fields(ix, pkg, fd->extension, fd->n_extension, fi, 1);
    for (size_t s = 0; s < fd->n_service; s++) {
        char *svc = join(pkg, fd->service[s]->name);
        add_symbol(ix, svc, fi);
        for (size_t m = 0; m < fd->service[s]->n_method; m++)
            add_symbol(ix, join(svc, fd->service[s]->method[m]->name), fi);
    }
done:
    google__protobuf__file_descriptor_proto__free_unpacked(fd, NULL);
    return 1;
bad:
    if (fd)
        google__protobuf__file_descriptor_proto__free_unpacked(fd, NULL);
    return 0;
}

int es__refl_index_add_set(es__refl_index *ix, const uint8_t *bytes, size_t len, es_error *err)
{
    set_ctx ctx = {ix};
    if (!bytes || !walk(bytes, bytes + len, add_file_field, &ctx))
        return es_error_set(err, ES_INVALID_ARGUMENT, "descriptor_set", "not a FileDescriptorSet");
    return ES_OK;
}

int es__refl_is_path(const char *path, size_t len)
{
    return (len == strlen(ES__REFL_PATH_V1ALPHA) && memcmp(path, ES__REFL_PATH_V1ALPHA, len) == 0) ||
           (len == strlen(ES__REFL_PATH_V1) && memcmp(path, ES__REFL_PATH_V1, len) == 0);
}

static long find_file(const es__refl_index *ix, const char *name, size_t len)
{
    for (size_t i = 0; i < ix->n_files; i++)
        if (strlen(ix->files[i].name) == len && memcmp(ix->files[i].name, name, len) == 0)
            return (long)i;
    return -1;
}

static long find_symbol(const es__refl_index *ix, const char *name, size_t len)
{
    if (len && name[0] == '.') {
        name++;
        len--;
    }
    for (size_t i = 0; i < ix->n_symbols; i++)
        if (strlen(ix->symbols[i].name) == len && memcmp(ix->symbols[i].name, name, len) == 0)
            return (long)ix->symbols[i].file;
    return -1;
}

/* ---- wire encoding of the responses ---- */

static void put_varint(es_buf *b, uint64_t v)
{
    uint8_t tmp[10];
    size_t n = 0;
    do {
        tmp[n] = (uint8_t)(v & 0x7f);
        v >>= 7;
        if (v)
            tmp[n] |= 0x80;
        n++;
    } while (v);
    es_buf_append(b, tmp, n);
}

static void put_bytes(es_buf *b, uint32_t number, const void *data, size_t len)
{
    put_varint(b, ((uint64_t)number << 3) | 2);
    put_varint(b, len);
    es_buf_append(b, data, len);
}

static void put_int32(es_buf *b, uint32_t number, int32_t v)
{
    put_varint(b, (uint64_t)number << 3);
    put_varint(b, (uint64_t)(int64_t)v); /* int32: negative values sign-extend to 10 bytes */
}

/* Wraps the inner message (in sub) as field number of b and empties sub. */
static void put_sub(es_buf *b, uint32_t number, es_buf *sub)
{
    put_bytes(b, number, sub->data, sub->len);
    es_buf_reset(sub);
}

/* Appends file fi and the files it imports, each once (seen has n_files slots). */
static void put_file_closure(const es__refl_index *ix, size_t fi, char *seen, es_buf *out)
{
    if (seen[fi])
        return;
    seen[fi] = 1;
    put_bytes(out, 1, ix->files[fi].bytes, ix->files[fi].len);
    for (size_t d = 0; d < ix->files[fi].n_deps; d++) {
        const char *dep = ix->files[fi].deps[d];
        long di = find_file(ix, dep, strlen(dep));
        if (di >= 0)
            put_file_closure(ix, (size_t)di, seen, out);
    }
}

/* ---- one request ---- */

typedef struct refl_request {
    const uint8_t *host;
    size_t host_len;
    uint32_t kind;              /* the oneof field number, 0 when none */
    const uint8_t *arg;         /* string argument, or the ExtensionRequest */
    size_t arg_len;
} refl_request;

static int read_request_field(void *vctx, uint32_t number, const uint8_t *data, size_t len, uint64_t val, int wt)
{
    (void)val;
    refl_request *r = vctx;
    if (number == 1 && wt == 2) {
        r->host = data;
        r->host_len = len;
    } else if (number >= 3 && number <= 7 && wt == 2) {
        r->kind = number;
        r->arg = data;
        r->arg_len = len;
    }
    return 1;
}

typedef struct ext_request {
    const uint8_t *type;
    size_t type_len;
    int32_t number;
} ext_request;

static int read_ext_field(void *vctx, uint32_t number, const uint8_t *data, size_t len, uint64_t val, int wt)
{
    ext_request *r = vctx;
    if (number == 1 && wt == 2) {
        r->type = data;
        r->type_len = len;
    } else if (number == 2 && wt == 0) {
        r->number = (int32_t)val;
    }
    return 1;
}

static void put_error(es_buf *out, es_buf *sub, int grpc_code, const char *what, const uint8_t *arg, size_t len)
{
    char msg[400];
    int n = snprintf(msg, sizeof msg, "%s %.*s not found", what, (int)(len > 300 ? 300 : len), (const char *)arg);
    put_int32(sub, 1, grpc_code);
    put_bytes(sub, 2, msg, (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1);
    put_sub(out, 7, sub);
}

/* Builds the ServerReflectionResponse for one serialized request into out. */
static void answer(const es__refl_index *ix, const uint8_t *req, size_t req_len, es_buf *out)
{
    refl_request r = {0};
    es_buf sub, inner;
    es_buf_init(&sub);
    es_buf_init(&inner);
    if (!walk(req, req + req_len, read_request_field, &r)) {
        put_error(out, &sub, 3 /* INVALID_ARGUMENT */, "a valid request was", (const uint8_t *)"", 0);
        goto out;
    }
    if (r.host)
        put_bytes(out, 1, r.host, r.host_len);
    put_bytes(out, 2, req, req_len);
    long fi = -1;
    switch (r.kind) {
    case 3: /* file_by_filename */
        fi = find_file(ix, (const char *)r.arg, r.arg_len);
        if (fi < 0)
            put_error(out, &sub, 5, "file", r.arg, r.arg_len);
        break;
    case 4: /* file_containing_symbol */
        fi = find_symbol(ix, (const char *)r.arg, r.arg_len);
        if (fi < 0)
            put_error(out, &sub, 5, "symbol", r.arg, r.arg_len);
        break;
    case 5: { /* file_containing_extension */
        ext_request e = {0};
        walk(r.arg, r.arg + r.arg_len, read_ext_field, &e);
        for (size_t i = 0; i < ix->n_exts && fi < 0; i++)
            if (ix->exts[i].number == e.number && strlen(ix->exts[i].extendee) == e.type_len &&
                memcmp(ix->exts[i].extendee, e.type, e.type_len) == 0)
                fi = (long)ix->exts[i].file;
        if (fi < 0)
            put_error(out, &sub, 5, "extension of", e.type ? e.type : (const uint8_t *)"", e.type_len);
        break;
    }
    case 6: { /* all_extension_numbers_of_type */
        if (find_symbol(ix, (const char *)r.arg, r.arg_len) < 0) {
            put_error(out, &sub, 5, "type", r.arg, r.arg_len);
            break;
        }
        put_bytes(&sub, 1, r.arg, r.arg_len);
        for (size_t i = 0; i < ix->n_exts; i++)
            if (strlen(ix->exts[i].extendee) == r.arg_len && memcmp(ix->exts[i].extendee, r.arg, r.arg_len) == 0)
                put_int32(&sub, 2, ix->exts[i].number);
        put_sub(out, 5, &sub);
        break;
    }
    case 7: /* list_services */
        for (size_t i = 0; i < ix->n_services; i++) {
            put_bytes(&inner, 1, ix->services[i], strlen(ix->services[i]));
            put_sub(&sub, 1, &inner);
        }
        put_sub(out, 6, &sub);
        break;
    default:
        put_int32(&sub, 1, 12 /* UNIMPLEMENTED */);
        es_buf_puts(&inner, "the request names no known message_request");
        put_bytes(&sub, 2, inner.data, inner.len);
        es_buf_reset(&inner);
        put_sub(out, 7, &sub);
        break;
    }
    if (fi >= 0) {
        char *seen = es_xcalloc(ix->n_files, 1);
        put_file_closure(ix, (size_t)fi, seen, &sub);
        free(seen);
        put_sub(out, 4, &sub);
    }
out:
    es_buf_free(&sub);
    es_buf_free(&inner);
}

/* ---- the stream ---- */

enum rstate { RS_START, RS_READ, RS_WRITE, RS_CLOSE, RS_DONE };

struct es__refl_stream {
    const es__refl_index *ix;
    grpc_call *gc;
    void *tag;
    enum rstate state;
    grpc_byte_buffer *recv;
    grpc_byte_buffer *send;
    int cancelled;
};

es__refl_stream *es__refl_stream_new(const es__refl_index *ix, grpc_call *gc, void *tag)
{
    es__refl_stream *st = es_xcalloc(1, sizeof *st);
    st->ix = ix;
    st->gc = gc;
    st->tag = tag;
    st->state = RS_START;
    return st;
}

void es__refl_stream_free(es__refl_stream *st)
{
    if (!st)
        return;
    if (st->recv)
        grpc_byte_buffer_destroy(st->recv);
    if (st->send)
        grpc_byte_buffer_destroy(st->send);
    free(st);
}

static int start(es__refl_stream *st, grpc_op *ops, size_t n, enum rstate next)
{
    st->state = next;
    if (grpc_call_start_batch(st->gc, ops, n, st->tag, NULL) != GRPC_CALL_OK) {
        st->state = RS_DONE;
        return 1;
    }
    return 0;
}

/* Ends the stream with OK (the client half-closed) or, after a failure, with whatever the call
 * still accepts; either way the completion ends the stream. */
static int close_stream(es__refl_stream *st)
{
    grpc_op ops[2];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[0].data.send_status_from_server.status = GRPC_STATUS_OK;
    ops[1].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    ops[1].data.recv_close_on_server.cancelled = &st->cancelled;
    return start(st, ops, 2, RS_CLOSE);
}

static int read_next(es__refl_stream *st, int with_metadata)
{
    grpc_op ops[2];
    size_t n = 0;
    memset(ops, 0, sizeof ops);
    if (with_metadata)
        ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[n].op = GRPC_OP_RECV_MESSAGE;
    ops[n++].data.recv_message.recv_message = &st->recv;
    return start(st, ops, n, RS_READ);
}

static int reply(es__refl_stream *st)
{
    grpc_byte_buffer_reader reader;
    if (!grpc_byte_buffer_reader_init(&reader, st->recv)) {
        grpc_byte_buffer_destroy(st->recv);
        st->recv = NULL;
        return close_stream(st);
    }
    grpc_slice all = grpc_byte_buffer_reader_readall(&reader);
    grpc_byte_buffer_reader_destroy(&reader);
    grpc_byte_buffer_destroy(st->recv);
    st->recv = NULL;

    es_buf out;
    es_buf_init(&out);
    answer(st->ix, GRPC_SLICE_START_PTR(all), GRPC_SLICE_LENGTH(all), &out);
    grpc_slice_unref(all);
    grpc_slice slice = grpc_slice_from_copied_buffer(out.data ? out.data : "", out.len);
    es_buf_free(&out);
    st->send = grpc_raw_byte_buffer_create(&slice, 1);
    grpc_slice_unref(slice);

    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_SEND_MESSAGE;
    op.data.send_message.send_message = st->send;
    return start(st, &op, 1, RS_WRITE);
}

int es__refl_stream_step(es__refl_stream *st, int ok)
{
    switch (st->state) {
    case RS_START:
        return read_next(st, 1);
    case RS_READ:
        if (!ok || !st->recv)
            return close_stream(st); /* half-close (or cancel): the stream is over */
        return reply(st);
    case RS_WRITE:
        grpc_byte_buffer_destroy(st->send);
        st->send = NULL;
        return ok ? read_next(st, 0) : close_stream(st);
    case RS_CLOSE:
    case RS_DONE:
        st->state = RS_DONE;
        return 1;
    }
    return 1;
}
