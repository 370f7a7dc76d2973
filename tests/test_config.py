"""FlaubertConfig reads every config.json transformers has written, old and new, and writes one both read."""
import json

import pytest

from minflaubert import FlaubertConfig

# The shape of an original FlauBERT/XLM training config as old transformers versions saved it: *_index spellings,
# both pad spellings, and many training-only keys that a forward pass never needs.
LEGACY = {
    "amp": 1, "architectures": ["FlaubertWithLMHeadModel"], "asm": False, "attention_dropout": 0.1,
    "bos_index": 0, "bos_token_id": 0, "bptt": 512, "causal": False, "clip_grad_norm": 5, "dropout": 0.1,
    "emb_dim": 768, "embed_init_std": 0.02209708691207961, "encoder_only": True, "end_n_top": 5, "eos_index": 1,
    "fp16": True, "gelu_activation": True, "group_by_size": True, "id2lang": {"0": "fr"}, "init_std": 0.02,
    "is_encoder": True, "lang2id": {"fr": 0}, "lang_id": 0, "langs": ["fr"], "layer_norm_eps": 1e-06,
    "layerdrop": 0.0, "lgs": "fr", "mask_index": 5, "mask_token_id": 0, "max_position_embeddings": 512,
    "mlm_steps": [["fr", None]], "model_type": "flaubert", "n_heads": 12, "n_langs": 1, "n_layers": 12,
    "pad_index": 2, "pad_token_id": 2, "pre_norm": False, "sinusoidal_embeddings": False, "start_n_top": 5,
    "summary_activation": None, "summary_first_dropout": 0.1, "summary_proj_to_labels": True,
    "summary_type": "first", "summary_use_proj": True, "unk_index": 3, "use_lang_emb": True, "vocab_size": 68729,
    "word_blank": 0, "word_dropout": 0, "word_keep": 0.1, "word_mask": 0.8, "word_mask_keep_rand": "0.8,0.1,0.1",
    "word_pred": 0.15, "word_rand": 0.1, "word_shuffle": 0,
}


def test_legacy_config_reads_and_ignores_training_keys(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(LEGACY))
    config = FlaubertConfig.from_pretrained(tmp_path)
    assert (config.emb_dim, config.n_layers, config.n_heads, config.vocab_size) == (768, 12, 12, 68729)
    assert (config.pad_index, config.layer_norm_eps, config.id2lang, config.lang2id) == (2, 1e-6, {0: "fr"},
                                                                                          {"fr": 0})
    assert not hasattr(config, "bptt") and not hasattr(config, "word_mask")


@pytest.mark.parametrize("spelling, field, value", [
    ({"n_layer": 3}, "n_layers", 3),
    ({"n_head": 8, "emb_dim": 64}, "n_heads", 8),
    ({"num_hidden_layers": 5}, "n_layers", 5),
    ({"n_words": 123}, "vocab_size", 123),
    ({"pad_token_id": 7}, "pad_index", 7),
    ({"bos_token_id": 4}, "bos_index", 4),
    ({"eos_token_id": [6, 9]}, "eos_index", 6),
    ({"pad_index": 3, "pad_token_id": 2}, "pad_index", 3),  # both spellings: the *_index one (what XLM used) wins
])
def test_other_spellings(spelling, field, value):
    assert getattr(FlaubertConfig.from_dict(spelling), field) == value


def test_num_labels_from_id2label_or_num_labels():
    assert FlaubertConfig.from_dict({"id2label": {"0": "NEG", "1": "NEU", "2": "POS"}}).num_labels == 3
    assert FlaubertConfig.from_dict({"num_labels": 4}).id2label == {i: f"LABEL_{i}" for i in range(4)}
    assert FlaubertConfig.from_dict({"id2label": {"0": "NEG", "1": "POS"}}).label2id == {"NEG": 0, "POS": 1}


def test_written_config_reads_back_in_transformers(tmp_path, transformers):
    """What we write, transformers reads as the same architecture (and vice versa, in the parity tests)."""
    ours = FlaubertConfig(vocab_size=99, emb_dim=32, n_layers=2, n_heads=4, pre_norm=True, n_langs=3,
                          id2label={0: "A", 1: "B", 2: "C"})
    ours.save_pretrained(tmp_path)
    theirs = transformers.FlaubertConfig.from_pretrained(tmp_path)
    assert (theirs.emb_dim, theirs.n_layers, theirs.n_heads, theirs.pre_norm, theirs.n_langs, theirs.num_labels,
            theirs.pad_token_id) == (32, 2, 4, True, 3, 3, 2)
    assert FlaubertConfig.from_pretrained(tmp_path) == ours
