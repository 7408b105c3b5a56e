#!/usr/bin/env python3
"""Simulator fidelity on measured CPU runs, and the tuner's promise measured (issue [calibrate]).

Runs `wlbtune run` on 2 MPI ranks for every variant below, interleaved (every repeat runs each
variant once, in an order rotated per repeat, so load drift hits all alike), each run predicted by
the simulator with the same --hardware on the same batches (the run's own `predicted_seconds`).
Prints, per variant: the measured step time (median over steps 1.. of a run, then the median over
repeats), the run-to-run spread ((max - min) / median over repeats), the predicted step time, the
error (predicted / measured - 1), and per part the measured and predicted order of the variants
with the pairs whose measured difference exceeds the spread. With --tuned CONFIG, also the tuned
config (`run --config`) against plain + per-seq on the same job: measured speedup beside the
tuner's predicted one. The load average is recorded around every run.

  tests/bench/cpu_fidelity.py --wlbtune build/wlbtune --hardware cal.json \
      [--repeats 3] [--steps 8] [--tuned tuned.json] [--out DIR] [--parts cp,pp,tuned] \
      [--calibrate-each-repeat]

--calibrate-each-repeat: before every repeat, `mpirun -np 2 wlbtune calibrate` again and predict
that repeat's runs with its file (the tuned config's hardware replaced field by field), so that a
machine whose speed drifts between repeats (a shared VM) is compared with itself; --hardware is
then used only by the first repeat's runs if the calibration fails.

Parts:
  cp     layout cp=2, model small, 4K context, a long-document-heavy stream packed plain
         (documents cut at 4K), sharded per-seq, per-doc, adaptive and hybrid
  pp     layout pp=2 (1F1B), 4 micro-batches of 4K per step, WLB-LLM's shape scaled to 4K,
         packed plain, plain-whole, ffd and wlb (2 queues), per-seq
  tuned  --tuned's config against plain + per-seq on its job
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

DATA_CP = ("synthetic:mixture?mu=4.3&sigma=0.8&weight=0.1&xmin=1024&alpha=1&n=20000&seed=1"
           "&max=4096")
DATA_PP = ("synthetic:mixture?mu=4.3&sigma=0.8&weight=0.02&xmin=1024&alpha=1&n=40000&seed=2"
           "&max=4096")


def variants(parts, tuned, hardware):
    out = []
    if "cp" in parts:
        for s in ["per-seq", "per-doc", "adaptive", "hybrid"]:
            out.append(("cp", f"cp=2 plain + {s}",
                        ["--model", "small", "--layout", "cp=2", "--context", "4k", "--data",
                         DATA_CP, "--packing", "plain", "--sharding", s, "--hardware", hardware]))
    if "pp" in parts:
        for p in ["plain", "plain-whole", "ffd", "wlb"]:
            out.append(("pp", f"pp=2 {p} + per-seq",
                        ["--model", "small", "--layout", "pp=2", "--context", "4k", "--data",
                         DATA_PP, "--packing", p, "--micro-batches", "4", "--sharding",
                         "per-seq", "--hardware", hardware]))
    if "tuned" in parts and tuned:
        cfg = json.load(open(tuned))
        model_file = os.path.join(tempfile.mkdtemp(prefix="wlb_fidelity_"), "model.json")
        json.dump(cfg["model"], open(model_file, "w"))
        data = cfg["data"]
        base = ["--model", model_file, "--layout", cfg["layout"]["spec"], "--order",
                cfg["layout"].get("order", "tp-cp-pp-dp"), "--context",
                str(cfg["context_tokens"]), "--data", data["spec"], "--context-policy",
                data.get("context_policy", "truncate"), "--hardware", hardware]
        if data.get("shuffle_seed") is not None:
            base += ["--shuffle", str(data["shuffle_seed"])]
        out.append(("tuned", "plain + per-seq", base + ["--packing", "plain", "--sharding",
                                                        "per-seq"]))
        out.append(("tuned", "tuned: " + cfg.get("evaluated", {}).get("name", "config"),
                    ["--config", tuned]))
    return out


def world_of(args):
    for i, a in enumerate(args):
        if a == "--layout":
            n = 1
            for part in args[i + 1].split(","):
                if "=" in part and part.split("=")[0] in ("tp", "cp", "pp", "dp"):
                    n *= int(part.split("=")[1])
            return n
        if a == "--config":
            spec = json.load(open(args[i + 1]))["layout"]["spec"]
            return world_of(["--layout", spec])
    return 1


def calibrate(wlbtune, path):
    cmd = ["mpirun", "-np", "2", "--oversubscribe", wlbtune, "calibrate", "-o", path]
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        sys.exit(f"failed ({r.returncode}): {' '.join(cmd)}\n{r.stderr}")


def with_hardware(args, hardware, out_dir, tag):
    """`args` predicted with the hardware file `hardware`: --hardware replaced, or a copy of the
    --config whose hardware fields take the file's values."""
    out = list(args)
    if "--hardware" in out:
        out[out.index("--hardware") + 1] = hardware
    if "--config" in out:
        i = out.index("--config")
        cfg = json.load(open(out[i + 1]))
        hw = json.load(open(hardware))
        cfg["hardware"] = {k: hw.get(k, v) for k, v in cfg["hardware"].items()}
        path = os.path.join(out_dir, f"tuned_{tag}.json")
        json.dump(cfg, open(path, "w"), indent=1)
        out[i + 1] = path
    return out


