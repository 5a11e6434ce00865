"""Fault test: SIGKILL orderd at random moments (under load, and during its own start-up) while 8
client threads send commands; restart it each time. Afterwards every acknowledged command's events
are in the store exactly once, no stream has a gap, the relay and projector converge and the
reconciliation check finds no difference (docs/ARCHITECTURE.md invariants 1, 3, 5, 6).
    /usr/bin/python3 test_kill.py <orderd> <es-kafka-mock>"""
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import faults as f  # noqa: E402

LOAD_SECONDS = float(os.environ.get("FAULTS_KILL_SECONDS", "25"))


def restart(env, old, wait=True):
    """orderd again on the same ports (clients keep their address); other ports if those are taken."""
    try:
        return env.orderd("--payments", "0", http_port=old.http_port, grpc_port=old.grpc_port, wait=wait)
    except RuntimeError as e:
        if "exited" not in str(e):
            raise
        f.log("restart on the same ports failed; new ports:", str(e)[:200])
        o = env.orderd("--payments", "0", wait=wait)
        old.target.port = o.http_port
        o.target = old.target
        return o


def test_sigkill_under_load(env):
    o = env.orderd("--payments", "0")
    target = o.target
    ledger = f.Ledger()
    clients = f.Clients([target], ledger, threads=8, timeout=10, retry_for=90).start()
    rnd = random.Random()
    kills, startup_kills = 0, 0
    t0 = time.time()
    while (time.time() < t0 + LOAD_SECONDS or kills < 5) and time.time() < t0 + 3 * LOAD_SECONDS:
        time.sleep(rnd.uniform(0.5, 4.0))
        f.kill9(o)
        kills += 1
        f.log(f"SIGKILL #{kills}: {f.summary_line(ledger)}")
        time.sleep(rnd.uniform(0.0, 0.5))
        if kills % 3 == 0:
            # a kill during start-up: migrations, relay lock, consumer join are in progress
            o = restart(env, o, wait=False)
            o.target = target
            time.sleep(rnd.uniform(0.05, 1.0))
            f.kill9(o)
            startup_kills += 1
            f.log(f"SIGKILL during start-up #{startup_kills}")
        nxt = restart(env, o)
        nxt.target = target
        o = nxt
    f.wait_acks(ledger, 20, timeout=90, what="commands acknowledged by the last instance")
    clients.finish(timeout=120)
    f.check_alive(o)
    f.log("load done:", f.summary_line(ledger))
    f.log("refusals:", ledger.refusals)
    with ledger.mu:
        unknown, bad, acks = dict(ledger.unknown), list(ledger.bad), len(ledger.acks)
    assert not bad, f"answers other than 2xx/4xx/503: {bad[:5]}"
    assert not unknown, f"{len(unknown)} commands never got an answer although orderd came back: {list(unknown.items())[:3]}"
    assert acks >= 200 and kills >= 5, f"too little happened: {acks} acknowledged commands, {kills} kills"
    n = f.check_store(env, ledger)
    secs = f.wait_converged(env, timeout=120)
    f.check_no_dead_letters(env)
    how = f.reconcile(env)
    m = f.eventually(lambda: (m := f.metrics(target)) and m.get("es_relay_lag_events") == 0 and m, timeout=30,
                     what="relay lag 0")
    assert m["es_relay_active"] == 1, m
    f.log(f"{kills} kills ({startup_kills} more during start-up), {acks} acknowledged commands, {n} events; "
          f"projections converged {secs:.1f} s after the load; reconciliation: {how}")


if __name__ == "__main__":
    f.main([("SIGKILL orderd at random moments under 8 clients", test_sigkill_under_load)], "kill")
