"""Attention over packed sequences with the tiled matrix product of ``gemm.py``: ``fast.packed_attention``'s
result, without a call into BLAS.

Why not BLAS here, when the linear layers do without it: OpenBLAS's threads, after each call, spin on the cores
for a while waiting for more work, and they would fight the threads of the next linear layer for the two cores
(measured: the encoder ran up to twice as slow with BLAS attention between tiled linear layers).

For each (sequence, head) pair, with its queries q, keys k and values v as [head_dim, length] blocks of rows of
the feature-major q/k/v buffer::

    scores_t = k.T @ q                          # [keys, queries]: the scores, one column per query
    scores_t = softmax over each column         # of scale * scores; causal: key j > query i gets 0
    context  = v @ scores_t                     # [head_dim, keys] @ [keys, queries]

The scores are kept transposed (a column per query) so that both products read their right-hand operand along
rows, as the tile kernel wants; only k.T, [length, head_dim], is copied. The pairs are shared between threads.
"""
from __future__ import annotations

import math

import numpy as np

from . import gemm, threads
from . import kernels
from .kernels import _ERRORS, _FAST, _exp_f32, compiled
from .layers import MASKED_SCORE


@compiled(fastmath=_FAST, error_model=_ERRORS, nogil=True)
def _softmax_columns(scores_t, scale, causal, largest, total):
    # scores_t [keys, queries] <- softmax over the keys (down each column) of scale * scores_t. Same arithmetic,
    # in the same order, as kernels._scaled_softmax_row on the transposed scores. largest, total: [queries] scratch.
    # Causal: query i sees keys 0..i, so row j's queries start at j (the rest of the row gets 0).
    n_keys, n_queries = scores_t.shape
    largest[:n_queries] = MASKED_SCORE
    total[:n_queries] = 0.0
    # subtle: every loop below runs over views from 0, not over range(first, n): with a moving start, Numba's
    # indexing kept the compiler from vectorising them (8x slower)
    for j in range(n_keys):
        first = j if causal else 0
        row, most = scores_t[j, first:], largest[first:n_queries]
        for i in range(row.size):
            most[i] = max(most[i], row[i])
    for j in range(n_keys):
        first = j if causal else 0
        scores_t[j, :first] = 0.0
        row, most, sums = scores_t[j, first:], largest[first:n_queries], total[first:n_queries]
        for i in range(row.size):
            value = _exp_f32(row[i] * scale - most[i] * scale)
            row[i] = value
            sums[i] += value
    inverse = total[:n_queries]
    for i in range(n_queries):
        inverse[i] = np.float32(1.0) / inverse[i]
    for j in range(n_keys):
        row = scores_t[j]
        for i in range(n_queries):
            row[i] *= inverse[i]


@compiled(nogil=True)
def _attention_pairs(qkv, starts, lengths, n_heads, scale, causal, context, counter):
    # (sequence, head) pairs, pair = sequence * n_heads + head, taken one at a time until none is left (see
    # threads.share); context [dim, tokens] <- attention
    dim = context.shape[0]
    head_dim = dim // n_heads
    longest = lengths.max()
    # subtle: flat scratch, reshaped for each length: a contiguous [length, length] array, where a slice of a
    # [longest, longest] one would have rows of unknown stride, and loops over it would not vectorise
    keys_t_storage = np.empty(longest * head_dim, np.float32)
    scores_t_storage = np.empty(longest * longest, np.float32)
    largest, total = np.empty(longest, np.float32), np.empty(longest, np.float32)
    while True:
        pair = threads.take(counter, 1)
        if pair >= len(lengths) * n_heads:
            return
        sequence, head = pair // n_heads, pair % n_heads
        start, length = starts[sequence], lengths[sequence]
        if length == 0:
            continue
        top = head * head_dim
        q = qkv[top:top + head_dim, start:start + length]
        k = qkv[dim + top:dim + top + head_dim, start:start + length]
        v = qkv[2 * dim + top:2 * dim + top + head_dim, start:start + length]
        k_t = kernels.transpose(k, keys_t_storage[:length * head_dim].reshape((length, head_dim)))
        s_t = scores_t_storage[:length * length].reshape((length, length))
        gemm.serial_matmul(k_t, q, s_t)  # [keys, head_dim] @ [head_dim, queries]
        _softmax_columns(s_t, scale, causal, largest, total)
        out = context[top:top + head_dim, start:start + length]
        gemm.serial_matmul(v, s_t, out)  # [head_dim, keys] @ [keys, queries]


def packed_attention(qkv, starts, lengths, n_heads, causal, context):
    """context [dim, tokens] <- attention of each packed sequence over its own tokens, every head (the arguments
    of ``fast.packed_attention``). Needs ``gemm.LANES`` (a CPU with AVX2 or AVX-512)."""
    scale = np.float32(1.0 / math.sqrt(context.shape[0] // n_heads))
    lengths = lengths.astype(np.int64)
    multiply_adds = 2 * float(np.square(lengths).sum()) * context.shape[0]  # two L x L x head_dim products a head
    threads.share(_attention_pairs, (qkv, starts.astype(np.int64), lengths, n_heads, scale, causal, context),
                  split=multiply_adds > gemm.SPLIT_ABOVE)
    return context
