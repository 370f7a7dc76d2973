"""The fast encoder: the same forward pass as ``model.encode``, arranged for speed instead of for reading.

What changes (and why), against the readable path in ``model.py`` + ``layers.py``:

* **Only real tokens are computed.** The tokens of every sequence are *packed* one after another, so padding
  never goes through a linear layer, the FFN or attention; each sequence attends to its own tokens only. Padded
  positions are written back as zeros at the end, as the reference keeps them.
* **Activations are feature-major**: [features, tokens], the transpose of the readable path's [tokens, features].
  A linear layer is then ``W @ X`` instead of ``X @ W.T``: the same numbers, but OpenBLAS computes them faster
  in that orientation (measured, the linear-layer GEMMs of one flaubert_base forward pass, 2 cores: 16 tokens
  28 -> 25 ms with OpenBLAS's AVX2 kernels and 32 -> 19 ms with its AVX-512 ones; 128 tokens 113 -> 105 and
  74 -> 54 ms; 512 tokens 379 -> 368 and 217 -> 191 ms). LayerNorm then normalises columns, and attention reads
  each head as a [head_dim, tokens] block of rows.
* **BLAS for every matrix product** (``np.matmul(..., out=)`` into preallocated buffers), far faster than any
  loop we could write. Queries, keys and values land one under the other in one [3 dim, tokens] buffer (three
  GEMMs into its row blocks, or one against a fused weight with ``prepare(..., fuse_qkv=True)``: it costs a copy).
  Attention too: per sequence, its scores and its weighted sum are two batched products over the heads.
* **Fused elementwise passes** (Numba, ``kernels.py``): bias + GELU in place, bias + residual in place (then
  LayerNorm in place), attention's scale + mask + softmax in one pass.
* **Preallocated buffers**, reused from call to call; float32 everywhere. Each thread has its own (one model
  may serve many threads at once: shared scratch arrays would mix their activations).

It applies when no key/value ``cache`` is used, attention maps are not asked for, and the padding mask can be
packed (any mask for a bidirectional model; right padding for a causal one, whose reference attends to padding
keys otherwise). ``model.encode`` falls back to the readable path in every other case.
"""
from __future__ import annotations

import math
import threading

import numpy as np

from . import kernels, layers


class Prepared:
    """Per-model state of the fast path: fused weights (built once, then only read) and reusable work buffers
    (one set per thread)."""

    def __init__(self, params: dict, config, fuse_qkv: bool = False):
        self.config = config
        self.layers = []
        for i in range(config.n_layers):
            attention = params["attentions"][i]
            q, k, v = attention["q_lin"], attention["k_lin"], attention["v_lin"]
            weights = [q["weight"], k["weight"], v["weight"]]
            self.layers.append(dict(
                # one [3 dim, dim] GEMM (a copy of the three matrices) or three into column blocks (no copy)
                qkv_weights=[np.concatenate(weights)] if fuse_qkv else weights,
                qkv_bias=np.concatenate([q["bias"], k["bias"], v["bias"]]),
                out_weight=attention["out_lin"]["weight"], out_bias=attention["out_lin"]["bias"],
                lin1_weight=params["ffns"][i]["lin1"]["weight"], lin1_bias=params["ffns"][i]["lin1"]["bias"],
                lin2_weight=params["ffns"][i]["lin2"]["weight"], lin2_bias=params["ffns"][i]["lin2"]["bias"],
                norm1=(params["layer_norm1"][i]["weight"], params["layer_norm1"][i]["bias"]),
                norm2=(params["layer_norm2"][i]["weight"], params["layer_norm2"][i]["bias"]),
            ))
        self.params = params
        # subtle: the work buffers are per thread. When they were shared, 8 threads calling one model got wrong
        # outputs on 19-23 calls of 24 (each overwrote the others' activations); a lock would make them queue.
        self._per_thread = threading.local()

    def buffer(self, name: str, *shape: int) -> np.ndarray:
        """A float32 work array of this shape, reused across the calls of the current thread (its storage grows
        when a call needs more)."""
        buffers = self._per_thread.__dict__.setdefault("buffers", {})
        size = math.prod(shape)
        storage = buffers.get(name)
        if storage is None or storage.size < size:
            storage = buffers[name] = np.empty(max(size, 1024), dtype=np.float32)
        return storage[:size].reshape(shape)


