"""Lesson 6, exercises: a higher masking rate, guessing visible words, the plateau in the log, bias-only training."""
import csv

import numpy as np

from minflaubert import FlaubertTokenizer, FlaubertWithLMHeadModel

model = FlaubertWithLMHeadModel.from_pretrained("weights/flaubert_tiny")
tokenizer = FlaubertTokenizer.from_pretrained("weights/flaubert_tiny")
paragraphs = [
    "Enfin le navire partit ; et les deux berges, peuplées de magasins, de chantiers et d’usines, filèrent comme "
    "deux larges rubans que l’on déroule.",
    "Un jeune homme de dix-huit ans, à longs cheveux et qui tenait un album sous son bras, restait auprès du "
    "gouvernail, immobile. A travers le brouillard, il contemplait des clochers, des édifices dont il ne savait pas "
    "les noms ; puis il embrassa, dans un dernier coup d’oeil, l’île Saint-Louis, la Cité, Notre-Dame ; et "
    "bientôt, Paris disparaissant, il poussa un grand soupir.",
]
batch = tokenizer(paragraphs, padding=True, return_tensors="np")
rows, attention_mask = batch["input_ids"], batch["attention_mask"]
MASK, N_SPECIAL = 5, 14


def hide(rate, seed=0):
    ordinary = rows >= N_SPECIAL
    chosen = ordinary & (np.random.default_rng(seed).random(rows.shape) < rate)
    return np.where(chosen, MASK, rows), chosen


def measure(inputs, chosen):
    """(cross-entropy, top-1, log-probabilities [n, vocab]) at the chosen positions."""
    scores = model(inputs, attention_mask=attention_mask).logits[chosen]
    log_probs = scores - scores.max(axis=1, keepdims=True)
    log_probs -= np.log(np.exp(log_probs).sum(axis=1, keepdims=True))
    targets = rows[chosen]
    return -log_probs[np.arange(len(targets)), targets].mean(), np.mean(scores.argmax(1) == targets), log_probs


# 1. More blanks, less context for each (five seeds each: a few dozen blanks are a noisy measure).
results = {rate: np.mean([measure(*hide(rate, seed))[:2] for seed in range(5)], axis=0) for rate in (0.15, 0.30)}
for rate, (loss, top1) in results.items():
    print(f"hide {rate:.0%}: loss {loss:.3f}, top-1 {top1:.1%} (mean of 5 seeds)")
print("why: with twice as many blanks, each blank has fewer visible neighbours to be guessed from, and two blanks "
      "side by side must be guessed without each other; the model was also trained at 15 % only. So the loss "
      f"{'rises' if results[0.30][0] > results[0.15][0] else 'does not rise here (too few blanks to see it)'}.")

# 2. Asking for words the model can see.
inputs, chosen = hide(0.15)
loss, top1, _ = measure(rows, chosen)  # nothing hidden, same positions scored
print(f"unmasked: loss {loss:.3f}, top-1 {top1:.1%}")
print("why: the word is in the input at that very position, so the model can copy it through the residual stream; "
      "a model trained that way would learn to copy, not French. Hiding the word is what forces it to use the "
      "context, and only a hidden word measures that.")

# 3. The end of the plateau in the log.
with open("weights/flaubert_tiny/training_log.csv", newline="") as f:
    log = list(csv.DictReader(f))
below = next(row for row in log if float(row["train_loss"]) < 6.5)
evaluation = next(row for row in log if int(row["step"]) >= int(below["step"]) and row["heldout_top1"])
print(f"loss first below 6.5 at step {below['step']}; held-out top-1 at step {evaluation['step']}: "
      f"{float(evaluation['heldout_top1']):.1%}")
print("why look: that is where the model leaves the frequency plateau; the held-out top-1, stuck near 9 % before, "
      "starts to climb there too.")

# 4. Training the bias alone: on these blanks, and on other blanks of the same text.
loss, _, log_probs = measure(inputs, chosen)
targets = rows[chosen]


def loss_after(shift, log_probs, targets):
    shifted = log_probs + shift
    shifted -= np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return -shifted[np.arange(len(targets)), targets].mean(), np.exp(shifted)


shift = np.zeros(log_probs.shape[1])
for step in range(20):
    _, probs = loss_after(shift, log_probs, targets)
    probs[np.arange(len(targets)), targets] -= 1  # softmax - onehot: the gradient of the loss w.r.t. the scores
    shift -= 10.0 * probs.mean(axis=0)
other_inputs, other_chosen = hide(0.15, seed=1)
other_loss, _, other_log_probs = measure(other_inputs, other_chosen)
print(f"bias only, 20 steps: these blanks {loss:.3f} -> {loss_after(shift, log_probs, targets)[0]:.3f}; "
      f"other blanks {other_loss:.3f} -> {loss_after(shift, other_log_probs, rows[other_chosen])[0]:.3f}")
print("why: the bias is the same at every position, so all it can learn is which tokens to favour everywhere; on "
      "these blanks that means memorising their answers, which lowers their loss a lot. Other blanks of the same "
      "paragraphs gain much less, and only because they share words (« de », « des », « ; »...); each blank's own "
      "context is out of the bias's reach: that needs the attention and feed-forward weights, and many texts.")
