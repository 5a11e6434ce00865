/* es_pb_unpack (es/pb_unpack.h): protobuf-c's unpack after a rewrite of the wire bytes that
 * applies protobuf's rule for a singular message field read more than once: the result is the
 * merge of the occurrences, and the merge of two encoded messages is their concatenation. So the
 * payloads of a field's occurrences are joined into one occurrence (and the join rewritten in
 * turn, since both halves may hold the same inner field), and protobuf-c never calls its
 * merge_messages, which mishandles oneofs. A oneof member's occurrences that another member of
 * the same oneof follows are dropped first: that member replaced them. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "es/arena.h"
#include "es/buf.h"
#include "es/pb_unpack.h"

/* ---- which message types need the rewrite ---- */

#define VISIT_MAX 256

static int reaches(const ProtobufCMessageDescriptor *d, const ProtobufCMessageDescriptor **seen, size_t *n)
{
    for (size_t i = 0; i < *n; i++)
        if (seen[i] == d) return 0;
    if (*n == VISIT_MAX) return 1;   /* more types than we follow: scan, which is always safe */
    seen[(*n)++] = d;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) return 1;
        if (f->type == PROTOBUF_C_TYPE_MESSAGE && reaches(f->descriptor, seen, n)) return 1;
    }
    return 0;
}

/* Kept out of line: its 2 KiB of visited list stays off the cached path's stack frame. */
static __attribute__((noinline)) int reaches_uncached(const ProtobufCMessageDescriptor *desc)
{
    const ProtobufCMessageDescriptor *seen[VISIT_MAX];
    size_t n = 0;
    return reaches(desc, seen, &n);
}

/* Answers cached per descriptor: a slot holds the descriptor's address with the answer in bit 0
 * (descriptors are pointer-aligned), so one atomic word carries both and a reader never sees a
 * key without its answer. A full probe run just means computing again. */
#define CACHE_SLOTS 512
#define CACHE_PROBES 8
static _Atomic uintptr_t cache[CACHE_SLOTS];

int es_pb_reaches_oneof(const ProtobufCMessageDescriptor *desc)
{
    uintptr_t key = (uintptr_t)desc;
    if (key & 1) return reaches_uncached(desc);
    size_t h = (size_t)(((uint64_t)key >> 3) * 0x9E3779B97F4A7C15ULL >> 40) & (CACHE_SLOTS - 1);
    for (int probe = 0; probe < CACHE_PROBES; probe++, h = (h + 1) & (CACHE_SLOTS - 1)) {
        uintptr_t v = atomic_load_explicit(&cache[h], memory_order_acquire);
        if (v && (v & ~(uintptr_t)1) == key) return (int)(v & 1);
        if (!v) {
            int r = reaches_uncached(desc);
            uintptr_t empty = 0;
            atomic_compare_exchange_strong_explicit(&cache[h], &empty, key | (uintptr_t)r, memory_order_acq_rel,
                                                    memory_order_acquire);
            return r;
        }
    }
    return reaches_uncached(desc);
}

/* ---- the wire ---- */

/* Reads a varint at p (before end); returns its length, 0 when malformed. */
static size_t get_varint(const uint8_t *p, const uint8_t *end, uint64_t *v)
{
    uint64_t r = 0;
    for (size_t i = 0; i < 10 && p + i < end; i++) {
        r |= (uint64_t)(p[i] & 0x7F) << (7 * i);
        if (!(p[i] & 0x80)) {
            *v = r;
            return i + 1;
        }
    }
    return 0;
}

static void put_varint(es_buf *b, uint64_t v)
{
    uint8_t t[10];
    size_t n = 0;
    do {
        t[n++] = (uint8_t)((v & 0x7F) | (v > 0x7F ? 0x80 : 0));
        v >>= 7;
    } while (v);
    es_buf_append(b, t, n);
}

/* One field occurrence in a message's bytes. */
typedef struct occ {
    const ProtobufCFieldDescriptor *f;   /* NULL: a field the descriptor does not know */
    size_t start, tag_end, pay, end;     /* offsets of the tag, past the tag, the payload, the next tag */
    unsigned char is_msg;                /* a message-typed field as a length-delimited record */
    unsigned char drop;                  /* a oneof message member another member of its oneof follows */
    unsigned char merge;                 /* one of several kept occurrences of a singular message field */
    unsigned char last;                  /* the last of those: the joined occurrence is written here */
} occ;

/* Splits data into occurrences. Returns 0, or -1 when the bytes are malformed or use groups
 * (protobuf-c 1.4.1 refuses groups): protobuf-c then gives its own verdict on the bytes as sent. */
