"""Properties that must hold for *every* model, input and file, checked with hypothesis on small random models.

``FlaubertModel(FlaubertConfig(...), seed=...)`` builds random weights, so hypothesis draws the architecture
(width, heads, layers, pre/post-norm, GELU/ReLU, causal or not, sinusoidal positions), the weights' seed and the
batch, and each test states one property. The default profile is quick (a few dozen examples per property); CI
selects the thorough one with ``HYPOTHESIS_PROFILE=ci`` (see ``conftest.py``).
"""
import dataclasses
import json

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from conftest import columns
from minflaubert.nn import fast, kernels, layers
from minflaubert.nn.paths import PATHS
from minflaubert.models.config import SUMMARY_TYPES, FlaubertConfig
from minflaubert.models.model import FlaubertModel
from minflaubert.checkpoints.weights import load_state_dict, read_safetensors

TOLERANCE = dict(rtol=2e-5, atol=2e-5)  # float32 sums taken in another order (another batch size, BLAS blocking)


# ----------------------------------------------------------------------------------------------- strategies
@st.composite
def configs(draw, causal=None):
    """A small valid architecture: emb_dim = n_heads x head_dim, up to 2 layers and 16 positions."""
    n_heads, head_dim = draw(st.integers(1, 3)), draw(st.integers(2, 4))
    return FlaubertConfig(
        vocab_size=draw(st.integers(6, 40)), emb_dim=n_heads * head_dim, n_heads=n_heads,
        n_layers=draw(st.integers(1, 2)), max_position_embeddings=draw(st.integers(4, 16)),
        pre_norm=draw(st.booleans()), gelu_activation=draw(st.booleans()),
        sinusoidal_embeddings=draw(st.booleans()), causal=draw(st.booleans()) if causal is None else causal)


@st.composite
def models(draw, causal=None):
    config = draw(configs(causal))
    model = FlaubertModel(config, seed=draw(st.integers(0, 2**16)))
    # subtle: at the default init (std 0.02) every attention row is almost uniform; larger weights make the
    # attention sharp, so a wrong mask or a wrong key would show.
    scale = draw(st.sampled_from([1.0, 10.0, 50.0]))
    model.weights = {name: w * scale if w.ndim == 2 and "embeddings" not in name else w
                     for name, w in model.weights.items()}
    model.setup()
    model.path = draw(st.sampled_from(PATHS))  # which execution runs it: every property must hold on all three
    return model


def real_tokens(config):
    """Every id but the padding one (a pad id counts as padding when no attention_mask is given)."""
    return st.integers(0, config.vocab_size - 1).filter(lambda t: t != config.pad_index)


@st.composite
def sequences(draw, config, min_length=1, max_length=None):
    length = draw(st.integers(min_length, max_length or config.max_position_embeddings))
    return np.array(draw(st.lists(real_tokens(config), min_size=length, max_size=length)), dtype=np.int64)


@st.composite
def padded_batches(draw, config, max_batch=3):
    """(ids [batch, seq] right-padded with pad_index, lengths [batch]), every row holding at least one token."""
    rows = draw(st.lists(sequences(config), min_size=1, max_size=max_batch))
    seq_len = draw(st.integers(max(map(len, rows)), config.max_position_embeddings))
    ids = np.full((len(rows), seq_len), config.pad_index, dtype=np.int64)
    for b, row in enumerate(rows):
        ids[b, :len(row)] = row
    return ids, np.array([len(row) for row in rows])


def hidden(model, ids, **kwargs):
    return model(ids, **kwargs).last_hidden_state


# ----------------------------------------------------------------------------------------- batch and padding
@given(st.data())
def test_a_sequence_does_not_depend_on_the_rest_of_its_batch(data):
    """Row b of a batch gives the same vectors as row b run alone, whatever the other rows hold."""
    model = data.draw(models())
    ids, lengths = data.draw(padded_batches(model.config))
    together = hidden(model, ids)
    for b in range(len(ids)):
        alone = hidden(model, ids[b:b + 1])[0]
        np.testing.assert_allclose(together[b], alone, **TOLERANCE)


