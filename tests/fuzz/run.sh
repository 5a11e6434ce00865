#!/bin/sh
# Runs the libFuzzer targets built by tests/fuzz/build.sh.
# Usage: tests/fuzz/run.sh <fuzz-build-dir> <seconds> [target...]   (targets: json protobuf router envelope)
#
# For each target: first every regression input in tests/fuzz/regressions/<target>/ is replayed
# (each once; a crash there is a bug that came back), then the target fuzzes for <seconds>
# seconds on a temporary copy of its corpus (the generated seeds, tests/fuzz/corpus/<target>/ if
# present, and the regression inputs), so the checked-in files are never modified. A crash, leak,
# sanitizer report, failed check or per-input timeout (10 s) fails the target; libFuzzer saves
# the input as <fuzz-build-dir>/artifacts/<target>-crash-<sha1> and the log stays in
# <fuzz-build-dir>/logs/<target>.log. Ends with "fuzz: N passed, M failed"; exit 1 if any failed,
# 77 if the build was skipped (no clang), 1 for that too under CI=true.
set -u
if [ $# -lt 2 ]; then
    echo "usage: $0 <fuzz-build-dir> <seconds> [target...]" >&2
    exit 2
fi
build=$(cd "$1" 2>/dev/null && pwd) || { echo "fuzz: no build directory $1" >&2; exit 1; }
secs=$2
shift 2
case $secs in '' | *[!0-9]*) echo "fuzz: seconds must be a number, not '$secs'" >&2; exit 2 ;; esac
targets=${*:-json protobuf router envelope}
here=$(cd "$(dirname "$0")" && pwd)
if [ -f "$build/SKIPPED" ]; then
    if [ "${CI:-}" = true ]; then
        echo "fuzz: FAILED: CI=true and the build was skipped: $(cat "$build/SKIPPED")"
        exit 1
    fi
    echo "fuzz: skipped: $(cat "$build/SKIPPED")"
    exit 77
fi
mkdir -p "$build/artifacts" "$build/logs"
# Stacks for UBSan reports too; the caller's settings win.
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
pass=0
fail=0

# Copies the regular files of $1 (if it exists) into $2.
copy_dir() {
    [ -d "$1" ] || return 0
    find "$1" -maxdepth 1 -type f ! -name '.*' ! -name '*.md' -exec cp {} "$2/" \;
}

for t in $targets; do
    bin=$build/fuzz_$t
    log=$build/logs/$t.log
    if [ ! -x "$bin" ]; then
        echo "fuzz: $t: FAILED: no binary $bin (build with tests/fuzz/build.sh clang $build)"
        fail=$((fail + 1))
        continue
    fi
    ok=1
    : >"$log"

    # 1. the regression inputs, each run once
    regs=$here/regressions/$t
    if [ -d "$regs" ] && [ -n "$(find "$regs" -maxdepth 1 -type f ! -name '.*' ! -name '*.md')" ]; then
        n=$(find "$regs" -maxdepth 1 -type f ! -name '.*' ! -name '*.md' | wc -l)
        if find "$regs" -maxdepth 1 -type f ! -name '.*' ! -name '*.md' -exec "$bin" {} + >>"$log" 2>&1; then
            echo "fuzz: $t: $n regression inputs replayed"
        else
            echo "fuzz: $t: a regression input crashes again:"
            grep -E 'Running:|ERROR|SUMMARY|check failed|runtime error' "$log" | tail -20
            ok=0
        fi
    fi

    # 2. fuzzing for $secs seconds on a scratch copy of the corpus
    if [ "$ok" = 1 ] && [ "$secs" -gt 0 ]; then
        corpus=$(mktemp -d "${TMPDIR:-/tmp}/fuzz-$t.XXXXXX")
        copy_dir "$build/seeds/$t" "$corpus"
        copy_dir "$here/corpus/$t" "$corpus"
        copy_dir "$regs" "$corpus"
        set -- -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
            -artifact_prefix="$build/artifacts/$t-"
        [ -f "$here/dict/$t.dict" ] && set -- "$@" -dict="$here/dict/$t.dict"
        if "$bin" "$@" "$corpus" >>"$log" 2>&1; then
            runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
            rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
            cov=$(grep -E '^#[0-9]+' "$log" | tail -1 | sed -n 's/.*\(cov: [0-9]*\) \(ft: [0-9]*\) \(corp: [^ ]*\).*/\1 \2 \3/p')
            echo "fuzz: $t: ${secs}s, $runs runs, $rate exec/s, $cov"
        else
            echo "fuzz: $t: crashed (log: $log):"
            grep -E 'ERROR|SUMMARY|check failed|runtime error|Test unit written|#[0-9]+ 0x' "$log" | head -30
            ok=0
        fi
        rm -rf "$corpus"
    fi
    if [ "$ok" = 1 ]; then
        pass=$((pass + 1))
    else
        echo "fuzz: $t: FAILED"
        fail=$((fail + 1))
    fi
done
echo "fuzz: $pass passed, $fail failed"
[ "$fail" = 0 ]
