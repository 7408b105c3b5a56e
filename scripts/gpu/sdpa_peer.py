#!/usr/bin/env python3
"""PyTorch's attention measured on the shapes bench_cuda_attention measures, for the GPU check.

    sdpa_peer.py --shapes SHAPES.tsv --out PEER.tsv [--repeats N] [--budget-seconds S]

SHAPES.tsv is `bench_cuda_attention --list-shapes [--quick]`: one row per shape, `chunks`
chunks of `q_len` queries after `q_offset` earlier tokens of their document, each chunk with its
own `k_len = q_offset + q_len` keys, `heads` x `head_dim`, and the forward FLOPs by wlbtune's
convention (design.md, tuner/cost/cost_model.hpp): 4 * causal (query, key) pairs * heads *
head_dim, the pairs counting the diagonal (a document of n tokens has n (n + 1) / 2); backward
FLOPs are 2.5 x forward (FlashAttention's benchmark convention). The figures here use those
FLOPs as given, so a TFLOP/s here and one of bench_cuda_attention mean the same work per second.

Peers, bf16, causal, forward and backward (dq, dk, dv), CUDA-event medians after one warm-up:

  sdpa-flash  torch.nn.functional.scaled_dot_product_attention under the FLASH_ATTENTION
  sdpa-cudnn  and the CUDNN_ATTENTION backends. Whole documents (q_offset 0): each chunk is one
              batch element with is_causal=True, which is exactly the document mask for
              documents of equal length (what Table 1 packs), so the work is the same. CP chunks
              (q_offset > 0) need the causal mask aligned to the bottom right (query i sees keys
              0 .. q_offset + i); SDPA's is_causal aligns it to the top left, so these rows use
              torch.nn.attention.bias.causal_lower_right; where a backend cannot run that mask,
              the row says why instead of a figure.
  varlen      torch.nn.attention.varlen.varlen_attn (FlashAttention's varlen kernel, PyTorch
              2.9+): the packed chunks with cu_seqlens, as wlbtune's kernels take them; its
              causal mask is the bottom-right one, which a small check against the math backend
              confirms before any figure is reported.

Writes PEER.tsv (id, backend, fwd_ms, fwd_tflops, bwd_ms, bwd_tflops, note; "-" where a figure
is missing and the note says why) and prints a markdown table. Where torch is not importable or
sees no CUDA device it prints "sdpa_peer: skipped: <reason>", writes the reason into PEER.tsv
and exits 0.
"""

import argparse
import inspect
import math
import sys
import time

COLUMNS = ["id", "table", "chunks", "q_len", "q_offset", "k_len", "heads", "head_dim", "fwd_flops"]
BACKENDS = ["sdpa-flash", "sdpa-cudnn", "varlen"]


def read_shapes(path):
    with open(path) as f:
        lines = [line.rstrip("\n") for line in f if line.strip()]
    if not lines or lines[0].split("\t") != COLUMNS:
        raise SystemExit(f"sdpa_peer: {path}: expected the header {' '.join(COLUMNS)} "
                         f"(bench_cuda_attention --list-shapes), found {lines[:1]}")
    shapes = []
    for number, line in enumerate(lines[1:], start=2):
        fields = line.split("\t")
        if len(fields) != len(COLUMNS):
            raise SystemExit(f"sdpa_peer: {path}:{number}: expected {len(COLUMNS)} fields, "
                             f"found {len(fields)}")
        s = dict(zip(COLUMNS, fields))
        for key in COLUMNS[1:-1]:
            s[key] = int(s[key])
        s["fwd_flops"] = float(s["fwd_flops"])
        if s["k_len"] != s["q_offset"] + s["q_len"]:
            raise SystemExit(f"sdpa_peer: {path}:{number}: k_len is not q_offset + q_len")
        shapes.append(s)
    return shapes


def write_rows(path, rows, reason=None):
    with open(path, "w") as f:
        f.write("id\tbackend\tfwd_ms\tfwd_tflops\tbwd_ms\tbwd_tflops\tnote\n")
        if reason is not None:
            f.write(f"# skipped: {reason}\n")
        for r in rows:
            f.write("\t".join(str(r[c]) for c in
                              ["id", "backend", "fwd_ms", "fwd_tflops", "bwd_ms", "bwd_tflops",
                               "note"]) + "\n")


def skip(out, reason):
    write_rows(out, [], reason)
    print(f"sdpa_peer: skipped: {reason}")
    sys.exit(0)


def first_line(e, limit=160):
    """The first line of an exception's message, fit for one TSV field."""
    text = str(e).strip().splitlines()
    text = (text[0] if text else type(e).__name__).replace("\t", " ")
    return (text[:limit] + "...") if len(text) > limit else text