@given(st.data())
def test_outputs_do_not_depend_on_how_much_padding_follows(data):
    """A sequence right-padded by any number of pad tokens gives the same vectors at its real positions."""
    model = data.draw(models())
    ids = data.draw(sequences(model.config, max_length=model.config.max_position_embeddings - 1))
    extra = data.draw(st.integers(1, model.config.max_position_embeddings - len(ids)))
    padded = np.concatenate([ids, np.full(extra, model.config.pad_index)])
    np.testing.assert_allclose(hidden(model, padded[None])[0, :len(ids)], hidden(model, ids[None])[0], **TOLERANCE)


@given(st.data())
def test_padded_positions_come_out_exactly_zero(data):
    """Every hidden state (embeddings, each layer) is exactly 0 at the padded positions, with kernels or not."""
    model = data.draw(models())
    ids, lengths = data.draw(padded_batches(model.config))
    padding = np.arange(ids.shape[1])[None, :] >= lengths[:, None]
    for state in model(ids, output_hidden_states=True).hidden_states:
        assert np.all(state[padding] == 0.0)


@given(st.data())
def test_attention_rows_sum_to_one_over_the_keys_they_may_see(data):
    """Attention weights are 0 on the keys a query may not see (padding, or the future when causal) and sum to 1
    over the others."""
    model = data.draw(models())
    ids, lengths = data.draw(padded_batches(model.config))
    seq_len = ids.shape[1]
    if model.config.causal:
        visible = np.broadcast_to(np.tril(np.ones((seq_len, seq_len), bool)), (len(ids), seq_len, seq_len))
    else:
        visible = np.broadcast_to((np.arange(seq_len)[None, :] < lengths[:, None])[:, None, :],
                                  (len(ids), seq_len, seq_len))
    for weights in model(ids, output_attentions=True).attentions:  # [batch, heads, queries, keys]
        assert np.all(weights[np.broadcast_to(~visible[:, None], weights.shape)] == 0.0)
        np.testing.assert_allclose(weights.sum(axis=-1), 1.0, rtol=0, atol=1e-5)


# ------------------------------------------------------------------------------------------------ causality
@given(st.data())
def test_a_causal_model_does_not_look_ahead(data):
    """Changing the tokens after position t changes nothing at positions 0..t."""
    model = data.draw(models(causal=True))
    ids = data.draw(sequences(model.config, min_length=2))
    t = data.draw(st.integers(0, len(ids) - 2))
    changed = ids.copy()
    changed[t + 1:] = data.draw(st.lists(real_tokens(model.config), min_size=len(ids) - t - 1,
                                         max_size=len(ids) - t - 1))
    np.testing.assert_allclose(hidden(model, changed[None])[0, :t + 1], hidden(model, ids[None])[0, :t + 1],
                               **TOLERANCE)


@given(st.data())
def test_incremental_decoding_equals_the_whole_sequence(data):
    """Feeding a sequence in pieces with ``cache={}`` (the whole prefix each time, as transformers) gives the
    vectors of the whole sequence at once, piece by piece."""
    model = data.draw(models(causal=True))
    batch = data.draw(st.integers(1, 2))
    length = data.draw(st.integers(1, model.config.max_position_embeddings))
    ids = np.stack([data.draw(sequences(model.config, length, length)) for _ in range(batch)])
    cuts = sorted(data.draw(st.sets(st.integers(1, length - 1), max_size=3))) if length > 1 else []
    cache, pieces = {}, []
    for end in [*cuts, length]:
        pieces.append(hidden(model, ids[:, :end], cache=cache))
    assert [p.shape[1] for p in pieces] == np.diff([0, *cuts, length]).tolist()
    # subtle: the whole sequence through the same (readable) path the cache uses; asking for attentions selects it.
    # The fast packed path is held to the readable one by its own properties.
    whole = model(ids, output_attentions=True).last_hidden_state
    np.testing.assert_allclose(np.concatenate(pieces, axis=1), whole, **TOLERANCE)
    assert cache["slen"] == length


