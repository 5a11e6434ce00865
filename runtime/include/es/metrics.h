/* Prometheus text exposition (format 0.0.4): helpers to write counters, gauges and histograms,
 * and a lock-free fixed-bucket latency histogram. Modules keep their own counters; the
 * application renders them all on GET /metrics. */
#ifndef ES_METRICS_H
#define ES_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include "es/buf.h"

#define ES_HIST_BUCKETS 14
/* Upper bounds in seconds: 0.25 ms .. 4 s, then +Inf. */
extern const double es_hist_bounds[ES_HIST_BUCKETS];

typedef struct es_histogram {
    atomic_uint_fast64_t buckets[ES_HIST_BUCKETS + 1];  /* non-cumulative; last is +Inf */
    atomic_uint_fast64_t count;
    atomic_uint_fast64_t sum_us;
} es_histogram;

void es_histogram_observe_us(es_histogram *h, int64_t us);

/* "# HELP" and "# TYPE" lines, once per metric family. */
void es_metrics_family(es_buf *out, const char *name, const char *type, const char *help);
/* One sample: name{labels} value. labels is "k=\"v\",k2=\"v2\"" or "" (values escaped by caller). */
void es_metrics_sample(es_buf *out, const char *name, const char *labels, double value);
/* A family with one unlabelled sample: a module lists its scalar counters and gauges as an
 * array of these and writes them with es_metrics_rows. type is "counter" or "gauge". */
typedef struct es_metric_row {
    const char *name, *type, *help;
    double value;
} es_metric_row;

/* For each of the n rows, its "# HELP"/"# TYPE" lines and its one sample. */
void es_metrics_rows(es_buf *out, const es_metric_row *rows, size_t n);
#define ES_METRICS_ROWS(out, rows) es_metrics_rows((out), (rows), sizeof(rows) / sizeof((rows)[0]))

/* The _bucket, _sum and _count samples of a histogram with the given labels. */
void es_metrics_histogram(es_buf *out, const char *name, const char *labels, const es_histogram *h);
/* Escapes a label value (\, " and newline) into dst (always NUL-terminated). */
void es_metrics_label_value(char *dst, size_t n, const char *v);

#endif
