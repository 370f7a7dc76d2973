"""FlauBERT's tokenizer: Moses normalisation, Moses word splitting, then byte-pair encoding (BPE).

A transformer never sees text, only integers. Turning "L'été, enfin !" into ``[0, 22, 70, 14, 375, 82, 1]`` (ids of the
published uncased vocabulary) takes three stages, and this file implements each one so you can read it top to bottom:

1. **Normalisation** (:func:`normalize`). The same sentence can be typed many ways: ``’`` or ``'``, ``«`` or ``"``,
   ``é`` as one code point or as ``e`` + a combining accent, with or without capitals. FlauBERT was trained on text
   cleaned by the scripts of the Moses machine-translation toolkit, so we must clean exactly the same way, or the
   model sees spellings it never met in training.
2. **Pre-tokenisation into words** (:func:`moses_tokenize`). Moses' French tokenizer splits punctuation off words
   (``enfin !`` -> ``enfin`` ``!``) and cuts elisions after the apostrophe (``l'été`` -> ``l'`` ``été``).
3. **BPE** (:meth:`FlaubertTokenizer.bpe`). Each word is split into characters, then pairs of adjacent symbols are
   merged, most frequent pair (in the training corpus) first, as listed in ``merges.txt``. Frequent words end up as one
   symbol (``été</w>``), rare ones as a few pieces (``anticonstitutionnellement`` -> ``anti`` ``constitu``
   ``tionnellement</w>``). ``</w>`` marks the end of a word, so ``le`` in ``lequel`` and the word ``le</w>`` are
   different symbols.

Finally each symbol is looked up in ``vocab.json`` and special tokens frame the sequence: ``<s> words </s>``.

Everything here reproduces transformers' ``FlaubertTokenizer`` (5.x) id for id; the tests compare the two on a whole
novel. What transformers cannot do (it has no "fast" tokenizer for FlauBERT) and we add: the character span of every
token in the *original* text (``return_offsets_mapping=True``) and ``word_ids()``, which token classification and
question answering need.

Speed: transformers calls sacremoses, which recompiles or re-looks-up ~50 regular expressions and rebuilds a set of
2,000 lowercase letters for every word that ends with a period. We run the very same rules (taken from sacremoses, so
the behaviour cannot drift) precompiled once, skip the rules about characters absent from the text, replace the
per-character Python loops by ``str.translate`` and a printable-text fast path, and cache BPE results per word:
2-2.5x faster than transformers (``benchmarks/tokenizer.py``). What remains is mostly BPE on first sight of each word.
"""
from __future__ import annotations

import json
import os
import re
import unicodedata
from typing import Iterable, Sequence

import numpy as np
from sacremoses import MosesPunctNormalizer, MosesTokenizer

# ---------------------------------------------------------------------------------------------------------------------
# Stage 1: normalisation
# ---------------------------------------------------------------------------------------------------------------------

# Moses' replace-unicode-punctuation.perl: full-width (CJK) punctuation and digits, curly apostrophe, ellipsis...
# become their ASCII look-alikes. All but two rules map one character to a fixed string, which ``str.translate``
# does in a single pass instead of ~40 ``str.replace`` calls.
_UNICODE_PUNCT_TABLE = str.maketrans({
    "，": ",", "、": ",", "”": '"', "“": '"', "∶": ":", "：": ":", "？": "?", "《": '"', "》": '"', "）": ")",
    "！": "!", "（": "(", "；": ";", "」": '"', "「": '"', "～": "~", "’": "'", "…": "...", "━": "-", "〈": "<",
    "〉": ">", "【": "[", "】": "]", "％": "%",
    **{chr(0xFF10 + d): str(d) for d in range(10)},  # full-width digits ０..９
})
# The two context rules: an ideographic or full-width full stop also swallows the spaces after it.
_CJK_FULL_STOP = re.compile(r"[。．]\s*")

# sacremoses' MosesPunctNormalizer for French, compiled once. Its rules, in order: tidy spaces around brackets and
# ``:;%``; straighten quotes (``„“”«»`` -> ``"``, ``‘’´`` -> ``'``); ``–`` and ``—`` become ``-``; ``…`` -> ``...``;
# no-break spaces before French punctuation are dropped; ``,"`` becomes ``",``; and a no-break space between two
# digits (French thousands, ``1 000``) becomes a comma. We take the rule list from sacremoses itself.
# Most rules are about one rare character („ “ ” – — ´ ‘ ’ ‚ … « » º, the no-break space): each such rule is
# skipped when its character is absent from the text, which saves two thirds of the regex passes on ordinary French.
# subtle: this is exact because in every sacremoses pattern a non-ASCII character is a plain literal that any match
# must contain (no alternation or character class involves one); `_trigger` is None for all-ASCII patterns.
def _trigger(pattern: str) -> str | None:
    return next((ch for ch in pattern if not ch.isascii()), None)


