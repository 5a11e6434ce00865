#!/bin/sh
# Configures and builds the libFuzzer targets in their own clang build directory.
# Usage: tests/fuzz/build.sh <clang> <build-dir>
# Exit 77 (ctest: skipped) when clang or its libFuzzer runtime (libclang-rt-*-dev) is missing;
# under CI=true that is a failure instead (exit 1): CI must run the fuzzers, not skip them.
set -u
cc=$1 dir=$2
src=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$dir" || exit 1
# A skip is recorded in the directory so run.sh skips too.
skip() {
    echo "$1" >"$dir/SKIPPED"
    if [ "${CI:-}" = true ]; then
        echo "fuzz: $1; CI=true, so this fails instead of skipping" >&2
        exit 1
    fi
    echo "fuzz: $1; skipping" >&2
    exit 77
}
rm -f "$dir/SKIPPED"
if [ "$cc" = none ] || ! command -v "$cc" >/dev/null 2>&1; then
    skip "clang not found"
fi
if ! "$cc" -print-file-name=libclang_rt.fuzzer-x86_64.a | grep -q /; then
    skip "$cc has no libFuzzer runtime (libclang-rt-dev)"
fi
if [ ! -f "$dir/CMakeCache.txt" ]; then
    cmake -S "$src" -B "$dir" -DCMAKE_C_COMPILER="$cc" -DCMAKE_BUILD_TYPE=None >"$dir/configure.log" 2>&1 ||
        { cat "$dir/configure.log"; exit 1; }
fi
# -j1 by default: the machine is shared; FUZZ_JOBS overrides.
exec cmake --build "$dir" -j"${FUZZ_JOBS:-1}"
