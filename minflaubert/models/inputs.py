"""Checking what users pass in, at the public boundary.

Everything a model accepts goes through here once: lists become NumPy arrays, and any value the model can't use
raises a ValueError or TypeError that names the argument and the limit, instead of an IndexError deep inside a layer
or, worse, a silently wrong answer.
"""
from __future__ import annotations

import numpy as np


def as_array(value, name: str) -> np.ndarray:
    """A list, tuple or array -> ndarray, with a clear error for ragged lists."""
    try:
        return np.asarray(value)
    except ValueError:
        raise ValueError(f"{name} must be a rectangular array; rows of different lengths need padding") from None


def as_indices(value, name: str, ndim: int, low: int = 0, high: int | None = None, allow_ignore=False) -> np.ndarray:
    """Integer ids in [low, high) (or -100 where ``allow_ignore``) of exactly ``ndim`` dimensions -> int64 array."""
    array = as_array(value, name)
    if array.dtype.kind not in "iu" or array.dtype == np.bool_:
        if array.size == 0 and array.dtype.kind == "f":  # an empty list arrives as float64
            array = array.astype(np.int64)
        else:
            raise TypeError(f"{name} must hold integers, got dtype {array.dtype}")
    if array.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimension(s), got shape {array.shape}")
    # subtle: check the range before converting to int64, or a uint64 id >= 2**63 would wrap to a negative one.
    checked = array[array != -100] if allow_ignore else array
    if checked.size and (checked.min() < low or (high is not None and checked.max() >= high)):
        bad = checked[(checked < low) | (checked >= high)][0] if high is not None else checked.min()
        limit = f"[{low}, {high})" if high is not None else f">= {low}"
        ignore = " (or -100 to ignore)" if allow_ignore else ""
        raise ValueError(f"{name} must be in {limit}{ignore}, got {bad}")
    if checked.size and checked.max() > np.iinfo(np.int64).max:
        raise ValueError(f"{name} must fit in int64, got {checked.max()}")
    return array.astype(np.int64, copy=False)


def as_floats(value, name: str, ndim: int) -> np.ndarray:
    """Finite numbers of exactly ``ndim`` dimensions -> float32 array."""
    array = as_array(value, name)
    if array.dtype.kind not in "fiub":
        raise TypeError(f"{name} must hold numbers, got dtype {array.dtype}")
    if array.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimension(s), got shape {array.shape}")
    array = array.astype(np.float32, copy=False)
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return array


def check_shape(array: np.ndarray, name: str, shape: tuple) -> None:
    """A ValueError unless ``array`` has ``shape``, that of input_ids."""
    if array.shape != shape:
        raise ValueError(f"{name} must have shape {shape} (like input_ids), got {array.shape}")


def class_labels(labels, name, shape, n_classes, allow_ignore=True):
    """Integer class ids of exactly ``shape`` in [0, n_classes) (or -100 where ``allow_ignore``) -> int64."""
    labels = as_indices(labels, name, len(shape), 0, n_classes, allow_ignore)
    if labels.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {labels.shape}")
    return labels


def float_labels(labels, name, shape):
    """Numbers of exactly ``shape`` (finite) -> float32."""
    labels = as_floats(labels, name, len(shape))
    if labels.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {labels.shape}")
    return labels


