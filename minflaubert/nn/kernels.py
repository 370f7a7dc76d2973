"""Numba versions of the two loops that NumPy can't fuse: attention (scores, mask, softmax, weighted sum) and GELU.

Each kernel computes exactly what its plain-NumPy twin in ``layers.py`` computes, and the tests hold them to it.
The NumPy attention builds the whole [batch, heads, q, k] score tensor three times over (scores, masked scores,
exponentials); here one pass over each query row does it all in a few cache-resident lines, and the (batch, head)
pairs are shared between the cores. Compiled machine code is kept on disk (Numba's ``cache=True``, see ``compiled``),
so only the very first import on a machine pays for compilation.

It runs a little over 400 lines because the threading layer and the on-disk cache, which every kernel depends on,
are set up here, next to the kernels.
"""
from __future__ import annotations

import contextlib
import math
import os
import sys
import threading
import time

import numba
import numba.core.caching
import numba.core.event
import numba.extending
import numpy as np


def choose_threading_layer() -> str:
    """The Numba threading layer the two parallel kernels below run on: the user's choice
    (``NUMBA_THREADING_LAYER``), else TBB when it is installed, else "workqueue".

    Why not simply Numba's default (OpenMP first): Numba's threads must not spin while waiting. Between two
    kernels, BLAS runs the GEMMs on the same cores, and OpenMP's spinning workers starve it (attention ran many
    times slower: benchmarks/README.md). TBB's and workqueue's workers sleep. But workqueue is not re-entrant: two
    Python threads entering it at once abort the whole process ("Concurrent access has been detected"), hence
    ``PARALLEL_REGION`` below.
    """
    chosen = os.environ.get("NUMBA_THREADING_LAYER")
    if chosen:
        return chosen
    try:
        from numba.np.ufunc import tbbpool  # noqa: F401  (loads libtbb: present with `pip install tbb`)
    except ImportError:
        return "workqueue"
    return "tbb"


THREADING_LAYER = choose_threading_layer()
numba.config.THREADING_LAYER = THREADING_LAYER
# Held around every call of a parallel=True kernel when the layer may be workqueue (not re-entrant: see above).
# It costs little: the fast encoder (the default path) runs no parallel kernel, only attention maps and
# key/value caches take the readable path that does, and its threads queue only for the kernel itself.
PARALLEL_REGION = (contextlib.nullcontext() if THREADING_LAYER in ("tbb", "omp", "safe", "threadsafe")
                   else threading.Lock())

from .layers import MASKED_SCORE


class _ForgivingCache(numba.core.caching.FunctionCache):
    """Numba's on-disk cache of one function, which may fail without failing the program.

    A cache file can be corrupt (a disk full during a write, a copy cut short) or its folder become unwritable:
    Numba would then raise from the first call of the kernel, and raise again in every later process. Here the
    damaged cache is emptied (when it can be) and the kernel compiled in memory, as if there were no cache.
    """

    def load_overload(self, sig, target_context):
        try:
            return super().load_overload(sig, target_context)
        except Exception:  # noqa: BLE001 (any unreadable file: pickle, EOFError, OSError...)
            with contextlib.suppress(Exception):
                self.flush()  # an empty index in place of the damaged one: the next save repairs the cache
            return None

    def save_overload(self, sig, data):
        with contextlib.suppress(Exception):  # a cache that cannot be written only costs the next process time
            super().save_overload(sig, data)


class _CompilingNotice(numba.core.event.Listener):
    """Says once on stderr, when compiling this package's kernels has taken more than NOTICE_AFTER seconds, that
    they are being compiled for this CPU: the first command on a new machine (or after an upgrade) would otherwise
    sit silent for seconds. Loads from the cache are not compilations: a warm start says nothing.

    It listens to Numba's "numba:compile" events (one per function compiled, nested when a kernel compiles the
    functions it calls) and counts the time spent inside the outermost of this package's; a timer fires when the
    total would pass NOTICE_AFTER, and is stopped whenever compiling stops before that."""

    def __init__(self):
        self.spent, self.compiling, self.timer, self.said = 0.0, None, None, False
        self.lock = threading.Lock()

    def on_start(self, event):
        with self.lock:
            if self.said or self.compiling is not None or not _ours(event):
                return
            self.compiling = (event.data["dispatcher"], time.perf_counter())
            self.timer = threading.Timer(max(0.0, NOTICE_AFTER - self.spent), self.say)
            self.timer.daemon = True
            self.timer.start()

    def on_end(self, event):
        with self.lock:
            if self.compiling is None or event.data["dispatcher"] is not self.compiling[0]:
                return
            self.timer.cancel()
            self.spent += time.perf_counter() - self.compiling[1]
            self.compiling = None

    def say(self):
        with self.lock:
            if self.said or self.compiling is None:
                return
            self.said = True
        print("minflaubert: compiling its kernels for this CPU (once: later runs load them from Numba's cache)...",
              file=sys.stderr, flush=True)


