"""Lesson 9, exercises: a cased alphabet, words that became one symbol, a word cut in pieces and put back."""
import re
from pathlib import Path

from minflaubert import FlaubertTokenizer
from minflaubert.tokenization import bpe_train

# the lesson's paragraphs, read from the lesson itself (its first python block)
lesson = Path("tutorials/09_learning_bpe.md").read_text(encoding="utf-8")
exec(re.search(r"```python\n(paragraphs = \[.*?)```", lesson, re.S).group(1))

# 1. Without lowercasing, capitals are symbols of their own: « M » and « m » are different characters.
lower = bpe_train.alphabet_of(bpe_train.count_words(paragraphs, lowercase=True))
cased = bpe_train.alphabet_of(bpe_train.count_words(paragraphs, lowercase=False))
print(len(lower), "symbols lowercased,", len(cased), "cased; new:", sorted(set(cased) - set(lower)))
assert len(cased) > len(lower) and {"M", "L", "E"} <= set(cased)
print("why: without lowercasing, a capital is a character of its own, so a starting symbol of its own")

# 2. After every merge seen at least twice, how many distinct words are a single symbol?
counts = bpe_train.count_words(paragraphs)
state = bpe_train.PairCounts(counts)
while (found := state.best()) is not None and found[1] >= 2:
    state.merge(found[0])
whole = [word for word, symbols in zip(sorted(counts), state.symbols) if len(symbols) == 1]
print(f"{len(whole)} of {len(counts)} distinct words are one symbol, e.g. {whole[:8]}")

# 3. A word the trained vocabulary cuts into three or more pieces, and back.
tiny = FlaubertTokenizer.from_pretrained("weights/flaubert_tiny")
pieces = tiny.tokenize("anticonstitutionnellement")
print(pieces, "->", tiny.convert_tokens_to_string(pieces))
assert len(pieces) >= 3 and tiny.convert_tokens_to_string(pieces) == "anticonstitutionnellement"

# 4. BPE learned from scratch: the loop of section 3, plus the vocabulary around it.
# (tests/test_tutorial_exercises.py checks this train_bpe against the library's.)
from collections import Counter  # noqa: E402

from minflaubert.tokenization.bpe import word_symbols  # noqa: E402

SPECIALS = ["<s>", "</s>", "<pad>", "<unk>"] + [f"<special{i}>" for i in range(10)]


def merge(symbols, pair):
    merged, i = [], 0
    while i < len(symbols):
        if symbols[i:i + 2] == pair:
            merged.append(pair[0] + pair[1])
            i += 2
        else:
            merged.append(symbols[i])
            i += 1
    return tuple(merged)


def train_bpe(texts, vocab_size, min_count=2):
    word_counts = bpe_train.count_words(texts)
    words = [(word_symbols(word), count) for word, count in sorted(word_counts.items())]
    frequency = Counter()
    for symbols, count in words:
        for symbol in symbols:
            frequency[symbol] += count
    alphabet = sorted(frequency, key=lambda symbol: (-frequency[symbol], symbol))  # most frequent first
    vocab = {token: i for i, token in enumerate(SPECIALS + alphabet)}
    merges = []
    while len(vocab) < vocab_size:
        pairs = Counter()
        for symbols, count in words:
            for pair in zip(symbols, symbols[1:]):
                pairs[pair] += count
        best = min(pairs, key=lambda pair: (-pairs[pair], pair), default=None)
        if best is None or pairs[best] < min_count:
            break
        merges.append(best)
        vocab.setdefault(best[0] + best[1], len(vocab))  # two pairs can spell the same symbol: one entry
        words = [(merge(symbols, best), count) for symbols, count in words]
    return vocab, merges


for size in (60, 100, 10_000):
    assert train_bpe(paragraphs, size) == bpe_train.train_bpe(paragraphs, size)
print("from scratch == bpe_train.train_bpe for vocab_size 60, 100 and 10,000")
print("why they agree: the same counts, the same tie rule (most frequent, then the smallest pair), the same "
      "left-to-right merge; PairCounts only avoids recounting the words a merge does not touch")
