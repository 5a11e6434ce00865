#!/usr/bin/env bash
# scripts/build.sh, the quiet build of the run and test commands: a build that succeeds prints
# nothing (everything is in <build-dir>/build.log); one that fails prints the log and says so.
#   build_quiet.sh <checkout>
set -euo pipefail
src=$(cd "${1:?usage: build_quiet.sh <checkout>}" && pwd)
fail() { echo "FAIL: $*" >&2; exit 1; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
# `help` (the Makefile generator's list of targets) configures the whole project and builds nothing.
"$src/scripts/build.sh" "$tmp/b" help -- -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$tmp/out" 2>&1 ||
  fail "a good build failed: $(cat "$tmp/out")"
[ ! -s "$tmp/out" ] || fail "a good build printed: $(cat "$tmp/out")"
grep -q -- '-- Build files have been written to' "$tmp/b/build.log" || fail "cmake's output is not in build.log"
grep -q 'valid targets' "$tmp/b/build.log" || fail "the build's output is not in build.log"
"$src/scripts/build.sh" "$tmp/b" no-such-target >"$tmp/out" 2>&1 && fail "a failing build succeeded"
grep -q 'No rule to make target' "$tmp/out" || fail "a failing build did not show its log: $(cat "$tmp/out")"
grep -qF "build.sh: building $tmp/b failed (the log above is kept in $tmp/b/build.log)" "$tmp/out" ||
  fail "a failing build did not say so: $(tail -3 "$tmp/out")"
echo "build_quiet: passed"