# ------------------------------------------------------------------------------------------------- layers
float_rows = hnp.arrays(np.float32, hnp.array_shapes(min_dims=1, max_dims=3, min_side=2, max_side=24),
                        elements=st.floats(-1e3, 1e3, width=32))


@given(float_rows)
def test_layer_norm_gives_mean_zero_and_variance_one_before_its_affine(x):
    """With scale 1 and shift 0, every normalised vector has mean 0 and (biased) variance 1."""
    x = x.astype(np.float64).astype(np.float32)
    spread = x.std(axis=-1)
    assume(np.all(spread > 1e-3 * np.maximum(1.0, np.abs(x).max(axis=-1))))  # not (numerically) constant
    identity = {"weight": np.ones(x.shape[-1], np.float32), "bias": np.zeros(x.shape[-1], np.float32)}
    for y in (layers.layer_norm(x, identity, 1e-12),
              kernels.layer_norm(columns(x.reshape(-1, x.shape[-1])), identity["weight"], identity["bias"],
                                 1e-12).T):  # the kernel normalises columns
        y = y.astype(np.float64)
        np.testing.assert_allclose(y.mean(axis=-1), 0.0, atol=1e-4)
        np.testing.assert_allclose(y.var(axis=-1), 1.0, atol=1e-3)


# ------------------------------------------------------------------------------- kernels vs NumPy reference
def random_floats(data, shape, scale=None):
    scale = data.draw(st.sampled_from([0.1, 1.0, 10.0])) if scale is None else scale
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    return (rng.standard_normal(shape) * scale).astype(np.float32)


@given(st.data())
def test_attention_kernel_equals_numpy(data):
    """kernels.scaled_dot_product_attention == layers.scaled_dot_product_attention, any mask (incl. empty rows)."""
    batch, heads, q_len, k_len, d = (data.draw(st.integers(1, n)) for n in (2, 3, 6, 8, 8))
    q, k, v = (random_floats(data, (batch, heads, n, d)) for n in (q_len, k_len, k_len))
    mask = data.draw(hnp.arrays(np.bool_, (batch, q_len, k_len)))
    context, weights = kernels.scaled_dot_product_attention(q, k, v, mask)
    reference_context, reference_weights = layers.scaled_dot_product_attention(q, k, v, mask)
    np.testing.assert_allclose(weights, reference_weights, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(context, reference_context, rtol=1e-4, atol=1e-5)


@given(hnp.arrays(np.float32, hnp.array_shapes(max_dims=3, max_side=20), elements=st.floats(-30, 30, width=32)))
def test_gelu_kernels_equal_numpy(x):
    """kernels.gelu and kernels.bias_gelu (a rational erf) == the exact erf GELU of layers.gelu."""
    np.testing.assert_allclose(kernels.gelu(x), layers.gelu(x), rtol=1e-5, atol=1e-6)
    rows = np.ascontiguousarray(x.reshape(-1, x.shape[-1]) if x.ndim else x.reshape(1, 1))
    bias = np.linspace(-1, 1, rows.shape[1], dtype=np.float32)
    np.testing.assert_allclose(kernels.bias_gelu(columns(rows), bias).T, layers.gelu(rows + bias), rtol=1e-5,
                               atol=1e-6)


@given(st.data())
def test_row_kernels_equal_numpy(data):
    """add_bias, add_residual, layer_norm and residual_layer_norm == their one-line NumPy twins (the kernels work
    on the fast path's feature-major layout: they take and give transposes)."""
    rows, dim = data.draw(st.integers(1, 20)), data.draw(st.integers(2, 40))
    x, y = random_floats(data, (rows, dim)), random_floats(data, (rows, dim))
    bias, gamma, beta = (random_floats(data, dim) for _ in range(3))
    p = {"weight": gamma, "bias": beta}
    np.testing.assert_allclose(kernels.add_bias(columns(y), bias).T, y + bias, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(kernels.add_residual(columns(x), columns(y), bias).T, x + (y + bias), rtol=1e-6,
                               atol=1e-5)
    np.testing.assert_allclose(kernels.layer_norm(columns(x), gamma, beta, 1e-12).T, layers.layer_norm(x, p, 1e-12),
                               rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(kernels.residual_layer_norm(columns(x), columns(y), bias, gamma, beta, 1e-12).T,
                               layers.layer_norm(x + (y + bias), p, 1e-12), rtol=1e-4, atol=1e-4)


@given(st.data())
def test_packed_attention_equals_numpy(data):
    """fast.packed_attention (BLAS + the softmax kernel) over sequences packed end to end == the padded-batch NumPy
    attention at the real positions (bidirectional or causal)."""
    n_heads, head_dim, causal = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 6)), data.draw(st.booleans())
    lengths = np.array(data.draw(st.lists(st.integers(1, 7), min_size=1, max_size=4)), dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    dim, tokens, seq_len = n_heads * head_dim, int(lengths.sum()), int(lengths.max())
    qkv = random_floats(data, (tokens, 3 * dim))
    context = np.empty((dim, tokens), np.float32)
    fast.packed_attention(columns(qkv), starts, lengths, n_heads, causal, context)
    context = context.T
    # the reference: the same sequences, right-padded into a batch
    padded = np.zeros((len(lengths), seq_len, 3 * dim), np.float32)
    for s, (start, n) in enumerate(zip(starts, lengths)):
        padded[s, :n] = qkv[start:start + n]
    real = np.arange(seq_len)[None, :] < lengths[:, None]
    q, k, v = (layers.split_heads(padded[..., i * dim:(i + 1) * dim], n_heads) for i in range(3))
    expected, _ = layers.scaled_dot_product_attention(q, k, v, layers.attention_mask_matrix(real, causal) & real[:, None, :])
    expected = layers.merge_heads(expected)
    # The bound scales with the values, as the parity standard does: at scale 10 scores reach ~250, whose float32
    # rounding (~1.5e-5) alone moves a context by up to ~1e-4, whichever order the dot products are summed in.
    atol = 1e-5 * max(1.0, float(np.abs(expected).max()))
    for s, (start, n) in enumerate(zip(starts, lengths)):
        np.testing.assert_allclose(context[start:start + n], expected[s, :n], rtol=1e-4, atol=atol)


@given(st.data())
def test_scaled_softmax_kernel_equals_numpy(data):
    """kernels.scaled_softmax == layers.softmax of the scaled scores, keys after the query at 0 when causal."""
    heads, q_len, causal = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 8)), data.draw(st.booleans())
    k_len = q_len if causal else data.draw(st.integers(1, 8))
    scores, scale = random_floats(data, (heads, q_len, k_len)), data.draw(st.sampled_from([0.125, 0.5, 1.0]))
    masked = np.where(np.tril(np.ones((q_len, k_len), bool)) | (not causal), scores * np.float32(scale),
                      layers.MASKED_SCORE)
    np.testing.assert_allclose(kernels.scaled_softmax(scores.copy(), scale, causal), layers.softmax(masked),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("path", ["fast", "kernels"])
@given(data=st.data())
def test_whole_model_on_each_path_equals_the_reference(path, data):
    """A whole model gives the same outputs on the fast path, or on the readable loop with the Numba kernels, as on
    the plain NumPy reference path, padding included."""
    model = data.draw(models())
    ids, _ = data.draw(padded_batches(model.config))
    model.path = path
    output = model(ids, output_hidden_states=True)
    assert output.execution_path == path
    model.path = "reference"
    reference = model(ids, output_hidden_states=True).hidden_states
    for ours, expected in zip(output.hidden_states, reference):
        np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-4)


# ------------------------------------------------------------------------------------------ save and load
@st.composite
def valid_configs(draw):
    """Any valid config, the rarely used fields included (labels, languages, adaptive softmax, summary...)."""
    vocab_size = draw(st.integers(8, 500))
    n_heads = draw(st.integers(1, 4))
    n_langs = draw(st.integers(1, 4))
    languages = draw(st.lists(st.text(min_size=1, max_size=5), min_size=n_langs, max_size=n_langs, unique=True))
    labels = draw(st.lists(st.text(max_size=8), min_size=1, max_size=5))
    cutoffs = sorted(draw(st.sets(st.integers(1, vocab_size - 1), min_size=1, max_size=3)))
    finite = dict(allow_nan=False, allow_infinity=False)
    indices = st.integers(0, vocab_size - 1)
    return FlaubertConfig(
        vocab_size=vocab_size, emb_dim=n_heads * draw(st.integers(1, 16)), n_heads=n_heads,
        n_layers=draw(st.integers(1, 24)), max_position_embeddings=draw(st.integers(1, 4096)),
        pre_norm=draw(st.booleans()), gelu_activation=draw(st.booleans()), causal=draw(st.booleans()),
        sinusoidal_embeddings=draw(st.booleans()), n_langs=n_langs, use_lang_emb=draw(st.booleans()),
        layer_norm_eps=draw(st.floats(1e-15, 1.0, **finite)), asm=draw(st.booleans()), asm_cutoffs=cutoffs,
        asm_div_value=draw(st.floats(0.5, 8.0, **finite)), dropout=draw(st.floats(0.0, 1.0, **finite)),
        attention_dropout=draw(st.floats(0.0, 1.0, **finite)), layerdrop=draw(st.floats(0.0, 1.0, **finite)),
        embed_init_std=draw(st.floats(0.0, 1.0, **finite)), init_std=draw(st.floats(0.0, 1.0, **finite)),
        bos_index=draw(indices), eos_index=draw(indices), pad_index=draw(indices), unk_index=draw(indices),
        mask_index=draw(indices), mask_token_id=draw(indices), lang_id=draw(st.integers(0, n_langs - 1)),
        lang2id=draw(st.none() | st.just({language: i for i, language in enumerate(languages)})),
        id2lang=draw(st.none() | st.just(dict(enumerate(languages)))),
        summary_type=draw(st.sampled_from(SUMMARY_TYPES)), summary_use_proj=draw(st.booleans()),
        summary_activation=draw(st.sampled_from([None, "tanh"])), summary_proj_to_labels=draw(st.booleans()),
        summary_first_dropout=draw(st.floats(0.0, 1.0, **finite)), start_n_top=draw(st.integers(1, 10)),
        end_n_top=draw(st.integers(1, 10)), id2label=dict(enumerate(labels)),
        problem_type=draw(st.sampled_from([None, "regression", "single_label_classification",
                                           "multi_label_classification"])),
        architectures=draw(st.none() | st.just(["FlaubertModel"])), tie_word_embeddings=draw(st.booleans()))


@given(valid_configs())
def test_config_round_trips_exactly(config):
    """save_pretrained then from_pretrained (and to_dict then from_dict) give back an equal config."""
    import tempfile

    assert FlaubertConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with tempfile.TemporaryDirectory() as folder:
        config.save_pretrained(folder)
        assert FlaubertConfig.from_pretrained(folder) == config