def check_positive(name: str, value, allow_none: bool = False):
    """An integer >= 1 (or None where allowed), else a ValueError naming the option."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer{' or None' if allow_none else ''}, got {value!r}")
    return int(value)


def check_choice(name: str, value, choices: tuple):
    """``value`` if it is one of ``choices``, else a ValueError naming the option."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def encoder_inputs(config, input_ids=None, attention_mask=None, langs=None, token_type_ids=None, position_ids=None,
                   lengths=None, cache=None, inputs_embeds=None, cache_position=None) -> dict:
    """Validate and convert the encoder's inputs; returns them as a dict of arrays (or None), without
    ``cache_position``, which is checked and not used (see ``check_cache_position``)."""
    input_ids, inputs_embeds = ids_or_embeddings(config, input_ids, inputs_embeds)
    shape = input_ids.shape if input_ids is not None else inputs_embeds.shape[:2]
    batch, seq_len = shape
    if batch == 0 or seq_len == 0:
        raise ValueError(f"the input must hold at least one token in at least one sequence, got shape {shape}")
    if attention_mask is not None:
        attention_mask = as_array(attention_mask, "attention_mask")
        check_shape(attention_mask, "attention_mask", shape)
        if not np.isin(attention_mask, (0, 1)).all():
            raise ValueError("attention_mask must hold only 0 (padding) and 1 (token)")
        attention_mask = attention_mask.astype(np.float32)
    if langs is not None:
        if not config.has_lang_embeddings:
            raise ValueError(f"langs given, but this model has no language embeddings (n_langs={config.n_langs}, "
                             f"use_lang_emb={config.use_lang_emb})")
        langs = as_indices(langs, "langs", 2, 0, config.n_langs)
        check_shape(langs, "langs", shape)
    if token_type_ids is not None:
        token_type_ids = as_indices(token_type_ids, "token_type_ids", 2, 0, config.vocab_size)
        check_shape(token_type_ids, "token_type_ids", shape)
    if position_ids is not None:
        position_ids = as_indices(position_ids, "position_ids", 2, 0, config.max_position_embeddings)
        check_shape(position_ids, "position_ids", shape)
    elif seq_len > config.max_position_embeddings:
        raise ValueError(f"sequence length {seq_len} exceeds max_position_embeddings="
                         f"{config.max_position_embeddings}")
    if lengths is not None:
        lengths = as_indices(lengths, "lengths", 1, 0, seq_len + 1)
        if lengths.shape != (batch,):
            raise ValueError(f"lengths must have one entry per sequence ({batch}), got shape {lengths.shape}")
    if cache is not None:
        check_cache(config, cache, input_ids, batch, seq_len)
    if cache_position is not None:
        check_cache_position(cache_position, seq_len)
    return dict(input_ids=input_ids, attention_mask=attention_mask, langs=langs, token_type_ids=token_type_ids,
                position_ids=position_ids, lengths=lengths, cache=cache, inputs_embeds=inputs_embeds)


def ids_or_embeddings(config, input_ids, inputs_embeds) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Exactly one of token ids [batch, seq] and embeddings [batch, seq, emb_dim], checked -> (input_ids, embeds)."""
    if (input_ids is None) == (inputs_embeds is None):
        raise ValueError("pass exactly one of input_ids and inputs_embeds")
    if input_ids is not None:
        return as_indices(input_ids, "input_ids", 2, 0, config.vocab_size), None
    inputs_embeds = as_floats(inputs_embeds, "inputs_embeds", 3)
    if inputs_embeds.shape[-1] != config.emb_dim:
        raise ValueError(f"inputs_embeds must have width emb_dim={config.emb_dim}, got {inputs_embeds.shape[-1]}")
    return None, inputs_embeds


def check_cache_position(cache_position, seq_len: int) -> None:
    """transformers takes ``cache_position`` (documented on FlaubertModel in 4.57, swallowed by ``**kwargs`` in 5.23):
    where the new positions go in a preallocated cache. Neither its dynamic cache nor our dict cache reads it (a
    cache knows its own length), so it changes no number, there or here: it is only checked, as [seq] integers."""
    positions = as_indices(cache_position, "cache_position", 1)
    if len(positions) > seq_len:
        raise ValueError(f"cache_position has {len(positions)} positions for a sequence of {seq_len}")


def check_cache(config, cache, input_ids, batch: int, seq_len: int) -> None:
    """An incremental-decoding cache must belong to a causal model and to this batch, and hold fewer positions."""
    if not isinstance(cache, dict):
        raise TypeError(f"cache must be a dict (start with {{}}), got {type(cache).__name__}")
    if not config.causal:
        raise ValueError("cache is for incremental decoding, which only a causal model (causal=True) does")
    cached = cache.get("slen", 0)
    if cached and input_ids is None:
        # The cache lets input_ids be cut to the new positions; inputs_embeds can't be, so the keys of the old
        # positions would be appended a second time (and the mask would no longer match the keys).
        raise ValueError(f"cache already holds {cached} positions: continue incremental decoding with input_ids, "
                         f"not inputs_embeds")
    if cached >= seq_len:
        raise ValueError(f"cache already holds {cached} positions: pass the whole sequence so far, "
                         f"longer than that (got {seq_len})")
    cached_batch = next((layer["k"].shape[0] for layer in cache.values() if isinstance(layer, dict)
                         and "k" in layer), batch)
    if cached and cached_batch != batch:
        raise ValueError(f"cache holds {cached_batch} sequence(s) but input_ids has {batch}: "
                         f"use one cache per batch")
