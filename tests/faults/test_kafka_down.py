"""Fault test: Kafka brokers down under load. First every broker of the mock cluster for
OUTAGE_S, then one broker of three. Commands keep succeeding quickly throughout (they need only
PostgreSQL); afterwards the relay catches up, the projection equals the store, the payment flow
(a Kafka consumer issuing commands) has reacted to every order exactly once, the topic holds every
event keyed by order id in stream order, and there are no dead letters (docs/ARCHITECTURE.md invariants 5, 6).
    /usr/bin/python3 test_kafka_down.py <orderd> <es-kafka-mock>"""
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import faults as f  # noqa: E402

OUTAGE_S = 15.0
MAX_ANSWER_S = 3.0


def settle_state(env):
    """(settled, why): settled when no order waits for the payment flow (every order is paid or
    cancelled, a cancelled paid order refunded), no event was appended for 3 s, and the projection
    equals the store."""
    waiting = env.rows("SELECT order_id, status, payment_status, version FROM order_summary "
                       "WHERE status = 'ORDER_STATUS_PLACED' "
                       "OR (status = 'ORDER_STATUS_CANCELLED' AND payment_status = 'PAYMENT_STATUS_PAID') LIMIT 3")
    idle = env.rows("SELECT coalesce(extract(epoch FROM now() - max(recorded_at)), 99) FROM es_events")[0][0]
    diffs = f.projection_diffs(env)
    dead = env.rows("SELECT consumer, stream_id, version, error FROM es_dead_letters LIMIT 3")
    ok = not waiting and float(idle) > 3 and not diffs
    return ok, (f"waiting for the payment flow: {waiting}; seconds since the last event: {float(idle):.1f}; "
                f"projection differences (stream, store, row, consumer): {diffs[:3]}; dead letters: {dead}")


def settled(env):
    return settle_state(env)[0]


def wait_settled(env, timeout, what):
    t0 = time.time()
    why = ""
    while time.time() - t0 < timeout:
        ok, why = settle_state(env)
        if ok:
            return time.time() - t0
        time.sleep(0.5)
    raise AssertionError(f"{what}: not settled after {timeout} s: {why}")


def check_reactions(env):
    """Nothing doubled: each event type at most once per order (no shipping in this test), and
    every order that was not cancelled got paid."""
    dup = env.rows("SELECT stream_id, event_type, count(*) FROM es_events GROUP BY 1, 2 HAVING count(*) > 1 LIMIT 5")
    assert not dup, f"events doubled: {dup}"
    unpaid = env.rows("SELECT order_id, status, payment_status FROM order_summary "
                      "WHERE status NOT IN ('ORDER_STATUS_PAID', 'ORDER_STATUS_CANCELLED') LIMIT 5")
    assert not unpaid, f"orders the payment flow did not finish: {unpaid}"


def check_topic(env):
    """Every stored event is in the topic at least once, keyed by its stream id, and each key's
    events first appear in version order. Returns (messages, duplicates)."""
    boot = open(env.cluster.bootstrap_file).read().strip()
    out = subprocess.run(["kcat", "-C", "-b", boot, "-t", "orders.events", "-e", "-q", "-f", "%k\t%p\t%h\n"],
                         capture_output=True, text=True, timeout=120).stdout
    first, seen, n, dups, bad = {}, set(), 0, 0, []
    part = {}
    for line in out.splitlines():
        if not line.strip():
            continue
        key, p, hdrs = line.split("\t")
        h = dict(x.split("=", 1) for x in hdrs.split(",") if "=" in x)
        n += 1
        sid, ver = h.get("es-stream-id"), int(h.get("es-version", "0"))
        if sid != key:
            bad.append(("key is not the stream id", key, sid))
        if part.setdefault(key, p) != p:
            bad.append(("key on two partitions", key))
        if (key, ver) in seen:
            dups += 1
            continue
        seen.add((key, ver))
        if ver != first.get(key, 0) + 1:
            bad.append(("out of order", key, first.get(key, 0), ver))
        first[key] = max(first.get(key, 0), ver)
    store = {(s, int(v)) for s, v in env.rows("SELECT stream_id, version FROM es_events")}
    missing = store - seen
    assert not bad, f"topic: {bad[:5]}"
    assert not missing, f"{len(missing)} events never reached the topic, e.g. {sorted(missing)[:5]}"
    return n, dups


