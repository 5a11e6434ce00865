/* The configuration table of orderd; see config.h. */
#include "config.h"

#include "es/arena.h"

#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern char **environ;

typedef struct key {
    const char *name;               /* flag name; the variable is ORDERD_<NAME> with '-' -> '_' */
    int is_int;
    size_t offset;
    long min, max;                  /* the accepted range of an integer key */
    const char *def;
    const char *help;
} key;

#define S(f) 0, offsetof(orderd_config, f), 0, 0
/* An integer key accepts exactly the decimal integers of its range; IR names the range, and a
 * key without one (I) takes any count from 0 up. */
#define IR(f, lo, hi) 1, offsetof(orderd_config, f), lo, hi
#define I(f) IR(f, 0, INT_MAX)
static const key keys[] = {
    {"pg", S(pg), "host=/var/run/postgresql dbname=orderd", "PostgreSQL conninfo (event store and projections)"},
    {"pg-read", S(pg_read), "", "PostgreSQL conninfo of a streaming replica serving GetOrder/ListOrders (empty: the primary); down, reads fall back to the primary"},
    {"http-listen", S(http_listen), "0.0.0.0:8080", "JSON HTTP address"},
    {"grpc-listen", S(grpc_listen), "0.0.0.0:8081", "gRPC address"},
    {"kafka-bootstrap", S(kafka_bootstrap), "", "Kafka bootstrap.servers (a real cluster)"},
    {"kafka-bootstrap-file", S(kafka_bootstrap_file), "", "file holding bootstrap.servers (the mock cluster writes one)"},
    {"topic", S(topic), ORDERD_TOPIC_DEFAULT, "Kafka topic of events whose stream type no linked package declares (each aggregate's own: (es.aggregate).topic); set to anything else, the one topic of every aggregate (a deployment that chose its topic keeps it)"},
    {"consumer-fetch-wait-ms", IR(consumer_fetch_wait_ms, 1, 300000), "10", "longest a consumer's Kafka fetch waits for new events (fetch.wait.max.ms; bounds projection lag)"},
    {"partitions", IR(partitions, 1, 100000), "6", "partitions when the relay creates the topic"},
    {"pool-size", IR(pool_size, 2, 1000), "16", "PostgreSQL connections of the command and query path (more than committers: each committer keeps one)"},
    {"workers", IR(workers, 1, 4096), "64", "dispatcher threads (commands wait on group commit)"},
    {"direct-commands", IR(direct_commands, 0, 4096), "64",
     "creating commands decided on the transport's thread and answered by the committer, in flight at most (0: all through workers)"},
    {"committers", IR(committers, 1, 8), "1", "group-commit threads, each with its own PostgreSQL connection (1-8; more help only when commits wait on a slow disk with idle cores)"},
    {"http-threads", IR(http_threads, 1, 256), "2", "HTTP event-loop threads"},
    {"grpc-threads", IR(grpc_threads, 1, 256), "2", "gRPC completion-queue threads"},
    {"max-body", IR(max_body, 1, 1073741824), "1048576", "largest HTTP request body in bytes (larger: 413)"},
    {"http-max-connections", IR(http_max_connections, 1, 1000000), "1024", "open HTTP connections; more are answered 503 and closed at once"},
    {"http-request-timeout-ms", IR(http_request_timeout_ms, 1, 3600000), "10000", "HTTP/1 request read timeout, also the idle keep-alive timeout"},
    {"http-idle-timeout-ms", IR(http_idle_timeout_ms, 1, 3600000), "10000", "HTTP/2 connection idle timeout"},
    {"http-max-connections-per-client", IR(http_max_connections_per_client, 1, 1000000), "64", "open HTTP connections from one client IP address; more are answered 503 and closed at once"},
    {"http-body-timeout-ms", IR(http_body_timeout_ms, 1, 3600000), "10000", "an HTTP/2 request body must arrive within this; else the connection is closed"},
    {"http-stall-timeout-ms", IR(http_stall_timeout_ms, 1, 3600000), "10000", "an HTTP/2 connection with responses pending and nothing sent (peer window at zero, or not reading) this long is closed"},
    {"http-max-pending-bytes", IR(http_max_pending_bytes, 16384, 1073741824), "1048576", "unsent response bytes one HTTP/2 connection may hold; more: the connection is closed"},
    {"http-max-resets-per-second", IR(http_max_resets_per_second, 1, 1000000), "100", "HTTP/2 stream resets (RST_STREAM) one connection may send a second; more: GOAWAY and close"},
    {"metrics-listen", S(metrics_listen), "", "address of a separate listener serving only /metrics (no token; keep it internal). Empty: /metrics on the HTTP port, needing an admin bearer token when auth is on"},
    {"fleet", S(fleet), "", "comma-separated base URLs (http://host:port) of the instances whose /metrics the dashboard at /fleet shows, this one included; empty: this instance only"},
    {"fleet-token-file", S(fleet_token_file), "", "file holding the bearer token sent to the fleet's instances (an admin token when their /metrics is on an HTTP port with auth on)"},
    {"fleet-timeout-ms", IR(fleet_timeout_ms, 1, 60000), "2000", "longest one fetch of a fleet instance's /metrics may take (answers are cut at 4 MiB); slower instances are shown as down"},
    {"grpc-max-streams", IR(grpc_max_streams, 1, 1000000), "100", "concurrent gRPC streams per HTTP/2 connection; a connection holding more than twice as many calls is cut and banned"},
    {"grpc-max-message", IR(grpc_max_message, 1, 1073741824), "4194304", "largest gRPC request message in bytes (larger: RESOURCE_EXHAUSTED)"},
    {"grpc-max-connections", IR(grpc_max_connections, 1, 1000000), "1024", "open gRPC connections; more are closed at accept, before any HTTP/2 or TLS byte"},
    {"grpc-max-connections-per-client", IR(grpc_max_connections_per_client, 1, 1000000), "64", "open gRPC connections from one client IP address; more are closed at accept"},
    {"grpc-max-resets-per-second", IR(grpc_max_resets_per_second, 1, 1000000), "100", "gRPC calls one connection may cancel (RST_STREAM) a second; more: the connection is closed"},
    {"grpc-reset-ban-ms", IR(grpc_reset_ban_ms, 1, 3600000), "10000", "after a gRPC connection is closed for resets, new connections from its IP address are refused this long"},
    {"grpc-idle-timeout-ms", IR(grpc_idle_timeout_ms, 1, 86400000), "120000", "a gRPC connection without calls this long gets GOAWAY and is closed"},
    {"grpc-max-connection-age-ms", IR(grpc_max_connection_age_ms, 1, INT_MAX), "3600000", "a gRPC connection older than this gets GOAWAY (clients reconnect, spreading over instances)"},
    {"grpc-max-connection-age-grace-ms", IR(grpc_max_connection_age_grace_ms, 1, INT_MAX), "30000", "calls still running on a connection past its age get this long before it is closed"},
    {"grpc-keepalive-time-ms", IR(grpc_keepalive_time_ms, 1000, INT_MAX), "60000", "the server pings a quiet gRPC connection this often to find dead peers"},
    {"grpc-keepalive-timeout-ms", IR(grpc_keepalive_timeout_ms, 1, INT_MAX), "20000", "a gRPC connection whose ping answer takes longer is closed"},
    {"grpc-min-ping-interval-ms", IR(grpc_min_ping_interval_ms, 1, INT_MAX), "10000", "client pings without data closer together than this are strikes"},
    {"grpc-max-ping-strikes", IR(grpc_max_ping_strikes, 1, 1000), "2", "ping strikes after which a gRPC connection gets GOAWAY ENHANCE_YOUR_CALM and is closed"},
    {"grpc-reflection", S(grpc_reflection), "auth", "gRPC server reflection: auth (callers with a valid bearer token; everyone when --auth disabled), on (everyone), off"},
    {"snapshot-every", IR(snapshot_every, -1, 1000000000), "0", "events between snapshots (0: the aggregate's annotation, <0: never)"},
    {"payment-gateway", S(payment_gateway), "succeed", "payment simulator: succeed, fail or random:<fraction failing>"},
    {"payment-delay-ms", IR(payment_delay_ms, 0, 600000), "0", "simulated gateway latency per call"},
    {"relay", IR(relay, 0, 1), "1", "run the outbox relay (one instance is active at a time)"},
    {"relay-batch", IR(relay_batch, 1, 100000), "5000",
     "most events the relay reads and publishes in one round (a backlog's rounds: a steady rate's take what is there)"},
    {"relay-checkpoint-ms", IR(relay_checkpoint_ms, 0, 3600000), "250",
     "least time between two writes of the relay's checkpoint (0: after every round); a crash publishes again at most this long's deliveries"},
    {"projections", IR(projections, 0, 1), "1", "run the projection consumers"},
    {"projection-consumers", IR(projection_consumers, 1, 16), "2",
     "consumers per projection in this process, each its own thread, PostgreSQL connection and Kafka group member"},
    {"payments", IR(payments, 0, 1), "1", "run the payment-flow reactor"},
    {"payment-flow-concurrency", IR(payment_flow_concurrency, 1, 256), "16",
     "orders the payment flow reacts to at once (gateway calls and commands in flight)"},
    {"min-version-wait-ms", IR(min_version_wait_ms, 0, 600000), "2000", "how long reads wait for min_version"},
    {"max-waiting-reads", IR(max_waiting_reads, 1, 1000000), "1024", "reads waiting for min_version at once (parked without a thread); more are answered 429 RESOURCE_EXHAUSTED"},
    {"waiting-read-recheck-ms", IR(waiting_read_recheck_ms, 1, 60000), "50", "first re-check of a waiting read without a commit wake-up (read model kept by another instance), doubling to 8x"},
    {"waiting-read-reruns", IR(waiting_read_reruns, 1, 4096), "4", "woken waiting reads run again at most this many at once (new calls go first)"},
    {"page-token-key", S(page_token_key), "", "secret that signs ListOrders page tokens (HMAC-SHA-256); give every instance the same one. Empty: a random key per process (tokens do not survive a restart or cross instances)"},
    {"ready-max-dead-letters", IR(ready_max_dead_letters, -1, INT_MAX), "-1", "open dead letters above which /readyz answers 503 (-1: never; /readyz always reports the count and the parked streams)"},
    {"projection-old-grace-s", IR(projection_old_grace_s, 0, 31536000), "3600", "after a projection switched to a new shape (built beside it), its old version is dropped this long after (0: at once)"},
    {"event-partition-size", IR(event_partition_size, 1000, 1000000000), "10000000", "positions per partition of es_events; orderd keeps the next partition made ahead of need (at start and once a minute)"},
    {"idempotency-retention-s", IR(idempotency_retention_s, 1, 31536000), "86400", "how long a client's Idempotency-Key / request_id is kept: within it a repeat returns the first result (or 409 with another body); after it the key may be used again"},
    {"auth", S(auth), "required", "required: every call needs a bearer token from --auth-tokens; disabled: no authentication (development only)"},
    {"auth-tokens", S(auth_tokens), "", "token file: \"<sha256 hex of token> <customer|vendor|payments|admin> <principal>\" per line"},
    {"tls-cert", S(tls_cert), "", "PEM certificate chain: HTTP and gRPC serve TLS when set with --tls-key"},
    {"tls-key", S(tls_key), "", "PEM private key for --tls-cert"},
    {"log-level", S(log_level), "info", "debug (every call), info, warn or error; logs are JSON lines on stderr"},
};

