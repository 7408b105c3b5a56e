#!/usr/bin/env python3
"""A PyTorch IterableDataset that yields packed micro-batches, CP-sharded, with cu_seqlens ready
for flash_attn_varlen_func or a FlexAttention document mask (docs/integration.md).

The dataset shuffles the documents each epoch and feeds the packer as it draws them; for each
step the packer decides, it takes this DP rank's micro-batches, shards each over the CP group
and yields this CP rank's part:

    input_ids      the rank's query tokens, chunk after chunk
    position_ids   each token's position in its document (RoPE)
    cu_seqlens_q   int32, chunks + 1: chunk c's queries are rows cu_seqlens_q[c]:cu_seqlens_q[c+1]
    cu_seqlens_k   int32, chunks + 1: its keys (the document's first q_offset + q_tokens tokens)
    max_seqlen_q, max_seqlen_k
    kv_index       int64, cu_seqlens_k[-1]: rows of the CP group's all-gathered tokens (rank 0's,
                   then rank 1's, ...) that make up the key buffer, chunk after chunk
    q_chunk, q_pos, k_chunk, k_pos   per query / key row: its chunk and its position in the
                   document, for a FlexAttention mask_mod (same chunk and k_pos <= q_pos)

With flash-attn, each attention layer of CP rank r does

    k_all, v_all = all_gather(k_local), all_gather(v_local)    # the CP group's tokens, in rank order
    k, v = k_all[kv_index], v_all[kv_index]
    out = flash_attn_varlen_func(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k,
                                 causal=True)                  # causal aligned bottom-right

Run it (torch needed; exits 77, "skipped", without it):

    PYTHONPATH=build/python python3 examples/torch_dataset.py [--config tuned.json]

It checks on a few micro-batches that every CP rank's attention over its chunks equals the rows
of whole-document causal attention it owns (flash-attn on a GPU when installed, else a plain
PyTorch reference of the same varlen call), and so does the FlexAttention mask. The check uses
the default wlb policy (documents whole); the helpers above the dataset use numpy only.
"""

import argparse
import sys

import numpy as np

import wlbtune

try:
    import torch
except ImportError:  # the helpers below work without it
    torch = None


# ---- numpy helpers: what a CP rank needs from its RankShard -------------------------------


def rank_tokens(shard, documents, start=None):
    """The rank's query tokens and their positions: chunk [doc, q_offset, q_tokens] holds tokens
    q_offset .. q_offset + q_tokens - 1 of its document. `start[doc]` is where a document's piece
    begins in the document (plain packing cuts documents at sequence boundaries and continues
    them in the next micro-batch under the same id); 0 otherwise."""
    start = start or {}
    tokens, positions = [], []
    for doc, q_offset, q_tokens in shard.chunks.tolist():
        base = start.get(doc, 0) + q_offset
        tokens.append(np.asarray(documents[doc][base:base + q_tokens]))
        positions.append(np.arange(q_offset, q_offset + q_tokens))
    if not tokens:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(tokens), np.concatenate(positions)


def kv_index(sharding, cp_rank):
    """Rows of the all-gathered tokens (every CP rank's query tokens, rank 0's first) that form
    rank `cp_rank`'s key buffer: for each of its chunks, its document's tokens 0 .. q_offset +
    q_tokens - 1, in order (what cu_seqlens_k describes)."""
    where = {}  # doc -> gathered row of each of its tokens
    row = 0
    for shard in sharding.ranks():
        for doc, q_offset, q_tokens in shard.chunks.tolist():
            rows = where.setdefault(doc, {})
            for i in range(q_tokens):
                rows[q_offset + i] = row + i
            row += q_tokens
    out = []
    for doc, q_offset, q_tokens in sharding.rank(cp_rank).chunks.tolist():
        rows = where[doc]
        out.append(np.array([rows[p] for p in range(q_offset + q_tokens)], dtype=np.int64))
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def mask_rows(shard):
    """Per query row and per key row: the chunk it belongs to and its position in the document.
    A FlexAttention mask_mod is (q_chunk[q] == k_chunk[kv]) & (k_pos[kv] <= q_pos[q])."""
    cu_q = shard.cu_seqlens_q.astype(np.int64)
    cu_k = shard.cu_seqlens_k.astype(np.int64)
    q_chunk = np.repeat(np.arange(len(shard)), np.diff(cu_q))
    k_chunk = np.repeat(np.arange(len(shard)), np.diff(cu_k))
    q_pos = shard.q_offsets.astype(np.int64)[q_chunk] + (np.arange(cu_q[-1]) - cu_q[q_chunk])
    k_pos = np.arange(cu_k[-1]) - cu_k[k_chunk]
    return q_chunk, q_pos, k_chunk, k_pos


