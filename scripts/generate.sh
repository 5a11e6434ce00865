#!/usr/bin/env bash
# Regenerates everything under an output folder from proto/:
#   scripts/generate.sh <protoc-gen-es> <outdir>
# protoc-c writes the protobuf-c bindings; protoc-gen-es writes the tables, apply, validation,
# routes, SQL and the embedded descriptor set. Used by the `generate` and `check-generated`
# build targets; never edit generated/ by hand.
set -euo pipefail
plugin=$(readlink -f "$1")
out=$2
here=$(cd "$(dirname "$0")/.." && pwd)
googleapis=${GOOGLEAPIS_DIR:-/usr/share/gocode/src/github.com/gogo/googleapis}
sysinc=${PROTO_SYSTEM_DIR:-/usr/include}
mkdir -p "$out"
cd "$here/proto"
# Every package under proto/ (a new one is picked up without an edit here); the plugin generates
# tables for the packages whose files carry es annotations and ignores the others.
protos=$(find . -name '*.proto' -not -path './baseline/*' | sed 's|^\./||' | LC_ALL=C sort)
wkt="google/protobuf/timestamp.proto google/protobuf/duration.proto google/protobuf/any.proto
     google/protobuf/struct.proto google/protobuf/wrappers.proto google/protobuf/empty.proto
     google/protobuf/field_mask.proto google/protobuf/descriptor.proto
     google/api/http.proto google/api/annotations.proto"
# protobuf-c bindings for our schemas and for the well-known types they import.
protoc -I. -I"$googleapis" -I"$sysinc" --c_out="$out" $protos $wkt
# Our generator, once over every package it annotates; it diffs the projection tables against
# the released schema (proto/baseline, written by scripts/release-baseline.sh) into forward steps.
protoc -I. -I"$googleapis" -I"$sysinc" --plugin=protoc-gen-es="$plugin" --es_opt=baseline=baseline/image.binpb \
  --es_out="$out" $protos
