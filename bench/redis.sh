#!/usr/bin/env bash
# The Redis patterns' cost and benefit, back to back on one machine:
#   GET /v1/users/{id} cached (Redis) vs uncached (PostgreSQL);
#   rate limiting on (Redis script per request) vs off;
#   POST /v1/users with an Idempotency-Key vs without.
#
#   bench/redis.sh [ROUNDS] [SECONDS]      (defaults: 3, 10)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROUNDS=${1:-3}
SECS=${2:-10}
N=10000
bench_services
bench_seed 1 $N
export BENCH_TOKEN IDS_FILE="$BENCH_TMP/ids"
BENCH_TOKEN=$(bench_token)
WRK=(-t2 -c64 "-d${SECS}s" --latency)

# A: Redis, cache on, limits on (huge budget so nothing is refused)
bench_server 3921 RATE_LIMIT_MAX=1000000000 CACHE_TTL_S=600
A=$BENCH_LAST_PID
# B: no Redis: uncached reads, no limits
bench_server 3922 REDIS_URL= RATE_LIMIT_MAX=0 CACHE_TTL_S=0
B=$BENCH_LAST_PID
# C: Redis for the cache, limits off
bench_server 3923 RATE_LIMIT_MAX=0 CACHE_TTL_S=600
C=$BENCH_LAST_PID
# warm the cache: every id once
wrk -t2 -c16 -d3s -s "$ROOT/bench/wrk/get-random.lua" http://127.0.0.1:3923 >/dev/null

run_pair() { # title nameA urlA nameB urlB script [env]
    local title=$1 na=$2 ua=$3 nb=$4 ub=$5 script=$6
    local -a ra rb la lb
    echo "$title ($ROUNDS rounds of ${SECS}s):"
    for ((i = 0; i < ROUNDS; i++)); do
        if ((i % 2 == 0)); then
            read -r r p50 p99 < <(bench_wrk "$na" "${WRK[@]}" -s "$script" "$ua"); ra+=("$r"); la+=("$p50/$p99")
            read -r r p50 p99 < <(bench_wrk "$nb" "${WRK[@]}" -s "$script" "$ub"); rb+=("$r"); lb+=("$p50/$p99")
        else
            read -r r p50 p99 < <(bench_wrk "$nb" "${WRK[@]}" -s "$script" "$ub"); rb+=("$r"); lb+=("$p50/$p99")
            read -r r p50 p99 < <(bench_wrk "$na" "${WRK[@]}" -s "$script" "$ua"); ra+=("$r"); la+=("$p50/$p99")
        fi
    done
    local ma mb
    ma=$(median "${ra[@]}"); mb=$(median "${rb[@]}")
    echo "  => $na median $ma req/s (p50/p99: ${la[*]}); $nb median $mb req/s (p50/p99: ${lb[*]}); ratio $(ratio "$ma" "$mb")"
}

run_pair "GET one: cached vs uncached" cached http://127.0.0.1:3923 uncached http://127.0.0.1:3922 \
    "$ROOT/bench/wrk/get-random.lua"
run_pair "GET one (cached): rate limiting on vs off" limits-on http://127.0.0.1:3921 limits-off http://127.0.0.1:3923 \
    "$ROOT/bench/wrk/get-random.lua"
echo "POST /v1/users: with Idempotency-Key vs without ($ROUNDS rounds of ${SECS}s):"
declare -a pk pn lk ln
for ((i = 0; i < ROUNDS; i++)); do
    read -r r p50 p99 < <(IDEMPOTENCY=1 bench_wrk post-key "${WRK[@]}" -s "$ROOT/bench/wrk/post-user.lua" http://127.0.0.1:3923); pk+=("$r"); lk+=("$p50/$p99")
    read -r r p50 p99 < <(IDEMPOTENCY=0 bench_wrk post-plain "${WRK[@]}" -s "$ROOT/bench/wrk/post-user.lua" http://127.0.0.1:3923); pn+=("$r"); ln+=("$p50/$p99")
done
echo "  => with key median $(median "${pk[@]}") req/s (p50/p99: ${lk[*]}); without median $(median "${pn[@]}") req/s (p50/p99: ${ln[*]}); ratio $(ratio "$(median "${pk[@]}")" "$(median "${pn[@]}")")"
bench_stop "$A"; bench_stop "$B"; bench_stop "$C"
