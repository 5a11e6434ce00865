/* es-kafka-mock: librdkafka's mock Kafka cluster as a long-lived process.
 *
 * Why a process of its own: the mock lives inside the rd_kafka_t that created it, so a cluster
 * embedded in orderd would vanish (topics, offsets) with every orderd restart. Here it outlives
 * the services that use it; they read its bootstrap address from a file.
 *
 *   es-kafka-mock --bootstrap-file F [--brokers 3] [--topic NAME[:PARTITIONS]]... [--control SOCK]
 *   es-kafka-mock ctl SOCK COMMAND...      one control command, prints the reply
 *
 * Control protocol (one line in, one line out, over a unix stream socket):
 *   ping | bootstrap | down <id|all> | up <id|all> | rtt <id|all> <ms> | topic <name> <partitions>
 * replies "ok[ detail]" or "err <message>". SIGTERM/SIGINT stop the cluster cleanly. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#define MAX_TOPICS 32

static volatile sig_atomic_t stop_requested;

/* The mock brokers' sockets keep Nagle's algorithm on: a response written while the previous
 * one on the same connection is not yet acknowledged waits for the client's delayed ACK (40 ms
 * on Linux). With an idempotent producer keeping several requests in flight per broker, that put
 * ~45 ms on most relay batches. Linux hands TCP_NODELAY from a listening socket down to the
 * connections it accepts, so it is set on every listening TCP socket of this process (the mock
 * gives no handle on them). Returns how many were set. */
static int nodelay_listeners(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return 0;
    int n = 0, one = 1;
    struct dirent *e;
    while ((e = readdir(d))) {
        char *end;
        long fd = strtol(e->d_name, &end, 10);
        if (*end || fd < 0 || fd == dirfd(d))
            continue;
        int listening = 0, type = 0;
        socklen_t len = sizeof listening;
        if (getsockopt((int)fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 || !listening)
            continue;
        len = sizeof type;
        if (getsockopt((int)fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_STREAM)
            continue;
        struct sockaddr_storage sa;
        len = sizeof sa;
        if (getsockname((int)fd, (struct sockaddr *)&sa, &len) != 0 ||
            (sa.ss_family != AF_INET && sa.ss_family != AF_INET6))
            continue;
        if (setsockopt((int)fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) == 0)
            n++;
    }
    closedir(d);
    return n;
}
static int signal_pipe[2] = {-1, -1};

static void on_signal(int sig)
{
    (void)sig;
    int saved = errno;
    stop_requested = 1;
    if (signal_pipe[1] >= 0) {
        ssize_t r = write(signal_pipe[1], "x", 1);
        (void)r;
    }
    errno = saved;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: es-kafka-mock --bootstrap-file FILE [--brokers N] [--topic NAME[:PARTITIONS]]...\n"
            "                     [--replication-factor N] [--control SOCKET]\n"
            "       es-kafka-mock ctl SOCKET COMMAND [ARGS...]\n");
}

/* Writes text to path through a temporary file and rename(2), so a reader never sees a
 * half-written address. Returns 0 or -1 with errno. */
static int write_atomically(const char *path, const char *text)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp) {
        errno = ENAMETOOLONG;
        return -1;
    }
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -1;
    int ok = fprintf(f, "%s\n", text) >= 0;
    ok = (fflush(f) == 0) && ok;
    ok = (fsync(fileno(f)) == 0) && ok;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

static int unix_addr(const char *path, struct sockaddr_un *sa)
{
    memset(sa, 0, sizeof *sa);
    sa->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof sa->sun_path) {
        fprintf(stderr, "es-kafka-mock: socket path too long: %s\n", path);
        return -1;
    }
    strcpy(sa->sun_path, path);
    return 0;
}

/* Client side of the control protocol: sends one command, prints the reply. Exit status 0 when
 * the reply starts with "ok". */
