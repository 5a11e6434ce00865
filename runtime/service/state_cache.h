/* Internal: the command pipeline's cache of recent stream states, which also serialises the
 * commands of one stream within this process.
 *
 * A command checks its stream out, works on the state, and checks it in with the new state
 * once its events committed (or with none when they did not). While a stream is checked out,
 * other commands for it wait for the check-in and then start from the newer state, so that
 * within one instance commands on one stream do not conflict on the version. Waiting is bounded:
 * after wait_ms a command goes ahead unserialised and optimistic concurrency (the unique stream
 * version in the store) keeps it correct. The cache holds only committed states, possibly stale
 * when another instance wrote since: the append then conflicts and the pipeline reloads. */
#ifndef ES_SERVICE_STATE_CACHE_H
#define ES_SERVICE_STATE_CACHE_H

#include <stddef.h>
#include <stdint.h>
#include <protobuf-c/protobuf-c.h>

typedef struct es__state_cache es__state_cache;

/* A cache of about cap states (cap >= 1; checked-out entries may exceed it). Free with
 * es__state_cache_free once nothing is checked out. */
es__state_cache *es__state_cache_new(size_t cap);
/* Frees every cached state. Accepts NULL. */
void es__state_cache_free(es__state_cache *c);

/* Checks stream_id out, waiting up to wait_ms while another command has it. *ticket receives
 * the check-out (0 when the wait timed out: the caller then runs unserialised). Returns 1 when
 * a state of type d at version >= min_version was cached: the caller owns *state and *version.
 * Returns 0 when the caller must load the state itself. Either way, end with
 * es__state_cache_checkin(c, stream_id, *ticket, ...). */
int es__state_cache_checkout(es__state_cache *c, const char *stream_id, const ProtobufCMessageDescriptor *d,
                             int64_t min_version, int wait_ms, uint64_t *ticket, ProtobufCMessage **state,
                             int64_t *version);

/* Ends a check-out. state (may be NULL: nothing worth keeping) is a committed state at version;
 * the cache takes ownership (freed with protobuf_c_message_free_unpacked). Wakes the stream's
 * waiters. With ticket 0 (or a stale one) the state is kept only if the stream is not checked
 * out and nothing newer is cached. */
void es__state_cache_checkin(es__state_cache *c, const char *stream_id, uint64_t ticket, ProtobufCMessage *state,
                             int64_t version);

#endif
