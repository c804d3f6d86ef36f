#!/usr/bin/env bash
# The local cluster: three api instances behind HAProxy, PgBouncer in front
# of one PostgreSQL, and one Redis, all on 127.0.0.1. Every process is
# started by this script and stopped by its PID (checked against the start
# time the script recorded, so a recycled PID is never signalled).
#
#   deploy/cluster.sh up [DIR]              start everything (DIR: .cluster)
#   deploy/cluster.sh down [DIR]            stop everything and delete DIR
#   deploy/cluster.sh status [DIR]          what runs; exit 0 if all is up, 3 if not
#   deploy/cluster.sh restart N [DIR]       restart instance N (1..3) as a rolling
#                                           restart does: SIGTERM, HAProxy marks it
#                                           DOWN, it drains and exits, a new process
#                                           on the same port, HAProxy marks it UP
#   deploy/cluster.sh rolling-restart [DIR] restart every instance in turn
#
# `up` writes DIR/env (source it): CLUSTER_URL (HAProxy), CLUSTER_METRICS_URL
# (HAProxy's Prometheus exporter and stats page), API1_URL..API3_URL,
# DATABASE_URL (direct), PGBOUNCER_URL, REDIS_URL, JWT_SECRET, CURSOR_SECRET.
#
# Settings, from the environment when `up` runs (kept in DIR for restarts):
#   API_BIN                 server binary (build/api)
#   CLUSTER_PORT            HAProxy's port for clients (8080)
#   CLUSTER_METRICS_PORT    HAProxy's /metrics and /stats (8405)
#   CLUSTER_API_PORTS       the three instances' ports ("3001 3002 3003")
#   CLUSTER_PGBOUNCER_PORT  PgBouncer (6432)
#   PGBOUNCER_POOL_MODE     transaction (default) or session
#   WORKERS, DATABASE_POOL_SIZE, SHUTDOWN_DELAY_MS, SHUTDOWN_GRACE_MS and any
#   other server variable are passed to the instances (defaults below).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEPLOY="${ROOT}/deploy"
SERVICES="${ROOT}/scripts/services.sh"
NINSTANCES=3

log() { echo "cluster.sh: $*" >&2; }
die() {
  log "$*"
  exit 1
}

usage() {
  echo "usage: $0 {up|down|status|rolling-restart} [DIR] | restart N [DIR]" >&2
  exit 2
}

