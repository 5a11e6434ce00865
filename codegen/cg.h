/* protoc-gen-es: shared model of the CodeGeneratorRequest and output helpers.
 *
 * The plugin reads every file protoc hands it into one model (messages, enums, services with
 * their es options decoded), checks the annotations, then emits C tables, SQL and the embedded
 * descriptor set for each package that has annotated messages or services. */
#ifndef CG_H
#define CG_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "google/protobuf/descriptor.pb-c.h"
#include "google/protobuf/compiler/plugin.pb-c.h"
#include "google/api/http.pb-c.h"
#include "es/options.pb-c.h"

typedef Google__Protobuf__FileDescriptorProto cg_file_proto;
typedef Google__Protobuf__DescriptorProto cg_msg_proto;
typedef Google__Protobuf__FieldDescriptorProto cg_field_proto;
typedef Google__Protobuf__EnumDescriptorProto cg_enum_proto;

typedef struct cg_message cg_message;
typedef struct cg_enum cg_enum;

typedef struct cg_file {
    const cg_file_proto *fd;
    const char *name;        /* "orders/v1/events.proto" */
    const char *package;     /* "orders.v1" */
    int generate;            /* listed in file_to_generate */
} cg_file;

struct cg_enum {
    const cg_enum_proto *ed;
    char *full;              /* "orders.v1.OrderStatus" */
    char *c_upper;           /* "ORDERS__V1__ORDER_STATUS" */
    char *c_lower;           /* "orders__v1__order_status" */
    const char *prefix;      /* common value prefix "ORDER_STATUS_" (may be "") */
    cg_file *file;
};

typedef struct cg_field {
    const cg_field_proto *fd;
    const char *name;
    Es__FieldOptions *opt;   /* NULL when the field has no (es.field) */
    cg_message *msg_type;    /* for message fields */
    cg_enum *enum_type;      /* for enum fields */
    int repeated;
    int has_presence;        /* proto2 optional scalar: has_<name> member */
} cg_field;

struct cg_message {
    const cg_msg_proto *d;
    char *full;              /* "orders.v1.OrderPlaced" */
    char *c_type;            /* "Orders__V1__OrderPlaced" */
    char *c_lower;           /* "orders__v1__order_placed" */
    const char *name;        /* "OrderPlaced" */
    cg_file *file;
    cg_field *fields;
    size_t n_fields;
    int map_entry;
    Es__AggregateOptions *agg;
    Es__EventOptions *event;
    Es__CommandOptions *cmd;
    Es__ProjectionOptions *proj;
};

typedef struct cg_method {
    const Google__Protobuf__MethodDescriptorProto *md;
    const char *name;
    cg_message *input, *output;
    Google__Api__HttpRule *http;   /* NULL when the method has no google.api.http */
    Es__AccessOptions *access;     /* NULL when the method has no (es.access) */
} cg_method;

typedef struct cg_service {
    const Google__Protobuf__ServiceDescriptorProto *sd;
    char *full;
    cg_file *file;
    cg_method *methods;
    size_t n_methods;
} cg_service;

typedef struct cg_model {
    const Google__Protobuf__Compiler__CodeGeneratorRequest *req;
    cg_file *files; size_t n_files;
    cg_message **messages; size_t n_messages;
    cg_enum **enums; size_t n_enums;
    cg_service **services; size_t n_services;
} cg_model;

/* An output file being written. */
typedef struct cg_out {
    char *name;
    char *data;
    size_t len, cap;
} cg_out;

/* The set of outputs and the first error (the plugin reports one error and stops). */
typedef struct cg_ctx {
    cg_model model;
    cg_out **outs; size_t n_outs;
    char *error;             /* set once; the response carries it */
} cg_ctx;