_PUNCT_RULES = [(_trigger(pattern), re.compile(pattern), repl)
                for pattern, repl in MosesPunctNormalizer(lang="fr").substitutions]

# Control characters of the Latin-1 range (category Cc): deleted by one ``str.translate``.
_ASCII_CONTROLS = dict.fromkeys([*range(0x00, 0x20), *range(0x7F, 0xA0)])


def _replace_unicode_punct(text: str) -> str:
    """Moses' replace-unicode-punctuation step: CJK/full-width punctuation and ``’ …`` to ASCII."""
    return _CJK_FULL_STOP.sub(". ", text.translate(_UNICODE_PUNCT_TABLE))


def _moses_punct_norm(text: str) -> str:
    """sacremoses' ``MosesPunctNormalizer(lang="fr").normalize``: quotes, dashes, spaces around punctuation."""
    for trigger, pattern, repl in _PUNCT_RULES:
        if trigger is None or trigger in text:
            text = pattern.sub(repl, text)
    return text.strip()


def _remove_non_printing(text: str) -> str:
    """Delete every character of Unicode category C (control, format, surrogate, private use, unassigned).

    subtle: newlines and tabs are controls too, so ``"le\\nfin"`` becomes ``"lefin"``: the words on either side of a
    line break are glued together. That is what FlauBERT's reference tokenizer does, so we do it as well (join the
    lines of a paragraph with spaces first if you do not want it).
    """
    text = text.translate(_ASCII_CONTROLS)
    if text.isprintable():  # fast path: printable text has no category-C character left (nor exotic spaces)
        return text
    return "".join(ch for ch in text if unicodedata.category(ch)[0] != "C")


def normalize(text: str | bytes, lowercase: bool = False) -> str:
    """Clean ``text`` exactly as FlauBERT's training data was cleaned (before Moses splits it into words).

    The steps, in the order transformers applies them:

    1. ````` `` ````` and ``''`` (LaTeX-style quotes) become ``"``.
    2. Bytes are decoded as UTF-8, silently dropping invalid sequences (a ``str`` is left as it is).
    3. Unicode NFC: ``e`` + combining acute (2 code points) becomes ``é`` (1 code point), so both spellings meet
       the same vocabulary entry.
    4. Lowercasing, for the uncased models.
    5. Moses' unicode punctuation replacement (``’`` -> ``'``, ``…`` -> ``...``, full-width ``，`` -> ``,``).
    6. Moses' punctuation normaliser (French quotes ``« »`` -> ``"``, dashes, spaces around punctuation).
    7. Removal of non-printing characters (Unicode category C), newlines included.

    >>> normalize("« L’Été… »", lowercase=True)
    '" l\\'été... "'
    """
    if isinstance(text, bytes):
        text = text.replace(b"``", b'"').replace(b"''", b'"').decode("utf-8", errors="ignore")
    else:
        text = text.replace("``", '"').replace("''", '"')
    text = unicodedata.normalize("NFC", text)
    if lowercase:
        text = text.lower()
    return _remove_non_printing(_moses_punct_norm(_replace_unicode_punct(text)))


# ---------------------------------------------------------------------------------------------------------------------
# Stage 2: Moses word splitting (French)
# ---------------------------------------------------------------------------------------------------------------------

_MOSES = MosesTokenizer(lang="fr")  # we borrow its compiled regexes and character classes, not its slow loops
_NONBREAKING = frozenset(_MOSES.NONBREAKING_PREFIXES)  # "M", "Mme", "etc", ...: a period after them is kept
_NUMERIC_ONLY = frozenset(_MOSES.NUMERIC_ONLY_PREFIXES)  # prefixes kept only before a number ("No. 5"); none in fr
_IS_ALPHA = frozenset(_MOSES.IsAlpha)
_IS_LOWER = frozenset(_MOSES.IsLower)
_STARTS_WITH_DIGIT = re.compile(r"[0-9]")
_MOSES_SPLIT_RULES = [  # applied after the multi-dot protection, in Moses' order
    _MOSES.COMMA_SEPARATE_1,  # "a,b" -> "a , b" but "5,300" stays a number
    _MOSES.COMMA_SEPARATE_2,
    _MOSES.COMMA_SEPARATE_3,
    *_MOSES.FR_IT_SPECIFIC_APOSTROPHE,  # "l'été" -> "l' été"; a quote not inside a word stands alone
]