[[ $# -ge 1 ]] || usage
CMD=$1
shift
INSTANCE=""
if [[ ${CMD} == restart ]]; then
  [[ $# -ge 1 && $1 =~ ^[1-9]$ && $1 -le ${NINSTANCES} ]] || usage
  INSTANCE=$1
  shift
fi
[[ $# -le 1 ]] || usage
DIR_ARG=${1:-${ROOT}/.cluster}
case ${CMD} in
  up) mkdir -p "${DIR_ARG}" ;;
  down | status | restart | rolling-restart) ;;
  *) usage ;;
esac
DIR=""
if [[ -d ${DIR_ARG} ]]; then
  DIR=$(cd "${DIR_ARG}" && pwd -P)
fi

# ------------------------------------------------------------ processes

# Field 22 of /proc/PID/stat: the start time in clock ticks since boot.
proc_start_time() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  # after "pid (comm) ", fields start at 3 (state)
  read -r -a f <<<"${stat}"
  [[ ${f[0]} != Z ]] || return 1
  echo "${f[19]}"
}

# NAME's pid if it is the process this script started, else nothing.
pid_of() {
  local file="${DIR}/$1.pid" pid start
  [[ -n ${DIR} && -f ${file} ]] || return 1
  read -r pid start <"${file}" || return 1
  [[ ${pid} =~ ^[0-9]+$ ]] || return 1
  [[ $(proc_start_time "${pid}") == "${start}" ]] || return 1
  echo "${pid}"
}

# spawn NAME LOG CMD...: runs CMD in the background in its own session and
# records "pid start-time" in DIR/NAME.pid.
spawn() {
  local name=$1 logfile=$2
  shift 2
  # A non-interactive shell's background job is no process group leader,
  # so setsid does not fork and $! is the command's own PID.
  setsid "$@" >>"${logfile}" 2>&1 </dev/null &
  local pid=$!
  local start=""
  for _ in $(seq 50); do
    start=$(proc_start_time "${pid}") && break
    sleep 0.01
  done
  [[ -n ${start} ]] || die "${name} exited at once (log: ${logfile})"
  echo "${pid} ${start}" >"${DIR}/${name}.pid"
}

# stop NAME SIGNAL TIMEOUT_S: signals the process and waits for it to go;
# SIGKILL after the timeout.
stop() {
  signal_proc "$1" "$2"
  await_exit "$1" "$3"
}

signal_proc() {
  local pid
  pid=$(pid_of "$1") || return 0
  kill "-$2" "${pid}" 2>/dev/null || true
}

await_exit() {
  local name=$1 timeout=$2 pid i
  pid=$(pid_of "${name}") || {
    rm -f "${DIR}/${name}.pid"
    return 0
  }
  for ((i = 0; i < timeout * 20; i++)); do
    pid_of "${name}" >/dev/null || break
    sleep 0.05
  done
  if pid_of "${name}" >/dev/null; then
    log "${name} (pid ${pid}) still running ${timeout}s after it was told to stop; killing"
    kill -KILL "${pid}" 2>/dev/null || true
    sleep 0.1
  fi
  rm -f "${DIR}/${name}.pid"
}

# ------------------------------------------------------------ settings

# Instance i's port (1-based).
api_port() {
  local ports
  read -r -a ports <<<"${CLUSTER_API_PORTS}"
  echo "${ports[$(($1 - 1))]}"
}

# Written by `up`, read by every later command: the cluster keeps the
# binary, ports and settings it was started with.
load_settings() {
  [[ -n ${DIR} && -f ${DIR}/settings ]] || die "no cluster in ${DIR_ARG} (run: $0 up ${DIR_ARG})"
  # shellcheck source=/dev/null
  source "${DIR}/settings"
}

save_settings() {
  local secret_jwt secret_cursor
  secret_jwt=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
  secret_cursor=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
  API_BIN=${API_BIN:-${ROOT}/build/api}
  [[ ${API_BIN} == /* ]] || API_BIN="${PWD}/${API_BIN}"
  [[ -x ${API_BIN} ]] || die "${API_BIN} not found or not executable (run make)"
  {
    printf 'API_BIN=%q\n' "${API_BIN}"
    printf 'CLUSTER_PORT=%q\n' "${CLUSTER_PORT:-8080}"
    printf 'CLUSTER_METRICS_PORT=%q\n' "${CLUSTER_METRICS_PORT:-8405}"
    printf 'CLUSTER_API_PORTS=%q\n' "${CLUSTER_API_PORTS:-3001 3002 3003}"
    printf 'CLUSTER_PGBOUNCER_PORT=%q\n' "${CLUSTER_PGBOUNCER_PORT:-6432}"
    printf 'PGBOUNCER_POOL_MODE=%q\n' "${PGBOUNCER_POOL_MODE:-transaction}"
    printf 'JWT_SECRET_VALUE=%q\n' "${JWT_SECRET:-${secret_jwt}}"
    printf 'CURSOR_SECRET_VALUE=%q\n' "${CURSOR_SECRET:-${secret_cursor}}"
  } >"${DIR}/settings"
  load_settings
  local ports
  read -r -a ports <<<"${CLUSTER_API_PORTS}"
  [[ ${#ports[@]} -eq ${NINSTANCES} ]] || die "CLUSTER_API_PORTS needs ${NINSTANCES} ports"
  [[ ${PGBOUNCER_POOL_MODE} == transaction || ${PGBOUNCER_POOL_MODE} == session ]] ||
    die "PGBOUNCER_POOL_MODE must be transaction or session"
}

# The value of KEY in deploy/pgbouncer/pooling.ini.
pooling_setting() {
  awk -F= -v k="$1" '$1 ~ "^[ \t]*" k "[ \t]*$" { gsub(/[ \t]/, "", $2); print $2 }' \
    "${DEPLOY}/pgbouncer/pooling.ini" | tail -n 1
}

# The environment every instance starts with (a file of `export` lines, so
# a restarted instance gets exactly what the first one had). The caller's
# values win over these defaults.
write_instance_env() {
  local pgb_url=$1 tmp="${DIR}/instance.env.tmp"
  local max_conns
  max_conns=$(pooling_setting default_pool_size)
  {
    # Pass through what the caller set for the server, then the defaults.
    env | grep -E '^(WORKERS|DATABASE_[A-Z_]+|REDIS_[A-Z_]+|RATE_LIMIT_[A-Z_]+|CACHE_TTL_S|IDEMPOTENCY_TTL_S|REQUEST_TIMEOUT_MS|SHUTDOWN_[A-Z_]+|HEADER_TIMEOUT_MS|MAX_[A-Z_]+|LOG_LEVEL|JWT_[A-Z_]+|BREAKER_[A-Z_]+|OTEL_[A-Z_]+|TRUSTED_PROXIES|ASAN_OPTIONS|LSAN_OPTIONS|UBSAN_OPTIONS)=' |
      grep -vE '^(DATABASE_URL|DATABASE_MIGRATION_URL|DATABASE_ADMIN_URL|REDIS_URL|REDIS_PORT|JWT_SECRET|CURSOR_SECRET)=' |
      while IFS='=' read -r k v; do printf 'export %s=%q\n' "${k}" "${v}"; done || true
    printf 'export HOST=127.0.0.1\n'
    printf 'export DATABASE_URL=%q\n' "${pgb_url}"
    printf 'export REDIS_URL=%q\n' "${REDIS_URL}"
    printf 'export JWT_SECRET=%q\n' "${JWT_SECRET_VALUE}"
    printf 'export CURSOR_SECRET=%q\n' "${CURSOR_SECRET_VALUE}"
    printf 'export WORKERS=${WORKERS:-2}\n'
    printf 'export DATABASE_POOL_SIZE=${DATABASE_POOL_SIZE:-4}\n'
    # Three instances share PgBouncer's server connections (pool sizing).
    printf 'export DATABASE_INSTANCES=${DATABASE_INSTANCES:-%d}\n' "${NINSTANCES}"
    printf 'export DATABASE_MAX_CONNECTIONS=${DATABASE_MAX_CONNECTIONS:-%d}\n' "${max_conns}"
    # PgBouncer in transaction mode has no named prepared statements.
    if [[ ${PGBOUNCER_POOL_MODE} == transaction ]]; then
      printf 'export DATABASE_PREPARED=${DATABASE_PREPARED:-0}\n'
    fi
    # Longer than HAProxy needs to mark a draining instance DOWN
    # (deploy/haproxy/haproxy.cfg: 1.75 s at most).
    printf 'export SHUTDOWN_DELAY_MS=${SHUTDOWN_DELAY_MS:-2500}\n'
    printf 'export SHUTDOWN_GRACE_MS=${SHUTDOWN_GRACE_MS:-10000}\n'
    printf 'export TRUSTED_PROXIES=${TRUSTED_PROXIES:-127.0.0.1/32}\n'
    printf 'export LOG_LEVEL=${LOG_LEVEL:-info}\n'
  } >"${tmp}"
  mv -f "${tmp}" "${DIR}/instance.env"
}

# ------------------------------------------------------------ components

http_status() {
  curl -s -o /dev/null -m 2 -w '%{http_code}' "$1" 2>/dev/null || true
}

# wait_for DESCRIPTION TIMEOUT_S CMD...: polls CMD every 50 ms.
wait_for() {
  local what=$1 timeout=$2 i
  shift 2
  for ((i = 0; i < timeout * 20; i++)); do
    if "$@"; then
      return 0
    fi
    sleep 0.05
  done
  log "timed out after ${timeout}s waiting for ${what}"
  return 1
}

instance_ready() { [[ $(http_status "http://127.0.0.1:$(api_port "$1")/health/ready") == 200 ]]; }

start_instance() {
  local i=$1 port
  port=$(api_port "$i")
  mkdir -p "${DIR}/api${i}"
  # shellcheck disable=SC2016
  spawn "api${i}" "${DIR}/api${i}/log" env -i PATH="${PATH}" bash -c \
    'set -a; source "$1"; export PORT="$2"; exec "$3" serve' _ "${DIR}/instance.env" "${port}" "${API_BIN}"
  if ! wait_for "api${i} (port ${port}) to be ready" 30 instance_ready "$i"; then
    tail -n 20 "${DIR}/api${i}/log" >&2 || true
    return 1
  fi
}

# How long an instance may take to exit after SIGTERM.
instance_stop_timeout() {
  local delay grace
  # shellcheck source=/dev/null
  delay=$(source "${DIR}/instance.env" && echo "${SHUTDOWN_DELAY_MS}")
  # shellcheck source=/dev/null
  grace=$(source "${DIR}/instance.env" && echo "${SHUTDOWN_GRACE_MS}")
  echo $(((delay + grace) / 1000 + 5))
}

start_pgbouncer() {
  local dir="${DIR}/pgbouncer"
  mkdir -p "${dir}"
  # PgBouncer refuses to run as root; as root it runs as postgres (which
  # services.sh already needs), and that user must read the files.
  local as_user=()
  if [[ ${EUID} -eq 0 ]]; then
    as_user=(-u postgres)
  fi
  cat >"${dir}/pgbouncer.ini" <<EOF
;; Written by deploy/cluster.sh for the local cluster.
[databases]
api = host=127.0.0.1 port=${PGPORT} dbname=api

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = ${CLUSTER_PGBOUNCER_PORT}
unix_socket_dir =
auth_type = scram-sha-256
auth_file = ${dir}/userlist.txt
logfile =
pidfile =
%include ${DEPLOY}/pgbouncer/pooling.ini
pool_mode = ${PGBOUNCER_POOL_MODE}
EOF
  # The dev passwords scripts/services.sh gives the roles.
  printf '"api_app" "api_app"\n"api_owner" "api_owner"\n' >"${dir}/userlist.txt"
  chmod 600 "${dir}/userlist.txt"
  if [[ ${EUID} -eq 0 ]]; then
    chown -R postgres: "${dir}"
  fi
  spawn pgbouncer "${dir}/log" pgbouncer "${as_user[@]}" "${dir}/pgbouncer.ini"
  wait_for "PgBouncer on port ${CLUSTER_PGBOUNCER_PORT}" 10 \
    bash -c "exec 3<>/dev/tcp/127.0.0.1/${CLUSTER_PGBOUNCER_PORT}" 2>/dev/null || {
    tail -n 20 "${dir}/log" >&2
    return 1
  }
}

start_haproxy() {
  mkdir -p "${DIR}/haproxy"
  HAPROXY_BIND="127.0.0.1:${CLUSTER_PORT}" HAPROXY_METRICS_BIND="127.0.0.1:${CLUSTER_METRICS_PORT}" \
    API1_ADDR="127.0.0.1:$(api_port 1)" API2_ADDR="127.0.0.1:$(api_port 2)" \
    API3_ADDR="127.0.0.1:$(api_port 3)" \
    spawn haproxy "${DIR}/haproxy/log" haproxy -db -f "${DEPLOY}/haproxy/haproxy.cfg"
  local i
  for ((i = 1; i <= NINSTANCES; i++)); do
    wait_for "HAProxy to mark api${i} UP" 15 haproxy_state_is "api${i}" UP || {
      tail -n 20 "${DIR}/haproxy/log" >&2
      return 1
    }
  done
}

# HAProxy's view of a server (UP, DOWN, "UP 1/2", MAINT, ...), from the CSV
# of its stats page.
haproxy_state() {
  curl -s -m 2 "http://127.0.0.1:${CLUSTER_METRICS_PORT}/stats;csv" 2>/dev/null |
    awk -F, -v s="$1" '$1 == "api" && $2 == s { print $18 }'
}

haproxy_state_is() { [[ $(haproxy_state "$1") == "$2" ]]; }

write_env() {
  local tmp="${DIR}/env.tmp" i
  {
    printf 'export CLUSTER_URL=%q\n' "http://127.0.0.1:${CLUSTER_PORT}"
    printf 'export CLUSTER_METRICS_URL=%q\n' "http://127.0.0.1:${CLUSTER_METRICS_PORT}"
    for ((i = 1; i <= NINSTANCES; i++)); do
      printf 'export API%d_URL=%q\n' "$i" "http://127.0.0.1:$(api_port "$i")"
    done
    printf 'export DATABASE_URL=%q\n' "${DATABASE_URL}"
    printf 'export DATABASE_ADMIN_URL=%q\n' "${DATABASE_ADMIN_URL}"
    printf 'export PGBOUNCER_URL=%q\n' "$1"
    printf 'export REDIS_URL=%q\n' "${REDIS_URL}"
    printf 'export JWT_SECRET=%q\n' "${JWT_SECRET_VALUE}"
    printf 'export CURSOR_SECRET=%q\n' "${CURSOR_SECRET_VALUE}"
  } >"${tmp}"
  mv -f "${tmp}" "${DIR}/env"
}

# ------------------------------------------------------------ commands

cmd_up() {
  if [[ -f ${DIR}/settings ]]; then
    load_settings
  else
    save_settings
  fi
  command -v haproxy >/dev/null || die "haproxy is not installed (scripts/deps.sh)"
  command -v pgbouncer >/dev/null || die "pgbouncer is not installed (scripts/deps.sh)"

  # PostgreSQL and Redis: unset what a sourced env of another run left.
  (unset PGHOST PGPORT REDIS_PORT SERVICES_DIR && "${SERVICES}" start "${DIR}/services" >/dev/null)
  # shellcheck source=/dev/null
  source "${DIR}/services/env"
  # Migrations run directly against PostgreSQL: their advisory lock is a
  # session lock, which transaction pooling would not keep.
  "${API_BIN}" migrate >"${DIR}/migrate.log" 2>&1 || {
    cat "${DIR}/migrate.log" >&2
    die "migrate failed"
  }

  pid_of pgbouncer >/dev/null || start_pgbouncer
  local pgb_url="postgresql://api_app:api_app@127.0.0.1:${CLUSTER_PGBOUNCER_PORT}/api"
  write_instance_env "${pgb_url}"
  local i
  for ((i = 1; i <= NINSTANCES; i++)); do
    pid_of "api${i}" >/dev/null || start_instance "$i"
  done
  pid_of haproxy >/dev/null || start_haproxy
  write_env "${pgb_url}"
  log "up: http://127.0.0.1:${CLUSTER_PORT} (HAProxy), instances on ports ${CLUSTER_API_PORTS}," \
    "PgBouncer (${PGBOUNCER_POOL_MODE} pooling) on ${CLUSTER_PGBOUNCER_PORT}; source ${DIR}/env"
}

cmd_down() {
  [[ -n ${DIR} ]] || return 0
  local entry
  for entry in "${DIR}"/* "${DIR}"/.[!.]*; do
    [[ -e ${entry} || -L ${entry} ]] || continue
    case ${entry##*/} in
      services | pgbouncer | haproxy | api[1-9] | settings | env | instance.env | migrate.log | *.pid | *.tmp) ;;
      *) die "refusing to delete ${DIR}: it contains ${entry##*/}" ;;
    esac
  done
  stop haproxy TERM 10
  local i
  # All instances drain at once.
  for ((i = 1; i <= NINSTANCES; i++)); do
    signal_proc "api${i}" TERM
  done
  if [[ -f ${DIR}/instance.env ]]; then
    for ((i = 1; i <= NINSTANCES; i++)); do
      await_exit "api${i}" "$(instance_stop_timeout)"
    done
  fi
  stop pgbouncer TERM 10
  "${SERVICES}" destroy "${DIR}/services"
  rm -rf -- "${DIR}"
}

cmd_status() {
  load_settings
  local rc=0 i pid
  for name in pgbouncer api1 api2 api3 haproxy; do
    if pid=$(pid_of "${name}"); then
      case ${name} in
        api*)
          i=${name#api}
          echo "${name}: running (pid ${pid}, port $(api_port "$i"), readiness" \
            "$(http_status "http://127.0.0.1:$(api_port "$i")/health/ready"), HAProxy: $(haproxy_state "${name}"))"
          ;;
        *) echo "${name}: running (pid ${pid})" ;;
      esac
    else
      echo "${name}: stopped"
      rc=3
    fi
  done
  "${SERVICES}" status "${DIR}/services" || rc=3
  return "${rc}"
}

