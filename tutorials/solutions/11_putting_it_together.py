"""Lesson 11, exercises: the guess layer by layer, the blank kept from the attention sinks, the loss of one blank."""
import numpy as np

from minflaubert import FlaubertTokenizer, FlaubertWithLMHeadModel
from minflaubert.models.model import layer_params
from minflaubert.nn import layers

model = FlaubertWithLMHeadModel.from_pretrained("weights/flaubert_tiny")
tokenizer = FlaubertTokenizer.from_pretrained("weights/flaubert_tiny")
p = model.params


def head(vector):  # the LM head of section 4 on one vector
    return p["embeddings"]["weight"] @ vector + p["pred_layer"]["proj"]["bias"]


# 1. Apply the head to the stream after each layer: when does the final guess appear?
text = "La vieille <special1> ouvrit la porte et regarda dans la rue."
ids = tokenizer(text, return_tensors="np")["input_ids"]
blank = list(ids[0]).index(tokenizer.convert_tokens_to_ids("<special1>"))
states = model(ids, output_hidden_states=True).hidden_states
guesses = [tokenizer.convert_ids_to_tokens(int(head(h[0, blank]).argmax())) for h in states]
print("best guess after the embeddings and after each layer:", guesses)
assert guesses[-1] == tokenizer.convert_ids_to_tokens(int(model(ids).logits[0, blank].argmax()))

print("why: the head reads the stream as it is; early on the stream is mostly the blank's own word row (the mask "
      "token's), and the tied head maps it back to the mask token; the context the layers add takes over only later.")

# 2. The blank kept from looking at <s> and </s>: set those two entries of its mask row to False.
text = "La vieille femme ouvrit la <special1> et regarda dans la rue."
ids = tokenizer(text, return_tensors="np")["input_ids"]
blank = list(ids[0]).index(tokenizer.convert_tokens_to_ids("<special1>"))
config = model.config


def guess(mask):
    """Section 3's loop with the given attention mask, then section 4's head -> probabilities at the blank."""
    stream = model(ids, output_hidden_states=True).hidden_states[0]
    for i in range(config.n_layers):
        lp = layer_params(p, i)
        normed = layers.layer_norm(stream, lp["layer_norm1"], config.layer_norm_eps)
        stream = stream + layers.multi_head_attention(normed, mask, lp["attention"], config.n_heads)[0]
        normed = layers.layer_norm(stream, lp["layer_norm2"], config.layer_norm_eps)
        stream = stream + layers.feed_forward(normed, lp["ffn"], layers.gelu)
    scores = head(stream[0, blank])
    return np.exp(scores - scores.max()) / np.exp(scores - scores.max()).sum()


everyone = np.ones((1, ids.shape[1], ids.shape[1]), dtype=bool)
no_sinks = everyone.copy()
no_sinks[0, blank, [0, -1]] = False  # the blank may not look at <s> (first) nor </s> (last)
for name, mask in (("as trained", everyone), ("without <s> and </s>", no_sinks)):
    probabilities = guess(mask)
    best = np.argsort(-probabilities)[:3]
    print(f"{name:22s}", [(tokenizer.convert_ids_to_tokens(int(b)), round(float(probabilities[b]), 3)) for b in best])
print("why: the weight the heads parked on the two ends goes to the words instead (the softmax renormalises over "
      "what is left), so those heads now mix in the words' values. If the guess barely moves, the sinks were close "
      "to a no-op for this blank; if it moves, the model relies on that parking place, and the sink is part of how "
      "it computes.")

# 3. The loss with the right word at the blank is -log p(word) at that position.
text = "La vieille femme ouvrit la <special1> et regarda dans la rue."
ids = tokenizer(text, return_tensors="np")["input_ids"]
blank = list(ids[0]).index(tokenizer.convert_tokens_to_ids("<special1>"))
labels = np.full_like(ids, -100)
labels[0, blank] = tokenizer.convert_tokens_to_ids("porte</w>")
output = model(ids, labels=labels)
scores = output.logits[0, blank]
log_p = scores[labels[0, blank]] - scores.max() - np.log(np.exp(scores - scores.max()).sum())
print(f"loss {float(output.loss):.3f} = -log p(porte) {-log_p:.3f}")
assert abs(float(output.loss) + log_p) < 1e-4
print("why: the masked-LM loss is the mean of -log p(right token) over the positions whose label is not -100; "
      "with one such position it is that one number (lesson 6).")
