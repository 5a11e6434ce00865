#!/usr/bin/python3
"""Extracts the raw FileDescriptorProtos that Debian's golang-google-protobuf-dev embeds in the
generated Go code of the conformance protos (`file_..._rawDesc = []byte{...}`) and writes them as
one FileDescriptorSet, so protoc/protoc-c can compile them with --descriptor_set_in without any
.proto file being downloaded.

protoc-c 1.4.1 refuses proto3 `optional` fields. When a file has them, this step rewrites the
descriptor: the proto3_optional flag is cleared and the synthetic oneof ("_name") that protoc
created for the field is removed. The field then becomes a plain proto3 singular field (no
presence) for protoc-c. The rewrite is printed to stderr so nobody is surprised.
(Debian's 1.28.1 copy of the test protos has no proto3 `optional`, so today nothing is rewritten.)

protoc-c 1.4.1 also crashes (SIGSEGV) on proto2 groups, which test_messages_proto2.proto uses
(`optional group Data = 201`, UnknownToTestAllTypes.OptionalGroup). Groups are rewritten into
plain message fields of the same name and number: the JSON form of a group is exactly that of a
message field, so the JSON codec is unaffected, but the binary wire form differs (start/end group
tags vs length-delimited), so binary payloads carrying those two fields do not parse.

Usage: extract_descriptors.py OUT.pb GO_FILE...
"""
import re
import sys

from google.protobuf import descriptor_pb2

RAW = re.compile(r"var\s+(\w+_rawDesc)\s*=\s*\[\]byte\{(.*?)\n\}", re.S)


def raw_descs(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    found = RAW.findall(text)
    if not found:
        sys.exit("%s: no ..._rawDesc = []byte{...} found" % path)
    for name, body in found:
        yield name, bytes(int(tok, 16) for tok in re.findall(r"0x[0-9a-fA-F]{2}", body))


def drop_proto3_optional(fdp):
    """Clears proto3_optional and removes synthetic oneofs; returns the fields rewritten."""
    rewritten = []

    def walk(msg, prefix):
        synthetic = set()
        for field in msg.field:
            if field.proto3_optional:
                synthetic.add(field.oneof_index)
                field.ClearField("proto3_optional")
                field.ClearField("oneof_index")
                rewritten.append(prefix + msg.name + "." + field.name)
        if synthetic:
            # Renumber the remaining (real) oneofs.
            keep = [i for i in range(len(msg.oneof_decl)) if i not in synthetic]
            remap = {old: new for new, old in enumerate(keep)}
            decls = [msg.oneof_decl[i] for i in keep]
            del msg.oneof_decl[:]
            msg.oneof_decl.extend(decls)
            for field in msg.field:
                if field.HasField("oneof_index"):
                    field.oneof_index = remap[field.oneof_index]
        for nested in msg.nested_type:
            walk(nested, prefix + msg.name + ".")

    for msg in fdp.message_type:
        walk(msg, fdp.package + ".")
    return rewritten


def groups_to_messages(fdp):
    """Turns TYPE_GROUP fields into TYPE_MESSAGE; returns the fields rewritten."""
    rewritten = []
    group = descriptor_pb2.FieldDescriptorProto.TYPE_GROUP

    def walk(msg, prefix):
        for field in msg.field:
            if field.type == group:
                field.type = descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE
                rewritten.append(prefix + msg.name + "." + field.name)
        for nested in msg.nested_type:
            walk(nested, prefix + msg.name + ".")

    for msg in fdp.message_type:
        walk(msg, fdp.package + ".")
    return rewritten


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    out, sources = sys.argv[1], sys.argv[2:]
    fds = descriptor_pb2.FileDescriptorSet()
    for src in sources:
        for name, raw in raw_descs(src):
            fdp = descriptor_pb2.FileDescriptorProto()
            fdp.ParseFromString(raw)
            rewritten = drop_proto3_optional(fdp)
            if rewritten:
                print("%s: proto3 optional dropped for protoc-c: %s" % (fdp.name, ", ".join(rewritten)),
                      file=sys.stderr)
            groups = groups_to_messages(fdp)
            if groups:
                print("%s: groups turned into message fields for protoc-c: %s" % (fdp.name, ", ".join(groups)),
                      file=sys.stderr)
            fds.file.append(fdp)
    with open(out, "wb") as f:
        f.write(fds.SerializeToString())


if __name__ == "__main__":
    main()
