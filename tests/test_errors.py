"""Bad input gives a clear error, never a crash, a stray IndexError or a silently wrong answer.

One test per bad input: each asserts the exception *type* (ValueError for a bad value, TypeError for a bad kind,
OSError for a missing file) and that the message names the argument or the problem (``match=``). The models are
tiny random ones (``FlaubertModel(FlaubertConfig(...))``), so the whole file runs in a few seconds and needs no
torch and no downloaded weights.
"""
import json

import numpy as np
import pytest

from minflaubert.models import heads
from minflaubert.models.config import FlaubertConfig
from minflaubert.models.model import FlaubertModel
from minflaubert.tokenization.tokenizer import FlaubertTokenizer
from minflaubert.checkpoints.weights import read_safetensors

TINY = dict(vocab_size=50, emb_dim=16, n_layers=1, n_heads=2, max_position_embeddings=12)
IDS = np.array([[5, 6, 7, 8], [9, 10, 2, 2]])  # batch 2, seq 4, the second row right-padded (pad_index=2)


@pytest.fixture(scope="module")
def model():
    return FlaubertModel(FlaubertConfig(**TINY))


@pytest.fixture(scope="module")
def three_languages():
    return FlaubertModel(FlaubertConfig(**TINY, n_langs=3))


@pytest.fixture(scope="module")
def causal():
    return FlaubertModel(FlaubertConfig(**TINY, causal=True))


# ------------------------------------------------------------------------------------------------- input_ids
@pytest.mark.parametrize("bad", [50, 1000, -1, -100])
def test_ids_out_of_vocabulary(model, bad):
    ids = IDS.copy()
    ids[0, 1] = bad
    with pytest.raises(ValueError, match=rf"input_ids must be in \[0, 50\), got {bad}"):
        model(ids)


def test_uint64_ids_do_not_wrap_around(model):
    """2**63 as uint64 would become a negative int64: the error must report the real value."""
    with pytest.raises(ValueError, match="input_ids must be in .* got 9223372036854775808"):
        model(np.array([[2**63]], dtype=np.uint64))


def test_sequence_longer_than_max_position_embeddings(model):
    with pytest.raises(ValueError, match="sequence length 13 exceeds max_position_embeddings=12"):
        model(np.full((1, 13), 5))


@pytest.mark.parametrize("ids", [np.full((1, 3), 5.0), [[5.0, 6.0]], np.ones((1, 3), bool), [["a", "b"]]],
                         ids=["float array", "float list", "bool", "str"])
def test_ids_that_are_not_integers(model, ids):
    with pytest.raises(TypeError, match="input_ids must hold integers"):
        model(ids)


@pytest.mark.parametrize("shape", [(1, 3, 1), (3,), (2, 2, 2, 2)])
def test_ids_of_the_wrong_rank(model, shape):
    with pytest.raises(ValueError, match=r"input_ids must have 2 dimension\(s\)"):
        model(np.full(shape, 5))


def test_ragged_ids(model):
    with pytest.raises(ValueError, match="input_ids must be a rectangular array"):
        model([[5, 6, 7], [5]])


@pytest.mark.parametrize("shape", [(0, 4), (2, 0)])
def test_empty_input(model, shape):
    with pytest.raises(ValueError, match="at least one token"):
        model(np.zeros(shape, dtype=np.int64))


# ------------------------------------------------------------------------------------------ the other inputs
@pytest.mark.parametrize("name", ["attention_mask", "token_type_ids", "position_ids"])
@pytest.mark.parametrize("shape", [(2, 3), (1, 4), (2, 4, 1)])
def test_side_input_of_the_wrong_shape(model, name, shape):
    with pytest.raises(ValueError, match=rf"{name} must (have shape \(2, 4\)|have 2 dimension)"):
        model(IDS, **{name: np.ones(shape, dtype=np.int64)})


def test_langs_of_the_wrong_shape(three_languages):
    with pytest.raises(ValueError, match=r"langs must have shape \(2, 4\)"):
        three_languages(IDS, langs=np.zeros((2, 3), dtype=np.int64))


@pytest.mark.parametrize("values", [np.full((2, 4), 2), np.full((2, 4), np.nan), np.full((2, 4), -1)])
def test_attention_mask_not_zeros_and_ones(model, values):
    with pytest.raises(ValueError, match="attention_mask must hold only 0 .* and 1"):
        model(IDS, attention_mask=values)


