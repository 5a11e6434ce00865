/* Internal to runtime/net: the gRPC connection gate. It owns the listening socket of a plaintext
 * gRPC port, accepts each TCP connection itself and either refuses it (closed before any HTTP/2
 * byte: too many open connections, in all or from the client's IP address) or hands it to grpc
 * with grpc_server_add_channel_from_fd. grpc core 1.51 has no per-connection hook of its own.
 *
 * grpc owns the handed socket from then on; the gate keeps a duplicate descriptor of it only to
 * learn when the connection is over (grpc shuts the socket down before closing it, which raises
 * HUP on every descriptor of it) and to cut a connection off (shutdown) when its client resets
 * streams faster than allowed. */
#ifndef ES_GRPC_GATE_H
#define ES_GRPC_GATE_H

#include <stddef.h>
#include <stdint.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include "es/status.h"

typedef struct es__grpc_gate es__grpc_gate;

typedef struct es__grpc_gate_stats {
    size_t open;                    /* connections handed to grpc and not yet over */
    uint64_t refused_total;         /* refused: max_connections open */
    uint64_t refused_client;        /* refused: max_per_client open from the same address */
    uint64_t refused_banned;        /* refused: the address had a connection cut for resets */
    uint64_t closed_rapid_reset;    /* cut off: more than max_resets_per_second */
} es__grpc_gate_stats;

/* Binds and listens on address ("host:port", "[v6]:port"; port 0: any free port). Returns NULL
 * with err filled (ES_UNAVAILABLE) when the address cannot be bound. The limits must be > 0. An
 * address whose connection was cut for resets is refused for reset_ban_ms. */
es__grpc_gate *es__grpc_gate_new(const char *address, unsigned max_connections, unsigned max_per_client,
                                 unsigned max_resets_per_second, unsigned reset_ban_ms, es_error *err);

/* The bound port. */
int es__grpc_gate_port(const es__grpc_gate *g);

/* Starts the gate's thread, which hands admitted sockets to server (borrowed; started already)
 * with creds (borrowed, insecure; both must outlive es__grpc_gate_stop). */
void es__grpc_gate_start(es__grpc_gate *g, grpc_server *server, grpc_server_credentials *creds);

/* Counts a call its client cancelled on the connection grpc knows as descriptor fd (its peer
 * name "fd:N", read when the call was accepted). A connection over max_resets_per_second in one
 * second is shut down. Any thread. */
void es__grpc_gate_call_reset(es__grpc_gate *g, int fd);

void es__grpc_gate_stats_get(const es__grpc_gate *g, es__grpc_gate_stats *out);

/* Stops accepting (the listening socket is closed) and forgets the open connections (grpc keeps
 * serving them until its own shutdown closes them). Call before grpc's shutdown. Idempotent. */
void es__grpc_gate_stop(es__grpc_gate *g);

/* Stops (if needed) and frees. NULL is ok. */
void es__grpc_gate_free(es__grpc_gate *g);

#endif
