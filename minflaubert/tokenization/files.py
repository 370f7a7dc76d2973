"""The three files of a FlauBERT tokenizer, read and written as transformers does.

A tokenizer folder (``weights/flaubert_tiny``, a hub repository...) holds:

- ``vocab.json``: ``{token: id}``, e.g. ``{"<s>": 0, "</s>": 1, ..., "été</w>": 172, ...}``: BPE symbols and their
  ids, the special tokens first;
- ``merges.txt``: one merge ``left right`` per line, the earliest learned (most frequent) first; its line number is
  the merge's rank (:mod:`.bpe`);
- ``tokenizer_config.json`` (optional): settings such as ``do_lowercase`` and ``model_max_length``, and the special
  tokens;
- ``added_tokens.json`` (only when tokens were added with ``add_tokens``/``add_special_tokens``): ``{token: id}``.

:func:`write_tokenizer_files` writes them (the BPE trainer and ``FlaubertTokenizer.save_pretrained`` use it); the
readers below check what they read and name the file in their errors.
"""
from __future__ import annotations

import json
import math
import os
from typing import Sequence

from ..checkpoints.json_files import read_json_object
from .batching import VERY_LARGE_INTEGER

SPECIAL_TOKENS = {  # role -> token, as transformers' FlaubertTokenizer has them
    "bos_token": "<s>",  # starts every sequence
    "sep_token": "</s>",  # ends each segment
    "cls_token": "</s>",  # subtle: FlauBERT's "classification" token is </s>, not <s> (an XLM legacy)
    "pad_token": "<pad>",
    "unk_token": "<unk>",
    "mask_token": "<special1>",
}
ADDITIONAL_SPECIAL_TOKENS = [f"<special{i}>" for i in range(10)]
# Every role a special token may have, in transformers' order (FlauBERT has no eos_token unless one is added).
SPECIAL_ROLES = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")
# The settings tokenizer_config.json holds, which from_pretrained's keywords may override.
TOKENIZER_SETTINGS = ("do_lowercase", "model_max_length", "clean_up_tokenization_spaces", "padding_side",
                      "truncation_side", *SPECIAL_ROLES, "extra_special_tokens", "additional_special_tokens")


def read_vocab(path: str | os.PathLike) -> dict[str, int]:
    """``vocab.json`` as the ``{token: id}`` dict it holds; every id must be an integer in [0, 2**31) (ids travel
    as NumPy integers)."""
    vocab = _read_json_object(path, "vocab_file", "{token: id}")
    for token, token_id in vocab.items():
        if isinstance(token_id, bool) or not isinstance(token_id, int) or not 0 <= token_id < 2**31:
            raise ValueError(f"vocab_file: {os.fspath(path)!r} gives token {token!r} the id {token_id!r}, "
                             "not an integer in [0, 2**31)")
    return vocab


def read_merges(path: str | os.PathLike) -> list[tuple[str, str]]:
    """``merges.txt`` as a list of ``(left, right)`` pairs, earliest learned first (a ``#version`` line is skipped)."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise ValueError(f"merges_file: {os.fspath(path)!r} is not valid UTF-8 (line {line}, byte "
                         f"{data[error.start:error.start + 1]!r})") from None
    lines = text.split("\n")[:-1]  # subtle: like transformers, the last line is dropped (it is the "")
    return [tuple(line.split()[:2]) for line in lines if not line.startswith("#version")]


def read_tokenizer_settings(folder: str) -> dict:
    """The :data:`TOKENIZER_SETTINGS` of ``folder/tokenizer_config.json``, defaults where it is absent or silent.

    subtle: the published uncased config spells the flag ``do_lower_case``, which transformers ignores (so it
    tokenizes the uncased model as cased!). We honour both spellings.
    """
    config = {}
    config_file = os.path.join(folder, "tokenizer_config.json")
    if os.path.isfile(config_file):
        config = _read_json_object(config_file, "tokenizer_config", "of settings")
    for side in ("padding_side", "truncation_side"):
        if config.get(side, "right") not in ("right", "left"):
            raise ValueError(f"{config_file}: {side} must be 'right' or 'left', not {config[side]!r}")
    tokenizer_class = str(config.get("tokenizer_class") or "FlaubertTokenizer")
    if not tokenizer_class.startswith("Flaubert"):  # a CamemBERT's or a BERT's: other rules, other vocabulary
        raise ValueError(f"{config_file} is for a {tokenizer_class}, not FlauBERT's tokenizer: minflaubert "
                         "runs FlauBERT only (load this one with transformers)")
    return {
        "do_lowercase": bool(config.get("do_lowercase", False) or config.get("do_lower_case", False)),
        "model_max_length": checked_max_length(config.get("model_max_length", VERY_LARGE_INTEGER), config_file),
        "clean_up_tokenization_spaces": config.get("clean_up_tokenization_spaces", False),
        "padding_side": config.get("padding_side", "right"),
        "truncation_side": config.get("truncation_side", "right"),
        **{role: config[role] for role in SPECIAL_ROLES if isinstance(config.get(role), str)},
        "extra_special_tokens": _token_list(config, config_file),
    }


def checked_max_length(value, source: str) -> int:
    """``model_max_length`` as an int: an integer >= 1, or a whole float (old files write ``1e30``), never
    ``true``, a string, or a number too large for a float (``1e400`` reads as infinity)."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{source}: model_max_length must be an integer >= 1, got {value!r}")
    return value


