"""gRPC client scenarios against the echo service (tests/net/echo_service.h), run by
test_grpc_server with Debian's /usr/bin/python3 (python3-grpcio, python3-protobuf).

usage: grpc_client.py PORT SCENARIO   exit 0 = pass; failures print why and exit 1."""
import sys
import time
from concurrent import futures

import grpc
from google.protobuf import wrappers_pb2

PORT, SCENARIO = sys.argv[1], sys.argv[2]
if len(sys.argv) > 3:  # TLS: argv[3] is the server's self-signed certificate
    with open(sys.argv[3], "rb") as f:
        creds = grpc.ssl_channel_credentials(root_certificates=f.read())
    channel = grpc.secure_channel(f"localhost:{PORT}", creds)
else:
    channel = grpc.insecure_channel(f"127.0.0.1:{PORT}")
ident = lambda b: b


def unary(path):
    return channel.unary_unary(path, request_serializer=ident, response_deserializer=ident)


say_raw = unary("/test.v1.Echo/Say")
rule_raw = unary("/test.v1.Echo/Rule")


def sv(value):
    return wrappers_pb2.StringValue(value=value).SerializeToString()


def say(value, metadata=None, timeout=5):
    out = wrappers_pb2.StringValue()
    out.ParseFromString(say_raw(sv(value), metadata=metadata, timeout=timeout))
    return out.value


def expect(cond, what):
    if not cond:
        print("FAIL:", what)
        sys.exit(1)


def expect_error(fn, code, message=None):
    try:
        fn()
    except grpc.RpcError as e:
        expect(e.code() == code, f"want {code}, got {e.code()} {e.details()!r}")
        if message is not None:
            expect(e.details() == message, f"want message {message!r}, got {e.details()!r}")
        return e
    expect(False, f"want {code}, the call succeeded")


def success():
    expect(say("hello") == "hello", "echo")
    expect(say("") == "", "empty echo")
    expect(say("inline") == "inline", "inline completion")
    uni = "h\u00e9llo \u2603 " + "x" * 10000
    expect(say(uni) == uni, "unicode and a longer payload")
    # HttpRule.selector is field 1, string, like StringValue.value: same bytes.
    expect(rule_raw(sv("r1"), timeout=5) == sv("r1"), "Rule echo")
    expect(rule_raw(b"", timeout=5) == b"", "empty message echo")


def errors():
    expect_error(lambda: say("err:5:order_id:order not found"), grpc.StatusCode.NOT_FOUND,
                 "order_id: order not found")
    expect_error(lambda: say("err:3:reason:reason is required"), grpc.StatusCode.INVALID_ARGUMENT,
                 "reason is required")
    expect_error(lambda: say("err:10::version conflict"), grpc.StatusCode.ABORTED, "version conflict")
    expect_error(lambda: say("err:9:status:order is cancelled"), grpc.StatusCode.FAILED_PRECONDITION)
    expect_error(lambda: say("badtype"), grpc.StatusCode.INTERNAL)
    expect(say("after-errors") == "after-errors", "server healthy after errors")


def metadata():
    md = [("authorization", "Bearer tok-123"), ("idempotency-key", "key-1"), ("x-correlation-id", "corr-1")]
    expect(say("meta", md) == "auth=tok-123;idem=key-1;corr=corr-1", "metadata copied")
    expect(say("meta") == "auth=-;idem=-;corr=-", "no metadata")
    expect(say("meta", [("x-request-id", "req-9")]) == "auth=-;idem=-;corr=req-9", "x-request-id")
    expect_error(lambda: say("meta", [("authorization", "Basic dXNlcjpwdw==")]),
                 grpc.StatusCode.UNAUTHENTICATED)
    expect_error(lambda: say("meta", [("idempotency-key", "k" * 300)]), grpc.StatusCode.INVALID_ARGUMENT)


def unknown():
    t0 = time.monotonic()
    expect_error(lambda: unary("/test.v1.Echo/Nope")(b"", timeout=10), grpc.StatusCode.UNIMPLEMENTED)
    expect_error(lambda: unary("/other.Service/Say")(sv("x"), timeout=10), grpc.StatusCode.UNIMPLEMENTED)
    expect(time.monotonic() - t0 < 2, "UNIMPLEMENTED promptly, not at the deadline")
    expect(say("still-fine") == "still-fine", "server healthy")


def badbytes():
    for junk in (b"\xff\xff\xff\xff", b"\x0a\x05ab", b"\x0a\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01",
                 b"\x0b", b"\x0a\x02\xff\xfe"[:3]):
        e = expect_error(lambda: say_raw(junk, timeout=5), grpc.StatusCode.INVALID_ARGUMENT)
        expect("StringValue" in e.details(), "message names the type: " + e.details())
    expect(say("ok") == "ok", "server healthy after bad bytes")


def oversize():
    # test_grpc_server configures max_message = 64 KiB
    expect_error(lambda: say("x" * (100 * 1024)), grpc.StatusCode.RESOURCE_EXHAUSTED)
    expect(say("x" * 1000) == "x" * 1000, "small message still fine")


def deadline():
    expect_error(lambda: say("sleep:1500", timeout=0.2), grpc.StatusCode.DEADLINE_EXCEEDED)
    expect(say("ok") == "ok", "server healthy after a deadline")


def concurrent():
    n = 64
    t0 = time.monotonic()
    calls = [say_raw.future(sv(f"sleep:400#{i}"), timeout=10) for i in range(n)]
    for i, c in enumerate(calls):
        out = wrappers_pb2.StringValue()
        out.ParseFromString(c.result())
        expect(out.value == f"sleep:400#{i}", f"call {i} got {out.value!r}")
    took = time.monotonic() - t0
    expect(took < 3.0, f"{n} overlapping 400 ms calls took {took:.2f}s")
    # and a burst of fast calls from several client threads
    with futures.ThreadPoolExecutor(8) as pool:
        res = list(pool.map(lambda i: say(f"fast{i}"), range(400)))
    expect(res == [f"fast{i}" for i in range(400)], "fast burst")


def tls():
    expect(say("over tls") == "over tls", "echo over TLS")
    expect_error(lambda: say("err:5:id:missing"), grpc.StatusCode.NOT_FOUND, "id: missing")


def slow():
    # used by the graceful-stop test: the server is stopped while this call is in flight
    expect(say("sleep:700", timeout=10) == "sleep:700", "in-flight call finished during stop")


SCENARIOS = {f.__name__: f for f in (success, errors, metadata, unknown, badbytes, oversize,
                                     deadline, concurrent, slow, tls)}
grpc.channel_ready_future(channel).result(timeout=10)
SCENARIOS[SCENARIO]()
print("ok", SCENARIO)
