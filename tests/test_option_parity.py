"""Defaults and options that must give what transformers 5.23 gives: ``decode()`` with default arguments (the
clean-up of spaces: the folder's ``clean_up_tokenization_spaces``, else transformers' default for FlauBERT, off),
fill-mask's ``targets=`` and token-classification's ``ignore_labels=``."""
import json
import shutil
import warnings

import numpy as np
import pytest

from minflaubert import FlaubertTokenizer, pipeline

from conftest import FIXTURES, compare_outputs

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


# ------------------------------------------------------------------- the pipelines' shapes and options (issue 30)
PAIR = {"text": "Il pleut.", "text_pair": "Le sol est mouillé."}
CLASSIFY_INPUTS = {"one text": "Le chat dort.", "texts": ["Le chat dort.", "Paris est belle.", "Non !"],
                   "one pair": PAIR, "pairs": [PAIR, {"text": "Oui.", "text_pair": "Non."}]}


def same_answers(got, expected, where: str) -> None:
    """The same nesting of lists and dicts, the same keys, labels and words; numbers within 2e-5 (relative)."""
    assert type(got) is type(expected), f"{where}: {type(got).__name__} != {type(expected).__name__}"
    if isinstance(expected, list):
        assert len(got) == len(expected), where
        for mine, theirs in zip(got, expected):
            same_answers(mine, theirs, where)
    elif isinstance(expected, dict):
        assert list(got) == list(expected), where
        for key in expected:
            same_answers(got[key], expected[key], f"{where} {key}")
    elif isinstance(expected, float):
        assert got == pytest.approx(expected, rel=2e-5, abs=1e-6), where
    else:
        assert got == expected, where


@pytest.mark.parametrize("call", [{}, {"top_k": 1}, {"top_k": 2}, {"top_k": None}, {"batch_size": 2}])
@pytest.mark.parametrize("inputs", CLASSIFY_INPUTS)
def test_text_classification_answer_shapes_equal_transformers(transformers, inputs, call):
    """Without top_k, transformers' older shape: a dict per text of a list ([dict] for one text, the bare dict for
    one pair); with top_k, a list of labels per text."""
    folder = FIXTURES / "tiny-sequence-classification"
    theirs, ours = transformers.pipeline("text-classification", model=str(folder)), pipeline(
        "text-classification", folder)
    value = CLASSIFY_INPUTS[inputs]
    same_answers(ours(value, **call), theirs(value, **call), f"{inputs} {call}")


@pytest.mark.parametrize("top_k", [1, 2, None])
def test_text_classification_top_k_given_to_the_pipeline_equals_transformers(transformers, top_k):
    folder = FIXTURES / "tiny-sequence-classification"
    theirs, ours = transformers.pipeline("text-classification", model=str(folder), top_k=top_k), pipeline(
        "text-classification", folder, top_k=top_k)
    for value in (CLASSIFY_INPUTS["texts"], CLASSIFY_INPUTS["pairs"]):
        same_answers(ours(value), theirs(value), f"pipeline(top_k={top_k})")


def test_text_classification_top_k_given_to_the_pipeline_then_one_text():
    """A deliberate difference: transformers nests this case's list once more ([[{label, score}]]), because its
    __call__ looks for top_k in the call's own arguments only; here one text gets its labels' list, whether top_k
    was given to pipeline() or to the call."""
    classify = pipeline("text-classification", FIXTURES / "tiny-sequence-classification", top_k=2)
    answer = classify("Le chat dort.")
    assert answer == classify("Le chat dort.", top_k=2) and len(answer) == 2 and isinstance(answer[0], dict)


LONG = "Le chat dort sur le tapis rouge du salon. " * 20  # ~200 tokens: longer than the model's 64 positions


@pytest.mark.parametrize("where", ["call", "pipeline"])
@pytest.mark.parametrize("options", [{}, {"return_tensors": True}, {"truncation": True},
                                     {"tokenize_kwargs": {"truncation": True, "max_length": 5}},
                                     {"tokenize_kwargs": {"add_special_tokens": False}}, {"batch_size": 2}])
