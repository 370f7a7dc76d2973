"""Every Numba kernel equals its plain-NumPy twin, and the fast encoder equals the readable one.

Random shapes, masks and values (hypothesis). The twins are the functions of ``layers.py``; the fast encoder
(``fast.py``: packed tokens, fused kernels) is compared with ``model.encode(..., path="reference")`` on random
small models: padding, causal, pre-norm, languages, token types, position ids, inputs_embeds, ragged batches.
The end of the file checks which path runs when (``nn/paths.py``). No timing here: speed is measured by benchmarks/.
"""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import columns
from minflaubert.nn import fast, kernels, layers
from minflaubert.models.config import FlaubertConfig
from minflaubert.models.heads import FlaubertForTokenClassification
from minflaubert.models.model import FlaubertModel, encode
from minflaubert.nn.paths import PATHS


def floats(rng, *shape, scale=1.0):
    return (scale * rng.standard_normal(shape)).astype(np.float32)


seeds = st.integers(0, 2**32 - 1)


def assert_layer_norm_close(got, expected, inputs, gamma):
    """got == expected within rtol 1e-5, atol 2e-5, plus what float32 cannot resolve in that row.

    subtle: a row like [1.5987, 1.5981] has a spread 1/5,500 of its values. Any float32 LayerNorm (this kernel,
    NumPy's, torch's) rounds the mean to ~1e-7, ~4e-4 of the centred values; the allowance below is that rounding,
    amplified by 1 / std of the row: under 1e-6 for ordinary rows.
    """
    inputs = inputs.astype(np.float64)
    conditioning = np.abs(inputs).max(axis=-1, keepdims=True) / np.maximum(inputs.std(axis=-1, keepdims=True), 1e-30)
    atol = 2e-5 + 4 * np.finfo(np.float32).eps * conditioning * np.abs(gamma)
    excess = np.abs(got.astype(np.float64) - expected) - (atol + 1e-5 * np.abs(expected))
    assert (excess <= 0).all(), f"exceeds the bound by up to {excess.max():.3g} at {np.argwhere(excess > 0)[:3]}"


@given(seeds, st.integers(1, 40), st.integers(1, 300), st.sampled_from([0.1, 1.0, 3.0, 10.0]))
def test_bias_gelu_equals_gelu_of_sum(seed, rows, width, scale):
    rng = np.random.default_rng(seed)
    y, bias = floats(rng, rows, width, scale=scale), floats(rng, width)
    expected = layers.gelu(y + bias)
    got = kernels.bias_gelu(columns(y), bias).T
    np.testing.assert_allclose(got, expected, rtol=2e-6, atol=1e-6 * max(1.0, scale))  # erf: a few float32 ulps


@given(seeds, st.integers(1, 40), st.integers(1, 300))
def test_add_bias(seed, rows, width):
    rng = np.random.default_rng(seed)
    y, bias = floats(rng, rows, width), floats(rng, width)
    np.testing.assert_allclose(kernels.add_bias(columns(y), bias).T, y + bias, rtol=1e-6, atol=5e-7)


@given(seeds, st.integers(1, 30), st.integers(2, 200), st.sampled_from([1e-12, 1e-5]), st.floats(0.01, 50))
def test_layer_norm(seed, rows, dim, eps, scale):
    rng = np.random.default_rng(seed)
    x, gamma, beta = floats(rng, rows, dim, scale=scale) + np.float32(scale), floats(rng, dim), floats(rng, dim)
    expected = layers.layer_norm(x, {"weight": gamma, "bias": beta}, eps)
    assert_layer_norm_close(kernels.layer_norm(columns(x), gamma, beta, eps).T, expected, x, gamma)
    in_place = columns(x)
    kernels.layer_norm(in_place, gamma, beta, eps, out=in_place)
    assert_layer_norm_close(in_place.T, expected, x, gamma)


@given(seeds, st.integers(1, 30), st.integers(2, 200), st.sampled_from([1e-12, 1e-5]))
def test_residual_layer_norm(seed, rows, dim, eps):
    rng = np.random.default_rng(seed)
    x, y, bias, gamma, beta = floats(rng, rows, dim), floats(rng, rows, dim), *(floats(rng, dim) for _ in range(3))
    expected = layers.residual_layer_norm(x, y + bias, {"weight": gamma, "bias": beta}, eps)
    summed = x + (y + bias)
    got = kernels.residual_layer_norm(columns(x), columns(y), bias, gamma, beta, eps).T
    assert_layer_norm_close(got, expected, summed, gamma)
    in_place = columns(x)
    kernels.residual_layer_norm(in_place, columns(y), bias, gamma, beta, eps, out=in_place)
    assert_layer_norm_close(in_place.T, expected, summed, gamma)


@given(seeds, st.integers(1, 30), st.integers(2, 50))
def test_add_residual(seed, rows, dim):
    rng = np.random.default_rng(seed)
    x, y, bias = floats(rng, rows, dim), floats(rng, rows, dim), floats(rng, dim)
    got = kernels.add_residual(columns(x), columns(y), bias).T
    np.testing.assert_allclose(got, x + (y + bias), rtol=1e-6, atol=5e-7)


