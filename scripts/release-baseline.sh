#!/usr/bin/env bash
# Releases the schema: proto/baseline/image.binpb becomes proto/ as it is now.
#   scripts/release-baseline.sh [<protoc-gen-es>]
# Run it when a version is released, never to get past a refusal. Two checks compare against this
# image: `buf breaking` (scripts/buf.sh) and protoc-gen-es, which turns the difference between it
# and proto/ into the projection tables' forward steps (generated/sql/<package>_migrations.sql).
# After a release those steps start again from the released schema, so generated/ is regenerated
# (with the plugin given, or by `cmake --build build --target generate` afterwards); commit
# proto/baseline/ and generated/ together.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
"$here/scripts/buf.sh" baseline
if [ $# -ge 1 ]; then
  "$here/scripts/generate.sh" "$1" "$here/generated"
  echo "release-baseline: proto/baseline/image.binpb and generated/ rewritten; commit both"
else
  echo "release-baseline: proto/baseline/image.binpb rewritten; now run: cmake --build build --target generate"
fi
