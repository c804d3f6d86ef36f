#!/usr/bin/env bash
# The comparison users can reproduce: this server (build/api) against the
# Fastify reference of the same contract (bench/reference/fastify), on the
# same machine, PostgreSQL and Redis, with the same settings, through the
# same wrk workloads in alternating rounds. Writes a report with medians,
# p50/p99, server CPU per request, peak RSS and gnuplot charts.
#
#   bench/compare.sh [--smoke] [--out DIR]      (`make bench-compare`)
#
# Workloads (bench/wrk/compare/*.lua), wrk -t$THREADS -c$CONNS:
#   W1 GET /health/live                 W4 POST /v1/users + Idempotency-Key
#   W2 GET /v1/users/{id}, cached       W5 PATCH /v1/users/{id} + If-Match
#   W3 GET /v1/users?limit=20, walking  MIX 90 % GET one / 10 % PATCH
#      the list with the real cursors
# then latency vs concurrency (W2 at CONC_LEVELS connections), an open-loop
# run at fixed request rates (hey -q: requests are sent on a schedule, not
# when the previous answer came back, so a slow answer cannot hide the ones
# that should have been sent meanwhile - "coordinated omission"), and the
# scale checks: memory per idle keep-alive connection (IDLE_CONNS of them),
# list latency at 10^4 rows and at BIG_ROWS rows (first and last page), RSS
# under load (sampled during every run).
#
# Every knob is an environment variable (defaults; --smoke in brackets):
#   ROUNDS=3 [1]  DURATION=10 [1] s per run   CONNS=64   THREADS=2
#   WORKERS=2     POOL=4 (DATABASE_POOL_SIZE, split across workers by both)
#   CONC_LEVELS="16 32 64 128 256 512 1024" [16 128]   CONC_SECS=5 [1]
#   OPEN_RATES="1000 2000 4000 8000" [500] req/s      OPEN_SECS=10 [1]
#   IDLE_CONNS=10000 [1000]   DEPTH_SECS=5 [1]
#   WARM_SECS=5 [1] per workload and server before measuring (Node's JIT
#            needs a few seconds: a cold Fastify serves a fraction of its rate;
#            W2 went 1.5k, 3.4k, 7.0k, then 10k req/s in its first four seconds)
#   WARM_WORKLOADS="W1 W2 W3 W4 W5 MIX" [W2]
#   F_POOL=$POOL: DATABASE_POOL_SIZE of the Fastify reference alone (both
#            stacks split it across their workers)
#   BIG_ROWS=10000000 [0 = skipped]: rows for the second list-depth check,
#            seeded by generate_series inside PostgreSQL (10^6 rows took
#            16.5 s on the project's 2-core machine, so 10^7 should take
#            about 3 minutes; docs/benchmarks.md); 0 skips it
#   DURABLE=1 [1]: PostgreSQL with fsync on (0: fsync off, as in make test)
#
# Needs: build/api (make), node >= 20 + npm (the reference is installed with
# npm ci), wrk, hey, gnuplot, python3, PostgreSQL 15, Redis (scripts/deps.sh
# installs them). Loopback only; PostgreSQL and Redis are throwaway ones
# (scripts/services.sh); every process started is stopped by PID.
# PID lists are space-separated numbers, split into arguments on purpose.
# shellcheck disable=SC2046,SC2086
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
T_START=$(date +%s)
SMOKE=0
OUT=""
while [[ $# -gt 0 ]]; do
    case $1 in
        --smoke) SMOKE=1 ;;
        --out) OUT=$2; shift ;;
        -h | --help) sed -n '2,/stopped by PID\./p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "compare.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
    esac
    shift
done

if ((SMOKE)); then
    : "${ROUNDS:=1}" "${DURATION:=1}" "${CONC_LEVELS:=16 128}" "${CONC_SECS:=1}" "${OPEN_RATES:=500}"
    : "${OPEN_SECS:=1}" "${IDLE_CONNS:=1000}" "${DEPTH_SECS:=1}" "${WARM_SECS:=1}" "${BIG_ROWS:=0}"
    : "${WARM_WORKLOADS:=W2}"