NOTICE_AFTER = 1.0


def _ours(event) -> bool:
    return getattr(event.data["dispatcher"].py_func, "__module__", "").startswith(__package__ or "minflaubert")


numba.core.event.register("numba:compile", _CompilingNotice())


def compiled(**options):
    """``numba.njit(**options)``, with the machine code cached on disk whenever that can work, and never an error
    because of the cache.

    Where no folder is writable for the cache (a read-only site-packages and home: a locked-down laptop, a
    container), Numba refuses ``cache=True`` at import time ("no locator available"): the kernel is then compiled
    in memory instead, once per process. A corrupt or unwritable cache file is handled by ``_ForgivingCache``.
    """
    def decorate(function):
        try:
            dispatcher = numba.njit(cache=True, **options)(function)
        except RuntimeError:  # no writable cache folder anywhere
            return numba.njit(**options)(function)
        dispatcher._cache = _ForgivingCache(function)  # subtle: what Numba's Dispatcher.enable_caching sets
        return dispatcher
    return decorate

# Every kernel compiles with error_model="numpy": a float division by zero gives inf or nan, as in NumPy (and as in
# the plain-NumPy twins), instead of raising ZeroDivisionError. subtle: Python's rule costs a zero test in every
# division, and that branch stops the compiler from vectorising the loop around it.
_ERRORS = "numpy"

_SQRT_HALF = np.float32(1.0 / math.sqrt(2.0))


@compiled(parallel=True, fastmath={"contract", "reassoc"}, error_model=_ERRORS)
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
    """q [batch, heads, q_len, d], k and v [batch, heads, k_len, d], mask [batch, q_len, k_len] -> (context
    [batch, heads, q_len, d], weights [batch, heads, q_len, k_len]): ``layers.scaled_dot_product_attention``'s."""
    batch, n_heads, q_len, head_dim = q.shape
    context = np.empty(q.shape, dtype=np.float32)
    weights = np.empty((batch, n_heads, q_len, k.shape[2]), dtype=np.float32)
    arguments = (np.ascontiguousarray(q, np.float32), np.ascontiguousarray(k, np.float32),
                 np.ascontiguousarray(v, np.float32), np.ascontiguousarray(mask, np.bool_))
    with PARALLEL_REGION:
        _attention_kernel(*arguments, context, weights)
    return context, weights


@compiled(parallel=True, error_model=_ERRORS)
def _gelu_kernel(x, out):
    flat_x, flat_out = x.reshape(-1), out.reshape(-1)
    for i in numba.prange(flat_x.size):
        value = flat_x[i]
        flat_out[i] = np.float32(0.5) * value * (np.float32(1.0) + math.erf(value * _SQRT_HALF))


def gelu(x):  # [...] -> [...]
    """Same contract as ``layers.gelu``: the exact erf GELU, elementwise, in float32."""
    x = np.ascontiguousarray(x, np.float32)
    out = np.empty_like(x)
    with PARALLEL_REGION:
        _gelu_kernel(x, out)
    return out


# ============================================================================ kernels of the fast encoder (fast.py)
# The fast encoder works on *packed* tokens: the real tokens of every sequence one after another, so padding is
# never computed. Its matrix products go to ``gemm.py`` (BLAS on CPUs without AVX2); the passes between them are
# the kernels below, float32 in, float32 out. Each has a plain-NumPy twin in ``layers.py`` and
# tests/test_kernels.py holds them to it.
#
# They run on one core: these short passes are memory-bound, and Numba's own parallel versions (a ~140 us start
# with its workqueue layer) were slower or level at every shape measured (benchmarks/README.md, "One core for the
# Numba kernels").
_FAST = {"contract", "reassoc", "nsz", "arcp"}  # enough licence to vectorise the row loops; no finite-math tricks


def _fast_kernel(function):
    return compiled(fastmath=_FAST, error_model=_ERRORS)(function)


# erf(x) for float32 as a rational polynomial (Eigen's and XLA's ``generic_fast_erf_float``): within a few float32
# ulps of the true erf, and, unlike a call into libm, it vectorises. Clamped at |x| = 4, where erf is 1 in float32.
_ERF_ALPHA = np.array([-2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06, -5.69250639462346e-05,
                       -7.34990630326855e-04, -2.95459980854025e-03, -1.60960333262415e-02], dtype=np.float32)
_ERF_BETA = np.array([-1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03, -7.37332916720468e-03,
                      -1.42647390514189e-02], dtype=np.float32)
_A1, _A3, _A5, _A7, _A9, _A11, _A13 = (np.float32(a) for a in _ERF_ALPHA)
_B8, _B6, _B4, _B2, _B0 = (np.float32(b) for b in _ERF_BETA)


