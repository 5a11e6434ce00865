#!/usr/bin/python3
"""Differential check of conformance-testee against Debian's python3-protobuf (json_format),
standing in for protobuf's conformance runner, which is not packaged.

For each JSON document below (many taken from the shapes conformance_test.cc uses), both
implementations parse it into TestAllTypesProto3 (or Proto2): they must agree on accept/reject,
and when both accept, the testee's binary output and its JSON output must parse (in Python) to
the message Python produced; and Python's binary of that message, sent as protobuf_payload,
must come back as JSON that reads as the same message. A few cases where python's json_format is known to be laxer or
stricter than the proto3 JSON spec are listed in SPEC_OVERRIDES with the answer the spec gives.

Binary input is checked too (BINARY_CASES): payloads whose bytes repeat a map key in every map
field (conformance ValidDataMap.*.DuplicateKey and ValidDataMap.STRING.MESSAGE.MergeValue) must
give the message python parses, in binary and in JSON (python's json_format refuses a JSON object
with a repeated key, so a map written with one fails). MERGE_CASES repeat a singular message
field, which must merge (conformance RepeatedScalarMessageMerge, ValidDataOneof.MESSAGE.Merge):
protobuf-c 1.4.1 alone refuses or mis-merges them when the message type has a oneof; the testee
reads binary through es_pb_unpack, which joins the occurrences first.

Usage: differential.py TESTEE CONFORMANCE_PB WKT_PB
"""
import struct
import subprocess
import sys

from google.protobuf import descriptor_pb2, descriptor_pool, json_format

from google.protobuf import message_factory


def message_class(desc):
    if hasattr(message_factory, "GetMessageClass"):   # protobuf >= 4.22
        return message_factory.GetMessageClass(desc)
    return message_factory.MessageFactory(desc.file.pool).GetPrototype(desc)


P3 = "protobuf_test_messages.proto3.TestAllTypesProto3"
P2 = "protobuf_test_messages.proto2.TestAllTypesProto2"
ANY = "type.googleapis.com/"

