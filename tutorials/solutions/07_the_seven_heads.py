"""Lesson 7, exercises: fill-mask with targets, the classification softmax by hand, tokens before aggregation."""
import numpy as np

from minflaubert.apps.pipelines import pipeline

# 1. fill-mask restricted to chosen words: the trained model compares « chat » and « chien » for one blank.
fill = pipeline("fill-mask", "weights/flaubert_tiny")
for proposal in fill("le <special1> aboyait toute la nuit dans la cour.", targets=["chat</w>", "chien</w>"]):
    print(proposal["token_str"], round(proposal["score"], 4))

# 2. The text-classification scores are a softmax over the logits, named by id2label.
classify = pipeline("text-classification", "tests/fixtures/tiny-sequence-classification")
text = "Quel film magnifique !"
encoding = classify.tokenizer(text, return_tensors="np")
logits = classify.model(**encoding).logits[0]
probabilities = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
by_hand = {classify.model.config.id2label[i]: float(p) for i, p in enumerate(probabilities)}
for result in classify(text, top_k=None):
    assert abs(by_hand[result["label"]] - result["score"]) < 1e-6

# 3. Token classification without aggregation: one result per BPE piece, with its own span.
tag = pipeline("token-classification", "tests/fixtures/tiny-token-classification")
text = "Marie-Hélène a visité Montréal."
for entity in tag(text, aggregation_strategy="none", ignore_labels=()):
    assert entity["word"] == text[entity["start"]:entity["end"]]
    print(entity["entity"], repr(entity["word"]))
