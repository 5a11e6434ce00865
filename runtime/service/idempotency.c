/* Client idempotency keys: see idempotency.h. Why scoped and fingerprinted: a key is chosen by
 * the client, so two clients may pick the same one; answering the second with the first's
 * result would hand it another principal's order and silently drop its own request. */
#include "idempotency.h"

#include <stdio.h>
#include <string.h>

#include "es/hex.h"
#include "es/sha256.h"

void es__idem_scope(const char *actor, const char *method, const char *key, char out[ES_UUID_STRLEN + 1])
{
    /* Length-prefixed parts: no choice of actor, method and key can spell another triple. */
    char head[80];
    size_t la = strlen(actor), lm = strlen(method), lk = strlen(key);
    int n = snprintf(head, sizeof head, "%zu:%zu:%zu:", la, lm, lk);
    es_sha256 s;
    uint8_t d[32];
    char name[65];
    es_sha256_init(&s);
    es_sha256_update(&s, head, (size_t)n);
    es_sha256_update(&s, actor, la);
    es_sha256_update(&s, method, lm);
    es_sha256_update(&s, key, lk);
    es_sha256_final(&s, d);
    es_hex_encode(d, sizeof d, name);
    es_uuid_derive("es.idempotency-key.v1", name, out);
}

void es__idem_fingerprint(const ProtobufCMessage *req, const char *request_id, es_arena *arena, uint8_t out[32])
{
    ProtobufCMessage *m = (ProtobufCMessage *)req;
    char **slot = NULL;
    char *saved = NULL;
    if (request_id && request_id[0]) {
        const ProtobufCMessageDescriptor *d = m->descriptor;
        for (unsigned i = 0; i < d->n_fields; i++) {
            const ProtobufCFieldDescriptor *f = &d->fields[i];
            if (f->type != PROTOBUF_C_TYPE_STRING || f->label == PROTOBUF_C_LABEL_REPEATED)
                continue;
            char **p = (char **)((char *)m + f->offset);
            if (*p == request_id) {
                slot = p;
                break;
            }
        }
    }
    static char empty[] = "";
    if (slot) {
        saved = *slot;
        *slot = empty;
    }
    size_t len = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = es_arena_alloc(arena, len ? len : 1);
    protobuf_c_message_pack(m, buf);
    if (slot)
        *slot = saved;
    es_sha256 s;
    es_sha256_init(&s);
    es_sha256_update(&s, m->descriptor->name, strlen(m->descriptor->name) + 1);
    es_sha256_update(&s, buf, len);
    es_sha256_final(&s, out);
}
