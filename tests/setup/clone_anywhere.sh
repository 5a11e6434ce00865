#!/usr/bin/env bash
# The README's run command from a fresh clone in a private (0700) folder: as root, where the
# postgres user cannot enter the clone, and as an ordinary user (a throwaway account made here and
# removed afterwards). Each time: start scripts/run.sh in the background, wait for /healthz, place
# one order with the development token, stop it with SIGTERM and check that orderd, PostgreSQL and
# the mock Kafka cluster all stopped and that the build printed nothing.
#   clone_anywhere.sh <checkout>
# The clone holds the checkout's committed HEAD. The ordinary-user case needs root (useradd); as
# another user it is left out, which is a failure under CI=true.
set -euo pipefail
src=$(cd "${1:?usage: clone_anywhere.sh <checkout>}" && pwd)
start_timeout=${CLONE_START_TIMEOUT:-600}   # configure + build of orderd and the mock + start
fail() { echo "FAIL: $*" >&2; exit 1; }
log() { echo "clone_anywhere: $*"; }

work=$(mktemp -d "${TMPDIR:-/tmp}/orderd-clone-anywhere-XXXXXX")   # mode 0700
user=""
run_pid=""
clones=()
cleanup() {
  set +e
  [ -n "$run_pid" ] && kill -TERM -- "-$run_pid" 2>/dev/null && sleep 1
  for c in "${clones[@]}"; do
    # Stops and removes a cluster the run left behind, wherever it lives (as its owner).
    if [ -n "$user" ] && [[ $c == /home/* ]]; then
      runuser -u "$user" -- "$c/scripts/kafka-mock.sh" stop "$c/.dev/kafka" >/dev/null 2>&1
      runuser -u "$user" -- "$c/scripts/pg.sh" destroy "$c/.dev/pg" >/dev/null 2>&1
    else
      "$c/scripts/kafka-mock.sh" stop "$c/.dev/kafka" >/dev/null 2>&1
      "$c/scripts/pg.sh" destroy "$c/.dev/pg" >/dev/null 2>&1
    fi
  done
  if [ -n "$user" ]; then
    userdel -r "$user" >/dev/null 2>&1 || userdel "$user"
  fi
  rm -rf "$work"
}
trap cleanup EXIT

free_port() {
  local p
  for _ in $(seq 1 200); do
    p=$((20000 + RANDOM % 10000))
    (echo >/dev/tcp/127.0.0.1/$p) 2>/dev/null || { echo "$p"; return; }
  done
  fail "no free port"
}

# Runs the README's run command in <clone> (as <user> when given), checks it end to end, stops it.
try_run() { # clone, what, user-or-empty
  local clone=$1 what=$2 as=$3 http grpc out t0 deadline token body st rc where
  http=$(free_port)
  grpc=$(free_port)
  out=$work/run-$(basename "$(dirname "$clone")").log
  t0=$(date +%s)
  if [ -n "$as" ]; then
    # A login-like environment: the user's own HOME and a plain PATH, not root's. setpriv execs
    # (runuser would stay as a parent that kills its child 2 s after its own SIGTERM).
    (cd "$clone" && exec setsid setpriv --reuid="$as" --regid="$as" --init-groups env -i HOME="$(dirname "$clone")" USER="$as" \
      PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin bash scripts/run.sh \
      --http-listen "127.0.0.1:$http" --grpc-listen "127.0.0.1:$grpc") >"$out" 2>&1 &
  else
    (cd "$clone" && exec setsid bash scripts/run.sh --http-listen "127.0.0.1:$http" \
      --grpc-listen "127.0.0.1:$grpc") >"$out" 2>&1 &
  fi
  run_pid=$!
  deadline=$((t0 + start_timeout))
  until curl -sf -o /dev/null "http://127.0.0.1:$http/healthz"; do
    kill -0 "$run_pid" 2>/dev/null || { cat "$out" >&2; fail "$what: scripts/run.sh exited before /healthz answered"; }
    [ "$(date +%s)" -lt "$deadline" ] || { cat "$out" >&2; fail "$what: /healthz did not answer within ${start_timeout}s"; }
    sleep 0.5
  done
  log "$what: /healthz answered $(( $(date +%s) - t0 ))s after scripts/run.sh started (build included)"

  # Quiet: nothing of cmake or the compiler reached the terminal before run.sh's own report.
  if sed '/^PostgreSQL: /,$d' "$out" | grep -nE 'warning|error|Building C|Linking C|^-- |\[ *[0-9]+%\]'; then
    fail "$what: the build printed to the terminal"
  fi
  where=$(sed -n 's/^PostgreSQL: .*(cluster folder: \(.*\))$/\1/p' "$out")
  [ -n "$where" ] || { cat "$out" >&2; fail "$what: run.sh did not say where the PostgreSQL cluster lives"; }
  log "$what: the cluster lives in $where"
  if [ -z "$as" ]; then
    # postgres cannot enter the private clone: the cluster must live where it can.
    [[ $where == /var/tmp/orderd-0-* ]] || fail "$what: cluster folder $where, want /var/tmp/orderd-0-*"
    [ "$(readlink "$clone/.dev/pg/cluster")" = "$where" ] || fail "$what: $clone/.dev/pg/cluster does not link to $where"
  else
    [ "$where" = "$clone/.dev/pg" ] || fail "$what: cluster folder $where, want $clone/.dev/pg"
    [ "$(stat -c %U "$where/data")" = "$as" ] || fail "$what: the cluster is not owned by $as"
  fi

  token=$(cat "$clone/.dev/dev-token")
  body=$(curl -s -w '\n%{http_code}' "http://127.0.0.1:$http/v1/orders" -H "Authorization: Bearer $token" \
    -H 'Content-Type: application/json' -H "Idempotency-Key: clone-anywhere-$$" -d '{
      "customer_id": "cust-42", "vendor_id": "vendor-7", "payment_method": "card",
      "items": [{"product_id": "sku-1", "quantity": 2, "unit_price": {"currency_code": "EUR", "amount_minor": 1250}}],
      "shipping_address": {"name": "Ada", "line1": "1 Main St", "city": "Paris", "postal_code": "75001", "country_code": "FR"}}')
  st=${body##*$'\n'}
  [ "$st" = 200 ] || fail "$what: PlaceOrder answered $st: ${body%$'\n'*}"
  echo "${body%$'\n'*}" | grep -qE '"order_id":"[0-9a-f-]{36}"' || fail "$what: no order_id in ${body%$'\n'*}"
  log "$what: order placed: ${body%$'\n'*}"

  # Stop: as root SIGTERM to run.sh alone (it must pass it on to orderd); as the user SIGTERM to
  # the whole process group, as a terminal's Ctrl-C reaches everything in the foreground.
  if [ -n "$as" ]; then kill -TERM -- "-$run_pid"; else kill -TERM "$run_pid"; fi
  for _ in $(seq 1 600); do kill -0 "$run_pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$run_pid" 2>/dev/null && fail "$what: scripts/run.sh still runs 60 s after SIGTERM"
  wait "$run_pid" && rc=0 || rc=$?
  run_pid=""
  [ "$rc" = 0 ] || { cat "$out" >&2; fail "$what: scripts/run.sh exited with $rc after SIGTERM"; }
  [ ! -e "$where/data/postmaster.pid" ] || fail "$what: PostgreSQL still runs in $where"
  [ ! -e "$clone/.dev/kafka/pid" ] || fail "$what: the mock Kafka cluster was not stopped"
  (echo >"/dev/tcp/127.0.0.1/$http") 2>/dev/null && fail "$what: something still listens on $http"
  log "$what: stopped cleanly (orderd, PostgreSQL, mock Kafka) after $(( $(date +%s) - t0 ))s in all"
}

command -v git >/dev/null || fail "git is missing"
command -v curl >/dev/null || fail "curl is missing"

# 1. As this user (root in CI) in a private folder.
mkdir -m 0700 "$work/home"
git clone -q "$src" "$work/home/orderd"
clones+=("$work/home/orderd")
if [ "$(id -u)" = 0 ]; then
  runuser -u postgres -- test -x "$work/home" && fail "postgres can enter $work/home; the case would prove nothing"
  try_run "$work/home/orderd" "root, clone in a 0700 folder" ""
else
  try_run "$work/home/orderd" "$(id -un), clone in a 0700 folder" ""
fi

# 2. As an ordinary user: a throwaway account with a 0700 home holding its own clone.
if [ "$(id -u)" != 0 ]; then
  [ "${CI:-}" = true ] && fail "the ordinary-user case needs root (useradd) and CI=true"
  log "ordinary-user case not run (needs root to create a user)"
  exit 0
fi
command -v useradd >/dev/null || fail "useradd is missing"
user=orderd-ca-$$
useradd -m -d "/home/$user" -s /bin/bash "$user"
chmod 0700 "/home/$user"
git clone -q "$src" "/home/$user/orderd"
chown -R "$user:" "/home/$user/orderd"
clones+=("/home/$user/orderd")
try_run "/home/$user/orderd" "ordinary user $user, clone in its 0700 home" "$user"
log "passed"
