#!/usr/bin/env bash
# Whole test suite: unit tests (ASan build), the fuzz targets briefly, then
# integration tests against throwaway PostgreSQL/Redis. `make test` builds
# build/asan/* and calls this. Extra arguments go to pytest (e.g.
# FUZZ=0 scripts/test.sh -k health -x).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SERVICES="${ROOT}/scripts/services.sh"

# Resolve API_BIN before changing directory: a caller's relative path is
# relative to where they ran us; the default is relative to the repo.
if [[ -z ${API_BIN:-} ]]; then
  API_BIN="${ROOT}/build/asan/api"
elif [[ ${API_BIN} != /* ]]; then
  API_BIN="${PWD}/${API_BIN}"
fi
export API_BIN
cd "${ROOT}"

# Sanitizer settings; values the caller already set win.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:halt_on_error=1}"
if [[ -z ${LSAN_OPTIONS:-} && -f ${ROOT}/tests/lsan.supp ]]; then
  export LSAN_OPTIONS="suppressions=${ROOT}/tests/lsan.supp"
fi
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

failed=()

echo "== unit tests"
if ! "${ROOT}/build/asan/unit_tests"; then
  failed+=(unit)
fi

echo "== openapi lint"
if ! "${ROOT}/scripts/lint-openapi.sh"; then
  failed+=(openapi-lint)
fi

echo "== format check"
if ! make -s -C "${ROOT}" format-check >/dev/null; then
  echo "test.sh: clang-format disagrees; run make format" >&2
  failed+=(format)
fi

# Every fuzz target for a few seconds on its committed seeds, under a minute
# in all (docs/fuzzing.md). FUZZ=0 skips the stage (make tsan-test does).
if [[ ${FUZZ:-1} != 0 ]]; then
  echo "== fuzz"
  if ! make -s -C "${ROOT}" --no-print-directory fuzz >/dev/null || ! "${ROOT}/scripts/fuzz.sh" smoke; then
    failed+=(fuzz)
  fi
fi

# Variables left over from a sourced services env (e.g. .data/env) would
# pin this run's ports to a cluster that is already using them.
if [[ -n ${SERVICES_DIR:-} ]]; then
  unset PGHOST PGPORT REDIS_PORT SERVICES_DIR
fi

SVC_DIR=$(mktemp -d)
cleanup() {
  "${SERVICES}" destroy "${SVC_DIR}" || echo "test.sh: could not clean up ${SVC_DIR}" >&2
}
trap cleanup EXIT
# Turn signals into a normal exit so the EXIT trap stops the services.
trap 'exit 130' INT
trap 'exit 143' TERM

echo "== services"
"${SERVICES}" start "${SVC_DIR}" >/dev/null
# shellcheck source=/dev/null
source "${SVC_DIR}/env"

echo "== migrate"
[[ -x ${API_BIN} ]] || {
  echo "test.sh: ${API_BIN} not found or not executable (run make test)" >&2
  exit 1
}
if ! "${API_BIN}" migrate; then
  echo "test.sh: FAILED: ${API_BIN} migrate" >&2
  exit 1
fi

echo "== integration tests"
# Debian's interpreter explicitly: PATH's python3 may lack the Debian
# modules (pytest, requests, psycopg).
rc=0
/usr/bin/python3 -m pytest -q -p no:cacheprovider tests/integration "$@" || rc=$?
# pytest exits 5 when nothing was collected: an empty suite is a failure.
if [[ ${rc} -eq 5 ]]; then
  echo "test.sh: no integration tests were collected" >&2
fi
if [[ ${rc} -ne 0 ]]; then
  failed+=(integration)
fi

if [[ ${#failed[@]} -gt 0 ]]; then
  echo "test.sh: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "test.sh: all tests passed"