fi
: "${ROUNDS:=3}" "${DURATION:=10}" "${CONNS:=64}" "${THREADS:=2}" "${WORKERS:=2}" "${POOL:=4}"
: "${CONC_LEVELS:=16 32 64 128 256 512 1024}" "${CONC_SECS:=5}" "${OPEN_RATES:=1000 2000 4000 8000}"
: "${OPEN_SECS:=10}" "${IDLE_CONNS:=10000}" "${DEPTH_SECS:=5}" "${WARM_SECS:=5}" "${BIG_ROWS:=10000000}"
: "${DURABLE:=1}" "${WARM_WORKLOADS:=W1 W2 W3 W4 W5 MIX}" "${F_POOL:=$POOL}"
SEED_ROWS=10000
HOT=1000 # ids 1..HOT: the cached set (W2, MIX); the rest: W5's
# Free loopback ports unless given: another server on a fixed one would
# make the run measure the wrong process, or fail.
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
C_PORT=${C_PORT:-$(free_port)}
F_PORT=${F_PORT:-$(free_port)}
[[ $C_PORT != "$F_PORT" ]] || F_PORT=$(free_port)

for tool in wrk hey gnuplot python3 node npm psql redis-cli; do
    command -v "$tool" >/dev/null || { echo "compare.sh: $tool is missing (scripts/deps.sh installs it)" >&2; exit 1; }
done
[[ -x $BENCH_DIR/../build/api ]] || { echo "compare.sh: build/api is missing; run make first" >&2; exit 1; }
FASTIFY=$BENCH_DIR/reference/fastify/bin/api
"$BENCH_DIR/reference/fastify/install.sh"

# shellcheck source=bench/lib.sh
source "$BENCH_DIR/lib.sh"
# lib.sh's cleanup waits for every child: a running RSS sampler goes first.
SAMPLER=""
trap '[[ -n $SAMPLER ]] && kill "$SAMPLER" 2>/dev/null; bench_cleanup' EXIT
# Signals become a normal exit, so the EXIT trap stops what was started.
trap 'exit 130' INT
trap 'exit 143' TERM
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
if [[ -z $OUT ]]; then
    OUT=$ROOT/bench/results/$STAMP
    mkdir -p "$OUT"
    ln -sfn "$STAMP" "$ROOT/bench/results/latest"
fi
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
RAW=$OUT/raw.tsv
printf 'kind\tworkload\tserver\tround\tconns\trps\tp50_us\tp75_us\tp90_us\tp99_us\tp999_us\tmax_us\tcpu_us_per_req\tnon2xx\tsock_errors\trss_max_kib\trequests\tdb_cpu_us_per_req\n' >"$RAW"
: >"$OUT/scale.jsonl"
log() { echo "compare [$(($(date +%s) - T_START))s]: $*" >&2; }

# Room for 10,000 idle connections (and 1,024 busy ones) on both sides.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# ---------------------------------------------------------------- services, data

export SERVICES_DURABLE=$DURABLE
log "services (PostgreSQL durable=$DURABLE, Redis), migrate, seed $SEED_ROWS users"
bench_services
bench_seed 1 $SEED_ROWS
ids_range() { psql -Atq "$DATABASE_MIGRATION_URL" -c "SELECT md5(n::text)::uuid FROM generate_series($1, $2) n"; }
ids_range 1 $HOT >"$BENCH_TMP/hot-ids"
ids_range $((HOT + 1)) $SEED_ROWS >"$BENCH_TMP/patch-ids"
# W5 needs its users at version 1 and in nobody's cache before each run.
awk '{print "DEL api:user:" $1 " ref:user:" $1}' "$BENCH_TMP/patch-ids" >"$BENCH_TMP/patch-uncache"
reset_patch_ids() {
    psql -q "$DATABASE_MIGRATION_URL" -c "UPDATE users SET version = 1
        WHERE id IN (SELECT md5(n::text)::uuid FROM generate_series($((HOT + 1)), $SEED_ROWS) n)" >/dev/null
    redis-cli -p "$REDIS_PORT" <"$BENCH_TMP/patch-uncache" >/dev/null
}

