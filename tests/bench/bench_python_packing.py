#!/usr/bin/env python3
"""Packing through the Python module against the C++ packer, per step, in one run (issue 21:
at most 2x at the paper's 7B / 128K setting).

Setting: bench_packing's (tests/bench/bench_packing.cpp): the WLB-LLM-shaped document lengths
(../shared/data/wlbllm_doc_lengths.json) in stored order, 7B, 128K context, tp=8,cp=2,pp=4,dp=1,
4 micro-batches of 128K per step, S_max 1.5x, the default wlb thresholds. For each policy:

  C++      bench_packing's time per packer::pack (drawing from an in-memory list included),
           best of --repeat runs' means, run by this script right before the module's rows
  module   wall clock per step of a Python loop that feeds the documents (ids and lengths as
           numpy slices, --feed at a time, as a dataloader draws them) and takes every step out
           (Packer.feed + next_step, a Step object per step): total / steps, best of --repeat

    PYTHONPATH=build/python python3 tests/bench/bench_python_packing.py \\
        [--bench-packing build/tests/bench/bench_packing] [--steps 400] [--repeat 5]

Prints a markdown table; exits 0 (skips with a message when the data file is absent).
"""

import argparse
import json
import os
import re
import subprocess
import sys
import time

import numpy as np

import wlbtune

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "..", "..", "shared", "data", "wlbllm_doc_lengths.json")
CONTEXT = 131072
LAYOUT = "tp=8,cp=2,pp=4,dp=1"

# (bench_packing's row name, the same packing through the module)
ROWS = [
    ("wlb 2 queues (24k,64k)", dict(policy="wlb", queues=2)),
    ("varlen", dict(policy="varlen")),
    ("fixed-greedy W=8", dict(policy="fixed-greedy", window=8)),
    ("plain", dict(policy="plain")),
]


def cpp_times(exe, steps, repeat):
    """bench_packing's pack time per step (us) by row name."""
    out = subprocess.run([exe, "--steps", str(steps), "--repeat", str(repeat)],
                         capture_output=True, text=True, check=True).stdout
    times = {}
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 13 and re.match(r"^[\d.]+$", cells[-1]):
            times[cells[0]] = float(cells[-1])
    return times


def module_time(config, cost, lengths, steps, feed, repeat):
    """Best of `repeat` runs of the feeding loop: seconds per step, and the steps' tokens."""
    ids = np.arange(len(lengths), dtype=np.int64)
    best, tokens = float("inf"), None
    for _ in range(repeat):
        packer = wlbtune.Packer(config, cost)
        done, fed, total = 0, 0, 0
        start = time.perf_counter()
        while done < steps:
            step = packer.next_step()
            if step is None:
                if fed >= len(lengths):
                    packer.close()
                    if packer.finished:
                        break
                    continue
                packer.feed(ids[fed:fed + feed], lengths[fed:fed + feed])
                fed += feed
                continue
            total += step.tokens
            done += 1
        elapsed = time.perf_counter() - start
        best = min(best, elapsed / done)
        tokens = total / done
    return best, tokens


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench-packing", default=os.path.join("build", "tests", "bench",
                                                                "bench_packing"))
    parser.add_argument("--data", default=DATA)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--feed", type=int, default=64, help="documents per feed")
    args = parser.parse_args()
    if not os.path.exists(args.data):
        print(f"bench_python_packing: skipped: {args.data} is absent")
        return 0
    with open(args.data) as f:
        lengths = np.minimum(np.array(json.load(f), dtype=np.int64), CONTEXT)

    cost = wlbtune.CostModel(model="7b", hardware="h100-sxm", layout=LAYOUT)
    cpp = cpp_times(args.bench_packing, args.steps, args.repeat)
    print(f"7B / 128K, {LAYOUT}, {args.steps} steps, {len(lengths)} documents in stored order; "
          f"module: {args.feed} documents per feed; best of {args.repeat}\n")
    print("| policy | C++ packer (us/step) | module, feeding loop (us/step) | ratio | "
          "module, 1 document per feed (us/step) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, knobs in ROWS:
        config = wlbtune.PackingConfig.for_layout(LAYOUT, context=CONTEXT, **knobs)
        seconds, _ = module_time(config, cost, lengths, args.steps, args.feed, args.repeat)
        single, _ = module_time(config, cost, lengths, args.steps, 1, max(1, args.repeat // 2))
        c = cpp.get(name)
        ratio = f"{seconds * 1e6 / c:.2f}" if c else "n/a"
        c_text = f"{c:.1f}" if c else "n/a"
        print(f"| {name} | {c_text} | {seconds * 1e6:.1f} | {ratio} | {single * 1e6:.1f} |")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