def test_position_ids_out_of_range(model):
    with pytest.raises(ValueError, match=r"position_ids must be in \[0, 12\), got 12"):
        model(IDS, position_ids=np.full((2, 4), 12))


def test_negative_position_ids(model):
    with pytest.raises(ValueError, match=r"position_ids must be in \[0, 12\), got -1"):
        model(IDS, position_ids=np.full((2, 4), -1))


def test_token_type_ids_out_of_range(model):
    with pytest.raises(ValueError, match=r"token_type_ids must be in \[0, 50\)"):
        model(IDS, token_type_ids=np.full((2, 4), 50))


def test_lengths_longer_than_the_sequence(model):
    with pytest.raises(ValueError, match=r"lengths must be in \[0, 5\), got 5"):
        model(IDS, lengths=[5, 2])


def test_lengths_not_one_per_sequence(model):
    with pytest.raises(ValueError, match=r"lengths must have one entry per sequence \(2\)"):
        model(IDS, lengths=[4])


def test_lengths_of_the_wrong_rank(model):
    with pytest.raises(ValueError, match=r"lengths must have 1 dimension"):
        model(IDS, lengths=[[4, 2]])


def test_langs_to_a_one_language_model(model):
    with pytest.raises(ValueError, match="langs given, but this model has no language embeddings"):
        model(IDS, langs=np.zeros((2, 4), dtype=np.int64))


def test_langs_to_a_model_without_language_embeddings():
    model = FlaubertModel(FlaubertConfig(**TINY, n_langs=3, use_lang_emb=False))
    with pytest.raises(ValueError, match="use_lang_emb=False"):
        model(IDS, langs=np.zeros((2, 4), dtype=np.int64))


@pytest.mark.parametrize("bad", [3, -1])
def test_langs_out_of_range(three_languages, bad):
    with pytest.raises(ValueError, match=rf"langs must be in \[0, 3\), got {bad}"):
        three_languages(IDS, langs=np.full((2, 4), bad))


def test_neither_input_ids_nor_inputs_embeds(model):
    with pytest.raises(ValueError, match="exactly one of input_ids and inputs_embeds"):
        model()


def test_both_input_ids_and_inputs_embeds(model):
    with pytest.raises(ValueError, match="exactly one of input_ids and inputs_embeds"):
        model(IDS, inputs_embeds=np.zeros((2, 4, 16), np.float32))


@pytest.mark.parametrize("class_name", ["FlaubertModel", "FlaubertWithLMHeadModel", "FlaubertForSequenceClassification",
                                        "FlaubertForTokenClassification", "FlaubertForQuestionAnsweringSimple",
                                        "FlaubertForQuestionAnswering", "FlaubertForMultipleChoice"])
def test_head_mask_is_refused(class_name):
    """transformers 5.23 takes head_mask (and any other name) in **kwargs and ignores it: an answer that looks
    masked and is not. Here it is a TypeError, as is any keyword a forward does not know."""
    import minflaubert

    model = getattr(minflaubert, class_name)(FlaubertConfig(**TINY))
    for name in ("head_mask", "use_cache"):
        with pytest.raises(TypeError, match=f"unexpected keyword argument '{name}'"):
            model(IDS, **{name: None})


def test_inputs_embeds_of_the_wrong_width(model):
    with pytest.raises(ValueError, match="inputs_embeds must have width emb_dim=16, got 15"):
        model(inputs_embeds=np.zeros((2, 4, 15), np.float32))


def test_inputs_embeds_of_the_wrong_rank(model):
    with pytest.raises(ValueError, match=r"inputs_embeds must have 3 dimension"):
        model(inputs_embeds=np.zeros((4, 16), np.float32))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, 1e39])  # 1e39 overflows float32 to inf
def test_non_finite_inputs_embeds(model, bad):
    embeds = np.zeros((2, 4, 16))
    embeds[1, 2, 3] = bad
    with pytest.raises(ValueError, match="inputs_embeds contains NaN or infinite values"), \
            np.errstate(over="ignore"):
        model(inputs_embeds=embeds)


def test_inputs_embeds_of_strings(model):
    with pytest.raises(TypeError, match="inputs_embeds must hold numbers"):
        model(inputs_embeds=np.full((1, 2, 16), "x"))


# ------------------------------------------------------------------------------------------- the cache
def test_cache_on_a_bidirectional_model(model):
    with pytest.raises(ValueError, match="cache is for incremental decoding.*causal"):
        model(IDS, cache={})