def _split_final_periods(words: list[str]) -> list[str]:
    """Moses' nonbreaking-prefix rule: a word ending in ``.`` loses its period to a separate token unless it is an
    abbreviation. Kept as one token: ``M.`` (a known prefix), ``U.S.`` (the rest has a dot and a letter), and any word
    followed by a lowercase word (the sentence is not over)."""
    last = len(words) - 1
    for i, word in enumerate(words):
        if len(word) < 2 or word[-1] != ".":
            continue
        prefix = word[:-1]
        if (
            ("." in prefix and any(ch in _IS_ALPHA for ch in prefix))
            or (prefix in _NONBREAKING and prefix not in _NUMERIC_ONLY)
            or (i != last and words[i + 1][0] in _IS_LOWER)
        ):
            continue
        if prefix in _NUMERIC_ONLY and i != last and _STARTS_WITH_DIGIT.match(words[i + 1]):
            continue
        words[i] = prefix + " ."
    return words


def moses_tokenize(text: str) -> list[str]:
    """Split normalised text into words as sacremoses' ``MosesTokenizer(lang="fr").tokenize(text, escape=False)``.

    Moses works by inserting spaces with regular expressions, then splits on whitespace:

    1. collapse whitespace, drop ASCII control characters, strip;
    2. surround every character that is not a letter, digit, space or one of ``. ' ` , -`` with spaces;
    3. protect runs of dots (``...`` becomes a placeholder so the period rules leave it alone);
    4. split commas off, except between digits (``5,300``);
    5. French elision: ``l'été`` -> ``l'`` ``été`` (the apostrophe stays on the left word);
    6. split a final period off each word unless it is an abbreviation (:func:`_split_final_periods`);
    7. split a trailing ``.'``, then restore the dot runs.

    >>> moses_tokenize("l'été, enfin... M. Dupont arrive.")
    ["l'", 'été', ',', 'enfin', '...', 'M.', 'Dupont', 'arrive', '.']
    """
    space, junk = _MOSES.DEDUPLICATE_SPACE, _MOSES.ASCII_JUNK
    text = junk[0].sub(junk[1], space[0].sub(space[1], text)).strip()
    text = _MOSES.PAD_NOT_ISALNUM[0].sub(_MOSES.PAD_NOT_ISALNUM[1], text)
    text = _MOSES.replace_multidots(text)
    for pattern, repl in _MOSES_SPLIT_RULES:
        text = pattern.sub(repl, text)
    text = " ".join(_split_final_periods(text.split()))
    text = _MOSES.TRAILING_DOT_APOSTROPHE[0].sub(_MOSES.TRAILING_DOT_APOSTROPHE[1], text)
    return _MOSES.restore_multidots(text).split()


# ---------------------------------------------------------------------------------------------------------------------
# Stage 3: byte-pair encoding, vocabulary and special tokens
# ---------------------------------------------------------------------------------------------------------------------

SPECIAL_TOKENS = {  # role -> token, as transformers' FlaubertTokenizer has them
    "bos_token": "<s>",  # starts every sequence
    "sep_token": "</s>",  # ends each segment
    "cls_token": "</s>",  # subtle: FlauBERT's "classification" token is </s>, not <s> (an XLM legacy)
    "pad_token": "<pad>",
    "unk_token": "<unk>",
    "mask_token": "<special1>",
}
ADDITIONAL_SPECIAL_TOKENS = [f"<special{i}>" for i in range(10)]
PADDING_STRATEGIES = (False, True, "longest", "max_length", "do_not_pad")
TRUNCATION_STRATEGIES = (None, False, True, "longest_first", "only_first", "only_second", "do_not_truncate")
_LARGE_INTEGER = int(1e20)  # transformers' "no maximum length" threshold for model_max_length
TOKENIZER_SETTINGS = ("do_lowercase", "model_max_length", "clean_up_tokenization_spaces")  # from_pretrained may override


