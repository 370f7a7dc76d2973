"""Numba versions of the two loops that NumPy can't fuse: attention (scores, mask, softmax, weighted sum) and GELU.

Each kernel computes exactly what its plain-NumPy twin in ``layers.py`` computes, and the tests hold them to it.
The NumPy attention builds the whole [batch, heads, q, k] score tensor three times over (scores, masked scores,
exponentials); here one pass over each query row does it all in a few cache-resident lines, and the (batch, head)
pairs are shared between the cores. ``cache=True`` keeps the compiled machine code on disk, so only the very first
import on a machine pays for compilation.
"""
from __future__ import annotations

import math
import os
import types

import numba
import numba.extending
import numpy as np

# Numba's threads must not spin while waiting: between two kernels, BLAS runs the GEMMs on the same cores, and
# OpenMP's spinning workers (the default "omp" layer) starve it (we measured attention 50-100x slower with them on
# 2 busy cores). The "workqueue" layer's workers sleep. (It is not for concurrent calls from several Python threads.)
if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "workqueue"

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


# ============================================================================ kernels of the fast encoder (fast.py)
# The fast encoder works on *packed* rows: the real tokens of every sequence one after another, [tokens, dim], so
# padding is never computed. Every kernel below is row-parallel and float32 in, float32 out; each has a plain-NumPy
# twin in ``layers.py`` and tests/test_kernels.py holds them to it.
_FAST = {"contract", "reassoc", "nsz", "arcp"}  # enough licence to vectorise the row loops; no finite-math tricks

# erf(x) for float32 as a rational polynomial (Eigen's and XLA's ``generic_fast_erf_float``): within a few float32
# ulps of the true erf, and, unlike a call into libm, it vectorises. Clamped at |x| = 4, where erf is 1 in float32.
_ERF_ALPHA = np.array([-2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06, -5.69250639462346e-05,
                       -7.34990630326855e-04, -2.95459980854025e-03, -1.60960333262415e-02], dtype=np.float32)
_ERF_BETA = np.array([-1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03, -7.37332916720468e-03,
                      -1.42647390514189e-02], dtype=np.float32)
_A1, _A3, _A5, _A7, _A9, _A11, _A13 = (np.float32(a) for a in _ERF_ALPHA)
_B8, _B6, _B4, _B2, _B0 = (np.float32(b) for b in _ERF_BETA)


# Below this much work (elements touched, or multiply-adds for attention) a kernel runs on one core: waking
# Numba's worker threads costs ~0.1-0.15 ms a call (measured, workqueue layer), more than a 16-token input's
# elementwise pass takes. 1x16 through flaubert_base: 70 ms with every kernel parallel, 56 ms on one core.
SERIAL_BELOW = 1 << 17


class _ParallelKernel:
    """A ``prange`` loop compiled twice: across the cores, and as a plain loop for small inputs.

    Call it as ``kernel(work, *arguments)``; ``work`` picks the version.
    """

    def __init__(self, loop):
        self.parallel = numba.njit(parallel=True, cache=True, fastmath=_FAST)(loop)
        # subtle: the on-disk cache is keyed by the function's name, so the one-core copy needs a name of its own
        one_core = types.FunctionType(loop.__code__, loop.__globals__, loop.__name__ + "_one_core")
        one_core.__qualname__ = loop.__qualname__ + "_one_core"
        self.serial = numba.njit(cache=True, fastmath=_FAST)(one_core)

    def __call__(self, work, *arguments):
        return (self.serial if work < SERIAL_BELOW else self.parallel)(*arguments)


@numba.njit(inline="always", fastmath=_FAST)
def _erf_f32(x):
    x = min(max(x, np.float32(-4.0)), np.float32(4.0))
    x2 = x * x
    p = x2 * _A1 + _A3
    p = x2 * p + _A5
    p = x2 * p + _A7
    p = x2 * p + _A9
    p = x2 * p + _A11
    p = x2 * p + _A13
    q = x2 * _B8 + _B6
    q = x2 * q + _B4
    q = x2 * q + _B2
    q = x2 * q + _B0
    return x * p / q