# (message type, json). Accept/reject is decided by python unless overridden below.
CASES = [
    (P3, '{}'),
    (P3, '{"optionalString": "Hello, World!"}'),
    (P3, '{"fieldname1":1,"fieldName2":2,"FieldName3":3,"fieldName4":4}'),
    (P3, '{"field0name5":5,"field0Name6":6}'),
    (P3, '{"fieldName7":7,"FieldName8":8,"fieldName9":9,"FieldName10":10,"FIELDNAME11":11,"FIELDName12":12}'),
    (P3, '{"FieldName13":13,"FieldName14":14,"fieldName15":15,"fieldName16":16,"fieldName17":17,"FieldName18":18}'),
    (P3, '{"fieldname1":1,"field_name2":2,"_field_name3":3,"field__name4_":4,"field0name5":5,"field_0_name6":6}'),
    (P3, '{"optionalNestedMessage":{"a":1},"optional_nested_message":{}}'),
    (P3, '{"optional_nested_message":{"a":1},"optionalNestedMessage":{}}'),
    (P3, '{"optionalNestedMessage":{"a":1},"optionalNestedMessage":{}}'),
    (P3, '{"optionalInt32": 1,}'),
    (P3, '{"optionalInt32": 1 , }'),
    (P3, '{"optionalInt32": 1 "optionalInt64": 2}'),
    (P3, "{'optionalInt32': 1}"),
    (P3, '{optionalInt32: 1}'),
    (P3, '{"optionalInt32": 1} x'),
    (P3, '{"optionalInt32": 2147483647, "optionalInt64": "9223372036854775807"}'),
    (P3, '{"optionalInt32": -2147483648, "optionalInt64": "-9223372036854775808"}'),
    (P3, '{"optionalUint32": 4294967295, "optionalUint64": "18446744073709551615"}'),
    (P3, '{"optionalInt64": 9223372036854775807, "optionalUint64": 18446744073709551615}'),
    (P3, '{"optionalInt32": 2147483648}'),
    (P3, '{"optionalInt32": -2147483649}'),
    (P3, '{"optionalUint32": 4294967296}'),
    (P3, '{"optionalInt64": "9223372036854775808"}'),
    (P3, '{"optionalInt64": "-9223372036854775809"}'),
    (P3, '{"optionalUint64": "18446744073709551616"}'),
    (P3, '{"optionalUint64": -1}'),
    (P3, '{"optionalInt32": "2147483647"}'),
    (P3, '{"optionalInt32": "\\u0032\\u0031"}'),
    (P3, '{"optionalInt32": 01}'),
    (P3, '{"optionalInt32": -01}'),
    (P3, '{"optionalInt32": +1}'),
    (P3, '{"optionalInt32": " 1"}'),
    (P3, '{"optionalInt32": "1 "}'),
    (P3, '{"optionalInt32": 0.5}'),
    (P3, '{"optionalInt64": "0.5"}'),
    (P3, '{"optionalInt32": 100000.000}'),
    (P3, '{"optionalInt32": 1e5}'),
    (P3, '{"optionalInt32": 2.147483647e9}'),
    (P3, '{"optionalInt32": -2.147483648e9}'),
    (P3, '{"optionalUint32": 4.294967295e9}'),
    (P3, '{"optionalInt32": "abc"}'),
    (P3, '{"optionalInt32": true}'),
    (P3, '{"optionalSint32": -5, "optionalSfixed32": -6, "optionalFixed32": 7, "optionalSint64": "-8"}'),
    (P3, '{"optionalFloat": 1.5, "optionalDouble": 2.5}'),
    (P3, '{"optionalFloat": "NaN", "optionalDouble": "NaN"}'),
    (P3, '{"optionalFloat": "Infinity", "optionalDouble": "-Infinity"}'),
    (P3, '{"optionalFloat": NaN}'),
    (P3, '{"optionalFloat": Infinity}'),
    (P3, '{"optionalFloat": 3.402823e+38}'),
    (P3, '{"optionalFloat": -3.402823e+38}'),
    (P3, '{"optionalFloat": 1.175494e-38}'),
    (P3, '{"optionalFloat": 3.502823e+38}'),
    (P3, '{"optionalFloat": -3.502823e+38}'),
    (P3, '{"optionalDouble": 2.22507e-308}'),
    (P3, '{"optionalDouble": 1.79769e+308}'),
    (P3, '{"optionalDouble": 1.89769e+308}'),
    (P3, '{"optionalDouble": -1.89769e+308}'),
    (P3, '{"optionalDouble": "1.5"}'),
    (P3, '{"optionalFloat": "nan"}'),
    (P3, '{"optionalBool": true}'),
    (P3, '{"optionalBool": false}'),
    (P3, '{"optionalBool": 0}'),
    (P3, '{"optionalBool": 1}'),
    (P3, '{"optionalBool": True}'),
    (P3, '{"optionalBool": "true"}'),
    (P3, '{"optionalString": "\\"\\\\\\/\\b\\f\\n\\r\\t"}'),
    (P3, '{"optionalString": "\\u8C37\\u6B4C"}'),
    (P3, '{"optionalString": "\\u8c37\\u6b4c"}'),
    (P3, '{"optionalString": "\\uD83D\\uDE01"}'),
    (P3, '{"optionalString": "\\uDE01\\uD83D"}'),
    (P3, '{"optionalString": "\\uD800"}'),
    (P3, '{"optionalString": "\\uDC00"}'),
    (P3, '{"optionalString": "\\U8C37"}'),
    (P3, '{"optionalString": "\\a"}'),
    (P3, '{"optionalString": "abc\\'),
    (P3, '{"optionalString": \'abc\'}'),
    (P3, '{"optionalString": 12345}'),
    (P3, '{"optionalBytes": "AQI="}'),
    (P3, '{"optionalBytes": "-_"}'),
    (P3, '{"optionalBytes": "AQI"}'),
    (P3, '{"optionalBytes": "%%%%"}'),
    (P3, '{"optionalNestedEnum": "FOO"}'),
    (P3, '{"optionalNestedEnum": "BAR"}'),
    (P3, '{"optionalNestedEnum": 0}'),
    (P3, '{"optionalNestedEnum": 1}'),
    (P3, '{"optionalNestedEnum": 123}'),
    (P3, '{"optionalNestedEnum": FOO}'),
    (P3, '{"optionalNestedEnum": "UNKNOWN_ENUM_VALUE"}'),
    (P3, '{"optionalAliasedEnum": "ALIAS_BAZ"}'),
    (P3, '{"optionalAliasedEnum": "QUX"}'),
    (P3, '{"optionalAliasedEnum": "qux"}'),
    (P3, '{"optionalAliasedEnum": "bAz"}'),
    (P3, '{"repeatedInt32": [1, 2, 3, 4]}'),
    (P3, '{"repeatedInt32": [1, 2, 3, 4,]}'),
    (P3, '{"repeatedInt32": [1 2]}'),
    (P3, '{"repeatedInt32": [true]}'),
    (P3, '{"repeatedInt32": [1, null]}'),
    (P3, '{"repeatedString": [1]}'),
    (P3, '{"repeatedNestedMessage": [{"a": 1}, null, {"a": 2}]}'),
    (P3, '{"repeatedNestedMessage": [1]}'),
    (P3, '{"repeatedInt32": 1}'),
    (P3, '{"repeatedString": ["a", "b"], "repeatedBytes": ["AQI=", ""], "repeatedBool": [true, false]}'),
    (P3, '{"mapInt32Int32": {"1": 2, "3": 4}}'),
    (P3, '{"mapInt64Int64": {"1": 2, "-3": 4}}'),
    (P3, '{"mapUint32Uint32": {"1": 2}, "mapUint64Uint64": {"1": 2}}'),
    (P3, '{"mapBoolBool": {"true": true, "false": false}}'),
    (P3, '{"mapBoolBool": {true: true}}'),
    (P3, '{"mapInt32Int32": {"\\u0031": 2}}'),
    (P3, '{"mapBoolBool": {"tr\\u0075e": true}}'),
    (P3, '{"mapStringNestedMessage": {"hello": {"a": 1234}, "world": {"a": 5678}}}'),
    (P3, '{"mapInt32Int32": {"0": null}}'),
    (P3, '{"mapInt32Int32": {"x": 1}}'),
    (P3, '{"mapInt32Int32": {"1": 2, "1": 3}}'),
    (P3, '{"mapStringString": {"k": "v"}, "mapStringBytes": {"k": "AQI="}, "mapStringForeignEnum": {"k": "FOREIGN_BAR"}}'),
    (P3, '{"oneofUint32": 0}'),
    (P3, '{"oneofString": ""}'),
    (P3, '{"oneofBytes": ""}'),
    (P3, '{"oneofBool": false}'),
    (P3, '{"oneofUint64": 0}'),
    (P3, '{"oneofFloat": 0}'),
    (P3, '{"oneofDouble": 0}'),
    (P3, '{"oneofEnum": "FOO"}'),
    (P3, '{"oneofNestedMessage": {}}'),
    (P3, '{"oneofUint32": 1, "oneofString": "test"}'),
    (P3, '{"oneofUint32": null, "oneofString": "test"}'),
    (P3, '{"oneofString": "test", "oneofUint32": null}'),
    (P3, '{"oneofNullValue": null}'),
    (P3, '{"oneofNullValue": "NULL_VALUE"}'),
    (P3, '{"optionalNullValue": null}'),
    (P3, '{"optionalInt32": null, "optionalString": null, "optionalNestedMessage": null, "repeatedInt32": null,'
         ' "mapInt32Int32": null, "optionalDuration": null, "optionalTimestamp": null, "optionalFieldMask": null,'
         ' "optionalStruct": null, "optionalAny": null, "optionalBoolWrapper": null}'),
    (P3, 'null'),
    (P3, '[]'),
    (P3, '{"optionalBoolWrapper": false, "optionalInt32Wrapper": 0, "optionalInt64Wrapper": 0,'
         ' "optionalUint32Wrapper": 0, "optionalUint64Wrapper": 0, "optionalFloatWrapper": 0,'
         ' "optionalDoubleWrapper": 0, "optionalStringWrapper": "", "optionalBytesWrapper": ""}'),
    (P3, '{"optionalBoolWrapper": true, "optionalInt32Wrapper": 1, "optionalInt64Wrapper": "1",'
         ' "optionalUint32Wrapper": 1, "optionalUint64Wrapper": "1", "optionalFloatWrapper": 1,'
         ' "optionalDoubleWrapper": 1, "optionalStringWrapper": "1", "optionalBytesWrapper": "AQI="}'),
    (P3, '{"repeatedBoolWrapper": [true, false], "repeatedInt64Wrapper": ["1", 2]}'),
    (P3, '{"optionalInt32Wrapper": "x"}'),
    (P3, '{"optionalDuration": "1.5s"}'),
    (P3, '{"optionalDuration": "-1.5s"}'),
    (P3, '{"optionalDuration": "0.01s"}'),
    (P3, '{"optionalDuration": "315576000000.999999999s"}'),
    (P3, '{"optionalDuration": "-315576000000.999999999s"}'),
    (P3, '{"optionalDuration": "315576000001s"}'),
    (P3, '{"optionalDuration": "-315576000001s"}'),
    (P3, '{"optionalDuration": "1"}'),
    (P3, '{"optionalDuration": 1}'),
    (P3, '{"optionalTimestamp": "0001-01-01T00:00:00Z"}'),
    (P3, '{"optionalTimestamp": "9999-12-31T23:59:59.999999999Z"}'),
    (P3, '{"optionalTimestamp": "1970-01-01T08:00:01+08:00"}'),
    (P3, '{"optionalTimestamp": "1969-12-31T16:00:01-08:00"}'),
    (P3, '{"optionalTimestamp": "1970-01-01T00:00:00.010Z"}'),
    (P3, '{"optionalTimestamp": "1970-01-01T00:00:00.000010Z"}'),
    (P3, '{"optionalTimestamp": "1970-01-01T00:00:00.000000010Z"}'),
    (P3, '{"optionalTimestamp": "1970-01-01T00:00:00z"}'),
    (P3, '{"optionalTimestamp": "1970-01-01t00:00:00Z"}'),
    (P3, '{"optionalTimestamp": "1970-01-01T00:00:00"}'),
    (P3, '{"optionalTimestamp": "1970-01-01 00:00:00Z"}'),
    (P3, '{"optionalTimestamp": "0000-01-01T00:00:00Z"}'),
    (P3, '{"optionalTimestamp": "10000-01-01T00:00:00Z"}'),
    (P3, '{"optionalFieldMask": "foo,barBaz"}'),
    (P3, '{"optionalFieldMask": ""}'),
    (P3, '{"optionalFieldMask": "foo,bar_bar"}'),
    (P3, '{"optionalStruct": {"nullValue": null, "intValue": 1234, "boolValue": true, "doubleValue": 1234.5678,'
         ' "stringValue": "Hello world!", "listValue": [1234, "5678"], "objectValue": {"value": 0}}}'),
    (P3, '{"optionalStruct": {"listValue": []}}'),
    (P3, '{"optionalValue": 1}'),
    (P3, '{"optionalValue": 12345.678}'),
    (P3, '{"optionalValue": "hello"}'),
    (P3, '{"optionalValue": false}'),
    (P3, '{"optionalValue": null}'),
    (P3, '{"optionalValue": [0, "hello"]}'),
    (P3, '{"optionalValue": {"value": 1}}'),
    (P3, '{"repeatedValue": [["a"]]}'),
    (P3, '{"repeatedListValue": [["a"]]}'),
    (P3, '{"optionalAny": {"@type": "' + ANY + P3 + '", "optionalInt32": 12345}}'),
    (P3, '{"optionalAny": {"optionalInt32": 12345, "@type": "' + ANY + P3 + '"}}'),
    (P3, '{"optionalAny": {"@type": "' + ANY + 'google.protobuf.Any", "value": {"@type": "' + ANY + P3 +
         '", "optionalInt32": 12345}}}'),
    (P3, '{"optionalAny": {"@type": "' + ANY + 'google.protobuf.Int32Value", "value": 12345}}'),
    (P3, '{"optionalAny": {"@type": "' + ANY + 'google.protobuf.Duration", "value": "1.5s"}}'),
    (P3, '{"optionalAny": {"@type": "' + ANY + 'google.protobuf.Timestamp", "value": "1970-01-01T00:00:00Z"}}'),
    (P3, '{"optionalAny": {"@type": "' + ANY + 'google.protobuf.FieldMask", "value": "foo,barBar"}}'),
    (P3, '{"optionalAny": {"@type": "' + ANY + 'google.protobuf.Struct", "value": {"foo": 1}}}'),
    (P3, '{"optionalAny": {"@type": "' + ANY + 'google.protobuf.Value", "value": {"foo": 1}}}'),
    (P3, '{"optionalAny": {"@type": "' + ANY + 'google.protobuf.Value", "value": 1}}'),
    (P3, '{"optionalAny": {"@type": "' + ANY + 'google.protobuf.Empty", "value": {}}}'),
    (P3, '{"optionalAny": {"@type": "' + ANY + 'google.protobuf.Empty"}}'),
    (P3, '{"optionalAny": {}}'),
    (P2, '{"optionalInt32": 0, "optionalString": "", "optionalNestedEnum": "FOO"}'),
    (P2, '{"data": {"groupInt32": 1, "groupUint32": 2}}'),
    (P2, '{"oneofUint32": 0}'),
    (P2, '{"mapStringString": {"a": "b"}}'),
]

