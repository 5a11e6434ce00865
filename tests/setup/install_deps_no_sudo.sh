#!/usr/bin/env bash
# scripts/install-deps.sh as an ordinary user without sudo, with packages missing: it stops with an
# error that says what is missing and what to do, instead of failing on "sudo: not found". A fake
# dpkg-query reports every package missing; PATH holds only it and the few tools the script uses,
# so no real sudo or apt-get can run.
#   install_deps_no_sudo.sh <checkout>
set -euo pipefail
src=$(cd "${1:?usage: install_deps_no_sudo.sh <checkout>}" && pwd)
fail() { echo "FAIL: $*" >&2; exit 1; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
chmod 0755 "$tmp"
mkdir "$tmp/bin"
printf '#!/bin/sh\nexit 1\n' >"$tmp/bin/dpkg-query"
chmod 0755 "$tmp/bin/dpkg-query"
for t in dirname grep id; do ln -s "$(command -v "$t")" "$tmp/bin/$t"; done
cp "$src/scripts/install-deps.sh" "$tmp/install-deps.sh"
chmod 0755 "$tmp/install-deps.sh"
as=()
if [ "$(id -u)" = 0 ]; then as=(setpriv --reuid=nobody --regid=nogroup --clear-groups); fi
"${as[@]}" env -i PATH="$tmp/bin" /bin/bash "$tmp/install-deps.sh" >"$tmp/out" 2>&1 && rc=0 || rc=$?
[ "$rc" = 1 ] || fail "exit status $rc, want 1: $(cat "$tmp/out")"
grep -q '^install-deps: missing build-essential cmake .*; run as root or install sudo' "$tmp/out" ||
  fail "no clear message: $(cat "$tmp/out")"
echo "install_deps_no_sudo: passed"
