"""Shared machinery of the fault tests: a cluster whose PostgreSQL sits on a
port outside pg.sh's scan range (so a restart gets its port back), orderd instances that can be
SIGKILLed and restarted on the same ports, client threads that record every acknowledged command,
and the checks every fault test ends with: the store holds every acknowledged command's events
exactly once, streams have no gap, projections converge, the reconciliation check is clean.
Run under /usr/bin/python3 (Debian's grpc and protobuf)."""
import http.client
import json
import os
import random
import shutil
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
from harness import ROOT, Cluster, Orderd, Runner, eventually, free_port, python_stubs  # noqa: E402,F401

ADDRESS = {"name": "Ada Lovelace", "line1": "12 St James's Sq", "city": "London", "postal_code": "SW1Y 4JH",
           "country_code": "GB"}
PROJECTION = "projection.order_summary"
PARTITIONS = 6  # scripts/kafka-mock.sh creates orders.events with 6 partitions


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, flush=True)


# Under ASan/UBSan (ORDERD_SANITIZED=1, set by tests/faults/CMakeLists.txt) everything runs
# several times slower: a wall-time bound is then reported, not enforced.
SANITIZED = os.environ.get("ORDERD_SANITIZED") == "1"


def within(secs, limit, what):
    """Asserts secs <= limit (a wall-time bound), except under sanitizers where it only logs."""
    if secs <= limit:
        return
    if SANITIZED:
        log(f"{what}: {secs:.2f} s > {limit} s (not enforced under sanitizers)")
        return
    raise AssertionError(f"{what}: {secs:.2f} s > {limit} s")