def prepare(params: dict, config, fuse_qkv: bool = False) -> Prepared:
    """The fast path's state for one model. ``fuse_qkv`` builds one [3 dim, dim] q/k/v weight per layer (one GEMM
    instead of three: a little faster for short inputs, but 85 MB more resident memory for flaubert_base)."""
    return Prepared(params, config, fuse_qkv)


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
    dim, eps, n_heads = config.emb_dim, np.float32(config.layer_norm_eps), config.n_heads
    params = prepared.params
    lengths = mask.sum(axis=1)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    n_tokens = int(lengths.sum())
    full = n_tokens == batch * seq_len
    rows, cols = (None, None) if full else np.nonzero(mask)  # row-major: sequence by sequence, in order

    def packed(array):  # [batch, seq, ...] -> [tokens, ...]
        return array.reshape(batch * seq_len, *array.shape[2:]) if full else array[rows, cols]

    def packed_or_none(array):
        return None if array is None else packed(array)

    if position_ids is None:
        positions = np.tile(np.arange(seq_len), batch) if full else cols
    else:
        positions = packed(position_ids)
    x = prepared.buffer("x", dim, n_tokens)  # feature-major from here on: [dim, tokens]
    # embeddings: the readable sum itself, on the packed tokens ([tokens] ids -> [tokens, dim]), then LayerNorm
    summed = layers.embedding_sum(params, packed_or_none(input_ids), packed_or_none(inputs_embeds), positions,
                                  packed_or_none(langs), packed_or_none(token_type_ids))
    kernels.transpose(summed, x)
    kernels.layer_norm(x, params["layer_norm_emb"]["weight"], params["layer_norm_emb"]["bias"], eps, out=x)

    hidden_states = []
    qkv = prepared.buffer("qkv", 3 * dim, n_tokens)
    context = prepared.buffer("context", dim, n_tokens)
    projected = prepared.buffer("projected", dim, n_tokens)
    hidden = prepared.buffer("hidden", config.hidden_dim, n_tokens)
    normed = prepared.buffer("normed", dim, n_tokens) if config.pre_norm else x
    gelu = config.gelu_activation
    for layer in prepared.layers:
        if output_hidden_states:
            hidden_states.append(_unpack(x, batch, seq_len, full, rows, cols))
        # attention
        if config.pre_norm:
            kernels.layer_norm(x, *layer["norm1"], eps, out=normed)
        height = qkv.shape[0] // len(layer["qkv_weights"])
        for part, weight in enumerate(layer["qkv_weights"]):
            np.matmul(weight, normed, out=qkv[part * height:(part + 1) * height])  # [height, dim] @ [dim, tokens]
        kernels.add_bias(qkv, layer["qkv_bias"])
        packed_attention(qkv, starts, lengths, n_heads, config.causal, context, prepared.buffer)
        np.matmul(layer["out_weight"], context, out=projected)
        if config.pre_norm:
            kernels.add_residual(x, projected, layer["out_bias"])
            kernels.layer_norm(x, *layer["norm2"], eps, out=normed)
        else:
            kernels.residual_layer_norm(x, projected, layer["out_bias"], *layer["norm1"], eps, out=x)
        # feed-forward
        np.matmul(layer["lin1_weight"], normed, out=hidden)
        if gelu:
            kernels.bias_gelu(hidden, layer["lin1_bias"])
        else:
            hidden += layer["lin1_bias"][:, None]
            np.maximum(hidden, 0, out=hidden)
        np.matmul(layer["lin2_weight"], hidden, out=projected)
        if config.pre_norm:
            kernels.add_residual(x, projected, layer["lin2_bias"])
        else:
            kernels.residual_layer_norm(x, projected, layer["lin2_bias"], *layer["norm2"], eps, out=x)
    last = _unpack(x, batch, seq_len, full, rows, cols)
    if output_hidden_states:
        hidden_states.append(last)
    return last, (tuple(hidden_states) if output_hidden_states else None)


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
    *shape)`` hands out the scores' scratch array (``Prepared.buffer``; a new array by default). A single Numba
    kernel over all the sequences was slower at every length we measured, 8 tokens included (19 against 13 us, 12
    heads), and BLAS is far ahead on long ones.
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
