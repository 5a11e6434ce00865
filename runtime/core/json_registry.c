/* The type registry of the JSON codec (message descriptors by full name, for Any) and the
 * json_name rules (override tables from the generator, else protoc's lowerCamelCase rule).
 * A registry is built once at start-up and then only read, so two open-addressing hash tables
 * without deletion are enough; readers need no lock. */
#include <stdlib.h>
#include <string.h>

#include "google/protobuf/any.pb-c.h"
#include "google/protobuf/duration.pb-c.h"
#include "google/protobuf/empty.pb-c.h"
#include "google/protobuf/field_mask.pb-c.h"
#include "google/protobuf/struct.pb-c.h"
#include "google/protobuf/timestamp.pb-c.h"
#include "google/protobuf/wrappers.pb-c.h"
#include "json_internal.h"

typedef struct slot {
    const void *key;      /* descriptor (names table) or NULL */
    const void *value;
} slot;

struct es_json_registry {
    const ProtobufCMessageDescriptor **msgs;   /* hashed by name */
    size_t msg_cap, msg_n;
    slot *names;                               /* descriptor -> es_json_names, hashed by pointer */
    size_t names_cap, names_n;
};

static const ProtobufCMessageDescriptor *const wkt_descriptors[] = {
    &google__protobuf__any__descriptor,          &google__protobuf__duration__descriptor,
    &google__protobuf__empty__descriptor,        &google__protobuf__field_mask__descriptor,
    &google__protobuf__struct__descriptor,       &google__protobuf__value__descriptor,
    &google__protobuf__list_value__descriptor,   &google__protobuf__timestamp__descriptor,
    &google__protobuf__double_value__descriptor, &google__protobuf__float_value__descriptor,
    &google__protobuf__int64_value__descriptor,  &google__protobuf__uint64_value__descriptor,
    &google__protobuf__int32_value__descriptor,  &google__protobuf__uint32_value__descriptor,
    &google__protobuf__bool_value__descriptor,   &google__protobuf__string_value__descriptor,
    &google__protobuf__bytes_value__descriptor,
};

static size_t hash_str(const char *s)
{
    size_t h = 1469598103934665603ULL;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static size_t hash_ptr(const void *p)
{
    uintptr_t x = (uintptr_t)p;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return (size_t)x;
}

static void msgs_insert(es_json_registry *r, const ProtobufCMessageDescriptor *d);

static void msgs_grow(es_json_registry *r)
{
    const ProtobufCMessageDescriptor **old = r->msgs;
    size_t old_cap = r->msg_cap;
    r->msg_cap = old_cap ? old_cap * 2 : 64;
    r->msgs = es_xcalloc(r->msg_cap, sizeof *r->msgs);
    r->msg_n = 0;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i]) msgs_insert(r, old[i]);
    free(old);
}

/* Inserts d unless a descriptor of that name is there; returns 1 when inserted. */
static int msgs_insert_new(es_json_registry *r, const ProtobufCMessageDescriptor *d)
{
    if ((r->msg_n + 1) * 2 > r->msg_cap) msgs_grow(r);
    size_t i = hash_str(d->name) & (r->msg_cap - 1);
    while (r->msgs[i]) {
        if (r->msgs[i] == d || !strcmp(r->msgs[i]->name, d->name)) return 0;
        i = (i + 1) & (r->msg_cap - 1);
    }
    r->msgs[i] = d;
    r->msg_n++;
    return 1;
}

static void msgs_insert(es_json_registry *r, const ProtobufCMessageDescriptor *d) { msgs_insert_new(r, d); }

es_json_registry *es_json_registry_new(void)
{
    es_json_registry *r = es_xcalloc(1, sizeof *r);
    for (size_t i = 0; i < sizeof wkt_descriptors / sizeof *wkt_descriptors; i++)
        es_json_registry_add_message(r, wkt_descriptors[i]);
    return r;
}

void es_json_registry_free(es_json_registry *r)
{
    if (!r) return;
    free(r->msgs);
    free(r->names);
    free(r);
}

/* Message types reachable through fields are added too, with an explicit work list so that a
 * deep or recursive schema cannot exhaust the stack. */
void es_json_registry_add_message(es_json_registry *r, const ProtobufCMessageDescriptor *d)
{
    if (!r || !d) return;
    size_t n = 0, cap = 16;
    const ProtobufCMessageDescriptor **work = es_xmalloc(cap * sizeof *work);
    if (msgs_insert_new(r, d)) work[n++] = d;
    while (n) {
        const ProtobufCMessageDescriptor *m = work[--n];
        for (unsigned i = 0; i < m->n_fields; i++) {
            const ProtobufCFieldDescriptor *f = &m->fields[i];
            if (f->type != PROTOBUF_C_TYPE_MESSAGE || !f->descriptor) continue;
            if (!msgs_insert_new(r, f->descriptor)) continue;
            if (n == cap) work = es_xrealloc(work, (cap *= 2) * sizeof *work);
            work[n++] = f->descriptor;
        }
    }
    free(work);
}

