#!/usr/bin/env bash
# Validates GitHub Actions workflow files against the workflow schema with
# action-validator (offline: the schema is compiled into the tool).
#
#   scripts/lint-workflows.sh [FILE...]     default: .github/workflows/*.yml
#
# The tool is pinned in tools/actions/package.json and package-lock.json and
# installed into tools/actions/node_modules (git-ignored) with `npm ci` when
# it is missing or not the pinned version. Exits non-zero when a file is
# invalid or the tool cannot be installed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOOLS="${ROOT}/tools/actions"
VALIDATOR="${TOOLS}/node_modules/.bin/action-validator"
NODE_MIN=20.19

die() {
  echo "lint-workflows.sh: $*" >&2
  exit 1
}

command -v node >/dev/null || die "node is not installed (Node.js >= ${NODE_MIN} is required)"
command -v npm >/dev/null || die "npm is not installed"
node_version=$(node --version)
[[ $(printf '%s\n%s\n' "${NODE_MIN}" "${node_version#v}" | sort -V | head -n 1) == "${NODE_MIN}" ]] ||
  die "Node.js ${node_version#v} is too old: the pinned npm tooling needs Node.js >= ${NODE_MIN}"

pinned=$(node -e 'const l = require(process.argv[1]);
  process.stdout.write(l.packages["node_modules/@action-validator/cli"].version)' \
  "${TOOLS}/package-lock.json") || die "cannot read the pinned version from ${TOOLS}/package-lock.json"
installed=""
if [[ -f ${TOOLS}/node_modules/@action-validator/cli/package.json ]]; then
  installed=$(node -e 'process.stdout.write(require(process.argv[1]).version)' \
    "${TOOLS}/node_modules/@action-validator/cli/package.json") || installed=""
fi
if [[ ! -x ${VALIDATOR} || ${installed} != "${pinned}" ]]; then
  echo "lint-workflows.sh: installing @action-validator/cli ${pinned} into ${TOOLS}" >&2
  npm ci --prefix "${TOOLS}" --no-audit --no-fund --loglevel=error >&2 || die "npm ci failed"
  [[ -x ${VALIDATOR} ]] || die "npm ci did not install ${VALIDATOR}"
fi

cd "${ROOT}"
if [[ $# -eq 0 ]]; then
  shopt -s nullglob
  set -- .github/workflows/*.yml .github/workflows/*.yaml
  [[ $# -gt 0 ]] || die "no workflow files under .github/workflows"
fi
rc=0
for f in "$@"; do
  # NO_COLOR: plain text in logs.
  if NO_COLOR=1 "${VALIDATOR}" "${f}"; then
    echo "lint-workflows.sh: ${f}: valid"
  else
    echo "lint-workflows.sh: ${f}: INVALID" >&2
    rc=1
  fi
done
exit "${rc}"
