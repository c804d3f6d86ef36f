#!/usr/bin/env bash
# What observability costs on the hot path: GET /v1/users/{id} (cached),
# the binary of a commit before the metrics and traces against a binary
# with them, in alternating rounds on one PostgreSQL and one Redis:
#
#   base     OLD_BIN (no /metrics, no traces)
#   metrics  NEW_BIN, metrics only (no OTEL_EXPORTER_OTLP_ENDPOINT)
#   scraped  NEW_BIN, metrics only, /metrics scraped every 10 ms meanwhile
#   trace01  NEW_BIN, traces sampled at 0.1, exported to a local receiver
#   trace1   NEW_BIN, traces sampled at 1.0, exported to a local receiver
#
#   bench/obs.sh OLD_BIN NEW_BIN [ROUNDS] [SECONDS]      (defaults: 5, 10)
#
# The receiver is nginx answering 200 to every POST /v1/traces (it reads
# and drops the body): a collector that costs next to nothing, so what is
# measured is the server's side of the export. Prints, per configuration,
# the median req/s, p99 and server CPU per request, and each one's cost
# relative to base. Needs: wrk, hey, nginx (scripts/deps.sh), release
# builds of both binaries (make build/api in each tree).
# PID lists are split into arguments on purpose.
# shellcheck disable=SC2086
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if [[ $# -lt 2 ]]; then
    sed -n '2,/^# PID lists/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
fi
OLD_BIN=$(readlink -f "$1")
NEW_BIN=$(readlink -f "$2")
ROUNDS=${3:-5}
SECS=${4:-10}
N=10000
bench_services
bench_seed 1 $N
export BENCH_TOKEN IDS_FILE="$BENCH_TMP/ids"
BENCH_TOKEN=$(bench_token)

OTLP_PORT=3939
mkdir -p "$BENCH_TMP/nginx"
cat >"$BENCH_TMP/nginx/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $BENCH_TMP/nginx/nginx.pid;
error_log $BENCH_TMP/nginx/error.log warn;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path $BENCH_TMP/nginx;
    client_max_body_size 64m;
    server {
        listen 127.0.0.1:$OTLP_PORT;
        location /v1/traces { default_type application/json; return 200 '{}'; }
    }
}
CONF
nginx -p "$BENCH_TMP/nginx" -c "$BENCH_TMP/nginx/nginx.conf" &
BENCH_PIDS+=($!)
sleep 0.5
curl -fsS -X POST -d '{}' "http://127.0.0.1:$OTLP_PORT/v1/traces" >/dev/null

COMMON=(RATE_LIMIT_MAX=1000000000 CACHE_TTL_S=600)
declare -A PORT PID
start() { # name port bin env...
    local name=$1 port=$2 bin=$3
    shift 3
    BENCH_BIN=$bin bench_server "$port" "${COMMON[@]}" "$@"
    PORT[$name]=$port
    PID[$name]=$BENCH_LAST_PID
}
start base 3931 "$OLD_BIN"
start metrics 3932 "$NEW_BIN"
start scraped 3933 "$NEW_BIN"
start trace01 3934 "$NEW_BIN" OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$OTLP_PORT" OTEL_TRACES_SAMPLER_ARG=0.1
start trace1 3935 "$NEW_BIN" OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$OTLP_PORT" OTEL_TRACES_SAMPLER_ARG=1.0
NAMES=(base metrics scraped trace01 trace1)
# warm every cache entry (one Redis, shared) and each server's token cache
wrk -t2 -c16 -d3s -s "$ROOT/bench/wrk/get-random.lua" "http://127.0.0.1:${PORT[base]}" >/dev/null
for n in "${NAMES[@]}"; do
    wrk -t2 -c64 -d1s -s "$ROOT/bench/wrk/get-random.lua" "http://127.0.0.1:${PORT[$n]}" >/dev/null
done

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
declare -A RPS P99 CPU
echo "GET /v1/users/{id} cached, wrk -t2 -c64, $ROUNDS rounds of ${SECS}s, order rotated each round:" >&2
for ((i = 0; i < ROUNDS; i++)); do
    for ((k = 0; k < ${#NAMES[@]}; k++)); do
        n=${NAMES[$(((k + i) % ${#NAMES[@]}))]}
        scraper=""
        if [[ $n == scraped ]]; then
            hey -z "$((SECS + 1))s" -c 1 -q 100 "http://127.0.0.1:${PORT[$n]}/metrics" >"$BENCH_TMP/hey-scrape.txt" &
            scraper=$!
        fi
        t0=$(ticks "${PID[$n]}")
        read -r r _ p99 < <(bench_wrk "$n" -t2 -c64 "-d${SECS}s" --latency -s "$ROOT/bench/wrk/get-random.lua" \
            "http://127.0.0.1:${PORT[$n]}")
        t1=$(ticks "${PID[$n]}")
        if [[ -n $scraper ]]; then
            wait "$scraper"
            echo "    scrapes: $(awk '/\[200\]/ {print $2}' "$BENCH_TMP/hey-scrape.txt") answered 200" >&2
        fi
        RPS[$n]+="$r "
        P99[$n]+="$(echo "$p99" | awk '/ms$/ {sub("ms",""); print $1 * 1000; next} /us$/ {sub("us",""); print $1; next} /s$/ {sub("s",""); print $1 * 1e6}') "
        CPU[$n]+="$(awk -v t=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" -v r="$r" -v s="$SECS" \
            'BEGIN {printf "%.2f", t / hz * 1e6 / (r * s)}') "
    done
done

base_rps=$(median ${RPS[base]})
base_cpu=$(median ${CPU[base]})
printf '\n%-8s %12s %10s %14s %12s %12s\n' config "median req/s" "p99 (ms)" "CPU/req (us)" "rps cost" "CPU cost"
for n in "${NAMES[@]}"; do
    r=$(median ${RPS[$n]})
    p=$(median ${P99[$n]})
    c=$(median ${CPU[$n]})
    printf '%-8s %12.0f %10.2f %14.2f %11.1f%% %11.1f%%\n' "$n" "$r" "$(awk -v p="$p" 'BEGIN {print p / 1000}')" "$c" \
        "$(awk -v a="$r" -v b="$base_rps" 'BEGIN {print (1 - a / b) * 100}')" \
        "$(awk -v a="$c" -v b="$base_cpu" 'BEGIN {print (a / b - 1) * 100}')"
done
for n in "${NAMES[@]}"; do
    echo "  $n runs: ${RPS[$n]}(req/s); ${CPU[$n]}(CPU us/req)" >&2
done
for n in "${NAMES[@]}"; do bench_stop "${PID[$n]}"; done
