"""FlaubertModel against transformers: random weights, saved by transformers, loaded by minflaubert.

Every case compares last_hidden_state, every hidden state and every attention map within 2e-5 x max(1, max|ref|),
once per execution path, named in the test id ([fast], [kernels], [reference]: see minflaubert/nn/paths.py). The
fast path keeps no attention maps (asked for, the call runs "kernels"), so its cases compare everything else.
transformers 5.23 crashes on pre-norm models, so those cases run transformers 4.57.6 in another Python
(MINFLAUBERT_TRANSFORMERS4_PYTHON, which .ci/run sets up) and compare attentions with our NumPy reference.
Each reference is computed once and shared by the three paths' tests.
"""
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import compare_outputs, flatten_output, require
from minflaubert.models.model import FlaubertModel
from minflaubert.nn import gemm
from minflaubert.nn.paths import PATHS



@pytest.fixture(autouse=True)
def tiled_kernel_at_every_size(monkeypatch):
    """The tiny models here fall below gemm.TILES_FROM, where the fast path runs on BLAS: hold the tiled kernel to
    the reference (tests/test_gemm.py holds the BLAS fast path to the tiled one)."""
    monkeypatch.setattr(gemm, "TILES_FROM", 0)


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


def ours(folder, inputs, path, **flags):
    """Our outputs on ``path``, flattened, after checking that the output says that path ran."""
    model = FlaubertModel.from_pretrained(folder, path=path)
    output = model(**inputs, **flags, return_dict=True)
    assert output.execution_path == path
    return flatten_output(output)


def flags_for(path):
    """Every output on "kernels" and "reference"; on "fast", all but the attention maps it does not keep."""
    return dict(output_hidden_states=True) if path == "fast" else ALL_OUT


def skipped(path):
    """The reference fields a path's comparison leaves out: the attention maps, on "fast"."""
    return ("attentions",) if path == "fast" else ()


@pytest.fixture(scope="module")
def references(tmp_path_factory):
    """get(name, build) -> (checkpoint folder, reference outputs), built once per module by ``build(folder,
    scratch folder)`` and shared by the three paths' tests."""
    made = {}

    def get(name, build):
        if name not in made:
            folder = tmp_path_factory.mktemp("reference")
            made[name] = folder / "model", build(folder / "model", folder)
        return made[name]
    return get


def tiny_reference(references, case):
    """(folder, transformers' outputs) for one of CASES: the checkpoint saved and run once."""
    from reference import make_case

    config_changes, inputs = CASES[case]
    return references(f"tiny {case}", lambda folder, _: make_case(
        folder, "FlaubertModel", {**TINY, **config_changes}, inputs, ALL_OUT))


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("case", CASES)
def test_tiny_parity(case, path, transformers, references):
    folder, reference = tiny_reference(references, case)
    inputs = CASES[case][1]
    compare_outputs(ours(folder, inputs, path, **flags_for(path)), reference, f"tiny {case}", skip=skipped(path))


def test_attention_maps_asked_on_the_fast_path_run_kernels(transformers, references):
    """The fallback, checked: the fast path keeps no attention maps, so a call asking for them runs "kernels"
    and still gives transformers' maps."""
    folder, reference = tiny_reference(references, "padding by attention_mask")
    inputs = CASES["padding by attention_mask"][1]
    output = FlaubertModel.from_pretrained(folder, path="fast")(**inputs, **ALL_OUT)
    assert output.execution_path == "kernels"
    compare_outputs(flatten_output(output), reference, "tiny padding by attention_mask (fast -> kernels)")


def run_transformers4(spec: dict, tmp_path: Path) -> dict:
    """Run tests/reference.py under the Python that has transformers 4.57.6 (``tmp_path``: for its two files)."""
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


def check_pre_norm(references, config, inputs, case, path):
    # transformers 4.57.6 crashes when asked for attentions of a pre-norm model: hidden states only.
    def build(folder, scratch):
        spec = dict(folder=str(folder), class_name="FlaubertModel", config=config,
                    inputs={k: np.asarray(v).tolist() for k, v in inputs.items()},
                    call=dict(output_hidden_states=True))
        return run_transformers4(spec, scratch)

    folder, reference = references(case, build)
    checked = ours(folder, inputs, path, **flags_for(path))
    compare_outputs(checked, reference, case)
    if path == "reference":
        return
    # Attentions (which transformers cannot give here): this path against the plain-NumPy reference path.
    oracle = ours(folder, inputs, "reference", **flags_for(path))
    if path == "kernels":
        for i in range(config["n_layers"]):
            np.testing.assert_allclose(checked[f"attentions.{i}"], oracle[f"attentions.{i}"], atol=2e-6,
                                       err_msg=f"{case} attentions.{i}")
    compare_outputs({"last_hidden_state": checked["last_hidden_state"]},
                    {"last_hidden_state": oracle["last_hidden_state"]}, f"{case} ({path} vs NumPy)")


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("case", ["plain", "padding by attention_mask", "causal", "padding inferred from pad ids"])
def test_tiny_pre_norm_parity(case, path, references):
    config_changes, inputs = CASES[case]
    check_pre_norm(references, {**TINY, **config_changes, "pre_norm": True}, inputs, f"tiny pre-norm {case}", path)


# The published architectures (random weights): (emb_dim, n_layers, n_heads, pre_norm)
PUBLISHED = {
    "flaubert_small_cased": (512, 6, 8, False),
    "flaubert_base_cased": (768, 12, 12, False),
    "flaubert_large_cased": (1024, 24, 16, True),
}


@pytest.mark.slow
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("name", PUBLISHED)
def test_published_size_parity(name, path, transformers, references):
    from reference import make_case

    dim, n_layers, n_heads, pre_norm = PUBLISHED[name]
    config = dict(vocab_size=68729, emb_dim=dim, n_layers=n_layers, n_heads=n_heads, pre_norm=pre_norm)
    ids = np.random.default_rng(1).integers(4, 68729, size=(2, 40))
    ids[1, 25:] = 2
    inputs = dict(input_ids=ids, attention_mask=(ids != 2).astype(np.int64))
    if pre_norm:
        check_pre_norm(references, config, inputs, f"{name} size (pre-norm)", path)
    else:
        folder, reference = references(f"{name} size", lambda folder, _: make_case(
            folder, "FlaubertModel", config, inputs, ALL_OUT))
        compare_outputs(ours(folder, inputs, path, **flags_for(path)), reference, f"{name} size",
                        skip=skipped(path))
