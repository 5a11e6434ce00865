"""Integration tests of orderctl, the admin CLI, against a real orderd on real PostgreSQL
(scripts/pg.sh) and librdkafka's mock Kafka cluster (scripts/kafka-mock.sh). Usage:
    /usr/bin/python3 test_orderctl.py <orderctl> <orderd> <es-kafka-mock>
Every test prints PASS/FAIL; the last line says how many passed; exit 1 when any failed.
"""
import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
from harness import Cluster, Runner, eventually  # noqa: E402

ORDERCTL = None
ADDRESS = {"name": "Ada", "line1": "1 Main St", "city": "Paris", "postal_code": "75001", "country_code": "FR"}
CONSUMER = "projection.order_summary"


def order_body(customer="cust-ctl"):
    return {"customer_id": customer, "vendor_id": "vend-ctl", "payment_method": "card",
            "items": [{"product_id": "sku-1", "quantity": 2, "unit_price": {"currency_code": "EUR", "amount_minor": 1250}},
                      {"product_id": "sku-2", "quantity": 1, "unit_price": {"currency_code": "EUR", "amount_minor": 500}}],
            "shipping_address": ADDRESS}


def ctl(cl, *args, pg=None, timeout=120):
    """Runs orderctl; returns (exit code, stdout, stderr)."""
    env = dict(os.environ, ORDERD_PG=pg or cl.pg)
    p = subprocess.run([ORDERCTL] + list(args), capture_output=True, text=True, env=env, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def place(o, customer="cust-ctl"):
    status, r = o.request("POST", "/v1/orders", order_body(customer))
    assert status == 200, (status, r)
    return r["order_id"]


def ship(o, oid, status, location):
    st, r = o.request("PUT", f"/v1/orders/{oid}/shipping-status",
                      {"status": status, "carrier": "DHL", "tracking_number": "JD1", "location": location})
    assert st == 200, (st, r)
    return r


def store_version(cl, oid):
    return int(cl.psql(f"SELECT coalesce(max(version), 0) FROM es_events WHERE stream_id = '{oid}'"))


def caught_up(cl):
    """1 when every order's projection row is at its stream's version (the live consumer caught up)."""
    lag = cl.psql("SELECT count(*) FROM (SELECT stream_id, max(version) v FROM es_events GROUP BY 1) e"
                  " LEFT JOIN order_summary s ON s.order_id::text = e.stream_id"
                  " WHERE s.version IS DISTINCT FROM e.v")
    return lag == "0"


def wait_settled(cl, o, oids):
    """Waits until the payment flow has paid every order and the projection shows it."""
    def paid():
        for oid in oids:
            st, r = o.request("GET", f"/v1/orders/{oid}")
            if st != 200 or r.get("payment_status") != "PAYMENT_STATUS_PAID":
                return False
        return True
    eventually(paid, timeout=60, what="every order paid")
    eventually(lambda: caught_up(cl), timeout=30, what="projection caught up with the store")


def summary_rows(cl):
    return cl.psql("SELECT order_id, status, payment_status, shipping_status, customer_id, item_count, total::text,"
                   " location, created_at, updated_at, version, items::text, encode(es_state, 'hex')"
                   " FROM order_summary ORDER BY order_id")


# ---- the tests ----------------------------------------------------------------------------------

def test_usage(cl, o, oids):
    rc, out, err = ctl(cl, "--help")
    assert rc == 0 and "verify" in out and "dead-letters retry" in out, (rc, out)
    rc, out, err = ctl(cl, "no-such-command")
    assert rc == 2 and "unknown command" in err, (rc, err)
    rc, out, err = ctl(cl, "verify", "--bogus")
    assert rc == 2, (rc, err)
    rc, out, err = ctl(cl, "history", str(uuid.uuid4()))
    assert rc == 1 and "no events" in err, (rc, out, err)
    rc, out, err = ctl(cl, "migrate", pg="host=/nonexistent/sock port=1 dbname=x user=x")
    assert rc == 2 and "UNAVAILABLE" in err, (rc, err)


def test_migrate_idempotent(cl, o, oids):
    # orderd migrated the main database at start: nothing left to apply, twice.
    for _ in range(2):
        rc, out, err = ctl(cl, "migrate")
        assert rc == 0 and "0 of 2 migrations applied" in out, (rc, out, err)
    # A fresh database: applied once, then nothing; the tables exist.
    cl.psql("DROP DATABASE IF EXISTS ctl_fresh")
    cl.psql("CREATE DATABASE ctl_fresh")
    fresh = cl.pg + " dbname=ctl_fresh"
    rc, out, err = ctl(cl, "migrate", pg=fresh)
    assert rc == 0 and "2 of 2 migrations applied" in out, (rc, out, err)
    rc, out, err = ctl(cl, "migrate", pg=fresh)
    assert rc == 0 and "0 of 2 migrations applied" in out, (rc, out, err)
    tables = subprocess.run(["psql", fresh, "-qAtX", "-c",
                             "SELECT count(*) FROM pg_tables WHERE tablename IN"
                             " ('es_events', 'es_dead_letters', 'es_schemas', 'order_summary')"],
                            check=True, capture_output=True, text=True).stdout.strip()
    assert tables == "4", tables
    # No orderd ever ran there: this binary's schema is not registered, and the check says so.
    rc, out, err = ctl(cl, "schema", "check", pg=fresh)
    assert rc == 1 and "not registered" in out, (rc, out, err)


def test_history(cl, o, oids):
    oid = oids[0]
    rc, out, err = ctl(cl, "history", oid)
    assert rc == 0, (rc, err)
    lines = [json.loads(line) for line in out.splitlines()]
    st, trail = o.request("GET", f"/v1/orders/{oid}/events")
    assert st == 200
    assert [e["event_type"] for e in lines] == [e["event_type"] for e in trail["events"]], (lines, trail)
    assert [e["version"] for e in lines] == list(range(1, len(lines) + 1)), lines
    assert [e["event_id"] for e in lines] == [e["event_id"] for e in trail["events"]]
    first = lines[0]
    assert first["event_type"] == "OrderPlaced" and first["stream_id"] == oid and first["stream_type"] == "order"
    assert first["schema"] == "orders.v1.OrderPlaced" and first["recorded_at"].endswith("Z"), first
    assert first["data"]["order_id"] == oid and first["data"]["total"] == {"currency_code": "EUR", "amount_minor": "3000"}, first
    assert first["data"]["items"][0]["product_id"] == "sku-1", first
    paid = [e for e in lines if e["event_type"] == "OrderPaid"]
    assert len(paid) == 1 and paid[0]["actor"] == "payment-flow" and paid[0].get("causation_id"), paid


def test_tail(cl, o, oids):
    # From the start, bounded: the first events of the store in feed order.
    rc, out, err = ctl(cl, "tail", "--from-start", "--max", "3")
    lines = [json.loads(line) for line in out.splitlines()]
    assert rc == 0 and len(lines) == 3, (rc, out, err)
    first_pos = int(cl.psql("SELECT min(position) FROM es_events"))
    assert lines[0]["position"] == first_pos and lines[0]["event_type"] == "OrderPlaced", lines
    # Live: only events committed after it started, until SIGINT.
    env = dict(os.environ, ORDERD_PG=cl.pg)
    feeds = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'es-feed'"
    before = int(cl.psql(feeds))
    p = subprocess.Popen([ORDERCTL, "tail"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        # tail reads the feed's head, then opens its feed session: once that is there, what is
        # placed next is after the head
        eventually(lambda: p.poll() is None and int(cl.psql(feeds)) > before, timeout=30, interval=0.05,
                   what="orderctl tail's feed session")
        oid = place(o, customer="cust-tail")
        seen = []
        deadline = time.time() + 30
        while time.time() < deadline:
            r, _, _ = select.select([p.stdout], [], [], 1)
            if r:
                ev = json.loads(p.stdout.readline())
                seen.append(ev)
                if ev["stream_id"] == oid and ev["event_type"] == "OrderPaid":
                    break
        mine = [e["event_type"] for e in seen if e["stream_id"] == oid]
        assert mine == ["OrderPlaced", "OrderPaymentInitiated", "OrderPaid"], seen
        assert all(e["stream_id"] == oid for e in seen), "tail printed events from before it started: %s" % seen
        assert seen[0]["data"]["customer_id"] == "cust-tail", seen[0]
        p.send_signal(signal.SIGINT)
        assert p.wait(10) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    oids.append(oid)
    eventually(lambda: caught_up(cl), timeout=30, what="projection caught up")


def test_verify_clean(cl, o, oids):
    rc, out, err = ctl(cl, "verify")
    assert rc == 0, (rc, out, err)
    n = int(cl.psql("SELECT count(DISTINCT stream_id) FROM es_events"))
    assert f"order_summary: {n} streams, {n} rows: no differences" in out, out
    assert "verify: 0 differences" in out and "DIFF" not in out, out


def test_verify_detects_and_rebuild_repairs(cl, o, oids):
    before = summary_rows(cl)
    status_oid, missing_oid, version_oid = oids[0], oids[1], oids[2]
    status_was = cl.psql(f"SELECT status FROM order_summary WHERE order_id = '{status_oid}'")
    # Corruptions a bug or a hand-edit could leave: a wrong column, a lost row, a stale version,
    # a row of no order at all.
    cl.psql(f"UPDATE order_summary SET status = 'ORDER_STATUS_CANCELLED' WHERE order_id = '{status_oid}'")
    cl.psql(f"DELETE FROM order_summary WHERE order_id = '{missing_oid}'")
    cl.psql(f"UPDATE order_summary SET version = version - 1 WHERE order_id = '{version_oid}'")
    extra = str(uuid.uuid4())
    cl.psql(f"INSERT INTO order_summary (order_id, status, es_state) VALUES ('{extra}', 'ORDER_STATUS_PLACED', '')")
    rc, out, err = ctl(cl, "verify", "--settle-ms", "0")
    assert rc == 1, (rc, out, err)
    diffs = [line for line in out.splitlines() if line.startswith("DIFF")]
    assert any(f"column   order_summary {status_oid} status: store \"{status_was}\", row \"ORDER_STATUS_CANCELLED\""
               in d for d in diffs), diffs
    assert any(f"missing  order_summary {missing_oid}" in d for d in diffs), diffs
    assert any(f"version  order_summary {version_oid}: row at version" in d for d in diffs), diffs
    assert any(f"extra    order_summary {extra}" in d for d in diffs), diffs
    assert len(diffs) == 4, diffs
    assert "verify: 4 differences (1 missing rows, 1 extra rows, 1 version, 0 state field, 1 column, 0 fold" in out, out

    # Rebuild from the store alone repairs all of it, and equals what the live consumer wrote.
    rc, out, err = ctl(cl, "projections", "rebuild", "order_summary")
    assert rc == 0 and "rebuild: order_summary:" in out, (rc, out, err)
    assert err == "", err  # not a terminal: no progress output
    rc, out, err = ctl(cl, "verify")
    assert rc == 0 and "verify: 0 differences" in out, (rc, out, err)
    after = summary_rows(cl)
    assert after == before, "rebuilt rows differ from the live ones:\n%s\n---\n%s" % (before, after)
    # The live consumer carries on from the rebuilt bookkeeping.
    oid = oids[3]
    r = ship(o, oid, "SHIPPING_STATUS_IN_TRANSIT", "Lyon")
    eventually(lambda: cl.psql(f"SELECT version FROM order_summary WHERE order_id = '{oid}'") == r["version"],
               what="live projection after a rebuild")
    rc, out, err = ctl(cl, "verify")
    assert rc == 0, (rc, out, err)


def test_state_corruption(cl, o, oids):
    # A row whose es_state no longer matches the store (the columns still do): verify names the
    # differing state field; rebuilding only that projection fixes it.
    oid = oids[4]
    cl.psql("UPDATE order_summary SET es_state = es_state || '\\x2a0378797a'::bytea"  # field 5 (customer_id) = "xyz"
            f" WHERE order_id = '{oid}'")
    rc, out, err = ctl(cl, "verify", "order_summary")
    assert rc == 1 and f"DIFF state    order_summary {oid} customer_id: store \"cust-ctl\", row \"xyz\"" in out, (rc, out)
    rc, out, err = ctl(cl, "projections", "rebuild")
    assert rc == 0, (rc, out, err)
    rc, out, err = ctl(cl, "verify")
    assert rc == 0, (rc, out, err)


def test_schema_check(cl, o, oids):
    rc, out, err = ctl(cl, "schema", "check")
    assert rc == 0 and "<- this binary" in out and "schema check: ok" in out, (rc, out, err)
    assert "order/OrderPlaced orders.v1.OrderPlaced v1" in out and "same shape" in out, out
    # Another version of the schema, registered by some other build: listed, not this binary's.
    cl.psql("INSERT INTO es_schemas (hash, package, descriptor_set) VALUES"
            " ('00000000000000000000000000000000000000000000000000000000deadbeef', 'orders.v1', '\\x0a00')")
    rc, out, err = ctl(cl, "schema", "check")
    assert rc == 0 and "registered descriptor sets: 2" in out, (rc, out)
    line = [l for l in out.splitlines() if "deadbeef" in l]
    assert len(line) == 1 and "this binary" not in line[0], line


def test_dead_letter_poison_message(cl, o, oids):
    # An undecodable message on the topic for an existing order: every consumer dead-letters it
    # (with the stream from the Kafka key) and carries on; retry re-applies that stream from the
    # store (nothing missing) and resolves the letters.
    oid = oids[0]
    poison = b"\xff\xff not an envelope"
    subprocess.run(["kcat", "-P", "-b", cl.bootstrap, "-t", "orders.events", "-k", oid],
                   input=poison, check=True, timeout=30)
    eventually(lambda: cl.psql("SELECT count(*) FROM es_dead_letters WHERE retried_at IS NULL") == "2",
               what="both consumers dead-letter the poison message")
    rc, out, err = ctl(cl, "dead-letters", "list", "--json")
    letters = [json.loads(l) for l in out.splitlines()]
    assert rc == 0 and len(letters) == 2, (rc, out, err)
    assert {d["consumer"] for d in letters} == {CONSUMER, "payment-flow"}, letters
    assert all(d["stream_id"] == oid and d["retried_at"] is None and not d["parks_stream"] for d in letters), letters
    assert all("INVALID_ARGUMENT" in d["error"] and d["message_bytes"] == len(poison) for d in letters), letters
    rc, out, err = ctl(cl, "dead-letters", "list")
    assert rc == 0 and "2 open dead letters" in out and "OPEN" in out, out
    rc, out, err = ctl(cl, "dead-letters", "retry", "--all")
    assert rc == 0 and "all resolved" in out and out.count("0 events re-applied") == 2, (rc, out, err)
    rc, out, err = ctl(cl, "dead-letters", "list", "--json")
    assert rc == 0 and out.strip() == "", out
    rc, out, err = ctl(cl, "dead-letters", "list", "--all", "--json")
    assert len([l for l in out.splitlines() if json.loads(l)["retried_at"]]) == 2, out
    rc, out, err = ctl(cl, "dead-letters", "retry", str(letters[0]["id"]))
    assert rc == 0 and "already resolved" in out, (rc, out)
    rc, out, err = ctl(cl, "dead-letters", "retry", "999999")
    assert rc == 1 and "NOT_FOUND" in err, (rc, err)


def test_dead_letter_parked_stream(cl, o, oids):
    # The state the consumer leaves after a handler failed for good on an order's first event:
    # a dead letter, the stream parked behind it at version 0, no row. Later events of the stream
    # are dead-lettered too (not applied past the gap); retry applies them all from the store.
    oid = place(o, customer="cust-parked")
    wait_settled(cl, o, [oid])
    dl = cl.psql("INSERT INTO es_dead_letters (consumer, topic, kafka_partition, kafka_offset, stream_id, version,"
                 f" error) VALUES ('{CONSUMER}', 'orders.events', 0, 0, '{oid}', 1,"
                 " 'INTERNAL: after 3 attempts: crafted handler failure') RETURNING id").splitlines()[0]
    cl.psql(f"UPDATE es_consumer_streams SET version = 0, dead_letter_id = {dl}"
            f" WHERE consumer = '{CONSUMER}' AND stream_id = '{oid}'")
    cl.psql(f"DELETE FROM order_summary WHERE order_id = '{oid}'")
    r = ship(o, oid, "SHIPPING_STATUS_IN_TRANSIT", "Hamburg")  # the live consumer parks this one too
    eventually(lambda: cl.psql(f"SELECT count(*) FROM es_dead_letters WHERE stream_id = '{oid}'"
                               " AND retried_at IS NULL") == "2", what="the parked stream's next event dead-lettered")
    rc, out, err = ctl(cl, "verify", "--settle-ms", "0")
    assert rc == 1 and f"DIFF missing  order_summary {oid}" in out, (rc, out)
    rc, out, err = ctl(cl, "dead-letters", "list", "--json")
    letters = [json.loads(l) for l in out.splitlines()]
    assert [d["stream_id"] for d in letters] == [oid, oid], letters
    assert letters[0]["id"] == int(dl) and letters[0]["version"] == 1, letters
    assert letters[1]["version"] == int(r["version"]) and "parked" in letters[1]["error"], letters
    assert letters[1]["parks_stream"] and not letters[0]["parks_stream"], letters
    rc, out, err = ctl(cl, "dead-letters", "retry", dl)
    assert rc == 0, (rc, out, err)
    assert f"consumer {CONSUMER} stream {oid}: {r['version']} events re-applied, 2 dead letters resolved" in out, out
    assert cl.psql(f"SELECT version FROM order_summary WHERE order_id = '{oid}'") == r["version"]
    assert cl.psql(f"SELECT coalesce(dead_letter_id, 0) FROM es_consumer_streams WHERE consumer = '{CONSUMER}'"
                   f" AND stream_id = '{oid}'") == "0"
    rc, out, err = ctl(cl, "verify")
    assert rc == 0, (rc, out, err)
    # And the stream is live again: the next event goes straight to the row.
    r = ship(o, oid, "SHIPPING_STATUS_DELIVERED", "Front door")
    eventually(lambda: cl.psql(f"SELECT status FROM order_summary WHERE order_id = '{oid}'") == "ORDER_STATUS_DELIVERED",
               what="live projection after the retry")
    oids.append(oid)


def test_dead_letter_retry_still_failing(cl, o, oids):
    # A letter whose stream cannot be applied (an event type no binary knows) stays open and
    # parked; retry says so and exits 1.
    oid = str(uuid.uuid4())
    cl.psql("INSERT INTO es_events (event_id, stream_type, stream_id, version, event_type, schema_name,"
            f" schema_version, schema_hash, payload) VALUES ('{uuid.uuid4()}', 'order', '{oid}', 1, 'OrderTeleported',"
            " 'orders.v1.OrderTeleported', 1, 'x', '')")
    eventually(lambda: cl.psql(f"SELECT count(*) FROM es_dead_letters WHERE stream_id = '{oid}' AND consumer = '{CONSUMER}'"
                               " AND retried_at IS NULL") == "1", what="the projection dead-letters the unknown event")
    dl = cl.psql(f"SELECT id FROM es_dead_letters WHERE stream_id = '{oid}' AND consumer = '{CONSUMER}'")
    rc, out, err = ctl(cl, "dead-letters", "retry", dl)
    assert rc == 1 and "still failing, left open" in out and "OrderTeleported" in out, (rc, out, err)
    assert cl.psql(f"SELECT dead_letter_id FROM es_consumer_streams WHERE consumer = '{CONSUMER}'"
                   f" AND stream_id = '{oid}'") == dl, "retry must park the stream again"
    rc, out, err = ctl(cl, "verify", "--settle-ms", "0")
    assert rc == 1 and f"DIFF fold     order_summary {oid}: the stream does not fold" in out, (rc, out)
    rc, out, err = ctl(cl, "schema", "check")
    assert rc == 1 and "order/OrderTeleported" in out and "UNKNOWN to this binary" in out, (rc, out)
    # Once the bad event is gone (say, a fixed upcast), a full rebuild applies everything and so
    # settles the projection's open letters; the other consumer's bookkeeping is left alone.
    cl.psql(f"DELETE FROM es_events WHERE stream_id = '{oid}'")
    rc, out, err = ctl(cl, "projections", "rebuild")
    assert rc == 0 and "1 open dead letters resolved" in out, (rc, out, err)
    rc, out, err = ctl(cl, "dead-letters", "list", "--json")
    assert rc == 0 and out.strip() == "", out
    assert cl.psql(f"SELECT count(*) FROM es_consumer_streams WHERE consumer = '{CONSUMER}'"
                   " AND dead_letter_id IS NOT NULL") == "0"
    rc, out, err = ctl(cl, "verify")
    assert rc == 0, (rc, out, err)
    cl.psql(f"DELETE FROM es_consumer_streams WHERE stream_id = '{oid}'")


def read_pty(fd, proc, timeout=60):
    out = b""
    deadline = time.time() + timeout
    while time.time() < deadline:
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        elif proc.poll() is not None:
            break
    proc.wait(10)
    return out.decode(errors="replace")


def test_progress_on_terminal(cl, o, oids):
    # The line is drawn when the operation starts and when it ends, so even a short run shows it.
    for args, unit in ((["verify"], "streams"), (["projections", "rebuild"], "events")):
        master, slave = pty.openpty()
        env = dict(os.environ, ORDERD_PG=cl.pg)
        p = subprocess.Popen([ORDERCTL] + args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave, env=env)
        os.close(slave)
        text = read_pty(master, p)
        os.close(master)
        out = p.stdout.read().decode()
        assert p.returncode == 0, (args, p.returncode, out, text)
        assert f" {unit} (100%)" in text and "/s, ETA" in text and "\r" in text, (args, text)
    # And --no-progress silences it on a terminal too.
    master, slave = pty.openpty()
    p = subprocess.Popen([ORDERCTL, "--no-progress", "verify"], stdout=subprocess.PIPE, stderr=slave,
                         env=dict(os.environ, ORDERD_PG=cl.pg))
    os.close(slave)
    text = read_pty(master, p)
    os.close(master)
    assert p.returncode == 0 and "ETA" not in text, text


def main():
    global ORDERCTL
    ORDERCTL, orderd, mock = sys.argv[1:4]
    cl = Cluster(orderd, mock)
    runner = Runner()
    try:
        cl.start_infra()
        o = cl.start_orderd()
        oids = [place(o) for _ in range(6)]
        wait_settled(cl, o, oids)
        ship(o, oids[0], "SHIPPING_STATUS_IN_TRANSIT", "Leipzig")
        ship(o, oids[0], "SHIPPING_STATUS_DELIVERED", "Paris")
        st, r = o.request("POST", f"/v1/orders/{oids[5]}/cancel", {"reason": "changed my mind"})
        assert st == 200, (st, r)
        # The payment flow refunds the cancelled paid order: wait for that too, so that no event
        # is still on its way when the tests start (tail counts on a quiet store).
        eventually(lambda: o.request("GET", f"/v1/orders/{oids[5]}")[1].get("payment_status") == "PAYMENT_STATUS_REFUNDED",
                   timeout=30, what="the refund of the cancelled order")
        eventually(lambda: caught_up(cl), timeout=30, what="projection caught up")
        for name, fn in [("usage", test_usage), ("migrate_idempotent", test_migrate_idempotent),
                         ("history", test_history), ("tail", test_tail), ("verify_clean", test_verify_clean),
                         ("verify_detects_and_rebuild_repairs", test_verify_detects_and_rebuild_repairs),
                         ("state_corruption", test_state_corruption), ("schema_check", test_schema_check),
                         ("dead_letter_poison_message", test_dead_letter_poison_message),
                         ("dead_letter_parked_stream", test_dead_letter_parked_stream),
                         ("dead_letter_retry_still_failing", test_dead_letter_retry_still_failing),
                         ("progress_on_terminal", test_progress_on_terminal)]:
            runner.run("orderctl." + name, fn, cl, o, oids)
    except Exception as e:  # noqa: BLE001 - set-up failures count as one failure
        import traceback
        traceback.print_exc()
        runner.failed += 1
        print(f"FAIL set-up: {e}", flush=True)
    finally:
        cl.stop()
    return runner.finish()


if __name__ == "__main__":
    sys.exit(main())
