"""The vocabulary tables as transformers users reach them, and growing or shrinking the vocabulary.

``get_input_embeddings()`` returns the word-embedding table as an :class:`Embedding`, and the language model's
``get_output_embeddings()`` its projection as a :class:`Linear`: the attribute names of ``torch.nn.Embedding`` and
``torch.nn.Linear`` (``weight``, ``bias``, ``num_embeddings``...), with NumPy arrays where torch has tensors. The
arrays are the model's own, made read-only: the fast path keeps its own packed copy of the weights, so an array
changed in place would silently not be used. ``resize_token_embeddings`` is the way to change the vocabulary.

``added_rows`` draws the rows a larger vocabulary adds, as transformers 5.23 draws them.
"""
from __future__ import annotations

import numpy as np

from ..nn.layers import linear
from .inputs import as_indices

# transformers draws new rows from a normal with the old rows' covariance times this: in effect, their mean.
MEAN_RESIZING_SCALE = 1e-9


def read_only(array: np.ndarray) -> np.ndarray:
    """A view of ``array`` that refuses writes (ValueError: assignment destination is read-only)."""
    view = array.view()
    view.flags.writeable = False
    return view


class Embedding:
    """A lookup table, named as ``torch.nn.Embedding``: ``weight`` [num_embeddings, embedding_dim] (read-only)."""

    def __init__(self, weight: np.ndarray, padding_idx: int | None = None):
        self.weight, self.padding_idx = read_only(weight), padding_idx

    @property
    def num_embeddings(self) -> int:
        return self.weight.shape[0]

    @property
    def embedding_dim(self) -> int:
        return self.weight.shape[1]

    def __call__(self, input_ids) -> np.ndarray:  # [...] -> [..., embedding_dim]
        """The rows of ``input_ids``, as the module's forward."""
        ids = np.asarray(input_ids)
        return self.weight[as_indices(ids, "input_ids", ids.ndim, 0, self.num_embeddings)]

    def __repr__(self):
        return f"Embedding({self.num_embeddings}, {self.embedding_dim}, padding_idx={self.padding_idx})"


class Linear:
    """A linear layer, named as ``torch.nn.Linear``: ``weight`` [out_features, in_features], ``bias`` [out_features]
    or None (read-only)."""

    def __init__(self, weight: np.ndarray, bias: np.ndarray | None = None):
        self.weight, self.bias = read_only(weight), None if bias is None else read_only(bias)

    @property
    def out_features(self) -> int:
        return self.weight.shape[0]

    @property
    def in_features(self) -> int:
        return self.weight.shape[1]

    def __call__(self, x) -> np.ndarray:  # [..., in_features] -> [..., out_features]
        """x @ weight.T + bias, as the module's forward."""
        return linear(np.asarray(x, dtype=np.float32), {"weight": self.weight} if self.bias is None
                      else {"weight": self.weight, "bias": self.bias})

    def __repr__(self):
        return f"Linear(in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None})"


def added_rows(old: np.ndarray, n_added: int, mean_resizing: bool, std: float,
               rng: np.random.Generator) -> np.ndarray:  # [old rows, ...] -> [n_added, ...]
    """The rows that a vocabulary grown by ``n_added`` tokens appends to ``old`` (a table or a bias), drawn as
    transformers' ``resize_token_embeddings`` draws them.

    ``mean_resizing`` (transformers' default): around the old rows' mean, so that new tokens start as an average
    token (https://nlp.stanford.edu/~johnhew/vocab-expansion.html). A table's rows come from a normal with the old
    rows' mean and 1e-9 times their covariance (just the mean when that covariance is not positive definite), a
    bias's from a normal with its mean and 1e-9 times its standard deviation. Otherwise fresh: N(0, ``std``) for a
    table (std 0: zeros, a bias).
    """
    old = old.astype(np.float64)
    if not mean_resizing:
        return rng.normal(0.0, std, (n_added, *old.shape[1:])).astype(np.float32)
    mean = old.mean(axis=0)
    if old.ndim == 1:
        return rng.normal(mean, MEAN_RESIZING_SCALE * old.std(ddof=1), n_added).astype(np.float32)
    centered = old - mean
    covariance = MEAN_RESIZING_SCALE * (centered.T @ centered) / len(old)  # [dim, dim]
    try:
        lower = np.linalg.cholesky(covariance)
    except np.linalg.LinAlgError:  # fewer distinct rows than dimensions, say: no such normal, so the mean
        return np.tile(mean, (n_added, 1)).astype(np.float32)
    return (mean + rng.standard_normal((n_added, len(mean))) @ lower.T).astype(np.float32)


def resized(old: np.ndarray, n_rows: int, mean_resizing: bool, std: float, rng: np.random.Generator) -> np.ndarray:
    """``old`` cut to its first ``n_rows`` rows, or grown to them with ``added_rows``."""
    if n_rows <= len(old):
        return old[:n_rows].copy()
    return np.concatenate([old, added_rows(old, n_rows - len(old), mean_resizing, std, rng)])
