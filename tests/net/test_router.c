/* Table tests for runtime/net/router.c: template compilation, matching, 404/405, variables,
 * percent-decoding, query parsing and hostile targets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "es/router.h"

/* The router only compares method pointers for non-NULL; these stand in for generated methods. */
static const es_method_def m_place = {.name = "PlaceOrder"};
static const es_method_def m_get = {.name = "GetOrder"};
static const es_method_def m_list = {.name = "ListOrders"};
static const es_method_def m_cancel = {.name = "CancelOrder"};
static const es_method_def m_refund = {.name = "RefundPayment"};
static const es_method_def m_ship = {.name = "UpdateShipping"};
static const es_method_def m_search = {.name = "Search"};
static const es_method_def m_book = {.name = "GetBook"};
static const es_method_def m_files = {.name = "GetFile"};
static const es_method_def m_city = {.name = "ByCity"};

static const es_route_def routes[] = {
    {"POST", "/v1/orders", "*", &m_place},
    {"GET", "/v1/orders/{order_id}", NULL, &m_get},
    {"GET", "/v1/orders", NULL, &m_list},
    {"POST", "/v1/orders/{order_id}/cancel", "*", &m_cancel},
    {"POST", "/v1/orders/{order_id}/payment:refund", "*", &m_refund},
    {"PUT", "/v1/orders/{order_id}/shipping-status", "*", &m_ship},
    {"GET", "/v1/orders/search", NULL, &m_search},
    {"GET", "/v1/{name=shelves/*/books/*}", NULL, &m_book},
    {"GET", "/files/{path=**}", NULL, &m_files},
    {"get", "/v1/cities/{address.city}/orders", NULL, &m_city},
};
#define N_ROUTES (sizeof routes / sizeof routes[0])

typedef struct fixture {
    es_router *r;
    es_arena arena;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    f->r = es_router_new();
    es_error err = {0};
    if (es_router_add(f->r, routes, N_ROUTES, &err) != ES_OK) {
        fprintf(stderr, "add: %s\n", err.message);
        return -1;
    }
    es_arena_init(&f->arena);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    es_router_free(f->r);
    es_arena_free(&f->arena);
    free(f);
    return 0;
}

static int match(fixture *f, const char *method, const char *target, es_route_match *m)
{
    return es_router_match(f->r, method, target, strlen(target), &f->arena, m);
}

static void test_match_literal_and_var(void **state)
{
    fixture *f = *state;
    es_route_match m;
    assert_int_equal(match(f, "POST", "/v1/orders", &m), ES_OK);
    assert_int_equal(m.http_status, 200);
    assert_ptr_equal(m.route->method, &m_place);
    assert_int_equal(m.n_vars, 0);

    assert_int_equal(match(f, "GET", "/v1/orders/0190a1b2-c3d4", &m), ES_OK);
    assert_ptr_equal(m.route->method, &m_get);
    assert_int_equal(m.n_vars, 1);
    assert_string_equal(m.vars[0].name, "order_id");
    assert_string_equal(m.vars[0].value, "0190a1b2-c3d4");

    assert_int_equal(match(f, "POST", "/v1/orders/abc/cancel", &m), ES_OK);
    assert_ptr_equal(m.route->method, &m_cancel);
    assert_string_equal(m.vars[0].value, "abc");

    assert_int_equal(match(f, "PUT", "/v1/orders/abc/shipping-status", &m), ES_OK);
    assert_ptr_equal(m.route->method, &m_ship);
}

static void test_custom_verb(void **state)
{
    fixture *f = *state;
    es_route_match m;
    assert_int_equal(match(f, "POST", "/v1/orders/o-1/payment:refund", &m), ES_OK);
    assert_ptr_equal(m.route->method, &m_refund);
    assert_string_equal(m.vars[0].value, "o-1");
    /* An encoded colon is data, not the verb separator. */
    assert_int_equal(match(f, "POST", "/v1/orders/o-1/payment%3Arefund", &m), ES_NOT_FOUND);
    assert_int_equal(m.http_status, 404);
    assert_int_equal(match(f, "POST", "/v1/orders/o-1/payment:refundx", &m), ES_NOT_FOUND);
    assert_int_equal(match(f, "POST", "/v1/orders/o-1/payment", &m), ES_NOT_FOUND);
    assert_int_equal(match(f, "POST", "/v1/orders/o-1/payment:", &m), ES_NOT_FOUND);
}

