"""FlauBERT's tokenizer: text -> ids (and back), with transformers' ``FlaubertTokenizer`` API.

A transformer never sees text, only integers. Turning "L'été, enfin !" into ``[0, 22, 70, 14, 375, 82, 1]`` (ids of the
published uncased vocabulary) takes three stages, which other files of this folder teach:

1. **Normalisation** (:func:`.moses.normalize`): clean the text exactly as FlauBERT's training data was cleaned.
2. **Moses word splitting** (:func:`.moses.moses_tokenize`): ``l'été, enfin !`` -> ``l'`` ``été`` ``,`` ``enfin`` ``!``.
3. **Byte-pair encoding** (:mod:`.bpe`): cut each word into symbols of the vocabulary by replaying the merges of
   ``merges.txt``: ``anticonstitutionnellement`` -> ``anti`` ``constitu`` ``tionnellement</w>``.

Finally each symbol is looked up in ``vocab.json`` (:mod:`.files` reads and writes the tokenizer's files) and special
tokens frame the sequence: ``<s> words </s>``. This file is the API around those stages: loading and saving, special
tokens, pairs, and the arguments of ``__call__`` (padding and truncation rules live in :mod:`.batching`).

Everything here reproduces transformers' ``FlaubertTokenizer`` (5.x) id for id; the tests compare the two on a whole
novel. What transformers cannot do (it has no "fast" tokenizer for FlauBERT) and we add: the character span of every
token in the *original* text (``return_offsets_mapping=True``, :mod:`.offsets`) and ``word_ids()``, which token
classification and question answering need.

It runs a little over 400 lines because it is one class whose methods are transformers' API, kept together so
that a reader finds each one where transformers users look for it.
"""
from __future__ import annotations

import os
import re
from typing import Iterable, Sequence

import numpy as np

from .batching import (VERY_LARGE_INTEGER, BatchEncoding, batch_inputs, check_text, collate, pad_rows,
                       resolve_strategies, truncated_lengths)
from .bpe import END_OF_WORD, bpe, merge_ranks
from .files import (ADDITIONAL_SPECIAL_TOKENS, SPECIAL_TOKENS, TOKENIZER_SETTINGS, read_merges,
                    read_tokenizer_settings, read_vocab, write_tokenizer_files)
from .moses import moses_tokenize, normalize
from .offsets import align_words, piece_spans


