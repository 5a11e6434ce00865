#!/usr/bin/python3
"""A small gRPC client for orderd (Debian's python3-grpcio and python3-protobuf):
    scripts/grpc_call.py [--addr 127.0.0.1:8081] [--token T] <Method> '<request as JSON>'
It compiles proto/ with protoc into a temporary folder, sends the request to
/orders.v1.OrderService/<Method> and prints the answer as JSON (or the status and message)."""
import argparse
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
GOOGLEAPIS = os.environ.get("GOOGLEAPIS_DIR", "/usr/share/gocode/src/github.com/gogo/googleapis")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--addr", default="127.0.0.1:8081")
    ap.add_argument("--token")
    ap.add_argument("method")
    ap.add_argument("request", nargs="?", default="{}")
    a = ap.parse_args()
    out = tempfile.mkdtemp(prefix="orderd-py-")
    protos = [f"{d}/{f}" for d in ("es", "orders/v1") for f in sorted(os.listdir(f"{ROOT}/proto/{d}")) if f.endswith(".proto")]
    subprocess.run(["protoc", f"-I{ROOT}/proto", f"-I{GOOGLEAPIS}", "-I/usr/include", f"--python_out={out}",
                    "google/api/http.proto", "google/api/annotations.proto"] + protos, check=True)
    sys.path.insert(0, out)
    import grpc
    from google.protobuf import json_format, symbol_database
    from orders.v1 import service_pb2
    svc = service_pb2.DESCRIPTOR.services_by_name["OrderService"]
    m = svc.methods_by_name.get(a.method)
    if not m:
        sys.exit(f"unknown method {a.method}; one of: {', '.join(svc.methods_by_name)}")
    db = symbol_database.Default()
    req_cls, resp_cls = db.GetSymbol(m.input_type.full_name), db.GetSymbol(m.output_type.full_name)
    req = json_format.Parse(a.request, req_cls())
    md = [("authorization", f"Bearer {a.token}")] if a.token else None
    stub = grpc.insecure_channel(a.addr).unary_unary(f"/orders.v1.OrderService/{a.method}",
                                                     request_serializer=req_cls.SerializeToString,
                                                     response_deserializer=resp_cls.FromString)
    try:
        resp = stub(req, timeout=10, metadata=md)
    except grpc.RpcError as e:
        print(json.dumps({"code": e.code().name, "message": e.details()}))
        sys.exit(1)
    print(json_format.MessageToJson(resp, preserving_proto_field_name=True))


if __name__ == "__main__":
    main()
