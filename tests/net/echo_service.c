/* The test service and its dispatcher (see echo_service.h). The worker completes calls from its
 * own thread, in due-time order, so many sleeping calls overlap like real service calls do. */
#include "echo_service.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "es/clock.h"
#include "google/api/http.pb-c.h"
#include "google/protobuf/wrappers.pb-c.h"

const es_method_def echo_rule_method = {
    .name = "Rule",
    .grpc_path = "/test.v1.Echo/Rule",
    .input = &google__api__http_rule__descriptor,
    .output = &google__api__http_rule__descriptor,
};
const es_method_def echo_say_method = {
    .name = "Say",
    .grpc_path = "/test.v1.Echo/Say",
    .input = &google__protobuf__string_value__descriptor,
    .output = &google__protobuf__string_value__descriptor,
};
static const es_method_def *const methods[] = {&echo_rule_method, &echo_say_method};
static const es_route_def routes[] = {
    {"POST", "/v1/rules", "*", &echo_rule_method},
    {"GET", "/v1/rules/{selector}", NULL, &echo_rule_method},
    {"PUT", "/v1/rules/{selector}", "*", &echo_rule_method},
    {"POST", "/v1/rules/{selector}:custom", "custom", &echo_rule_method},
    {"DELETE", "/v1/rules/{selector}/bindings/{body}", NULL, &echo_rule_method},
    {"POST", "/v1/say", "*", &echo_say_method},
    {"GET", "/v1/say/{value}", NULL, &echo_say_method},
};
const es_service_def echo_service = {
    .name = "test.v1.Echo",
    .methods = methods,
    .n_methods = sizeof methods / sizeof methods[0],
    .routes = routes,
    .n_routes = sizeof routes / sizeof routes[0],
};

struct pending {
    struct pending *next;
    es_call *call;
    int64_t due_ms;
};

static int64_t now_ms(void) { return es_mono_us() / 1000; }

/* The command text of a request: HttpRule.selector or StringValue.value. */
static const char *command_of(const es_call *call)
{
    if (call->method == &echo_rule_method)
        return ((const Google__Api__HttpRule *)call->request)->selector;
    return ((const Google__Protobuf__StringValue *)call->request)->value;
}

static void answer(es_call *call)
{
    const char *cmd = command_of(call);
    call->status = ES_OK;
    memset(&call->err, 0, sizeof call->err);
    call->response = NULL;
    if (strncmp(cmd, "err:", 4) == 0) {
        int code = atoi(cmd + 4);
        const char *f = strchr(cmd + 4, ':');
        const char *m = f ? strchr(f + 1, ':') : NULL;
        char field[128] = "";
        if (f && m)
            snprintf(field, sizeof field, "%.*s", (int)(m - f - 1), f + 1);
        call->status = es_error_set(&call->err, -code, field, "%s", m ? m + 1 : "failed");
        return;
    }
    if (strcmp(cmd, "badtype") == 0) {
        const ProtobufCMessageDescriptor *other = call->method == &echo_rule_method
                                                      ? &google__protobuf__string_value__descriptor
                                                      : &google__api__http_rule__descriptor;
        ProtobufCMessage *m = es_arena_alloc(&call->arena, other->sizeof_message);
        other->message_init(m);
        call->response = m;
        return;
    }
    if (strcmp(cmd, "meta") == 0) {
        char *text = es_arena_sprintf(&call->arena, "auth=%s;idem=%s;corr=%s",
                                      call->authorization ? call->authorization : "-",
                                      call->idempotency_key ? call->idempotency_key : "-",
                                      call->correlation_id ? call->correlation_id : "-");
        if (call->method == &echo_rule_method)
            ((Google__Api__HttpRule *)call->request)->body = text;
        else
            ((Google__Protobuf__StringValue *)call->request)->value = text;
    }
    /* Echo: the request lives in the same arena, so it can be the response. */
    call->response = call->request;
}

static void *worker(void *arg)
{
    echo_dispatcher *d = arg;
    pthread_mutex_lock(&d->mu);
    for (;;) {
        if (!d->queue) {
            if (d->quit)
                break;
            pthread_cond_wait(&d->cv, &d->mu);
            continue;
        }
        int64_t wait = d->queue->due_ms - now_ms();
        if (wait > 0) {
            struct timespec ts = es_mono_deadline(wait * 1000);
            pthread_cond_timedwait(&d->cv, &d->mu, &ts);
            continue;
        }
        struct pending *p = d->queue;
        d->queue = p->next;
        d->outstanding--;
        d->completed++;
        d->completed_off_thread++;
        pthread_mutex_unlock(&d->mu);
        answer(p->call);
        p->call->done(p->call);
        free(p);
        pthread_mutex_lock(&d->mu);
    }
    pthread_mutex_unlock(&d->mu);
    return NULL;
}

static void submit(es_dispatcher *base, es_call *call)
{
    echo_dispatcher *d = (echo_dispatcher *)base;
    const char *cmd = command_of(call);
    pthread_mutex_lock(&d->mu);
    d->submitted++;
    if (strcmp(cmd, "inline") == 0) {
        d->completed++;
        pthread_mutex_unlock(&d->mu);
        answer(call);
        call->done(call);
        return;
    }
    struct pending *p = calloc(1, sizeof *p);
    p->call = call;
    p->due_ms = now_ms() + (strncmp(cmd, "sleep:", 6) == 0 ? atoi(cmd + 6) : 0);
    struct pending **at = &d->queue;
    while (*at && (*at)->due_ms <= p->due_ms)
        at = &(*at)->next;
    p->next = *at;
    *at = p;
    if (++d->outstanding > d->max_outstanding)
        d->max_outstanding = d->outstanding;
    pthread_cond_signal(&d->cv);
    pthread_mutex_unlock(&d->mu);
}

void echo_dispatcher_init(echo_dispatcher *d, const struct es_json_registry *json)
{
    memset(d, 0, sizeof *d);
    d->base.submit = submit;
    d->base.json = json;
    d->base.data = d;
    pthread_mutex_init(&d->mu, NULL);
    pthread_condattr_t ca; /* deadlines on the monotonic clock (es_mono_deadline) */
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&d->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_create(&d->worker, NULL, worker, d);
}

void echo_dispatcher_destroy(echo_dispatcher *d)
{
    pthread_mutex_lock(&d->mu);
    d->quit = 1;
    pthread_cond_signal(&d->cv);
    pthread_mutex_unlock(&d->mu);
    pthread_join(d->worker, NULL);
    pthread_mutex_destroy(&d->mu);
    pthread_cond_destroy(&d->cv);
}

void echo_dispatcher_counts(echo_dispatcher *d, size_t *submitted, size_t *completed, size_t *max_outstanding)
{
    pthread_mutex_lock(&d->mu);
    if (submitted)
        *submitted = d->submitted;
    if (completed)
        *completed = d->completed;
    if (max_outstanding)
        *max_outstanding = d->max_outstanding;
    pthread_mutex_unlock(&d->mu);
}