static void test_literal_beats_variable(void **state)
{
    fixture *f = *state;
    es_route_match m;
    assert_int_equal(match(f, "GET", "/v1/orders/search", &m), ES_OK);
    assert_ptr_equal(m.route->method, &m_search);
    assert_int_equal(match(f, "GET", "/v1/orders/searchx", &m), ES_OK);
    assert_ptr_equal(m.route->method, &m_get);
}

static void test_multi_segment_vars(void **state)
{
    fixture *f = *state;
    es_route_match m;
    assert_int_equal(match(f, "GET", "/v1/shelves/s1/books/b%2F2", &m), ES_OK);
    assert_ptr_equal(m.route->method, &m_book);
    assert_string_equal(m.vars[0].name, "name");
    /* A multi-segment value keeps %2F encoded so the '/' that joins segments stays unambiguous. */
    assert_string_equal(m.vars[0].value, "shelves/s1/books/b%2F2");
    assert_int_equal(match(f, "GET", "/v1/shelves/s1/books", &m), ES_NOT_FOUND);
    assert_int_equal(match(f, "GET", "/v1/shelves/s1/cds/c", &m), ES_NOT_FOUND);

    assert_int_equal(match(f, "GET", "/files/a/b/c.txt", &m), ES_OK);
    assert_ptr_equal(m.route->method, &m_files);
    assert_string_equal(m.vars[0].value, "a/b/c.txt");
    assert_int_equal(match(f, "GET", "/files/x", &m), ES_OK);
    assert_string_equal(m.vars[0].value, "x");

    assert_int_equal(match(f, "GET", "/v1/cities/S%C3%A3o%20Paulo/orders", &m), ES_OK);
    assert_ptr_equal(m.route->method, &m_city);
    assert_string_equal(m.vars[0].name, "address.city");
    assert_string_equal(m.vars[0].value, "S\xc3\xa3o Paulo");
}

static void test_percent_decoding(void **state)
{
    fixture *f = *state;
    es_route_match m;
    assert_int_equal(match(f, "GET", "/v1/orders/a%2Fb%20c+d", &m), ES_OK);
    assert_ptr_equal(m.route->method, &m_get);
    /* Single-segment variables decode %2F; '+' is only a space in query strings. */
    assert_string_equal(m.vars[0].value, "a/b c+d");
    /* Literals compare decoded: %6F is 'o'. */
    assert_int_equal(match(f, "GET", "/v1/%6Frders/x", &m), ES_OK);
    assert_ptr_equal(m.route->method, &m_get);
}

static void test_404_and_405(void **state)
{
    fixture *f = *state;
    es_route_match m;
    assert_int_equal(match(f, "GET", "/v2/orders", &m), ES_NOT_FOUND);
    assert_int_equal(m.http_status, 404);
    assert_null(m.route);
    assert_int_equal(match(f, "GET", "/v1/orders/a/b/c", &m), ES_NOT_FOUND);
    assert_int_equal(m.http_status, 404);

    assert_int_equal(match(f, "DELETE", "/v1/orders", &m), ES_NOT_FOUND);
    assert_int_equal(m.http_status, 405);
    assert_string_equal(m.allow, "POST, GET");
    assert_null(m.route);

    assert_int_equal(match(f, "GET", "/v1/orders/x/cancel", &m), ES_NOT_FOUND);
    assert_int_equal(m.http_status, 405);
    assert_string_equal(m.allow, "POST");

    /* Methods are case-sensitive (RFC 9110); the template's "get" was upper-cased. */
    assert_int_equal(match(f, "get", "/v1/orders/x", &m), ES_NOT_FOUND);
    assert_int_equal(m.http_status, 405);
    assert_int_equal(match(f, "GET", "/v1/cities/c/orders", &m), ES_OK);
}

