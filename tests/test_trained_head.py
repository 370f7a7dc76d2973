"""A head trained on frozen weights/flaubert_tiny vectors and saved as lesson 7 saves it (the encoder's weights, a
``sequence_summary`` projection under transformers' names, summary_type="mean"): `minflaubert classify --model` runs
the folder, and transformers loads it and computes the same logits.

The lesson fits its head on the corpus beside the repository; here any head will do (the folder's format is what
is checked), so it is drawn at random: this test needs no corpus.
"""
import json
import warnings

import numpy as np
import pytest

from conftest import REPO
from minflaubert import FlaubertForSequenceClassification, FlaubertModel, FlaubertTokenizer
from test_cli import json_lines, run
from test_parity_encoder import run_transformers4

TINY = REPO / "weights" / "flaubert_tiny"
AUTHORS = ["Balzac", "Hugo", "Verne", "Zola"]
TEXTS = ["Le navire partit ; et les deux berges filèrent comme deux larges rubans que l'on déroule.",
         "Il ouvrit la porte et sortit."]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Lesson 7's folder: the frozen encoder plus a [labels, 256] projection and its bias."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the bare encoder does not use the LM head's bias
        encoder = FlaubertModel.from_pretrained(TINY)
    config = encoder.config.updated(id2label=dict(enumerate(AUTHORS)), summary_type="mean", summary_use_proj=True,
                                    summary_proj_to_labels=True, summary_activation=None)
    rng = np.random.default_rng(0)
    head = {"sequence_summary.summary.weight": rng.normal(0, 0.05, (len(AUTHORS), 256)).astype(np.float32),
            "sequence_summary.summary.bias": rng.normal(0, 0.5, len(AUTHORS)).astype(np.float32)}
    path = tmp_path_factory.mktemp("authors") / "flaubert_tiny_authors"
    FlaubertForSequenceClassification(config, {**encoder.weights, **head}).save_pretrained(path)
    FlaubertTokenizer.from_pretrained(TINY).save_pretrained(path)
    return path


def test_the_saved_folder_names_its_weights_as_transformers_does(folder):
    config = json.loads((folder / "config.json").read_text())
    assert config["architectures"] == ["FlaubertForSequenceClassification"]
    assert config["summary_type"] == "mean" and config["id2label"]["3"] == "Zola"
    reloaded = FlaubertForSequenceClassification.from_pretrained(folder)
    names = set(reloaded.state_dict())
    assert {"sequence_summary.summary.weight", "sequence_summary.summary.bias"} <= names
    assert all(name.startswith(("transformer.", "sequence_summary.")) for name in names)


def test_the_command_line_runs_it(folder):
    answers = json_lines(run("classify", TEXTS[0], "--model", folder, "--top-k", "0"))
    assert len(answers) == 1 and sorted(r["label"] for r in answers[0]) == sorted(AUTHORS)
    model = FlaubertForSequenceClassification.from_pretrained(folder)
    tokenizer = FlaubertTokenizer.from_pretrained(folder)
    logits = model(**tokenizer(TEXTS[0], return_tensors="np")).logits[0]
    expected = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    scores = {r["label"]: r["score"] for r in answers[0]}
    np.testing.assert_allclose([scores[a] for a in AUTHORS], expected, rtol=1e-5, atol=1e-7)


def test_transformers_computes_the_same_logits(folder, tmp_path):
    """transformers 4.57.6 (5.23 cannot run a pre-norm FlauBERT), from_pretrained with default arguments; one text
    at a time, since summary_type="mean" averages padded positions too (in transformers as here)."""
    tokenizer = FlaubertTokenizer.from_pretrained(folder)
    model = FlaubertForSequenceClassification.from_pretrained(folder)
    for i, text in enumerate(TEXTS):
        ids = tokenizer(text, return_tensors="np")["input_ids"]
        reference = run_transformers4(dict(pretrained=str(folder), class_name="FlaubertForSequenceClassification",
                                           inputs={"input_ids": ids.tolist()}, call={}), tmp_path)
        ours = model(ids).logits
        error = np.abs(ours - reference["logits"]).max() / max(1.0, np.abs(reference["logits"]).max())
        assert error <= 2e-5, (text, error)
