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
memory, set the pace. With AVX2 (8 lanes, 16 registers) it is 6 x 16: 12 sums, 2 for ``b``, 2 left for the
broadcasts. Numba cannot be made to keep such a tile in registers (its arrays live in memory:
``benchmarks/numba_gemm.py`` measures the two ways one would write it), so the loop above is written out as LLVM
instructions in ``_tile_kernel``: a Numba intrinsic, compiled and cached with the Numba function that calls it.
``tile_reference`` is the same loop in plain NumPy, to the bit, and the tests hold the kernel to it.

Around it, three things from the "Anatomy" paper. x is first *packed*: each tile of TILE_COLUMNS columns copied
into a contiguous panel [depth, TILE_COLUMNS] (``packed_panels``), so that a tile reads x as one stream of
consecutive cache lines; read in place, each step k would jump a whole row of x (2-4 kB at 512-1,024 tokens: the
rows land in the same few sets of the L1 cache, and evict each other). The tiles are walked in cache-sized blocks
(DEPTH_BLOCK of the inner dimension at a time, the tile adding to what the previous block left). And the row tiles
are shared between threads (``threads.py``). Each output is one thread's sum, over k in order within each block
and block after block, so it is the same bits whatever the number of threads and whatever the tile's shape (AVX2
or AVX-512).

