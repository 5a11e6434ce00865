"""Hostile clients, end to end over HTTP and gRPC against real PostgreSQL and the mock Kafka cluster:
one identity per order whatever the spelling of its id, idempotency keys scoped to the caller
and tied to their request, page tokens that cannot be forged, ISO 4217 currencies. Every refused
request is checked to leave the event store unchanged.
Usage: /usr/bin/python3 test_hostile.py <orderd> <es-kafka-mock>"""
import hashlib
import os
import re
import sys
import time
import urllib.parse
import uuid

sys.path.insert(0, os.path.dirname(__file__))
from harness import eventually, e2e_main  # noqa: E402
from test_orders import ADDRESS, order_body  # noqa: E402

TOKENS = {"admin": ("admin", "root"), "alice": ("customer", "cust-alice"), "bob": ("customer", "cust-bob"),
          "vendor": ("vendor", "vend-1"), "psp": ("payments", "psp")}


def bearer(name):
    return {"Authorization": f"Bearer tok-{name}-secret"}


def token_file(path):
    with open(path, "w") as f:
        for name, (role, principal) in TOKENS.items():
            f.write(f"{hashlib.sha256(f'tok-{name}-secret'.encode()).hexdigest()} {role} {principal}\n")


def spellings(oid):
    """Every other spelling of one UUID a client may send; each must reach the same order."""
    up = oid.upper()
    mixed = "".join(c.upper() if i % 2 else c for i, c in enumerate(oid))
    return {"upper": up, "mixed": mixed, "braces": "{" + oid + "}", "urn": "urn:uuid:" + oid,
            "braces upper": "{" + up + "}", "URN upper": "URN:UUID:" + up}


def path_id(s):
    return urllib.parse.quote(s, safe=":")


class Grpc:
    """Typed unary calls by method name with a bearer token (python3-grpcio), to every method of
    the services the Python stubs define (from the same proto/ as orderd's tables; no hand-kept
    list). grpc_covers_served checks they cover every method orderd serves."""

    def __init__(self, port):
        import grpc
        from google.protobuf import symbol_database
        from orders.v1 import service_pb2
        self.grpc = grpc
        self.ch = grpc.insecure_channel(f"127.0.0.1:{port}")
        db = symbol_database.Default()
        self.methods = {}
        for svc in service_pb2.DESCRIPTOR.services_by_name.values():
            for md in svc.methods:
                self.methods[md.name] = (f"/{svc.full_name}/{md.name}", db.GetSymbol(md.input_type.full_name),
                                         db.GetSymbol(md.output_type.full_name))

    def call(self, method, who, metadata=(), **fields):
        """Returns (grpc.StatusCode, response or details)."""
        path, req_t, resp_t = self.methods[method]
        fn = self.ch.unary_unary(path, request_serializer=req_t.SerializeToString,
                                 response_deserializer=resp_t.FromString)
        md = [("authorization", f"Bearer tok-{who}-secret")] + list(metadata)
        try:
            return self.grpc.StatusCode.OK, fn(req_t(**fields), timeout=20, metadata=md)
        except self.grpc.RpcError as e:
            return e.code(), e.details()


def grpc_place_fields(customer, oid="", currency="EUR"):
    from orders.v1 import types_pb2
    return dict(order_id=oid, customer_id=customer, vendor_id="vend-1", payment_method="card",
                items=[types_pb2.LineItem(product_id="p", quantity=1,
                                          unit_price=types_pb2.Money(currency_code=currency, amount_minor=100))],
                shipping_address=types_pb2.Address(**ADDRESS))


def grpc_covers_served(o, g):
    """Every gRPC method orderd serves (its /openapi.json, generated from the same method table as
    its routes, names each operation's) is one Grpc can call: a method served without a Python
    stub fails here, named, instead of going untested."""
    status, doc = o.request("GET", "/openapi.json", headers=bearer("admin"))
    assert status == 200, f"/openapi.json answered {status}"
    for template, ops in doc["paths"].items():
        for verb, op in ops.items():
            m = re.search(r"gRPC: `(/[\w.]+/(\w+))`", op.get("description", ""))
            assert m, f"/openapi.json: {verb.upper()} {template} names no gRPC method"
            assert g.methods.get(m[2], ("",))[0] == m[1], \
                f"orderd serves {m[1]} ({verb.upper()} {template}), which the Python stubs do not define"


