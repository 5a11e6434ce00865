"""gRPC server reflection and the BI view, end to end against a running orderd (real PostgreSQL,
librdkafka's mock Kafka cluster).

The client is generic: it knows no orders .proto file. It compiles only the public reflection
.proto (tests/reflection/proto) with Debian's protoc, asks the server for its services and for the
file defining orders.v1.OrderService, builds a descriptor pool and message classes from the
returned FileDescriptorProtos, and calls PlaceOrder and GetOrder with them.

Usage: test_reflection.py <orderd> <es-kafka-mock>"""
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
from harness import Cluster, Runner, eventually  # noqa: E402

import grpc  # noqa: E402
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory  # noqa: E402

V1ALPHA = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
V1 = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"


def reflection_stubs(out_dir):
    subprocess.run(["protoc", f"-I{HERE}/proto", f"--python_out={out_dir}",
                    "grpc/reflection/v1alpha/reflection.proto"], check=True)
    # Loaded by path: its package name would collide with the grpc module itself.
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        "reflection_pb2", os.path.join(out_dir, "grpc/reflection/v1alpha/reflection_pb2.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class Reflection:
    """A generic reflection client: one bidirectional stream per exchange of several requests."""

    def __init__(self, channel, pb, path=V1ALPHA):
        self.pb = pb
        self.rpc = channel.stream_stream(path, request_serializer=pb.ServerReflectionRequest.SerializeToString,
                                         response_deserializer=pb.ServerReflectionResponse.FromString)

    def ask(self, *requests):
        return list(self.rpc(iter(requests), timeout=10))

    def services(self):
        (r,) = self.ask(self.pb.ServerReflectionRequest(host="h", list_services=""))
        assert r.WhichOneof("message_response") == "list_services_response", r
        return [s.name for s in r.list_services_response.service]

    def pool_for_symbol(self, symbol):
        """A descriptor pool holding the file that defines symbol and everything it imports."""
        (r,) = self.ask(self.pb.ServerReflectionRequest(file_containing_symbol=symbol))
        assert r.WhichOneof("message_response") == "file_descriptor_response", r
        files = {}
        for raw in r.file_descriptor_response.file_descriptor_proto:
            fd = descriptor_pb2.FileDescriptorProto.FromString(raw)
            files[fd.name] = fd
        pool = descriptor_pool.DescriptorPool()
        added = set()

        def add(name):  # dependencies first, as the pool requires
            if name in added:
                return
            for dep in files[name].dependency:
                assert dep in files, f"{name} imports {dep}, which the response lacks"
                add(dep)
            pool.Add(files[name])
            added.add(name)
        for name in files:
            add(name)
        return pool, files


def message_class(pool, full_name):
    desc = pool.FindMessageTypeByName(full_name)
    if hasattr(message_factory, "GetMessageClass"):
        return message_factory.GetMessageClass(desc)
    return message_factory.MessageFactory(pool).GetPrototype(desc)


ORDER = {"customer_id": "refl-cust-7", "vendor_id": "vend-r", "payment_method": "card",
         "items": [{"product_id": "sku-r", "quantity": 2, "unit_price": {"currency_code": "EUR", "amount_minor": "300"}}],
         "shipping_address": {"name": "Ada", "line1": "1 Main St", "city": "Paris", "postal_code": "75001",
                              "country_code": "FR"}}


def test_list_services(ch, pb):
    names = Reflection(ch, pb).services()
    for want in ("orders.v1.OrderService", "grpc.reflection.v1alpha.ServerReflection"):
        assert want in names, names
    # grpc.reflection.v1 answers on the same wire format.
    assert "orders.v1.OrderService" in Reflection(ch, pb, V1).services()


def test_discover_and_call(ch, pb, state):
    """Discovers OrderService, builds the request from the reflected descriptors, calls it."""
    pool, files = Reflection(ch, pb).pool_for_symbol("orders.v1.OrderService")
    svc = pool.FindServiceByName("orders.v1.OrderService")
    methods = {m.name: m for m in svc.methods}
    assert {"PlaceOrder", "GetOrder", "CancelOrder"} <= set(methods), methods.keys()
    assert "google/protobuf/descriptor.proto" in files and "es/options.proto" in files, files.keys()

    place = methods["PlaceOrder"]
    Req, Res = message_class(pool, place.input_type.full_name), message_class(pool, place.output_type.full_name)
    req = json_format.ParseDict(ORDER, Req())
    res = ch.unary_unary(f"/{svc.full_name}/{place.name}", request_serializer=Req.SerializeToString,
                         response_deserializer=Res.FromString)(req, timeout=10)
    got = json_format.MessageToDict(res, preserving_proto_field_name=True)
    assert got.get("version") in ("1", 1) and got.get("order_id"), got
    state["order_id"] = got["order_id"]

    get = methods["GetOrder"]
    GReq, GRes = message_class(pool, get.input_type.full_name), message_class(pool, get.output_type.full_name)
    get_order = ch.unary_unary(f"/{svc.full_name}/{get.name}", request_serializer=GReq.SerializeToString,
                               response_deserializer=GRes.FromString)

    def read_own_write():  # ABORTED until the projection has caught up with version 1
        try:
            return get_order(json_format.ParseDict({"order_id": got["order_id"], "min_version": 1}, GReq()), timeout=10)
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.ABORTED:
                raise
            return None
    summary = eventually(read_own_write, what="GetOrder at version 1")
    s = json_format.MessageToDict(summary, preserving_proto_field_name=True)
    assert s["customer_id"] == ORDER["customer_id"] and s["total"]["amount_minor"] in ("600", 600), s


def test_file_requests(ch, pb):
    R = pb.ServerReflectionRequest
    by_name, method, missing, ext, nums, bad_file = Reflection(ch, pb).ask(
        R(file_by_filename="orders/v1/events.proto"),
        R(file_containing_symbol="orders.v1.OrderService.PlaceOrder"),
        R(file_containing_symbol="orders.v1.NoSuchThing"),
        R(file_containing_extension=pb.ExtensionRequest(containing_type="google.protobuf.MessageOptions",
                                                         extension_number=999999)),
        R(all_extension_numbers_of_type="google.protobuf.FieldOptions"),
        R(file_by_filename="nope.proto"))
    first = descriptor_pb2.FileDescriptorProto.FromString(by_name.file_descriptor_response.file_descriptor_proto[0])
    assert first.name == "orders/v1/events.proto" and any(m.name == "OrderPlaced" for m in first.message_type), first.name
    assert by_name.original_request.file_by_filename == "orders/v1/events.proto"
    first = descriptor_pb2.FileDescriptorProto.FromString(method.file_descriptor_response.file_descriptor_proto[0])
    assert first.name == "orders/v1/service.proto", first.name
    for r in (missing, ext, bad_file):
        assert r.WhichOneof("message_response") == "error_response", r
        assert r.error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0], r
    # es/options.proto extends FieldOptions with (es.field); the number is listed.
    assert nums.WhichOneof("message_response") == "all_extension_numbers_response", nums
    assert nums.all_extension_numbers_response.base_type_name == "google.protobuf.FieldOptions"
    assert len(nums.all_extension_numbers_response.extension_number) >= 1, nums
    # ...and the file containing that extension is found by number.
    n = nums.all_extension_numbers_response.extension_number[0]
    (found,) = Reflection(ch, pb).ask(R(file_containing_extension=pb.ExtensionRequest(
        containing_type="google.protobuf.FieldOptions", extension_number=n)))
    fd = descriptor_pb2.FileDescriptorProto.FromString(found.file_descriptor_response.file_descriptor_proto[0])
    assert any(e.number == n for e in fd.extension), fd.name