/* Stores v as k's value; `from` says where v came from, for the error. An integer must be a
 * decimal number (optional sign) inside k's range and nothing else: a typo refused at start-up
 * costs less than a service running with 0 workers. Returns 0, or -1 after printing the error. */
static int set(orderd_config *cfg, const key *k, const char *v, const char *from)
{
    char *p = (char *)cfg + k->offset;
    if (!k->is_int) {
        *(const char **)p = v;
        return 0;
    }
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (end == v || *end || errno == ERANGE || n < k->min || n > k->max) {
        fprintf(stderr, "orderd: %s must be an integer from %ld to %ld, not \"%s\" (%s)\n", k->name, k->min,
                k->max, v, from);
        return -1;
    }
    *(int *)p = (int)n;
    return 0;
}

static const key *find_key(const char *name)
{
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (strcmp(name, keys[i].name) == 0)
            return &keys[i];
    return NULL;
}

/* Strings read from the config file, freed by orderd_config_free. */
static char **file_strings;
static size_t n_file_strings;

void orderd_config_free(orderd_config *cfg)
{
    (void)cfg;
    for (size_t i = 0; i < n_file_strings; i++)
        free(file_strings[i]);
    free(file_strings);
    file_strings = NULL;
    n_file_strings = 0;
}

/* Keeps a string for the config's lifetime (freed by orderd_config_free). */
static char *keep(const char *s)
{
    char *copy = es_xstrdup(s);
    file_strings = es_xrealloc(file_strings, (n_file_strings + 1) * sizeof *file_strings);
    file_strings[n_file_strings++] = copy;
    return copy;
}