# The steps of a rolling restart for one instance, each bounded in time.
cmd_restart() {
  load_settings
  local i=$1 name="api$1" pid delay
  pid=$(pid_of "${name}") || die "${name} is not running"
  # shellcheck source=/dev/null
  delay=$(source "${DIR}/instance.env" && echo "${SHUTDOWN_DELAY_MS}")
  log "${name}: SIGTERM (pid ${pid})"
  kill -TERM "${pid}"
  # HAProxy must see the 503 while the instance still serves everything.
  wait_for "HAProxy to mark ${name} DOWN within SHUTDOWN_DELAY_MS (${delay} ms)" \
    $(((delay + 999) / 1000)) haproxy_state_is "${name}" DOWN ||
    die "HAProxy still sends ${name} traffic: raise SHUTDOWN_DELAY_MS"
  await_exit "${name}" "$(instance_stop_timeout)"
  start_instance "${i}"
  wait_for "HAProxy to mark ${name} UP" 15 haproxy_state_is "${name}" UP ||
    die "${name} restarted but HAProxy does not send it traffic"
  log "${name}: restarted (pid $(pid_of "${name}"))"
}

cmd_rolling_restart() {
  local i
  for ((i = 1; i <= NINSTANCES; i++)); do
    cmd_restart "$i"
  done
}

case ${CMD} in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  restart) cmd_restart "${INSTANCE}" ;;
  rolling-restart) cmd_rolling_restart ;;
esac
