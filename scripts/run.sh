#!/usr/bin/env bash
# Zero-configuration local run (`make run`): start PostgreSQL and Redis with
# their data in <repo>/.data, migrate, serve in the foreground; on exit
# (Ctrl-C, SIGTERM or a server crash) stop the services again.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SERVICES="${ROOT}/scripts/services.sh"
DATA="${ROOT}/.data"
API="${ROOT}/build/api"

if [[ ! -x ${API} ]]; then
  echo "run.sh: ${API} not found; build it first (make run)" >&2
  exit 1
fi

# Stop the services however we leave, for a clean machine.
trap '"${SERVICES}" stop "${DATA}" || echo "run.sh: could not stop services" >&2' EXIT

"${SERVICES}" start "${DATA}" >/dev/null
# shellcheck source=/dev/null
source "${DATA}/env"

"${API}" migrate

echo "run.sh: serving on http://${HOST:-127.0.0.1}:${PORT:-3000} (Ctrl-C to stop)"
# setsid: the server gets its own session, so a terminal Ctrl-C reaches only
# this script, which forwards it once (no double signal); -w keeps the exit
# status should setsid ever need to fork. env resets SIGINT, which bash
# sets to "ignored" for background children.
setsid -w env --default-signal=INT,QUIT "${API}" serve &
child=$!
trap 'kill -INT "${child}" 2>/dev/null || true' INT
trap 'kill -TERM "${child}" 2>/dev/null || true' TERM

# wait returns early (status > 128) when a trapped signal arrives; keep
# waiting until the server has really exited. bash remembers the status of
# a reaped child, so the last wait yields the server's own exit code.
while kill -0 "${child}" 2>/dev/null; do
  wait "${child}" || true
done
rc=0
wait "${child}" || rc=$?
exit "${rc}"
