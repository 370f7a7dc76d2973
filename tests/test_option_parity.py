"""Defaults and options that must give what transformers 5.23 gives: ``decode()`` with default arguments (the
clean-up of spaces: the folder's ``clean_up_tokenization_spaces``, else transformers' default for FlauBERT, off),
fill-mask's ``targets=`` and token-classification's ``ignore_labels=``."""
import json
import shutil
import warnings

import pytest

from minflaubert import FlaubertTokenizer, pipeline

from conftest import FIXTURES

CORPUS_LINES = 300


@pytest.mark.parametrize("clean_up", [True, False, "absent"])
def test_decode_defaults_equal_transformers(transformers, shared_data, tmp_path, clean_up):
    published = shared_data / "flaubert_base_uncased"
    for name in ("vocab.json", "merges.txt"):
        shutil.copy(published / name, tmp_path / name)
    config = json.loads((published / "tokenizer_config.json").read_text(encoding="utf-8"))
    if clean_up == "absent":
        del config["clean_up_tokenization_spaces"]
    else:
        config["clean_up_tokenization_spaces"] = clean_up
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    theirs = transformers.FlaubertTokenizer.from_pretrained(str(tmp_path))
    ours = FlaubertTokenizer.from_pretrained(tmp_path)
    corpus = (shared_data / "corpus" / "chasse-galerie.txt").read_text(encoding="utf-8")
    lines = [line for line in corpus.split("\n") if line.strip()][:CORPUS_LINES]
    differ = [line for line in lines for ids in [theirs(line)["input_ids"]] for skip in (False, True)
              if ours.decode(ids, skip_special_tokens=skip) != theirs.decode(ids, skip_special_tokens=skip)]
    assert not differ, f"{len(differ)} of {2 * len(lines)} decodes differ, e.g. {differ[0]!r}"


@pytest.mark.parametrize("targets, top_k", [
    (["!</w>", "'</w>", ",</w>"], 5),  # vocabulary entries
    (["!", "'", ","], 5),  # words that are not entries: their first piece, with a warning
    (["!</w>", "'</w>", "!</w>"], 5),  # duplicates count once
    ("!</w>", 5),  # one target as a string
    (["", "'</w>"], 5),  # a target that gives no token is skipped
    (["zzzqqq"], 5),  # unknown: <unk>, as transformers
    (["Chat", "chat"], 3),
])
def test_fill_mask_targets_equal_transformers(transformers, targets, top_k):
    folder = FIXTURES / "tiny-lm"
    theirs, ours = transformers.pipeline("fill-mask", model=str(folder)), pipeline("fill-mask", folder)
    text = "Le chat <special1> sur le tapis."
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected, got = theirs(text, targets=targets, top_k=top_k), ours(text, targets=targets, top_k=top_k)
    assert [(a["token"], a["token_str"], a["sequence"]) for a in got] == \
        [(a["token"], a["token_str"], a["sequence"]) for a in expected]
    assert [a["score"] for a in got] == pytest.approx([a["score"] for a in expected], rel=1e-4)


def test_fill_mask_without_any_usable_target_is_an_error_as_in_transformers(transformers):
    with pytest.raises(ValueError), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipeline("fill-mask", FIXTURES / "tiny-lm")("Le <special1>.", targets=[""])


@pytest.mark.parametrize("options", [{}, {"ignore_labels": []}, {"ignore_labels": ["O", "B-PER"]},
                                     {"ignore_labels": None}, {"aggregation_strategy": "simple"},
                                     {"aggregation_strategy": "simple", "ignore_labels": ["PER"]},
                                     {"aggregation_strategy": "simple", "ignore_labels": ["B-PER"]}])
def test_ignore_labels_equal_transformers(transformers, options):
    folder = FIXTURES / "tiny-token-classification"
    theirs, ours = transformers.pipeline("token-classification", model=str(folder)), pipeline(
        "token-classification", folder)
    text = "Marie Dupont habite à Lyon depuis 2019, rue de l'Église."

    def labels(entities):
        return [(e.get("entity", e.get("entity_group")), e.get("index"), round(float(e["score"]), 5))
                for e in entities]
    assert labels(ours(text, **options)) == labels(theirs(text, **options))


def test_one_ignored_label_may_be_a_string():
    tagger = pipeline("token-classification", FIXTURES / "tiny-token-classification")
    text = "Marie Dupont habite à Lyon."
    assert tagger(text, ignore_labels="B-LOC") == tagger(text, ignore_labels=["B-LOC"])
