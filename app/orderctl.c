/* orderctl: the operator's CLI for an orderd database. Global options, the subcommand table and
 * the shared connection; each subcommand lives in its own orderctl_*.c file. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "orderctl.h"
#include "upcasters.h"

static void usage(FILE *f)
{
    fputs("usage: orderctl [global options] <command> [arguments]\n"
          "\n"
          "commands:\n"
          "  migrate                          apply the event-store and projection migrations (idempotent)\n"
          "  history <order_id>               the order's events, one JSON object per line\n"
          "  tail [--from-start] [--max N]    follow the global feed live, one JSON line per event, until\n"
          "                                   interrupted (or N events)\n"
          "  projections list                 the projections this binary maintains, with row counts\n"
          "  projections status               each projection's shape, this binary's, and a build beside it\n"
          "  projections rebuild [name]       empty a projection and rebuild it from the event store alone\n"
          "  verify [name] [--settle-ms N] [--max-diffs N]\n"
          "                                   fold every stream from the store and compare it with its\n"
          "                                   projection row; exit 1 when anything differs\n"
          "  dead-letters list [--all] [--json]\n"
          "                                   open dead letters (--all: resolved ones too)\n"
          "  dead-letters retry <id>|--all    re-apply the dead letter's stream through its consumer and\n"
          "                                   mark it resolved\n"
          "  schema check                     is this binary's descriptor set registered; which others are;\n"
          "                                   can this binary decode every stored event type\n"
          "  events partitions [--json]       es_events' partitions: ranges of positions, row estimates, sizes\n"
          "\n"
          "global options:\n"
          "  --pg CONNINFO                    PostgreSQL (default: $ORDERD_PG, else orderd's default)\n"
          "  --payment-gateway MODE           gateway for re-applying payment-flow dead letters\n"
          "                                   (default: $ORDERD_PAYMENT_GATEWAY, else succeed)\n"
          "  --payment-delay-ms N             (default: $ORDERD_PAYMENT_DELAY_MS, else 0)\n"
          "  --progress | --no-progress       force the progress line of rebuild and verify on or off\n"
          "                                   (default: on when stderr is a terminal)\n"
          "\n"
          "exit status: 0 ok; 1 the check found something (differences, unregistered schema, failed\n"
          "retry); 2 usage or operational error.\n",
          f);
}

int ctl_fail(const char *what, const es_error *err)
{
    if (err->field[0])
        fprintf(stderr, "orderctl: %s: %s: %s (field %s)\n", what, es_strerror(err->code), err->message, err->field);
    else
        fprintf(stderr, "orderctl: %s: %s: %s\n", what, es_strerror(err->code), err->message);
    return CTL_ERROR;
}

const es_event_def *ctl_event_def(const ctl *c, const char *stream_type, const char *type)
{
    /* The package whose aggregate is named stream_type first; any package's type after. */
    for (size_t i = 0; i < c->packages->n; i++) {
        const es_schema *s = c->packages->schemas[i];
        for (size_t k = 0; stream_type && k < s->n_aggregates; k++)
            if (strcmp(s->aggregates[k]->name, stream_type) == 0)
                return es_schema_find_event(s->aggregates[k], type);
    }
    for (size_t i = 0; i < c->packages->n; i++) {
        const es_event_def *def = es_schema_event_by_type(c->packages->schemas[i], NULL, type);
        if (def)
            return def;
    }
    return NULL;
}

int ctl_connect(ctl *c)
{
    es_error err = {0};
    es_pg_pool_config pc = {.conninfo = c->pg, .size = 4, .application_name = "orderctl"};
    if (!(c->pool = es_pg_pool_new(&pc, &err)))
        return ctl_fail("--pg", &err);
    return CTL_OK;
}

es_pipeline *ctl_pipeline(ctl *c)
{
    if (c->pipeline)
        return c->pipeline;
    es_error err = {0};
    /* Loads only: no cache, so every load reads the store as it is now. */
    es_pipeline_config pl = {.pool = c->pool, .cache_disabled = 1, .upcasters = orders_upcasters,
                             .n_upcasters = orders_n_upcasters};
    if (!(c->pipeline = es_pipeline_new(&pl, &err)))
        ctl_fail("pipeline", &err);
    return c->pipeline;
}

static const struct {
    const char *name;
    int (*run)(ctl *c, int argc, char **argv);
} COMMANDS[] = {
    {"migrate", ctl_migrate},   {"history", ctl_history},         {"tail", ctl_tail},
    {"projections", ctl_projections}, {"verify", ctl_verify}, {"dead-letters", ctl_dead_letters},
    {"schema", ctl_schema},     {"events", ctl_events},
};

static const char *env_or(const char *name, const char *def)
{
    const char *v = getenv(name);
    return v && v[0] ? v : def;
}

int main(int argc, char **argv)
{
    static ctl c;
    c.pg = env_or("ORDERD_PG", "host=/var/run/postgresql dbname=orderd");
    c.payment_gateway = env_or("ORDERD_PAYMENT_GATEWAY", "succeed");
    c.payment_delay_ms = atoi(env_or("ORDERD_PAYMENT_DELAY_MS", "0"));
    c.progress = isatty(2);
    c.packages = &es_linked_packages;
    c.n_projections = es_packages_projections(c.packages, c.projections, NULL, CTL_MAX_PROJECTIONS);
    if (c.n_projections > CTL_MAX_PROJECTIONS) {
        fprintf(stderr, "orderctl: %zu projections linked; orderctl knows at most %d\n", c.n_projections,
                CTL_MAX_PROJECTIONS);
        return CTL_ERROR;
    }

    /* Global options may stand anywhere; the rest, in order, is the command line. */
    char **rest = es_xcalloc((size_t)argc + 1, sizeof *rest);
    int n = 0, rc = CTL_ERROR;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char **slot = !strcmp(a, "--pg") ? &c.pg
                            : !strcmp(a, "--payment-gateway") ? &c.payment_gateway
                                                                : NULL;
        if (slot || !strcmp(a, "--payment-delay-ms")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "orderctl: %s needs a value\n", a);
                goto done;
            }
            if (slot)
                *slot = argv[++i];
            else
                c.payment_delay_ms = atoi(argv[++i]);
        } else if (!strncmp(a, "--pg=", 5)) {
            c.pg = a + 5;
        } else if (!strcmp(a, "--progress") || !strcmp(a, "--no-progress")) {
            c.progress = a[2] == 'p';
        } else if (!strcmp(a, "--help") || !strcmp(a, "-h") || !strcmp(a, "help")) {
            usage(stdout);
            rc = CTL_OK;
            goto done;
        } else {
            rest[n++] = argv[i];
        }
    }
    if (n == 0) {
        usage(stderr);
        goto done;
    }
    signal(SIGPIPE, SIG_IGN);
    for (size_t k = 0; k < sizeof COMMANDS / sizeof COMMANDS[0]; k++) {
        if (strcmp(rest[0], COMMANDS[k].name) != 0)
            continue;
        c.json = es_json_registry_new();
        es_packages_add_json(c.json, c.packages);
        rc = ctl_connect(&c);
        if (rc == CTL_OK)
            rc = COMMANDS[k].run(&c, n, rest);
        goto done;
    }
    fprintf(stderr, "orderctl: unknown command %s (see orderctl --help)\n", rest[0]);
done:
    es_pipeline_free(c.pipeline);
    es_pg_pool_free(c.pool);
    es_json_registry_free(c.json);
    free(rest);
    return rc;
}
