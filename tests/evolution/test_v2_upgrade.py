"""Day 2 for real: release 2 of the order schema (tests/evolution/v2/apply_v2.py: a new event and
command with its access rule, two read-model columns, an index) is applied to a copy of this source
tree, regenerated and built there, and started beside the running release 1 on the same database:

  1. release 1 (the build's own orderd) takes orders: paid, delivered, cancelled (and refunded);
  2. release 2 starts beside it (a rolling deploy); its new read-model version is built beside the
     serving table while the build is held (a lock in its staging schema, as
     test_shape_switch.py does): orders are placed through both releases and a note is added
     through release 2 meanwhile; then the build switches;
  3. both serve for a while after the switch (orders through both, notes over HTTP and gRPC, the
     access rule refused for another customer), then release 1 stops and release 2 takes orders
     alone;
  4. checked: orders from before show the new column with the value of their events; every order
     is read with its last version; the index exists; the migration steps are recorded; nothing is
     dead-lettered; /readyz, sampled on both instances throughout, never answered 200 while a
     first build ran nor 503 without a reason, and is ready at the end; `orderctl verify` (release
     2's) is clean; a restart of release 2 builds nothing.

Usage: /usr/bin/python3 test_v2_upgrade.py <orderd> <es-kafka-mock> <orderctl> <CMAKE_BUILD_TYPE> <ORDERD_SANITIZE>"""
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
sys.path.insert(0, os.path.join(HERE, "v2"))
from harness import GOOGLEAPIS, ROOT, Cluster, Runner, eventually, readyz  # noqa: E402
from test_orders import order_body  # noqa: E402
import apply_v2  # noqa: E402

TOKENS = {"admin": ("admin", "root"), "alice": ("customer", "cust-alice"), "bob": ("customer", "cust-bob")}
N_PAID, N_DELIVERED, N_CANCELLED = 6, 3, 3


def bearer(name):
    return {"Authorization": f"Bearer tok-{name}-secret"}


# ---- release 2, built from a copy of this tree -----------------------------------------------

def copy_tree(dst):
    """The files `git ls-files` lists, as they are in the working tree (committed or not; a listed
    file deleted in the working tree is left out): the code under test, without build folders."""
    out = subprocess.run(["git", "-C", ROOT, "ls-files", "-z"], check=True, capture_output=True).stdout
    n = 0
    for rel in out.decode().split("\0"):
        src = os.path.join(ROOT, rel)
        if not rel or not os.path.isfile(src):
            continue
        os.makedirs(os.path.join(dst, os.path.dirname(rel)), exist_ok=True)
        shutil.copy2(src, os.path.join(dst, rel))
        n += 1
    return n


def run_step(what, args, log, **kw):
    t = time.monotonic()
    with open(log, "a") as f:
        f.write(f"\n==== {what}: {' '.join(args)}\n")
        f.flush()
        r = subprocess.run(args, stdout=f, stderr=subprocess.STDOUT, **kw)
    if r.returncode != 0:
        with open(log) as f:
            tail = f.read()[-6000:]
        raise RuntimeError(f"{what} failed ({r.returncode}); the end of {log}:\n{tail}")
    return time.monotonic() - t


def build_v2(work, build_type, sanitize):
    """Copies the tree, applies release 2, regenerates and builds orderd and orderctl (-j2)."""
    src, bld, log = os.path.join(work, "src"), os.path.join(work, "build"), os.path.join(work, "build.log")
    t = time.monotonic()
    n = copy_tree(src)
    for rel in apply_v2.apply(src):
        print(f"release 2: edited {rel}", flush=True)
    env = dict(os.environ, GOOGLEAPIS_DIR=GOOGLEAPIS)
    times = {"copy": time.monotonic() - t}
    times["configure"] = run_step("configure", ["cmake", "-S", src, "-B", bld, f"-DCMAKE_BUILD_TYPE={build_type}",
                                                f"-DORDERD_SANITIZE={sanitize}"], log, env=env)
    times["generate"] = run_step("generate", ["cmake", "--build", bld, "-j2", "--target", "generate"], log, env=env)
    times["build"] = run_step("build", ["cmake", "--build", bld, "-j2", "--target", "orderd", "orderctl"], log,
                              env=env)
    print(f"release 2 built from {n} files: " + ", ".join(f"{k} {v:.0f} s" for k, v in times.items()), flush=True)
    # The generated steps are what the plugin made of the diff against the released baseline.
    with open(os.path.join(src, "generated", "sql", "orders_v1_migrations.sql")) as f:
        steps = f.read()
    assert "ADD COLUMN IF NOT EXISTS payment_id" in steps and "ADD COLUMN IF NOT EXISTS note" in steps, steps
    return src, os.path.join(bld, "app", "orderd"), os.path.join(bld, "app", "orderctl")


