#!/usr/bin/env bash
# Keyed writes at scale (the idempotent-writes issue, ADR 0006):
#   POST /v1/users with an Idempotency-Key vs without, on one run;
#   keyed POST with 10^3 vs 10^6 records already stored (must be flat).
# Real durability (fsync on), 2 workers, the release build, alternating rounds.
#
#   bench/idempotency.sh [ROUNDS] [SECONDS]      (defaults: 3, 10)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROUNDS=${1:-3}
SECS=${2:-10}
export SERVICES_DURABLE=1
bench_services
export BENCH_TOKEN
BENCH_TOKEN=$(bench_token)
WRK=(-t2 -c64 "-d${SECS}s" --latency)
POST="$ROOT/bench/wrk/post-user.lua"

# keys stored by other callers: only the index sees them
stored() { psql -Atq "$DATABASE_MIGRATION_URL" -c "SELECT count(*) FROM idempotency_keys"; }
fill_keys() { # N: make the table hold about N records
    local have
    have=$(stored)
    if ((have < $1)); then
        psql -q "$DATABASE_MIGRATION_URL" -c "INSERT INTO idempotency_keys (principal, key, fingerprint, status, body)
            SELECT 'bench-other-' || (g % 1000), 'k' || g, decode(md5(g::text) || md5(g::text), 'hex'), 201, '{}'
            FROM generate_series($have + 1, $1) g" >/dev/null
        psql -q "$DATABASE_MIGRATION_URL" -c "VACUUM ANALYZE idempotency_keys" >/dev/null
    fi
}

bench_server 3931 RATE_LIMIT_MAX=0 CACHE_TTL_S=600
S=$BENCH_LAST_PID
URL=http://127.0.0.1:3931

fill_keys 1000
echo "POST /v1/users: with Idempotency-Key vs without, $(stored) records stored ($ROUNDS rounds of ${SECS}s):"
declare -a pk pn lk ln
for ((i = 0; i < ROUNDS; i++)); do
    read -r r p50 p99 < <(IDEMPOTENCY=1 bench_wrk post-key "${WRK[@]}" -s "$POST" "$URL"); pk+=("$r"); lk+=("$p50/$p99")
    read -r r p50 p99 < <(IDEMPOTENCY=0 bench_wrk post-plain "${WRK[@]}" -s "$POST" "$URL"); pn+=("$r"); ln+=("$p50/$p99")
done
KEY_1K=$(median "${pk[@]}")
echo "  => keyed median $KEY_1K req/s (p50/p99: ${lk[*]}); unkeyed median $(median "${pn[@]}") req/s (p50/p99: ${ln[*]}); ratio $(ratio "$KEY_1K" "$(median "${pn[@]}")")"

fill_keys 1000000
echo "POST /v1/users with Idempotency-Key, $(stored) records stored ($ROUNDS rounds of ${SECS}s):"
declare -a pm lm
for ((i = 0; i < ROUNDS; i++)); do
    read -r r p50 p99 < <(IDEMPOTENCY=1 bench_wrk post-key "${WRK[@]}" -s "$POST" "$URL"); pm+=("$r"); lm+=("$p50/$p99")
done
echo "  => keyed median $(median "${pm[@]}") req/s (p50/p99: ${lm[*]}); vs 10^3 stored: ratio $(ratio "$(median "${pm[@]}")" "$KEY_1K")"
SEQ=$(psql -Atq "$DATABASE_MIGRATION_URL" -c "SELECT relname || ' seq_scan=' || seq_scan || ' idx_scan=' || coalesce(idx_scan,0) FROM pg_stat_user_tables WHERE relname IN ('users','idempotency_keys') ORDER BY 1")
echo "  pg_stat_user_tables: $(echo $SEQ)"
bench_stop "$S"
