"""Day 2 without downtime: a database with orders meets a binary whose read model has a column
more. The new version of order_summary is built beside the serving table and switched to
(es/projection_shape.h). The build is held at its start (a lock the test takes in its staging
schema), and meanwhile, and until after the switch, the test
keeps reading orders over HTTP and as SQL rows: every read is a complete row of the old shape (no
payment_method column) or of the new one with the value from the events, never the new column
NULL; /readyz stays ready (the old version serves); commands are taken; orderctl projections
status and /metrics show the build. After the switch: the orders placed during the build are
read, nothing is dead-lettered, orderctl verify is clean, the old version is dropped after the
grace (3 s here), and a restart builds nothing. Last, a first build (the table emptied while the
store holds the orders) makes /readyz 503 with its reason until it switched.
Usage: /usr/bin/python3 test_shape_switch.py <orderd> <es-kafka-mock> <orderctl>"""
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "e2e"))
from harness import Cluster, Runner, eventually, readyz  # noqa: E402
from test_orders import order_body  # noqa: E402

N_BEFORE = 30
GRACE_S = 3


def metrics(o):
    with urllib.request.urlopen(f"{o.base}/metrics", timeout=5) as r:
        return r.read().decode()


def place(o, customer):
    status, r = o.request("POST", "/v1/orders", order_body(customer=customer))
    assert status == 200, (status, r)
    return r["order_id"]


def sql_rows(cluster, ids):
    """The serving table's rows of ids, each as a JSON object of its columns (es_state left out)."""
    lst = ",".join(f"'{i}'" for i in ids)
    out = cluster.psql(f"SELECT to_jsonb(o) - 'es_state' FROM order_summary o WHERE order_id IN ({lst})")
    return [json.loads(line) for line in out.splitlines() if line]


def shape_state(o):
    for line in metrics(o).splitlines():
        if line.startswith("es_projection_shape_state{") and line.endswith(" 1"):
            return line.split('state="')[1].split('"')[0]
    return None


class Reader(threading.Thread):
    """Reads the day-1 orders over HTTP and SQL, and /readyz, until told to stop; keeps every
    violation and counts the reads of each shape."""

    def __init__(self, cluster, o, ids):
        super().__init__(daemon=True)
        self.cluster, self.o, self.ids = cluster, o, ids
        self.stop = threading.Event()
        self.bad = []
        self.old_rows = self.new_rows = self.http_reads = self.ready = 0

    def run(self):
        while not self.stop.is_set():
            try:
                self.once()
            except Exception as e:  # noqa: BLE001 (kept as a violation, reported by the test)
                self.bad.append(f"read failed: {e!r}")

    def once(self):
        status, body = readyz(self.o)
        if status != 200 or not body.get("projections"):
            self.bad.append(f"/readyz {status} {body}")
        else:
            self.ready += 1
        rows = sql_rows(self.cluster, self.ids)
        if len(rows) != len(self.ids):
            self.bad.append(f"{len(rows)} rows for {len(self.ids)} orders")
        for row in rows:
            if row.get("customer_id") != "day1" or not row.get("status") or row.get("version") is None:
                self.bad.append(f"incomplete row {row}")
            elif "payment_method" not in row:
                self.old_rows += 1
            elif row["payment_method"] != "card":
                self.bad.append(f"new shape without the backfilled value: {row}")
            else:
                self.new_rows += 1
        for oid in self.ids[:5]:
            status, r = self.o.request("GET", f"/v1/orders/{oid}")
            if status != 200 or r.get("payment_method") != "card" or r.get("customer_id") != "day1":
                self.bad.append(f"GET {oid}: {status} {r}")
            self.http_reads += 1


def previous_release(cluster):
    """The database as the previous release left it: the read model without a column this release
    has, no shape recorded, migrations recorded under the previous texts' hashes."""
    cluster.psql("ALTER TABLE order_summary DROP COLUMN payment_method; DROP TABLE es_projection_shapes; "
                 "UPDATE es_migrations SET hash = 'previous-release-' || name")


