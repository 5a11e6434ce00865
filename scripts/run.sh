#!/usr/bin/env bash
# The run command (README): installs what is missing, builds, starts a throwaway PostgreSQL
# cluster in .dev/pg and librdkafka's mock Kafka cluster (3 brokers) in .dev/kafka, then runs
# orderd in the foreground on its embedded defaults (HTTP :8080, gRPC :8081). Ctrl-C stops all.
# Extra arguments go to orderd (e.g. --http-listen 127.0.0.1:9080).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc 2>/dev/null || echo 2)" >/dev/null
mkdir -p .dev
pg=$(scripts/pg.sh start .dev/pg)
kafka=$(ES_KAFKA_MOCK=$here/build/runtime/es-kafka-mock scripts/kafka-mock.sh start .dev/kafka)
cleanup() { scripts/kafka-mock.sh stop .dev/kafka || true; scripts/pg.sh stop .dev/pg || true; }
trap cleanup EXIT INT TERM
# A development admin token, made once and kept in .dev/ (production gets its own token file).
if [ ! -s .dev/dev-token ]; then
  head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >.dev/dev-token
fi
token=$(cat .dev/dev-token)
printf '%s admin dev\n' "$(printf %s "$token" | sha256sum | cut -d' ' -f1)" >.dev/tokens
echo "PostgreSQL: $pg"
echo "Kafka (mock cluster): $kafka"
echo "================================================================================"
echo " DEVELOPMENT TOKEN (admin, stored in .dev/dev-token; for local use only):"
echo "   $token"
echo "   curl -H \"Authorization: Bearer \$(cat .dev/dev-token)\" localhost:8080/v1/orders"
echo "================================================================================"
build/app/orderd --pg "$pg" --kafka-bootstrap-file .dev/kafka/bootstrap --auth-tokens .dev/tokens "$@"