static int run_ctl(int argc, char **argv)
{
    if (argc < 4) {
        usage();
        return 2;
    }
    struct sockaddr_un sa;
    if (unix_addr(argv[2], &sa) != 0)
        return 2;
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        fprintf(stderr, "es-kafka-mock: connect %s: %s\n", argv[2], strerror(errno));
        if (fd >= 0)
            close(fd);
        return 1;
    }
    char line[1024];
    size_t n = 0;
    for (int i = 3; i < argc; i++)
        n += (size_t)snprintf(line + n, sizeof line - n, "%s%s", i > 3 ? " " : "", argv[i]);
    if (n >= sizeof line - 1) {
        close(fd);
        return 2;
    }
    line[n++] = '\n';
    if (write(fd, line, n) != (ssize_t)n) {
        close(fd);
        return 1;
    }
    char reply[4096];
    size_t got = 0;
    ssize_t r;
    while (got < sizeof reply - 1 && (r = read(fd, reply + got, sizeof reply - 1 - got)) > 0) {
        got += (size_t)r;
        if (memchr(reply, '\n', got))
            break;
    }
    close(fd);
    reply[got] = '\0';
    fputs(reply, stdout);
    return strncmp(reply, "ok", 2) == 0 ? 0 : 1;
}

typedef struct mock {
    rd_kafka_t *rk;
    rd_kafka_mock_cluster_t *mc;
    int brokers;
    int replication;
} mock;

/* Applies fn to one broker id or to all of them. */
static rd_kafka_resp_err_t each_broker(mock *m, const char *which,
                                       rd_kafka_resp_err_t (*fn)(rd_kafka_mock_cluster_t *, int32_t))
{
    if (strcmp(which, "all") == 0) {
        for (int i = 1; i <= m->brokers; i++) {
            rd_kafka_resp_err_t e = fn(m->mc, i);
            if (e)
                return e;
        }
        return RD_KAFKA_RESP_ERR_NO_ERROR;
    }
    return fn(m->mc, atoi(which));
}

static int rtt_ms;
static rd_kafka_resp_err_t set_rtt(rd_kafka_mock_cluster_t *mc, int32_t id)
{
    return rd_kafka_mock_broker_set_rtt(mc, id, rtt_ms);
}

/* Executes one control line; writes the reply (with newline) into out. */
static void control(mock *m, char *line, char *out, size_t outsz)
{
    char *save = NULL;
    char *cmd = strtok_r(line, " \t\r\n", &save);
    char *a1 = strtok_r(NULL, " \t\r\n", &save);
    char *a2 = strtok_r(NULL, " \t\r\n", &save);
    rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;
    if (!cmd) {
        snprintf(out, outsz, "err empty command\n");
        return;
    }
    if (strcmp(cmd, "ping") == 0) {
        snprintf(out, outsz, "ok pong\n");
        return;
    }
    if (strcmp(cmd, "bootstrap") == 0) {
        snprintf(out, outsz, "ok %s\n", rd_kafka_mock_cluster_bootstraps(m->mc));
        return;
    }
    if ((strcmp(cmd, "down") == 0 || strcmp(cmd, "up") == 0) && a1) {
        e = each_broker(m, a1, cmd[0] == 'd' ? rd_kafka_mock_broker_set_down
                                             : rd_kafka_mock_broker_set_up);
        if (!e && cmd[0] == 'u')
            nodelay_listeners(); /* in case a broker listens anew */
    } else if (strcmp(cmd, "rtt") == 0 && a1 && a2) {
        rtt_ms = atoi(a2);
        e = each_broker(m, a1, set_rtt);
    } else if (strcmp(cmd, "topic") == 0 && a1 && a2) {
        e = rd_kafka_mock_topic_create(m->mc, a1, atoi(a2), m->replication);
    } else {
        snprintf(out, outsz, "err unknown command or missing argument: %s\n", cmd);
        return;
    }
    if (e)
        snprintf(out, outsz, "err %s\n", rd_kafka_err2str(e));
    else
        snprintf(out, outsz, "ok\n");
    fprintf(stderr, "es-kafka-mock: %s %s%s%s -> %s", cmd, a1 ? a1 : "", a2 ? " " : "",
            a2 ? a2 : "", out);
}

