/* The gRPC connection gate (grpc_gate.h): admits or refuses every gRPC connection, then watches
 * each admitted one until it is over.
 *
 * On a plaintext port the gate owns the listening socket: it accepts, refuses those over the
 * limits and hands the rest to grpc. On a TLS port grpc 1.51 must accept itself (it takes a
 * ready socket only without TLS), so the gate sits in grpc's socket mutator, which grpc calls on
 * every socket it accepts before anything is read or written: a refused socket is shut down
 * there, and grpc's handshake then fails on it without a byte exchanged. Same limits, same
 * counters, same watch; see docs/ARCHITECTURE.md, "Invariants" (10).
 *
 * One thread, one epoll set: the listening socket when there is one (level-triggered), an
 * eventfd that stops the thread, and a duplicate descriptor of every admitted connection
 * registered for no event at all, edge-triggered, so it reports only HUP/ERR: the moment grpc
 * shuts the socket down (it always does before closing it) or the peer resets it. Data arriving
 * for grpc does not wake the gate.
 *
 * The table of open connections is a flat array scanned linearly on accept (count per address)
 * and on a client-cancelled call (find by grpc's name for the connection): both are rare next to
 * the calls themselves, and the array is bounded by max_connections. */
#define _GNU_SOURCE /* accept4, pthread_setname_np */
#include "grpc_gate.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <grpc/grpc_posix.h>
#include <grpc/support/sync.h>

#include "es/arena.h"
#include "es/clock.h"
#include "es/log.h"

/* grpc 1.51's socket mutator, whose header (src/core/lib/iomgr/socket_mutator.h) Debian does not
 * install; the public headers declare the type and GRPC_ARG_SOCKET_MUTATOR only. grpc calls
 * mutate_fd_2 with the usage of every socket it creates or accepts when it is set; a false return
 * on an accepted socket would stop grpc's listener for good, so the gate always returns true. */
enum { GATE_FD_SERVER_LISTENER_USAGE = 1, GATE_FD_SERVER_CONNECTION_USAGE = 2 };
typedef struct gate_mutate_info {
    int fd;
    int usage;
} gate_mutate_info;
typedef struct gate_mutator_vtable {
    bool (*mutate_fd)(int fd, grpc_socket_mutator *m);
    int (*compare)(grpc_socket_mutator *a, grpc_socket_mutator *b);
    void (*destroy)(grpc_socket_mutator *m);
    bool (*mutate_fd_2)(const gate_mutate_info *info, grpc_socket_mutator *m);
} gate_mutator_vtable;
struct grpc_socket_mutator {
    const gate_mutator_vtable *vtable;
    gpr_refcount refcount;
};
/* grpc's copies of the channel arguments hold references to the mutator and may drop the last
 * one after the grpc server is destroyed, so it lives apart from the gate and frees itself. No
 * connection is accepted once grpc's shutdown has completed (it waits for its listeners), which
 * is before the gate is freed and the pointer cleared. */
typedef struct gate_mutator {
    grpc_socket_mutator base;
    es__grpc_gate *_Atomic gate;
} gate_mutator;

/* The receive buffer of every gRPC socket (set on the listening socket: accepted ones inherit it
 * and their TCP window is sized from it). A client can then have at most about this much sent and
 * not yet read by grpc: a rapid-reset burst beyond it waits in the client's own buffers, where the
 * cut discards it, instead of in orderd's, where grpc would go on parsing it into calls. Requests
 * are small; a large one just takes more round trips. */
#define GATE_RCVBUF (64 * 1024)

#define TAG_LISTEN UINT64_MAX
#define TAG_STOP (UINT64_MAX - 1)

typedef struct gate_conn {
    int used;
    int watch_fd;               /* the gate's duplicate; -1 once closed */
    int grpc_fd;                /* plaintext: the descriptor grpc owns, as in its peer name "fd:N" */
    uint8_t addr[16];           /* IPv6, or IPv4-mapped */
    uint16_t port;              /* the peer's port: grpc names a connection it accepted by both */
    int64_t reset_second;       /* the (monotonic) second resets are being counted in */
    unsigned resets;
    unsigned calls;             /* calls grpc handed over and not yet freed */
    uint64_t serial;            /* tells this connection from a later one in the same slot */
    int cut;                    /* shut down by the gate (rapid resets) */
} gate_conn;

