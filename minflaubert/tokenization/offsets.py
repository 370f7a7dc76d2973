"""Offsets: which characters of the *original* text each token comes from.

Question answering must point at an answer in the text the user gave, and token classification must colour its
words; both need each token's ``(start, end)`` in that text. But the tokens are cut from *normalised* text
(:mod:`.moses`): ``L’été…`` became the words ``l'`` ``été`` ``...``, whose characters are not those of the original.
transformers cannot give these offsets for FlauBERT (it has no "fast" tokenizer for it); we work them out:

1. normalise the original text one *unit* at a time (a character and its combining marks), and remember, for each
   normalised character, the span of the unit it came from (:func:`_normalised_stream`);
2. walk the Moses words and that stream together, matching characters (:func:`align_words`);
3. cut each word's character spans along its BPE pieces (:func:`piece_spans`)::

       L’été…   ->  l'</w> (0, 2)   été</w> (2, 5)   ...</w> (5, 6)
"""
from __future__ import annotations

import unicodedata
from typing import Callable, Sequence

from .bpe import END_OF_WORD

_LOOKAHEAD = 4  # how far the alignment may skip original characters that produced nothing in the words


def _normalised_stream(text: str, base: int,
                       normalise_unit: Callable[[str], str]) -> tuple[list[str], list[tuple[int, int]]]:
    """``text`` normalised unit by unit: the normalised characters, and the original span each one comes from."""
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
            out = normalise_unit(text[i:j])
        stream.extend(out)
        spans.extend([(base + i, base + j)] * len(out))
        i = j
    return stream, spans


def align_words(text: str, base: int, words: list[str],
                normalise_unit: Callable[[str], str]) -> list[list[tuple[int, int]]]:
    """For every character of every Moses word of ``text``, the span of the original character(s) it comes from.

    ``normalise_unit`` normalises one unit on its own, spaces removed; ``base`` is added to every span. The rule:

    - an unchanged or replaced character (``É`` -> ``é``, ``’`` -> ``'``, ``«`` -> ``"``) maps to itself;
    - ``e`` + combining accent maps to both code points; ````` `` ````` or ``''`` -> ``"`` maps to both quotes;
    - one character that became several (``…`` -> ``...``) gives all of them its span, so BPE pieces cut inside
      it share that span;
    - characters that produced nothing (spaces, controls) are covered by no token.

    A few Moses rules depend on context. Moses moves a comma or periods after a quote (``,"`` -> ``",``,
    ``."`` -> ``".``): each still gets its own character's span, so these spans are out of order. Characters that
    normalisation *creates* are attributed to the last matched character: the comma of a no-break space between
    digits (``1 000`` -> ``1,000``), ``"`` from two apostrophe-like marks (``'’``, ``´´``, ````'``), and a
    final ``ς`` from lowercasing ``Σ`` (it depends on the next letter).
    """
    stream, spans = _normalised_stream(text, base, normalise_unit)
    p = 0  # next stream position to match
    skipped: list[int] = []  # stream positions jumped over: a character Moses moved back may be there
    last = spans[0] if spans else (base, base)
    result = []
    for word in words:
        word_spans = []
        for ch in word:
            q, stop = p, min(len(stream), p + _LOOKAHEAD)
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


def piece_spans(pieces: Sequence[str], char_spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Cut a word's per-character spans along its BPE pieces: each piece spans its first to last character."""
    out, k = [], 0
    for piece in pieces:
        n = len(piece) - len(END_OF_WORD) if piece.endswith(END_OF_WORD) else len(piece)
        chunk = char_spans[k:k + n]
        out.append((min(s for s, _ in chunk), max(e for _, e in chunk)))
        k += n
    return out
