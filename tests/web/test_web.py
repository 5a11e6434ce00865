"""End to end: orderd (real PostgreSQL, librdkafka's mock cluster) serves the OpenAPI document and
the order timeline page; headless Chromium (Debian's, driven by playwright-core from
tools/node_modules; tests/web/browser.js) shows an order the test places, follows the payment
flow paying it and a shipping update live, and saves screenshots as artefacts. Answers of the running service are validated against the document's schemas.

  test_web.py <orderd> <es-kafka-mock> <artefact dir>
"""
import json
import os
import subprocess
import sys
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "e2e"))
import harness  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
OPENAPI = os.path.join(harness.ROOT, "generated", "openapi", "orders_v1.openapi.json")


def raw_get(inst, path):
    import urllib.request
    with urllib.request.urlopen(inst.base + path, timeout=10) as r:
        return r.status, dict((k.lower(), v) for k, v in r.headers.items()), r.read()


def test_openapi_served(inst):
    status, headers, body = raw_get(inst, "/openapi.json")
    assert status == 200, status
    assert headers["content-type"].startswith("application/json"), headers
    with open(OPENAPI, "rb") as f:
        want = f.read()
    assert body == want, f"/openapi.json ({len(body)} bytes) differs from {OPENAPI} ({len(want)} bytes)"
    json.loads(body)


def test_page_served(inst):
    status, headers, body = raw_get(inst, "/")
    assert status == 200 and headers["content-type"].startswith("text/html"), (status, headers)
    assert b'<script src="/static/app.js"' in body
    csp = headers.get("content-security-policy", "")
    assert "default-src 'none'" in csp and "script-src 'self'" in csp, csp
    for path, ctype, marker in (("/static/app.js", "text/javascript", b"POLL_MS"),
                                ("/static/style.css", "text/css", b".timeline")):
        status, headers, body = raw_get(inst, path)
        assert status == 200 and headers["content-type"].startswith(ctype) and marker in body, (path, status, headers)
    # Nothing on the page comes from elsewhere: no absolute URL in any asset.
    for path in ("/", "/static/app.js", "/static/style.css"):
        text = raw_get(inst, path)[2].decode()
        assert "http://" not in text and "https://" not in text and "//fonts." not in text, path
    status, _ = inst.request("GET", "/static/missing.js")
    assert status == 404, status


def run_browser(inst, customer, artefacts):
    env = dict(os.environ, ORDERD_BASE=inst.base, CUSTOMER_ID=customer,
               ARTEFACT_DIR=artefacts, OPENAPI=OPENAPI, REPO_ROOT=harness.ROOT)
    p = subprocess.run(["node", os.path.join(HERE, "browser.js")], env=env, timeout=240,
                       capture_output=True, text=True)
    sys.stdout.write(p.stdout)
    sys.stdout.write(p.stderr)
    assert p.returncode == 0, f"browser.js exited with {p.returncode}"


def main():
    orderd, kafka_mock, artefacts = sys.argv[1:4]
    os.makedirs(artefacts, exist_ok=True)
    cluster = harness.Cluster(orderd, kafka_mock)
    runner = harness.Runner()
    try:
        cluster.start_infra()
        # The simulated gateway takes a while per call, so the page (browser.js places the order
        # with the page already open) shows the order before it is paid and must pick up the
        # payment events live.
        inst = cluster.start_orderd("--auth", "disabled", "--payment-delay-ms", "2000")
        customer = f"cust-web-{uuid.uuid4().hex[:10]}"
        runner.run("web.openapi_served_equals_generated", test_openapi_served, inst)
        runner.run("web.page_and_assets_served", test_page_served, inst)
        runner.run("web.browser_timeline", run_browser, inst, customer, artefacts)
    except Exception as e:  # noqa: BLE001 - a set-up failure is a test failure
        runner.failed += 1
        print(f"FAIL set-up: {e}", flush=True)
    finally:
        cluster.stop()
    return runner.finish()


if __name__ == "__main__":
    sys.exit(main())