@settings(max_examples=settings().max_examples // 4 + 1)  # each example writes and maps a checkpoint
@given(st.data())
def test_checkpoint_round_trips_exactly(data):
    """save_pretrained then from_pretrained gives bit-identical weights and outputs."""
    import tempfile

    model = data.draw(models())
    ids, _ = data.draw(padded_batches(model.config))
    with tempfile.TemporaryDirectory() as folder:
        model.save_pretrained(folder)
        loaded = FlaubertModel.from_pretrained(folder, path=model.path)
        assert loaded.path == model.path
        assert loaded.config == dataclasses.replace(model.config, architectures=["FlaubertModel"])
        assert loaded.weights.keys() == model.weights.keys()
        for name, array in model.weights.items():
            np.testing.assert_array_equal(loaded.weights[name], array, err_msg=name)
        np.testing.assert_array_equal(hidden(loaded, ids), hidden(model, ids))


# ----------------------------------------------------------------------------------------- safetensors fuzz
@pytest.fixture(scope="module")
def small_checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("checkpoint")
    FlaubertModel(FlaubertConfig(vocab_size=12, emb_dim=4, n_layers=1, n_heads=2, max_position_embeddings=6)
                  ).save_pretrained(folder)
    return folder, (folder / "model.safetensors").read_bytes()


@given(data=st.data())
def test_a_corrupt_safetensors_file_gives_only_a_clean_error(small_checkpoint, tmp_path_factory, data):
    """Random byte changes (mostly in the header) and truncations of a valid file: reading and loading it either
    work or raise ValueError/OSError, never anything else."""
    folder, original = small_checkpoint
    header_end = 8 + int.from_bytes(original[:8], "little")
    corrupt = bytearray(original)
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, header_end + 16) | st.integers(0, len(original) - 1))
        corrupt[position] = data.draw(st.integers(0, 255))
    corrupt = corrupt[:data.draw(st.integers(0, len(original)) | st.just(len(original)))]
    target = tmp_path_factory.mktemp("corrupt")
    (target / "config.json").write_bytes((folder / "config.json").read_bytes())
    (target / "model.safetensors").write_bytes(bytes(corrupt))
    for read in (lambda: read_safetensors(target / "model.safetensors"), lambda: load_state_dict(target),
                 lambda: FlaubertModel.from_pretrained(target)):
        try:
            read()
        except (ValueError, OSError):
            pass


# --------------------------------------------------------------------------------------------- tokenizer
@pytest.fixture(scope="module")
def tokenizer(shared_data):
    from minflaubert.tokenization.tokenizer import FlaubertTokenizer

    return FlaubertTokenizer.from_pretrained(shared_data / "flaubert_base_uncased")


@given(text=st.text())
def test_the_tokenizer_never_fails_on_a_str(tokenizer, text):
    """Any str (controls, surrogates, emoji, typed special tokens...) encodes to valid ids, with offsets, and
    decodes."""
    encoding = tokenizer(text, return_offsets_mapping=True)
    assert all(0 <= i < tokenizer.vocab_size for i in encoding["input_ids"])
    assert all(0 <= start <= end <= len(text) for start, end in encoding["offset_mapping"])
    assert isinstance(tokenizer.decode(encoding["input_ids"]), str)


# Characters whose every BPE piece is in the vocabulary (checked below), without "<" (no typed special tokens).
FRENCH = "abcdefghijklmnopqrstuvwxyzàâæçéèêëîïôœùûüÿABCDEFGHIJKLMNOPQRSTUVWXYZÉÀÇ0123456789 .,;:!?'\"()-«»’…\n\t"


@given(text=st.text(alphabet=FRENCH, max_size=80))
def test_decode_of_encode_gives_the_moses_normalised_text(tokenizer, text):
    """decode(encode(x)) is x as the Moses pipeline normalises it: normalised, split into Moses words, joined by
    single spaces."""
    from minflaubert.tokenization.moses import moses_tokenize, normalize

    ids = tokenizer.encode(text, add_special_tokens=False)
    assume(tokenizer.unk_token_id not in ids)  # a piece missing from the vocabulary can't come back
    assert tokenizer.decode(ids, clean_up_tokenization_spaces=False) == " ".join(moses_tokenize(normalize(text, tokenizer.do_lowercase)))
