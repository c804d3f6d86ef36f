#!/usr/bin/env bash
# Renders GET /docs in headless Chromium and saves a screenshot (the one in
# docs/images/ was made with this). Starts build/api on a free loopback port
# without a database (the page needs none) and stops it again.
#
#   scripts/docs-screenshot.sh [OUT.png]    default: docs/images/docs-page.png
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${1:-${ROOT}/docs/images/docs-page.png}
API=${API_BIN:-${ROOT}/build/api}
[[ -x ${API} ]] || {
  echo "docs-screenshot.sh: ${API} not found (run make)" >&2
  exit 1
}
CHROMIUM=$(command -v chromium || command -v chromium-browser) || {
  echo "docs-screenshot.sh: chromium is not installed" >&2
  exit 1
}

TMP=$(mktemp -d)
PID=""
cleanup() {
  if [[ -n ${PID} ]] && kill -0 "${PID}" 2>/dev/null; then
    kill -TERM "${PID}"
    wait "${PID}" || true
  fi
  rm -rf "${TMP}"
}
trap cleanup EXIT

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# Port 1 refuses at once: the server runs, not ready, which /docs does not mind.
HOST=127.0.0.1 PORT=${PORT} WORKERS=1 REDIS_URL= DATABASE_URL="host=127.0.0.1 port=1 dbname=api" \
  "${API}" serve >"${TMP}/api.log" 2>&1 &
PID=$!
for _ in $(seq 100); do
  curl -sf -o /dev/null "http://127.0.0.1:${PORT}/health/live" && break
  sleep 0.05
done

mkdir -p "$(dirname "${OUT}")"
timeout 60 "${CHROMIUM}" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --host-resolver-rules="MAP * ~NOTFOUND, EXCLUDE 127.0.0.1" --user-data-dir="${TMP}/profile" \
  --hide-scrollbars --window-size=1280,1400 --virtual-time-budget=10000 \
  --screenshot="${OUT}" "http://127.0.0.1:${PORT}/docs" 2>"${TMP}/chromium.log" || {
  tail -n 20 "${TMP}/chromium.log" >&2
  exit 1
}
echo "docs-screenshot.sh: wrote ${OUT}"
