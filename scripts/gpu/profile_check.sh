#!/usr/bin/env bash
# `wlbtune profile` on a PyTorch job, for the GPU check (scripts/gpu-check.sh runs it from the
# bundle; docs/profile.md, "GPU check"): profile_train.py (packed documents behind a document
# mask, NVTX ranges) is
#   1. run plainly, profiled (full capture), and plainly again, one process: the overhead on the
#      median step time, profiled against the two plain runs (their spread is the noise)
#   2. profiled fully under torchrun, two processes on the one GPU (gloo), and analyzed
#   3. profiled --armed under torchrun, triggered for 2 steps once it is warm, and analyzed
#
#   profile_check.sh --wlbtune BIN --out DIR [--cupti LIB] [--job-ld-path PATH] [--budget S]
#
# wlbtune runs with this environment (the bundle's libraries); the job runs with the machine's
# (--job-ld-path: its LD_LIBRARY_PATH, "-" for none), as PyTorch expects. Prints one line per
# item, "ROW<TAB>item<TAB>status<TAB>seconds<TAB>note", for gpu-check's table, and writes
# DIR/profile.md (the figures, the captures' summaries and analyze's reports). Exit 0 unless an
# item failed.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
wlbtune="" out="" cupti="" job_ld="-" budget=110
while [[ $# -gt 0 ]]; do
  case $1 in
    --wlbtune) wlbtune=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --cupti) cupti=$2; shift 2 ;;
    --job-ld-path) job_ld=$2; shift 2 ;;
    --budget) budget=$2; shift 2 ;;
    *) echo "profile_check: unknown argument $1" >&2; exit 2 ;;
  esac
