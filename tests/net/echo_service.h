/* A service and dispatcher for transport tests, built on well-known messages so runtime/net is
 * tested without orders.
 *
 * Methods (package "test.v1", service "Echo"):
 *   Rule   google.api.HttpRule -> HttpRule      echo; behaviour chosen by `selector`
 *   Say    google.protobuf.StringValue -> same  echo; behaviour chosen by `value`
 * Commands in selector / value:
 *   "err:<grpc code>:<field>:<message>"  fail with that status, field and message
 *   "sleep:<ms>"                         complete after ms from the worker thread
 *   "inline"                             complete synchronously inside submit()
 *   "meta"                               answer "auth=<token>;idem=<key>;corr=<id>" (in body /
 *                                        value), "-" for an absent one
 *   "badtype"                            answer a message of the wrong type (INTERNAL expected)
 *   anything else                        echo, completed from the worker thread */
#ifndef TEST_ECHO_SERVICE_H
#define TEST_ECHO_SERVICE_H

#include <pthread.h>
#include <stddef.h>
#include "es/service.h"

/* Wall-time bounds are checked only without sanitizers: an ASan/UBSan build (ORDERD_SANITIZED=1,
 * set by tests/net/CMakeLists.txt) runs several times slower, so there a duration is reported,
 * not enforced. */
#ifndef ORDERD_SANITIZED
#define ORDERD_SANITIZED 0
#endif
#define TIMING_ENFORCED (!ORDERD_SANITIZED)

extern const es_service_def echo_service;
extern const es_method_def echo_rule_method, echo_say_method;

typedef struct echo_dispatcher {
    es_dispatcher base;       /* first: the transports get &base */
    pthread_t worker;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct pending *queue;    /* sorted by due time */
    int quit;
    size_t submitted, completed, completed_off_thread, max_outstanding, outstanding;
} echo_dispatcher;

/* Starts the worker thread. json: the registry for HTTP bodies (may be NULL for gRPC tests). */
void echo_dispatcher_init(echo_dispatcher *d, const struct es_json_registry *json);
/* Waits for queued calls to finish, then stops the worker. */
void echo_dispatcher_destroy(echo_dispatcher *d);
/* Thread-safe counter snapshot. */
void echo_dispatcher_counts(echo_dispatcher *d, size_t *submitted, size_t *completed, size_t *max_outstanding);

#endif
