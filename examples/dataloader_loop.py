#!/usr/bin/env python3
"""A plain-Python dataloader loop around wlbtune's packer and CP sharder (docs/integration.md).

Each epoch the sampler shuffles the documents and hands them to the packer a few at a time, as a
dataloader draws them; every step the packer decides comes out at once. This DP rank takes its
replica's micro-batches, and this CP rank its chunks of each, with the cu_seqlens a varlen
attention kernel takes. Halfway through, the loop checkpoints the packer (state_dict, pickled)
and resumes from the checkpoint, as a restarted job would: the steps that follow are the ones an
uninterrupted run gives.

    PYTHONPATH=build/python python3 examples/dataloader_loop.py [--config tuned.json]
        [--lengths lengths.json] [--steps 20] [--dp-rank 0] [--cp-rank 0]

Without --config it builds the paper's 7B / 128K setting in code: tp=8,cp=2,pp=4,dp=1, wlb
packing with 2 outlier queues, adaptive CP sharding. Without --lengths it draws document lengths
from a heavy-tailed distribution. Prints one line per step and exits 0.
"""

import argparse
import json
import os
import pickle
import sys
import tempfile

import numpy as np

import wlbtune


def settings(args):
    """The packing, sharding and cost model: from a tuned config, or built in code."""
    if args.config:
        config = wlbtune.load_config(args.config)
        return config.packing, config.sharding, config.cost_model()
    cost = wlbtune.CostModel(model="7b", hardware="h100-sxm", layout="tp=8,cp=2,pp=4,dp=1")
    packing = wlbtune.PackingConfig.for_layout(cost.layout, policy="wlb", queues=2,
                                               context="128k")
    return packing, wlbtune.ShardingSpec("adaptive"), cost


def document_lengths(args, context):
    if args.lengths:
        with open(args.lengths) as f:
            lengths = np.array(json.load(f), dtype=np.int64)
    else:
        rng = np.random.default_rng(0)
        lengths = rng.lognormal(mean=8.0, sigma=1.1, size=20000).astype(np.int64)
    # The dataloader truncates documents longer than the context (the packer refuses them).
    return np.clip(lengths, 1, context)


def epochs(lengths, seed=0):
    """A shuffling sampler: (document ids, their lengths), 64 documents at a time, forever."""
    epoch = 0
    while True:
        order = np.random.default_rng(seed + epoch).permutation(len(lengths))
        for start in range(0, len(order), 64):
            ids = order[start:start + 64]
            yield ids, lengths[ids]
        epoch += 1


def steps(packer, sampler):
    """Packed steps, feeding the packer as it needs documents."""
    while True:
        step = packer.next_step()
        if step is not None:
            yield step
            continue
        ids, lengths = next(sampler)
        packer.feed(ids, lengths)


def describe(step, sharder, cost, dp_rank, cp_rank):
    measures = cost.step_measures(step)
    parts = []
    for mb in step.replica(dp_rank):
        mine = sharder.shard(mb).rank(cp_rank)
        parts.append(f"{len(mb)} docs/{mb.tokens} tok -> cp{cp_rank}: {len(mine)} chunks, "
                     f"{mine.tokens} q tok, max_seqlen_k {mine.max_seqlen_k}")
    return (f"step {step.step:3d}: {step.documents:4d} documents, {step.tokens:7d} tokens, "
            f"imbalance {measures.imbalance:.3f} | " + "; ".join(parts[:2]) +
            ("; ..." if len(parts) > 2 else ""))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="a tuned config (wlbtune.config/1)")
    parser.add_argument("--lengths", help="a JSON array of document lengths")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--dp-rank", type=int, default=0)
    parser.add_argument("--cp-rank", type=int, default=0)
    args = parser.parse_args()

    packing, spec, cost = settings(args)
    lengths = document_lengths(args, packing.context_tokens)
    sharder = wlbtune.Sharder(spec, cost)
    print(f"{packing!r}\n{sharder!r}\n{cost!r}")

    # The run without interruption, for comparison.
    reference = [s.ids.tolist() for _, s in zip(range(args.steps),
                                                  steps(wlbtune.Packer(packing, cost),
                                                        epochs(lengths)))]

    packer = wlbtune.Packer(packing, cost)
    sampler = epochs(lengths)
    got = []
    checkpoint = os.path.join(tempfile.mkdtemp(prefix="wlbtune-example-"), "packer.pkl")
    while len(got) < args.steps:
        step = packer.next_step()
        if step is None:  # the documents fed do not decide the next step yet: draw more
            packer.feed(*next(sampler))
            continue
        print(describe(step, sharder, cost, args.dp_rank, args.cp_rank))
        got.append(step.ids.tolist())
        if len(got) == args.steps // 2:
            # Checkpoint: the packer's queues and what it was fed; a real job saves the
            # sampler's position beside it (here the generator itself goes on).
            with open(checkpoint, "wb") as f:
                pickle.dump(packer.state_dict(), f)
            packer = wlbtune.Packer(packing, cost)
            with open(checkpoint, "rb") as f:
                packer.load_state_dict(pickle.load(f))
            print(f"-- checkpointed and resumed at step {packer.step} "
                  f"({len(packer.waiting)} documents waiting in the packer)")
    if got != reference:
        print("error: the resumed run differs from the uninterrupted one", file=sys.stderr)
        return 1
    print(f"{len(got)} steps; the resumed run equals the uninterrupted one")
    return 0


if __name__ == "__main__":
    sys.exit(main())
