#!/usr/bin/env bash
# Configures and builds quietly, for the run and test commands:
#   scripts/build.sh <build-dir> [target]... [-- <cmake configure argument>...]
# Everything cmake and the compiler say goes to <build-dir>/build.log; the terminal sees it only
# when configuring or building fails (then the log, and the status is non-zero). Warnings cannot
# pass silently: the project builds with -Werror.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:?usage: build.sh <build-dir> [target]... [-- <cmake argument>...]}
shift
targets=()
while [ $# -gt 0 ] && [ "$1" != -- ]; do targets+=(--target "$1"); shift; done
[ "${1:-}" = -- ] && shift
mkdir -p "$dir"
log=$dir/build.log
if ! { cmake -S "$here" -B "$dir" "$@" &&
       cmake --build "$dir" -j"$(nproc 2>/dev/null || echo 2)" "${targets[@]}"; } >"$log" 2>&1; then
  cat "$log" >&2
  echo "build.sh: building $dir failed (the log above is kept in $log)" >&2
  exit 1
fi
