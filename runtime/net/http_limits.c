/* Limits that stop one HTTP client from holding the server's resources (es/http_server.h):
 * connections per client address, and on HTTP/2 the request-body timeout, the stalled-window
 * timeout, the cap on unsent response bytes and the stream-reset rate.
 *
 * libh2o 2.2.5 has none of these (its HTTP/2 executes every HEADERS+RST_STREAM pair, the
 * "rapid reset" of CVE-2023-44487, and keeps every response a zero-window peer never reads), so
 * they are built on what it does expose: the accepted socket, and the HTTP/2 connection and
 * stream structures of h2o/http2_internal.h, read on the loop thread that owns them. A periodic
 * check per loop measures each connection; the reset rate is counted frame by frame by wrapping
 * the connection's frame parser (_read_expect), which h2o calls for every frame it reads.
 *
 * A connection is closed by shutdown(2) of its socket, never by freeing h2o's objects under it:
 * h2o sees the error on its next read or write (a PING is queued so that there is a write) and
 * closes the connection itself, releasing its streams, their requests and responses. */
#include "http_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <linux/sockios.h>
#include <netinet/in.h>

#include "es/clock.h"
#include "es/metrics.h"

#define CLIENT_BUCKETS 1024

/* Open connections of one client address. */
typedef struct client_count {
    struct client_count *next;
    unsigned char addr[16];
    uint8_t len;
    unsigned n;
} client_count;

static const char *const close_reasons[ES__HTTP_CLOSE_REASONS] = {
    "client_connection_limit", "body_timeout", "stalled", "pending_bytes", "rapid_reset",
};

static uint64_t now_ms(void) { return (uint64_t)(es_mono_us() / 1000); }

void es__http_limits_init(es_http_server *s)
{
    pthread_mutex_init(&s->clients_mu, NULL);
    s->clients = es_xcalloc(CLIENT_BUCKETS, sizeof *s->clients);
    for (int i = 0; i < ES__HTTP_CLOSE_REASONS; i++)
        atomic_init(&s->closed[i], 0);
}

void es__http_limits_free(es_http_server *s)
{
    for (size_t i = 0; s->clients && i < CLIENT_BUCKETS; i++) {
        for (client_count *c = s->clients[i], *next; c; c = next) {
            next = c->next;
            free(c);
        }
    }
    free(s->clients);
    pthread_mutex_destroy(&s->clients_mu);
}

/* ---- connections per client address ---- */

static size_t bucket_of(const unsigned char *addr, size_t len)
{
    uint32_t h = 2166136261u;   /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ addr[i]) * 16777619u;
    return h % CLIENT_BUCKETS;
}

/* The address bytes of sock's peer (an IPv4-mapped IPv6 address counts as its IPv4 one). */
static uint8_t peer_key(h2o_socket_t *sock, unsigned char out[16])
{
    struct sockaddr_storage ss;
    socklen_t len = h2o_socket_getpeername(sock, (struct sockaddr *)&ss);
    if (len && ss.ss_family == AF_INET) {
        memcpy(out, &((struct sockaddr_in *)&ss)->sin_addr, 4);
        return 4;
    }
    if (len && ss.ss_family == AF_INET6) {
        const unsigned char *a = (const unsigned char *)&((struct sockaddr_in6 *)&ss)->sin6_addr;
        static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (memcmp(a, mapped, 12) == 0) {
            memcpy(out, a + 12, 4);
            return 4;
        }
        memcpy(out, a, 16);
        return 16;
    }
    return 0;   /* unknown family: not limited per client (max_connections still applies) */
}

int es__http_client_acquire(es_http_server *s, conn_track *tr, h2o_socket_t *sock)
{
    tr->client_len = peer_key(sock, tr->client);
    if (!tr->client_len)
        return 1;
    size_t b = bucket_of(tr->client, tr->client_len);
    int ok = 1;
    pthread_mutex_lock(&s->clients_mu);
    client_count *c = s->clients[b];
    while (c && !(c->len == tr->client_len && memcmp(c->addr, tr->client, c->len) == 0))
        c = c->next;
    if (!c) {
        c = es_xcalloc(1, sizeof *c);
        memcpy(c->addr, tr->client, tr->client_len);
        c->len = tr->client_len;
        c->next = s->clients[b];
        s->clients[b] = c;
    }
    if (c->n >= s->cfg.max_connections_per_client)
        ok = 0;
    else
        c->n++;
    pthread_mutex_unlock(&s->clients_mu);
    if (!ok)
        tr->client_len = 0;   /* nothing to release */
    return ok;
}

