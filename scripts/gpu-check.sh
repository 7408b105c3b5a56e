#!/usr/bin/env bash
# The GPU check (docs/cuda-runtime.md, "GPU check"): every GPU test, the cuda backend's run
# (`wlbtune run --backend cuda --emulate`, analyze on its trace, bench_cuda_run's loss, sharding,
# packing, analyze and capture-overhead tables), compute-sanitizer on two attention cases, the GPU
# benchmarks in a quick mode and PyTorch's attention on the same shapes, and `wlbtune profile` on
# a small PyTorch job (docs/profile.md), in one command that fits a short GPU window.
#
#   scripts/gpu-check.sh --bundle FILE [--results DIR]   no build: FILE from scripts/gpu-bundle.sh
#   scripts/gpu-check.sh [--results DIR | DIR]           build the bundle here first (this machine
#                                                        needs the Debian packages), then check it
#
# DIR defaults to $OUT, else ./gpu-check-results. It receives three files (four with a GPU: the
# calibrated hardware.json): summary.md (the
# table, also printed last), machine.txt (GPU, driver, libraries used and their versions) and
# logs.tar.gz (every log). Exit status 0 when every GPU test passed or skipped, no sanitizer run
# found an error and no benchmark failed; 1 otherwise; 2 for bad arguments or a missing library.
#
# Environment (seconds):
#   WLB_GPU_BUDGET          the whole run (400): a step that would start past it is not run
#   WLB_GPU_TEST_TIMEOUT    one GPU test (60); WLB_GPU_TEST_BUDGET all GPU tests (120)
#   WLB_GPU_SANITIZER_TIMEOUT   one compute-sanitizer run (45)
#   WLB_GPU_BENCH_TIMEOUT   one benchmark (60); WLB_GPU_PEER_TIMEOUT the PyTorch peer (90)
#   WLB_GPU_RUN_TIMEOUT     the run items together: wlbtune run + analyze, bench_cuda_run (120)
#   WLB_GPU_PROFILE_TIMEOUT wlbtune profile on the PyTorch job, all of it (110)
#   WLB_GPU_CALIBRATE_TIMEOUT   wlbtune calibrate --backend cuda --quick (60)
#   WLB_GPU_FULL            1: the benchmarks' full shape lists instead of the quick ones, and
#                           bench_cuda_cp_emulation (the per-layer emulation on random buffers,
#                           which the cuda backend's --emulate replaces in the default check)
#   WLB_CUDA_LIB_DIRS       colon-separated folders searched first for the CUDA libraries
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
started=$(date +%s)
machine_ld_path=${LD_LIBRARY_PATH:-} # for PyTorch: the bundle's libraries are for our binaries

bundle=""
results=""
while [[ $# -gt 0 ]]; do
  case $1 in
    --bundle) bundle=${2:?--bundle needs a file}; shift 2 ;;
    --results) results=${2:?--results needs a folder}; shift 2 ;;
    -h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    -*) echo "gpu-check: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) results=$1; shift ;;
  esac
done
results=${results:-${OUT:-$PWD/gpu-check-results}}
budget=${WLB_GPU_BUDGET:-400}
test_timeout=${WLB_GPU_TEST_TIMEOUT:-60}
test_budget=${WLB_GPU_TEST_BUDGET:-120}
sanitizer_timeout=${WLB_GPU_SANITIZER_TIMEOUT:-45}
bench_timeout=${WLB_GPU_BENCH_TIMEOUT:-60}
peer_timeout=${WLB_GPU_PEER_TIMEOUT:-90}
run_timeout=${WLB_GPU_RUN_TIMEOUT:-120}
calibrate_timeout=${WLB_GPU_CALIBRATE_TIMEOUT:-60}
profile_timeout=${WLB_GPU_PROFILE_TIMEOUT:-110}

say() { printf '== %s\n' "$*"; }
elapsed() { echo $(($(date +%s) - started)); }
# Seconds left of the whole budget, capped at $1.
left() {
  local l=$((budget - $(elapsed)))
  ((l < $1)) && echo "$l" || echo "$1"
}

# ---- the bundle -----------------------------------------------------------------------------
if [[ -z $bundle ]]; then
  say "no --bundle: building one here (scripts/gpu-bundle.sh)"
  arch=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d '.')
  [[ $arch =~ ^[0-9]+$ ]] || arch=90
  bundle=$(WLB_BUNDLE_ARCH=$arch "$root/scripts/gpu-bundle.sh" | tail -1) ||
    { echo "gpu-check: building the bundle failed" >&2; exit 1; }
  started=$(date +%s) # the budget is the check's, not the build's