/* An address whose connection was cut for rapid resets, refused until `until`. */
typedef struct gate_ban {
    uint8_t addr[16];
    int64_t until_us;           /* es_mono_us */
} gate_ban;

struct es__grpc_gate {
    int listen_fd, stop_fd, epfd;
    int port;
    unsigned max_connections, max_per_client, max_resets, ban_ms, max_calls;
    uint64_t next_serial;
    grpc_server *server;
    grpc_server_credentials *creds;
    pthread_t thread;
    int running;
    gate_mutator *mutator;      /* TLS: grpc's listener admits through it */

    pthread_mutex_t mu;         /* guards everything below */
    gate_conn *conns;
    size_t n_conns, cap_conns;  /* slots in use or freed below n_conns */
    size_t open;
    gate_ban *bans;
    size_t n_bans, cap_bans;
    int stopped;
    uint64_t refused_total, refused_client, refused_banned, closed_rapid_reset;
};

/* Splits "host:port" / "[v6]:port" into host (NULL: any) and port. */
static int split_address(const char *address, char *host, size_t hcap, char *port, size_t pcap)
{
    const char *colon = strrchr(address, ':');
    if (!colon || !colon[1] || strlen(colon + 1) >= pcap)
        return -1;
    size_t hl = (size_t)(colon - address);
    const char *h = address;
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']')
        h++, hl -= 2;
    if (hl >= hcap)
        return -1;
    memcpy(host, h, hl);
    host[hl] = '\0';
    strcpy(port, colon + 1);
    return 0;
}

static int bind_listener(const char *address, int *port_out)
{
    char host[256], port[16];
    if (split_address(address, host, sizeof host, port, sizeof port) != 0)
        return -1;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *res = NULL;
    if (getaddrinfo(host[0] ? host : NULL, port, &hints, &res) != 0)
        return -1;
    int fd = -1;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
            continue;
        int one = 1, zero = 0, rcvbuf = GATE_RCVBUF;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
        if (ai->ai_family == AF_INET6) /* "[::]" serves IPv4 clients too, as grpc's listener did */
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 1024) != 0) {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0)
        return -1;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    *port_out = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                               : ((struct sockaddr_in *)&ss)->sin_port);
    return fd;
}

static bool mutate_fd(int fd, grpc_socket_mutator *m);
static bool mutate_fd_2(const gate_mutate_info *info, grpc_socket_mutator *m);
static int mutator_compare(grpc_socket_mutator *a, grpc_socket_mutator *b) { return a < b ? -1 : a > b; }
static void mutator_destroy(grpc_socket_mutator *m) { free(m); }
static const gate_mutator_vtable mutator_vtable = {
    .mutate_fd = mutate_fd, .compare = mutator_compare, .destroy = mutator_destroy, .mutate_fd_2 = mutate_fd_2};

es__grpc_gate *es__grpc_gate_new(const char *address, unsigned max_connections, unsigned max_per_client,
                                 unsigned max_resets_per_second, unsigned reset_ban_ms, unsigned max_calls,
                                 es_error *err)
{
    int port = 0, fd = -1;
    if (address && (fd = bind_listener(address, &port)) < 0) {
        es_error_set(err, ES_UNAVAILABLE, "address", "cannot listen on %s: %s", address, strerror(errno));
        return NULL;
    }
    es__grpc_gate *g = es_xcalloc(1, sizeof *g);
    g->listen_fd = fd;
    g->port = port;
    g->max_connections = max_connections;
    g->max_per_client = max_per_client;
    g->max_resets = max_resets_per_second;
    g->ban_ms = reset_ban_ms;
    g->max_calls = max_calls;
    g->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    g->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (g->stop_fd < 0 || g->epfd < 0)
        es_oom(); /* only when the process is out of descriptors at start-up */
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = TAG_LISTEN};
    if (fd >= 0)
        epoll_ctl(g->epfd, EPOLL_CTL_ADD, g->listen_fd, &ev);
    ev.data.u64 = TAG_STOP;
    epoll_ctl(g->epfd, EPOLL_CTL_ADD, g->stop_fd, &ev);
    pthread_mutex_init(&g->mu, NULL);
    g->mutator = es_xcalloc(1, sizeof *g->mutator);
    g->mutator->base.vtable = &mutator_vtable;
    gpr_ref_init(&g->mutator->base.refcount, 1); /* the gate's own reference */
    atomic_store(&g->mutator->gate, g);
    return g;
}

