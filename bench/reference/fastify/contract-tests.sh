#!/usr/bin/env bash
# Runs the project's own black-box contract tests (tests/integration) against
# the Fastify reference: bin/api stands in for the C binary as API_BIN, on a
# throwaway PostgreSQL + Redis migrated by the C server's `api migrate`.
#
#   bench/reference/fastify/contract-tests.sh [PYTEST ARGS...]
#
# Needs build/api (make) for the migration, Node.js >= 20 and npm. Not part
# of `make test`: it checks the benchmark's yardstick, not the server.
#
# Which tests run: every file about the routes the reference serves (users,
# health, the OpenAPI document, Redis patterns, PostgreSQL failures, HTTP
# basics and robustness). Left out, each for a reason of the C server's own:
#   whole files
#     test_cli.py       the C binary's flags and its start-up validation of
#                       every variable (HTTP2, API_DEBUG_ROUTES, ...)
#     test_limits.py    needs the /debug/sleep route (API_DEBUG_ROUTES=1)
#     test_shutdown.py  needs the /debug/sleep route to hold requests in flight
#   single tests: see DESELECT below.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "${HERE}/../../.." && pwd)
SERVICES="${ROOT}/scripts/services.sh"
MIGRATE_BIN=${API_MIGRATE_BIN:-${ROOT}/build/api}

FILES=(
  test_http_basics.py
  test_robustness.py
  test_users_auth.py
  test_users_create.py
  test_users_item.py
  test_users_list.py
  test_users_idempotency.py
  test_users_openapi.py
  test_users_ready.py
  test_users_pg_control.py
  test_redis_cache.py
  test_redis_idempotency.py
  test_redis_rate_limit.py
  test_redis_rate_limit_batched.py
  test_redis_degraded.py
)

DESELECT=(
  # The C server's access-log line (request_id, method, path, status,
  # duration_ms, bytes as top-level fields); the reference logs with pino's
  # and Fastify's own fields.
  test_http_basics.py::test_access_log_line_for_success
  test_http_basics.py::test_access_log_line_for_errors_uses_generated_id
  test_http_basics.py::test_one_access_line_per_request
  # HTTP2=1 (cleartext HTTP/2 by prior knowledge) is an option of the C server.
  test_http_basics.py::test_h2c_prior_knowledge_when_enabled
  # h2o refuses more than 100 header fields; Node accepts up to 2,000.
  test_robustness.py::test_too_many_headers_is_rejected
  # Node answers a 16 KiB request line with 431 (its header-size limit covers
  # the request line); the test accepts 400, 404 or 414.
  test_robustness.py::test_long_url_is_not_a_server_error
  # @fastify/rate-limit counts in fixed windows: X-RateLimit-Reset and
  # Retry-After are the time to the end of the window, not the C server's
  # GCRA "time until the budget is full again / until the next request".
  test_redis_rate_limit.py::test_burst_counts_down_then_429
  test_redis_rate_limit.py::test_retry_after_is_truthful
  # With Redis down the C server falls back to an in-process limiter
  # (RATE_LIMIT_FAIL_MODE=local); @fastify/rate-limit can only skip
  # limiting (skipOnError, "open") or fail ("closed").
  test_redis_degraded.py::test_redis_outage_keeps_serving_with_local_limits_then_goes_global_again
)

[[ -x ${MIGRATE_BIN} ]] || {
  echo "contract-tests.sh: ${MIGRATE_BIN} not found: build the C server first (make), or set API_MIGRATE_BIN" >&2
  exit 1
}
"${HERE}/install.sh"

# A sourced services env (e.g. .data/env) would pin this run to its ports.
unset PGHOST PGPORT REDIS_PORT SERVICES_DIR
SVC_DIR=$(mktemp -d)
cleanup() {
  "${SERVICES}" destroy "${SVC_DIR}" || echo "contract-tests.sh: could not clean up ${SVC_DIR}" >&2
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"${SERVICES}" start "${SVC_DIR}" >/dev/null
# shellcheck source=/dev/null
source "${SVC_DIR}/env"
"${MIGRATE_BIN}" migrate >/dev/null

export API_BIN="${HERE}/bin/api"
args=()
for f in "${FILES[@]}"; do args+=("tests/integration/${f}"); done
for t in "${DESELECT[@]}"; do args+=(--deselect "tests/integration/${t}"); done
cd "${ROOT}"
echo "contract-tests.sh: ${#FILES[@]} test files against ${API_BIN} (${#DESELECT[@]} tests deselected)"
rc=0
/usr/bin/python3 -m pytest -q -p no:cacheprovider "${args[@]}" "$@" || rc=$?
exit "${rc}"