class Store:
    """What a refused request must not change: the event store's rows."""

    def __init__(self, cluster):
        self.cluster = cluster

    def count(self):
        return int(self.cluster.psql("SELECT count(*) FROM es_events"))

    def unchanged(self, fn):
        before = self.count()
        out = fn()
        after = self.count()
        assert before == after, f"a refused request wrote {after - before} event(s): {out}"
        return out


def place_http(o, who, customer, oid=None, key=None, **extra):
    body = order_body(customer=customer, **extra)
    if oid:
        body["order_id"] = oid
    headers = dict(bearer(who))
    if key:
        headers["Idempotency-Key"] = key
    return o.request("POST", "/v1/orders", body, headers=headers)


def test_one_identity_reads(o, g, store):
    oid = str(uuid.uuid4())
    status, r = place_http(o, "alice", "cust-alice", oid=oid)
    assert status == 200 and r["order_id"] == oid, (status, r)
    eventually(lambda: o.request("GET", f"/v1/orders/{oid}", headers=bearer("alice"))[0] == 200, what="the summary")
    for name, s in spellings(oid).items():
        status, r = o.request("GET", f"/v1/orders/{path_id(s)}", headers=bearer("alice"))
        assert status == 200 and r["order_id"] == oid, (name, status, r)
        status, r = o.request("GET", f"/v1/orders/{path_id(s)}", headers=bearer("bob"))
        assert status == 403, (name, "another customer read the order over HTTP", status, r)
        status, r = o.request("GET", f"/v1/orders/{path_id(s)}/events", headers=bearer("bob"))
        assert status == 403, (name, status, r)
        status, r = o.request("GET", f"/v1/orders/{path_id(s)}/events", headers=bearer("alice"))
        assert status == 200 and all(e["stream_id"] == oid for e in r["events"]), (name, status, r)
        code, r = g.call("GetOrder", "alice", order_id=s)
        assert code == g.grpc.StatusCode.OK and r.order_id == oid, (name, code, r)
        code, r = g.call("GetOrder", "bob", order_id=s)
        assert code == g.grpc.StatusCode.PERMISSION_DENIED, (name, "another customer read the order over gRPC", code, r)
        code, r = g.call("GetOrderEvents", "bob", order_id=s)
        assert code == g.grpc.StatusCode.PERMISSION_DENIED, (name, code, r)
        code, r = g.call("GetOrderEvents", "alice", order_id=s)
        assert code == g.grpc.StatusCode.OK and len(r.events) >= 1, (name, code, r)
        # Another spelling of an existing id is the same order: placing it again is refused.
        status, r = store.unchanged(lambda: place_http(o, "alice", "cust-alice", oid=s))
        assert status == 409 and r["code"] == 6, (name, "a second stream for one order", status, r)
        code, r = store.unchanged(lambda: g.call("PlaceOrder", "alice", **grpc_place_fields("cust-alice", s)))
        assert code == g.grpc.StatusCode.ALREADY_EXISTS, (name, code, r)
        # Refused before authorization for everyone else, too: bob cannot cancel it either way.
        status, r = store.unchanged(lambda: o.request("POST", f"/v1/orders/{path_id(s)}/cancel", {"reason": "x"},
                                                      headers=bearer("bob")))
        assert status == 403, (name, status, r)
        code, r = store.unchanged(lambda: g.call("CancelOrder", "bob", order_id=s, reason="x"))
        assert code == g.grpc.StatusCode.PERMISSION_DENIED, (name, code, r)


def test_refused_spellings(o, g, store):
    oid = str(uuid.uuid4())
    for bad in (oid.replace("-", ""), "{" + oid, oid + "}", "urn:uuid:{" + oid + "}", oid[:-1] + "g", " " + oid):
        status, r = store.unchanged(lambda: o.request("GET", f"/v1/orders/{path_id(bad)}", headers=bearer("admin")))
        assert status == 400 and r["code"] == 3 and "order_id" in r["message"], (bad, status, r)
        status, r = store.unchanged(lambda: place_http(o, "admin", "c", oid=bad))
        assert status == 400 and "order_id" in r["message"], (bad, status, r)
        code, r = store.unchanged(lambda: g.call("CancelOrder", "admin", order_id=bad, reason="x"))
        assert code == g.grpc.StatusCode.INVALID_ARGUMENT and "order_id" in r, (bad, code, r)


