"""The training losses of the heads, as PyTorch computes them: cross-entropy (with ``ignore_index``), binary
cross-entropy on logits, mean squared error.

A loss is only computed when labels are passed; the numbers match ``torch.nn.functional``'s to float32 precision.
"""
from __future__ import annotations

import numpy as np

IGNORE_INDEX = -100  # labels equal to this take no part in a cross-entropy (PyTorch's default ignore_index)


def log_softmax(x, axis=-1):  # [..., classes] -> [..., classes]
    """log(softmax(x)) computed as x - logsumexp(x), which neither overflows nor takes the log of 0."""
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def nll_loss(log_probs, labels, ignore_index=IGNORE_INDEX):  # [..., classes], [...] -> scalar
    """The mean of -log p(label) over the labels that are not ``ignore_index``.

    subtle: when every label is ignored the mean is 0/0 = nan, which is what PyTorch returns too.
    """
    log_probs = log_probs.reshape(-1, log_probs.shape[-1])
    labels = labels.reshape(-1)
    keep = labels != ignore_index
    if not keep.any():
        return np.float32(np.nan)
    picked = log_probs[np.flatnonzero(keep), labels[keep]]
    return np.float32(-picked.astype(np.float64).mean())


def cross_entropy(logits, labels, ignore_index=IGNORE_INDEX):  # [..., classes], [...] -> scalar
    """torch's cross_entropy: the mean of -log softmax(logits)[label] over the labels not ignored."""
    return nll_loss(log_softmax(logits), labels, ignore_index)


def binary_cross_entropy_with_logits(logits, targets):  # [...], [...] -> scalar
    """mean(-t log sigmoid(x) - (1 - t) log(1 - sigmoid(x))), written as max(x, 0) - x t + log(1 + exp(-|x|)).

    The rewritten form is the same number without ever exponentiating a large positive value.
    """
    x, t = logits.astype(np.float64), targets.astype(np.float64)
    return np.float32((np.maximum(x, 0) - x * t + np.log1p(np.exp(-np.abs(x)))).mean())


def mse(predictions, targets):  # [...], [...] -> scalar
    """The mean squared difference (summed in float64, returned as float32)."""
    return np.float32(np.square(predictions.astype(np.float64) - targets).mean())