class FlaubertTokenizer:
    """FlauBERT's tokenizer, equal to transformers' ``FlaubertTokenizer`` token for token.

    Args:
        vocab_file: ``vocab.json``, a ``{token: id}`` dict (67,542 entries for the published models).
        merges_file: ``merges.txt``, one merge ``"left right"`` per line, most frequent first.
        do_lowercase: lowercase before everything else (True for the ``*_uncased`` models).
        model_max_length: the longest sequence the model accepts; used by truncation/padding without ``max_length``.
        clean_up_tokenization_spaces: let :meth:`decode` glue ``" ."``, ``" ,"``, ``" ?"``, ``" !"`` to the word before.
    """

    def __init__(
        self,
        vocab_file: str | os.PathLike,
        merges_file: str | os.PathLike,
        do_lowercase: bool = False,
        model_max_length: int = VERY_LARGE_INTEGER,
        clean_up_tokenization_spaces: bool = False,
    ):
        for argument, path in (("vocab_file", vocab_file), ("merges_file", merges_file)):
            if not os.path.isfile(path):
                raise OSError(f"{argument}: no such file {os.fspath(path)!r}")
        self.encoder: dict[str, int] = read_vocab(vocab_file)  # token -> id
        self.decoder: dict[int, str] = {i: token for token, i in self.encoder.items()}  # id -> token
        # Rank of each merge: the lower, the earlier it was learned (the more frequent the pair).
        self.bpe_ranks: dict[tuple[str, str], int] = merge_ranks(read_merges(merges_file))
        self.do_lowercase = bool(do_lowercase)
        self.model_max_length = int(model_max_length)
        self.clean_up_tokenization_spaces = bool(clean_up_tokenization_spaces)
        self.padding_side = "right"
        self.truncation_side = "right"
        self._cache: dict[str, tuple[tuple[str, ...], tuple[int, ...]]] = {}  # word -> (BPE pieces, their ids)
        self._unit_cache: dict[str, str] = {}  # original character -> its normalisation (for offsets)
        self._set_special_tokens()

    def _set_special_tokens(self) -> None:
        """The special tokens, their ids (added to the vocabulary if missing) and the pattern that finds them."""
        for role, token in SPECIAL_TOKENS.items():
            setattr(self, role, token)
        self.additional_special_tokens = list(ADDITIONAL_SPECIAL_TOKENS)
        # Special tokens missing from the vocabulary are appended after it, as transformers does.
        for token in self.all_special_tokens:
            if token not in self.encoder:
                self.encoder[token] = len(self.encoder)
                self.decoder[self.encoder[token]] = token
        self.unk_token_id = self.encoder[self.unk_token]
        self.bos_token_id = self.encoder[self.bos_token]
        self.sep_token_id = self.cls_token_id = self.encoder[self.sep_token]
        self.pad_token_id = self.encoder[self.pad_token]
        self.mask_token_id = self.encoder[self.mask_token]
        self.all_special_ids = [self.encoder[t] for t in self.all_special_tokens]
        self._special_ids = frozenset(self.all_special_ids)
        # Special tokens typed in the text ("Le <special1> est bleu.") are kept whole, never normalised or split.
        # Longest first, so that a token that is a prefix of another cannot win.
        by_length = sorted(self.all_special_tokens, key=len, reverse=True)
        self._special_pattern = re.compile("|".join(map(re.escape, by_length)))

    # -- construction and saving ---------------------------------------------------------------------------------------

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs) -> "FlaubertTokenizer":
        """Load ``vocab.json``, ``merges.txt`` and (if present) ``tokenizer_config.json`` from a folder or a hub
        repository. ``kwargs``, as in transformers: huggingface_hub's options (``revision``, ``cache_dir``,
        ``local_files_only``, ``token``...) and overrides of the saved settings (``model_max_length=256``...).
        """
        from ..checkpoints.hub import HUB_OPTIONS, check_keywords, resolve_name

        check_keywords(f"{cls.__name__}.from_pretrained", kwargs, (*HUB_OPTIONS, *TOKENIZER_SETTINGS))
        hub_options = {name: value for name, value in kwargs.items() if name in HUB_OPTIONS}
        folder = os.fspath(resolve_name(pretrained_model_name_or_path, "tokenizer", **hub_options))
        settings = read_tokenizer_settings(folder)
        settings.update({name: value for name, value in kwargs.items() if name in TOKENIZER_SETTINGS})
        return cls(os.path.join(folder, "vocab.json"), os.path.join(folder, "merges.txt"), **settings)

    def save_pretrained(self, folder: str | os.PathLike) -> tuple[str, str, str]:
        """Write ``vocab.json``, ``merges.txt`` and ``tokenizer_config.json`` into ``folder`` (created if needed),
        crash-safe: the three are moved in together (``atomic.atomic_folder``); the folder's other files stay."""
        from ..checkpoints.atomic import atomic_folder

        with atomic_folder(folder) as staging:
            written = write_tokenizer_files(staging, self.encoder, sorted(self.bpe_ranks, key=self.bpe_ranks.get),
                                            do_lowercase=self.do_lowercase, model_max_length=self.model_max_length,
                                            clean_up_tokenization_spaces=self.clean_up_tokenization_spaces,
                                            additional_special_tokens=self.additional_special_tokens)
        return tuple(os.path.join(os.fspath(folder), os.path.basename(path)) for path in written)

    # -- vocabulary ----------------------------------------------------------------------------------------------------

    @property
    def all_special_tokens(self) -> list[str]:
        """``<s> <unk> </s> <pad> <special1> <special0> <special2> ... <special9>`` (transformers' order)."""
        roles = ("bos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")
        tokens = list(dict.fromkeys(getattr(self, role) for role in roles))
        return tokens + [t for t in self.additional_special_tokens if t not in tokens]

    @property
    def vocab_size(self) -> int:
        """The number of tokens, special tokens included."""
        return len(self.encoder)

    def __len__(self) -> int:
        return len(self.encoder)

    def get_vocab(self) -> dict[str, int]:
        """A copy of the ``{token: id}`` vocabulary."""
        return dict(self.encoder)

    def convert_tokens_to_ids(self, tokens: str | Iterable[str]) -> int | list[int]:
        """Vocabulary look-up; unknown tokens get the id of ``<unk>``."""
        if isinstance(tokens, str):
            return self.encoder.get(tokens, self.unk_token_id)
        return [self.encoder.get(token, self.unk_token_id) for token in tokens]

    def convert_ids_to_tokens(self, ids: int | Iterable[int], skip_special_tokens: bool = False) -> str | list[str]:
        """Inverse look-up; unknown ids give ``<unk>``."""
        if isinstance(ids, (int, np.integer)):
            return self.decoder.get(int(ids), self.unk_token)
        ids = [int(i) for i in _as_id_list(ids, "ids")]
        skip = self._special_ids if skip_special_tokens else frozenset()
        return [self.decoder.get(i, self.unk_token) for i in ids if i not in skip]

    def convert_tokens_to_string(self, tokens: Iterable[str]) -> str:
        """Glue BPE pieces back into text: ``["bon", "jour</w>", "!</w>"]`` -> ``"bonjour !"``.

        Only the spaces come back: the normalisation (case, quotes, glued lines) cannot be undone.
        """
        return "".join(tokens).replace(END_OF_WORD, " ").strip()

    # -- BPE -----------------------------------------------------------------------------------------------------------

    def bpe(self, word: str) -> tuple[str, ...]:
        """Split one Moses word into BPE pieces: ``"anticonstitutionnellement"`` -> ``("anti", "constitu",
        "tionnellement</w>")``. The algorithm is :func:`.bpe.bpe`; words repeat a lot in text, so results are cached
        and most calls are a dict look-up."""
        return self._bpe_with_ids(word)[0]

    def _bpe_with_ids(self, word: str) -> tuple[tuple[str, ...], tuple[int, ...]]:
        """:meth:`bpe` and the ids of the pieces, through the per-word cache."""
        cached = self._cache.get(word)
        if cached is not None:
            return cached
        symbols = bpe(word, self.bpe_ranks)
        result = (symbols, tuple(self.encoder.get(s, self.unk_token_id) for s in symbols))
        self._cache[word] = result
        return result

    # -- text -> tokens ------------------------------------------------------------------------------------------------

    def _segments(self, text: str) -> Iterable[tuple[int, int, bool]]:
        """Cut ``text`` around the special tokens typed in it: ``(start, end, is_special)`` spans covering it."""
        position = 0
        for match in self._special_pattern.finditer(text):
            if match.start() > position:
                yield position, match.start(), False
            yield match.start(), match.end(), True
            position = match.end()
        if position < len(text):
            yield position, len(text), False

    def _words(self, text: str) -> list[str]:
        """Stages 1 and 2: normalise, then split into Moses words."""
        return moses_tokenize(normalize(text, self.do_lowercase))

    def _encode_text(self, text: str, with_offsets: bool = False):
        """One text -> ``(ids, word_ids, offsets)``, three lists with one entry per token (offsets None if not asked).

        This is ``tokenize`` + ``convert_tokens_to_ids`` in one pass, with the per-word BPE cache holding the ids too.
        """
        ids: list[int] = []
        word_ids: list[int] = []
        offsets: list[tuple[int, int]] | None = [] if with_offsets else None
        n_words = 0
        for start, end, is_special in self._segments(text):
            if is_special:
                ids.append(self.encoder[text[start:end]])
                word_ids.append(n_words)
                n_words += 1
                if with_offsets:
                    offsets.append((start, end))
                continue
            words = self._words(text[start:end])
            char_spans = align_words(text[start:end], start, words, self._normalise_unit) if with_offsets else None
            for w, word in enumerate(words):
                pieces, piece_ids = self._bpe_with_ids(word)
                ids.extend(piece_ids)
                word_ids.extend([n_words] * len(piece_ids))
                n_words += 1
                if with_offsets:
                    offsets.extend(piece_spans(pieces, char_spans[w]))
        return ids, word_ids, offsets

    def tokenize(self, text: str) -> list[str]:
        """Text -> BPE pieces: ``"Bonjour, l'ami"`` -> ``['bonjour</w>', ',</w>', "l'</w>", 'ami</w>']`` (uncased)."""
        check_text(text, "text")
        tokens = []
        for start, end, is_special in self._segments(text):
            if is_special:
                tokens.append(text[start:end])
            else:
                for word in self._words(text[start:end]):
                    tokens.extend(self._bpe_with_ids(word)[0])
        return tokens

    # -- offsets: where each token comes from in the original text (the rule: offsets.align_words) ---------------------

    def _normalise_unit(self, unit: str) -> str:
        """Normalise one original character (with its combining marks) on its own, spaces removed."""
        out = self._unit_cache.get(unit)
        if out is None:
            out = "".join(normalize(unit, self.do_lowercase).split())
            self._unit_cache[unit] = out
        return out

    # -- special tokens ------------------------------------------------------------------------------------------------

    def build_inputs_with_special_tokens(
        self, token_ids_0: list[int], token_ids_1: list[int] | None = None
    ) -> list[int]:
        """``<s> A </s>`` or ``<s> A </s> B </s>``."""
        if token_ids_1 is None:
            return [self.bos_token_id, *token_ids_0, self.sep_token_id]
        return [self.bos_token_id, *token_ids_0, self.sep_token_id, *token_ids_1, self.sep_token_id]

    def get_special_tokens_mask(
        self, token_ids_0: list[int], token_ids_1: list[int] | None = None, already_has_special_tokens: bool = False
    ) -> list[int]:
        """1 where :meth:`build_inputs_with_special_tokens` puts a special token, 0 on the text's tokens.

        With ``already_has_special_tokens=True``, ``token_ids_0`` is a finished sequence: 1 on every special id.
        """
        if already_has_special_tokens:
            if token_ids_1 is not None:
                raise ValueError("token_ids_1 must be None when already_has_special_tokens=True")
            return [1 if int(i) in self._special_ids else 0 for i in token_ids_0]
        if token_ids_1 is None:
            return [1, *[0] * len(token_ids_0), 1]
        return [1, *[0] * len(token_ids_0), 1, *[0] * len(token_ids_1), 1]

    def create_token_type_ids_from_sequences(
        self, token_ids_0: list[int], token_ids_1: list[int] | None = None
    ) -> list[int]:
        """Segment ids: 0 for ``<s> A </s>``, 1 for ``B </s>``."""
        first = [0] * (len(token_ids_0) + 2)
        return first if token_ids_1 is None else first + [1] * (len(token_ids_1) + 1)

    # -- the main entry point ------------------------------------------------------------------------------------------

    def __call__(
        self,
        text: str | Sequence[str],
        text_pair: str | Sequence[str] | None = None,
        add_special_tokens: bool = True,
        padding: bool | str = False,
        truncation: bool | str | None = None,
        max_length: int | None = None,
        return_tensors: str | None = None,
        return_token_type_ids: bool | None = None,
        return_attention_mask: bool = True,
        return_offsets_mapping: bool = False,
        return_special_tokens_mask: bool = False,
    ) -> BatchEncoding:
        """Encode one text (or pair), or a batch of them, for the model.

        Args:
            text: a string, or a list of strings (a batch).
            text_pair: the second segment (question answering, sentence pairs): a string, or a list as long as ``text``.
            padding: ``True``/``"longest"`` pads a batch to its longest sequence, ``"max_length"`` to ``max_length``.
            truncation: ``True``/``"longest_first"`` removes tokens one at a time from the longer segment,
                ``"only_first"`` / ``"only_second"`` from that segment only. Giving ``max_length`` alone also truncates.
            return_tensors: ``None`` for lists, ``"np"`` for int64 arrays of shape ``(batch, seq_len)``.
            return_token_type_ids: add ``token_type_ids``. Off by default, as in transformers: FlauBERT *adds* token
                type embeddings (through its word embeddings), so sending them by default would change its outputs.
            return_offsets_mapping: add ``offset_mapping``, each token's ``(start, end)`` in ``text`` (see
                :func:`.offsets.align_words` for the rule); ``(0, 0)`` for the special and padding tokens added.
            return_special_tokens_mask: add ``special_tokens_mask`` (1 on added special and padding tokens).

        Returns:
            a :class:`BatchEncoding` with ``input_ids`` and ``attention_mask`` (1 = real token, 0 = padding).
        """
        is_batch, texts, pairs = batch_inputs(text, text_pair)
        padding, truncation, max_length = resolve_strategies(padding, truncation, max_length, self.model_max_length)
        if return_tensors not in (None, "np"):
            raise ValueError(f"return_tensors={return_tensors!r}: use None (lists) or 'np' (NumPy arrays)")
        rows = [
            self._encode_pair(t, p, add_special_tokens, truncation, max_length, return_offsets_mapping)
            for t, p in zip(texts, pairs)
        ]  # one dict per sequence
        pad_rows(rows, padding, max_length, self.pad_token_id)
        keys = ["input_ids"]
        keys += ["token_type_ids"] * bool(return_token_type_ids)
        keys += ["special_tokens_mask"] * bool(return_special_tokens_mask)
        keys += ["attention_mask"] * bool(return_attention_mask)
        keys += ["offset_mapping"] * bool(return_offsets_mapping)
        return collate(rows, keys, return_tensors, is_batch)

    def _encode_pair(self, text, text_pair, add_special_tokens, truncation, max_length, with_offsets) -> dict:
        """One sequence (single text or pair): tokenize, truncate, add special tokens. Lists, not yet padded."""
        ids, words, offsets = self._encode_text(text, with_offsets)
        pair = self._encode_text(text_pair, with_offsets) if text_pair is not None else None
        n_special = (2 if pair is None else 3) if add_special_tokens else 0
        total = len(ids) + (len(pair[0]) if pair else 0) + n_special
        if truncation != "do_not_truncate" and max_length and total > max_length:
            len_second = len(pair[0]) if pair else None
            keep_first, keep_second = truncated_lengths(len(ids), len_second, total - max_length, truncation)
            ids, words, offsets = (None if x is None else x[:keep_first] for x in (ids, words, offsets))
            if pair:
                pair = tuple(None if x is None else x[:keep_second] for x in pair)
        if not with_offsets:
            offsets = [None] * len(ids)
            if pair:
                pair = (*pair[:2], [None] * len(pair[0]))
        if add_special_tokens:
            return {
                "input_ids": self.build_inputs_with_special_tokens(ids, pair and pair[0]),
                "token_type_ids": self.create_token_type_ids_from_sequences(ids, pair and pair[0]),
                "special_tokens_mask": self.get_special_tokens_mask(ids, pair and pair[0]),
                "word_ids": [None, *words, None, *(pair[1] + [None] if pair else [])],
                "offset_mapping": [(0, 0), *offsets, (0, 0), *(pair[2] + [(0, 0)] if pair else [])],
            }
        row = {
            "input_ids": ids + (pair[0] if pair else []),
            "token_type_ids": [0] * (len(ids) + (len(pair[0]) if pair else 0)),
            "word_ids": words + (pair[1] if pair else []),
            "offset_mapping": offsets + (pair[2] if pair else []),
        }
        row["special_tokens_mask"] = [0] * len(row["input_ids"])
        return row

    def encode(self, text: str, text_pair: str | None = None, add_special_tokens: bool = True, **kwargs) -> list[int]:
        """Just the ids of one text (or pair): ``encode("Bonjour")`` -> ``[0, 6247, 1]``."""
        if isinstance(text, (list, tuple)):
            raise TypeError("text: encode takes one string; call the tokenizer itself for a batch")
        return self(text, text_pair, add_special_tokens=add_special_tokens, **kwargs)["input_ids"]

    # -- ids -> text ---------------------------------------------------------------------------------------------------

    def decode(self, ids, skip_special_tokens: bool = False, clean_up_tokenization_spaces: bool | None = None) -> str:
        """Ids -> text, as transformers: pieces glued, ``</w>`` -> space. ``<s>`` is glued to the first word
        (``"<s>bonjour </s>"``) because special tokens carry no ``</w>``."""
        text = self.convert_tokens_to_string(self.convert_ids_to_tokens(ids, skip_special_tokens=skip_special_tokens))
        if clean_up_tokenization_spaces is None:
            clean_up_tokenization_spaces = self.clean_up_tokenization_spaces
        if clean_up_tokenization_spaces:  # transformers' (English-minded) clean-up
            for before, after in ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
                                  (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")):
                text = text.replace(before, after)
        return text

    def batch_decode(self, sequences, skip_special_tokens: bool = False,
                     clean_up_tokenization_spaces: bool | None = None) -> list[str]:
        """:meth:`decode` for each sequence of a batch (a list of lists or a 2-D array)."""
        return [self.decode(ids, skip_special_tokens, clean_up_tokenization_spaces) for ids in sequences]

    def __repr__(self) -> str:
        return f"FlaubertTokenizer(vocab_size={self.vocab_size}, do_lowercase={self.do_lowercase})"


def _as_id_list(ids, argument: str) -> list:
    """Accept a list/tuple/1-D array of ints; reject strings, floats and nested lists with a TypeError."""
    if isinstance(ids, np.ndarray):
        if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
            raise TypeError(f"{argument} must be a 1-D array of integers, got shape {ids.shape} {ids.dtype}")
        return ids.tolist()
    if isinstance(ids, (str, bytes)) or not isinstance(ids, Iterable):
        raise TypeError(f"{argument} must be a list of ints, not {type(ids).__name__}")
    ids = list(ids)
    for i in ids:
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)):
            raise TypeError(f"{argument} must contain ints, found {type(i).__name__}")
    return ids
