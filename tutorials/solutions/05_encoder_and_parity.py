"""Lesson 5, exercises: the pre-norm fixture by hand, a one-bias change caught, lengths instead of a mask."""
import numpy as np

from minflaubert import FlaubertModel
from minflaubert.nn import layers
from minflaubert.models.model import layer_params


def worst_error(ours, expected):
    return float(np.abs(ours - expected).max() / max(1.0, np.abs(expected).max()))


def encoder_by_hand(model, ids, attention_mask):  # lesson 5, section 1
    config, params = model.config, model.params
    keep = attention_mask[..., None].astype(np.float32)
    mask = layers.attention_mask_matrix(attention_mask != 0, config.causal)
    positions = np.broadcast_to(np.arange(ids.shape[1]), ids.shape)
    x = layers.embed(params, config.layer_norm_eps, ids, position_ids=positions) * keep
    layer = layers.pre_norm_layer if config.pre_norm else layers.post_norm_layer
    for i in range(config.n_layers):
        x, _ = layer(x, mask, layer_params(params, i), config.n_heads, config.layer_norm_eps,
                     layers.scaled_dot_product_attention, layers.gelu)
        x = x * keep
    return x


# 1. The loop handles the pre-norm fixture too (it picks pre_norm_layer from the config).
pre = FlaubertModel.from_pretrained("tests/fixtures/tiny-model-prenorm")
reference = np.load("tests/fixtures/tiny-model-prenorm/reference.npz")
ids, mask = reference["plain/inputs/input_ids"], reference["plain/inputs/attention_mask"]
error = worst_error(encoder_by_hand(pre, ids, mask), reference["plain/outputs/last_hidden_state"])
print(f"pre-norm by hand vs transformers: {error:.1e}")
assert error <= 2e-5

# 2. One bias moved by 0.01 is caught: the error is far above the tolerance.
model = FlaubertModel.from_pretrained("tests/fixtures/tiny-model")
reference = np.load("tests/fixtures/tiny-model/reference.npz")
ids, mask = reference["plain/inputs/input_ids"], reference["plain/inputs/attention_mask"]
name = "attentions.1.v_lin.bias"
model.weights[name] = model.weights[name].copy()  # loaded weights are read-only memory maps
model.weights[name][3] += 0.01
model.setup()  # rebuild the parameter tree (and what lesson 10's fast path keeps) from model.weights
error = worst_error(model(ids, attention_mask=mask).last_hidden_state, reference["plain/outputs/last_hidden_state"])
print(f"one bias moved by 0.01: worst error {error:.1e}")
assert error > 2e-5

# 3. lengths instead of attention_mask (right padding): the same output.
model = FlaubertModel.from_pretrained("tests/fixtures/tiny-model")
a = model(ids, attention_mask=mask).last_hidden_state
b = model(ids, lengths=mask.sum(axis=1)).last_hidden_state
assert np.array_equal(a, b)
