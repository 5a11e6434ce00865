"""A second aggregate beside orders: orderd_tickets serves orders.v1 and the tickets.v1 fixture
package (tests/fixtures/proto/tickets/v1) through the same start-up walk (es/packages.h), with no
line of runtime/, codegen/ or app/main.c naming tickets. Usage:
    /usr/bin/python3 test_second_aggregate.py <orderd_tickets> <es-kafka-mock> <orderctl_tickets>"""
import hashlib
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from harness import ROOT, eventually, e2e_main  # noqa: E402
from test_orders import order_body  # noqa: E402

ORDERCTL = sys.argv[3] if len(sys.argv) > 3 else None
FIXTURE_PROTOS = os.path.join(ROOT, "tests", "fixtures", "proto")
TOKENS = {"admin": ("admin", "root"), "alice": ("customer", "cust-alice"), "bob": ("customer", "cust-bob")}


def bearer(name):
    return {"Authorization": f"Bearer tok-{name}-secret"}


def token_file(path):
    with open(path, "w") as f:
        for name, (role, principal) in TOKENS.items():
            f.write(f"{hashlib.sha256(f'tok-{name}-secret'.encode()).hexdigest()} {role} {principal}\n")


def grpc_call(o, who, method, request):
    """scripts/grpc_call.py with the fixture's protos: (exit code, answer as JSON)."""
    p = subprocess.run(["/usr/bin/python3", f"{ROOT}/scripts/grpc_call.py", "--addr", f"127.0.0.1:{o.grpc_port}",
                        "--token", f"tok-{who}-secret", "-I", FIXTURE_PROTOS, method, json.dumps(request)],
                       capture_output=True, text=True, timeout=60)
    assert p.stdout.strip(), (p.returncode, p.stderr)
    return p.returncode, json.loads(p.stdout)


def ctl(cluster, *args):
    p = subprocess.run([ORDERCTL] + list(args), capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, ORDERD_PG=cluster.pg))
    return p.returncode, p.stdout, p.stderr


def ticket_row(cluster, tid):
    return cluster.psql(f"SELECT status, owner_id, last_note, version FROM ticket_summary WHERE ticket_id = '{tid}'")


def test_ticket_over_http_and_grpc(o, cluster, state):
    status, r = o.request("POST", "/v1/tickets", {"owner_id": "cust-alice", "subject": "printer on fire"},
                          headers=bearer("alice"))
    assert status == 200 and r["version"] == "1", (status, r)
    tid = state["ticket"] = r["ticket_id"]
    rc, r = grpc_call(o, "alice", "UpdateTicket", {"ticket_id": tid, "note": "still burning"})
    assert rc == 0 and r["version"] == "2", (rc, r)
    status, r = o.request("POST", f"/v1/tickets/{tid}/close", {}, headers=bearer("alice"))
    assert status == 200 and r["version"] == "3", (status, r)
    rc, r = grpc_call(o, "alice", "tickets.v1.TicketService/UpdateTicket", {"ticket_id": tid, "note": "late"})
    assert rc == 1 and r["code"] == "FAILED_PRECONDITION", r
    # GetTicket runs in the package's own query context (QUERY_APP), not orders' read model.
    status, r = o.request("GET", f"/v1/tickets/{tid}", headers=bearer("alice"))
    assert status == 200 and r["status"] == "TICKET_STATUS_CLOSED" and r["version"] == "3", (status, r)
    assert r["last_note"] == "still burning" and r["owner_id"] == "cust-alice", r
    rc, r = grpc_call(o, "alice", "GetTicket", {"ticket_id": tid.upper()})
    assert rc == 0 and r["ticket_id"] == tid and r["version"] == "3", (rc, r)


