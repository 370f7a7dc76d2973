"""The tokenizer's time and memory stay bounded whatever the text (issue 29, findings 5 and 6).

- the per-word BPE cache keeps at most ``WORD_CACHE_SIZE`` words, however many distinct words went through;
- truncation tokenizes only as much text as the kept tokens need, and gives exactly what tokenizing everything then
  cutting gives (a property, on random text and on a novel): the safe places to cut (:func:`.moses.prefix_end`)
  are checked directly too;
- a word's BPE costs O(n log n): :func:`.bpe.bpe_heap` gives :func:`.bpe.bpe`'s pieces, and words longer than
  ``MAX_WORD_CHARS`` are one piece (``<unk>``);
- a 1 MB word and a 50 MB line tokenize and embed in seconds under a 1 GiB address-space limit (a child process,
  with ``resource.setrlimit`` and a subprocess timeout).
"""
import os
import re
import subprocess
import sys
import textwrap
from unittest import mock

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from minflaubert import FlaubertTokenizer
from minflaubert.tokenization import tokenizer as tokenizer_module
from minflaubert.tokenization.bpe import MAX_WORD_CHARS, bpe, bpe_heap, merge_ranks
from minflaubert.tokenization.moses import prefix_end, suffix_start

from conftest import FIXTURES, REPO, SHARED_DATA, require

TINY = FlaubertTokenizer.from_pretrained(FIXTURES / "tiny-tokenizer")
TIMEOUT = 120  # seconds: minutes at 70cc6f5 (a 1 MB word: ~30 min; a 50 MB line: 82 s and 2.2 GB)

# ---------------------------------------------------------------------------------------------------------------------
# The word cache
# ---------------------------------------------------------------------------------------------------------------------


def test_the_word_cache_is_bounded():
    tok = FlaubertTokenizer.from_pretrained(FIXTURES / "tiny-tokenizer")
    n = tokenizer_module.WORD_CACHE_SIZE + 5000
    tok(" ".join(f"mot{i}" for i in range(n)))
    assert tok._cached_word.cache_info().currsize == tokenizer_module.WORD_CACHE_SIZE
    assert tok._normalise_unit.cache_info().maxsize == tokenizer_module.WORD_CACHE_SIZE
    assert tok.tokenize("mot3 mot3") == TINY.tokenize("mot3 mot3")  # evicted words come back the same


def test_long_words_are_not_cached():
    tok = FlaubertTokenizer.from_pretrained(FIXTURES / "tiny-tokenizer")
    tok("x" * (tokenizer_module.CACHED_WORD_CHARS + 1))
    assert tok._cached_word.cache_info().currsize == 0


# ---------------------------------------------------------------------------------------------------------------------
# BPE: the heap gives the plain loop's pieces; over-long words are one piece
# ---------------------------------------------------------------------------------------------------------------------


@st.composite
def words_and_merges(draw):
    """A word over "abc" and a merges list that builds symbols from those letters, in a random order."""
    symbols = ["a", "b", "c"]
    ends = ["a</w>", "b</w>", "c</w>"]
    merges = []
    for _ in range(draw(st.integers(0, 25))):
        left = draw(st.sampled_from(symbols))
        right = draw(st.sampled_from(symbols + ends))
        if (left, right) not in merges:
            merges.append((left, right))
            (ends if right.endswith("</w>") else symbols).append(left + right)
    return draw(st.text(alphabet="abc", min_size=1, max_size=80)), merges


@given(words_and_merges())
def test_the_heap_gives_the_pieces_of_the_plain_loop(case):
    word, merges = case
    ranks = merge_ranks(merges)
    assert bpe_heap(word, ranks) == bpe(word, ranks)


def test_the_heap_on_long_french_words(shared_data):
    tok = FlaubertTokenizer.from_pretrained(shared_data / "flaubert_base_uncased")
    words = (shared_data / "corpus" / "chasse-galerie.txt").read_text(encoding="utf-8").lower().split()
    glued = ["".join(words[i:i + k]) for k in (2, 5, 20, 60) for i in range(0, 3000, 97)]
    assert [bpe_heap(w, tok.bpe_ranks) for w in glued] == [bpe(w, tok.bpe_ranks) for w in glued]


