/* Integration tests for runtime/net/grpc_server.c: a real gRPC client (python3-grpcio, run with
 * /usr/bin/python3 grpc_client.py) against the server on loopback, with the echo dispatcher
 * completing calls from its worker thread. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "echo_service.h"
#include "es/clock.h"
#include "es/grpc_server.h"

#ifndef GRPC_CLIENT_PY
#error "GRPC_CLIENT_PY must name tests/net/grpc_client.py"
#endif

typedef struct fixture {
    echo_dispatcher d;
    es_grpc_server *srv;
} fixture;

static fixture *start_server(void)
{
    fixture *f = calloc(1, sizeof *f);
    echo_dispatcher_init(&f->d, NULL);
    es_grpc_config cfg = {.address = "127.0.0.1:0", .threads = 2, .max_message = 64 * 1024,
                          .shutdown_grace_ms = 3000};
    es_error err = {0};
    f->srv = es_grpc_server_new(&cfg, &f->d.base, &err);
    if (!f->srv || es_grpc_server_add_service(f->srv, &echo_service, &err) != ES_OK ||
        es_grpc_server_start(f->srv, &err) != ES_OK) {
        fprintf(stderr, "grpc server: %s\n", err.message);
        return NULL;
    }
    return f;
}

static void stop_server(fixture *f)
{
    es_grpc_server_free(f->srv);
    echo_dispatcher_destroy(&f->d);
    free(f);
}

static int setup(void **state)
{
    *state = start_server();
    return *state ? 0 : -1;
}

static int teardown(void **state)
{
    stop_server(*state);
    return 0;
}

static int run_client(int port, const char *scenario)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "timeout 60 /usr/bin/python3 %s %d %s", GRPC_CLIENT_PY, port, scenario);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

#define SCENARIO(name)                                                                             \
    static void test_##name(void **state)                                                          \
    {                                                                                              \
        fixture *f = *state;                                                                       \
        assert_int_equal(run_client(es_grpc_server_port(f->srv), #name), 0);                       \
    }

SCENARIO(success)
SCENARIO(errors)
SCENARIO(metadata)
SCENARIO(unknown)
SCENARIO(badbytes)
SCENARIO(oversize)
SCENARIO(deadline)

static void test_concurrent(void **state)
{
    fixture *f = *state;
    size_t before, submitted, completed, max_outstanding;
    echo_dispatcher_counts(&f->d, &before, NULL, NULL);
    assert_int_equal(run_client(es_grpc_server_port(f->srv), "concurrent"), 0);
    echo_dispatcher_counts(&f->d, &submitted, &completed, &max_outstanding);
    /* 64 sleeping calls were in the dispatcher at once: the transport does not serialise them. */
    assert_true(max_outstanding >= 32);
    assert_int_equal(submitted - before, 64 + 400);
    /* Every submitted call completes (the deadline test's sleeper may still be on its way). */
    for (int i = 0; i < 300 && completed != submitted; i++) {
        usleep(10 * 1000);
        echo_dispatcher_counts(&f->d, &submitted, &completed, NULL);
    }
    assert_int_equal(completed, submitted);
}

static void test_port_and_errors(void **state)
{
    fixture *f = *state;
    assert_true(es_grpc_server_port(f->srv) > 0);
    es_error err = {0};
    /* The same port again is an error, not a silent SO_REUSEPORT share. */
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", es_grpc_server_port(f->srv));
    es_grpc_config cfg = {.address = addr};
    es_grpc_server *dup = es_grpc_server_new(&cfg, &f->d.base, &err);
    assert_non_null(dup);
    assert_int_equal(es_grpc_server_add_service(dup, &echo_service, &err), ES_OK);
    assert_int_equal(es_grpc_server_add_service(dup, &echo_service, &err), ES_ALREADY_EXISTS);
    assert_int_equal(es_grpc_server_start(dup, &err), ES_UNAVAILABLE);
    assert_int_equal(es_grpc_server_port(dup), 0);
    es_grpc_server_free(dup);

    es_grpc_config tls = {.address = "127.0.0.1:0", .tls_cert_file = "/nonexistent.pem",
                          .tls_key_file = "/nonexistent.key"};
    es_grpc_server *t = es_grpc_server_new(&tls, &f->d.base, &err);
    assert_int_equal(es_grpc_server_start(t, &err), ES_INVALID_ARGUMENT);
    assert_string_equal(err.field, "/nonexistent.pem");
    es_grpc_server_free(t);

    es_grpc_config half = {.tls_cert_file = "/x.pem"};
    assert_null(es_grpc_server_new(&half, &f->d.base, &err));
    es_dispatcher none = {0};
    assert_null(es_grpc_server_new(NULL, &none, &err));
}

