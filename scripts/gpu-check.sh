#!/usr/bin/env bash
# One command for a machine with a GPU: build with the GPU tests on, run every GPU test and GPU
# benchmark under timeouts, keep every log, and print a short table last.
#
#   scripts/gpu-check.sh [RESULTS_DIR]        (default: $OUT, else ./gpu-check-results)
#
# Environment:
#   WLB_GPU_BUILD_DIR   build directory (default: build-gpu in the repository)
#   WLB_GPU_SKIP_BUILD  1: use the existing build directory as it is
#   WLB_GPU_QUICK       1: shorter benchmarks (fewer repeats, shapes and micro-batches)
#   WLB_GPU_TEST_TIMEOUT, WLB_GPU_BENCH_TIMEOUT, WLB_GPU_BUILD_TIMEOUT   seconds (300, 600, 1500)
#
# Results: machine.txt (GPU, driver, toolkit, date), build.log, tests/<test>.log, one
# <benchmark>.md per benchmark, summary.md (the table printed last). Exit status 0 when every
# test passed or skipped and every benchmark ran; 1 otherwise.
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
results=${1:-${OUT:-$root/gpu-check-results}}
build=${WLB_GPU_BUILD_DIR:-$root/build-gpu}
test_timeout=${WLB_GPU_TEST_TIMEOUT:-300}
bench_timeout=${WLB_GPU_BENCH_TIMEOUT:-600}
build_timeout=${WLB_GPU_BUILD_TIMEOUT:-1500}
quick=${WLB_GPU_QUICK:-0}
mkdir -p "$results/tests"
summary=()
failed=0
started=$(date +%s)

say() { printf '== %s\n' "$*"; }
row() { summary+=("| $1 | $2 | $3 | $4 |"); }