def _token_list(config: dict, config_file: str) -> list[str] | None:
    """The extra special tokens of a tokenizer_config (``extra_special_tokens``, transformers 4's
    ``additional_special_tokens``), None if absent; a ValueError naming the file unless a list of strings."""
    name = "extra_special_tokens" if "extra_special_tokens" in config else "additional_special_tokens"
    tokens = config.get(name)
    if tokens is not None and (not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens)):
        raise ValueError(f"{config_file}: {name} must be a list of strings")
    return tokens


def read_added_tokens(folder: str) -> dict[str, int]:
    """``folder/added_tokens.json`` (``{token: id}``), or ``{}`` when the folder has none."""
    path = os.path.join(folder, "added_tokens.json")
    if not os.path.isfile(path):
        return {}
    added = _read_json_object(path, "added_tokens", "{token: id}")
    for token, i in added.items():
        if isinstance(i, bool) or not isinstance(i, int) or i < 0:
            raise ValueError(f"added_tokens: {path!r}: the id of {token!r} must be an int >= 0, not {i!r}")
    return added


def write_added_tokens(folder: str | os.PathLike, added: dict[str, int]) -> str:
    """Write ``added_tokens.json`` as transformers does (sorted keys); returns its path."""
    path = os.path.join(os.fspath(folder), "added_tokens.json")
    with open(path, "w", encoding="utf-8") as f:
        f.write(json.dumps(added, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    return path


def write_tokenizer_files(folder: str | os.PathLike, vocab: dict[str, int], merges: Sequence[tuple[str, str]],
                          do_lowercase: bool, model_max_length: int, clean_up_tokenization_spaces: bool,
                          additional_special_tokens: Sequence[str] = ADDITIONAL_SPECIAL_TOKENS,
                          special_tokens: dict[str, str] | None = None, padding_side: str = "right",
                          truncation_side: str = "right") -> tuple[str, str, str]:
    """The three files of a FlauBERT tokenizer, as transformers writes them: ``vocab.json`` (``{token: id}``),
    ``merges.txt`` (one ``left right`` line per merge, earliest first) and ``tokenizer_config.json``."""
    folder = os.fspath(folder)
    os.makedirs(folder, exist_ok=True)
    paths = tuple(os.path.join(folder, name) for name in ("vocab.json", "merges.txt", "tokenizer_config.json"))
    with open(paths[0], "w", encoding="utf-8") as f:
        f.write(json.dumps(vocab, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    with open(paths[1], "w", encoding="utf-8") as f:
        f.writelines(f"{left} {right}\n" for left, right in merges)
    config = {
        "tokenizer_class": "FlaubertTokenizer",
        "do_lowercase": bool(do_lowercase),
        "model_max_length": int(model_max_length),
        "clean_up_tokenization_spaces": bool(clean_up_tokenization_spaces),
        "padding_side": padding_side,
        "truncation_side": truncation_side,
        **(SPECIAL_TOKENS if special_tokens is None else special_tokens),
        # subtle: not under transformers 5's name, extra_special_tokens, which transformers 4 reads as a dict
        "additional_special_tokens": list(additional_special_tokens),
    }
    with open(paths[2], "w", encoding="utf-8") as f:
        f.write(json.dumps(config, indent=2, ensure_ascii=False) + "\n")
    return paths


def _read_json_object(path, argument: str, what: str) -> dict:
    """Read a JSON file that must hold an object; a ValueError naming ``argument`` and the path otherwise."""
    return read_json_object(path, f"{argument}: {os.fspath(path)!r}", what)
