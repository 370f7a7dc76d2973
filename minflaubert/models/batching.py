"""Batching token ids for the encoder: texts of similar lengths together, each batch right-padded to a rectangle.

The pipelines and ``FlaubertModel.encode`` both run many texts this way; the tokenizer's own padding
(``tokenization/batching.py``) is for one call's texts, this is for a long list cut into batches.
"""
from __future__ import annotations

import numpy as np


def batches_by_length(lengths: list[int], size: int) -> list[list[int]]:
    """Indices of the inputs, shortest first, cut into batches of ``size``: each batch is then padded to a length
    close to that of its own inputs rather than to the longest input of all (padding is computation spent on
    nothing)."""
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    return [order[i:i + size] for i in range(0, len(order), size)]


def pad(rows: list[list], value) -> np.ndarray:
    """Right-pad lists of numbers to the longest one: [batch, longest]."""
    longest = max(len(row) for row in rows)
    return np.array([list(row) + [value] * (longest - len(row)) for row in rows])


def padded_batch(rows: list[list[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Token-id rows -> (input_ids [batch, longest] right-padded with ``pad_id``, attention_mask [batch, longest]:
    1 on the rows' own tokens, 0 on the padding)."""
    return pad(rows, pad_id), pad([[1] * len(row) for row in rows], 0)
