"""Authentication, per-role authorization and TLS of orderd, end to end against real
PostgreSQL and the mock Kafka cluster. Usage: /usr/bin/python3 test_security.py <orderd> <es-kafka-mock>"""
import hashlib
import os
import ssl
import subprocess
import sys
import urllib.request
import uuid

sys.path.insert(0, os.path.dirname(__file__))
from harness import eventually, e2e_main  # noqa: E402
from test_orders import ADDRESS, order_body  # noqa: E402

TOKENS = {"admin": ("admin", "root"), "alice": ("customer", "cust-alice"), "bob": ("customer", "cust-bob"),
          "vendor": ("vendor", "vend-1"), "other-vendor": ("vendor", "vend-2"), "psp": ("payments", "psp")}


def bearer(name):
    return {"Authorization": f"Bearer tok-{name}-secret"}


def token_file(path):
    with open(path, "w") as f:
        f.write("# sha256(token) role principal\n")
        for name, (role, principal) in TOKENS.items():
            f.write(f"{hashlib.sha256(f'tok-{name}-secret'.encode()).hexdigest()} {role} {principal}\n")


def test_authentication(o):
    status, r = o.request("POST", "/v1/orders", order_body(customer="cust-alice"))
    assert status == 401 and r["code"] == 16, (status, r)
    status, r = o.request("POST", "/v1/orders", order_body(customer="cust-alice"), headers={"Authorization": "Bearer nope"})
    assert status == 401 and r["code"] == 16, (status, r)
    status, r = o.request("GET", "/v1/orders", headers={"Authorization": "Basic YTpi"})
    assert status == 401, (status, r)
    status, _ = o.request("GET", "/healthz")
    assert status == 200  # health stays open for probes


def place_as(o, who, customer, vendor="vend-1"):
    status, r = o.request("POST", "/v1/orders", order_body(customer=customer, vendor=vendor), headers=bearer(who))
    return status, r


def test_customer_sees_only_own_orders(o):
    status, r = place_as(o, "alice", "cust-alice")
    assert status == 200, (status, r)
    oid = r["order_id"]
    status, r = place_as(o, "alice", "cust-bob")
    assert status == 403 and r["code"] == 7 and "customer_id" in r["message"], (status, r)
    eventually(lambda: o.request("GET", f"/v1/orders/{oid}", headers=bearer("alice"))[0] == 200, what="alice reads")
    status, r = o.request("GET", f"/v1/orders/{oid}", headers=bearer("bob"))
    assert status == 403, (status, r)
    status, r = o.request("GET", f"/v1/orders/{oid}/events", headers=bearer("bob"))
    assert status == 403, (status, r)
    status, r = o.request("POST", f"/v1/orders/{oid}/cancel", {"reason": "not mine"}, headers=bearer("bob"))
    assert status == 403, (status, r)
    status, r = place_as(o, "bob", "cust-bob")
    assert status == 200
    status, r = o.request("GET", "/v1/orders?limit=100", headers=bearer("alice"))
    assert status == 200 and r["orders"] and all(x["customer_id"] == "cust-alice" for x in r["orders"]), r
    status, r = o.request("GET", "/v1/orders?customer_id=cust-bob", headers=bearer("alice"))
    assert status == 403, (status, r)
    status, r = o.request("POST", f"/v1/orders/{oid}/payment:initiate", {}, headers=bearer("alice"))
    assert status == 403, (status, r)
    status, r = o.request("POST", f"/v1/orders/{oid}/cancel", {"reason": "mine"}, headers=bearer("alice"))
    assert status == 200, (status, r)


def test_roles_per_operation(o):
    status, r = place_as(o, "admin", "cust-alice", vendor="vend-1")
    assert status == 200, (status, r)
    oid = r["order_id"]
    ship = {"status": "SHIPPING_STATUS_IN_TRANSIT", "carrier": "DHL", "tracking_number": "T", "location": "L"}
    status, r = o.request("PUT", f"/v1/orders/{oid}/shipping-status", ship, headers=bearer("psp"))
    assert status == 403, (status, r)  # payments may not ship
    for step in ("initiate", "paid"):
        status, r = o.request("POST", f"/v1/orders/{oid}/payment:{step}", {}, headers=bearer("psp"))
        assert status == 200, (step, status, r)
    status, r = o.request("POST", f"/v1/orders/{oid}/cancel", {"reason": "x"}, headers=bearer("psp"))
    assert status == 403, (status, r)
    status, r = o.request("PUT", f"/v1/orders/{oid}/shipping-status", ship, headers=bearer("other-vendor"))
    assert status == 403, (status, r)  # not their order
    status, r = o.request("PUT", f"/v1/orders/{oid}/shipping-status", ship, headers=bearer("vendor"))
    assert status == 200, (status, r)
    status, r = o.request("POST", f"/v1/orders/{oid}/cancel", {"reason": "x"}, headers=bearer("vendor"))
    assert status == 403, (status, r)  # vendors do not cancel
    status, r = o.request("GET", "/v1/orders?limit=50", headers=bearer("vendor"))
    assert status == 200 and all(x["vendor_id"] == "vend-1" for x in r["orders"]), r
    status, r = o.request("GET", f"/v1/orders/{oid}/events", headers=bearer("admin"))
    assert status == 200 and r["events"][1]["actor"] == "payments:psp", r["events"][1]


