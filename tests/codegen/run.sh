#!/usr/bin/env bash
# Tests of protoc-gen-es as a protoc plugin:
#   run.sh <protoc-gen-es> golden     output for golden/ticket.proto equals golden/expected/
#   run.sh <protoc-gen-es> invalid    every invalid/invalid_*.proto fails with its "// expect:" text
#   run.sh <protoc-gen-es> migrate    every migrate/<case>/: current/ generated against baseline/ (the
#                                     released schema) writes expected.sql, or fails with expect-error
# UPDATE=1 run.sh <plugin> golden|migrate rewrites golden/expected/ or the cases' expected.sql and
# expect-error (review the diff before committing).
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
migrate)
  for d in "$here"/migrate/*/; do
    c=$(basename "$d"); o=$tmp/$c; mkdir -p "$o/out" "$o/c"
    protoc "${inc[@]}" -I"$d/baseline" --include_imports --descriptor_set_out="$o/baseline.binpb" shop.proto ||
      { echo "FAIL migrate $c: the baseline does not compile"; fail=$((fail+1)); continue; }
    if protoc "${inc[@]}" -I"$d/current" --plugin=protoc-gen-es="$plugin" --es_opt=baseline="$o/baseline.binpb" \
         --es_out="$o/out" shop.proto 2>"$o/err"; then got=$o/out/sql/shop_v1_migrations.sql; want=$d/expected.sql
    else sed 's/^--es_out: //' "$o/err" >"$o/error"; got=$o/error; want=$d/expect-error; fi
    if [ "${UPDATE:-0}" = 1 ]; then rm -f "$d/expected.sql" "$d/expect-error"; cp "$got" "$want"; fi
    if ! cmp -s "$want" "$got"; then
      echo "FAIL migrate $c: $(basename "$got") differs from $(basename "$want"):"; diff -u "$want" "$got" | head -20
      fail=$((fail+1)); continue
    fi
    # A generated step table must compile.
    if [ -f "$o/out/shop/v1/shop_v1.es.c" ]; then
      protoc "${inc[@]}" -I"$d/current" --c_out="$o/c" shop.proto &&
      cc -std=c11 -Wall -Wextra -Werror -Wno-unused-parameter -c -I"$o/c" -I"$o/out" -I"$root/generated" \
         -I"$root/runtime/include" "$o/out/shop/v1/shop_v1.es.c" -o "$o/c/shop.o" 2>"$o/cc.err" ||
        { echo "FAIL migrate $c: generated C does not compile:"; head -20 "$o/cc.err"; fail=$((fail+1)); continue; }
    fi
    pass=$((pass+1))
  done
  ;;
*) echo "usage: run.sh <plugin> golden|invalid|migrate" >&2; exit 2 ;;
esac
echo "codegen $what: $pass passed, $fail failed"
[ "$fail" = 0 ]