# (message type, json, accepted?): where python's json_format departs from the proto3 JSON
# spec (and from protobuf's C++ runner expectations), the spec's answer.
SPEC_OVERRIDES = {
    # one field under its proto name and its json name: conformance FieldNameDuplicateDifferentCasing
    (P3, '{"optionalNestedMessage":{"a":1},"optional_nested_message":{}}'): False,
    (P3, '{"optional_nested_message":{"a":1},"optionalNestedMessage":{}}'): False,
    # python's base64 decoder drops characters outside the alphabet
    (P3, '{"optionalBytes": "%%%%"}'): False,
    # a message is a JSON object, never an array
    (P3, '[]'): False,
    # Empty in an Any: Go writes {"value": {}}; we read that form too (and write C++'s inline form)
    (P3, '{"optionalAny": {"@type": "' + ANY + 'google.protobuf.Empty", "value": {}}}'): True,
}


def varint(v):
    out = b""
    while True:
        low, v = v & 0x7F, v >> 7
        if not v:
            return out + bytes([low])
        out += bytes([low | 0x80])


def tag(number, wire_type):
    return varint(number << 3 | wire_type)


def delim(payload):
    return varint(len(payload)) + payload


FD = descriptor_pb2.FieldDescriptorProto


def map_value(field, nondefault):
    """A value of a map's value field: its default, or a non-default one (conformance's
    GetDefaultValue / GetNonDefaultValue)."""
    t = field.type
    if t == FD.TYPE_STRING:
        return "a" if nondefault else ""
    if t == FD.TYPE_BYTES:
        return b"a" if nondefault else b""
    if t == FD.TYPE_BOOL:
        return nondefault
    if t in (FD.TYPE_FLOAT, FD.TYPE_DOUBLE):
        return 1.5 if nondefault else 0.0
    return 1 if nondefault else 0   # integers and enums