def grpc_client(src, stubs):
    """A call function for release 2's AddOrderNote over gRPC (stubs compiled from the copy's proto)."""
    protos = [f"{d}/{f}" for d in ("es", "orders/v1") for f in sorted(os.listdir(f"{src}/proto/{d}"))
              if f.endswith(".proto")]
    os.makedirs(stubs, exist_ok=True)
    subprocess.run(["protoc", f"-I{src}/proto", f"-I{GOOGLEAPIS}", "-I/usr/include", f"--python_out={stubs}",
                    "google/api/http.proto", "google/api/annotations.proto"] + protos, check=True)
    sys.path.insert(0, stubs)
    import grpc
    from orders.v1 import commands_pb2

    def call(port, who, order_id, note):
        stub = grpc.insecure_channel(f"127.0.0.1:{port}").unary_unary(
            "/orders.v1.OrderService/AddOrderNote", request_serializer=commands_pb2.AddOrderNoteRequest.SerializeToString,
            response_deserializer=commands_pb2.CommandResult.FromString)
        try:
            r = stub(commands_pb2.AddOrderNoteRequest(order_id=order_id, note=note), timeout=20,
                     metadata=[("authorization", bearer(who)["Authorization"])])
            return "OK", r
        except grpc.RpcError as e:
            return e.code().name, e.details()
    return call


# ---- the running system ----------------------------------------------------------------------

def token_file(path):
    with open(path, "w") as f:
        for name, (role, principal) in TOKENS.items():
            f.write(f"{hashlib.sha256(f'tok-{name}-secret'.encode()).hexdigest()} {role} {principal}\n")


def start(cluster, binary, tokens, *extra):
    """Starts binary as another orderd of the cluster; returns once it listens (/livez), so that
    /readyz is sampled from the first moment."""
    cluster.orderd_bin = binary
    return cluster.start_orderd("--auth", "required", "--auth-tokens", tokens, "--payment-delay-ms", "0", *extra,
                                ready=False)


class ReadySampler(threading.Thread):
    """Samples an instance's /readyz until stopped; keeps every answer that breaks the rules: 200
    while a first build runs (projections false), 503 without a reason, a body that is not the
    documented one."""

    def __init__(self, o, name):
        super().__init__(daemon=True)
        self.o, self.name = o, name
        self.stop = threading.Event()
        self.samples, self.bad, self.last = 0, [], None

    def run(self):
        while not self.stop.is_set() and self.o.proc.poll() is None:
            status, body = readyz(self.o)
            if status is None:
                continue  # stopping
            self.samples += 1
            self.last = (status, body)
            if not isinstance(body, dict) or "projections" not in body:
                self.bad.append((status, body))
            elif status == 200 and (body["projections"] is not True or body.get("status") != "ok"):
                self.bad.append((status, body))
            elif status == 503 and not body.get("reason") and all(body.get(k) for k in
                                                                   ("postgres", "migrations", "kafka")):
                self.bad.append((status, body))  # unready with every component up and no reason
            self.stop.wait(0.05)

    def check(self):
        self.stop.set()
        self.join(timeout=30)
        assert self.samples > 0, f"{self.name}: /readyz never answered"
        assert not self.bad, f"{self.name}: /readyz answers that break the rules: {self.bad[:5]}"


def place(o, who="alice"):
    status, r = o.request("POST", "/v1/orders", order_body(customer=TOKENS[who][1]), headers=bearer(who))
    assert status == 200, (status, r)
    return r["order_id"]


def summary_sql(cluster, oid, cols):
    return cluster.psql(f"SELECT {cols} FROM order_summary WHERE order_id = '{oid}'")


def last_version(cluster, oid):
    return cluster.psql(f"SELECT max(version) FROM es_events WHERE stream_id = '{oid}'")


def caught_up(cluster):
    """Every order's row holds its stream's last version."""
    return cluster.psql("SELECT count(*) FROM (SELECT stream_id, max(version) AS v FROM es_events "
                        "WHERE stream_type = 'order' GROUP BY 1) e LEFT JOIN order_summary o "
                        "ON o.order_id::text = e.stream_id WHERE o.version IS DISTINCT FROM e.v") == "0"


