#!/usr/bin/env bash
# A throwaway PostgreSQL 15 cluster named by a folder, for `run`, tests and benchmarks.
#   scripts/pg.sh start <dir> [port]   create (first time) and start; prints the conninfo
#   scripts/pg.sh stop <dir>           stop (fast)
#   scripts/pg.sh restart <dir>        stop and start again on the same port
#   scripts/pg.sh url <dir>            print the conninfo of a started cluster
#   scripts/pg.sh where <dir>          print the folder the cluster lives in (data, server.log)
#   scripts/pg.sh destroy <dir>        stop it and remove it, wherever it lives
#   scripts/pg.sh standby <dir> <primary-dir> [port]
#                                      a streaming replica of a started cluster (pg_basebackup -R),
#                                      created the first time and started; prints its conninfo.
#                                      stop, restart, url and destroy take <dir> as for any cluster
# initdb refuses root, so as root the cluster is owned by the 'postgres' system user. When that
# user cannot enter <dir> (a checkout under /root or in a 0700 home), the cluster lives in
# /var/tmp/orderd-<uid>-<hash of <dir>'s path>/ instead, <dir>/cluster links to it (and <dir>'s
# data, sock, port and server.log to their twins there); the first start says so on stderr. Removing <dir> abandons that cluster: the next start for the
# same path stops and removes it and makes a new one, as it would have in <dir>, and any start
# that relocates also removes the abandoned clusters of other folders.
# Durability is production's: fsync and synchronous_commit stay on.
set -euo pipefail
bin=$(ls -d /usr/lib/postgresql/15/bin 2>/dev/null || true)
[ -n "$bin" ] || { echo "pg.sh: PostgreSQL 15 is not installed (apt-get install postgresql-15)" >&2; exit 1; }
cmd=${1:?usage: pg.sh start|stop|restart|url|where|destroy <dir> [port]}
handle=$(mkdir -p "${2:?dir}" && cd "$2" && pwd)
as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# Stops and removes a cluster folder under /var/tmp whose <dir> no longer links to it. /var/tmp is
# everyone's: only a folder this script made for postgres is taken (else returns 1).
abandon() {
  [ ! -L "$1" ] && [ "$(stat -c %U "$1")" = postgres ] || return 1
  [ -f "$1/data/PG_VERSION" ] && as_owner "$bin/pg_ctl" -D "$1/data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$1"
}

# Sets dir, the folder the cluster lives in: <dir> itself, or the one <dir>/cluster links to.
locate() {
  dir=$handle
  if [ -L "$handle/cluster" ]; then
    dir=$(readlink "$handle/cluster")
    return
  fi
  [ "$(id -u)" = 0 ] && { [ "$cmd" = start ] || [ "$cmd" = standby ]; } && [ ! -f "$handle/data/PG_VERSION" ] || return 0
  chown postgres "$handle"
  runuser -u postgres -- test -w "$handle" -a -x "$handle" && return
  local base d
  base=/var/tmp/orderd-$(id -u)
  dir=$base-$(printf %s "$handle" | sha256sum | cut -c1-16)
  # One relocation at a time, so that the sweep never takes a folder another start is making.
  exec 9>"$base.lock"
  flock 9
  if [ -e "$dir" ] || [ -L "$dir" ]; then
    abandon "$dir" || { echo "pg.sh: $dir exists and is not a cluster folder of this script; remove it" >&2; exit 1; }
  fi
  # The clusters of folders removed since (their link gone) would otherwise stay for good.
  for d in "$base"-????????????????; do
    [ -f "$d/handle" ] || continue
    [ "$(readlink "$(cat "$d/handle")/cluster" 2>/dev/null)" = "$d" ] || abandon "$d" || true
  done
  mkdir -m 0755 "$dir"
  chown postgres "$dir"
  ln -s "$dir" "$handle/cluster"
  printf '%s\n' "$handle" >"$dir/handle"
  exec 9>&-
  # Callers that look inside <dir> (data/postmaster.pid, server.log) find the same files there.
  for f in data sock port server.log initdb.log; do ln -sfn "$dir/$f" "$handle/$f"; done
  echo "pg.sh: postgres cannot enter $handle; the cluster lives in $dir (linked as $handle/cluster)" >&2
}
locate
free_port() {
  # A random start keeps clusters created at the same moment (parallel tests) apart.
  local p
  for p in $(seq "${1:-$((55432 + RANDOM % 4000))}" 65000); do
    (echo >/dev/tcp/127.0.0.1/$p) 2>/dev/null || { echo "$p"; return; }
  done
}
conninfo() { echo "host=$dir/sock port=$(cat "$dir/port") dbname=orderd user=orderd"; }
case "$cmd" in
  start)
    if [ ! -f "$dir/data/PG_VERSION" ]; then
      [ "$(id -u)" = 0 ] && chown postgres "$dir"
      as_owner mkdir -p "$dir/sock"
      as_owner "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; exit 1; }
      port=${3:-$(free_port)}
      echo "$port" >"$dir/port"
      cat >>"$dir/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir/sock'