int es__grpc_gate_port(const es__grpc_gate *g) { return g->port; }

/* grpc copies its channel arguments (and with them the mutator) into every listener and
 * connection; each copy holds a reference, as grpc's own socket mutators do. */
static void *arg_copy(void *p)
{
    gpr_ref(&((grpc_socket_mutator *)p)->refcount);
    return p;
}
static void mutator_unref(grpc_socket_mutator *m)
{
    if (gpr_unref(&m->refcount))
        m->vtable->destroy(m);
}
static void arg_destroy(void *p) { mutator_unref(p); }
static int arg_cmp(void *a, void *b) { return a < b ? -1 : a > b; }
static const grpc_arg_pointer_vtable arg_vtable = {arg_copy, arg_destroy, arg_cmp};

grpc_arg es__grpc_gate_server_arg(es__grpc_gate *g)
{
    grpc_arg a;
    memset(&a, 0, sizeof a);
    a.type = GRPC_ARG_POINTER;
    a.key = (char *)GRPC_ARG_SOCKET_MUTATOR;
    a.value.pointer.p = &g->mutator->base;
    a.value.pointer.vtable = &arg_vtable;
    return a;
}

static void peer_key(const struct sockaddr_storage *ss, uint8_t out[16], uint16_t *port)
{
    memset(out, 0, 16);
    *port = 0;
    if (ss->ss_family == AF_INET6) {
        memcpy(out, &((const struct sockaddr_in6 *)ss)->sin6_addr, 16);
        *port = ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
    } else if (ss->ss_family == AF_INET) {
        out[10] = out[11] = 0xff;
        memcpy(out + 12, &((const struct sockaddr_in *)ss)->sin_addr, 4);
        *port = ntohs(((const struct sockaddr_in *)ss)->sin_port);
    }
}

int es__grpc_peer_parse(const char *peer, es__grpc_peer *out)
{
    memset(out, 0, sizeof *out);
    out->fd = -1;
    if (!peer)
        return -1;
    if (strncmp(peer, "fd:", 3) == 0) {
        char *end;
        long fd = strtol(peer + 3, &end, 10);
        if (end == peer + 3 || *end || fd < 0 || fd > 1 << 30)
            return -1;
        out->fd = (int)fd;
        return 0;
    }
    /* "ipv4:1.2.3.4:5" and "ipv6:[::1]:5" (grpc_sockaddr_to_uri) */
    int v6 = strncmp(peer, "ipv6:[", 6) == 0;
    if (!v6 && strncmp(peer, "ipv4:", 5) != 0)
        return -1;
    const char *host = peer + (v6 ? 6 : 5);
    const char *colon = strrchr(host, ':');
    if (!colon)
        return -1;
    size_t hl = (size_t)(colon - host) - (v6 ? 1 : 0);
    char buf[64];
    if (hl >= sizeof buf || (v6 && colon[-1] != ']'))
        return -1;
    memcpy(buf, host, hl);
    buf[hl] = '\0';
    char *pct = strchr(buf, '%'); /* a scope id: the address is what counts */
    if (pct)
        *pct = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port < 0 || port > 65535)
        return -1;
    out->port = (uint16_t)port;
    if (v6)
        return inet_pton(AF_INET6, buf, out->addr) == 1 ? 0 : -1;
    out->addr[10] = out->addr[11] = 0xff;
    return inet_pton(AF_INET, buf, out->addr + 12) == 1 ? 0 : -1;
}

