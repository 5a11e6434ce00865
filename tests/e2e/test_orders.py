"""End-to-end tests of orderd through real HTTP and gRPC clients, against real PostgreSQL and
librdkafka's mock Kafka cluster. Usage:
    /usr/bin/python3 test_orders.py <orderd> <es-kafka-mock>
"""
import concurrent.futures
import os
import subprocess
import sys
import tempfile
import uuid

sys.path.insert(0, os.path.dirname(__file__))
from harness import ROOT, eventually, e2e_main  # noqa: E402

ADDRESS = {"name": "Ada Lovelace", "line1": "12 St James's Sq", "city": "London", "postal_code": "SW1Y 4JH",
           "country_code": "GB"}


def order_body(customer="cust-1", vendor="vend-1", **extra):
    body = {"customer_id": customer, "vendor_id": vendor, "payment_method": "card",
            "items": [{"product_id": "sku-1", "quantity": 2, "unit_price": {"currency_code": "EUR", "amount_minor": "1250"}},
                      {"product_id": "sku-2", "quantity": 1, "unit_price": {"currency_code": "EUR", "amount_minor": 500}}],
            "shipping_address": ADDRESS}
    body.update(extra)
    return body


def place(o, **kw):
    status, r = o.request("POST", "/v1/orders", order_body(**kw))
    assert status == 200, (status, r)
    assert uuid.UUID(r["order_id"]) and r["version"] == "1", r
    return r["order_id"]


def summary(o, oid, min_version=None):
    path = f"/v1/orders/{oid}" + (f"?min_version={min_version}" if min_version else "")
    status, r = o.request("GET", path)
    return r if status == 200 else None


def wait_payment(o, oid, want):
    return eventually(lambda: (s := summary(o, oid)) and s.get("payment_status") == want and s,
                      what=f"payment_status {want} of {oid}")


def ship(o, oid, status, location, key=None):
    headers = {"Idempotency-Key": key} if key else None
    return o.request("PUT", f"/v1/orders/{oid}/shipping-status",
                     {"status": status, "carrier": "DHL", "tracking_number": "JD0001", "location": location},
                     headers=headers)


def event_types(o, oid):
    status, r = o.request("GET", f"/v1/orders/{oid}/events")
    assert status == 200, (status, r)
    return [e["event_type"] for e in r["events"]], r


def test_lifecycle_http(o):
    oid = place(o)
    s = eventually(lambda: summary(o, oid, min_version=1), what="the first summary (the group join takes seconds)")
    assert s["status"] == "ORDER_STATUS_PLACED" and s["total"] == {"currency_code": "EUR", "amount_minor": "3000"}, s
    wait_payment(o, oid, "PAYMENT_STATUS_PAID")  # the payment flow initiates and charges
    for where in ("Leipzig hub", "Berlin depot", "Berlin depot"):
        status, r = ship(o, oid, "SHIPPING_STATUS_IN_TRANSIT", where)
        assert status == 200, (status, r)
    status, r = ship(o, oid, "SHIPPING_STATUS_DELIVERED", "Front door")
    assert status == 200, (status, r)
    s = summary(o, oid, min_version=r["version"])
    assert s["status"] == "ORDER_STATUS_DELIVERED" and s["shipping_status"] == "SHIPPING_STATUS_DELIVERED", s
    assert s["location"] == "Front door" and s["carrier"] == "DHL", s
    types, trail = event_types(o, oid)
    assert types == ["OrderPlaced", "OrderPaymentInitiated", "OrderPaid", "OrderShippingStatusUpdated",
                     "OrderShippingStatusUpdated", "OrderShippingStatusUpdated", "OrderDelivered"], types
    first = trail["events"][0]
    assert first["version"] == "1" and first["data"]["@type"] == "type.googleapis.com/orders.v1.OrderPlaced", first
    assert first["data"]["total"]["amount_minor"] == "3000", first
    assert [e["version"] for e in trail["events"]] == [str(i) for i in range(1, 8)]
    # the payment flow's commands are caused by the events before them
    assert trail["events"][1]["causation_id"] == trail["events"][0]["event_id"], trail["events"][1]
    status, r = o.request("POST", f"/v1/orders/{oid}/cancel", {"reason": "too late"})
    assert status == 400 and r["code"] == 9 and "DELIVERED" in r["message"], (status, r)


def consumer_version(cluster, consumer, stream_id):
    """The last version of stream_id the consumer has handled (0 before its first event)."""
    v = cluster.psql(f"SELECT version FROM es_consumer_streams WHERE consumer = '{consumer}' "
                     f"AND stream_id = '{stream_id}'")
    return int(v) if v else 0


