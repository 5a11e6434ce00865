"""Fault test: orderd with a read replica (pg-read = a streaming standby made by
`scripts/pg.sh standby`, i.e. pg_basebackup -R). Reads with min_version see the caller's own
writes and are served by the replica (es_pg_replica_checkouts_total, and the standby's
pg_stat_activity shows orderd's read sessions); with the standby's replay paused a read asking
for a version the replica does not show yet waits (parked) while the primary already has it,
is answered 409 ABORTED at min-version-wait-ms (a second instance with a short wait), and
completes once replay resumes; with the standby stopped reads fall back to the primary
(200, es_pg_replica_fallbacks_total grows, one log line names the replica); with it started
again reads return to it; a read the standby cancels (40001, as a recovery conflict) is served
by the primary, the replica staying up.
    /usr/bin/python3 test_replica.py <orderd> <es-kafka-mock>"""
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import faults as f  # noqa: E402

WAIT_MS = 30000        # min-version-wait-ms: longer than the paused replay below
SHORT_WAIT_MS = 1500   # the second instance's min-version-wait-ms: its read times out while replay is paused
PAUSED_S = 2.0         # the parked read must still be waiting after this long with replay paused


def replica_metrics(t):
    m = f.metrics(t)
    return {k: m.get(f"es_pg_replica_{k}", 0) for k in ("up", "checkouts_total", "fallbacks_total")}


def get(t, oid, min_version=None, timeout=WAIT_MS / 1000 + 10):
    """A read whose client waits longer than orderd's min-version-wait-ms: orderd answers first."""
    q = f"?min_version={min_version}" if min_version is not None else ""
    return f.call(t, "GET", f"/v1/orders/{oid}{q}", timeout=timeout)


def place(t, customer):
    status, r, _ = f.call(t, "POST", "/v1/orders", f.order_body(customer))
    assert status == 200, (status, r)
    return r["order_id"], int(r["version"])


