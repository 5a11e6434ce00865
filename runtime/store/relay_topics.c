/* The relay's Kafka topics: routing by stream type, creating the topics, counting what they
 * hold (relay_topics.h). relay.c owns the cursor over es_events and the publishing. */
#include "relay_topics.h"

#include <stdlib.h>
#include <string.h>

#include "es/arena.h"

void es__relay_topics_init(es__relay_topics *t, const es_relay_config *cfg)
{
    *t = (es__relay_topics){
        .names = es_xcalloc(cfg->n_routes + 1, sizeof *t->names),
        .route_type = es_xcalloc(cfg->n_routes + 1, sizeof *t->route_type),
        .route_topic = es_xcalloc(cfg->n_routes + 1, sizeof *t->route_topic),
        .partitions = cfg->partitions > 0 ? cfg->partitions : 6,
        .replication = cfg->replication_factor > 0 ? cfg->replication_factor : 3,
        .partition_cnt = es_xcalloc(cfg->n_routes + 1, sizeof *t->partition_cnt),
    };
    t->names[t->n++] = es_xstrdup(cfg->topic);
    for (size_t i = 0; i < cfg->n_routes; i++) {
        const char *name = cfg->routes[i].topic && cfg->routes[i].topic[0] ? cfg->routes[i].topic : cfg->topic;
        size_t k = 0;
        while (k < t->n && strcmp(t->names[k], name) != 0)
            k++;
        if (k == t->n)
            t->names[t->n++] = es_xstrdup(name);
        t->route_type[t->n_routes] = es_xstrdup(cfg->routes[i].stream_type ? cfg->routes[i].stream_type : "");
        t->route_topic[t->n_routes++] = t->names[k];
    }
}

void es__relay_topics_free(es__relay_topics *t)
{
    for (size_t i = 0; i < t->n; i++)
        free(t->names[i]);
    free(t->names);
    for (size_t i = 0; i < t->n_routes; i++)
        free(t->route_type[i]);
    free(t->route_type);
    free(t->route_topic);
    free(t->partition_cnt);
    *t = (es__relay_topics){0};
}

/* Creates the topic unless the cluster lists it already. A cluster that refuses CreateTopics
 * (auto-creating on first produce instead) is logged, not fatal. Returns the partition count
 * seen in metadata afterwards, or -1 when metadata failed. */
static int ensure_topic(es_relay *r, const es__relay_topics *t, rd_kafka_t *rk, const char *topic)
{
    const struct rd_kafka_metadata *md = NULL;
    int parts = -1;
    /* all_topics=1: asking for one topic by name would auto-create it with defaults. */
    if (rd_kafka_metadata(rk, 1, NULL, &md, 5000) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return -1;
    for (int i = 0; i < md->topic_cnt; i++)
        if (strcmp(md->topics[i].topic, topic) == 0 && !md->topics[i].err)
            parts = md->topics[i].partition_cnt;
    rd_kafka_metadata_destroy(md);
    if (parts > 0)
        return parts;

    char errstr[256];
    rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(topic, t->partitions, t->replication,
                                                    errstr, sizeof errstr);
    if (!nt) {
        es__relay_set_error(r, "topic %s: %s", topic, errstr);
        return -1;
    }
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *opt = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_AdminOptions_set_request_timeout(opt, 3000, errstr, sizeof errstr);
    rd_kafka_CreateTopics(rk, &nt, 1, opt, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 5000);
    rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR__TIMED_OUT;
    if (ev) {
        e = rd_kafka_event_error(ev);
        const rd_kafka_CreateTopics_result_t *res = rd_kafka_event_CreateTopics_result(ev);
        size_t cnt = 0;
        const rd_kafka_topic_result_t **tr = res ? rd_kafka_CreateTopics_result_topics(res, &cnt) : NULL;
        if (!e && cnt == 1)
            e = rd_kafka_topic_result_error(tr[0]);
        rd_kafka_event_destroy(ev);
    }
    rd_kafka_AdminOptions_destroy(opt);
    rd_kafka_NewTopic_destroy(nt);
    rd_kafka_queue_destroy(q);
    if (e && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
        es__relay_say(r, "create topic %s (%d partitions): %s; relying on auto-creation", topic,
                      t->partitions, rd_kafka_err2str(e));
    else if (!e)
        es__relay_say(r, "created topic %s with %d partitions", topic, t->partitions);
    return e ? 0 : t->partitions;
}

int es__relay_topics_ensure(es_relay *r, es__relay_topics *t, rd_kafka_t *rk)
{
    for (size_t i = 0; i < t->n; i++)
        if ((t->partition_cnt[i] = ensure_topic(r, t, rk, t->names[i])) < 0)
            return -1;
    return 0;
}

size_t es__relay_topic_index(const es__relay_topics *t, const char *stream_type)
{
    const char *name = es__relay_topic_of(t, stream_type);
    for (size_t i = 0; i < t->n; i++)
        if (t->names[i] == name)
            return i;
    return 0;
}

es__relay_partitioner es__relay_partitioner_of(const char *name)
{
    static const struct {
        const char *name;
        es__relay_partitioner fn;
    } known[] = {{"consistent_random", rd_kafka_msg_partitioner_consistent_random},
                 {"consistent", rd_kafka_msg_partitioner_consistent},
                 {"murmur2", rd_kafka_msg_partitioner_murmur2},
                 {"murmur2_random", rd_kafka_msg_partitioner_murmur2_random},
                 {"fnv1a", rd_kafka_msg_partitioner_fnv1a},
                 {"fnv1a_random", rd_kafka_msg_partitioner_fnv1a_random}};
    if (!name)
        return rd_kafka_msg_partitioner_consistent_random;
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (!strcmp(known[i].name, name))
            return known[i].fn;
    return NULL;
}

static int publishes_to(const es__relay_topics *t, const char *topic)
{
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->names[i], topic) == 0)
            return 1;
    return 0;
}

