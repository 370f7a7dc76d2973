"""The six heads against transformers 5.23: random weights saved by transformers, loaded by minflaubert.

Every case compares every output field (loss, logits, top-k, hidden states, attentions) within
2e-5 x max(1, max|ref|), and integer top-k indices exactly. transformers' adaptive-softmax head crashes on
[batch, seq] input, so that case is checked against torch.nn.AdaptiveLogSoftmaxWithLoss on the flattened states.
"""
import numpy as np
import pytest

import minflaubert
from conftest import FIXTURES, compare_outputs, flatten_output
from minflaubert.models.config import FlaubertConfig
from minflaubert.models.heads import sequence_summary
from test_heads import TOP_K, assert_equal_up_to_ties

from test_parity_encoder import ALL_OUT, IDS, MASK, PADDED, TINY  # the same inputs as the encoder's parity

RNG = np.random.default_rng(1)
BASE = dict(input_ids=PADDED, attention_mask=MASK)
TOKEN_LABELS = RNG.integers(0, 3, size=(3, 9))
TOKEN_LABELS[MASK == 0] = -100
LM_LABELS = np.where(MASK == 1, IDS, -100)
P_MASK = np.zeros((3, 9), dtype=np.float32)
P_MASK[:, :2] = P_MASK[:, -1] = 1.0  # the "question" and a special token: 6 positions stay, enough for top-5
MC_IDS = RNG.integers(4, 99, size=(2, 3, 6))
MC_IDS[0, 1, 4:] = 2
MC_MASK = (MC_IDS != 2).astype(np.int64)

# name -> (class, config changes, inputs)
CASES = {
    "lm": ("FlaubertWithLMHeadModel", {}, BASE),
    "lm labels": ("FlaubertWithLMHeadModel", {}, dict(**BASE, labels=LM_LABELS)),
    "lm untied": ("FlaubertWithLMHeadModel", dict(tie_word_embeddings=False), dict(**BASE, labels=LM_LABELS)),
    "seq num_labels=3": ("FlaubertForSequenceClassification", dict(num_labels=3), BASE),
    "seq single-label": ("FlaubertForSequenceClassification", dict(num_labels=3),
                         dict(**BASE, labels=np.array([2, 0, -100]))),
    "seq regression num_labels=1": ("FlaubertForSequenceClassification", dict(num_labels=1),
                                    dict(**BASE, labels=np.array([0.5, -1.25, 2.0], dtype=np.float32))),
    "seq multi-label": ("FlaubertForSequenceClassification", dict(num_labels=3),
                        dict(**BASE, labels=np.array([[1, 0, 1], [0, 0, 0], [1, 1, 0]], dtype=np.float32))),
    "seq problem_type regression": ("FlaubertForSequenceClassification",
                                    dict(num_labels=3, problem_type="regression"),
                                    dict(**BASE, labels=RNG.normal(size=(3, 3)).astype(np.float32))),
    "seq summary last": ("FlaubertForSequenceClassification", dict(summary_type="last"),
                         dict(**BASE, labels=np.array([1, 0, 1]))),
    "seq summary mean": ("FlaubertForSequenceClassification", dict(summary_type="mean"),
                         dict(**BASE, labels=np.array([1, 0, 1]))),
    "seq summary cls_index": ("FlaubertForSequenceClassification", dict(summary_type="cls_index"), BASE),
    "seq summary tanh": ("FlaubertForSequenceClassification", dict(summary_activation="tanh"), BASE),
    "seq summary no projection": ("FlaubertForSequenceClassification", dict(summary_use_proj=False), BASE),
    "seq summary to hidden size": ("FlaubertForSequenceClassification", dict(summary_proj_to_labels=False), BASE),
    "token": ("FlaubertForTokenClassification", dict(num_labels=3), BASE),
    "token labels": ("FlaubertForTokenClassification", dict(num_labels=3), dict(**BASE, labels=TOKEN_LABELS)),
    "qa simple": ("FlaubertForQuestionAnsweringSimple", {}, BASE),
    "qa simple positions": ("FlaubertForQuestionAnsweringSimple", {},  # 20 is past the end: ignored; -3 -> 0
                            dict(**BASE, start_positions=np.array([1, 20, -3]), end_positions=np.array([4, 5, 20]))),
    "squad beam": ("FlaubertForQuestionAnswering", {}, BASE),
    "squad beam top 2x3": ("FlaubertForQuestionAnswering", dict(start_n_top=2, end_n_top=3), BASE),
    "squad beam p_mask cls_index": ("FlaubertForQuestionAnswering", dict(start_n_top=3, end_n_top=2),
                                    dict(input_ids=IDS, p_mask=P_MASK, cls_index=np.array([0, 1, 2]))),
    "squad beam p_mask": ("FlaubertForQuestionAnswering", {}, dict(input_ids=IDS, p_mask=P_MASK)),
    "squad loss": ("FlaubertForQuestionAnswering", {},
                   dict(**BASE, start_positions=np.array([2, 3, 0]), end_positions=np.array([5, 4, 1]))),
    "squad loss p_mask is_impossible": ("FlaubertForQuestionAnswering", {},
                                        dict(**BASE, start_positions=np.array([2, 3, 0]),
                                             end_positions=np.array([5, 4, 1]), p_mask=P_MASK,
                                             cls_index=np.array([0, 0, 1]),
                                             is_impossible=np.array([0.0, 1.0, 1.0], dtype=np.float32))),
    "multiple choice": ("FlaubertForMultipleChoice", {}, dict(input_ids=MC_IDS, attention_mask=MC_MASK)),
    "multiple choice labels": ("FlaubertForMultipleChoice", dict(num_labels=3, summary_type="mean"),
                               dict(input_ids=MC_IDS, attention_mask=MC_MASK, labels=np.array([2, 0]),
                                    token_type_ids=RNG.integers(0, 2, size=(2, 3, 6)))),
    "multiple choice inputs_embeds": ("FlaubertForMultipleChoice", {},
                                      dict(inputs_embeds=RNG.normal(size=(2, 3, 5, 32)).astype(np.float32),
                                           labels=np.array([1, 2]))),
}