def map_duplicate_key_cases(cls, type_name):
    """(name, payload) for every map field of type_name: two entries with the same non-default
    key, the first with the value's default, the second with a non-default value, as
    ValidDataMap.<K>.<V>.DuplicateKey sends them; built as two messages back to back (a
    concatenation is a merge), so the key repeats on the wire."""
    desc = cls(type_name).DESCRIPTOR
    for field in desc.fields:
        if not (field.message_type and field.message_type.GetOptions().map_entry):
            continue
        kf, vf = field.message_type.fields_by_name["key"], field.message_type.fields_by_name["value"]
        key = map_value(kf, True)
        halves = []
        for nondefault in (False, True):
            m = cls(type_name)()
            entries = getattr(m, field.name)
            if vf.type == FD.TYPE_MESSAGE:
                sub = entries[key]
                if nondefault:
                    first = sub.DESCRIPTOR.fields[0]
                    if first.type == FD.TYPE_INT32:   # NestedMessage.a, ForeignMessage.c
                        setattr(sub, first.name, 1)
            else:
                entries[key] = map_value(vf, nondefault)
            halves.append(m.SerializeToString())
        yield "%s %s DuplicateKey" % (type_name.rsplit(".", 1)[1], field.name), halves[0] + halves[1]


def nested_corecursive(*fields):
    """NestedMessage{corecursive (2): {fields}} as bytes, fields being (number, varint) pairs."""
    inner = b"".join(tag(n, 0) + varint(v) for n, v in fields)
    return tag(2, 2) + delim(inner)


