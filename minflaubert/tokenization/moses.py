"""Text -> words, as FlauBERT's tokenizer does it: Moses normalisation, then Moses word splitting (French).

FlauBERT was trained on text cleaned and split by the scripts of the Moses machine-translation toolkit (through
sacremoses, as transformers' ``FlaubertTokenizer`` calls them). To meet the vocabulary the model learned, new text
must go through exactly the same two steps, before any byte-pair encoding (:mod:`.bpe`):

1. **Normalisation** (:func:`normalize`). The same sentence can be typed many ways: ``’`` or ``'``, ``«`` or ``"``,
   ``é`` as one code point or as ``e`` + a combining accent, with or without capitals. We clean the way FlauBERT's
   training data was cleaned, or the model sees spellings it never met in training::

       « L’Été… »  ->  " l'été... "          (uncased models are also lowercased)

2. **Pre-tokenisation into words** (:func:`moses_tokenize`). Moses' French tokenizer splits punctuation off words
   (``enfin !`` -> ``enfin`` ``!``), keeps abbreviations whole (``M.``) and cuts elisions after the apostrophe
   (``l'été`` -> ``l'`` ``été``)::

       " l'été... "  ->  ['"', "l'", 'été', '...', '"']

Why not simply call sacremoses? It recompiles or re-looks-up ~50 regular expressions, and rebuilds a set of 2,000
lowercase letters for every word that ends with a period. We run the very same rules (taken from sacremoses' own
objects, so the behaviour cannot drift), compiled once; we skip the rules about characters absent from the text and
replace per-character Python loops by ``str.translate`` and a printable-text fast path. ``benchmarks/tokenizer.py``
times the whole tokenizer against transformers' (figures in benchmarks/README.md).
"""
from __future__ import annotations

import re
import unicodedata

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
# Where text may be cut without changing its words (truncation reads no further than it needs)
# ---------------------------------------------------------------------------------------------------------------------

# A space after a letter or digit ([^\W_] is str.isalnum) ends a prefix safely; a space before one starts a suffix.
_PREFIX_END = re.compile(r"(?<=[^\W_]) ")
_SUFFIX_START = re.compile(r" (?=[^\W_])")
_BACKWARD_WINDOW = 4096  # characters searched at a time when looking for a suffix's start from the end


def prefix_end(text: str, start: int, at_least: int, end: int) -> int | None:
    """The first position ``P >= at_least`` (in ``text[start:end]``) where ``text[start:P]`` can be cut off: its words,
    normalised and split by Moses, are exactly the first words of ``text[start:end]``. None if there is none.

    The rule: ``text[P]`` is a space and ``text[P - 1]`` a letter or digit. Why that is safe, rule by rule: the
    space stops NFC (nothing composes with a following space), the final-sigma rule of lowercasing (it looks
    across case-ignorable characters, which a space is not) and every two-character rule (``''``, ``" :"``...);
    the Moses rules that look at the next word (a final period kept before a lowercase word, ``.'`` at the very
    end, a comma before the end) all need the word before the space to end in punctuation, and it ends in a
    letter or digit; the rules that glue the next word's punctuation to it (``" :"`` -> ``":"``, ``"5 %"``) are
    undone by Moses, which pads that punctuation with spaces again. tests/test_tokenizer.py checks the property
    on random text and on a novel.
    """
    match = _PREFIX_END.search(text, start + at_least, end)
    return None if match is None else match.start()


def suffix_start(text: str, start: int, at_least: int, end: int) -> int | None:
    """The last position ``P <= end - at_least`` where ``text[P:end]`` can be cut out: its words are exactly the last
    words of ``text[start:end]`` (the mirror of :func:`prefix_end`: ``text[P - 1]`` is a space and ``text[P]`` a
    letter or digit, so no rule looks across the space at it). None if there is none."""
    window_end = end - at_least
    while window_end > start:
        window_start = max(start, window_end - _BACKWARD_WINDOW)
        last = None
        # the character after the space may be the last one allowed, at window_end
        for last in _SUFFIX_START.finditer(text, window_start, min(window_end + 1, end)):
            pass
        if last is not None:
            return last.end()
        window_end = window_start
    return None