/* Sets librdkafka property prop (a later source replaces an earlier one). */
static int set_kafka(orderd_config *cfg, const char *prop, const char *v, const char *from)
{
    if (!prop[0] || strspn(prop, "abcdefghijklmnopqrstuvwxyz0123456789._") != strlen(prop)) {
        fprintf(stderr, "orderd: %s: \"kafka.%s\" is not a librdkafka property name\n", from, prop);
        return -1;
    }
    for (int i = 0; i < cfg->n_kafka_props; i++)
        if (strcmp(cfg->kafka_props[2 * i], prop) == 0) {
            cfg->kafka_props[2 * i + 1] = keep(v);
            return 0;
        }
    if (cfg->n_kafka_props >= ORDERD_MAX_KAFKA_PROPS) {
        fprintf(stderr, "orderd: %s: more than %d kafka.* properties\n", from, ORDERD_MAX_KAFKA_PROPS);
        return -1;
    }
    cfg->kafka_props[2 * cfg->n_kafka_props] = keep(prop);
    cfg->kafka_props[2 * cfg->n_kafka_props + 1] = keep(v);
    cfg->n_kafka_props++;
    cfg->kafka_props[2 * cfg->n_kafka_props] = NULL;
    return 0;
}

/* Reads "key = value" lines ('#' comments, blank lines, optional quotes around the value). */
static int load_file(orderd_config *cfg, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "orderd: cannot read config file %s\n", path);
        return -1;
    }
    char line[2048];
    int n = 0, rc = 0;
    while (fgets(line, sizeof line, f)) {
        n++;
        char *p = line + strspn(line, " \t");
        if (*p == '#' || *p == '\n' || *p == '\r' || !*p)
            continue;
        char *eq = strchr(p, '=');
        if (!eq) {
            fprintf(stderr, "orderd: %s:%d: expected key = value\n", path, n);
            rc = -1;
            break;
        }
        char *k_end = eq;
        while (k_end > p && (k_end[-1] == ' ' || k_end[-1] == '\t'))
            k_end--;
        *k_end = 0;
        char *v = eq + 1 + strspn(eq + 1, " \t");
        size_t vl = strcspn(v, "\r\n");
        while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
            vl--;
        if (vl >= 2 && v[0] == '"' && v[vl - 1] == '"') {
            v++;
            vl -= 2;
        }
        v[vl] = 0;
        if (strncmp(p, "kafka.", 6) == 0) {
            char from[2100];
            snprintf(from, sizeof from, "%s:%d", path, n);
            if (set_kafka(cfg, p + 6, v, from) != 0) {
                rc = -1;
                break;
            }
            continue;
        }
        const key *k = find_key(p);
        if (!k) {
            fprintf(stderr, "orderd: %s:%d: unknown key %s (see --help)\n", path, n, p);
            rc = -1;
            break;
        }
        char *copy = es_xstrdup(v);
        file_strings = es_xrealloc(file_strings, (n_file_strings + 1) * sizeof *file_strings);
        file_strings[n_file_strings++] = copy;
        char from[2100];
        snprintf(from, sizeof from, "%s:%d", path, n);
        if (set(cfg, k, copy, from) != 0) {
            rc = -1;
            break;
        }
    }
    fclose(f);
    return rc;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: orderd [--config FILE] [--key value]...\n\n"
               "Every key can be set in a config file (\"key = value\" lines, see packaging/orderd.conf),\n"
               "in the environment as ORDERD_<KEY> (dashes as underscores) or as a flag; flags win over\n"
               "the environment, which wins over the file, which wins over the default.\n\n");
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        fprintf(f, "  --%-22s %s (default: %s", keys[i].name, keys[i].help, keys[i].def[0] ? keys[i].def : "none");
        if (keys[i].is_int)
            fprintf(f, "; %ld to %ld", keys[i].min, keys[i].max);
        fprintf(f, ")\n");
    }
    fprintf(f, "  --%-22s any librdkafka property for the relay and the consumers (a real cluster's\n"
               "  %-24s security.protocol, sasl.*, ssl.*, ...); also \"kafka.<property> = value\" in the\n"
               "  %-24s file and ORDERD_KAFKA__<PROPERTY> (dots as underscores)\n", "kafka.<property> VALUE", "", "");
    fprintf(f, "  --%-22s config file (also ORDERD_CONFIG)\n", "config");
    fprintf(f, "  --%-22s print the effective configuration and exit\n  --%-22s this text\n", "print-config", "help");
}

