/* Shared by the libFuzzer targets in tests/fuzz: the JSON registry of the orders schema, a
 * message constructor, and the checks every decoded message goes through.
 *
 * A failed check is a bug: FUZZ_CHECK prints what broke and aborts, which libFuzzer reports as
 * a crash and saves the input. Each target is one file that includes this header once, so the
 * helpers are static. */
#ifndef FUZZ_COMMON_H
#define FUZZ_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "es/arena.h"
#include "es/buf.h"
#include "es/json.h"
#include "es/status.h"
#include "orders/v1/orders_v1.es.h"

#define FUZZ_CHECK(cond)                                                                        \
    do {                                                                                        \
        if (!(cond)) {                                                                          \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);            \
            abort();                                                                            \
        }                                                                                       \
    } while (0)

/* The generated packages the fuzz build links (tests/fuzz/CMakeLists.txt compiles them), as
 * orderd's es_linked_packages lists its own: *out borrows the static list; returns its length. */
static inline size_t fuzz_schemas(const es_schema *const **out)
{
    static const es_schema *const schemas[] = {&orders_v1_schema};
    *out = schemas;
    return sizeof schemas / sizeof *schemas;
}

/* The registry orderd builds at start (app/main.c): every package's schema and the well-known
 * types. Built once per process and never freed (it stays reachable, so LeakSanitizer is quiet). */
static inline const es_json_registry *fuzz_registry(void)
{
    static es_json_registry *reg;
    if (!reg) {
        reg = es_json_registry_new();
        const es_schema *const *schemas;
        size_t n = fuzz_schemas(&schemas);
        for (size_t i = 0; i < n; i++)
            es_json_registry_add_schema(reg, schemas[i]);
    }
    return reg;
}

/* A new, initialised message of type d in arena (what the HTTP server does for a request
 * without a body). */
static inline ProtobufCMessage *fuzz_message_new(const ProtobufCMessageDescriptor *d, es_arena *arena)
{
    ProtobufCMessage *m = es_arena_alloc(arena, d->sizeof_message);
    d->message_init(m);
    return m;
}

/* An es_error must hold NUL-terminated text after any failure. */
static inline void fuzz_check_error(const es_error *err, int rc)
{
    FUZZ_CHECK(err->code == rc);
    FUZZ_CHECK(memchr(err->field, '\0', sizeof err->field) != NULL);
    FUZZ_CHECK(memchr(err->message, '\0', sizeof err->message) != NULL);
}

/* Runs the method's generated validation: it must answer OK or INVALID_ARGUMENT, never crash. */
static inline void fuzz_validate(const es_method_def *m, const ProtobufCMessage *msg)
{
    if (!m->validate)
        return;
    es_error err = {0};
    int rc = m->validate(msg, &err);
    FUZZ_CHECK(rc == ES_OK || rc == ES_INVALID_ARGUMENT);
    if (rc != ES_OK)
        fuzz_check_error(&err, rc);
}

/* Encodes msg with opt. When must_encode (the message came from the JSON decoder, so every value
 * in it has a JSON form) the encoding must succeed. A successful encoding must decode again to a
 * message that encodes to the same text: encode . decode is a fixed point. On an encoding error
 * the buffer must be left as it was (empty). */
static inline void fuzz_json_roundtrip(const ProtobufCMessage *msg, const es_json_options *opt, int must_encode)
{
    const es_json_registry *reg = fuzz_registry();
    es_buf a, b;
    es_buf_init(&a);
    es_buf_init(&b);
    es_arena arena;
    es_arena_init(&arena);
    es_error err = {0};

    int rc = es_json_encode(reg, msg, opt, &a, &err);
    FUZZ_CHECK(rc == ES_OK || rc == ES_INVALID_ARGUMENT);
    if (rc != ES_OK) {
        if (must_encode)
            fprintf(stderr, "encode failed: %s: %s\n", err.field, err.message);
        FUZZ_CHECK(!must_encode);
        fuzz_check_error(&err, rc);
        FUZZ_CHECK(a.len == 0);
        goto out;
    }
    ProtobufCMessage *again = NULL;
    es_json_options dopt = {0};
    rc = es_json_decode(reg, msg->descriptor, a.data, a.len, &dopt, &arena, &again, &err);
    if (rc != ES_OK)
        fprintf(stderr, "re-decode of %.*s failed: %s: %s\n", (int)(a.len > 2000 ? 2000 : a.len), a.data,
                err.field, err.message);
    FUZZ_CHECK(rc == ES_OK && again != NULL);
    rc = es_json_encode(reg, again, opt, &b, &err);
    FUZZ_CHECK(rc == ES_OK);
    if (a.len != b.len || memcmp(a.data, b.data, a.len) != 0)
        fprintf(stderr, "not a fixed point:\n  %.*s\n  %.*s\n", (int)a.len, a.data, (int)b.len, b.data);
    FUZZ_CHECK(a.len == b.len && memcmp(a.data, b.data, a.len) == 0);
out:
    es_arena_free(&arena);
    es_buf_free(&a);
    es_buf_free(&b);
}

#endif