max_connections = 200
shared_buffers = 256MB
fsync = on
synchronous_commit = on
max_prepared_transactions = 0
log_min_messages = warning
CONF
      fresh=1
    else
      fresh=0
    fi
    if ! as_owner "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
      # The port was free when the cluster was made; another process may hold it now.
      if (echo >/dev/tcp/127.0.0.1/"$(cat "$dir/port")") 2>/dev/null; then
        port=$(free_port)
        echo "$port" >"$dir/port"
        as_owner sed -i "s/^port = .*/port = $port/" "$dir/data/postgresql.conf"
      fi
      # Another cluster may take the port between our check and the bind: move and retry.
      for attempt in 1 2 3 4; do
        if as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null 2>&1; then
          break
        fi
        if [ "$attempt" = 4 ] || ! grep -q "could not bind\|Address already in use\|could not create any TCP/IP sockets" "$dir/server.log"; then
          echo "pg.sh: PostgreSQL did not start; $dir/server.log says:" >&2
          tail -5 "$dir/server.log" >&2
          exit 1
        fi
        port=$(free_port)
        echo "$port" >"$dir/port"
        as_owner sed -i "s/^port = .*/port = $port/" "$dir/data/postgresql.conf"
      done
    fi
    if [ "$fresh" = 1 ]; then
      as_owner "$bin/psql" -h "$dir/sock" -p "$(cat "$dir/port")" -U postgres -d postgres -qAt \
        -c "CREATE ROLE orderd LOGIN SUPERUSER" -c "CREATE DATABASE orderd OWNER orderd" >/dev/null
    fi
    chmod 755 "$dir" "$dir/sock" 2>/dev/null || true
    conninfo
    ;;
  stop)
    [ -f "$dir/data/PG_VERSION" ] && as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
    ;;
  restart)
    as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null
    conninfo
    ;;
  standby)
    primary=$("$0" where "${3:?usage: pg.sh standby <dir> <primary-dir> [port]}")
    [ -f "$primary/port" ] || { echo "pg.sh: $3 is not a started cluster" >&2; exit 1; }
    if [ ! -f "$dir/data/PG_VERSION" ]; then
      [ "$(id -u)" = 0 ] && chown postgres "$dir"
      as_owner mkdir -p "$dir/sock"
      # -R writes standby.signal and primary_conninfo; -X stream carries the WAL of the copy itself.
      as_owner "$bin/pg_basebackup" -h "$primary/sock" -p "$(cat "$primary/port")" -U postgres -D "$dir/data" \
        -R -X stream -c fast >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
      port=${4:-$(free_port)}
      echo "$port" >"$dir/port"
      # The copied postgresql.conf names the primary's port and socket folder: later lines win.
      as_owner tee -a "$dir/data/postgresql.conf" >/dev/null <<CONF
port = $port
unix_socket_directories = '$dir/sock'
hot_standby = on
CONF
    fi
    if ! as_owner "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
      if ! as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null 2>&1; then
        echo "pg.sh: the standby did not start; $dir/server.log says:" >&2
        tail -5 "$dir/server.log" >&2
        exit 1
      fi
    fi
    chmod 755 "$dir" "$dir/sock" 2>/dev/null || true
    conninfo
    ;;
  url) conninfo ;;
  where) echo "$dir" ;;
  destroy)
    [ -f "$dir/data/PG_VERSION" ] && as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$dir"
    rm -f "$handle/cluster" "$handle/data" "$handle/sock" "$handle/port" "$handle/server.log" "$handle/initdb.log"
    ;;
  *) echo "pg.sh: unknown command $cmd" >&2; exit 2 ;;
esac