@given(seeds, st.integers(1, 40), st.integers(1, 40))
def test_transpose(seed, rows, cols):
    source = floats(np.random.default_rng(seed), rows, cols)
    out = np.empty((cols, rows), np.float32)
    assert kernels.transpose(source, out) is out
    np.testing.assert_array_equal(out, source.T)


def padded_attention(qkv, lengths, n_heads, causal):
    """The twin: pad the packed sequences to a batch and run ``layers.scaled_dot_product_attention``."""
    dim = qkv.shape[1] // 3
    batch, seq_len = len(lengths), max(max(lengths), 1)
    padded = np.zeros((batch, seq_len, 3 * dim), np.float32)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(int)
    for b, (start, length) in enumerate(zip(starts, lengths)):
        padded[b, :length] = qkv[start:start + length]
    mask = np.arange(seq_len)[None, :] < np.asarray(lengths)[:, None]
    q, k, v = (layers.split_heads(padded[..., i * dim:(i + 1) * dim], n_heads) for i in range(3))
    context, _ = layers.scaled_dot_product_attention(q, k, v, layers.attention_mask_matrix(mask, causal))
    context = layers.merge_heads(context)
    return np.concatenate([context[b, :length] for b, length in enumerate(lengths)]), starts


@given(seeds, st.lists(st.integers(0, 70), min_size=1, max_size=5), st.sampled_from([1, 2, 4]),
       st.sampled_from([4, 8, 16]), st.booleans())
def test_fast_packed_attention_equals_padded_reference(seed, lengths, n_heads, head_dim, causal):
    rng = np.random.default_rng(seed)
    dim = n_heads * head_dim
    qkv = floats(rng, sum(lengths), 3 * dim, scale=2.0)
    expected, starts = padded_attention(qkv, lengths, n_heads, causal)
    got = np.empty((dim, sum(lengths)), np.float32)
    fast.packed_attention(columns(qkv), starts, np.array(lengths, np.int64), n_heads, causal, got)
    got = got.T
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


@given(seeds, st.integers(1, 4), st.integers(1, 60), st.booleans())
def test_scaled_softmax(seed, n_heads, length, causal):
    rng = np.random.default_rng(seed)
    scores = floats(rng, n_heads, length, length, scale=5.0)
    scale = 1 / math.sqrt(16)
    masked = np.where(np.tril(np.ones((length, length), bool)) | (not causal), scores * np.float32(scale),
                      layers.MASKED_SCORE)
    expected = layers.softmax(masked, axis=-1)
    np.testing.assert_allclose(kernels.scaled_softmax(scores.copy(), scale, causal), expected, rtol=1e-5, atol=1e-7)


# ------------------------------------------------------------------------------- the fast encoder, end to end
def random_model(rng, **changes):
    config = FlaubertConfig.from_dict(dict(vocab_size=50, emb_dim=32, n_layers=2, n_heads=4,
                                           max_position_embeddings=160, **changes))
    model = FlaubertModel(config, seed=int(rng.integers(1000)))
    for name, array in model.weights.items():  # move LayerNorms and biases away from 1 and 0
        if name.endswith("bias") or "norm" in name:
            model.weights[name] = (array + 0.1 * rng.standard_normal(array.shape)).astype(np.float32)
    model.setup()
    return model


@given(seeds, st.lists(st.integers(0, 80), min_size=1, max_size=4), st.booleans(), st.booleans(),
       st.booleans(), st.sampled_from(["mask", "lengths", "none"]), st.sampled_from(["ids", "embeds"]),
       st.booleans(), st.booleans())
def test_fast_encoder_equals_reference(seed, lengths, causal, pre_norm, gelu, padding, source, extras, left_pad):
    rng = np.random.default_rng(seed)
    model = random_model(rng, causal=causal, pre_norm=pre_norm, gelu_activation=gelu, n_langs=2 if extras else 1)
    batch, seq_len = len(lengths), max(max(lengths), 1)
    if padding == "none":
        lengths = [seq_len] * batch
    mask = np.arange(seq_len)[None, :] < np.array(lengths)[:, None]
    if left_pad and padding == "mask":
        mask = mask[:, ::-1]  # packable only when not causal; the fast path must decline it otherwise
    inputs = {}
    if source == "ids":
        inputs["input_ids"] = np.where(mask, rng.integers(4, 50, size=(batch, seq_len)), model.config.pad_index)
    else:
        inputs["inputs_embeds"] = floats(rng, batch, seq_len, 32)
    if padding == "mask":
        inputs["attention_mask"] = mask.astype(np.float32)
    elif padding == "lengths":
        inputs["lengths"] = np.array(lengths)
    if extras:
        inputs["langs"] = rng.integers(0, 2, size=(batch, seq_len))
        inputs["token_type_ids"] = rng.integers(0, 2, size=(batch, seq_len))
        inputs["position_ids"] = rng.integers(0, 160, size=(batch, seq_len))
    reference = encode(model.params, model.config, **inputs, output_hidden_states=True, path="reference")
    prepared = fast.prepare(model.params, model.config)
    got = encode(model.params, model.config, **inputs, output_hidden_states=True, path="fast", prepared=prepared)
    left_padded = left_pad and padding == "mask" and any(0 < length < seq_len for length in lengths)
    assert (reference.path, got.path) == ("reference", "kernels" if causal and left_padded else "fast")
    for i, (ours, expected) in enumerate(zip(got[1], reference[1])):
        scale = max(1.0, float(np.abs(expected).max()))
        assert np.abs(ours - expected).max() <= 2e-5 * scale, f"hidden state {i}"
    np.testing.assert_array_equal(got[0], got[1][-1])


