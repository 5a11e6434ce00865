#!/usr/bin/env bash
# orderd's configuration: defaults < config file < environment < flags, and --print-config writes
# a file that reads back to the same configuration; integers are checked against each key's range.
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

# Integers are parsed whole and range-checked from every source; a refusal exits 2 and names the
# key, its range and where the value came from.
refused() { # what, expected stderr pattern, orderd args... (environment set by the caller)
  local what=$1 want=$2; shift 2
  "$orderd" "$@" --print-config >/dev/null 2>"$tmp/err" && rc=0 || rc=$?
  check "$what: exit status" "$rc" 2
  if grep -qF -- "$want" "$tmp/err"; then pass=$((pass+1)); else
    echo "FAIL $what: stderr '$(cat "$tmp/err")' lacks '$want'"; fail=$((fail+1)); fi
}
refused "--workers abc" 'workers must be an integer from 1 to 4096, not "abc" (command-line flag --workers)' --workers abc
refused "--workers 8x" 'workers must be an integer from 1 to 4096, not "8x"' --workers 8x
refused "--workers empty" 'workers must be an integer from 1 to 4096, not ""' --workers ''
refused "--workers overflow" 'workers must be an integer from 1 to 4096' --workers 99999999999999999999999
refused "--workers 0" 'workers must be an integer from 1 to 4096, not "0"' --workers 0
ORDERD_COMMITTERS=9 refused "ORDERD_COMMITTERS=9" 'committers must be an integer from 1 to 8, not "9" (environment variable ORDERD_COMMITTERS)'
printf '# a comment\nmax-body = 12k\n' >"$tmp/int.conf"
refused "max-body = 12k in a file" "max-body must be an integer from 1 to 1073741824, not \"12k\" ($tmp/int.conf:2)" --config "$tmp/int.conf"
check "snapshot-every -1 (never) accepted" "$("$orderd" --snapshot-every -1 --print-config | grep '^snapshot-every')" "snapshot-every = -1"
check "leading + accepted" "$("$orderd" --workers +12 --print-config | grep '^workers')" "workers = 12"
# Every integer key: both ends of the range it prints are accepted, one past either end refused.
n_int=0
while IFS='|' read -r key lo hi; do
  n_int=$((n_int+1))
  check "$key $lo" "$("$orderd" --"$key" "$lo" --print-config | grep "^$key = ")" "$key = $lo"
  check "$key $hi" "$("$orderd" --"$key" "$hi" --print-config | grep "^$key = ")" "$key = $hi"
  refused "$key $((lo-1))" "$key must be an integer from $lo to $hi, not \"$((lo-1))\"" --"$key" "$((lo-1))"
  refused "$key $((hi+1))" "$key must be an integer from $lo to $hi, not \"$((hi+1))\"" --"$key" "$((hi+1))"
done < <(awk '/^# .*; -?[0-9]+ to -?[0-9]+\)$/ { n = split($0, w, " "); lo = w[n-2]; sub(/.*; /, "", lo); hi = w[n]; sub(/\)/, "", hi); getline;
               print $1 "|" lo "|" hi }' "$tmp/all.conf")
want_int=$(grep -cE '^[a-z-]+ = -?[0-9]+$' "$tmp/all.conf")
check "every integer key has a range" "$n_int" "$want_int"
echo "config: $pass passed, $fail failed"
[ "$fail" = 0 ]
