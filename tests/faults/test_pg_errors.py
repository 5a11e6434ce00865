"""Fault test: PostgreSQL refuses writes. orderd runs as a non-superuser role; then
  (a) INSERT on es_events is revoked from that role,
  (b) the database is made read-only (default_transaction_read_only, sessions reconnected),
  (c) es_events lives in a tablespace on a tmpfs that is filled up (disk full; needs root),
and in each case commands get a clear error at once (not a hang, not a 200): 503 UNAVAILABLE
(retryable) for the read-only database and the full disk, 500 INTERNAL for the missing privilege;
the answer does not leak PostgreSQL's text (no SQLSTATE, no server message) but names the request,
and orderd's log has the full cause under that request id. Nothing is written (no event, no
command record, no projection change), reads keep working, and after the cause is undone the
same commands (same Idempotency-Key) succeed.
    /usr/bin/python3 test_pg_errors.py <orderd> <es-kafka-mock>"""
import json
import os
import re
import subprocess
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import faults as f  # noqa: E402
from harness import terminate_backends  # noqa: E402 (tests/e2e, on the path through faults)

MAX_ANSWER_S = 3.0
ROLE = "orderd_app"


def app_role(env):
    env.psql(f"CREATE ROLE {ROLE} LOGIN; GRANT USAGE, CREATE ON SCHEMA public TO {ROLE}; "
             f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {ROLE}; "
             f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {ROLE}")
    return env.pg.replace("user=orderd", f"user={ROLE}")


# What an answer must never carry: SQLSTATEs, PostgreSQL's words, store internals.
LEAKS = re.compile(r"\b[0-9A-Z]{2}[0-9]{3}\b|SQLSTATE|permission denied|read-only|No space left|es_append|es_events|"
                   r"constraint|append to|\.c:|/")


def logged(o, rid, cause_words, timeout=5.0):
    """The error-level line orderd logged for request rid; it must name the cause."""
    deadline = time.monotonic() + timeout
    while True:
        lines = []
        for line in open(o.log, errors="replace"):
            try:
                j = json.loads(line)
            except ValueError:
                continue
            if j.get("correlation_id") == rid:
                lines.append(j)
        hit = [j for j in lines if j.get("level") == "error" and any(w in j.get("msg", "") for w in cause_words)]
        if hit:
            return hit[0]
        if time.monotonic() > deadline:
            raise AssertionError(f"no error line in orderd's log for request {rid} naming {cause_words}: {lines}")
        time.sleep(0.2)


def concealed(o, what, st, r, rid, want_status, cause_words):
    """A 5xx answer: the wanted status and gRPC code, a generic message naming the request, no
    internals; the cause is in the log under the same id."""
    assert st == want_status, f"{what}: answered {st} {r}, not {want_status}"
    assert isinstance(r, dict) and r.get("code") == {503: 14, 500: 13}[want_status], f"{what}: {r}"
    msg = r.get("message", "")
    assert rid in msg, f"{what}: the message does not name the request {rid}: {msg}"
    want = "PostgreSQL is unavailable; retry" if want_status == 503 else "internal error; see the server log"
    assert msg.startswith(want), f"{what}: not the generic message: {msg}"
    leak = LEAKS.search(msg.replace(rid, "<id>"))
    assert not leak, f"{what}: the answer leaks internals ({leak.group(0)!r}): {msg}"
    assert not r.get("details"), f"{what}: details leak: {r}"
    return logged(o, rid, cause_words)


def counts(env):
    return env.rows("SELECT (SELECT count(*) FROM es_events), (SELECT count(*) FROM es_commands), "
                    "(SELECT count(*) FROM order_summary)")[0]


def victim(env, o, ledger):
    """An order placed (and projected) before the fault, for a CancelOrder during it."""
    key = f"victim-{uuid.uuid4()}"
    st, r, _ = f.call(o.target, "POST", "/v1/orders", f.order_body("victim"), {"Idempotency-Key": key})
    assert st == 200, (st, r)
    ledger.ack(key, "place", r)
    f.wait_converged(env, timeout=60)
    return r["order_id"]


def refused(env, o, cause_words, what, existing, want_status):
    """Sends a PlaceOrder and a CancelOrder of `existing` (each with its own key) that must be
    refused with want_status, the cause logged, and write nothing; returns the
    [(method, path, body, key)] to retry after the cause is undone."""
    t = o.target
    before = counts(env)
    sends = [("POST", "/v1/orders", f.order_body("refused"), f"err-{uuid.uuid4()}")]
    if existing:
        sends.append(("POST", f"/v1/orders/{existing}/cancel", {"reason": "x"}, f"err-{uuid.uuid4()}"))
    answers = []
    for method, path, body, key in sends:
        rid = f"req-{uuid.uuid4()}"
        st, r, secs = f.call(t, method, path, body, {"Idempotency-Key": key, "X-Request-Id": rid}, timeout=15)
        answers.append((path, st, secs, r))
        line = concealed(o, f"{what}: {method} {path}", st, r, rid, want_status, cause_words)
        answers[-1] = (path, st, secs, {"message": r.get("message", "") + " | log: " + line["msg"][-90:]})
        f.within(secs, MAX_ANSWER_S, f"{what}: the error")
    # the failed commands wrote nothing, and nothing else changed meanwhile: once no call is in
    # flight and the projection holds every stored event, nothing more is coming
    f.wait_idle(t)
    f.wait_converged(env, timeout=30, what=f"{what}: the projection to hold every stored event")
    assert counts(env) == before, f"{what}: something was written: {before} -> {counts(env)}"
    ids = [f.command_id_for(s[3], "PlaceOrder" if s[1] == "/v1/orders" else "CancelOrder") for s in sends]
    assert env.rows("SELECT count(*) FROM es_commands WHERE command_id IN (" + ",".join(f"'{k}'" for k in ids) + ")")[0][0] == "0"
    if existing:
        st, r, _ = f.call(t, "GET", f"/v1/orders/{existing}")
        assert st == 200, f"{what}: reads must keep working: {st} {r}"
    f.check_alive(o)
    f.log(f"{what}: " + "; ".join(f"{p} -> {st} in {secs:.2f} s: {r.get('message', r)[:260] if isinstance(r, dict) else r}"
                                   for p, st, secs, r in answers))
    return sends


def retried_ok(env, o, sends, ledger, what):
    """After the cause is undone the same commands succeed (within a few seconds: pools reconnect)."""
    t0 = time.monotonic()
    for method, path, body, key in sends:
        def ok():
            try:
                st, r, _ = f.call(o.target, method, path, body, {"Idempotency-Key": key}, timeout=10)
            except OSError:
                return None
            return (st, r) if st == 200 else None
        st, r = f.eventually(ok, timeout=20, interval=0.5, what=f"{what}: {path} to succeed after the undo")
        assert not r.get("replayed"), f"{what}: a refused command was replayed as if it had succeeded: {r}"
        ledger.ack(key, path, r)
    f.log(f"{what}: undone; the refused commands succeeded {time.monotonic() - t0:.1f} s later")


def disk_full(env, o, ledger):
    """(c): returns None when tmpfs cannot be mounted (not root)."""
    mnt = os.path.join(env.dir, "small")
    os.makedirs(mnt, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700,uid=postgres", "tmpfs", mnt],
                       capture_output=True, text=True)
    if r.returncode != 0:
        f.log("disk-full case not run (cannot mount a tmpfs):", r.stderr.strip())
        return None
    env.cleanup.append(lambda: subprocess.run(["umount", "-l", mnt], capture_output=True))
    env.psql(f"CREATE TABLESPACE small LOCATION '{mnt}'")
    # es_events is partitioned: the parent holds no rows, so each partition moves (the one the
    # appends land in among them).
    env.psql("DO $$ DECLARE p text; BEGIN FOR p IN SELECT name FROM es_events_partitions() LOOP "
             "EXECUTE format('ALTER TABLE %I SET TABLESPACE small', p); END LOOP; END $$")
    filler = os.path.join(mnt, "filler")
    free = os.statvfs(mnt).f_bavail * os.statvfs(mnt).f_frsize
    with open(filler, "wb") as fh:  # leave ~48 kB: a few pages of events
        fh.write(b"\0" * max(0, free - 48 * 1024))
    t = o.target
    placed = 0
    start = counts(env)
    t_fill = time.monotonic()
    for i in range(400):
        key, rid = f"fill-{uuid.uuid4()}", f"req-{uuid.uuid4()}"
        st, r, secs = f.call(t, "POST", "/v1/orders", f.order_body("fill"), {"Idempotency-Key": key, "X-Request-Id": rid},
                             timeout=15)
        if st == 200:
            ledger.ack(key, "place", r)
            placed += 1
            continue
        # the first append that needs a new page fails (later small ones may still fit in free space)
        # a full disk is retryable: 503 UNAVAILABLE, the cause (SQLSTATE 53100) in the log only
        line = concealed(o, "(c) disk full", st, r, rid, 503, ("No space left", "53100"))
        msg = r.get("message", "") + " | log: " + line["msg"][-90:]
        f.within(secs, MAX_ANSWER_S, "(c) disk full: the error")
        f.wait_idle(o.target)   # every command answered so far has finished writing
        # the store holds exactly the orders placed before (the projection may still be applying them)
        want = [str(int(start[0]) + placed), str(int(start[1]) + placed)]
        assert counts(env)[:2] == want, f"(c) disk full: something was written: {want} -> {counts(env)}"
        assert env.rows(f"SELECT count(*) FROM es_commands WHERE command_id = '{f.command_id_for(key, 'PlaceOrder')}'")[0][0] == "0"
        f.check_alive(o)
        f.log(f"(c) disk full after {placed} more orders in {time.monotonic() - t_fill:.1f} s: /v1/orders -> {st} in {secs:.2f} s: {msg[:150]}")
        sends = [("POST", "/v1/orders", f.order_body("fill"), key)]
        break
    else:
        raise AssertionError("the tablespace never filled up")
    os.remove(filler)
    retried_ok(env, o, sends, ledger, "(c) disk full")
    return placed


def test_write_errors(env):
    # migrate as the owner, then serve as a role with ordinary table privileges
    owner = env.orderd("--payments", "0")
    st, r, _ = f.call(owner.target, "POST", "/v1/orders", f.order_body("owner"))
    assert st == 200, (st, r)
    f.eventually(lambda: f.call(owner.target, "GET", f"/v1/orders/{r['order_id']}")[0] == 200, timeout=60,
                 what="first projection")
    owner.stop()
    app = app_role(env)
    o = env.orderd("--payments", "0", pg=app)
    t = o.target
    ledger = f.Ledger()
    for _ in range(5):
        key = f"ok-{uuid.uuid4()}"
        st, r, _ = f.call(t, "POST", "/v1/orders", f.order_body("app"), {"Idempotency-Key": key})
        assert st == 200, ("as the application role", st, r)
        ledger.ack(key, "place", r)
    f.wait_converged(env, timeout=60)

    # (a) privilege revoked
    v = victim(env, o, ledger)
    env.psql(f"REVOKE INSERT ON es_events FROM {ROLE}")
    sends = refused(env, o, ("permission denied",), "(a) INSERT revoked", v, 500)
    env.psql(f"GRANT INSERT ON es_events TO {ROLE}")
    retried_ok(env, o, sends, ledger, "(a) INSERT revoked")

    # (b) read-only database; existing sessions are closed so that every pool reconnects
    def kick():
        terminate_backends(env.psql, f"usename = '{ROLE}'")
    v = victim(env, o, ledger)
    env.psql("ALTER DATABASE orderd SET default_transaction_read_only = on")
    kick()
    sends = refused(env, o, ("read-only",), "(b) read-only database", v, 503)
    env.psql("ALTER DATABASE orderd RESET default_transaction_read_only",  # from another database: this one is read-only
             conninfo=env.pg.replace("dbname=orderd", "dbname=postgres"))
    kick()
    retried_ok(env, o, sends, ledger, "(b) read-only database")

    # (c) disk full
    filled = disk_full(env, o, ledger)

    f.check_alive(o)
    f.check_store(env, ledger)
    secs = f.wait_converged(env, timeout=90)
    f.check_no_dead_letters(env)
    how = f.reconcile(env)
    f.log(f"all cases refused clearly and recovered; disk-full case: "
          f"{'not run' if filled is None else 'run'}; converged in {secs:.1f} s; reconciliation: {how}")


if __name__ == "__main__":
    f.main([("permission, read-only and disk-full errors surface clearly, write nothing", test_write_errors)], "errors")