def test_cancel_before_payment(o, cluster):
    # the simulated gateway takes 300 ms: the cancel lands while the charge is in flight
    oid = place(o)
    status, r = o.request("POST", f"/v1/orders/{oid}/cancel", {"reason": "changed my mind"})
    assert status == 200, (status, r)
    s = eventually(lambda: (s := summary(o, oid)) and s["status"] == "ORDER_STATUS_CANCELLED" and s, what="cancelled")
    assert s["cancel_reason"] == "changed my mind"
    # The payment flow handles an order's events in stream order, and charges (then records
    # OrderPaid, or is refused) while handling OrderPaymentInitiated, which precedes
    # OrderCancelled. Once it has handled OrderCancelled, the charge attempt is over.
    _, trail = event_types(o, oid)
    cancelled_at = next(int(e["version"]) for e in trail["events"] if e["event_type"] == "OrderCancelled")
    eventually(lambda: consumer_version(cluster, "payment-flow", oid) >= cancelled_at,
               what=f"the payment flow past OrderCancelled (version {cancelled_at}) of {oid}")
    types, _ = event_types(o, oid)
    assert "OrderPaid" not in types and types[-1] != "OrderPaid", types  # the seed's race: no revival
    s = summary(o, oid)
    assert s["status"] == "ORDER_STATUS_CANCELLED", s


def test_pay_then_cancel_refunds(o):
    oid = place(o)
    wait_payment(o, oid, "PAYMENT_STATUS_PAID")
    status, r = o.request("POST", f"/v1/orders/{oid}/cancel", {"reason": "found it cheaper"})
    assert status == 200, (status, r)
    s = wait_payment(o, oid, "PAYMENT_STATUS_REFUNDED")
    assert s["refunded_amount"] == {"currency_code": "EUR", "amount_minor": "3000"}, s
    types, _ = event_types(o, oid)
    assert types[-2:] == ["OrderCancelled", "OrderPaymentRefunded"], types


def test_many_orders_at_once(o, cluster):
    """The payment flow reacts to several orders at once (payment-flow-concurrency): every
    order's reactions still happen once and in its stream's order, and a cancel that lands
    while other orders' charges are in flight is honoured as for one order alone."""
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        oids = list(pool.map(lambda i: place(o, customer=f"many-{i % 5}"), range(40)))
        cancelled = set(oids[::4])
        for oid, (status, r) in zip(cancelled, pool.map(
                lambda oid: o.request("POST", f"/v1/orders/{oid}/cancel", {"reason": "at once"}), cancelled)):
            assert status == 200, (oid, status, r)

    def flow_settled(oid):
        # the flow's version first: each reaction commits before the flow records its cause
        handled = consumer_version(cluster, "payment-flow", oid)
        _, trail = event_types(o, oid)
        return handled >= int(trail["events"][-1]["version"])
    for oid in oids:
        eventually(lambda: flow_settled(oid), what=f"the payment flow past every event of {oid}")
    for oid in oids:
        types, _ = event_types(o, oid)
        for t in ("OrderPaymentInitiated", "OrderPaid", "OrderPaymentFailed", "OrderPaymentRefunded"):
            assert types.count(t) <= 1, (oid, types)
        if oid not in cancelled or "OrderCancelled" not in types:
            assert "OrderPaid" in types, (oid, types)
            continue
        after = types[types.index("OrderCancelled"):]
        assert "OrderPaid" not in after and "OrderPaymentInitiated" not in after, (oid, types)
        # paid before the cancel: refunded, once, after it
        assert ("OrderPaymentRefunded" in after) == ("OrderPaid" in types), (oid, types)


def test_illegal_transitions(o):
    oid = place(o, customer="illegal")
    status, r = ship(o, oid, "SHIPPING_STATUS_IN_TRANSIT", "x")
    assert status == 400 and r["code"] == 9, (status, r)  # FAILED_PRECONDITION: not paid
    status, r = o.request("POST", f"/v1/orders/{uuid.uuid4()}/cancel", {"reason": "x"})
    assert status == 404 and r["code"] == 5, (status, r)
    status, r = o.request("POST", "/v1/orders", order_body(items=[]))
    assert status == 400 and r["code"] == 3 and "items" in r["message"], (status, r)
    status, r = o.request("POST", "/v1/orders", order_body(order_id=oid))
    assert status == 409 and r["code"] == 6, (status, r)  # ALREADY_EXISTS