def test_one_identity_commands(o, g, cluster):
    """Every command that takes an order id, each with another spelling, on both transports:
    the events land in the one stream, and the store holds no other spelling."""
    sp = lambda oid: list(spellings(oid).values())  # noqa: E731
    # HTTP: place (braces, new id), initiate (upper), authorise (mixed), paid (urn), ship (braces upper)
    oid = str(uuid.uuid4())
    status, r = place_http(o, "alice", "cust-alice", oid="{" + oid.upper() + "}")
    assert status == 200 and r["order_id"] == oid, (status, r)
    s = sp(oid)
    steps = [("psp", "POST", "payment:initiate", {}), ("psp", "POST", "payment:authorise", {"authorisation_code": "A1"}),
             ("psp", "POST", "payment:paid", {}),
             ("vendor", "PUT", "shipping-status", {"status": "SHIPPING_STATUS_IN_TRANSIT", "carrier": "DHL",
                                                   "tracking_number": "T1"})]
    for i, (who, verb, route, body) in enumerate(steps):
        status, r = o.request(verb, f"/v1/orders/{path_id(s[i % len(s)])}/{route}", body, headers=bearer(who))
        assert status == 200 and r["order_id"] == oid and r["version"] == str(i + 2), (route, status, r)
    # gRPC: a second order through fail; a third through paid, cancel and refund
    oid2 = str(uuid.uuid4())
    code, r = g.call("PlaceOrder", "alice", **grpc_place_fields("cust-alice", oid2.upper()))
    assert code == g.grpc.StatusCode.OK and r.order_id == oid2, (code, r)
    s2 = sp(oid2)
    code, r = g.call("InitiatePayment", "psp", order_id=s2[1])
    assert code == g.grpc.StatusCode.OK and r.version == 2, (code, r)
    code, r = g.call("FailPayment", "psp", order_id=s2[2], reason="declined")
    assert code == g.grpc.StatusCode.OK and r.order_id == oid2 and r.version == 3, (code, r)
    oid3 = str(uuid.uuid4())
    code, r = g.call("PlaceOrder", "alice", **grpc_place_fields("cust-alice", "urn:uuid:" + oid3))
    assert code == g.grpc.StatusCode.OK and r.order_id == oid3, (code, r)
    s3 = sp(oid3)
    for i, m in enumerate(["InitiatePayment", "AuthorisePayment", "MarkOrderPaid"]):
        code, r = g.call(m, "psp", order_id=s3[i])
        assert code == g.grpc.StatusCode.OK and r.version == i + 2, (m, code, r)
    code, r = g.call("CancelOrder", "alice", order_id=s3[3], reason="changed my mind")
    assert code == g.grpc.StatusCode.OK and r.order_id == oid3, (code, r)
    code, r = g.call("RefundPayment", "psp", order_id=s3[4], reason="cancelled")
    assert code == g.grpc.StatusCode.OK and r.order_id == oid3, (code, r)
    code, r = g.call("UpdateOrderShippingStatus", "vendor", order_id=s[4], status=3, carrier="DHL",
                     tracking_number="T2")  # a second shipping update on the first order, by another spelling
    assert code == g.grpc.StatusCode.OK and r.order_id == oid and r.version == 6, (code, r)
    for x, n in ((oid, 6), (oid2, 3), (oid3, 6)):
        got = int(cluster.psql(f"SELECT count(*) FROM es_events WHERE stream_id = '{x}'"))
        assert got == n, (x, got, n)
    other = cluster.psql("SELECT count(*) FROM es_events WHERE stream_id <> lower(stream_id)")
    assert other == "0", f"{other} events under a non-canonical stream id"


