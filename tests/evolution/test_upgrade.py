"""Day 2: a database an earlier release created, with orders in it, meets a binary whose read model
has a column more. The changed projection shape makes orderd build the new version of the table
beside the serving one from the event store, switch to it and then apply the held-back migration,
before its consumer runs, so the rows written before carry the new column's value; /readyz stays
ready (the old version serves; tests/evolution/test_shape_switch.py holds the build to read it);
orders placed during and after are read; nothing is dead-lettered; orderctl verify is clean; a
second restart does not rebuild again. Usage: /usr/bin/python3 test_upgrade.py <orderd> <es-kafka-mock> <orderctl>"""
import os
import subprocess
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "e2e"))
from harness import Cluster, Runner, eventually, readyz  # noqa: E402
from test_orders import order_body  # noqa: E402

N_BEFORE = 40


def place(o, customer):
    status, r = o.request("POST", "/v1/orders", order_body(customer=customer))
    assert status == 200, (status, r)
    return r["order_id"]


def projected(cluster, customer, n):
    return int(cluster.psql(f"SELECT count(*) FROM order_summary WHERE customer_id = '{customer}'")) == n


def test_upgrade(cluster, orderctl):
    o = cluster.start_orderd("--payment-delay-ms", "0")
    before = [place(o, "day1") for _ in range(N_BEFORE)]
    eventually(lambda: projected(cluster, "day1", N_BEFORE), timeout=120, what="day-1 orders in the read model")
    # Every order is paid by the payment flow: wait until the read model shows it.
    eventually(lambda: cluster.psql("SELECT count(*) FROM order_summary WHERE customer_id = 'day1' "
                                    "AND payment_status = 'PAYMENT_STATUS_PAID'") == str(N_BEFORE),
               timeout=120, what="day-1 orders paid")
    shape = cluster.psql("SELECT shape_hash || ' ' || built_at FROM es_projection_shapes WHERE name = 'order_summary'")
    assert shape, "the shape of a new database is recorded"
    o.stop()

    # The database as the previous release left it: the read model without a column this release
    # has, no shape recorded, and migrations recorded under the previous texts' hashes.
    cluster.psql("ALTER TABLE order_summary DROP COLUMN payment_method; DROP TABLE es_projection_shapes; "
                 "UPDATE es_migrations SET hash = 'previous-release-' || name")

    o = cluster.start_orderd("--payment-delay-ms", "0")
    # /readyz answers from the start and stays ready: the old version serves while the new one is
    # built (only a first build, of a table with no rows, is unready).
    seen = []
    placed_during = []

    def watch():
        def ready():
            status, body = readyz(o)
            seen.append((status, body))
            return status == 200
        eventually(ready, timeout=180, interval=0.02, what="/readyz after the upgrade")

    t = threading.Thread(target=watch)
    t.start()
    placed_during.append(place(o, "day2"))
    t.join()
    for status, body in seen:
        assert status == 200 and body["projections"] is True, ("not ready while the old version serves", body)
    assert seen[-1][0] == 200 and seen[-1][1]["projections"] is True, seen[-1]
    assert seen[-1][1]["dead_letters"] == 0 and seen[-1][1]["parked_streams"] == 0, seen[-1]
    after = [place(o, "day2") for _ in range(5)]
    eventually(lambda: projected(cluster, "day2", 1 + len(after)), timeout=120, what="day-2 orders in the read model")
    # The column is back, and rows written before the upgrade have its value (backfilled, not NULL).
    nulls = cluster.psql("SELECT count(*) FROM order_summary WHERE customer_id IN ('day1', 'day2') "
                         "AND payment_method IS NULL")
    assert nulls == "0", f"{nulls} rows without the new column's value"
    for oid in before[:3] + placed_during + after[:1]:
        status, r = o.request("GET", f"/v1/orders/{oid}")
        assert status == 200 and r["payment_method"] == "card", (status, r)
    dead = cluster.psql("SELECT count(*) FROM es_dead_letters")
    assert dead == "0", f"{dead} dead letters after the upgrade"
    new_shape = cluster.psql("SELECT shape_hash || ' ' || built_at FROM es_projection_shapes WHERE name = 'order_summary'")
    assert new_shape and new_shape.split()[0] == shape.split()[0], (shape, new_shape)
    eventually(lambda: cluster.psql("SELECT count(*) FROM order_summary WHERE customer_id = 'day2' AND "
                                    "payment_status = 'PAYMENT_STATUS_PAID'") == str(1 + len(after)),
               timeout=120, what="day-2 orders paid")
    env = dict(os.environ, ORDERD_PG=cluster.pg)
    p = subprocess.run([orderctl, "verify"], capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0 and "0 differences" in p.stdout, (p.returncode, p.stdout[-2000:], p.stderr[-2000:])
    o.stop()

    # A restart at the same shape rebuilds nothing.
    o = cluster.start_orderd("--payment-delay-ms", "0")
    eventually(lambda: readyz(o)[0] == 200, timeout=60, what="/readyz after a plain restart")
    again = cluster.psql("SELECT shape_hash || ' ' || built_at FROM es_projection_shapes WHERE name = 'order_summary'")
    assert again == new_shape, (new_shape, again)
    o.stop()


def main():
    orderd, mock, orderctl = sys.argv[1], sys.argv[2], sys.argv[3]
    runner = Runner()
    cluster = Cluster(orderd, mock)
    try:
        cluster.start_infra()
        runner.run("upgrade: a column added to the read model of a database with orders", test_upgrade, cluster,
                   orderctl)
    finally:
        cluster.stop()
    return runner.finish()


if __name__ == "__main__":
    sys.exit(main())