static void test_query_params(void **state)
{
    fixture *f = *state;
    es_route_match m;
    assert_int_equal(match(f, "GET", "/v1/orders?limit=10&status=PAID&status=NEW&q=a+b%26c%3D&flag&&x=", &m),
                     ES_OK);
    assert_ptr_equal(m.route->method, &m_list);
    assert_int_equal(m.n_params, 6);
    assert_string_equal(m.params[0].name, "limit");
    assert_string_equal(m.params[0].value, "10");
    assert_string_equal(m.params[1].name, "status");
    assert_string_equal(m.params[1].value, "PAID");
    assert_string_equal(m.params[2].value, "NEW");
    assert_string_equal(m.params[3].name, "q");
    assert_string_equal(m.params[3].value, "a b&c=");
    assert_string_equal(m.params[4].name, "flag");
    assert_string_equal(m.params[4].value, "");
    assert_string_equal(m.params[5].name, "x");
    assert_string_equal(m.params[5].value, "");

    assert_int_equal(match(f, "GET", "/v1/orders/x?", &m), ES_OK);
    assert_int_equal(m.n_params, 0);
    assert_int_equal(match(f, "GET", "/v1/orders/x?page%5Ftoken=%E2%82%AC", &m), ES_OK);
    assert_string_equal(m.params[0].name, "page_token");
    assert_string_equal(m.params[0].value, "\xe2\x82\xac");
    /* A '?' ends the path even right after a variable. */
    assert_string_equal(m.vars[0].value, "x");
}

static void test_query_errors(void **state)
{
    fixture *f = *state;
    es_route_match m;
    assert_int_equal(match(f, "GET", "/v1/orders?limit=%zz", &m), ES_INVALID_ARGUMENT);
    assert_int_equal(m.http_status, 400);
    assert_string_equal(m.err.field, "limit");
    assert_int_equal(match(f, "GET", "/v1/orders?limit=1%", &m), ES_INVALID_ARGUMENT);
    assert_int_equal(match(f, "GET", "/v1/orders?li%0mit=1", &m), ES_INVALID_ARGUMENT);
    assert_int_equal(match(f, "GET", "/v1/orders?a=%00", &m), ES_INVALID_ARGUMENT);
    assert_int_equal(match(f, "GET", "/v1/orders?=5", &m), ES_INVALID_ARGUMENT);

    char big[16 * (ES_ROUTER_MAX_PARAMS + 2)] = "/v1/orders?";
    for (int i = 0; i < ES_ROUTER_MAX_PARAMS + 1; i++)
        snprintf(big + strlen(big), sizeof big - strlen(big), "p%d=1&", i);
    assert_int_equal(match(f, "GET", big, &m), ES_INVALID_ARGUMENT);
    assert_int_equal(m.http_status, 400);
    assert_non_null(strstr(m.err.message, "query parameters"));
}

