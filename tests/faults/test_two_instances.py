"""Fault test: two orderd instances on one database and one Kafka cluster. Commands go to either;
exactly one relay is active (es_relay_active in both /metrics); projections and the payment flow
are correct. Then the relay holder is SIGKILLed under load: the other instance takes the relay over
within TAKEOVER_S, new events reach the projection, and nothing is lost or doubled.
    /usr/bin/python3 test_two_instances.py <orderd> <es-kafka-mock>"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import faults as f  # noqa: E402
from test_kafka_down import check_reactions, wait_settled  # noqa: E402

TAKEOVER_S = 10.0


def active(o):
    return int(f.metrics(o.target).get("es_relay_active", -1))


def test_refusal_on_current_state(env):
    """A command on one instance after the other instance changed the stream is judged on the
    stream's current state (docs/ARCHITECTURE.md invariant 2), not on what the first instance cached."""
    a = env.orderd("--payments", "0")
    b = env.orderd("--payments", "0")
    st, r, _ = f.call(b.target, "POST", "/v1/orders", f.order_body("stale-cache"))
    assert st == 200, (st, r)
    oid = r["order_id"]                      # b now holds version 1 (PLACED) in its state cache
    for path in ("payment:initiate", "payment:paid"):
        st, r, _ = f.call(a.target, "POST", f"/v1/orders/{oid}/{path}", {})
        assert st == 200, (path, st, r)      # the stream is at version 3: PAID
    ship = {"status": "SHIPPING_STATUS_IN_TRANSIT", "carrier": "DHL", "tracking_number": "1", "location": "hub"}
    st, r, _ = f.call(b.target, "PUT", f"/v1/orders/{oid}/shipping-status", ship)
    assert st == 200 and r.get("version") == "4", (
        f"order {oid} is PAID (version 3, paid through the other instance), yet UpdateOrderShippingStatus on this "
        f"instance answered {st} {r}: it was judged on the instance's cached version 1, not on the stream")


def test_two_instances_and_takeover(env):
    a = env.orderd("--payment-delay-ms", "0")
    b = env.orderd("--payment-delay-ms", "0")
    # both serve commands and see each other's writes through the shared projection
    for x, y in ((a, b), (b, a)):
        st, r, _ = f.call(x.target, "POST", "/v1/orders", f.order_body("two"))
        assert st == 200, (st, r)
        f.eventually(lambda: (g := f.call(y.target, "GET", f"/v1/orders/{r['order_id']}")) and g[0] == 200
                     and g[1].get("payment_status") == "PAYMENT_STATUS_PAID", timeout=60,
                     what="an order placed on one instance, paid and visible on the other")
    ledger = f.Ledger()
    clients = f.Clients([a.target, b.target], ledger, threads=6, timeout=10, retry_for=60, pick={"cancel"},
                        payment_commands=False, pause=0.02).start()
    samples = []
    for _ in range(10):
        samples.append((active(a), active(b)))
        time.sleep(0.5)
    assert all(sum(s) == 1 for s in samples), f"exactly one relay must be active: {samples}"
    holder, other = (a, b) if samples[-1][0] == 1 else (b, a)
    f.log(f"relay holder :{holder.http_port}, standby :{other.http_port}; {f.summary_line(ledger)}")
    f.kill9(holder)
    t_kill = time.monotonic()
    f.eventually(lambda: active(other) == 1, timeout=TAKEOVER_S + 20, interval=0.2, what="the standby to take over")
    takeover = time.monotonic() - t_kill
    st, r, _ = f.call(other.target, "POST", "/v1/orders", f.order_body("after-takeover"))
    assert st == 200, (st, r)
    oid = r["order_id"]
    f.eventually(lambda: f.call(other.target, "GET", f"/v1/orders/{oid}")[0] == 200, timeout=60,
                 what="a new order to reach the projection after the takeover")
    projected = time.monotonic() - t_kill
    f.wait_acks(ledger, 20, what="commands acknowledged after the takeover")
    clients.finish(timeout=90)
    f.check_alive(other)
    with ledger.mu:
        bad, unknown = list(ledger.bad), dict(ledger.unknown)
    assert not bad and not unknown, (bad[:3], list(unknown.items())[:3])
    f.within(takeover, TAKEOVER_S, "relay takeover")
    m = f.metrics(other.target)
    assert m["es_relay_active"] == 1, m
    f.check_store(env, ledger)
    wait_settled(env, 90, "projection and payment flow catching up after the takeover")
    check_reactions(env)
    f.check_no_dead_letters(env)
    how = f.reconcile(env)
    f.log(f"{f.summary_line(ledger)}; one relay in {len(samples)} samples; takeover {takeover:.1f} s after SIGKILL; "
          f"a new order projected {projected:.1f} s after it; reconciliation: {how}")


if __name__ == "__main__":
    f.main([("two instances: one relay, takeover after SIGKILL of the holder", test_two_instances_and_takeover),
            ("two instances: a refusal is judged on the stream's current state", test_refusal_on_current_state)], "two")