def test_idempotent_retry(o):
    key = str(uuid.uuid4())
    a = o.request("POST", "/v1/orders", order_body(customer="idem"), headers={"Idempotency-Key": key})
    b = o.request("POST", "/v1/orders", order_body(customer="idem"), headers={"Idempotency-Key": key})
    assert a[0] == 200 and b[0] == 200, (a, b)
    assert a[1]["order_id"] == b[1]["order_id"] and b[1].get("replayed") is True, (a, b)
    types, _ = event_types(o, a[1]["order_id"])
    assert types.count("OrderPlaced") == 1


def _metric(o, name):
    import re
    status, text = o.request("GET", "/metrics")
    assert status == 200, status
    m = re.search(rf"^{name} ([0-9.e+]+)$", text, re.M)
    assert m, f"{name} missing"
    return float(m.group(1))


def test_direct_place_order_conflict(o, cluster):
    """PlaceOrder is decided on the transport's thread and answered by the committer; when its
    append meets a version conflict (forced here once by a trigger on the stream heads), a worker
    runs it again the blocking way: the client gets one order, with no error."""
    before, reruns = _metric(o, "es_direct_commands_total"), _metric(o, "es_direct_commands_rerun_total")
    place(o, customer="direct-plain")
    assert _metric(o, "es_direct_commands_total") == before + 1
    cluster.psql("""
        CREATE SEQUENCE e2e_conflict_once;
        CREATE FUNCTION e2e_conflict_once() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            -- A sequence, not a row: the conflict rolls back everything else the append wrote.
            IF NEW.version = 1 AND nextval('e2e_conflict_once') = 1 THEN
                RAISE unique_violation USING MESSAGE = 'e2e: forced conflict';
            END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER e2e_conflict_once BEFORE INSERT ON es_streams
            FOR EACH ROW EXECUTE FUNCTION e2e_conflict_once();""")
    try:
        oid = place(o, customer="direct-conflict")
        assert int(cluster.psql("SELECT last_value FROM e2e_conflict_once")) >= 2  # fired, then let it pass
        assert _metric(o, "es_direct_commands_rerun_total") == reruns + 1
        types, _ = event_types(o, oid)
        assert types == ["OrderPlaced"], types
        n = cluster.psql("SELECT count(*) FROM es_events WHERE event_type = 'OrderPlaced'"
                         " AND payload_json->>'customer_id' = 'direct-conflict'")
        assert n == "1", n
    finally:
        cluster.psql("DROP TRIGGER e2e_conflict_once ON es_streams; DROP FUNCTION e2e_conflict_once();"
                     " DROP SEQUENCE e2e_conflict_once")


def test_concurrent_cancel_and_ship(o):
    oid = place(o, customer="race")
    wait_payment(o, oid, "PAYMENT_STATUS_PAID")
    with concurrent.futures.ThreadPoolExecutor(2) as ex:
        f1 = ex.submit(o.request, "POST", f"/v1/orders/{oid}/cancel", {"reason": "race"})
        f2 = ex.submit(ship, o, oid, "SHIPPING_STATUS_IN_TRANSIT", "dock")
        r1, r2 = f1.result(), f2.result()
    # whichever commits first makes the other illegal: cancel forbids shipping, in transit forbids cancel
    wins = [r for r in (r1, r2) if r[0] == 200]
    losers = [r for r in (r1, r2) if r[0] != 200]
    assert len(wins) == 1 and losers[0][1]["code"] in (9, 10), (r1, r2)
    types, _ = event_types(o, oid)
    assert ("OrderCancelled" in types) != ("OrderShippingStatusUpdated" in types), types


def test_list_pagination(o):
    customer = f"pager-{uuid.uuid4()}"
    ids = [place(o, customer=customer) for _ in range(5)]
    eventually(lambda: len(o.request("GET", f"/v1/orders?customer_id={customer}&limit=10")[1].get("orders", [])) == 5,
               what="5 orders projected")
    seen, token = [], ""
    while True:
        status, r = o.request("GET", f"/v1/orders?customer_id={customer}&limit=2" + (f"&page_token={token}" if token else ""))
        assert status == 200, (status, r)
        seen += [x["order_id"] for x in r.get("orders", [])]
        token = r.get("next_page_token", "")
        if not token:
            break
    assert seen == list(reversed(ids)), (seen, ids)  # newest first, each once
    status, r = o.request("GET", f"/v1/orders?customer_id={customer}&limit=2&offset=2")
    assert [x["order_id"] for x in r["orders"]] == list(reversed(ids))[2:4], r
    status, r = o.request("GET", "/v1/orders?page_token=zz")
    assert status == 400 and "page_token" in r["message"], (status, r)


