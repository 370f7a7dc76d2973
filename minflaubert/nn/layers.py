"""The layers of FlauBERT as plain NumPy functions: the lesson, and the oracle the fast kernels are tested against.

Each function is named for the math it does and carries a shape comment. Parameters come as dictionaries whose
keys mirror the checkpoint: ``p["q_lin"]["weight"]`` is the tensor saved as ``attentions.0.q_lin.weight``.
Linear weights keep PyTorch's layout ``[out, in]``, so a linear layer is ``x @ W.T + b``.

Everything runs in float32, like the reference; only GELU's ``erf`` is evaluated in float64 (NumPy has no erf).
"""
from __future__ import annotations

import math

import numpy as np

# The value transformers writes into masked attention scores (not -inf: a fully masked row then stays finite).
MASKED_SCORE = np.finfo(np.float32).min


def linear(x, p):  # [..., in] -> [..., out]
    """x @ W.T + b, the weight in PyTorch's [out, in] layout (the bias is optional)."""
    y = x @ p["weight"].T
    return y + p["bias"] if "bias" in p else y


def layer_norm(x, p, eps):  # [..., dim] -> [..., dim]
    """Normalise each vector to mean 0 and variance 1, then scale and shift it (the affine part)."""
    mean = x.mean(axis=-1, keepdims=True)
    variance = np.square(x - mean).mean(axis=-1, keepdims=True)  # biased variance, as PyTorch
    return (x - mean) / np.sqrt(variance + eps) * p["weight"] + p["bias"]


def residual_layer_norm(x, y, p, eps):  # [..., dim], [..., dim] -> [..., dim]
    """The post-norm residual step in one: LayerNorm(x + y). (The fast path adds y's bias with the residual.)"""
    return layer_norm(x + y, p, eps)


_erf = np.frompyfunc(math.erf, 1, 1)


def gelu(x):  # [...] -> [...]
    """The exact GELU, x * Phi(x), with Phi the standard normal CDF written with erf (not the tanh approximation)."""
    return (0.5 * x * (1.0 + _erf(x.astype(np.float64) / math.sqrt(2.0)).astype(np.float64))).astype(x.dtype)


def relu(x):  # [...] -> [...]
    """max(x, 0), elementwise."""
    return np.maximum(x, 0)


