"""The linear layers' matrix product, ``out = weight @ x``, as a register-tiled kernel compiled for this CPU.

Nine tenths of the encoder's time is four matrix products per layer (q/k/v, the attention output, the two FFN
layers), a weight [rows, depth] times the activations [depth, tokens] (feature-major: see ``fast.py``). NumPy hands
them to its BLAS, OpenBLAS, whose speed depends on which of its kernels it picks: where ``OPENBLAS_CORETYPE`` pins
it to an older CPU's (AVX2, 8 floats per instruction), it leaves half of an AVX-512 CPU unused. This module computes
the same product with a kernel that LLVM compiles for the CPU it runs on, whatever OpenBLAS is told.

The algorithm is the core of every fast GEMM (Goto and van de Geijn, "Anatomy of High-Performance Matrix
Multiplication", 2008): cut ``out`` into tiles of TILE_ROWS x TILE_COLUMNS and keep a tile's sums in vector
registers for the whole inner dimension. At each step k, the tile's columns of row k of x are two vector loads,
each of the tile's TILE_ROWS weights ``weight[r, k]`` is copied into every lane of a vector (a broadcast), and
2 x TILE_ROWS fused multiply-adds accumulate ``weight[r, k] * x[k, columns]``::

    for k in range(depth):                                # [rows, depth] @ [depth, tokens], one tile of out
        b = x[k, column:column + TILE_COLUMNS]            # 2 vector loads
        for r in range(TILE_ROWS):
            tile[r] += weight[row + r, k] * b             # 1 broadcast, 2 fused multiply-adds
    out[row:row + TILE_ROWS, column:column + TILE_COLUMNS] = tile

With AVX-512 (16 float32 lanes) a tile is 8 x 32: 16 accumulator registers of the 32, two for ``b`` and eight
for the broadcasts, and 16 multiply-adds for every 2 loads and 8 broadcasts, so the multiply-add units, not
memory, set the pace. Numba cannot be made to keep such a tile in registers (its arrays live in memory:
``benchmarks/numba_gemm.py`` measures the two ways one would write it), so the loop above is written out as LLVM
instructions in ``_tile_kernel``: a Numba intrinsic, compiled and cached with the Numba function that calls it.

Around it, ``_matmul_rows`` walks the tiles in cache-sized blocks (DEPTH_BLOCK of the inner dimension at a time,
the tile adding to what the previous block left), and the row tiles are shared between threads
(``threads.py``). Each output is one thread's sum, over k in order within each block and block after block, so it
is the same bits whatever the number of threads and whatever the tile's shape (AVX2 or AVX-512).

The plain version is ``np.matmul(weight, x)``, and the tests hold this one to it. On a CPU without AVX2 and FMA
(``KERNEL`` says which), ``matmul`` is ``np.matmul``.
"""
from __future__ import annotations

import llvmlite.binding
import numba
import numpy as np
from llvmlite import ir
from numba.core import cgutils, types

from . import threads
from .kernels import compiled


def compiled_for() -> dict[str, bool]:
    """The CPU features Numba compiles for: the host's, unless NUMBA_CPU_NAME and NUMBA_CPU_FEATURES name others
    (as for a cache shared between machines). A CPU name without features counts as none."""
    if numba.config.CPU_NAME:
        listed = (numba.config.CPU_FEATURES or "").split(",")
        return {feature[1:]: feature[0] == "+" for feature in listed if feature[:1] in "+-" and feature[1:]}
    return dict(llvmlite.binding.get_host_cpu_features())


