"""Fault test: PostgreSQL stopped for some seconds under load, then started again. During the
outage every request (commands and reads, HTTP and gRPC) is answered 503 / UNAVAILABLE quickly
(each within MAX_ANSWER_S), orderd does not crash, /healthz says 503; after PostgreSQL returns
the service recovers by itself within RECOVER_S (commands succeed, /healthz 200), clients'
retries with the same Idempotency-Key get one outcome, and nothing acknowledged is lost.
    /usr/bin/python3 test_pg_restart.py <orderd> <es-kafka-mock>"""
import os
import sys
import threading
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import faults as f  # noqa: E402

OUTAGE_S = 6.0
MAX_ANSWER_S = 3.0
RECOVER_S = 10.0


def grpc_place(o, timeout):
    """PlaceOrder over gRPC; returns (grpc status code name, seconds)."""
    f.stubs()
    import grpc
    from orders.v1 import commands_pb2, types_pb2
    req = commands_pb2.PlaceOrderRequest(customer_id="grpc-fault", vendor_id="v", payment_method="card",
                                         items=[types_pb2.LineItem(product_id="p", quantity=1,
                                                                   unit_price=types_pb2.Money(currency_code="EUR",
                                                                                              amount_minor=100))],
                                         shipping_address=types_pb2.Address(**f.ADDRESS))
    t0 = time.monotonic()
    with grpc.insecure_channel(f"127.0.0.1:{o.grpc_port}") as ch:
        try:
            ch.unary_unary("/orders.v1.OrderService/PlaceOrder", request_serializer=req.SerializeToString,
                           response_deserializer=commands_pb2.CommandResult.FromString)(req, timeout=timeout)
            return "OK", time.monotonic() - t0, ""
        except grpc.RpcError as e:
            return e.code().name, time.monotonic() - t0, e.details()


