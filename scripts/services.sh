#!/usr/bin/env bash
# Throwaway PostgreSQL 15 + Redis for local runs and tests.
#
#   services.sh start DIR      init (if needed) and start both, write DIR/env
#   services.sh stop DIR       stop both (idempotent)
#   services.sh status DIR     exit 0 if both run, 3 otherwise
#   services.sh pg-stop DIR | pg-start DIR | redis-stop DIR | redis-start DIR
#                              stop/restart one service, same port and data
#   services.sh destroy DIR    stop both and delete DIR (and any fallback dir)
#
# Layout: DIR/pg/{data,sock,log}, DIR/redis/{redis.pid,log}, DIR/pg.port,
# DIR/redis.port, DIR/env. As root, DIR/pg may be a symlink to a
# /tmp/api-pg.* directory when the postgres user cannot reach DIR.
set -euo pipefail

# Debian's versioned layout; initdb/pg_ctl/postgres are not on PATH.
PG_BIN=/usr/lib/postgresql/15/bin
PG_BASE_PORT=54320
REDIS_BASE_PORT=63790
# sun_path holds 108 bytes including the terminating NUL.
MAX_SOCKET_PATH=107

log() { echo "services.sh: $*" >&2; }
die() {
  log "$*"
  exit 1
}

usage() {
  echo "usage: $0 {start|stop|status|pg-start|pg-stop|redis-start|redis-stop|destroy} DIR" >&2
  exit 2
}

[[ $# -eq 2 ]] || usage
CMD=$1
case ${CMD} in
  start | stop | status | pg-start | pg-stop | redis-start | redis-stop | destroy) ;;
  *) usage ;;
esac
DIR_ARG=$2
[[ -n ${DIR_ARG} ]] || usage
if [[ ${CMD} == start ]]; then
  mkdir -p "${DIR_ARG}"
fi

# Absolute, symlink-free DIR; empty when it does not exist (nothing to do).
DIR=""
if [[ -d ${DIR_ARG} ]]; then
  DIR=$(cd "${DIR_ARG}" && pwd -P)
fi

IS_ROOT=0
if [[ ${EUID} -eq 0 ]]; then
  IS_ROOT=1
  # PostgreSQL refuses to run as root; run its tools as postgres instead.
  id -u postgres >/dev/null 2>&1 || die "running as root but there is no 'postgres' user"
fi

# Run a PostgreSQL server-side tool as the user that owns the cluster.
# cd / so the tool does not complain about an unreadable cwd (e.g. /root).
as_pg() {
  if [[ ${IS_ROOT} -eq 1 ]]; then
    (cd / && runuser -u postgres -- "$@")
  else
    (cd / && "$@")
  fi
}

# Print the first port in [start, start+count) that 127.0.0.1 can bind.
free_port_from() {
  python3 - "$1" "${2:-1000}" <<'PY'
import socket
import sys

start, count = int(sys.argv[1]), int(sys.argv[2])
for port in range(start, min(start + count, 65536)):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        continue
    finally:
        s.close()
    print(port)
    sys.exit(0)
sys.exit(1)
PY
}

port_is_free() { free_port_from "$1" 1 >/dev/null; }

read_file() { [[ -f $1 ]] && cat "$1"; }

# ---------------------------------------------------------------- PostgreSQL

# Resolve where the cluster lives (DIR/pg, or the fallback it links to).
PGROOT=""
set_pg_paths() {
  PGROOT=""
  if [[ -n ${DIR} && -e ${DIR}/pg ]]; then
    PGROOT=$(readlink -f "${DIR}/pg")
  fi
  PGDATA_DIR=${PGROOT:+${PGROOT}/data}
  PGSOCK=${PGROOT:+${PGROOT}/sock}
  PGLOG=${PGROOT:+${PGROOT}/log}
}