def ours(class_name, folder, inputs, **flags):
    model = getattr(minflaubert, class_name).from_pretrained(folder)
    return model(**inputs, **flags)


@pytest.mark.parametrize("case", CASES)
def test_head_parity(case, transformers, tmp_path):
    from reference import make_case

    class_name, config_changes, inputs = CASES[case]
    reference = make_case(tmp_path, class_name, {**TINY, **config_changes}, inputs, ALL_OUT)
    output = flatten_output(ours(class_name, tmp_path, inputs, **ALL_OUT))
    compare_outputs(output, reference, case, skip=TOP_K)
    last = reference[f"hidden_states.{TINY['n_layers']}"]
    for name in TOP_K:
        if name in reference:
            assert_equal_up_to_ties(output[name], reference[name], last, f"{case} {name}")



def asm_reference(torch, model, inputs, labels):
    """What FlaubertWithLMHeadModel(asm=True) would return if it accepted [batch, seq] input: the adaptive
    softmax's log_prob and loss on the flattened hidden states, from the torch model's own encoder."""
    tensors = {name: torch.tensor(value) for name, value in inputs.items()}
    with torch.no_grad():
        hidden = model.transformer(**tensors, **ALL_OUT, return_dict=True)
        flat = hidden.last_hidden_state.reshape(-1, hidden.last_hidden_state.shape[-1])
        log_probs = model.pred_layer.proj.log_prob(flat).reshape(*labels.shape, -1)
        loss = model.pred_layer.proj(flat, torch.tensor(labels).reshape(-1))[1]
    return flatten_output({"loss": loss.numpy(), "logits": log_probs.numpy(),
                                "hidden_states": tuple(h.numpy() for h in hidden.hidden_states),
                                "attentions": tuple(a.numpy() for a in hidden.attentions)})


