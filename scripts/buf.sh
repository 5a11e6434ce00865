#!/usr/bin/env bash
# Runs buf (npm @bufbuild/buf, installed by scripts/install-deps.sh into tools/) offline:
#   scripts/buf.sh lint                      lint proto/
#   scripts/buf.sh breaking                  compare proto/ with the released baseline image
#   scripts/buf.sh baseline                  write a new baseline (at a release, never to hide a break)
# buf cannot fetch google/api from its registry here, so a temporary workspace holds proto/ and
# Debian's copy of google/api/{http,annotations}.proto as two modules.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
buf=$here/tools/node_modules/.bin/buf
[ -x "$buf" ] || { echo "buf.sh: $buf missing; run scripts/install-deps.sh" >&2; exit 1; }
googleapis=${GOOGLEAPIS_DIR:-/usr/share/gocode/src/github.com/gogo/googleapis}
baseline=$here/proto/baseline/image.binpb
ws=$(mktemp -d); trap 'rm -rf "$ws"' EXIT
mkdir -p "$ws/googleapis/google/api"
cp "$googleapis/google/api/http.proto" "$googleapis/google/api/annotations.proto" "$ws/googleapis/google/api/"
cp -r "$here/proto" "$ws/proto"
rm -rf "$ws/proto/baseline" "$ws/proto/buf.yaml"
{
  echo "version: v2"
  echo "modules:"
  echo "  - path: proto"
  sed -n '/^lint:/,$p' "$here/proto/buf.yaml" | sed 's/^/    /'
  echo "  - path: googleapis"
  echo "    lint:"
  echo "      use: [MINIMAL]"
} >"$ws/buf.yaml"
export BUF_CACHE_DIR=$ws/.cache
cd "$ws"
case "${1:-}" in
  lint) "$buf" lint proto ;;
  breaking) "$buf" breaking proto --against "$baseline" ;;
  baseline) mkdir -p "$(dirname "$baseline")"; "$buf" build proto -o "$baseline" ;;
  *) echo "usage: scripts/buf.sh lint|breaking|baseline" >&2; exit 2 ;;
esac
