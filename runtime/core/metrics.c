/* Prometheus text exposition helpers; see es/metrics.h. */
#include "es/metrics.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

const double es_hist_bounds[ES_HIST_BUCKETS] = {0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                0.05,    0.1,    0.25,  0.5,    1,     2,     4};

void es_histogram_observe_us(es_histogram *h, int64_t us)
{
    double s = (double)us / 1e6;
    size_t i = 0;
    while (i < ES_HIST_BUCKETS && s > es_hist_bounds[i])
        i++;
    atomic_fetch_add(&h->buckets[i], 1);
    atomic_fetch_add(&h->count, 1);
    atomic_fetch_add(&h->sum_us, (uint_fast64_t)(us > 0 ? us : 0));
}

void es_metrics_family(es_buf *out, const char *name, const char *type, const char *help)
{
    es_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void es_metrics_sample(es_buf *out, const char *name, const char *labels, double value)
{
    if (isnan(value))
        value = 0;
    if (labels && labels[0])
        es_buf_printf(out, "%s{%s} %.17g\n", name, labels, value);
    else
        es_buf_printf(out, "%s %.17g\n", name, value);
}

void es_metrics_rows(es_buf *out, const es_metric_row *rows, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        es_metrics_family(out, rows[i].name, rows[i].type, rows[i].help);
        es_metrics_sample(out, rows[i].name, "", rows[i].value);
    }
}

void es_metrics_histogram(es_buf *out, const char *name, const char *labels, const es_histogram *h)
{
    uint64_t cum = 0;
    const char *sep = labels && labels[0] ? "," : "";
    for (size_t i = 0; i <= ES_HIST_BUCKETS; i++) {
        cum += atomic_load(&h->buckets[i]);
        if (i < ES_HIST_BUCKETS)
            es_buf_printf(out, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels ? labels : "", sep, es_hist_bounds[i],
                          (unsigned long long)cum);
        else
            es_buf_printf(out, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels ? labels : "", sep,
                          (unsigned long long)cum);
    }
    if (labels && labels[0]) {
        es_buf_printf(out, "%s_sum{%s} %.6f\n", name, labels, (double)atomic_load(&h->sum_us) / 1e6);
        es_buf_printf(out, "%s_count{%s} %llu\n", name, labels, (unsigned long long)atomic_load(&h->count));
    } else {
        es_buf_printf(out, "%s_sum %.6f\n", name, (double)atomic_load(&h->sum_us) / 1e6);
        es_buf_printf(out, "%s_count %llu\n", name, (unsigned long long)atomic_load(&h->count));
    }
}

void es_metrics_label_value(char *dst, size_t n, const char *v)
{
    size_t o = 0;
    for (; v && *v && o + 3 < n; v++) {
        if (*v == '\\' || *v == '"') {
            dst[o++] = '\\';
            dst[o++] = *v;
        } else if (*v == '\n') {
            dst[o++] = '\\';
            dst[o++] = 'n';
        } else {
            dst[o++] = *v;
        }
    }
    dst[o] = 0;
}
