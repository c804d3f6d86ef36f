#!/usr/bin/env bash
# Installs the OpenID Connect provider the auth tests run (npm oidc-provider,
# pinned in package.json and package-lock.json) into tests/oidc/node_modules
# (git-ignored) with `npm ci`, when it is missing or not the pinned version.
# Needs Node.js >= 20.19 and the npm registry. Exits non-zero on failure.
set -euo pipefail

DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

die() {
  echo "tests/oidc/install.sh: $*" >&2
  exit 1
}

command -v node >/dev/null || die "node is not installed (the machine's Node.js is required)"
command -v npm >/dev/null || die "npm is not installed"
node -e 'const [a, b] = process.versions.node.split(".").map(Number);
  process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)' ||
  die "Node.js $(node --version) is too old: oidc-provider 9 needs >= 20.19"

pinned=$(node -e 'const l = require(process.argv[1]);
  process.stdout.write(l.packages["node_modules/oidc-provider"].version)' \
  "${DIR}/package-lock.json") || die "cannot read the pinned version from ${DIR}/package-lock.json"
installed=""
if [[ -f ${DIR}/node_modules/oidc-provider/package.json ]]; then
  installed=$(node -e 'process.stdout.write(require(process.argv[1]).version)' \
    "${DIR}/node_modules/oidc-provider/package.json") || installed=""
fi
if [[ ${installed} != "${pinned}" ]]; then
  echo "tests/oidc/install.sh: installing oidc-provider ${pinned} into ${DIR}" >&2
  npm ci --prefix "${DIR}" --no-audit --no-fund --loglevel=error >&2 || die "npm ci failed"
fi
