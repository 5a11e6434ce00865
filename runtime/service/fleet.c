/* The fleet view: one scraping thread per configured instance and a bounded HTTP/1.1 GET
 * client; see es/fleet.h. Every fetch is bounded in time and bytes (docs/ARCHITECTURE.md,
 * invariant 10), and the reader only formats what the threads stored, so a hostile or slow
 * instance can neither hang the dashboard's handler nor bloat the process. */
#define _GNU_SOURCE /* accept4-style SOCK_NONBLOCK / SOCK_CLOEXEC, MSG_NOSIGNAL */
#include "es/fleet.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "es/arena.h"
#include "es/clock.h"
#include "es/json_string.h"

#define DEFAULT_TIMEOUT_MS 2000u
#define DEFAULT_MAX_BYTES ((size_t)4 << 20)
#define DEFAULT_INTERVAL_MS 2000u
/* The threads scrape while the view was read this recently. */
#define WATCH_US (60 * 1000000LL)

typedef struct url {
    char host[256];     /* without brackets */
    char port[8];
    char hostport[280]; /* as written: the Host header and the instance's label */
    char prefix[512];   /* path before /metrics, without a trailing slash */
} url;

/* http://host[:port][/prefix]: no userinfo, query, fragment, space or control character (the
 * host and path go into request lines). Returns 0 or -1 with why. */
static int parse_url(const char *s, size_t n, url *u, const char **why)
{
    memset(u, 0, sizeof *u);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= ' ' || s[i] == 0x7f || s[i] == '?' || s[i] == '#' || s[i] == '@') {
            *why = "has a space, a control character, '?', '#' or '@'";
            return -1;
        }
    if (n < 8 || strncasecmp(s, "http://", 7) != 0) {
        *why = "is not an http:// URL (https is not supported: scrape a metrics-listen address or a local port)";
        return -1;
    }
    const char *p = s + 7, *end = s + n, *h0, *h1;
    if (*p == '[') {
        h0 = p + 1;
        h1 = memchr(h0, ']', (size_t)(end - h0));
        if (!h1) {
            *why = "has an unclosed [IPv6] host";
            return -1;
        }
        p = h1 + 1;
    } else {
        h0 = p;
        while (p < end && *p != ':' && *p != '/')
            p++;
        h1 = p;
    }
    if (h1 == h0 || (size_t)(h1 - h0) >= sizeof u->host) {
        *why = "has no host, or a host too long";
        return -1;
    }
    memcpy(u->host, h0, (size_t)(h1 - h0));
    strcpy(u->port, "80");
    if (p < end && *p == ':') {
        const char *q = ++p;
        long port = 0;
        while (p < end && *p >= '0' && *p <= '9' && port <= 65535)
            port = port * 10 + (*p++ - '0');
        if (p == q || port < 1 || port > 65535 || (p < end && *p != '/')) {
            *why = "has a bad port";
            return -1;
        }
        snprintf(u->port, sizeof u->port, "%ld", port);
    } else if (p < end && *p != '/') {
        *why = "has a bad host";
        return -1;
    }
    size_t hp = (size_t)(p - (s + 7));
    size_t plen = (size_t)(end - p);
    while (plen && p[plen - 1] == '/')
        plen--;
    if (hp >= sizeof u->hostport || plen >= sizeof u->prefix) {
        *why = "is too long";
        return -1;
    }
    memcpy(u->hostport, s + 7, hp);
    memcpy(u->prefix, p, plen);
    return 0;
}

/* Waits until fd is ready for events or the monotonic deadline passes. 1 ready, 0 timeout. */
static int wait_fd(int fd, short events, int64_t deadline_us)
{
    for (;;) {
        int64_t left = deadline_us - es_mono_us();
        if (left <= 0)
            return 0;
        struct pollfd pfd = {.fd = fd, .events = events};
        int r = poll(&pfd, 1, (int)((left + 999) / 1000));
        if (r > 0)
            return 1;
        if (r < 0 && errno != EINTR)
            return 1; /* let the following call report the error */
    }
}

