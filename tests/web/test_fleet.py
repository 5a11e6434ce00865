"""End to end: the fleet dashboard. Two orderd instances share PostgreSQL and the mock Kafka
cluster, with authentication on; the first lists in its `fleet` key both instances, a dead URL (no
listener), a silent instance (accepts, never answers), an endless one (sends a body that never
ends), a dripping one (a byte every 100 ms) and one answering in chunks. Checks that /fleet/metrics needs an admin token, that it answers at once whatever the
instances do (each fetch bounded by fleet-timeout-ms and the size cap, see
runtime/include/es/fleet.h), and drives /fleet in Chromium (tests/web/fleet_browser.js) while
orders are placed on both instances: both show non-zero calls per second and the dead ones are
marked down.

  test_fleet.py <orderd> <es-kafka-mock> <artefact dir>
"""
import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "e2e"))
import harness  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
TIMEOUT_MS = 1500
ADMIN, CUSTOMER = "tok-fleet-admin-secret", "tok-fleet-customer-secret"


def start_orderd_on(cluster, http, *extra):
    """harness.Cluster.start_orderd on a chosen HTTP port (the fleet key names it before start)."""
    grpc_port = harness.free_port()
    log = open(os.path.join(cluster.dir, f"orderd-{http}.log"), "w")
    args = [cluster.orderd_bin, "--pg", cluster.pg, "--kafka-bootstrap-file", cluster.bootstrap_file,
            "--http-listen", f"127.0.0.1:{http}", "--grpc-listen", f"127.0.0.1:{grpc_port}"] + list(extra)
    p = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    inst = harness.Orderd(p, http, grpc_port, log.name)
    cluster.procs.append(inst)
    inst.wait_ready()
    return inst


class Silent:
    """Accepts connections (the kernel completes the handshake) and never answers."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]


class Endless:
    """Answers 200 and then sends a body that never ends, for as long as the client reads."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.sent = 0
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            conn, _ = self.sock.accept()
            threading.Thread(target=self.flood, args=(conn,), daemon=True).start()

    def flood(self, conn):
        chunk = b"# " + b"x" * 65000 + b"\n"
        try:
            conn.recv(4096)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n")
            while True:
                conn.sendall(chunk)
                self.sent += len(chunk)
        except OSError:
            pass
        finally:
            conn.close()


class Scripted:
    """Answers each connection with fn(conn) on a thread of its own."""

    def __init__(self, fn):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.fn = fn
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            conn, _ = self.sock.accept()
            threading.Thread(target=self.run, args=(conn,), daemon=True).start()

    def run(self, conn):
        try:
            conn.recv(4096)
            self.fn(conn)
        except OSError:
            pass
        finally:
            conn.close()


def drip(conn):
    """Headers, then a byte every 100 ms: each read succeeds, the answer never completes. Only a
    deadline over the whole fetch (not one per read) ends it."""
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n")
    while True:
        conn.sendall(b"#")
        time.sleep(0.1)  # the fake instance's pace (a test condition waits elsewhere)


CHUNKED_TEXT = "# TYPE es_relay_active gauge\nes_relay_active 0\n# TYPE es_requests_total counter\n" \
               "es_requests_total{method=\"PlaceOrder\",transport=\"http\",code=\"OK\"} 7\n"


def chunked(conn):
    """A well-formed chunked answer in small chunks, with an extension and a trailer."""
    body = CHUNKED_TEXT.encode()
    out = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
    for i in range(0, len(body), 17):
        part = body[i:i + 17]
        out += b"%x;ext=1\r\n" % len(part) + part + b"\r\n"
    conn.sendall(out + b"0\r\nX-Trailer: t\r\n\r\n")


def get(inst, path, token=None):
    req = urllib.request.Request(inst.base + path)
    if token:
        req.add_header("Authorization", "Bearer " + token)
    t = time.monotonic()
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, dict((k.lower(), v) for k, v in r.headers.items()), r.read(), time.monotonic() - t
    except urllib.error.HTTPError as e:
        return e.code, dict((k.lower(), v) for k, v in e.headers.items()), e.read(), time.monotonic() - t