/* Under mu: whether key is banned now; expired bans are dropped on the way. */
static int banned(es__grpc_gate *g, const uint8_t key[16])
{
    int64_t now = es_mono_us();
    int hit = 0;
    for (size_t i = 0; i < g->n_bans;) {
        if (g->bans[i].until_us <= now) {
            g->bans[i] = g->bans[--g->n_bans];
            continue;
        }
        if (memcmp(g->bans[i].addr, key, 16) == 0)
            hit = 1;
        i++;
    }
    return hit;
}

/* Under mu: refuses key's new connections for ban_ms. The list holds at most one entry per
 * address, and only addresses whose connections were cut, each cut costing the client a burst
 * of streams. */
static void ban(es__grpc_gate *g, const uint8_t key[16])
{
    if (banned(g, key))
        return;
    if (g->n_bans == g->cap_bans) {
        g->cap_bans = g->cap_bans ? g->cap_bans * 2 : 16;
        g->bans = es_xrealloc(g->bans, g->cap_bans * sizeof *g->bans);
    }
    gate_ban *b = &g->bans[g->n_bans++];
    memcpy(b->addr, key, 16);
    b->until_us = es_mono_us() + (int64_t)g->ban_ms * 1000;
}

/* Under mu: 0 when the connection may be admitted, else the refusal counter to bump. */
static uint64_t *refusal(es__grpc_gate *g, const uint8_t key[16])
{
    if (g->n_bans && banned(g, key))
        return &g->refused_banned;
    if (g->open >= g->max_connections)
        return &g->refused_total;
    unsigned same = 0;
    for (size_t i = 0; i < g->n_conns; i++)
        if (g->conns[i].used && memcmp(g->conns[i].addr, key, 16) == 0)
            same++;
    return same >= g->max_per_client ? &g->refused_client : NULL;
}

/* Under mu: a free slot's index. */
static size_t slot_take(es__grpc_gate *g)
{
    for (size_t i = 0; i < g->n_conns; i++)
        if (!g->conns[i].used)
            return i;
    if (g->n_conns == g->cap_conns) {
        g->cap_conns = g->cap_conns ? g->cap_conns * 2 : 64;
        g->conns = es_xrealloc(g->conns, g->cap_conns * sizeof *g->conns);
    }
    return g->n_conns++;
}

/* Admits the connected socket fd (from ss) or refuses it: 1 when admitted and watched, 0 when
 * refused (counted). grpc_fd is the descriptor grpc will name the connection by ("fd:N"), or -1
 * when grpc names it by its peer address (TLS). Any thread. */
static int admit(es__grpc_gate *g, int fd, const struct sockaddr_storage *ss, int grpc_fd)
{
    uint8_t key[16];
    uint16_t port;
    peer_key(ss, key, &port);
    pthread_mutex_lock(&g->mu);
    if (g->stopped) { /* grpc is shutting down and closes it */
        pthread_mutex_unlock(&g->mu);
        return 1;
    }
    uint64_t *refused = refusal(g, key);
    if (refused) {
        (*refused)++;
        pthread_mutex_unlock(&g->mu);
        return 0;
    }
    int watch = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (watch < 0) {
        pthread_mutex_unlock(&g->mu);
        return 0;
    }
    size_t i = slot_take(g);
    g->conns[i] = (gate_conn){.used = 1, .watch_fd = watch, .grpc_fd = grpc_fd, .port = port, .serial = ++g->next_serial};
    memcpy(g->conns[i].addr, key, 16);
    g->open++;
    struct epoll_event ev = {.events = EPOLLET, .data.u64 = i};
    epoll_ctl(g->epfd, EPOLL_CTL_ADD, watch, &ev);
    pthread_mutex_unlock(&g->mu);
    return 1;
}

static void accept_all(es__grpc_gate *g)
{
    for (;;) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int fd = accept4(g->listen_fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* Out of descriptors: the pending connection stays in the backlog; back off
                 * instead of spinning on a listening socket that stays readable. */
                es_sleep_us(10 * 1000);
            }
            return; /* EAGAIN, or a connection that died in the backlog */
        }
        if (!admit(g, fd, &ss, fd)) {
            close(fd);
            continue;
        }
        /* grpc's own listener sets TCP_NODELAY; a handed socket must get it here, or small
         * responses wait for Nagle's delayed ACK. */
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        grpc_server_add_channel_from_fd(g->server, fd, g->creds); /* grpc owns fd from here */
    }
}