export BENCH_TOKEN WRK_LIB=$BENCH_DIR/wrk/compare HOT_IDS=$BENCH_TMP/hot-ids PATCH_IDS=$BENCH_TMP/patch-ids
export WRK_THREADS=$THREADS LIST_LIMIT=20
BENCH_TOKEN=$(bench_token)

# --------------------------------------------------------------------- servers

# The same settings for both: workers, pool, JWT auth, rate limiting on with
# a budget that is never reached, Redis cache, log level warn; idle
# keep-alive connections kept 120 s (the idle-connection check holds them).
SETTINGS=(WORKERS="$WORKERS" RATE_LIMIT_MAX=1000000000 RATE_LIMIT_WINDOW_S=60
    CACHE_TTL_S=600 LOG_LEVEL=warn HEADER_TIMEOUT_MS=120000 MAX_CONNECTIONS=20000)
log "starting build/api on :$C_PORT (DATABASE_POOL_SIZE=$POOL) and the Fastify reference on :$F_PORT" \
    "(DATABASE_POOL_SIZE=$F_POOL), both with ${SETTINGS[*]}"
bench_server "$C_PORT" "${SETTINGS[@]}" DATABASE_POOL_SIZE="$POOL"
C_PID=$BENCH_LAST_PID
BENCH_BIN=$FASTIFY bench_server "$F_PORT" "${SETTINGS[@]}" DATABASE_POOL_SIZE="$F_POOL"
F_PID=$BENCH_LAST_PID
declare -A PORT_OF=([c]=$C_PORT [fastify]=$F_PORT) MAIN_PID=([c]=$C_PID [fastify]=$F_PID)