void es__http_client_release(es_http_server *s, conn_track *tr)
{
    if (!tr->client_len)
        return;
    size_t b = bucket_of(tr->client, tr->client_len);
    pthread_mutex_lock(&s->clients_mu);
    for (client_count **p = &s->clients[b]; *p; p = &(*p)->next) {
        client_count *c = *p;
        if (c->len == tr->client_len && memcmp(c->addr, tr->client, c->len) == 0) {
            if (--c->n == 0) {
                *p = c->next;   /* the table holds only addresses with open connections */
                free(c);
            }
            break;
        }
    }
    pthread_mutex_unlock(&s->clients_mu);
    tr->client_len = 0;
}

/* ---- closing ---- */

static h2o_http2_conn_t *h2_conn_of(loop_thread *t, h2o_socket_t *sock);

/* Closes tr's connection for reason (see the file comment for how). */
static void close_conn(conn_track *tr, int reason)
{
    if (tr->closing)
        return;
    tr->closing = 1;
    es_http_server *s = tr->t->srv;
    atomic_fetch_add(&s->closed[reason], 1);
    shutdown(h2o_socket_get_fd(tr->sock), SHUT_RDWR);
    h2o_http2_conn_t *c = h2_conn_of(tr->t, tr->sock);
    if (c && c->state < H2O_HTTP2_CONN_STATE_IS_CLOSING) {
        /* h2o may not be reading (a zero-window peer is not sending) and has nothing to write
         * (the window is shut): a PING gives it a write that fails at once. */
        static const uint8_t ping[8] = {'e', 's', 'c', 'l', 'o', 's', 'e', 0};
        h2o_http2_encode_ping_frame(&c->_write.buf, 0, ping);
        h2o_http2_conn_request_write(c);
    }
}

/* ---- HTTP/2 ---- */

/* The HTTP/2 connection sock serves, or NULL (HTTP/1, TLS handshake in progress). h2o points
 * sock->data at its connection object; only HTTP/2's connection callbacks log a stream id. */
static h2o_http2_conn_t *h2_conn_of(loop_thread *t, h2o_socket_t *sock)
{
    h2o_conn_t *conn = sock->data;
    if (!conn || conn->ctx != &t->ctx || !conn->callbacks || !conn->callbacks->log_.http2.stream_id ||
        !conn->callbacks->get_socket || conn->callbacks->get_socket(conn) != sock)
        return NULL;
    return (h2o_http2_conn_t *)conn;
}

static void watch_frames(conn_track *tr, h2o_http2_conn_t *c);

/* Stands in for h2o's frame parser: counts RST_STREAM frames in one-second windows and ends
 * the connection with GOAWAY(ENHANCE_YOUR_CALM) past the limit, before h2o reads further
 * frames (each HEADERS it reads may start a call the reset cannot take back). */
static ssize_t expect_watched(h2o_http2_conn_t *c, const uint8_t *src, size_t len, const char **err_desc)
{
    conn_track *tr = c->sock->on_close.data;
    es_http_server *s = tr->t->srv;
    if (tr->closing) {
        *err_desc = "connection closed by a limit";
        return H2O_HTTP2_ERROR_ENHANCE_YOUR_CALM;
    }
    ssize_t ret = tr->h2_expect(c, src, len, err_desc);
    /* h2o switches parsers (preface, frames, CONTINUATION): keep ours in front. */
    watch_frames(tr, c);
    if (ret > 0 && len >= 9 && src[3] == H2O_HTTP2_FRAME_TYPE_RST_STREAM) {
        uint64_t now = now_ms();
        if (now - tr->reset_window_ms >= 1000) {
            tr->reset_window_ms = now;
            tr->resets = 0;
        }
        if (++tr->resets > s->cfg.max_resets_per_second) {
            tr->closing = 1;
            atomic_fetch_add(&s->closed[ES__HTTP_CLOSE_RAPID_RESET], 1);
            *err_desc = "too many stream resets";
            return H2O_HTTP2_ERROR_ENHANCE_YOUR_CALM;
        }
    }
    return ret;
}