static int dial(const url *u, int64_t deadline, es_error *err)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV}, *ai = NULL;
    int rc = getaddrinfo(u->host, u->port, &hints, &ai);
    if (rc != 0) {
        es_error_set(err, ES_UNAVAILABLE, "fleet", "cannot resolve %s: %s", u->host, gai_strerror(rc));
        return -1;
    }
    int fd = -1, last = 0;
    for (struct addrinfo *a = ai; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) {
            last = errno;
            continue;
        }
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0)
            break;
        if (errno == EINPROGRESS) {
            if (!wait_fd(fd, POLLOUT, deadline)) {
                close(fd);
                freeaddrinfo(ai);
                es_error_set(err, ES_DEADLINE_EXCEEDED, "fleet", "no connection within the timeout");
                return -1;
            }
            int so = 0;
            socklen_t sl = sizeof so;
            if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &so, &sl) == 0 && so == 0)
                break;
            last = so;
        } else {
            last = errno;
        }
        close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    if (fd < 0)
        es_error_set(err, ES_UNAVAILABLE, "fleet", "connect: %s", strerror(last ? last : ECONNREFUSED));
    return fd;
}

/* Decodes a chunked body at p[0..n) into out. 1 complete, 0 incomplete, -1 malformed. */
static int dechunk(const char *p, size_t n, es_buf *out)
{
    size_t i = 0;
    for (;;) {
        size_t size = 0, digits = 0;
        while (i < n) {
            char c = p[i];
            int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
            if (v < 0)
                break;
            if (++digits > 15)
                return -1;
            size = size * 16 + (size_t)v;
            i++;
        }
        if (i >= n)
            return 0;
        if (!digits)
            return -1;
        const char *eol = memmem(p + i, n - i, "\r\n", 2); /* skips chunk extensions */
        if (!eol)
            return 0;
        i = (size_t)(eol - p) + 2;
        if (size == 0)
            return memmem(p + i, n - i, "\r\n", 2) ? 1 : 0; /* trailers are ignored */
        if (n - i < size + 2)
            return 0;
        if (p[i + size] != '\r' || p[i + size + 1] != '\n')
            return -1;
        es_buf_append(out, p + i, size);
        i += size + 2;
    }
}

/* Status line and the two headers that frame the body. Returns the header length, 0 when the
 * headers are incomplete, -1 when they are malformed. */
static long parse_head(const char *p, size_t n, int *status, long long *clen, int *chunked)
{
    const char *end = memmem(p, n, "\r\n\r\n", 4);
    if (!end)
        return 0;
    if (n < 12 || strncmp(p, "HTTP/1.", 7) != 0 || p[8] != ' ' || p[9] < '1' || p[9] > '5' || p[10] < '0' ||
        p[10] > '9' || p[11] < '0' || p[11] > '9')
        return -1;
    *status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    *clen = -1;
    *chunked = 0;
    for (const char *l = memmem(p, (size_t)(end - p), "\r\n", 2); l && l < end;) {
        l += 2;
        const char *e = memmem(l, (size_t)(end + 2 - l), "\r\n", 2);
        if (!e)
            break;
        size_t len = (size_t)(e - l);
        if (len > 15 && strncasecmp(l, "content-length:", 15) == 0) {
            const char *v = l + 15;
            while (v < e && (*v == ' ' || *v == '\t'))
                v++;
            long long cl = 0;
            int any = 0;
            while (v < e && *v >= '0' && *v <= '9' && cl < (1LL << 50)) {
                cl = cl * 10 + (*v++ - '0');
                any = 1;
            }
            if (!any)
                return -1;
            *clen = cl;
        } else if (len > 18 && strncasecmp(l, "transfer-encoding:", 18) == 0) {
            if (memmem(l + 18, len - 18, "chunked", 7))
                *chunked = 1;
        }
        l = e;
    }
    return (long)(end - p) + 4;
}

