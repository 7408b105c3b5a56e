"""The module's CP sharder against `wlbtune shard` (issue 21, acceptance): for every micro-batch
of a plan and every CP rank, Sharder.shard gives the chunks the plan records (`wlbtune pack
--config` with a sharding) and the chunks and kernel shapes (cu_seqlens_q, cu_seqlens_k) that
`wlbtune shard --json --shapes` reports, for every sharding policy; the key offsets and position
ids follow from the chunks."""

import json
import unittest

import numpy as np

import wlbtune
from wlbtune_testing import (TempDir, need_cli, read_plan_json, run_cli, random_lengths,
                             write_config, write_lengths)

CONTEXT = 16384
SPECS = [
    wlbtune.ShardingSpec("per-seq"),
    wlbtune.ShardingSpec("per-doc"),
    wlbtune.ShardingSpec("adaptive"),
    wlbtune.ShardingSpec("hybrid"),
    wlbtune.ShardingSpec("hybrid", hybrid_threshold="2k"),
]


def shard_cli_args(spec):
    args = ["--policy", spec.policy]
    if spec.policy == "hybrid" and spec.hybrid_threshold_tokens is not None:
        args += ["--hybrid-threshold", str(spec.hybrid_threshold_tokens)]
    return args


class SharderMatchesTheCli(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = TempDir()

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def setUp(self):
        need_cli(self)

    def plan(self, layout, spec, seed):
        """A plan packed and sharded by `wlbtune pack --config`, and the config's cost model."""
        packing = wlbtune.PackingConfig.for_layout(layout, policy="wlb", context=CONTEXT)
        cfg = write_config(self.tmp, "config.json", layout, packing, spec)
        data = write_lengths(self.tmp, "lengths.json", random_lengths(seed, 600, CONTEXT))
        path = self.tmp.file(f"plan-{seed}.jsonl")
        r = run_cli("pack", "--config", cfg, "--data", f"json:{data}", "-o", path)
        self.assertEqual(r.returncode, 0, r.stderr)
        return path, wlbtune.load_config(cfg).cost_model()

    def shard_json(self, plan, spec):
        out = self.tmp.file("shard.json")
        r = run_cli("shard", "--plan", plan, *shard_cli_args(spec), "--json", out, "--shapes")
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(out) as f:
            return json.load(f)["micro_batches"]

    def test_chunks_and_shapes_equal_the_cli_for_every_policy(self):
        for layout in ("tp=2,cp=2,pp=2,dp=1", "tp=8,cp=4,pp=2,dp=2"):
            for spec in SPECS:
                for seed in (1, 2):
                    with self.subTest(layout=layout, spec=repr(spec), seed=seed):
                        self.check(layout, spec, seed)

    def check(self, layout, spec, seed):
        plan_path, cost = self.plan(layout, spec, seed)
        plan = wlbtune.read_plan(plan_path)
        sharder = wlbtune.Sharder(spec, cost)
        self.assertEqual(sharder.cp, plan.cp)
        _, records, _ = read_plan_json(plan_path)
        cli = self.shard_json(plan_path, spec)
        checked = 0
        for record, step in zip(records, plan.steps):
            for r, rep in enumerate(record["replicas"]):
                for m, mb in enumerate(rep["micro_batches"]):
                    ours = sharder.shard(step.micro_batch(r, m))
                    also = sharder.shard(np.array([d[0] for d in mb["docs"]]),
                                         [d[1] for d in mb["docs"]])
                    # The plan's recorded chunks (wlbtune pack --config, same policy).
                    self.assertEqual(ours.applied, mb["sharding"]["applied"])
                    self.assertEqual([x.chunks.tolist() for x in ours.ranks()],
                                     mb["sharding"]["ranks"])
                    self.assertEqual([x.chunks.tolist() for x in also.ranks()],
                                     mb["sharding"]["ranks"])
                    # wlbtune shard --policy P --json --shapes, the same micro-batch.
                    row = cli[checked]
                    self.assertEqual((row["step"], row["replica"], row["micro_batch"]),
                                     (record["step"], r, m))
                    self.assertEqual(ours.applied, row["applied"])
                    for rank, shard in zip(row["ranks"], ours.ranks()):
                        self.assertEqual(shard.chunks.tolist(), rank["chunks"])
                        self.assertEqual(shard.cu_seqlens_q.tolist(), rank["cu_seqlens_q"])
                        self.assertEqual(shard.cu_seqlens_k.tolist(), rank["cu_seqlens_k"])
                        self.assertEqual(shard.tokens, rank["tokens"])
                        self.check_shapes(shard)
                    measures = cost.sharding_measures(ours)
                    self.assertAlmostEqual(measures.predicted_seconds, row["predicted_seconds"],
                                           delta=1e-12 + 1e-9 * row["predicted_seconds"])
                    self.assertEqual(measures.rank_tokens.tolist(),
                                     [x["tokens"] for x in row["ranks"]])
                    checked += 1
        self.assertEqual(checked, len(cli))
        self.assertGreater(checked, 10)

    def check_shapes(self, shard):
        chunks = shard.chunks
        for a in (shard.cu_seqlens_q, shard.cu_seqlens_k, shard.q_offsets):
            self.assertEqual(a.dtype, np.int32)
        self.assertEqual(shard.q_offsets.tolist(), chunks[:, 1].tolist())
        self.assertEqual(np.diff(shard.cu_seqlens_q).tolist(), chunks[:, 2].tolist())
        self.assertEqual(np.diff(shard.cu_seqlens_k).tolist(),
                         (chunks[:, 1] + chunks[:, 2]).tolist())
        if len(chunks):
            self.assertEqual(shard.max_seqlen_q, int(chunks[:, 2].max()))
            self.assertEqual(shard.max_seqlen_k, int((chunks[:, 1] + chunks[:, 2]).max()))


if __name__ == "__main__":
    unittest.main()
