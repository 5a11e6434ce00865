/* The codec on the project's own messages (orders.v1, with the generated json_name tables) and
 * es_json_set_from_string, the URL path/query parameter setter the HTTP transport uses. */
#include "json_test.h"
#include "orders/v1/orders_v1.es.h"

static void add_orders(void) { es_json_registry_add_schema(jt_reg, &orders_v1_schema); }

#define PLACE (&orders__v1__place_order_request__descriptor)

static void test_orders_error_path_names_nested_field(void **s)
{
    (void)s;
    add_orders();
    jt_decode_fails(PLACE,
                    "{\"customerId\":\"c\",\"items\":[{\"productId\":\"p\",\"quantity\":1,\"unitPrice\":"
                    "{\"currencyCode\":\"EUR\",\"amountMinor\":\"5\"}},{\"productId\":\"q\",\"unitPrice\":"
                    "{\"currencyCode\":\"EUR\",\"amountMinor\":1.5}}]}",
                    "items[1].unit_price.amount_minor", "not an integer");
    jt_decode_fails(PLACE, "{\"shippingAddress\":{\"city\":[]}}", "shipping_address.city", "expected a string");
}

static void test_orders_round_trip_proto_names_out(void **s)
{
    (void)s;
    add_orders();
    ProtobufCMessage *m = jt_decode(PLACE, "{\"customerId\":\"c1\",\"items\":[{\"productId\":\"p\",\"quantity\":2,"
                                           "\"unitPrice\":{\"currencyCode\":\"EUR\",\"amountMinor\":1999}}],"
                                           "\"shippingAddress\":{\"postalCode\":\"75001\"},\"expectedVersion\":\"3\"}");
    assert_string_equal(jt_encode(m), "{\"customer_id\":\"c1\",\"items\":[{\"product_id\":\"p\",\"quantity\":2,"
                                      "\"unit_price\":{\"currency_code\":\"EUR\",\"amount_minor\":\"1999\"}}],"
                                      "\"shipping_address\":{\"postal_code\":\"75001\"},\"expected_version\":\"3\"}");
    jt_pack_check(m);
}

static void test_set_from_string_dotted_path_by_proto_or_json_name(void **s)
{
    (void)s;
    add_orders();
    Orders__V1__PlaceOrderRequest *m = (Orders__V1__PlaceOrderRequest *)jt_decode(PLACE, "{}");
    assert_int_equal(es_json_set_from_string(jt_reg, &m->base, "shipping_address.city", "Paris", &jt_arena, &jt_err), 0);
    assert_int_equal(es_json_set_from_string(jt_reg, &m->base, "shippingAddress.postalCode", "75001", &jt_arena, &jt_err), 0);
    assert_int_equal(es_json_set_from_string(jt_reg, &m->base, "customer_id", "c\xc3\xa9", &jt_arena, &jt_err), 0);
    assert_string_equal(m->shipping_address->city, "Paris");
    assert_string_equal(m->shipping_address->postal_code, "75001");
    assert_string_equal(m->customer_id, "c\xc3\xa9");
}

