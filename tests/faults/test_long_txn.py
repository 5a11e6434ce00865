"""Fault test: a transaction left open for HOLD_S. It appends a real event (es_append, as orderd
does: the event gets the transaction's early xid) and stays open while clients commit commands
through orderd. The feed holds every later commit back (their orders are not projected), the lag
shows in /metrics (es_feed_held_back_events > 0, es_feed_oldest_transaction_seconds growing); when
the transaction commits, every event, its own included, is projected: nothing is skipped (docs/ARCHITECTURE.md invariant 4).
    /usr/bin/python3 test_long_txn.py <orderd> <es-kafka-mock>"""
import os
import subprocess
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import faults as f  # noqa: E402

HOLD_S = 30.0


def open_transaction(env, stream_id):
    """psql session: BEGIN, append OrderPlaced of a new order through es_append (payload copied from
    a stored OrderPlaced with the order id changed), then idle in transaction until COMMIT."""
    f.stubs()
    from orders.v1 import events_pb2
    sn, sv, sh, hexp = env.rows("SELECT schema_name, schema_version, schema_hash, encode(payload, 'hex') FROM es_events "
                                "WHERE event_type = 'OrderPlaced' ORDER BY position LIMIT 1")[0]
    ev = events_pb2.OrderPlaced()
    ev.ParseFromString(bytes.fromhex(hexp))
    ev.order_id = stream_id
    ev.customer_id = "long-transaction"
    payload = ev.SerializeToString().hex()
    known = {"p_stream_type": "'order'", "p_stream_id": f"'{stream_id}'", "p_expected": "0",
             "p_command_id": f"'long-{stream_id}'", "p_record_command": "true", "p_actor": "'fault-test'",
             "p_event_ids": f"ARRAY['{uuid.uuid4()}'::uuid]", "p_event_types": "ARRAY['OrderPlaced']",
             "p_schema_names": f"ARRAY['{sn}']", "p_schema_versions": f"ARRAY[{sv}]", "p_schema_hashes": f"ARRAY['{sh}']",
             "p_payloads": f"ARRAY[decode('{payload}', 'hex')]"}
    # every input parameter by name (NULL for those not known here), so that a parameter added to
    # es_append later does not break this call; of the overloads kept for rolling upgrades, the
    # newest (most parameters)
    names = [r[0] for r in env.rows("SELECT a.n FROM (SELECT * FROM pg_proc WHERE proname = 'es_append' "
                                    "ORDER BY pronargs DESC LIMIT 1) p, unnest(p.proargnames, p.proargmodes) "
                                    "WITH ORDINALITY AS a(n, m, i) WHERE a.m = 'i' ORDER BY a.i")]
    assert set(known) <= set(names), f"es_append lost parameters this test needs: {names}"
    args = ", ".join(f"{n} => {known.get(n, 'NULL')}" for n in names)
    p = subprocess.Popen(["psql", env.pg, "-qAtX", "-v", "ON_ERROR_STOP=1"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    p.stdin.write(f"BEGIN;\nSELECT status FROM es_append({args});\n")
    p.stdin.flush()
    return p


def test_long_transaction(env):
    o = env.orderd("--payments", "0")
    t = o.target
    st, r, _ = f.call(t, "POST", "/v1/orders", f.order_body("warm-up"))
    assert st == 200, (st, r)
    f.eventually(lambda: f.call(t, "GET", f"/v1/orders/{r['order_id']}")[0] == 200, timeout=60, what="first projection")
    f.wait_converged(env, timeout=30)

    long_sid = str(uuid.uuid4())
    p = open_transaction(env, long_sid)
    def holding():
        if p.poll() is not None:
            raise AssertionError("the psql session ended: " + p.stderr.read())
        return env.rows("SELECT count(*) FROM pg_stat_activity WHERE state = 'idle in transaction' "
                        "AND backend_xid IS NOT NULL")[0][0] == "1"
    f.eventually(holding, timeout=10, what="the long transaction to hold an xid")
    t_open = time.monotonic()
    ledger = f.Ledger()
    clients = f.Clients([t], ledger, threads=4, timeout=10, retry_for=30, pause=0.05).start()
    held, oldest, not_projected = [], [], 0
    probe = None
    while time.monotonic() - t_open < HOLD_S:
        time.sleep(2)
        m = f.metrics(t)
        held.append(m.get("es_feed_held_back_events", -1))
        oldest.append(m.get("es_feed_oldest_transaction_seconds", -1))
        if probe is None:
            st, r, _ = f.call(t, "POST", "/v1/orders", f.order_body("during-hold"))
            assert st == 200, (st, r)
            probe = r["order_id"]
        # a command committed during the hold is in the store but must not be projected yet
        st, _, _ = f.call(t, "GET", f"/v1/orders/{probe}")
        if st == 404:
            not_projected += 1
        assert p.poll() is None, "the psql session ended early: " + p.stderr.read()
    clients.finish(timeout=60)
    assert env.rows(f"SELECT count(*) FROM es_events WHERE stream_id = '{long_sid}'")[0][0] == "0", \
        "the open transaction's event is visible before COMMIT?"
    pending = int(env.rows("SELECT count(*) FROM es_events e LEFT JOIN order_summary s ON s.order_id::text = e.stream_id "
                           "WHERE s.version IS DISTINCT FROM e.version AND e.version = 1")[0][0])
    out, err = p.communicate("COMMIT;\n", timeout=30)
    assert p.returncode == 0 and "ok" in out, (p.returncode, out, err)
    t_commit = time.monotonic()
    f.log(f"held {t_commit - t_open:.0f} s: es_feed_held_back_events {held}, oldest transaction {oldest}; "
          f"{pending} orders committed meanwhile were not yet projected; {f.summary_line(ledger)}")
    with ledger.mu:
        bad, unknown = list(ledger.bad), dict(ledger.unknown)
    assert not bad and not unknown, (bad[:3], list(unknown.items())[:3])
    assert max(held) > 0, f"es_feed_held_back_events never above 0 while the transaction was open: {held}"
    assert max(oldest) >= HOLD_S / 2, f"es_feed_oldest_transaction_seconds did not show the open transaction: {oldest}"
    assert not_projected >= 3, f"the feed was not held back: the probe order was projected ({not_projected})"
    assert pending > 0, "nothing was held back"
    secs = f.wait_converged(env, timeout=90, what="every held-back event to be projected")
    st, r, _ = f.call(t, "GET", f"/v1/orders/{long_sid}")
    assert st == 200 and r.get("customer_id") == "long-transaction", ("the long transaction's own event", st, r)
    f.eventually(lambda: f.metrics(t).get("es_feed_held_back_events") == 0, timeout=20, what="held-back gauge back to 0")
    f.check_store(env, ledger)
    f.check_no_dead_letters(env)
    how = f.reconcile(env)
    f.log(f"after COMMIT everything projected in {secs:.1f} s; reconciliation: {how}")


if __name__ == "__main__":
    f.main([("a transaction open for 30 s holds the feed back, loses nothing", test_long_transaction)], "txn")
