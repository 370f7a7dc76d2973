"""Lesson 7, exercises: fill-mask with targets, the classification softmax by hand, tokens before aggregation, the
author head on the <s> vector instead of the mean."""
import warnings
from pathlib import Path

import numpy as np

from minflaubert import FlaubertModel, FlaubertTokenizer
from minflaubert.apps.pipelines import pipeline
from minflaubert.tokenization.bpe_train import read_paragraphs

# 1. fill-mask restricted to chosen words: the trained model compares « chat » and « chien » for one blank.
fill = pipeline("fill-mask", "weights/flaubert_tiny")
for proposal in fill("le <special1> aboyait toute la nuit dans la cour.", targets=["chat</w>", "chien</w>"]):
    print(proposal["token_str"], round(proposal["score"], 4))
print("why: `targets` keeps the softmax over the whole vocabulary and reads it at the chosen entries only, so the "
      "two scores are the model's real probabilities (they need not sum to 1); « aboyait » is the context that "
      "should make « chien » win.")

# 2. The text-classification scores are a softmax over the logits, named by id2label.
classify = pipeline("text-classification", "tests/fixtures/tiny-sequence-classification")
text = "Quel film magnifique !"
encoding = classify.tokenizer(text, return_tensors="np")
logits = classify.model(**encoding).logits[0]
probabilities = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
by_hand = {classify.model.config.id2label[i]: float(p) for i, p in enumerate(probabilities)}
for result in classify(text, top_k=None):
    assert abs(by_hand[result["label"]] - result["score"]) < 1e-6
print("softmax by hand:", {label: round(p, 3) for label, p in by_hand.items()})
print("why: one label per text (problem_type single-label), so the pipeline applies a softmax; a multi-label config "
      "would apply a sigmoid to each logit instead.")

# 3. Token classification without aggregation: one result per BPE piece, with its own span.
tag = pipeline("token-classification", "tests/fixtures/tiny-token-classification")
text = "Marie-Hélène a visité Montréal."
for entity in tag(text, aggregation_strategy="none", ignore_labels=()):
    assert entity["word"] == text[entity["start"]:entity["end"]]
    print(entity["entity"], repr(entity["word"]))
print("why: each BPE piece carries its own offsets, so even a piece inside a word (« visit » + « é ») has an "
      "exact span; aggregation only groups pieces into words and words into entities.")

# 4. The author head of section 3 on the <s> vector (summary_type="first") instead of the mean of the tokens.
CORPUS = next((Path(p) for p in ["../shared/data/corpus/train", "../../shared/data/corpus/train"] if Path(p).is_dir()),
              None)
if CORPUS is None:
    print("exercise 4 needs the corpus beside the repository: skipped")
else:
    BOOKS = [("balzac-cousin-pons", "balzac-cure-de-village"),  # (novel to learn on, novel to test on), as lesson 7
             ("hugo-miserables-1-fantine", "hugo-miserables-2-cosette"),
             ("verne-ile-mysterieuse", "verne-deux-ans-de-vacances"),
             ("zola-faute-abbe-mouret", "zola-joie-de-vivre")]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        encoder = FlaubertModel.from_pretrained("weights/flaubert_tiny")
    tokenizer = FlaubertTokenizer.from_pretrained("weights/flaubert_tiny")

    def paragraphs_of(book, n):
        long_enough = [p for p in read_paragraphs([CORPUS / f"{book}.txt"]) if len(p.split()) >= 40]
        return [long_enough[i] for i in sorted(np.random.default_rng(0).choice(len(long_enough), n, replace=False))]

    def summaries(texts):
        """(mean of the tokens, the <s> vector) for each text -> two [n, 256] arrays."""
        means, firsts = [], []
        for text in texts:  # one at a time: no padding to leave out
            hidden = encoder(**tokenizer(text, truncation=True, return_tensors="np")).last_hidden_state[0]
            means.append(hidden.mean(axis=0))
            firsts.append(hidden[0])
        return np.array(means), np.array(firsts)

    def fit_and_score(train_x, train_y, test_x, test_y, steps=300, learning_rate=0.5, weight_decay=1e-2):
        mean, std = train_x.mean(axis=0), train_x.std(axis=0) + 1e-6
        x, z = (train_x - mean) / std, (test_x - mean) / std
        W, b, onehot = np.zeros((4, x.shape[1])), np.zeros(4), np.eye(4)[train_y]
        for _ in range(steps):
            s = x @ W.T + b
            e = np.exp(s - s.max(axis=1, keepdims=True))
            error = (e / e.sum(axis=1, keepdims=True) - onehot) / len(train_y)
            W -= learning_rate * (error.T @ x + weight_decay * W)
            b -= learning_rate * error.sum(axis=0)
        return np.mean((z @ W.T + b).argmax(axis=1) == test_y)

    sets = {}
    for split, n in ((0, 40), (1, 20)):
        texts = sum((paragraphs_of(books[split], n) for books in BOOKS), [])
        sets[split] = (*summaries(texts), np.repeat(np.arange(4), n))
    (train_mean, train_first, train_y), (test_mean, test_first, test_y) = sets[0], sets[1]
    print(f"held-out accuracy, mean of the tokens: {fit_and_score(train_mean, train_y, test_mean, test_y):.0%}; "
          f"<s> vector: {fit_and_score(train_first, train_y, test_first, test_y):.0%} (chance 25 %)")
    print("why they can differ: nothing in pre-training (lesson 6) asks <s> to summarise the text (it is never "
          "hidden, and FlauBERT has no next-sentence task), but attention mixes the whole text into it at every layer, "
          "so it carries some of the author's style; the mean gives every token's view an equal say. A fine-tuned "
          "model trains the encoder itself to gather the summary into <s>, which is why summary_type='first' is the "
          "default of fine-tuned heads.")