def choose_kernel(features: dict[str, bool]) -> tuple[int, int, str]:
    """-> (float32 lanes per vector, tile rows, description): the widest vectors the CPU has."""
    # subtle: the tile's sums (2 x rows vectors), x's two vectors and the broadcast weights (LLVM loads them all
    # ahead of the multiply-adds) must fit in the registers: 32 with AVX-512, 16 with AVX2. More is spilled to
    # memory, and 12 rows ran at half the speed of 8.
    if features.get("avx512f"):
        return 16, 8, "register-tiled 8x32, AVX-512"
    if features.get("avx2") and features.get("fma"):
        return 8, 4, "register-tiled 4x16, AVX2"
    return 0, 0, "np.matmul (BLAS): the CPU has neither AVX-512 nor AVX2 with FMA"


LANES, TILE_ROWS, KERNEL = choose_kernel(compiled_for())
# Built into the compiled code. Numba keeps one cached version per CPU (name and features), so these are right.


@numba.extending.intrinsic
def _tile_kernel(typingctx, weight, weight_stride, x, x_stride, out, out_stride, depth, accumulate):
    """One TILE_ROWS x (2 LANES) tile: out[r, c] (+)= sum over k < depth of weight[r, k] * x[k, c].

    All int64s: addresses of float32s and strides in float32s. ``weight`` points at the tile's first row of the
    weight, ``x`` at row 0 of its first column, ``out`` at its first output. ``depth`` >= 1. ``accumulate``: 0 to
    overwrite the tile, 1 to add to it (a product computed by slices of depth, one after another).
    """
    n_lanes, n_rows = LANES, TILE_ROWS
    signature = types.void(*[types.intp] * 8)

    def codegen(context, builder, _, arguments):
        weight_address, weight_stride, x_address, x_stride, out_address, out_stride, depth, accumulate = arguments
        index, vector = ir.IntType(64), ir.VectorType(ir.FloatType(), n_lanes)
        float_pointer = ir.FloatType().as_pointer()
        weight, x, out = (builder.inttoptr(address, float_pointer)
                          for address in (weight_address, x_address, out_address))
        fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vector, [vector] * 3),
                                             f"llvm.fma.v{n_lanes}f32")  # a * b + c, lane by lane, rounded once

        def constant(value):
            return ir.Constant(index, value)

        def broadcast(value):  # a float32 -> a vector with it in every lane
            lane = builder.insert_element(ir.Constant(vector, None), value, ir.Constant(ir.IntType(32), 0))
            return builder.shuffle_vector(lane, ir.Constant(vector, None),
                                          ir.Constant(ir.VectorType(ir.IntType(32), n_lanes), [0] * n_lanes))

        def vector_at(pointer, offset):  # the vector of floats at pointer + offset
            return builder.bitcast(builder.gep(pointer, [offset]), vector.as_pointer())

        zeros = ir.Constant(vector, [0.0] * n_lanes)
        adding = builder.icmp_unsigned("!=", accumulate, constant(0))
        out_rows = [builder.gep(out, [builder.mul(constant(r), out_stride)]) for r in range(n_rows)]
        first = [[builder.select(adding, builder.load(vector_at(out_rows[r], constant(half * n_lanes)), align=4),
                                 zeros) for half in range(2)] for r in range(n_rows)]
        start = builder.block
        loop, done = builder.append_basic_block("tile.k"), builder.append_basic_block("tile.done")
        builder.branch(loop)
        builder.position_at_end(loop)
        # the loop's counter k and the tile's sums: values carried from one step of the loop to the next (phi)
        k = builder.phi(index)
        sums = [[builder.phi(vector) for _ in range(2)] for _ in range(n_rows)]
        x_row = builder.gep(x, [builder.mul(k, x_stride)])
        b = [builder.load(vector_at(x_row, constant(half * n_lanes)), align=4) for half in range(2)]
        summed = []
        for r in range(n_rows):
            w = builder.load(builder.gep(weight, [builder.add(builder.mul(constant(r), weight_stride), k)]))
            summed.append([builder.call(fma, [broadcast(w), b[half], sums[r][half]]) for half in range(2)])
        following = builder.add(k, constant(1))
        k.add_incoming(constant(0), start)
        k.add_incoming(following, loop)
        for r in range(n_rows):
            for half in range(2):
                sums[r][half].add_incoming(first[r][half], start)
                sums[r][half].add_incoming(summed[r][half], loop)
        builder.cbranch(builder.icmp_unsigned("<", following, depth), loop, done)
        builder.position_at_end(done)
        for r in range(n_rows):
            for half in range(2):
                builder.store(summed[r][half], vector_at(out_rows[r], constant(half * n_lanes)), align=4)
        return context.get_dummy_value()

    return signature, codegen