/* model.c */
int cg_model_load(cg_ctx *ctx, const Google__Protobuf__Compiler__CodeGeneratorRequest *req);
cg_message *cg_find_message(const cg_model *m, const char *full);
cg_enum *cg_find_enum(const cg_model *m, const char *full);
cg_field *cg_find_field(const cg_message *m, const char *name);
/* The enum value number whose name is `name` or prefix+name; -1 when absent. */
int cg_enum_value(const cg_enum *e, const char *name, const char **full_name);
const char *cg_file_basename(const char *path);
/* Records the first error as "file: message M: text" and returns -1. */
int cg_fail(cg_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The aggregate whose streams a method acts on or reads (its command's aggregate; for a query,
 * the package's one aggregate whose id_field is a string field of the request), or NULL. */
cg_message *cg_method_aggregate(const cg_model *m, const cg_method *me);
/* The state field that names the owner of a stream for role ("role=field" in owners), or NULL. */
const char *cg_owner_field(const cg_message *state, const char *role, size_t role_len);

/* comments.c: the comment attached to an element of a file (source_code_info path), one
 * paragraph per blank line, "" when none; malloc'd. */
char *cg_comment_at(const cg_file *f, const int32_t *path, size_t n);
size_t cg_enum_path(const cg_file *f, const cg_enum_proto *ed, int32_t *path);
char *cg_message_comment(const cg_message *m);
char *cg_field_comment(const cg_message *m, const cg_field *f);

/* checks.c: validates the annotations; returns -1 after cg_fail on the first problem. */
int cg_check(cg_ctx *ctx);

/* emit.c */
cg_out *cg_open(cg_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* An output that is not written to a file (for text assembled before it is embedded). */
cg_out *cg_scratch(void);
void cg_printf(cg_out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void cg_write(cg_out *o, const void *p, size_t n);
char *cg_strdup(const char *s);
char *cg_sprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "OrderPlaced" -> "order_placed" (protoc-c's CamelToLower). */
char *cg_camel_to_lower(const char *s);
char *cg_to_upper(const char *s);
/* Escapes s as a C string literal body. */
void cg_c_string(cg_out *o, const char *s);
/* lowerCamelCase json name as protoc derives it. */
char *cg_json_name(const char *s);

/* gen_c.c, gen_sql.c, gen_descriptor.c */
int cg_gen_package(cg_ctx *ctx, const char *package);
int cg_gen_sql(cg_ctx *ctx, const char *package, cg_out *o);
/* gen_descriptor.c: the package's files and their imports only (so packages hash apart). */
int cg_gen_descriptor_set(cg_ctx *ctx, const char *package, cg_out *o, const char *symbol, char hash_hex[17]);
/* gen_migrate.c: the forward steps of the package's projection tables from the released schema
 * (plugin parameter baseline=<descriptor set>): writes sql/<base>_migrations.sql and, when there
 * are steps, a static migration_steps[] table into c; *n_steps and the baseline's name (fnv1a64
 * of its projection DDL, "" without a baseline). Refuses what cannot be migrated in place. */
int cg_gen_migrations(cg_ctx *ctx, const char *package, const char *base, cg_out *c, int *n_steps, char hash_hex[17]);
/* gen_openapi.c: openapi/<pkg>.openapi.json and <pkg>.openapi.{h,c} for a package with a service. */
int cg_gen_openapi(cg_ctx *ctx, const char *package);

/* The messages of a package that carry a given option, in declaration order. */
size_t cg_package_messages(const cg_model *m, const char *package, cg_message ***out);



/* checks.c helpers shared with the generators */
cg_message *cg_find_aggregate(const cg_model *m, const char *name);
int cg_same_type(const cg_field *a, const cg_field *b);
int cg_parse_assignment(cg_ctx *ctx, const cg_message *owner, const char *what, const cg_message *state,
                        const char *entry, cg_field **field_out, int *value_out);
/* A derived (es.event) sets entry, "state_field+=1" or "state_field+=event_field". */
typedef struct cg_increment {
    cg_field *state_field;   /* an integer field of the state */
    cg_field *event_field;   /* the integer event field added, or NULL for a constant step */
    long long step;          /* the constant step when event_field is NULL */
} cg_increment;
/* Returns 1 when entry is not an increment (no "+="), 0 with *out filled, -1 after cg_fail. */
int cg_parse_increment(cg_ctx *ctx, const cg_message *ev, const cg_message *state, const char *entry,
                       cg_increment *out);
const char *cg_sql_type(const cg_field *f);
void cg_gen_projection_ddl(cg_ctx *ctx, const cg_message *m, cg_out *o);
#endif