# Create DIR/pg (or a fallback reachable by postgres) with the right owner.
prepare_pg_root() {
  # A fallback under /tmp may have been cleaned (e.g. reboot): make a new one.
  if [[ -L ${DIR}/pg && ! -d ${DIR}/pg ]]; then
    rm -f "${DIR}/pg"
  fi
  if [[ ! -e ${DIR}/pg ]]; then
    local fallback=0
    if [[ ${IS_ROOT} -eq 1 ]]; then
      # Only DIR itself may be opened up; parents are left alone.
      chmod o+x "${DIR}"
      runuser -u postgres -- test -x "${DIR}" || fallback=1
    fi
    local sock_suffix="/pg/sock/.s.PGSQL.65535"
    if ((${#DIR} + ${#sock_suffix} > MAX_SOCKET_PATH)); then
      fallback=1
    fi
    if [[ ${fallback} -eq 1 ]]; then
      local tmp
      tmp=$(mktemp -d /tmp/api-pg.XXXXXXXX)
      ln -s "${tmp}" "${DIR}/pg"
      log "postgres cluster placed in ${tmp} (linked from ${DIR}/pg)"
    else
      mkdir "${DIR}/pg"
    fi
  elif [[ ${IS_ROOT} -eq 1 && ! -L ${DIR}/pg ]]; then
    chmod o+x "${DIR}"
  fi
  set_pg_paths
  mkdir -p "${PGSOCK}"
  chmod 700 "${PGSOCK}"
  if [[ ${IS_ROOT} -eq 1 ]]; then
    if [[ $(stat -c %U "${PGROOT}") != postgres || $(stat -c %U "${PGSOCK}") != postgres ]]; then
      chown -R postgres:postgres "${PGROOT}"
    fi
    runuser -u postgres -- test -w "${PGROOT}" ||
      die "postgres user cannot write ${PGROOT}"
  elif [[ ! -O ${PGROOT} ]]; then
    die "${PGROOT} belongs to another user (created as root?); run as that user or remove it"
  fi
  # pg_ctl passes -o through /bin/sh; a quote would break the -k argument.
  [[ ${PGSOCK} != *"'"* ]] || die "path must not contain a single quote: ${PGSOCK}"
}

init_pg() {
  [[ -f ${PGDATA_DIR}/PG_VERSION ]] && return 0
  # Superuser is always "postgres", whichever OS user runs this; local
  # socket connections are trusted (private socket dir), TCP needs passwords.
  if ! as_pg "${PG_BIN}/initdb" -D "${PGDATA_DIR}" -U postgres -E UTF8 --no-locale \
    --auth-local=trust --auth-host=scram-sha-256 --no-sync \
    >"${DIR}/initdb.log" 2>&1; then
    tail -n 20 "${DIR}/initdb.log" >&2
    die "initdb failed (full log: ${DIR}/initdb.log)"
  fi
}

pg_running() {
  [[ -n ${PGROOT} && -f ${PGDATA_DIR}/postmaster.pid ]] || return 1
  as_pg "${PG_BIN}/pg_ctl" status -D "${PGDATA_DIR}" >/dev/null 2>&1
}

# Fields of postmaster.pid: line 1 is the PID, line 4 the port.
pg_pid() { sed -n 1p "${PGDATA_DIR}/postmaster.pid"; }
pg_running_port() { sed -n 4p "${PGDATA_DIR}/postmaster.pid"; }

try_start_pg() {
  local port=$1
  local opts="-c listen_addresses=127.0.0.1 -p ${port} -k '${PGSOCK}'"
  # Durability is pointless for a throwaway cluster; speed matters. A
  # benchmark that wants real durability (fsync) sets SERVICES_DURABLE=1.
  if [[ ${SERVICES_DURABLE:-0} != 1 ]]; then
    opts+=" -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
  fi
  opts+=" -c max_connections=200"
  # Keep pg_ctl's complaint for the final failure report; a lost port race
  # is retried silently. postgres itself writes to PGLOG, not to this pipe.
  PG_CTL_OUT=$(as_pg "${PG_BIN}/pg_ctl" -D "${PGDATA_DIR}" -l "${PGLOG}" -w -t 30 -s start -o "${opts}" 2>&1)
}

pg_start_failed() {
  [[ -z ${PG_CTL_OUT:-} ]] || echo "${PG_CTL_OUT}" >&2
  tail -n 20 "${PGLOG}" >&2 || true
  die "postgres failed to start on port $1 (log: ${PGLOG})"
}

stop_pg() {
  set_pg_paths
  if pg_running; then
    as_pg "${PG_BIN}/pg_ctl" -D "${PGDATA_DIR}" -m fast -w -t 60 -s stop >&2
  fi
}

# Idempotently create the roles, the database and the schema rights.
setup_pg_roles() {
  "${PG_BIN}/psql" -X -q -v ON_ERROR_STOP=1 -h "${PGSOCK}" -p "$1" -U postgres -d postgres <<'SQL'
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'api_owner') THEN
    CREATE ROLE api_owner;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'api_app') THEN
    CREATE ROLE api_app;
  END IF;
END
$$;
-- Re-assert attributes each time so an old cluster matches this script.
ALTER ROLE api_owner WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE
  NOREPLICATION NOBYPASSRLS PASSWORD 'api_owner';
ALTER ROLE api_app WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE
  NOREPLICATION NOBYPASSRLS PASSWORD 'api_app';
SELECT 'CREATE DATABASE api OWNER api_owner'
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'api') \gexec
ALTER DATABASE api OWNER TO api_owner;
\connect api
-- Only the owner creates objects; the app gets table rights from migrations.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO api_app;
GRANT CREATE ON SCHEMA public TO api_owner;
SQL
}