def softmax(x, axis=-1):  # [...] -> [...]
    """exp(x) / sum(exp(x)), with the row maximum subtracted first so exp never overflows."""
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def sinusoidal_position_table(n_positions, dim):  # -> [n_positions, dim]
    """The fixed position code of "Attention is all you need": sin on even columns, cos on odd ones.

    Column pair (2i, 2i+1) turns at the frequency 1 / 10000^(2i/dim). FlauBERT checkpoints store the table as a
    weight, so it is only needed to initialise a model from a config.
    """
    positions = np.arange(n_positions, dtype=np.float64)[:, None]
    frequencies = 1.0 / np.power(10000.0, 2 * (np.arange(dim) // 2) / dim)
    angles = positions * frequencies
    table = np.where(np.arange(dim) % 2 == 0, np.sin(angles), np.cos(angles))
    return table.astype(np.float32)


# ----------------------------------------------------------------------------------------------------- masks
def padding_mask(batch, seq_len, attention_mask=None, lengths=None, input_ids=None, pad_index=None):
    """Which positions hold real tokens: [batch, seq] bool.

    The reference's order of preference: an explicit ``attention_mask``; else ``lengths``; else count the non-pad ids
    of each row. subtle: counting assumes right padding: a pad id in the middle shortens the row from the end.
    """
    if attention_mask is not None:
        return attention_mask != 0
    if lengths is None:
        if input_ids is None:
            return np.ones((batch, seq_len), dtype=bool)
        lengths = (input_ids != pad_index).sum(axis=1)
    return np.arange(seq_len)[None, :] < lengths[:, None]


def attention_mask_matrix(mask, causal):  # [batch, seq] -> [batch, seq (queries), seq (keys)]
    """May query i look at key j? Bidirectional: if j is a real token. Causal: if j <= i.

    subtle: the causal triangle ignores padding entirely, as in the reference; padded rows are zeroed later anyway.
    """
    batch, seq_len = mask.shape
    if causal:
        triangle = np.tril(np.ones((seq_len, seq_len), dtype=bool))
        return np.broadcast_to(triangle, (batch, seq_len, seq_len))
    return np.broadcast_to(mask[:, None, :], (batch, seq_len, seq_len))


# ------------------------------------------------------------------------------------------------ attention
def split_heads(x, n_heads):  # [batch, seq, dim] -> [batch, heads, seq, head_dim]
    """Cut each vector into n_heads slices of head_dim = dim / n_heads, and bring the heads axis forward."""
    batch, seq_len, dim = x.shape
    return x.reshape(batch, seq_len, n_heads, dim // n_heads).transpose(0, 2, 1, 3)


def merge_heads(x):  # [batch, heads, seq, head_dim] -> [batch, seq, dim]
    """The inverse of ``split_heads``: each token's head slices side by side again."""
    batch, n_heads, seq_len, head_dim = x.shape
    return x.transpose(0, 2, 1, 3).reshape(batch, seq_len, n_heads * head_dim)


def scaled_dot_product_attention(q, k, v, mask):
    """softmax(q k^T / sqrt(d)) v, where masked scores are replaced by the lowest float32 first.

    q [batch, heads, q_len, d], k and v [batch, heads, k_len, d], mask [batch, q_len, k_len] (True = may attend)
    -> context [batch, heads, q_len, d], weights [batch, heads, q_len, k_len]
    """
    scores = (q / np.float32(math.sqrt(q.shape[-1]))) @ k.transpose(0, 1, 3, 2)
    scores = np.where(mask[:, None, :, :], scores, MASKED_SCORE)
    weights = softmax(scores, axis=-1)
    return weights @ v, weights


def multi_head_attention(x, mask, p, n_heads, attend=scaled_dot_product_attention, cache=None):
    """Self-attention over ``n_heads`` heads: project to queries, keys and values, attend, project back.

    x [batch, seq, dim], mask [batch, seq, k_len] -> ([batch, seq, dim], weights [batch, heads, seq, k_len]).
    ``cache`` (a dict, for incremental causal decoding) holds this layer's keys and values of earlier positions:
    the new ones are appended to it, so k_len = cached + seq.
    """
    q = split_heads(linear(x, p["q_lin"]), n_heads)
    k = split_heads(linear(x, p["k_lin"]), n_heads)
    v = split_heads(linear(x, p["v_lin"]), n_heads)
    if cache is not None:
        if "k" in cache:
            k = np.concatenate([cache["k"], k], axis=2)
            v = np.concatenate([cache["v"], v], axis=2)
        cache["k"], cache["v"] = k, v
    context, weights = attend(q, k, v, mask)
    return linear(merge_heads(context), p["out_lin"]), weights


def feed_forward(x, p, activation):  # [batch, seq, dim] -> [batch, seq, dim]
    """Two linear layers with a non-linearity between: dim -> 4 dim -> dim."""
    return linear(activation(linear(x, p["lin1"])), p["lin2"])


# -------------------------------------------------------------------------------------------------- layers
def post_norm_layer(x, mask, p, n_heads, eps, attend, activation, cache=None):
    """The original Transformer layer (FlauBERT small and base): residual add, then LayerNorm, twice.

    x [batch, seq, dim] -> ([batch, seq, dim], attention weights)
    """
    attention, weights = multi_head_attention(x, mask, p["attention"], n_heads, attend, cache)
    x = layer_norm(x + attention, p["layer_norm1"], eps)
    x = layer_norm(x + feed_forward(x, p["ffn"], activation), p["layer_norm2"], eps)
    return x, weights


def pre_norm_layer(x, mask, p, n_heads, eps, attend, activation, cache=None):
    """The pre-norm layer (FlauBERT large): LayerNorm first, and the residual path never normalised.

    x [batch, seq, dim] -> ([batch, seq, dim], attention weights). subtle: no LayerNorm follows the last layer.
    """
    attention, weights = multi_head_attention(layer_norm(x, p["layer_norm1"], eps), mask, p["attention"], n_heads,
                                              attend, cache)
    x = x + attention
    x = x + feed_forward(layer_norm(x, p["layer_norm2"], eps), p["ffn"], activation)
    return x, weights


# -------------------------------------------------------------------------------------------------- embeddings
def embedding_sum(p, input_ids=None, inputs_embeds=None, position_ids=None, langs=None, token_type_ids=None):
    """Sum the word (or given), position, language and token-type vectors: [batch, seq] -> [batch, seq, dim].

    subtle: token types are looked up in the *word* table (there is no separate one), as the reference does.
    """
    x = p["embeddings"]["weight"][input_ids] if inputs_embeds is None else inputs_embeds
    x = x + p["position_embeddings"]["weight"][position_ids]
    if langs is not None and "lang_embeddings" in p:
        x = x + p["lang_embeddings"]["weight"][langs]
    if token_type_ids is not None:
        x = x + p["embeddings"]["weight"][token_type_ids]
    return x


def embed(p, eps, input_ids=None, inputs_embeds=None, position_ids=None, langs=None, token_type_ids=None):
    """The embedding layer: ``embedding_sum``, then LayerNorm. [batch, seq] -> [batch, seq, dim]."""
    return layer_norm(embedding_sum(p, input_ids, inputs_embeds, position_ids, langs, token_type_ids),
                      p["layer_norm_emb"], eps)