static int scan(const ProtobufCMessageDescriptor *d, const uint8_t *data, size_t len, occ **out, size_t *n_out)
{
    const uint8_t *end = data + len;
    size_t n = 0, cap = 16;
    occ *o = es_xmalloc(cap * sizeof *o);
    for (size_t at = 0; at < len;) {
        uint64_t tag, plen = 0;
        size_t k = get_varint(data + at, end, &tag);
        if (!k || tag > UINT32_MAX || tag >> 3 == 0) goto malformed;
        occ x = {.start = at, .tag_end = at + k};
        at += k;
        switch (tag & 7) {
        case 0:
            if (!(k = get_varint(data + at, end, &plen))) goto malformed;
            at += k;
            break;
        case 1:
            if (len - at < 8) goto malformed;
            at += 8;
            break;
        case 5:
            if (len - at < 4) goto malformed;
            at += 4;
            break;
        case 2:
            if (!(k = get_varint(data + at, end, &plen)) || plen > len - at - k) goto malformed;
            at += k;
            x.pay = at;
            at += (size_t)plen;
            break;
        default: goto malformed;
        }
        x.end = at;
        x.f = protobuf_c_message_descriptor_get_field(d, (unsigned)(tag >> 3));
        x.is_msg = x.f && x.f->type == PROTOBUF_C_TYPE_MESSAGE && (tag & 7) == 2;
        if (n == cap) o = es_xrealloc(o, (cap *= 2) * sizeof *o);
        o[n++] = x;
    }
    *out = o;
    *n_out = n;
    return 0;
malformed:
    free(o);
    return -1;
}

/* The common case, checked without allocating: does any message in data (at any depth) hold a
 * singular message field twice, or a oneof message member with a oneof field after it? (The
 * second test is broader than needed: the rewrite then finds nothing to change, which is only
 * slower.) Returns 1 yes, 0 no or malformed (protobuf-c judges those bytes as sent), -1 too
 * deep. */
#define SEEN_WORDS 8   /* fields tracked by index; a message with more is always rewritten */
static int needs_rewrite(const ProtobufCMessageDescriptor *d, const uint8_t *data, size_t len, int depth)
{
    if (depth > ES_PB_MAX_DEPTH) return -1;
    if (d->n_fields > 64 * SEEN_WORDS) return 1;
    uint64_t seen[SEEN_WORDS] = {0};
    int oneof_msg_seen = 0;
    const uint8_t *end = data + len;
    for (size_t at = 0; at < len;) {
        uint64_t tag, plen = 0;
        size_t k = get_varint(data + at, end, &tag);
        if (!k || tag > UINT32_MAX || tag >> 3 == 0) return 0;
        at += k;
        switch (tag & 7) {
        case 0:
            if (!(k = get_varint(data + at, end, &plen))) return 0;
            at += k;
            plen = 0;
            break;
        case 1:
            if (len - at < 8) return 0;
            at += 8;
            break;
        case 5:
            if (len - at < 4) return 0;
            at += 4;
            break;
        case 2:
            if (!(k = get_varint(data + at, end, &plen)) || plen > len - at - k) return 0;
            at += k + (size_t)plen;
            break;
        default: return 0;
        }
        const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field(d, (unsigned)(tag >> 3));
        if (!f) continue;
        int oneof = (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) != 0;
        if (oneof && oneof_msg_seen) return 1;
        if (f->type != PROTOBUF_C_TYPE_MESSAGE || (tag & 7) != 2) continue;
        if (f->label != PROTOBUF_C_LABEL_REPEATED) {
            size_t i = (size_t)(f - d->fields);
            if (seen[i / 64] >> (i % 64) & 1) return 1;
            seen[i / 64] |= (uint64_t)1 << (i % 64);
        }
        oneof_msg_seen |= oneof;
        if (es_pb_reaches_oneof(f->descriptor)) {
            int r = needs_rewrite(f->descriptor, data + at - plen, (size_t)plen, depth + 1);
            if (r) return r;
        }
    }
    return 0;
}

/* Marks what the rewrite changes: dropped oneof members, then the occurrences to join. Returns
 * 1 when anything is marked. */
