"""The fast encoder: the same forward pass as ``model.encode``, arranged for speed instead of for reading.

What changes (and why), against the readable path in ``model.py`` + ``layers.py``:

* **Only real tokens are computed.** The tokens of every sequence are *packed* one after another, so padding
  never goes through a linear layer, the FFN or attention; each sequence attends to its own tokens only. Padded
  positions are written back as zeros at the end, as the reference keeps them.
* **Activations are feature-major**: [features, tokens], the transpose of the readable path's [tokens, features].
  A linear layer is then ``W @ X`` instead of ``X @ W.T``: the weight is read along its rows, as stored. LayerNorm
  then normalises columns, and attention reads each head as a [head_dim, tokens] block of rows.
* **Matrix products by ``gemm.py``**, a register-tiled kernel compiled for this CPU (AVX-512 or AVX2), into
  preallocated buffers; or by NumPy's BLAS, on a CPU with neither and where ``gemm.use_tiles`` says so (small
  forwards, or ``gemm.ALL_ON_BLAS``). Queries, keys and values land one under the other in one [3 dim, tokens]
  buffer: three products, handed to the threads as one job. Attention per (sequence, head) is ``tiled_attention.py``, on the
  same kernel (``packed_attention`` below is the BLAS version, for the forwards on BLAS).
* **Fused elementwise passes** (Numba, ``kernels.py``): bias + GELU in place, bias + residual in place (then
  LayerNorm in place), attention's scale + mask + softmax in one pass.
* **Preallocated buffers**, reused from call to call, in huge pages where the OS has them; float32 everywhere.
  Each thread has its own (one model may serve many threads at once: shared scratch arrays would mix their
  activations).

It applies when no key/value ``cache`` is used, attention maps are not asked for, and the padding mask can be
packed (any mask for a bidirectional model; right padding for a causal one, whose reference attends to padding
keys otherwise). ``paths.path_to_run`` sends every other call of path "fast" to "kernels".
"""
from __future__ import annotations

import math
import mmap
import threading

import numpy as np

from . import gemm, kernels, layers, tiled_attention


class Prepared:
    """Per-model state of the fast path: each layer's weights, gathered (views, no copies; only the q/k/v biases
    are joined into one), and reusable work buffers (one set per thread)."""

    def __init__(self, params: dict, config):
        self.config = config
        self.layers = []
        for i in range(config.n_layers):
            attention = params["attentions"][i]
            q, k, v = attention["q_lin"], attention["k_lin"], attention["v_lin"]
            weights = [q["weight"], k["weight"], v["weight"]]
            self.layers.append(dict(
                qkv_weights=tuple(weights),  # three products into the row blocks of one buffer, as one job
                qkv_bias=np.concatenate([q["bias"], k["bias"], v["bias"]]),
                out_weight=attention["out_lin"]["weight"], out_bias=attention["out_lin"]["bias"],
                lin1_weight=params["ffns"][i]["lin1"]["weight"], lin1_bias=params["ffns"][i]["lin1"]["bias"],
                lin2_weight=params["ffns"][i]["lin2"]["weight"], lin2_bias=params["ffns"][i]["lin2"]["bias"],
                norm1=(params["layer_norm1"][i]["weight"], params["layer_norm1"][i]["bias"]),
                norm2=(params["layer_norm2"][i]["weight"], params["layer_norm2"][i]["bias"]),
            ))
        self.params = params
        # subtle: the work buffers are per thread. Shared, threads calling one model at once would overwrite each
        # other's activations (tests/test_threads.py catches it); a lock would make them queue.
        self._per_thread = threading.local()

    def buffer(self, name: str, *shape: int) -> np.ndarray:
        """A float32 work array of this shape, reused across the calls of the current thread (its storage grows
        when a call needs more)."""
        buffers = self._per_thread.__dict__.setdefault("buffers", {})
        size = math.prod(shape)
        storage = buffers.get(name)
        if storage is None or storage.size < size:
            storage = buffers[name] = huge_page_array(max(size, 1024))
        return storage[:size].reshape(shape)


HUGE_PAGE = 2 << 20