void es_json_registry_add_names(es_json_registry *r, const es_json_names *names)
{
    if (!r || !names || !names->descriptor) return;
    if ((r->names_n + 1) * 2 > r->names_cap) {
        slot *old = r->names;
        size_t old_cap = r->names_cap;
        r->names_cap = old_cap ? old_cap * 2 : 32;
        r->names = es_xcalloc(r->names_cap, sizeof *r->names);
        r->names_n = 0;
        for (size_t i = 0; i < old_cap; i++)
            if (old[i].key) es_json_registry_add_names(r, old[i].value);
        free(old);
    }
    size_t i = hash_ptr(names->descriptor) & (r->names_cap - 1);
    while (r->names[i].key && r->names[i].key != names->descriptor) i = (i + 1) & (r->names_cap - 1);
    if (!r->names[i].key) r->names_n++;
    r->names[i].key = names->descriptor;
    r->names[i].value = names;
    es_json_registry_add_message(r, names->descriptor);
}

void es_json_registry_add_schema(es_json_registry *r, const es_schema *s)
{
    if (!r || !s) return;
    for (size_t i = 0; i < s->n_messages; i++) es_json_registry_add_message(r, s->messages[i]);
    for (size_t i = 0; i < s->n_json_names; i++) es_json_registry_add_names(r, &s->json_names[i]);
}

const ProtobufCMessageDescriptor *es_json_registry_find(const es_json_registry *r, const char *full_name)
{
    if (!full_name) return NULL;
    if (!r) {
        for (size_t i = 0; i < sizeof wkt_descriptors / sizeof *wkt_descriptors; i++)
            if (!strcmp(wkt_descriptors[i]->name, full_name)) return wkt_descriptors[i];
        return NULL;
    }
    if (!r->msg_cap) return NULL;
    size_t i = hash_str(full_name) & (r->msg_cap - 1);
    while (r->msgs[i]) {
        if (!strcmp(r->msgs[i]->name, full_name)) return r->msgs[i];
        i = (i + 1) & (r->msg_cap - 1);
    }
    return NULL;
}

const char *es__json_name_override(const es_json_registry *r, const ProtobufCMessageDescriptor *d,
                                   unsigned idx)
{
    if (!r || !r->names_cap) return NULL;
    size_t i = hash_ptr(d) & (r->names_cap - 1);
    while (r->names[i].key) {
        if (r->names[i].key == d) {
            const es_json_names *t = r->names[i].value;
            return t->json_names && idx < d->n_fields ? t->json_names[idx] : NULL;
        }
        i = (i + 1) & (r->names_cap - 1);
    }
    return NULL;
}

/* protoc's ToJsonName: drop each '_' and upper-case the letter after it. */
void es__json_put_camel(es_buf *b, const char *s)
{
    int up = 0;
    for (; *s; s++) {
        if (*s == '_') {
            up = 1;
        } else if (up) {
            es_buf_putc(b, (*s >= 'a' && *s <= 'z') ? (char)(*s - 32) : *s);
            up = 0;
        } else {
            es_buf_putc(b, *s);
        }
    }
}

/* Compares key with the lowerCamelCase form of name without building it. */
static int camel_eq(const char *name, const char *key, size_t klen)
{
    size_t k = 0;
    int up = 0;
    for (; *name; name++) {
        if (*name == '_') { up = 1; continue; }
        char c = *name;
        if (up && c >= 'a' && c <= 'z') c = (char)(c - 32);
        up = 0;
        if (k >= klen || key[k] != c) return 0;
        k++;
    }
    return k == klen;
}

const ProtobufCFieldDescriptor *es__json_find_field(const es_json_registry *r,
                                                    const ProtobufCMessageDescriptor *d,
                                                    const char *key, size_t klen)
{
    if (strlen(key) != klen) return NULL;   /* a key with a NUL in it names no field */
    const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(d, key);
    if (f) return f;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const char *ov = es__json_name_override(r, d, i);
        if (ov ? !strcmp(ov, key) : camel_eq(d->fields[i].name, key, klen)) return &d->fields[i];
    }
    return NULL;
}

const ProtobufCFieldDescriptor *es__json_field_by_id(const ProtobufCMessageDescriptor *d, unsigned id)
{
    return protobuf_c_message_descriptor_get_field(d, id);
}

/* protobuf-c descriptors do not carry the map_entry option, so a map is recognised by the shape
 * protoc gives it: a repeated field whose message type is nested in the owner, is named after the
 * field in CamelCase plus "Entry", and has exactly key = 1 and value = 2. */
int es__json_is_map(const ProtobufCMessageDescriptor *owner, const ProtobufCFieldDescriptor *f)
{
    if (f->label != PROTOBUF_C_LABEL_REPEATED || f->type != PROTOBUF_C_TYPE_MESSAGE) return 0;
    const ProtobufCMessageDescriptor *e = f->descriptor;
    if (!e || e->n_fields != 2 || e->fields[0].id != 1 || e->fields[1].id != 2) return 0;
    if (strcmp(e->fields[0].name, "key") || strcmp(e->fields[1].name, "value")) return 0;
    size_t on = strlen(owner->name);
    if (strncmp(e->name, owner->name, on) || e->name[on] != '.' || strcmp(e->name + on + 1, e->short_name))
        return 0;
    /* CamelCase(field) + "Entry" */
    const char *s = e->short_name, *n = f->name;
    int up = 1;
    for (; *n; n++) {
        if (*n == '_') { up = 1; continue; }
        char c = *n;
        if (up && c >= 'a' && c <= 'z') c = (char)(c - 32);
        up = 0;
        if (*s++ != c) return 0;
    }
    return !strcmp(s, "Entry");
}