@pytest.mark.parametrize("cutoffs, div_value", [([20, 50], 4.0), ([10], 2.0), ([8, 30, 70], 1.5)])
def test_adaptive_softmax_parity(cutoffs, div_value, torch, transformers, tmp_path):
    from reference import build_model

    config = {**TINY, "asm": True, "asm_cutoffs": cutoffs, "asm_div_value": div_value}
    model = build_model("FlaubertWithLMHeadModel", config)
    model.save_pretrained(str(tmp_path))
    labels = IDS  # subtle: no -100 here; torch's adaptive softmax has no ignore index
    reference = asm_reference(torch, model, BASE, labels)
    output = ours("FlaubertWithLMHeadModel", tmp_path, BASE, labels=labels, **ALL_OUT)
    compare_outputs(flatten_output(output), reference, f"lm asm cutoffs={cutoffs} div={div_value}")
    without_labels = ours("FlaubertWithLMHeadModel", tmp_path, BASE)
    compare_outputs({"logits": without_labels.logits}, {"logits": reference["logits"]}, "lm asm no labels")


@pytest.mark.parametrize("summary", [dict(summary_type="cls_index"),
                                     dict(summary_type="cls_index", summary_activation="tanh",
                                          summary_proj_to_labels=False),
                                     dict(summary_type="mean", summary_use_proj=False)])
def test_sequence_summary_with_cls_index(summary, torch, transformers):
    """The classes never pass cls_index (transformers' don't either): the function against the module itself."""
    from transformers.models.flaubert.modeling_flaubert import FlaubertSequenceSummary

    config = {**TINY, "num_labels": 3, **summary}
    torch.manual_seed(0)
    module = FlaubertSequenceSummary(transformers.FlaubertConfig(**config)).eval()
    hidden = RNG.normal(size=(4, 7, 32)).astype(np.float32)
    cls_index = np.array([0, 6, 3, 2])
    with torch.no_grad():
        expected = module(torch.tensor(hidden), torch.tensor(cls_index)).numpy()
    p = {name: {"weight": m.weight.detach().numpy(), "bias": m.bias.detach().numpy()}
         for name, m in module.named_children() if name == "summary" and hasattr(m, "weight")}
    got = sequence_summary(hidden, p, FlaubertConfig.from_dict(config), cls_index)
    compare_outputs({"summary": got}, {"summary": expected}, f"sequence_summary {summary}")


TUPLE_CASES = ["lm labels", "seq single-label", "token labels", "qa simple positions", "squad beam p_mask cls_index",
               "squad loss", "multiple choice labels"]


@pytest.mark.parametrize("case", TUPLE_CASES)
def test_return_dict_false_tuple_order(case, torch, transformers, tmp_path):
    from reference import build_model

    class_name, config_changes, inputs = CASES[case]
    model = build_model(class_name, {**TINY, **config_changes})
    model.save_pretrained(str(tmp_path))
    tensors = {name: torch.tensor(value) for name, value in inputs.items()}
    with torch.no_grad():
        expected = model(**tensors, output_hidden_states=True, return_dict=False)
    got = ours(class_name, tmp_path, inputs, output_hidden_states=True, return_dict=False)
    assert isinstance(got, tuple) and len(got) == len(expected)
    for i, (mine, theirs) in enumerate(zip(got, expected)):
        flat_mine = mine if isinstance(mine, tuple) else (mine,)
        flat_theirs = theirs if isinstance(theirs, tuple) else (theirs,)
        assert len(flat_mine) == len(flat_theirs), f"{case}: tuple entry {i}"
        for a, b in zip(flat_mine, flat_theirs):
            compare_outputs({"x": np.asarray(a)}, {"x": b.numpy()}, f"{case} (tuple)")


HEADS = ["FlaubertWithLMHeadModel", "FlaubertForSequenceClassification", "FlaubertForTokenClassification",
         "FlaubertForQuestionAnsweringSimple", "FlaubertForQuestionAnswering", "FlaubertForMultipleChoice"]