def quiet_port():
    """A free TCP port below the ephemeral range and away from pg.sh's scan (55432..), so that a
    stopped cluster's port is not taken by another agent's cluster or an outgoing connection."""
    for _ in range(200):
        p = random.randint(20000, 32000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", p))
                return p
            except OSError:
                continue
    raise RuntimeError("no free port")


def order_body(customer, **extra):
    body = {"customer_id": customer, "vendor_id": "vend-f", "payment_method": "card",
            "items": [{"product_id": "sku-1", "quantity": 2, "unit_price": {"currency_code": "EUR", "amount_minor": "1250"}}],
            "shipping_address": ADDRESS}
    body.update(extra)
    return body


class Target:
    """Where clients send requests; `base` changes when orderd restarts on other ports."""

    def __init__(self, host, port):
        self.host, self.port = host, port


def call(target, method, path, body=None, headers=None, timeout=10.0):
    """One HTTP request on a fresh connection. Returns (status, parsed body or text, seconds).
    Raises OSError (incl. socket.timeout) when there is no answer."""
    t0 = time.monotonic()
    conn = http.client.HTTPConnection(target.host, target.port, timeout=timeout)
    try:
        data = json.dumps(body).encode() if body is not None else None
        h = {"Content-Type": "application/json"}
        h.update(headers or {})
        conn.request(method, path, body=data, headers=h)
        r = conn.getresponse()
        text = r.read().decode(errors="replace")
        try:
            parsed = json.loads(text) if text.strip().startswith(("{", "[")) else text
        except ValueError:
            parsed = text
        return r.status, parsed, time.monotonic() - t0
    except http.client.HTTPException as e:  # e.g. RemoteDisconnected: no answer
        raise ConnectionError(str(e)) from e
    finally:
        conn.close()


class FaultEnv:
    """PostgreSQL (fixed quiet port) + mock Kafka + orderd instances, in one temporary folder."""

    def __init__(self, orderd_bin, kafka_mock, name):
        self.orderd_bin, self.kafka_mock = orderd_bin, kafka_mock
        self.dir = tempfile.mkdtemp(prefix=f"orderd-faults-{name}-")
        os.chmod(self.dir, 0o755)
        self.cluster = Cluster(orderd_bin, kafka_mock, workdir=self.dir)
        self.instances = []
        self.pg = None
        self.cleanup = []   # run after PostgreSQL stops (e.g. unmount a tablespace)

    # ---- infrastructure ----
    def start_infra(self, brokers=3):
        port = quiet_port()
        for attempt in range(5):
            r = subprocess.run([f"{ROOT}/scripts/pg.sh", "start", f"{self.dir}/pg", str(port)], capture_output=True,
                               text=True)
            if r.returncode == 0:
                break
            log("pg.sh start failed, retrying:", r.stderr[-300:])
            subprocess.run([f"{ROOT}/scripts/pg.sh", "stop", f"{self.dir}/pg"], capture_output=True)
            subprocess.run(["rm", "-rf", f"{self.dir}/pg"])
            port = quiet_port()
        else:
            raise RuntimeError("cannot start PostgreSQL: " + r.stderr)
        self.pg = r.stdout.strip()
        self.cluster.pg = self.pg
        env = dict(os.environ, ES_KAFKA_MOCK=self.kafka_mock, KAFKA_MOCK_BROKERS=str(brokers))
        self.bootstrap = subprocess.run([f"{ROOT}/scripts/kafka-mock.sh", "start", f"{self.dir}/kafka"], check=True,
                                        capture_output=True, text=True, env=env).stdout.strip()

    def pg_ctl(self, cmd):
        r = subprocess.run([f"{ROOT}/scripts/pg.sh", cmd, f"{self.dir}/pg"], capture_output=True, text=True,
                           timeout=120)
        if r.returncode != 0:
            raise RuntimeError(f"pg.sh {cmd}: {r.stderr}")
        if cmd == "start" and r.stdout.strip() != self.pg:
            raise RuntimeError(f"PostgreSQL came back on another port ({r.stdout.strip()} instead of {self.pg}): "
                               "its port was taken while it was stopped; the test cannot go on")

    def kafka_ctl(self, *args):
        env = dict(os.environ, ES_KAFKA_MOCK=self.kafka_mock)
        r = subprocess.run([f"{ROOT}/scripts/kafka-mock.sh", "ctl", f"{self.dir}/kafka"] + list(args),
                           capture_output=True, text=True, env=env, timeout=30)
        if r.returncode != 0:
            raise RuntimeError(f"kafka ctl {args}: {r.stdout} {r.stderr}")
        return r.stdout.strip()

    def psql(self, sql, conninfo=None, check=True):
        r = subprocess.run(["psql", conninfo or self.pg, "-qAtX", "-v", "ON_ERROR_STOP=1", "-F", "\t", "-c", sql],
                           capture_output=True, text=True, timeout=120)
        if check and r.returncode != 0:
            raise RuntimeError(f"psql: {r.stderr.strip()} in {sql[:200]}")
        return r.stdout.strip()

    def rows(self, sql):
        out = self.psql(sql)
        return [line.split("\t") for line in out.splitlines()] if out else []

    # ---- orderd ----
    def orderd(self, *extra, http_port=None, grpc_port=None, pg=None, wait=True, timeout=90):
        """Starts orderd (auth disabled explicitly: these tests are about faults, not access)."""
        http_port = http_port or free_port()
        grpc_port = grpc_port or free_port()
        logf = open(os.path.join(self.dir, f"orderd-{http_port}.log"), "a")
        args = [self.orderd_bin, "--pg", pg or self.pg, "--kafka-bootstrap-file", self.cluster.bootstrap_file,
                "--http-listen", f"127.0.0.1:{http_port}", "--grpc-listen", f"127.0.0.1:{grpc_port}",
                "--auth", "disabled"] + list(extra)
        p = subprocess.Popen(args, stdout=logf, stderr=subprocess.STDOUT)
        logf.close()
        inst = Orderd(p, http_port, grpc_port, logf.name)
        inst.args = args
        inst.target = Target("127.0.0.1", http_port)
        self.instances.append(inst)
        self.cluster.procs.append(inst)
        if wait:
            inst.wait_ready(timeout)
        return inst

    def stop(self, keep=False):
        for inst in self.instances:
            inst.stop()
        env = dict(os.environ, ES_KAFKA_MOCK=self.kafka_mock)
        subprocess.run([f"{ROOT}/scripts/kafka-mock.sh", "stop", f"{self.dir}/kafka"], capture_output=True, env=env)
        subprocess.run([f"{ROOT}/scripts/pg.sh", "stop", f"{self.dir}/pg"], capture_output=True)
        for fn in self.cleanup:
            fn()
        if not keep:
            shutil.rmtree(self.dir, ignore_errors=True)


def kill9(inst):
    if inst.proc.poll() is None:
        inst.proc.kill()
    inst.proc.wait(30)


def metrics(target, timeout=5):
    """GET /metrics parsed to {name or name{labels}: value}."""
    status, text, _ = call(target, "GET", "/metrics", timeout=timeout)
    if status != 200:
        raise AssertionError(f"/metrics answered {status}")
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            k, v = line.rsplit(" ", 1)
            out[k] = float(v)
    return out


def health(target, timeout=3):
    try:
        return call(target, "GET", "/healthz", timeout=timeout)[0]
    except OSError:
        return None


# ---- client workload ----

class Ledger:
    """Every command the clients sent, by Idempotency-Key: acknowledged ones with their answer,
    and those whose outcome stayed unknown."""

    def __init__(self):
        self.mu = threading.Lock()
        self.acks = {}      # key -> (method, order_id, version, event_ids)
        self.unknown = {}   # key -> (method, path, body) sent, no definitive answer
        self.statuses = {}  # HTTP status (or 'noanswer') -> count
        self.bad = []       # answers that break the contract (5xx other than 503, ...)
        self.refusals = {}  # (what, status, message with ids blanked) -> count, for the log

    def count(self, what):
        with self.mu:
            self.statuses[what] = self.statuses.get(what, 0) + 1

    def ack(self, key, method, r):
        with self.mu:
            self.acks[key] = (method, r["order_id"], int(r["version"]), list(r.get("event_ids", [])))
            self.unknown.pop(key, None)


class OrderModel:
    """A client's view of one of its orders, enough to pick commands the rules allow."""

    def __init__(self, oid):
        self.oid, self.status, self.pay, self.ship = oid, "PLACED", "PENDING", "WAITING_FOR_PAYMENT"

    def choices(self):
        s, p, sh = self.status, self.pay, self.ship
        c = []
        if s == "PLACED":
            if p == "PENDING":
                c += ["initiate", "initiate", "fail"]
            if p == "INITIATED":
                c += ["authorise", "pay", "pay"]
            if p == "AUTHORISED":
                c += ["pay", "pay"]
            c += ["cancel"]
        elif s == "PAID":
            if sh == "WAITING_FOR_SHIPMENT":
                c += ["transit", "transit", "transit", "cancel"] + (["refund"] if p == "PAID" else [])
            elif sh == "IN_TRANSIT":
                c += ["transit", "out", "delivered"]
            elif sh == "OUT_FOR_DELIVERY":
                c += ["delivered"]
        elif s == "CANCELLED" and p == "PAID":
            c += ["refund"]
        return c


def command_request(model, what):
    oid = model.oid
    ship = lambda st, loc: ("PUT", f"/v1/orders/{oid}/shipping-status",  # noqa: E731
                            {"status": f"SHIPPING_STATUS_{st}", "carrier": "DHL", "tracking_number": "JD1",
                             "location": loc})
    return {
        "initiate": ("POST", f"/v1/orders/{oid}/payment:initiate", {}),
        "authorise": ("POST", f"/v1/orders/{oid}/payment:authorise", {"authorisation_code": "A1"}),
        "pay": ("POST", f"/v1/orders/{oid}/payment:paid", {}),
        "fail": ("POST", f"/v1/orders/{oid}/payment:fail", {"reason": "declined"}),
        "refund": ("POST", f"/v1/orders/{oid}/payment:refund", {"reason": "returned"}),
        "cancel": ("POST", f"/v1/orders/{oid}/cancel", {"reason": "changed my mind"}),
        "transit": ship("IN_TRANSIT", f"hub-{random.randint(1, 99)}"),
        "out": ship("OUT_FOR_DELIVERY", "van"),
        "delivered": ship("DELIVERED", "door"),
    }[what]


def apply_model(model, what):
    if what == "initiate":
        model.pay = "INITIATED"
    elif what == "authorise":
        model.pay = "AUTHORISED"
    elif what == "pay":
        model.status, model.pay, model.ship = "PAID", "PAID", "WAITING_FOR_SHIPMENT"
    elif what == "fail":
        model.pay = "FAILED"
    elif what == "refund":
        model.pay = "REFUNDED"
    elif what == "cancel":
        model.status, model.ship = "CANCELLED", "CANCELLED"
    elif what == "transit":
        model.ship = "IN_TRANSIT"
    elif what == "out":
        model.ship = "OUT_FOR_DELIVERY"
    elif what == "delivered":
        model.status, model.ship = "DELIVERED", "DELIVERED"


class Clients:
    """N client threads placing orders and moving them through the rules, each with an
    Idempotency-Key per command. A request without an answer (connection refused or reset,
    timeout, 503) is retried with the same key until `retry_for` seconds pass; a definitive answer
    ends it. `pick` may restrict the commands (e.g. only place and cancel)."""

    def __init__(self, targets, ledger, threads=8, timeout=10.0, retry_for=60.0, pick=None, pause=0.0,
                 payment_commands=True, on_result=None):
        self.targets, self.ledger, self.n = targets, ledger, threads
        self.timeout, self.retry_for, self.pick, self.pause = timeout, retry_for, pick, pause
        self.payment_commands = payment_commands
        self.on_result = on_result     # called with (t_start, seconds, status or None, body) per attempt
        self.stop_new = threading.Event()
        self.threads = []

    def start(self):
        for i in range(self.n):
            t = threading.Thread(target=self._run, args=(i,), daemon=True)
            t.start()
            self.threads.append(t)
        return self

    def finish(self, timeout=120):
        self.stop_new.set()
        deadline = time.time() + timeout
        for t in self.threads:
            t.join(max(0.1, deadline - time.time()))
        alive = [t for t in self.threads if t.is_alive()]
        if alive:
            raise AssertionError(f"{len(alive)} client threads still running after {timeout} s")

    def _send(self, i, method, path, body, key):
        """Sends until a definitive answer; returns (status, body) or None (outcome unknown)."""
        started = time.time()
        while True:
            target = self.targets[(i + int(time.time() * 10)) % len(self.targets)]
            t0 = time.monotonic()
            try:
                status, r, secs = call(target, method, path, body, {"Idempotency-Key": key}, timeout=self.timeout)
            except OSError as e:
                status, r, secs = None, str(e), time.monotonic() - t0
            if self.on_result:
                self.on_result(t0, secs, status, r)
            self.ledger.count(status if status is not None else "noanswer")
            if status is not None and status != 503:
                if status >= 500:
                    with self.ledger.mu:
                        self.ledger.bad.append((method, path, status, r))
                return status, r
            if time.time() - started > self.retry_for:
                return None
            time.sleep(0.2 + random.random() * 0.3)

    def _run(self, i):
        mine = []
        rnd = random.Random(i * 7919 + int(time.time()))
        customer = f"fault-{i}-{uuid.uuid4().hex[:6]}"
        while not self.stop_new.is_set():
            active = [m for m in mine if m.choices()]
            choices = ["place"] if len(active) < 3 or rnd.random() < 0.25 else []
            if not choices:
                m = rnd.choice(active)
                opts = m.choices()
                if not self.payment_commands:
                    opts = [o for o in opts if o in ("cancel", "transit", "out", "delivered")] or []
                if self.pick:
                    opts = [o for o in opts if o in self.pick]
                if not opts:
                    mine.remove(m)
                    continue
                what = rnd.choice(opts)
            else:
                what, m = "place", None
            key = f"k-{uuid.uuid4()}"
            if what == "place":
                method, path, body = "POST", "/v1/orders", order_body(customer)
            else:
                method, path, body = command_request(m, what)
            with self.ledger.mu:
                self.ledger.unknown[key] = (what, path, body)
            got = self._send(i, method, path, body, key)
            if got is None:
                if m is not None:
                    mine.remove(m)   # its state is unknown now: leave it alone
                continue
            status, r = got
            if status == 200:
                self.ledger.ack(key, what, r)
                if what == "place":
                    mine.append(OrderModel(r["order_id"]))
                else:
                    apply_model(m, what)
            else:
                msg = r.get("message", "") if isinstance(r, dict) else str(r)
                msg = re.sub(r"[0-9a-f]{8}-[0-9a-f-]{27}", "<id>", msg)[:120]
                with self.ledger.mu:
                    self.ledger.unknown.pop(key, None)   # refused: definitively nothing written
                    k = (what, status, msg)
                    self.ledger.refusals[k] = self.ledger.refusals.get(k, 0) + 1
                if m is not None and status in (400, 409):
                    mine.remove(m)   # our view was stale; drop the order
            if self.pause:
                time.sleep(self.pause)


# ---- checks ----

def command_id_for(key, method, actor=""):
    """The command id the store records for a client's idempotency key: a UUID derived from the
    principal ("" with --auth disabled), the gRPC path of the method and the key, as the
    dispatcher derives it (runtime/service/idempotency.c, es_uuid_derive in runtime/core/uuid.c)."""
    import hashlib
    path = f"/orders.v1.OrderService/{method}"
    head = f"{len(actor.encode())}:{len(path.encode())}:{len(key.encode())}:".encode()
    name = hashlib.sha256(head + actor.encode() + path.encode() + key.encode()).hexdigest()
    d = bytearray(hashlib.sha256(b"es.idempotency-key.v1\0" + name.encode()).digest()[:16])
    d[6] = 0x80 | (d[6] & 0x0F)
    d[8] = 0x80 | (d[8] & 0x3F)
    h = d.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def check_store(env, ledger):
    """docs/ARCHITECTURE.md invariants 1 and 3: every acknowledged command's events are in es_events (ids, stream,
    versions, command id), no command's events are there twice, no stream has a gap or a
    duplicate version. Returns the number of events checked."""
    bad = env.rows("SELECT stream_id, count(*), count(DISTINCT version), min(version), max(version) FROM es_events "
                   "GROUP BY stream_id HAVING count(*) <> max(version) OR min(version) <> 1 "
                   "OR count(DISTINCT version) <> count(*) LIMIT 20")
    assert not bad, f"streams with a gap or duplicate version: {bad}"
    events = {}
    by_cmd = {}
    for eid, sid, ver, cmd in env.rows("SELECT event_id, stream_id, version, coalesce(command_id, '') FROM es_events"):
        events[eid] = (sid, int(ver), cmd)
        by_cmd.setdefault(cmd, set()).add(eid)
    missing, wrong = [], []
    with ledger.mu:
        acks = dict(ledger.acks)
    for key, (what, oid, version, eids) in acks.items():
        if not eids:
            wrong.append((key, what, "no event ids in the answer"))
            continue
        want = list(range(version - len(eids) + 1, version + 1))
        # The store records the command id the client's key stands for (derived from the
        # principal, the method and the key): one id for all of the command's events, and
        # no other event under it.
        cmds = set()
        for eid, v in zip(eids, want):
            got = events.get(eid)
            if got is None:
                missing.append((key, what, oid, v, eid))
            elif got[0] != oid or got[1] != v:
                wrong.append((key, what, oid, v, eid, got))
            else:
                cmds.add(got[2])
        if len(cmds) > 1 or "" in cmds:
            wrong.append((key, what, "the command's events carry several or no command ids", sorted(cmds)))
        elif cmds:
            cmd = cmds.pop()
            if what == "place" and cmd != command_id_for(key, "PlaceOrder"):
                wrong.append((key, what, "command id is not the one derived from the key", cmd))
            if by_cmd.get(cmd, set()) != set(eids):
                wrong.append((key, what, "command's events in the store differ from its answer",
                              sorted(by_cmd.get(cmd, set())), eids))
    assert not missing, f"{len(missing)} acknowledged events missing from the store, e.g. {missing[:5]}"
    assert not wrong, f"{len(wrong)} acknowledged commands stored wrongly, e.g. {wrong[:5]}"
    return len(events)


def projection_diffs(env):
    """Streams whose order_summary version differs from the store's stream version, plus the
    projector's own bookkeeping (es_consumer_streams)."""
    return env.rows(
        "SELECT e.stream_id, e.v, s.version, c.version FROM "
        "(SELECT stream_id, max(version) v FROM es_events WHERE stream_type = 'order' GROUP BY 1) e "
        "LEFT JOIN order_summary s ON s.order_id::text = e.stream_id "
        f"LEFT JOIN es_consumer_streams c ON c.consumer = '{PROJECTION}' AND c.stream_id = e.stream_id "
        "WHERE s.version IS DISTINCT FROM e.v OR c.version IS DISTINCT FROM e.v LIMIT 10")


def wait_converged(env, timeout=90, what="projections to converge"):
    """Waits until every stream's projection version equals its store version; returns seconds."""
    t0 = time.time()
    eventually(lambda: not projection_diffs(env), timeout=timeout, interval=0.5, what=what)
    return time.time() - t0


def check_no_dead_letters(env):
    dl = env.rows("SELECT id, consumer, stream_id, version, error FROM es_dead_letters LIMIT 5")
    assert not dl, f"dead letters: {dl}"
    parked = env.rows("SELECT consumer, stream_id FROM es_consumer_streams WHERE dead_letter_id IS NOT NULL LIMIT 5")
    assert not parked, f"parked streams: {parked}"


def orderctl_path():
    """orderctl of the same build as orderd ($ORDERCTL from CMake, else orderd's sibling); one
    from another build directory may speak another schema version."""
    for p in (os.environ.get("ORDERCTL", ""), os.path.join(os.path.dirname(os.path.abspath(sys.argv[1])), "orderctl")):
        if p and os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    return None


_stubs = None


def stubs():
    global _stubs
    if _stubs is None:
        _stubs = tempfile.mkdtemp(prefix="orderd-faults-stubs-")
        import atexit
        atexit.register(shutil.rmtree, _stubs, True)
        python_stubs(_stubs)
    return _stubs


def fold_diffs(env):
    """The reconciliation check done here: folds every order stream from the stored protobuf
    payloads (status, payment and shipping status, carrier, location, cancel reason, version) and
    compares it with its order_summary row."""
    stubs()
    from orders.v1 import events_pb2, types_pb2
    ship_names = {v.number: v.name for v in types_pb2.ShippingStatus.DESCRIPTOR.values}
    state = {}
    for sid, ver, etype, hexp in env.rows("SELECT stream_id, version, event_type, encode(payload, 'hex') FROM es_events "
                                          "WHERE stream_type = 'order' ORDER BY stream_id, version"):
        msg = getattr(events_pb2, etype)()
        msg.ParseFromString(bytes.fromhex(hexp))
        s = state.setdefault(sid, {"status": "", "payment_status": "", "shipping_status": "", "carrier": "",
                                   "location": "", "cancel_reason": "", "version": 0})
        s["version"] = int(ver)
        if etype == "OrderPlaced":
            s.update(status="ORDER_STATUS_PLACED", payment_status="PAYMENT_STATUS_PENDING",
                     shipping_status="SHIPPING_STATUS_WAITING_FOR_PAYMENT")
        elif etype == "OrderPaymentInitiated":
            s["payment_status"] = "PAYMENT_STATUS_INITIATED"
        elif etype == "OrderPaymentAuthorised":
            s["payment_status"] = "PAYMENT_STATUS_AUTHORISED"
        elif etype == "OrderPaid":
            s.update(status="ORDER_STATUS_PAID", payment_status="PAYMENT_STATUS_PAID",
                     shipping_status="SHIPPING_STATUS_WAITING_FOR_SHIPMENT")
        elif etype == "OrderPaymentFailed":
            s["payment_status"] = "PAYMENT_STATUS_FAILED"
        elif etype == "OrderPaymentRefunded":
            s["payment_status"] = "PAYMENT_STATUS_REFUNDED"
        elif etype == "OrderShippingStatusUpdated":
            s.update(shipping_status=ship_names[msg.status], carrier=msg.carrier, location=msg.location)
        elif etype == "OrderDelivered":
            s.update(status="ORDER_STATUS_DELIVERED", shipping_status="SHIPPING_STATUS_DELIVERED", carrier=msg.carrier,
                     location=msg.location)
        elif etype == "OrderCancelled":
            s.update(status="ORDER_STATUS_CANCELLED", shipping_status="SHIPPING_STATUS_CANCELLED",
                     cancel_reason=msg.reason)
    cols = ["status", "payment_status", "shipping_status", "carrier", "location", "cancel_reason", "version"]
    rows = {r[0]: r[1:] for r in env.rows("SELECT order_id, " + ", ".join(f"coalesce({c}::text, '')" for c in cols)
                                          + " FROM order_summary")}
    diffs = []
    for sid, s in state.items():
        row = rows.pop(sid, None)
        if row is None:
            diffs.append((sid, "no projection row"))
            continue
        for c, v in zip(cols, row):
            want = str(s[c])
            if v != want:
                diffs.append((sid, c, "store:", want, "projection:", v))
    diffs += [(sid, "projection row without a stream") for sid in rows]
    return diffs


def reconcile(env):
    """The reconciliation check: `orderctl verify` when it is built, and always the fold above."""
    diffs = fold_diffs(env)
    assert not diffs, f"{len(diffs)} projection differences (python fold), e.g. {diffs[:5]}"
    ctl = orderctl_path()
    if not ctl:
        log("orderctl not built: reconciliation done by the test's own fold only")
        return "fold"
    r = subprocess.run([ctl, "--pg", env.pg, "--no-progress", "verify", "--settle-ms", "3000"], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, f"orderctl verify exited {r.returncode}:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}"
    return "fold+orderctl"


def summary_line(ledger):
    with ledger.mu:
        return f"acked={len(ledger.acks)} unknown={len(ledger.unknown)} statuses={dict(sorted(ledger.statuses.items(), key=str))}"


def check_alive(*insts):
    for o in insts:
        if o.proc.poll() is not None:
            raise AssertionError(f"orderd exited with {o.proc.returncode}:\n" + open(o.log).read()[-3000:])


def tail_log(inst, n=3000):
    try:
        return open(inst.log).read()[-n:]
    except OSError:
        return ""


def main(tests, name):
    """Runs [(title, fn)] each with a fresh FaultEnv; prints PASS/FAIL lines and exits non-zero on failure."""
    orderd, kafka_mock = sys.argv[1], sys.argv[2]
    runner = Runner()
    for title, fn in tests:
        env = FaultEnv(orderd, kafka_mock, name)
        try:
            env.start_infra()
            runner.run(title, fn, env)
        except Exception as e:  # noqa: BLE001
            import traceback
            traceback.print_exc()
            runner.failed += 1
            print(f"FAIL setup of {title}: {e}", flush=True)
        finally:
            keep = False
            if runner.failed:
                for inst in env.instances:
                    rc = inst.proc.poll()
                    state = "still running" if rc is None else f"exited with {rc}" + (
                        f" (signal {-rc}: a crash unless the test killed it)" if rc < 0 else "")
                    print(f"--- orderd :{inst.http_port} {state}; its log ---\n{tail_log(inst)}", flush=True)
                keep = os.environ.get("KEEP_FAULTS_DIR") == "1"
                if keep:
                    print(f"kept {env.dir}", flush=True)
            env.stop(keep)
    sys.exit(runner.finish())



# ---- waiting on the load, not on the clock ----

def acked(ledger):
    with ledger.mu:
        return len(ledger.acks)


def wait_acks(ledger, more, timeout=60, what="commands acknowledged"):
    """Waits until `more` commands beyond those acknowledged now are acknowledged: the load runs
    (against whatever instance is up) instead of a pause that hopes it does."""
    want = acked(ledger) + more
    eventually(lambda: acked(ledger) >= want, timeout=timeout, interval=0.05, what=f"{what} ({more} more)")


def wait_idle(target, timeout=30):
    """Waits until orderd has no call in flight nor queued (es_http_inflight, es_grpc_inflight and
    es_dispatcher_queued all 0): every command answered before has finished writing."""
    keys = ("es_http_inflight", "es_grpc_inflight", "es_dispatcher_queued")

    def idle():
        m = metrics(target)
        return all(m.get(k, 0) == 0 for k in keys)
    eventually(idle, timeout=timeout, interval=0.05, what="no call in flight")
