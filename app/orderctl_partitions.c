/* orderctl events partitions: es_events' partitions with their ranges, row estimates and sizes
 * (es/partitions.h; README, "Event partitions"). */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "es/partitions.h"
#include "orderctl.h"

static void bound(char *out, size_t len, int has, int64_t v, const char *none)
{
    if (has)
        snprintf(out, len, "%" PRId64, v);
    else
        snprintf(out, len, "%s", none);
}

static int list(ctl *c, int json)
{
    es_partition_info *v = NULL;
    size_t n = 0;
    es_error err = {0};
    if (es_partitions_list(c->pool, &v, &n, &err) != ES_OK)
        return ctl_fail("events partitions", &err);
    if (!json)
        printf("%-28s %-21s %-21s %14s %14s  %s\n", "partition", "from", "to", "rows (est.)", "bytes", "tablespace");
    for (size_t i = 0; i < n; i++) {
        const es_partition_info *p = &v[i];
        char from[24], to[24], rows[24];
        bound(from, sizeof from, p->has_from, p->from, p->is_default ? "DEFAULT" : "MINVALUE");
        bound(to, sizeof to, p->has_to, p->to, p->is_default ? "" : "MAXVALUE");
        bound(rows, sizeof rows, p->rows_estimate >= 0, p->rows_estimate, "unknown");
        if (json)
            printf("{\"partition\":\"%s\",\"default\":%s,\"from\":%s,\"to\":%s,\"rows_estimate\":%" PRId64
                   ",\"bytes\":%" PRId64 ",\"tablespace\":\"%s\"}\n",
                   p->name, p->is_default ? "true" : "false", p->has_from ? from : "null", p->has_to ? to : "null",
                   p->rows_estimate, p->bytes, p->tablespace);
        else
            printf("%-28s %-21s %-21s %14s %14" PRId64 "  %s\n", p->name, from, to, rows, p->bytes,
                   p->tablespace[0] ? p->tablespace : "(default)");
    }
    free(v);
    return CTL_OK;
}

int ctl_events(ctl *c, int argc, char **argv)
{
    int json = argc == 3 && !strcmp(argv[2], "--json");
    if (argc < 2 || strcmp(argv[1], "partitions") != 0 || (argc > 2 && !json)) {
        fprintf(stderr, "usage: orderctl events partitions [--json]\n");
        return CTL_ERROR;
    }
    return list(c, json);
}
