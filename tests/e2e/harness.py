"""Starts the real components for end-to-end tests: a throwaway PostgreSQL cluster
(scripts/pg.sh), librdkafka's mock cluster (scripts/kafka-mock.sh) and orderd on free loopback
ports; gives HTTP and gRPC helpers. Run under /usr/bin/python3 (Debian's grpc and protobuf)."""
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
GOOGLEAPIS = os.environ.get("GOOGLEAPIS_DIR", "/usr/share/gocode/src/github.com/gogo/googleapis")


def free_port():
    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def python_stubs(out_dir):
    """Generates orders/v1 *_pb2 modules with Debian's protoc for the gRPC client."""
    protos = []
    for d in ("es", "orders/v1"):
        for f in sorted(os.listdir(os.path.join(ROOT, "proto", d))):
            if f.endswith(".proto"):
                protos.append(f"{d}/{f}")
    protos += ["google/api/http.proto", "google/api/annotations.proto"]
    subprocess.run(["protoc", f"-I{ROOT}/proto", f"-I{GOOGLEAPIS}", "-I/usr/include",
                    f"--python_out={out_dir}"] + protos, check=True)
    sys.path.insert(0, out_dir)


class Cluster:
    """PostgreSQL + mock Kafka + one or more orderd processes, all in a temporary folder."""

    def __init__(self, orderd, kafka_mock, workdir=None):
        self.orderd_bin = orderd
        self.kafka_mock = kafka_mock
        self.dir = workdir or tempfile.mkdtemp(prefix="orderd-e2e-")
        os.chmod(self.dir, 0o755)
        self.procs = []
        self.pg = None
        self.bootstrap_file = os.path.join(self.dir, "kafka", "bootstrap")

    def start_infra(self):
        r = subprocess.run([f"{ROOT}/scripts/pg.sh", "start", f"{self.dir}/pg"], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"scripts/pg.sh start failed: {r.stderr.strip()}")
        self.pg = r.stdout.strip()
        env = dict(os.environ, ES_KAFKA_MOCK=self.kafka_mock)
        self.bootstrap = subprocess.run([f"{ROOT}/scripts/kafka-mock.sh", "start", f"{self.dir}/kafka"],
                                        check=True, capture_output=True, text=True, env=env).stdout.strip()

    def start_orderd(self, *extra, https=False, cafile=None, ready=True):
        """Starts orderd and waits for /healthz to answer 200 (ready=False: for /livez only)."""
        http, grpc_port = free_port(), free_port()
        log = open(os.path.join(self.dir, f"orderd-{http}.log"), "w")
        args = [self.orderd_bin, "--pg", self.pg, "--kafka-bootstrap-file", self.bootstrap_file,
                "--http-listen", f"127.0.0.1:{http}", "--grpc-listen", f"127.0.0.1:{grpc_port}"] + list(extra)
        if "--auth" not in extra:
            args += ["--auth", "disabled"]  # these tests are not about access; test_security.py is
        p = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        inst = Orderd(p, http, grpc_port, log.name, https=https, cafile=cafile)
        self.procs.append(inst)
        inst.wait_ready(path="/healthz" if ready else "/livez")
        return inst

    def psql(self, sql):
        return subprocess.run(["psql", self.pg, "-qAtX", "-c", sql], check=True, capture_output=True,
                              text=True).stdout.strip()

    def stop(self):
        for inst in self.procs:
            inst.stop()
        subprocess.run([f"{ROOT}/scripts/kafka-mock.sh", "stop", f"{self.dir}/kafka"], capture_output=True)
        subprocess.run([f"{ROOT}/scripts/pg.sh", "stop", f"{self.dir}/pg"], capture_output=True)
        if os.environ.get("KEEP_E2E_DIR") != "1":
            shutil.rmtree(self.dir, ignore_errors=True)


