"""FlaubertModel against transformers: random weights, saved by transformers, loaded by minflaubert.

Every case compares last_hidden_state, every hidden state and every attention map within 2e-5 x max(1, max|ref|).
transformers 5.23 crashes on pre-norm models, so those cases run transformers 4.57.6 in another Python
(MINFLAUBERT_TRANSFORMERS4_PYTHON, which .ci/run sets up) and compare attentions with our NumPy reference.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import compare_outputs, flatten_output, require
from minflaubert.models.model import FlaubertModel

TINY = dict(vocab_size=99, emb_dim=32, n_layers=2, n_heads=4, max_position_embeddings=64)
RNG = np.random.default_rng(0)
IDS = RNG.integers(4, 99, size=(3, 9))
PADDED = IDS.copy()
PADDED[1, 6:], PADDED[2, 3:] = 2, 2  # right padding with pad_index 2
MASK = (PADDED != 2).astype(np.int64)
ALL_OUT = dict(output_hidden_states=True, output_attentions=True)

# name -> (config changes, inputs)
CASES = {
    "plain": ({}, dict(input_ids=IDS)),
    "padding by attention_mask": ({}, dict(input_ids=PADDED, attention_mask=MASK)),
    "padding by lengths": ({}, dict(input_ids=PADDED, lengths=np.array([9, 6, 3]))),
    "padding inferred from pad ids": ({}, dict(input_ids=PADDED)),
    "mask with a pad id mid-row": ({}, dict(input_ids=np.array([[5, 2, 7, 8, 9]]))),
    "sinusoidal positions": (dict(sinusoidal_embeddings=True), dict(input_ids=IDS)),
    "relu": (dict(gelu_activation=False), dict(input_ids=PADDED, attention_mask=MASK)),
    "three languages": (dict(n_langs=3), dict(input_ids=IDS, langs=RNG.integers(0, 3, size=(3, 9)))),
    "causal": (dict(causal=True), dict(input_ids=PADDED, attention_mask=MASK)),
    "token_type_ids": ({}, dict(input_ids=IDS, token_type_ids=RNG.integers(0, 2, size=(3, 9)))),
    "position_ids": ({}, dict(input_ids=IDS, position_ids=RNG.integers(0, 64, size=(3, 9)))),
    "inputs_embeds": ({}, dict(inputs_embeds=RNG.normal(size=(2, 5, 32)).astype(np.float32))),
    "one token": ({}, dict(input_ids=np.array([[17]]))),
    "fully masked row": ({}, dict(input_ids=IDS[:2], attention_mask=np.array([[1] * 9, [0] * 9]))),
}


def ours(folder, inputs, **flags):
    model = FlaubertModel.from_pretrained(folder)
    return flatten_output(model(**inputs, **flags, return_dict=True))


@pytest.mark.parametrize("case", CASES)
def test_tiny_parity(case, transformers, tmp_path):
    from reference import make_case

    config_changes, inputs = CASES[case]
    reference = make_case(tmp_path, "FlaubertModel", {**TINY, **config_changes}, inputs, ALL_OUT)
    compare_outputs(ours(tmp_path, inputs, **ALL_OUT), reference, f"tiny {case}")


def run_transformers4(spec: dict, tmp_path: Path) -> dict:
    """Run tests/reference.py under the Python that has transformers 4.57.6."""
    python = os.environ.get("MINFLAUBERT_TRANSFORMERS4_PYTHON", "")
    require(bool(python) and Path(python).exists(),
            "MINFLAUBERT_TRANSFORMERS4_PYTHON must name a Python with torch==2.13.0 and transformers==4.57.6 "
            "(pre-norm parity; .ci/run sets it up)")
    spec_path, out_path = tmp_path / "spec.json", tmp_path / "out.npz"
    spec_path.write_text(json.dumps(spec))
    script = Path(__file__).with_name("reference.py")
    subprocess.run([python, str(script), str(spec_path), str(out_path)], check=True,
                   env={**os.environ, "PYTHONPATH": ""})
    return dict(np.load(out_path))


def check_pre_norm(tmp_path, config, inputs, case):
    folder = tmp_path / "model"
    # transformers 4.57.6 crashes when asked for attentions of a pre-norm model: hidden states only.
    spec = dict(folder=str(folder), class_name="FlaubertModel", config=config,
                inputs={k: np.asarray(v).tolist() for k, v in inputs.items()}, call=dict(output_hidden_states=True))
    reference = run_transformers4(spec, tmp_path)
    compare_outputs(ours(folder, inputs, output_hidden_states=True), reference, case)
    # Attentions: the Numba kernels against the plain-NumPy reference path on the same checkpoint.
    model = FlaubertModel.from_pretrained(folder)
    fast = model(**inputs, output_attentions=True)
    model.use_kernels = False
    slow = model(**inputs, output_attentions=True)
    for i, (a, b) in enumerate(zip(fast.attentions, slow.attentions)):
        np.testing.assert_allclose(a, b, atol=2e-6, err_msg=f"{case} attentions.{i}")
    compare_outputs({"last_hidden_state": fast.last_hidden_state}, {"last_hidden_state": slow.last_hidden_state},
                    f"{case} (kernels vs NumPy)")


@pytest.mark.parametrize("case", ["plain", "padding by attention_mask", "causal", "padding inferred from pad ids"])
def test_tiny_pre_norm_parity(case, tmp_path):
    config_changes, inputs = CASES[case]
    check_pre_norm(tmp_path, {**TINY, **config_changes, "pre_norm": True}, inputs, f"tiny pre-norm {case}")


# The published architectures (random weights): (emb_dim, n_layers, n_heads, pre_norm)
PUBLISHED = {
    "flaubert_small_cased": (512, 6, 8, False),
    "flaubert_base_cased": (768, 12, 12, False),
    "flaubert_large_cased": (1024, 24, 16, True),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", PUBLISHED)
def test_published_size_parity(name, transformers, tmp_path):
    from reference import make_case

    dim, n_layers, n_heads, pre_norm = PUBLISHED[name]
    config = dict(vocab_size=68729, emb_dim=dim, n_layers=n_layers, n_heads=n_heads, pre_norm=pre_norm)
    ids = np.random.default_rng(1).integers(4, 68729, size=(2, 40))
    ids[1, 25:] = 2
    inputs = dict(input_ids=ids, attention_mask=(ids != 2).astype(np.int64))
    if pre_norm:
        check_pre_norm(tmp_path, config, inputs, f"{name} size (pre-norm)")
    else:
        reference = make_case(tmp_path, "FlaubertModel", config, inputs, ALL_OUT)
        compare_outputs(ours(tmp_path, inputs, **ALL_OUT), reference, f"{name} size")