def test_cache_that_is_not_a_dict(causal):
    with pytest.raises(TypeError, match="cache must be a dict"):
        causal(IDS, cache=[])


def test_cache_without_new_positions(causal):
    cache = {}
    causal(IDS, cache=cache)
    with pytest.raises(ValueError, match="cache already holds 4 positions"):
        causal(IDS, cache=cache)


def test_cache_of_another_batch_size(causal):
    cache = {}
    causal(IDS[:, :2], cache=cache)
    with pytest.raises(ValueError, match="cache holds 2 sequence.*input_ids has 1"):
        causal(IDS[:1], cache=cache)


def test_inputs_embeds_on_a_filled_cache(causal):
    """The old positions can't be cut from inputs_embeds: they would be appended to the keys a second time."""
    cache = {}
    causal(IDS[:, :2], cache=cache)
    with pytest.raises(ValueError, match="continue incremental decoding with input_ids"):
        causal(inputs_embeds=np.zeros((2, 4, 16), np.float32), cache=cache)


# ------------------------------------------------------------------------------------------- the config
@pytest.mark.parametrize("fields, error, message", [
    (dict(emb_dim=10, n_heads=3), ValueError, "emb_dim=10 must be divisible by n_heads=3"),
    (dict(vocab_size=0), ValueError, "vocab_size must be >= 1, got 0"),
    (dict(emb_dim=-16), ValueError, "emb_dim must be >= 1"),
    (dict(n_layers=0), ValueError, "n_layers must be >= 1"),
    (dict(n_heads=0), ValueError, "n_heads must be >= 1"),
    (dict(max_position_embeddings=0), ValueError, "max_position_embeddings must be >= 1"),
    (dict(n_langs=0), ValueError, "n_langs must be >= 1"),
    (dict(emb_dim=16.0), TypeError, "emb_dim must be an integer"),
    (dict(n_layers="2"), TypeError, "n_layers must be an integer"),
    (dict(n_layers=True), TypeError, "n_layers must be an integer"),
    (dict(pad_index=50), ValueError, "pad_index=50 must be < vocab_size=50"),
    (dict(unk_index=-1), ValueError, "unk_index must be >= 0"),
    (dict(mask_token_id=50), ValueError, "mask_token_id=50 must be < vocab_size=50"),
    (dict(lang_id=1), ValueError, "lang_id=1 must be < n_langs=1"),
    (dict(causal="yes"), TypeError, "causal must be true or false"),
    (dict(layer_norm_eps=0.0), ValueError, "layer_norm_eps must be a finite number > 0"),
    (dict(layer_norm_eps=float("nan")), ValueError, "layer_norm_eps must be a finite number > 0"),
    (dict(layer_norm_eps=float("inf")), ValueError, "layer_norm_eps must be a finite number > 0"),
    (dict(dropout=1.5), ValueError, "dropout must be a finite number >= 0 and <= 1.0"),
    (dict(init_std="0.02"), TypeError, "init_std must be a number"),
    (dict(is_encoder=False), ValueError, "is_encoder=False"),
    (dict(summary_type="max"), ValueError, "summary_type must be one of"),
    (dict(problem_type="ranking"), ValueError, "problem_type must be None or one of"),
    (dict(id2label={}), ValueError, "id2label must name at least one label"),
    (dict(id2label=["a", "b"]), TypeError, "id2label must be a dict"),
    (dict(id2label={"first": "a"}), ValueError, "id2label keys must be integer ids"),
    (dict(id2label={0: "a", 5: "b"}), ValueError, r"id2label keys must be the label ids 0..1"),
    (dict(id2lang=["fr"]), TypeError, "id2lang must be a dict"),
    (dict(lang2id=3), TypeError, "lang2id must be a dict"),
    (dict(asm=True, asm_cutoffs=[30, 10]), ValueError, "asm_cutoffs=.* must be increasing integers"),
    (dict(asm=True, asm_cutoffs=[10, 60]), ValueError, "asm_cutoffs=.* must be increasing integers"),
    (dict(asm=True, asm_cutoffs=5), ValueError, "asm_cutoffs=5 must be increasing integers"),
    (dict(asm=True, asm_cutoffs=[1.5, "a"]), ValueError, "asm_cutoffs=.* must be increasing integers"),
    (dict(asm=True, asm_cutoffs=[10, 20], asm_div_value=0), ValueError, "asm_div_value must be a finite number > 0"),
    (dict(start_n_top=0), ValueError, "start_n_top must be >= 1"),
])
def test_config_whose_numbers_cannot_work(fields, error, message):
    with pytest.raises(error, match=message):
        FlaubertConfig(**{**TINY, **fields})