const char *es__relay_topic_of(const es__relay_topics *t, const char *stream_type)
{
    for (size_t i = 0; stream_type && i < t->n_routes; i++)
        if (strcmp(t->route_type[i], stream_type) == 0)
            return t->route_topic[i];
    return t->names[0];
}

int64_t es__relay_topics_messages(const es__relay_topics *t, rd_kafka_t *rk)
{
    const struct rd_kafka_metadata *md = NULL;
    /* A topic the cluster does not know holds nothing: with a checkpoint past zero that is a new
     * cluster (even one whose id repeats the old one's, as the mock's can), and the feed must be
     * published again rather than stranded. */
    int64_t sum = 0;
    if (rd_kafka_metadata(rk, 1, NULL, &md, 5000) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return -1;
    for (int i = 0; i < md->topic_cnt; i++) {
        const struct rd_kafka_metadata_topic *mt = &md->topics[i];
        if (!publishes_to(t, mt->topic))
            continue;
        if (mt->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
            continue;
        if (mt->err) {
            sum = -1; /* e.g. no leader yet: unknown, not empty */
            break;
        }
        for (int p = 0; p < mt->partition_cnt; p++) {
            int64_t lo = 0, hi = 0;
            if (rd_kafka_query_watermark_offsets(rk, mt->topic, mt->partitions[p].id, &lo, &hi,
                                                 5000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
                sum = -1;
                break;
            }
            sum += hi;
        }
    }
    rd_kafka_metadata_destroy(md);
    return sum;
}


typedef struct placed {
    int64_t where;   /* topic index << 32 | partition, the order of the round */
    size_t i;        /* place in the feed's order: keeps each key's events in order */
} placed;

static int placed_cmp(const void *a, const void *b)
{
    const placed *x = a, *y = b;
    if (x->where != y->where)
        return x->where < y->where ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

size_t *es__relay_round_order(const es__relay_topics *t, es__relay_partitioner fn, const es_envelope_view *evs,
                              size_t n)
{
    if (!fn || n < 2)
        return NULL;
    placed *o = es_xcalloc(n, sizeof *o);
    for (size_t i = 0; i < n; i++) {
        size_t k = es__relay_topic_index(t, evs[i].stream_type);
        int32_t cnt = t->partition_cnt[k], p = 0;
        size_t keylen = strlen(evs[i].stream_id);
        if (cnt > 0 && keylen > 0) /* with a key the partitioners never look at the topic handle */
            p = fn(NULL, evs[i].stream_id, keylen, cnt, NULL, NULL);
        o[i] = (placed){.where = (int64_t)k << 32 | (uint32_t)p, .i = i};
    }
    qsort(o, n, sizeof *o, placed_cmp);
    size_t *order = es_xcalloc(n, sizeof *order);
    for (size_t i = 0; i < n; i++)
        order[i] = o[i].i;
    free(o);
    return order;
}
