"""Lesson 3, exercises: left padding, a fully masked row, and the trained model's « elle »."""
import warnings

import numpy as np

from minflaubert import FlaubertModel, FlaubertTokenizer
from minflaubert.nn import layers

# 1. Left padding: the attention mask says where the real tokens are wherever they sit; counting the non-pad ids
# only gives the right number, and padding_mask then assumes the real tokens come first.
pad = 2
ids = np.array([[pad, pad, 0, 70, 1], [0, 64, 128, 144, 1]])
attention_mask = (ids != pad).astype(int)
from_mask = layers.padding_mask(2, 5, attention_mask=attention_mask)
counted = layers.padding_mask(2, 5, input_ids=ids, pad_index=pad)
print(from_mask.astype(int))
print(counted.astype(int))
assert (from_mask[0] == [False, False, True, True, True]).all()
assert not (from_mask == counted).all()  # counting puts the three real tokens of row 0 at positions 0-2: wrong

# 2. A query whose keys are all masked: every score is the lowest float32, so the softmax is uniform (finite), not
# NaN as it would be with -inf.
rng = np.random.default_rng(0)
q, k, v = (rng.normal(size=(1, 1, 3, 4)).astype(np.float32) for _ in range(3))
mask = np.ones((1, 3, 3), dtype=bool)
mask[0, 1, :] = False  # query 1 may look at nothing
context, weights = layers.scaled_dot_product_attention(q, k, v, mask)
print(weights[0, 0].round(3))
assert np.isfinite(context).all() and np.allclose(weights[0, 0, 1], 1 / 3)

# 3. The trained model: which head links a pronoun to its noun, in two sentences?
with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # the bare encoder leaves the LM head's bias unused
    model = FlaubertModel.from_pretrained("weights/flaubert_tiny")
tokenizer = FlaubertTokenizer.from_pretrained("weights/flaubert_tiny")
for sentence, pronoun, noun in [("la servante ouvrit la fenêtre, puis elle regarda la mer.", "elle", "servante"),
                                ("le vieux marin regarda la mer, puis il ferma les yeux.", "il", "marin")]:
    encoding = tokenizer(sentence, return_tensors="np")
    tokens = tokenizer.convert_ids_to_tokens(encoding["input_ids"][0])
    maps = model(encoding["input_ids"], output_attentions=True).attentions
    query, key = tokens.index(pronoun + "</w>"), tokens.index(noun + "</w>")
    weights = np.stack([m[0] for m in maps])  # [layers, heads, queries, keys]
    link = weights[:, :, query, key]
    others = np.delete(weights[:, :, :, key], [query, key], axis=2).mean(axis=-1)  # the other queries' mean
    layer, head = np.unravel_index(link.argmax(), link.shape)
    print(f"« {pronoun} » -> « {noun} »: largest weight in layer {layer}, head {head} ({link.max():.2f}; the other "
          f"queries give « {noun} » {others[layer, head]:.2f} there)")
    layer, head = np.unravel_index((link / np.maximum(others, 1e-3)).argmax(), link.shape)
    print(f"    most specific: layer {layer}, head {head} ({link[layer, head]:.2f} against {others[layer, head]:.2f})")
print("why: a head that gives « servante » a large weight from every query is not an « elle » link; compare the "
      "pronoun's weight with the other queries' mean (lesson 3, section 6)")

# 4. Attention from scratch, with NumPy only (tests/test_tutorial_exercises.py checks these two against the library).


def softmax(scores):  # [..., keys] -> [..., keys]
    e = np.exp(scores - scores.max(axis=-1, keepdims=True))  # minus the row's max: exp never overflows
    return e / e.sum(axis=-1, keepdims=True)


def attention(q, k, v, mask):
    """q [batch, heads, queries, d], k and v [batch, heads, keys, d], mask [batch, queries, keys] (True = may look)
    -> (context [batch, heads, queries, d], weights [batch, heads, queries, keys])."""
    scores = q @ k.transpose(0, 1, 3, 2) / np.float32(np.sqrt(q.shape[-1]))  # scaled: the softmax does not saturate
    scores = np.where(mask[:, None], scores, np.finfo(np.float32).min)  # not -inf: a fully masked row stays finite
    weights = softmax(scores)
    return weights @ v, weights


def multi_head_attention(x, mask, p, n_heads):
    """x [batch, seq, dim] -> (output [batch, seq, dim], weights [batch, heads, seq, seq])."""
    batch, seq, dim = x.shape

    def heads(name):  # project, then cut the dim numbers into n_heads slices: [batch, heads, seq, dim / heads]
        projected = x @ p[name]["weight"].T + p[name]["bias"]
        return projected.reshape(batch, seq, n_heads, dim // n_heads).transpose(0, 2, 1, 3)

    context, weights = attention(heads("q_lin"), heads("k_lin"), heads("v_lin"), mask)
    merged = context.transpose(0, 2, 1, 3).reshape(batch, seq, dim)
    return merged @ p["out_lin"]["weight"].T + p["out_lin"]["bias"], weights


tiny = FlaubertModel.from_pretrained("tests/fixtures/tiny-model")
x = rng.normal(size=(2, 5, tiny.config.emb_dim)).astype(np.float32)
causal = layers.attention_mask_matrix(np.ones((2, 5), dtype=bool), causal=True)
ours, our_weights = multi_head_attention(x, causal, tiny.params["attentions"][0], tiny.config.n_heads)
library, library_weights = layers.multi_head_attention(x, causal, tiny.params["attentions"][0], tiny.config.n_heads)
print(f"from scratch vs library: {np.abs(ours - library).max():.1e}")
assert np.allclose(ours, library, atol=1e-5) and np.allclose(our_weights, library_weights, atol=1e-6)
print("why they agree: the same four steps, scores / sqrt(head_dim), mask, softmax, weighted sum; the heads are "
      "only a reshape of the projections, undone before the output projection")