/* grpc's listener (TLS) calls this on every socket it accepts, before reading or writing it. */
static bool mutate_fd_2(const gate_mutate_info *info, grpc_socket_mutator *m)
{
    if (info->usage == GATE_FD_SERVER_LISTENER_USAGE) {
        int rcvbuf = GATE_RCVBUF;
        setsockopt(info->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
        return true;
    }
    if (info->usage != GATE_FD_SERVER_CONNECTION_USAGE)
        return true;
    es__grpc_gate *g = atomic_load(&((gate_mutator *)m)->gate);
    if (!g)
        return true;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    memset(&ss, 0, sizeof ss);
    getpeername(info->fd, (struct sockaddr *)&ss, &sl);
    if (!admit(g, info->fd, &ss, -1))
        shutdown(info->fd, SHUT_RDWR); /* grpc's TLS handshake then ends on EOF, no byte sent */
    return true;
}

static bool mutate_fd(int fd, grpc_socket_mutator *m)
{
    (void)fd, (void)m; /* only called for other usages when mutate_fd_2 is set */
    return true;
}

static void conn_over(es__grpc_gate *g, size_t i)
{
    pthread_mutex_lock(&g->mu);
    gate_conn *c = &g->conns[i];
    if (c->used) {
        epoll_ctl(g->epfd, EPOLL_CTL_DEL, c->watch_fd, NULL);
        close(c->watch_fd);
        c->used = 0;
        g->open--;
    }
    pthread_mutex_unlock(&g->mu);
}

static void *gate_thread(void *arg)
{
    es__grpc_gate *g = arg;
    pthread_setname_np(pthread_self(), "es-grpc-gate");
    struct epoll_event evs[64];
    for (;;) {
        int n = epoll_wait(g->epfd, evs, 64, -1);
        if (n < 0 && errno != EINTR)
            break;
        for (int k = 0; k < n; k++) {
            uint64_t tag = evs[k].data.u64;
            if (tag == TAG_STOP)
                return NULL;
            if (tag == TAG_LISTEN)
                accept_all(g);
            else if (evs[k].events & EPOLLHUP)
                conn_over(g, (size_t)tag);
        }
    }
    return NULL;
}

void es__grpc_gate_start(es__grpc_gate *g, grpc_server *server, grpc_server_credentials *creds)
{
    g->server = server;
    g->creds = creds;
    int e = pthread_create(&g->thread, NULL, gate_thread, g);
    if (e != 0)
        es_no_thread("gRPC connection gate", e);
    g->running = 1;
}

/* Under mu: the open connection grpc names p, or NULL. */
static gate_conn *find_conn(es__grpc_gate *g, const es__grpc_peer *p)
{
    if (p->serial) /* es__grpc_gate_call_start found it */
        return p->slot < g->n_conns && g->conns[p->slot].used && g->conns[p->slot].serial == p->serial
                   ? &g->conns[p->slot] : NULL;
    for (size_t i = 0; i < g->n_conns; i++) {
        gate_conn *c = &g->conns[i];
        if (c->used && (p->fd >= 0 ? c->grpc_fd == p->fd : c->port == p->port && memcmp(c->addr, p->addr, 16) == 0))
            return c;
    }
    return NULL;
}

/* Under mu, on a connection just cut: throws away what its client sent and grpc has not read
 * yet. Linux keeps a socket's queued bytes readable after shutdown(SHUT_RD), so without this grpc
 * would go on reading the rest of a burst from the kernel's buffer (megabytes: thousands of
 * streams) and queue a call for each, ahead of other clients' calls. Whatever arrives after the
 * shutdown is answered by the kernel with a reset. */
static void drain(int fd)
{
    static char sink[65536]; /* only ever written: contents never read */
    for (size_t total = 0; total < (64u << 20);) {
        ssize_t r = recv(fd, sink, sizeof sink, MSG_DONTWAIT);
        if (r <= 0)
            break;
        total += (size_t)r;
    }
}

/* Under mu: cuts c off (rapid reset) and bans its address. */
static void cut(es__grpc_gate *g, gate_conn *c)
{
    /* Both directions, then the queued bytes drained: grpc's next read sees EOF and it tears the
     * transport down, which also ends the calls in flight; the HUP (at once, the socket being
     * shut both ways) retires the entry. */
    c->cut = 1;
    shutdown(c->watch_fd, SHUT_RDWR);
    drain(c->watch_fd);
    g->closed_rapid_reset++;
    /* grpc has read (and queued as calls) what it had read before the cut: a client reconnecting
     * at once would queue another burst, so its address waits. */
    ban(g, c->addr);
}

int es__grpc_gate_call_start(es__grpc_gate *g, es__grpc_peer *p)
{
    pthread_mutex_lock(&g->mu);
    gate_conn *c = find_conn(g, p);
    int ok = c && !c->cut;
    if (ok) {
        p->slot = (size_t)(c - g->conns);
        p->serial = c->serial;
        /* More calls held than the client may have streams open: it closed (reset) streams
         * whose calls grpc still holds. Counted here, as grpc hands each call over, rather than
         * when its cancellation comes back: that comes through the connection's own queue in
         * grpc, behind the parsing of the rest of the burst. */
        if (++c->calls > g->max_calls) {
            cut(g, c);
            ok = 0;
        }
    } else if (!c && g->stopped) {
        ok = 1; /* the gate no longer knows; grpc's shutdown decides */
    }
    pthread_mutex_unlock(&g->mu);
    return ok;
}

void es__grpc_gate_call_end(es__grpc_gate *g, const es__grpc_peer *p)
{
    if (!p->serial)
        return;
    pthread_mutex_lock(&g->mu);
    gate_conn *c = find_conn(g, p);
    if (c && c->calls)
        c->calls--;
    pthread_mutex_unlock(&g->mu);
}

void es__grpc_gate_call_reset(es__grpc_gate *g, const es__grpc_peer *p)
{
    int64_t now = es_mono_us() / 1000000;
    pthread_mutex_lock(&g->mu);
    gate_conn *c = find_conn(g, p);
    if (c) {
        if (c->reset_second != now) {
            c->reset_second = now;
            c->resets = 0;
        }
        if (++c->resets > g->max_resets && !c->cut)
            cut(g, c);
    }
    pthread_mutex_unlock(&g->mu);
}

void es__grpc_gate_stats_get(const es__grpc_gate *g, es__grpc_gate_stats *out)
{
    es__grpc_gate *m = (es__grpc_gate *)g;
    pthread_mutex_lock(&m->mu);
    out->open = m->open;
    out->refused_total = m->refused_total;
    out->refused_client = m->refused_client;
    out->refused_banned = m->refused_banned;
    out->closed_rapid_reset = m->closed_rapid_reset;
    pthread_mutex_unlock(&m->mu);
}

void es__grpc_gate_stop(es__grpc_gate *g)
{
    if (!g)
        return;
    if (g->running) {
        uint64_t one = 1;
        if (write(g->stop_fd, &one, sizeof one) < 0)
            es_log(ES_LOG_ERROR, "grpc", NULL, "cannot wake the connection gate: %s", strerror(errno));
        pthread_join(g->thread, NULL);
        g->running = 0;
    }
    /* Under mu: a completion-queue thread may still count a reset and must not shut down a
     * descriptor number closed here and reused since. */
    pthread_mutex_lock(&g->mu);
    g->stopped = 1;
    if (g->listen_fd >= 0) {
        close(g->listen_fd);
        g->listen_fd = -1;
    }
    for (size_t i = 0; i < g->n_conns; i++)
        if (g->conns[i].used) {
            close(g->conns[i].watch_fd);
            g->conns[i].used = 0;
        }
    g->open = 0;
    pthread_mutex_unlock(&g->mu);
}

void es__grpc_gate_free(es__grpc_gate *g)
{
    if (!g)
        return;
    es__grpc_gate_stop(g);
    close(g->stop_fd);
    close(g->epfd);
    atomic_store(&g->mutator->gate, NULL);
    mutator_unref(&g->mutator->base);
    pthread_mutex_destroy(&g->mu);
    free(g->conns);
    free(g->bans);
    free(g);
}
