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
    link = np.array([m[0, :, tokens.index(pronoun + "</w>"), tokens.index(noun + "</w>")] for m in maps])
    layer, head = np.unravel_index(link.argmax(), link.shape)
    print(f"« {pronoun} » -> « {noun} »: strongest in layer {layer}, head {head} ({link.max():.2f})")