def test_feature_extraction_output_and_options_equal_transformers(transformers, options, where):
    """Nested lists [1, tokens, dim] by default, an array (a tensor there) with return_tensors=True; truncation and
    tokenize_kwargs given to the call or to pipeline(). (batch_size: compared with transformers' unbatched answer,
    since its batches return the padding's vectors too: a difference, see the next test.)"""
    folder = FIXTURES / "tiny-model"
    texts = ["Le chat dort.", "Marie habite à Lyon et travaille à Genève."]
    if options.get("truncation") or "max_length" in options.get("tokenize_kwargs", {}):
        texts.append(LONG)
    if where == "pipeline" and "batch_size" not in options:
        theirs = transformers.pipeline("feature-extraction", model=str(folder), **options)
        ours_pipe, call = pipeline("feature-extraction", folder, **options), {}
    else:
        theirs, ours_pipe, call = transformers.pipeline("feature-extraction", model=str(folder)), pipeline(
            "feature-extraction", folder), options
    expected = theirs(texts, **{name: value for name, value in call.items() if name != "batch_size"})
    got = ours_pipe(texts, **call)
    if options.get("return_tensors"):
        assert all(isinstance(mine, np.ndarray) and mine.dtype == np.float32 for mine in got)
        for mine, reference in zip(got, expected):
            compare_outputs({"vectors": mine}, {"vectors": reference.numpy()}, "feature-extraction return_tensors")
    else:
        same_answers(got, expected, f"feature-extraction {options}")


def test_feature_extraction_batches_return_each_text_its_own_tokens(transformers):
    """A deliberate difference: with batch_size > 1, transformers pads each batch to its longest text and returns
    the padding positions' vectors as well; here each text gets its own tokens' vectors, whatever the batch."""
    folder = FIXTURES / "tiny-model"
    texts = ["Le chat dort.", "Marie habite à Lyon et travaille à Genève."]
    extract = pipeline("feature-extraction", folder)
    lengths = [len(extract.tokenizer(text)["input_ids"]) for text in texts]
    assert [len(vectors[0]) for vectors in extract(texts, batch_size=2)] == lengths
    theirs = transformers.pipeline("feature-extraction", model=str(folder))(texts, batch_size=2)
    assert [len(vectors[0]) for vectors in theirs] == [max(lengths)] * 2


def test_feature_extraction_truncation_given_twice_is_an_error_as_in_transformers(transformers):
    folder = FIXTURES / "tiny-model"
    theirs, ours = transformers.pipeline("feature-extraction", model=str(folder)), pipeline("feature-extraction",
                                                                                            folder)
    for extract in (theirs, ours):
        with pytest.raises(ValueError, match="truncation"):
            extract("Le chat.", truncation=True, tokenize_kwargs={"truncation": True})
    with pytest.raises(ValueError, match="minflaubert makes no torch tensors"):
        ours("Le chat.", return_tensors="pt")


def test_feature_extraction_cuts_a_long_text_with_a_warning():
    """A deliberate difference: transformers' feature-extraction crashes on a text longer than the model's positions
    (without truncation=True); here it is cut there, with a warning."""
    from minflaubert.apps.pipeline_base import TextCutWarning

    extract = pipeline("feature-extraction", FIXTURES / "tiny-model")
    with pytest.warns(TextCutWarning, match="is cut to the model's 64"):
        assert len(extract(LONG)[0]) == 64
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(extract(LONG, truncation=True)[0]) == 64  # asked for: silently


@pytest.mark.parametrize("task, folder, inputs", [
    ("fill-mask", "tiny-lm", ["Le <special1> dort.", "Paris est la <special1> de la France.", "<special1> !"]),
    ("token-classification", "tiny-token-classification", ["Marie habite à Lyon.", "Jean est à Paris ce soir."]),
])
def test_batch_size_at_the_call_equals_transformers(transformers, task, folder, inputs):
    theirs, ours = transformers.pipeline(task, model=str(FIXTURES / folder)), pipeline(task, FIXTURES / folder)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected, got = theirs(inputs, batch_size=2), ours(inputs, batch_size=2)
    if task == "token-classification":  # (the words and spans are a difference: see the README's table)
        expected = [[(e["entity"], e["index"]) for e in entities] for entities in expected]
        got = [[(e["entity"], e["index"]) for e in entities] for entities in got]
    same_answers(got, expected, f"{task} batch_size=2")
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        ours(inputs, batch_size=0)