def phase(env, o, what, down, up, outage_s):
    t = o.target
    answers, mu = [], threading.Lock()

    def record(t0, secs, status, body):
        with mu:
            answers.append((t0, secs, status))

    ledger = f.Ledger()
    clients = f.Clients([t], ledger, threads=4, timeout=10, retry_for=30, pick={"cancel"}, payment_commands=False,
                        on_result=record, pause=0.02).start()
    f.wait_acks(ledger, 20, what=f"{what}: commands acknowledged before the outage")
    env.kafka_ctl(*down)
    t_down = time.monotonic()
    f.log(f"{what}: brokers down:", f.summary_line(ledger))
    hz, lag = [], []
    while time.monotonic() - t_down < outage_s:
        hz.append(f.health(t))
        try:
            lag.append(f.metrics(t).get("es_relay_lag_events", -1))
        except (OSError, AssertionError):
            lag.append(None)
        time.sleep(1)
    t_up0 = time.monotonic()
    env.kafka_ctl(*up)
    f.log(f"{what}: brokers up:", f.summary_line(ledger))
    f.wait_acks(ledger, 20, what=f"{what}: commands acknowledged after the brokers came back")
    clients.finish(timeout=60)
    f.check_alive(o)
    during = [a for a in answers if t_down <= a[0] < t_up0]
    with ledger.mu:
        bad, unknown = list(ledger.bad), dict(ledger.unknown)
    assert len(during) >= 20, f"{what}: only {len(during)} commands during the outage"
    failed = [a for a in during if a[2] != 200]
    assert not failed, f"{what}: {len(failed)} commands failed while Kafka was down, e.g. {failed[:3]}"
    worst = max(a[1] for a in during)
    f.within(worst, MAX_ANSWER_S, f"{what}: the slowest command while Kafka was down")
    assert not bad and not unknown, (bad[:3], list(unknown.items())[:3])
    f.check_store(env, ledger)
    catch_up = wait_settled(env, 120, f"{what}: projection and payment flow catching up")
    check_reactions(env)
    f.check_no_dead_letters(env)
    f.log(f"{what}: {len(during)} commands during {t_up0 - t_down:.0f} s outage, all 200, slowest {worst:.2f} s; "
          f"relay lag during outage max {max((x for x in lag if x is not None), default=-1):.0f}; /healthz during "
          f"outage {sorted(set(hz), key=str)}; caught up {catch_up:.1f} s after the brokers returned")
    return len(during)


def test_kafka_down(env):
    o = env.orderd("--payment-delay-ms", "0")
    t = o.target
    st, r, _ = f.call(t, "POST", "/v1/orders", f.order_body("warm-up"))
    assert st == 200, (st, r)
    f.eventually(lambda: (x := f.call(t, "GET", f"/v1/orders/{r['order_id']}")) and x[0] == 200
                 and x[1].get("payment_status") == "PAYMENT_STATUS_PAID", timeout=60, what="warm-up order paid")
    phase(env, o, "all brokers", ("down", "all"), ("up", "all"), OUTAGE_S)
    phase(env, o, "one broker of three", ("down", "1"), ("up", "1"), 10.0)
    f.wait_converged(env, timeout=60)
    how = f.reconcile(env)
    n, dups = check_topic(env)
    f.log(f"topic: {n} messages, {dups} duplicates (at-least-once); reconciliation: {how}")


if __name__ == "__main__":
    f.main([("Kafka brokers down (all, then one of three) under load", test_kafka_down)], "kafka")
