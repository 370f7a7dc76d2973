"""One model, many threads: every call gets exactly what the same call gets alone.

A web server or a thread pool shares one loaded model between its threads. Nothing may leak from one call into
another (the fast encoder's work buffers are per thread), and no Numba threading layer may abort the process
(kernels.PARALLEL_REGION). Each model class is built once per execution path (nn/paths.py), so every path is
shared. The models here are wide enough (128 features) that NumPy's matrix products release the GIL long enough
for threads to really overlap: with shared buffers, half the outputs came out wrong.
"""
import os
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minflaubert import (FlaubertConfig, FlaubertForQuestionAnswering, FlaubertForQuestionAnsweringSimple,
                         FlaubertForSequenceClassification, FlaubertForTokenClassification, FlaubertModel,
                         FlaubertTokenizer, FlaubertWithLMHeadModel, pipeline)

from conftest import FIXTURES, REPO, flatten_output
from minflaubert.nn.paths import PATHS

THREADS = 8
VOCAB = 300
CONFIG = FlaubertConfig(emb_dim=128, n_layers=2, n_heads=4, vocab_size=VOCAB, max_position_embeddings=64)
MODELS = {(cls.__name__, path): cls(CONFIG, seed=1, path=path)
          for cls in (FlaubertModel, FlaubertWithLMHeadModel, FlaubertForSequenceClassification,
                      FlaubertForTokenClassification, FlaubertForQuestionAnswering, FlaubertForQuestionAnsweringSimple)
          for path in PATHS}

calls = st.fixed_dictionaries({
    "model": st.sampled_from(sorted(MODELS)),  # (class name, execution path)
    "batch": st.integers(1, 4),
    "seq": st.integers(CONFIG.start_n_top, 64),  # the beam head needs start_n_top tokens
    "seed": st.integers(0, 2**16),
    "output_attentions": st.booleans(),
    "output_hidden_states": st.booleans(),
})


def run_call(call: dict) -> dict:
    """One model call described by ``call``: random ids, a random right-padding mask, the requested outputs."""
    rng = np.random.default_rng(call["seed"])
    batch, seq = call["batch"], call["seq"]
    lengths = rng.integers(1, seq + 1, batch)
    mask = (np.arange(seq)[None, :] < lengths[:, None]).astype(np.int64)
    output = MODELS[call["model"]](input_ids=rng.integers(5, VOCAB, (batch, seq)), attention_mask=mask,
                                   output_attentions=call["output_attentions"],
                                   output_hidden_states=call["output_hidden_states"])
    return flatten_output(output)


def assert_same_outputs(alone: list[dict], together: list[dict]) -> None:
    wrong = [i for i, (a, b) in enumerate(zip(alone, together))
             if a.keys() != b.keys() or not all(np.array_equal(a[name], b[name]) for name in a)]
    assert not wrong, f"{len(wrong)} of {len(alone)} calls differ when run in {THREADS} threads: calls {wrong}"


@settings(max_examples=12)  # each example is 8-16 model calls, made twice: a dozen already mix every head and flag
@given(st.lists(calls, min_size=THREADS, max_size=2 * THREADS))
def test_threads_sharing_models_get_single_threaded_outputs(batch_of_calls):
    alone = [run_call(call) for call in batch_of_calls]
    with ThreadPoolExecutor(THREADS) as pool:
        together = list(pool.map(run_call, batch_of_calls))
    assert_same_outputs(alone, together)


@pytest.mark.filterwarnings("ignore::UserWarning")  # the longest texts are cut to 64 tokens, on purpose
def test_threads_sharing_a_tokenizer_and_pipelines():
    tokenizer = FlaubertTokenizer.from_pretrained(FIXTURES / "tiny-token-classification")
    ner = pipeline("token-classification", model=FIXTURES / "tiny-token-classification",
                   aggregation_strategy="simple")
    texts = [f"Marie {i} habite à Lyon depuis {i * 7} ans, rue de l'Église." * (1 + i % 3) for i in range(24)]

    def both(text):
        return tokenizer(text, return_offsets_mapping=True), ner(text)

    alone = [both(text) for text in texts]
    tokenizer._cached_word.cache_clear()  # subtle: a cold cache, filled by all the threads at once
    with ThreadPoolExecutor(THREADS) as pool:
        together = list(pool.map(both, texts))
    assert [dict(encoding) for encoding, _ in together] == [dict(encoding) for encoding, _ in alone]
    assert [entities for _, entities in together] == [entities for _, entities in alone]


def test_three_threads_asking_for_attention_maps_finish():
    """Numba's workqueue layer aborted the process (SIGABRT) when two threads entered a parallel kernel at once."""
    script = textwrap.dedent(f"""
        import threading
        import numpy as np
        from minflaubert import FlaubertModel
        model = FlaubertModel.from_pretrained({str(FIXTURES / "tiny-model")!r})
        ids = np.random.default_rng(0).integers(5, 400, (4, 60))

        def work():
            for _ in range(30):
                model(input_ids=ids, output_attentions=True)

        threads = [threading.Thread(target=work) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        print("done")
    """)
    env = {name: value for name, value in os.environ.items() if name != "NUMBA_THREADING_LAYER"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, env=env,
                            timeout=600)
    assert result.returncode == 0 and result.stdout.strip() == "done", result.stderr[-2000:]
