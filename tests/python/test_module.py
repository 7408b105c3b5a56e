"""The module on its own (no CLI): its names match the type stubs, arrays share the library's
memory read-only and keep it alive, settings round-trip through dicts and pickle, the predicted
figures agree with their definitions (a step's imbalance is max / mean of its micro-batches'
predicted seconds; causal pairs d (d + 1) / 2), and packers on several threads do not interfere.
"""

import ast
import gc
import os
import pickle
import threading
import unittest

import numpy as np

import wlbtune
import wlbtune._wlbtune as ext

STUBS = os.path.join(os.path.dirname(wlbtune.__file__), "_wlbtune.pyi")


def stub_names():
    """Top-level names and, per class, member names declared in the stubs."""
    with open(STUBS) as f:
        tree = ast.parse(f.read())
    names, members = set(), {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            names.add(node.name)
            members[node.name] = {n.name for n in node.body
                                  if isinstance(n, ast.FunctionDef) and not n.name.startswith("_")}
        elif isinstance(node, ast.FunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return {n for n in names if not n.startswith("_") or n == "__version__"}, members


def small_packer(policy="wlb", **kwargs):
    cost = wlbtune.CostModel(model="550m", layout="tp=2,cp=2,pp=2,dp=2")
    config = wlbtune.PackingConfig.for_layout(cost.layout, policy=policy, context=4096, **kwargs)
    return wlbtune.Packer(config, cost), cost


def lengths(seed, n, context=4096):
    rng = np.random.default_rng(seed)
    return np.clip(rng.lognormal(5.5, 1.2, size=n).astype(np.int64), 1, context)


class StubsAndNames(unittest.TestCase):
    def test_the_stubs_declare_exactly_the_public_names(self):
        declared, members = stub_names()
        public = {n for n in dir(ext) if not n.startswith("_")} | {"__version__"}
        self.assertEqual(declared, public)
        self.assertEqual(set(wlbtune.__all__), public)
        for cls, names in members.items():
            with self.subTest(cls=cls):
                actual = {n for n in dir(getattr(ext, cls)) if not n.startswith("_")}
                self.assertEqual(names, actual)

    def test_every_public_name_has_a_docstring(self):
        for name in dir(ext):
            obj = getattr(ext, name)
            if name.startswith("_") or not callable(obj):
                continue
            with self.subTest(name=name):
                self.assertTrue((obj.__doc__ or "").strip())

    def test_lists_and_version(self):
        self.assertEqual(wlbtune.packing_policies(),
                         ["plain", "fixed-greedy", "varlen", "wlb", "ffd", "plain-whole"])
        self.assertEqual(wlbtune.sharding_policies(), ["per-seq", "per-doc", "adaptive", "hybrid"])
        self.assertIn("7b", wlbtune.model_presets())
        self.assertIn("h100-sxm", wlbtune.hardware_presets())
        self.assertRegex(wlbtune.__version__, r"^\d+\.\d+\.\d+$")


class Arrays(unittest.TestCase):
    def test_step_arrays_are_read_only_views_that_keep_the_step_alive(self):
        p, _ = small_packer()
        p.feed(np.arange(400), lengths(1, 400))
        step = p.next_step()
        self.assertIsNotNone(step)
        mb = step.micro_batch(1, 1)
        ids = mb.ids
        self.assertTrue(np.shares_memory(ids, step.ids))
        self.assertFalse(ids.flags.writeable)
        with self.assertRaises(ValueError):
            ids[0] = 7
        k = 1 * step.micro_batches + 1
        expected = step.ids[step.offsets[k]:step.offsets[k + 1]].tolist()
        del step, mb
        gc.collect()
        self.assertEqual(ids.tolist(), expected)  # still valid: the array holds the step
        self.assertEqual(ids.dtype, np.int64)

    def test_shard_arrays_are_views_too(self):
        cost = wlbtune.CostModel(model="550m", layout="tp=2,cp=4,pp=2,dp=1")
        sharding = wlbtune.Sharder(wlbtune.ShardingSpec("per-doc"), cost).shard(
            [4, 9, 2], [3000, 100, 777])
        rank = sharding.rank(3)
        a, b = rank.cu_seqlens_q, rank.cu_seqlens_q
        self.assertTrue(np.shares_memory(a, b))
        self.assertFalse(rank.chunks.flags.writeable)
        chunks = rank.chunks
        del rank, sharding
        gc.collect()
        self.assertEqual(chunks.shape[1], 3)
        self.assertTrue(set(chunks[:, 0].tolist()) <= {4, 9, 2})

    def test_numpy_and_list_arguments_agree(self):
        a, _ = small_packer()
        b, _ = small_packer()
        x = lengths(2, 300)
        a.feed(np.arange(300, dtype=np.int32), x.astype(np.int32))
        b.feed(list(range(300)), x.tolist())
        for p in (a, b):
            p.close()
        self.assertEqual([s.ids.tolist() for s in a], [s.ids.tolist() for s in b])


class Settings(unittest.TestCase):
    def test_round_trips(self):
        packing = wlbtune.PackingConfig.for_layout("tp=8,cp=2,pp=4,dp=1", policy="wlb",
                                                   thresholds="24k,64k")
        self.assertEqual(packing.thresholds, (24576, 65536))
        self.assertEqual(packing.smax_tokens, 196608)
        self.assertEqual(packing.step_tokens, 4 * 131072)
        self.assertEqual(wlbtune.PackingConfig.from_dict(packing.to_dict()), packing)
        self.assertEqual(pickle.loads(pickle.dumps(packing)), packing)
        direct = wlbtune.PackingConfig(policy="wlb", context_tokens=131072, micro_batches=4,
                                       smax_tokens=196608, thresholds=[24576, 65536])
        self.assertEqual(direct, packing)
        spec = wlbtune.ShardingSpec("hybrid", hybrid_threshold="16k")
        self.assertEqual(spec.hybrid_threshold_tokens, 16384)
        self.assertEqual(wlbtune.ShardingSpec.from_dict(spec.to_dict()), spec)
        self.assertEqual(pickle.loads(pickle.dumps(spec)), spec)
        self.assertIsNone(wlbtune.ShardingSpec("hybrid").hybrid_threshold_tokens)
        cost = wlbtune.CostModel(model="30b", layout="tp=8,cp=4,pp=4,dp=2")
        again = pickle.loads(pickle.dumps(cost))
        self.assertEqual(again.to_dict(), cost.to_dict())
        self.assertEqual((again.tp, again.cp, again.pp, again.dp), (8, 4, 4, 2))
        sharder = pickle.loads(pickle.dumps(wlbtune.Sharder(spec, cost)))
        self.assertEqual(sharder.spec, spec)
        self.assertEqual(sharder.cp, 4)


class Predictions(unittest.TestCase):
    def test_causal_pairs_closed_form(self):
        x = np.array([1, 2, 10, 131072])
        self.assertEqual(wlbtune.causal_pairs(x), int(sum(d * (d + 1) // 2 for d in x)))

    def test_micro_batch_seconds_is_the_sum_over_its_documents(self):
        cost = wlbtune.CostModel()
        x = lengths(3, 50, 131072)
        self.assertAlmostEqual(cost.micro_batch_seconds(x), float(cost.document_seconds(x).sum()),
                               delta=1e-12)
        d = cost.document_seconds([1000, 2000, 64000])
        self.assertTrue(d[0] < d[1] < d[2])  # longer documents cost more
        self.assertGreater(d[2] / 64, d[0])  # ... superlinearly (attention)

    def test_step_imbalance_is_max_over_mean_of_micro_batch_seconds(self):
        p, cost = small_packer()
        p.feed(np.arange(3000), lengths(4, 3000))
        p.close()
        checked = 0
        for step in p:
            m = cost.step_measures(step)
            seconds = [cost.micro_batch_seconds(mb.lengths)
                       for r in range(step.replicas) for mb in step.replica(r)]
            if max(seconds) == 0:
                continue
            self.assertAlmostEqual(m.imbalance, max(seconds) / np.mean(seconds), places=9)
            self.assertAlmostEqual(m.max_fwd_seconds, max(seconds), delta=1e-15)
            self.assertEqual(m.tokens, step.tokens)
            self.assertEqual(m.documents, step.documents)
            self.assertEqual(m.step, step.step)
            checked += 1
        self.assertGreater(checked, 10)

    def test_sharding_measures_cover_the_micro_batch(self):
        cost = wlbtune.CostModel(model="7b", layout="tp=8,cp=4,pp=4,dp=1")
        sharder = wlbtune.Sharder(wlbtune.ShardingSpec("adaptive"), cost)
        x = lengths(5, 40, 131072)
        s = sharder.shard(np.arange(len(x)), x)
        m = cost.sharding_measures(s)
        self.assertEqual(int(m.rank_tokens.sum()), int(x.sum()))
        self.assertEqual([r.tokens for r in s.ranks()], m.rank_tokens.tolist())
        self.assertAlmostEqual(m.predicted_seconds,
                               float((m.rank_attention_seconds + m.rank_linear_seconds).max()),
                               delta=1e-15)
        self.assertGreaterEqual(m.attention_imbalance, 1.0)


class Threads(unittest.TestCase):
    def test_packers_on_several_threads_give_the_sequential_steps(self):
        x = lengths(6, 4000)

        def run(out, index):
            p, _ = small_packer("wlb", queues=3)
            for start in range(0, len(x), 97):
                p.feed(np.arange(start, min(start + 97, len(x))), x[start:start + 97])
                out[index].extend(s.ids.tolist() for s in p)
            p.close()
            out[index].extend(s.ids.tolist() for s in p)

        sequential = [[]]
        run(sequential, 0)
        results = [[] for _ in range(4)]
        threads = [threading.Thread(target=run, args=(results, i)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for r in results:
            self.assertEqual(r, sequential[0])

    def test_one_packer_shared_by_threads_emits_every_document_once(self):
        p, _ = small_packer("varlen")
        x = lengths(7, 2000)
        p.feed(np.arange(len(x)), x)
        p.close()
        seen = []
        lock = threading.Lock()

        def take():
            for step in p:
                with lock:
                    seen.append((step.step, step.ids.tolist()))

        threads = [threading.Thread(target=take) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        steps = sorted(seen)
        self.assertEqual([s for s, _ in steps], list(range(len(steps))))
        self.assertEqual(sorted(i for _, ids in steps for i in ids), list(range(len(x))))


if __name__ == "__main__":
    unittest.main()