def shape_state(o):
    status, text = o.request("GET", "/metrics", headers=bearer("admin"))
    for line in (text if status == 200 else "").splitlines():
        if line.startswith("es_projection_shape_state{") and line.endswith(" 1"):
            return line.split('state="')[1].split('"')[0]
    return None


def note_http(o, who, oid, note):
    return o.request("POST", f"/v1/orders/{oid}/notes", {"note": note}, headers=bearer(who))


def release_1(cluster, v1):
    """Orders of release 1: paid, delivered, cancelled after payment (refunded)."""
    ids = [place(v1) for _ in range(N_PAID + N_DELIVERED + N_CANCELLED)]
    eventually(lambda: cluster.psql("SELECT count(*) FROM order_summary WHERE payment_status = 'PAYMENT_STATUS_PAID'")
               == str(len(ids)), timeout=120, what="release 1's orders paid")
    delivered, cancelled = ids[:N_DELIVERED], ids[N_DELIVERED:N_DELIVERED + N_CANCELLED]
    for oid in delivered:
        status, r = v1.request("PUT", f"/v1/orders/{oid}/shipping-status", {
            "status": "SHIPPING_STATUS_DELIVERED", "carrier": "DHL", "tracking_number": "T-1"}, headers=bearer("admin"))
        assert status == 200, (status, r)
    for oid in cancelled:
        status, r = v1.request("POST", f"/v1/orders/{oid}/cancel", {"reason": "changed my mind"}, headers=bearer("alice"))
        assert status == 200, (status, r)
    eventually(lambda: cluster.psql("SELECT count(*) FROM order_summary WHERE status = 'ORDER_STATUS_DELIVERED'")
               == str(N_DELIVERED), timeout=60, what="release 1's deliveries projected")
    eventually(lambda: cluster.psql("SELECT count(*) FROM order_summary WHERE status = 'ORDER_STATUS_CANCELLED' AND "
                                    "payment_status = 'PAYMENT_STATUS_REFUNDED'") == str(N_CANCELLED),
               timeout=120, what="release 1's cancelled orders refunded")
    eventually(lambda: caught_up(cluster), timeout=60, what="release 1's read model caught up")
    return ids, delivered, cancelled