def huge_page_array(size: int) -> np.ndarray:
    """An uninitialised float32 array of ``size``, in 2 MB pages where the OS offers them (Linux's transparent huge
    pages), else an ordinary ``np.empty``.

    Why: a matrix product reads the activations [depth, tokens] down their columns, one row every ``4 x tokens``
    bytes: with 1,024 tokens that is a new 4 kB page at every step, and the CPU's table of recently used pages (the
    TLB) overflows. With 2 MB pages it does not (the products at 1,024 tokens ran ~15 % faster).
    """
    nbytes = size * 4
    if nbytes < HUGE_PAGE or not hasattr(mmap, "MADV_HUGEPAGE"):
        return np.empty(size, dtype=np.float32)
    mapped = mmap.mmap(-1, nbytes + HUGE_PAGE)  # anonymous; freed when the last array using it is
    try:
        mapped.madvise(mmap.MADV_HUGEPAGE)
    except OSError:  # huge pages turned off: ordinary pages, same array
        pass
    raw = np.frombuffer(mapped, dtype=np.uint8)
    skip = -raw.ctypes.data % HUGE_PAGE  # start on a 2 MB boundary, so the first page can be a huge one
    return raw[skip:skip + nbytes].view(np.float32)


def prepare(params: dict, config) -> Prepared:
    """The fast path's state for one model."""
    return Prepared(params, config)


def packable(config, mask: np.ndarray) -> bool:
    """Can this padding mask [batch, seq] be packed without changing a single real output?"""
    if not config.causal:
        return True  # every query sees exactly the real keys of its row, wherever they are
    lengths = mask.sum(axis=1)
    return bool((mask == (np.arange(mask.shape[1])[None, :] < lengths[:, None])).all())


def encode(prepared: Prepared, config, mask, input_ids=None, inputs_embeds=None, position_ids=None, langs=None,
           token_type_ids=None, output_hidden_states=False):
    """-> (last hidden state [batch, seq, dim], hidden states or None), equal to ``model.encode``'s at the real
    positions and zero at the padded ones. ``mask`` [batch, seq] bool: the real tokens (``layers.padding_mask``).
    """
    batch, seq_len = mask.shape
    lengths = mask.sum(axis=1)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    n_tokens = int(lengths.sum())
    full = n_tokens == batch * seq_len
    rows, cols = (None, None) if full else np.nonzero(mask)  # row-major: sequence by sequence, in order

    def packed(array):  # [batch, seq, ...] -> [tokens, ...]
        if array is None:
            return None
        return array.reshape(batch * seq_len, *array.shape[2:]) if full else array[rows, cols]

    def unpacked(x):  # [dim, tokens] -> a new [batch, seq, dim]
        return _unpack(x, batch, seq_len, full, rows, cols)

    if position_ids is None:
        positions = np.tile(np.arange(seq_len), batch) if full else cols
    else:
        positions = packed(position_ids)
    x = embed(prepared, config, packed(input_ids), packed(inputs_embeds), positions, packed(langs),
              packed(token_type_ids))
    dim = config.emb_dim
    work = dict(qkv=prepared.buffer("qkv", 3 * dim, n_tokens), context=prepared.buffer("context", dim, n_tokens),
                projected=prepared.buffer("projected", dim, n_tokens),
                hidden=prepared.buffer("hidden", config.hidden_dim, n_tokens),
                normed=prepared.buffer("normed", dim, n_tokens) if config.pre_norm else x)  # post-norm: x itself
    hidden_states = []
    tiles = gemm.use_tiles(config.n_layers * n_tokens * (4 * dim * dim + 2 * dim * config.hidden_dim))
    for layer in prepared.layers:
        if output_hidden_states:
            hidden_states.append(unpacked(x))
        transformer_layer(x, layer, config, starts, lengths, work, prepared.buffer, tiles)
    last = unpacked(x)
    if output_hidden_states:
        hidden_states.append(last)
    return last, (tuple(hidden_states) if output_hidden_states else None)


def embed(prepared: Prepared, config, input_ids, inputs_embeds, positions, langs, token_type_ids):
    """The embedding layer on packed tokens ([tokens] ids, or [tokens, dim] embeds) -> x [dim, tokens] (a work
    buffer): the readable ``layers.embedding_sum``, transposed, then LayerNorm in place."""
    params = prepared.params
    summed = layers.embedding_sum(params, input_ids, inputs_embeds, positions, langs, token_type_ids)
    x = kernels.transpose(summed, prepared.buffer("x", config.emb_dim, summed.shape[0]))
    norm = params["layer_norm_emb"]
    return kernels.layer_norm(x, norm["weight"], norm["bias"], np.float32(config.layer_norm_eps), out=x)


