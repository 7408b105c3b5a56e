#!/usr/bin/env bash
# Runs every libFuzzer target (tests/fuzz) for SECONDS each under ASan+UBSan.
# Usage: scripts/fuzz.sh [SECONDS [TARGET...]]   (default 60 seconds, every target)
#
# Configures and builds build-fuzz/ (clang, WLB_FUZZ=ON, CPU only) when needed. Each target
# starts from its seeds (tests/fuzz/corpus/TARGET, read only) and the corpus earlier runs grew
# (build-fuzz/fuzz-corpus/TARGET), with its dictionary (tests/fuzz/dict/TARGET.dict). A crash,
# leak, timeout (10 s an input) or out-of-memory (2 GB) input is saved under fuzz-artifacts/
# and the log under build-fuzz/fuzz-logs/. Prints one line per target (executions, coverage,
# status) and exits 1 if any target found something. WLB_FUZZ_BUILD=0 skips the configure and
# build (to run several at once on a tree already built). docs/fuzzing.md says more.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
root=$ROOT
source "$ROOT/scripts/lib/sanitizer-env.sh"
seconds=${1:-60}
shift || true
targets=("$@")
if ((${#targets[@]} == 0)); then
  targets=(fuzz_data_sources fuzz_traces fuzz_plan_config fuzz_specs)
fi
if ! [[ $seconds =~ ^[1-9][0-9]*$ ]]; then
  echo "fuzz.sh: SECONDS must be a positive integer, got '$seconds'" >&2
  exit 2
fi
build=$sanitizer_build
artifacts=$root/fuzz-artifacts

if [[ ${WLB_FUZZ_BUILD:-1} != 0 ]]; then
  configure_sanitizer_build
  cmake --build "$build" -j "$(nproc)" --target "${targets[@]}"
fi

# The largest input each target is given: the seeds' size with room to grow.
max_len() {
  case $1 in
    fuzz_traces) echo 65536 ;;
    fuzz_plan_config) echo 32768 ;;
    fuzz_data_sources) echo 4096 ;;
    *) echo 512 ;;
  esac
}

mkdir -p "$build/fuzz-logs" "$artifacts"
findings=0
summary=()
for t in "${targets[@]}"; do
  corpus=$build/fuzz-corpus/$t
  seeds=$root/tests/fuzz/corpus/$t
  log=$build/fuzz-logs/$t.log
  mkdir -p "$corpus" "$artifacts/$t"
  dict=()
  if [[ -f $root/tests/fuzz/dict/$t.dict ]]; then dict=(-dict="$root/tests/fuzz/dict/$t.dict"); fi
  echo "== fuzz $t for ${seconds}s (log: $log)"
  start=$(date +%s)
  set +e
  "$build/tests/fuzz/$t" -max_total_time="$seconds" -max_len="$(max_len "$t")" \
    -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 -artifact_prefix="$artifacts/$t/" \
    "${dict[@]}" "$corpus" "$seeds" >"$log" 2>&1
  rc=$?
  set -e
  elapsed=$(($(date +%s) - start))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -1 || true)
  status=ok
  if ((rc != 0)); then
    findings=$((findings + 1))
    status="FINDING (exit $rc): $(grep -m1 -oE 'ERROR: [A-Za-z]+: [^ ]+( [^ ]+)?|runtime error: .*' "$log" || echo 'see log')"
    tail -40 "$log" >&2
  fi
  # Remove the folder when nothing was saved, so fuzz-artifacts/ lists only findings.
  rmdir "$artifacts/$t" 2>/dev/null || true
  summary+=("$(printf '%-18s %5ss  execs %-10s %-22s %s' "$t" "$elapsed" "${execs:-?}" \
    "${cov:-cov: ?}" "$status")")
done

echo "== fuzz summary ($(date -u +%Y-%m-%dT%H:%M:%SZ), ${seconds}s a target)"
printf '%s\n' "${summary[@]}"
if ((findings > 0)); then
  echo "fuzz.sh: $findings target(s) found something; inputs under $artifacts" >&2
  exit 1
fi