def test_config_from_something_else_than_a_dict():
    with pytest.raises(TypeError, match="config must be a dict, got list"):
        FlaubertConfig.from_dict([1, 2])


def test_config_with_an_empty_eos_list():
    with pytest.raises(ValueError, match="eos_token_id is an empty list"):
        FlaubertConfig.from_dict({**TINY, "eos_token_id": []})


def test_config_num_labels_zero():
    with pytest.raises(ValueError, match="num_labels must be >= 1"):
        FlaubertConfig.from_dict({**TINY, "num_labels": 0})


def test_model_from_something_else_than_a_config():
    with pytest.raises(TypeError, match="config must be a FlaubertConfig, got dict"):
        FlaubertModel(TINY)


# --------------------------------------------------------------------------------------------- loading
@pytest.fixture
def saved(tmp_path, model):
    folder = tmp_path / "saved"
    model.save_pretrained(folder)
    return folder


def test_missing_folder(tmp_path):
    with pytest.raises(OSError, match="neither an existing folder nor a repository id"):
        FlaubertModel.from_pretrained(tmp_path / "nowhere")


def test_missing_config_json(saved):
    (saved / "config.json").unlink()
    with pytest.raises(OSError, match="no config.json at"):
        FlaubertModel.from_pretrained(saved)


def test_missing_weights_file(saved):
    (saved / "model.safetensors").unlink()
    with pytest.raises(OSError, match="no weights in .*expected model.safetensors"):
        FlaubertModel.from_pretrained(saved)


@pytest.mark.parametrize("text", [b"{oops", b"\xff\xfe{}", b""], ids=["syntax", "not utf-8", "empty"])
def test_invalid_json_config(saved, text):
    (saved / "config.json").write_bytes(text)
    with pytest.raises(ValueError, match="config.json is not valid JSON"):
        FlaubertModel.from_pretrained(saved)


def test_json_config_that_is_not_an_object(saved):
    (saved / "config.json").write_text("[1, 2, 3]")
    with pytest.raises(ValueError, match="config.json must hold a JSON object, not a list"):
        FlaubertModel.from_pretrained(saved)


def test_config_json_whose_numbers_cannot_work(saved):
    config = json.loads((saved / "config.json").read_text())
    (saved / "config.json").write_text(json.dumps({**config, "n_heads": 3}))
    with pytest.raises(ValueError, match="emb_dim=16 must be divisible by n_heads=3"):
        FlaubertModel.from_pretrained(saved)


def test_checkpoint_that_does_not_match_its_config(saved):
    """Weights of a 32-wide model under the config of a 16-wide one: the error names a tensor."""
    FlaubertModel(FlaubertConfig(**{**TINY, "emb_dim": 32})).save_pretrained(saved / "wide")
    (saved / "wide" / "config.json").write_text((saved / "config.json").read_text())
    with pytest.raises(ValueError, match=r"checkpoint tensor '[\w.]+' has shape \([\d, ]+\), but the config "
                                         r"asks for"):
        FlaubertModel.from_pretrained(saved / "wide")


def test_checkpoint_with_one_wrong_tensor(saved):
    """Only the position table is too short: the message names exactly that key."""
    from minflaubert.checkpoints.weights import save_state_dict

    state = dict(read_safetensors(saved / "model.safetensors"))
    state["position_embeddings.weight"] = np.zeros((11, 16), np.float32)
    save_state_dict(state, saved)
    with pytest.raises(ValueError, match=r"'position_embeddings.weight' has shape \(11, 16\).*\(12, 16\)"):
        FlaubertModel.from_pretrained(saved)


def test_checkpoint_missing_an_encoder_weight(saved):
    from minflaubert.checkpoints.weights import save_state_dict

    state = dict(read_safetensors(saved / "model.safetensors"))
    del state["ffns.0.lin1.weight"]
    save_state_dict(state, saved)
    with pytest.raises(ValueError, match=r"lacks encoder weights \['ffns.0.lin1.weight'\]"):
        FlaubertModel.from_pretrained(saved)