def test_auth(a):
    status, headers, body, _ = get(a, "/fleet/metrics")
    assert status == 401 and headers.get("www-authenticate") == "Bearer", (status, headers, body)
    assert json.loads(body)["code"] == 16, body
    status, _, body, _ = get(a, "/fleet/metrics", CUSTOMER)
    assert status == 403 and json.loads(body)["code"] == 7, (status, body)
    status, headers, body, _ = get(a, "/fleet/metrics", ADMIN)
    assert status == 200 and headers["content-type"].startswith("application/json"), (status, headers)
    assert len(json.loads(body)["instances"]) == 7, body[:500]
    # The page itself is public (it asks for the token), held to the same policy as the timeline.
    status, headers, body, _ = get(a, "/fleet")
    assert status == 200 and headers["content-type"].startswith("text/html"), (status, headers)
    assert b'<script src="/static/fleet.js"' in body
    assert "script-src 'self'" in headers.get("content-security-policy", ""), headers
    for path in ("/fleet", "/static/fleet.js"):
        text = get(a, path)[2].decode()
        assert "http://" not in text and "https://" not in text, f"{path} names an absolute URL"
    assert b'href="/fleet"' in get(a, "/")[2], "the timeline page does not link the fleet page"


def test_self_only(b, cluster):
    """Without the fleet key the view shows this instance alone, from its own metrics; a URL that
    is not http:// stops orderd at start naming the key."""
    status, _, body, _ = get(b, "/fleet/metrics", ADMIN)
    assert status == 200, status
    only = json.loads(body)["instances"]
    assert len(only) == 1 and only[0]["url"] == "self" and only[0]["state"] == "up", only
    assert "es_consumer_lag_messages" in only[0]["metrics"], only[0]["metrics"][:300]
    r = subprocess.run([cluster.orderd_bin, "--pg", cluster.pg, "--kafka-bootstrap-file", cluster.bootstrap_file,
                        "--http-listen", "127.0.0.1:0", "--grpc-listen", "127.0.0.1:0", "--auth", "disabled",
                        "--fleet", "http://127.0.0.1:1,https://orderd-2:8080"], capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "fleet" in r.stderr and "https://orderd-2:8080" in r.stderr, (r.returncode, r.stderr[-2000:])


def test_bounded(a, urls, endless):
    """Every answer comes at once; within a few scraping rounds each instance has its verdict."""
    verdicts = {}
    slowest = 0.0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status, _, body, took = get(a, "/fleet/metrics", ADMIN)
        slowest = max(slowest, took)
        assert status == 200, status
        verdicts = {i["url"]: i for i in json.loads(body)["instances"]}
        if all(i["state"] != "pending" for i in verdicts.values()) and \
                all(verdicts[u]["state"] == "down" for u in (urls["dead"], urls["silent"], urls["endless"], urls["drip"])):
            break
        time.sleep(0.2)  # polling pace of a condition, not a wait for time to pass
    show = {u: (i["state"], i["error"]) for u, i in verdicts.items()}
    assert verdicts[urls["a"]]["state"] == "up" and verdicts[urls["b"]]["state"] == "up", show
    assert "es_requests_total" in verdicts[urls["b"]]["metrics"] or "es_relay_active" in verdicts[urls["b"]]["metrics"], show
    assert verdicts[urls["dead"]]["state"] == "down" and "connect" in verdicts[urls["dead"]]["error"], show
    assert verdicts[urls["silent"]]["state"] == "down" and f"within {TIMEOUT_MS} ms" in verdicts[urls["silent"]]["error"], show
    d = verdicts[urls["drip"]]
    assert d["state"] == "down" and f"within {TIMEOUT_MS} ms" in d["error"] and d["duration_ms"] <= TIMEOUT_MS + 500, show
    assert verdicts[urls["chunked"]]["state"] == "up" and verdicts[urls["chunked"]]["metrics"] == CHUNKED_TEXT, verdicts[urls["chunked"]]
    e = verdicts[urls["endless"]]
    assert e["state"] == "down" and ("larger than" in e["error"] or f"within {TIMEOUT_MS} ms" in e["error"]), show
    assert e["metrics"] is None
    # The handler formats what the scraping threads stored: no answer waits for a fetch (a
    # waiting one would take at least the silent instance's whole timeout).
    assert slowest < TIMEOUT_MS / 1000, f"a /fleet/metrics answer took {slowest:.2f} s"
    # A silent instance's fetch takes its timeout, no longer: the scrape's own duration says so.
    assert verdicts[urls["silent"]]["duration_ms"] <= TIMEOUT_MS + 500, verdicts[urls["silent"]]
    print(f"  endless instance sent {endless.sent} bytes before being cut; slowest answer {slowest * 1000:.0f} ms", flush=True)


def run_browser(a, b, urls, artefacts):
    env = dict(os.environ, ORDERD_BASE=a.base, ORDERD_BASE_B=b.base, TOKEN=ADMIN, URL_A=urls["a"], URL_B=urls["b"],
               URL_DEAD=urls["dead"], URL_SILENT=urls["silent"], ARTEFACT_DIR=artefacts, REPO_ROOT=harness.ROOT)
    p = subprocess.run(["node", os.path.join(HERE, "fleet_browser.js")], env=env, timeout=240,
                       capture_output=True, text=True)
    sys.stdout.write(p.stdout)
    sys.stdout.write(p.stderr)
    assert p.returncode == 0, f"fleet_browser.js exited with {p.returncode}"


def main():
    orderd, kafka_mock, artefacts = sys.argv[1:4]
    os.makedirs(artefacts, exist_ok=True)
    cluster = harness.Cluster(orderd, kafka_mock)
    runner = harness.Runner()
    try:
        cluster.start_infra()
        tokens = os.path.join(cluster.dir, "tokens")
        with open(tokens, "w") as f:
            f.write(f"{hashlib.sha256(ADMIN.encode()).hexdigest()} admin ops\n")
            f.write(f"{hashlib.sha256(CUSTOMER.encode()).hexdigest()} customer cust-fleet\n")
        token_file = os.path.join(cluster.dir, "fleet-token")
        with open(token_file, "w") as f:
            f.write(ADMIN + "\n")
        silent, endless = Silent(), Endless()
        port_a, port_b, port_dead = harness.free_port(), harness.free_port(), harness.free_port()
        urls = {"a": f"http://127.0.0.1:{port_a}", "b": f"http://127.0.0.1:{port_b}",
                "dead": f"http://127.0.0.1:{port_dead}", "silent": f"http://127.0.0.1:{silent.port}",
                "endless": f"http://127.0.0.1:{endless.port}/", "drip": f"http://127.0.0.1:{Scripted(drip).port}",
                "chunked": f"http://127.0.0.1:{Scripted(chunked).port}"}
        auth = ["--auth", "required", "--auth-tokens", tokens]
        b = start_orderd_on(cluster, port_b, *auth)
        a = start_orderd_on(cluster, port_a, *auth, "--fleet", ",".join(urls[k] for k in ("a", "b", "dead", "silent", "endless", "drip", "chunked")),
                            "--fleet-token-file", token_file, "--fleet-timeout-ms", str(TIMEOUT_MS))
        runner.run("web.fleet_needs_admin_token", test_auth, a)
        runner.run("web.fleet_self_only_and_bad_url", test_self_only, b, cluster)
        runner.run("web.fleet_bounded_fetch", test_bounded, a, urls, endless)
        runner.run("web.fleet_browser", run_browser, a, b, urls, artefacts)
    except Exception as e:  # noqa: BLE001 - a set-up failure is a test failure
        runner.failed += 1
        print(f"FAIL set-up: {e}", flush=True)
    finally:
        cluster.stop()
    return runner.finish()


if __name__ == "__main__":
    sys.exit(main())