# ValidDataMap.STRING.MESSAGE.MergeValue: map_string_nested_message (71), key "" twice; the later
# entry's value replaces the earlier one whole (it is not merged into it).
MERGE_VALUE = b"".join(
    tag(71, 2) + delim(tag(1, 2) + delim(b"") + tag(2, 2) + delim(nested_corecursive(*f)))
    for f in (((1, 1), (31, 1)), ((2, 1), (31, 1))))

# A singular message field more than once must merge (protobuf-c 1.4.1 alone refuses the first
# two: its merge_messages mishandles a oneof neither occurrence sets; and it replaces a oneof
# message member read twice). (name, payload); sent as TestAllTypesProto3 and Proto2, whose
# field numbers agree.
F18, F112 = tag(18, 2), tag(112, 2)   # optional_nested_message, oneof_nested_message
MERGE_CASES = [
    # RepeatedScalarMessageMerge: optional_nested_message twice, each with a corecursive
    ("RepeatedScalarMessageMerge",
     F18 + delim(nested_corecursive((1, 1234), (2, 1234), (31, 1234))) +
     F18 + delim(nested_corecursive((1, 4321), (3, 4321), (31, 4321)))),
    # ValidDataOneof.MESSAGE.Merge: oneof_nested_message twice
    ("ValidDataOneof.MESSAGE.Merge",
     F112 + delim(nested_corecursive((1, 1), (2, 1), (89, 1))) +
     F112 + delim(nested_corecursive((2, 1), (89, 1)))),
    # three occurrences, the inner corecursive in each, and its own nested message twice
    ("three occurrences",
     F18 + delim(nested_corecursive((1, 1))) + F18 + delim(tag(1, 0) + varint(7)) +
     F18 + delim(tag(2, 2) + delim(tag(18, 2) + delim(tag(1, 0) + varint(1)) + tag(18, 2) + delim(tag(1, 0) + varint(2))))),
    # another oneof member between two occurrences: the first occurrence is replaced, not merged
    ("oneof member between", F112 + delim(nested_corecursive((1, 1))) + tag(111, 0) + varint(5) +
     F112 + delim(nested_corecursive((2, 2)))),
    # another oneof member last: it wins
    ("oneof member last", F112 + delim(nested_corecursive((1, 1))) + F112 + delim(nested_corecursive((2, 2))) +
     tag(111, 0) + varint(5)),
    # a repeated message's element, and a map's message value, holding a field twice
    ("inside repeated_nested_message (48)",
     tag(48, 2) + delim(nested_corecursive((1, 1)) + nested_corecursive((2, 2))) + tag(48, 2) + delim(b"")),
    ("inside map_string_nested_message (71)",
     tag(71, 2) + delim(tag(1, 2) + delim(b"k") + tag(2, 2) + delim(nested_corecursive((1, 1)) + nested_corecursive((31, 3))))),
    # unknown fields and other fields around the merged one stay
    ("with unknown and scalar fields", tag(1, 0) + varint(3) + F18 + delim(tag(1, 0) + varint(1)) +
     tag(9999, 0) + varint(1) + F18 + delim(nested_corecursive((1, 1))) + tag(14, 2) + delim(b"s")),
]