# --------------------------------------------------------------------- Redis

set_redis_paths() {
  REDIS_DIR=${DIR:+${DIR}/redis}
  REDIS_PIDFILE=${REDIS_DIR:+${REDIS_DIR}/redis.pid}
  REDIS_LOG=${REDIS_DIR:+${REDIS_DIR}/log}
}

# True if PID exists and is not a zombie (an exited daemon can linger as a
# zombie until init reaps it; it no longer holds its port).
pid_alive() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [[ ${stat:0:1} != Z ]]
}

# PID from our pidfile, only if it is alive and really a redis-server
# (guards against a recycled PID).
redis_pid() {
  local pid comm
  [[ -n ${REDIS_PIDFILE} && -f ${REDIS_PIDFILE} ]] || return 1
  pid=$(<"${REDIS_PIDFILE}")
  [[ ${pid} =~ ^[0-9]+$ ]] && pid_alive "${pid}" || return 1
  comm=$(cat "/proc/${pid}/comm" 2>/dev/null) || return 1
  [[ ${comm} == redis-server* ]] || return 1
  echo "${pid}"
}

redis_running() { redis_pid >/dev/null; }

# Port the running redis actually listens on, from its own INFO.
redis_info_field() {
  redis-cli -h 127.0.0.1 -p "$1" info server 2>/dev/null |
    tr -d '\r' | awk -F: -v k="$2" '$1 == k { print $2 }'
}

try_start_redis() {
  local port=$1 before i pid
  before=0
  if [[ -f ${REDIS_LOG} ]]; then before=$(wc -l <"${REDIS_LOG}"); fi
  rm -f "${REDIS_PIDFILE}"
  redis-server --bind 127.0.0.1 --port "${port}" --save "" --appendonly no \
    --daemonize yes --pidfile "${REDIS_PIDFILE}" --logfile "${REDIS_LOG}" \
    --dir "${REDIS_DIR}" >/dev/null || return 1
  for ((i = 0; i < 100; i++)); do
    # PONG alone could come from someone else's redis on that port, so
    # also check that the answering process is the one in our pidfile.
    if pid=$(redis_pid) &&
      [[ $(redis-cli -h 127.0.0.1 -p "${port}" ping 2>/dev/null) == PONG ]] &&
      [[ $(redis_info_field "${port}" process_id) == "${pid}" ]]; then
      return 0
    fi
    if tail -n "+$((before + 1))" "${REDIS_LOG}" 2>/dev/null |
      grep -q -e 'Could not create server TCP listening socket' -e 'Failed listening on port'; then
      return 1
    fi
    sleep 0.1
  done
  return 1
}