static void watch_frames(conn_track *tr, h2o_http2_conn_t *c)
{
    if (c->_read_expect != expect_watched) {
        tr->h2_expect = c->_read_expect;
        c->_read_expect = expect_watched;
    }
}

static size_t pending_bytes(h2o_http2_conn_t *c, int *window_shut);

/* Our conn_track of sock, or NULL when the socket is not one we track. */
static conn_track *track_of(h2o_socket_t *sock)
{
    return sock && sock->on_close.cb == es__http_on_sock_close ? sock->on_close.data : NULL;
}

int es__http_conn_admit(es_http_server *s, h2o_req_t *req)
{
    h2o_socket_t *sock = req->conn->callbacks->get_socket ? req->conn->callbacks->get_socket(req->conn) : NULL;
    conn_track *tr = track_of(sock);
    if (!tr)
        return 1;
    if (tr->closing)
        return 0;
    h2o_http2_conn_t *c = h2_conn_of(tr->t, sock);
    if (c) {
        watch_frames(tr, c);
        /* Checked here too, not only periodically: a burst of requests on a shut window would
         * otherwise make every response before the next check. Bounded by the ~100 streams
         * h2o allows a connection. */
        int shut;
        if (pending_bytes(c, &shut) > s->cfg.max_pending_bytes) {
            close_conn(tr, ES__HTTP_CLOSE_PENDING_BYTES);
            return 0;
        }
    }
    return 1;
}

/* Unsent response bytes of c: DATA waiting for the window plus frames waiting for the socket. */
static size_t pending_bytes(h2o_http2_conn_t *c, int *window_shut)
{
    size_t n = c->_write.buf ? c->_write.buf->size : 0;
    if (c->_write.buf_in_flight)
        n += c->_write.buf_in_flight->size;
    int any = 0, all_shut = 1;
    h2o_http2_stream_t *st;
    kh_foreach_value(c->streams, st, {
        size_t data = 0;
        for (size_t i = 0; i < st->_data.size; i++)
            data += st->_data.entries[i].len;
        if (data) {
            any = 1;
            if (st->output_window._avail > 0)
                all_shut = 0;
            n += data;
        }
    });
    *window_shut = any && (all_shut || c->_write.window._avail <= 0);
    return n;
}

/* Has a stream waited longer than body_timeout_ms for its request body? Streams are remembered
 * from the check that first saw them waiting (so the timeout is accurate to one period). */
static int body_timed_out(conn_track *tr, h2o_http2_conn_t *c, uint64_t now, unsigned timeout_ms)
{
    size_t nb = sizeof tr->bodies / sizeof tr->bodies[0];
    int seen[sizeof tr->bodies / sizeof tr->bodies[0]] = {0};
    int late = 0;
    h2o_http2_stream_t *st;
    kh_foreach_value(c->streams, st, {
        if (st->state != H2O_HTTP2_STREAM_STATE_RECV_BODY)
            continue;
        size_t i = 0, free_slot = nb;
        while (i < nb && tr->bodies[i].stream_id != st->stream_id) {
            if (!tr->bodies[i].stream_id && free_slot == nb)
                free_slot = i;
            i++;
        }
        if (i == nb && free_slot < nb) {
            i = free_slot;
            tr->bodies[i].stream_id = st->stream_id;
            tr->bodies[i].since_ms = now;
        }
        if (i < nb) {
            seen[i] = 1;
            if (now - tr->bodies[i].since_ms >= timeout_ms)
                late = 1;
        }
        /* More than eight waiting at once: the eight watched ones time the connection out. */
    });
    for (size_t i = 0; i < nb; i++)
        if (!seen[i])
            tr->bodies[i].stream_id = 0;
    return late;
}

/* Advances tr's stall clock: progress resets it, else it closes the connection once it has run
 * stall_timeout_ms. */
static void stall_clock(conn_track *tr, uint64_t now, int stuck)
{
    if (!stuck) {
        tr->stall_since_ms = 0;
    } else if (!tr->stall_since_ms) {
        tr->stall_since_ms = now;
    } else if (now - tr->stall_since_ms >= tr->t->srv->cfg.stall_timeout_ms) {
        close_conn(tr, ES__HTTP_CLOSE_STALLED);
    }
}