class Orderd:
    def __init__(self, proc, http_port, grpc_port, log, https=False, cafile=None):
        self.proc, self.http_port, self.grpc_port, self.log = proc, http_port, grpc_port, log
        self.base = f"{'https' if https else 'http'}://127.0.0.1:{http_port}"
        self.ctx = None
        if https:
            import ssl
            self.ctx = ssl.create_default_context(cafile=cafile)

    def wait_ready(self, timeout=90, path="/healthz"):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"orderd exited with {self.proc.returncode}:\n" + open(self.log).read()[-3000:])
            try:
                status, _ = self.request("GET", path)
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError("orderd not ready in time:\n" + open(self.log).read()[-3000:])

    def request(self, method, path, body=None, headers=None, raw=None):
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=30, context=self.ctx) as r:
                text = r.read().decode()
                return r.status, (json.loads(text) if text.strip().startswith(("{", "[")) else text)
        except urllib.error.HTTPError as e:
            text = e.read().decode()
            try:
                return e.code, json.loads(text)
            except ValueError:
                return e.code, text

    def stop(self, sig=15):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Runner:
    """Runs test functions, prints each outcome and the closing 'N passed, M failed' line."""

    def __init__(self):
        self.passed, self.failed = 0, 0

    def run(self, name, fn, *args):
        t = time.time()
        try:
            fn(*args)
            self.passed += 1
            print(f"PASS {name} ({time.time() - t:.1f}s)", flush=True)
        except Exception as e:  # noqa: BLE001 - report every failure and go on
            self.failed += 1
            import traceback
            print(f"FAIL {name}: {e}", flush=True)
            traceback.print_exc()

    def finish(self):
        print(f"e2e: {self.passed} passed, {self.failed} failed", flush=True)
        return 1 if self.failed else 0


def eventually(fn, timeout=30, interval=0.1, what="condition"):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}; last value: {last}")



def readyz(o):
    """An instance's /readyz as (HTTP status, JSON body); (None, None) while it does not answer."""
    try:
        with urllib.request.urlopen(f"{o.base}/readyz", timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())
    except OSError:
        return None, None


def terminate_backends(psql, where, timeout=10):
    """Terminates the PostgreSQL backends matching `where` (a condition on pg_stat_activity; the
    caller's own session is spared) and returns once they have ended: pg_terminate_backend only
    signals them. psql(sql) answers the text of an unaligned, tuples-only query. Returns how many."""
    pids = psql(f"SELECT pid FROM pg_stat_activity WHERE ({where}) AND pid <> pg_backend_pid()").split()
    if not pids:
        return 0
    listed = ",".join(pids)
    psql(f"SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE pid IN ({listed})")
    eventually(lambda: psql(f"SELECT count(*) FROM pg_stat_activity WHERE pid IN ({listed})") == "0",
               timeout=timeout, interval=0.05, what=f"the {len(pids)} terminated backends to end")
    return len(pids)

def e2e_main(body, stubs=False):
    """The main of an e2e test program run as `python3 test_x.py <orderd> <es-kafka-mock>`: starts a
    Cluster's PostgreSQL and mock Kafka (and, with stubs, generates the Python gRPC stubs in a
    temporary folder), calls body(cluster, runner, stubs_dir) (stubs_dir None without stubs), counts
    an exception outside runner.run as a failed set-up, stops everything and exits with the
    runner's status."""
    cluster = Cluster(sys.argv[1], sys.argv[2])
    runner = Runner()
    stubs_dir = tempfile.mkdtemp(prefix="orderd-stubs-") if stubs else None
    try:
        if stubs_dir:
            python_stubs(stubs_dir)
        cluster.start_infra()
        body(cluster, runner, stubs_dir)
    except Exception as e:  # noqa: BLE001 - a failed set-up is a failure, reported like a test's
        import traceback
        traceback.print_exc()
        runner.failed += 1
        print(f"FAIL setup: {e}", flush=True)
    finally:
        cluster.stop()
        if stubs_dir:
            shutil.rmtree(stubs_dir, ignore_errors=True)
    sys.exit(runner.finish())
