/* Request strings of the gRPC transport: see grpc_wire.h. */
#include "grpc_wire.h"

#include <stdio.h>
#include <string.h>

#include "es/utf8.h"

/* ---- request strings ----
 * proto3 requires a string field to hold valid UTF-8, and protobuf-c checks neither that nor an
 * embedded NUL on unpack (its strings are NUL-terminated: "a\0b" silently became "a"). A request
 * with such bytes would be stored in events that no JSON reader (the audit trail, the events'
 * JSON column) can render, or stored other than sent. So the request bytes are walked once,
 * with the method's descriptors, before they are unpacked, and a bad string is refused naming
 * its field, as the HTTP transport's JSON decoder refuses it. */

/* 1 when s[0..n) is valid UTF-8 (es_utf8_valid: no overlong forms, surrogates, or code points
 * above U+10FFFF) without a NUL byte. */
static int utf8_valid(const unsigned char *s, size_t n)
{
    return memchr(s, 0, n) == NULL && es_utf8_valid((const char *)s, n);
}

/* Reads a varint at p[*i..n); returns -1 when it does not end in time. */
static int read_varint(const uint8_t *p, size_t n, size_t *i, uint64_t *v)
{
    *v = 0;
    for (unsigned shift = 0; shift < 64 && *i < n; shift += 7) {
        uint8_t b = p[(*i)++];
        *v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            return 0;
    }
    return -1;
}

/* Walks the wire form p[0..n) of a message of type d: every string field must be valid UTF-8
 * without NUL; message fields are walked in turn. path[0..plen) is the message's field path.
 * Returns ES_OK (also for input protobuf-c will refuse: the unpack that follows says so) or
 * ES_INVALID_ARGUMENT with err naming the field ("items[1].product_id"). */
int es__grpc_check_wire(const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t n, char *path, size_t plen,
                      unsigned depth, es_error *err)
{
    unsigned seen[64] = {0};   /* elements met so far of each repeated field, by position */
    size_t i = 0;
    if (depth > 100)
        return ES_OK;
    while (i < n) {
        uint64_t tag, len;
        if (read_varint(p, n, &i, &tag) != 0)
            return ES_OK;
        switch (tag & 7) {
        case 0:
            if (read_varint(p, n, &i, &len) != 0)
                return ES_OK;
            continue;
        case 1:
            i += 8;
            continue;
        case 5:
            i += 4;
            continue;
        case 2:
            break;
        default:
            return ES_OK;   /* groups: no message here has them */
        }
        if (read_varint(p, n, &i, &len) != 0 || len > n - i)
            return ES_OK;
        const ProtobufCFieldDescriptor *f =
            tag >> 3 <= UINT32_MAX ? protobuf_c_message_descriptor_get_field(d, (unsigned)(tag >> 3)) : NULL;
        if (f && (f->type == PROTOBUF_C_TYPE_STRING || f->type == PROTOBUF_C_TYPE_MESSAGE)) {
            size_t pos = (size_t)(f - d->fields);
            int w = f->label == PROTOBUF_C_LABEL_REPEATED
                        ? snprintf(path + plen, ES_GRPC_PATH_MAX - plen, "%s%s[%u]", plen ? "." : "", f->name,
                                   pos < 64 ? seen[pos] : 0)
                        : snprintf(path + plen, ES_GRPC_PATH_MAX - plen, "%s%s", plen ? "." : "", f->name);
            size_t nl = w < 0 ? plen : plen + (size_t)w;
            if (nl >= ES_GRPC_PATH_MAX)
                nl = ES_GRPC_PATH_MAX - 1;
            if (pos < 64)
                seen[pos]++;
            if (f->type == PROTOBUF_C_TYPE_STRING) {
                if (!utf8_valid(p + i, (size_t)len))
                    return es_error_set(err, ES_INVALID_ARGUMENT, path, "%s is not valid UTF-8 (or holds a NUL)", path);
            } else {
                int rc = es__grpc_check_wire(f->descriptor, p + i, (size_t)len, path, nl, depth + 1, err);
                if (rc != ES_OK)
                    return rc;
            }
            path[plen] = '\0';
        }
        i += (size_t)len;
    }
    return ES_OK;
}