class Peer:
    def __init__(self, torch, device, repeats):
        self.torch = torch
        self.F = torch.nn.functional
        self.device = device
        self.repeats = repeats
        self.dtype = torch.bfloat16 if device == "cuda" else torch.float32
        from torch.nn.attention import SDPBackend, sdpa_kernel
        self.sdpa_kernel = sdpa_kernel
        self.backend_of = {"sdpa-flash": SDPBackend.FLASH_ATTENTION,
                           "sdpa-cudnn": SDPBackend.CUDNN_ATTENTION,
                           "sdpa-math": SDPBackend.MATH}
        try:
            from torch.nn.attention.bias import causal_lower_right
            self.causal_lower_right = causal_lower_right
        except ImportError:
            self.causal_lower_right = None
        try:
            from torch.nn.attention import varlen
            self.varlen_attn = varlen.varlen_attn
            params = inspect.signature(self.varlen_attn).parameters
            if "is_causal" in params:
                self.varlen_causal = {"is_causal": True}
            elif "window_size" in params:
                self.varlen_causal = {"window_size": (-1, 0)}
            else:
                self.varlen_attn = None
                self.varlen_missing = "varlen_attn takes neither is_causal nor window_size"
        except ImportError as e:
            self.varlen_attn = None
            self.varlen_missing = f"torch.nn.attention.varlen is missing ({first_line(e)})"
        self.varlen_checked = None

    def timed(self, fn):
        """Median seconds of fn() over the repeats, after one warm-up."""
        torch = self.torch
        fn()
        seconds = []
        for _ in range(self.repeats):
            if self.device == "cuda":
                start = torch.cuda.Event(enable_timing=True)
                stop = torch.cuda.Event(enable_timing=True)
                start.record()
                fn()
                stop.record()
                stop.synchronize()
                seconds.append(start.elapsed_time(stop) * 1e-3)
            else:
                t0 = time.perf_counter()
                fn()
                seconds.append(time.perf_counter() - t0)
        seconds.sort()
        return seconds[len(seconds) // 2]

    def tensors(self, s, packed):
        """q, k, v, dout as wlbtune lays them out (token-major rows of heads x head_dim), as
        SDPA's (batch, heads, tokens, head_dim) views or varlen's (tokens, heads, head_dim)."""
        torch = self.torch
        b, q, k, h, d = s["chunks"], s["q_len"], s["k_len"], s["heads"], s["head_dim"]
        g = torch.Generator(device=self.device).manual_seed(1)

        def make(tokens):
            x = torch.rand((b, tokens, h, d), generator=g, device=self.device,
                           dtype=self.dtype) * 2 - 1
            x = x.reshape(b * tokens, h, d) if packed else x.transpose(1, 2)
            return x.requires_grad_()

        qt, kt, vt = make(q), make(k), make(k)
        dout = torch.rand_like(qt).detach()
        return qt, kt, vt, dout

    def sdpa_call(self, s, backend):
        kwargs = {"is_causal": True}
        if s["q_offset"] > 0:
            if self.causal_lower_right is None:
                raise RuntimeError("torch.nn.attention.bias.causal_lower_right is missing")
            kwargs = {"attn_mask": self.causal_lower_right(s["q_len"], s["k_len"])}
        kernel = self.backend_of[backend]

        def call(q, k, v):
            with self.sdpa_kernel([kernel]):
                return self.F.scaled_dot_product_attention(q, k, v, **kwargs)
        return call

    def varlen_call(self, s):
        torch = self.torch
        b, q, k = s["chunks"], s["q_len"], s["k_len"]
        cu_q = torch.arange(0, (b + 1) * q, q, device=self.device, dtype=torch.int32)
        cu_k = torch.arange(0, (b + 1) * k, k, device=self.device, dtype=torch.int32)

        def call(qt, kt, vt):
            return self.varlen_attn(qt, kt, vt, cu_q, cu_k, q, k, **self.varlen_causal)
        return call

    def check_varlen_alignment(self):
        """varlen_attn on a small CP chunk against the math backend with the bottom-right mask:
        the reason to refuse varlen figures, or None when they agree."""
        if self.varlen_checked is not None:
            return self.varlen_checked or None
        torch = self.torch
        s = {"chunks": 2, "q_len": 64, "q_offset": 96, "k_len": 160, "heads": 2, "head_dim": 64}
        try:
            qp, kp, vp, _ = self.tensors(s, packed=True)
            got = self.varlen_call(s)(qp, kp, vp)
            q, k, v = (x.detach().float().reshape(2, -1, 2, 64).transpose(1, 2)
                       for x in (qp, kp, vp))
            rows = torch.arange(64, device=self.device).unsqueeze(1)
            cols = torch.arange(160, device=self.device).unsqueeze(0)
            mask = cols <= rows + 96
            with self.sdpa_kernel([self.backend_of["sdpa-math"]]):
                want = self.F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
            want = want.transpose(1, 2).reshape(got.shape)
            error = ((got.float() - want).norm() / want.norm()).item()
            self.varlen_checked = ("" if error < 2e-2 else
                                   f"varlen_attn's causal mask is not the bottom-right one here "
                                   f"(relative error {error:.2g} against it)")
        except Exception as e:  # any failure of the check means no trusted figure
            self.varlen_checked = f"varlen_attn check failed: {first_line(e)}"
        return self.varlen_checked or None

    def measure(self, s, backend):
        torch = self.torch
        row = {"id": s["id"], "backend": backend, "fwd_ms": "-", "fwd_tflops": "-",
               "bwd_ms": "-", "bwd_tflops": "-", "note": ""}
        if backend == "varlen":
            if self.varlen_attn is None:
                row["note"] = self.varlen_missing
                return row
            reason = self.check_varlen_alignment()
            if reason is not None:
                row["note"] = reason
                return row
            call = self.varlen_call(s)
        else:
            call = self.sdpa_call(s, backend)
        try:
            fwd, bwd = self.run(s, call, packed=backend == "varlen")
            flops = s["fwd_flops"]
            row.update(fwd_ms=f"{fwd * 1e3:.4f}", fwd_tflops=f"{flops / fwd * 1e-12:.1f}",
                       bwd_ms=f"{bwd * 1e3:.4f}", bwd_tflops=f"{2.5 * flops / bwd * 1e-12:.1f}")
            if s["q_offset"] > 0 and backend != "varlen":
                row["note"] = "bottom-right causal mask (causal_lower_right)"
        except Exception as e:  # a backend refusing a shape is a result, not a crash
            row["note"] = first_line(e)
        if self.device == "cuda":  # the tensors of run() are gone: give their memory back
            torch.cuda.empty_cache()
        return row

    def run(self, s, call, packed):
        """Forward and backward seconds of `call` on fresh inputs of shape `s`."""
        q, k, v, dout = self.tensors(s, packed)
        fwd = self.timed(lambda: call(q, k, v))
        out = call(q, k, v)
        bwd = self.timed(lambda: self.torch.autograd.grad(out, (q, k, v), dout,
                                                          retain_graph=True))
        return fwd, bwd


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shapes", required=True,
                        help="bench_cuda_attention --list-shapes output (TSV)")
    parser.add_argument("--out", required=True, help="figures (TSV) for scripts/gpu-check.sh")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--budget-seconds", type=float, default=0.0,
                        help="stop starting new measurements after this long (0: no limit)")
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda",
                        help=argparse.SUPPRESS)  # cpu: a dry run of the script's own logic
    parser.add_argument("--backends", default=",".join(BACKENDS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    started = time.monotonic()
    shapes = read_shapes(args.shapes)
    try:
        import torch
    except Exception as e:  # ImportError, or a broken install raising anything else
        skip(args.out, f"torch is not importable ({first_line(e)})")
    if args.device == "cuda" and not torch.cuda.is_available():
        skip(args.out, f"torch {torch.__version__} sees no CUDA device")
    if args.device == "cuda":
        props = torch.cuda.get_device_properties(0)
        print(f"# torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN "
              f"{torch.backends.cudnn.version()}, device {props.name} "
              f"(sm_{props.major}{props.minor})")
    peer = Peer(torch, args.device, max(1, args.repeats))
    backends = [b for b in args.backends.split(",") if b]
    rows = []
    print("| id | backend | fwd ms | fwd TFLOP/s | bwd ms | bwd TFLOP/s | note |")
    print("| --- | --- | ---: | ---: | ---: | ---: | --- |")
    for s in shapes:
        for backend in backends:
            if args.budget_seconds > 0 and time.monotonic() - started > args.budget_seconds:
                row = {"id": s["id"], "backend": backend, "fwd_ms": "-", "fwd_tflops": "-",
                       "bwd_ms": "-", "bwd_tflops": "-",
                       "note": f"not measured: the {args.budget_seconds:g} s budget is spent"}
            else:
                row = peer.measure(s, backend)
            rows.append(row)
            print(f"| {row['id']} | {row['backend']} | {row['fwd_ms']} | {row['fwd_tflops']} | "
                  f"{row['bwd_ms']} | {row['bwd_tflops']} | {row['note']} |", flush=True)
            write_rows(args.out, rows)  # keep what is measured if the run is cut short
    write_rows(args.out, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
