/* A small JSON tree for generated documents (the OpenAPI output): objects keep insertion order,
 * so members can be completed in any order and printed once. Nodes live for the plugin's run. */
#ifndef CG_JSON_TREE_H
#define CG_JSON_TREE_H

#include "cg.h"

typedef enum { J_OBJ, J_ARR, J_STR, J_RAW } jkind;

typedef struct jv {
    jkind kind;
    char *s;                 /* J_STR: the text; J_RAW: the JSON token (number, true, false) */
    char **keys;             /* J_OBJ: keys in insertion order */
    struct jv **vals;        /* J_OBJ / J_ARR: members */
    size_t n, cap;
} jv;

jv *j_new(jkind k);
jv *j_str(const char *s);
jv *j_raw(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void j_grow(jv *c);
jv *j_get(const jv *o, const char *key);
jv *j_put(jv *o, const char *key, jv *v);
jv *j_kv(const char *key, jv *v);
void j_del(jv *o, const char *key);
jv *j_push(jv *a, jv *v);
void j_string(cg_out *o, const char *s);
long j_flat_len(const jv *v, int top);
void j_print(cg_out *o, const jv *v, int indent);
jv *j_obj(void);
jv *j_arr(void);

#endif
