#!/usr/bin/env bash
# Installs the reference's pinned packages (package-lock.json) into
# node_modules with `npm ci` when they are missing or differ from the lock.
# Needs Node.js >= 20 and npm.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
die() {
  echo "install.sh: $*" >&2
  exit 1
}
command -v node >/dev/null || die "node is not installed (Node.js 20 or newer is required)"
command -v npm >/dev/null || die "npm is not installed"
major=$(node -p 'process.versions.node.split(".")[0]')
((major >= 20)) || die "Node.js $(node --version) is too old: Fastify 5 needs 20 or newer"

# npm ci records the installed tree in node_modules/.package-lock.json; when
# it matches the committed lock, there is nothing to do.
if [[ -f ${HERE}/node_modules/.package-lock.json ]] &&
  node -e '
    const a = require(process.argv[1]).packages, b = require(process.argv[2]).packages;
    for (const [k, v] of Object.entries(a)) {
      if (k === "") continue;
      if (!b[k] || b[k].version !== v.version) process.exit(1);
    }' "${HERE}/package-lock.json" "${HERE}/node_modules/.package-lock.json" 2>/dev/null; then
  exit 0
fi
echo "install.sh: installing the Fastify reference's packages (npm ci)" >&2
npm ci --prefix "${HERE}" --no-audit --no-fund --loglevel=error >&2 || die "npm ci failed"
