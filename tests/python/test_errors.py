"""Bad arguments raise Python exceptions with the message the CLI gives for the same input
(issue 21, acceptance): ValueError for bad input, IndexError for an index out of range,
TypeError for an argument of the wrong kind; never a crash or an abort of the interpreter (each
case runs in this process, and the last test checks the module still works)."""

import json
import os
import unittest

import numpy as np

import wlbtune
from wlbtune_testing import TempDir, cli_error, need_cli, run_cli


class ErrorsCarryTheCliMessage(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = TempDir()

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def setUp(self):
        need_cli(self)

    def assertSameError(self, cli_args, call, error=ValueError):
        message = cli_error(*cli_args)
        with self.assertRaises(error) as caught:
            call()
        self.assertEqual(str(caught.exception), message)

    def test_tuned_configs(self):
        not_a_config = self.tmp.file("plan-schema.json")
        with open(not_a_config, "w") as f:
            json.dump({"schema": "wlbtune.plan/1"}, f)
        not_json = self.tmp.file("not-json.json")
        with open(not_json, "w") as f:
            f.write("{ nope")
        missing = self.tmp.file("missing.json")
        for path in (not_a_config, not_json, missing):
            with self.subTest(path=os.path.basename(path)):
                self.assertSameError(["pack", "--config", path, "--steps", "1"],
                                     lambda: wlbtune.load_config(path))

    def test_a_bad_packing_field_in_a_config(self):
        path = self.tmp.file("tuned.json")
        r = run_cli("tune", "--data", "synthetic:lognormal?mu=7&sigma=1&n=1500&seed=2",
                    "--context", "16k", "--layout", "tp=2,cp=2,pp=2,dp=1", "--model", "550m",
                    "-o", path)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(path) as f:
            config = json.load(f)
        config["packing"]["thresholds"] = [9000, 4000]
        config["packing"]["policy"] = "wlb"
        bad = self.tmp.file("bad-thresholds.json")
        with open(bad, "w") as f:
            json.dump(config, f)
        self.assertSameError(["pack", "--config", bad, "--steps", "1"],
                             lambda: wlbtune.load_config(bad))
        with self.assertRaisesRegex(ValueError, "thresholds must increase"):
            wlbtune.PackingConfig.from_dict(config["packing"])

    def test_packing_options(self):
        layout = "tp=8,cp=2,pp=4,dp=1"
        cases = [
            (["--policy", "foo"], {"policy": "foo"}),
            (["--smax", "0.5x"], {"smax": "0.5x"}),
            (["--smax", "64k"], {"smax": "64k"}),
            (["--thresholds", "64k,24k"], {"thresholds": "64k,24k"}),
            (["--thresholds", "24k,lots"], {"thresholds": "24k,lots"}),
            (["--queues", "-1"], {"queues": -1}),
            (["--window", "0", "--policy", "fixed-greedy"],
             {"window": 0, "policy": "fixed-greedy"}),
            (["--micro-batches", "-2"], {"micro_batches": -2}),
            (["--context", "12x"], {"context": "12x"}),
        ]
        for args, kwargs in cases:
            with self.subTest(args=args):
                self.assertSameError(
                    ["pack", "--layout", layout, "--steps", "1", *args],
                    lambda: wlbtune.PackingConfig.for_layout(layout, **kwargs))
        with self.assertRaises(ValueError) as caught:
            wlbtune.PackingConfig(policy="foo")
        self.assertEqual(str(caught.exception), cli_error("pack", "--policy", "foo"))
        with self.assertRaisesRegex(ValueError, "^packing: replicas must be >= 1, found 0$"):
            wlbtune.PackingConfig(replicas=0)
        with self.assertRaisesRegex(ValueError, "S_max must hold a whole context"):
            wlbtune.PackingConfig(context_tokens=8192, smax_tokens=4096)

    def test_cost_model_options(self):
        for args, kwargs in [
            (["--layout", "tp=3,cp=0"], {"layout": "tp=3,cp=0"}),
            (["--layout", "tp=2,cp=2,pp=2,dp=1", "--order", "tp-cp"],
             {"layout": "tp=2,cp=2,pp=2,dp=1", "order": "tp-cp"}),
            (["--model", "9b"], {"model": "9b"}),
            (["--hardware", "tpu"], {"hardware": "tpu"}),
            (["--model", self.tmp.file("no-model.json")],
             {"model": self.tmp.file("no-model.json")}),
        ]:
            with self.subTest(args=args):
                self.assertSameError(["pack", "--steps", "1", *args],
                                     lambda: wlbtune.CostModel(**kwargs))

    def test_sharding_options(self):
        self.assertSameError(["pack", "--steps", "1", "--sharding", "foo"],
                             lambda: wlbtune.ShardingSpec("foo"))
        self.assertSameError(
            ["pack", "--steps", "1", "--sharding", "adaptive", "--hybrid-threshold", "16k"],
            lambda: wlbtune.ShardingSpec("adaptive", hybrid_threshold="16k"))
        self.assertSameError(
            ["pack", "--steps", "1", "--sharding", "hybrid", "--hybrid-threshold", "soon"],
            lambda: wlbtune.ShardingSpec("hybrid", hybrid_threshold="soon"))

    def test_plans(self):
        plan = self.tmp.file("plan.jsonl")
        r = run_cli("pack", "--steps", "3", "--data", "synthetic:lognormal?n=3000&seed=1",
                    "-o", plan)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(plan) as f:
            lines = f.readlines()
        truncated = self.tmp.file("truncated.jsonl")
        with open(truncated, "w") as f:
            f.writelines(lines[:-1])
        garbled = self.tmp.file("garbled.jsonl")
        with open(garbled, "w") as f:
            f.writelines([lines[0], lines[1].replace('"docs"', '"dogs"'), *lines[2:]])
        for path in (truncated, garbled, self.tmp.file("absent.jsonl")):
            with self.subTest(path=os.path.basename(path)):
                self.assertSameError(["shard", "--plan", path],
                                     lambda: wlbtune.read_plan(path))


class ErrorsWithoutTheCli(unittest.TestCase):
    """Bad arguments the CLI has no counterpart for: the library's message, never a crash."""

    def setUp(self):
        self.cost = wlbtune.CostModel(model="550m", layout="tp=2,cp=2,pp=2,dp=1")
        self.config = wlbtune.PackingConfig(policy="wlb", context_tokens=4096, micro_batches=2,
                                            thresholds=[1024, 2048])

    def test_feeding(self):
        p = wlbtune.Packer(self.config, self.cost)
        with self.assertRaisesRegex(ValueError, "^document 1 has 5000 tokens, over the context "
                                    "4096: the document stream must truncate or split it first$"):
            p.feed([0, 1], [10, 5000])
        with self.assertRaisesRegex(ValueError, "^document 0 has 0 tokens"):
            p.feed([0], [0])
        with self.assertRaisesRegex(ValueError, "^feed: 2 document ids but 1 lengths$"):
            p.feed([0, 1], [10])
        with self.assertRaisesRegex(ValueError, "^document id must be >= 0, found -4$"):
            p.feed([-4], [10])
        with self.assertRaisesRegex(ValueError, "one-dimensional"):
            p.feed(np.zeros((2, 2), dtype=np.int64), np.ones((2, 2), dtype=np.int64))
        with self.assertRaises(TypeError):
            p.feed(np.array([0.5]), np.array([10.0]))
        with self.assertRaises(TypeError):
            p.feed("ids", "lengths")
        self.assertEqual(p.fed_documents, 0)
        p.feed(np.array([0, 1], dtype=np.int32), [10, 20])  # a safe cast is fine
        self.assertEqual(p.fed_documents, 2)
        p.close()
        with self.assertRaisesRegex(ValueError, "closed"):
            p.feed([2], [10])

    def test_states(self):
        p = wlbtune.Packer(self.config, self.cost)
        p.feed(np.arange(60), np.tile([700, 1500, 300], 20))  # short and queued documents
        steps = list(p)
        state = p.state_dict()
        self.assertEqual(state["schema"], "wlbtune.packer_state/1")
        other = wlbtune.Packer(wlbtune.PackingConfig(policy="varlen", context_tokens=4096,
                                                     micro_batches=2), self.cost)
        with self.assertRaisesRegex(ValueError, "^packer state: saved by a packer of "):
            other.load_state_dict(state)
        broken = dict(state, packer=dict(state["packer"], queues=[[]]))
        with self.assertRaisesRegex(ValueError, "has 2 queues, found 1"):
            p.load_state_dict(broken)
        with self.assertRaisesRegex(ValueError, "schema"):
            p.load_state_dict({"schema": "something else"})
        with self.assertRaisesRegex(ValueError, r"\$\.fed\[0\]"):
            p.load_state_dict(dict(state, fed=[["a", 1]]))
        with self.assertRaisesRegex(ValueError, "cannot hold"):
            p.load_state_dict(dict(state, fed=[object()]))
        self.assertEqual(p.state_dict(), state)  # every refusal left it as it was
        self.assertGreater(len(steps), 0)

    def test_indices_and_shards(self):
        p = wlbtune.Packer(self.config, self.cost)
        p.feed(np.arange(20), np.full(20, 700))
        p.close()
        step = p.next_step()
        with self.assertRaises(IndexError):
            step.micro_batch(0, 2)
        with self.assertRaises(IndexError):
            step.micro_batch(1, 0)
        sharder = wlbtune.Sharder(wlbtune.ShardingSpec("per-doc"), self.cost)
        sharding = sharder.shard(step.micro_batch(0, 0))
        with self.assertRaisesRegex(IndexError, r"^CP rank 2 out of range \(cp = 2\)$"):
            sharding.rank(2)
        with self.assertRaisesRegex(ValueError, "have the same id 3"):
            sharder.shard([3, 3], [10, 10])
        with self.assertRaisesRegex(ValueError, "^shard: 2 document ids but 3 lengths$"):
            sharder.shard([1, 2], [10, 10, 10])
        with self.assertRaisesRegex(ValueError, "has 0 tokens"):
            sharder.shard([1, 2], [10, 0])

    def test_the_module_still_works(self):
        p = wlbtune.Packer(self.config, self.cost)
        p.feed(np.arange(30), np.full(30, 900))
        p.close()
        self.assertEqual(sum(s.tokens for s in p), 30 * 900)


if __name__ == "__main__":
    unittest.main()