static void test_hostile_paths(void **state)
{
    fixture *f = *state;
    es_route_match m;
    static const struct {
        const char *method, *target;
        int rc, status;
    } cases[] = {
        {"GET", "", ES_NOT_FOUND, 404},
        {"GET", "/", ES_NOT_FOUND, 404},
        {"GET", "*", ES_NOT_FOUND, 404},
        {"GET", "v1/orders", ES_NOT_FOUND, 404},
        {"GET", "//v1/orders", ES_NOT_FOUND, 404},
        {"GET", "/v1//orders", ES_NOT_FOUND, 404},
        {"GET", "/v1/orders/", ES_NOT_FOUND, 404},
        {"GET", "/v1/orders//", ES_NOT_FOUND, 404},
        {"POST", "/v1/orders//cancel", ES_NOT_FOUND, 404},
        {"GET", "/v1/orders/%", ES_INVALID_ARGUMENT, 400},
        {"GET", "/v1/orders/%4", ES_INVALID_ARGUMENT, 400},
        {"GET", "/v1/orders/%g1", ES_INVALID_ARGUMENT, 400},
        {"GET", "/v1/orders/a%00b", ES_INVALID_ARGUMENT, 400},
        {"GET", "/v1/orders/../orders", ES_NOT_FOUND, 404},
        {"GET", "/v1/orders/..", ES_OK, 200},   /* just an id; validation refuses it later */
        {"GET", "/files/", ES_NOT_FOUND, 404},
        {"GET", "/v1/orders/x#frag", ES_OK, 200},
        {"", "/v1/orders", ES_NOT_FOUND, 405},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = match(f, cases[i].method, cases[i].target, &m);
        if (rc != cases[i].rc || m.http_status != cases[i].status)
            fail_msg("case %zu \"%s %s\": rc %d status %d", i, cases[i].method, cases[i].target, rc,
                     m.http_status);
    }

    /* An embedded NUL (possible from a fuzzer, not from h2o) is refused, not truncated. */
    static const char nul[] = "/v1/orders/a\0b";
    assert_int_equal(es_router_match(f->r, "GET", nul, sizeof nul - 1, &f->arena, &m), ES_INVALID_ARGUMENT);

    /* Too many segments is a bounded 400, not a stack overflow. */
    size_t n = 4 * (ES_ROUTER_MAX_SEGMENTS + 10);
    char *deep = malloc(n + 1);
    for (size_t i = 0; i < n; i += 2)
        memcpy(deep + i, "/a", 2);
    deep[n] = '\0';
    assert_int_equal(match(f, "GET", deep, &m), ES_INVALID_ARGUMENT);
    assert_int_equal(m.http_status, 400);
    free(deep);

    /* A long segment is fine. */
    char *longid = malloc(70000);
    memcpy(longid, "/v1/orders/", 11);
    memset(longid + 11, 'z', 70000 - 12);
    longid[70000 - 1] = '\0';
    assert_int_equal(match(f, "GET", longid, &m), ES_OK);
    assert_int_equal(strlen(m.vars[0].value), 70000 - 12);
    free(longid);

    /* The target need not be NUL-terminated: only len bytes are read. */
    const char *buf = "/v1/orders/abcdef";
    assert_int_equal(es_router_match(f->r, "GET", buf, 13, &f->arena, &m), ES_OK);
    assert_string_equal(m.vars[0].value, "ab");
}

static void test_bad_templates(void **state)
{
    (void)state;
    static const char *bad[] = {
        "", "v1/orders", "/", "/v1/orders/", "/v1//orders", "/v1/{order_id", "/v1/{}", "/v1/{1abc}",
        "/v1/{a..b}", "/v1/{a}/{a}", "/v1/**/x", "/v1/{x=**}/y", "/v1/a:", "/v1/a:b/c", "/v1/a%20b",
        "/v1/{x={y}}", "/v1/a b", "/v1/{x=}", "/v1/{x=a//b}", NULL,
    };
    es_router *r = es_router_new();
    for (size_t i = 0; bad[i]; i++) {
        es_route_def d = {"GET", bad[i], NULL, &m_get};
        es_error err = {0};
        if (es_router_add(r, &d, 1, &err) != ES_INVALID_ARGUMENT)
            fail_msg("template \"%s\" was accepted", bad[i]);
        assert_string_equal(err.field, bad[i]);
    }
    es_route_def nomethod = {NULL, "/v1/x", NULL, &m_get};
    es_route_def nodef = {"GET", "/v1/x", NULL, NULL};
    es_route_def badmethod = {"G-T", "/v1/x", NULL, &m_get};
    es_error err;
    assert_int_equal(es_router_add(r, &nomethod, 1, &err), ES_INVALID_ARGUMENT);
    assert_int_equal(es_router_add(r, &nodef, 1, &err), ES_INVALID_ARGUMENT);
    assert_int_equal(es_router_add(r, &badmethod, 1, &err), ES_INVALID_ARGUMENT);
    /* A batch with one bad template adds nothing. */
    es_route_def mixed[] = {{"GET", "/v1/ok", NULL, &m_get}, {"GET", "/v1/{", NULL, &m_get}};
    assert_int_equal(es_router_add(r, mixed, 2, &err), ES_INVALID_ARGUMENT);
    assert_int_equal(es_router_count(r), 0);
    assert_int_equal(es_router_add(r, mixed, 1, &err), ES_OK);
    assert_int_equal(es_router_count(r), 1);
    es_router_free(r);
    es_router_free(NULL);
}

/* A route matching the same requests as one already added (the variables' names aside) is
 * refused, naming both methods; in one call or a later one (a second package's service). */
