"""Lesson 2, exercises: neighbours don't matter to the embeddings, token types of zeros are not "no token types",
and the nearest words in the trained model's table."""
import warnings

import numpy as np

from minflaubert import FlaubertModel, FlaubertTokenizer

model = FlaubertModel.from_pretrained("tests/fixtures/tiny-model")
tokenizer = FlaubertTokenizer.from_pretrained("tests/fixtures/tiny-model")

# 1. The embedding of a token at a position depends on nothing else; the layers' outputs do (attention).
a = tokenizer("Le chat dort.", return_tensors="np")["input_ids"]
b = tokenizer("Le chat mange du poisson.", return_tensors="np")["input_ids"]
assert (a[0, :3] == b[0, :3]).all()  # <s> le chat
ea, eb = (model(ids, output_hidden_states=True).hidden_states for ids in (a, b))
assert np.allclose(ea[0][0, 2], eb[0][0, 2], atol=1e-6)  # « chat »: same embedding
assert not np.allclose(ea[-1][0, 2], eb[-1][0, 2], atol=1e-3)  # but not the same output: it saw its neighbours
print("« chat » after the embeddings: same; after the layers: different")

# 2. token_type_ids of zeros add row 0 of the word table (the vector of <s>) to every token: not the same as none.
none = model(a).last_hidden_state
zeros = model(a, token_type_ids=np.zeros_like(a)).last_hidden_state
print("token types of zeros change the output:", not np.allclose(none, zeros))
assert not np.allclose(none, zeros)

# 3. The five nearest words to « roi » in the trained model's word table, by cosine similarity.
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    trained = FlaubertModel.from_pretrained("weights/flaubert_tiny")
vocab = FlaubertTokenizer.from_pretrained("weights/flaubert_tiny").get_vocab()
table = trained.params["embeddings"]["weight"]
unit = table / np.linalg.norm(table, axis=1, keepdims=True)
similarity = unit @ unit[vocab["roi</w>"]]
tokens = {i: t for t, i in vocab.items()}
nearest = [tokens[int(i)] for i in np.argsort(-similarity)[1:6]]
print("nearest to roi:", nearest)