END_OF_WORD = "</w>"  # marks a word's last symbol, so that "la" inside "malade" and the word "la" differ
_NO_MERGE = float("inf")  # the "rank" of a pair that is not in merges.txt


def word_symbols(word: str) -> tuple[str, ...]:
    """A word as its starting symbols, one per character, the last one marked as ending the word:
    ``"chat"`` -> ``("c", "h", "a", "t</w>")``."""
    return (*word[:-1], word[-1] + END_OF_WORD)


def merge_pair(symbols: tuple[str, ...], pair: tuple[str, str]) -> tuple[str, ...]:
    """Replace every occurrence of ``pair`` in ``symbols`` by one merged symbol, left to right.

    subtle: the scan skips past a merged pair, so ``a a a`` with the merge ``(a, a)`` gives ``aa a``, exactly as the
    encoder does (the BPE trainer learns merges with this same function, so training and encoding agree).
    """
    left, right = pair
    out, i, n = [], 0, len(symbols)
    while i < n:
        if i < n - 1 and symbols[i] == left and symbols[i + 1] == right:
            out.append(left + right)
            i += 2
        else:
            out.append(symbols[i])
            i += 1
    return tuple(out)


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
        model_max_length: int = _LARGE_INTEGER,
        clean_up_tokenization_spaces: bool = False,
    ):
        for argument, path in (("vocab_file", vocab_file), ("merges_file", merges_file)):
            if not os.path.isfile(path):
                raise OSError(f"{argument}: no such file {os.fspath(path)!r}")
        self.encoder: dict[str, int] = _read_json_object(vocab_file, "vocab_file", "{token: id}")  # token -> id
        self.decoder: dict[int, str] = {i: token for token, i in self.encoder.items()}  # id -> token
        with open(merges_file, encoding="utf-8") as f:
            lines = f.read().split("\n")[:-1]  # subtle: like transformers, the last line is dropped (it is the "")
        # Rank of each merge: the lower, the earlier it was learned (the more frequent the pair).
        merges = [tuple(line.split()[:2]) for line in lines if not line.startswith("#version")]
        self.bpe_ranks: dict[tuple[str, str], int] = {pair: rank for rank, pair in enumerate(merges)}
        self.do_lowercase = bool(do_lowercase)
        self.model_max_length = int(model_max_length)
        self.clean_up_tokenization_spaces = bool(clean_up_tokenization_spaces)
        self.padding_side = "right"
        self.truncation_side = "right"
        self._cache: dict[str, tuple[tuple[str, ...], tuple[int, ...]]] = {}  # word -> (BPE pieces, their ids)
        self._unit_cache: dict[str, str] = {}  # original character -> its normalisation (for offsets)

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

        subtle: the published uncased config spells the flag ``do_lower_case``, which transformers ignores (so it
        tokenizes the uncased model as cased!). We honour both spellings.
        """
        from ..checkpoints.hub import HUB_OPTIONS, check_keywords, resolve_name

        check_keywords(f"{cls.__name__}.from_pretrained", kwargs, (*HUB_OPTIONS, *TOKENIZER_SETTINGS))
        hub_options = {name: value for name, value in kwargs.items() if name in HUB_OPTIONS}
        folder = os.fspath(resolve_name(pretrained_model_name_or_path, "tokenizer", **hub_options))
        config = {}
        config_file = os.path.join(folder, "tokenizer_config.json")
        if os.path.isfile(config_file):
            config = _read_json_object(config_file, "tokenizer_config", "of settings")
        tokenizer_class = str(config.get("tokenizer_class") or "FlaubertTokenizer")
        if not tokenizer_class.startswith("Flaubert"):  # a CamemBERT's or a BERT's: other rules, other vocabulary
            raise ValueError(f"{config_file} is for a {tokenizer_class}, not FlauBERT's tokenizer: minflaubert "
                             "runs FlauBERT only (load this one with transformers)")
        settings = {
            "do_lowercase": bool(config.get("do_lowercase", False) or config.get("do_lower_case", False)),
            "model_max_length": config.get("model_max_length", _LARGE_INTEGER),
            "clean_up_tokenization_spaces": config.get("clean_up_tokenization_spaces", False),
        }
        settings.update({name: value for name, value in kwargs.items() if name in TOKENIZER_SETTINGS})
        return cls(os.path.join(folder, "vocab.json"), os.path.join(folder, "merges.txt"), **settings)

    def save_pretrained(self, folder: str | os.PathLike) -> tuple[str, str, str]:
        """Write ``vocab.json``, ``merges.txt`` and ``tokenizer_config.json`` into ``folder`` (created if needed),
        crash-safe: the three are swapped in together (``atomic.atomic_folder``); the folder's other files stay."""
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
        return len(self.encoder)

    def __len__(self) -> int:
        return len(self.encoder)

    def get_vocab(self) -> dict[str, int]:
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
        return "".join(tokens).replace("</w>", " ").strip()

    # -- BPE -----------------------------------------------------------------------------------------------------------

    def bpe(self, word: str) -> tuple[str, ...]:
        """Split one Moses word into BPE pieces: ``"anticonstitutionnellement"`` -> ``("anti", "constitu",
        "tionnellement</w>")``.

        The algorithm (Sennrich et al., 2016), as in karpathy's minbpe:

        1. start from the characters, the last one carrying the end-of-word mark: ``l e q u e l</w>``;
        2. among all adjacent pairs, find the one learned earliest (lowest rank in ``merges.txt``);
        3. replace every occurrence of that pair, left to right, by the merged symbol;
        4. repeat until no adjacent pair is a known merge.

        Words repeat a lot in text, so results are cached: most calls are a dict look-up.
        """
        return self._bpe_with_ids(word)[0]

    def _bpe_with_ids(self, word: str) -> tuple[tuple[str, ...], tuple[int, ...]]:
        cached = self._cache.get(word)
        if cached is not None:
            return cached
        symbols = word_symbols(word)
        rank_of = self.bpe_ranks.get
        while len(symbols) > 1:
            # The adjacent pair learned earliest (a plain loop: this is the hot spot of a cold cache).
            best_rank, best = _NO_MERGE, None
            for pair in zip(symbols, symbols[1:]):
                rank = rank_of(pair, _NO_MERGE)
                if rank < best_rank:
                    best_rank, best = rank, pair
            if best is None:
                break  # no known merge left
            symbols = merge_pair(symbols, best)
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
            char_spans = self._align(text[start:end], start, words) if with_offsets else None
            for w, word in enumerate(words):
                pieces, piece_ids = self._bpe_with_ids(word)
                ids.extend(piece_ids)
                word_ids.extend([n_words] * len(piece_ids))
                n_words += 1
                if with_offsets:
                    offsets.extend(_piece_spans(pieces, char_spans[w]))
        return ids, word_ids, offsets

    def tokenize(self, text: str) -> list[str]:
        """Text -> BPE pieces: ``"Bonjour, l'ami"`` -> ``['bonjour</w>', ',</w>', "l'</w>", 'ami</w>']`` (uncased)."""
        _check_text(text, "text")
        tokens = []
        for start, end, is_special in self._segments(text):
            if is_special:
                tokens.append(text[start:end])
            else:
                for word in self._words(text[start:end]):
                    tokens.extend(self._bpe_with_ids(word)[0])
        return tokens

    # -- offsets: where each token comes from in the original text -----------------------------------------------------

    _LOOKAHEAD = 4  # how far the alignment may skip original characters that produced nothing in the words

    def _normalise_unit(self, unit: str) -> str:
        """Normalise one original character (with its combining marks) on its own, spaces removed."""
        out = self._unit_cache.get(unit)
        if out is None:
            out = "".join(normalize(unit, self.do_lowercase).split())
            self._unit_cache[unit] = out
        return out

    def _align(self, text: str, base: int, words: list[str]) -> list[list[tuple[int, int]]]:
        """For every character of every Moses word, the span of the original character(s) it comes from.

        The rule: normalise the original text one *unit* at a time (a character plus the combining marks NFC may fold
        into it, or a ````` `` ````` / ``''`` pair), which gives a stream of normalised characters each tagged with its
        unit's span; then walk the words and the stream together. So:

        - an unchanged or replaced character (``É`` -> ``é``, ``’`` -> ``'``, ``«`` -> ``"``) maps to itself;
        - ``e`` + combining accent maps to both code points; ``''`` -> ``"`` maps to both quotes;
        - one character that became several (``…`` -> ``...``) gives all of them its span, so BPE pieces cut inside
          it share that span;
        - characters that produced nothing (spaces, controls) are covered by no token.

        A few Moses rules depend on context. Moses moves a comma or periods after a quote (``,"`` -> ``",``,
        ``."`` -> ``".``): each still gets its own character's span, so these spans are out of order. Characters that
        normalisation *creates* are attributed to the last matched character: the comma of a no-break space between
        digits (``1 000`` -> ``1,000``), ``"`` from two apostrophe-like marks (``'’``, ``´´``, ````'``), and a
        final ``ς`` from lowercasing ``Σ`` (it depends on the next letter).
        """
        stream: list[str] = []  # normalised characters, in order
        spans: list[tuple[int, int]] = []  # the original span each one comes from
        i, n = 0, len(text)
        while i < n:
            if text.startswith(("``", "''"), i):
                j, out = i + 2, '"'
            else:
                j = i + 1
                while j < n and unicodedata.combining(text[j]):
                    j += 1
                out = self._normalise_unit(text[i:j])
            stream.extend(out)
            spans.extend([(base + i, base + j)] * len(out))
            i = j
        p = 0  # next stream position to match
        skipped: list[int] = []  # stream positions jumped over: a character Moses moved back may be there
        last = spans[0] if spans else (base, base)
        result = []
        for word in words:
            word_spans = []
            for ch in word:
                q, stop = p, min(len(stream), p + self._LOOKAHEAD)
                while q < stop and stream[q] != ch:
                    q += 1
                if q < stop:
                    skipped.extend(range(p, q))
                    last, p = spans[q], q + 1
                    word_spans.append(last)
                    continue
                back = next((k for k in skipped if stream[k] == ch), None)
                if back is not None:  # e.g. the "." of '."', which Moses turned into '".'
                    skipped.remove(back)
                    word_spans.append(spans[back])
                else:  # a character normalisation created: attributed to the last matched one
                    word_spans.append(last)
            result.append(word_spans)
        return result

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
            return_offsets_mapping: add ``offset_mapping``, each token's ``(start, end)`` in ``text`` (see ``_align``
                for the rule); ``(0, 0)`` for the special and padding tokens the tokenizer adds.
            return_special_tokens_mask: add ``special_tokens_mask`` (1 on added special and padding tokens).

        Returns:
            a :class:`BatchEncoding` with ``input_ids`` and ``attention_mask`` (1 = real token, 0 = padding).
        """
        is_batch = isinstance(text, (list, tuple))
        if is_batch:
            texts = list(text)
            for i, t in enumerate(texts):
                _check_text(t, f"text[{i}]")
            if text_pair is None:
                pairs = [None] * len(texts)
            elif not isinstance(text_pair, (list, tuple)) or len(text_pair) != len(texts):
                raise ValueError("text_pair must be a list as long as text when text is a batch")
            else:
                pairs = list(text_pair)
                for i, t in enumerate(pairs):
                    _check_text(t, f"text_pair[{i}]")
        else:
            _check_text(text, "text")
            if text_pair is not None:
                _check_text(text_pair, "text_pair")
            texts, pairs = [text], [text_pair]
        padding, truncation, max_length = self._strategies(padding, truncation, max_length)
        if return_tensors not in (None, "np"):
            raise ValueError(f"return_tensors={return_tensors!r}: use None (lists) or 'np' (NumPy arrays)")

        rows = [
            self._encode_pair(t, p, add_special_tokens, truncation, max_length, return_offsets_mapping)
            for t, p in zip(texts, pairs)
        ]  # one dict per sequence
        if padding == "longest":
            target = max((len(r["input_ids"]) for r in rows), default=0)
        elif padding == "max_length":
            target = max_length
        else:
            target = 0
        pad_values = {"input_ids": self.pad_token_id, "token_type_ids": 0, "special_tokens_mask": 1,
                      "attention_mask": 0, "offset_mapping": (0, 0), "word_ids": None}
        for row in rows:
            row["attention_mask"] = [1] * len(row["input_ids"])
            missing = target - len(row["input_ids"])
            if missing > 0:
                for key, values in row.items():
                    values.extend([pad_values[key]] * missing)  # padding_side is "right"

        keys = ["input_ids"]
        keys += ["token_type_ids"] * bool(return_token_type_ids)
        keys += ["special_tokens_mask"] * bool(return_special_tokens_mask)
        keys += ["attention_mask"] * bool(return_attention_mask)
        keys += ["offset_mapping"] * bool(return_offsets_mapping)
        data = {key: [row[key] for row in rows] for key in keys}
        if return_tensors == "np":
            lengths = {len(row["input_ids"]) for row in rows}
            if len(lengths) > 1:
                raise ValueError("return_tensors='np' needs sequences of equal length: use padding=True")
            data = {key: np.array(value, dtype=np.int64).reshape(len(rows), -1, *([2] * (key == "offset_mapping")))
                    for key, value in data.items()}
        elif not is_batch:
            data = {key: value[0] for key, value in data.items()}
        return BatchEncoding(data, [row["word_ids"] for row in rows])

    def _strategies(self, padding, truncation, max_length) -> tuple[str, str, int | None]:
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
                if self.model_max_length > _LARGE_INTEGER:
                    padding = "do_not_pad"
                else:
                    max_length = self.model_max_length
            if truncation != "do_not_truncate":
                if self.model_max_length > _LARGE_INTEGER:
                    truncation = "do_not_truncate"
                else:
                    max_length = self.model_max_length
        return padding, truncation, max_length

    def _encode_pair(self, text, text_pair, add_special_tokens, truncation, max_length, with_offsets) -> dict:
        """One sequence (single text or pair): tokenize, truncate, add special tokens. Lists, not yet padded."""
        ids, words, offsets = self._encode_text(text, with_offsets)
        pair = self._encode_text(text_pair, with_offsets) if text_pair is not None else None
        n_special = (2 if pair is None else 3) if add_special_tokens else 0
        total = len(ids) + (len(pair[0]) if pair else 0) + n_special
        if truncation != "do_not_truncate" and max_length and total > max_length:
            len_second = len(pair[0]) if pair else None
            keep_first, keep_second = _truncated_lengths(len(ids), len_second, total - max_length, truncation)
            ids, words, offsets = (None if x is None else x[:keep_first] for x in (ids, words, offsets))
            if pair:
                pair = tuple(None if x is None else x[:keep_second] for x in pair)
        if not with_offsets:
            offsets = [None] * len(ids)
            if pair:
                pair = (*pair[:2], [None] * len(pair[0]))
        if add_special_tokens:
            row = {
                "input_ids": self.build_inputs_with_special_tokens(ids, pair and pair[0]),
                "token_type_ids": self.create_token_type_ids_from_sequences(ids, pair and pair[0]),
                "special_tokens_mask": self.get_special_tokens_mask(ids, pair and pair[0]),
                "word_ids": [None, *words, None, *(pair[1] + [None] if pair else [])],
                "offset_mapping": [(0, 0), *offsets, (0, 0), *(pair[2] + [(0, 0)] if pair else [])],
            }
        else:
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


def write_tokenizer_files(folder: str | os.PathLike, vocab: dict[str, int], merges: Sequence[tuple[str, str]],
                          do_lowercase: bool, model_max_length: int, clean_up_tokenization_spaces: bool,
                          additional_special_tokens: Sequence[str] = ADDITIONAL_SPECIAL_TOKENS) -> tuple[str, str, str]:
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
        **SPECIAL_TOKENS,
        "additional_special_tokens": list(additional_special_tokens),
    }
    with open(paths[2], "w", encoding="utf-8") as f:
        f.write(json.dumps(config, indent=2, ensure_ascii=False) + "\n")
    return paths


def _read_json_object(path, argument: str, what: str) -> dict:
    """Read a JSON file that must hold an object; a ValueError naming ``argument`` and the path otherwise."""
    try:
        with open(path, encoding="utf-8") as f:
            value = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{argument}: {os.fspath(path)!r} is not valid UTF-8 JSON ({error})") from None
    if not isinstance(value, dict):
        raise ValueError(f"{argument}: {os.fspath(path)!r} must hold a JSON object {what}")
    return value


def _check_text(text, argument: str) -> None:
    if not isinstance(text, str):
        raise TypeError(f"{argument} must be a str, not {type(text).__name__}")


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


def _truncated_lengths(len_first: int, len_second: int | None, remove: int, strategy: str) -> tuple[int, int | None]:
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


def _piece_spans(pieces: Sequence[str], char_spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Cut a word's per-character spans along its BPE pieces: each piece spans its first to last character."""
    out, k = [], 0
    for piece in pieces:
        n = len(piece) - 4 if piece.endswith("</w>") else len(piece)
        chunk = char_spans[k:k + n]
        out.append((min(s for s, _ in chunk), max(e for _, e in chunk)))
        k += n
    return out
