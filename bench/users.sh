#!/usr/bin/env bash
# Users API against PostgreSQL itself, same machine, back to back:
#   GET /v1/users/{id} (uncached) vs pgbench running the same SELECT;
#   GET /v1/users?limit=20 vs pgbench running the same page query;
#   page cost at depth: first vs last page with 10^4 and 10^6 rows.
# pgbench gets as many connections as the server's pool (DATABASE_POOL_SIZE).
#
#   bench/users.sh [ROUNDS] [SECONDS]      (defaults: 3, 10)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROUNDS=${1:-3}
SECS=${2:-10}
POOL=4
PORT=3911
N=10000

bench_services
bench_seed 1 $N

cat >"$BENCH_TMP/get.sql" <<SQL
\set n random(1, $N)
SELECT id, email, name, version, created_at, updated_at FROM users WHERE id = md5(:n::text)::uuid;
SQL
cat >"$BENCH_TMP/list.sql" <<SQL
SELECT id, email, name, version, created_at, updated_at FROM users ORDER BY id LIMIT 21;
SQL

export BENCH_TOKEN IDS_FILE="$BENCH_TMP/ids"
BENCH_TOKEN=$(bench_token)
bench_server $PORT REDIS_URL= CACHE_TTL_S=0 RATE_LIMIT_MAX=0 DATABASE_POOL_SIZE=$POOL
WRK=(-t2 -c64 "-d${SECS}s" --latency)

declare -a g_api g_pg l_api l_pg g_lat l_lat
echo "GET /v1/users/{id} (uncached) vs pgbench, $ROUNDS rounds of ${SECS}s:"
for ((i = 0; i < ROUNDS; i++)); do
    read -r rps p50 p99 < <(bench_wrk api-get "${WRK[@]}" -s "$ROOT/bench/wrk/get-random.lua" "http://127.0.0.1:$PORT")
    g_api+=("$rps"); g_lat+=("p50 $p50 p99 $p99")
    g_pg+=("$(bench_pgbench pg-get "$BENCH_TMP/get.sql" $POOL "$SECS")")
done
echo "GET /v1/users?limit=20 vs pgbench (LIMIT 21), $ROUNDS rounds:"
for ((i = 0; i < ROUNDS; i++)); do
    l_pg+=("$(bench_pgbench pg-list "$BENCH_TMP/list.sql" $POOL "$SECS")")
    read -r rps p50 p99 < <(WRK_PATH="/v1/users?limit=20" bench_wrk api-list "${WRK[@]}" -s "$ROOT/bench/wrk/get-path.lua" "http://127.0.0.1:$PORT")
    l_api+=("$rps"); l_lat+=("p50 $p50 p99 $p99")
done

ga=$(median "${g_api[@]}"); gp=$(median "${g_pg[@]}")
la=$(median "${l_api[@]}"); lp=$(median "${l_pg[@]}")
echo
echo "GET one:  api median $ga req/s, pgbench median $gp tps, ratio $(ratio "$ga" "$gp")"
echo "GET list: api median $la req/s, pgbench median $lp tps, ratio $(ratio "$la" "$lp")"

echo
echo "Page cost at depth (EXPLAIN ANALYZE execution time, ms):"
explain_depth() {
    local rows=$1 first last
    last=$(psql -Atq "$DATABASE_MIGRATION_URL" -c "SELECT id FROM users ORDER BY id DESC OFFSET 20 LIMIT 1")
    first=$(psql -Atq "$DATABASE_MIGRATION_URL" -c "EXPLAIN (ANALYZE, FORMAT JSON) SELECT * FROM users ORDER BY id LIMIT 21" |
        python3 -c 'import json,sys; p=json.load(sys.stdin)[0]; print(p["Execution Time"], p["Plan"]["Plans"][0]["Node Type"] if "Plans" in p["Plan"] else p["Plan"]["Node Type"])')
    local deep
    deep=$(psql -Atq "$DATABASE_MIGRATION_URL" -c "EXPLAIN (ANALYZE, FORMAT JSON) SELECT * FROM users WHERE id > '$last' ORDER BY id LIMIT 21" |
        python3 -c 'import json,sys; p=json.load(sys.stdin)[0]; print(p["Execution Time"], p["Plan"]["Plans"][0]["Node Type"] if "Plans" in p["Plan"] else p["Plan"]["Node Type"])')
    echo "  $rows rows: first page $first; last page $deep"
}
explain_depth $N
bench_seed $((N + 1)) 1000000
explain_depth 1000000
# the same through the server: a signed cursor for the last page
last=$(psql -Atq "$DATABASE_MIGRATION_URL" -c "SELECT id FROM users ORDER BY id DESC OFFSET 20 LIMIT 1")
cursor=$(python3 - "$last" <<'PY'
import base64, hashlib, hmac, os, sys, uuid
raw = b"\x01" + uuid.UUID(sys.argv[1]).bytes
mac = hmac.new(os.environ["CURSOR_SECRET"].encode(), raw, hashlib.sha256).digest()[:16]
print(base64.urlsafe_b64encode(raw + mac).rstrip(b"=").decode())
PY
)
echo "Through the server at 10^6 rows ($ROUNDS rounds each, ${SECS}s):"
declare -a d_first d_last
for ((i = 0; i < ROUNDS; i++)); do
    read -r rps _ _ < <(WRK_PATH="/v1/users?limit=20" bench_wrk first-page "${WRK[@]}" -s "$ROOT/bench/wrk/get-path.lua" "http://127.0.0.1:$PORT")
    d_first+=("$rps")
    read -r rps _ _ < <(WRK_PATH="/v1/users?limit=20&cursor=$cursor" bench_wrk last-page "${WRK[@]}" -s "$ROOT/bench/wrk/get-path.lua" "http://127.0.0.1:$PORT")
    d_last+=("$rps")
done
echo "  first page median $(median "${d_first[@]}") req/s, last page median $(median "${d_last[@]}") req/s, ratio $(ratio "$(median "${d_last[@]}")" "$(median "${d_first[@]}")")"