def test_pg_restart_under_load(env):
    o = env.orderd("--payments", "0")
    t = o.target
    status, r, _ = f.call(t, "POST", "/v1/orders", f.order_body("warm-up"))
    assert status == 200, (status, r)
    warm = r["order_id"]
    f.eventually(lambda: f.call(t, "GET", f"/v1/orders/{warm}")[0] == 200, timeout=60, what="first projection")

    attempts, mu = [], threading.Lock()

    def record(t0, secs, status, body):
        with mu:
            attempts.append((t0, secs, status, body))

    ledger = f.Ledger()
    clients = f.Clients([t], ledger, threads=4, timeout=10, retry_for=60, on_result=record).start()
    # a reader and a health poller record their own answers
    reads, healths, stop = [], [], threading.Event()

    def reader():
        while not stop.is_set():
            t0 = time.monotonic()
            try:
                st, body, secs = f.call(t, "GET", f"/v1/orders/{warm}", timeout=10)
            except OSError as e:
                st, body, secs = None, str(e), time.monotonic() - t0
            reads.append((t0, secs, st, body))
            t0 = time.monotonic()
            try:
                st, body, secs = f.call(t, "GET", "/healthz", timeout=10)
            except OSError as e:
                st, body, secs = None, str(e), time.monotonic() - t0
            healths.append((t0, secs, st, body))
            time.sleep(0.2)

    rt = threading.Thread(target=reader, daemon=True)
    rt.start()
    f.wait_acks(ledger, 20, what="commands acknowledged before the outage")
    f.eventually(lambda: len(reads) >= 3 and len(healths) >= 3, timeout=30, what="reads and health checks before the outage")
    t_stop0 = time.monotonic()
    env.pg_ctl("stop")
    t_down = time.monotonic()
    f.log(f"PostgreSQL stopped ({t_down - t_stop0:.1f} s):", f.summary_line(ledger))
    # orderd has seen PostgreSQL go (its health check says so) before the gRPC call
    f.eventually(lambda: f.health(t) == 503, timeout=30, interval=0.1, what="/healthz 503 once PostgreSQL stopped")
    g_code, g_secs, g_msg = grpc_place(o, timeout=10)
    time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - t_down)))
    t_up0 = time.monotonic()
    env.pg_ctl("start")
    t_up = time.monotonic()
    f.log(f"PostgreSQL started ({t_up - t_up0:.1f} s):", f.summary_line(ledger))

    def fresh_ok():
        f.check_alive(o)   # a crash is reported as such, not as a slow recovery
        try:
            return f.call(t, "POST", "/v1/orders", f.order_body("after"), {"Idempotency-Key": str(uuid.uuid4())},
                          timeout=5)[0] == 200
        except OSError:
            return False
    f.eventually(fresh_ok, timeout=RECOVER_S + 20, interval=0.2, what="a command to succeed after the restart")
    cmd_recovery = time.monotonic() - t_up
    last_health = None
    while time.monotonic() - t_up < RECOVER_S + 20:
        f.check_alive(o)
        try:
            st, body, _ = f.call(t, "GET", "/healthz", timeout=3)
        except OSError as e:
            st, body = None, str(e)
        last_health = (st, body)
        if st == 200:
            break
        time.sleep(0.2)
    else:
        m = f.metrics(t)
        raise AssertionError(f"/healthz not 200 {RECOVER_S + 20:.0f} s after PostgreSQL returned: {last_health}; "
                             f"relay: {dict((k, v) for k, v in m.items() if 'relay' in k or '_up' in k)}")
    health_recovery = time.monotonic() - t_up
    f.wait_acks(ledger, 20, what="commands acknowledged after the recovery")
    clients.finish(timeout=90)
    stop.set()
    rt.join(15)
    f.check_alive(o)
    f.log("load done:", f.summary_line(ledger), "refusals:", ledger.refusals)

    # during the outage: only 503, each quickly
    def window(rows, a, b):
        return [x for x in rows if a <= x[0] < b]
    during = window(attempts, t_down, t_up0) + window(reads, t_down, t_up0)
    around = window(attempts, t_stop0 - 1, t_up + cmd_recovery) + window(reads, t_stop0 - 1, t_up + cmd_recovery)
    slow = [x for x in around if x[1] > MAX_ANSWER_S]
    worst = max((x[1] for x in around), default=0)
    assert len(during) >= 10, f"only {len(during)} requests during the outage"
    not503 = [x for x in during if x[2] != 503]
    assert not not503, f"{len(not503)} requests during the outage got no 503, e.g. {not503[:3]}"
    codes = {x[3].get("code") if isinstance(x[3], dict) else None for x in during}
    assert codes == {14}, f"503 bodies must carry code 14 (UNAVAILABLE): {codes}"
    msgs = {x[3].get("message", "")[:60] for x in during}
    assert all("PostgreSQL" in m or "database" in m for m in msgs), msgs
    if slow:
        f.log(f"{len(slow)} requests around the outage took over {MAX_ANSWER_S} s, e.g. {slow[:3]}")
    f.within(worst, MAX_ANSWER_S, "the slowest request around the outage")
    assert g_code == "UNAVAILABLE", ("gRPC during the outage", g_code, g_secs, g_msg)
    f.within(g_secs, MAX_ANSWER_S, "gRPC during the outage")
    hd = window(healths, t_down + 1.5, t_up0)
    assert hd and all(x[2] == 503 and x[3].get("postgres") is False for x in hd), hd[:3]
    assert cmd_recovery <= RECOVER_S and health_recovery <= RECOVER_S, (cmd_recovery, health_recovery)
    with ledger.mu:
        unknown, bad = dict(ledger.unknown), list(ledger.bad)
    assert not bad, f"answers other than 2xx/4xx/503: {bad[:5]}"
    assert not unknown, f"{len(unknown)} commands without an outcome after recovery: {list(unknown.items())[:3]}"
    n = f.check_store(env, ledger)
    secs = f.wait_converged(env, timeout=90)
    f.check_no_dead_letters(env)
    how = f.reconcile(env)
    f.log(f"outage {t_up0 - t_down:.1f} s: {len(during)} requests all 503 (code 14), slowest answer around it "
          f"{worst:.2f} s; gRPC {g_code} in {g_secs:.2f} s; commands back {cmd_recovery:.1f} s and /healthz "
          f"{health_recovery:.1f} s after PostgreSQL; {n} events; converged in {secs:.1f} s; reconciliation: {how}")


if __name__ == "__main__":
    f.main([("PostgreSQL stopped and started under load", test_pg_restart_under_load)], "pg")