def test_idempotency_scoped(o, g, store):
    key = "shared-key-" + uuid.uuid4().hex[:8]
    status, a = place_http(o, "alice", "cust-alice", key=key)
    assert status == 200 and not a.get("replayed"), (status, a)
    # Another customer, same key: their own order, never alice's.
    status, b = place_http(o, "bob", "cust-bob", key=key)
    assert status == 200 and b["order_id"] != a["order_id"] and not b.get("replayed"), (status, a, b)
    status, r = o.request("GET", f"/v1/orders/{b['order_id']}/events", headers=bearer("bob"))
    assert status == 200 and r["events"][0]["data"]["customer_id"] == "cust-bob", r
    # Same caller, same key, same request: the first answer.
    status, c = place_http(o, "alice", "cust-alice", key=key)
    assert status == 200 and c["order_id"] == a["order_id"] and c.get("replayed") is True, (status, c)
    # The key in the body (request_id) is the same key.
    body = order_body(customer="cust-alice")
    body["request_id"] = key
    status, d = o.request("POST", "/v1/orders", body, headers=bearer("alice"))
    assert status == 200 and d["order_id"] == a["order_id"] and d.get("replayed") is True, (status, d)
    # Same caller, same key, another request: refused, nothing written.
    status, r = store.unchanged(lambda: place_http(o, "alice", "cust-alice", key=key, payment_method="invoice"))
    assert status == 409 and r["code"] == 6 and "idempotency" in r["message"].lower(), (status, r)
    # The same key on another method is another command: cancelling with it is not a replay.
    status, r = o.request("POST", f"/v1/orders/{a['order_id']}/cancel", {"reason": "x"},
                          headers={**bearer("alice"), "Idempotency-Key": key})
    assert status == 200 and not r.get("replayed") and r["version"] == "2", (status, r)
    # A refused command (already cancelled) retried with its key and another body: 409, not the first answer.
    status, r = store.unchanged(lambda: o.request("POST", f"/v1/orders/{a['order_id']}/cancel", {"reason": "y"},
                                                  headers={**bearer("alice"), "Idempotency-Key": key}))
    assert status == 409 and "idempotency" in r["message"].lower(), (status, r)
    status, r = o.request("POST", f"/v1/orders/{a['order_id']}/cancel", {"reason": "x"},
                          headers={**bearer("alice"), "Idempotency-Key": key})
    assert status == 200 and r.get("replayed") is True, (status, r)
    # gRPC: the same rules, keys in metadata.
    gkey = [("idempotency-key", "grpc-" + key)]
    code, ga = g.call("PlaceOrder", "alice", metadata=gkey, **grpc_place_fields("cust-alice"))
    assert code == g.grpc.StatusCode.OK, (code, ga)
    code, gb = g.call("PlaceOrder", "bob", metadata=gkey, **grpc_place_fields("cust-bob"))
    assert code == g.grpc.StatusCode.OK and gb.order_id != ga.order_id and not gb.replayed, (code, gb)
    code, gc = g.call("PlaceOrder", "alice", metadata=gkey, **grpc_place_fields("cust-alice"))
    assert code == g.grpc.StatusCode.OK and gc.order_id == ga.order_id and gc.replayed, (code, gc)
    code, r = store.unchanged(lambda: g.call("PlaceOrder", "alice", metadata=gkey,
                                             **grpc_place_fields("cust-alice", currency="USD")))
    assert code == g.grpc.StatusCode.ALREADY_EXISTS and "idempotency" in r.lower(), (code, r)
    status, r = store.unchanged(lambda: place_http(o, "alice", "cust-alice", key="k" * 300))
    assert status == 400 and "idempotency" in r["message"].lower(), (status, r)


def test_page_tokens(o, store):
    for i in range(3):
        assert place_http(o, "admin", "cust-pages", vendor="vend-pages")[0] == 200
    eventually(lambda: len(o.request("GET", "/v1/orders?customer_id=cust-pages&limit=10",
                                     headers=bearer("admin"))[1].get("orders", [])) == 3, what="3 summaries")
    status, r = o.request("GET", "/v1/orders?customer_id=cust-pages&limit=1", headers=bearer("admin"))
    assert status == 200 and r["next_page_token"], (status, r)
    tok = r["next_page_token"]
    seen = [r["orders"][0]["order_id"]]
    while tok:
        status, r = o.request("GET", f"/v1/orders?customer_id=cust-pages&limit=1&page_token={tok}", headers=bearer("admin"))
        assert status == 200, (status, r)
        seen += [x["order_id"] for x in r["orders"]]
        tok = r.get("next_page_token")
    assert len(seen) == 3 and len(set(seen)) == 3, seen
    status, r = o.request("GET", "/v1/orders?customer_id=cust-pages&limit=1", headers=bearer("admin"))
    good = r["next_page_token"]
    flipped = good[:-1] + ("0" if good[-1] != "0" else "1")
    old_style = ("99999999999999999999." + str(uuid.uuid4())).encode().hex()  # the former unsigned format
    for name, bad in {"altered": flipped, "former format": old_style, "random": uuid.uuid4().hex * 3,
                      "not hex": "zz" * 41, "truncated": good[:40], "other list": None}.items():
        q = f"customer_id=cust-pages&limit=1&page_token={bad}"
        if bad is None:  # a real token, used for another list
            q = f"customer_id=cust-other&limit=1&page_token={good}"
        status, r = store.unchanged(lambda: o.request("GET", f"/v1/orders?{q}", headers=bearer("admin")))
        assert status == 400 and r["code"] == 3 and "page_token" in r["message"], (name, status, r)