@numba.extending.intrinsic
def _float_from_bits(typingctx, bits):  # reinterpret an int32 as the float32 with the same bits
    from llvmlite import ir

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())
    return numba.types.float32(numba.types.int32), codegen


_LOG2E, _LN2_HI, _LN2_LO = np.float32(1.44269504088896341), np.float32(0.693359375), np.float32(-2.12194440e-4)
_EXP_P = tuple(np.float32(c) for c in (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2,
                                       1.6666665459e-1, 5.0000001201e-1))


@numba.njit(inline="always", fastmath=_FAST)
def _exp_f32(x):
    """exp(x) for float32 x <= 0 (softmax's shifted scores), Cephes' expf: within 1-2 ulps, and it vectorises.

    x = n ln2 + r with |r| <= ln2 / 2; exp(r) by a degree-7 polynomial; 2^n written straight into the exponent
    bits. x is clamped at -87.3 (below, float32 exp is subnormal): the result is then 1e-38, not 0.
    """
    x = max(x, np.float32(-87.3))
    n = math.floor(x * _LOG2E + np.float32(0.5))
    r = x - n * _LN2_HI - n * _LN2_LO
    p = _EXP_P[0] * r + _EXP_P[1]
    p = p * r + _EXP_P[2]
    p = p * r + _EXP_P[3]
    p = p * r + _EXP_P[4]
    p = p * r + _EXP_P[5]
    p = p * r * r + r + np.float32(1.0)
    return p * _float_from_bits(np.int32(n + np.float32(127.0)) << 23)


@_ParallelKernel
def _bias_gelu_kernel(y, bias):  # y [rows, hidden] <- gelu(y + bias), in place
    rows, width = y.shape
    for r in numba.prange(rows):
        for c in range(width):
            value = y[r, c] + bias[c]
            y[r, c] = np.float32(0.5) * value * (np.float32(1.0) + _erf_f32(value * _SQRT_HALF))


def bias_gelu(y, bias):
    """In place: y <- gelu(y + bias) (twin: ``layers.gelu(y + bias)``). y float32 C-contiguous [rows, hidden]."""
    _bias_gelu_kernel(y.size, y, bias)
    return y


@_ParallelKernel
def _add_bias_kernel(y, bias):  # y [rows, width] += bias
    rows, width = y.shape
    for r in numba.prange(rows):
        for c in range(width):
            y[r, c] += bias[c]


def add_bias(y, bias):
    """In place: y <- y + bias (the bias half of ``layers.linear``)."""
    _add_bias_kernel(y.size, y, bias)
    return y


@numba.njit(inline="always", fastmath=_FAST)
def _normalise_row(row, gamma, beta, eps, out):
    # mean and (biased) variance accumulated in float64, the normalisation itself in float32 as the reference
    dim = row.size
    total = 0.0
    for c in range(dim):
        total += row[c]
    mean = np.float32(total / dim)
    squares = 0.0
    for c in range(dim):
        centred = row[c] - mean
        squares += centred * centred
    std = np.float32(math.sqrt(np.float32(squares / dim) + eps))
    for c in range(dim):
        out[c] = (row[c] - mean) / std * gamma[c] + beta[c]


@_ParallelKernel
def _layer_norm_kernel(x, gamma, beta, eps, out):
    for r in numba.prange(x.shape[0]):
        _normalise_row(x[r], gamma, beta, eps, out[r])


def layer_norm(x, gamma, beta, eps, out=None):
    """LayerNorm of each row of x [rows, dim] into ``out`` (may be x). Twin: ``layers.layer_norm``."""
    out = np.empty_like(x) if out is None else out
    _layer_norm_kernel(x.size, x, gamma, beta, np.float32(eps), out)
    return out


@_ParallelKernel
def _residual_layer_norm_kernel(x, y, bias, gamma, beta, eps, out):
    rows, dim = x.shape
    for r in numba.prange(rows):
        row = out[r]
        for c in range(dim):
            row[c] = x[r, c] + (y[r, c] + bias[c])
        _normalise_row(row, gamma, beta, eps, row)