fi
[[ -f $bundle ]] || { echo "gpu-check: no bundle at $bundle (scripts/gpu-bundle.sh makes it)" >&2; exit 2; }
mkdir -p "$results" || exit 2
results=$(cd "$results" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/wlb-gpu-check.XXXXXX") || exit 2
trap 'rm -rf "$work"' EXIT
logs=$work/logs
mkdir -p "$logs/tests" "$logs/sanitizer" "$logs/bench"
tar -xzf "$bundle" -C "$work" || { echo "gpu-check: cannot unpack $bundle" >&2; exit 2; }
b=$work/wlbtune-gpu
bin=$b/bin
say "bundle $bundle ($(stat -c %s "$bundle") bytes), unpacked in $work"
sed 's/^/  /' "$b/MANIFEST"

summary=()
failed=0
# row ITEM STATUS SECONDS NOTE: one line of the summary table, also printed as it comes.
row() {
  summary+=("| $1 | $2 | $3 | $4 |")
  printf '  %-64s %-8s %4ss  %s\n' "$1" "$2" "$3" "$4"
}
note_of() { tr '|\t' '/ ' <<<"$1" | cut -c1-110; }
# Stops before any test: the reason in summary.md too (all a GPU session may get back).
stop_early() {
  printf 'gpu-check: %s\n' "$@" >&2
  {
    echo "# gpu-check: stopped before the tests, $(date -u +%Y-%m-%d), $(elapsed) s"
    echo
    printf '%s\n' "$@" | sed 's/^/    /'
  } >"$results/summary.md"
  exit 2
}

# ---- CUDA libraries: the toolkit's and PyTorch's wheels' --------------------------------------
dirs=()
add_dir() { [[ -d $1 ]] && dirs+=("$(cd "$1" && pwd -P)"); }
IFS=: read -ra extra <<<"${WLB_CUDA_LIB_DIRS:-}"
for d in "${extra[@]}"; do add_dir "$d"; done
for d in "${CUDA_HOME:-}" "${CUDA_PATH:-}" /usr/local/cuda $(ls -d /usr/local/cuda-* 2>/dev/null | sort -rV); do
  [[ -n $d ]] || continue
  add_dir "$d/lib64"
  add_dir "$d/lib"
  add_dir "$d/targets/x86_64-linux/lib"
done
site_nvidia=()
if command -v python3 >/dev/null; then
  # The nvidia namespace package of the Python that runs PyTorch (no torch import: seconds).
  mapfile -t site_nvidia < <(timeout 20 python3 -c 'import nvidia, os
for p in nvidia.__path__:
    for d in sorted(os.listdir(p)):
        lib = os.path.join(p, d, "lib")
        if os.path.isdir(lib): print(lib)' 2>/dev/null)
fi
# Without python3 on PATH: the usual site-packages folders.
for d in "${site_nvidia[@]}" ${VIRTUAL_ENV:+$VIRTUAL_ENV/lib/python3*/site-packages/nvidia/*/lib} \
  ${CONDA_PREFIX:+$CONDA_PREFIX/lib/python3*/site-packages/nvidia/*/lib} \
  /usr/local/lib/python3*/{site,dist}-packages/nvidia/*/lib /usr/lib/python3*/{site,dist}-packages/nvidia/*/lib \
  "${HOME:-/root}"/.local/lib/python3*/site-packages/nvidia/*/lib; do
  add_dir "$d"
done
# Unique, in order of preference.
declare -A seen_dir=()
search=()
for d in "${dirs[@]}"; do
  [[ -n ${seen_dir[$d]:-} ]] && continue
  seen_dir[$d]=1
  search+=("$d")
done
needed=$(sed -n 's/^cuda-needed: //p' "$b/MANIFEST")
declare -A used_dir=()
missing=()
lib_lines=()
for so in $needed; do
  found=""
  for d in "${search[@]}"; do
    if [[ -e $d/$so ]]; then found=$d; break; fi
  done
  if [[ -z $found ]]; then
    # Perhaps in the loader's cache (a system install under /usr/lib).
    found=$(ldconfig -p 2>/dev/null | awk -v so="$so" '$1 == so { print $NF; exit }')
    [[ -n $found ]] && found=$(dirname "$found")
  fi
  if [[ -z $found ]]; then
    missing+=("$so")
  else
    used_dir[$found]=1
    lib_lines+=("$so: $(readlink -f "$found/$so")")
  fi
done
ld_path=$b/lib
for d in "${search[@]}"; do [[ -n ${used_dir[$d]:-} ]] && ld_path+=":$d"; done
{
  echo "CUDA libraries needed by the bundle: $needed"
  echo "searched: ${search[*]:-nothing found}"
  printf '%s\n' "${lib_lines[@]}"
} >"$logs/libraries.txt"
sed 's/^/  /' "$logs/libraries.txt"
if ((${#missing[@]} > 0)); then
  stop_early "missing CUDA libraries: ${missing[*]}" \
    "searched: ${search[*]:-no toolkit lib64, no site-packages nvidia/*/lib}" \
    "fix: install the CUDA toolkit or PyTorch's nvidia wheels, or set WLB_CUDA_LIB_DIRS"
fi
# libstdc++ and libgcc_s from the bundle only where the machine's own are too old.
export LD_LIBRARY_PATH=$ld_path${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
if ldd "$bin/wlb_gpu_tests" 2>&1 | grep -qE "GLIBCXX|CXXABI|GCC_[0-9]"; then
  export LD_LIBRARY_PATH=$b/lib/fallback:$LD_LIBRARY_PATH
  echo "  the machine's libstdc++ is older than the bundle's: using the bundle's"
fi
unresolved=$(for f in "$bin"/*; do ldd "$f" 2>&1 | grep -E "not found" | sed "s|^|$(basename "$f"): |"; done)
if [[ -n $unresolved ]]; then
  mapfile -t unresolved_lines <<<"$unresolved"
  stop_early "the bundle's binaries cannot load:" "${unresolved_lines[@]}" \
    "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
fi

# ---- machine --------------------------------------------------------------------------------
say "machine"
"$bin/wlb_gpu_probe" >"$logs/probe.txt" 2>&1
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "host: $(hostname), $(uname -srm), $(ldd --version 2>&1 | head -1)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores, \
$(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)"
  if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap,clocks.max.sm,power.limit \
      --format=csv 2>&1 | sed 's/^/gpu: /'
  else
    echo "gpu: nvidia-smi not found"
  fi
  sed 's/^/probe: /' "$logs/probe.txt"
  sed 's/^/libraries: /' "$logs/libraries.txt"
  echo "LD_LIBRARY_PATH: $LD_LIBRARY_PATH"
  sed 's/^/bundle: /' "$b/MANIFEST"
} >"$results/machine.txt"
cat "$logs/probe.txt"
gpu=$(sed -n 's/^device 0: \([^,]*\),.*/\1/p' "$logs/probe.txt")
no_device=$(sed -n 's/^devices: none (\(.*\))$/\1/p' "$logs/probe.txt")
no_driver=$(sed -n 's/^driver library: not loadable (\(.*\))$/\1/p' "$logs/probe.txt")
[[ -n $no_driver ]] && no_device="$no_device; $no_driver"
row probe "$([[ -n $gpu ]] && echo ok || echo "no device")" "$(elapsed)" \
  "$(note_of "${gpu:-no CUDA device: $no_device}")"

# ---- GPU tests: each in its own process -------------------------------------------------------
say "GPU tests, ${test_timeout}s each, ${test_budget}s in all"
mapfile -t cases < <("$bin/wlb_gpu_tests" --gtest_list_tests | awk '
  /^[^ ]/ { suite = $1 } /^  / { print suite $1 }')
test_start=$(date +%s)
counts=(0 0 0) # passed, skipped, failed
if ((${#cases[@]} == 0)); then
  row "GPU tests" FAIL 0 "wlb_gpu_tests --gtest_list_tests listed nothing"
  failed=1
fi
for c in "${cases[@]}"; do
  log=$logs/tests/$c.log
  spent=$(($(date +%s) - test_start))
  t=$(left $((test_budget - spent < test_timeout ? test_budget - spent : test_timeout)))
  if ((t < 3)); then
    row "$c" "NOT RUN" 0 "the test budget (${test_budget}s) or the run's (${budget}s) is spent"
    failed=1
    continue
  fi
  t0=$(date +%s)
  timeout -k 5 "$t" "$bin/wlb_gpu_tests" --gtest_filter="$c" --gtest_color=no >"$log" 2>&1
  status=$?
  dt=$(($(date +%s) - t0))
  if [[ $status -eq 124 || $status -eq 137 ]]; then
    row "$c" TIMEOUT "$dt" "killed after ${t}s"
    failed=1
    ((counts[2]++))
  elif [[ $status -ne 0 ]]; then
    why=$(grep -m1 -A2 -E "Failure|what\(\)|error:" "$log" | tr '\n' ' ')
    ((status > 128)) && why="signal $((status - 128)); $why"
    row "$c" FAIL "$dt" "$(note_of "$why")"
    failed=1
    ((counts[2]++))
  elif grep -q "^\[  SKIPPED \]" "$log"; then
    row "$c" skip "$dt" "$(note_of "$(grep -m1 -A1 'Skipped$' "$log" | tail -1)")"
    ((counts[1]++))
  else
    row "$c" pass "$dt" "$(note_of "$(grep -m1 -E "relative error|^note:" "$log")")"
    ((counts[0]++))
  fi
done
tests_line="${#cases[@]} GPU tests: ${counts[0]} passed, ${counts[1]} skipped, ${counts[2]} failed, \
$(($(date +%s) - test_start)) s"
say "$tests_line"

# ---- benchmarks and PyTorch beside them -----------------------------------------------------
quick=(--quick)
[[ ${WLB_GPU_FULL:-0} == 1 ]] && quick=()
# run_bench NAME ARGS...: bench_* under the timeout, its output in logs/bench/NAME.md.
run_bench() {
  local name=$1
  shift
  local out=$logs/bench/$name.md t
  t=$(left "$bench_timeout")
  if ((t < 5)); then
    row "$name" "NOT RUN" 0 "the run's budget (${budget}s) is spent"
    return
  fi
  say "$name $* (${t}s)"
  local t0
  t0=$(date +%s)
  timeout -k 5 "$t" "$bin/$name" "$@" >"$out" 2>&1
  local status=$?
  local dt=$(($(date +%s) - t0))
  cat "$out"
  if [[ $status -eq 124 || $status -eq 137 ]]; then
    row "$name" TIMEOUT "$dt" "partial output in the logs"
    failed=1
  elif [[ $status -ne 0 ]]; then
    row "$name" "FAIL (exit $status)" "$dt" "$(note_of "$(tail -1 "$out")")"
    failed=1
  elif grep -q "^$name: skipped:" "$out"; then
    row "$name" skip "$dt" "$(note_of "$(sed -n "s/^$name: skipped: //p" "$out" | head -1)")"
  else
    row "$name" ok "$dt" "$*"
  fi
}
"$bin/bench_cuda_attention" --list-shapes "${quick[@]}" >"$logs/bench/shapes.tsv"
run_bench bench_cuda_attention --repeats 3 "${quick[@]}" --tsv "$logs/bench/ours.tsv"
# PyTorch in the same minute, on the same shapes (the machine's own environment: not ours).
peer_out=$logs/bench/peer.tsv
t=$(left "$peer_timeout")
if ! command -v python3 >/dev/null; then
  row sdpa_peer skip 0 "python3 not found"
elif ((t < 10)); then
  row sdpa_peer "NOT RUN" 0 "the run's budget (${budget}s) is spent"
else
  say "sdpa_peer (${t}s)"
  t0=$(date +%s)
  peer_env=(env -u LD_LIBRARY_PATH)
  [[ -n $machine_ld_path ]] && peer_env=(env "LD_LIBRARY_PATH=$machine_ld_path")
  "${peer_env[@]}" timeout -k 5 "$t" python3 "$b/gpu/sdpa_peer.py" \
    --shapes "$logs/bench/shapes.tsv" --out "$peer_out" --repeats 3 \
    --budget-seconds $((t > 30 ? t - 15 : t / 2)) >"$logs/bench/sdpa_peer.md" 2>&1
  status=$?
  dt=$(($(date +%s) - t0))
  cat "$logs/bench/sdpa_peer.md"
  if grep -q "^sdpa_peer: skipped:" "$logs/bench/sdpa_peer.md"; then
    row sdpa_peer skip "$dt" "$(note_of "$(sed -n 's/^sdpa_peer: skipped: //p' "$logs/bench/sdpa_peer.md")")"
  elif [[ $status -eq 124 || $status -eq 137 ]]; then
    row sdpa_peer TIMEOUT "$dt" "figures measured before the timeout are kept"
  elif [[ $status -ne 0 ]]; then
    row sdpa_peer "FAIL (exit $status)" "$dt" "$(note_of "$(tail -1 "$logs/bench/sdpa_peer.md")")"
    failed=1
  else
    row sdpa_peer ok "$dt" "$(note_of "$(sed -n 's/^# //p' "$logs/bench/sdpa_peer.md" | head -1)")"
  fi
  # torch, its CUDA and cuDNN versions and the device, as the peer saw them.
  sed -n 's/^# /pytorch: /p' "$logs/bench/sdpa_peer.md" | head -1 >>"$results/machine.txt"
fi

# ---- the cuda backend: wlbtune run --emulate, analyze, bench_cuda_run ------------------------
# The command a user types, on the small model at tp=2,cp=2,pp=2 (bf16 against the CPU backend's
# float loss is bench_cuda_run's section 1), then analyze on the trace it wrote.
run_start=$(date +%s)
run_dir=$work/run-trace
hardware=h200
[[ $gpu == *H100* ]] && hardware=h100-sxm
run_cli() { # NAME TIMEOUT ARGS...: wlbtune under the timeout, output in logs/bench/NAME.md
  local name=$1 t=$2
  shift 2
  local out=$logs/bench/$name.md t0 status
  if [[ -z $gpu ]]; then
    row "$name" skip 0 "$(note_of "no CUDA device: $no_device")"
    return 1
  fi
  if ((t < 5)); then
    row "$name" "NOT RUN" 0 "the run's budget (${budget}s) is spent"
    return 1
  fi
  say "wlbtune $* (${t}s)"
  t0=$(date +%s)
  timeout -k 5 "$t" "$bin/wlbtune" "$@" >"$out" 2>&1
  status=$?
  cat "$out"
  if [[ $status -eq 0 ]]; then
    row "$name" ok $(($(date +%s) - t0)) "$(note_of "$(grep -m1 -E "^mean step|^loss|dominant|cause|^gemm_tflops" "$out")")"
    return 0
  fi
  row "$name" "FAIL (exit $status)" $(($(date +%s) - t0)) "$(note_of "$(tail -1 "$out")")"
  failed=1
  return 1
}
if run_cli wlbtune_run_emulate "$(left 45)" run --backend cuda --emulate --layout tp=2,cp=2,pp=2,dp=1 \
  --model small --context 2k --steps 6 --learning-rate 1 --hardware "$hardware" \
  --trace-dir "$run_dir" --json "$logs/bench/wlbtune_run_emulate.json"; then
  run_cli wlbtune_analyze "$(left 30)" analyze "$run_dir" --steps 1: \
    --json "$logs/bench/wlbtune_analyze.json" || true
fi
t=$(left $((run_timeout - ($(date +%s) - run_start))))
run_bench_args=(--quick --hardware "$hardware" --budget-seconds $((t > 25 ? t - 20 : 5)))
[[ ${WLB_GPU_FULL:-0} == 1 ]] && run_bench_args=(--hardware "$hardware" --budget-seconds $((t > 25 ? t - 20 : 5)))
[[ -f $b/share/wlbllm_doc_lengths.json ]] && run_bench_args+=(--data "json:$b/share/wlbllm_doc_lengths.json")
bench_timeout_saved=$bench_timeout
bench_timeout=$t
run_bench bench_cuda_run "${run_bench_args[@]}"
bench_timeout=$bench_timeout_saved

# ---- wlbtune calibrate --backend cuda: this GPU's hardware file -----------------------------
# The cost model's rates measured on this GPU (docs/cli.md, "calibrate"), written beside the
# summary: simulate, tune and the benches take it with --hardware on any machine afterwards.
run_cli wlbtune_calibrate "$(left "$calibrate_timeout")" calibrate --backend cuda --quick \
  -o "$results/hardware.json" || true

# ---- compute-sanitizer on two attention cases ------------------------------------------------
sanitizer=$(command -v compute-sanitizer 2>/dev/null)
for d in "${CUDA_HOME:-}" /usr/local/cuda $(ls -d /usr/local/cuda-* 2>/dev/null | sort -rV); do
  [[ -z $sanitizer && -n $d && -x $d/bin/compute-sanitizer ]] && sanitizer=$d/bin/compute-sanitizer
done
# PyTorch's wheels: nvidia/<package>/bin/ or nvidia/<package>/compute-sanitizer/.
for d in "${site_nvidia[@]}"; do
  for s in "$d"/../../*/bin/compute-sanitizer "$d"/../../*/compute-sanitizer/compute-sanitizer; do
    [[ -z $sanitizer && -x $s ]] && sanitizer=$(cd "$(dirname "$s")" && pwd)/compute-sanitizer
  done
done
for tool in memcheck racecheck; do
  for case in CudaAttention.ShortDocumentMatchesCpu CudaAttention.TailLengthsMatchCpu; do
    name="$tool ${case#CudaAttention.}"
    if [[ -z $sanitizer ]]; then
      row "$name" skip 0 "compute-sanitizer not found (PATH, CUDA_HOME, /usr/local/cuda*, nvidia wheels)"
      continue
    fi
    if [[ -z $gpu ]]; then
      row "$name" skip 0 "$(note_of "no CUDA device: $no_device")"
      continue
    fi
    t=$(left "$sanitizer_timeout")
    if ((t < 5)); then
      row "$name" "NOT RUN" 0 "the run's budget (${budget}s) is spent"
      continue
    fi
    log=$logs/sanitizer/$tool-${case#CudaAttention.}.log
    t0=$(date +%s)
    timeout -k 5 "$t" "$sanitizer" --tool "$tool" --error-exitcode 99 "$bin/wlb_gpu_tests" \
      --gtest_filter="$case" --gtest_color=no >"$log" 2>&1
    status=$?
    dt=$(($(date +%s) - t0))
    summary_line=$(grep -m1 -E "(ERROR|RACECHECK) SUMMARY" "$log")
    if [[ $status -eq 124 || $status -eq 137 ]]; then
      row "$name" TIMEOUT "$dt" "killed after ${t}s"
      failed=1
    elif [[ -z $summary_line ]]; then
      # The tool did not get to check anything: the machine refused it.
      row "$name" skip "$dt" "$(note_of "the machine refused the tool: $(grep -m1 -iE "error|denied|not supported" "$log")")"
    elif [[ $status -ne 0 ]] || ! grep -qE "SUMMARY: 0 (errors|hazards)" <<<"$summary_line"; then
      row "$name" FAIL "$dt" "$(note_of "$summary_line (exit $status)")"
      failed=1
    else
      row "$name" pass "$dt" "$(note_of "${summary_line#========= }")"
    fi
  done
done

run_bench bench_cuda_capture --steps 8 --layers 2
data=()
[[ -f $b/share/wlbllm_doc_lengths.json ]] && data=(--data "$b/share/wlbllm_doc_lengths.json")
if [[ ${WLB_GPU_FULL:-0} == 1 ]]; then
  run_bench bench_cuda_cp_emulation --micro-batches 2 --repeats 3 "${data[@]}"
fi

# ---- wlbtune profile on a PyTorch job (docs/profile.md, "GPU check") -------------------------------
# The job keeps the machine's environment (its LD_LIBRARY_PATH, PyTorch's CUPTI); wlbtune runs
# with the bundle's. profile_check.sh prints the rows and writes profile.md.
profile_md=""
if [[ -f $b/gpu/profile_check.sh && -f $bin/libwlbtune_inject.so ]]; then
  t=$(left "$profile_timeout")
  if ! command -v python3 >/dev/null; then
    row "profile: PyTorch job" skip 0 "python3 not found"
  elif [[ -z $gpu ]]; then
    row "profile: PyTorch job" skip 0 "$(note_of "no CUDA device: $no_device")"
  elif ((t < 30)); then
    row "profile: PyTorch job" "NOT RUN" 0 "the run's budget (${budget}s) is spent"
  else
    say "wlbtune profile on a PyTorch job (${t}s)"
    mkdir -p "$logs/profile"
    cupti_lib=$(sed -n 's/^libcupti\.so\.[0-9]*: //p' "$logs/libraries.txt" | head -1)
    timeout -k 5 "$t" bash "$b/gpu/profile_check.sh" --wlbtune "$bin/wlbtune" \
      --out "$logs/profile" ${cupti_lib:+--cupti "$cupti_lib"} \
      --job-ld-path "${machine_ld_path:--}" --budget $((t - 10)) >"$logs/profile/check.out" 2>&1
    status=$?
    while IFS=$'\t' read -r tag item st secs note; do
      [[ $tag == ROW ]] && row "$item" "$st" "$secs" "$(note_of "$note")"
    done <"$logs/profile/check.out"
    if ((status != 0)); then
      failed=1
      ((status == 124 || status == 137)) && row "profile: PyTorch job" TIMEOUT "$t" "killed after ${t}s"
    fi
    profile_md=$logs/profile/profile.md
  fi
fi

# ---- summary ----------------------------------------------------------------------------------
# Ours beside PyTorch's, shape by shape (TFLOP/s, design.md's FLOP convention for both).
attention_table() {
  [[ -s $logs/bench/ours.tsv ]] || return 0
  echo "## Attention: wlbtune beside PyTorch, same shapes, same minute (TFLOP/s)"
  echo
  echo "FLOPs: forward 4 x causal pairs (diagonal included) x heads x head_dim, backward 2.5 x"
  echo "forward, for every column. Table 1 (t1): 16K tokens of equal documents; Table 2 (t2): CP"
  echo "chunks of q queries seeing k keys. '-': no figure; the notes under the table say why."
  echo
  echo "| shape | chunks | heads x d | ours fwd | flash fwd | cuDNN fwd | varlen fwd | ours bwd | flash bwd | cuDNN bwd | varlen bwd |"
  echo "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
  awk -F'\t' -v shapes="$logs/bench/shapes.tsv" -v peer="$peer_out" '
    BEGIN {
      while ((getline line < shapes) > 0) { split(line, f, "\t"); chunks[f[1]] = f[3]; hd[f[1]] = f[7] " x " f[8] }
      while ((getline line < peer) > 0) {
        split(line, f, "\t"); fwd[f[1], f[2]] = f[4]; bwd[f[1], f[2]] = f[6]
      }
    }
    FNR == 1 { next }
    {
      id = $1
      printf "| %s | %s | %s | %s", id, chunks[id], hd[id], $4
      n = split("sdpa-flash sdpa-cudnn varlen", b, " ")
      for (i = 1; i <= n; ++i) printf " | %s", ((id, b[i]) in fwd) ? fwd[id, b[i]] : "-"
      printf " | %s", $6
      for (i = 1; i <= n; ++i) printf " | %s", ((id, b[i]) in bwd) ? bwd[id, b[i]] : "-"
      printf " |\n"
    }' "$logs/bench/ours.tsv"
  echo
  # Why a peer has no figure: each distinct note once, with the shapes it concerns.
  [[ -s $peer_out ]] && awk -F'\t' '
    NR > 1 && $1 !~ /^#/ && $7 != "" { k = $2 ": " $7; n[k]++; if (!(k in first)) { first[k] = $1; order[++m] = k } }
    END { for (i = 1; i <= m; ++i) printf "- %s (%d shapes, first %s)\n", order[i], n[order[i]], first[order[i]] }
  ' "$peer_out" && echo
  grep -m1 "^# skipped" "$peer_out" 2>/dev/null | sed 's/^# /- PyTorch peer /'
  return 0
}
{
  echo "# gpu-check: ${gpu:-no GPU ($no_device)}, $(date -u +%Y-%m-%d), $(elapsed) s"
  echo
  echo "$tests_line. Bundle: $(sed -n 's/^commit: //p' "$b/MANIFEST")."
  echo
  echo "| item | status | seconds | note |"
  echo "| --- | --- | ---: | --- |"
  printf '%s\n' "${summary[@]}"
  echo
  attention_table
  for name in bench_cuda_run wlbtune_calibrate bench_cuda_capture bench_cuda_cp_emulation; do
    if [[ -s $logs/bench/$name.md ]] && ! grep -q "^$name: skipped:" "$logs/bench/$name.md"; then
      echo "## $name"
      echo
      cat "$logs/bench/$name.md"
      echo
    fi
  done
  [[ -n $profile_md && -s $profile_md ]] && cat "$profile_md"
} >"$results/summary.md"
cp "$results/summary.md" "$results/machine.txt" "$logs/"
tar -czf "$results/logs.tar.gz" -C "$work" logs
echo
cat "$results/summary.md"
echo "results: $results (summary.md, machine.txt, logs.tar.gz$([[ -f $results/hardware.json ]] && echo ", hardware.json"))"
exit $failed
