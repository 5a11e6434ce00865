#!/usr/bin/env bash
# orderd's configuration: defaults < config file < environment < flags, and --print-config writes
# a file that reads back to the same configuration.
set -euo pipefail
orderd=$1
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
pass=0; fail=0
check() { if [ "$2" = "$3" ]; then pass=$((pass+1)); else echo "FAIL $1: got '$2', want '$3'"; fail=$((fail+1)); fi; }
"$orderd" --print-config >"$tmp/all.conf"
check "print-config reads back" "$("$orderd" --config "$tmp/all.conf" --print-config | md5sum)" "$(md5sum <"$tmp/all.conf")"
printf 'workers = 8\nhttp-listen = "127.0.0.1:9"\n' >"$tmp/o.conf"
check "file over default" "$("$orderd" --config "$tmp/o.conf" --print-config | grep '^workers')" "workers = 8"
check "env over file" "$(ORDERD_WORKERS=9 "$orderd" --config "$tmp/o.conf" --print-config | grep '^workers')" "workers = 9"
check "flag over env" "$(ORDERD_WORKERS=9 "$orderd" --config "$tmp/o.conf" --workers 3 --print-config | grep '^workers')" "workers = 3"
check "ORDERD_CONFIG" "$(ORDERD_CONFIG="$tmp/o.conf" "$orderd" --print-config | grep '^http-listen')" 'http-listen = "127.0.0.1:9"'
printf 'nope = 1\n' >"$tmp/bad.conf"
if "$orderd" --config "$tmp/bad.conf" --print-config >/dev/null 2>"$tmp/err"; then check "unknown key refused" ok refused; else
  check "unknown key named" "$(grep -c 'unknown key nope' "$tmp/err")" 1; fi
if "$orderd" --no-such-flag 2>/dev/null; then check "unknown flag refused" ok refused; else pass=$((pass+1)); fi
echo "config: $pass passed, $fail failed"
[ "$fail" = 0 ]