/* Serves one control connection: a single line in, a single line out. */
static void serve_client(mock *m, int cfd)
{
    char line[1024];
    size_t got = 0;
    struct pollfd p = {.fd = cfd, .events = POLLIN};
    while (got < sizeof line - 1 && poll(&p, 1, 2000) > 0) {
        ssize_t r = read(cfd, line + got, sizeof line - 1 - got);
        if (r <= 0)
            break;
        got += (size_t)r;
        if (memchr(line, '\n', got))
            break;
    }
    line[got] = '\0';
    char reply[1024];
    control(m, line, reply, sizeof reply);
    ssize_t w = write(cfd, reply, strlen(reply));
    (void)w;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "ctl") == 0)
        return run_ctl(argc, argv);

    const char *bootstrap_file = NULL, *control_path = NULL;
    const char *topics[MAX_TOPICS];
    int ntopics = 0, brokers = 3, replication = 3;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            usage();
            return 2;
        }
        if (strcmp(a, "--bootstrap-file") == 0)
            bootstrap_file = v;
        else if (strcmp(a, "--control") == 0)
            control_path = v;
        else if (strcmp(a, "--brokers") == 0)
            brokers = atoi(v);
        else if (strcmp(a, "--replication-factor") == 0)
            replication = atoi(v);
        else if (strcmp(a, "--topic") == 0 && ntopics < MAX_TOPICS)
            topics[ntopics++] = v;
        else {
            usage();
            return 2;
        }
        i++;
    }
    if (!bootstrap_file || brokers < 1) {
        usage();
        return 2;
    }
    if (replication > brokers)
        replication = brokers;

    int rc = 1, lfd = -1;
    mock m = {.brokers = brokers, .replication = replication};
    char errstr[512];

    if (pipe(signal_pipe) != 0)
        return 1;
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* The mock cluster lives inside an rd_kafka_t; a producer handle that never produces. */
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "4", errstr, sizeof errstr);
    m.rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!m.rk) {
        fprintf(stderr, "es-kafka-mock: rd_kafka_new: %s\n", errstr);
        goto done;
    }
    m.mc = rd_kafka_mock_cluster_new(m.rk, brokers);
    if (!m.mc) {
        fprintf(stderr, "es-kafka-mock: could not create the mock cluster\n");
        goto done;
    }
    for (int i = 0; i < ntopics; i++) {
        char name[256];
        snprintf(name, sizeof name, "%s", topics[i]);
        int parts = 6;
        char *colon = strrchr(name, ':');
        if (colon) {
            *colon = '\0';
            parts = atoi(colon + 1);
        }
        rd_kafka_resp_err_t e = rd_kafka_mock_topic_create(m.mc, name, parts, replication);
        if (e) {
            fprintf(stderr, "es-kafka-mock: topic %s: %s\n", name, rd_kafka_err2str(e));
            goto done;
        }
    }
    if (nodelay_listeners() < brokers)
        fprintf(stderr, "es-kafka-mock: warning: TCP_NODELAY not set on every broker's listener\n");

    if (control_path) {
        struct sockaddr_un su;
        if (unix_addr(control_path, &su) != 0)
            goto done;
        unlink(control_path);
        lfd = socket(AF_UNIX, SOCK_STREAM, 0);
        if (lfd < 0 || bind(lfd, (struct sockaddr *)&su, sizeof su) != 0 || listen(lfd, 8) != 0) {
            fprintf(stderr, "es-kafka-mock: control socket %s: %s\n", control_path,
                    strerror(errno));
            goto done;
        }
    }

    /* Last: the address appears only when everything above is ready to serve. */
    const char *bootstraps = rd_kafka_mock_cluster_bootstraps(m.mc);
    if (write_atomically(bootstrap_file, bootstraps) != 0) {
        fprintf(stderr, "es-kafka-mock: write %s: %s\n", bootstrap_file, strerror(errno));
        goto done;
    }
    fprintf(stderr, "es-kafka-mock: %d brokers at %s\n", brokers, bootstraps);

    while (!stop_requested) {
        struct pollfd p[2] = {{.fd = signal_pipe[0], .events = POLLIN},
                              {.fd = lfd, .events = POLLIN}};
        int n = poll(p, lfd >= 0 ? 2 : 1, 1000);
        if (n < 0 && errno != EINTR)
            break;
        if (n > 0 && lfd >= 0 && (p[1].revents & POLLIN)) {
            int cfd = accept(lfd, NULL, NULL);
            if (cfd >= 0) {
                serve_client(&m, cfd);
                close(cfd);
            }
        }
    }
    rc = 0;

done:
    if (lfd >= 0) {
        close(lfd);
        unlink(control_path);
    }
    if (m.mc)
        rd_kafka_mock_cluster_destroy(m.mc);
    if (m.rk)
        rd_kafka_destroy(m.rk);
    if (rc == 0)
        unlink(bootstrap_file);
    return rc;
}
