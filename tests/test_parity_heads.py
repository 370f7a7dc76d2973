"""The six heads against transformers 5.23: random weights saved by transformers, loaded by minflaubert.

Every case compares every output field (loss, logits, top-k, hidden states, attentions) within
2e-5 x max(1, max|ref|), and integer top-k indices exactly. transformers' adaptive-softmax head crashes on
[batch, seq] input, so that case is checked against torch.nn.AdaptiveLogSoftmaxWithLoss on the flattened states.
"""
import numpy as np
import pytest

import minflaubert
from conftest import compare_outputs, flatten_output
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
