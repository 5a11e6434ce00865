"""Hostile clients against a database upgraded from the previous release: orders and command ids
written before the upgrade (the read model without a column, no shape recorded, migrations under
the previous texts' hashes, and one command id stored with the previous release's raw-key scheme:
the client's key itself, no fingerprint, no expiry), then orderd restarted on it (the new
read-model version built beside and switched to). Then, against the orders of before:
an existing order's id in other spellings reads the same order for its owner and 403 for another
customer, over HTTP and gRPC; PlaceOrder with the existing id in another spelling creates no
second stream; another principal's idempotency key does not replay the first principal's order;
the same principal's key replays it; a raw-key command id of the previous release is answered as
a duplicate for the same principal and never for another.
Reuses tests/e2e/test_hostile.py's clients and spellings.
Usage: /usr/bin/python3 test_hostile_upgrade.py <orderd> <es-kafka-mock> [ids-and-keys | raw-key]
(each part its own ctest, so that a failure names what broke; default: both)"""
import os
import sys
import tempfile
import urllib.request
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "e2e"))
from harness import Cluster, Runner, eventually, python_stubs  # noqa: E402
from test_hostile import Grpc, Store, bearer, grpc_place_fields, path_id, place_http, spellings, token_file  # noqa: E402


def shape_current(o):
    req = urllib.request.Request(f"{o.base}/metrics", headers=bearer("admin"))
    with urllib.request.urlopen(req, timeout=5) as r:
        return 'es_projection_shape_state{projection="order_summary",state="current"} 1' in r.read().decode()


class Before:
    """What the previous release left: alice's orders, one placed with a key, one with a key
    recorded under the raw-key scheme."""

    def __init__(self, cluster, o):
        self.oid = str(uuid.uuid4())
        status, r = place_http(o, "alice", "cust-alice", oid=self.oid)
        assert status == 200 and r["order_id"] == self.oid, (status, r)
        self.key = "before-" + uuid.uuid4().hex[:8]
        status, self.keyed = place_http(o, "alice", "cust-alice", key=self.key)
        assert status == 200, (status, self.keyed)
        self.raw_key = "raw-" + uuid.uuid4().hex[:8]
        status, self.raw = place_http(o, "alice", "cust-alice", key=self.raw_key)
        assert status == 200, (status, self.raw)
        for x in (self.oid, self.keyed["order_id"], self.raw["order_id"]):
            eventually(lambda: o.request("GET", f"/v1/orders/{x}", headers=bearer("alice"))[0] == 200,
                       what="the summaries")
        # The previous release used the client's key itself as the command id.
        raw_oid = self.raw["order_id"]
        cluster.psql(f"UPDATE es_commands SET command_id = '{self.raw_key}', request_hash = NULL, expires_at = NULL "
                     f"WHERE stream_id = '{raw_oid}' AND first_version = 1; "
                     f"UPDATE es_events SET command_id = '{self.raw_key}' WHERE stream_id = '{raw_oid}' AND version = 1")


def upgrade(cluster, args):
    """The database as the previous release left it, then this release started on it."""
    cluster.psql("ALTER TABLE order_summary DROP COLUMN payment_method; DROP TABLE es_projection_shapes; "
                 "UPDATE es_migrations SET hash = 'previous-release-' || name")
    o = cluster.start_orderd(*args)
    eventually(lambda: shape_current(o), timeout=120, what="the read model at its new shape")
    return o