@numba.njit(inline="always", fastmath=_FAST, error_model=_ERRORS)
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


@numba.njit(inline="always", fastmath=_FAST, error_model=_ERRORS)
def _gelu_f32(x):
    return np.float32(0.5) * x * (np.float32(1.0) + _erf_f32(x * _SQRT_HALF))


@numba.extending.intrinsic
def _float_from_bits(typingctx, bits):  # reinterpret an int32 as the float32 with the same bits
    from llvmlite import ir

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())
    return numba.types.float32(numba.types.int32), codegen


_LOG2E, _LN2_HI, _LN2_LO = np.float32(1.44269504088896341), np.float32(0.693359375), np.float32(-2.12194440e-4)
_EXP_P = tuple(np.float32(c) for c in (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2,
                                       1.6666665459e-1, 5.0000001201e-1))


@numba.njit(inline="always", fastmath=_FAST, error_model=_ERRORS)
def _exp_f32(x):
    """exp(x) for float32 x <= 0 (softmax's shifted scores), Cephes' expf: within 1-2 ulps, and it vectorises.

    x = n ln2 + r with |r| <= ln2 / 2; exp(r) by a degree-7 polynomial; 2^n written straight into the exponent
    bits. x is clamped at -87.3 (below, float32 exp is subnormal): the result is then 1e-38, not 0.
    """
    x = max(x, np.float32(-87.3))
    n = np.floor(x * _LOG2E + np.float32(0.5))  # subtle: math.floor would return an int, and n * ln2 a float64
    r = x - n * _LN2_HI - n * _LN2_LO
    p = _EXP_P[0] * r + _EXP_P[1]
    p = p * r + _EXP_P[2]
    p = p * r + _EXP_P[3]
    p = p * r + _EXP_P[4]
    p = p * r + _EXP_P[5]
    p = p * r * r + r + np.float32(1.0)
    return p * _float_from_bits(np.int32(n + np.float32(127.0)) << 23)


# Every array below is feature-major: [features, tokens], one row per feature, the tokens along the row. (Why: a
# linear layer is then ``W @ X``, the weight read along its rows; see fast.py.) A bias is one number
# per row, and LayerNorm normalises each *column*. Every loop runs along a row, contiguous, so it vectorises.
@numba.njit(inline="always", fastmath=_FAST, error_model=_ERRORS)
def _add_bias_rows(y, bias, then_gelu):
    # y [rows, tokens] <- y + bias[:, None], then the erf GELU if ``then_gelu``. Each caller passes a constant, so
    # the compiler drops the test: add_bias and bias_gelu compile to the loops each would be written alone.
    rows, tokens = y.shape
    for r in range(rows):
        row, offset = y[r], bias[r]
        for t in range(tokens):
            value = row[t] + offset
            row[t] = _gelu_f32(value) if then_gelu else value
    return y


@_fast_kernel
def bias_gelu(y, bias):
    """In place: y <- gelu(y + bias[:, None]) (twin: ``layers.gelu(y.T + bias).T``). y float32 [hidden, tokens]."""
    return _add_bias_rows(y, bias, True)


@_fast_kernel
def add_bias(y, bias):
    """In place: y [rows, tokens] <- y + bias[:, None] (the bias half of ``layers.linear``, feature-major)."""
    return _add_bias_rows(y, bias, False)


@_fast_kernel
def add_residual(x, y, bias):
    """In place: x <- x + (y + bias[:, None]), the pre-norm residual step. x, y [dim, tokens]."""
    dim, tokens = x.shape
    for c in range(dim):
        row, update, offset = x[c], y[c], bias[c]
        for t in range(tokens):
            row[t] += update[t] + offset
    return x


TILE = 8


@_fast_kernel
def transpose(source, out):
    """out [cols, rows] <- source [rows, cols].T: between the token-major world outside and the fast path's
    feature-major one. In TILE x TILE tiles, so that reads and writes both stay within a few cache lines (faster
    than NumPy's strided copy: benchmarks/README.md)."""
    rows, cols = source.shape
    for r0 in range(0, rows, TILE):
        r1 = min(r0 + TILE, rows)
        for c0 in range(0, cols, TILE):
            for c in range(c0, min(c0 + TILE, cols)):
                for r in range(r0, r1):
                    out[c, r] = source[r, c]
    return out