# ---- machine --------------------------------------------------------------------------------
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "host: $(hostname)"
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader
  else
    echo "nvidia-smi: not found"
  fi
  if [[ -x /usr/local/cuda/bin/nvcc ]]; then /usr/local/cuda/bin/nvcc --version | tail -2; fi
  echo "cores: $(nproc)"
} >"$results/machine.txt" 2>&1
say "machine"
cat "$results/machine.txt"
gpu=$(command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
arch=$(command -v nvidia-smi >/dev/null &&
  nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d '.')
[[ "$arch" =~ ^[0-9]+$ ]] || arch=90

# ---- build ----------------------------------------------------------------------------------
targets=(wlb_gpu_tests bench_cuda_attention bench_cuda_cp_emulation bench_cuda_capture)
if [[ "${WLB_GPU_SKIP_BUILD:-0}" != 1 ]]; then
  say "build in $build (CUDA architecture $arch, log: $results/build.log)"
  generator=()
  command -v ninja >/dev/null && generator=(-G Ninja)
  t0=$(date +%s)
  if timeout "$build_timeout" bash -c '
      cmake -S "$1" -B "$2" "${@:4}" -DCMAKE_BUILD_TYPE=Release -DWLB_CUDA=ON \
        -DWLB_GPU_TESTS=ON -DWLB_BENCH=ON -DCMAKE_CUDA_ARCHITECTURES="$3" &&
      cmake --build "$2" -j "$(nproc)" --target wlb_gpu_tests bench_cuda_attention \
        bench_cuda_cp_emulation bench_cuda_capture' _ "$root" "$build" "$arch" "${generator[@]}" \
      >"$results/build.log" 2>&1; then
    row build ok $(($(date +%s) - t0)) "sm_$arch"
  else
    status=$?
    row build "FAILED (exit $status)" $(($(date +%s) - t0)) "see build.log"
    tail -30 "$results/build.log"
    failed=1
  fi
else
  row build skipped 0 "WLB_GPU_SKIP_BUILD=1, using $build"
fi

# Shared libraries the binaries cannot find (a machine without the Debian packages).
for t in "${targets[@]}"; do
  exe=$(find "$build" -name "$t" -type f -perm -u+x 2>/dev/null | head -1)
  if [[ -n "$exe" ]] && ldd "$exe" 2>/dev/null | grep -q "not found"; then
    echo "warning: $t misses shared libraries:"
    ldd "$exe" | grep "not found"
  fi
done

# ---- GPU tests, one test case at a time -----------------------------------------------------
tests_exe="$build/tests/wlb_gpu_tests"
if [[ -x "$tests_exe" ]]; then
  say "GPU tests ($tests_exe), ${test_timeout}s each"
  mapfile -t cases < <("$tests_exe" --gtest_list_tests | awk '
    /^[^ ]/ { suite = $1 } /^  / { print suite $1 }')
  for c in "${cases[@]}"; do
    log="$results/tests/$c.log"
    t0=$(date +%s)
    timeout "$test_timeout" "$tests_exe" --gtest_filter="$c" --gtest_color=no >"$log" 2>&1
    status=$?
    dt=$(($(date +%s) - t0))
    note=$(grep -m1 -E "relative error|Skipped|Failure|error" "$log" | cut -c1-90)
    if [[ $status -eq 124 ]]; then
      row "$c" "TIMEOUT" "$dt" "killed after ${test_timeout}s"
      failed=1
    elif [[ $status -ne 0 ]]; then
      row "$c" "FAIL" "$dt" "$note"
      failed=1
    elif grep -q "\[  SKIPPED \]" "$log"; then
      row "$c" "skip" "$dt" "$(grep -m1 -A1 'Skipped' "$log" | tail -1 | cut -c1-90)"
    else
      row "$c" "pass" "$dt" "$note"
    fi
    printf '%-60s %s\n' "$c" "${summary[-1]}"
  done
else
  row "GPU tests" "NOT BUILT" 0 "$tests_exe missing"
  failed=1
fi

# ---- GPU benchmarks -------------------------------------------------------------------------
run_bench() {
  local name=$1
  shift
  local exe="$build/tests/bench/$name"
  if [[ ! -x "$exe" ]]; then
    row "$name" "NOT BUILT" 0 ""
    failed=1
    return
  fi
  say "$name $* (${bench_timeout}s; output: $results/$name.md)"
  local t0
  t0=$(date +%s)
  timeout "$bench_timeout" "$exe" "$@" >"$results/$name.md" 2>&1
  local status=$?
  local dt=$(($(date +%s) - t0))
  cat "$results/$name.md"
  if [[ $status -eq 124 ]]; then
    row "$name" "TIMEOUT" "$dt" "partial output kept"
    failed=1
  elif [[ $status -ne 0 ]]; then
    row "$name" "FAIL (exit $status)" "$dt" "$(tail -1 "$results/$name.md" | cut -c1-90)"
    failed=1
  elif grep -q "^$name: skipped:" "$results/$name.md"; then
    row "$name" skip "$dt" "$(head -1 "$results/$name.md" | cut -c1-90)"
  else
    row "$name" ok "$dt" "$*"
  fi
}
if [[ "$quick" == 1 ]]; then
  run_bench bench_cuda_attention --repeats 3 --quick
  run_bench bench_cuda_capture --steps 8 --layers 2
  run_bench bench_cuda_cp_emulation --micro-batches 1 --repeats 2
else
  run_bench bench_cuda_attention --repeats 5
  run_bench bench_cuda_capture --steps 20 --layers 4
  run_bench bench_cuda_cp_emulation --micro-batches 2 --repeats 3
fi

# ---- summary --------------------------------------------------------------------------------
{
  echo "# gpu-check: ${gpu:-no GPU found}, $(date -u +%Y-%m-%d), $(($(date +%s) - started)) s"
  echo
  echo "| item | status | seconds | note |"
  echo "| --- | --- | ---: | --- |"
  printf '%s\n' "${summary[@]}"
} >"$results/summary.md"
echo
cat "$results/summary.md"
exit $failed
