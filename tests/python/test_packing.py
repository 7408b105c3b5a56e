"""The module's packer against `wlbtune pack --config` (issue 21, acceptance): fed the same
documents in feeds of random sizes, it emits exactly the steps the CLI writes, for every policy
over several seeds; a checkpoint taken mid-run (state_dict, through pickle) continues with the
same steps as an uninterrupted run; read_plan reads what the json module reads."""

import pickle
import unittest

import numpy as np

import wlbtune
from wlbtune_testing import (TempDir, need_cli, read_plan_json, run_cli, random_lengths,
                             write_config, write_lengths)

LAYOUT = "tp=2,cp=2,pp=2,dp=2"  # 2 DP replicas x 2 micro-batches per step
CONTEXT = 8192
SEEDS = (1, 2, 3)


def policies():
    """Every packing policy, with the parameters that change what they do."""
    out = []
    for policy, extra in [
        ("plain", {}),
        ("fixed-greedy", {"window": 1}),
        ("fixed-greedy", {"window": 3}),
        ("varlen", {}),
        ("varlen", {"smax": "2x"}),
        ("wlb", {"queues": 1}),
        ("wlb", {"queues": 2}),
        ("wlb", {"thresholds": "1k,3k,6k", "micro_batches": 4}),
        ("ffd", {}),
        ("plain-whole", {}),
        ("wlb", {"queues": 2, "max_delay": 2}),
    ]:
        out.append(wlbtune.PackingConfig.for_layout(LAYOUT, policy=policy, context=CONTEXT,
                                                    **extra))
    return out


def step_rows(step):
    """A step as plain values: number, shape, and per micro-batch [id, tokens, drawn_step]."""
    mbs = []
    for r in range(step.replicas):
        for mb in step.replica(r):
            mbs.append([[int(i), int(t), int(d)]
                        for i, t, d in zip(mb.ids, mb.lengths, mb.drawn_steps)])
    return [step.step, step.replicas, step.micro_batches, mbs]


def plan_rows(record):
    mbs = [mb["docs"] for rep in record["replicas"] for mb in rep["micro_batches"]]
    return [record["step"], len(record["replicas"]), len(record["replicas"][0]["micro_batches"]),
            mbs]


def pack_online(config, cost, lengths, rng, checkpoint_at=None):
    """Feeds lengths (ids = positions) in random feeds, taking out every step the documents fed
    decide; with checkpoint_at, the packer is replaced by a new one restored from a pickled
    state_dict() once that many documents were fed. Returns the steps as rows."""
    packer = wlbtune.Packer(config, cost)
    rows = []
    fed = 0
    n = len(lengths)
    ids = np.arange(n, dtype=np.int64)
    while fed < n:
        k = min(n - fed, int(rng.integers(1, 60)))
        if checkpoint_at is not None and fed < checkpoint_at <= fed + k:
            k = checkpoint_at - fed
        packer.feed(ids[fed:fed + k], lengths[fed:fed + k])
        fed += k
        rows.extend(step_rows(s) for s in packer)
        if fed == checkpoint_at:
            state = pickle.loads(pickle.dumps(packer.state_dict()))
            packer = wlbtune.Packer(config, cost)
            packer.load_state_dict(state)
    packer.close()
    rows.extend(step_rows(s) for s in packer)
    assert packer.finished
    assert packer.waiting.shape == (0, 3)
    return rows


class PackerMatchesTheCli(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = TempDir()

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def setUp(self):
        need_cli(self)

    def cli_plan(self, config, seed, lengths):
        cfg = write_config(self.tmp, f"config-{seed}.json", LAYOUT, config,
                           wlbtune.ShardingSpec("per-doc"))
        data = write_lengths(self.tmp, f"lengths-{seed}.json", lengths)
        plan = self.tmp.file(f"plan-{seed}.jsonl")
        r = run_cli("pack", "--config", cfg, "--data", f"json:{data}", "-o", plan)
        self.assertEqual(r.returncode, 0, r.stderr)
        return plan

    def test_every_policy_and_seed_gives_the_cli_steps(self):
        cost = wlbtune.CostModel(model="550m", layout=LAYOUT)
        for config in policies():
            for seed in SEEDS:
                with self.subTest(config=repr(config), seed=seed):
                    lengths = random_lengths(seed, 1500, CONTEXT)
                    plan = self.cli_plan(config, seed, lengths)
                    _, records, end = read_plan_json(plan)
                    self.assertEqual(end["waiting"], [])
                    expected = [plan_rows(r) for r in records]
                    self.assertGreater(len(expected), 5)
                    rng = np.random.default_rng(seed)
                    self.assertEqual(pack_online(config, cost, lengths, rng), expected)

    def test_a_checkpoint_mid_run_continues_with_the_same_steps(self):
        cost = wlbtune.CostModel(model="550m", layout=LAYOUT)
        for config in policies():
            for seed in SEEDS:
                with self.subTest(config=repr(config), seed=seed):
                    lengths = random_lengths(seed + 100, 1200, CONTEXT)
                    whole = pack_online(config, cost, lengths, np.random.default_rng(seed))
                    cut = 200 + 300 * seed
                    resumed = pack_online(config, cost, lengths, np.random.default_rng(seed),
                                          checkpoint_at=cut)
                    self.assertEqual(resumed, whole)

    def test_a_pickled_packer_continues_with_the_same_steps(self):
        cost = wlbtune.CostModel(model="550m", layout=LAYOUT)
        config = wlbtune.PackingConfig.for_layout(LAYOUT, policy="wlb", context=CONTEXT)
        lengths = random_lengths(7, 1000, CONTEXT)
        ids = np.arange(len(lengths))
        a = wlbtune.Packer(config, cost)
        a.feed(ids[:400], lengths[:400])
        first = [step_rows(s) for s in a]
        self.assertGreater(len(first), 0)
        self.assertGreater(len(a.waiting) + a.fed_documents, 0)
        b = pickle.loads(pickle.dumps(a))
        self.assertEqual(b.state_dict(), a.state_dict())
        rest = []
        for p in (a, b):
            p.feed(ids[400:], lengths[400:])
            p.close()
            rest.append([step_rows(s) for s in p])
        self.assertEqual(rest[0], rest[1])

    def test_read_plan_reads_what_the_json_module_reads(self):
        config = wlbtune.PackingConfig.for_layout(LAYOUT, policy="wlb", context=CONTEXT)
        lengths = random_lengths(5, 800, CONTEXT)
        path = self.cli_plan(config, 5, lengths)
        header, records, end = read_plan_json(path)
        plan = wlbtune.read_plan(path)
        self.assertEqual(plan.header, header)
        self.assertEqual([step_rows(s) for s in plan.steps], [plan_rows(r) for r in records])
        self.assertEqual(plan.waiting.tolist(), end["waiting"])
        self.assertEqual(plan.cp, 2)
        self.assertEqual(len(plan.sharding), len(records))
        for step, record in zip(plan.sharding, records):
            for replica, rep_record in zip(step, record["replicas"]):
                for sharding, mb in zip(replica, rep_record["micro_batches"]):
                    self.assertEqual(sharding.applied, mb["sharding"]["applied"])
                    self.assertEqual([r.chunks.tolist() for r in sharding.ranks()],
                                     mb["sharding"]["ranks"])


if __name__ == "__main__":
    unittest.main()