def test_bad_input(o):
    status, r = o.request("POST", "/v1/orders", raw=b"{not json")
    assert status == 400 and r["code"] == 3, (status, r)
    status, r = o.request("POST", "/v1/orders", order_body(colour="red"))
    assert status == 400 and "colour" in r["message"], (status, r)
    body = order_body()
    body["items"][0]["quantity"] = -1
    status, r = o.request("POST", "/v1/orders", body)
    assert status == 400 and "items[0].quantity" in r["message"], (status, r)
    body = order_body()
    body["items"][1]["unit_price"]["currency_code"] = "USD"
    status, r = o.request("POST", "/v1/orders", body)
    assert status == 400 and "currency_code" in r["message"], (status, r)
    status, r = o.request("GET", "/v1/orders/not-a-uuid")
    assert status == 400 and "order_id" in r["message"], (status, r)
    # an oversize body is refused from its Content-Length, before it is read
    import socket
    with socket.create_connection(("127.0.0.1", o.http_port), timeout=10) as sock:
        sock.sendall(b"POST /v1/orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 4194304\r\n\r\n{")
        head = sock.recv(65536).decode(errors="replace")
    assert head.startswith("HTTP/1.1 413"), head
    assert '"code":8' in head.replace(" ", ""), head


def test_grpc(o, stubs_dir):
    import grpc
    from orders.v1 import commands_pb2, queries_pb2, types_pb2
    ch = grpc.insecure_channel(f"127.0.0.1:{o.grpc_port}")
    call = lambda m, req, resp: ch.unary_unary(f"/orders.v1.OrderService/{m}", request_serializer=req.SerializeToString,
                                               response_deserializer=resp.FromString)(req, timeout=10)
    req = commands_pb2.PlaceOrderRequest(customer_id="grpc-cust", vendor_id="v", payment_method="card",
                                         items=[types_pb2.LineItem(product_id="p", quantity=3,
                                                                   unit_price=types_pb2.Money(currency_code="EUR", amount_minor=199))],
                                         shipping_address=types_pb2.Address(**ADDRESS))
    res = call("PlaceOrder", req, commands_pb2.CommandResult)
    assert res.version == 1 and uuid.UUID(res.order_id)
    got = call("GetOrder", queries_pb2.GetOrderRequest(order_id=res.order_id, min_version=1), queries_pb2.OrderSummary)
    assert got.total.amount_minor == 597 and got.customer_id == "grpc-cust", got
    try:
        call("PlaceOrder", commands_pb2.PlaceOrderRequest(customer_id="x"), commands_pb2.CommandResult)
        raise AssertionError("invalid PlaceOrder accepted")
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and "vendor_id" in e.details(), e
    try:
        call("CancelOrder", commands_pb2.CancelOrderRequest(order_id=str(uuid.uuid4()), reason="x"), commands_pb2.CommandResult)
        raise AssertionError("cancel of a missing order accepted")
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.NOT_FOUND, e
    wait_payment(o, res.order_id, "PAYMENT_STATUS_PAID")
    upd = commands_pb2.UpdateOrderShippingStatusRequest(order_id=res.order_id, status=types_pb2.SHIPPING_STATUS_IN_TRANSIT,
                                                        carrier="UPS", tracking_number="1Z", location="Oslo")
    r = call("UpdateOrderShippingStatus", upd, commands_pb2.CommandResult)
    assert r.version == 4, r
    ev = call("GetOrderEvents", queries_pb2.GetOrderEventsRequest(order_id=res.order_id), queries_pb2.GetOrderEventsResponse)
    assert [e.event_type for e in ev.events][-1] == "OrderShippingStatusUpdated"


def test_kafka_topic_keyed_by_order(o, cluster):
    oid = place(o, customer="kafka")
    wait_payment(o, oid, "PAYMENT_STATUS_PAID")
    bootstrap = open(cluster.bootstrap_file).read().strip()
    def keys():
        out = subprocess.run(["kcat", "-C", "-b", bootstrap, "-t", "orders.events", "-e", "-q", "-f", "%k %p\\n"],
                             capture_output=True, text=True, timeout=60).stdout
        return [line.split() for line in out.splitlines() if line.startswith(oid)]
    rows = eventually(lambda: len(keys()) >= 3 and keys(), timeout=30, what="events of the order in Kafka")
    assert len({p for _, p in rows}) == 1, rows  # one key, one partition: stream order
    # decode one value as es.Envelope with protoc --decode
    with tempfile.NamedTemporaryFile() as f:
        subprocess.run(["kcat", "-C", "-b", bootstrap, "-t", "orders.events", "-e", "-q", "-p", rows[0][1], "-f", "%s"],
                       stdout=f, timeout=60)
        raw = open(f.name, "rb").read()
    # kcat concatenates values; decode the first envelope of this partition
    dec = subprocess.run(["protoc", f"-I{ROOT}/proto", "-I/usr/include", "--decode=es.Envelope", "es/envelope.proto"],
                         input=raw[:_first_message_len(raw)], capture_output=True)
    assert b"stream_type: \"order\"" in dec.stdout, dec


