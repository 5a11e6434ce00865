/* The gRPC connection gate (grpc_gate.h): accepts plaintext gRPC connections, refuses those over
 * the limits and hands the rest to grpc, then watches each handed connection until it is over.
 *
 * One thread, one epoll set: the listening socket (level-triggered), an eventfd that stops the
 * thread, and a duplicate descriptor of every handed connection registered for no event at all,
 * edge-triggered, so it reports only HUP/ERR: the moment grpc shuts the socket down (it always
 * does before closing it) or the peer resets it. Data arriving for grpc does not wake the gate.
 *
 * The table of open connections is a flat array scanned linearly on accept (count per address)
 * and on a client-cancelled call (find by grpc's descriptor number): both are rare next to the
 * calls themselves, and the array is bounded by max_connections. */
#define _GNU_SOURCE /* accept4, pthread_setname_np */
#include "grpc_gate.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <grpc/grpc_posix.h>

#include "es/arena.h"
#include "es/log.h"

#define TAG_LISTEN UINT64_MAX
#define TAG_STOP (UINT64_MAX - 1)

typedef struct gate_conn {
    int used;
    int watch_fd;               /* the gate's duplicate; -1 once closed */
    int grpc_fd;                /* the descriptor grpc owns, as in its peer name "fd:N" */
    uint8_t addr[16];           /* IPv6, or IPv4-mapped */
    time_t reset_second;        /* the second resets are being counted in */
    unsigned resets;
    int cut;                    /* shut down by the gate (rapid resets) */
} gate_conn;

/* An address whose connection was cut for rapid resets, refused until `until`. */
typedef struct gate_ban {
    uint8_t addr[16];
    struct timespec until;
} gate_ban;

struct es__grpc_gate {
    int listen_fd, stop_fd, epfd;
    int port;
    unsigned max_connections, max_per_client, max_resets, ban_ms;
    grpc_server *server;
    grpc_server_credentials *creds;
    pthread_t thread;
    int running;

    pthread_mutex_t mu;         /* guards everything below */
    gate_conn *conns;
    size_t n_conns, cap_conns;  /* slots in use or freed below n_conns */
    size_t open;
    gate_ban *bans;
    size_t n_bans, cap_bans;
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
        int one = 1, zero = 0;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
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

es__grpc_gate *es__grpc_gate_new(const char *address, unsigned max_connections, unsigned max_per_client,
                                 unsigned max_resets_per_second, unsigned reset_ban_ms, es_error *err)
{
    int port = 0;
    int fd = bind_listener(address, &port);
    if (fd < 0) {
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
    g->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    g->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (g->stop_fd < 0 || g->epfd < 0)
        es_oom(); /* only when the process is out of descriptors at start-up */
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = TAG_LISTEN};
    epoll_ctl(g->epfd, EPOLL_CTL_ADD, g->listen_fd, &ev);
    ev.data.u64 = TAG_STOP;
    epoll_ctl(g->epfd, EPOLL_CTL_ADD, g->stop_fd, &ev);
    pthread_mutex_init(&g->mu, NULL);
    return g;
}

int es__grpc_gate_port(const es__grpc_gate *g) { return g->port; }

static void peer_key(const struct sockaddr_storage *ss, uint8_t out[16])
{
    memset(out, 0, 16);
    if (ss->ss_family == AF_INET6) {
        memcpy(out, &((const struct sockaddr_in6 *)ss)->sin6_addr, 16);
    } else if (ss->ss_family == AF_INET) {
        out[10] = out[11] = 0xff;
        memcpy(out + 12, &((const struct sockaddr_in *)ss)->sin_addr, 4);
    }
}

static int ts_before(const struct timespec *a, const struct timespec *b)
{
    return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

/* Under mu: whether key is banned now; expired bans are dropped on the way. */
static int banned(es__grpc_gate *g, const uint8_t key[16])
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    int hit = 0;
    for (size_t i = 0; i < g->n_bans;) {
        if (ts_before(&g->bans[i].until, &now)) {
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
    clock_gettime(CLOCK_MONOTONIC, &b->until);
    b->until.tv_sec += g->ban_ms / 1000;
    b->until.tv_nsec += (long)(g->ban_ms % 1000) * 1000000L;
    if (b->until.tv_nsec >= 1000000000L) {
        b->until.tv_sec++;
        b->until.tv_nsec -= 1000000000L;
    }
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
                struct timespec ts = {0, 10 * 1000000L};
                nanosleep(&ts, NULL);
            }
            return; /* EAGAIN, or a connection that died in the backlog */
        }
        uint8_t key[16];
        peer_key(&ss, key);
        pthread_mutex_lock(&g->mu);
        uint64_t *refused = refusal(g, key);
        if (refused) {
            (*refused)++;
            pthread_mutex_unlock(&g->mu);
            close(fd);
            continue;
        }
        int watch = fcntl(fd, F_DUPFD_CLOEXEC, 0);
        if (watch < 0) {
            pthread_mutex_unlock(&g->mu);
            close(fd);
            continue;
        }
        size_t i = slot_take(g);
        g->conns[i] = (gate_conn){.used = 1, .watch_fd = watch, .grpc_fd = fd};
        memcpy(g->conns[i].addr, key, 16);
        g->open++;
        pthread_mutex_unlock(&g->mu);
        /* grpc's own listener sets TCP_NODELAY; a handed socket must get it here, or small
         * responses wait for Nagle's delayed ACK. */
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct epoll_event ev = {.events = EPOLLET, .data.u64 = i};
        epoll_ctl(g->epfd, EPOLL_CTL_ADD, watch, &ev);
        grpc_server_add_channel_from_fd(g->server, fd, g->creds); /* grpc owns fd from here */
    }
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

void es__grpc_gate_call_reset(es__grpc_gate *g, int fd)
{
    time_t now = time(NULL);
    pthread_mutex_lock(&g->mu);
    for (size_t i = 0; i < g->n_conns; i++) {
        gate_conn *c = &g->conns[i];
        if (!c->used || c->grpc_fd != fd)
            continue;
        if (c->reset_second != now) {
            c->reset_second = now;
            c->resets = 0;
        }
        if (++c->resets > g->max_resets && !c->cut) {
            /* Both directions: grpc's reads fail at once and it tears the transport down, which
             * also ends the calls in flight; the HUP then retires the entry. */
            c->cut = 1;
            shutdown(c->watch_fd, SHUT_RDWR);
            g->closed_rapid_reset++;
            /* grpc has read (and queued as calls) whatever the client sent before the cut: a
             * client reconnecting at once would queue another burst, so its address waits. */
            ban(g, c->addr);
        }
        break;
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
    pthread_mutex_destroy(&g->mu);
    free(g->conns);
    free(g->bans);
    free(g);
}