# ---- the dataset ----------------------------------------------------------------------------

_Base = torch.utils.data.IterableDataset if torch is not None else object


class PackedMicroBatches(_Base):
    """This (dp_rank, cp_rank)'s micro-batches, step after step, epoch after epoch.

    documents: a sequence of 1-D token arrays (document i = documents[i]); the packer sees
    their lengths, truncated to the context. Every rank builds the same dataset (same seed),
    so the packer gives every rank the same steps. state_dict() / load_state_dict() resume a
    run: the packer's queues and the sampler's position."""

    def __init__(self, documents, packing, sharding, cost, dp_rank=0, cp_rank=0, seed=0,
                 feed=64):
        self.documents = documents
        self.lengths = np.minimum([len(d) for d in documents], packing.context_tokens)
        self.packer = wlbtune.Packer(packing, cost)
        self.sharder = wlbtune.Sharder(sharding, cost)
        self.dp_rank, self.cp_rank, self.seed, self.feed = dp_rank, cp_rank, seed, feed
        self.epoch, self.position = 0, 0  # the sampler: documents fed so far this epoch
        self.plain = packing.policy == "plain"
        self.used = {}  # plain: tokens of a cut document earlier micro-batches took

    def _draw(self):
        order = np.random.default_rng(self.seed + self.epoch).permutation(len(self.lengths))
        ids = order[self.position:self.position + self.feed]
        self.position += len(ids)
        if self.position >= len(order):
            self.epoch, self.position = self.epoch + 1, 0
        return ids, self.lengths[ids]

    def __iter__(self):
        while True:
            step = self.packer.next_step()
            if step is None:
                self.packer.feed(*self._draw())
                continue
            for r in range(step.replicas):
                for mb in step.replica(r):
                    item = self._item(mb) if r == self.dp_rank else None
                    if self.plain:  # every replica's pieces advance the cut documents
                        for doc, tokens in zip(mb.ids.tolist(), mb.lengths.tolist()):
                            self.used[doc] = self.used.get(doc, 0) + tokens
                    if item is not None:
                        yield item

    def _item(self, mb):
        sharding = self.sharder.shard(mb)
        shard = sharding.rank(self.cp_rank)
        tokens, positions = rank_tokens(shard, self.documents, self.used if self.plain else None)
        q_chunk, q_pos, k_chunk, k_pos = mask_rows(shard)
        t = torch.from_numpy
        return {
            "step": mb.step,
            "micro_batch": mb.index,
            "chunks": t(shard.chunks.copy()),
            "input_ids": t(np.ascontiguousarray(tokens, dtype=np.int64)),
            "position_ids": t(positions),
            "cu_seqlens_q": t(shard.cu_seqlens_q.copy()),
            "cu_seqlens_k": t(shard.cu_seqlens_k.copy()),
            "max_seqlen_q": shard.max_seqlen_q,
            "max_seqlen_k": shard.max_seqlen_k,
            "kv_index": t(kv_index(sharding, self.cp_rank)),
            "q_chunk": t(q_chunk),
            "q_pos": t(q_pos),
            "k_chunk": t(k_chunk),
            "k_pos": t(k_pos),
        }

    def state_dict(self):
        return {"packer": self.packer.state_dict(), "epoch": self.epoch,
                "position": self.position, "used": dict(self.used)}

    def load_state_dict(self, state):
        self.packer.load_state_dict(state["packer"])
        self.epoch, self.position = state["epoch"], state["position"]
        self.used = dict(state["used"])


# ---- the self-check --------------------------------------------------------------------------


def varlen_reference(q, k, v, cu_q, cu_k):
    """What flash_attn_varlen_func(q, k, v, cu_q, cu_k, ..., causal=True) computes, in plain
    PyTorch: per chunk, query i attends keys 0 .. (k_len - q_len) + i."""
    out = torch.empty_like(q)
    for c in range(len(cu_q) - 1):
        qs, ks = slice(cu_q[c], cu_q[c + 1]), slice(cu_k[c], cu_k[c + 1])
        nq, nk = qs.stop - qs.start, ks.stop - ks.start
        mask = torch.arange(nk)[None, :] <= (nk - nq) + torch.arange(nq)[:, None]
        scores = torch.einsum("qhd,khd->hqk", q[qs], k[ks]) / q.shape[-1] ** 0.5
        scores = scores.masked_fill(~mask.to(scores.device), float("-inf"))
        out[qs] = torch.einsum("hqk,khd->qhd", scores.softmax(-1), v[ks])
    return out


