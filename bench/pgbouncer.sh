#!/usr/bin/env bash
# The cost of PgBouncer-safe statements and of PgBouncer itself, one server
# (2 workers, pool of 4) at a time, back to back:
#   direct    + prepared  (DATABASE_PREPARED=1, the default)
#   direct    + unnamed   (DATABASE_PREPARED=0)
#   PgBouncer + unnamed   (transaction pooling, deploy/pgbouncer/pooling.ini)
#   PgBouncer + prepared  (session pooling: the only mode where it works)
# for GET /v1/users/{id} uncached and POST /v1/users. Prints req/s, p99 and
# the CPU each request cost the server, PostgreSQL's backends and PgBouncer
# (from /proc, before and after each run).
#
#   bench/pgbouncer.sh [ROUNDS] [SECONDS]      (defaults: 3, 10)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROUNDS=${1:-3}
SECS=${2:-10}
N=10000
PGB_PORT=3941
bench_services
bench_seed 1 $N
export BENCH_TOKEN IDS_FILE="$BENCH_TMP/ids"
BENCH_TOKEN=$(bench_token)
WRK=(-t2 -c64 "-d${SECS}s" --latency)

# PgBouncer with the shared pooling settings; MODE is transaction or session.
PGB_PID=""
pgbouncer_start() {
    local mode=$1 dir="$BENCH_TMP/pgbouncer-$1"
    mkdir -p "$dir"
    cat >"$dir/pgbouncer.ini" <<EOF
[databases]
api = host=127.0.0.1 port=$PGPORT dbname=api
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $PGB_PORT
unix_socket_dir =
auth_type = scram-sha-256
auth_file = $dir/userlist.txt
logfile =
pidfile =
%include $ROOT/deploy/pgbouncer/pooling.ini
pool_mode = $mode
EOF
    printf '"api_app" "api_app"\n' >"$dir/userlist.txt"
    local as_user=()
    if [[ $EUID -eq 0 ]]; then
        chown -R postgres: "$dir"
        as_user=(-u postgres)
    fi
    pgbouncer "${as_user[@]}" "$dir/pgbouncer.ini" >"$dir/log" 2>&1 &
    PGB_PID=$!
    BENCH_PIDS+=("$PGB_PID")
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$PGB_PORT") 2>/dev/null && return 0
        sleep 0.05
    done
    echo "pgbouncer did not start" >&2
    cat "$dir/log" >&2
    return 1
}

# CPU ticks (utime + stime) of a process, or of PostgreSQL's whole tree.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
pg_ticks() {
    local t=0 p
    for p in $(pgrep -P "$(sed -n 1p "$PGROOT_DATA/postmaster.pid")") "$(sed -n 1p "$PGROOT_DATA/postmaster.pid")"; do
        t=$((t + $(ticks "$p")))
    done
    echo "$t"
}
PGROOT_DATA=$(readlink -f "$BENCH_SVC/pg")/data
HZ=$(getconf CLK_TCK)

# measure NAME SERVER_PID LUA: one wrk run with CPU accounting.
measure() {
    local name=$1 spid=$2 lua=$3 port=$4
    local a0 p0 b0 a1 p1 b1 out
    a0=$(ticks "$spid"); p0=$(pg_ticks); b0=$([[ -n $PGB_PID ]] && ticks "$PGB_PID" || echo 0)
    out=$(bench_wrk "$name" "${WRK[@]}" -s "$ROOT/bench/wrk/$lua" "http://127.0.0.1:$port")
    a1=$(ticks "$spid"); p1=$(pg_ticks); b1=$([[ -n $PGB_PID ]] && ticks "$PGB_PID" || echo 0)
    read -r rps p50 p99 <<<"$out"
    awk -v n="$name" -v r="$rps" -v p="$p99" -v s="$SECS" -v hz="$HZ" \
        -v a=$((a1 - a0)) -v g=$((p1 - p0)) -v b=$((b1 - b0)) 'BEGIN {
        req = r * s; us = 1e6 / hz / req
        printf "%-26s %9.0f req/s  p99 %-8s CPU/req: api %5.1f us, postgres %5.1f us, pgbouncer %5.1f us\n",
            n, r, p, a * us, g * us, b * us }'
}

run_mode() {
    local label=$1 port=$2 url=$3 prepared=$4
    bench_server "$port" REDIS_URL= CACHE_TTL_S=0 RATE_LIMIT_MAX=0 DATABASE_POOL_SIZE=4 \
        DATABASE_PREPARED="$prepared" DATABASE_URL="$url"
    local spid=$BENCH_LAST_PID
    for ((i = 0; i < ROUNDS; i++)); do
        measure "$label get" "$spid" get-random.lua "$port"
        measure "$label post" "$spid" post-user.lua "$port"
    done
    bench_stop "$spid"
}

DIRECT="postgresql://api_app:api_app@127.0.0.1:$PGPORT/api"
VIA_PGB="postgresql://api_app:api_app@127.0.0.1:$PGB_PORT/api"
run_mode "direct prepared" 3942 "$DIRECT" 1
run_mode "direct unnamed" 3943 "$DIRECT" 0
pgbouncer_start transaction
run_mode "pgbouncer-tx unnamed" 3944 "$VIA_PGB" 0
bench_stop "$PGB_PID"
PGB_PID=""
pgbouncer_start session
run_mode "pgbouncer-session prepared" 3945 "$VIA_PGB" 1
bench_stop "$PGB_PID"