def test_grpc_metadata(o, stubs):
    import grpc
    from orders.v1 import commands_pb2, types_pb2
    ch = grpc.insecure_channel(f"127.0.0.1:{o.grpc_port}")
    call = ch.unary_unary("/orders.v1.OrderService/PlaceOrder",
                          request_serializer=commands_pb2.PlaceOrderRequest.SerializeToString,
                          response_deserializer=commands_pb2.CommandResult.FromString)
    req = commands_pb2.PlaceOrderRequest(customer_id="cust-alice", vendor_id="v", payment_method="card",
                                         items=[types_pb2.LineItem(product_id="p", quantity=1,
                                                                   unit_price=types_pb2.Money(currency_code="EUR", amount_minor=1))],
                                         shipping_address=types_pb2.Address(**ADDRESS))
    try:
        call(req, timeout=10)
        raise AssertionError("accepted without a token")
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.UNAUTHENTICATED, e
    res = call(req, timeout=10, metadata=[("authorization", "Bearer tok-alice-secret")])
    assert res.version == 1


def test_tls(cluster, workdir, stubs):
    key, crt = os.path.join(workdir, "key.pem"), os.path.join(workdir, "cert.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", crt, "-days", "1",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True)
    o = cluster.start_orderd("--auth", "disabled", "--tls-cert", crt, "--tls-key", key, "--relay", "0",
                             "--projections", "0", "--payments", "0", https=True, cafile=crt)
    ctx = ssl.create_default_context(cafile=crt)
    with urllib.request.urlopen(f"https://127.0.0.1:{o.http_port}/livez", context=ctx, timeout=10) as r:
        assert r.status == 200
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{o.http_port}/livez", timeout=5)
        raise AssertionError("plain HTTP answered on a TLS port")
    except (OSError, Exception) as e:  # noqa: BLE001
        assert "plain HTTP answered" not in str(e), e
    import grpc
    from orders.v1 import queries_pb2
    creds = grpc.ssl_channel_credentials(root_certificates=open(crt, "rb").read())
    ch = grpc.secure_channel(f"localhost:{o.grpc_port}", creds)
    get = ch.unary_unary("/orders.v1.OrderService/GetOrder", request_serializer=queries_pb2.GetOrderRequest.SerializeToString,
                         response_deserializer=queries_pb2.OrderSummary.FromString)
    try:
        get(queries_pb2.GetOrderRequest(order_id=str(uuid.uuid4())), timeout=10)
        raise AssertionError("found a random order")
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.NOT_FOUND, e  # the call went through TLS and was answered


def test_refuses_to_start_without_auth(orderd, cluster):
    # the default is --auth required: without a token file orderd does not start
    r = subprocess.run([orderd, "--pg", cluster.pg, "--http-listen", "127.0.0.1:0", "--grpc-listen", "127.0.0.1:0"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and "auth-tokens" in r.stderr, (r.returncode, r.stderr)


def run(cluster, runner, stubs):
    tokens = os.path.join(cluster.dir, "tokens")
    token_file(tokens)
    o = cluster.start_orderd("--auth", "required", "--auth-tokens", tokens, "--payments", "0")
    runner.run("authentication", test_authentication, o)
    runner.run("customers see only their own orders", test_customer_sees_only_own_orders, o)
    runner.run("roles per operation", test_roles_per_operation, o)
    runner.run("gRPC metadata token", test_grpc_metadata, o, stubs)
    runner.run("TLS for HTTP and gRPC", test_tls, cluster, cluster.dir, stubs)
    runner.run("refuses to start without auth", test_refuses_to_start_without_auth, cluster.orderd_bin, cluster)


if __name__ == "__main__":
    e2e_main(run, stubs=True)
