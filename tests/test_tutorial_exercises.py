"""The "build it yourself" exercises of the lessons, checked against the library.

Lesson 3 asks the reader to write attention (``attention`` and ``multi_head_attention``), lesson 8 to learn BPE
(``train_bpe``), each in a file of their own. These tests import such a file and compare its functions with the
library's on random inputs and on real text. By default they check the solutions in tutorials/solutions/; point them
at your own file with an environment variable:

    MINFLAUBERT_ATTENTION_SOLUTION=mine.py pytest tests/test_tutorial_exercises.py -k attention
    MINFLAUBERT_BPE_SOLUTION=mine.py pytest tests/test_tutorial_exercises.py -k bpe
"""
import contextlib
import importlib.util
import io
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, strategies as st

from conftest import FIXTURES, REPO
from minflaubert import FlaubertModel
from minflaubert.nn import layers
from minflaubert.tokenization import bpe_train
from test_bpe_train import FRENCH


def solution(variable: str, lesson: str):
    """The reader's file named by ``variable``, else the shipped solution of ``lesson``, imported (its prints hidden)."""
    path = Path(os.environ.get(variable) or next((REPO / "tutorials" / "solutions").glob(f"*_{lesson}.py")))
    if not path.is_file():
        pytest.fail(f"{variable}={path}: no such file")
    spec = importlib.util.spec_from_file_location(f"reader_{lesson}", path)
    module = importlib.util.module_from_spec(spec)
    cwd = os.getcwd()
    os.chdir(REPO)  # the shipped solutions read lesson files and models by relative path
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            spec.loader.exec_module(module)
    finally:
        os.chdir(cwd)
    return module


@pytest.fixture(scope="module")
def reader_attention():
    return solution("MINFLAUBERT_ATTENTION_SOLUTION", "attention_and_masks")


@pytest.fixture(scope="module")
def reader_bpe():
    return solution("MINFLAUBERT_BPE_SOLUTION", "learning_bpe")


@pytest.fixture(scope="module")
def tiny_layer():
    model = FlaubertModel.from_pretrained(FIXTURES / "tiny-model")
    return model.params["attentions"][0], model.config.n_heads, model.config.emb_dim


def random_mask(rng, batch, seq_len, causal):
    """Right padding of random lengths (at least one real token), as a [batch, queries, keys] attention mask."""
    lengths = rng.integers(1, seq_len + 1, size=batch)
    return layers.attention_mask_matrix(np.arange(seq_len)[None, :] < lengths[:, None], causal)


@given(batch=st.integers(1, 3), heads=st.integers(1, 4), seq_len=st.integers(1, 9), head_dim=st.integers(1, 16),
       causal=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_reader_attention_matches_the_library(reader_attention, batch, heads, seq_len, head_dim, causal, seed):
    rng = np.random.default_rng(seed)
    q, k, v = (rng.normal(size=(batch, heads, seq_len, head_dim)).astype(np.float32) for _ in range(3))
    mask = random_mask(rng, batch, seq_len, causal)
    context, weights = reader_attention.attention(q, k, v, mask)
    expected_context, expected_weights = layers.scaled_dot_product_attention(q, k, v, mask)
    assert np.shape(weights) == expected_weights.shape, "weights must be [batch, heads, queries, keys]"
    assert np.allclose(weights, expected_weights, atol=1e-6), "attention weights differ from the library's"
    assert np.allclose(context, expected_context, atol=1e-5), "context differs from the library's"


@given(batch=st.integers(1, 3), seq_len=st.integers(1, 9), causal=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_reader_multi_head_attention_matches_the_library(reader_attention, tiny_layer, batch, seq_len, causal, seed):
    p, n_heads, dim = tiny_layer
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(batch, seq_len, dim)).astype(np.float32)
    mask = random_mask(rng, batch, seq_len, causal)
    output, weights = reader_attention.multi_head_attention(x, mask, p, n_heads)
    expected_output, expected_weights = layers.multi_head_attention(x, mask, p, n_heads)
    assert np.allclose(weights, expected_weights, atol=1e-6), "attention weights differ from the library's"
    assert np.allclose(output, expected_output, atol=1e-5), "output differs from the library's"


@pytest.mark.parametrize("vocab_size", [80, 150, 10_000])
def test_reader_bpe_matches_the_library_on_french(reader_bpe, vocab_size):
    """Real sentences: the same vocabulary (ids included) and the same merges, in the same order."""
    vocab, merges = reader_bpe.train_bpe(FRENCH, vocab_size)
    expected_vocab, expected_merges = bpe_train.train_bpe(FRENCH, vocab_size)
    assert [tuple(pair) for pair in merges] == expected_merges
    assert dict(vocab) == expected_vocab


@given(st.lists(st.text(alphabet="abcé' ,.", min_size=1, max_size=30), min_size=1, max_size=6),
       st.integers(0, 40))
def test_reader_bpe_matches_the_library_on_random_text(reader_bpe, texts, extra):
    """Few letters, many repeats: ties between equally frequent pairs, and pairs that spell the same symbol."""
    smallest = len(bpe_train.SPECIAL_VOCABULARY) + len(bpe_train.alphabet_of(bpe_train.count_words(texts)))
    vocab, merges = reader_bpe.train_bpe(texts, smallest + extra)
    assert (dict(vocab), [tuple(pair) for pair in merges]) == bpe_train.train_bpe(texts, smallest + extra)
