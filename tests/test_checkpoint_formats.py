"""Every checkpoint layout transformers users have, loaded and compared with transformers' own outputs.

* ``pytorch_model.bin`` from ``torch.save(model.state_dict())`` (the published checkpoints' format), every class,
  tied LM weight and the ``position_ids`` buffer included, read in a Python where torch can't be imported;
* sharded safetensors (``model.safetensors.index.json``);
* a head loaded from a bare encoder checkpoint, and an encoder from a head checkpoint.
"""
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import minflaubert
from conftest import REPO, compare_outputs, flatten_output

TINY = dict(vocab_size=99, emb_dim=32, n_layers=2, n_heads=4, max_position_embeddings=64)
# No padding: the SQuAD head's top-k would then tie exactly between padded positions (all zero states), and
# torch.topk orders exact ties in no documented way. Padding is covered by the parity and golden tests.
IDS = np.random.default_rng(3).integers(4, 99, size=(2, 7))
CLASSES = ["FlaubertModel", "FlaubertWithLMHeadModel", "FlaubertForSequenceClassification",
           "FlaubertForTokenClassification", "FlaubertForQuestionAnsweringSimple", "FlaubertForQuestionAnswering",
           "FlaubertForMultipleChoice"]


def torch_free_outputs(folder, class_name, inputs) -> dict:
    """Load and run in a fresh Python where `import torch` fails: proof that no torch is needed."""
    np.savez(folder / "inputs.npz", **inputs)
    code = textwrap.dedent(f"""
        import sys
        sys.modules["torch"] = None  # any `import torch` now raises ImportError
        import numpy as np, minflaubert
        from conftest import flatten_output
        model = minflaubert.{class_name}.from_pretrained({str(folder)!r})
        inputs = dict(np.load({str(folder / "inputs.npz")!r}))
        np.savez({str(folder / "ours.npz")!r}, **flatten_output(model(**inputs, output_hidden_states=True)))
    """)
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO / "tests")
    return dict(np.load(folder / "ours.npz"))


@pytest.mark.parametrize("class_name", CLASSES)
def test_torch_bin_every_class(class_name, torch, transformers, tmp_path):
    from reference import build_model, run_model

    model = build_model(class_name, TINY)
    inputs = {"input_ids": IDS[:, None, :].repeat(3, axis=1) if class_name == "FlaubertForMultipleChoice" else IDS}
    model.config.save_pretrained(tmp_path)
    state = model.state_dict()
    state["transformer.position_ids" if class_name != "FlaubertModel" else "position_ids"] = \
        torch.arange(64)[None]  # the buffer older transformers versions saved
    torch.save(state, tmp_path / "pytorch_model.bin")
    if class_name == "FlaubertWithLMHeadModel":
        assert "pred_layer.proj.weight" in state  # saved tied: both names point at one storage
    reference = run_model(model, inputs, dict(output_hidden_states=True))
    compare_outputs(torch_free_outputs(tmp_path, class_name, inputs), reference, f"pytorch_model.bin {class_name}")


def test_sharded_safetensors(transformers, tmp_path):
    from reference import build_model, run_model

    model = build_model("FlaubertWithLMHeadModel", TINY)
    model.save_pretrained(tmp_path, max_shard_size="40KB")
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 1
    reference = run_model(model, {"input_ids": IDS}, {})
    ours = minflaubert.FlaubertWithLMHeadModel.from_pretrained(tmp_path)(IDS)
    compare_outputs(flatten_output(ours), reference, "sharded safetensors")


def test_encoder_from_head_checkpoint_and_back(tmp_path):
    """A head checkpoint's encoder loads into FlaubertModel (the head weights are reported unused), and a bare
    encoder checkpoint loads into a head (its weights initialised, and said so)."""
    head = minflaubert.FlaubertForTokenClassification.from_pretrained(REPO / "tests/fixtures/tiny-token-classification")
    with pytest.warns(UserWarning, match="classifier.weight"):
        encoder = minflaubert.FlaubertModel.from_pretrained(REPO / "tests/fixtures/tiny-token-classification")
    np.testing.assert_array_equal(encoder(IDS % 99).last_hidden_state,
                                  head(IDS % 99, output_hidden_states=True).hidden_states[-1])
    with pytest.warns(UserWarning, match="newly initialized: .*classifier.weight"):
        minflaubert.FlaubertForTokenClassification.from_pretrained(REPO / "tests/fixtures/tiny-model")


def test_save_into_the_folder_it_was_loaded_from(tmp_path):
    """The loaded weights are memory-mapped from model.safetensors: saving over it must not pull it from under them."""
    model = minflaubert.FlaubertWithLMHeadModel.from_pretrained(REPO / "tests/fixtures/tiny-lm")
    model.save_pretrained(tmp_path)
    model = minflaubert.FlaubertWithLMHeadModel.from_pretrained(tmp_path)
    before = model(IDS % 99).logits
    model.save_pretrained(tmp_path)  # over the file its own arrays map
    np.testing.assert_array_equal(model(IDS % 99).logits, before)
    np.testing.assert_array_equal(minflaubert.FlaubertWithLMHeadModel.from_pretrained(tmp_path)(IDS % 99).logits,
                                  before)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["config.json", "model.safetensors"]


def test_failed_save_leaves_the_old_file_and_no_partial_one(tmp_path):
    """A write that fails halfway (here: a tensor that can't be read) removes its temporary file, and the
    model.safetensors already in the folder stays as it was."""
    from minflaubert.checkpoints import weights

    class Unreadable:  # looks like a float32 array until its bytes are asked for
        dtype, shape, nbytes = np.dtype(np.float32), (2,), 8

        def __array__(self, dtype=None, copy=None):
            raise OSError("the source went away")

    weights.save_state_dict({"a": np.ones(3, np.float32)}, tmp_path)
    before = (tmp_path / "model.safetensors").read_bytes()
    with pytest.raises(OSError, match="went away"):
        weights.save_state_dict({"a": np.ones(3, np.float32), "b": Unreadable()}, tmp_path)
    assert [path.name for path in tmp_path.iterdir()] == ["model.safetensors"]
    assert (tmp_path / "model.safetensors").read_bytes() == before
