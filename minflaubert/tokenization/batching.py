"""From token ids to a model batch: which texts, how much to cut (truncation), how much to add (padding).

A model runs on rectangles: a batch is ``(batch, seq_len)`` ids, every row as long as the others, no row longer than
the model accepts. The tokenizer's ``__call__`` takes transformers' arguments for this and gives what transformers
gives, error for error; this file holds the rules, apart from the text -> ids work:

- :func:`batch_inputs`: one text or a list of them, with an optional second segment (a pair) for each, as strings or
  as lists of words (``is_split_into_words``);
- :func:`resolve_strategies`: ``padding`` / ``truncation`` / ``max_length`` checked and turned into one strategy each;
- :func:`truncated_lengths`: how many tokens each segment of a pair keeps;
- :func:`pad_rows`: ``<pad>`` tokens added (on the right, or the left) and the ``attention_mask`` that marks the
  real ones;
- :func:`collate`: the asked-for keys, as lists or int64 NumPy arrays, in a :class:`BatchEncoding`.
"""
from __future__ import annotations

import numpy as np

PADDING_STRATEGIES = (False, True, "longest", "max_length", "do_not_pad")
TRUNCATION_STRATEGIES = (None, False, True, "longest_first", "only_first", "only_second", "do_not_truncate")
VERY_LARGE_INTEGER = int(1e20)  # transformers' "no maximum length" threshold for model_max_length


class BatchEncoding(dict):
    """The tokenizer's output: a dict (``input_ids``, ``attention_mask``, ...) that also knows each token's word.

    Values are lists (one sequence), lists of lists (a batch) or int64 arrays of shape ``(batch, seq_len)`` with
    ``return_tensors="np"``.
    """

    def __init__(self, data: dict, word_ids: list[list[int | None]]):
        super().__init__(data)
        self._word_ids = word_ids  # one list per sequence of the batch (a single text is a batch of one)

    def __getattr__(self, name: str):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def word_ids(self, batch_index: int = 0) -> list[int | None]:
        """For each token of sequence ``batch_index``, the index of the Moses word it comes from (None for special
        and padding tokens). Words are counted from 0 in each segment of a pair, as in transformers' fast
        tokenizers."""
        if not 0 <= batch_index < len(self._word_ids):
            raise IndexError(f"batch_index={batch_index} out of range for a batch of {len(self._word_ids)}")
        return list(self._word_ids[batch_index])


def check_text(text, argument: str) -> None:
    """A TypeError naming ``argument`` unless ``text`` is a str."""
    if not isinstance(text, str):
        raise TypeError(f"{argument} must be a str, not {type(text).__name__}")


def check_input(value, argument: str, split: bool) -> None:
    """A TypeError naming ``argument`` unless ``value`` is a str, or (``split``) a non-empty list of str words."""
    if split and isinstance(value, (list, tuple)):
        if not value:
            raise ValueError(f"{argument}: an empty list of words (is_split_into_words=True)")
        for i, word in enumerate(value):
            check_text(word, f"{argument}[{i}]")
    else:
        check_text(value, argument)


def batch_inputs(text, text_pair, split: bool = False) -> tuple[bool, list, list]:
    """``(is_batch, texts, pairs)``: the inputs to encode (a str, or a list of words when ``split``) and, for each,
    its second segment or None.

    As in transformers, a batch is a list of texts, or of lists of words when ``split``; a batch item that is a pair
    ``[first, second]`` or ``(first, second)`` (a tuple only, when ``split``) gives both segments.
    """
    is_batch = isinstance(text, (list, tuple)) and (
        (not text and not split)
        or (bool(text) and split and isinstance(text[0], (list, tuple)))
        or (bool(text) and not split and isinstance(text[0], (str, list, tuple))))
    if not is_batch:
        check_input(text, "text", split)
        if text_pair is not None:
            check_input(text_pair, "text_pair", split)
        return False, [text], [text_pair]
    if text_pair is not None and (not isinstance(text_pair, (list, tuple)) or len(text_pair) != len(text)):
        raise ValueError("text_pair must be a list as long as text when text is a batch")
    texts, pairs = [], list(text_pair) if text_pair is not None else [None] * len(text)
    for i, item in enumerate(text):
        if isinstance(item, (list, tuple)) and pairs[i] is None and (not split or isinstance(item, tuple)):
            if len(item) == 2 and all(isinstance(part, (str, list, tuple)) for part in item):
                item, pairs[i] = item  # a pair given as one item
            elif len(item) == 1:
                item = item[0]
            elif not split:
                raise ValueError(f"text[{i}]: a batch item that is a list must be a pair of texts, "
                                 f"got {len(item)} items")
        check_input(item, f"text[{i}]", split)
        if pairs[i] is not None:
            check_input(pairs[i], f"text_pair[{i}]", split)
        texts.append(item)
    return True, texts, pairs


def check_side(argument: str, side) -> str:
    """``"right"`` or ``"left"``, else a ValueError naming ``argument`` (padding_side, truncation_side)."""
    if side not in ("right", "left"):
        raise ValueError(f"{argument}={side!r}: use 'right' or 'left'")
    return side