@pytest.mark.parametrize("cut", [lambda n: 0, lambda n: 5, lambda n: 8, lambda n: 100, lambda n: n // 2,
                                 lambda n: n - 1], ids=["empty", "5 bytes", "length only", "in the header",
                                                        "half", "last byte missing"])
def test_truncated_safetensors(saved, cut):
    path = saved / "model.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[:cut(len(data))])
    with pytest.raises(ValueError, match="not a safetensors file|truncated|does not fit the file"):
        FlaubertModel.from_pretrained(saved)


def _safetensors(path, header: bytes, data: bytes = bytes(64)):
    path.write_bytes(len(header).to_bytes(8, "little") + header + data)
    return path


@pytest.mark.parametrize("header, message", [
    (b"{oops", "safetensors header is not valid JSON"),
    (b"[1, 2]", "corrupt safetensors header: not a JSON object"),
    (b"[" * 100_000 + b"]" * 100_000, "safetensors header is not valid JSON here: nested too deeply"),
    (b'{"a": 5}', "'a' has a malformed header entry"),
    (b'{"a": {"dtype": "F99", "shape": [1], "data_offsets": [0, 4]}}', "malformed header entry"),
    (b'{"a": {"dtype": "F32", "shape": [1.0], "data_offsets": [0, 4]}}', "malformed header entry"),
    (b'{"a": {"dtype": "F32", "shape": [true], "data_offsets": [0, 4]}}', "malformed header entry"),
    (b'{"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}', "malformed header entry"),
    (b'{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0]}}', "malformed header entry"),
    (b'{"a": {"dtype": "F32", "shape": [1180591620717411303424], "data_offsets": [0, 4]}}', "does not fit the file"),
    (b'{"a": {"dtype": "U8", "shape": [4294967296, 4294967296], "data_offsets": [0, 0]}}', "does not fit the file"),
    (b'{"a": {"dtype": "F32", "shape": [100], "data_offsets": [0, 400]}}', "do not fit the file"),
    (b'{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}', "does not fit the file"),
], ids=["syntax", "array", "deep", "entry", "dtype", "float dim", "bool dim", "negative dim", "offsets",
        "overflowing dim", "wrapping product", "past the end", "size mismatch"])
def test_corrupt_safetensors_header(tmp_path, header, message):
    with pytest.raises(ValueError, match=message):
        read_safetensors(_safetensors(tmp_path / "x.safetensors", header))


def test_safetensors_header_longer_than_the_file(tmp_path):
    path = tmp_path / "x.safetensors"
    path.write_bytes((1000).to_bytes(8, "little") + b"{}")
    with pytest.raises(ValueError, match="truncated or not a safetensors file"):
        read_safetensors(path)


# ------------------------------------------------------------------------------------------------- heads
HEAD_CONFIG = FlaubertConfig(**TINY, id2label={0: "a", 1: "b", 2: "c"})


@pytest.fixture(scope="module")
def lm():
    return heads.FlaubertWithLMHeadModel(HEAD_CONFIG)


@pytest.fixture(scope="module")
def classifier():
    return heads.FlaubertForSequenceClassification(HEAD_CONFIG)


@pytest.fixture(scope="module")
def tagger():
    return heads.FlaubertForTokenClassification(HEAD_CONFIG)


@pytest.fixture(scope="module")
def qa_simple():
    return heads.FlaubertForQuestionAnsweringSimple(FlaubertConfig(**TINY))


@pytest.fixture(scope="module")
def qa():
    return heads.FlaubertForQuestionAnswering(FlaubertConfig(**TINY, start_n_top=2, end_n_top=2))


@pytest.fixture(scope="module")
def multiple_choice():
    return heads.FlaubertForMultipleChoice(HEAD_CONFIG)


def test_lm_labels_out_of_vocabulary(lm):
    with pytest.raises(ValueError, match=r"labels must be in \[0, 50\) \(or -100 to ignore\), got 50"):
        lm(IDS, labels=np.full((2, 4), 50))


def test_lm_labels_of_the_wrong_shape(lm):
    with pytest.raises(ValueError, match=r"labels must have shape \(2, 4\)"):
        lm(IDS, labels=np.full((2, 3), 5))


def test_lm_labels_ignore_index_is_allowed(lm):
    labels = np.full((2, 4), -100)
    labels[0, 0] = 7
    assert np.isfinite(lm(IDS, labels=labels).loss)


