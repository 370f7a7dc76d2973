"""Lesson 11, exercises: the guess layer by layer, the « elle » head, the loss of one blank."""
import numpy as np

from minflaubert import FlaubertTokenizer, FlaubertWithLMHeadModel

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

# 2. The layer and head where « elle » gives the most weight to « servante ».
encoding = tokenizer("la servante ouvrit la fenêtre, puis elle regarda la mer.", return_tensors="np")
tokens = tokenizer.convert_ids_to_tokens(encoding["input_ids"][0])
maps = model(encoding["input_ids"], output_attentions=True).attentions
link = np.array([m[0, :, tokens.index("elle</w>"), tokens.index("servante</w>")] for m in maps])
layer, head_index = np.unravel_index(link.argmax(), link.shape)
print(f"layer {layer}, head {head_index}: weight {link.max():.2f}")

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
