"""Every JSON file a checkpoint holds, read one way: strict, and failing in one line that names the file.

``config.json``, ``vocab.json``, ``tokenizer_config.json``, the shard indexes and the header of a safetensors file
are all read by :func:`parse_json` (or :func:`read_json_object`, which opens the file first). Python's ``json``
module alone fails in ways a user should never see: a ``RecursionError`` and 30 lines of traceback for
``[[[[...`` nested a few thousand deep, a ``UnicodeDecodeError`` that names no file, a bare ``ValueError`` for an
integer of more than 4,300 digits. And when an object gives one key twice it silently keeps the last value, where
other readers refuse the file or keep the first: one file would then mean two things. Here each of these is a
``ValueError`` that says which file and what is wrong with it.
"""
from __future__ import annotations

import json
import os


class _DuplicateKey(ValueError):
    """Raised from inside the JSON parser when an object gives a key twice."""


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    """``object_pairs_hook``: build each JSON object as a dict, refusing a key given twice."""
    mapping = dict(pairs)
    if len(mapping) < len(pairs):
        seen = set()
        twice = next(key for key, _ in pairs if key in seen or seen.add(key))
        raise _DuplicateKey(f"key {twice!r} appears twice in one object")
    return mapping


def parse_json(data: bytes | str, source: str) -> object:
    """The value JSON text ``data`` holds; ``source`` (the file, as the user knows it) starts every error message.

    The text must be UTF-8 (RFC 8259; ``json.loads`` would also guess UTF-16 or UTF-32 from bytes).
    """
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        return json.loads(text, object_pairs_hook=_unique_keys)
    except UnicodeDecodeError as error:
        raise ValueError(f"{source} is not valid JSON: not UTF-8 (byte {error.start} is "
                         f"{error.object[error.start:error.start + 1]!r})") from None
    except RecursionError:  # subtle: the C parser raises it cleanly at Python's recursion limit; nothing is broken
        raise ValueError(f"{source} is not valid JSON here: nested too deeply (arrays or objects more than "
                         "about 1,000 levels deep)") from None
    except ValueError as error:  # JSONDecodeError, _DuplicateKey, an integer of more than 4,300 digits
        raise ValueError(f"{source} is not valid JSON: {error}") from None


def read_json_object(path: str | os.PathLike, source: str | None = None, holds: str = "") -> dict:
    """The JSON object (a dict) in file ``path``: ValueError naming the file (or ``source``) if it holds anything
    else, ``holds`` saying what it should hold (``"{token: id}"``); OSError if it cannot be read."""
    source = source or os.fspath(path)
    with open(path, "rb") as file:
        value = parse_json(file.read(), source)
    if not isinstance(value, dict):
        raise ValueError(f"{source} must hold a JSON object{' ' + holds if holds else ''}, "
                         f"not a {type(value).__name__}")
    return value