def test_currency(o, g, store):
    body = order_body(customer="cust-alice")
    for it in body["items"]:
        it["unit_price"]["currency_code"] = "XYZ"
    status, r = store.unchanged(lambda: o.request("POST", "/v1/orders", body, headers=bearer("alice")))
    assert status == 400 and r["code"] == 3 and "items[0].unit_price.currency_code" in r["message"], (status, r)
    code, r = store.unchanged(lambda: g.call("PlaceOrder", "alice", **grpc_place_fields("cust-alice", currency="XYZ")))
    assert code == g.grpc.StatusCode.INVALID_ARGUMENT and "currency_code" in r, (code, r)
    for ok in ("EUR", "JPY", "CHF"):
        code, r = g.call("PlaceOrder", "alice", **grpc_place_fields("cust-alice", currency=ok))
        assert code == g.grpc.StatusCode.OK, (ok, code, r)


def test_retention_and_restart(cluster, tokens, store):
    """A key past its retention may be used again; page tokens signed with a configured key
    survive a restart."""
    args = ("--auth-tokens", tokens, "--auth", "required", "--idempotency-retention-s", "3",
            "--page-token-key", "a shared secret for this test", "--payments", "0")
    o = cluster.start_orderd(*args)
    key = "retained-" + uuid.uuid4().hex[:8]
    status, a = place_http(o, "alice", "cust-alice", key=key)
    t0 = time.monotonic()
    assert status == 200, (status, a)
    status, r = place_http(o, "alice", "cust-alice", key=key, payment_method="invoice")
    if time.monotonic() - t0 < 2.5:  # well within the retention (a slow sanitizer build may not be)
        assert status == 409, ("a key within its retention with another body", status, r)
    # Past the retention the key is the caller's again: a new order, not a 409 nor a replay.
    status, b = eventually(lambda: (x := place_http(o, "alice", "cust-alice", key=key, payment_method="invoice"))[0] == 200
                           and x, timeout=20, what="the key to expire")
    assert b["order_id"] != a["order_id"] and not b.get("replayed"), b
    for i in range(2):
        assert place_http(o, "admin", "cust-restart")[0] == 200
    eventually(lambda: len(o.request("GET", "/v1/orders?customer_id=cust-restart&limit=5",
                                     headers=bearer("admin"))[1].get("orders", [])) == 2, what="2 summaries")
    tok = o.request("GET", "/v1/orders?customer_id=cust-restart&limit=1", headers=bearer("admin"))[1]["next_page_token"]
    o.stop()
    o2 = cluster.start_orderd(*args)
    status, r = o2.request("GET", f"/v1/orders?customer_id=cust-restart&limit=1&page_token={tok}", headers=bearer("admin"))
    assert status == 200 and len(r["orders"]) == 1, (status, r)
    o2.stop()


def run(cluster, runner, stubs):
    tokens = os.path.join(cluster.dir, "tokens")
    token_file(tokens)
    # The payment flow is off: the test drives the payment commands itself.
    o = cluster.start_orderd("--auth-tokens", tokens, "--auth", "required", "--payments", "0")
    g = Grpc(o.grpc_port)
    store = Store(cluster)
    runner.run("the gRPC client reaches every method orderd serves", grpc_covers_served, o, g)
    runner.run("one identity: every spelling reads the same order, and only for its owner", test_one_identity_reads,
               o, g, store)
    runner.run("refused spellings: 400 naming order_id, nothing written", test_refused_spellings, o, g, store)
    runner.run("one identity: every command, both transports, one stream", test_one_identity_commands, o, g, cluster)
    runner.run("idempotency keys scoped to the caller and tied to the request", test_idempotency_scoped, o, g, store)
    runner.run("page tokens cannot be forged or moved to another list", test_page_tokens, o, store)
    runner.run("currencies are ISO 4217", test_currency, o, g, store)
    o.stop()
    runner.run("key retention; page tokens across a restart", test_retention_and_restart, cluster, tokens, store)


if __name__ == "__main__":
    e2e_main(run, stubs=True)