# Cache blocking (the "Anatomy" paper's other half): the product is computed DEPTH_BLOCK of the inner dimension at
# a time, COLUMN_BLOCK columns at a time, so that the block of x being read (256 x 256 float32: 256 kB) stays in the
# core's L2 cache while every row tile of the weight goes by it.
DEPTH_BLOCK, COLUMN_BLOCK = 256, 256


@compiled(nogil=True)
def _matmul_rows(weight, x, x_edge, out, first_tile, end_tile):
    """Row tiles ``first_tile`` to ``end_tile - 1`` of out = weight @ x, every column: a share of one product
    (threads take disjoint shares). ``x_edge``: x's last, partial column tile, zero-padded (or unused)."""
    tile_rows, tile_columns = TILE_ROWS, 2 * LANES
    rows, depth = weight.shape
    tokens = x.shape[1]
    # subtle: a tile at an edge would read past the last row of the weight or the last column of x. Those few rows
    # and columns are copied into zero-padded arrays that the kernel can read whole, and it writes into a scratch
    # tile, of which only the part inside out is copied.
    last_row = (end_tile - 1) * tile_rows
    partial = last_row + tile_rows > rows
    weight_edge = np.zeros((tile_rows, depth if partial else 1), np.float32)  # (read only if partial)
    if partial:
        weight_edge[:rows - last_row] = weight[last_row:]
    scratch = np.empty((tile_rows, tile_columns), np.float32)
    # addresses as plain integers, and strides in float32s (a float32 is 4 bytes), for the kernel
    weight_at, weight_edge_at, x_at, x_edge_at = (weight.ctypes.data, weight_edge.ctypes.data, x.ctypes.data,
                                                  x_edge.ctypes.data)
    out_at, scratch_at = out.ctypes.data, scratch.ctypes.data
    weight_stride, x_stride, out_stride = weight.strides[0] // 4, x.strides[0] // 4, out.strides[0] // 4
    for top in range(0, depth, DEPTH_BLOCK):
        height = min(DEPTH_BLOCK, depth - top)
        adding = 1 if top > 0 else 0
        for block in range(0, tokens, COLUMN_BLOCK):
            for tile in range(first_tile, end_tile):
                row = tile * tile_rows
                whole_rows = row + tile_rows <= rows
                a, a_stride = (weight_at + 4 * (row * weight_stride + top), weight_stride) if whole_rows else (
                    weight_edge_at + 4 * top, depth)
                for column in range(block, min(block + COLUMN_BLOCK, tokens), tile_columns):
                    whole_columns = column + tile_columns <= tokens
                    b, b_stride = (x_at + 4 * (top * x_stride + column), x_stride) if whole_columns else (
                        x_edge_at + 4 * top * tile_columns, tile_columns)
                    if whole_rows and whole_columns:
                        _tile_kernel(a, a_stride, b, b_stride, out_at + 4 * (row * out_stride + column), out_stride,
                                     height, adding)
                    else:
                        kept_rows, kept_columns = min(tile_rows, rows - row), min(tile_columns, tokens - column)
                        if adding:
                            scratch[:kept_rows, :kept_columns] = out[row:row + kept_rows, column:column + kept_columns]
                        _tile_kernel(a, a_stride, b, b_stride, scratch_at, tile_columns, height, adding)
                        out[row:row + kept_rows, column:column + kept_columns] = scratch[:kept_rows, :kept_columns]


