#!/usr/bin/env python3
"""A small training job for `wlbtune profile` on a GPU machine (scripts/gpu/profile_check.sh).

    profile_train.py [--steps N] [--micro-batches M] [--tokens T] [--no-nvtx]
                     [--times FILE] [--ready FILE --ready-step K]

Each step trains a few transformer layers (bf16, one GPU) on M micro-batches, each a packed
sequence of T tokens made of documents of different lengths behind a document mask (causal
within each document): FlashAttention's varlen kernel when PyTorch has it
(torch.nn.attention.varlen), else SDPA with the block-diagonal mask. It marks its work with NVTX
ranges the way training frameworks do (torch.cuda.nvtx): "train_step" around a step, "forward"
and "backward" around each micro-batch's passes, "optimizer" around the update; --no-nvtx leaves
them out. Under torchrun with WORLD_SIZE > 1 every rank uses GPU 0 and the gloo backend, and the
ranks all-reduce their gradients (on the host) each step.

--times writes the seconds of every step ({rank} in the name is replaced), measured on the host
around a step that ends with a device synchronization. --ready is touched by rank 0 after
--ready-step steps (profile_check.sh triggers a capture then).
"""

import argparse
import contextlib
import itertools
import json
import os
import random
import sys
import time

try:
    import torch
    import torch.nn.functional as F
except ImportError as e:  # the check reports it
    print(f"profile_train: skipped: torch is not importable ({e})")
    sys.exit(0)


def document_lengths(rng, tokens):
    """Document lengths summing to `tokens`: a long-tailed mix, as pretraining data packs."""
    out, left = [], tokens
    while left > 0:
        n = min(left, max(16, int(rng.lognormvariate(6.0, 1.2))))
        out.append(n)
        left -= n
    return out


class Layer(torch.nn.Module):
    def __init__(self, hidden, heads):
        super().__init__()
        self.heads = heads
        self.norm1 = torch.nn.RMSNorm(hidden)
        self.qkv = torch.nn.Linear(hidden, 3 * hidden, bias=False)
        self.out = torch.nn.Linear(hidden, hidden, bias=False)
        self.norm2 = torch.nn.RMSNorm(hidden)
        self.up = torch.nn.Linear(hidden, 4 * hidden, bias=False)
        self.down = torch.nn.Linear(4 * hidden, hidden, bias=False)

    def forward(self, x, attend):
        t, h = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(t, 3, self.heads, h // self.heads).unbind(1)
        x = x + self.out(attend(q, k, v).reshape(t, h))
        return x + self.down(F.gelu(self.up(self.norm2(x))))


def make_attention(lengths, device):
    """Causal attention within each document of the pack (q, k, v: tokens x heads x dim)."""
    cu = torch.tensor([0] + list(itertools.accumulate(lengths)), device=device,
                      dtype=torch.int32)
    longest = max(lengths)
    try:
        import inspect

        from torch.nn.attention import varlen

        params = inspect.signature(varlen.varlen_attn).parameters
        causal = {"is_causal": True} if "is_causal" in params else {"window_size": (-1, 0)}

        def attend(q, k, v):
            return varlen.varlen_attn(q, k, v, cu, cu, longest, longest, **causal)

        # Forward and backward on this machine, or the masked SDPA below.
        t = torch.randn(int(cu[-1]), 2, 64, device=device, dtype=torch.bfloat16,
                        requires_grad=True)
        attend(t, t, t).sum().backward()
        return attend, "varlen_attn"
    except Exception:  # missing, or refusing this device, dtype or mask
        pass
    doc = torch.repeat_interleave(torch.arange(len(lengths), device=device),
                                  torch.tensor(lengths, device=device))
    pos = torch.arange(len(doc), device=device)
    mask = (doc[:, None] == doc[None, :]) & (pos[:, None] >= pos[None, :])

    def attend(q, k, v):
        o = F.scaled_dot_product_attention(q.transpose(0, 1), k.transpose(0, 1),
                                           v.transpose(0, 1), attn_mask=mask)
        return o.transpose(0, 1)

    return attend, "sdpa with a document mask"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--micro-batches", type=int, default=2)
    p.add_argument("--tokens", type=int, default=4096)
    p.add_argument("--hidden", type=int, default=1024)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--no-nvtx", action="store_true")
    p.add_argument("--times")
    p.add_argument("--ready")
    p.add_argument("--ready-step", type=int, default=5)
    a = p.parse_args()
    if not torch.cuda.is_available():
        print("profile_train: skipped: no CUDA device")
        return 0
    rank = int(os.environ.get("RANK", "0"))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        torch.distributed.init_process_group("gloo")
    device = torch.device("cuda", 0)
    torch.manual_seed(0)
    rng = random.Random(1234 + rank)
    model = torch.nn.Sequential(*[Layer(a.hidden, a.heads) for _ in range(a.layers)]).to(
        device, torch.bfloat16)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    nvtx = contextlib.nullcontext if a.no_nvtx else torch.cuda.nvtx.range
    packs = []
    for _ in range(8):  # a few packings, cycled: the same shapes come back, as in training
        lengths = document_lengths(rng, a.tokens)
        packs.append((make_attention(lengths, device), len(lengths)))
    print(f"profile_train: rank {rank}/{world}, {a.layers} layers x {a.hidden}, "
          f"{a.micro_batches} x {a.tokens} tokens per step, attention: {packs[0][0][1]}",
          flush=True)
    times = []
    for step in range(a.steps):
        torch.cuda.synchronize()
        start = time.perf_counter()
        with nvtx("train_step"):
            for mb in range(a.micro_batches):
                (attend, _), _ = packs[(step * a.micro_batches + mb) % len(packs)]
                x = torch.randn(a.tokens, a.hidden, device=device, dtype=torch.bfloat16)
                with nvtx("forward"):
                    y = x
                    for layer in model:
                        y = layer(y, attend)
                    loss = y.float().pow(2).mean()
                with nvtx("backward"):
                    loss.backward()
            if world > 1:  # the ranks meet once a step, as a gradient all-reduce makes them
                torch.distributed.all_reduce(loss.detach().float().cpu())
            with nvtx("optimizer"):
                opt.step()
                opt.zero_grad(set_to_none=True)
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
        if a.ready and rank == 0 and step + 1 == a.ready_step:
            open(a.ready, "w").close()
    if a.times:
        with open(a.times.replace("{rank}", str(rank)), "w") as f:
            json.dump({"rank": rank, "world": world, "step_seconds": times}, f)
    if world > 1:
        torch.distributed.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
