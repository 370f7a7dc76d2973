"""Could the linear layers' matrix products be written in Numba instead of going through OpenBLAS?

With ``OPENBLAS_CORETYPE=Haswell`` (this machine's setting), OpenBLAS runs its AVX2 kernels, while ONNX Runtime's
own GEMMs (MLAS) use AVX-512 and are ~1.6x faster on the same CPU. A GEMM of our own, compiled by Numba for the
host CPU (LLVM sees AVX-512), would not be bound by that setting. This script measures the two ways of writing one
that a reader of this project could follow, against NumPy's matmul, on the linear layers' shapes
(weight [out, in] @ activations [in, tokens], feature-major as in ``minflaubert/nn/fast.py``):

* "register tile": an 8 x 32 block of the output accumulated over the whole inner dimension (the shape of every
  fast GEMM kernel, where the block lives in vector registers);
* "row by row": each output row accumulated as ``row += w[i, k] * x[k]``, a loop LLVM vectorizes.

    python benchmarks/numba_gemm.py [--threads 2]

GFLOP/s are best-of-10 after a warm-up; results are checked against NumPy's (token counts are multiples of 32, the
tile's width, to keep the tile version short).
"""
from __future__ import annotations

import argparse
import os
import time

import numba
import numpy as np

SHAPES = [(768, 768, 32), (768, 768, 128), (3072, 768, 128), (768, 3072, 128), (3072, 768, 1024)]
TILE_ROWS, TILE_COLUMNS = 8, 32


def register_tile(weight, x, out):
    """out[rows, columns] = weight @ x, one TILE_ROWS x TILE_COLUMNS output block at a time."""
    n_rows, inner = weight.shape
    n_columns = x.shape[1]
    column_tiles = n_columns // TILE_COLUMNS
    for tile in numba.prange((n_rows // TILE_ROWS) * column_tiles):
        row0, column0 = (tile // column_tiles) * TILE_ROWS, (tile % column_tiles) * TILE_COLUMNS
        block = np.zeros((TILE_ROWS, TILE_COLUMNS), np.float32)
        for k in range(inner):
            for i in range(TILE_ROWS):
                w = weight[row0 + i, k]
                for j in range(TILE_COLUMNS):
                    block[i, j] += w * x[k, column0 + j]
        out[row0:row0 + TILE_ROWS, column0:column0 + TILE_COLUMNS] = block


def row_by_row(weight, x, out):
    """out = weight @ x, each output row the sum over k of weight[i, k] * (row k of x)."""
    n_rows, inner = weight.shape
    for i in numba.prange(n_rows):
        row = out[i]
        row[:] = 0
        for k in range(inner):
            w = weight[i, k]
            source = x[k]
            for j in range(row.shape[0]):
                row[j] += w * source[j]


def best_rate(function, weight, x, out, repeats: int = 10) -> float:
    function(weight, x, out)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function(weight, x, out)
        times.append(time.perf_counter() - start)
    return 2 * weight.shape[0] * weight.shape[1] * x.shape[1] / min(times) / 1e9


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    numba.set_num_threads(args.threads)
    from threadpoolctl import threadpool_limits

    engines = {"numpy matmul (BLAS)": lambda w, x, out: np.matmul(w, x, out=out),
               "numba register tile": numba.njit(fastmath=True, parallel=True)(register_tile),
               "numba row by row": numba.njit(fastmath=True, parallel=True)(row_by_row)}
    print(f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE')}, {args.threads} threads, GFLOP/s\n")
    print("| weight @ activations | " + " | ".join(engines) + " |\n|---|" + "---|" * len(engines))
    rng = np.random.default_rng(0)
    with threadpool_limits(args.threads):
        for rows, inner, tokens in SHAPES:
            weight = rng.standard_normal((rows, inner), dtype=np.float32)
            x = rng.standard_normal((inner, tokens), dtype=np.float32)
            expected = weight @ x
            rates = []
            for function in engines.values():
                out = np.empty((rows, tokens), np.float32)
                rates.append(best_rate(function, weight, x, out))
                assert np.allclose(out, expected, rtol=1e-3, atol=1e-3)
            print(f"| [{rows}, {inner}] @ [{inner}, {tokens}] | " + " | ".join(f"{r:.0f}" for r in rates) + " |",
                  flush=True)


if __name__ == "__main__":
    main()