/* TLS from certificate files, checked with a real TLS client. */
static void test_tls(void **state)
{
    fixture *f = *state;
    char dir[] = "/tmp/es-grpc-tls-XXXXXX", cmd[1024], cert[64], key[64];
    assert_non_null(mkdtemp(dir));
    snprintf(cmd, sizeof cmd,
             "openssl req -x509 -newkey rsa:2048 -nodes -keyout %s/key.pem -out %s/cert.pem -days 1 "
             "-subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 >/dev/null 2>&1",
             dir, dir);
    assert_int_equal(system(cmd), 0);
    snprintf(cert, sizeof cert, "%s/cert.pem", dir);
    snprintf(key, sizeof key, "%s/key.pem", dir);
    es_error err = {0};
    es_grpc_config cfg = {.address = "127.0.0.1:0", .tls_cert_file = cert, .tls_key_file = key};
    es_grpc_server *s = es_grpc_server_new(&cfg, &f->d.base, &err);
    assert_int_equal(es_grpc_server_add_service(s, &echo_service, &err), ES_OK);
    assert_int_equal(es_grpc_server_start(s, &err), ES_OK);
    snprintf(cmd, sizeof cmd, "timeout 60 /usr/bin/python3 %s %d tls %s", GRPC_CLIENT_PY, es_grpc_server_port(s), cert);
    int rc = system(cmd);
    es_grpc_server_free(s);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
    assert_true(WIFEXITED(rc));
    assert_int_equal(WEXITSTATUS(rc), 0);
}

/* stop() while a call sleeps in the dispatcher: the call still gets its answer, and stop
 * returns only after done() ran. */
static void test_graceful_stop(void **state)
{
    (void)state;
    fixture *f = start_server();
    assert_non_null(f);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "timeout 60 /usr/bin/python3 %s %d slow", GRPC_CLIENT_PY,
             es_grpc_server_port(f->srv));
    FILE *p = popen(cmd, "w"); /* "w": the client's output goes to ours */
    assert_non_null(p);
    /* Wait until the call is inside the dispatcher. */
    for (int i = 0; i < 1000 && es_grpc_server_inflight(f->srv) == 0; i++)
        usleep(10 * 1000);
    assert_int_equal(es_grpc_server_inflight(f->srv), 1);
    int64_t t0 = es_mono_us();
    es_grpc_server_stop(f->srv);
    double took = (double)(es_mono_us() - t0) / 1e6;
    assert_int_equal(es_grpc_server_inflight(f->srv), 0);
    size_t submitted, completed;
    echo_dispatcher_counts(&f->d, &submitted, &completed, NULL);
    assert_int_equal(submitted, 1);
    assert_int_equal(completed, 1);
    fprintf(stderr, "stop took %.2f s\n", took);
    if (TIMING_ENFORCED && took >= 2.5)
        fail_msg("stop took %.2f s", took);
    int rc = pclose(p);
    assert_true(WIFEXITED(rc));
    assert_int_equal(WEXITSTATUS(rc), 0);
    es_grpc_server_stop(f->srv); /* idempotent */
    stop_server(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_success),  cmocka_unit_test(test_errors),
        cmocka_unit_test(test_metadata), cmocka_unit_test(test_unknown),
        cmocka_unit_test(test_badbytes), cmocka_unit_test(test_oversize),
        cmocka_unit_test(test_deadline), cmocka_unit_test(test_concurrent),
        cmocka_unit_test(test_port_and_errors), cmocka_unit_test(test_tls),
        cmocka_unit_test(test_graceful_stop),
    };
    /* One server for the scenarios (group setup); test_graceful_stop makes its own. */
    return cmocka_run_group_tests_name("grpc_server", tests, setup, teardown);
}
