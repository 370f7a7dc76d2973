"""Where does minflaubert's fast encoder spend its time? A split by operation, measured (not estimated).

(Not named profile.py: that would shadow the standard library's profile module for every script in this folder.)

Loads the base architecture saved by ``benchmarks/encoder.py`` (``--folder``; run that once first), and runs
FlaubertModel with every NumPy matmul and every Numba kernel that ``fast.py`` calls wrapped in a timer. "python
+ other" is what is left of the wall time: input checks, embedding lookups, unpacking, the interpreter.

    python benchmarks/profile_encoder.py [--shapes 1x16,1x128,8x128,1x512,padded] [--runs 5]

Optional ``--blas-threads``/``--numba-threads`` change the thread counts before the first call.
"""
from __future__ import annotations

import argparse
import collections
import statistics
import tempfile
import time
import types
from pathlib import Path

import numpy as np

from encoder import SHAPES, flops, make_inputs

# which timer each wrapped call goes to
KERNEL_GROUPS = {"bias_gelu": "bias+GELU", "add_bias": "bias q/k/v", "layer_norm": "layer norms",
                 "residual_layer_norm": "layer norms", "add_residual": "layer norms",
                 "scaled_softmax": "attention softmax", "transpose": "transposes in and out"}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--shapes", default=",".join(SHAPES))
    parser.add_argument("--folder", default=str(Path(tempfile.gettempdir()) / "minflaubert-bench-base"))
    args = parser.parse_args()

    from minflaubert.nn import fast, gemm, kernels, tiled_attention
    from minflaubert.models.model import FlaubertModel

    totals = collections.Counter()

    def timed(group, function):
        def wrapper(*a, **k):
            start = time.perf_counter()
            try:
                return function(*a, **k)
            finally:
                totals[group] += time.perf_counter() - start
        return wrapper

    def products(weights, x, outs):  # name the products by their weights (fast.py is feature-major: W @ X)
        rows, depth = weights[0].shape
        group = ("GEMM q/k/v" if len(weights) == 3 else "GEMM lin1" if rows > depth else "GEMM lin2" if depth > rows
                 else "GEMM out_lin")
        start = time.perf_counter()
        gemm.matmuls(weights, x, outs)
        totals[group] += time.perf_counter() - start

    fast.gemm = types.SimpleNamespace(LANES=gemm.LANES, matmuls=products,
                                      matmul=lambda weight, x, out: products((weight,), x, (out,)))
    fast.tiled_attention = types.SimpleNamespace(packed_attention=timed("attention (tiled)",
                                                                        tiled_attention.packed_attention))
    fast.packed_attention = timed("attention (BLAS)", fast.packed_attention)
    fast.kernels = types.SimpleNamespace(**{name: timed(KERNEL_GROUPS[name], getattr(kernels, name))
                                            for name in KERNEL_GROUPS})
    print(f"matrix products: {gemm.KERNEL}")
    model = FlaubertModel.from_pretrained(args.folder)
    rng = np.random.default_rng(0)
    for name in args.shapes.split(","):
        inputs = make_inputs(name, rng)
        model(**inputs)
        totals.clear()
        walls = []
        for _ in range(args.runs):
            start = time.perf_counter()
            model(**inputs)
            walls.append(time.perf_counter() - start)
        wall = sum(walls)
        split = dict(totals)
        split["python + other"] = wall - sum(totals.values())
        linear = sum(v for k, v in split.items() if k.startswith("GEMM"))
        print(f"\n{name}: median {statistics.median(walls) * 1e3:.1f} ms, "
              f"{flops(inputs) / 1e9 / statistics.median(walls):.0f} GFLOP/s; GEMMs {100 * linear / wall:.0f} % "
              f"({linear / args.runs * 1e3:.1f} ms), "
              f"linear-layer GEMMs at {flops(inputs, attention=False) / 1e9 / (linear / args.runs):.0f} GFLOP/s")
        for group, seconds in sorted(split.items(), key=lambda item: -item[1]):
            print(f"  {group:24} {seconds / args.runs * 1e3:8.2f} ms  {100 * seconds / wall:5.1f} %")


if __name__ == "__main__":
    main()
