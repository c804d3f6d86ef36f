#!/usr/bin/env bash
# Instructions per request, counted by callgrind (repeatable whatever else
# the machine is doing): the release build, one worker, a fixed workload.
#
#   bench/callgrind.sh [get|list|post|health] [REQUESTS]   (defaults: get, 5000)
#
# Prints instructions per request and the top functions (self and inclusive);
# the full profile stays in bench/results/callgrind-<workload>.out for
# callgrind_annotate / kcachegrind.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

WORKLOAD=${1:-get}
N=${2:-5000}
bench_services
bench_seed 1 1000
TOKEN=$(bench_token)
OUT="$ROOT/bench/results/callgrind-$WORKLOAD.out"
mkdir -p "$ROOT/bench/results"
rm -f "$OUT" "$OUT".*
WORKERS=1 PORT=3961 LOG_LEVEL=warn RATE_LIMIT_MAX=1000000000 \
    valgrind --tool=callgrind --callgrind-out-file="$OUT" --instr-atstart=no "$ROOT/build/api" \
    >"$BENCH_TMP/cg.log" 2>&1 &
VG=$!
BENCH_PIDS+=("$VG")
for _ in $(seq 1 120); do curl -fs http://127.0.0.1:3961/health/ready >/dev/null && break; sleep 0.5; done
ID=$(head -n 1 "$BENCH_TMP/ids")
case $WORKLOAD in
    get) ARGS=(-H "Authorization: Bearer $TOKEN" "http://127.0.0.1:3961/v1/users/$ID") ;;
    list) ARGS=(-H "Authorization: Bearer $TOKEN" "http://127.0.0.1:3961/v1/users?limit=20") ;;
    health) ARGS=("http://127.0.0.1:3961/health/live") ;;
    post) ARGS=(-m POST -T application/json -H "Authorization: Bearer $TOKEN" \
        -d '{"email":"cg@bench.example","name":"Callgrind"}' "http://127.0.0.1:3961/v1/users") ;;
    *) echo "unknown workload $WORKLOAD" >&2; exit 2 ;;
esac
hey -n 500 -c 4 "${ARGS[@]}" >/dev/null # warm: cache, prepared plans, token cache
callgrind_control -i on "$VG" >/dev/null
callgrind_control -z "$VG" >/dev/null
hey -n "$N" -c 8 "${ARGS[@]}" | grep -E '^\s+\[[0-9]+\]' >&2
callgrind_control -d "$VG" >/dev/null
callgrind_control -i off "$VG" >/dev/null
bench_stop "$VG"
PROFILE=$(ls -t "$OUT".* | head -n 1)
TOTAL=$(callgrind_annotate "$PROFILE" | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
echo "$WORKLOAD: $((TOTAL / N)) instructions per request (user space, $N requests)"
callgrind_annotate "$PROFILE" | sed -n '/file:function/,$p' | sed -n 3,22p
echo "-- inclusive, the project's functions"
callgrind_annotate --inclusive=yes "$PROFILE" | grep 'src/.*\[' | head -25