def test_ticket_access_rules(o, state):
    tid = state["ticket"]
    # customer:self=owner_id: bob may not open a ticket in alice's name.
    status, r = o.request("POST", "/v1/tickets", {"owner_id": "cust-alice", "subject": "x"}, headers=bearer("bob"))
    assert status == 403 and r["code"] == 7, (status, r)
    # customer:owner, through the ticket's own owner_id: bob may not touch alice's ticket.
    status, r = o.request("POST", f"/v1/tickets/{tid}/notes", {"note": "mine now"}, headers=bearer("bob"))
    assert status == 403 and r["code"] == 7, (status, r)
    rc, r = grpc_call(o, "bob", "CloseTicket", {"ticket_id": tid})
    assert rc == 1 and r["code"] == "PERMISSION_DENIED", r
    status, r = o.request("GET", f"/v1/tickets/{tid}", headers=bearer("bob"))
    assert status == 403 and r["code"] == 7, (status, r)
    status, r = o.request("POST", "/v1/tickets", {"owner_id": "cust-bob", "subject": "mine"}, headers=bearer("bob"))
    assert status == 200, (status, r)
    status, r = o.request("POST", f"/v1/tickets/{r['ticket_id']}/notes", {"note": "admin was here"},
                          headers=bearer("admin"))
    assert status == 200, (status, r)


def test_ticket_projection(cluster, state):
    tid = state["ticket"]
    eventually(lambda: ticket_row(cluster, tid) == "TICKET_STATUS_CLOSED|cust-alice|still burning|3", timeout=60,
               what="the ticket's ticket_summary row")


def topic_keys(cluster, topic, key):
    bootstrap = open(cluster.bootstrap_file).read().strip()
    out = subprocess.run(["kcat", "-C", "-b", bootstrap, "-t", topic, "-e", "-q", "-f", "%k\\n"],
                         capture_output=True, text=True, timeout=60).stdout
    return [k for k in out.splitlines() if k == key]


def test_ticket_events_in_kafka(o, cluster, state):
    """A topic per aggregate: the ticket's events in ticket.events (the default of (es.aggregate).topic),
    none in orders.events, and the orders' projection consumer never saw the ticket's stream."""
    tid = state["ticket"]
    eventually(lambda: len(topic_keys(cluster, "ticket.events", tid)) == 3, timeout=60,
               what="the ticket's three events in ticket.events")
    assert topic_keys(cluster, "orders.events", tid) == []
    seen = cluster.psql(f"SELECT consumer FROM es_consumer_streams WHERE stream_id = '{tid}' ORDER BY consumer")
    assert seen.split() == ["projection.ticket_summary"], seen


def test_orders_beside_tickets(o, cluster):
    status, r = o.request("POST", "/v1/orders", order_body(customer="cust-alice"), headers=bearer("alice"))
    assert status == 200, (status, r)
    oid = r["order_id"]
    eventually(lambda: cluster.psql(f"SELECT count(*) FROM order_summary WHERE order_id = '{oid}'") == "1",
               timeout=60, what="the order's order_summary row")
    eventually(lambda: len(topic_keys(cluster, "orders.events", oid)) >= 1, timeout=60,
               what="the order's events in orders.events")
    status, r = o.request("GET", f"/v1/orders/{oid}", headers=bearer("alice"))
    assert status == 200 and r["customer_id"] == "cust-alice", (status, r)


def test_schema_rows_per_package(cluster):
    rows = cluster.psql("SELECT package FROM es_schemas ORDER BY package").split()
    assert rows == ["orders.v1", "tickets.v1"], rows