# LayerNorm works in place, in two passes over the rows: one sums each column (and its squares), one normalises.
# subtle: in place on purpose. A loop reading one array and writing another that turns out to be the same memory
# fails the compiler's run-time overlap check and falls back to scalar code, several times slower.
@_fast_kernel
def _layer_norm_in_place(x, gamma, beta, eps):
    # x [dim, tokens] <- (x - mean) / sqrt(variance + eps) * gamma + beta per column, in place; each column's sum and
    # sum of squares in float64, the normalisation in float32, as the float32 reference computes it.
    # subtle: the variance is E[x^2] - mean^2, which cancels catastrophically in float32 but not in float64
    # (2^-52 relative, amplified by mean^2 / variance: harmless below |mean| / std ~ 1e5, beyond float32's reach).
    dim, tokens = x.shape
    total = np.zeros(tokens, dtype=np.float64)
    squares = np.zeros(tokens, dtype=np.float64)
    for c in range(dim):
        row = x[c]
        for t in range(tokens):
            value = np.float64(row[t])
            total[t] += value
            squares[t] += value * value
    mean = np.empty(tokens, dtype=np.float32)
    std = np.empty(tokens, dtype=np.float32)
    for t in range(tokens):
        average = total[t] / dim
        mean[t] = np.float32(average)
        std[t] = np.float32(math.sqrt(np.float32(max(squares[t] / dim - average * average, 0.0)) + eps))
    for c in range(dim):
        row, scale, shift = x[c], gamma[c], beta[c]
        for t in range(tokens):
            row[t] = (row[t] - mean[t]) / std[t] * scale + shift


def _in_place_target(x, out):
    """The array a kernel will work on in place: x itself, or ``out`` (a new array if None) holding a copy of x."""
    if out is x:
        return x
    if out is None:
        return x.copy()
    out[...] = x
    return out


def layer_norm(x, gamma, beta, eps, out=None):
    """LayerNorm of each column of x [dim, tokens] into ``out`` (may be x). Twin: ``layers.layer_norm(x.T).T``."""
    out = _in_place_target(x, out)
    _layer_norm_in_place(out, gamma, beta, np.float32(eps))
    return out


def residual_layer_norm(x, y, bias, gamma, beta, eps, out=None):
    """out <- LayerNorm(x + (y + bias[:, None])) over each column: the post-norm residual step (``out`` may be x).
    All [dim, tokens]. Twin: ``layers.residual_layer_norm`` on the transposes.

    Two passes, ``add_residual`` then LayerNorm: one kernel doing both would save too little to notice in a forward
    pass (benchmarks/README.md) for a second copy of LayerNorm's loops.
    """
    out = _in_place_target(x, out)
    add_residual(out, y, bias)
    _layer_norm_in_place(out, gamma, beta, np.float32(eps))
    return out


# The row maximum is kept as MAX_LANES running maxima side by side. subtle: one running maximum is a chain of
# dependent compares that the compiler may not vectorise (without the no-NaN licence we don't give it); sixteen
# independent ones vectorise, which makes the whole softmax faster (benchmarks/README.md).
MAX_LANES = 16


@numba.njit(inline="always", fastmath=_FAST, error_model=_ERRORS)
def _scaled_softmax_row(row, n_keys, scale, lanes):
    # row[:n_keys] <- softmax(scale * row[:n_keys]), in place; the rest of the row is left alone.
    # lanes: a scratch array of MAX_LANES floats.
    whole = n_keys - n_keys % MAX_LANES
    lanes[:] = MASKED_SCORE
    for j0 in range(0, whole, MAX_LANES):
        for lane in range(MAX_LANES):
            lanes[lane] = max(lanes[lane], row[j0 + lane])
    largest = MASKED_SCORE
    for lane in range(MAX_LANES):
        largest = max(largest, lanes[lane])
    for j in range(whole, n_keys):
        largest = max(largest, row[j])
    # subtle: scale > 0, so the largest scaled score is scale * the largest score: the scaling can wait for exp
    shift = largest * scale
    total = np.float32(0.0)
    for j in range(n_keys):
        row[j] = _exp_f32(row[j] * scale - shift)
        total += row[j]
    inverse = np.float32(1.0) / total
    for j in range(n_keys):
        row[j] *= inverse


@_fast_kernel
def _scaled_softmax_in_place(scores, scale, causal):
    # scores [heads, q, k] <- softmax(scale * scores) over k; causal rows end at the diagonal (the rest 0)
    n_heads, q_len, k_len = scores.shape
    lanes = np.empty(MAX_LANES, dtype=np.float32)
    for h in range(n_heads):
        for i in range(q_len):
            row = scores[h, i]
            n_keys = i + 1 if causal else k_len
            _scaled_softmax_row(row, n_keys, scale, lanes)
            for j in range(n_keys, k_len):
                row[j] = 0.0


def scaled_softmax(scores, scale, causal):
    """In place over the last axis of scores [heads, q, k]: softmax(scale * scores), keys after the query masked
    when ``causal``. Twin: ``layers.softmax`` of the masked, scaled scores."""
    if not scale > 0:
        raise ValueError(f"scaled_softmax needs a positive scale, got {scale}")
    _scaled_softmax_in_place(scores, np.float32(scale), causal)
    return scores