@pytest.mark.parametrize("class_name", HEADS)
def test_head_from_bare_encoder_checkpoint(class_name, transformers, tmp_path):
    """A FlaubertModel checkpoint loads into every head: the encoder exactly, the head fresh, with a warning
    that lists the fresh weights (for the tied LM head only its bias: the projection is the embedding table)."""
    from reference import make_case

    reference = make_case(tmp_path, "FlaubertModel", TINY, BASE, ALL_OUT)
    cls = getattr(minflaubert, class_name)
    with pytest.warns(UserWarning, match="newly initialized") as caught:
        model = cls.from_pretrained(tmp_path)
    head = cls.head_shapes(model.config)
    fresh = [name for name in head if not (class_name == "FlaubertWithLMHeadModel" and name.endswith("weight"))]
    message = str(caught[0].message)
    assert all(name in message for name in fresh), message
    for name in head:
        array = model.weights[name]
        if "LayerNorm" in name and name.endswith("weight"):
            np.testing.assert_array_equal(array, 1.0)
        elif name.endswith("bias"):
            np.testing.assert_array_equal(array, 0.0)
        elif class_name != "FlaubertWithLMHeadModel" and array.size >= 50:  # enough numbers for a std
            assert 0.5 * model.config.init_std < array.std() < 2 * model.config.init_std, name
    inputs = BASE if class_name != "FlaubertForMultipleChoice" else {k: v[:, None] for k, v in BASE.items()}
    output = model(**inputs, output_hidden_states=True)
    for i, state in enumerate(output.hidden_states):
        compare_outputs({"h": state}, {"h": reference[f"hidden_states.{i}"]}, f"{class_name} from bare encoder")


# ------------------------------------------------------------------ the model API transformers users touch (issue 30)
ALL_CLASSES = ["FlaubertModel", *HEADS]
API_CONFIGS = {"plain": {}, "untied": dict(tie_word_embeddings=False), "three languages": dict(n_langs=3),
               "asm": dict(asm=True, asm_cutoffs=[20, 50], asm_div_value=4.0)}


def saved_pair(class_name, config, folder):
    """A transformers model saved to ``folder`` and ours loaded from it."""
    from reference import build_model

    theirs = build_model(class_name, {**TINY, **config})
    theirs.save_pretrained(str(folder))
    return theirs, getattr(minflaubert, class_name).from_pretrained(folder)


@pytest.mark.parametrize("class_name, config", [(name, config) for name in ALL_CLASSES for config in API_CONFIGS
                                                 if config != "asm" or name == "FlaubertWithLMHeadModel"])
def test_num_parameters_and_embeddings_equal_transformers(class_name, config, transformers, tmp_path):
    """num_parameters counts a tied table once (the LM head used to count it twice), with and without embeddings;
    get_input_embeddings / get_output_embeddings give transformers' weights, as read-only NumPy arrays."""
    theirs, ours_model = saved_pair(class_name, API_CONFIGS[config], tmp_path)
    assert ours_model.num_parameters() == theirs.num_parameters()
    assert ours_model.num_parameters(exclude_embeddings=True) == theirs.num_parameters(exclude_embeddings=True)
    assert ours_model.eval() is ours_model
    mine, reference = ours_model.get_input_embeddings(), theirs.get_input_embeddings()
    np.testing.assert_array_equal(mine.weight, reference.weight.detach().numpy())
    assert (mine.num_embeddings, mine.embedding_dim, mine.padding_idx) == \
        (reference.num_embeddings, reference.embedding_dim, reference.padding_idx)
    with pytest.raises(ValueError, match="read-only"):
        mine.weight[0, 0] = 1.0
    output = ours_model.get_output_embeddings()
    if class_name != "FlaubertWithLMHeadModel" or config == "asm":  # asm: a difference (no single projection)
        assert output is None
        assert (theirs.get_output_embeddings() is None) == (config != "asm")
        return
    reference = theirs.get_output_embeddings()
    np.testing.assert_array_equal(output.weight, reference.weight.detach().numpy())
    np.testing.assert_array_equal(output.bias, reference.bias.detach().numpy())
    assert (output.in_features, output.out_features) == (reference.in_features, reference.out_features)
    assert np.shares_memory(output.weight, mine.weight) == (config != "untied")  # tied: one table


def test_tiny_lm_counts_its_tied_table_once():
    model = minflaubert.FlaubertWithLMHeadModel.from_pretrained(FIXTURES / "tiny-lm")
    assert model.num_parameters() == 41_578  # 55,210 when the projection was counted beside the embeddings
    with pytest.raises(TypeError, match="only_trainable"):  # a difference: nothing trains here
        model.num_parameters(only_trainable=True)


