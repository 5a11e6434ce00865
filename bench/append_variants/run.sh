#!/usr/bin/env bash
# PostgreSQL backend CPU per command of es_append variants, for a group commit of 16 PlaceOrder-like
# commands (a new stream, one event with payload_json, an idempotency row with hash and expiry) in
# one pipelined transaction, as runtime/store/append.c sends them.
#   bench/append_variants/run.sh <conninfo> [rounds] [seconds] [variant...]
# The database must hold sql/event_store.sql (scripts/pg.sh start <dir>; psql -f sql/event_store.sql)
# and the prototypes here are applied to it. Variants: es_append (today's), es_append_noexc,
# es_append_fast, group (es_append_group_proto: one call with arrays for the 16). Rounds interleave
# the variants; each line gives the CPU (utime+stime from /proc) of pgbench's two backends per
# command, sampled every 0.1 s (so it leaves out the WAL writer, checkpointer and autovacuum) and
# the load average. Superuser connection on the same host (reads /proc/<backend pid>/stat).
set -euo pipefail
url=${1:?conninfo}; rounds=${2:-3}; secs=${3:-5}; shift $(( $# < 3 ? $# : 3 ))
variants=("${@:-es_append es_append_noexc es_append_fast group}")
here=$(cd "$(dirname "$0")" && pwd); work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
for f in noexc fast group; do psql "$url" -q -v ON_ERROR_STOP=1 -f "$here/$f.sql"; done
psql "$url" -qAt -c "SELECT * FROM es_events_partitions_ensure(10000000)" >/dev/null
pay="'\\x$(head -c 120 /dev/urandom | od -An -tx1 | tr -d ' \n')'::bytea"
json='{"orderId":"o-123","customerId":"c-42","lines":[{"sku":"SKU-1","quantity":2,"unitPrice":{"currencyCode":"EUR","units":"12","nanos":500000000}}],"total":{"currencyCode":"EUR","units":"25"}}'
call() {
  echo "SELECT * FROM $1('orders.v1.Order', gen_random_uuid()::text, 0, gen_random_uuid()::text, true, 'corr', 'cause', 'actor', ARRAY[gen_random_uuid()], ARRAY['orders.v1.OrderPlaced'], ARRAY['orders.v1.OrderPlaced'], ARRAY[1], ARRAY['abcdef0123456789'], ARRAY[$pay], '\\x0a0b0c'::bytea, NULL, NULL, NULL, NULL, ARRAY['$json'], '\\x0102030405060708'::bytea, now() + interval '1 day');"
}
a16() { echo "array(SELECT $1 FROM generate_series(1, 16) g)"; }
for v in es_append es_append_noexc es_append_fast; do
  { echo '\startpipeline'; echo 'BEGIN;'; for _ in $(seq 16); do call $v; done; echo 'COMMIT;'; echo '\endpipeline'; } >"$work/$v.pgb"
done
{ echo '\startpipeline'; echo 'BEGIN;'
  echo "SELECT * FROM es_append_group_proto($(a16 "'orders.v1.Order'::text"), $(a16 'gen_random_uuid()::text'), $(a16 '0::bigint'), $(a16 'gen_random_uuid()::text'), $(a16 "'\\x0a0b0c'::bytea"), $(a16 "'\\x0102030405060708'::bytea"), $(a16 "now() + interval '1 day'"), $(a16 '1'), $(a16 'g::int'), $(a16 'gen_random_uuid()'), $(a16 "'orders.v1.OrderPlaced'::text"), $(a16 "'orders.v1.OrderPlaced'::text"), $(a16 '1'), $(a16 "'abcdef0123456789'::text"), $(a16 "$pay"), $(a16 "'$json'::text"));"
  echo 'COMMIT;'; echo '\endpipeline'; } >"$work/group.pgb"

one() {  # one() <variant>: prints one line
  pgbench -n -M prepared -c 2 -j 1 -T "$secs" -f "$work/$1.pgb" "$url" >"$work/out" 2>&1 &
  local bp=$! t=0 p s pids; declare -A last=()
  until pids=$(psql "$url" -At -c "SELECT pid FROM pg_stat_activity WHERE application_name = 'pgbench'") \
        && [ "$(echo "$pids" | wc -w)" = 2 ]; do sleep 0.05; done
  while kill -0 $bp 2>/dev/null; do
    for p in $pids; do
      s=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null) || continue
      read -r -a f <<<"$s"; last[$p]=$(( f[11] + f[12] ))
    done
    sleep 0.1
  done
  wait $bp
  for p in $pids; do t=$(( t + ${last[$p]:-0} )); done
  local tx; tx=$(awk '/number of transactions actually processed/ {print $NF}' "$work/out" | cut -d/ -f1)
  echo "$1 commands=$((tx * 16)) backend_ticks=$t us_per_command=$(( t * 1000000 / $(getconf CLK_TCK) / (tx * 16) )) load=$(cut -d' ' -f1 /proc/loadavg)"
}
for _ in $(seq "$rounds"); do for v in ${variants[@]}; do one "$v"; done; done
