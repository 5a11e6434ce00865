"""The gRPC side of the bad-input table (test_bad_input.py): turns one of its HTTP rows into the
protobuf request the same RPC takes and sends it.

The RPC is found from the google.api.http rules of the service descriptor (the ones the generated
route table serves), so the row's (method, template) names it. The request is the row's JSON body
(placed as the rule's `body` says) plus the path variables and query parameters of its target,
parsed by google.protobuf.json_format with ignore_unknown_fields=False. What json_format cannot
parse is a defect only JSON can carry: such a row stays HTTP-only (Unparseable)."""
import json
import re
import urllib.parse

# HTTP headers that orderd reads as gRPC metadata of the same name
METADATA = ("authorization", "idempotency-key", "x-correlation-id", "x-request-id")


class Unparseable(Exception):
    """The row's content has no protobuf form (json_format refuses it)."""


def _set(d, dotted, value):
    parts = dotted.split(".")
    for p in parts[:-1]:
        nxt = d.setdefault(p, {})
        if not isinstance(nxt, dict):
            raise Unparseable(f"{dotted}: both a value and a message")
        d = nxt
    d[parts[-1]] = value


class GrpcSide:
    def __init__(self, port, service="orders.v1.OrderService"):
        import grpc
        from google.api import annotations_pb2
        from google.protobuf import json_format, symbol_database
        from orders.v1 import service_pb2  # noqa: F401 - registers the service and its messages
        self.grpc, self.json_format = grpc, json_format
        db = symbol_database.Default()
        svc = db.pool.FindServiceByName(service)
        self.routes = {}   # (HTTP method, template) -> (stub, input class, body rule)
        self.ch = grpc.insecure_channel(f"127.0.0.1:{port}")
        for m in svc.methods:
            req_t, resp_t = db.GetSymbol(m.input_type.full_name), db.GetSymbol(m.output_type.full_name)
            stub = self.ch.unary_unary(f"/{svc.full_name}/{m.name}", request_serializer=req_t.SerializeToString,
                                       response_deserializer=resp_t.FromString)
            rule = m.GetOptions().Extensions[annotations_pb2.http]
            for r in [rule] + list(rule.additional_bindings):
                kind = r.WhichOneof("pattern")
                if kind is None:
                    continue
                verb, tpl = (r.custom.kind, r.custom.path) if kind == "custom" else (kind.upper(), getattr(r, kind))
                self.routes[(verb, tpl)] = (m.name, stub, req_t, r.body)
        assert self.routes, f"no google.api.http rules found on {service}"

    def close(self):
        self.ch.close()

    @staticmethod
    def _path_vars(tpl, path):
        rx = "".join(f"(?P<{m.group(1).replace('.', '__')}>[^/]+)" if m.group(1) else re.escape(m.group(0))
                     for m in re.finditer(r"\{([\w.]+)(?:=[^}]*)?\}|[^{]+", tpl))
        hit = re.fullmatch(rx, path)
        if not hit:
            raise AssertionError(f"target {path[:80]!r} does not match its route {tpl}")
        return {k.replace("__", "."): v for k, v in hit.groupdict().items()}

    def request(self, case):
        """(RPC name, stub, request message, metadata) for the row, or raises Unparseable."""
        key = (case.method, case.route)
        if key not in self.routes:
            raise AssertionError(f"no RPC serves {case.method} {case.route}")
        name, stub, req_t, body_rule = self.routes[key]
        target = case.path if isinstance(case.path, str) else case.path.decode()
        path, _, query = target.partition("?")
        try:
            text = case.body.decode("utf-8") if isinstance(case.body, bytes) else (case.body or "")
            body = json.loads(text) if text.strip() else {}
        except ValueError as e:
            raise Unparseable(f"body: {e}")
        if not isinstance(body, dict):
            raise Unparseable("body is not a JSON object")
        if body_rule == "*":
            msg = body
        elif body_rule:
            msg = {body_rule: body} if body else {}
        elif body:
            raise Unparseable("a body on a route without one")
        else:
            msg = {}
        try:
            for k, v in self._path_vars(case.route, path).items():
                _set(msg, k, urllib.parse.unquote(v, errors="strict"))
            for k, v in urllib.parse.parse_qsl(query, keep_blank_values=True, errors="strict"):
                _set(msg, k, v)
        except UnicodeDecodeError as e:
            raise Unparseable(f"target: {e}")
        req = req_t()
        try:
            self.json_format.ParseDict(msg, req, ignore_unknown_fields=False)
        except (self.json_format.ParseError, TypeError, ValueError) as e:
            raise Unparseable(str(e)[:200])
        md = [(k.lower(), v) for k, v in (case.headers or {}).items() if k.lower() in METADATA]
        return name, stub, req, md

    def call(self, stub, req, md, timeout=20):
        """(status code number, details text); 0 and "" when the call succeeded."""
        try:
            stub(req, metadata=md, timeout=timeout)
            return 0, ""
        except self.grpc.RpcError as e:
            return e.code().value[0], e.details() or ""
