/* Shared by the C table generator's files (gen_c.c, gen_validate.c): one package being emitted. */
#ifndef CG_GEN_C_H
#define CG_GEN_C_H

#include "cg.h"

#define T(x) GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_##x

typedef struct pkg {
    cg_ctx *ctx;
    const char *package;   /* "orders.v1" */
    char *prefix;          /* "orders_v1_" */
    char *dir;             /* "orders/v1/" */
    cg_message **msgs;
    size_t n_msgs;
    cg_out *h, *c;
} pkg;

/* gen_validate.c: validators (field rules from (es.field)) and canonicalisers (uuid fields). */
int cg_needs_validation(const cg_message *m, int depth);
int cg_needs_canon(const pkg *p, const cg_message *m, int depth);
void cg_emit_regexes(pkg *p);
void cg_emit_validators(pkg *p);
void cg_emit_canonicalizers(pkg *p);
/* gen_ctor.c: <prefix>new_<Message>(es_arena *) for the package's messages and the messages of
 * other packages its fields name. */
void cg_emit_constructors(pkg *p);
/* gen_reactor.c: per aggregate, <prefix><agg>_reactor (one typed handler per event) and its
 * dispatch; after the aggregates' tables. */
void cg_emit_reactors(pkg *p);

#endif