def test_a_word_beyond_the_limit_is_one_unknown_piece():
    word = "a" * (MAX_WORD_CHARS + 1)
    assert TINY.tokenize(f"le {word} chat") == [*TINY.tokenize("le"), word + "</w>", *TINY.tokenize("chat")]
    encoding = TINY(word, return_offsets_mapping=True)
    assert encoding["input_ids"] == [TINY.bos_token_id, TINY.unk_token_id, TINY.sep_token_id]
    assert encoding["offset_mapping"][1] == (0, len(word))
    assert len(TINY.tokenize("a" * MAX_WORD_CHARS)) > 1  # at the limit, still split


# ---------------------------------------------------------------------------------------------------------------------
# Truncation reads only what it keeps, and keeps exactly what tokenizing everything keeps
# ---------------------------------------------------------------------------------------------------------------------

# Characters that the normalisation or Moses rules treat specially next to a space (see moses.prefix_end).
TRICKY = ("ab Zé1 5 ΣσİßÉ  \u00a0\t\n.,;:!?%()'\"`´’‘«»…–—-。．，０" + "\u0301\u0307\u200b" + "<>/s")
tricky_text = st.text(alphabet=TRICKY, max_size=120)


@given(tricky_text)
def test_a_safe_prefix_has_the_first_words_and_a_safe_suffix_the_last(text):
    whole = TINY.tokenize(text)
    for at_least in range(1, len(text)):
        cut = prefix_end(text, 0, at_least, len(text))
        if cut is not None:
            head = TINY.tokenize(text[:cut])
            assert whole[:len(head)] == head, (text, cut)
        cut = suffix_start(text, 0, at_least, len(text))
        if cut is not None:
            tail = TINY.tokenize(text[cut:])
            assert whole[len(whole) - len(tail):] == tail, (text, cut)
            assert len(text) - cut >= at_least


def _whole_then_truncated(tok, *args, **kwargs):
    """What the tokenizer gives when it tokenizes all the text before cutting (no segment gets a limit)."""
    encode_input = FlaubertTokenizer._encode_input

    def without_limit(self, text, with_offsets, limit, from_end):
        return encode_input(self, text, with_offsets, None, from_end)
    with mock.patch.object(FlaubertTokenizer, "_encode_input", without_limit):
        return tok(*args, **kwargs)


def _check_truncation(tok, text, pair, max_length, truncation, side):
    tok.truncation_side = side
    try:
        options = dict(max_length=max_length, truncation=truncation, return_offsets_mapping=True,
                       return_special_tokens_mask=True, return_token_type_ids=True)
        got = tok(text, pair, **options)
        expected = _whole_then_truncated(tok, text, pair, **options)
        assert dict(got) == dict(expected)
        assert got.word_ids() == expected.word_ids()
    finally:
        tok.truncation_side = "right"


strategies = st.sampled_from([True, "only_first", "only_second"])
sides = st.sampled_from(["right", "left"])


@given(tricky_text, st.none() | tricky_text, st.integers(1, 12), strategies, sides)
@example("Le chat dort sur le tapis rouge.", None, 5, "only_second", "right")  # a single text: not truncated
@example("Le chat dort sur le tapis rouge.", "Le", 6, "only_first", "left")
def test_truncation_equals_tokenizing_everything_then_cutting_random_text(text, pair, max_length, truncation, side):
    _check_truncation(TINY, text, pair, max_length, truncation, side)


def test_truncation_reads_no_further_than_it_needs():
    calls = []
    original = TINY._plain_tokens

    def spy(text, start, end, with_offsets):
        calls.append(end - start)
        return original(text, start, end, with_offsets)
    with mock.patch.object(TINY, "_plain_tokens", spy):
        TINY("Le chat dort sur le tapis. " * 10_000, max_length=8)
        TINY.truncation_side = "left"
        try:
            TINY("Le chat dort sur le tapis. " * 10_000, max_length=8)
        finally:
            TINY.truncation_side = "right"
    assert calls and max(calls) < 200