# Every process of a server: the C server is one process; the Node one is
# the cluster's primary and its workers.
pids_of() {
    local main=${MAIN_PID[$1]}
    echo "$main" $(pgrep -P "$main" || true)
}
HZ=$(getconf CLK_TCK)
cpu_ticks() {
    local t=0 p
    for p in "$@"; do
        t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
    done
    echo "$t"
}
status_sum() { # FIELD PIDS...: the sum of a /proc/PID/status field, KiB
    local field=$1 t=0 p
    shift
    for p in "$@"; do
        t=$((t + $(awk -v f="$field:" '$1 == f {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)))
    done
    echo "$t"
}
# PostgreSQL (the postmaster and its backends) and Redis, whose CPU per
# request is reported beside the servers': the same work for both servers
# should cost them the same.
db_pids() {
    local pm
    pm=$(sed -n 1p "$BENCH_SVC/pg/data/postmaster.pid" 2>/dev/null) || true
    echo $pm $(pgrep -P "${pm:-0}" || true) $(cat "$BENCH_SVC/redis/redis.pid" 2>/dev/null || true)
}
# Samples the servers' RSS every 0.2 s into FILE (its maximum) until killed.
rss_sampler() {
    local file=$1 max=0 r
    shift
    while :; do
        r=$(status_sum VmRSS "$@")
        ((r > max)) && max=$r && echo "$max" >"$file"
        sleep 0.2
    done
}

for s in c fastify; do
    echo "{\"check\":\"rss_idle\",\"server\":\"$s\",\"kib\":$(status_sum VmRSS $(pids_of $s))}" >>"$OUT/scale.jsonl"
done

# run_wrk KIND WORKLOAD SERVER ROUND CONNS SECONDS SCRIPT: one wrk run; a
# row in raw.tsv; a line on stderr.
run_wrk() {
    local kind=$1 name=$2 server=$3 round=$4 conns=$5 secs=$6 script=$7
    local pids t0 t1 d0 d1 out rep rssf=$BENCH_TMP/rss.$RANDOM
    pids=$(pids_of "$server")
    echo 0 >"$rssf"
    rss_sampler "$rssf" $pids &
    SAMPLER=$!
    t0=$(cpu_ticks $pids)
    d0=$(cpu_ticks $(db_pids))
    out=$(wrk -t"$THREADS" -c"$conns" -d"${secs}s" --latency -s "$script" "http://127.0.0.1:${PORT_OF[$server]}" 2>&1) || true
    t1=$(cpu_ticks $pids)
    d1=$(cpu_ticks $(db_pids))
    kill "$SAMPLER" 2>/dev/null || true
    wait "$SAMPLER" 2>/dev/null || true
    SAMPLER=""
    echo "$out" >"$OUT/wrk/$kind-$name-$server-r$round-c$conns.txt"
    rep=$(echo "$out" | grep '^REPORT ' || true)
    if [[ -z $rep ]]; then
        log "$name $server: wrk printed no report:"
        echo "$out" >&2
        return 1
    fi
    python3 - "$rep" "$kind" "$name" "$server" "$round" "$conns" "$((t1 - t0))" "$HZ" "$(cat "$rssf")" \
        "$(echo "$out" | awk '/Non-2xx or 3xx responses/ {print $NF}')" "$((d1 - d0))" >>"$RAW" <<'PY'
import sys
rep, kind, name, server, rnd, conns, ticks, hz, rss, non2xx, db_ticks = sys.argv[1:]
f = dict(kv.split("=") for kv in rep.split()[1:])
n = int(f["requests"])
secs = int(f["duration_us"]) / 1e6
cpu = int(ticks) / int(hz) * 1e6 / n if n else 0
db = int(db_ticks) / int(hz) * 1e6 / n if n else 0
sock = sum(int(f[k]) for k in ("connect", "read", "write", "timeout"))
row = [kind, name, server, rnd, conns, f"{n / secs:.1f}", f["p50"], f["p75"], f["p90"], f["p99"],
       f["p999"], f["max"], f"{cpu:.1f}", non2xx or "0", str(sock), rss, str(n), f"{db:.1f}"]
print("\t".join(row))
PY
    tail -n 1 "$RAW" | awk -F'\t' '{printf "  %-5s %-8s r%s c%-5s %10s req/s  p50 %6.2f ms  p99 %7.2f ms  cpu %6s us/req  non-2xx %s  sock-err %s  rss %d KiB\n", $2, $3, $4, $5, $6, $7/1000, $10/1000, $13, $14, $15, $16}' >&2
}
mkdir -p "$OUT/wrk" "$OUT/hey"

# Alternating order: odd rounds C first, even rounds Fastify first.
order() { if (($1 % 2)); then echo c fastify; else echo fastify c; fi; }

warm_cache() {
    local s
    for s in c fastify; do
        wrk -t"$THREADS" -c16 -d"${WARM_SECS}s" -s "$WRK_LIB/w2-get-cached.lua" "http://127.0.0.1:${PORT_OF[$s]}" >/dev/null
    done
}

# ------------------------------------------- scale: idle keep-alive connections

# First, on servers that have not yet seen a crowd (an allocator that already
# grew for 1,024 busy connections would hide what idle ones cost).
log "scale: $IDLE_CONNS idle keep-alive connections per server"
for s in c fastify; do
    res=$(python3 "$BENCH_DIR/idle-conns.py" "${PORT_OF[$s]}" "$IDLE_CONNS" $(pids_of $s)) || res='{"error":"failed"}'
    echo "{\"check\":\"idle\",\"server\":\"$s\",\"result\":$res}" >>"$OUT/scale.jsonl"
    log "  $s: $res"
done

# ------------------------------------------------------------------ workloads

declare -A SCRIPT=([W1]=w1-health [W2]=w2-get-cached [W3]=w3-list-walk [W4]=w4-post-keyed
    [W5]=w5-patch-if-match [MIX]=mixed-90-10)
log "warm-up (not measured): $WARM_WORKLOADS, ${WARM_SECS}s each per server"
for w in $WARM_WORKLOADS; do
    for s in c fastify; do
        [[ $w == W5 ]] && reset_patch_ids
        wrk -t"$THREADS" -c"$CONNS" -d"${WARM_SECS}s" -s "$WRK_LIB/${SCRIPT[$w]}.lua" \
            "http://127.0.0.1:${PORT_OF[$s]}" >/dev/null
    done
done
log "workloads: $ROUNDS round(s) of ${DURATION}s each, wrk -t$THREADS -c$CONNS"
for w in W1 W2 W3 W4 W5 MIX; do
    for ((r = 1; r <= ROUNDS; r++)); do
        for s in $(order "$r"); do
            [[ $w == W5 ]] && reset_patch_ids
            run_wrk run "$w" "$s" "$r" "$CONNS" "$DURATION" "$WRK_LIB/${SCRIPT[$w]}.lua"
        done
    done
done

# ------------------------------------------------------- latency vs concurrency

log "latency vs concurrency (W2): $CONC_LEVELS connections, ${CONC_SECS}s each"
((SMOKE)) || warm_cache # MIX's writes emptied part of the cache
i=0
for c in $CONC_LEVELS; do
    i=$((i + 1))
    for s in $(order "$i"); do
        run_wrk conc W2 "$s" 1 "$c" "$CONC_SECS" "$WRK_LIB/w2-get-cached.lua"
    done
done

# ------------------------------------------------------- open loop, fixed rates

printf 'server\ttarget_rps\tachieved_rps\tp50_us\tp90_us\tp99_us\tnon200\terrors\n' >"$OUT/open.tsv"
run_hey() { # SERVER RATE
    local server=$1 rate=$2 workers q out
    # hey paces each of its workers at q req/s; enough workers that each
    # has 20 ms per request keeps the schedule even when answers slow down.
    workers=$(((rate + 49) / 50))
    ((workers < 10)) && workers=10
    q=$(((rate + workers - 1) / workers))
    out=$(hey -z "${OPEN_SECS}s" -c "$workers" -q "$q" -H "Authorization: Bearer $BENCH_TOKEN" \
        "http://127.0.0.1:${PORT_OF[$server]}/v1/users/$(head -n 1 "$HOT_IDS")" 2>&1) || true
    echo "$out" >"$OUT/hey/open-$server-$rate.txt"
    echo "$out" | python3 -c '
import re, sys
server, rate = sys.argv[1:]
t = sys.stdin.read()
rps = re.search(r"Requests/sec:\s+([0-9.]+)", t)
pct = {m.group(1): float(m.group(2)) * 1e6 for m in re.finditer(r"(\d+)%+ in ([0-9.]+) secs", t)}
codes = {int(a): int(b) for a, b in re.findall(r"\[(\d+)\]\s+(\d+) responses", t)}
errs = sum(int(n) for n in re.findall(r"\[(\d+)\]\t", t.split("Error distribution:")[1])) if "Error distribution:" in t else 0
non200 = sum(v for k, v in codes.items() if k != 200)
print("\t".join([server, rate, rps.group(1) if rps else "0", "%.0f" % pct.get("50", 0),
                 "%.0f" % pct.get("90", 0), "%.0f" % pct.get("99", 0), str(non200), str(errs)]))
' "$server" "$rate" >>"$OUT/open.tsv"
    tail -n 1 "$OUT/open.tsv" | awk -F'\t' '{printf "  open  %-8s target %6s req/s  achieved %8s  p50 %6.2f ms  p99 %7.2f ms  non-200 %s\n", $1, $2, $3, $4/1000, $6/1000, $7}' >&2
}
log "open loop (hey -q): $OPEN_RATES req/s, ${OPEN_SECS}s each"
i=0
for rate in $OPEN_RATES; do
    i=$((i + 1))
    for s in $(order "$i"); do run_hey "$s" "$rate"; done
done

# ---------------------------------------------------------------- scale checks

# A signed cursor for the page after the given id (the same format and
# CURSOR_SECRET for both servers).
cursor_after() {
    python3 - "$1" <<'PY'
import base64, hashlib, hmac, os, sys, uuid
raw = b"\x01" + uuid.UUID(sys.argv[1]).bytes
mac = hmac.new(os.environ["CURSOR_SECRET"].encode(), raw, hashlib.sha256).digest()[:16]
print(base64.urlsafe_b64encode(raw + mac).rstrip(b"=").decode())
PY
}
depth_check() { # ROWS LABEL
    local rows=$1 last cursor s
    last=$(psql -Atq "$DATABASE_MIGRATION_URL" -c "SELECT id FROM users ORDER BY id DESC OFFSET 20 LIMIT 1")
    cursor=$(cursor_after "$last")
    for s in c fastify; do
        WRK_PATH="/v1/users?limit=20" run_wrk depth "first-$rows" "$s" 1 16 "$DEPTH_SECS" "$WRK_LIB/get-path.lua"
        WRK_PATH="/v1/users?limit=20&cursor=$cursor" run_wrk depth "last-$rows" "$s" 1 16 "$DEPTH_SECS" "$WRK_LIB/get-path.lua"
    done
}
rows_now=$(psql -Atq "$DATABASE_MIGRATION_URL" -c "SELECT count(*) FROM users")
log "scale: list latency at $rows_now rows (first and last page)"
depth_check "$rows_now"
if ((BIG_ROWS > rows_now)); then
    log "scale: seeding up to $BIG_ROWS rows (generate_series in PostgreSQL)"
    t0=$(date +%s)
    # Ordered UUIDs (like v7 ones) under the seeded ones: append-only index inserts.
    psql -q "$DATABASE_MIGRATION_URL" -c "SET synchronous_commit = off; SET maintenance_work_mem = '256MB';
        INSERT INTO users (id, email, name)
        SELECT ('00000000-0000-7000-8000-' || lpad(to_hex(n), 12, '0'))::uuid, 'big' || n || '@big.example', 'Big ' || n
        FROM generate_series(1, $((BIG_ROWS - rows_now))) n" >/dev/null
    psql -q "$DATABASE_MIGRATION_URL" -c "VACUUM ANALYZE users" >/dev/null
    secs=$(($(date +%s) - t0))
    rows_big=$(psql -Atq "$DATABASE_MIGRATION_URL" -c "SELECT count(*) FROM users")
    echo "{\"check\":\"big_seed\",\"rows\":$rows_big,\"seconds\":$secs}" >>"$OUT/scale.jsonl"
    log "  seeded $rows_big rows in ${secs}s"
    depth_check "$rows_big"
fi

for s in c fastify; do
    echo "{\"check\":\"rss_peak\",\"server\":\"$s\",\"kib\":$(status_sum VmHWM $(pids_of $s))}" >>"$OUT/scale.jsonl"
done

# --------------------------------------------------------------------- report

{
    echo "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "smoke=$SMOKE"
    echo "cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo) x $(nproc)"
    echo "memory=$(awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
    echo "kernel=$(uname -r)"
    echo "api_version=$("$ROOT/build/api" --version | head -n 1)"
    echo "node=$(node --version)"
    echo "fastify=$(node -p 'require(process.argv[1]).packages["node_modules/fastify"].version' "$BENCH_DIR/reference/fastify/package-lock.json")"
    echo "postgres=$(/usr/lib/postgresql/15/bin/postgres --version | awk '{print $3}')"
    echo "redis=$(redis-server --version | awk '{print $3}' | tr -d v=)"
    echo "wrk=-t$THREADS -c$CONNS, $ROUNDS round(s) of ${DURATION}s, alternating order, after ${WARM_SECS}s of warm-up per workload ($WARM_WORKLOADS)"
    echo "settings=${SETTINGS[*]}; DATABASE_POOL_SIZE api $POOL, Fastify $F_POOL (split across workers)"
    echo "durable=$DURABLE"
    echo "seconds=$(($(date +%s) - T_START))"
} >"$OUT/meta.env"
python3 "$BENCH_DIR/compare-report.py" "$OUT"
log "report: $OUT/report.md ($(($(date +%s) - T_START)) s)"
