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
  clang-format
  libh2o-evloop-dev
  libssl-dev
  libpq-dev
  libhiredis-dev
  libjansson-dev
  libcurl4-openssl-dev
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
  curl
  wrk
  prometheus      # for promtool
  nginx-light     # benchmark baseline
  nodejs
  npm
  haproxy         # the local cluster (deploy/cluster.sh)
  pgbouncer
  docker-compose  # validates deploy/compose.yaml offline (no engine needed)
  graphviz        # docs/architecture diagram (dot)
  chromium        # the /docs page test (headless)
  python3-yaml    # deploy-file checks
  'kubectl|kubernetes-client'  # kustomize renders deploy/k8s; either one will do
)

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

have() {
  local status
  status=$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)
  [[ ${status} == "install ok installed" || ${provided} == *" $1 "* ]]
}

missing=()
for entry in "${PACKAGES[@]}"; do
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
