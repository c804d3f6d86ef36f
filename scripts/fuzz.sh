#!/usr/bin/env bash
# Runs the libFuzzer targets that `make fuzz` builds (build/fuzz/<name>, one
# per tests/fuzz/<name>.c) on their committed seeds, tests/fuzz/corpus/<name>/,
# with tests/fuzz/<name>.dict when there is one. See docs/fuzzing.md.
#
#   scripts/fuzz.sh list                     the targets
#   scripts/fuzz.sh smoke [BUDGET_S]         every target, sharing BUDGET_S
#                                            seconds of wall time (default
#                                            50); what scripts/test.sh runs
#   scripts/fuzz.sh run NAME [SECONDS] [ARGS...]
#                                            one target for SECONDS (default
#                                            600), extra ARGS to libFuzzer; new
#                                            inputs accumulate in
#                                            build/fuzz/work/NAME across runs
#   scripts/fuzz.sh cov NAME                 line and branch coverage of the
#                                            source files that the seeds and
#                                            build/fuzz/work/NAME reach (needs
#                                            make fuzz-cov)
#   scripts/fuzz.sh merge NAME               adds to the committed seeds the
#                                            inputs of build/fuzz/work/NAME
#                                            that reach new coverage (review
#                                            before committing: keep seeds few)
#
# Committed seeds are only read, never written: new inputs go to a work
# directory. A crash, leak, timeout or failed property leaves its input in
# build/fuzz/artifacts/ and fails the command; reproduce it with
# `build/fuzz/NAME build/fuzz/artifacts/NAME-crash-...`.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "${ROOT}"

BIN_DIR=build/fuzz
ARTIFACTS=build/fuzz/artifacts
SEEDS=tests/fuzz/corpus

# Sanitizer settings as in scripts/test.sh; values the caller set win.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:halt_on_error=1}"
if [[ -z ${LSAN_OPTIONS:-} && -f tests/lsan.supp ]]; then
  export LSAN_OPTIONS="suppressions=${ROOT}/tests/lsan.supp"
fi
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2
  exit 2
}

