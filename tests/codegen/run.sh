#!/usr/bin/env bash
# Tests of protoc-gen-es as a protoc plugin:
#   run.sh <protoc-gen-es> golden     output for golden/ticket.proto equals golden/expected/
#   run.sh <protoc-gen-es> invalid    every invalid/invalid_*.proto fails with its "// expect:" text
# UPDATE=1 run.sh <plugin> golden rewrites golden/expected/ (review the diff before committing).
set -uo pipefail
plugin=$(readlink -f "$1"); what=$2
here=$(cd "$(dirname "$0")" && pwd); root=$(cd "$here/../.." && pwd)
googleapis=${GOOGLEAPIS_DIR:-/usr/share/gocode/src/github.com/gogo/googleapis}
inc=(-I"$root/proto" -I"$googleapis" -I/usr/include)
pass=0; fail=0
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
case "$what" in
golden)
  mkdir -p "$tmp/out"
  if ! protoc "${inc[@]}" -I"$here/golden" --plugin=protoc-gen-es="$plugin" --es_out="$tmp/out" ticket.proto 2>"$tmp/err"; then
    echo "FAIL golden: protoc failed: $(cat "$tmp/err")"; exit 1
  fi
  if [ "${UPDATE:-0}" = 1 ]; then rm -rf "$here/golden/expected"; cp -r "$tmp/out" "$here/golden/expected"; echo "updated"; fi
  for f in $(cd "$here/golden/expected" && find . -type f | sort) $(cd "$tmp/out" && find . -type f | sort); do
    if cmp -s "$here/golden/expected/$f" "$tmp/out/$f"; then pass=$((pass+1)); else
      echo "FAIL golden: ${f#./} differs from golden/expected:"; diff -u "$here/golden/expected/$f" "$tmp/out/$f" | head -20; fail=$((fail+1)); fi
  done
  # The generated C must compile against the protoc-c output of the same proto.
  mkdir -p "$tmp/c"
  protoc "${inc[@]}" -I"$here/golden" --c_out="$tmp/c" ticket.proto &&
  cc -std=c11 -Wall -Wextra -Werror -Wno-unused-parameter -c -I"$tmp/c" -I"$tmp/out" -I"$root/generated" -I"$root/runtime/include" \
     "$tmp/out/golden/v1/golden_v1.es.c" -o "$tmp/golden.o" 2>"$tmp/cc.err"
  if [ $? = 0 ]; then pass=$((pass+1)); else echo "FAIL golden: generated C does not compile:"; head -20 "$tmp/cc.err"; fail=$((fail+1)); fi
  ;;
invalid)
  for f in "$here"/invalid/invalid_*.proto; do
    want=$(sed -n 's|^// expect: ||p' "$f" | head -1)
    if protoc "${inc[@]}" -I"$here/invalid" --plugin=protoc-gen-es="$plugin" --es_out="$tmp" "$(basename "$f")" 2>"$tmp/err"; then
      echo "FAIL $(basename "$f"): protoc succeeded, expected: $want"; fail=$((fail+1))
    elif grep -qF -- "$want" "$tmp/err"; then
      pass=$((pass+1))
    else
      echo "FAIL $(basename "$f"): expected \"$want\", got: $(cat "$tmp/err")"; fail=$((fail+1))
    fi
  done
  ;;
*) echo "usage: run.sh <plugin> golden|invalid" >&2; exit 2 ;;
esac
echo "codegen $what: $pass passed, $fail failed"
[ "$fail" = 0 ]
