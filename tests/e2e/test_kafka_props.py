"""Kafka client properties from orderd's configuration reach librdkafka: "kafka.<property>" keys
from flags, the environment (ORDERD_KAFKA__<PROPERTY>) and the config file; unknown properties,
bad values and the properties orderd owns are refused at start naming the key (exit 2); a
security setting the mock cluster does not speak (SASL) keeps the relay from Kafka, which
/readyz reports, while the same orderd without it delivers.
Usage: /usr/bin/python3 test_kafka_props.py <orderd> <es-kafka-mock>"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from harness import eventually, free_port, e2e_main  # noqa: E402
from test_orders import order_body  # noqa: E402


def run_orderd(cluster, *args, env=None):
    cmd = [cluster.orderd_bin, "--pg", cluster.pg, "--kafka-bootstrap-file", cluster.bootstrap_file,
           "--http-listen", f"127.0.0.1:{free_port()}", "--grpc-listen", f"127.0.0.1:{free_port()}",
           "--auth", "disabled"] + list(args)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=dict(os.environ, **(env or {})))


def test_refused_at_start(cluster):
    for args, env, key in (
            (("--kafka.no.such.property", "1"), None, "kafka.no.such.property"),
            (("--kafka.socket.timeout.ms", "not-a-number"), None, "kafka.socket.timeout.ms"),
            (("--kafka.acks", "0"), None, "kafka.acks"),
            ((), {"ORDERD_KAFKA__ENABLE_IDEMPOTENCE": "false"}, "kafka.enable.idempotence"),
            (("--kafka.Bad Name", "1"), None, "kafka.Bad Name")):
        p = run_orderd(cluster, *args, env=env)
        assert p.returncode != 0 and key in p.stderr, (args, env, p.returncode, p.stderr[-1500:])


def test_config_file_and_print(cluster):
    conf = os.path.join(cluster.dir, "kafka.conf")
    with open(conf, "w") as f:
        f.write("kafka.client.id = from-the-file\nkafka.socket.timeout.ms = 30000\n")
    p = run_orderd(cluster, "--config", conf, "--kafka.socket.timeout.ms", "45000", "--print-config",
                   env={"ORDERD_KAFKA__MESSAGE_MAX_BYTES": "2000000"})
    assert p.returncode in (0, 1), (p.returncode, p.stderr)
    out = p.stdout
    assert 'kafka.client.id = "from-the-file"' in out, out[-800:]
    assert 'kafka.socket.timeout.ms = "45000"' in out, out[-800:]  # the flag wins over the file
    assert 'kafka.message.max.bytes = "2000000"' in out, out[-800:]


def test_properties_reach_the_relay(cluster):
    # SASL against the mock cluster, which speaks no SASL: the relay cannot deliver.
    o = cluster.start_orderd("--kafka.security.protocol", "SASL_PLAINTEXT", "--kafka.sasl.mechanisms", "PLAIN",
                             "--kafka.sasl.username", "u", "--kafka.sasl.password", "p",
                             "--projections", "0", "--payments", "0", ready=False)
    status, r = o.request("POST", "/v1/orders", order_body(customer="kafka-props"))
    assert status == 200, (status, r)  # commands do not need Kafka
    eventually(lambda: o.request("GET", "/readyz")[0] == 503 and o.request("GET", "/readyz")[1].get("kafka") is False,
               timeout=60, what="/readyz to report Kafka unreachable with SASL set")
    o.stop()
    # The same orderd without the SASL properties delivers the event.
    o = cluster.start_orderd("--projections", "0", "--payments", "0")
    eventually(lambda: o.request("GET", "/readyz")[0] == 200, timeout=60, what="/readyz with Kafka reachable")
    eventually(lambda: cluster.psql("SELECT count(*) FROM es_events e WHERE e.position <= "
                                    "(SELECT position FROM es_relay_checkpoint LIMIT 1)") != "0",
               timeout=60, what="the relay's checkpoint to pass the event")
    o.stop()


def run(cluster, runner, stubs):
    runner.run("kafka.* properties refused at start, naming the key", test_refused_at_start, cluster)
    runner.run("kafka.* from the file, the environment and flags", test_config_file_and_print, cluster)
    runner.run("kafka.* properties reach the relay's client", test_properties_reach_the_relay, cluster)


if __name__ == "__main__":
    e2e_main(run)
