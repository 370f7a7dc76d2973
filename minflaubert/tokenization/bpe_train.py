"""Learning a BPE vocabulary: where ``merges.txt`` and ``vocab.json`` come from.

The tokenizer *applies* merges (:mod:`.bpe`); this file *learns* them from raw text, the way FlauBERT's authors
learned theirs (with fastBPE, on 71 GB of French). The algorithm (Sennrich et al., 2016):

1. **Count words.** Clean and split every text exactly as the tokenizer does (:mod:`.moses`: Moses normalisation,
   lowercasing for an uncased model, Moses word splitting), and count each distinct word:
   ``{"le": 180_233, "chat": 412, ...}``. From here on only these counts matter, never the text.
2. **Start from characters.** Each word is a sequence of symbols, one per character, the last one carrying the
   end-of-word mark: ``chat`` -> ``c h a t</w>`` (:func:`.bpe.word_symbols`, where the encoder starts too). The
   alphabet (every such symbol) is the starting vocabulary.
3. **Merge, again and again.** Count every adjacent pair of symbols, weighted by the word's count; the most frequent
   pair becomes a new symbol (``a t</w>`` -> ``at</w>``) and a line of ``merges.txt``; replace it everywhere, left to
   right; repeat until the vocabulary has the size asked for.

Ties are broken by the pair itself: among equally frequent pairs, the smallest ``(left, right)`` in Python's string
order wins. So the same text always gives the same merges, byte for byte.

Speed: rescanning every word after each merge costs (merges x words); instead we keep the count of every pair, the
words each pair occurs in, and a heap of candidate pairs. A merge then touches only the words that contain its pair,
and updates the counts of the pairs around it (timings: benchmarks/README.md, tokenizer section).

The files we write are those of the published checkpoints: the 14 special tokens at ids 0-13 (``<s>`` ``</s>``
``<pad>`` ``<unk>`` ``<special0>`` ... ``<special9>``; the mask is ``<special1>``), then the alphabet, most frequent
first, then each merged symbol in the order it was learned; ``merges.txt`` has one ``left right`` line per merge.
"""
from __future__ import annotations

import heapq
import os
from collections import Counter
from typing import Iterable

from tqdm.auto import tqdm

from .bpe import merge_pair, word_symbols
from .files import ADDITIONAL_SPECIAL_TOKENS, write_tokenizer_files
from .moses import moses_tokenize, normalize

# The published order: ids 0-3, then <special0> ... <special9> at ids 4-13.
SPECIAL_VOCABULARY = ["<s>", "</s>", "<pad>", "<unk>", *ADDITIONAL_SPECIAL_TOKENS]


def count_words(texts: Iterable[str], lowercase: bool = True) -> Counter:
    """Step 1: ``{word: count}`` over ``texts``, each cleaned and split as FlaubertTokenizer does.

    Pass paragraphs or lines: a newline inside one text is deleted by the normalisation and glues words together.
    """
    counts = Counter()
    for text in texts:
        if not isinstance(text, str):
            raise TypeError(f"texts must be strings, got {type(text).__name__}")
        counts.update(moses_tokenize(normalize(text, lowercase)))
    return counts


def pairs_of(symbols: tuple[str, ...]) -> Counter:
    """The adjacent pairs of one word, with how often each occurs in it: ``a b a b`` -> ``{(a,b): 2, (b,a): 1}``."""
    return Counter(zip(symbols, symbols[1:]))