def hold_build(cluster):
    """Holds release 2's build at its start: the build first drops what a cut-short build left in its
    staging schema, and a table there, locked by an open transaction, keeps it waiting."""
    cluster.psql("CREATE SCHEMA es_next_order_summary; CREATE TABLE es_next_order_summary.hold (x int)")
    hold = subprocess.Popen(["psql", cluster.pg, "-qAtX", "-v", "ON_ERROR_STOP=1"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    hold.stdin.write("BEGIN; LOCK TABLE es_next_order_summary.hold IN ACCESS SHARE MODE; SELECT 'held';\n")
    hold.stdin.flush()
    assert hold.stdout.readline().strip() == "held"
    return hold


def release_hold(hold):
    if hold.poll() is None:
        hold.stdin.write("COMMIT;\n")
        hold.stdin.close()
        hold.wait(timeout=30)


def test_upgrade(cluster, v2_bin, v2_ctl, grpc_call):
    tokens = os.path.join(cluster.dir, "tokens")
    token_file(tokens)
    v1_bin = cluster.orderd_bin
    v1 = start(cluster, v1_bin, tokens)
    s1 = ReadySampler(v1, "release 1")
    s1.start()
    eventually(lambda: readyz(v1)[0] == 200, timeout=60, what="release 1 ready")
    before, delivered, cancelled = release_1(cluster, v1)
    paid_before = [o for o in before if o not in delivered + cancelled]
    shape_v1 = cluster.psql("SELECT shape_hash || ' ' || built_at FROM es_projection_shapes WHERE name = 'order_summary'")

    # Release 2 beside release 1, its build held in the middle.
    hold = hold_build(cluster)
    try:
        v2 = start(cluster, v2_bin, tokens)
        s2 = ReadySampler(v2, "release 2")
        s2.start()
        eventually(lambda: cluster.psql("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND "
                                        "query LIKE 'DROP SCHEMA IF EXISTS es_next_order_summary%'") != "0",
                   timeout=60, what="release 2's build waiting in the middle")
        assert shape_state(v2) == "building", shape_state(v2)
        # Both take orders while the old version serves; release 2 takes its new command.
        during = [place(v1), place(v2), place(v1), place(v2)]
        status, r = note_http(v2, "alice", paid_before[0], "during the build")
        assert status == 200, (status, r)
        assert cluster.psql("SELECT count(*) FROM information_schema.columns WHERE table_schema = current_schema() "
                            "AND table_name = 'order_summary' AND column_name IN ('payment_id', 'note')") == "0", \
            "the serving table got a new column before the switch"
        assert readyz(v2)[0] == 200 and readyz(v1)[0] == 200, (readyz(v1), readyz(v2))
    finally:
        release_hold(hold)
    eventually(lambda: shape_state(v2) == "current", timeout=120, what="release 2's switch")

    # Both releases serve after the switch for a while.
    after_switch = [place(v1), place(v2), place(v1), place(v2)]
    # A note on an order placed through release 1 once its payment flow is done: release 1 cannot
    # load a stream holding an event only release 2 knows (README "Changing the schema").
    eventually(lambda: cluster.psql(f"SELECT count(*) FROM es_events WHERE stream_id = '{after_switch[0]}' "
                                    "AND event_type = 'OrderPaid'") == "1",
               timeout=60, what="the order placed through release 1 paid")
    status, r = note_http(v2, "alice", after_switch[0], "placed through release 1")
    assert status == 200, (status, r)
    # Release 1 cannot load that order now: its commands there are UNAVAILABLE (retry, reaching
    # release 2), not an internal error, and change nothing.
    noted_at = last_version(cluster, after_switch[0])
    status, r = v1.request("POST", f"/v1/orders/{after_switch[0]}/cancel", {"reason": "through release 1"},
                           headers=bearer("alice"))
    assert status == 503 and r["code"] == 14 and "newer release" in r["message"], (status, r)
    assert last_version(cluster, after_switch[0]) == noted_at, (noted_at, last_version(cluster, after_switch[0]))
    code, r = grpc_call(v2.grpc_port, "alice", paid_before[1], "over gRPC")
    assert code == "OK" and r.version >= 4, (code, r)
    # The access rule: another customer may not add a note to alice's order, on either transport;
    # the guard refuses a cancelled order.
    status, r = note_http(v2, "bob", paid_before[2], "not mine")
    assert status == 403 and r["code"] == 7, (status, r)
    code, msg = grpc_call(v2.grpc_port, "bob", paid_before[2], "not mine")
    assert code == "PERMISSION_DENIED", (code, msg)
    status, r = note_http(v2, "alice", cancelled[0], "too late")
    assert status == 400 and r["code"] == 9 and "CANCELLED" in r["message"], (status, r)
    status, r = note_http(v1, "alice", paid_before[2], "release 1 has no such route")
    assert status == 404, (status, r)
    # Release 1 writes nothing to the table release 2 switched (its projector waits: the table's shape
    # is not its own; the note before the switch: an event type it does not know), so its share of
    # the partitions waits until it stops.
    # Release 1 leaves; release 2 alone.
    v1.stop()
    s1.check()
    with open(v1.log) as f:
        log1 = f.read()
    assert "dead letter" not in log1, [line for line in log1.splitlines() if "dead letter" in line][:3]
    alone = [place(v2) for _ in range(3)]
    status, r = note_http(v2, "admin", alone[0], "admin may")
    assert status == 200, (status, r)
    everyone = before + during + after_switch + alone
    eventually(lambda: cluster.psql("SELECT count(*) FROM order_summary WHERE payment_status IN "
                                    "('PAYMENT_STATUS_PAID', 'PAYMENT_STATUS_REFUNDED')") == str(len(everyone)),
               timeout=120, what="every order paid (or refunded) in the read model")
    eventually(lambda: caught_up(cluster), timeout=120, what="the read model caught up")

    # Orders from before show the new column with the value of their events.
    for oid in before:
        status, r = v2.request("GET", f"/v1/orders/{oid}", headers=bearer("alice"))
        assert status == 200, (status, r)
        status, evs = v2.request("GET", f"/v1/orders/{oid}/events", headers=bearer("alice"))
        initiated = [e["data"]["payment_id"] for e in evs["events"] if e["event_type"] == "OrderPaymentInitiated"]
        assert len(initiated) == 1 and r.get("payment_id") == initiated[0], (oid, r, initiated)
        assert summary_sql(cluster, oid, "payment_id") == initiated[0], (oid, summary_sql(cluster, oid, "payment_id"))
        assert r["version"] == last_version(cluster, oid), (r, last_version(cluster, oid))
    notes = {paid_before[0]: "during the build", paid_before[1]: "over gRPC",
             after_switch[0]: "placed through release 1", alone[0]: "admin may"}
    for oid, note in notes.items():
        status, r = v2.request("GET", f"/v1/orders/{oid}", headers=bearer("alice"))
        assert status == 200 and r.get("note") == note, (oid, status, r)
    for oid in during + after_switch + alone:
        status, r = v2.request("GET", f"/v1/orders/{oid}", headers=bearer("alice"))
        assert status == 200 and r.get("payment_id") and r["version"] == last_version(cluster, oid), (oid, r)
    nulls = cluster.psql("SELECT count(*) FROM order_summary WHERE payment_id IS NULL OR note IS NULL")
    assert nulls == "0", f"{nulls} rows with a new column NULL"
    # The new index, under its generated name, and the recorded migration steps.
    idx = cluster.psql("SELECT indexdef FROM pg_indexes WHERE tablename = 'order_summary' "
                       "AND schemaname = current_schema() AND indexname = 'order_summary_idx5'")
    assert "(payment_id)" in idx, idx
    steps = cluster.psql("SELECT string_agg(name, ' ' ORDER BY step) FROM es_migration_steps WHERE package = 'orders.v1'")
    assert "payment_id" in steps and "note" in steps and "idx5" in steps, steps
    dead = cluster.psql("SELECT count(*) FROM es_dead_letters")
    assert dead == "0", cluster.psql("SELECT consumer || ' ' || error FROM es_dead_letters LIMIT 5")
    eventually(lambda: readyz(v2)[0] == 200, timeout=30, what="release 2 ready at the end")
    status, body = readyz(v2)
    assert body["projections"] is True and body["dead_letters"] == 0 and body["parked_streams"] == 0, body
    s2.check()
    env = dict(os.environ, ORDERD_PG=cluster.pg)
    p = subprocess.run([v2_ctl, "verify"], capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0 and "0 differences" in p.stdout, (p.returncode, p.stdout[-2000:], p.stderr[-2000:])
    shape_v2 = cluster.psql("SELECT shape_hash || ' ' || built_at FROM es_projection_shapes WHERE name = 'order_summary'")
    assert shape_v2.split()[0] != shape_v1.split()[0], (shape_v1, shape_v2)
    v2.stop()

    # A restart of release 2 builds nothing.
    v2 = start(cluster, v2_bin, tokens)
    eventually(lambda: shape_state(v2) == "current", timeout=60, what="the shape check after a plain restart")
    eventually(lambda: readyz(v2)[0] == 200, timeout=60, what="release 2 ready after a plain restart")
    again = cluster.psql("SELECT shape_hash || ' ' || built_at FROM es_projection_shapes WHERE name = 'order_summary'")
    assert again == shape_v2, (shape_v2, again)
    with open(v2.log) as f:
        assert "building its new version" not in f.read()
    v2.stop()


def main():
    orderd, mock, orderctl, build_type, sanitize = sys.argv[1:6]
    runner = Runner()
    # V2_BUILT=<a folder kept by KEEP_E2E_DIR=1> reuses its release 2 build (while changing this test).
    reuse = os.environ.get("V2_BUILT")
    work = reuse or tempfile.mkdtemp(prefix="orderd-v2-")
    cluster = None
    try:
        t = time.monotonic()
        if reuse:
            src, v2_bin, v2_ctl = (os.path.join(work, "src"), os.path.join(work, "build", "app", "orderd"),
                                   os.path.join(work, "build", "app", "orderctl"))
        else:
            src, v2_bin, v2_ctl = build_v2(work, build_type, sanitize or "OFF")
        grpc_call = grpc_client(src, os.path.join(work, "stubs"))
        cluster = Cluster(orderd, mock)
        cluster.start_infra()
        runner.run("v2 upgrade: release 2's schema beside a running release 1 on its database, then alone",
                   test_upgrade, cluster, v2_bin, v2_ctl, grpc_call)
        print(f"total {time.monotonic() - t:.0f} s", flush=True)
    except Exception as e:  # noqa: BLE001 - a failed set-up (the build) is a failure, reported like a test's
        import traceback
        traceback.print_exc()
        runner.failed += 1
        print(f"FAIL setup: {e}", flush=True)
    finally:
        if cluster:
            cluster.stop()
        if os.environ.get("KEEP_E2E_DIR") != "1" and not reuse:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept {work}", flush=True)
    return runner.finish()


if __name__ == "__main__":
    sys.exit(main())