def run_one(wlbtune, args, steps, out_json, ranks):
    cmd = ["mpirun", "-np", str(ranks), "--oversubscribe", wlbtune, "run", *args, "--steps",
           str(steps), "--json", out_json]
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    load0 = os.getloadavg()[0]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    load1 = os.getloadavg()[0]
    if r.returncode != 0:
        sys.exit(f"failed ({r.returncode}): {' '.join(cmd)}\n{r.stderr}")
    j = json.load(open(out_json))
    rows = j["steps"][1:]  # step 0 warms up
    return (statistics.median(x["seconds"] for x in rows),
            statistics.median(x["predicted_seconds"] for x in rows), (load0 + load1) / 2)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--wlbtune", required=True)
    ap.add_argument("--hardware", required=True)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--tuned")
    ap.add_argument("--out", default=tempfile.mkdtemp(prefix="wlb_fidelity_"))
    ap.add_argument("--parts", default="cp,pp,tuned")
    ap.add_argument("--calibrate-each-repeat", action="store_true")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    vs = variants(a.parts.split(","), a.tuned, a.hardware)
    measured = {v[1]: [] for v in vs}
    predicted = {v[1]: [] for v in vs}
    loads = []
    for r in range(a.repeats):
        order = vs[r % len(vs):] + vs[:r % len(vs)]
        hardware = None
        if a.calibrate_each_repeat:
            hardware = os.path.join(a.out, f"cal_{r}.json")
            calibrate(a.wlbtune, hardware)
            print(f"repeat {r}: calibrated ({hardware})", flush=True)
        for part, name, args in order:
            if hardware:
                args = with_hardware(args, hardware, a.out, r)
            out_json = os.path.join(a.out, f"{part}_{len(measured[name])}_{abs(hash(name))}.json")
            m, p, load = run_one(a.wlbtune, args, a.steps, out_json, world_of(args))
            measured[name].append(m)
            predicted[name].append(p)
            loads.append(load)
            print(f"repeat {r} {name}: measured {m:.3f} s/step, predicted {p:.3f}, load {load:.1f}",
                  flush=True)
    print(f"\nload average (1 min) during the runs: {min(loads):.1f} .. {max(loads):.1f}, "
          f"median {statistics.median(loads):.1f}; {a.repeats} interleaved repeats, "
          f"{a.steps} steps each (medians over steps 1..{a.steps - 1})\n")
    for part in dict.fromkeys(v[0] for v in vs):
        names = [v[1] for v in vs if v[0] == part]
        print(f"| part {part} | measured s/step (median of repeats) | spread | predicted s/step |"
              f" error | measured vs first | predicted vs first |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        first = names[0]
        stats = {}
        for n in names:
            m = statistics.median(measured[n])
            spread = (max(measured[n]) - min(measured[n])) / m
            p = statistics.median(predicted[n])
            ratios = [x / y for x, y in zip(measured[n], measured[first])]
            stats[n] = (m, spread, p)
            print(f"| {n} | {m:.3f} | {100 * spread:.1f}% | {p:.3f} | {100 * (p / m - 1):+.1f}% |"
                  f" {statistics.median(ratios):.3f} |"
                  f" {p / statistics.median(predicted[first]):.3f} |")
        print("\norder (fastest first): measured " +
              " < ".join(sorted(names, key=lambda n: stats[n][0])) + "; predicted " +
              " < ".join(sorted(names, key=lambda n: stats[n][2])))
        for i, x in enumerate(names):
            for y in names[i + 1:]:
                mx, sx, px = stats[x]
                my, sy, py = stats[y]
                diff = abs(mx - my) / min(mx, my)
                spread = max(sx, sy)
                agree = (mx < my) == (px < py)
                tag = "beyond the spread" if diff > spread else "within the spread"
                print(f"  {x} vs {y}: measured difference {100 * diff:.1f}% ({tag}, spread "
                      f"{100 * spread:.1f}%); predicted order {'agrees' if agree else 'DIFFERS'}")
        print()
    print(f"raw JSON per run: {a.out}")


if __name__ == "__main__":
    main()