class PairCounts:
    """The state of step 3: every word's current symbols, every pair's total count, and where each pair occurs.

    ``best()`` finds the most frequent pair through a heap of ``(-count, pair)`` entries. A count that changes gets a
    new entry and the old one is left behind ("lazy deletion"): an entry is believed only if it still matches.
    """

    def __init__(self, word_counts: Counter):
        words = sorted(word_counts)  # sorted: the same input always builds the same state
        self.symbols = [word_symbols(word) for word in words]
        self.weights = [word_counts[word] for word in words]
        self.count: Counter = Counter()  # pair -> occurrences in the corpus
        self.where: dict[tuple[str, str], set[int]] = {}  # pair -> indices of the words that contain it
        for index, symbols in enumerate(self.symbols):
            self._add(index, symbols, +1)
        self.heap = [(-count, pair) for pair, count in self.count.items()]
        heapq.heapify(self.heap)

    def _add(self, index: int, symbols: tuple[str, ...], sign: int) -> list[tuple[str, str]]:
        """Add (sign=+1) or remove (-1) the pairs of word ``index`` to the totals; return the pairs touched."""
        pairs = pairs_of(symbols)
        for pair, occurrences in pairs.items():
            self.count[pair] += sign * occurrences * self.weights[index]
            if sign > 0:
                self.where.setdefault(pair, set()).add(index)
        return list(pairs)

    def best(self) -> tuple[tuple[str, str], int] | None:
        """The most frequent pair and its count (ties: the smallest pair), or None when no pair is left."""
        while self.heap:
            negative_count, pair = self.heap[0]
            if self.count[pair] == -negative_count and -negative_count > 0:
                return pair, -negative_count
            heapq.heappop(self.heap)  # a stale entry: this pair's count has changed since it was pushed
        return None

    def merge(self, pair: tuple[str, str]) -> None:
        """Merge ``pair`` in every word that contains it, updating only the counts of the pairs that change."""
        changed = set()
        for index in sorted(self.where.pop(pair, ())):
            old = self.symbols[index]
            new = merge_pair(old, pair)
            if new == old:
                continue  # subtle: `where` is never pruned, so a word may no longer contain the pair
            changed.update(self._add(index, old, -1))
            changed.update(self._add(index, new, +1))
            self.symbols[index] = new
        for changed_pair in changed:
            if self.count[changed_pair] > 0:
                heapq.heappush(self.heap, (-self.count[changed_pair], changed_pair))


def alphabet_of(word_counts: Counter) -> list[str]:
    """Step 2's starting vocabulary: every symbol of every word, the most frequent first (ties: string order)."""
    frequency = Counter()
    for word, count in word_counts.items():
        for symbol in word_symbols(word):
            frequency[symbol] += count
    return sorted(frequency, key=lambda symbol: (-frequency[symbol], symbol))


def learn_bpe(word_counts: Counter, vocab_size: int, min_frequency: int = 2,
              progress: bool = False) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Steps 2 and 3: ``(vocab, merges)`` with ``len(vocab) == vocab_size`` (fewer if the text runs out of pairs).

    Merging stops early when the best pair occurs fewer than ``min_frequency`` times: such a merge only memorises
    a single rare word.
    """
    alphabet = alphabet_of(word_counts)
    vocab = {token: i for i, token in enumerate([*SPECIAL_VOCABULARY, *alphabet])}
    if vocab_size < len(vocab):
        raise ValueError(f"vocab_size={vocab_size} is smaller than the {len(SPECIAL_VOCABULARY)} special tokens "
                         f"plus the {len(alphabet)} characters of the text ({len(vocab)})")
    state = PairCounts(word_counts)
    merges = []
    with tqdm(total=vocab_size - len(vocab), desc="merges", unit="merge", disable=not progress) as bar:
        while len(vocab) < vocab_size:
            found = state.best()
            if found is None or found[1] < min_frequency:
                break
            pair, _ = found
            state.merge(pair)
            merges.append(pair)
            merged = pair[0] + pair[1]
            if merged not in vocab:  # two different pairs can spell the same symbol ("a bc", "ab c")
                vocab[merged] = len(vocab)
                bar.update()
    return vocab, merges


def train_bpe(texts: Iterable[str], vocab_size: int, lowercase: bool = True, min_frequency: int = 2,
              progress: bool = False) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Steps 1-3 on raw ``texts``: the vocabulary and merges of a FlauBERT tokenizer."""
    return learn_bpe(count_words(texts, lowercase), vocab_size, min_frequency, progress)


def read_paragraphs(paths: Iterable[str | os.PathLike]) -> Iterable[str]:
    """The non-empty lines of UTF-8 text files (one paragraph a line, as the training corpus is laid out)."""
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if line:
                    yield line


def train_bpe_files(paths: list[str | os.PathLike], folder: str | os.PathLike, vocab_size: int,
                    lowercase: bool = True, model_max_length: int = 512, progress: bool = False) -> tuple[str, ...]:
    """Learn a vocabulary from text files and write ``vocab.json``, ``merges.txt``, ``tokenizer_config.json``."""
    for path in paths:
        if not os.path.isfile(path):
            raise OSError(f"no such text file {os.fspath(path)!r}")
    vocab, merges = train_bpe(read_paragraphs(paths), vocab_size, lowercase, progress=progress)
    return write_tokenizer_files(folder, vocab, merges, do_lowercase=lowercase, model_max_length=model_max_length,
                                 clean_up_tokenization_spaces=True)