int es_fleet_get(const char *base_url, const char *path, const char *token, unsigned timeout_ms, size_t max_bytes,
                 es_buf *body, int *status, es_error *err)
{
    int64_t deadline = es_mono_us() + (int64_t)(timeout_ms ? timeout_ms : DEFAULT_TIMEOUT_MS) * 1000;
    if (!max_bytes)
        max_bytes = DEFAULT_MAX_BYTES;
    url u;
    const char *why = NULL;
    if (!base_url || parse_url(base_url, strlen(base_url), &u, &why) != 0)
        return es_error_set(err, ES_INVALID_ARGUMENT, "fleet", "\"%s\" %s", base_url ? base_url : "", why ? why : "");
    int fd = dial(&u, deadline, err);
    if (fd < 0)
        return err->code;
    es_buf req, in;
    es_buf_init(&req);
    es_buf_init(&in);
    int rc = ES_OK;
    es_buf_printf(&req, "GET %s%s HTTP/1.1\r\nHost: %s\r\nAccept: text/plain\r\nUser-Agent: orderd-fleet\r\nConnection: close\r\n",
                  u.prefix, path, u.hostport);
    if (token && token[0])
        es_buf_printf(&req, "Authorization: Bearer %s\r\n", token);
    es_buf_puts(&req, "\r\n");
    for (size_t off = 0; off < req.len;) {
        if (!wait_fd(fd, POLLOUT, deadline)) {
            rc = es_error_set(err, ES_DEADLINE_EXCEEDED, "fleet", "request not sent within the timeout");
            goto done;
        }
        ssize_t w = send(fd, req.data + off, req.len - off, MSG_NOSIGNAL);
        if (w < 0 && errno != EAGAIN && errno != EINTR) {
            rc = es_error_set(err, ES_UNAVAILABLE, "fleet", "send: %s", strerror(errno));
            goto done;
        }
        if (w > 0)
            off += (size_t)w;
    }
    long head = 0;
    long long clen = -1;
    int chunked = 0, eof = 0;
    for (;;) {
        if (head > 0 && !chunked && clen >= 0 && in.len - (size_t)head >= (size_t)clen)
            break;
        if (head > 0 && chunked && in.len >= (size_t)head + 5 && memcmp(in.data + in.len - 5, "0\r\n\r\n", 5) == 0) {
            es_buf_reset(body);
            if (dechunk(in.data + head, in.len - (size_t)head, body) == 1)
                break;
        }
        if (!wait_fd(fd, POLLIN, deadline)) {
            rc = es_error_set(err, ES_DEADLINE_EXCEEDED, "fleet", "no complete answer within %u ms (%zu bytes received)",
                              timeout_ms ? timeout_ms : DEFAULT_TIMEOUT_MS, in.len);
            goto done;
        }
        es_buf_reserve(&in, 16384);
        size_t room = in.cap - in.len - 1;
        if (room > max_bytes + 1 - in.len)
            room = max_bytes + 1 - in.len;
        ssize_t r = recv(fd, in.data + in.len, room, 0);
        if (r < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (r < 0) {
            rc = es_error_set(err, ES_UNAVAILABLE, "fleet", "receive: %s", strerror(errno));
            goto done;
        }
        if (r == 0) {
            eof = 1;
            break;
        }
        in.len += (size_t)r;
        in.data[in.len] = 0;
        if (in.len > max_bytes) {
            rc = es_error_set(err, ES_RESOURCE_EXHAUSTED, "fleet", "answer larger than %zu bytes", max_bytes);
            goto done;
        }
        if (!head && (head = parse_head(in.data, in.len, status, &clen, &chunked)) < 0) {
            rc = es_error_set(err, ES_UNAVAILABLE, "fleet", "not an HTTP/1.x answer");
            goto done;
        }
    }
    if (!head) {
        rc = es_error_set(err, ES_UNAVAILABLE, "fleet", "connection closed before the answer's headers");
        goto done;
    }
    es_buf_reset(body);
    if (chunked) {
        if (dechunk(in.data + head, in.len - (size_t)head, body) != 1) {
            rc = es_error_set(err, ES_UNAVAILABLE, "fleet", "malformed or truncated chunked body");
            goto done;
        }
    } else if (clen >= 0) {
        if (in.len - (size_t)head < (size_t)clen) {
            rc = es_error_set(err, ES_UNAVAILABLE, "fleet", "connection closed %lld bytes into a %lld-byte body",
                              (long long)(in.len - (size_t)head), clen);
            goto done;
        }
        es_buf_append(body, in.data + head, (size_t)clen);
    } else {
        (void)eof; /* no framing: the body runs to the close */
        es_buf_append(body, in.data + head, in.len - (size_t)head);
    }
done:
    close(fd);
    es_buf_free(&req);
    es_buf_free(&in);
    return rc;
}

/* ---- the scraper ------------------------------------------------------------------------ */

enum { PENDING, UP, DOWN };

typedef struct member {
    struct es_fleet *f;
    char *url;
    url u;
    pthread_t th;
    int started;
    /* under f->mu */
    int state;
    char error[400];
    int64_t scraped_at_ms, duration_ms, next_due, fetching_since;
    char *metrics;          /* the last good answer (malloc) */
    size_t metrics_len;
} member;

struct es_fleet {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stopping;
    int64_t watched;        /* es_mono_us of the last read; 0: never */
    unsigned timeout_ms, interval_ms;
    size_t max_bytes;
    char *token;
    es_fleet_self_fn self;
    void *self_data;
    member *m;
    size_t n;
};

static void *scrape_loop(void *arg)
{
    member *m = arg;
    es_fleet *f = m->f;
    pthread_mutex_lock(&f->mu);
    while (!f->stopping) {
        int64_t now = es_mono_us();
        if (!f->watched || now - f->watched >= WATCH_US) {
            /* Nobody looks: forget the old answer (it would be shown as current) and sleep. */
            m->state = PENDING;
            m->error[0] = 0;
            free(m->metrics);
            m->metrics = NULL;
            m->next_due = 0;
            pthread_cond_wait(&f->cv, &f->mu);
            continue;
        }
        if (now < m->next_due) {
            struct timespec ts = es_mono_deadline(m->next_due - now);
            pthread_cond_timedwait(&f->cv, &f->mu, &ts);
            continue;
        }
        m->fetching_since = now;
        pthread_mutex_unlock(&f->mu);

        es_buf body;
        es_buf_init(&body);
        es_error err = {0};
        int status = 0;
        int rc = es_fleet_get(m->url, "/metrics", f->token, f->timeout_ms, f->max_bytes, &body, &status, &err);
        int64_t took = (es_mono_us() - now) / 1000;

        pthread_mutex_lock(&f->mu);
        m->fetching_since = 0;
        m->scraped_at_ms = es_now_us() / 1000;
        m->duration_ms = took;
        if (rc == ES_OK && status == 200) {
            m->state = UP;
            m->error[0] = 0;
            free(m->metrics);
            m->metrics_len = body.len;
            m->metrics = es_buf_steal(&body, NULL);
        } else {
            m->state = DOWN;
            if (rc == ES_OK)
                snprintf(m->error, sizeof m->error, "answered HTTP %d%s", status,
                         status == 401 || status == 403 ? " (its /metrics needs an admin token: fleet-token-file)" : "");
            else
                snprintf(m->error, sizeof m->error, "%s", err.message);
            free(m->metrics);
            m->metrics = NULL;
        }
        es_buf_free(&body);
        m->next_due = es_mono_us() + (int64_t)f->interval_ms * 1000;
    }
    pthread_mutex_unlock(&f->mu);
    return NULL;
}

es_fleet *es_fleet_new(const es_fleet_config *cfg, es_error *err)
{
    es_fleet *f = es_xcalloc(1, sizeof *f);
    pthread_mutex_init(&f->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* es_mono_deadline's clock */
    pthread_cond_init(&f->cv, &ca);
    pthread_condattr_destroy(&ca);
    f->timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : DEFAULT_TIMEOUT_MS;
    f->interval_ms = cfg->interval_ms ? cfg->interval_ms : DEFAULT_INTERVAL_MS;
    f->max_bytes = cfg->max_bytes ? cfg->max_bytes : DEFAULT_MAX_BYTES;
    f->token = cfg->token && cfg->token[0] ? es_xstrdup(cfg->token) : NULL;
    f->self = cfg->self;
    f->self_data = cfg->self_data;
    const char *s = cfg->urls ? cfg->urls : "";
    f->m = es_xcalloc(ES_FLEET_MAX_INSTANCES, sizeof *f->m);
    while (*s) {
        while (*s == ' ' || *s == ',')
            s++;
        if (!*s)
            break;
        const char *e = s;
        while (*e && *e != ',')
            e++;
        size_t n = (size_t)(e - s);
        while (n && s[n - 1] == ' ')
            n--;
        const char *why = NULL;
        if (f->n == ES_FLEET_MAX_INSTANCES) {
            es_error_set(err, ES_INVALID_ARGUMENT, "fleet", "fleet lists more than %d instances", ES_FLEET_MAX_INSTANCES);
            goto fail;
        }
        member *m = &f->m[f->n];
        if (parse_url(s, n, &m->u, &why) != 0) {
            es_error_set(err, ES_INVALID_ARGUMENT, "fleet", "fleet: \"%.*s\" %s", (int)(n > 200 ? 200 : n), s, why);
            goto fail;
        }
        m->url = es_xmalloc(n + 1);
        memcpy(m->url, s, n);
        m->url[n] = 0;
        m->f = f;
        f->n++;
        s = e;
    }
    if (!f->n && !f->self) {
        es_error_set(err, ES_INVALID_ARGUMENT, "fleet", "no instance to show: neither URLs nor this instance's metrics");
        goto fail;
    }
    for (size_t i = 0; i < f->n; i++) {
        if (pthread_create(&f->m[i].th, NULL, scrape_loop, &f->m[i]) != 0) {
            es_error_set(err, ES_RESOURCE_EXHAUSTED, "fleet", "cannot start a scraping thread");
            goto fail;
        }
        f->m[i].started = 1;
#ifdef __GLIBC__
        pthread_setname_np(f->m[i].th, "es-fleet");
#endif
    }
    return f;
fail:
    es_fleet_free(f);
    return NULL;
}

static void write_member(es_fleet *f, const member *m, int64_t now_mono, es_buf *out)
{
    es_buf_puts(out, "{\"url\":");
    es_json_quote_str(out, m->url);
    es_buf_puts(out, ",\"instance\":");
    es_json_quote_str(out, m->u.hostport);
    int state = m->state;
    char error[480];
    snprintf(error, sizeof error, "%s", m->error);
    /* A fetch stuck beyond its own deadline (a name lookup has none) says so instead of showing
     * the previous answer as current. */
    if (m->fetching_since && now_mono - m->fetching_since > ((int64_t)f->timeout_ms + 1000) * 1000) {
        state = DOWN;
        snprintf(error, sizeof error, "no answer for %lld ms (name lookup or connection stuck)",
                 (long long)((now_mono - m->fetching_since) / 1000));
    }
    static const char *const names[] = {"pending", "up", "down"};
    es_buf_printf(out, ",\"state\":\"%s\",\"error\":", names[state]);
    if (state == DOWN)
        es_json_quote_str(out, error);
    else
        es_buf_puts(out, "null");
    if (m->scraped_at_ms && state != PENDING)
        es_buf_printf(out, ",\"scraped_at_ms\":%lld,\"duration_ms\":%lld", (long long)m->scraped_at_ms,
                      (long long)m->duration_ms);
    else
        es_buf_puts(out, ",\"scraped_at_ms\":null,\"duration_ms\":null");
    es_buf_puts(out, ",\"metrics\":");
    if (state == UP && m->metrics)
        es_json_quote(out, m->metrics, m->metrics_len);
    else
        es_buf_puts(out, "null");
    es_buf_putc(out, '}');
}

void es_fleet_write_json(es_fleet *f, es_buf *out)
{
    int64_t now = es_mono_us(), now_ms = es_now_us() / 1000;
    es_buf_printf(out, "{\"interval_ms\":%u,\"timeout_ms\":%u,\"now_ms\":%lld,\"instances\":[", f->interval_ms,
                  f->timeout_ms, (long long)now_ms);
    if (!f->n) {
        es_buf self;
        es_buf_init(&self);
        f->self(f->self_data, &self);
        es_buf_printf(out, "{\"url\":\"self\",\"instance\":\"this instance\",\"state\":\"up\",\"error\":null,"
                           "\"scraped_at_ms\":%lld,\"duration_ms\":0,\"metrics\":", (long long)now_ms);
        es_json_quote(out, self.data ? self.data : "", self.len);
        es_buf_puts(out, "}]}\n");
        es_buf_free(&self);
        return;
    }
    pthread_mutex_lock(&f->mu);
    int wake = !f->watched || now - f->watched >= WATCH_US;
    f->watched = now;
    for (size_t i = 0; i < f->n; i++) {
        if (i)
            es_buf_putc(out, ',');
        write_member(f, &f->m[i], now, out);
    }
    if (wake)
        pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
    es_buf_puts(out, "]}\n");
}

void es_fleet_free(es_fleet *f)
{
    if (!f)
        return;
    pthread_mutex_lock(&f->mu);
    f->stopping = 1;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
    for (size_t i = 0; i < f->n; i++) {
        if (f->m[i].started)
            pthread_join(f->m[i].th, NULL);
        free(f->m[i].url);
        free(f->m[i].metrics);
    }
    free(f->m);
    free(f->token);
    pthread_cond_destroy(&f->cv);
    pthread_mutex_destroy(&f->mu);
    free(f);
}