def test_bi_view(cluster, state):
    """The event placed over gRPC reads as JSON in SQL, through the es_events_json view."""
    oid = state["order_id"]
    got = cluster.psql(f"SELECT payload_json->>'customer_id' FROM es_events_json "
                       f"WHERE event_type = 'OrderPlaced' AND stream_id = '{oid}'")
    assert got == ORDER["customer_id"], got
    # Every event the order has by now (placed, then the payment flow's) carries its JSON.
    eventually(lambda: int(cluster.psql(f"SELECT count(*) FROM es_events_json WHERE stream_id = '{oid}'")) >= 3,
               what="the payment flow's events")
    nulls = cluster.psql(f"SELECT count(*) FROM es_events_json WHERE stream_id = '{oid}' AND payload_json IS NULL")
    assert nulls == "0", nulls
    amount = cluster.psql(f"SELECT payload_json->'items'->0->'unit_price'->>'amount_minor' FROM es_events_json "
                          f"WHERE event_type = 'OrderPlaced' AND stream_id = '{oid}'")
    assert amount == "300", amount  # proto3 JSON: int64 as a string, read back as text


def main():
    orderd, kafka_mock = sys.argv[1], sys.argv[2]
    runner = Runner()
    with tempfile.TemporaryDirectory(prefix="orderd-refl-stubs-") as stubs:
        pb = reflection_stubs(stubs)
        cluster = Cluster(orderd, kafka_mock)
        try:
            cluster.start_infra()
            o = cluster.start_orderd()
            ch = grpc.insecure_channel(f"127.0.0.1:{o.grpc_port}")
            state = {}
            runner.run("reflection.list_services", test_list_services, ch, pb)
            runner.run("reflection.discover_and_call", test_discover_and_call, ch, pb, state)
            runner.run("reflection.file_requests", test_file_requests, ch, pb)
            if "order_id" in state and os.environ.get("SKIP_BI") != "1":
                runner.run("bi.es_events_json", test_bi_view, cluster, state)
            ch.close()
        finally:
            cluster.stop()
    return runner.finish()


if __name__ == "__main__":
    sys.exit(main())