static void test_set_from_string_scalars_enums_and_wrappers(void **s)
{
    (void)s;
    add_orders();
    Orders__V1__UpdateOrderShippingStatusRequest *u = (Orders__V1__UpdateOrderShippingStatusRequest *)jt_decode(
        &orders__v1__update_order_shipping_status_request__descriptor, "{}");
    assert_int_equal(es_json_set_from_string(jt_reg, &u->base, "status", "SHIPPING_STATUS_IN_TRANSIT", &jt_arena, &jt_err), 0);
    assert_int_equal(u->status, ORDERS__V1__SHIPPING_STATUS__SHIPPING_STATUS_IN_TRANSIT);
    assert_int_equal(es_json_set_from_string(jt_reg, &u->base, "status", "2", &jt_arena, &jt_err), 0);
    assert_int_equal(u->status, 2);
    assert_int_equal(es_json_set_from_string(jt_reg, &u->base, "expected_version", "42", &jt_arena, &jt_err), 0);
    assert_int_equal(u->expected_version->value, 42);
    assert_int_equal(es_json_set_from_string(jt_reg, &u->base, "occurredAt", "2024-05-06T07:08:09Z", &jt_arena, &jt_err), 0);
    assert_int_equal(u->occurred_at->seconds, 1714979289);
    T3 *t = DEC3("{}");
    assert_int_equal(es_json_set_from_string(jt_reg, &t->base, "optional_bool", "true", &jt_arena, &jt_err), 0);
    assert_int_equal(es_json_set_from_string(jt_reg, &t->base, "optionalDouble", "-2.5", &jt_arena, &jt_err), 0);
    assert_int_equal(es_json_set_from_string(jt_reg, &t->base, "optional_uint64", "18446744073709551615", &jt_arena, &jt_err), 0);
    assert_int_equal(es_json_set_from_string(jt_reg, &t->base, "optional_bytes", "AQ", &jt_arena, &jt_err), 0);
    assert_int_equal(es_json_set_from_string(jt_reg, &t->base, "optional_bool_wrapper", "false", &jt_arena, &jt_err), 0);
    assert_int_equal(es_json_set_from_string(jt_reg, &t->base, "optional_nested_message.a", "9", &jt_arena, &jt_err), 0);
    assert_int_equal(es_json_set_from_string(jt_reg, &t->base, "oneof_nested_message.a", "8", &jt_arena, &jt_err), 0);
    assert_string_equal(jt_encode(&t->base),
                        "{\"optional_uint64\":\"18446744073709551615\",\"optional_double\":-2.5,\"optional_bool\":true,"
                        "\"optional_bytes\":\"AQ==\",\"optional_nested_message\":{\"a\":9},\"oneof_nested_message\":{\"a\":8},"
                        "\"optional_bool_wrapper\":false}");
    jt_pack_check(&t->base);
}

static void test_set_from_string_repeated_appends(void **s)
{
    (void)s;
    T3 *t = DEC3("{\"repeatedInt32\":[1]}");
    assert_int_equal(es_json_set_from_string(jt_reg, &t->base, "repeated_int32", "2", &jt_arena, &jt_err), 0);
    assert_int_equal(es_json_set_from_string(jt_reg, &t->base, "repeatedInt32", "3", &jt_arena, &jt_err), 0);
    assert_int_equal(es_json_set_from_string(jt_reg, &t->base, "repeated_nested_enum", "BAR", &jt_arena, &jt_err), 0);
    assert_string_equal(jt_encode(&t->base), "{\"repeated_int32\":[1,2,3],\"repeated_nested_enum\":[\"BAR\"]}");
}

static void test_set_from_string_errors_name_the_field(void **s)
{
    (void)s;
    add_orders();
    T3 *t = DEC3("{}");
    struct { const char *path, *value, *field, *needle; } cases[] = {
        {"optional_int32", "2147483648", "optional_int32", "out of range"},
        {"optional_int32", "abc", "optional_int32", "not a number"},
        {"optional_int32", "1.5", "optional_int32", "not an integer"},
        {"optional_bool", "yes", "optional_bool", "true or false"},
        {"optional_nested_enum", "NOPE", "optional_nested_enum", "unknown value"},
        {"no_such", "1", "no_such", "unknown field"},
        {"optional_nested_message.zz", "1", "optional_nested_message.zz", "unknown field"},
        {"optional_int32.x", "1", "optional_int32", "not a singular message"},
        {"optional_nested_message", "x", "optional_nested_message", "cannot be set from a string"},
        {"map_int32_int32", "1", "map_int32_int32", "map fields"},
        {"optional_timestamp", "yesterday", "optional_timestamp", "RFC 3339"},
        {"optional_string", "\xff", "optional_string", "UTF-8"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        memset(&jt_err, 0, sizeof jt_err);
        int rc = es_json_set_from_string(jt_reg, &t->base, cases[i].path, cases[i].value, &jt_arena, &jt_err);
        if (rc != ES_INVALID_ARGUMENT) fail_msg("%s=%s: rc %d", cases[i].path, cases[i].value, rc);
        if (strcmp(jt_err.field, cases[i].field) || !strstr(jt_err.message, cases[i].needle))
            fail_msg("%s=%s: [%s] %s", cases[i].path, cases[i].value, jt_err.field, jt_err.message);
    }
    assert_int_equal(es_json_set_from_string(jt_reg, &t->base, NULL, "1", &jt_arena, &jt_err), ES_INVALID_ARGUMENT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        JT(test_orders_error_path_names_nested_field),
        JT(test_orders_round_trip_proto_names_out),
        JT(test_set_from_string_dotted_path_by_proto_or_json_name),
        JT(test_set_from_string_scalars_enums_and_wrappers),
        JT(test_set_from_string_repeated_appends),
        JT(test_set_from_string_errors_name_the_field),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