def test_metrics_and_health(o):
    import re
    for path in ("/livez", "/readyz", "/healthz"):
        status, r = o.request("GET", path)
        assert status == 200 and r["status"] == "ok", (path, status, r)
    status, text = o.request("GET", "/metrics")
    assert status == 200, status
    sample = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*",?)*\})? [-+0-9.eE]+(Inf)?$')
    families, seen = {}, []
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            name = line.split()[2]
            assert name not in families, f"family {name} declared twice"
            families[name] = line.split()[3]
            seen.append(name)
        elif line and not line.startswith("#"):
            assert sample.match(line), line
            base = re.sub(r"(_bucket|_sum|_count)$", "", line.split("{")[0].split(" ")[0])
            assert base in families or line.split("{")[0].split(" ")[0] in families, line
            assert seen[-1] in (base, line.split("{")[0].split(" ")[0]), f"{line} outside its family {seen[-1]}"
    assert 'es_requests_total{method="PlaceOrder",transport="http",code="OK"}' in text, text[:2000]
    assert 'es_requests_total{method="PlaceOrder",transport="grpc",code="OK"}' in text
    assert 'es_request_duration_seconds_bucket{method="PlaceOrder",le="+Inf"}' in text
    for name in ("es_append_conflicts_total", "es_relay_lag_events", "es_relay_batches_total", "es_feed_held_back_events",
                 "es_consumer_dead_letters_total", "es_postgres_up"):
        assert name in families, name
    assert re.search(r'^es_relay_active 1$', text, re.M), "this instance should relay"


def test_thread_names(o):
    """Operators read per-thread CPU with top -H: every kind of thread carries its name."""
    import glob
    names = set()
    for f in glob.glob(f"/proc/{o.proc.pid}/task/*/comm"):
        with open(f) as fh:
            names.add(fh.read().strip())
    want = {"es-http", "es-grpc", "es-worker", "es-committer", "es-relay", "es-consumer", "orderd-health"}
    assert want <= names, f"missing {sorted(want - names)} in {sorted(names)}"


def _first_message_len(raw):
    # an Envelope's fields are all length-delimited or varints; walk field by field until field 1 repeats
    i, seen = 0, set()
    while i < len(raw):
        tag, i2 = _varint(raw, i)
        field, wt = tag >> 3, tag & 7
        if field in seen or field == 0 or field > 15:
            return i
        seen.add(field)
        if wt == 0:
            _, i2 = _varint(raw, i2)
        elif wt == 2:
            n, i2 = _varint(raw, i2)
            i2 += n
        else:
            return i
        i = i2
    return i


def _varint(b, i):
    v, s = 0, 0
    while True:
        c = b[i]
        i += 1
        v |= (c & 0x7F) << s
        s += 7
        if not c & 0x80:
            return v, i


def run(cluster, runner, stubs):
    o = cluster.start_orderd("--payment-delay-ms", "300")
    runner.run("lifecycle over HTTP", test_lifecycle_http, o)
    runner.run("cancel before payment (the seed's race)", test_cancel_before_payment, o, cluster)
    runner.run("pay then cancel refunds", test_pay_then_cancel_refunds, o)
    runner.run("many orders at once: each reacted to once, in order", test_many_orders_at_once, o, cluster)
    runner.run("illegal transitions refused", test_illegal_transitions, o)
    runner.run("idempotent retry", test_idempotent_retry, o)
    runner.run("a direct PlaceOrder that meets a conflict is run again by a worker", test_direct_place_order_conflict,
               o, cluster)
    runner.run("concurrent cancel and ship", test_concurrent_cancel_and_ship, o)
    runner.run("list pagination", test_list_pagination, o)
    runner.run("bad input", test_bad_input, o)
    runner.run("gRPC client", test_grpc, o, stubs)
    runner.run("Kafka topic keyed by order id", test_kafka_topic_keyed_by_order, o, cluster)
    runner.run("metrics and health", test_metrics_and_health, o)
    runner.run("thread names", test_thread_names, o)


if __name__ == "__main__":
    e2e_main(run, stubs=True)
