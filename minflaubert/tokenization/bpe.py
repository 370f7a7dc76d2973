"""Byte-pair encoding (BPE): cut one word into the pieces of the vocabulary, by replaying learned merges.

Moses (:mod:`.moses`) gives words; the vocabulary holds only ~67,000 symbols, so most words must be cut into pieces.
``merges.txt`` lists pairs of symbols to glue together, in the order they were learned (the most frequent pair of the
training corpus first: :mod:`.bpe_train` shows how). The algorithm (Sennrich et al., 2016, as in karpathy's minbpe):

1. start from the word's characters, the last one carrying the end-of-word mark :data:`END_OF_WORD`
   (:func:`word_symbols`);
2. among all adjacent pairs, find the one learned earliest: the lowest *rank* (its line number in ``merges.txt``);
3. replace every occurrence of that pair, left to right, by the merged symbol (:func:`merge_pair`);
4. repeat until no adjacent pair is a known merge.

A worked example, with five merges (rank: pair)  ``0: e s</w>   1: c h   2: a t   3: ch at   4: t es</w>``::

    c h a t t e s</w>     pairs ranked: (c h) 1, (a t) 2, (e s</w>) 0   -> merge #0
    c h a t t es</w>      (c h) 1, (a t) 2, (t es</w>) 4                -> merge #1
    ch a t t es</w>       (a t) 2, (t es</w>) 4                         -> merge #2
    ch at t es</w>        (ch at) 3, (t es</w>) 4                       -> merge #3
    chat t es</w>         (t es</w>) 4                                  -> merge #4
    chat tes</w>          (chat tes</w>) is not a merge: done

>>> bpe("chattes", merge_ranks([("e", "s</w>"), ("c", "h"), ("a", "t"), ("ch", "at"), ("t", "es</w>")]))
('chat', 'tes</w>')

The rank, not the position in the word, decides the order: ``e s</w>``, at the end, is merged first. Frequent words
end up as one symbol (``été</w>``), rare ones as a few pieces (``anticonstitutionnellement`` -> ``anti``
``constitu`` ``tionnellement</w>``). The end-of-word mark makes ``le`` inside ``lequel`` and the word ``le</w>``
different symbols.

The tokenizer caches each word's result (words repeat a lot in text), so :func:`bpe` runs once per distinct word.

Each step of that loop scans the whole word, so a word of n characters costs O(n²): nothing for ``anticonstitution``,
half an hour for a 1 MB string without spaces. :func:`split_word`, which the tokenizer calls, gives long words to
:func:`bpe_heap` (the same result in O(n log n)) and does not split words beyond :data:`MAX_WORD_CHARS` at all.
"""
from __future__ import annotations

import heapq
from typing import Iterable

END_OF_WORD = "</w>"  # marks a word's last symbol, so that "la" inside "malade" and the word "la" differ
_NO_MERGE = float("inf")  # the "rank" of a pair that is not in merges.txt
SHORT_WORD_CHARS = 16  # up to this length the plain loop of bpe() is faster than the heap of bpe_heap()
# Longer words stay one piece, which no vocabulary holds (<unk>): 100,000 characters take bpe_heap ~1 s and
# ~15 MB (benchmarks/README.md). No French word comes near (a URL or a base64 blob might); transformers would merge
# them in O(n²).
MAX_WORD_CHARS = 100_000


def word_symbols(word: str) -> tuple[str, ...]:
    """A word as its starting symbols, one per character, the last one marked as ending the word:
    ``"chat"`` -> ``("c", "h", "a", "t</w>")``."""
    return (*word[:-1], word[-1] + END_OF_WORD)


def merge_ranks(merges: Iterable[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """``{pair: rank}`` for merges listed earliest first: the lower the rank, the earlier the merge applies."""
    return {pair: rank for rank, pair in enumerate(merges)}


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


def bpe(word: str, ranks: dict[tuple[str, str], int]) -> tuple[str, ...]:
    """Split one word into BPE pieces by applying the merges of ``ranks``, the earliest learned first."""
    symbols = word_symbols(word)
    rank_of = ranks.get
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
    return symbols


def bpe_heap(word: str, ranks: dict[tuple[str, str], int]) -> tuple[str, ...]:
    """:func:`bpe`'s result in O(n log n), for long words.

    The symbols become a linked list (``following[i]``: where the symbol after the one starting at character ``i``
    starts) and every adjacent pair that is a merge goes into a heap ordered by (rank, position). Popping all the
    entries of the lowest rank gives that merge's occurrences left to right, as :func:`merge_pair` scans them; an
    entry whose symbols have changed since it was pushed is stale and skipped (symbols only ever grow, so a changed
    pair never looks like the old one). Each merge pushes the at most two pairs it creates.
    """
    symbols = list(word_symbols(word))  # symbols[i]: the symbol starting at character i ("" once merged away)
    n = len(symbols)
    following = list(range(1, n + 1))  # n: no symbol after
    preceding = list(range(-1, n - 1))  # -1: no symbol before

    def rank_at(i: int):
        """The rank of the pair (symbol at i, the next one), None if it is not a merge."""
        j = following[i]
        return ranks.get((symbols[i], symbols[j])) if j < n else None

    heap = [(rank, i) for i in range(n - 1) if (rank := rank_at(i)) is not None]
    heapq.heapify(heap)
    while heap:
        rank = heap[0][0]
        starts = []  # this merge's occurrences, left to right (ties in the heap are ordered by position)
        while heap and heap[0][0] == rank:
            starts.append(heapq.heappop(heap)[1])
        for i in starts:
            if not symbols[i] or rank_at(i) != rank:
                continue  # stale: merged away, or its pair changed (e.g. the second "a a" of "a a a")
            j = following[i]
            symbols[i], symbols[j] = symbols[i] + symbols[j], ""
            following[i] = following[j]
            if following[i] < n:
                preceding[following[i]] = i
            # subtle: the two new pairs never have this rank (a merged symbol is longer than both halves), so pushing
            # them now cannot slip them into the occurrences being processed.
            for k in (preceding[i], i):
                if k >= 0 and (new_rank := rank_at(k)) is not None:
                    heapq.heappush(heap, (new_rank, k))
    return tuple(symbol for symbol in symbols if symbol)


def split_word(word: str, ranks: dict[tuple[str, str], int]) -> tuple[str, ...]:
    """The BPE pieces of one Moses word, in time O(n log n) whatever its length n: :func:`bpe` for short words,
    :func:`bpe_heap` for long ones, and one piece (the whole word, <unk> in any vocabulary) beyond
    :data:`MAX_WORD_CHARS`."""
    if len(word) > MAX_WORD_CHARS:
        return (word + END_OF_WORD,)
    return bpe(word, ranks) if len(word) <= SHORT_WORD_CHARS else bpe_heap(word, ranks)