def check_attention(documents, dataset_of_rank, cp, steps=3, heads=2, head_dim=16):
    """Each CP rank's varlen attention over its chunks (keys gathered with kv_index) equals the
    rows it owns of whole-document causal attention, and so does the FlexAttention mask over
    the same rows. Returns the kernel that was checked."""
    try:
        from flash_attn import flash_attn_varlen_func
    except ImportError:
        flash_attn_varlen_func = None
    use_flash = flash_attn_varlen_func is not None and torch.cuda.is_available()
    gen = torch.Generator().manual_seed(0)
    # q, k, v of a token from (token, position in its document): the same document token gets
    # the same vectors on every rank, so whole-document attention is the reference.
    table = torch.randn(1 << 16, 3, heads, head_dim, generator=gen, dtype=torch.float64)

    def qkv_of(tokens, positions):
        return table[(tokens * 7919 + positions) % (1 << 16)]

    iters = [iter(dataset_of_rank(r)) for r in range(cp)]
    for _ in range(steps):
        items = [next(it) for it in iters]
        local = [qkv_of(item["input_ids"], item["position_ids"]) for item in items]
        gathered = torch.cat(local)  # the CP all-gather, in rank order
        for item, mine in zip(items, local):
            kv = gathered[item["kv_index"]]
            q, k, v = mine[:, 0], kv[:, 1], kv[:, 2]
            cu_q, cu_k = item["cu_seqlens_q"], item["cu_seqlens_k"]
            if use_flash:
                out = flash_attn_varlen_func(
                    q.cuda().bfloat16(), k.cuda().bfloat16(), v.cuda().bfloat16(), cu_q.cuda(),
                    cu_k.cuda(), item["max_seqlen_q"], item["max_seqlen_k"],
                    causal=True).double().cpu()
            else:
                out = varlen_reference(q, k, v, cu_q.tolist(), cu_k.tolist())
            expected = []
            for doc, q_offset, q_tokens in item["chunks"].tolist():
                n = q_offset + q_tokens
                d = qkv_of(torch.as_tensor(documents[doc][:n]), torch.arange(n))
                whole = varlen_reference(d[:, 0], d[:, 1], d[:, 2], [0, n], [0, n])
                expected.append(whole[q_offset:n])
            if not expected:  # a rank without tokens in this micro-batch
                continue
            expected = torch.cat(expected)
            allowed = ((item["q_chunk"][:, None] == item["k_chunk"][None, :]) &
                       (item["k_pos"][None, :] <= item["q_pos"][:, None]))
            scores = torch.einsum("qhd,khd->hqk", q, k) / head_dim ** 0.5
            flex = torch.einsum("hqk,khd->qhd",
                                scores.masked_fill(~allowed, float("-inf")).softmax(-1), v)
            tolerance = 3e-2 if use_flash else 1e-9
            for name, got in (("varlen attention", out), ("the FlexAttention mask", flex)):
                if not torch.allclose(got, expected, atol=tolerance, rtol=tolerance):
                    raise AssertionError(f"step {item['step']} micro-batch "
                                         f"{item['micro_batch']}: {name} differs from "
                                         "whole-document attention")
    return "flash-attn" if use_flash else "a PyTorch reference of the varlen call"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="a tuned config (wlbtune.config/1)")
    args = parser.parse_args()
    if torch is None:
        print("skipped: torch is not installed")
        return 77
    if args.config:
        config = wlbtune.load_config(args.config)
        packing, sharding, cost = config.packing, config.sharding, config.cost_model()
    else:  # a small job, so the check runs in seconds on a CPU
        cost = wlbtune.CostModel(model="550m", layout="tp=1,cp=4,pp=2,dp=2")
        packing = wlbtune.PackingConfig.for_layout(cost.layout, policy="wlb", context="4k")
        sharding = wlbtune.ShardingSpec("adaptive")
    rng = np.random.default_rng(1)
    lengths = np.clip(rng.lognormal(5.5, 1.0, size=3000).astype(np.int64), 1,
                      packing.context_tokens)
    documents = [rng.integers(0, 32000, size=n) for n in lengths]

    loader = torch.utils.data.DataLoader(
        PackedMicroBatches(documents, packing, sharding, cost, dp_rank=0, cp_rank=0),
        batch_size=None)
    for i, item in zip(range(4), loader):
        print(f"step {item['step']} micro-batch {item['micro_batch']}: "
              f"{len(item['input_ids'])} tokens on cp rank 0, "
              f"cu_seqlens_q {item['cu_seqlens_q'].tolist()[:6]}...")

    def dataset_of_rank(r):
        return PackedMicroBatches(documents, packing, sharding, cost, dp_rank=0, cp_rank=r)

    kernel = check_attention(documents, dataset_of_rank, cost.cp)
    print(f"every CP rank's varlen attention equals whole-document attention ({kernel})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
