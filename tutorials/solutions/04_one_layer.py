"""Lesson 4, exercises: LayerNorm's statistics, the tanh GELU inside a layer, and a layer's parameter count."""
import warnings

import numpy as np

from minflaubert import FlaubertModel, FlaubertTokenizer
from minflaubert.nn import layers
from minflaubert.models.model import layer_params

tokenizer = FlaubertTokenizer.from_pretrained("tests/fixtures/tiny-model")
ids = tokenizer("Le chat dort sur le canapé.", return_tensors="np")["input_ids"]
post = FlaubertModel.from_pretrained("tests/fixtures/tiny-model")

# 1. LayerNorm with weight 1 and bias 0 gives each token mean 0 and standard deviation 1.
x = np.random.default_rng(0).normal(3, 5, size=(4, 32)).astype(np.float32)
plain = layers.layer_norm(x, {"weight": np.ones(32, np.float32), "bias": np.zeros(32, np.float32)}, 1e-12)
assert np.allclose(plain.mean(axis=-1), 0, atol=1e-5) and np.allclose(plain.std(axis=-1), 1, atol=1e-4)
print(f"LayerNorm, weight 1 and bias 0: means within {np.abs(plain.mean(axis=-1)).max():.0e} of 0, "
      f"stds within {np.abs(plain.std(axis=-1) - 1).max():.0e} of 1")
print("why: each vector has its own mean subtracted and is divided by its own standard deviation; the weight "
      "and bias (1 and 0 here) are what let a trained model move away from mean 0 and std 1")


# 2. The tanh approximation of GELU inside layer 0 of the trained model (pre-norm): the change in the layer's output.
# (In the random fixtures, the FFN's inputs are so small that both GELUs nearly agree there.)
def tanh_gelu(x):
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))


with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # the bare encoder leaves the LM head's bias unused
    trained = FlaubertModel.from_pretrained("weights/flaubert_tiny")
trained_ids = FlaubertTokenizer.from_pretrained("weights/flaubert_tiny")("Le chat dort sur le canapé.",
                                                                        return_tensors="np")["input_ids"]
states = trained(trained_ids, output_hidden_states=True).hidden_states
mask = layers.attention_mask_matrix(np.ones(trained_ids.shape, dtype=bool), causal=False)
p = layer_params(trained.params, 0)
c = trained.config
exact, _ = layers.pre_norm_layer(states[0], mask, p, c.n_heads, c.layer_norm_eps,
                                 layers.scaled_dot_product_attention, layers.gelu)
approx, _ = layers.pre_norm_layer(states[0], mask, p, c.n_heads, c.layer_norm_eps,
                                  layers.scaled_dot_product_attention, tanh_gelu)
print(f"tanh GELU moves layer 0's output by up to {np.abs(exact - approx).max():.1e}")
assert np.allclose(exact, states[1], atol=1e-4)
assert np.abs(exact - approx).max() > 2e-5  # more than the parity tests allow

# 3. One layer's parameters: 4 attention projections (dim x dim + dim), 2 LayerNorms (2 dim each), the FFN
# (dim x 4dim + 4dim, then 4dim x dim + dim): 12 dim^2 + 13 dim.
dim = post.config.emb_dim
count = sum(a.size for name, a in post.weights.items()
            if name.split(".")[0] in ("attentions", "ffns", "layer_norm1", "layer_norm2") and name.split(".")[1] == "0")
assert count == 12 * dim ** 2 + 13 * dim, count
print("parameters of one layer:", count, "= 12 dim² + 13 dim with dim =", dim)
print("why: 4 attention projections (4 dim² + 4 dim), the FFN (8 dim² + 5 dim), 2 LayerNorms (4 dim)")