def _novel_paragraphs():
    path = SHARED_DATA / "corpus" / "chasse-galerie.txt"
    if not path.is_file():
        return [""]
    return [p for p in re.split(r"\n\s*\n", path.read_text(encoding="utf-8")) if p.strip()]


NOVEL = _novel_paragraphs()


@given(st.integers(0, len(NOVEL) - 1), st.integers(0, len(NOVEL) - 1), st.booleans(), st.integers(1, 80), strategies,
       sides)
def test_truncation_equals_tokenizing_everything_then_cutting_the_novel(first, second, with_pair, max_length,
                                                                        truncation, side):
    require(SHARED_DATA.is_dir(), f"test assets not found at {SHARED_DATA}")
    tok = _published_once()
    text = "\n".join(NOVEL[first:first + 3])
    _check_truncation(tok, text, NOVEL[second] if with_pair else None, max_length, truncation, side)


_PUBLISHED = []


def _published_once() -> FlaubertTokenizer:
    """The published tokenizer, loaded once for the hypothesis test (function-scoped fixtures don't mix with @given)."""
    if not _PUBLISHED:
        _PUBLISHED.append(FlaubertTokenizer.from_pretrained(SHARED_DATA / "flaubert_base_uncased"))
    return _PUBLISHED[0]


@given(st.lists(st.sampled_from(["Le", "chat", "l'été", "dort.", "M.", "3,5", "«", "»", "tapis"]), min_size=1,
                max_size=12), st.integers(1, 10), sides)
def test_truncation_of_pre_split_words(words, max_length, side):
    TINY.truncation_side = side
    try:
        got = TINY(words, is_split_into_words=True, max_length=max_length)
        expected = _whole_then_truncated(TINY, words, is_split_into_words=True, max_length=max_length)
    finally:
        TINY.truncation_side = "right"
    assert dict(got) == dict(expected) and got.word_ids() == expected.word_ids()


# ---------------------------------------------------------------------------------------------------------------------
# A 1 MB word and a 50 MB line: seconds and under 1 GiB
# ---------------------------------------------------------------------------------------------------------------------

TEXTS = {  # a repeated word would not do: BPE merges all its periods at once
    "a 1 MB word": "''.join(random.choice(LETTERS) for _ in range(1_000_000))",
    "a word at the limit": f"''.join(random.choice(LETTERS) for _ in range({MAX_WORD_CHARS}))",
    "a 50 MB line": "(' '.join(WORDS) + ' ') * (50_000_000 // 73)",
    "1 MB of words glued by punctuation": "''.join(random.choice(WORDS) for _ in range(150_000))",
}


@pytest.mark.parametrize("name", TEXTS)
def test_long_texts_tokenize_and_embed_in_seconds_under_a_gigabyte(name):
    script = textwrap.dedent(f"""
        import random, resource, warnings
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
        from minflaubert import FlaubertTokenizer, pipeline
        random.seed(0)
        # 73 characters, spaces included
        WORDS = "Le chat dort sur le tapis, l'été venu ; M. Dupont arrive. «Déjà?» dit-il".split()
        LETTERS = "abcdefghijklmnopqrstuvwxyzéèà"
        text = {TEXTS[name]}
        tok = FlaubertTokenizer.from_pretrained({str(FIXTURES / "tiny-tokenizer")!r})
        for side in ("right", "left"):
            tok.truncation_side = side
            assert len(tok(text, truncation=True, max_length=64)["input_ids"]) <= 64
        extract = pipeline("feature-extraction", {str(FIXTURES / "tiny-model")!r})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            print(len(extract(text)))
    """)
    environment = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=TIMEOUT,
                          env=environment)
    assert done.returncode == 0, done.stderr[-2000:]
    assert 1 <= int(done.stdout.split()[-1]) <= 64
