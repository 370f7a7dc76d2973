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

Two things transformers does not do, to keep time and memory bounded on any input: truncation reads no more of
the text than the tokens it keeps need (:meth:`FlaubertTokenizer._plain_span`), and a word's BPE costs O(n log n)
(:func:`.bpe.split_word`); the results are the same token for token.

It runs long because it is one class whose methods are transformers' API, kept together so that a reader finds
each one where transformers users look for it.
"""
from __future__ import annotations

import functools
import os
import re
from collections import deque
from typing import Iterable, Sequence

import numpy as np

from .batching import (VERY_LARGE_INTEGER, BatchEncoding, batch_inputs, check_count, check_side, check_text, collate,
                       pad_rows, resolve_strategies, truncated_lengths)
from .bpe import END_OF_WORD, merge_ranks, split_word
from .files import (ADDITIONAL_SPECIAL_TOKENS, SPECIAL_ROLES, SPECIAL_TOKENS, TOKENIZER_SETTINGS, read_added_tokens,
                    read_merges, read_tokenizer_settings, read_vocab, write_added_tokens, write_tokenizer_files)
from .moses import moses_tokenize, normalize, prefix_end, suffix_start
from .offsets import align_words, piece_spans

# The per-word cache keeps the most recently used words, so that a corpus job's memory does not grow with its corpus.
# 65,536 words of at most 32 characters (longer ones are rare and not cached): 45 MB when every word is 32 random
# Latin letters, ~230 MB at worst if every piece were an unknown letter (benchmarks/README.md), while a text's
# frequent words, which make most of its running words, stay in it.
WORD_CACHE_SIZE = 2 ** 16
CACHED_WORD_CHARS = 32
# Truncation tokenizes a first guess of this many characters per token needed, then twice as many... (_plain_span)
CHARS_PER_TOKEN_GUESS = 8


class FlaubertTokenizer:
    """FlauBERT's tokenizer, equal to transformers' ``FlaubertTokenizer`` token for token.

    Args:
        vocab_file: ``vocab.json``, a ``{token: id}`` dict (67,542 entries for the published models).
        merges_file: ``merges.txt``, one merge ``"left right"`` per line, most frequent first.
        do_lowercase: lowercase before everything else (True for the ``*_uncased`` models).
        model_max_length: the longest sequence the model accepts; used by truncation/padding without ``max_length``.
        clean_up_tokenization_spaces: let :meth:`decode` glue ``" ."``, ``" ,"``, ``" ?"``, ``" !"`` to the word before.
        padding_side, truncation_side: ``"right"`` (default) or ``"left"``: where padding goes, which end truncation
            cuts. Attributes of the same names may be changed later, as in transformers.
        bos_token, eos_token, unk_token, sep_token, pad_token, cls_token, mask_token: the special tokens, as
            transformers names them (defaults: :data:`.files.SPECIAL_TOKENS`; FlauBERT has no ``eos_token``).
        extra_special_tokens: the additional special tokens (default ``<special0>`` ... ``<special9>``);
            ``additional_special_tokens`` is transformers 4's name for them.
        added_tokens: ``{token: id}`` of tokens added to the vocabulary (``added_tokens.json``).

    Words are BPE-split once and then found in a cache of the :data:`WORD_CACHE_SIZE` most recently used words (of
    at most :data:`CACHED_WORD_CHARS` characters): memory does not grow with the amount of text tokenized.
    """

    model_input_names = ["input_ids", "attention_mask"]
    is_fast = False  # as transformers' FlauBERT tokenizer (we still give offsets and word ids)

    def __init__(
        self,
        vocab_file: str | os.PathLike,
        merges_file: str | os.PathLike,
        do_lowercase: bool = False,
        model_max_length: int = VERY_LARGE_INTEGER,
        clean_up_tokenization_spaces: bool = False,
        padding_side: str = "right",
        truncation_side: str = "right",
        bos_token: str = SPECIAL_TOKENS["bos_token"],
        eos_token: str | None = None,
        unk_token: str = SPECIAL_TOKENS["unk_token"],
        sep_token: str = SPECIAL_TOKENS["sep_token"],
        pad_token: str = SPECIAL_TOKENS["pad_token"],
        cls_token: str = SPECIAL_TOKENS["cls_token"],
        mask_token: str = SPECIAL_TOKENS["mask_token"],
        extra_special_tokens: Sequence[str] | None = None,
        additional_special_tokens: Sequence[str] | None = None,
        added_tokens: dict[str, int] | None = None,
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
        self.padding_side = check_side("padding_side", padding_side)
        self.truncation_side = check_side("truncation_side", truncation_side)
        # tokens added by add_tokens/add_special_tokens -> id
        self.added_tokens_encoder: dict[str, int] = dict(added_tokens or {})
        self.decoder.update({i: token for token, i in self.added_tokens_encoder.items()})
        self._make_caches()
        roles = dict(bos_token=bos_token, eos_token=eos_token, unk_token=unk_token, sep_token=sep_token,
                     pad_token=pad_token, cls_token=cls_token, mask_token=mask_token)
        for role in SPECIAL_ROLES:
            if roles[role] is not None or role != "eos_token":  # only eos_token may be absent
                check_text(roles[role], role)
            setattr(self, role, roles[role])
        extra = extra_special_tokens if extra_special_tokens is not None else additional_special_tokens
        self.extra_special_tokens = list(ADDITIONAL_SPECIAL_TOKENS if extra is None else extra)
        self._set_special_tokens()

    def _set_special_tokens(self) -> None:
        """The special tokens' ids (appended to the vocabulary if missing) and the pattern that finds the tokens that
        are never split (special or added) in a text."""
        # Special tokens missing from the vocabulary are appended after it, as transformers does.
        for token in self.all_special_tokens:
            if token not in self.encoder and token not in self.added_tokens_encoder:
                self.encoder[token] = len(self.encoder)
                self.decoder[self.encoder[token]] = token
        self._special_ids = frozenset(self.all_special_ids)
        # Special and added tokens typed in the text ("Le <special1> est bleu.") are kept whole, never normalised or
        # split. Longest first, so that a token that is a prefix of another cannot win.
        by_length = sorted({*self.all_special_tokens, *self.added_tokens_encoder}, key=len, reverse=True)
        self._special_pattern = re.compile("|".join(map(re.escape, by_length)))

    def _make_caches(self) -> None:
        """Bounded caches (functools' LRU): word -> (BPE pieces, their ids); original character -> its normalisation."""
        self._known_pieces = {token: token for token in self.encoder}
        self._cached_word = functools.lru_cache(maxsize=WORD_CACHE_SIZE)(self._split_word)
        self._normalise_unit = functools.lru_cache(maxsize=WORD_CACHE_SIZE)(self._normalise_unit_uncached)

    def __getstate__(self) -> dict:
        """Pickling (multiprocessing, ``datasets.map``) leaves the caches behind: they start empty on the other side."""
        state = dict(self.__dict__)
        del state["_cached_word"], state["_normalise_unit"], state["_known_pieces"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._make_caches()

    # transformers 4's name for the extra special tokens
    additional_special_tokens = property(lambda self: self.extra_special_tokens,
                                         lambda self, tokens: setattr(self, "extra_special_tokens", list(tokens)))

    # -- construction and saving ---------------------------------------------------------------------------------------

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs) -> "FlaubertTokenizer":
        """Load ``vocab.json``, ``merges.txt`` and (if present) ``tokenizer_config.json`` and ``added_tokens.json``
        from a folder or a hub repository. ``kwargs``, as in transformers: huggingface_hub's options (``revision``,
        ``cache_dir``, ``local_files_only``, ``token``...) and overrides of the saved settings
        (``model_max_length=256``, ``padding_side="left"``...).
        """
        from ..checkpoints.hub import HUB_OPTIONS, check_keywords, resolve_name

        check_keywords(f"{cls.__name__}.from_pretrained", kwargs, (*HUB_OPTIONS, *TOKENIZER_SETTINGS))
        hub_options = {name: value for name, value in kwargs.items() if name in HUB_OPTIONS}
        folder = os.fspath(resolve_name(pretrained_model_name_or_path, "tokenizer", **hub_options))
        settings = read_tokenizer_settings(folder)
        if "additional_special_tokens" in kwargs:  # transformers 4's name overrides the saved list too
            kwargs["extra_special_tokens"] = kwargs.pop("additional_special_tokens")
        settings.update({name: value for name, value in kwargs.items() if name in TOKENIZER_SETTINGS})
        return cls(os.path.join(folder, "vocab.json"), os.path.join(folder, "merges.txt"),
                   added_tokens=read_added_tokens(folder), **settings)

    def save_pretrained(self, folder: str | os.PathLike) -> tuple[str, ...]:
        """Write ``vocab.json``, ``merges.txt``, ``tokenizer_config.json`` and, when tokens were added,
        ``added_tokens.json`` into ``folder`` (created if needed), crash-safe: they are moved in together
        (``atomic.atomic_folder``); the folder's other files stay. Returns the paths written."""
        from ..checkpoints.atomic import atomic_folder

        with atomic_folder(folder) as staging:
            written = write_tokenizer_files(
                staging, self.encoder, sorted(self.bpe_ranks, key=self.bpe_ranks.get),
                do_lowercase=self.do_lowercase, model_max_length=self.model_max_length,
                clean_up_tokenization_spaces=self.clean_up_tokenization_spaces,
                additional_special_tokens=self.extra_special_tokens, special_tokens=self.special_tokens_map,
                padding_side=self.padding_side, truncation_side=self.truncation_side)
            written = (written[2], *written[:2])  # transformers' order: tokenizer_config.json, vocab.json, merges.txt
            if self.added_tokens_encoder:
                written += (write_added_tokens(staging, self.added_tokens_encoder),)
        return tuple(os.path.join(os.fspath(folder), os.path.basename(path)) for path in written)

    # -- vocabulary ----------------------------------------------------------------------------------------------------

    @property
    def special_tokens_map(self) -> dict[str, str]:
        """``{role: token}`` for the roles that have a token: ``{"bos_token": "<s>", "unk_token": "<unk>", ...}``."""
        return {role: getattr(self, role) for role in SPECIAL_ROLES if getattr(self, role) is not None}

    @property
    def all_special_tokens(self) -> list[str]:
        """``<s> <unk> </s> <pad> <special1> <special0> <special2> ... <special9>`` (transformers' order)."""
        tokens = list(dict.fromkeys(self.special_tokens_map.values()))
        return tokens + [t for t in self.extra_special_tokens if t not in tokens]

    @property
    def all_special_ids(self) -> list[int]:
        return [self._id_of(t) for t in self.all_special_tokens]

    def _id_of(self, token: str | None) -> int | None:
        """The id of ``token`` (added tokens first), ``<unk>``'s if unknown, None for None."""
        if token is None:
            return None
        found = self.added_tokens_encoder.get(token, self.encoder.get(token))
        return found if found is not None else self.encoder[self.unk_token]

    bos_token_id = property(lambda self: self._id_of(self.bos_token))
    eos_token_id = property(lambda self: self._id_of(self.eos_token))  # None: FlauBERT ends sequences with </s>
    unk_token_id = property(lambda self: self._id_of(self.unk_token))
    sep_token_id = property(lambda self: self._id_of(self.sep_token))
    pad_token_id = property(lambda self: self._id_of(self.pad_token))
    cls_token_id = property(lambda self: self._id_of(self.cls_token))
    mask_token_id = property(lambda self: self._id_of(self.mask_token))

    @property
    def vocab_size(self) -> int:
        """The number of tokens of the vocabulary, special tokens included, added tokens not (see ``len()``)."""
        return len(self.encoder)

    def __len__(self) -> int:
        return len(self.get_vocab())

    def get_vocab(self) -> dict[str, int]:
        """A copy of the ``{token: id}`` vocabulary, added tokens included."""
        return {**self.encoder, **self.added_tokens_encoder}

    @property
    def max_len_single_sentence(self) -> int:
        """The most text tokens one sequence can hold: ``model_max_length`` minus ``<s>`` and ``</s>``."""
        return self.model_max_length - self.num_special_tokens_to_add(pair=False)

    @property
    def max_len_sentences_pair(self) -> int:
        """The most text tokens a pair can hold: ``model_max_length`` minus ``<s>``, ``</s>``, ``</s>``."""
        return self.model_max_length - self.num_special_tokens_to_add(pair=True)

    def num_special_tokens_to_add(self, pair: bool = False) -> int:
        """How many special tokens :meth:`build_inputs_with_special_tokens` adds: 2, or 3 for a pair."""
        return 3 if pair else 2

    def add_tokens(self, new_tokens: str | Sequence[str], special_tokens: bool = False) -> int:
        """Add tokens that the text will keep whole (matched as typed, before normalisation), with new ids after the
        vocabulary's. Returns how many were new. Saved in ``added_tokens.json``."""
        tokens = [new_tokens] if isinstance(new_tokens, str) else list(new_tokens)
        for i, token in enumerate(tokens):
            check_text(token, f"new_tokens[{i}]")
        return self._add([token for token in tokens if token], special=special_tokens)

    def add_special_tokens(self, special_tokens_dict: dict) -> int:
        """Set special tokens by role (``{"eos_token": "<eos>"}``); ``extra_special_tokens`` (or
        ``additional_special_tokens``) replaces the extra ones, as in transformers 5. Returns how many tokens
        were new to the vocabulary."""
        if not isinstance(special_tokens_dict, dict):
            raise TypeError(f"special_tokens_dict must be a dict, not {type(special_tokens_dict).__name__}")
        extra_names = ("extra_special_tokens", "additional_special_tokens")
        for role, value in special_tokens_dict.items():
            if role not in (*SPECIAL_ROLES, *extra_names):
                raise ValueError(f"special_tokens_dict: unknown role {role!r}; use one of "
                                 f"{', '.join((*SPECIAL_ROLES, *extra_names))}")
            for i, token in enumerate([value] if role in SPECIAL_ROLES else value):
                check_text(token, f"special_tokens_dict[{role!r}]" + (f"[{i}]" if role in extra_names else ""))
        tokens = []
        for role, value in special_tokens_dict.items():
            if role in extra_names:
                self.extra_special_tokens = list(value)
                tokens += value
            else:
                setattr(self, role, value)
                tokens.append(value)
        return self._add(tokens, special=True)

    def _add(self, tokens: list[str], special: bool) -> int:
        """Give ``tokens`` not yet in the vocabulary the next free ids, and keep them whole in text; -> how many."""
        new = 0
        for token in tokens:
            if token not in self.added_tokens_encoder and token not in self.encoder:
                self.added_tokens_encoder[token] = len(self)
                self.decoder[len(self) - 1] = token
                new += 1
        if special:
            self.extra_special_tokens += [t for t in tokens if t not in self.all_special_tokens]
        self._set_special_tokens()
        return new

    def convert_tokens_to_ids(self, tokens: str | Iterable[str]) -> int | list[int]:
        """Vocabulary look-up; unknown tokens get the id of ``<unk>``."""
        if isinstance(tokens, str):
            return self._id_of(tokens)
        return [self._id_of(token) for token in tokens]

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
        "tionnellement</w>")``. The algorithm is :func:`.bpe.split_word`; words repeat a lot in text, so results
        are cached and most calls are a dict look-up."""
        return self._bpe_with_ids(word)[0]

    def _bpe_with_ids(self, word: str) -> tuple[tuple[str, ...], tuple[int, ...]]:
        """:meth:`bpe` and the ids of the pieces, through the bounded per-word cache (long words skip it)."""
        return self._split_word(word) if len(word) > CACHED_WORD_CHARS else self._cached_word(word)

    def _split_word(self, word: str) -> tuple[tuple[str, ...], tuple[int, ...]]:
        # subtle: the cache keeps the vocabulary's own string for each known piece, not a new copy of it (a word of
        # 32 one-letter pieces would otherwise hold 32 new strings: 225 MB for a full cache of Cyrillic letters)
        symbols = tuple(self._known_pieces.get(s, s) for s in split_word(word, self.bpe_ranks))
        return symbols, tuple(self.encoder.get(s, self.unk_token_id) for s in symbols)

    # -- text -> tokens ------------------------------------------------------------------------------------------------

    def _segments(self, text: str) -> Iterable[tuple[int, int, bool]]:
        """Cut ``text`` around the special (and added) tokens typed in it: ``(start, end, is_special)`` spans
        covering it, lazily."""
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

    def _encode_text(self, text: str, with_offsets: bool = False, limit: int | None = None, from_end: bool = False):
        """One text -> ``(ids, word_ids, offsets)``, three lists with one entry per token (offsets None if not asked).

        This is ``tokenize`` + ``convert_tokens_to_ids`` in one pass, with the per-word BPE cache holding the ids too.
        With ``limit``, only the first ``limit`` tokens are wanted (the last ones, ``from_end``): the text beyond them
        is not tokenized, and from the end, word ids count from the first word kept.
        """
        segments = self._segments(text)
        if limit is not None and from_end:
            # The last segments that can hold `limit` tokens: a special one holds one, and plain ones come between.
            segments = reversed(deque(segments, maxlen=2 * limit + 2))
        parts, found = [], 0  # per segment: (ids, word ids counted from 0, offsets, number of words)
        for start, end, is_special in segments:
            if limit is not None and found >= limit:
                break
            if is_special:
                parts.append(([self._id_of(text[start:end])], [0], [(start, end)], 1))
            else:
                need = None if limit is None else limit - found
                parts.append(self._plain_span(text, start, end, with_offsets, need, from_end))
            found += len(parts[-1][0])
        ids, word_ids, offsets, n_words = [], [], [], 0
        for part_ids, part_words, part_offsets, part_n_words in (reversed(parts) if from_end else parts):
            ids += part_ids
            word_ids += [n_words + w for w in part_words]
            offsets += part_offsets
            n_words += part_n_words
        if limit is not None and len(ids) > limit:
            keep = slice(len(ids) - limit, None) if from_end else slice(limit)
            ids, word_ids, offsets = ids[keep], _from_first_word(word_ids[keep]), offsets[keep]
        return ids, word_ids, offsets if with_offsets else None

    def _plain_span(self, text: str, start: int, end: int, with_offsets: bool, need: int | None, from_end: bool):
        """:meth:`_plain_tokens` of ``text[start:end]``, or of only as much of its start (its end, ``from_end``) as
        ``need`` tokens take: tokenize a guess of ``CHARS_PER_TOKEN_GUESS`` characters per token, cut where the words
        cannot change (:func:`.moses.prefix_end`), twice as much while that gives too few tokens. The tokens found
        are exactly the whole text's first (last) ones, which the caller keeps."""
        if need is not None:
            size = CHARS_PER_TOKEN_GUESS * need + 16
            while size < end - start:
                cut = suffix_start(text, start, size, end) if from_end else prefix_end(text, start, size, end)
                if cut is None:
                    break  # nowhere to cut beyond the guess: the whole span
                part = self._plain_tokens(text, *((cut, end) if from_end else (start, cut)), with_offsets)
                if len(part[0]) >= need:
                    return part
                size *= 2
        return self._plain_tokens(text, start, end, with_offsets)

    def _plain_tokens(self, text: str, start: int, end: int, with_offsets: bool):
        """``text[start:end]`` (no special token in it) -> ``(ids, word ids from 0, offsets, number of words)``."""
        words = self._words(text[start:end])
        char_spans = align_words(text[start:end], start, words, self._normalise_unit) if with_offsets else None
        ids, word_ids, offsets = [], [], []
        for w, word in enumerate(words):
            pieces, piece_ids = self._bpe_with_ids(word)
            ids.extend(piece_ids)
            word_ids.extend([w] * len(piece_ids))
            if with_offsets:
                offsets.extend(piece_spans(pieces, char_spans[w]))
        return ids, word_ids, offsets, len(words)

    def _encode_words(self, words: Sequence[str], with_offsets: bool, limit: int | None, from_end: bool):
        """Pre-split words (``is_split_into_words``) -> ``(ids, word_ids, offsets)``: each word tokenized alone, word
        ids are the words' indices in the list and offsets are within each word (as transformers' fast tokenizers)."""
        order = range(len(words) - 1, -1, -1) if from_end else range(len(words))
        parts, found = [], 0
        for i in order:
            if limit is not None and found >= limit:
                break
            part_ids, _, part_offsets = self._encode_text(words[i], with_offsets)
            parts.append((part_ids, [i] * len(part_ids), part_offsets or []))
            found += len(part_ids)
        if from_end:
            parts.reverse()
        return ([i for p in parts for i in p[0]], [w for p in parts for w in p[1]],
                [o for p in parts for o in p[2]] if with_offsets else None)

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

    def _normalise_unit_uncached(self, unit: str) -> str:
        """Normalise one original character (with its combining marks) on its own, spaces removed."""
        return "".join(normalize(unit, self.do_lowercase).split())

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
        stride: int = 0,
        is_split_into_words: bool = False,
        pad_to_multiple_of: int | None = None,
        padding_side: str | None = None,
        return_overflowing_tokens: bool = False,
        return_length: bool = False,
        verbose: bool = True,
    ) -> BatchEncoding:
        """Encode one text (or pair), or a batch of them, for the model.

        Args:
            text: a string, or a list of strings (a batch), or pairs ``[first, second]`` / ``(first, second)``.
            text_pair: the second segment (question answering, sentence pairs): a string, or a list as long as ``text``.
            padding: ``True``/``"longest"`` pads a batch to its longest sequence, ``"max_length"`` to ``max_length``;
                ``pad_to_multiple_of`` rounds that length up, ``padding_side`` (default: the attribute) says where.
            truncation: ``True``/``"longest_first"`` removes tokens one at a time from the longer segment,
                ``"only_first"`` / ``"only_second"`` from that segment only, at the end (``truncation_side="left"``:
                the start). Giving ``max_length`` alone also truncates. Only as much text as the kept tokens need is
                tokenized (see :meth:`_plain_span`).
            return_overflowing_tokens: add the truncated tokens (``overflowing_tokens``, with ``stride`` kept tokens
                before them) and ``num_truncated_tokens``, when some were truncated; as transformers' FlaubertTokenizer
                (no ``overflow_to_sample_mapping``: that is a fast tokenizer's).
            is_split_into_words: ``text`` (and ``text_pair``) are lists of words, tokenized one by one; ``word_ids``
                are then indices in those lists.
            return_tensors: ``None`` for lists, ``"np"`` for int64 arrays of shape ``(batch, seq_len)``.
            return_token_type_ids: add ``token_type_ids``. Off by default, as in transformers: FlauBERT *adds* token
                type embeddings (through its word embeddings), so sending them by default would change its outputs.
            return_offsets_mapping: add ``offset_mapping``, each token's ``(start, end)`` in ``text`` (see
                :func:`.offsets.align_words` for the rule); ``(0, 0)`` for the special and padding tokens added.
            return_special_tokens_mask: add ``special_tokens_mask`` (1 on added special and padding tokens).
            return_length: add ``length``, the number of tokens (after padding for a single text, before it for a
                batch, as transformers).
            verbose: accepted for transformers' sake; we log nothing.

        Returns:
            a :class:`BatchEncoding` with ``input_ids`` and ``attention_mask`` (1 = real token, 0 = padding).
        """
        is_batch, texts, pairs = batch_inputs(text, text_pair, bool(is_split_into_words))
        padding, truncation, max_length = resolve_strategies(padding, truncation, max_length, self.model_max_length)
        if return_tensors not in (None, "np"):
            raise ValueError(f"return_tensors={return_tensors!r}: use None (lists) or 'np' (NumPy arrays)")
        padding_side = check_side("padding_side", self.padding_side if padding_side is None else padding_side)
        from_end = check_side("truncation_side", self.truncation_side) == "left"
        stride = check_count("stride", stride, 0)
        if pad_to_multiple_of is not None:
            pad_to_multiple_of = check_count("pad_to_multiple_of", pad_to_multiple_of, 1)
        overflow = bool(return_overflowing_tokens) and truncation != "do_not_truncate"
        if overflow and truncation == "longest_first" and any(p is not None for p in pairs):
            raise ValueError("return_overflowing_tokens=True cannot say which tokens of a pair overflow with "
                             "truncation='longest_first' (transformers refuses it too): use 'only_first' or "
                             "'only_second'")
        rows = [self._encode_pair(t, p, add_special_tokens, truncation, max_length, return_offsets_mapping,
                                  stride if overflow else None, from_end)
                for t, p in zip(texts, pairs)]  # one dict per sequence
        lengths = [len(row["input_ids"]) for row in rows]
        pad_rows(rows, padding, max_length, self.pad_token_id, padding_side, pad_to_multiple_of)
        overflowed = overflow and return_tensors is None and any("overflowing_tokens" in row for row in rows)
        for row, length in zip(rows, lengths):
            row.setdefault("overflowing_tokens", [])
            row.setdefault("num_truncated_tokens", 0)
            row["length"] = length if is_batch else len(row["input_ids"])
        # transformers' key order: a batch gets its length before its attention mask, a single text after
        keys = ["input_ids"]
        keys += ["token_type_ids"] * bool(return_token_type_ids)
        keys += ["special_tokens_mask"] * bool(return_special_tokens_mask)
        keys += ["overflowing_tokens", "num_truncated_tokens"] * overflowed
        keys += ["length"] * bool(return_length and is_batch)
        keys += ["attention_mask"] * bool(return_attention_mask)
        keys += ["length"] * bool(return_length and not is_batch)
        keys += ["offset_mapping"] * bool(return_offsets_mapping)
        return collate(rows, keys, return_tensors, is_batch)

    def _encode_input(self, text, with_offsets: bool, limit: int | None, from_end: bool):
        """A text, or a list of words (``is_split_into_words``) -> ``(ids, word_ids, offsets)``."""
        if isinstance(text, str):
            return self._encode_text(text, with_offsets, limit, from_end)
        return self._encode_words(text, with_offsets, limit, from_end)

    def _encode_pair(self, text, text_pair, add_special_tokens, truncation, max_length, with_offsets, stride,
                     from_end) -> dict:
        """One sequence (single text or pair): tokenize, truncate, add special tokens. Lists, not yet padded.

        ``stride`` is None unless overflowing tokens are asked for (then the whole text must be tokenized); else,
        with truncation, each segment is tokenized only as far as it can matter: ``room + 1`` tokens where ``room``
        is what the segments may keep (``truncated_lengths`` gives the same answer on those capped lengths).
        """
        n_special = self.num_special_tokens_to_add(text_pair is not None) if add_special_tokens else 0
        truncating = truncation != "do_not_truncate" and max_length is not None
        room = max((max_length or 0) - n_special, 0)

        def limit(other: tuple | None = None) -> int | None:
            if not truncating or stride is not None:
                return None
            return max(room - (len(other[0]) if other else 0), 0) + 1

        def encode(segment, segment_limit):
            return None if segment is None else self._encode_input(segment, with_offsets, segment_limit, from_end)

        if truncation == "only_second":  # (a single text is not truncated at all)
            first = encode(text, None)
            second = encode(text_pair, limit(first))
        elif truncation == "only_first":
            second = encode(text_pair, None)
            first = encode(text, limit(second))
        else:
            first, second = encode(text, limit()), encode(text_pair, limit())
        total = len(first[0]) + (len(second[0]) if second else 0) + n_special
        row = {}
        if truncating and total > max_length:
            remove = total - max_length
            keep_first, keep_second = truncated_lengths(len(first[0]), len(second[0]) if second else None, remove,
                                                        truncation)
            if stride is not None:
                overflowing = _overflowing(second if truncation == "only_second" else first, remove, stride, from_end)
                if overflowing:
                    row.update(overflowing_tokens=overflowing, num_truncated_tokens=remove)
            split = not isinstance(text, str)
            first = _keep(first, keep_first, from_end, split)
            second = _keep(second, keep_second, from_end, split) if second else second
        ids, words, offsets = first
        if not with_offsets:
            offsets = [None] * len(ids)
            second = second and (*second[:2], [None] * len(second[0]))
        if add_special_tokens:
            pair_ids = second[0] if second else None
            row.update({
                "input_ids": self.build_inputs_with_special_tokens(ids, pair_ids),
                "token_type_ids": self.create_token_type_ids_from_sequences(ids, pair_ids),
                "special_tokens_mask": self.get_special_tokens_mask(ids, pair_ids),
                "word_ids": [None, *words, None, *(second[1] + [None] if second else [])],
                "offset_mapping": [(0, 0), *offsets, (0, 0), *(second[2] + [(0, 0)] if second else [])],
            })
        else:
            row.update({
                "input_ids": ids + (second[0] if second else []),
                "token_type_ids": [0] * (len(ids) + (len(second[0]) if second else 0)),
                "word_ids": words + (second[1] if second else []),
                "offset_mapping": offsets + (second[2] if second else []),
            })
            row["special_tokens_mask"] = [0] * len(row["input_ids"])
        return row

    def encode(self, text: str, text_pair: str | None = None, add_special_tokens: bool = True, **kwargs) -> list[int]:
        """Just the ids of one text (or pair): ``encode("Bonjour")`` -> ``[0, 6247, 1]``."""
        if isinstance(text, (list, tuple)) and not kwargs.get("is_split_into_words"):
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


def _from_first_word(word_ids: list[int]) -> list[int]:
    """Word ids counted from the first one's (what truncation from the start keeps)."""
    return [w - word_ids[0] for w in word_ids] if word_ids else word_ids


def _keep(segment: tuple, keep: int, from_end: bool, split: bool) -> tuple:
    """The ``keep`` tokens a segment ``(ids, word_ids, offsets)`` keeps: its first, or its last (``from_end``, with
    the word ids then counted from the first word kept, unless they index the user's pre-split words)."""
    if not from_end:
        return tuple(None if x is None else x[:keep] for x in segment)
    ids, words, offsets = (None if x is None else x[len(x) - keep:] for x in segment)
    return ids, words if split else _from_first_word(words), offsets


def _overflowing(segment: tuple | None, remove: int, stride: int, from_end: bool) -> list:
    """transformers' ``overflowing_tokens``: the ``remove`` tokens truncation takes from ``segment`` (the one its
    strategy truncates; None if there is none) and the ``stride`` tokens next to them."""
    ids = segment[0] if segment else []
    window = min(len(ids), stride + remove)
    return ids[:window] if from_end else ids[len(ids) - window:]


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