redis_start_failed() {
  tail -n 20 "${REDIS_LOG}" >&2 || true
  die "redis failed to start on port $1 (log: ${REDIS_LOG})"
}

stop_redis() {
  set_redis_paths
  local pid i
  pid=$(redis_pid) || {
    rm -f "${REDIS_PIDFILE:-/nonexistent}"
    return 0
  }
  kill -TERM "${pid}"
  for ((i = 0; i < 100; i++)); do
    pid_alive "${pid}" || break
    sleep 0.1
  done
  if pid_alive "${pid}"; then
    log "redis (pid ${pid}) ignored SIGTERM; killing"
    kill -KILL "${pid}" 2>/dev/null || true
  fi
  rm -f "${REDIS_PIDFILE}"
}

# ----------------------------------------------------------------- env file

# Percent-encode a path for use as a URI query value (bytewise).
urlencode() {
  local LC_ALL=C s=$1 out="" c i
  for ((i = 0; i < ${#s}; i++)); do
    c=${s:i:1}
    case ${c} in
      [A-Za-z0-9/._~-]) out+=${c} ;;
      *) printf -v c '%%%02X' "'${c}" && out+=${c} ;;
    esac
  done
  printf '%s' "${out}"
}

# export NAME='value' with embedded single quotes escaped; easy to parse too.
env_line() {
  local v=${2//\'/\'\\\'\'}
  printf "export %s='%s'\n" "$1" "${v}"
}

write_env() {
  local pgport=$1 redisport=$2 tmp="${DIR}/env.tmp"
  {
    env_line PGHOST "${PGSOCK}"
    env_line PGPORT "${pgport}"
    env_line REDIS_PORT "${redisport}"
    env_line DATABASE_URL "postgresql://api_app:api_app@127.0.0.1:${pgport}/api"
    env_line DATABASE_MIGRATION_URL "postgresql://api_owner:api_owner@127.0.0.1:${pgport}/api"
    env_line DATABASE_ADMIN_URL "postgresql://postgres@/postgres?host=$(urlencode "${PGSOCK}")&port=${pgport}"
    env_line REDIS_URL "redis://127.0.0.1:${redisport}/0"
    env_line SERVICES_DIR "${DIR}"
  } >"${tmp}"
  mv -f "${tmp}" "${DIR}/env"
  cat "${DIR}/env"
}

# ----------------------------------------------------------------- commands

# Choose a port: explicit env value, else the recorded one if still free,
# else the first free one from the base. Prints "port pinned".
choose_port() {
  local env_port=$1 recorded=$2 base=$3
  if [[ -n ${env_port} ]]; then
    echo "${env_port} 1"
  elif [[ -n ${recorded} ]] && port_is_free "${recorded}"; then
    echo "${recorded} 0"
  else
    echo "$(free_port_from "${base}") 0"
  fi
}

cmd_start() {
  mkdir -p "${DIR}/redis"
  prepare_pg_root
  init_pg

  local port pinned attempt
  if pg_running; then
    port=$(pg_running_port)
  else
    read -r port pinned < <(choose_port "${PGPORT:-}" "$(read_file "${DIR}/pg.port")" "${PG_BASE_PORT}")
    [[ -n ${port} ]] || die "no free port for postgres"
    # Another run may grab the same free port between probe and bind: retry.
    for ((attempt = 1; ; attempt++)); do
      try_start_pg "${port}" && break
      if [[ ${pinned} -eq 1 || ${attempt} -ge 5 ]]; then
        pg_start_failed "${port}"
      fi
      port=$(free_port_from $((port + 1))) || die "no free port for postgres"
    done
  fi
  if [[ -n ${PGPORT:-} && ${PGPORT} != "${port}" ]]; then
    log "postgres already running on port ${port}; ignoring PGPORT=${PGPORT}"
  fi
  echo "${port}" >"${DIR}/pg.port"
  setup_pg_roles "${port}"

  set_redis_paths
  local rport rpinned
  if redis_running; then
    rport=$(read_file "${DIR}/redis.port")
  else
    read -r rport rpinned < <(choose_port "${REDIS_PORT:-}" "$(read_file "${DIR}/redis.port")" "${REDIS_BASE_PORT}")
    [[ -n ${rport} ]] || die "no free port for redis"
    for ((attempt = 1; ; attempt++)); do
      try_start_redis "${rport}" && break
      stop_redis
      if [[ ${rpinned} -eq 1 || ${attempt} -ge 5 ]]; then
        redis_start_failed "${rport}"
      fi
      rport=$(free_port_from $((rport + 1))) || die "no free port for redis"
    done
  fi
  if [[ -n ${REDIS_PORT:-} && ${REDIS_PORT} != "${rport}" ]]; then
    log "redis already running on port ${rport}; ignoring REDIS_PORT=${REDIS_PORT}"
  fi
  echo "${rport}" >"${DIR}/redis.port"

  write_env "${port}" "${rport}"
}

cmd_pg_start() {
  set_pg_paths
  [[ -n ${PGROOT} && -f ${PGDATA_DIR}/PG_VERSION ]] || die "no cluster in ${DIR_ARG}; run 'start' first"
  pg_running && return 0
  local port
  port=$(read_file "${DIR}/pg.port") || die "no recorded postgres port; run 'start' first"
  try_start_pg "${port}" || pg_start_failed "${port}"
}

cmd_redis_start() {
  set_redis_paths
  [[ -n ${DIR} && -d ${REDIS_DIR} ]] || die "no redis dir in ${DIR_ARG}; run 'start' first"
  redis_running && return 0
  local port
  port=$(read_file "${DIR}/redis.port") || die "no recorded redis port; run 'start' first"
  if ! try_start_redis "${port}"; then
    stop_redis
    redis_start_failed "${port}"
  fi
}

cmd_status() {
  local ok=0
  set_pg_paths
  set_redis_paths
  if pg_running; then
    echo "postgres: running (pid $(pg_pid), port $(pg_running_port), data ${PGDATA_DIR})"
  else
    echo "postgres: stopped"
    ok=3
  fi
  if redis_running; then
    echo "redis: running (pid $(redis_pid), port $(read_file "${DIR}/redis.port"))"
  else
    echo "redis: stopped"
    ok=3
  fi
  return "${ok}"
}

cmd_stop() {
  [[ -n ${DIR} ]] || return 0
  stop_redis
  stop_pg
}

# Stop everything and delete DIR, refusing if DIR holds anything this script
# did not create (protects against a mistyped DIR such as $HOME).
cmd_destroy() {
  [[ -n ${DIR} ]] || return 0
  local entry name target=""
  for entry in "${DIR}"/* "${DIR}"/.[!.]*; do
    [[ -e ${entry} || -L ${entry} ]] || continue
    name=${entry##*/}
    case ${name} in
      pg | redis | env | env.tmp | pg.port | redis.port | initdb.log) ;;
      *) die "refusing to delete ${DIR}: it contains ${name}" ;;
    esac
  done
  cmd_stop
  if [[ -L ${DIR}/pg ]]; then
    target=$(readlink "${DIR}/pg")
  fi
  if [[ ${target} == /tmp/api-pg.* ]]; then
    rm -rf -- "${target}"
  fi
  rm -rf -- "${DIR}"
}

set_pg_paths
set_redis_paths
case ${CMD} in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  pg-start) cmd_pg_start ;;
  pg-stop) [[ -z ${DIR} ]] || stop_pg ;;
  redis-start) cmd_redis_start ;;
  redis-stop) [[ -z ${DIR} ]] || stop_redis ;;
  destroy) cmd_destroy ;;
esac