int orderd_config_load(orderd_config *cfg, int argc, char **argv)
{
    memset(cfg, 0, sizeof *cfg);
    int print = 0;
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (set(cfg, &keys[i], keys[i].def, "default") != 0)
            return -1;
    const char *file = getenv("ORDERD_CONFIG");
    for (int a = 1; a + 1 < argc; a++)
        if (strcmp(argv[a], "--config") == 0)
            file = argv[a + 1];
    if (file && file[0] && load_file(cfg, file) != 0)
        return -1;
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        char env[64] = "ORDERD_";
        for (const char *s = keys[i].name; *s && strlen(env) < sizeof env - 1; s++) {
            char c = *s == '-' ? '_' : (*s >= 'a' && *s <= 'z') ? (char)(*s - 32) : *s;
            strncat(env, &c, 1);
        }
        const char *v = getenv(env);
        char from[96];
        snprintf(from, sizeof from, "environment variable %s", env);
        if (v && set(cfg, &keys[i], v, from) != 0)
            return -1;
    }
    /* ORDERD_KAFKA__SECURITY_PROTOCOL=SASL_SSL sets kafka.security.protocol. */
    for (char **e = environ; *e; e++) {
        if (strncmp(*e, "ORDERD_KAFKA__", 14) != 0 || !strchr(*e, '='))
            continue;
        char prop[256];
        size_t n = 0;
        const char *s = *e + 14;
        for (; *s != '=' && n < sizeof prop - 1; s++)
            prop[n++] = *s == '_' ? '.' : (*s >= 'A' && *s <= 'Z') ? (char)(*s + 32) : *s;
        prop[n] = 0;
        char from[300];
        snprintf(from, sizeof from, "environment variable %.*s", (int)(strchr(*e, '=') - *e), *e);
        if (set_kafka(cfg, prop, strchr(*e, '=') + 1, from) != 0)
            return -1;
    }
    for (int a = 1; a < argc; a++) {
        if (strncmp(argv[a], "--kafka.", 8) == 0) {
            if (a + 1 >= argc) {
                fprintf(stderr, "orderd: %s needs a value\n", argv[a]);
                return -1;
            }
            char from[300];
            snprintf(from, sizeof from, "command-line flag %s", argv[a]);
            if (set_kafka(cfg, argv[a] + 8, argv[a + 1], from) != 0)
                return -1;
            a++;
            continue;
        }
        if (strcmp(argv[a], "--help") == 0 || strcmp(argv[a], "-h") == 0) {
            usage(stdout);
            return 1;
        }
        if (strcmp(argv[a], "--print-config") == 0) {
            print = 1;
            continue;
        }
        if (strcmp(argv[a], "--config") == 0) {
            a++; /* read above, before the environment */
            continue;
        }
        const key *k = NULL;
        for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
            if (strncmp(argv[a], "--", 2) == 0 && strcmp(argv[a] + 2, keys[i].name) == 0)
                k = &keys[i];
        if (!k) {
            fprintf(stderr, "orderd: unknown option %s (see --help)\n", argv[a]);
            return -1;
        }
        if (a + 1 >= argc) {
            fprintf(stderr, "orderd: %s needs a value\n", argv[a]);
            return -1;
        }
        char from[96];
        snprintf(from, sizeof from, "command-line flag --%s", k->name);
        if (set(cfg, k, argv[++a], from) != 0)
            return -1;
    }
    if (print) {
        /* A valid config file: every key with its help and default. */
        printf("# orderd configuration (orderd --print-config); every key, its effective value\n");
        for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
            const char *p = (const char *)cfg + keys[i].offset;
            printf("\n# %s (default: %s", keys[i].help, keys[i].def[0] ? keys[i].def : "none");
            if (keys[i].is_int)
                printf("; %ld to %ld", keys[i].min, keys[i].max);
            printf(")\n");
            if (keys[i].is_int)
                printf("%s = %d\n", keys[i].name, *(const int *)p);
            else
                printf("%s = \"%s\"\n", keys[i].name, *(const char *const *)p);
        }
        if (cfg->n_kafka_props)
            printf("\n# librdkafka properties for the relay and the consumers\n");
        for (int i = 0; i < cfg->n_kafka_props; i++)
            printf("kafka.%s = \"%s\"\n", cfg->kafka_props[2 * i], cfg->kafka_props[2 * i + 1]);
        return 1;
    }
    return 0;
}
