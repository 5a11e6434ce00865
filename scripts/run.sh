#!/usr/bin/env bash
# The run command (README): installs what is missing, builds orderd and the mock Kafka cluster,
# starts a throwaway PostgreSQL cluster (.dev/pg; as root where the postgres user can reach it,
# see scripts/pg.sh) and librdkafka's mock Kafka cluster (3 brokers) in .dev/kafka, then runs
# orderd on its embedded defaults (HTTP :8080, gRPC :8081) until Ctrl-C or SIGTERM, which stop
# all three. Extra arguments go to orderd (e.g. --http-listen 127.0.0.1:9080).
# The build is quiet (scripts/build.sh): its output goes to build/build.log, shown if it fails.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
# The npm tools (buf) serve the tests only.
scripts/install-deps.sh --no-dev-tools
scripts/build.sh build orderd es-kafka-mock -- -DCMAKE_BUILD_TYPE=RelWithDebInfo
mkdir -p .dev
pg=$(scripts/pg.sh start .dev/pg)
cleanup() { scripts/kafka-mock.sh stop .dev/kafka || true; scripts/pg.sh stop .dev/pg || true; }
trap cleanup EXIT
kafka=$(ES_KAFKA_MOCK=$here/build/runtime/es-kafka-mock scripts/kafka-mock.sh start .dev/kafka)
# A development admin token, made once and kept in .dev/ (production gets its own token file).
if [ ! -s .dev/dev-token ]; then
  head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >.dev/dev-token
fi
token=$(cat .dev/dev-token)
printf '%s admin dev\n' "$(printf %s "$token" | sha256sum | cut -d' ' -f1)" >.dev/tokens
echo "PostgreSQL: $pg (cluster folder: $(scripts/pg.sh where .dev/pg))"
echo "Kafka (mock cluster): $kafka"
echo "================================================================================"
echo " DEVELOPMENT TOKEN (admin, stored in .dev/dev-token; for local use only):"
echo "   $token"
echo "   curl -H \"Authorization: Bearer \$(cat .dev/dev-token)\" localhost:8080/v1/orders"
echo "================================================================================"
# orderd runs as a child so that SIGTERM to this script (not only Ctrl-C, which reaches the
# whole terminal group) stops it before the clusters stop under it; the script exits with
# orderd's status.
build/app/orderd --pg "$pg" --kafka-bootstrap-file .dev/kafka/bootstrap --auth-tokens .dev/tokens "$@" &
orderd_pid=$!
trap 'kill -TERM "$orderd_pid" 2>/dev/null || true' INT TERM
while :; do
  wait "$orderd_pid" && rc=0 || rc=$?
  kill -0 "$orderd_pid" 2>/dev/null || break
done
exit "$rc"
