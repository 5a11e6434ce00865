/* A process that runs one relay, for tests that SIGKILL it or run several side by side.
 *   relay_proc CONNINFO BOOTSTRAP_FILE TOPIC NAME STATUS_FILE [CHECKPOINT_INTERVAL_MS]
 * Every 100 ms it rewrites STATUS_FILE (atomically) with its es_relay_status; SIGTERM stops the
 * relay cleanly. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "es/relay.h"

static volatile sig_atomic_t stopping;
static void on_term(int sig) { (void)sig; stopping = 1; }

int main(int argc, char **argv)
{
    if (argc != 6 && argc != 7) {
        fprintf(stderr, "usage: relay_proc CONNINFO BOOTSTRAP_FILE TOPIC NAME STATUS_FILE [CHECKPOINT_INTERVAL_MS]\n");
        return 2;
    }
    signal(SIGTERM, on_term);
    signal(SIGINT, on_term);
    es_relay_config cfg = {
        .conninfo = argv[1], .bootstrap_file = argv[2], .topic = argv[3], .name = argv[4],
        .partitions = 6, .batch_size = 500, .poll_interval_ms = 200, .lock_retry_ms = 300,
        .message_timeout_ms = 10000, .stats_interval_ms = 500,
        .checkpoint_interval_ms = argc == 7 ? atoi(argv[6]) : 0,
    };
    es_relay *r = NULL;
    es_error err;
    if (es_relay_start(&cfg, &r, &err) != ES_OK) {
        fprintf(stderr, "relay_proc: %s\n", err.message);
        return 1;
    }
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s.tmp", argv[5]);
    while (!stopping) {
        es_relay_status st;
        es_relay_status_get(r, &st);
        FILE *f = fopen(tmp, "w");
        if (f) {
            fprintf(f, "role=%d published=%lld failed=%lld republishes=%lld txid=%llu position=%lld kafka_ok=%d\n",
                    (int)st.role, (long long)st.published, (long long)st.failed_batches,
                    (long long)st.republishes, (unsigned long long)st.checkpoint.txid,
                    (long long)st.checkpoint.position, st.kafka_ok);
            fclose(f);
            rename(tmp, argv[5]);
        }
        struct timespec ts = {0, 100 * 1000000L};
        nanosleep(&ts, NULL);
    }
    es_relay_stop(r);
    return 0;
}