def residual_layer_norm(x, y, bias, gamma, beta, eps, out=None):
    """out <- LayerNorm(x + (y + bias)): the post-norm residual step, one pass (``out`` may be x).

    Twin: ``layers.residual_layer_norm``.
    """
    out = np.empty_like(x) if out is None else out
    _residual_layer_norm_kernel(x.size, x, y, bias, gamma, beta, np.float32(eps), out)
    return out


@_ParallelKernel
def _add_residual_kernel(x, y, bias):  # x += y + bias
    rows, dim = x.shape
    for r in numba.prange(rows):
        for c in range(dim):
            x[r, c] += y[r, c] + bias[c]


def add_residual(x, y, bias):
    """In place: x <- x + (y + bias), the pre-norm residual step."""
    _add_residual_kernel(x.size, x, y, bias)
    return x


@_ParallelKernel
def _packed_attention_kernel(qkv, starts, lengths, n_heads, causal, context):
    # qkv [tokens, 3 dim]: each token's query, key and value side by side; sequence s owns rows
    # starts[s] .. starts[s] + lengths[s]. One task per (sequence, head); scores live in one row buffer.
    dim = context.shape[1]
    head_dim = dim // n_heads
    scale = np.float32(1.0 / math.sqrt(head_dim))
    longest = 0
    for s in range(lengths.size):
        longest = max(longest, lengths[s])
    for task in numba.prange(lengths.size * n_heads):
        s, h = task // n_heads, task % n_heads
        start, length = starts[s], lengths[s]
        q0, k0, v0 = h * head_dim, dim + h * head_dim, 2 * dim + h * head_dim
        row = np.empty(max(longest, 1), dtype=np.float32)
        for i in range(length):
            n_keys = i + 1 if causal else length
            query = qkv[start + i]
            largest = MASKED_SCORE
            for j in range(n_keys):
                key = qkv[start + j]
                score = np.float32(0.0)
                for d in range(head_dim):
                    score += (query[q0 + d] * scale) * key[k0 + d]
                row[j] = score
                largest = max(largest, score)
            total = np.float32(0.0)
            for j in range(n_keys):
                row[j] = _exp_f32(row[j] - largest)
                total += row[j]
            out = context[start + i]
            for d in range(head_dim):
                out[q0 + d] = 0.0
            for j in range(n_keys):
                w = row[j] / total
                value = qkv[start + j]
                for d in range(head_dim):
                    out[q0 + d] += w * value[v0 + d]


def packed_attention(qkv, starts, lengths, n_heads, causal, context):
    """Self-attention of packed sequences, every head: context [tokens, dim] <- softmax(q k^T / sqrt(d)) v.

    Each sequence attends only to its own tokens (all of them, or those up to the query when ``causal``): the same
    numbers as ``layers.scaled_dot_product_attention`` on the padded batch, at the real positions.
    """
    work = int(np.square(lengths).sum()) * context.shape[1]  # multiply-adds of the scores
    _packed_attention_kernel(work, qkv, starts, lengths, n_heads, causal, context)
    return context


@_ParallelKernel
def _scaled_softmax_kernel(scores, scale, causal):
    # scores [heads, q, k] <- softmax(scale * scores) over k, in place; causal rows end at the diagonal (the rest 0)
    n_heads, q_len, k_len = scores.shape
    for task in numba.prange(n_heads * q_len):
        h, i = task // q_len, task % q_len
        row = scores[h, i]
        n_keys = i + 1 if causal else k_len
        largest = MASKED_SCORE
        for j in range(n_keys):
            row[j] *= scale
            largest = max(largest, row[j])
        total = np.float32(0.0)
        for j in range(n_keys):
            row[j] = _exp_f32(row[j] - largest)
            total += row[j]
        for j in range(n_keys):
            row[j] /= total
        for j in range(n_keys, k_len):
            row[j] = 0.0


def scaled_softmax(scores, scale, causal):
    """In place over the last axis of scores [heads, q, k]: softmax(scale * scores), keys after the query masked
    when ``causal``. Twin: ``layers.softmax`` of the masked, scaled scores."""
    _scaled_softmax_kernel(scores.size, scores, np.float32(scale), causal)
    return scores
