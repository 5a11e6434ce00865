/* The order a relay round is produced in (relay_topics.c, es__relay_round_order): partition by
 * partition as the producer's own partitioner places each key, every key's events in feed order,
 * and feed order whenever the partitions are not known. No broker: the partitioners are
 * librdkafka's own functions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "relay_topics.h"

enum { N = 3000, STREAMS = 700 };

static es_envelope_view evs[N];
static char ids[STREAMS][40];

/* N events of STREAMS streams of two types, interleaved as a feed would hold them; version
 * numbers per stream in feed order. */
static void make_feed(void)
{
    int64_t version[STREAMS] = {0};
    uint32_t x = 12345;
    for (int s = 0; s < STREAMS; s++)
        snprintf(ids[s], sizeof ids[s], "%08x-%04d-4000-8000-%012d", s * 2654435761u, s, s);
    for (int i = 0; i < N; i++) {
        x = x * 1103515245u + 12345u;
        int s = (int)((x >> 8) % STREAMS);
        evs[i] = (es_envelope_view){.stream_id = ids[s], .stream_type = s % 3 ? "order" : "refund",
                                    .version = ++version[s]};
    }
}

static es__relay_topics topics(int order_parts, int refund_parts)
{
    es_relay_route routes[1] = {{.stream_type = "refund", .topic = "refunds.events"}};
    es_relay_config cfg = {.topic = "orders.events", .routes = routes, .n_routes = 1};
    es__relay_topics t;
    es__relay_topics_init(&t, &cfg);
    t.partition_cnt[0] = order_parts;
    t.partition_cnt[1] = refund_parts;
    return t;
}

/* Each (topic, partition) is one contiguous run, and each stream's versions rise. */
static void grouped_and_in_order(void **state)
{
    (void)state;
    make_feed();
    static const char *const names[] = {"consistent_random", "murmur2_random", "fnv1a", NULL};
    for (int k = 0; k < 4; k++) {
        es__relay_partitioner fn = es__relay_partitioner_of(names[k] ? names[k] : NULL);
        assert_non_null(fn);
        es__relay_topics t = topics(200, 7);
        size_t *order = es__relay_round_order(&t, fn, evs, N);
        assert_non_null(order);
        static int seen[N];
        memset(seen, 0, sizeof seen);
        int64_t last[STREAMS] = {0};
        int64_t prev = -1, runs = 0;
        for (size_t i = 0; i < N; i++) {
            const es_envelope_view *ev = &evs[order[i]];
            assert_int_equal(seen[order[i]]++, 0);
            int s = atoi(ev->stream_id + 9);
            assert_true(ev->version > last[s]);   /* a stream's events keep the feed's order */
            last[s] = ev->version;
            size_t topic = es__relay_topic_index(&t, ev->stream_type);
            int32_t p = fn(NULL, ev->stream_id, strlen(ev->stream_id), t.partition_cnt[topic], NULL, NULL);
            int64_t where = (int64_t)topic << 32 | p;
            assert_true(where >= prev);           /* partitions never revisited: one run each */
            runs += where != prev;
            prev = where;
        }
        assert_true(runs <= 207);
        assert_true(runs > 100);                  /* the streams do spread over the partitions */
        free(order);
        es__relay_topics_free(&t);
    }
}

/* Partitions unknown for a topic (not seen at ensure): that topic's events keep feed order. */
static void unknown_partitions_keep_feed_order(void **state)
{
    (void)state;
    make_feed();
    es__relay_topics t = topics(0, 0);
    size_t *order = es__relay_round_order(&t, es__relay_partitioner_of(NULL), evs, N);
    assert_non_null(order);
    /* Both topics unknown: grouped by topic only, feed order within each. */
    size_t prev[2] = {0, 0};
    int first[2] = {1, 1};
    for (size_t i = 0; i < N; i++) {
        size_t topic = es__relay_topic_index(&t, evs[order[i]].stream_type);
        assert_true(first[topic] || order[i] > prev[topic]);
        first[topic] = 0;
        prev[topic] = order[i];
    }
    free(order);
    es__relay_topics_free(&t);
}

/* A partitioner that does not follow the key (random), or one unknown: the feed's order. */
static void no_order_without_a_key_partitioner(void **state)
{
    (void)state;
    make_feed();
    assert_null(es__relay_partitioner_of("random"));
    assert_null(es__relay_partitioner_of("no-such-partitioner"));
    es__relay_topics t = topics(6, 6);
    assert_null(es__relay_round_order(&t, NULL, evs, N));
    assert_null(es__relay_round_order(&t, es__relay_partitioner_of(NULL), evs, 1));
    es__relay_topics_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(grouped_and_in_order),
        cmocka_unit_test(unknown_partitions_keep_feed_order),
        cmocka_unit_test(no_order_without_a_key_partitioner),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
