/* Request metadata shared by the transports (see net_common.h). */
#include "net_common.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

static int printable(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
            return 0;
    return 1;
}

int es__call_set_meta(es_call *call, enum es__meta which, const char *name, const char *value,
                      size_t len, es_error *err)
{
    /* HTTP allows optional whitespace around a field value. */
    while (len && (value[0] == ' ' || value[0] == '\t'))
        value++, len--;
    while (len && (value[len - 1] == ' ' || value[len - 1] == '\t'))
        len--;
    if (which == ES__META_AUTHORIZATION) {
        if (len < 7 || strncasecmp(value, "Bearer ", 7) != 0)
            return es_error_set(err, ES_UNAUTHENTICATED, name,
                                "%s: only the Bearer scheme is accepted", name);
        value += 7, len -= 7;
        while (len && value[0] == ' ')
            value++, len--;
        if (len == 0 || len > 4096 || !printable(value, len))
            return es_error_set(err, ES_UNAUTHENTICATED, name, "%s: malformed bearer token", name);
        call->authorization = es_arena_strndup(&call->arena, value, len);
        return ES_OK;
    }
    if (len == 0 || len > ES__NET_MAX_KEY || !printable(value, len))
        return es_error_set(err, ES_INVALID_ARGUMENT, name,
                            "%s must be 1 to %d printable ASCII characters", name, ES__NET_MAX_KEY);
    char *copy = es_arena_strndup(&call->arena, value, len);
    if (which == ES__META_IDEMPOTENCY_KEY)
        call->idempotency_key = copy;
    else
        call->correlation_id = copy;
    return ES_OK;
}

ProtobufCMessage *es__message_new(const ProtobufCMessageDescriptor *d, es_arena *arena)
{
    ProtobufCMessage *m = es_arena_alloc(arena, d->sizeof_message);
    d->message_init(m);
    return m;
}

void es__error_text(const es_error *err, char *out, size_t cap)
{
    const char *msg = err->message[0] ? err->message : es_strerror(err->code);
    if (err->field[0] && !strstr(msg, err->field))
        snprintf(out, cap, "%s: %s", err->field, msg);
    else
        snprintf(out, cap, "%s", msg);
}