/* HTTP/1 (and a TLS handshake): h2o writes each response whole and keeps what the socket does not
 * take, so a peer that stops reading holds it. The kernel's unsent bytes (SIOCOUTQ) staying put
 * with nothing written is that stall; a slow reader moves them. */
static void check_plain(conn_track *tr, uint64_t now)
{
    int outq = 0;
    if (ioctl(h2o_socket_get_fd(tr->sock), SIOCOUTQ, &outq) != 0)
        outq = 0;
    int stuck = outq > 0 && outq == tr->stall_outq && tr->sock->bytes_written == tr->stall_bytes_written;
    tr->stall_outq = outq;
    tr->stall_bytes_written = tr->sock->bytes_written;
    stall_clock(tr, now, stuck);
}

static void check_conn(conn_track *tr, uint64_t now)
{
    es_http_server *s = tr->t->srv;
    if (tr->closing)
        return;
    h2o_http2_conn_t *c = h2_conn_of(tr->t, tr->sock);
    if (!c) {
        check_plain(tr, now);
        return;
    }
    if (c->state >= H2O_HTTP2_CONN_STATE_IS_CLOSING)
        return;
    watch_frames(tr, c);
    if (body_timed_out(tr, c, now, s->cfg.body_timeout_ms)) {
        close_conn(tr, ES__HTTP_CLOSE_BODY_TIMEOUT);
        return;
    }
    int shut = 0;
    size_t pending = pending_bytes(c, &shut);
    if (pending > s->cfg.max_pending_bytes) {
        close_conn(tr, ES__HTTP_CLOSE_PENDING_BYTES);
        return;
    }
    /* Stalled: something to send and nothing sent since the last check, or the peer's window
     * shut (PING answers would otherwise count as progress). */
    int progress = !shut && tr->sock->bytes_written != tr->stall_bytes_written;
    tr->stall_bytes_written = tr->sock->bytes_written;
    stall_clock(tr, now, pending && !progress);
}

static void on_watch(h2o_timeout_entry_t *entry)
{
    loop_thread *t = H2O_STRUCT_FROM_MEMBER(loop_thread, watch_entry, entry);
    uint64_t now = now_ms();
    for (h2o_linklist_t *l = t->conns.next; l != &t->conns; l = l->next)
        check_conn(H2O_STRUCT_FROM_MEMBER(conn_track, link, l), now);
    h2o_timeout_link(t->loop, &t->watch_timeout, &t->watch_entry);
}

void es__http_watch_start(loop_thread *t)
{
    const es_http_config *c = &t->srv->cfg;
    unsigned period = c->body_timeout_ms < c->stall_timeout_ms ? c->body_timeout_ms : c->stall_timeout_ms;
    period /= 4;
    if (period < 50)
        period = 50;
    if (period > 1000)
        period = 1000;
    h2o_timeout_init(t->loop, &t->watch_timeout, period);
    t->watch_entry.cb = on_watch;
    h2o_timeout_link(t->loop, &t->watch_timeout, &t->watch_entry);
}

void es__http_watch_stop(loop_thread *t)
{
    if (h2o_timeout_is_linked(&t->watch_entry))
        h2o_timeout_unlink(&t->watch_entry);
    h2o_timeout_dispose(t->loop, &t->watch_timeout);
}

void es__http_limits_metrics(es_http_server *s, es_buf *out)
{
    es_metrics_family(out, "es_http_connections_per_client_max", "gauge",
                      "Open HTTP connections allowed from one client address; more are answered 503 and closed.");
    es_metrics_sample(out, "es_http_connections_per_client_max", "", (double)s->cfg.max_connections_per_client);
    es_metrics_family(out, "es_http_connections_closed_total", "counter",
                      "HTTP connections refused or closed by a limit, by reason.");
    for (int i = 0; i < ES__HTTP_CLOSE_REASONS; i++) {
        char labels[64];
        snprintf(labels, sizeof labels, "reason=\"%s\"", close_reasons[i]);
        es_metrics_sample(out, "es_http_connections_closed_total", labels, (double)atomic_load(&s->closed[i]));
    }
}