def test_switch(cluster, orderctl):
    env = dict(os.environ, ORDERD_PG=cluster.pg)
    args = ("--payment-delay-ms", "0", "--projection-old-grace-s", str(GRACE_S))
    o = cluster.start_orderd(*args)
    before = [place(o, "day1") for _ in range(N_BEFORE)]
    eventually(lambda: cluster.psql("SELECT count(*) FROM order_summary WHERE customer_id = 'day1' "
                                    "AND payment_status = 'PAYMENT_STATUS_PAID'") == str(N_BEFORE),
               timeout=120, what="day-1 orders projected and paid")
    o.stop()
    previous_release(cluster)
    # An operator's orderctl migrate keeps the projections' migration for orderd's switch.
    p = subprocess.run([orderctl, "migrate"], capture_output=True, text=True, env=env, timeout=60)
    assert p.returncode == 0 and "held back" in p.stdout, (p.stdout, p.stderr)
    assert cluster.psql("SELECT count(*) FROM information_schema.columns WHERE table_name = 'order_summary' "
                        "AND column_name = 'payment_method'") == "0", "orderctl migrate added the column in place"

    # The build starts by dropping what a cut-short build left in its staging schema: a table
    # there, held by an open transaction, keeps the build waiting for as long as the test wants.
    cluster.psql("CREATE SCHEMA es_next_order_summary; CREATE TABLE es_next_order_summary.hold (x int)")
    hold = subprocess.Popen(["psql", cluster.pg, "-qAtX", "-v", "ON_ERROR_STOP=1"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    hold.stdin.write("BEGIN; LOCK TABLE es_next_order_summary.hold IN ACCESS SHARE MODE; SELECT 'held';\n")
    hold.stdin.flush()
    assert hold.stdout.readline().strip() == "held"
    try:
        o = cluster.start_orderd(*args)
        eventually(lambda: cluster.psql("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                        "AND query LIKE 'DROP SCHEMA IF EXISTS es_next_order_summary%'") != "0",
                   timeout=60, what="the build waiting in the middle")
        reader = Reader(cluster, o, before)
        reader.start()
        # While it builds: the old version serves, the build shows, commands are taken.
        assert shape_state(o) == "building", shape_state(o)
        assert 'es_projection_rebuilding{projection="order_summary"} 1' in metrics(o)
        p = subprocess.run([orderctl, "projections", "status"], capture_output=True, text=True, env=env, timeout=60)
        assert p.returncode == 0 and "state building" in p.stdout, (p.stdout, p.stderr)
        assert cluster.psql("SELECT count(*) FROM information_schema.columns WHERE table_schema = 'public' "
                            "AND table_name = 'order_summary' AND column_name = 'payment_method'") == "0", \
            "the serving table got the new column before the switch"
        t0 = time.monotonic()
        during = [place(o, "day2") for _ in range(10)]
        assert time.monotonic() - t0 < 20, "commands waited for the build"
        eventually(lambda: reader.old_rows >= 3 * N_BEFORE, timeout=60, what="reads of the old version")
    finally:
        hold.stdin.write("COMMIT;\n")
        hold.stdin.close()
        hold.wait(timeout=30)
    eventually(lambda: shape_state(o) == "current", timeout=120, what="the switch")
    new_rows = reader.new_rows
    eventually(lambda: reader.new_rows >= new_rows + 3 * N_BEFORE, timeout=60, what="reads of the new version")
    reader.stop.set()
    reader.join(timeout=60)
    assert not reader.bad, reader.bad[:10]
    assert reader.old_rows and reader.new_rows and reader.ready, (reader.old_rows, reader.new_rows, reader.ready)

    # After the switch: the new shape everywhere, backfilled; the day-2 orders read.
    nulls = cluster.psql("SELECT count(*) FROM order_summary WHERE payment_method IS NULL")
    assert nulls == "0", f"{nulls} rows without the new column's value"
    after = [place(o, "day3") for _ in range(3)]
    for oid in during + after:
        eventually(lambda: o.request("GET", f"/v1/orders/{oid}")[0] == 200, timeout=60, what=f"order {oid} read")
        status, r = o.request("GET", f"/v1/orders/{oid}")
        assert r["payment_method"] == "card", r
    eventually(lambda: cluster.psql("SELECT count(*) FROM order_summary WHERE payment_status = 'PAYMENT_STATUS_PAID'")
               == str(N_BEFORE + len(during) + len(after)), timeout=120, what="every order paid and projected")
    assert cluster.psql("SELECT count(*) FROM es_dead_letters") == "0", "dead letters after the switch"
    assert cluster.psql("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'es\\_next\\_%'") == "0"
    # The serving table is the generated one: its key and the four list indexes, each once.
    idx = cluster.psql("SELECT string_agg(indexname, ' ' ORDER BY indexname) FROM pg_indexes "
                       "WHERE tablename = 'order_summary' AND schemaname = current_schema()")
    assert idx == "order_summary_idx1 order_summary_idx2 order_summary_idx3 order_summary_idx4 order_summary_pkey", idx
    shape = cluster.psql("SELECT shape_hash FROM es_projection_shapes WHERE name = 'order_summary'")
    p = subprocess.run([orderctl, "projections", "status"], capture_output=True, text=True, env=env, timeout=60)
    assert p.returncode == 0 and "state current" in p.stdout and f"shape {shape[:12]}" in p.stdout, p.stdout
    p = subprocess.run([orderctl, "verify"], capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0 and "0 differences" in p.stdout, (p.returncode, p.stdout[-2000:], p.stderr[-2000:])
    # The old version goes after its grace.
    eventually(lambda: cluster.psql("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'es\\_old\\_%'") == "0",
               timeout=GRACE_S + 30, what="the old version dropped after the grace")
    o.stop()

    # A restart at the same shape builds nothing, and the held-back migration is recorded.
    o = cluster.start_orderd(*args)
    eventually(lambda: shape_state(o) == "current", timeout=60, what="the shape check after a plain restart")
    assert cluster.psql("SELECT shape_hash FROM es_projection_shapes WHERE name = 'order_summary'") == shape
    assert cluster.psql("SELECT count(*) FROM es_migrations WHERE name = '0100_orders_v1' "
                        "AND hash NOT LIKE 'previous-release-%'") == "1"
    assert "building its new version" not in open(o.log).read()
    o.stop()


def test_first_build(cluster):
    """A table with no rows while the store holds orders: its first build makes orderd unready,
    with the reason, until the switch."""
    total = cluster.psql("SELECT count(DISTINCT stream_id) FROM es_events WHERE stream_type = 'order'")
    cluster.psql("TRUNCATE order_summary; DELETE FROM es_projection_shapes; "
                 "CREATE SCHEMA es_next_order_summary; CREATE TABLE es_next_order_summary.hold (x int)")
    hold = subprocess.Popen(["psql", cluster.pg, "-qAtX", "-v", "ON_ERROR_STOP=1"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    hold.stdin.write("BEGIN; LOCK TABLE es_next_order_summary.hold IN ACCESS SHARE MODE; SELECT 'held';\n")
    hold.stdin.flush()
    assert hold.stdout.readline().strip() == "held"
    try:
        o = cluster.start_orderd("--payment-delay-ms", "0", ready=False)
        eventually(lambda: cluster.psql("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                        "AND query LIKE 'DROP SCHEMA IF EXISTS es_next_order_summary%'") != "0",
                   timeout=60, what="the first build waiting")
        status, body = readyz(o)
        assert status == 503 and body["projections"] is False and "first time" in body.get("reason", ""), \
            (status, body)
    finally:
        hold.stdin.write("COMMIT;\n")
        hold.stdin.close()
        hold.wait(timeout=30)
    eventually(lambda: readyz(o)[0] == 200, timeout=120, what="ready after the first build")
    assert cluster.psql("SELECT count(*) FROM order_summary") == total
    assert cluster.psql("SELECT count(*) FROM order_summary WHERE payment_method IS NULL") == "0"
    o.stop()


def main():
    orderd, mock, orderctl = sys.argv[1], sys.argv[2], sys.argv[3]
    runner = Runner()
    cluster = Cluster(orderd, mock)
    try:
        cluster.start_infra()
        runner.run("shape switch: a new read-model version built beside the serving one, reads never see it half "
                   "built", test_switch, cluster, orderctl)
        runner.run("first build: a table with no rows is built from the store, unready meanwhile", test_first_build,
                   cluster)
    finally:
        cluster.stop()
    return runner.finish()


if __name__ == "__main__":
    sys.exit(main())