@pytest.mark.parametrize("config", ["plain", "untied"])
@pytest.mark.parametrize("class_name", ["FlaubertModel", "FlaubertWithLMHeadModel"])
@pytest.mark.parametrize("resize", [dict(new_num_tokens=105), dict(new_num_tokens=103, pad_to_multiple_of=8),
                                    dict(new_num_tokens=60)])
def test_resize_token_embeddings_equals_transformers(class_name, config, resize, torch, transformers, tmp_path):
    """Mean resizing (transformers' default): new rows are the old rows' mean plus a noise of 1e-9 times their
    covariance (~3e-5 of their spread: random on both sides, but under the tolerance in the tables), a tied
    projection follows (its bias grows by zeros), config.vocab_size changes. The forward pass is compared on the
    ids both vocabularies share; test_resize_to_the_mean_equals_transformers runs the new ids."""
    theirs, ours_model = saved_pair(class_name, API_CONFIGS[config], tmp_path)
    expected, got = theirs.resize_token_embeddings(**resize), ours_model.resize_token_embeddings(**resize)
    assert got.num_embeddings == expected.num_embeddings == ours_model.config.vocab_size == theirs.config.vocab_size
    compare_outputs({"table": got.weight}, {"table": expected.weight.detach().numpy()}, f"resize {class_name}")
    if class_name == "FlaubertWithLMHeadModel":
        mine, reference = ours_model.get_output_embeddings(), theirs.get_output_embeddings()
        compare_outputs({"weight": mine.weight, "bias": mine.bias}, {"weight": reference.weight.detach().numpy(),
                        "bias": reference.bias.detach().numpy()}, f"resize {class_name} {config} projection")
        tied = ours_model.weights["pred_layer.proj.weight"] is ours_model.weights["embeddings.weight"]
        assert tied == (config == "plain")
    ids = PADDED % min(99, got.num_embeddings)
    compare_forward(torch, theirs, ours_model, ids, f"resize {class_name} {config}")


def compare_forward(torch, theirs, ours_model, ids, case):
    """The logits (or last hidden state) of both models on ``ids`` [batch, seq], padding masked."""
    mask = (ids != 2).astype(np.int64)
    with torch.no_grad():
        reference = theirs(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask))
    output = ours_model(input_ids=ids, attention_mask=mask)
    field = "logits" if "logits" in output else "last_hidden_state"
    compare_outputs({field: output[field]}, {field: reference[field].numpy()}, case)


@pytest.mark.parametrize("config", ["plain", "untied"])
@pytest.mark.parametrize("class_name", ["FlaubertModel", "FlaubertWithLMHeadModel"])
def test_resize_to_the_mean_equals_transformers(class_name, config, torch, transformers, tmp_path):
    """With fewer old rows (16) than dimensions (32), their covariance is not positive definite: both libraries
    then add exactly the mean, so the forward pass on the new ids compares within the tolerance too."""
    theirs, ours_model = saved_pair(class_name, {**API_CONFIGS[config], "vocab_size": 16}, tmp_path)
    theirs.resize_token_embeddings(24)
    ours_model.resize_token_embeddings(24)
    ids = np.array([[0, 5, 16, 23, 17, 1], [0, 20, 8, 2, 2, 2]])
    compare_forward(torch, theirs, ours_model, ids, f"resize to the mean {class_name} {config}")
    if class_name == "FlaubertWithLMHeadModel":
        assert np.isfinite(ours_model(input_ids=ids, labels=ids).loss)  # (transformers' loss keeps 16 words)


