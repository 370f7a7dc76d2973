"""The Auto classes, transformers' keyword semantics of from_pretrained, and encode(): on the committed tiny folders.

(Loading the same things by hub repository id is tests/test_hub.py's job.)
"""
import json
import shutil
import warnings

import numpy as np
import pytest

from conftest import FIXTURES
import minflaubert
from minflaubert import (AutoConfig, AutoModel, AutoModelForMaskedLM, AutoModelForMultipleChoice,
                         AutoModelForQuestionAnswering, AutoModelForSequenceClassification,
                         AutoModelForTokenClassification, AutoModelWithLMHead, AutoTokenizer, FlaubertConfig,
                         FlaubertForQuestionAnswering, FlaubertForQuestionAnsweringSimple,
                         FlaubertForTokenClassification, FlaubertModel, FlaubertTokenizer, pipeline)

NER = FIXTURES / "tiny-token-classification"
BASE = FIXTURES / "tiny-model"
IDS = np.array([[0, 12, 40, 7, 1, 2], [0, 9, 1, 2, 2, 2]])


# ----------------------------------------------------------------------------------------------------------------
# Auto classes
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("auto, folder, expected", [
    (AutoModel, "tiny-token-classification", "FlaubertModel"),
    (AutoModelWithLMHead, "tiny-lm", "FlaubertWithLMHeadModel"),
    (AutoModelForMaskedLM, "tiny-lm", "FlaubertWithLMHeadModel"),
    (AutoModelForSequenceClassification, "tiny-sequence-classification", "FlaubertForSequenceClassification"),
    (AutoModelForTokenClassification, "tiny-token-classification", "FlaubertForTokenClassification"),
    (AutoModelForQuestionAnswering, "tiny-qa-simple", "FlaubertForQuestionAnsweringSimple"),
    (AutoModelForQuestionAnswering, "tiny-qa", "FlaubertForQuestionAnswering"),  # its architectures say so
    (AutoModelForMultipleChoice, "tiny-multiple-choice", "FlaubertForMultipleChoice"),
])
def test_auto_class_picks_the_task_class(auto, folder, expected):
    model = auto.from_pretrained(FIXTURES / folder)
    assert type(model).__name__ == expected
    direct = getattr(minflaubert, expected).from_pretrained(FIXTURES / folder)
    inputs = IDS[:, None] if expected == "FlaubertForMultipleChoice" else IDS
    for ours, theirs in zip(model(inputs, return_dict=False), direct(inputs, return_dict=False)):
        np.testing.assert_array_equal(ours, theirs)


def test_task_default_when_the_architectures_name_another_head():
    with pytest.warns(UserWarning, match="newly initialized"):  # the checkpoint has no QA head at all
        model = AutoModelForQuestionAnswering.from_pretrained(FIXTURES / "tiny-lm")
    assert type(model) is FlaubertForQuestionAnsweringSimple  # what transformers builds for flaubert


def test_auto_config_tokenizer_and_from_config():
    config = AutoConfig.from_pretrained(NER)
    assert isinstance(config, FlaubertConfig) and config.id2label[1] == "B-PER"
    assert isinstance(AutoTokenizer.from_pretrained(NER), FlaubertTokenizer)
    assert type(AutoModelForQuestionAnswering.from_config(FlaubertConfig.from_pretrained(FIXTURES / "tiny-qa"))) \
        is FlaubertForQuestionAnswering
    with pytest.raises(OSError, match="from_pretrained"):
        AutoModel()


@pytest.fixture
def bert_folder(tmp_path):
    """A BERT checkpoint's config.json beside a FlauBERT's weights: must be refused, not loaded."""
    shutil.copytree(NER, tmp_path, dirs_exist_ok=True)
    config = json.loads((NER / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "model_type": "bert",
                                                      "architectures": ["BertForTokenClassification"]}))
    return tmp_path


def test_other_families_are_refused_by_name(bert_folder):
    for load in (AutoModelForTokenClassification.from_pretrained, FlaubertModel.from_pretrained,
                 AutoConfig.from_pretrained):
        with pytest.raises(ValueError, match=r"describes a bert model \(BertForTokenClassification\), not FlauBERT"):
            load(bert_folder)
    tokenizer_config = json.loads((NER / "tokenizer_config.json").read_text())
    (bert_folder / "tokenizer_config.json").write_text(json.dumps({**tokenizer_config,
                                                                   "tokenizer_class": "CamembertTokenizer"}))
    with pytest.raises(ValueError, match="is for a CamembertTokenizer, not FlauBERT's tokenizer"):
        AutoTokenizer.from_pretrained(bert_folder)


# ----------------------------------------------------------------------------------------------------------------
# from_pretrained's keywords
# ----------------------------------------------------------------------------------------------------------------


def test_misspelt_keywords_are_type_errors_with_a_suggestion():
    with pytest.raises(TypeError, match=r"FlaubertForTokenClassification.from_pretrained\(\) got an unexpected "
                                        r"keyword argument 'num_lables' \(did you mean 'num_labels'\?\)"):
        FlaubertForTokenClassification.from_pretrained(NER, num_lables=3)
    with pytest.raises(TypeError, match="'ignore_mismatched_size' .*did you mean 'ignore_mismatched_sizes'"):
        AutoModelForTokenClassification.from_pretrained(NER, ignore_mismatched_size=True)
    with pytest.raises(TypeError, match="'revison' .*did you mean 'revision'"):
        FlaubertTokenizer.from_pretrained(NER, revison="main")
    with pytest.raises(TypeError, match="'model_max_len' .*did you mean 'model_max_length'"):
        AutoTokenizer.from_pretrained(NER, model_max_len=8)
    with pytest.raises(TypeError, match="FlaubertConfig.from_pretrained.* 'trust_remote_code'"):
        AutoConfig.from_pretrained(NER, trust_remote_code=True)  # nothing loaded here ever runs code