def canonical(m):
    """A copy of m built through python's map API. A message parsed from bytes that repeat a map
    key keeps every entry in its printed and serialized form (the C++ backend syncs the map
    lazily), while the map API holds the last entry per key, which is protobuf's rule."""
    out = type(m)()
    for f, v in m.ListFields():
        if f.message_type and f.message_type.GetOptions().map_entry:
            target = getattr(out, f.name)
            for k in v:
                if f.message_type.fields_by_name["value"].type == FD.TYPE_MESSAGE:
                    target[k].CopyFrom(v[k])
                else:
                    target[k] = v[k]
        elif f.label == f.LABEL_REPEATED:
            getattr(out, f.name).extend(v)
        elif f.type == FD.TYPE_MESSAGE:
            getattr(out, f.name).CopyFrom(v)
        else:
            setattr(out, f.name, v)
    return out


def same(a, b):
    """Message equality that treats NaN as equal to itself (compares deterministic bytes)."""
    return a == b or a.SerializeToString(deterministic=True) == b.SerializeToString(deterministic=True)


def frame(msg):
    data = msg.SerializeToString()
    return struct.pack("<I", len(data)) + data


def main():
    testee, conf_pb, wkt_pb = sys.argv[1:4]
    pool = descriptor_pool.DescriptorPool()
    seen = set()
    for path in (wkt_pb, conf_pb):
        fds = descriptor_pb2.FileDescriptorSet()
        with open(path, "rb") as f:
            fds.ParseFromString(f.read())
        for fdp in fds.file:
            if fdp.name not in seen:
                pool.Add(fdp)
                seen.add(fdp.name)
    cls = lambda name: message_class(pool.FindMessageTypeByName(name))
    Request, Response = cls("conformance.ConformanceRequest"), cls("conformance.ConformanceResponse")

    proc = subprocess.Popen([testee], stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def ask(type_name, json_text, out_format, binary=None):
        req = Request(message_type=type_name, requested_output_format=out_format, test_category=2)
        if binary is None:
            req.json_payload = json_text
        else:
            req.protobuf_payload = binary
        proc.stdin.write(frame(req))
        proc.stdin.flush()
        n = struct.unpack("<I", proc.stdout.read(4))[0]
        resp = Response()
        resp.ParseFromString(proc.stdout.read(n))
        return resp

    failures = []
    for type_name, text in CASES:
        expected = cls(type_name)()
        try:
            json_format.Parse(text, expected, descriptor_pool=pool)
            py_ok = True
        except Exception as e:   # json_format raises ParseError, ValueError, ...
            py_ok, py_err = False, e
        overridden = (type_name, text) in SPEC_OVERRIDES
        py_ok = SPEC_OVERRIDES.get((type_name, text), py_ok)
        resp = ask(type_name, text, 1)
        ours_ok = resp.WhichOneof("result") == "protobuf_payload"
        if ours_ok != py_ok:
            failures.append("%s\n    python %s, testee %s (%s)" % (
                text, "accepts" if py_ok else "rejects (%s)" % py_err, "accepts" if ours_ok else "rejects",
                getattr(resp, resp.WhichOneof("result")) if not ours_ok else ""))
            continue
        if not ours_ok or overridden:   # no python message to compare with
            continue
        got = cls(type_name)()
        got.ParseFromString(resp.protobuf_payload)
        if not same(got, expected):
            failures.append("%s\n    binary differs:\n    python %s\n    testee %s" % (text, expected, got))
            continue
        resp = ask(type_name, text, 2)
        if resp.WhichOneof("result") != "json_payload":
            failures.append("%s\n    JSON output failed: %s" % (text, resp))
            continue
        back = cls(type_name)()
        json_format.Parse(resp.json_payload, back, descriptor_pool=pool)
        if not same(back, expected):
            failures.append("%s\n    JSON output %s reads back as %s" % (text, resp.json_payload, back))
            continue
        # binary in (python's bytes), JSON out: the encoder on what protobuf-c unpacked
        resp = ask(type_name, None, 2, expected.SerializeToString())
        back = cls(type_name)()
        if resp.WhichOneof("result") != "json_payload":
            failures.append("%s\n    binary->JSON failed: %s" % (text, resp))
            continue
        json_format.Parse(resp.json_payload, back, descriptor_pool=pool)
        if not same(back, expected):
            failures.append("%s\n    binary->JSON %s reads back as %s" % (text, resp.json_payload, back))
    binary_cases = [(name, P3, data) for name, data in map_duplicate_key_cases(cls, P3)]
    binary_cases += [(name, P2, data) for name, data in map_duplicate_key_cases(cls, P2)]
    binary_cases += [("ValidDataMap.STRING.MESSAGE.MergeValue", t, MERGE_VALUE) for t in (P3, P2)]
    binary_cases += [(name, t, data) for name, data in MERGE_CASES for t in (P3, P2)]

    def binary_mismatch(type_name, data):
        """None when the testee reads data as python does, in binary and in JSON; else why not."""
        expected = cls(type_name)()
        expected.ParseFromString(data)
        expected = canonical(expected)
        resp = ask(type_name, None, 1, data)
        if resp.WhichOneof("result") != "protobuf_payload":
            return "binary->binary: %s" % resp
        got = cls(type_name)()
        got.ParseFromString(resp.protobuf_payload)
        got = canonical(got)
        if not same(got, expected):
            return "binary->binary reads back as %s, python %s" % (got, expected)
        resp = ask(type_name, None, 2, data)
        if resp.WhichOneof("result") != "json_payload":
            return "binary->JSON: %s" % resp
        back = cls(type_name)()
        try:
            json_format.Parse(resp.json_payload, back, descriptor_pool=pool)
        except Exception as e:   # a repeated key is a ParseError
            return "binary->JSON %s: python refuses it (%s)" % (resp.json_payload, e)
        if not same(back, expected):
            return "binary->JSON %s reads back as %s, python %s" % (resp.json_payload, back, expected)
        return None

    for name, type_name, data in binary_cases:
        why = binary_mismatch(type_name, data)
        if why:
            failures.append("%s (%s, binary %s)\n    %s" % (name, type_name, data.hex(), why))
    proc.stdin.close()
    rc = proc.wait(timeout=30)
    if rc != 0:
        failures.append("testee exited with %d at EOF" % rc)
    for f in failures:
        print("MISMATCH:", f)
    print("%d JSON cases, %d binary cases, %d mismatches" % (len(CASES), len(binary_cases), len(failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
