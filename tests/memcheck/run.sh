#!/usr/bin/env bash
# Runs the unit-test binaries under valgrind's memcheck: any error or definite leak fails.
#   run.sh <binary>...
set -uo pipefail
command -v valgrind >/dev/null || { echo "memcheck: valgrind is not installed"; exit 1; }
pass=0; fail=0
for bin in "$@"; do
  log=$(mktemp)
  if valgrind --quiet --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
       --track-origins=yes "$bin" >"$log" 2>&1; then
    pass=$((pass+1))
  else
    fail=$((fail+1)); echo "FAIL $(basename "$bin"):"; grep -E "==[0-9]+==" "$log" | head -40
  fi
  rm -f "$log"
done
echo "memcheck: $pass passed, $fail failed"
[ "$fail" = 0 ]