# Products smaller than this many multiply-adds run on the calling thread alone: ~100 us of one core's work,
# twice what handing half of it to another thread costs.
SPLIT_ABOVE = 12_000_000


def matmul(weight: np.ndarray, x: np.ndarray, out: np.ndarray) -> np.ndarray:
    """out [rows, tokens] <- weight [rows, depth] @ x [depth, tokens]; all C-contiguous float32; -> out.

    ``np.matmul(weight, x, out=out)``'s result, to float32 rounding, computed by the tiled kernel above, on
    ``NUMBA_NUM_THREADS`` threads (the calling thread and helpers) when the product is big enough.
    """
    matmuls((weight,), x, (out,))
    return out


def matmuls(weights: tuple, x: np.ndarray, outs: tuple) -> None:
    """outs[i] <- weights[i] @ x for each i, as one job for the threads (the q, k and v of a layer: one hand-off
    to the helper threads instead of three). The weights have the same shape."""
    rows, depth = weights[0].shape
    tokens = x.shape[1]
    if not LANES or depth == 0 or tokens == 0 or rows == 0 or not all(
            array.dtype == np.float32 and array.strides[1] == 4 for array in (*weights, x, *outs)):
        # no kernel for this CPU, nothing to compute, or not float32 matrices with contiguous rows: BLAS
        for weight, out in zip(weights, outs):
            np.matmul(weight, x, out=out)
        return
    row_tiles = -(-rows // TILE_ROWS)
    # the row tiles of all the products, taken a chunk at a time by whichever thread is free
    job = (weights, x, padded_edge_columns(x), outs, row_tiles, chunk_tiles(len(weights) * row_tiles, x))
    threads.share(_stacked_matmul_rows, job, split=len(weights) * rows * depth * max(tokens, 2 * LANES) > SPLIT_ABOVE)


def chunk_tiles(tiles: int, x: np.ndarray) -> int:
    """How many row tiles a thread takes at a time: at least six chunks per thread, so that the threads end
    together even if one starts late; and up to 16 tiles when x does not fit in a core's L2 cache (each chunk
    reads all of x: bigger chunks read it fewer times), 4 when it does."""
    most = 16 if x.nbytes > L2_BYTES // 2 else 4
    return max(1, min(most, tiles // (6 * threads.size())))


L2_BYTES = 1 << 20  # per core on the machines measured (Zen 5); elsewhere the chunks are only a little off


@compiled(nogil=True)
def _stacked_matmul_rows(weights, x, x_edge, outs, row_tiles, chunk, counter):
    # chunks of row tiles of the stacked products, counted product after product (row_tiles each), until none is
    # left; counter: the address of the job's shared count of tiles taken (threads.take)
    total = len(weights) * row_tiles
    while True:
        first = threads.take(counter, chunk)
        if first >= total:
            return
        end = min(first + chunk, total)
        for which in range(len(weights)):
            low, high = max(first, which * row_tiles), min(end, (which + 1) * row_tiles)
            if low < high:
                _matmul_rows(weights[which], x, x_edge, outs[which], low - which * row_tiles,
                             high - which * row_tiles)


@compiled(nogil=True)
def padded_edge_columns(x):
    """x's last, partial tile of columns, zero-padded to a whole tile (zeros if its columns fill whole tiles)."""
    depth, tokens = x.shape
    edge = tokens - tokens % (2 * LANES)
    x_edge = np.zeros((depth, 2 * LANES), np.float32)
    x_edge[:, :tokens - edge] = x[:, edge:]
    return x_edge


@compiled(nogil=True)
def serial_matmul(weight, x, out):
    """``matmul`` on the calling thread alone, for Numba code (arrays with contiguous rows, any row stride)."""
    _matmul_rows(weight, x, padded_edge_columns(x), out, 0, -(-weight.shape[0] // TILE_ROWS))
