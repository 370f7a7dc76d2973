"""Sentence vectors for a list of texts: ``FlaubertModel.encode(texts)``, the call sentence-transformers users know.

The same numbers as the feature-extraction pipeline with a pooling (``pool``, below, does the pooling for both),
but made for long lists: texts are tokenized once, sorted by length and run in batches of similar lengths
(``batching.batches_by_length``), and each batch is pooled as soon as it is computed, so memory holds one
``(n, emb_dim)`` float32 array plus one batch, never every token vector of every text.
"""
from __future__ import annotations

import sys

import numpy as np
from tqdm.auto import tqdm

from .batching import batches_by_length, padded_batch
from .inputs import check_choice, check_positive

PROGRESS_FROM_BATCHES = 10  # progress=None shows a bar (on a terminal) from this many batches on


def encode_texts(model, tokenizer, texts, batch_size: int = 32, pooling: str = "mean", normalize: bool = False,
                 max_length: int | None = None, progress: bool | None = None) -> np.ndarray:
    """One pooled vector per text: ``(len(texts), emb_dim)`` float32, in the order of ``texts``.

    ``model`` is any FlauBERT model (only its encoder runs). ``max_length`` cuts longer texts (default, and at
    most: what the model and tokenizer accept). ``progress``: True/False, or None for a bar on long lists only.
    """
    texts = check_texts(texts)
    check_choice("pooling", pooling, POOLINGS)
    longest = min(model.config.max_position_embeddings, tokenizer.model_max_length)
    max_length = min(check_positive("max_length", max_length, allow_none=True) or longest, longest)
    ids = [tokenizer(text, truncation=True, max_length=max_length)["input_ids"] for text in texts]
    batches = batches_by_length([len(row) for row in ids], check_positive("batch_size", batch_size))
    if progress is None:  # a bar for long lists only, and only on a terminal (what tqdm's disable=None means)
        disable = None if len(batches) >= PROGRESS_FROM_BATCHES else True
    else:
        disable = not progress
    vectors = np.zeros((len(texts), model.config.emb_dim), np.float32)
    for batch in tqdm(batches, desc="encode", unit="batch", file=sys.stderr, disable=disable):
        rows = [ids[i] for i in batch]
        input_ids, attention_mask = padded_batch(rows, tokenizer.pad_token_id)
        last, _, _ = model.run_encoder(input_ids=input_ids, attention_mask=attention_mask)
        for r, i in enumerate(batch):
            vectors[i] = pool(last[r, :len(rows[r])], pooling, normalize)  # the text's own tokens, no padding
    return vectors


def check_texts(texts) -> list[str]:
    """A list (or other sequence) of strings; a bare string is refused, since iterating it gives characters."""
    if isinstance(texts, str):
        raise TypeError("texts must be a list of strings; for one text, pass [text]")
    texts = list(texts)
    bad = next((text for text in texts if not isinstance(text, str)), None)
    if bad is not None:
        raise TypeError(f"texts must be strings, got a {type(bad).__name__}: {bad!r}"[:200])
    return texts


POOLINGS = ("mean", "first", "max")


def pool(token_vectors: np.ndarray, pooling: str, normalize: bool = False) -> np.ndarray:
    """One text's token vectors [tokens, dim] (its own tokens only, no padding) -> one [dim] sentence vector.

    ``"mean"`` averages them (``<s>`` and ``</s>`` included), ``"first"`` takes the vector of ``<s>``, ``"max"``
    keeps each feature's largest value over the tokens. Which one suits a task is for you to measure: FlauBERT was
    not trained to make sentence vectors, so none of them is "the" sentence embedding. ``normalize`` divides the
    vector by its Euclidean length, so that the dot product of two vectors is their cosine similarity.
    """
    check_choice("pooling", pooling, POOLINGS)
    if pooling == "mean":
        vector = token_vectors.mean(axis=0)
    elif pooling == "first":
        vector = token_vectors[0]
    else:  # "max"
        vector = token_vectors.max(axis=0)
    if normalize:
        vector = vector / max(float(np.linalg.norm(vector)), 1e-12)  # 1e-12: an all-zero vector stays zero
    return vector.astype(np.float32, copy=False)