static void test_duplicate_routes_refused(void **state)
{
    (void)state;
    static const es_method_def m_other = {.name = "Other", .grpc_path = "/tickets.v1.TicketService/Other"};
    static const es_route_def twice[] = {
        {"POST", "/v1/orders/{order_id}/cancel", "*", &m_cancel},
        {"post", "/v1/orders/{id}/cancel", "*", &m_other},
    };
    es_router *r = es_router_new();
    es_error err = {0};
    assert_int_equal(es_router_add(r, twice, 2, &err), ES_ALREADY_EXISTS);
    assert_non_null(strstr(err.message, "/tickets.v1.TicketService/Other"));
    assert_non_null(strstr(err.message, "CancelOrder"));
    assert_int_equal(es_router_count(r), 0);
    assert_int_equal(es_router_add(r, routes, N_ROUTES, &err), ES_OK);
    static const es_route_def later[] = {{"GET", "/v1/{name=shelves/*/books/*}", NULL, &m_other}};
    assert_int_equal(es_router_add(r, later, 1, &err), ES_ALREADY_EXISTS);
    assert_string_equal(err.field, "/v1/{name=shelves/*/books/*}");
    /* Not the same requests: another method, verb, literal or segment kind. */
    static const es_route_def distinct[] = {
        {"DELETE", "/v1/orders/{order_id}", NULL, &m_other},
        {"POST", "/v1/orders/{order_id}/payment:capture", "*", &m_other},
        {"GET", "/v1/orders/{order_id}/events", NULL, &m_other},
        {"GET", "/files/x/{rest=**}", NULL, &m_other},
    };
    assert_int_equal(es_router_add(r, distinct, 4, &err), ES_OK);
    assert_int_equal(es_router_count(r), N_ROUTES + 4);
    es_router_free(r);
}

static void test_unescape(void **state)
{
    (void)state;
    es_arena a;
    es_arena_init(&a);
    assert_string_equal(es_router_unescape("a+b%2Bc%2fd", 11, 1, 0, &a), "a b+c/d");
    assert_string_equal(es_router_unescape("a+b%2Bc%2fd", 11, 0, 1, &a), "a+b+c%2fd");
    assert_null(es_router_unescape("%", 1, 0, 0, &a));
    assert_null(es_router_unescape("%0", 2, 0, 0, &a));
    assert_null(es_router_unescape("%00", 3, 0, 0, &a));
    assert_string_equal(es_router_unescape("", 0, 0, 0, &a), "");
    es_arena_free(&a);
}

static void test_parse_query_appends(void **state)
{
    (void)state;
    es_arena a;
    es_arena_init(&a);
    es_route_kv *p = NULL;
    size_t n = 0;
    es_error err;
    assert_int_equal(es_router_parse_query("a=1", 3, &a, &p, &n, &err), ES_OK);
    assert_int_equal(es_router_parse_query("b=2&c", 5, &a, &p, &n, &err), ES_OK);
    assert_int_equal(n, 3);
    assert_string_equal(p[0].name, "a");
    assert_string_equal(p[1].value, "2");
    assert_string_equal(p[2].name, "c");
    assert_int_equal(es_router_parse_query("", 0, &a, &p, &n, &err), ES_OK);
    assert_int_equal(n, 3);
    es_arena_free(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_match_literal_and_var, setup, teardown),
        cmocka_unit_test_setup_teardown(test_custom_verb, setup, teardown),
        cmocka_unit_test_setup_teardown(test_literal_beats_variable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_multi_segment_vars, setup, teardown),
        cmocka_unit_test_setup_teardown(test_percent_decoding, setup, teardown),
        cmocka_unit_test_setup_teardown(test_404_and_405, setup, teardown),
        cmocka_unit_test_setup_teardown(test_query_params, setup, teardown),
        cmocka_unit_test_setup_teardown(test_query_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_paths, setup, teardown),
        cmocka_unit_test(test_bad_templates),
        cmocka_unit_test(test_duplicate_routes_refused),
        cmocka_unit_test(test_unescape),
        cmocka_unit_test(test_parse_query_appends),
    };
    return cmocka_run_group_tests_name("router", tests, NULL, NULL);
}