To read what LLVM made of the tile, compile it afresh (Numba shows no machine code that it loaded from its cache)
and print the function that holds it. The tile is a loop of TILE_ROWS ``vbroadcastss`` and 2 x TILE_ROWS
``vfmadd231ps``, on ``ymm`` registers with AVX2 and ``zmm`` with AVX-512 (``NUMBA_CPU_NAME=haswell`` and the
features of tests/test_gemm.py's HASWELL show the AVX2 one on an AVX-512 CPU)::

    NUMBA_CACHE_DIR=$(mktemp -d) python -c "import numpy as np; from minflaubert.nn import gemm
    a = np.ones((8, 8), np.float32); gemm.serial_matmul(a, a, a.copy())
    print(next(iter(gemm._matmul_rows.inspect_asm().values())))"     # inspect_llvm(): the LLVM IR

The plain version is ``np.matmul(weight, x)``, and the tests hold this one to it. On a CPU without AVX2 and FMA
(``KERNEL`` says which) ``matmul`` is ``np.matmul``; ``use_tiles`` is the rule by which the fast encoder picks
one or the other.
"""
from __future__ import annotations

import os

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
    # subtle: the tile's sums (2 x rows vectors), x's two vectors and the broadcast weights must fit in the
    # registers: 32 with AVX-512, 16 with AVX2. More is spilled to memory (12 rows ran at half the speed of 8 with
    # AVX-512). Fewer rows leave the multiply-add units waiting: each of a row's sums depends on its previous step,
    # and a multiply-add takes 4 cycles, 2 starting per cycle, so at least 8 sums must be in flight.
    if features.get("avx512f"):
        return 16, 8, "register-tiled 8x32, AVX-512"
    if features.get("avx2") and features.get("fma"):
        return 8, 6, "register-tiled 6x16, AVX2"
    return 0, 0, "np.matmul (BLAS): the CPU has neither AVX-512 nor AVX2 with FMA"


LANES, TILE_ROWS, KERNEL = choose_kernel(compiled_for())
TILE_COLUMNS = 2 * LANES
# Built into the compiled code. Numba keeps one cached version per CPU (name and features), so these are right.

# The rule that picks a forward's kernel, in one place (``fast.encode`` asks ``use_tiles`` once per forward: a
# forward mixing the two would have OpenBLAS's waiting threads spin on the cores that the tiled kernel's threads
# need, see tiled_attention.py). The tiled kernel, unless:
# * the CPU has neither AVX-512 nor AVX2 with FMA (``LANES`` is 0);
# * ``ALL_ON_BLAS`` is set (``MINFLAUBERT_ALL_ON_BLAS=1`` at import, or assigned at any time): every product and
#   attention on NumPy's BLAS, to compare the two in one process (benchmarks/encoder.py's "all on BLAS" column);
# * a forward's products come to fewer than TILES_FROM multiply-adds (a small model on a few tokens, as the first
#   ``minflaubert fill-mask`` with the shipped 4-layer model): such a forward takes a millisecond or two either
#   way, while the tiled kernel's Numba functions take seconds to compile on a machine's first run. The base
#   model does ~85 million multiply-adds per token: from its first token, it runs on the tiled kernel.
ALL_ON_BLAS = os.environ.get("MINFLAUBERT_ALL_ON_BLAS", "") not in ("", "0")
TILES_FROM = 50_000_000


def use_tiles(multiply_adds: float) -> bool:
    """Should a forward whose products come to ``multiply_adds`` in all run them, and attention, on the tiled
    kernel (else on NumPy's BLAS)? The rule above."""
    return bool(LANES) and not ALL_ON_BLAS and multiply_adds >= TILES_FROM


@numba.extending.intrinsic
def _tile_kernel(typingctx, weight, weight_stride, panel, out, out_stride, depth, accumulate):
    """One TILE_ROWS x TILE_COLUMNS tile: out[r, c] (+)= sum over k < depth of weight[r, k] * panel[k, c], each
    output summed over k in order, one fused multiply-add per step (``tile_reference`` in NumPy).

    All int64s: addresses of float32s and strides in float32s. ``weight`` points at the tile's first weight
    (TILE_ROWS rows ``weight_stride`` apart, each contiguous along k), ``panel`` at a packed panel of x (row k of
    the tile's columns at ``panel + k * TILE_COLUMNS``: contiguous), ``out`` at the tile's first output (TILE_ROWS
    rows ``out_stride`` apart, TILE_COLUMNS contiguous floats each). No alignment is needed (the vector loads and
    stores are the unaligned kind, as fast as aligned ones on data that happens to be aligned). The tile is always
    whole: every address it reads or writes must exist, so callers hand it zero-padded copies at the edges.
    ``depth`` >= 1. ``accumulate``: 0 to overwrite the tile, 1 to add to it (a product computed by slices of depth,
    one after another).
    """
    n_lanes, n_rows = LANES, TILE_ROWS
    signature = types.void(*[types.intp] * 7)

    def codegen(context, builder, _, arguments):
        weight_address, weight_stride, x_address, out_address, out_stride, depth, accumulate = arguments
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
        x_row = builder.gep(x, [builder.mul(k, constant(2 * n_lanes))])
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


def tile_reference(weight: np.ndarray, panel: np.ndarray, tile: np.ndarray | None = None) -> np.ndarray:
    """What ``_tile_kernel`` computes, in plain NumPy: weight [rows, depth] @ panel [depth, columns] (+ tile, the
    sums so far, if given), float32, summed over k in order, one fused multiply-add (a * b + c rounded once) per
    step. The product of two float32s is exact in float64, so each step is exact in float64 but for one rounding
    there, then rounded to float32: the kernel's bits, except when that first rounding lands on a float32 tie (in
    the order of one step in 10^8). Any number of rows and columns: each output's sum is the same in every tile."""
    sums = np.zeros((weight.shape[0], panel.shape[1]), np.float32) if tile is None else tile.astype(np.float32)
    for k in range(weight.shape[1]):
        sums = (weight[:, k, None].astype(np.float64) * panel[k].astype(np.float64) + sums).astype(np.float32)
    return sums


# Cache blocking (the "Anatomy" paper's other half): the product is computed DEPTH_BLOCK of the inner dimension at
# a time, COLUMN_BLOCK columns at a time, so that the part of x's panels being read (256 x 256 float32: 256 kB)
# stays in the core's L2 cache while every row tile of the weight goes by it, and a tile's panel (256 x
# TILE_COLUMNS: 16-32 kB) in its L1 cache.
DEPTH_BLOCK, COLUMN_BLOCK = 256, 256


@compiled(nogil=True)
def _matmul_rows(weight, panels, out, first_tile, end_tile):
    """Row tiles ``first_tile`` to ``end_tile - 1`` of out = weight @ x, every column: a share of one product
    (threads take disjoint shares). ``panels``: x packed (``_pack_panel``), [column tiles, depth, TILE_COLUMNS]."""
    tile_rows, tile_columns = TILE_ROWS, TILE_COLUMNS
    rows, depth = weight.shape
    tokens = out.shape[1]
    # subtle: a tile at an edge would read past the last row of the weight (the panels are zero-padded already).
    # Those rows are copied into a zero-padded array that the kernel can read whole, and it writes into a scratch
    # tile, of which only the part inside out is copied (at the last row tile, and at the last column tile).
    last_row = (end_tile - 1) * tile_rows
    partial = last_row + tile_rows > rows
    weight_edge = np.zeros((tile_rows, depth if partial else 1), np.float32)  # (read only if partial)
    if partial:
        _copy(weight[last_row:], weight_edge)
    scratch = np.empty((tile_rows, tile_columns), np.float32)
    # addresses as plain integers, and strides in float32s (a float32 is 4 bytes), for the kernel
    weight_at, weight_edge_at, panels_at = weight.ctypes.data, weight_edge.ctypes.data, panels.ctypes.data
    out_at, scratch_at = out.ctypes.data, scratch.ctypes.data
    weight_stride, out_stride = weight.strides[0] // 4, out.strides[0] // 4
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
                    b = panels_at + 4 * (column * depth + top * tile_columns)  # panel column // tile_columns, row top
                    if whole_rows and column + tile_columns <= tokens:
                        _tile_kernel(a, a_stride, b, out_at + 4 * (row * out_stride + column), out_stride, height,
                                     adding)
                    else:
                        kept = out[row:row + tile_rows, column:column + tile_columns]  # the tile's part in out
                        if adding:
                            _copy(kept, scratch)
                        _tile_kernel(a, a_stride, b, scratch_at, tile_columns, height, adding)
                        _copy(scratch, kept)


@compiled(nogil=True)
def _copy(source, target):
    # target[i, j] <- source[i, j] over the smaller of the two shapes. subtle: not ``target[...] = source[...]``:
    # Numba compiles an array assignment with the code of its shape-mismatch error message, seconds of compiling
    # on the first run of a command (for an error that cannot happen here)
    for i in range(min(source.shape[0], target.shape[0])):
        for j in range(min(source.shape[1], target.shape[1])):
            target[i, j] = source[i, j]


@compiled(nogil=True)
def _pack_panel(x, panels, tile):
    """panels[tile] [depth, TILE_COLUMNS] <- x's columns tile * TILE_COLUMNS onwards (zeros past x's last)."""
    depth, tokens = x.shape
    first = tile * TILE_COLUMNS
    width = min(TILE_COLUMNS, tokens - first)
    panel = panels[tile]
    for k in range(depth):
        for j in range(width):
            panel[k, j] = x[k, first + j]
        for j in range(width, TILE_COLUMNS):
            panel[k, j] = 0.0


@compiled(nogil=True)
def empty_panels(x):
    """Room for x [depth, tokens] packed: [column tiles, depth, TILE_COLUMNS]."""
    return np.empty((-(-x.shape[1] // TILE_COLUMNS), x.shape[0], TILE_COLUMNS), np.float32)


# Products smaller than this many multiply-adds run on the calling thread alone: ~100 us of one core's work,
# twice what handing half of it to another thread costs.
SPLIT_ABOVE = 12_000_000


def matmul(weight: np.ndarray, x: np.ndarray, out: np.ndarray, tiles: bool = True) -> np.ndarray:
    """out [rows, tokens] <- weight [rows, depth] @ x [depth, tokens]; all C-contiguous float32; -> out.

    ``np.matmul(weight, x, out=out)``'s result, to float32 rounding, computed by the tiled kernel above, on
    ``NUMBA_NUM_THREADS`` threads (the calling thread and helpers) when the product is big enough; or by
    ``np.matmul`` itself, without ``tiles`` (see ``use_tiles``) or on a CPU without the kernel.
    """
    matmuls((weight,), x, (out,), tiles)
    return out


def matmuls(weights: tuple, x: np.ndarray, outs: tuple, tiles: bool = True) -> None:
    """outs[i] <- weights[i] @ x for each i, as one job for the threads (the q, k and v of a layer: one hand-off
    to the helper threads instead of three). The weights have the same shape."""
    rows, depth = weights[0].shape
    tokens = x.shape[1]
    if not (tiles and LANES) or depth == 0 or tokens == 0 or rows == 0 or not all(
            array.dtype == np.float32 and array.strides[1] == 4 for array in (*weights, x, *outs)):
        # BLAS asked for, no kernel for this CPU, nothing to compute, or not float32 matrices with contiguous rows
        for weight, out in zip(weights, outs):
            np.matmul(weight, x, out=out)
        return
    row_tiles = -(-rows // TILE_ROWS)
    # x packed by the calling thread (a helper would have to wait for it at the first row tile: a helper kept off
    # its CPU by another program then held up both threads), then the row tiles of all the products, taken a chunk
    # at a time by whichever thread is free
    job = (weights, packed_panels(x), outs, row_tiles, chunk_tiles(len(weights) * row_tiles, x))
    threads.share(_stacked_matmul_rows, job, split=len(weights) * rows * depth * max(tokens, 2 * LANES) > SPLIT_ABOVE)


def chunk_tiles(tiles: int, x: np.ndarray) -> int:
    """How many row tiles a thread takes at a time: at least six chunks per thread, so that the threads end
    together even if one starts late; and up to 16 tiles when x does not fit in a core's L2 cache (each chunk
    reads all of x: bigger chunks read it fewer times), 4 when it does."""
    most = 16 if x.nbytes > L2_BYTES // 2 else 4
    return max(1, min(most, tiles // (6 * threads.size())))


L2_BYTES = 1 << 20  # per core on the machines measured (Zen 5); elsewhere the chunks are only a little off


@compiled(nogil=True)
def _stacked_matmul_rows(weights, panels, outs, row_tiles, chunk, counter):
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
                _matmul_rows(weights[which][:, :], panels, outs[which][:, :], low - which * row_tiles,
                             high - which * row_tiles)


@compiled(nogil=True)
def packed_panels(x):
    """x [depth, tokens] packed: [column tiles, depth, TILE_COLUMNS], each tile of columns a contiguous panel, the
    last one zero-padded (see ``_pack_panel``)."""
    panels = empty_panels(x)
    for panel in range(len(panels)):
        _pack_panel(x, panels, panel)
    return panels


@compiled(nogil=True)
def serial_matmul(weight, x, out):
    """``matmul`` on the calling thread alone, for Numba code (arrays with contiguous rows, any row stride)."""
    # subtle: [:, :] makes every array of the calls below the same Numba type (any layout, 'A'), contiguous or
    # not, so that each function is compiled once, not once per layout its callers happen to pass
    _matmul_rows(weight[:, :], packed_panels(x[:, :]), out[:, :], 0, -(-weight.shape[0] // TILE_ROWS))
