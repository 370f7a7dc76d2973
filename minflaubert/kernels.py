"""Numba versions of the two loops that NumPy can't fuse: attention (scores, mask, softmax, weighted sum) and GELU.

Each kernel computes exactly what its plain-NumPy twin in ``layers.py`` computes, and the tests hold them to it.
The NumPy attention builds the whole [batch, heads, q, k] score tensor three times over (scores, masked scores,
exponentials); here one pass over each query row does it all in a few cache-resident lines, and the (batch, head)
pairs are shared between the cores. ``cache=True`` keeps the compiled machine code on disk, so only the very first
import on a machine pays for compilation.
"""
from __future__ import annotations

import math

import numba
import numpy as np

from .layers import MASKED_SCORE

_SQRT_HALF = np.float32(1.0 / math.sqrt(2.0))


@numba.njit(parallel=True, cache=True, fastmath={"contract", "reassoc"})
def _attention_kernel(q, k, v, mask, context, weights):
    batch, n_heads, q_len, head_dim = q.shape
    k_len = k.shape[2]
    scale = np.float32(1.0 / math.sqrt(head_dim))
    for bh in numba.prange(batch * n_heads):
        b, h = bh // n_heads, bh % n_heads
        for i in range(q_len):
            row = weights[b, h, i]
            # scores of query i against every key, masked keys set to the lowest float32
            largest = MASKED_SCORE
            for j in range(k_len):
                if mask[b, i, j]:
                    score = np.float32(0.0)
                    for d in range(head_dim):
                        score += (q[b, h, i, d] * scale) * k[b, h, j, d]
                else:
                    score = MASKED_SCORE
                row[j] = score
                largest = max(largest, score)
            # stable softmax: subtract the row maximum before exponentiating
            total = np.float32(0.0)
            for j in range(k_len):
                row[j] = math.exp(row[j] - largest)
                total += row[j]
            for j in range(k_len):
                row[j] /= total
            # weighted sum of the values
            out = context[b, h, i]
            out[:] = 0.0
            for j in range(k_len):
                w = row[j]
                if w != 0.0:  # masked keys contribute exactly nothing: skip them
                    for d in range(head_dim):
                        out[d] += w * v[b, h, j, d]


def scaled_dot_product_attention(q, k, v, mask):
    """Same contract as ``layers.scaled_dot_product_attention``: -> (context, weights)."""
    batch, n_heads, q_len, head_dim = q.shape
    context = np.empty(q.shape, dtype=np.float32)
    weights = np.empty((batch, n_heads, q_len, k.shape[2]), dtype=np.float32)
    _attention_kernel(np.ascontiguousarray(q, np.float32), np.ascontiguousarray(k, np.float32),
                      np.ascontiguousarray(v, np.float32), np.ascontiguousarray(mask, np.bool_), context, weights)
    return context, weights


@numba.njit(parallel=True, cache=True)
def _gelu_kernel(x, out):
    flat_x, flat_out = x.reshape(-1), out.reshape(-1)
    for i in numba.prange(flat_x.size):
        value = flat_x[i]
        flat_out[i] = np.float32(0.5) * value * (np.float32(1.0) + math.erf(value * _SQRT_HALF))


def gelu(x):
    """Same contract as ``layers.gelu``: the exact erf GELU, elementwise."""
    x = np.ascontiguousarray(x, np.float32)
    out = np.empty_like(x)
    _gelu_kernel(x, out)
    return out
