#!/usr/bin/env bash
# The test command (README, .ci/run): installs what is missing, builds, and runs every test with
# ctest against real PostgreSQL and librdkafka's mock cluster, which the tests start themselves.
# With CI=true or --sanitize it then builds and runs the whole suite again under
# AddressSanitizer + UndefinedBehaviorSanitizer. Exit status: non-zero if any run failed.
# Builds are quiet (scripts/build.sh): their output is in <build-dir>/build.log, shown if one fails.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
sanitize=0
[ "${CI:-}" = true ] && sanitize=1
for a in "$@"; do [ "$a" = --sanitize ] && sanitize=1; done

scripts/install-deps.sh || exit 1

run_suite() { # build-dir, ctest-exclude-label-regex, extra cmake args...
  local dir=$1 exclude=$2; shift 2
  scripts/build.sh "$dir" -- "$@" || return 1
  (cd "$dir" && ctest --output-on-failure --timeout 900 ${exclude:+-LE "$exclude"})
}

mkdir -p build
run_suite build "" -DCMAKE_BUILD_TYPE=RelWithDebInfo; rc=$?
# The sanitizer pass runs the unit, integration, end-to-end and fault tests again (orderd aborts
# at its first ASan/UBSan report, which the fault tests see as a crash). The fuzz targets are
# sanitized builds already, the benchmark measures speed, which sanitizers distort, and the
# clone test builds a plain orderd of its own: those run once, above.
asan_exclude="fuzz|bench|clone"
if [ "$sanitize" = 1 ]; then
  echo "== the suite under AddressSanitizer + UndefinedBehaviorSanitizer (all but: $asan_exclude) =="
  mkdir -p build-asan
  ASAN_OPTIONS=abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    run_suite build-asan "$asan_exclude" -DCMAKE_BUILD_TYPE=Debug -DORDERD_SANITIZE=ON; rc2=$?
  [ "$rc" = 0 ] && rc=$rc2
fi
exit "$rc"
