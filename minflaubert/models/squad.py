"""The SQuAD (2.0) head of XLNet that ``FlaubertForQuestionAnswering`` uses: its weights, its training loss, and the
beam search that proposes answer spans at inference.

A start logit per token; an end logit per token *given a start* (the start token's state is an input); and an
"is there no answer?" logit from the start state and the CLS token's. Training teaches the end on the true start;
inference keeps the ``start_n_top`` best starts and, for each, the ``end_n_top`` best ends.
"""
from __future__ import annotations

import numpy as np

from ..nn.layers import layer_norm, linear, softmax
from .losses import binary_cross_entropy_with_logits, cross_entropy

MASKED_LOGIT = np.float32(1e30)  # what the SQuAD head subtracts at p_mask positions (large, but not -inf)


def mask_logits(x, p_mask):  # [batch, seq, ...], p_mask broadcastable -> same
    """x (1 - p_mask) - 1e30 p_mask: positions with p_mask = 1 (question, padding...) can never be chosen."""
    return x if p_mask is None else x * (1 - p_mask) - MASKED_LOGIT * p_mask


def start_logits(hidden, p, p_mask=None):  # [batch, seq, dim] -> [batch, seq]
    """Score each position as the start of the answer (p_mask positions never win)."""
    return mask_logits(linear(hidden, p["dense"])[..., 0], p_mask)


def end_logits(hidden, start_states, p, eps, p_mask=None):  # [..., seq, dim] x 2 -> [..., seq]
    """Score each position as the end of a span that starts at the token whose state is ``start_states``."""
    x = np.tanh(linear(np.concatenate([hidden, start_states], axis=-1), p["dense_0"]))
    return mask_logits(linear(layer_norm(x, p["LayerNorm"], eps), p["dense_1"])[..., 0], p_mask)


def answer_class_logits(hidden, start_states, p, cls_index=None):  # [batch, seq, dim], [batch, dim] -> [batch]
    """SQuAD 2.0's "is there no answer?" logit, from the start state and the CLS token's state (default: last)."""
    batch = hidden.shape[0]
    cls_state = hidden[:, -1] if cls_index is None else hidden[np.arange(batch), cls_index]  # [batch, dim]
    x = np.tanh(linear(np.concatenate([start_states, cls_state], axis=-1), p["dense_0"]))
    return linear(x, p["dense_1"])[..., 0]


def top_k(x, k, axis):  # [..., n, ...] -> values, indices: [..., k, ...], largest first
    """torch.topk: the k largest values along ``axis`` and where they are.

    subtle: a stable sort of -x keeps equal values in index order, the order torch.topk gives on CPU.
    """
    indices = np.take(np.argsort(-x, axis=axis, kind="stable"), np.arange(k), axis=axis)
    return np.take_along_axis(x, indices, axis=axis), indices


def squad_loss(hidden, p, config, start_positions, end_positions, cls_index=None, is_impossible=None,
               p_mask=None):  # [batch, seq, dim], [batch] x 2 -> scalar
    """Training: cross-entropy of the true start, and of the true end given the true start (teacher forcing).

    With ``cls_index`` and ``is_impossible``, half the answer-class BCE is added (XLNet's weighting).
    """
    batch = hidden.shape[0]
    starts = start_logits(hidden, p["start_logits"], p_mask)
    true_start = np.broadcast_to(hidden[np.arange(batch), start_positions][:, None], hidden.shape)  # [b, s, d]
    ends = end_logits(hidden, true_start, p["end_logits"], config.layer_norm_eps, p_mask)
    loss = (cross_entropy(starts, start_positions) + cross_entropy(ends, end_positions)) / 2
    if cls_index is not None and is_impossible is not None:
        cls_logits = answer_class_logits(hidden, true_start[:, 0], p["answer_class"], cls_index)
        loss += 0.5 * binary_cross_entropy_with_logits(cls_logits, is_impossible)
    return np.float32(loss)


def squad_beam_search(hidden, p, config, p_mask=None, cls_index=None) -> dict:  # [batch, seq, dim] -> fields
    """Inference: the start_n_top best starts, and for each the end_n_top best ends.

    subtle: transformers calls them ``*_log_probs`` but they are softmax probabilities; we return the same.
    subtle: ``end_top_*`` [batch, end_n_top * start_n_top] are flattened end-major: entry e * start_n_top + s is
    the e-th best end for the s-th best start.
    """
    batch, seq_len, dim = hidden.shape
    start_probs = softmax(start_logits(hidden, p["start_logits"], p_mask))  # [b, s]
    start_top_probs, start_top_index = top_k(start_probs, config.start_n_top, axis=-1)  # [b, k]
    k = config.start_n_top
    start_states = hidden[np.arange(batch)[:, None], start_top_index]  # [b, k, d]
    start_states = np.broadcast_to(start_states[:, None], (batch, seq_len, k, dim))  # [b, s, k, d]
    candidates = np.broadcast_to(hidden[:, :, None], (batch, seq_len, k, dim))  # [b, s, k, d]
    ends = end_logits(candidates, start_states, p["end_logits"], config.layer_norm_eps,
                      None if p_mask is None else p_mask[:, :, None])  # [b, s, k]
    end_probs = softmax(ends, axis=1)  # over positions, for each start
    end_top_probs, end_top_index = top_k(end_probs, config.end_n_top, axis=1)  # [b, end_n_top, k]
    expected_start = np.einsum("bsd,bs->bd", hidden, start_probs)  # [b, d]: the start state, averaged
    return dict(start_top_log_probs=start_top_probs, start_top_index=start_top_index,
                end_top_log_probs=end_top_probs.reshape(batch, -1), end_top_index=end_top_index.reshape(batch, -1),
                cls_logits=answer_class_logits(hidden, expected_start, p["answer_class"], cls_index))


def squad_shapes(config) -> dict[str, tuple]:
    """The SQuAD head's weights by checkpoint name: the start, end and answer-class layers."""
    dim = config.emb_dim
    return {
        "qa_outputs.start_logits.dense.weight": (1, dim), "qa_outputs.start_logits.dense.bias": (1,),
        "qa_outputs.end_logits.dense_0.weight": (dim, 2 * dim), "qa_outputs.end_logits.dense_0.bias": (dim,),
        "qa_outputs.end_logits.LayerNorm.weight": (dim,), "qa_outputs.end_logits.LayerNorm.bias": (dim,),
        "qa_outputs.end_logits.dense_1.weight": (1, dim), "qa_outputs.end_logits.dense_1.bias": (1,),
        "qa_outputs.answer_class.dense_0.weight": (dim, 2 * dim), "qa_outputs.answer_class.dense_0.bias": (dim,),
        "qa_outputs.answer_class.dense_1.weight": (1, dim),
    }
