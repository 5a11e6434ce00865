#!/usr/bin/env bash
# Installs what orderd needs on Debian 12, only what is missing: Debian packages with apt-get and
# the npm developer tools pinned in tools/package-lock.json. Nothing is downloaded at build or
# run time; this script is the only place that fetches anything. Run as root (or with sudo).
#   --no-dev-tools   leave out the npm tools (the run command needs none of them)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
dev_tools=1
for a in "$@"; do [ "$a" = --no-dev-tools ] && dev_tools=0; done
packages=(
  build-essential cmake pkg-config git
  protobuf-compiler libprotobuf-dev libprotoc-dev protobuf-c-compiler libprotobuf-c-dev
  golang-github-gogo-googleapis-dev golang-google-protobuf-dev
  libpq-dev postgresql-15 postgresql-client-15
  librdkafka-dev kcat
  libgrpc-dev python3 python3-grpcio python3-protobuf
  libh2o-evloop-dev libssl-dev
  libcmocka-dev libjson-c-dev iso-codes
  clang libclang-rt-14-dev valgrind wrk curl nodejs
  chromium fonts-dejavu-core
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
if [ "${#missing[@]}" -gt 0 ] && [ -n "$sudo" ] && ! command -v sudo >/dev/null; then
  echo "install-deps: missing ${missing[*]}; run as root or install sudo to let this script install them" >&2
  exit 1
fi
if [ "${#missing[@]}" -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# A cluster started by the Debian package would only compete for memory; ours are per-folder.
if [ -d /etc/postgresql/15/main ] && command -v pg_ctlcluster >/dev/null; then
  pg_ctlcluster 15 main stop >/dev/null 2>&1 || true
fi
[ "$dev_tools" = 1 ] || exit 0
# nodejs from Debian ships npm separately; nodesource's nodejs bundles it.
if ! command -v npm >/dev/null; then
  DEBIAN_FRONTEND=noninteractive ${sudo:-} apt-get install -y -qq --no-install-recommends npm >/dev/null
fi
# Also when the lock file changed since the last install (npm ci records it in node_modules).
if [ ! -x "$here/tools/node_modules/.bin/buf" ] || [ ! -f "$here/tools/node_modules/.package-lock.json" ] ||
   [ "$here/tools/package-lock.json" -nt "$here/tools/node_modules/.package-lock.json" ]; then
  echo "install-deps: installing npm tools (tools/package-lock.json)"
  (cd "$here/tools" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi
