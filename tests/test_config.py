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


# ------------------------------------------------------------------------ the config API transformers users touch
def test_every_alias_of_transformers_attribute_map_reads_and_writes(transformers):
    """Each (alias, field) pair of transformers' FlaubertConfig.attribute_map works both ways here too."""
    for alias, name in transformers.FlaubertConfig.attribute_map.items():
        ours, theirs = FlaubertConfig(), transformers.FlaubertConfig()
        assert getattr(ours, alias) == getattr(theirs, alias) == getattr(ours, name), alias
        for written, read in ((alias, name), (name, alias)):
            setattr(ours, written, 7)
            setattr(theirs, written, 7)
            assert getattr(ours, read) == getattr(theirs, read) == 7, f"{written} -> {read}"


def test_aliases_are_accepted_by_the_constructor(transformers):
    values = dict(hidden_size=64, num_attention_heads=8, num_hidden_layers=3, n_words=120, pad_token_id=4,
                  bos_token_id=5, eos_token_id=6)
    ours, theirs = FlaubertConfig(**values), transformers.FlaubertConfig(**values)
    for name in (*values, "emb_dim", "n_heads", "n_layers", "vocab_size", "pad_index", "bos_index", "eos_index"):
        assert getattr(ours, name) == getattr(theirs, name), name
    with pytest.raises(TypeError, match="got emb_dim twice: as hidden_size and as emb_dim"):
        FlaubertConfig(hidden_size=64, emb_dim=32)


@pytest.mark.parametrize("values", [{}, {"num_labels": 4}, {"return_dict": False},
                                    {"id2label": {"0": "NEG", "1": "POS"}, "label2id": {"NEG": 0, "POS": 1}}])
def test_generic_attributes_equal_transformers(transformers, values):
    ours, theirs = FlaubertConfig(**values), transformers.FlaubertConfig(**values)
    for name in ("num_labels", "id2label", "label2id", "bos_token_id", "eos_token_id", "pad_token_id", "return_dict",
                 "model_type", "is_encoder_decoder"):
        assert getattr(ours, name) == getattr(theirs, name), name
    assert ours.use_return_dict == ours.return_dict
    mine, reference = ours.to_dict(), theirs.to_dict()
    assert mine["id2label"] == reference["id2label"] and all(isinstance(k, int) for k in mine["id2label"])
    assert mine["label2id"] == reference["label2id"]


def test_to_json_string_agrees_with_transformers(transformers):
    values = dict(emb_dim=64, n_heads=4, num_labels=3, pre_norm=True, return_dict=False)
    ours, theirs = FlaubertConfig(**values), transformers.FlaubertConfig(**values)
    full, reference = json.loads(ours.to_json_string(use_diff=False)), json.loads(theirs.to_json_string(False))
    shared = set(full) & set(reference)
    assert shared >= {"emb_dim", "n_heads", "id2label", "label2id", "pre_norm", "return_dict", "model_type",
                      "pad_token_id", "bos_token_id", "eos_token_id", "vocab_size", "is_encoder_decoder"}
    assert {name: full[name] for name in shared} == {name: reference[name] for name in shared}
    diff, reference_diff = json.loads(ours.to_json_string()), json.loads(theirs.to_json_string())
    assert set(diff) == {"emb_dim", "n_heads", "id2label", "label2id", "pre_norm", "return_dict", "model_type"}
    assert all(reference_diff[name] == value for name, value in diff.items())
    assert ours.to_json_string().endswith("}\n")


def test_label2id_is_always_id2label_reversed():
    """A deliberate difference: transformers 5.23's FlaubertConfig(label2id=...) keeps id2label at LABEL_0, LABEL_1,
    and FlaubertConfig(id2label=...) leaves label2id None; here each always is the other reversed."""
    config = FlaubertConfig(label2id={"NEG": 0, "POS": 1, "NEU": 2})
    assert config.id2label == {0: "NEG", 1: "POS", 2: "NEU"} and config.label2id == {"NEG": 0, "POS": 1, "NEU": 2}
    assert FlaubertConfig(id2label={"0": "A", "1": "B"}).label2id == {"A": 0, "B": 1}


@pytest.mark.parametrize("name", ["dtype", "chunk_size_feed_forward", "transformers_version", "num_lables"])
def test_names_a_config_does_not_take_are_type_errors(name, transformers):
    """A deliberate difference: transformers' FlaubertConfig stores any keyword (a misspelt one becomes an unused
    attribute); here it is a TypeError suggesting the closest name. dtype, chunk_size_feed_forward and
    transformers_version are torch's or the library's settings: we always compute in float32, the feed-forward
    layer whole, and the version is not the user's to set."""
    assert getattr(transformers.FlaubertConfig(**{name: 4}), name) is not None  # taken there
    with pytest.raises(TypeError, match=f"unexpected keyword argument '{name}'"):
        FlaubertConfig(**{name: 4})