def test_openapi_lists_both(o, cluster):
    status, doc = o.request("GET", "/openapi.json")
    assert status == 200, status
    assert "/v1/tickets" in doc["paths"] and "/v1/orders" in doc["paths"], sorted(doc["paths"])
    tags = {t["name"] for t in doc["tags"]}
    assert {"OrderService", "TicketService"} <= tags, tags
    assert "tickets.v1.OpenTicketRequest" in json.dumps(doc["components"]), sorted(doc["components"]["schemas"])[:5]
    # The merged document is valid OpenAPI 3 (tools/node_modules' swagger-parser, as web.openapi_valid).
    path = os.path.join(cluster.dir, "openapi.json")
    with open(path, "w") as f:
        json.dump(doc, f)
    parser = os.path.join(ROOT, "tools", "node_modules", "@apidevtools", "swagger-parser")
    p = subprocess.run(["node", "-e", f"require({json.dumps(parser)}).validate({json.dumps(path)})"
                        ".then(() => process.exit(0), e => { console.error(String(e)); process.exit(1); })"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr


def test_metrics_per_projection(o):
    """One exposition: each projection's consumer and shape, every family's header once."""
    status, text = o.request("GET", "/metrics", headers=bearer("admin"))
    assert status == 200, status
    for table in ("order_summary", "ticket_summary"):
        assert f'es_projection_shape_state{{projection="{table}",state="current"}} 1' in text, table
    types = [line for line in text.splitlines() if line.startswith("# TYPE ")]
    assert len(types) == len(set(types)), sorted(t for t in types if types.count(t) > 1)


def test_orderctl(cluster, state):
    rc, out, err = ctl(cluster, "schema", "check")
    assert rc == 0 and "schema check: ok" in out and "tickets.v1" in out and "orders.v1" in out, (rc, out, err)
    assert "UNKNOWN" not in out, out
    rc, out, err = ctl(cluster, "projections", "rebuild", "ticket_summary")
    assert rc == 0, (rc, out, err)
    assert ticket_row(cluster, state["ticket"]) == "TICKET_STATUS_CLOSED|cust-alice|still burning|3"
    rc, out, err = ctl(cluster, "projections", "list")
    assert rc == 0 and "ticket_summary" in out and "order_summary" in out, (rc, out, err)


def test_topic_key_set_keeps_one_topic(cluster, tokens):
    """A deployment that set the topic key (a release before topics per aggregate published every
    event there) keeps it: every aggregate's events go to that one topic."""
    o = cluster.start_orderd("--auth", "required", "--auth-tokens", tokens, "--payments", "0",
                             "--topic", "shared.events", "--projections", "0")
    try:
        status, r = o.request("POST", "/v1/tickets", {"owner_id": "cust-alice", "subject": "shared"},
                              headers=bearer("alice"))
        assert status == 200, (status, r)
        tid = r["ticket_id"]
        status, r = o.request("POST", "/v1/orders", order_body(customer="cust-alice"), headers=bearer("alice"))
        assert status == 200, (status, r)
        oid = r["order_id"]
        eventually(lambda: topic_keys(cluster, "shared.events", tid) and topic_keys(cluster, "shared.events", oid),
                   timeout=60, what="the ticket's and the order's events in shared.events")
        assert topic_keys(cluster, "ticket.events", tid) == [] and topic_keys(cluster, "orders.events", oid) == []
    finally:
        o.stop()


def run(cluster, runner, _stubs):
    assert ORDERCTL, "usage: test_second_aggregate.py <orderd_tickets> <es-kafka-mock> <orderctl_tickets>"
    tokens = os.path.join(cluster.dir, "tokens")
    token_file(tokens)
    o = cluster.start_orderd("--auth", "required", "--auth-tokens", tokens, "--payments", "0")
    state = {}
    runner.run("ticket over HTTP and gRPC", test_ticket_over_http_and_grpc, o, cluster, state)
    if "ticket" not in state:
        return
    runner.run("ticket access rules (own owner field)", test_ticket_access_rules, o, state)
    runner.run("ticket_summary row", test_ticket_projection, cluster, state)
    runner.run("ticket events in Kafka", test_ticket_events_in_kafka, o, cluster, state)
    runner.run("orders beside tickets", test_orders_beside_tickets, o, cluster)
    runner.run("es_schemas row per package", test_schema_rows_per_package, cluster)
    runner.run("/openapi.json lists both services", test_openapi_lists_both, o, cluster)
    runner.run("/metrics per projection", test_metrics_per_projection, o)
    runner.run("orderctl schema check and rebuild ticket_summary", test_orderctl, cluster, state)
    o.stop()
    runner.run("the topic key, when set, is every aggregate's one topic", test_topic_key_set_keeps_one_topic,
               cluster, tokens)


if __name__ == "__main__":
    e2e_main(run)
