/* Internal to runtime/net: the gRPC connection gate. It admits or refuses every gRPC connection
 * (refused: closed before any HTTP/2 or TLS byte, for too many open connections, in all or from
 * the client's IP address, or a banned address). On a plaintext port it owns the listening socket,
 * accepts each TCP connection itself and hands the admitted ones to grpc with
 * grpc_server_add_channel_from_fd. grpc core 1.51 takes a ready socket only without TLS, so on a
 * TLS port grpc's listener accepts and the gate decides in grpc's socket mutator
 * (es__grpc_gate_server_arg), which grpc calls on each accepted socket before using it.
 *
 * grpc owns an admitted socket; the gate keeps a duplicate descriptor of it only to learn when
 * the connection is over (grpc shuts the socket down before closing it, which raises HUP on every
 * descriptor of it) and to cut a connection off (shutdown) when its client resets streams faster
 * than allowed. */
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

/* How grpc names the connection of a call (grpc_call_get_peer): "fd:N" for a socket the gate
 * handed over, "ipv4:a.b.c.d:port" / "ipv6:[...]:port" for one grpc's listener accepted. */
typedef struct es__grpc_peer {
    int fd;                     /* -1: named by address and port */
    uint16_t port;
    uint8_t addr[16];           /* IPv6, or IPv4-mapped */
    size_t slot;                /* set by es__grpc_gate_call_start: the gate's entry */
    uint64_t serial;            /* 0: not started */
} es__grpc_peer;

/* Parses grpc's peer name into out: 0, or -1 when it names neither (out->fd is -1 then and the
 * address all zero: it matches no connection). */
int es__grpc_peer_parse(const char *peer, es__grpc_peer *out);

/* With an address: binds and listens on it ("host:port", "[v6]:port"; port 0: any free port);
 * returns NULL with err filled (ES_UNAVAILABLE) when it cannot be bound. Without (NULL): the gate
 * of a port grpc listens on itself (TLS), reached through es__grpc_gate_server_arg. The limits
 * must be > 0. An address whose connection was cut for resets is refused for reset_ban_ms. A
 * connection on which grpc holds more than max_calls calls at once is cut the same way: its
 * client can have at most max_concurrent_streams streams open, so the others were reset. */
es__grpc_gate *es__grpc_gate_new(const char *address, unsigned max_connections, unsigned max_per_client,
                                 unsigned max_resets_per_second, unsigned reset_ban_ms, unsigned max_calls,
                                 es_error *err);

/* The bound port. */
int es__grpc_gate_port(const es__grpc_gate *g);

/* The channel argument (GRPC_ARG_SOCKET_MUTATOR) that puts the gate in front of grpc's own
 * listener: pass it to grpc_server_create before grpc_server_add_http2_port. It points into g,
 * so g must outlive the grpc server (es__grpc_gate_free after grpc_server_destroy). */
grpc_arg es__grpc_gate_server_arg(es__grpc_gate *g);

/* Starts the gate's thread, which watches admitted connections and, with a listening socket,
 * hands admitted sockets to server (borrowed; started already) with creds (borrowed, insecure;
 * both must outlive es__grpc_gate_stop). Without a listening socket both may be NULL. */
void es__grpc_gate_start(es__grpc_gate *g, grpc_server *server, grpc_server_credentials *creds);

/* Counts a call its client cancelled on the connection grpc named peer (read when the call was
 * accepted: once grpc has cancelled a call its peer reads "unknown"). A connection over
 * max_resets_per_second in one second is shut down and its address banned. Any thread. */
void es__grpc_gate_call_reset(es__grpc_gate *g, const es__grpc_peer *peer);

/* A call grpc handed over on the connection it named peer (parsed by es__grpc_peer_parse):
 * 1 to serve it (peer then remembers the gate's entry: call es__grpc_gate_call_end when the call
 * is freed), 0 to drop it without a batch: its connection is over, cut, or just went over
 * max_calls and was cut. Any thread. */
int es__grpc_gate_call_start(es__grpc_gate *g, es__grpc_peer *peer);

/* The call of a successful es__grpc_gate_call_start is freed. Any thread. */
void es__grpc_gate_call_end(es__grpc_gate *g, const es__grpc_peer *peer);

void es__grpc_gate_stats_get(const es__grpc_gate *g, es__grpc_gate_stats *out);

/* Stops accepting (the listening socket is closed) and forgets the open connections (grpc keeps
 * serving them until its own shutdown closes them). Call before grpc's shutdown. Idempotent. */
void es__grpc_gate_stop(es__grpc_gate *g);

/* Stops (if needed) and frees. NULL is ok. */
void es__grpc_gate_free(es__grpc_gate *g);

#endif