def test_spellings(o, g, store, before):
    oid = before.oid
    for name, s in spellings(oid).items():
        status, r = o.request("GET", f"/v1/orders/{path_id(s)}", headers=bearer("alice"))
        assert status == 200 and r["order_id"] == oid and r["payment_method"] == "card", (name, status, r)
        status, r = o.request("GET", f"/v1/orders/{path_id(s)}", headers=bearer("bob"))
        assert status in (403, 404), (name, "another customer read an order of before the upgrade", status, r)
        code, r = g.call("GetOrder", "alice", order_id=s)
        assert code == g.grpc.StatusCode.OK and r.order_id == oid, (name, code, r)
        code, r = g.call("GetOrder", "bob", order_id=s)
        assert code in (g.grpc.StatusCode.PERMISSION_DENIED, g.grpc.StatusCode.NOT_FOUND), (name, code, r)
        status, r = store.unchanged(lambda: place_http(o, "alice", "cust-alice", oid=s))
        assert status == 409 and r["code"] == 6, (name, "a second stream for an order of before", status, r)
        code, r = store.unchanged(lambda: g.call("PlaceOrder", "alice", **grpc_place_fields("cust-alice", s)))
        assert code == g.grpc.StatusCode.ALREADY_EXISTS, (name, code, r)
    streams = o_streams(store.cluster, oid)
    assert streams == [oid], streams


def o_streams(cluster, oid):
    out = cluster.psql(f"SELECT DISTINCT stream_id FROM es_events WHERE lower(stream_id) = '{oid}'")
    return out.splitlines()


def test_keys(o, store, before):
    # Another principal's identical key is their own command, never alice's order.
    status, b = place_http(o, "bob", "cust-bob", key=before.key)
    assert status == 200 and b["order_id"] != before.keyed["order_id"] and not b.get("replayed"), (status, b)
    # The same principal's key of before the upgrade answers with the first order, nothing appended.
    status, a = store.unchanged(lambda: place_http(o, "alice", "cust-alice", key=before.key))
    assert status == 200 and a["order_id"] == before.keyed["order_id"] and a.get("replayed") is True, (status, a)


def test_raw_key(o, store, cluster, before):
    raw_oid = before.raw["order_id"]
    # Recorded by the previous release under the key itself: still a duplicate for its principal.
    status, a = store.unchanged(lambda: place_http(o, "alice", "cust-alice", key=before.raw_key))
    assert status == 200 and a["order_id"] == raw_oid and a.get("replayed") is True, \
        ("a command of before the upgrade ran again", status, a)
    # ... and never another principal's answer.
    status, b = place_http(o, "bob", "cust-bob", key=before.raw_key)
    assert status == 200 and b["order_id"] != raw_oid and not b.get("replayed"), (status, b)
    mine = cluster.psql("SELECT count(DISTINCT stream_id) FROM es_events WHERE event_type = 'OrderPlaced' "
                        "AND payload_json->>'customer_id' = 'cust-alice'")
    assert mine == "3", f"alice has {mine} orders, placed 3 before the upgrade"


def main():
    orderd, mock = sys.argv[1], sys.argv[2]
    part = sys.argv[3] if len(sys.argv) > 3 else "all"
    runner = Runner()
    cluster = Cluster(orderd, mock)
    stubs = tempfile.mkdtemp(prefix="orderd-stubs-")
    try:
        python_stubs(stubs)
        cluster.start_infra()
        tokens = os.path.join(cluster.dir, "tokens")
        token_file(tokens)
        args = ("--auth-tokens", tokens, "--auth", "required", "--payments", "0")
        o = cluster.start_orderd(*args)
        before = Before(cluster, o)
        o.stop()
        o = upgrade(cluster, args)
        g = Grpc(o.grpc_port)
        store = Store(cluster)
        if part in ("all", "ids-and-keys"):
            runner.run("upgraded: an order of before, every spelling, its owner only, no second stream",
                       test_spellings, o, g, store, before)
            runner.run("upgraded: idempotency keys of before stay their principal's", test_keys, o, store, before)
        if part in ("all", "raw-key"):
            runner.run("upgraded: a raw-key command id of the previous release answers its principal as a duplicate",
                       test_raw_key, o, store, cluster, before)
        o.stop()
    finally:
        cluster.stop()
    return runner.finish()


if __name__ == "__main__":
    sys.exit(main())
