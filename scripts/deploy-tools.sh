#!/usr/bin/env bash
# The Node.js tools of the deploy-file checks, pinned in tools/deploy
# (package.json + package-lock.json) and installed there with `npm ci` when
# missing or not the pinned versions.
#
#   scripts/deploy-tools.sh dockerfile-lint FILE...   dockerfile-utils lint; exit 1 on findings
#   scripts/deploy-tools.sh k8s-check < objects.json  kubernetes-models schema check
#                                                     (tools/deploy/check-k8s.js)
#
# Node 20 or newer: kubernetes-models stays on 4.x (5.x needs Node 22).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOOLS="${ROOT}/tools/deploy"
PINNED=(dockerfile-utils kubernetes-models)

die() {
  echo "deploy-tools.sh: $*" >&2
  exit 2
}

[[ $# -ge 1 ]] || die "usage: $0 dockerfile-lint FILE... | k8s-check < objects.json"
command -v node >/dev/null || die "node is not installed (the machine's Node.js is required)"
command -v npm >/dev/null || die "npm is not installed"
major=$(node -p 'process.versions.node.split(".")[0]')
[[ ${major} -ge 20 ]] || die "Node ${major} is too old: these tools need Node 20 or newer"

# Installed versions equal to the lockfile's, else npm ci.
installed_ok() {
  local pkg pinned have
  for pkg in "${PINNED[@]}"; do
    pinned=$(node -e 'const l = require(process.argv[1]);
      process.stdout.write(l.packages["node_modules/" + process.argv[2]].version)' \
      "${TOOLS}/package-lock.json" "${pkg}") || die "cannot read ${pkg}'s pinned version"
    have=$(node -e 'try { process.stdout.write(require(process.argv[1]).version) } catch (e) {}' \
      "${TOOLS}/node_modules/${pkg}/package.json")
    [[ ${have} == "${pinned}" ]] || return 1
  done
}
if ! installed_ok; then
  echo "deploy-tools.sh: installing the pinned tools into ${TOOLS}" >&2
  npm ci --prefix "${TOOLS}" --no-audit --no-fund --loglevel=error >&2 || die "npm ci failed"
  installed_ok || die "npm ci did not install the pinned versions"
fi

cmd=$1
shift
case ${cmd} in
  dockerfile-lint)
    [[ $# -ge 1 ]] || die "dockerfile-lint needs files"
    rc=0
    for f in "$@"; do
      # dockerfile-utils prints findings and exits 1 on errors; warnings
      # alone print but exit 0, so any output counts as a finding here.
      out=$("${TOOLS}/node_modules/.bin/dockerfile-utils" lint "${f}" 2>&1) || rc=1
      if [[ -n ${out} ]]; then
        printf '%s:\n%s\n' "${f}" "${out}"
        rc=1
      fi
    done
    exit "${rc}"
    ;;
  k8s-check)
    exec node "${TOOLS}/check-k8s.js"
    ;;
  *) die "unknown command ${cmd}" ;;
esac
