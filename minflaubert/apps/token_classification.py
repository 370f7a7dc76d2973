"""The token-classification pipeline: named entities (or any per-token labels) with their character spans, and the
rules that group BPE pieces into words and words into entities."""
from __future__ import annotations

import numpy as np

from ..models.heads import FlaubertForTokenClassification
from ..models.inputs import check_choice
from ..nn.layers import softmax
from .pipeline_base import Pipeline


class TokenClassificationPipeline(Pipeline):
    """Named entities (or any per-token labels) with their character spans in the text you passed.

    ``aggregation_strategy`` says how BPE pieces become words and words become entities, as in transformers:

    * ``"none"``: one result per token, ``{entity, score, index, word, start, end}``;
    * ``"simple"``: adjacent tokens with the same type (``B-PER`` then ``I-PER``...) form one entity group;
    * ``"first"`` / ``"max"`` / ``"average"``: first each *word* takes one label (that of its first piece, of its
      most confident piece, or of its averaged scores), then words are grouped as in "simple";
      grouped results are ``{entity_group, score, word, start, end}``, the score being the mean over the group.

    Words come from the tokenizer's ``word_ids`` (one Moses word each), never guessed from the piece spellings.
    ``word`` is always ``text[start:end]``: the original characters, accents and case as typed. Labels in
    ``ignore_labels`` (``O``) are dropped. Text beyond the model's maximum length is not labelled.
    """

    task = "token-classification"
    accepts = (FlaubertForTokenClassification,)
    STRATEGIES = ("none", "simple", "first", "average", "max")

    def options(self, aggregation_strategy: str = "none", ignore_labels=("O",)) -> dict:
        """``aggregation_strategy`` (one of STRATEGIES) and ``ignore_labels`` (one label or several; None: O)."""
        if ignore_labels is None:  # as transformers: None means the default
            ignore_labels = ("O",)
        elif isinstance(ignore_labels, str):  # one label (subtle: tuple("MISC") would ignore "M", "I", "S", "C")
            ignore_labels = (ignore_labels,)
        return {"aggregation_strategy": check_choice("aggregation_strategy", aggregation_strategy, self.STRATEGIES),
                "ignore_labels": tuple(ignore_labels)}

    def preprocess(self, text, **options) -> list[dict]:
        """One text -> its token ids, each token's character span and its word id."""
        encoding = self.encode(text, return_offsets_mapping=True)
        return [{"input_ids": encoding["input_ids"], "offsets": encoding["offset_mapping"],
                 "word_ids": encoding.word_ids()}]

    def forward(self, input_ids, attention_mask, rows):
        """The token-classification logits of the batch."""
        return {"logits": self.model(input_ids=input_ids, attention_mask=attention_mask).logits}

    def postprocess(self, text, features, outputs, aggregation_strategy, ignore_labels):
        """Labelled tokens or entity groups, spans into the text, without ``ignore_labels``."""
        feature = features[0]
        probabilities = softmax(outputs[0]["logits"][:len(feature["input_ids"])].astype(np.float64), axis=-1)
        tokens = [{"index": i, "scores": probabilities[i], "word_id": word, "span": feature["offsets"][i]}
                  for i, word in enumerate(feature["word_ids"]) if word is not None]  # special tokens have none
        if aggregation_strategy in ("none", "simple"):
            labelled = [self.label(token["scores"], [token], index=token["index"]) for token in tokens]
        else:
            labelled = [self.label_word(group, aggregation_strategy) for group in group_by_word(tokens)]
        entities = labelled if aggregation_strategy == "none" else group_entities(labelled)
        for entity in entities:
            entity["word"] = text[entity["start"]:entity["end"]]  # the original characters, never the pieces
        key = "entity" if aggregation_strategy == "none" else "entity_group"
        return [entity for entity in entities if entity[key] not in ignore_labels]

    def label(self, scores, tokens, **index) -> dict:
        """The best label of a score vector, and the span from the first to the last token."""
        best = int(scores.argmax())
        return {"entity": self.model.config.id2label[best], "score": float(scores[best]), **index,
                "word": None, "start": tokens[0]["span"][0], "end": tokens[-1]["span"][1]}

    def label_word(self, tokens, strategy) -> dict:
        """One label for a word: its first piece's, its most confident piece's, or its averaged scores'."""
        if strategy == "first":
            scores = tokens[0]["scores"]
        elif strategy == "max":
            scores = max(tokens, key=lambda token: token["scores"].max())["scores"]
        else:  # average
            scores = np.mean([token["scores"] for token in tokens], axis=0)
        return self.label(scores, tokens)


def group_by_word(tokens: list[dict]) -> list[list[dict]]:
    """Consecutive tokens with the same word id -> one list per word."""
    groups = []
    for token in tokens:
        if groups and groups[-1][-1]["word_id"] == token["word_id"]:
            groups[-1].append(token)
        else:
            groups.append([token])
    return groups


def split_tag(label: str) -> tuple[str, str]:
    """``"B-PER"`` -> ("B", "PER"), ``"I-LOC"`` -> ("I", "LOC"); a label without prefix continues: ("I", label)."""
    if label.startswith(("B-", "I-")):
        return label[0], label[2:]
    return "I", label


def group_entities(entities: list[dict]) -> list[dict]:
    """Merge neighbours of one type into entity groups; a ``B-`` always starts a new group (transformers' rule)."""
    groups: list[list[dict]] = []
    for entity in entities:
        bi, tag = split_tag(entity["entity"])
        if groups and bi != "B" and split_tag(groups[-1][-1]["entity"])[1] == tag:
            groups[-1].append(entity)
        else:
            groups.append([entity])
    return [{"entity_group": split_tag(group[0]["entity"])[1], "score": float(np.mean([e["score"] for e in group])),
             "word": None, "start": group[0]["start"], "end": group[-1]["end"]} for group in groups]
