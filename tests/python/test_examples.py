"""The examples (examples/): the plain-Python dataloader loop runs and its resumed run equals
the uninterrupted one; the torch dataset's numpy helpers lay out every CP rank's tokens, keys
and mask rows as whole-document attention needs them, for every sharding policy (checked
without torch: the torch example itself is run by its own CTest test where torch is installed).
"""

import importlib.util
import os
import subprocess
import sys
import unittest

import numpy as np

import wlbtune

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "examples")


def load_example(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(EXAMPLES, name + ".py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Examples(unittest.TestCase):
    def test_the_dataloader_loop_runs_and_resumes_exactly(self):
        r = subprocess.run([sys.executable, os.path.join(EXAMPLES, "dataloader_loop.py"),
                            "--steps", "8"], capture_output=True, text=True, timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("8 steps; the resumed run equals the uninterrupted one", r.stdout)
        self.assertIn("checkpointed and resumed at step 4", r.stdout)

    def test_rank_layout_helpers_give_whole_document_keys(self):
        ex = load_example("torch_dataset")
        rng = np.random.default_rng(3)
        cost = wlbtune.CostModel(model="7b", layout="tp=8,cp=4,pp=4,dp=1")
        for policy in wlbtune.sharding_policies():
            sharder = wlbtune.Sharder(wlbtune.ShardingSpec(policy), cost)
            for trial in range(20):
                n = int(rng.integers(1, 12))
                lengths = rng.integers(1, 9000, size=n)
                ids = rng.permutation(1000)[:n]
                documents = {int(i): rng.integers(0, 50000, size=int(l))
                             for i, l in zip(ids, lengths)}
                sharding = sharder.shard(ids, lengths)
                per_rank = [ex.rank_tokens(r, documents) for r in sharding.ranks()]
                gathered = np.concatenate([t for t, _ in per_rank])
                gathered_pos = np.concatenate([p for _, p in per_rank])
                self.assertEqual(len(gathered), int(lengths.sum()))
                for r, shard in enumerate(sharding.ranks()):
                    with self.subTest(policy=policy, trial=trial, rank=r):
                        index = ex.kv_index(sharding, r)
                        keys = [documents[d][:o + q] for d, o, q in shard.chunks.tolist()]
                        key_pos = [np.arange(o + q) for d, o, q in shard.chunks.tolist()]
                        self.assertEqual(len(index), shard.cu_seqlens_k[-1])
                        if not keys:
                            continue
                        self.assertEqual(gathered[index].tolist(), np.concatenate(keys).tolist())
                        self.assertEqual(gathered_pos[index].tolist(),
                                         np.concatenate(key_pos).tolist())
                        q_chunk, q_pos, k_chunk, k_pos = ex.mask_rows(shard)
                        self.assertEqual(q_pos.tolist(), per_rank[r][1].tolist())
                        self.assertEqual(k_pos.tolist(), np.concatenate(key_pos).tolist())
                        self.assertEqual(len(q_chunk), shard.tokens)
                        self.assertEqual(np.bincount(k_chunk, minlength=len(shard)).tolist(),
                                         np.diff(shard.cu_seqlens_k).tolist())


if __name__ == "__main__":
    unittest.main()
