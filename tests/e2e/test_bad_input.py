"""Bad input and transport limits of orderd, end to end against real PostgreSQL and the mock Kafka
cluster. Usage: /usr/bin/python3 test_bad_input.py <orderd> <es-kafka-mock>

Part 1, one table: every row is a raw HTTP request (method, path, headers, body bytes) with the
status, the gRPC code of the JSON error body and the field the error must name. The rows are
built for every command route of the generated route table (and the query routes where it
applies). After each row the test checks: the answer is the documented error shape
{"code", "message", "details": [{"field", "description"}]}, names the field, leaks nothing
internal (no SQLSTATE, file path or C function name), orderd is alive, es_events and es_commands
have exactly the rows they had before, the read model (order_summary and the consumers'
per-stream versions, as row counts and a hash sum) is unchanged, and es_http_refused_total counted
the row when the transport refused it (stage "T": before the dispatcher) and did not when the
service did (stage "S": validation and rules). Every row whose defect is in the request's content
(stage "S", and the metadata rows gRPC reads by the same rule) is sent over gRPC too, as the
protobuf request json_format makes of its body and path (bad_input_grpc.py), with the same
metadata: the status code must be the row's code, the details must name the field, and the store
and read model must be unchanged. The projection has caught up with the setup's events before the
table and is waited for again after it. Positive controls at the end send each route's base body
unchanged and must succeed, so every row differs from an accepted request only by its defect.

Part 2, limits: a second orderd with small limits shows connections above http-max-connections
answered 503 and closed while open ones keep working (and counted), the HTTP/1 request timeout
and HTTP/2 idle timeout closing idle connections, gRPC's max receive message size and its
max concurrent streams (read from the server's HTTP/2 SETTINGS)."""
import json
import os
import re
import socket
import struct
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(__file__))
from harness import eventually, e2e_main  # noqa: E402
from bad_input_grpc import GrpcSide, Unparseable  # noqa: E402

ADDRESS = {"name": "Ada Lovelace", "line1": "12 St James's Sq", "city": "London", "postal_code": "SW1Y 4JH",
           "country_code": "GB"}
PLACE = {"customer_id": "bad-input", "vendor_id": "vend-1", "payment_method": "card",
         "items": [{"product_id": "sku-1", "quantity": 2, "unit_price": {"currency_code": "EUR", "amount_minor": "1250"}},
                   {"product_id": "sku-2", "quantity": 1, "unit_price": {"currency_code": "EUR", "amount_minor": 500}}],
         "shipping_address": ADDRESS}
TOTAL = 3000
JSON = {"Content-Type": "application/json"}

# Signs that an error text leaks internals: PostgreSQL errors, source paths, C identifiers.
LEAKS = [re.compile(p) for p in (r"SQLSTATE", r"\bERROR:\s", r"violates", r"\brelation \"", r"\bPQ[a-z]\w+",
                                 r"/(work|usr|home|tmp|root|var|build)/", r"\.[ch]:\d+", r"\b\w+\.c\b",
                                 r"\b(es|es_|orders_v1|h2o|grpc|protobuf_c|pg)_[a-z0-9_]+\(",
                                 r"\bes__\w+", r"\bh2o_\w+", r"\bgrpc_\w+", r"\bprotobuf_c_\w+")]


# ---- a raw HTTP/1.1 client: urllib cannot send the malformed requests the table needs ----

def http_raw(port, method, path, headers=None, body=b"", timeout=30):
    """Sends one request on a new connection and returns (status, {lower-case header: value}, body)."""
    if isinstance(path, str):
        path = path.encode()
    if isinstance(body, str):
        body = body.encode()
    hdrs = {"Host": "127.0.0.1", "Connection": "close"}
    hdrs.update(headers or {})
    if body is not None and "Content-Length" not in hdrs and "Transfer-Encoding" not in hdrs:
        hdrs["Content-Length"] = str(len(body))
    req = (method.encode() + b" " + path + b" HTTP/1.1\r\n" +
           b"".join(f"{k}: {v}\r\n".encode() for k, v in hdrs.items() if v is not None) + b"\r\n" + (body or b""))
    data = b""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(req)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer (413) and close before reading everything
        try:
            while True:
                c = s.recv(65536)
                if not c:
                    break
                data += c
        except ConnectionResetError:
            pass
    return parse_response(data)


def parse_response(data):
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    if not lines or not lines[0].startswith("HTTP/"):
        return 0, {}, data
    status = int(lines[0].split()[1])
    hdrs = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    if hdrs.get("transfer-encoding", "").lower() == "chunked":
        body, i = b"", 0
        while True:
            j = rest.index(b"\r\n", i)
            n = int(rest[i:j].split(b";")[0], 16)
            if n == 0:
                break
            body += rest[j + 2:j + 2 + n]
            i = j + 2 + n + 2
        rest = body
    elif "content-length" in hdrs:
        rest = rest[:int(hdrs["content-length"])]
    return status, hdrs, rest


def http_json(port, method, path, body):
    status, _, raw = http_raw(port, method, path, JSON, json.dumps(body).encode())
    return status, json.loads(raw) if raw.strip().startswith(b"{") else raw


# ---- what the test observes ----

