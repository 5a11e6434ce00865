#!/usr/bin/env bash
# librdkafka's mock Kafka cluster (3 brokers) as a background process in a project folder.
#   scripts/kafka-mock.sh start <dir> [topic[:partitions]]...   start (if not running); prints the bootstrap address
#   scripts/kafka-mock.sh stop <dir>                            SIGTERM and wait
#   scripts/kafka-mock.sh url <dir>                             print the bootstrap address
#   scripts/kafka-mock.sh ctl <dir> down|up <broker|all>        fault injection (also: rtt, topic, ping)
# The cluster keeps nothing across its own restart (new ports, no topics, no offsets); the relay
# notices the new cluster and republishes. The binary is $ES_KAFKA_MOCK, else the newest
# es-kafka-mock under build*/runtime/.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cmd=${1:?usage: kafka-mock.sh start|stop|url|ctl <dir> ...}
dir=$(mkdir -p "${2:?dir}" && cd "$2" && pwd)
shift 2

find_bin() {
  if [ -n "${ES_KAFKA_MOCK:-}" ]; then echo "$ES_KAFKA_MOCK"; return; fi
  local b
  b=$(ls -t "$here"/build*/runtime/es-kafka-mock 2>/dev/null | head -n1 || true)
  [ -n "$b" ] || { echo "kafka-mock.sh: es-kafka-mock not built (cmake --build build)" >&2; exit 1; }
  echo "$b"
}
running() { [ -f "$dir/pid" ] && kill -0 "$(cat "$dir/pid")" 2>/dev/null; }

case "$cmd" in
  start)
    if ! running; then
      bin=$(find_bin)
      rm -f "$dir/bootstrap"
      args=(--bootstrap-file "$dir/bootstrap" --control "$dir/ctl.sock" --brokers "${KAFKA_MOCK_BROKERS:-3}")
      for t in "${@:-orders.events:6}"; do args+=(--topic "$t"); done
      setsid "$bin" "${args[@]}" </dev/null >>"$dir/mock.log" 2>&1 &
      echo $! >"$dir/pid"
      for _ in $(seq 1 100); do
        [ -s "$dir/bootstrap" ] && break
        running || { cat "$dir/mock.log" >&2; exit 1; }
        sleep 0.1
      done
      [ -s "$dir/bootstrap" ] || { echo "kafka-mock.sh: no bootstrap address after 10 s" >&2; exit 1; }
    fi
    cat "$dir/bootstrap"
    ;;
  stop)
    if running; then
      pid=$(cat "$dir/pid")
      kill -TERM "$pid"
      for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    fi
    rm -f "$dir/pid" "$dir/bootstrap"
    ;;
  url) cat "$dir/bootstrap" ;;
  ctl) "$(find_bin)" ctl "$dir/ctl.sock" "$@" ;;
  *) echo "kafka-mock.sh: unknown command $cmd" >&2; exit 2 ;;
esac
