#!/usr/bin/env bash
# Static-response throughput: `api` GET /health/live vs nginx `return 200`,
# both with 2 workers on loopback, measured back to back with wrk, several
# rounds, alternating order. Prints req/s per run, the median of each, the
# ratio of medians, and the server's RSS idle and under load.
#
#   bench/health-vs-nginx.sh [ROUNDS] [DURATION]      (defaults: 3, 10s)
#
# Needs: build/api (make), wrk, nginx (nginx-light). Loopback only; every
# process it starts is stopped by PID on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROUNDS=${1:-3}
DURATION=${2:-10s}
API_PORT=${API_PORT:-3901}
NGINX_PORT=${NGINX_PORT:-3902}
WRK_ARGS=(-t2 -c64 "-d${DURATION}" --latency)
TMP=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT

cat >"$TMP/nginx.conf" <<CONF
worker_processes 2;
daemon off;
pid $TMP/nginx.pid;
error_log $TMP/nginx-error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    server {
        listen 127.0.0.1:$NGINX_PORT reuseport;
        location / { default_type application/json; return 200 '{"status":"ok"}'; }
    }
}
CONF
nginx -p "$TMP" -c "$TMP/nginx.conf" &
pids+=($!)
# The server as users run it: defaults, 2 workers, no database needed for
# /health/live (it keeps trying to connect in the background, off the path).
WORKERS=2 PORT=$API_PORT LOG_LEVEL=warn REDIS_URL= DATABASE_URL="host=127.0.0.1 port=1 connect_timeout=1" \
    "$ROOT/build/api" >"$TMP/api.log" 2>&1 &
api_pid=$!
pids+=("$api_pid")
sleep 1
curl -fsS "http://127.0.0.1:$API_PORT/health/live" >/dev/null
curl -fsS "http://127.0.0.1:$NGINX_PORT/" >/dev/null

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
# CPU ticks (user + system) of a process and its children's threads.
ticks() {
    local t=0 p
    for p in "$@"; do
        t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat")))
    done
    echo "$t"
}
HZ=$(getconf CLK_TCK)
idle_rss=$(rss_kib "$api_pid")
nginx_master=$(cat "$TMP/nginx.pid")
nginx_pids="$nginx_master $(pgrep -P "$nginx_master" | tr '\n' ' ')"

run() { # name url pids... -> prints req/s; appends CPU us/request to $TMP/cpu-name
    local name=$1 url=$2
    shift 2
    local out t0 t1
    t0=$(ticks "$@")
    out=$(wrk "${WRK_ARGS[@]}" "$url")
    t1=$(ticks "$@")
    local reqs
    reqs=$(echo "$out" | awk '/requests in/ {print $1}')
    awk -v t=$((t1 - t0)) -v hz="$HZ" -v n="$reqs" 'BEGIN {printf "%.2f\n", t / hz * 1e6 / n}' >>"$TMP/cpu-$name"
    set -- "$name" "$url"
    echo "$out" >"$TMP/wrk-$1-$RANDOM.txt"
    local rps p50 p99
    rps=$(echo "$out" | awk '/^Requests\/sec/ {print $2}')
    p50=$(echo "$out" | awk '$1=="50%" {print $2}')
    p99=$(echo "$out" | awk '$1=="99%" {print $2}')
    echo "$1 rps=$rps p50=$p50 p99=$p99" >&2
    echo "$rps"
}

api_rps=()
nginx_rps=()
peak_rss=0
for ((i = 1; i <= ROUNDS; i++)); do
    if ((i % 2)); then
        ( sleep 3; rss_kib "$api_pid" >"$TMP/rss" ) &
        api_rps+=("$(run api "http://127.0.0.1:$API_PORT/health/live" "$api_pid")")
        nginx_rps+=("$(run nginx "http://127.0.0.1:$NGINX_PORT/" $nginx_pids)")
    else
        nginx_rps+=("$(run nginx "http://127.0.0.1:$NGINX_PORT/" $nginx_pids)")
        ( sleep 3; rss_kib "$api_pid" >"$TMP/rss" ) &
        api_rps+=("$(run api "http://127.0.0.1:$API_PORT/health/live" "$api_pid")")
    fi
    r=$(cat "$TMP/rss")
    ((r > peak_rss)) && peak_rss=$r
done

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
ma=$(median "${api_rps[@]}")
mn=$(median "${nginx_rps[@]}")
echo "api   median req/s: $ma   (runs: ${api_rps[*]})"
echo "nginx median req/s: $mn   (runs: ${nginx_rps[*]})"
awk -v a="$ma" -v n="$mn" 'BEGIN {printf "ratio api/nginx: %.2f\n", a / n}'
echo "api RSS: idle ${idle_rss} KiB, under load ${peak_rss} KiB"
# shellcheck disable=SC2046
echo "server CPU per request (user+sys, us): api median $(median $(cat "$TMP/cpu-api")), nginx median $(median $(cat "$TMP/cpu-nginx"))"