def test_sequence_classification_labels_out_of_range(classifier):
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\).*got 3"):
        classifier(IDS, labels=[0, 3])


def test_sequence_classification_labels_of_the_wrong_shape(classifier):
    with pytest.raises(ValueError, match=r"labels must have (shape \(2,\)|1 dimension)"):
        classifier(IDS, labels=[0, 1, 2])


def test_sequence_classification_labels_ignore_index_is_allowed(classifier):
    assert np.isfinite(classifier(IDS, labels=[-100, 1]).loss)


def test_multi_label_targets_of_the_wrong_shape(classifier):
    with pytest.raises(ValueError, match=r"labels must have shape \(2, 3\)"):
        classifier(IDS, labels=np.zeros((2, 2), np.float32))


def test_multi_label_targets_with_nan(classifier):
    labels = np.zeros((2, 3), np.float32)
    labels[0, 0] = np.nan
    with pytest.raises(ValueError, match="labels contains NaN"):
        classifier(IDS, labels=labels)


def test_regression_targets_with_nan():
    regressor = heads.FlaubertForSequenceClassification(FlaubertConfig(**TINY, id2label={0: "score"}))
    with pytest.raises(ValueError, match="labels contains NaN"):
        regressor(IDS, labels=[0.5, np.nan])


def test_token_classification_labels_out_of_range(tagger):
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\).*got -1"):
        tagger(IDS, labels=np.full((2, 4), -1))


def test_token_classification_labels_of_the_wrong_shape(tagger):
    with pytest.raises(ValueError, match=r"labels must have (shape \(2, 4\)|2 dimension)"):
        tagger(IDS, labels=np.zeros((2, 4, 1), np.int64))


def test_token_classification_ignores_minus_100(tagger):
    labels = np.array([[0, 1, 2, 1], [2, 0, -100, -100]])
    assert np.isfinite(tagger(IDS, labels=labels).loss)


def test_question_answering_simple_positions_of_the_wrong_shape(qa_simple):
    with pytest.raises(ValueError, match=r"start_positions must have shape \(2,\)"):
        qa_simple(IDS, start_positions=[0, 1, 2], end_positions=[1, 2, 3])


def test_question_answering_simple_float_positions(qa_simple):
    with pytest.raises(TypeError, match="start_positions must hold integers"):
        qa_simple(IDS, start_positions=[0.5, 1.0], end_positions=[1, 2])


def test_question_answering_needs_both_positions(qa_simple):
    with pytest.raises(ValueError, match="pass both start_positions and end_positions"):
        qa_simple(IDS, start_positions=[0, 1])


def test_question_answering_positions_out_of_range(qa):
    with pytest.raises(ValueError, match=r"start_positions must be in \[0, 4\), got 4"):
        qa(IDS, start_positions=[4, 0], end_positions=[1, 1])


def test_question_answering_cls_index_out_of_range(qa):
    with pytest.raises(ValueError, match=r"cls_index must be in \[0, 4\)"):
        qa(IDS, cls_index=[0, 9])


def test_question_answering_p_mask_of_the_wrong_shape(qa):
    with pytest.raises(ValueError, match=r"p_mask must have (shape \(2, 4\)|2 dimension)"):
        qa(IDS, p_mask=np.zeros((2, 3)))


def test_question_answering_more_top_spans_than_tokens():
    qa = heads.FlaubertForQuestionAnswering(FlaubertConfig(**TINY, start_n_top=5, end_n_top=5))
    with pytest.raises(ValueError, match="start_n_top=5 exceeds the sequence length 4"):
        qa(IDS)


@pytest.mark.parametrize("shape", [(2, 4), (2, 2, 2, 2)])
def test_multiple_choice_input_not_3d(multiple_choice, shape):
    with pytest.raises(ValueError, match=r"input_ids must have 3 dimensions \[batch, choices, seq\]"):
        multiple_choice(np.full(shape, 5))


def test_multiple_choice_labels_out_of_range(multiple_choice):
    with pytest.raises(ValueError, match=r"labels must be in \[0, 2\).*got 2"):
        multiple_choice(IDS.reshape(1, 2, 4), labels=[2])


def test_multiple_choice_labels_of_the_wrong_shape(multiple_choice):
    with pytest.raises(ValueError, match=r"labels must have shape \(1,\)"):
        multiple_choice(IDS.reshape(1, 2, 4), labels=[0, 1])