static int mark(const ProtobufCMessageDescriptor *d, occ *o, size_t n)
{
    int any = 0;
    /* From the end: per oneof (its case word's offset), the member last on the wire; a message
     * member's occurrence before another member's is dropped. */
    typedef struct oneof_state {
        unsigned qoff;
        const ProtobufCFieldDescriptor *last;
        int blocked;
    } oneof_state;
    oneof_state *st = es_xcalloc(d->n_fields ? d->n_fields : 1, sizeof *st);
    size_t nst = 0;
    for (size_t i = n; i-- > 0;) {
        const ProtobufCFieldDescriptor *f = o[i].f;
        if (!f || !(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)) continue;
        size_t s = 0;
        while (s < nst && st[s].qoff != f->quantifier_offset) s++;
        if (s == nst) st[nst++] = (oneof_state){.qoff = f->quantifier_offset};
        if (!st[s].last) {
            st[s].last = f;
        } else if (st[s].blocked || st[s].last != f) {
            st[s].blocked = 1;
            if (o[i].is_msg) o[i].drop = any = 1;
        }
    }
    free(st);
    /* Singular message fields kept more than once are joined at their last occurrence. */
    unsigned *count = es_xcalloc(d->n_fields ? d->n_fields : 1, sizeof *count);
    for (size_t i = 0; i < n; i++)
        if (o[i].is_msg && !o[i].drop && o[i].f->label != PROTOBUF_C_LABEL_REPEATED) count[o[i].f - d->fields]++;
    for (size_t i = n; i-- > 0;) {
        if (!o[i].is_msg || o[i].drop || o[i].f->label == PROTOBUF_C_LABEL_REPEATED) continue;
        unsigned *c = &count[o[i].f - d->fields];
        if (*c < 2) continue;
        o[i].merge = any = 1;
        if (*c != UINT32_MAX) {   /* the first seen from the end is the last occurrence */
            o[i].last = 1;
            *c = UINT32_MAX;
        }
    }
    free(count);
    return any;
}

static void put_record(es_buf *out, const uint8_t *data, const occ *o, const es_buf *payload)
{
    es_buf_append(out, data + o->start, o->tag_end - o->start);
    put_varint(out, payload->len);
    if (payload->len) es_buf_append(out, payload->data, payload->len);
}

/* Writes into out the bytes of a message of type d equal to data under protobuf's merge rules,
 * with no singular message field twice at any depth. Returns 1 when out holds a rewrite, 0 when
 * data needs none (out is then scrap), -1 when messages nest deeper than ES_PB_MAX_DEPTH. */
static int rewrite(const ProtobufCMessageDescriptor *d, const uint8_t *data, size_t len, int depth, es_buf *out)
{
    if (depth > ES_PB_MAX_DEPTH) return -1;
    occ *o;
    size_t n;
    if (scan(d, data, len, &o, &n)) return 0;
    int changed = mark(d, o, n), rc = 0;
    for (size_t i = 0; i < n; i++) {
        const occ *x = &o[i];
        if (x->drop || (x->merge && !x->last)) continue;
        if (!x->is_msg || (!x->merge && !es_pb_reaches_oneof(x->f->descriptor))) {
            es_buf_append(out, data + x->start, x->end - x->start);
            continue;
        }
        es_buf joined, sub;
        es_buf_init(&joined);
        es_buf_init(&sub);
        if (x->merge) {
            for (size_t j = 0; j <= i; j++)
                if (o[j].merge && o[j].f == x->f && o[j].end > o[j].pay)
                    es_buf_append(&joined, data + o[j].pay, o[j].end - o[j].pay);
        } else if (x->end > x->pay) {
            es_buf_append(&joined, data + x->pay, x->end - x->pay);
        }
        int r = rewrite(x->f->descriptor, (const uint8_t *)(joined.data ? joined.data : ""), joined.len, depth + 1,
                        &sub);
        if (r >= 0 && (r || x->merge)) put_record(out, data, x, r ? &sub : &joined);
        else if (r == 0) es_buf_append(out, data + x->start, x->end - x->start);
        es_buf_free(&joined);
        es_buf_free(&sub);
        if (r < 0) {
            rc = -1;
            goto done;
        }
        changed |= r;
    }
    rc = changed;
done:
    free(o);
    return rc;
}

ProtobufCMessage *es_pb_unpack(const ProtobufCMessageDescriptor *desc, ProtobufCAllocator *allocator, size_t len,
                               const uint8_t *data)
{
    if (!es_pb_reaches_oneof(desc)) return protobuf_c_message_unpack(desc, allocator, len, data);
    int r = needs_rewrite(desc, data, len, 0);
    if (r <= 0) return r < 0 ? NULL : protobuf_c_message_unpack(desc, allocator, len, data);
    es_buf b;
    es_buf_init(&b);
    r = rewrite(desc, data, len, 0, &b);
    ProtobufCMessage *m = NULL;
    if (r == 0) m = protobuf_c_message_unpack(desc, allocator, len, data);
    else if (r > 0) m = protobuf_c_message_unpack(desc, allocator, b.len, (const uint8_t *)(b.data ? b.data : ""));
    es_buf_free(&b);
    return m;
}
