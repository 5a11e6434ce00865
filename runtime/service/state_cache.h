/* Internal: a bounded cache of recent stream states for the command pipeline.
 *
 * An entry is taken out while a command works on it (so no two threads mutate one state) and
 * put back, at its new version, after the command's events committed. A state that fails to
 * commit is simply freed: the cache only ever holds committed states, possibly stale when
 * another instance wrote since (the append then conflicts and the pipeline reloads). */
#ifndef ES_SERVICE_STATE_CACHE_H
#define ES_SERVICE_STATE_CACHE_H

#include <stddef.h>
#include <stdint.h>
#include <protobuf-c/protobuf-c.h>

typedef struct es__state_cache es__state_cache;

/* A cache of at most cap entries (cap >= 1). Free with es__state_cache_free. */
es__state_cache *es__state_cache_new(size_t cap);
/* Frees every cached state. Accepts NULL. */
void es__state_cache_free(es__state_cache *c);

/* Removes stream_id's entry and hands it to the caller (who then owns *state) when it is a
 * state of type d at a version >= min_version. Returns 1 when taken, 0 otherwise. */
int es__state_cache_take(es__state_cache *c, const char *stream_id, const ProtobufCMessageDescriptor *d,
                         int64_t min_version, ProtobufCMessage **state, int64_t *version);

/* Stores a committed state (takes ownership; freed with protobuf_c_message_free_unpacked).
 * An existing entry at a higher version wins and state is freed instead. Evicts the least
 * recently stored entry when full. */
void es__state_cache_put(es__state_cache *c, const char *stream_id, ProtobufCMessage *state,
                         int64_t version);

#endif
