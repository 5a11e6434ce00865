#!/usr/bin/env bash
# scripts/pg.sh with a folder the postgres user cannot enter (inside a 0700 folder), as root: the
# cluster lives under /var/tmp/orderd-0-<hash>/, linked from the folder; it keeps its data across
# stop and start; removing the folder abandons it (the next start makes a fresh one there, and
# removes other folders' abandoned clusters); destroy removes it. A folder postgres can enter keeps its cluster in place.
#   pg_private.sh <checkout>
set -euo pipefail
pg=$(cd "${1:?usage: pg_private.sh <checkout>}" && pwd)/scripts/pg.sh
fail() { echo "FAIL: $*" >&2; exit 1; }
if [ "$(id -u)" != 0 ]; then
  [ "${CI:-}" = true ] && fail "needs root (the cluster runs as postgres only for root) and CI=true"
  echo "pg_private: not run (needs root)"; exit 0
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/orderd-pg-private-XXXXXX")   # mode 0700
h=$work/pg
cleanup() {
  for d in "$h" "$work/other" "$work/open/pg"; do "$pg" destroy "$d" >/dev/null 2>&1 || true; done
  rm -rf "$work"
}
trap cleanup EXIT
q() { psql "$1" -qAtX -c "$2"; }

runuser -u postgres -- test -x "$work" && fail "postgres can enter $work; the test would prove nothing"
url=$("$pg" start "$h" 2>"$work/err")
where=$("$pg" where "$h")
case "$where" in /var/tmp/orderd-0-????????????????) ;; *) fail "cluster folder $where, want /var/tmp/orderd-0-<16 hex>" ;; esac
grep -qF "the cluster lives in $where" "$work/err" || fail "start did not say where the cluster lives: $(cat "$work/err")"
[ "$(readlink "$h/cluster")" = "$where" ] || fail "$h/cluster does not link to $where"
[ "$(stat -c %U "$where")" = postgres ] || fail "$where is not owned by postgres"
case "$url" in "host=$where/sock "*) ;; *) fail "conninfo $url does not use $where/sock" ;; esac
[ -f "$h/data/postmaster.pid" ] || fail "$h/data does not show the running cluster's files"
q "$url" "CREATE TABLE kept (x int); INSERT INTO kept VALUES (7)"

"$pg" stop "$h"
[ ! -e "$where/data/postmaster.pid" ] || fail "stop left the cluster running"
url2=$("$pg" start "$h" 2>"$work/err")
[ "$url2" = "$url" ] || fail "restarted on $url2, was $url"
[ "$(q "$url" "SELECT x FROM kept")" = 7 ] || fail "the data did not survive stop and start"
[ ! -s "$work/err" ] || fail "a second start spoke: $(cat "$work/err")"

# Another folder's cluster, abandoned running: the next relocating start removes it.
"$pg" start "$work/other" >/dev/null 2>&1
other=$("$pg" where "$work/other")
[ "$other" != "$where" ] || fail "two folders share $where"
rm -rf "$work/other"
# The folder removed while its cluster runs: the next start stops that one and makes a new one.
rm -rf "$h"
url3=$("$pg" start "$h" 2>/dev/null)
[ "$("$pg" where "$h")" = "$where" ] || fail "the same path got another folder"
[ "$(q "$url3" "SELECT count(*) FROM pg_tables WHERE tablename = 'kept'")" = 0 ] || fail "an abandoned cluster was reused"
[ ! -e "$other" ] || fail "the abandoned cluster in $other was left behind"

"$pg" destroy "$h"
[ ! -e "$where" ] || fail "destroy left $where"
[ ! -L "$h/cluster" ] || fail "destroy left the link $h/cluster"

# A folder postgres can enter keeps its cluster in place, as before.
mkdir -m 0755 "$work/open"
chmod 0711 "$work"
url4=$("$pg" start "$work/open/pg")
[ "$("$pg" where "$work/open/pg")" = "$work/open/pg" ] || fail "a reachable folder's cluster moved"
case "$url4" in "host=$work/open/pg/sock "*) ;; *) fail "conninfo $url4, want the socket in $work/open/pg" ;; esac
echo "pg_private: passed"