def check_count(argument: str, value, minimum: int) -> int:
    """An int at least ``minimum`` (stride, pad_to_multiple_of), else a TypeError/ValueError naming ``argument``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{argument} must be an int, not {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{argument}={value}: must be at least {minimum}")
    return int(value)


def resolve_strategies(padding, truncation, max_length, model_max_length: int) -> tuple[str, str, int | None]:
    """Validate and resolve the padding/truncation arguments exactly as transformers does."""
    if not any(padding is s or (isinstance(s, str) and padding == s) for s in PADDING_STRATEGIES):
        raise ValueError(f"padding={padding!r}: use False, True, 'longest' or 'max_length'")
    if not any(truncation is s or (isinstance(s, str) and truncation == s) for s in TRUNCATION_STRATEGIES):
        raise ValueError(
            f"truncation={truncation!r}: use False, True, 'longest_first', 'only_first' or 'only_second'")
    if max_length is not None:
        if isinstance(max_length, bool) or not isinstance(max_length, (int, np.integer)):
            raise TypeError(f"max_length must be an int or None, not {type(max_length).__name__}")
        if max_length < 1:
            raise ValueError(f"max_length={max_length}: must be at least 1")
        max_length = int(max_length)
    if max_length is not None and padding is False and truncation is None:
        truncation = "longest_first"  # transformers: max_length alone means "truncate"
    padding = {True: "longest", False: "do_not_pad"}.get(padding, padding) if isinstance(padding, bool) else padding
    truncation = ("longest_first" if truncation is True
                  else "do_not_truncate" if truncation is None or truncation is False else truncation)
    if max_length is None:  # fall back on the model's maximum length, when it has one
        if padding == "max_length":
            if model_max_length > VERY_LARGE_INTEGER:
                padding = "do_not_pad"
            else:
                max_length = model_max_length
        if truncation != "do_not_truncate":
            if model_max_length > VERY_LARGE_INTEGER:
                truncation = "do_not_truncate"
            else:
                max_length = model_max_length
    return padding, truncation, max_length


def truncated_lengths(len_first: int, len_second: int | None, remove: int, strategy: str) -> tuple[int, int | None]:
    """How many tokens each segment keeps when ``remove`` tokens must go (transformers' ``truncate_sequences``).

    ``longest_first`` first evens out the two segments, then takes the rest half and half (the odd one from the
    first segment when it was the longer).
    """
    if strategy == "only_first" or (strategy == "longest_first" and len_second is None):
        return max(len_first - remove, 0), len_second
    if strategy == "only_second":
        return len_first, (max(len_second - remove, 0) if len_second else len_second)
    first_remove = min(abs(len_second - len_first), remove)
    rest = remove - first_remove
    if len_first > len_second:
        from_first, from_second = first_remove + rest // 2, rest - rest // 2
    else:
        from_first, from_second = rest // 2, first_remove + rest - rest // 2
    return max(len_first - from_first, 0), max(len_second - from_second, 0)


def pad_rows(rows: list[dict], padding: str, max_length: int | None, pad_token_id: int, side: str = "right",
             multiple: int | None = None) -> None:
    """Give each row its ``attention_mask`` and, as ``padding`` asks, pad its token lists on ``side``, in place.

    ``multiple`` rounds the padded length up to a multiple of it (``pad_to_multiple_of``; only when padding).
    """
    if padding == "longest":
        target = max((len(r["input_ids"]) for r in rows), default=0)
    elif padding == "max_length":
        target = max_length
    else:
        target = 0
    if target and multiple:
        target = -(-target // multiple) * multiple
    pad_values = {"input_ids": pad_token_id, "token_type_ids": 0, "special_tokens_mask": 1,
                  "attention_mask": 0, "offset_mapping": (0, 0), "word_ids": None}
    for row in rows:
        row["attention_mask"] = [1] * len(row["input_ids"])
        missing = target - len(row["input_ids"])
        if missing > 0:
            for key, values in row.items():
                if key in pad_values:
                    values[len(values) if side == "right" else 0:0] = [pad_values[key]] * missing


def collate(rows: list[dict], keys: list[str], return_tensors: str | None, is_batch: bool) -> BatchEncoding:
    """The ``keys`` of the padded rows, as lists (unwrapped for a single text) or int64 arrays."""
    data = {key: [row[key] for row in rows] for key in keys}
    if return_tensors == "np":
        lengths = {len(row["input_ids"]) for row in rows}
        if len(lengths) > 1:
            raise ValueError("return_tensors='np' needs sequences of equal length: use padding=True")
        data = {key: np.array(value, dtype=np.int64).reshape(
                    len(rows), *(() if key == "length" else (-1,)), *([2] * (key == "offset_mapping")))
                for key, value in data.items()}
    elif not is_batch:
        data = {key: value[0] for key, value in data.items()}
    return BatchEncoding(data, [row["word_ids"] for row in rows])