targets() {
  local f
  for f in tests/fuzz/*.c; do
    basename "${f}" .c
  done
}

# The binary of target $1 in directory $2 (default build/fuzz), which the
# make command $3 (default "make fuzz") builds.
binary() {
  local bin="${2:-${BIN_DIR}}/$1"
  if [[ ! -f tests/fuzz/$1.c ]]; then
    echo "fuzz.sh: no target $1 (tests/fuzz/$1.c); targets: $(targets | tr '\n' ' ')" >&2
    exit 2
  fi
  if [[ ! -x ${bin} ]]; then
    echo "fuzz.sh: ${bin} is not built (run ${3:-make fuzz})" >&2
    exit 1
  fi
  if [[ ! -d ${SEEDS}/$1 ]]; then
    echo "fuzz.sh: ${SEEDS}/$1/ is missing: every target needs committed seeds" >&2
    exit 1
  fi
  echo "${bin}"
}

# The libFuzzer arguments every run has: limits, where findings go, the
# dictionary. Per-input limits: 10 s and 2 GiB.
common_args() {
  local name=$1
  mkdir -p "${ARTIFACTS}"
  printf '%s\n' -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 "-artifact_prefix=${ARTIFACTS}/${name}-"
  if [[ -f tests/fuzz/${name}.dict ]]; then
    printf '%s\n' "-dict=tests/fuzz/${name}.dict"
  fi
}

# One target for a few seconds on a throwaway work directory; a line of
# figures when it passes, the tail of its log when it does not.
smoke_one() {
  local name=$1 seconds=$2 bin work log rc=0 args
  bin=$(binary "${name}")
  work=$(mktemp -d)
  log="${work}.log"
  mapfile -t args < <(common_args "${name}")
  "${bin}" "${args[@]}" -max_total_time="${seconds}" "${work}" "${SEEDS}/${name}" >"${log}" 2>&1 || rc=$?
  if [[ ${rc} -eq 0 ]]; then
    local runs cov
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "${log}")
    cov=$(grep -o 'cov: [0-9]* ft: [0-9]*' "${log}" | tail -n 1)
    printf 'fuzz: %-16s ok  %ss  %s runs  %s\n' "${name}" "${seconds}" "${runs:-?}" "${cov}"
  else
    echo "fuzz: ${name}: FAILED (exit ${rc}); log tail:" >&2
    tail -n 60 "${log}" >&2
  fi
  rm -rf "${work}" "${log}"
  return "${rc}"
}

smoke() {
  local budget=${1:-50} names n per failed=() start
  mapfile -t names < <(targets)
  n=${#names[@]}
  # libFuzzer stops in the second after -max_total_time (it counts whole
  # seconds since start-up), so each target takes about a second more.
  per=$((budget / n - 1))
  [[ ${per} -ge 1 ]] || per=1
  start=${SECONDS}
  for name in "${names[@]}"; do
    smoke_one "${name}" "${per}" || failed+=("${name}")
  done
  echo "fuzz: ${n} targets, ${per} s each, $((SECONDS - start)) s in all"
  if [[ ${#failed[@]} -gt 0 ]]; then
    echo "fuzz.sh: FAILED: ${failed[*]} (inputs in ${ARTIFACTS}/)" >&2
    return 1
  fi
}

run() {
  local name=${1:?usage: fuzz.sh run NAME [SECONDS] [ARGS...]} seconds=${2:-600} bin args
  shift $(($# >= 2 ? 2 : 1))
  bin=$(binary "${name}")
  local work="${BIN_DIR}/work/${name}"
  mkdir -p "${work}"
  mapfile -t args < <(common_args "${name}")
  echo "fuzz.sh: ${bin} for ${seconds} s; new inputs in ${work}" >&2
  "${bin}" "${args[@]}" -max_total_time="${seconds}" "$@" "${work}" "${SEEDS}/${name}"
}

cov() {
  local name=${1:?usage: fuzz.sh cov NAME} bin prof dirs rc=0
  bin=$(binary "${name}" build/fuzzcov "make fuzz-cov")
  dirs=("${SEEDS}/${name}")
  if [[ -d ${BIN_DIR}/work/${name} ]]; then
    dirs+=("${BIN_DIR}/work/${name}")
  fi
  prof=$(mktemp -d)
  LLVM_PROFILE_FILE="${prof}/cov.profraw" "${bin}" -runs=0 "${dirs[@]}" >"${prof}/log" 2>&1 || rc=$?
  if [[ ${rc} -ne 0 ]]; then
    tail -n 40 "${prof}/log" >&2
    rm -rf "${prof}"
    return "${rc}"
  fi
  echo "fuzz.sh: ${name}: $(find "${dirs[@]}" -type f | wc -l) inputs from ${dirs[*]}"
  llvm-profdata merge -sparse "${prof}/cov.profraw" -o "${prof}/cov.profdata"
  # Per source file the target reached at all (the route table links in
  # every handler, which no parser calls), with the functions of it that
  # never ran; no totals, which would count the unreached files.
  llvm-cov export "${bin}" -instr-profile="${prof}/cov.profdata" -skip-expansions |
    /usr/bin/python3 -c '
import json, os, sys
root = os.path.join(sys.argv[1], "")
data = json.load(sys.stdin)["data"][0]
runs, seen = {}, {}  # (file, function): most runs of a copy, code regions reached
for fn in data["functions"]:
    key = (fn["filenames"][0], fn["name"].split(":")[-1])
    runs[key] = max(runs.get(key, 0), fn["count"])
    code = [r for r in fn["regions"] if r[7] == 0]  # kind 0: code, not skipped or expanded
    got = sum(1 for r in code if r[4] > 0)
    if got >= seen.get(key, (-1, 0))[0]:
        seen[key] = (got, len(code))
idle, part = {}, {}
for (file, name), n in runs.items():
    got, total = seen[(file, name)]
    if n == 0:
        idle.setdefault(file, []).append(name)
    elif got < total:
        part.setdefault(file, []).append("%s %d/%d" % (name, got, total))
pct = lambda s: "%5.1f%% of %4d" % (s["percent"], s["count"])
print("%-30s %-15s %-15s %-15s %s" % ("file", "lines", "branches", "functions",
      "never ran; partly run (code regions reached/all)"))
for f in sorted(data["files"], key=lambda f: f["filename"]):
    name, s = os.path.relpath(f["filename"], root), f["summary"]
    if name.startswith("src/") and s["functions"]["covered"] > 0:
        print("%-30s %-15s %-15s %-15s %s; %s" % (name, pct(s["lines"]), pct(s["branches"]),
              pct(s["functions"]), " ".join(sorted(idle.get(f["filename"], []))) or "-",
              ", ".join(sorted(part.get(f["filename"], []))) or "-"))
' "${ROOT}"
  rm -rf "${prof}"
}

merge() {
  local name=${1:?usage: fuzz.sh merge NAME} bin
  bin=$(binary "${name}")
  "${bin}" -merge=1 "${SEEDS}/${name}" "${BIN_DIR}/work/${name}"
}

case ${1:-} in
list) targets ;;
smoke) smoke "${2:-50}" ;;
run) shift && run "$@" ;;
cov) shift && cov "$@" ;;
merge) shift && merge "$@" ;;
*) usage ;;
esac