def test_multiple_choice_with_lengths(multiple_choice):
    with pytest.raises(ValueError, match="lengths cannot be used with FlaubertForMultipleChoice"):
        multiple_choice(IDS.reshape(1, 2, 4), lengths=[4])


# --------------------------------------------------------------------------------------------- tokenizer
@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    """A tiny tokenizer: a handful of letters and merges is all argument checking needs."""
    folder = tmp_path_factory.mktemp("tokenizer")
    vocab = {token: i for i, token in enumerate(["<s>", "</s>", "<pad>", "<unk>", "a</w>", "b</w>", "c</w>", "a"])}
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\na </w>\n")
    return FlaubertTokenizer.from_pretrained(folder)


def test_tokenizer_missing_folder(tmp_path):
    with pytest.raises(OSError, match="neither an existing folder nor a repository id"):
        FlaubertTokenizer.from_pretrained(tmp_path / "nowhere")


def test_tokenizer_missing_vocab(tmp_path):
    with pytest.raises(OSError, match="vocab_file: no such file"):
        FlaubertTokenizer.from_pretrained(tmp_path)


def test_tokenizer_vocab_not_an_object(tmp_path):
    (tmp_path / "vocab.json").write_text("[1, 2]")
    (tmp_path / "merges.txt").write_text("a b\n")
    with pytest.raises(ValueError, match="vocab_file: .* must hold a JSON object"):
        FlaubertTokenizer.from_pretrained(tmp_path)


def test_tokenizer_vocab_not_json(tmp_path):
    (tmp_path / "vocab.json").write_text("{oops")
    (tmp_path / "merges.txt").write_text("a b\n")
    with pytest.raises(ValueError, match="vocab"):
        FlaubertTokenizer.from_pretrained(tmp_path)


def test_tokenizer_config_not_an_object(tmp_path, tokenizer):
    tokenizer.save_pretrained(tmp_path)
    (tmp_path / "tokenizer_config.json").write_text("[]")
    with pytest.raises(ValueError, match="tokenizer_config"):
        FlaubertTokenizer.from_pretrained(tmp_path)


@pytest.mark.parametrize("text, argument", [(123, "text"), (None, "text"), (b"bytes", "text"),
                                            (["a", 1], r"text\[1\]")])
def test_tokenizer_text_that_is_not_str(tokenizer, text, argument):
    with pytest.raises(TypeError, match=rf"{argument} must be a str"):
        tokenizer(text)


def test_tokenizer_text_pair_that_is_not_str(tokenizer):
    with pytest.raises(TypeError, match="text_pair must be a str"):
        tokenizer("a", text_pair=5)


def test_tokenizer_text_pair_of_another_length(tokenizer):
    with pytest.raises(ValueError, match="text_pair must be a list as long as text"):
        tokenizer(["a", "b"], text_pair=["c"])


@pytest.mark.parametrize("arguments, error, message", [
    (dict(padding="most"), ValueError, "padding='most'"),
    (dict(truncation="middle"), ValueError, "truncation='middle'"),
    (dict(max_length=0), ValueError, "max_length=0: must be at least 1"),
    (dict(max_length="5"), TypeError, "max_length must be an int"),
    (dict(max_length=5.0), TypeError, "max_length must be an int"),
    (dict(return_tensors="pt"), ValueError, "return_tensors='pt'"),
])
def test_tokenizer_bad_arguments(tokenizer, arguments, error, message):
    with pytest.raises(error, match=message):
        tokenizer("a b", **arguments)


def test_tokenizer_arrays_of_unequal_rows(tokenizer):
    with pytest.raises(ValueError, match="return_tensors='np' needs sequences of equal length"):
        tokenizer(["a", "a b c"], return_tensors="np")


def test_tokenizer_encode_of_a_batch(tokenizer):
    with pytest.raises(TypeError, match="encode takes one string"):
        tokenizer.encode(["a", "b"])


@pytest.mark.parametrize("ids, message", [("abc", "ids must be a list of ints"), ([1.5], "ids must contain ints"),
                                          ([[1, 2]], "ids must contain ints"), (None, "ids must be a list of ints"),
                                          (np.ones((2, 2), np.int64), "ids must be a 1-D array of integers")])
def test_tokenizer_decode_of_non_ids(tokenizer, ids, message):
    with pytest.raises(TypeError, match=message):
        tokenizer.decode(ids)