def test_replica(env):
    replica = start_standby(env)
    o = env.orderd("--payments", "0", "--pg-read", replica, "--min-version-wait-ms", str(WAIT_MS))
    t = o.target
    # Every partition of the projection held (the group's first rebalance took longer than a
    # client's patience once on a loaded machine): then a read's wait is the replica's alone.
    f.eventually(lambda: f.metrics(t).get(f'es_consumer_assigned_partitions{{consumer="{f.PROJECTION}"}}', 0)
                 == f.PARTITIONS, timeout=60, what="the projection's partitions assigned")
    m0 = replica_metrics(t)

    # ---- read-your-writes through the replica ----
    for i in range(5):
        oid, v = place(t, f"replica-{i}")
        status, r, _ = get(t, oid, min_version=v)
        assert status == 200 and int(r["version"]) >= v, (status, r)
    m1 = replica_metrics(t)
    assert m1["checkouts_total"] >= m0["checkouts_total"] + 5, (m0, m1)
    assert m1["fallbacks_total"] == 0 and m1["up"] == 1, m1
    sessions = env.psql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'orderd-read'", replica)
    assert int(sessions) >= 1, f"no orderd-read session on the standby ({sessions})"
    f.log(f"5 reads with min_version served by the replica ({sessions} session(s) there)")

    # ---- replay paused: min_version waits, then completes after resume ----
    # A second instance with a short wait shows the timeout's answer (409 ABORTED, as without a replica).
    short = env.orderd("--payments", "0", "--pg-read", replica, "--min-version-wait-ms", str(SHORT_WAIT_MS))
    env.psql("SELECT pg_wal_replay_pause()", replica)
    f.eventually(lambda: env.psql("SELECT pg_get_wal_replay_pause_state()", replica) == "paused", timeout=30,
                 what="replay paused")
    oid, v = place(t, "replica-paused")
    answer = {}

    def reader():
        answer["r"] = get(t, oid, min_version=v)
    th = threading.Thread(target=reader, daemon=True)
    th.start()
    # The primary's read model has the order; the replica cannot show it while replay is paused.
    f.eventually(lambda: env.psql(f"SELECT count(*) FROM order_summary WHERE order_id = '{oid}'") == "1",
                 timeout=60, what="the order on the primary's read model")
    t_paused = time.monotonic()
    f.eventually(lambda: f.metrics(t).get("es_waiting_reads", 0) >= 1 or not th.is_alive(), timeout=30,
                 what="the read parked")
    # Waiting on a condition that must NOT happen: the read stays parked while replay is paused.
    while time.monotonic() - t_paused < PAUSED_S:
        assert th.is_alive(), f"the read was answered from a replica that is behind: {answer}"
        th.join(0.1)
    assert env.psql(f"SELECT count(*) FROM order_summary WHERE order_id = '{oid}'", replica) == "0"
    status, r, secs = get(short.target, oid, min_version=v)
    assert status == 409 and r.get("code") == 10, (status, r)
    assert secs >= SHORT_WAIT_MS / 1000 - 0.1, f"answered after {secs:.2f} s, before min-version-wait-ms"
    f.within(secs, SHORT_WAIT_MS / 1000 + 3, "the timeout's answer with replay paused")
    f.log(f"replay paused: the short-wait instance answered 409 ABORTED after {secs:.2f} s")
    env.psql("SELECT pg_wal_replay_resume()", replica)
    t_resume = time.monotonic()
    th.join(WAIT_MS / 1000 + 15)
    assert not th.is_alive(), "the parked read never finished"
    status, r, _ = answer["r"]
    assert status == 200 and int(r["version"]) >= v, (status, r)
    f.log(f"parked read answered {time.monotonic() - t_resume:.2f} s after replay resumed")
    f.within(time.monotonic() - t_resume, 5.0, "parked read after resume")

    # ---- the replica stopped: reads fall back to the primary ----
    standby_ctl(env, "stop")
    before = replica_metrics(t)
    for i in range(3):
        oid, v = place(t, f"replica-down-{i}")
        status, r, secs = get(t, oid, min_version=v)
        assert status == 200 and int(r["version"]) >= v, (status, r)
        f.within(secs, 3.0, "a read with the replica down")
    after = replica_metrics(t)
    assert after["fallbacks_total"] >= before["fallbacks_total"] + 3, (before, after)
    assert after["up"] == 0, after
    assert "read replica unavailable" in f.tail_log(o, 200000), "no log line about the replica"
    f.log(f"replica down: reads served by the primary (fallbacks {after['fallbacks_total']:.0f})")

    # ---- the replica back: reads return to it ----
    standby_ctl(env, "start")

    def served_by_replica():
        b = replica_metrics(t)
        status, _, _ = get(t, oid, min_version=v)
        a = replica_metrics(t)
        return status == 200 and a["fallbacks_total"] == b["fallbacks_total"] and \
            a["checkouts_total"] > b["checkouts_total"]
    f.eventually(served_by_replica, timeout=30, interval=0.2, what="reads served by the replica again")
    assert "read replica answers again" in f.tail_log(o, 200000)

    # ---- a read the replica cancels (a conflict with its replay): the primary serves it ----
    # A real recovery conflict needs a standby query that outlives the replay's patience; the
    # standby's error is the same SQLSTATE (40001) when order_summary becomes, on the primary, a
    # view whose condition raises it only where pg_is_in_recovery() (replicated like any DDL).
    oid, v = place(t, "replica-conflict")
    status, _, _ = get(t, oid, min_version=v)
    assert status == 200, status
    env.psql("BEGIN; CREATE FUNCTION test_replay_conflict() RETURNS boolean LANGUAGE plpgsql STABLE AS "
             "$$BEGIN IF pg_is_in_recovery() THEN RAISE EXCEPTION 'canceling statement due to conflict with "
             "recovery' USING ERRCODE = 'serialization_failure'; END IF; RETURN true; END$$; "
             "ALTER TABLE order_summary RENAME TO order_summary_t; "
             "CREATE VIEW order_summary AS SELECT * FROM order_summary_t WHERE test_replay_conflict(); COMMIT")
    f.eventually(lambda: env.psql("SELECT count(*) FROM pg_views WHERE viewname = 'order_summary'", replica) == "1",
                 timeout=30, what="the view replayed on the standby")
    before = replica_metrics(t)
    for _ in range(3):
        status, r, _ = get(t, oid, min_version=v)
        assert status == 200 and r["order_id"] == oid, (status, r)
    after = replica_metrics(t)
    assert after["fallbacks_total"] >= before["fallbacks_total"] + 3, (before, after)
    assert after["up"] == 1, after
    assert "the read replica cancelled a read" in f.tail_log(o, 200000), "no log line about the cancelled read"
    f.log(f"reads the replica cancelled: served by the primary (fallbacks {after['fallbacks_total']:.0f})")
    f.check_alive(o, short)


def start_standby(env):
    """A streaming standby of env's PostgreSQL on a quiet port (so that a restart gets it back);
    destroyed with the environment."""
    env.standby_port = f.quiet_port()
    env.cleanup.insert(0, lambda: subprocess.run([f"{f.ROOT}/scripts/pg.sh", "destroy", f"{env.dir}/replica"],
                                                 capture_output=True))
    r = subprocess.run([f"{f.ROOT}/scripts/pg.sh", "standby", f"{env.dir}/replica", f"{env.dir}/pg",
                        str(env.standby_port)], capture_output=True, text=True, timeout=180)
    if r.returncode != 0:
        raise RuntimeError("pg.sh standby: " + r.stderr)
    env.replica = r.stdout.strip()
    f.eventually(lambda: env.psql("SELECT pg_is_in_recovery()", env.replica, check=False) == "t", timeout=60,
                 what="the standby answering")
    return env.replica


def standby_ctl(env, cmd):
    args = [f"{f.ROOT}/scripts/pg.sh", cmd if cmd != "start" else "standby", f"{env.dir}/replica"]
    if cmd == "start":
        args += [f"{env.dir}/pg"]
    r = subprocess.run(args, capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise RuntimeError(f"pg.sh {cmd} (standby): {r.stderr}")
    if cmd == "start" and r.stdout.strip() != env.replica:
        raise RuntimeError(f"the standby came back on another conninfo ({r.stdout.strip()})")


if __name__ == "__main__":
    f.main([("reads from a streaming replica: read-your-writes, paused replay, fallback", test_replica)], "replica")