@pytest.mark.parametrize("config", ["plain", "untied"])
def test_resize_without_mean_resizing_draws_as_transformers(config, transformers, tmp_path):
    """mean_resizing=False: new table rows ~ N(0, embed_init_std), an untied projection's ~ N(0, init_std), new
    biases 0; the old rows are kept."""
    theirs, ours_model = saved_pair("FlaubertWithLMHeadModel", {**API_CONFIGS[config], "embed_init_std": 0.3},
                                    tmp_path)
    old = ours_model.get_output_embeddings()
    theirs.resize_token_embeddings(4099, mean_resizing=False)
    ours_model.resize_token_embeddings(4099, mean_resizing=False)
    mine, reference = ours_model.get_output_embeddings(), theirs.get_output_embeddings()
    np.testing.assert_array_equal(mine.weight[:99], old.weight)
    np.testing.assert_array_equal(mine.bias[99:], reference.bias.detach().numpy()[99:])  # zeros
    for ours_rows, their_rows in [(mine.weight[99:], reference.weight.detach().numpy()[99:]),
                                  (ours_model.get_input_embeddings().weight[99:],
                                   theirs.get_input_embeddings().weight.detach().numpy()[99:])]:
        assert abs(ours_rows.mean()) < 0.01 and abs(their_rows.mean()) < 0.01
        assert ours_rows.std() == pytest.approx(their_rows.std(), rel=0.05)


def test_resize_refusals():
    model = minflaubert.FlaubertWithLMHeadModel.from_pretrained(FIXTURES / "tiny-lm")
    with pytest.raises(ValueError, match="pad_index=2 must be < vocab_size=2"):
        model.resize_token_embeddings(2)
    with pytest.raises(ValueError, match="new_num_tokens must be a positive integer"):
        model.resize_token_embeddings(0)
    assert model.config.vocab_size == 426 and model.resize_token_embeddings().num_embeddings == 426
    asm = minflaubert.FlaubertWithLMHeadModel(FlaubertConfig(**TINY, asm=True, asm_cutoffs=[20, 50]))
    with pytest.raises(ValueError, match="adaptive softmax .* cannot be resized"):
        asm.resize_token_embeddings(120)


@pytest.mark.parametrize("case", TUPLE_CASES)
def test_config_return_dict_false_gives_tuples(case, torch, transformers, tmp_path):
    """from_pretrained(..., return_dict=False), or config.return_dict = False after loading: tuples, as in
    transformers (its documentation: "if return_dict=False is passed or when config.return_dict=False")."""
    class_name, config_changes, inputs = CASES[case]
    theirs, _ = saved_pair(class_name, config_changes, tmp_path)
    theirs.config.return_dict = False
    with torch.no_grad():
        expected = theirs(**{name: torch.tensor(value) for name, value in inputs.items()})
    loaded = getattr(minflaubert, class_name).from_pretrained(tmp_path, return_dict=False)
    changed = getattr(minflaubert, class_name).from_pretrained(tmp_path)
    changed.config.return_dict = False
    for model in (loaded, changed):
        got = model(**inputs)
        assert isinstance(got, tuple) and len(got) == len(expected)
        for mine, reference in zip(got, expected):
            compare_outputs({"x": np.asarray(mine)}, {"x": reference.numpy()}, f"{case} (config.return_dict)")
    assert not isinstance(changed(**inputs, return_dict=True), tuple)


@pytest.mark.parametrize("class_name", ALL_CLASSES)
def test_cache_position_is_accepted_and_changes_nothing(class_name, transformers, tmp_path):
    """transformers 5.23 takes cache_position in every forward's **kwargs and, for this encoder, reads it nowhere;
    so it is accepted here too (checked, then unused): the outputs equal transformers' with it."""
    from reference import make_case

    inputs = dict(input_ids=MC_IDS, attention_mask=MC_MASK) if class_name == "FlaubertForMultipleChoice" else BASE
    seq_len = inputs["input_ids"].shape[-1]
    with_position = dict(inputs, cache_position=np.arange(seq_len))
    reference = make_case(tmp_path, class_name, TINY, with_position, {"output_hidden_states": True})
    model = getattr(minflaubert, class_name).from_pretrained(tmp_path)
    output = flatten_output(model(**with_position, output_hidden_states=True))
    compare_outputs(output, reference, f"{class_name} cache_position", skip=TOP_K)
    assert output.keys() == flatten_output(model(**inputs, output_hidden_states=True)).keys()
    with pytest.raises(ValueError, match=f"cache_position has {seq_len + 1} positions for a sequence of {seq_len}"):
        model(**inputs, cache_position=np.arange(seq_len + 1))