@pytest.mark.parametrize("path", PATHS)
def test_ragged_lengths(path):
    """A long, a short, a middle and a one-token sequence in one batch, bidirectional and causal: same numbers."""
    rng = np.random.default_rng(7)
    for causal in (False, True):
        model = random_model(rng, causal=causal)
        model.path = path
        lengths = [78, 5, 48, 1]
        seq_len = max(lengths)
        mask = np.arange(seq_len)[None, :] < np.array(lengths)[:, None]
        ids = np.where(mask, rng.integers(4, 50, size=(len(lengths), seq_len)), 2)
        reference = encode(model.params, model.config, input_ids=ids, attention_mask=mask, path="reference")[0]
        output = model(input_ids=ids, attention_mask=mask)
        assert output.execution_path == path
        got = output.last_hidden_state
        assert np.abs(got - reference).max() <= 2e-5 * max(1.0, float(np.abs(reference).max()))


def test_model_call_uses_the_fast_path_and_reuses_its_state():
    rng = np.random.default_rng(3)
    model = random_model(rng)
    ids = rng.integers(4, 50, size=(2, 7))
    first = model(input_ids=ids)
    assert first.execution_path == "fast"
    first = first.last_hidden_state
    state = model._fast
    assert isinstance(state, fast.Prepared)
    second = model(input_ids=ids).last_hidden_state
    assert model._fast is state
    np.testing.assert_array_equal(first, second)
    assert first is not second  # outputs never alias the reused buffers


# ------------------------------------------------------------------------------------ which path runs when
def test_fast_hands_over_to_kernels_when_it_cannot_serve_the_call():
    """Attention maps, a key/value cache, a left-padded causal batch: "fast" runs "kernels"; the other two paths
    run as asked, whatever the call."""
    rng = np.random.default_rng(5)
    ids = rng.integers(4, 50, size=(2, 6))
    left_padded = np.array([[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]])
    bidirectional, causal = random_model(rng), random_model(rng, causal=True)
    for path in PATHS:
        for model in (bidirectional, causal):
            model.path = path
        fallback = "kernels" if path == "fast" else path
        assert bidirectional(ids).execution_path == path
        assert bidirectional(ids, output_attentions=True).execution_path == fallback
        assert causal(ids, cache={}).execution_path == fallback
        assert causal(ids, attention_mask=left_padded).execution_path == fallback
        assert causal(ids, attention_mask=left_padded[:, ::-1]).execution_path == path  # right padding packs
        assert bidirectional(ids, attention_mask=left_padded).execution_path == path  # any mask packs


def test_a_path_is_chosen_by_name_and_a_wrong_name_refused():
    config = FlaubertConfig(vocab_size=50, emb_dim=16, n_layers=1, n_heads=2)
    assert FlaubertModel(config).path == "fast"
    assert FlaubertModel(config, path="reference").path == "reference"
    model = FlaubertModel(config)
    for wrong in ("numpy", "Fast", None, True):
        with pytest.raises(ValueError, match="path must be one of 'fast', 'kernels', 'reference'"):
            model.path = wrong
        with pytest.raises(ValueError, match="path must be one of"):
            FlaubertModel(config, path=wrong)
    assert model.path == "fast"  # a refused name changes nothing
    with pytest.raises(ValueError, match="path must be one of"):
        encode(model.params, config, input_ids=np.array([[5, 6]]), path="numba")


def test_the_path_is_said_beside_the_output_fields_not_among_them():
    """execution_path is an attribute: transformers' keys and tuple are untouched, and it cannot be set. The heads'
    outputs say it too."""
    model = random_model(np.random.default_rng(2))
    output = model(np.array([[5, 6, 7]]), output_hidden_states=True)
    assert list(output.keys()) == ["last_hidden_state", "hidden_states"] and len(output.to_tuple()) == 2
    assert output.execution_path == "fast"
    with pytest.raises(AttributeError):
        output.execution_path = "reference"
    head = FlaubertForTokenClassification(model.config, path="kernels")
    assert head(np.array([[5, 6, 7]])).execution_path == "kernels"