done
[[ -x $wlbtune && -n $out ]] || { echo "profile_check: --wlbtune BIN and --out DIR are needed" >&2; exit 2; }
mkdir -p "$out"
started=$(date +%s)
failed=0
md=$out/profile.md
: >"$md"
row() { printf 'ROW\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4"; }
left() { echo $((budget - ($(date +%s) - started))); }
# The job's environment: the machine's library path, not the bundle's.
if [[ $job_ld == - ]]; then job_env=(env -u LD_LIBRARY_PATH); else job_env=(env "LD_LIBRARY_PATH=$job_ld"); fi
py=("${job_env[@]}" python3) # the machine's Python, also for reading the results
train=(python3 "$here/profile_train.py" --tokens 4096 --micro-batches 2 --layers 4)
torchrun=(python3 -m torch.distributed.run --standalone --nproc-per-node 2 "$here/profile_train.py"
  --tokens 4096 --micro-batches 2 --layers 4)
profile=("$wlbtune" profile --poll-ms 100)
[[ -n $cupti ]] && profile+=(--cupti "$cupti")

probe=$("${job_env[@]}" timeout 60 python3 -c 'import torch; print(torch.__version__, torch.cuda.is_available())' 2>&1 | tail -1)
if [[ $probe != *" True" ]]; then
  row "profile: PyTorch job" skip 0 "no PyTorch with a CUDA device here: ${probe:0:80}"
  echo "wlbtune profile: skipped ($probe)" >>"$md"
  exit 0
fi

# run NAME TIMEOUT CMD...: one item, its output in $out/NAME.log.
run() {
  local name=$1 t=$2
  shift 2
  local l
  l=$(left)
  ((t > l)) && t=$l
  if ((t < 10)); then
    row "profile: $name" "NOT RUN" 0 "the budget (${budget}s) is spent"
    return 124
  fi
  local t0
  t0=$(date +%s)
  timeout -k 5 "$t" "$@" >"$out/$name.log" 2>&1
  local status=$?
  last_seconds=$(($(date +%s) - t0))
  return $status
}

{
  echo "## wlbtune profile on a PyTorch job (PyTorch ${probe% True})"
  echo
} >>"$md"

# ---- 1. overhead: plain, profiled, plain (one process) ----------------------------------------
steps=40
run plain1 40 "${job_env[@]}" "${train[@]}" --steps $steps --times "$out/plain1.{rank}.json"
s1=$?
run full1 50 "${profile[@]}" -o "$out/full1" -- "${job_env[@]}" "${train[@]}" --steps $steps \
  --times "$out/full1.{rank}.json"
s2=$?
t_full1=$last_seconds
run plain2 40 "${job_env[@]}" "${train[@]}" --steps $steps --times "$out/plain2.{rank}.json"
s3=$?
if ((s1 == 0 && s2 == 0 && s3 == 0)) && overhead=$("${py[@]}" - "$out" 2>"$out/overhead.err" <<'PY'
import json, statistics, sys
out = sys.argv[1]
def median(name):
    t = json.load(open(f"{out}/{name}.0.json"))["step_seconds"][10:]  # after the warm-up
    return statistics.median(t)
p1, f, p2 = median("plain1"), median("full1"), median("plain2")
plain = (p1 + p2) / 2
print(f"{100 * (f / plain - 1):+.2f}% ({1e3 * f:.2f} ms profiled vs {1e3 * p1:.2f} / {1e3 * p2:.2f} ms "
      f"plain; plain runs differ by {100 * abs(p1 - p2) / plain:.2f}%)")
PY
); then
  row "profile: overhead, 1 process, median step" ok "$t_full1" "$overhead"
  {
    echo "profile_train.py, 4 layers x 1024, 2 micro-batches x 4,096 packed tokens per step, bf16,"
    echo "$steps steps, medians over steps 10-$((steps - 1)) (host time around each step, which ends"
    echo "with a device synchronization). Overhead of a full capture on the median step time:"
    echo "**$overhead**."
    echo
  } >>"$md"
else
  row "profile: overhead, 1 process" FAIL 0 "exit status plain $s1, profiled $s2, plain $s3; $(tail -1 "$out/overhead.err" 2>/dev/null | cut -c1-60)"
  failed=1
fi

# summary DIR: the capture's manifest in a few lines.
summary() {
  "${py[@]}" - "$1" <<'PY'
import json, sys
m = json.load(open(sys.argv[1] + "/manifest.json"))
c = m["capture"]
print(f"- manifest: ranks {[r['rank'] for r in m['ranks']]}, layout {m['layout']['spec']}, "
      f"{m['steps']} steps, dropped records {c['dropped_records']}; {m['note']}")
for p in c["processes"]:
    w = [(x["opened_by"], x["closed_by"], x["steps_kept"]) for x in p["windows"]]
    print(f"- rank {p['rank']} (pid {p['pid']}): {p['events']} events, steps from "
          f"{p['steps']['source']} ({p['steps']['description']}), kept {p['steps']['kept']}, "
          f"windows {w}, micro-batches {p['attribution'].get('micro_batches')}, warnings "
          f"{p.get('warnings', [])}")
PY
}

# analyze NAME: analyze the capture into $out/NAME.analysis.{txt,json}; one row.
analyze() {
  local name=$1
  if ! run "$name-analyze" 30 "$wlbtune" analyze "$out/$name" --json "$out/$name.analysis.json"; then
    row "profile: analyze $name" FAIL "$last_seconds" "$(tail -1 "$out/$name-analyze.log" | cut -c1-100)"
    failed=1
    return
  fi
  "$wlbtune" analyze "$out/$name" >"$out/$name.analysis.txt" 2>&1
  row "profile: analyze $name" ok "$last_seconds" "$(grep -m1 -E "slowest on the same kernels" "$out/$name.analysis.txt" | sed 's/^ *//' | cut -c1-100)"
  {
    echo "### wlbtune analyze ($name)"
    echo
    echo '```'
    head -40 "$out/$name.analysis.txt"
    echo '```'
    echo
  } >>"$md"
}

# ---- 2. full capture, torchrun, two processes ----------------------------------------------------
if run full2 45 "${profile[@]}" -o "$out/full2" -- "${job_env[@]}" "${torchrun[@]}" --steps 20; then
  ranks=$("${py[@]}" -c "import json; print(len(json.load(open('$out/full2/manifest.json'))['ranks']))" 2>/dev/null)
  if [[ $ranks == 2 ]]; then
    row "profile: full capture, torchrun x 2" ok "$last_seconds" "2 ranks captured"
  else
    row "profile: full capture, torchrun x 2" FAIL "$last_seconds" "$ranks ranks in the manifest (expected 2)"
    failed=1
  fi
  { echo "### Full capture, torchrun, 2 processes (gloo)"; echo; summary "$out/full2"; echo; } >>"$md"
  analyze full2
else
  row "profile: full capture, torchrun x 2" FAIL "$last_seconds" "$(tail -1 "$out/full2.log" | cut -c1-100)"
  failed=1
fi

# ---- 3. armed, triggered for 2 steps ---------------------------------------------------------------
l=$(left)
if ((l < 20)); then
  row "profile: armed + trigger" "NOT RUN" 0 "the budget (${budget}s) is spent"
else
  t0=$(date +%s)
  rm -f "$out/ready"
  timeout -k 5 $((l > 45 ? 45 : l)) "${profile[@]}" --armed -o "$out/armed" -- "${job_env[@]}" \
    "${torchrun[@]}" --steps 150 --ready "$out/ready" --ready-step 10 >"$out/armed.log" 2>&1 &
  job=$!
  for _ in $(seq 1 300); do [[ -f $out/ready ]] && break; sleep 0.1; done
  if [[ -f $out/ready ]]; then
    "$wlbtune" trigger "$out/armed" --steps 2 >>"$out/armed.log" 2>&1
  fi
  wait $job
  status=$?
  dt=$(($(date +%s) - t0))
  kept=$("${py[@]}" -c "
import json
m = json.load(open('$out/armed/manifest.json'))
print(' '.join(str(len(w['steps_kept'])) for p in m['capture']['processes'] for w in p['windows']))" 2>/dev/null)
  if [[ $status -eq 0 && $kept == "2 2" ]]; then
    row "profile: armed + trigger --steps 2, torchrun x 2" ok "$dt" "each process kept 2 steps"
  else
    row "profile: armed + trigger --steps 2, torchrun x 2" FAIL "$dt" "exit $status, steps kept per window: '${kept:-none}' (expected '2 2')"
    failed=1
  fi
  { echo "### Armed, triggered for 2 steps, torchrun, 2 processes"; echo; summary "$out/armed"; echo; } >>"$md"
  [[ -f $out/armed/manifest.json ]] && analyze armed
fi
exit $failed
