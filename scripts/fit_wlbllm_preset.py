#!/usr/bin/env python3
"""Prints the quantile knots of the synthetic:wlbllm preset (tuner/data/synthetic_source.cpp).

    python3 scripts/fit_wlbllm_preset.py ../shared/data/wlbllm_doc_lengths.json

The preset samples a piecewise-linear quantile function through these knots (inverse-CDF
sampling). A knot at quantile q is the element at index round(q * (n - 1)) of the sorted
reference lengths. The script also prints the fitted law's exact mean and share of tokens in
documents over 32K next to the reference's, which docs/data.md records.
"""
import json
import sys

QUANTILES = [0, 0.001, 0.01, 0.03, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.97, 0.975, 0.98, 0.985,
             0.99, 0.9925, 0.995, 0.9965, 0.998, 0.999, 1.0]


def main() -> int:
    lengths = sorted(json.load(open(sys.argv[1])))
    n = len(lengths)
    knots = [(q, lengths[min(n - 1, round(q * (n - 1)))]) for q in QUANTILES]
    print("knots:", ", ".join(f"{{{q}, {x}}}" for q, x in knots))
    # Exact moments of the piecewise-linear quantile function x(u): integrate over u.
    mean = 0.0
    over = 0.0
    for (q0, x0), (q1, x1) in zip(knots, knots[1:]):
        steps = 2000
        for k in range(steps):
            x = x0 + (x1 - x0) * (k + 0.5) / steps
            w = (q1 - q0) / steps
            mean += w * x
            if x > 32768:
                over += w * x
    total = sum(lengths)
    print(f"fitted mean {mean:.0f} (reference {total / n:.0f}); share of tokens in docs over 32K "
          f"{over / mean:.4f} (reference {sum(x for x in lengths if x > 32768) / total:.4f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
