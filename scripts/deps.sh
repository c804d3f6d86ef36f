#!/usr/bin/env bash
# Install (idempotently, quietly) every Debian 12 package needed to build,
# run and test the project. Safe to re-run: does nothing when all are present.
set -euo pipefail

# One package per line; edit here. "a|b": any one of them will do; when
# none is installed, the last (Debian's own) is installed.
PACKAGES=(
  build-essential
  pkg-config
  clang
  libclang-rt-dev  # libFuzzer, ASan/TSan runtimes for clang (make fuzz, make tsan-test)
  llvm            # llvm-profdata, llvm-cov: scripts/fuzz.sh cov
  clang-format
  libh2o-evloop-dev
  libssl-dev
  libpq-dev
  libhiredis-dev
  libjansson-dev
  libcurl4-openssl-dev  # JWKS fetches (and OTLP export)
  libsystemd-dev  # sd_notify: readiness and watchdog under systemd
  postgresql-15
  postgresql-client-15
  redis-server
  python3
  python3-pytest
  python3-requests
  python3-psycopg
  python3-jsonschema
  python3-h2             # HTTP/2 test clients
  python3-cryptography   # RS256/ES256 test tokens
  python3-yaml    # the workflow checks
  curl
  git             # the commit in `api --version`
  debhelper       # make deb
  fakeroot
  lintian
  systemd         # systemd-analyze: the unit checks
  strace          # the unit's system call filter check
  wrk
  prometheus      # for promtool
  nginx-light     # benchmark baseline
  hey             # open-loop load (bench/compare.sh)
  gnuplot-nox     # benchmark charts
  nodejs
  npm
  haproxy         # the local cluster (deploy/cluster.sh)
  pgbouncer
  docker-compose  # validates deploy/compose.yaml offline (no engine needed)
  graphviz        # docs/architecture diagram (dot)
  chromium        # the /docs page test (headless)
  'kubectl|kubernetes-client'  # kustomize renders deploy/k8s; either one will do
)

# The npm tooling pinned under tools/ (Redocly CLI 2.x) needs this Node.js;
# Debian 12's own nodejs is 18. A newer Node already on PATH (NodeSource,
# actions/setup-node) is used as it is.
NODE_MIN=20.19

# 0 when version $1 (like v20.20.2 or 20.19) is at least $2.
version_at_least() {
  local have=${1#v} want=$2
  [[ $(printf '%s\n%s\n' "${want}" "${have}" | sort -V | head -n 1) == "${want}" ]]
}

# Run a command as root: directly when root, else through sudo if present.
as_root() {
  if [[ ${EUID} -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    echo "deps.sh: need root (or sudo) to run: $*" >&2
    exit 1
  fi
}

# Names satisfied by an installed package's Provides (e.g. NodeSource's
# nodejs provides npm; installing Debian's npm on top of it would conflict).
provided=" "
while read -r line; do
  provided+="${line} "
done < <(dpkg-query -W -f='${db:Status-Abbrev}|${Provides}\n' 2>/dev/null \
  | awk -F'|' '$1 ~ /^ii/ && $2 != "" {
      n = split($2, p, /, */)
      for (i = 1; i <= n; i++) { sub(/ .*/, "", p[i]); print p[i] }
    }')

node_ok=0
if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 &&
  version_at_least "$(node --version 2>/dev/null)" "${NODE_MIN}"; then
  node_ok=1
fi

# Says which Node.js the tooling needs when the one found is older. Running
# the server needs no Node, so this warns rather than fails; the scripts that
# run the tooling fail.
check_node() {
  local v
  v=$(node --version 2>/dev/null || true)
  if [[ -z ${v} ]]; then
    echo "deps.sh: WARNING: no node on PATH: the npm tooling under tools/ needs Node.js >= ${NODE_MIN}" >&2
  elif ! version_at_least "${v}" "${NODE_MIN}"; then
    echo "deps.sh: WARNING: Node.js ${v#v} found ($(command -v node)), but the npm tooling under" \
      "tools/ (OpenAPI lint, workflow validator) needs Node.js >= ${NODE_MIN}; Debian 12's nodejs" \
      "is 18. Install Node.js 20 (NodeSource, or actions/setup-node in CI) and put it first on PATH." >&2
  fi
}

have() {
  local status
  status=$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)
  [[ ${status} == "install ok installed" || ${provided} == *" $1 "* ]]
}

missing=()
for entry in "${PACKAGES[@]}"; do
  if [[ ${node_ok} -eq 1 && (${entry} == nodejs || ${entry} == npm) ]]; then
    continue
  fi
  IFS='|' read -r -a alternatives <<<"${entry}"
  found=0
  for pkg in "${alternatives[@]}"; do
    if have "${pkg}"; then
      found=1
      break
    fi
  done
  if [[ ${found} -eq 0 ]]; then
    missing+=("${alternatives[-1]}")
  fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "deps: all dependencies present"
  check_node
  exit 0
fi

log=$(mktemp)
policy=/usr/sbin/policy-rc.d
own_policy=0
cleanup() {
  # Only remove the policy file if this script created it.
  if [[ ${own_policy} -eq 1 ]]; then
    as_root rm -f "${policy}"
  fi
  rm -f "${log}"
}
trap cleanup EXIT

# Exit code 101 tells invoke-rc.d/deb-systemd-invoke not to start services,
# so postgresql/redis/nginx/prometheus postinst scripts leave no daemons.
if [[ ! -e ${policy} ]]; then
  own_policy=1
  printf '#!/bin/sh\nexit 101\n' | as_root tee "${policy}" >/dev/null
  as_root chmod 755 "${policy}"
fi

if ! { as_root apt-get update -qq \
  && as_root env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${missing[@]}"; } \
  >"${log}" 2>&1; then
  echo "deps: apt-get failed installing: ${missing[*]}" >&2
  tail -n 40 "${log}" >&2
  exit 1
fi

echo "deps: installed ${missing[*]}"
check_node
