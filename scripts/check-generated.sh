#!/usr/bin/env bash
# Fails, naming each drifted file, when generated/ differs from what proto/ and codegen/ produce.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
"$here/scripts/generate.sh" "$1" "$tmp/gen"
if ! diff -r -q "$here/generated" "$tmp/gen" >"$tmp/diff"; then
  echo "generated/ has drifted from proto/ and codegen/; run: cmake --build build --target generate" >&2
  sed -e "s|$tmp/gen|<regenerated>|g" -e "s|$here/||g" "$tmp/diff" >&2
  exit 1
fi
echo "generated/ is up to date"