class Store:
    """Row counts of es_events and es_commands, and a fingerprint of the read model, over one psql
    session (starting psql per query costs a third of a second here)."""

    # The read model: the projection's table and the consumers' per-stream versions, each as its
    # row count and the sum of a hash of every row's text (any changed, added or removed row moves it).
    READ_MODEL = ("(SELECT count(*) || ':' || coalesce(sum(hashtext(t::text)), 0) FROM order_summary t) || ' ' || "
                  "(SELECT count(*) || ':' || coalesce(sum(hashtext(t::text)), 0) FROM es_consumer_streams t)")
    # Streams whose projected row or projection consumer version is not at es_events' last version.
    BEHIND = ("(SELECT count(*) FROM (SELECT stream_id, max(version) AS v FROM es_events GROUP BY stream_id) e "
              "LEFT JOIN order_summary s ON s.order_id::text = e.stream_id "
              "LEFT JOIN es_consumer_streams c ON c.consumer = 'projection.order_summary' AND c.stream_id = e.stream_id "
              "WHERE s.version IS DISTINCT FROM e.v OR c.version IS DISTINCT FROM e.v)")

    def __init__(self, conninfo):
        import subprocess
        self.p = subprocess.Popen(["psql", conninfo, "-qAtX"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  text=True, bufsize=1)

    def query(self, expr):
        self.p.stdin.write(f"SELECT {expr};\n")
        self.p.stdin.flush()
        line = self.p.stdout.readline().strip()
        assert line, "psql gave no answer"
        return line

    def counts(self):
        return self.query("(SELECT count(*) FROM es_events) || ' ' || (SELECT count(*) FROM es_commands)")

    def snapshot(self):
        """(es_events/es_commands counts, read-model fingerprint) in one round trip."""
        line = self.query("(SELECT count(*) FROM es_events) || ' ' || (SELECT count(*) FROM es_commands) || '|' || "
                          + self.READ_MODEL)
        counts, _, model = line.partition("|")
        return counts, model

    def caught_up(self):
        """The number of events (> 0) when the projection has applied every one of them, else None."""
        n, behind = self.query(f"(SELECT count(*) FROM es_events) || ' ' || {self.BEHIND}").split()
        return int(n) if int(n) > 0 and int(behind) == 0 else None

    def close(self):
        self.p.stdin.close()
        self.p.wait(10)


def refused_samples(text):
    """es_http_refused_total samples of a /metrics text as {(route, status): value}."""
    out = {}
    for line in text.splitlines():
        if not line.startswith("es_http_refused_total{"):
            continue
        m = re.match(r'^es_http_refused_total\{route="((?:[^"\\]|\\.)*)",status="(\d+)"\} ([0-9.e+]+)$', line)
        if m:
            out[(m.group(1), m.group(2))] = float(m.group(3))
    return out


def scrape(port):
    """es_http_refused_total samples as {(route, status): value}, and the whole text."""
    status, _, text = http_raw(port, "GET", "/metrics", {}, b"")
    assert status == 200, status
    return refused_samples(text.decode()), text.decode()


# ---- the table ----

class Case:
    """grpc: whether the row is also sent over gRPC; by default when its defect is in the request's
    content (stage "S"), which the gRPC transport carries too. A transport-stage row that gRPC
    refuses the same way (a metadata value) sets it."""

    def __init__(self, name, method, path, headers, body, status, code, field, stage, route, msg=None, xfail=None,
                 grpc=None):
        self.name, self.method, self.path, self.headers, self.body = name, method, path, headers, body
        self.status, self.code, self.field, self.stage, self.route = status, code, field, stage, route
        self.msg, self.xfail = msg, xfail
        self.grpc = stage == "S" if grpc is None else grpc


def dumps(obj):
    return json.dumps(obj, ensure_ascii=False).encode()


def with_(base, **changes):
    d = json.loads(json.dumps(base))
    for k, v in changes.items():
        if v is DROP:
            d.pop(k, None)
        else:
            d[k] = v
    return d


DROP = object()


def forged_tokens(real):
    """ListOrders page tokens the service did not issue for the list they are used on: (label,
    token, filters). real: a token the service issued for the unfiltered list."""
    body = "01" + (1_700_000_000_000_000).to_bytes(8, "big").hex() + uuid.uuid4().hex
    flip = "0" if real[-1] != "0" else "1"
    return [("well-formed, random MAC", body + os.urandom(16).hex(), ""),
            ("issued token, last digit altered", real[:-1] + flip, ""),
            ("issued token, position altered", real[:4] + ("0" if real[4] != "0" else "1") + real[5:], ""),
            ("issued token, version 2", "02" + real[2:], ""),
            ("issued token, MAC cut", real[:-2], ""),
            ("issued token on another list (customer_id filter)", real, "&customer_id=bad-input"),
            ("issued token on another list (status filter)", real, "&status=ORDER_STATUS_PLACED")]


def command_routes(ids):
    """The body routes the table covers, one per command route of the generated route table
    (checked against the served one by table_covers_served_routes): (name, method, template,
    concrete path, base body, a string field with its max length, required fields). ids: order
    ids in the states the routes need (placed, initiated, paid)."""
    placed, initiated, paid = ids["placed"], ids["initiated"], ids["paid"]
    return [
        ("PlaceOrder", "POST", "/v1/orders", "/v1/orders", PLACE, ("customer_id", 128),
         ["customer_id", "vendor_id", "items", "payment_method", "shipping_address"]),
        ("CancelOrder", "POST", "/v1/orders/{order_id}/cancel", f"/v1/orders/{placed}/cancel",
         {"reason": "bad-input test"}, ("reason", 1024), ["reason"]),
        ("UpdateOrderShippingStatus", "PUT", "/v1/orders/{order_id}/shipping-status", f"/v1/orders/{paid}/shipping-status",
         {"status": "SHIPPING_STATUS_IN_TRANSIT", "carrier": "DHL", "tracking_number": "JD0001", "location": "Leipzig"},
         ("carrier", 64), ["status", "carrier", "tracking_number"]),
        ("InitiatePayment", "POST", "/v1/orders/{order_id}/payment:initiate", f"/v1/orders/{placed}/payment:initiate",
         {"payment_id": "pay-1"}, ("payment_id", 128), []),
        ("AuthorisePayment", "POST", "/v1/orders/{order_id}/payment:authorise",
         f"/v1/orders/{initiated}/payment:authorise", {"authorisation_code": "AUTH-1"}, ("authorisation_code", 128), []),
        ("MarkOrderPaid", "POST", "/v1/orders/{order_id}/payment:paid", f"/v1/orders/{initiated}/payment:paid",
         {"amount": {"currency_code": "EUR", "amount_minor": str(TOTAL)}}, ("request_id", 128), []),
        ("FailPayment", "POST", "/v1/orders/{order_id}/payment:fail", f"/v1/orders/{placed}/payment:fail",
         {"reason": "declined"}, ("reason", 1024), ["reason"]),
        ("RefundPayment", "POST", "/v1/orders/{order_id}/payment:refund", f"/v1/orders/{paid}/payment:refund",
         {"reason": "returned"}, ("reason", 1024), []),
    ]


def table_covers_served_routes(o):
    """Every route with a body that orderd serves (its /openapi.json, generated from the same
    method table as its routes) has its rows in command_routes, under its method's name: a method
    added to proto/ fails here, named, instead of going untested."""
    status, _, raw = http_raw(o.http_port, "GET", "/openapi.json")
    assert status == 200, f"/openapi.json answered {status}"
    served = set()
    for template, ops in json.loads(raw)["paths"].items():
        for verb, op in ops.items():
            if verb.upper() in ("POST", "PUT", "PATCH", "DELETE"):
                served.add((op["operationId"].split("_", 1)[-1], verb.upper(), template))
    listed = {(r[0], r[1], r[2]) for r in command_routes({"placed": "p", "initiated": "i", "paid": "q"})}
    missing = sorted(served - listed)
    assert not missing, "; ".join(f"method {m} ({v} {t}) has no rows: add it to command_routes in "
                                  f"tests/e2e/test_bad_input.py" for m, v, t in missing)
    stale = sorted(listed - served)
    assert not stale, "; ".join(f"command_routes lists {m} ({v} {t}), which orderd does not serve" for m, v, t in stale)


def build_table(ids, page_token):
    """Every row; ids: order ids in the states the routes need (placed, initiated, paid);
    page_token: one the service issued for the first page of the unfiltered ListOrders."""
    placed, initiated, paid = ids["placed"], ids["initiated"], ids["paid"]
    routes = command_routes(ids)
    cases = []

    def add(name, method, path, body, status, code, field, stage, route, headers=JSON, **kw):
        cases.append(Case(name, method, path, headers, body, status, code, field, stage, route, **kw))

    for rname, method, tpl, path, base, (sfield, smax), required in routes:
        other = "POST" if method == "PUT" else "PUT"
        b = dumps(base)
        n = f"{rname}: "
        # syntax
        add(n + "malformed JSON (truncated)", method, path, b[:-1], 400, 3, None, "T", tpl, msg="invalid JSON")
        add(n + "malformed JSON (single quotes)", method, path, b"{'reason': 'x'}", 400, 3, None, "T", tpl)
        add(n + "trailing garbage", method, path, b + b" xyz", 400, 3, None, "T", tpl, msg="trailing")
        add(n + "two documents", method, path, b + b + b"", 400, 3, None, "T", tpl)
        add(n + "a JSON array, not an object", method, path, b"[" + b + b"]", 400, 3, None, "T", tpl)
        add(n + "a JSON string, not an object", method, path, b'"hello"', 400, 3, None, "T", tpl)
        add(n + "duplicate key", method, path,
            b"{" + f'"{sfield}":"a","{sfield}":"b",'.encode() + b[1:], 400, 3, sfield, "T", tpl, msg="duplicate")
        add(n + "10,000 levels of nesting under a field", method, path,
            f'{{"{sfield}":'.encode() + b"[" * 10000 + b"]" * 10000 + b"}", 400, 3, sfield, "T", tpl, msg="nesting")
        add(n + "10,000 levels of nesting at the top", method, path, b"[" * 10000 + b"]" * 10000, 400, 3, None, "T", tpl)
        add(n + "10,000 nested objects", method, path, b'{"a":' * 10000 + b"1" + b"}" * 10000, 400, 3, None, "T", tpl)
        # types
        add(n + "object for a string", method, path, dumps(with_(base, **{sfield: {}})), 400, 3, sfield, "T", tpl)
        add(n + "array for a string", method, path, dumps(with_(base, **{sfield: ["x"]})), 400, 3, sfield, "T", tpl)
        add(n + "number for a string", method, path, dumps(with_(base, **{sfield: 5})), 400, 3, sfield, "T", tpl)
        add(n + "string for a number", method, path, dumps(with_(base, expected_version="two")), 400, 3,
            "expected_version", "T", tpl)
        add(n + "array for a number", method, path, dumps(with_(base, expected_version=[1])), 400, 3,
            "expected_version", "T", tpl)
        add(n + "object for a number", method, path, dumps(with_(base, expected_version={"value": 1})), 400, 3,
            "expected_version", "T", tpl)
        add(n + "fraction for an int64", method, path, dumps(with_(base, expected_version=1.5)), 400, 3,
            "expected_version", "T", tpl)
        add(n + "boolean for a number", method, path, dumps(with_(base, expected_version=True)), 400, 3,
            "expected_version", "T", tpl)
        # huge numbers (int64 field)
        for label, num in (("2^64", b"18446744073709551616"), ("1e400", b"1e400"), ("-2^63-1", b"-9223372036854775809"),
                           ("2^64 as a string", b'"18446744073709551616"'), ("NaN", b'"NaN"')):
            add(n + f"expected_version {label}", method, path, b[:-1] + b',"expected_version":' + num + b"}", 400, 3,
                "expected_version", "T", tpl)
        add(n + "negative expected_version", method, path, dumps(with_(base, expected_version=-1)), 400, 3,
            "expected_version", "S", tpl)
        # unknown fields
        add(n + "unknown field", method, path, dumps(with_(base, colour="red")), 400, 3, "colour", "T", tpl)
        add(n + "unknown field (null)", method, path, dumps(with_(base, colour=None)), 400, 3, "colour", "T", tpl)
        add(n + "unknown nested field", method, path, dumps(with_(base, expected_version=None, extra={"a": 1})), 400, 3,
            "extra", "T", tpl)
        # strings
        add(n + "invalid UTF-8 (raw bytes)", method, path, f'{{"{sfield}":"ab'.encode() + b"\xff\xfe" + b'"}', 400, 3,
            sfield, "T", tpl, msg="UTF-8")
        add(n + "overlong UTF-8", method, path, f'{{"{sfield}":"'.encode() + b"\xc0\xaf" + b'"}', 400, 3, sfield, "T", tpl)
        add(n + "encoded surrogate in UTF-8", method, path, f'{{"{sfield}":"'.encode() + b"\xed\xa0\x80" + b'"}', 400, 3,
            sfield, "T", tpl)
        add(n + "lone high surrogate \\ud800", method, path, f'{{"{sfield}":"a\\ud800"}}'.encode(), 400, 3, sfield,
            "T", tpl, msg="surrogate")
        add(n + "lone low surrogate \\udc00", method, path, f'{{"{sfield}":"\\udc00b"}}'.encode(), 400, 3, sfield,
            "T", tpl, msg="surrogate")
        add(n + "NUL in a string", method, path, f'{{"{sfield}":"a\\u0000b"}}'.encode(), 400, 3, sfield, "T", tpl)
        add(n + "raw control character", method, path, f'{{"{sfield}":"a\x01b"}}'.encode(), 400, 3, sfield, "T", tpl)
        add(n + f"{sfield} over {smax} characters", method, path, dumps(with_(base, **{sfield: "x" * (smax + 1)})),
            400, 3, sfield, "S", tpl)
        add(n + f"{sfield} over {smax} characters (multi-byte)", method, path,
            dumps(with_(base, **{sfield: "é" * (smax + 1)})), 400, 3, sfield, "S", tpl)
        add(n + "request_id over 128 characters", method, path, dumps(with_(base, request_id="r" * 129)), 400, 3,
            "request_id", "S", tpl)
        add(n + "a 2 MiB string (body limit)", method, path, dumps(with_(base, **{sfield: "x" * (2 << 20)})), 413, 8,
            None, "T", tpl)
        add(n + "oversize body (1 MiB + 1 of whitespace)", method, path, b + b" " * ((1 << 20) + 1 - len(b)), 413, 8,
            None, "T", tpl)
        # content type
        for ct in ("text/plain", "application/x-www-form-urlencoded", "application/jsonp", "multipart/form-data"):
            add(n + f"Content-Type {ct}", method, path, b, 415, 3, "Content-Type", "T", tpl, headers={"Content-Type": ct},
                msg="application/json")
        add(n + "no Content-Type", method, path, b, 415, 3, "Content-Type", "T", tpl, headers={}, msg="application/json")
        # idempotency keys: gRPC metadata of the same name is read by the same rule
        for label, key in (("of 257 characters", "k" * 257), ("of 4096 characters", "k" * 4096),
                           ("with a space inside", "key one")):
            add(n + f"Idempotency-Key {label}", method, path, b, 400, 3, "idempotency-key", "T", tpl,
                headers=dict(JSON, **{"Idempotency-Key": key}), msg="256", grpc=True)
        # methods
        for m in sorted({"GET", "DELETE", "PATCH", "OPTIONS", other} - {method}):
            if tpl == "/v1/orders" and m == "GET":
                continue  # ListOrders
            add(n + f"wrong method {m}", m, path, b"" if m == "GET" else b, 405, 12, None, "T", tpl, msg="not allowed")
        # required fields
        for f in required:
            add(n + f"missing {f}", method, path, dumps(with_(base, **{f: DROP})), 400, 3, f, "S", tpl)
            if f != "items" and f != "shipping_address":
                # an enum's "" is not a name the decoder knows; a string's "" is "not set" for validation
                add(n + f"empty {f}", method, path, dumps(with_(base, **{f: ""})), 400, 3, f,
                    "T" if f == "status" else "S", tpl)
                add(n + f"null {f}", method, path, dumps(with_(base, **{f: None})), 400, 3, f, "S", tpl)
        if required:
            add(n + "empty body", method, path, b"", 400, 3, required[0], "S", tpl)
            add(n + "empty object", method, path, b"{}", 400, 3, required[0], "S", tpl)
            add(n + "whitespace body", method, path, b"  \n", 400, 3, None, "T", tpl, msg="invalid JSON")
        # path ids (not PlaceOrder: its id is in the body)
        if "{order_id}" in tpl:
            def p(oid, tpl=tpl):
                return tpl.replace("{order_id}", oid)
            for label, oid in (("non-UUID", "not-a-uuid"), ("UUID with junk", placed + "x"),
                               ("UUID without dashes", placed.replace("-", "")),
                               ("UUID without dashes, braced", "%7B" + placed.replace("-", "") + "%7D"),
                               ("unbalanced brace (open)", "%7B" + placed), ("unbalanced brace (close)", placed + "%7D"),
                               ("unbalanced raw brace", "{" + placed), ("doubled braces", "%7B%7B" + placed + "%7D%7D"),
                               ("brace and urn prefix", "urn:uuid:%7B" + placed + "%7D"),
                               ("percent-encoded non-UUID", "%41%42%43"), ("encoded traversal", "..%2f..%2fetc%2fpasswd"),
                               ("encoded slash in UUID", placed[:8] + "%2F" + placed[9:]), ("10,000 characters", "a" * 10000),
                               ("100,000 characters", "b" * 100000),
                               ("space", "%20"), ("non-ASCII", "%C3%A9t%C3%A9"), ("encoded newline", "%0A" + placed)):
                add(n + f"path id {label}", method, p(oid), b, 400, 3, "order_id", "S", tpl, msg="UUID")
            add(n + "path id of invalid UTF-8", method, p("%FF%FE"), b, 400, 3, "order_id", "T", tpl, msg="UTF-8")
            add(n + "path id with bad percent-encoding", method, p("%zz"), b, 400, 3, None, "T", "unmatched",
                msg="percent")
            add(n + "path id with an encoded NUL", method, p("%00" + placed), b, 400, 3, None, "T", "unmatched")
            add(n + "path traversal", method, p("../../etc/passwd"), b, 404, 5, None, "T", "unmatched")
            add(n + "unknown order (valid UUID)", method, p(str(uuid.uuid4())), b, 404, 5, None, "S", tpl)
        add(n + "very long path (70 segments)", method, path + "/x" * 70, b, 400, 3, None, "T", "unmatched",
            msg="segments")
        if tpl == "/v1/orders":   # /v1/orders/explode is GetOrder's template: a wrong method
            add(n + "a sub-path that is another route's", method, path + "/explode", b, 405, 12, None, "T",
                "/v1/orders/{order_id}")
        else:
            add(n + "unknown sub-route", method, path + "/explode", b, 404, 5, None, "T", "unmatched")
        add(n + "query parameter on a body route", method, path + "?colour=red", b, 400, 3, "colour", "T", tpl)
        add(n + "query parameter with bad encoding", method, path + "?reason=%zz", b, 400, 3, "reason", "T", "unmatched")

    # PlaceOrder's own fields
    tpl, path = "/v1/orders", "/v1/orders"

    def item(**changes):
        body = json.loads(json.dumps(PLACE))
        it = body["items"][0]
        for k, v in changes.items():
            if k in ("currency_code", "amount_minor"):
                it["unit_price"][k] = v
            elif v is DROP:
                it.pop(k)
            else:
                it[k] = v
        return dumps(body)
    n = "PlaceOrder: "
    for q, stage in ((0, "S"), (-1, "S"), (100001, "S"), (2147483648, "T"), (-2147483649, "T"), ("1e10", "T"),
                     (1.5, "T"), ("two", "T")):
        add(n + f"quantity {q!r}", "POST", path, item(quantity=q), 400, 3, "items[0].quantity", stage, tpl)
    add(n + "quantity missing (zero)", "POST", path, item(quantity=DROP), 400, 3, "items[0].quantity", "S", tpl)
    for a, stage in ((-1, "S"), ("-1", "S"), ("18446744073709551616", "T"), ("1e400", "T"), (1.25, "T"),
                     ("12.50", "T"), ({"units": 1}, "T")):
        add(n + f"amount_minor {a!r}", "POST", path, item(amount_minor=a), 400, 3, "items[0].unit_price.amount_minor",
            stage, tpl)
    for c in ("eur", "EURO", "E1R", "EU", "", "€UR", " EUR", "XYZ", "XXY"):
        add(n + f"currency_code {c!r}", "POST", path, item(currency_code=c), 400, 3,
            "items[0].unit_price.currency_code", "S", tpl)
    body = json.loads(json.dumps(PLACE))
    for it in body["items"]:
        it["unit_price"]["currency_code"] = "XYZ"
    add(n + "every item in currency 'XYZ' (not ISO 4217)", "POST", path, dumps(body), 400, 3,
        "items[0].unit_price.currency_code", "S", tpl)
    body = json.loads(json.dumps(PLACE))
    body["items"][1]["unit_price"]["currency_code"] = "USD"
    add(n + "mixed currencies", "POST", path, dumps(body), 400, 3, "items[1].unit_price.currency_code", "S", tpl,
        msg="one currency")
    body = json.loads(json.dumps(PLACE))
    body["items"][0]["unit_price"] = {"currency_code": "EUR", "amount_minor": "9223372036854775807"}
    body["items"][0]["quantity"] = 100000
    add(n + "total overflows 64 bits", "POST", path, dumps(body), 400, 3, "items[0].unit_price.amount_minor", "S", tpl,
        msg="64 bits")
    add(n + "no items", "POST", path, dumps(with_(PLACE, items=[])), 400, 3, "items", "S", tpl)
    add(n + "1001 items", "POST", path, dumps(with_(PLACE, items=[PLACE["items"][0]] * 1001)), 400, 3, "items", "S", tpl)
    add(n + "items is an object", "POST", path, dumps(with_(PLACE, items={"a": 1})), 400, 3, "items", "T", tpl)
    add(n + "an item is a string", "POST", path, dumps(with_(PLACE, items=["sku-1"])), 400, 3, "items[0]", "T", tpl)
    add(n + "array for an object (shipping_address)", "POST", path, dumps(with_(PLACE, shipping_address=[])), 400, 3,
        "shipping_address", "T", tpl)
    add(n + "unit_price missing", "POST", path, item(unit_price=DROP), 400, 3, "items[0].unit_price", "S", tpl)
    add(n + "product_id over 128", "POST", path, item(product_id="p" * 129), 400, 3, "items[0].product_id", "S", tpl)
    add(n + "unknown field in an item", "POST", path, item(colour="red"), 400, 3, "items[0].colour", "T", tpl)
    add(n + "invalid UTF-8 in an item", "POST", path,
        dumps(PLACE).replace(b'"sku-1"', b'"sku\xff"'), 400, 3, "items[0].product_id", "T", tpl)
    add(n + "invalid UTF-8 under lowerCamelCase keys (named in proto names)", "POST", path,
        b'{"shippingAddress":{"postalCode":"\xff"}}', 400, 3, "shipping_address.postal_code", "T", tpl)
    add(n + "the same field under both names", "POST", path,
        dumps(with_(PLACE, customerId="x")), 400, 3, "customer_id", "T", tpl)
    add(n + "duplicate key in an item", "POST", path,
        dumps(PLACE).replace(b'"product_id": "sku-1"', b'"product_id": "a", "product_id": "b"'), 400, 3,
        "items[0].product_id", "T", tpl)
    for f in ("name", "line1", "city", "postal_code", "country_code"):
        add(n + f"shipping_address.{f} missing", "POST", path,
            dumps(with_(PLACE, shipping_address=with_(ADDRESS, **{f: DROP}))), 400, 3, f"shipping_address.{f}", "S", tpl)
    for cc in ("gb", "GBR", "G1"):
        add(n + f"country_code {cc!r}", "POST", path, dumps(with_(PLACE, shipping_address=with_(ADDRESS, country_code=cc))),
            400, 3, "shipping_address.country_code", "S", tpl)
    add(n + "city over 100", "POST", path, dumps(with_(PLACE, shipping_address=with_(ADDRESS, city="c" * 101))), 400, 3,
        "shipping_address.city", "S", tpl)
    fresh = str(uuid.uuid4())
    for oid in ("not-a-uuid", "00000000-0000-0000-0000-00000000000g", placed.upper().replace("-", "_"), placed + "0",
                fresh.replace("-", ""), "{" + fresh, fresh + "}", "{" + fresh.replace("-", "") + "}"):
        add(n + f"body order_id {oid[:20]!r}", "POST", path, dumps(with_(PLACE, order_id=oid)), 400, 3, "order_id",
            "S", tpl, msg="UUID")
    add(n + "order_id of an existing order", "POST", path, dumps(with_(PLACE, order_id=placed)), 409, 6, None, "S", tpl)
    add(n + "order_id as a number", "POST", path, dumps(with_(PLACE, order_id=12)), 400, 3, "order_id", "T", tpl)
    add(n + "expected_version 5 on a new stream", "POST", path, dumps(with_(PLACE, expected_version="5")), 409, 10,
        "expected_version", "S", tpl)

    # other routes' own fields
    n = "UpdateOrderShippingStatus: "
    ship = routes[2][4]
    sp = f"/v1/orders/{paid}/shipping-status"
    tpl = "/v1/orders/{order_id}/shipping-status"
    for s, stage in (("SHIPPING_STATUS_BOGUS", "T"), ("shipping_status_in_transit", "T"), (99, "S"),
                     ("SHIPPING_STATUS_UNSPECIFIED", "S"), (0, "S"), (1.5, "T"), (-1, "S"), ("", "T"), (None, "S")):
        add(n + f"status {s!r}", "PUT", sp, dumps(with_(ship, status=s)), 400, 3, "status", stage, tpl)
    add(n + "tracking_number over 128", "PUT", sp, dumps(with_(ship, tracking_number="t" * 129)), 400, 3,
        "tracking_number", "S", tpl)
    add(n + "location over 256", "PUT", sp, dumps(with_(ship, location="l" * 257)), 400, 3, "location", "S", tpl)
    for ts in ("yesterday", "2026-13-01T00:00:00Z", "10000-01-01T00:00:00Z", 1700000000):
        add(n + f"occurred_at {ts!r}", "PUT", sp, dumps(with_(ship, occurred_at=ts)), 400, 3, "occurred_at", "T", tpl)
    n = "MarkOrderPaid: "
    mp = f"/v1/orders/{initiated}/payment:paid"
    tpl = "/v1/orders/{order_id}/payment:paid"
    add(n + "amount in another currency (mixed currencies)", "POST", mp,
        dumps({"amount": {"currency_code": "USD", "amount_minor": str(TOTAL)}}), 400, 3, "amount", "S", tpl)
    add(n + "amount not the total", "POST", mp, dumps({"amount": {"currency_code": "EUR", "amount_minor": "1"}}), 400, 3,
        "amount", "S", tpl)
    add(n + "negative amount", "POST", mp, dumps({"amount": {"currency_code": "EUR", "amount_minor": -5}}), 400, 3,
        "amount.amount_minor", "S", tpl)
    add(n + "invalid currency", "POST", mp, dumps({"amount": {"currency_code": "usd", "amount_minor": 1}}), 400, 3,
        "amount.currency_code", "S", tpl)
    # a well-formed code that is not the order's currency: the rule comparing it with the total answers
    add(n + "currency 'XYZ' (not ISO 4217, not the order's)", "POST", mp,
        dumps({"amount": {"currency_code": "XYZ", "amount_minor": str(TOTAL)}}), 400, 3, "amount", "S", tpl)
    add(n + "amount without currency", "POST", mp, dumps({"amount": {"amount_minor": TOTAL}}), 400, 3,
        "amount.currency_code", "S", tpl)
    add(n + "array for an object (amount)", "POST", mp, b'{"amount":[]}', 400, 3, "amount", "T", tpl)
    add(n + "amount_minor 2^64", "POST", mp, b'{"amount":{"currency_code":"EUR","amount_minor":18446744073709551616}}',
        400, 3, "amount.amount_minor", "T", tpl)

    # queries (no body allowed; query parameters)
    lo = "/v1/orders"
    for q, field, stage in (("limit=-1", "limit", "S"), ("limit=1e9", "limit", "S"), ("limit=1001", "limit", "S"),
                            ("limit=abc", "limit", "T"), ("limit=2147483648", "limit", "T"), ("limit=1.5", "limit", "T"),
                            ("limit=", "limit", "T"), ("offset=-1", "offset", "S"), ("offset=x", "offset", "T"),
                            ("page_token=garbage", "page_token", "S"), ("page_token=" + "A" * 600, "page_token", "S"),
                            ("page_token=%FF%FE", "page_token", "T"), ("status=BOGUS", "status", "T"),
                            ("status=order_status_placed", "status", "T"), ("status=99999999999", "status", "T"),
                            ("colour=red", "colour", "T"), ("customer_id=" + "c" * 129, "customer_id", "S"),
                            ("items.quantity=1", "items", "T"),
                            ("page_token=abc&offset=2", "offset", "S")):
        add(f"ListOrders: {q[:40]}", "GET", f"{lo}?{q}", b"", 400, 3, field, stage, "/v1/orders")
    for label, tok, extra in forged_tokens(page_token):
        add(f"ListOrders: forged page_token ({label})", "GET", f"{lo}?limit=1&page_token={tok}{extra}", b"", 400, 3,
            "page_token", "S", "/v1/orders", msg="page_token")
    add("ListOrders: a request body", "GET", lo, b"{}", 400, 3, None, "T", "/v1/orders", msg="no request body")
    add("ListOrders: bad query encoding", "GET", lo + "?limit=%zz", b"", 400, 3, "limit", "T", "unmatched")
    add("ListOrders: 65 query parameters", "GET", lo + "?" + "&".join(f"customer_id={i}" for i in range(65)), b"",
        400, 3, None, "T", "unmatched")
    tpl = "/v1/orders/{order_id}"
    add("GetOrder: min_version=-1", "GET", f"/v1/orders/{placed}?min_version=-1", b"", 400, 3, "min_version", "S", tpl)
    add("GetOrder: min_version=abc", "GET", f"/v1/orders/{placed}?min_version=abc", b"", 400, 3, "min_version", "T", tpl)
    add("GetOrder: non-UUID id", "GET", "/v1/orders/not-a-uuid", b"", 400, 3, "order_id", "S", tpl)
    add("GetOrder: a request body", "GET", f"/v1/orders/{placed}", b"{}", 400, 3, None, "T", tpl)
    add("GetOrder: wrong method DELETE", "DELETE", f"/v1/orders/{placed}", b"", 405, 12, None, "T", tpl)
    add("GetOrderEvents: non-UUID id", "GET", "/v1/orders/x/events", b"", 400, 3, "order_id", "S",
        "/v1/orders/{order_id}/events")
    add("GetOrderEvents: wrong method POST", "POST", f"/v1/orders/{placed}/events", b"{}", 405, 12, None, "T",
        "/v1/orders/{order_id}/events")
    # unknown routes and non-API targets
    for m, pth in (("GET", "/v1/nothing"), ("GET", "/v2/orders"), ("POST", "/v1/orders/x/y/z"), ("GET", "/v1"),
                   ("DELETE", "/v1/orders/" + placed + "/cancel/extra"), ("GET", "abc"), ("GET", "/v1/orders//cancel")):
        add(f"unknown route {m} {pth}", m, pth, b"", 404, 5, None, "T", "unmatched")
    add("unknown HTTP method on a route", "BREW", "/v1/orders", b"", 405, 12, None, "T", "/v1/orders")
    add("broken Content-Length", "POST", "/v1/orders", b"", 400, 3, None, "T", "unmatched",
        headers={"Content-Type": "application/json", "Content-Length": "-1"})
    add("oversize body by Content-Length (not sent)", "POST", "/v1/orders", b"{", 413, 8, None, "T", "/v1/orders",
        headers={"Content-Type": "application/json", "Content-Length": str(4 << 20)})
    return cases


def check_error_shape(case, status, hdrs, raw):
    assert hdrs.get("content-type", "").startswith("application/json"), f"content-type {hdrs.get('content-type')}: {raw[:200]!r}"
    body = json.loads(raw)
    assert set(body) == {"code", "message", "details"}, body
    assert isinstance(body["code"], int) and isinstance(body["message"], str) and isinstance(body["details"], list), body
    for d in body["details"]:
        assert set(d) == {"field", "description"} and all(isinstance(v, str) for v in d.values()), body
    assert body["code"] == case.code, f"code {body['code']}, expected {case.code}: {body}"
    if case.field is not None:
        fields = [d["field"] for d in body["details"]]
        assert case.field in fields, f"field {case.field!r} not named (details fields {fields}): {body}"
        assert case.field in body["message"], f"message does not name {case.field!r}: {body}"
    if case.msg:
        assert case.msg in body["message"], f"message lacks {case.msg!r}: {body}"
    text = body["message"] + " " + " ".join(d["description"] for d in body["details"])
    for leak in LEAKS:
        assert not leak.search(text), f"error text leaks internals ({leak.pattern}): {text}"
    if status == 405:
        assert hdrs.get("allow"), f"405 without an Allow header: {hdrs}"
    return body


def check_grpc(case, code, details):
    """The gRPC answer to a row: its status code is the row's code and its details name the field."""
    if code == 0:
        raise AssertionError("accepted over gRPC")
    if code != case.code:
        raise AssertionError(f"gRPC status {code}, expected {case.code}: {details[:300]!r}")
    if case.field is not None and case.field not in details:
        raise AssertionError(f"field {case.field!r} not named in the status details: {details[:300]!r}")
    if case.msg and case.msg not in details:
        raise AssertionError(f"status details lack {case.msg!r}: {details[:300]!r}")
    for leak in LEAKS:
        if leak.search(details):
            raise AssertionError(f"status details leak internals ({leak.pattern}): {details[:300]!r}")


def unchanged(before, after):
    """None, or what changed between two Store.snapshot()s."""
    if after[0] != before[0]:
        return f"the store changed: es_events/es_commands {before[0]} -> {after[0]}"
    if after[1] != before[1]:
        return f"the read model changed: order_summary/es_consumer_streams (rows:hash) {before[1]} -> {after[1]}"
    return None


def run_table(cluster, o, cases, runner):
    """Each row over HTTP and, when its defect is in the request's content, over gRPC. The store
    and the read model are compared around every request. The projection has applied every event
    the setup wrote before the first row (waited for), so an unchanged read model means the row
    wrote nothing a reader would see; at the end it is waited for again and compared with its
    state before the table, which also catches an effect the projection applied late."""
    port = o.http_port
    side = GrpcSide(o.grpc_port)
    failures, xfails, counted = [], [], 0
    ran, took, http_only = {"HTTP": 0, "gRPC": 0}, {"HTTP": 0.0, "gRPC": 0.0, "checks": 0.0}, []
    started = time.time()
    store = Store(cluster.pg)
    eventually(store.caught_up, timeout=60, what="the projection to apply every event written so far")
    before_all = after = store.snapshot()
    refused_after, _ = scrape(port)
    for case in cases:
        problems = []
        # over HTTP
        before, refused_before = after, refused_after   # what the previous request left
        problem = None
        t = time.time()
        try:
            status, hdrs, raw = http_raw(port, case.method, case.path, case.headers, case.body)
            if status != case.status:
                raise AssertionError(f"HTTP {status}, expected {case.status}: {raw[:300]!r}")
            check_error_shape(case, status, hdrs, raw)
            if case.status == 405:
                allow = hdrs["allow"]
                assert case.method not in [m.strip() for m in allow.split(",")], allow
        except (AssertionError, ValueError, OSError) as e:
            problem = str(e)
        took["HTTP"] += time.time() - t
        if o.proc.poll() is not None:
            raise AssertionError(f"orderd died on {case.name} (exit {o.proc.returncode})")
        t = time.time()
        after = store.snapshot()
        problem = problem or unchanged(before, after)
        refused_after, _ = scrape(port)
        took["checks"] += time.time() - t
        delta = {k: v - refused_before.get(k, 0) for k, v in refused_after.items() if v != refused_before.get(k, 0)}
        if not problem:
            want = {(case.route, str(case.status)): 1} if case.stage == "T" else {}
            if delta != want:
                problem = f"es_http_refused_total changed by {delta}, expected {want}"
        counted += sum(delta.values())
        ran["HTTP"] += 1
        if problem:
            problems.append(problem)
        # over gRPC: the same content as a protobuf request with the row's metadata
        if case.grpc:
            try:
                rpc, stub, req, md = side.request(case)
            except Unparseable as e:
                http_only.append(f"{case.name}: {e}")
            else:
                before, problem = after, None
                t = time.time()
                try:
                    check_grpc(case, *side.call(stub, req, md))
                except AssertionError as e:
                    problem = str(e)
                took["gRPC"] += time.time() - t
                if o.proc.poll() is not None:
                    raise AssertionError(f"orderd died on {case.name} over gRPC (exit {o.proc.returncode})")
                t = time.time()
                after = store.snapshot()
                took["checks"] += time.time() - t
                problem = problem or unchanged(before, after)
                ran["gRPC"] += 1
                if problem:
                    problems.append(f"[gRPC {rpc}] {problem}")
        problem = "; ".join(problems)
        if problem and case.xfail:
            xfails.append(f"{case.name}: {problem} [known: {case.xfail}]")
        elif problem:
            failures.append(f"{case.name}: {problem}")
        elif case.xfail:
            failures.append(f"{case.name}: marked as a known failure ({case.xfail}) but passes now: remove the mark")
    side.close()
    # whatever a row made the projection do shows once it has caught up again
    eventually(store.caught_up, timeout=60, what="the projection to apply every event written so far")
    end = store.snapshot()
    store.close()
    moved = unchanged(before_all, end)
    if moved:
        failures.append(f"after the table, once the projection caught up: {moved}")
    eligible = sum(1 for c in cases if c.grpc)
    print(f"bad-input table: {len(cases)} rows, {len(cases) - len(failures) - len(xfails)} as expected, "
          f"{len(xfails)} known failures, {len(failures)} failures; {counted} refusals counted by the transport; "
          f"es_events/es_commands rows {before_all[0]} -> {end[0]}; read model {before_all[1]} -> {end[1]}", flush=True)
    print(f"  transports: {ran['HTTP']} requests over HTTP ({took['HTTP']:.1f} s in requests), {ran['gRPC']} over "
          f"gRPC ({took['gRPC']:.1f} s); {eligible} rows have a content defect or a metadata one gRPC shares, "
          f"{len(http_only)} of them stay HTTP-only (json_format cannot parse their content); "
          f"{time.time() - started:.1f} s in all, {took['checks']:.1f} s of it comparing store, read model and "
          f"counters", flush=True)
    for h in http_only:
        print(f"  HTTP-only: {h}", flush=True)
    for x in xfails:
        print(f"  XFAIL (fails the test until fixed) {x}", flush=True)
    for f in failures:
        print(f"  FAIL {f}", flush=True)
    # a converter that turned every row away would leave gRPC untested
    assert ran["gRPC"] > 2 * len(http_only), f"only {ran['gRPC']} rows ran over gRPC, {len(http_only)} HTTP-only"
    assert not failures and not xfails, f"{len(failures)} failures, {len(xfails)} known failures"


def positive_controls(cluster, o, page_token):
    """Each route's base body, unchanged, is accepted: the table's rows differ only by their defect.
    The row counts and the read-model fingerprint the table compared do move when a command is
    accepted (the checks can fail)."""
    port = o.http_port
    store = Store(cluster.pg)
    eventually(store.caught_up, timeout=60, what="the projection to apply every event written so far")
    counts, model = store.snapshot()
    before = [int(x) for x in counts.split()]

    def ok(method, path, body):
        status, r = http_json(port, method, path, body)
        assert status == 200, (method, path, status, r)
        return r

    new = lambda: ok("POST", "/v1/orders", PLACE)["order_id"]  # noqa: E731
    a, b, c, d = new(), new(), new(), new()
    ok("POST", f"/v1/orders/{a}/cancel", {"reason": "bad-input test"})
    ok("POST", f"/v1/orders/{b}/payment:fail", {"reason": "declined"})
    ok("POST", f"/v1/orders/{c}/payment:initiate", {"payment_id": "pay-1"})
    ok("POST", f"/v1/orders/{c}/payment:authorise", {"authorisation_code": "AUTH-1"})
    ok("POST", f"/v1/orders/{c}/payment:paid", {"amount": {"currency_code": "EUR", "amount_minor": str(TOTAL)}})
    ok("PUT", f"/v1/orders/{c}/shipping-status",
       {"status": "SHIPPING_STATUS_IN_TRANSIT", "carrier": "DHL", "tracking_number": "JD0001", "location": "Leipzig"})
    ok("POST", f"/v1/orders/{d}/payment:initiate", {})
    ok("POST", f"/v1/orders/{d}/payment:paid", {})
    ok("POST", f"/v1/orders/{d}/payment:refund", {"reason": "returned"})
    status, _, _ = http_raw(port, "GET", "/v1/orders?limit=10&status=ORDER_STATUS_PLACED", {}, b"")
    assert status == 200, status
    # the token the forged ones were made from is good on the list it was issued for
    status, _, raw = http_raw(port, "GET", f"/v1/orders?limit=1&page_token={page_token}", {}, b"")
    assert status == 200 and json.loads(raw)["orders"], (status, raw[:300])
    status, _, _ = http_raw(port, "POST", "/v1/orders", dict(JSON, **{"Idempotency-Key": str(uuid.uuid4())}), dumps(PLACE))
    assert status == 200, status
    after = [int(x) for x in store.counts().split()]
    assert after[0] == before[0] + 14 and after[1] == before[1] + 1, (before, after)
    eventually(store.caught_up, timeout=60, what="the projection to apply the controls' events")
    model_after = store.snapshot()[1]
    store.close()
    rows = lambda m: [int(part.split(":")[0]) for part in m.split()]  # noqa: E731
    assert rows(model_after) == [n + 5 for n in rows(model)], (model, model_after)  # five new orders
    assert unchanged((counts, model), (counts, model_after)), (model, model_after)


def setup_orders(o):
    port = o.http_port

    def ok(method, path, body):
        status, r = http_json(port, method, path, body)
        assert status == 200, (method, path, status, r)
        return r
    placed = ok("POST", "/v1/orders", PLACE)["order_id"]
    initiated = ok("POST", "/v1/orders", PLACE)["order_id"]
    ok("POST", f"/v1/orders/{initiated}/payment:initiate", {})
    paid = ok("POST", "/v1/orders", PLACE)["order_id"]
    ok("POST", f"/v1/orders/{paid}/payment:initiate", {})
    ok("POST", f"/v1/orders/{paid}/payment:paid", {})
    return {"placed": placed, "initiated": initiated, "paid": paid}


def issued_page_token(cluster, o):
    """The next_page_token of the first page of the unfiltered ListOrders, once the projection
    shows the setup's orders."""
    store = Store(cluster.pg)
    eventually(store.caught_up, timeout=60, what="the projection to apply the setup's events")
    store.close()
    status, _, raw = http_raw(o.http_port, "GET", "/v1/orders?limit=1", {}, b"")
    r = json.loads(raw) if status == 200 else {}
    assert r.get("next_page_token"), (status, raw[:300])
    return r["next_page_token"]


def test_unparseable_requests(cluster, o):
    """Bytes h2o cannot parse as an HTTP request at all. libh2o 2.2 answers them itself with a
    fixed plain-text "400 Bad Request" written straight to the socket (no filter or handler runs,
    so the JSON shape and es_http_refused_total cannot apply) and closes the connection. What is
    promised: a 400, the connection closed, orderd alive, nothing written."""
    port = o.http_port
    store = Store(cluster.pg)
    before = store.counts()
    rows = [("control character in the method", b"GE\x01T /v1/orders HTTP/1.1\r\nHost: x\r\n\r\n"),
            ("NUL in the target", b"GET /v1/orders/a\x00b HTTP/1.1\r\nHost: x\r\n\r\n"),
            ("header without a colon", b"GET /v1/orders HTTP/1.1\r\nHost x\r\n\r\n"),
            ("not HTTP at all", b"hello world\r\n\r\n"),
            ("no version", b"GET /v1/orders\r\n\r\n"),
            ("500 KB request line", b"GET /v1/orders/" + b"a" * 500000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"),
            ("header with a NUL", b"GET /v1/orders HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n")]
    for name, raw in rows:
        data = b""
        with socket.create_connection(("127.0.0.1", port), timeout=15) as s:
            try:
                s.sendall(raw)
            except (BrokenPipeError, ConnectionResetError):
                pass
            try:
                while True:
                    c = s.recv(65536)
                    if not c:
                        break
                    data += c
            except ConnectionResetError:
                pass
        status = parse_response(data)[0]
        assert status == 400, f"{name}: {data[:200]!r}"
        assert o.proc.poll() is None, f"orderd died on {name}"
    after = store.counts()
    store.close()
    assert after == before, (before, after)
    print(f"  {len(rows)} unparseable requests: h2o's plain 400, connection closed, store unchanged", flush=True)


def test_grpc_invalid_utf8(cluster, o):
    """gRPC: protobuf-c checks neither that a proto3 string is UTF-8 nor for an embedded NUL; the
    transport does, so a request the JSON side would refuse is refused here too, naming the field,
    and stores nothing."""
    import grpc
    from orders.v1 import commands_pb2, types_pb2
    req = commands_pb2.PlaceOrderRequest(
        customer_id="cust-XX", vendor_id="v", payment_method="card",
        items=[types_pb2.LineItem(product_id="p", quantity=1, unit_price=types_pb2.Money(currency_code="EUR", amount_minor=100)),
               types_pb2.LineItem(product_id="sku-YY", quantity=1,
                                  unit_price=types_pb2.Money(currency_code="EUR", amount_minor=100))],
        shipping_address=types_pb2.Address(**ADDRESS)).SerializeToString()
    ch = grpc.insecure_channel(f"127.0.0.1:{o.grpc_port}")
    place = ch.unary_unary("/orders.v1.OrderService/PlaceOrder", request_serializer=lambda b: b,
                           response_deserializer=commands_pb2.CommandResult.FromString)
    store = Store(cluster.pg)
    before = store.counts()
    # the replacements keep each string's length, so only the bytes are wrong, not the framing
    for what, raw, field in (("customer_id", req.replace(b"cust-XX", b"cust\xff\xfeX"), "customer_id"),
                             ("overlong form", req.replace(b"cust-XX", b"cus\xc0\xafXX"), "customer_id"),
                             ("encoded surrogate", req.replace(b"cust-XX", b"cu\xed\xa0\x80XX"), "customer_id"),
                             ("nested repeated", req.replace(b"sku-YY", b"sku\xff\xffY"), "items[1].product_id"),
                             ("embedded NUL (protobuf-c would cut the string there)",
                              req.replace(b"cust-XX", b"cust\x00XX"), "customer_id"),
                             ("nested message", req.replace(ADDRESS["city"].encode(), b"Lon\xf5on"), "shipping_address.city")):
        try:
            place(raw, timeout=10)
            raise AssertionError(f"{what}: invalid UTF-8 accepted over gRPC")
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and field in e.details(), (what, e.code(), e.details())
    assert place(req, timeout=10).version == 1   # the same request with valid strings is accepted
    after = store.counts()
    store.close()
    assert int(after.split()[0]) == int(before.split()[0]) + 1, (before, after)
    ch.close()


# ---- part 2: limits ----

def h2_frames(sock, deadline):
    """Yields (type, flags, stream, payload) of HTTP/2 frames until EOF or the deadline."""
    buf = b""
    while time.time() < deadline:
        sock.settimeout(max(0.05, deadline - time.time()))
        try:
            c = sock.recv(65536)
        except socket.timeout:
            return
        except ConnectionResetError:
            return
        if not c:
            return
        buf += c
        while len(buf) >= 9:
            n = int.from_bytes(buf[:3], "big")
            if len(buf) < 9 + n:
                break
            yield buf[3], buf[4], int.from_bytes(buf[5:9], "big") & 0x7fffffff, buf[9:9 + n]
            buf = buf[9 + n:]


H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


def test_connection_limit(o):
    import http.client
    port = o.http_port
    before, _ = scrape(port)
    keep = http.client.HTTPConnection("127.0.0.1", port, timeout=10)   # connection 1: keeps working
    keep.request("GET", "/livez")
    r = keep.getresponse()
    assert r.status == 200, r.status
    r.read()
    idle = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(3)]   # 2..4: the limit

    def open_now():
        keep.request("GET", "/metrics")
        r = keep.getresponse()
        m = re.search(r"^es_http_connections (\d+)$", r.read().decode(), re.M)
        return int(m.group(1)) if m else -1

    eventually(lambda: open_now() == 4, 10, 0.02, what="the server to hold the 4 connections")
    refused = 0
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as extra:
            data = b""
            while True:
                c = extra.recv(4096)
                if not c:
                    break
                data += c
        status, hdrs, body = parse_response(data)
        assert status == 503 and json.loads(body)["code"] == 14 and hdrs.get("connection") == "close", data
        refused += 1
    # the open connections still work: a command on the kept one, a request on an idle one
    keep.request("POST", "/v1/orders", body=json.dumps(PLACE), headers=JSON)
    r = keep.getresponse()
    assert r.status == 200, (r.status, r.read())
    r.read()
    idle[0].sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    data = b""
    while True:
        c = idle[0].recv(4096)
        if not c:
            break
        data += c
    assert parse_response(data)[0] == 200, data
    idle[0].close()
    eventually(lambda: open_now() == 3, 10, 0.02, what="the server to see the closed connection go")
    keep.request("GET", "/metrics")
    r = keep.getresponse()
    text = r.read().decode()
    after = {}
    for line in text.splitlines():
        m = re.match(r'^es_http_refused_total\{route="([^"]*)",status="(\d+)"\} ([0-9.e+]+)$', line)
        if m:
            after[(m.group(1), m.group(2))] = float(m.group(3))
    key = ("connection_limit", "503")
    assert after.get(key, 0) - before.get(key, 0) == refused, (before.get(key), after.get(key))
    assert re.search(r"^es_http_connections_max 4$", text, re.M), "es_http_connections_max"
    m = re.search(r"^es_http_connections (\d+)$", text, re.M)
    assert m and 1 <= int(m.group(1)) <= 4, m and m.group(0)
    keep.close()
    for s in idle[1:]:
        s.close()
    # below the limit again: served
    eventually(lambda: http_raw(port, "GET", "/livez", {}, b"")[0] == 200, 10, 0.02, what="/livez served again")
    print(f"  {refused} connections above the limit of 4 answered 503 and closed; open ones served", flush=True)


def test_request_timeout(o, timeout_s):
    """A connection that sends nothing, or only part of its headers, is closed after the HTTP/1
    request timeout; a keep-alive connection left idle too."""
    port = o.http_port
    for what, first in (("silent", b""), ("partial headers", b"GET /livez HTTP/1.1\r\nHost: x\r\n"),
                        ("idle keep-alive", b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")):
        t = time.time()
        with socket.create_connection(("127.0.0.1", port), timeout=timeout_s + 10) as s:
            if first:
                s.sendall(first)
            data = b""
            try:
                while True:
                    c = s.recv(4096)
                    if not c:
                        break
                    data += c
            except ConnectionResetError:
                pass
        took = time.time() - t
        assert timeout_s * 0.8 <= took <= timeout_s + 5, f"{what}: closed after {took:.1f} s (timeout {timeout_s} s)"
        if what == "idle keep-alive":
            assert data.startswith(b"HTTP/1.1 200"), data[:100]
        print(f"  {what} connection closed after {took:.1f} s", flush=True)


def test_http2_idle_timeout(o, timeout_s):
    t = time.time()
    goaway = False
    with socket.create_connection(("127.0.0.1", o.http_port), timeout=10) as s:
        s.sendall(H2_PREFACE)
        for ftype, flags, stream, payload in h2_frames(s, time.time() + timeout_s + 10):
            if ftype == 4 and not flags & 1:
                s.sendall(b"\x00\x00\x00\x04\x01\x00\x00\x00\x00")   # ACK their SETTINGS
            if ftype == 7:
                goaway = True
    took = time.time() - t
    assert goaway and timeout_s * 0.8 <= took <= timeout_s + 5, f"GOAWAY {goaway} after {took:.1f} s"
    print(f"  idle HTTP/2 connection: GOAWAY and close after {took:.1f} s", flush=True)


def test_grpc_limits(o, max_streams, max_message):
    # SETTINGS_MAX_CONCURRENT_STREAMS (id 3) as the server announces it
    settings = {}
    with socket.create_connection(("127.0.0.1", o.grpc_port), timeout=10) as s:
        s.sendall(H2_PREFACE)
        for ftype, flags, stream, payload in h2_frames(s, time.time() + 5):
            if ftype == 4 and not flags & 1:
                for i in range(0, len(payload), 6):
                    k, v = struct.unpack(">HI", payload[i:i + 6])
                    settings[k] = v
                break
    assert settings.get(3) == max_streams, f"server SETTINGS {settings}, expected MAX_CONCURRENT_STREAMS {max_streams}"
    import grpc
    from orders.v1 import commands_pb2, types_pb2
    ch = grpc.insecure_channel(f"127.0.0.1:{o.grpc_port}", options=[("grpc.max_send_message_length", 64 << 20)])
    place = ch.unary_unary("/orders.v1.OrderService/PlaceOrder", request_serializer=lambda m: m.SerializeToString(),
                           response_deserializer=commands_pb2.CommandResult.FromString)

    def req(title):
        return commands_pb2.PlaceOrderRequest(
            customer_id="grpc-limits", vendor_id="v", payment_method="card",
            items=[types_pb2.LineItem(product_id="p", title=title, quantity=1,
                                      unit_price=types_pb2.Money(currency_code="EUR", amount_minor=100))],
            shipping_address=types_pb2.Address(**ADDRESS))
    assert place(req("small"), timeout=10).version == 1
    big = req("t" * (max_message + 1))
    try:
        place(big, timeout=10)
        raise AssertionError("a message above grpc-max-message was accepted")
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, e
    assert place(req("after"), timeout=10).version == 1   # the server still serves
    ch.close()
    print(f"  gRPC: MAX_CONCURRENT_STREAMS {settings[3]}, a {big.ByteSize()}-byte message refused "
          f"(RESOURCE_EXHAUSTED)", flush=True)


def run(cluster, runner, stubs):
    # No payment flow: nothing but the test's own requests writes to the store.
    o = cluster.start_orderd("--payments", "0")
    runner.run("the table has rows for every body route orderd serves", table_covers_served_routes, o)
    ids = setup_orders(o)
    token = issued_page_token(cluster, o)
    cases = build_table(ids, token)
    runner.run(f"bad-input table ({len(cases)} cases)", run_table, cluster, o, cases, runner)
    runner.run("unparseable requests: 400 and closed, nothing written", test_unparseable_requests, cluster, o)
    runner.run("gRPC: invalid UTF-8 in strings refused, field named, nothing stored", test_grpc_invalid_utf8, cluster, o)
    runner.run("positive controls: every route's base body is accepted", positive_controls, cluster, o, token)
    timeout_s = 2
    lim = cluster.start_orderd("--payments", "0", "--projections", "0", "--relay", "0",
                               "--http-max-connections", "4", "--http-request-timeout-ms", str(timeout_s * 1000),
                               "--http-idle-timeout-ms", str(timeout_s * 1000), "--grpc-max-streams", "7",
                               "--grpc-max-message", "65536")
    runner.run("connection limit: extra connections refused, open ones work, counted", test_connection_limit, lim)
    runner.run("HTTP/1 request and keep-alive timeout", test_request_timeout, lim, timeout_s)
    runner.run("HTTP/2 idle timeout", test_http2_idle_timeout, lim, timeout_s)
    runner.run("gRPC max concurrent streams and max message size", test_grpc_limits, lim, 7, 65536)
    for inst in (o, lim):
        assert inst.proc.poll() is None, f"orderd exited with {inst.proc.returncode}"


if __name__ == "__main__":
    e2e_main(run, stubs=True)