def transformer_layer(x, layer: dict, config, starts, lengths, work: dict, buffer=None, tiles=True):
    """One layer, in place on x [dim, tokens] (packed, feature-major): attention, then the feed-forward block.

    ``layer``: one entry of ``Prepared.layers``; ``work``: the [rows, tokens] buffers "qkv", "context", "projected",
    "hidden" and "normed" (x itself for post-norm); ``buffer``: where attention gets its scratch scores; ``tiles``:
    products and attention on the tiled kernel where the CPU has it, else on BLAS (``gemm.use_tiles``).
    """
    eps = np.float32(config.layer_norm_eps)
    qkv, normed, projected, hidden = work["qkv"], work["normed"], work["projected"], work["hidden"]
    # attention
    if config.pre_norm:
        kernels.layer_norm(x, *layer["norm1"], eps, out=normed)
    dim = config.emb_dim
    # three [dim, dim] @ [dim, tokens] products, into the row blocks of qkv
    gemm.matmuls(layer["qkv_weights"], normed, (qkv[:dim], qkv[dim:2 * dim], qkv[2 * dim:]), tiles)
    kernels.add_bias(qkv, layer["qkv_bias"])
    if tiles and gemm.LANES:
        tiled_attention.packed_attention(qkv, starts, lengths, config.n_heads, config.causal, work["context"])
    else:
        packed_attention(qkv, starts, lengths, config.n_heads, config.causal, work["context"], buffer)
    gemm.matmul(layer["out_weight"], work["context"], projected, tiles)
    if config.pre_norm:
        kernels.add_residual(x, projected, layer["out_bias"])
        kernels.layer_norm(x, *layer["norm2"], eps, out=normed)
    else:
        kernels.residual_layer_norm(x, projected, layer["out_bias"], *layer["norm1"], eps, out=x)
    # feed-forward
    gemm.matmul(layer["lin1_weight"], normed, hidden, tiles)
    if config.gelu_activation:
        kernels.bias_gelu(hidden, layer["lin1_bias"])
    else:
        hidden += layer["lin1_bias"][:, None]
        np.maximum(hidden, 0, out=hidden)
    gemm.matmul(layer["lin2_weight"], hidden, projected, tiles)
    if config.pre_norm:
        kernels.add_residual(x, projected, layer["lin2_bias"])
    else:
        kernels.residual_layer_norm(x, projected, layer["lin2_bias"], *layer["norm2"], eps, out=x)
    return x


def _unpack(x, batch, seq_len, full, rows, cols):
    """Packed, feature-major [dim, tokens] -> a new [batch, seq, dim] array, zeros at the padded positions."""
    tokens = kernels.transpose(x, np.empty(x.shape[::-1], dtype=np.float32))  # new: x is reused by the next layer
    if full:
        return tokens.reshape(batch, seq_len, -1)
    out = np.zeros((batch, seq_len, x.shape[0]), dtype=np.float32)
    out[rows, cols] = tokens
    return out


def packed_attention(qkv, starts, lengths, n_heads, causal, context, buffer=None):
    """context [dim, tokens] <- attention of each packed sequence over its own tokens, every head.

    qkv [3 dim, tokens] feature-major (queries, then keys, then values); sequence s owns the columns
    starts[s] .. starts[s] + lengths[s]. Per sequence: two BLAS products around the Numba softmax. ``buffer(name,
    *shape)`` hands out the scores' scratch array (``Prepared.buffer``; a new array by default). Why not one Numba
    kernel over all the sequences: it was slower at every length measured, the shortest included (see
    benchmarks/README.md), and BLAS is far ahead on long ones.
    """
    buffer = buffer or (lambda name, *shape: np.empty(shape, dtype=np.float32))
    dim = context.shape[0]
    head_dim = dim // n_heads
    scale = 1.0 / math.sqrt(head_dim)
    for start, length in zip(starts.tolist(), lengths.tolist()):
        if length == 0:
            continue
        end = start + length
        # each head is a [head_dim, length] block of rows: [dim, length] -> [heads, head_dim, length] (views)
        q, k, v = (qkv[part * dim:(part + 1) * dim, start:end].reshape(n_heads, head_dim, length)
                   for part in range(3))
        scores = buffer("scores", n_heads, length, length)
        np.matmul(q.transpose(0, 2, 1), k, out=scores)  # [heads, length, head_dim] @ [heads, head_dim, length]
        kernels.scaled_softmax(scores, scale, causal)
        out = context[:, start:end].reshape(n_heads, head_dim, length)
        np.matmul(v, scores.transpose(0, 2, 1), out=out)  # [heads, head_dim, keys] @ [heads, keys, queries]