def test_config_overrides_apply():
    model = AutoModel.from_pretrained(NER, output_attentions=True, output_hidden_states=True, dropout=0.3)
    assert model.config.dropout == 0.3
    output = model(IDS)
    assert len(output.attentions) == model.config.n_layers and len(output.hidden_states) == model.config.n_layers + 1
    assert model(IDS, output_attentions=False).attentions is None  # the call still decides when it says


def test_tokenizer_settings_can_be_overridden():
    tokenizer = AutoTokenizer.from_pretrained(NER, model_max_length=8, do_lowercase=True)
    assert tokenizer.model_max_length == 8 and tokenizer.tokenize("Paris") == tokenizer.tokenize("paris")
    assert AutoTokenizer.from_pretrained(NER).model_max_length == 64  # as saved


def test_new_label_names_keep_the_head():
    names = {0: "O", 1: "B-PERS", 2: "I-PERS", 3: "B-LIEU", 4: "I-LIEU"}
    renamed = FlaubertForTokenClassification.from_pretrained(NER, id2label=names)
    assert renamed.config.id2label == names and renamed.config.label2id["B-LIEU"] == 3
    by_label2id = FlaubertForTokenClassification.from_pretrained(NER, label2id={v: k for k, v in names.items()})
    assert by_label2id.config.id2label == names
    original = FlaubertForTokenClassification.from_pretrained(NER)
    np.testing.assert_array_equal(renamed(IDS).logits, original(IDS).logits)
    with pytest.raises(ValueError, match="num_labels=2 but 5 labels were named"):
        FlaubertForTokenClassification.from_pretrained(NER, num_labels=2, id2label=names)


def test_a_new_head_shape_needs_ignore_mismatched_sizes():
    with pytest.raises(ValueError, match=r"(?s)classifier.weight: found shape \(5, 32\) in the checkpoint and "
                                         r"\(3, 32\) in the model instantiated.*ignore_mismatched_sizes=True"):
        FlaubertForTokenClassification.from_pretrained(NER, num_labels=3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = AutoModelForTokenClassification.from_pretrained(NER, num_labels=3, ignore_mismatched_sizes=True)
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1, messages  # one warning, not a second one listing the same weights as missing
    assert "newly initialized because the shapes did not match" in messages[0]
    assert "- classifier.bias: found shape (5,) in the checkpoint and (3,)" in messages[0]
    assert model(IDS).logits.shape == (2, 6, 3) and model.config.id2label == {0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"}
    original = FlaubertForTokenClassification.from_pretrained(NER)
    np.testing.assert_array_equal(model.run_encoder(input_ids=IDS)[0], original.run_encoder(input_ids=IDS)[0])


def test_an_encoder_of_other_sizes_is_always_refused():
    with pytest.raises(ValueError, match="has shape .* but the config asks for"):
        FlaubertModel.from_pretrained(NER, max_position_embeddings=128, ignore_mismatched_sizes=True)


# ----------------------------------------------------------------------------------------------------------------
# encode()
# ----------------------------------------------------------------------------------------------------------------

TEXTS = ["Le chat dort.", "Paris est la capitale de la France, et une très grande ville.", "", "Oui",
         "Marie habite à Lyon.", "Une phrase un peu plus longue que les autres, mais pas tant que ça."]


@pytest.mark.parametrize("pooling", ["mean", "first", "max"])
def test_encode_gives_the_pipeline_numbers_in_input_order(pooling):
    model = FlaubertModel.from_pretrained(BASE)
    vectors = model.encode(TEXTS, batch_size=4, pooling=pooling)
    assert vectors.shape == (len(TEXTS), model.config.emb_dim) and vectors.dtype == np.float32
    expected = np.stack(pipeline("feature-extraction", BASE, pooling=pooling)(TEXTS))
    np.testing.assert_allclose(vectors, expected, rtol=1e-5, atol=1e-6)
    one_by_one = np.stack([model.encode([text], pooling=pooling)[0] for text in TEXTS])
    np.testing.assert_allclose(vectors, one_by_one, rtol=1e-5, atol=1e-6)  # batching and sorting change nothing


def test_encode_normalize_max_length_and_progress(capsys):
    model = FlaubertModel.from_pretrained(BASE)
    unit = model.encode(TEXTS, normalize=True, progress=True)
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, rtol=1e-5)
    assert "encode" in capsys.readouterr().err  # the bar went to stderr
    cut = model.encode([TEXTS[1]], max_length=4)
    tokenizer = FlaubertTokenizer.from_pretrained(BASE)
    ids = tokenizer(TEXTS[1], truncation=True, max_length=4)["input_ids"]
    np.testing.assert_allclose(cut[0], model(np.array([ids])).last_hidden_state[0].mean(0), rtol=1e-5, atol=1e-6)


def test_encode_errors():
    model = FlaubertModel.from_pretrained(BASE)
    with pytest.raises(TypeError, match="for one text, pass \\[text\\]"):
        model.encode("Le chat dort.")
    with pytest.raises(TypeError, match="texts must be strings, got a int"):
        model.encode(["a", 3])
    with pytest.raises(ValueError, match="pooling must be one of"):
        model.encode(TEXTS, pooling="cls")
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        model.encode(TEXTS, batch_size=0)
    with pytest.raises(ValueError, match="pass tokenizer="):
        FlaubertModel(model.config).encode(TEXTS)
    assert model.encode([]).shape == (0, model.config.emb_dim)
