"""The encoder's matrix products on this CPU: minflaubert's tiled kernel (``gemm.matmul``) against NumPy's BLAS
(``np.matmul``), the figures behind the rule that picks one (``gemm.use_tiles``; benchmarks/README.md).

For each number of tokens, the four products of a flaubert_base layer, feature-major as ``fast.py`` computes them:
q/k/v (three [768, 768] weights on the same activations, one job), the attention output [768, 768], the FFN's
[3072, 768] and [768, 3072], with random weights. The two alternate run by run (so both see the same machine load),
each run after a pause (``--settle``: OpenBLAS's threads spin-wait after a call); the median of each is printed in
GFLOP/s, with tiled / BLAS time (below 1: the tiled kernel is faster).

    PYTHONPATH=. python benchmarks/products.py --runs 9

AVX2 on an AVX-512 CPU, both sides (our kernel compiled for Haswell, OpenBLAS on its Haswell kernels):

    NUMBA_CPU_NAME=haswell NUMBA_CPU_FEATURES=<tests/test_gemm.py's HASWELL> OPENBLAS_CORETYPE=Haswell \\
        PYTHONPATH=. python benchmarks/products.py

Threads: NUMBA_NUM_THREADS for ours, OpenBLAS's own default (or OPENBLAS_NUM_THREADS) for NumPy's.
"""
from __future__ import annotations

import argparse
import os

import numpy as np

from common import blas_info, markdown_table, median_times, ratio

DIM, HIDDEN = 768, 3072
PRODUCTS = {"q/k/v": (3, DIM, DIM), "out": (1, DIM, DIM), "lin1": (1, HIDDEN, DIM), "lin2": (1, DIM, HIDDEN)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--tokens", default="16,128,512,1024", help="comma-separated numbers of tokens")
    parser.add_argument("--settle", type=float, default=0.05, help="seconds of pause before each timed run")
    args = parser.parse_args()

    from minflaubert.nn import gemm

    print(f"runs {args.runs}, settle {args.settle} s, OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE')}, "
          f"NUMBA_CPU_NAME={os.environ.get('NUMBA_CPU_NAME')}")
    rng = np.random.default_rng(0)
    rows = []
    for tokens in map(int, args.tokens.split(",")):
        for name, (count, out_rows, depth) in PRODUCTS.items():
            weights = tuple(rng.standard_normal((out_rows, depth), dtype=np.float32) for _ in range(count))
            x = rng.standard_normal((depth, tokens), dtype=np.float32)
            outs = tuple(np.empty((out_rows, tokens), np.float32) for _ in range(count))

            def blas():
                for weight, out in zip(weights, outs):
                    np.matmul(weight, x, out=out)

            engines = {"tiled": lambda: gemm.matmuls(weights, x, outs), "BLAS": blas}
            for run in engines.values():  # compiled, threads started, and the two agree
                run()
            expected = [out.copy() for out in outs]
            engines["tiled"]()
            assert all(np.allclose(out, e, rtol=1e-3, atol=1e-3 * depth ** 0.5) for out, e in zip(outs, expected))
            median = median_times(engines, args.runs, args.settle)
            rate = {engine: 2 * count * out_rows * depth * tokens / seconds / 1e9 for engine, seconds in median.items()}
            rows.append([tokens, name, f"{rate['tiled']:.0f}", f"{rate['BLAS']:.0f}",
                         ratio(median["tiled"], median["BLAS"])])
            print(" ".join(f"{cell:>8}" for cell in rows[-1]), flush=True)
    print(blas_info())
    print()
    print(markdown_table(["tokens", "product", "tiled GFLOP/s", "BLAS GFLOP/s", "tiled / BLAS time"], rows))


if __name__ == "__main__":
    main()
