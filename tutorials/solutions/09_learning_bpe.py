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
