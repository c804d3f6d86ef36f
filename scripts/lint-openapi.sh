#!/usr/bin/env bash
# Lints openapi/openapi.json with Redocly CLI, configured by redocly.yaml at
# the repository root (the recommended ruleset, strict: a warning fails too).
#
#   scripts/lint-openapi.sh [FILE...]     default: openapi/openapi.json
#
# The CLI is pinned in tools/node/package.json and package-lock.json and
# installed into tools/node/node_modules (git-ignored) with `npm ci` when it
# is missing or not the pinned version. Exits non-zero when the lint fails or
# the tool cannot be installed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOOLS="${ROOT}/tools/node"
REDOCLY="${TOOLS}/node_modules/.bin/redocly"

die() {
  echo "lint-openapi.sh: $*" >&2
  exit 1
}

command -v node >/dev/null || die "node is not installed (the machine's Node.js is required)"
command -v npm >/dev/null || die "npm is not installed"

# The version package-lock.json pins, and the one installed (empty if none).
pinned=$(node -e 'const l = require(process.argv[1]);
  process.stdout.write(l.packages["node_modules/@redocly/cli"].version)' \
  "${TOOLS}/package-lock.json") || die "cannot read the pinned version from ${TOOLS}/package-lock.json"
installed=""
if [[ -f ${TOOLS}/node_modules/@redocly/cli/package.json ]]; then
  installed=$(node -e 'process.stdout.write(require(process.argv[1]).version)' \
    "${TOOLS}/node_modules/@redocly/cli/package.json") || installed=""
fi
if [[ ! -x ${REDOCLY} || ${installed} != "${pinned}" ]]; then
  echo "lint-openapi.sh: installing @redocly/cli ${pinned} into ${TOOLS}" >&2
  npm ci --prefix "${TOOLS}" --no-audit --no-fund --loglevel=error >&2 ||
    die "npm ci failed"
  [[ -x ${REDOCLY} ]] || die "npm ci did not install ${REDOCLY}"
fi

# No telemetry and no update checks: the lint runs in CI and offline.
export REDOCLY_TELEMETRY=off
export REDOCLY_SUPPRESS_UPDATE_NOTICE=true

cd "${ROOT}"
if [[ $# -eq 0 ]]; then
  set -- openapi/openapi.json
fi
exec "${REDOCLY}" lint --config "${ROOT}/redocly.yaml" "$@"
