#!/usr/bin/python3
"""A small gRPC client for orderd (Debian's python3-grpcio and python3-protobuf):
    scripts/grpc_call.py [--addr 127.0.0.1:8081] [--token T] [-I DIR]... <Method> '<request as JSON>'
It compiles every package under proto/ (and under each -I DIR, e.g. a test fixture's protos) with
protoc into a temporary folder, finds the method in their services (<Method> alone when one
service has it, or <package.Service>/<Method>), sends the request and prints the answer as JSON
(or the status and message)."""
import argparse
import importlib
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
GOOGLEAPIS = os.environ.get("GOOGLEAPIS_DIR", "/usr/share/gocode/src/github.com/gogo/googleapis")


def protos_under(root):
    """Every .proto under root (relative paths), the released baseline left out."""
    out = []
    for d, _, files in os.walk(root):
        rel = os.path.relpath(d, root)
        if rel == "baseline" or rel.startswith("baseline" + os.sep):
            continue
        out += [os.path.normpath(os.path.join(rel, f)) for f in files if f.endswith(".proto")]
    return sorted(out)


def find_method(modules, name):
    """(service full name, method descriptor) for 'Method' or 'pkg.Service/Method'."""
    want_svc, _, want_m = name.rpartition("/")
    found = []
    for mod in modules:
        for svc in mod.DESCRIPTOR.services_by_name.values():
            m = svc.methods_by_name.get(want_m)
            if m and (not want_svc or svc.full_name == want_svc):
                found.append((svc.full_name, m))
    if len(found) == 1:
        return found[0]
    every = sorted(f"{s.full_name}/{m}" for mod in modules for s in mod.DESCRIPTOR.services_by_name.values()
                   for m in s.methods_by_name)
    sys.exit(f"{'ambiguous' if found else 'unknown'} method {name}; one of: {', '.join(every)}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--addr", default="127.0.0.1:8081")
    ap.add_argument("--token")
    ap.add_argument("-I", dest="roots", action="append", default=[], help="another folder of protos")
    ap.add_argument("method")
    ap.add_argument("request", nargs="?", default="{}")
    a = ap.parse_args()
    out = tempfile.mkdtemp(prefix="orderd-py-")
    roots = [f"{ROOT}/proto"] + [os.path.abspath(r) for r in a.roots]
    protos = [p for r in roots for p in protos_under(r)]
    subprocess.run(["protoc"] + [f"-I{r}" for r in roots] + [f"-I{GOOGLEAPIS}", "-I/usr/include", f"--python_out={out}",
                    "google/api/http.proto", "google/api/annotations.proto"] + protos, check=True)
    sys.path.insert(0, out)
    import grpc
    from google.protobuf import json_format, symbol_database
    modules = [importlib.import_module(p[:-len(".proto")].replace("/", ".") + "_pb2") for p in protos]
    svc, m = find_method(modules, a.method)
    db = symbol_database.Default()
    req_cls, resp_cls = db.GetSymbol(m.input_type.full_name), db.GetSymbol(m.output_type.full_name)
    req = json_format.Parse(a.request, req_cls())
    md = [("authorization", f"Bearer {a.token}")] if a.token else None
    stub = grpc.insecure_channel(a.addr).unary_unary(f"/{svc}/{m.name}",
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
