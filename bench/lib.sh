# Shared helpers for the benchmark scripts (sourced, not run).
# Everything runs on loopback; every process started is stopped by PID.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_TMP=$(mktemp -d)
BENCH_PIDS=()
BENCH_SVC=""

bench_cleanup() {
    for p in "${BENCH_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [[ -n $BENCH_SVC ]]; then "$ROOT/scripts/services.sh" destroy "$BENCH_SVC" >/dev/null 2>&1 || true; fi
    rm -rf "$BENCH_TMP"
}
trap bench_cleanup EXIT

# Throwaway PostgreSQL + Redis, migrated; exports DATABASE_URL etc.
bench_services() {
    BENCH_SVC=$(mktemp -d)
    "$ROOT/scripts/services.sh" start "$BENCH_SVC" >/dev/null
    # shellcheck source=/dev/null
    source "$BENCH_SVC/env"
    "$ROOT/build/api" migrate >/dev/null
}

# bench_seed FROM TO: users with ids md5(n)::uuid (reproducible, so pgbench
# can name them too), then VACUUM ANALYZE; writes all ids to $BENCH_TMP/ids.
bench_seed() {
    psql -q "$DATABASE_MIGRATION_URL" -c "INSERT INTO users (id, email, name)
        SELECT md5(n::text)::uuid, 'u' || n || '@seed.example', 'User ' || n FROM generate_series($1, $2) n" >/dev/null
    psql -q "$DATABASE_MIGRATION_URL" -c "VACUUM ANALYZE users" >/dev/null
    psql -Atq "$DATABASE_MIGRATION_URL" -c "SELECT id FROM users" >"$BENCH_TMP/ids"
}

BENCH_JWT_SECRET=bench-secret-bench-secret-bench-secret-0
export JWT_SECRET=$BENCH_JWT_SECRET
export CURSOR_SECRET=bench-cursor-bench-cursor-bench-cursor-0

bench_token() { JWT_SECRET=$BENCH_JWT_SECRET python3 "$ROOT/scripts/dev-token.py" users:read users:write; }

# bench_server PORT [VAR=value ...]: starts build/api (or $BENCH_BIN) with 2
# workers, waits for readiness.
bench_server() {
    local port=$1
    shift
    env WORKERS=2 PORT="$port" LOG_LEVEL=warn "$@" "${BENCH_BIN:-$ROOT/build/api}" >"$BENCH_TMP/api-$port.log" 2>&1 &
    BENCH_PIDS+=($!)
    BENCH_LAST_PID=$!
    for _ in $(seq 1 100); do
        if curl -fs "http://127.0.0.1:$port/health/ready" >/dev/null 2>&1; then return 0; fi
        sleep 0.1
    done
    echo "server on $port did not become ready" >&2
    cat "$BENCH_TMP/api-$port.log" >&2
    return 1
}

bench_stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# bench_wrk NAME ARGS... : runs wrk, prints "NAME rps p50 p99" to stderr, rps to stdout.
bench_wrk() {
    local name=$1
    shift
    local out
    out=$(wrk "$@")
    echo "$out" >"$BENCH_TMP/wrk-$name-$RANDOM.txt"
    local rps p50 p99 non2xx
    rps=$(echo "$out" | awk '/^Requests\/sec/ {print $2}')
    p50=$(echo "$out" | awk '$1=="50%" {print $2}')
    p99=$(echo "$out" | awk '$1=="99%" {print $2}')
    non2xx=$(echo "$out" | awk '/Non-2xx/ {print $NF}')
    echo "  $name: ${rps} req/s  p50 ${p50}  p99 ${p99}${non2xx:+  non-2xx ${non2xx}}" >&2
    echo "$rps $p50 $p99"
}

# bench_pgbench NAME SCRIPT CLIENTS DURATION: prints tps and latency avg to stderr, tps to stdout.
bench_pgbench() {
    local name=$1 script=$2 clients=$3 duration=$4
    local out
    out=$(PGPASSWORD=api_app /usr/lib/postgresql/15/bin/pgbench -n -M prepared -f "$script" -c "$clients" \
        -j 2 -T "$duration" -r --random-seed=42 -h 127.0.0.1 -p "$PGPORT" -U api_app api 2>&1)
    echo "$out" >"$BENCH_TMP/pgbench-$name-$RANDOM.txt"
    local tps lat
    tps=$(echo "$out" | awk -F'= ' '/^tps/ {split($2, a, " "); print a[1]}')
    lat=$(echo "$out" | awk -F'= ' '/^latency average/ {print $2}')
    echo "  $name: ${tps} tps  latency avg ${lat}" >&2
    echo "$tps"
}

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
