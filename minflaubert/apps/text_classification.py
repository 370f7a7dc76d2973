"""The text-classification pipeline: labels and their scores for a text or a text pair."""
from __future__ import annotations

import numpy as np

from ..models.heads import FlaubertForSequenceClassification
from ..models.inputs import check_choice, check_positive
from ..nn.layers import softmax
from .pipeline_base import Pipeline


class TextClassificationPipeline(Pipeline):
    """Labels for a text (or a pair ``{"text": ..., "text_pair": ...}``), best first: ``[{label, score}, ...]``.

    Scores as transformers computes them: softmax for single-label classification, sigmoid for multi-label or a
    single output, raw values for regression (``function_to_apply`` overrides). ``top_k=None`` gives every label.

    subtle: with ``top_k`` given (to the call or to ``pipeline``), each text gets its list of labels. Without it,
    transformers keeps its older shape, and so do we: the best label's dict per text of a list, a list of that one
    dict for one text, the bare dict for one text pair.
    """

    task = "text-classification"
    accepts = (FlaubertForSequenceClassification,)

    def options(self, top_k: int | None = 1, function_to_apply: str | None = None) -> dict:
        """``top_k`` labels (None: all) and ``function_to_apply`` (None: as the config's problem type says)."""
        choices = (None, "softmax", "sigmoid", "none")
        return {"top_k": check_positive("top_k", top_k, allow_none=True),
                "function_to_apply": check_choice("function_to_apply", function_to_apply, choices)}

    def __call__(self, inputs, **options):
        answers = super().__call__(inputs, **options)
        if "top_k" in options or "top_k" in self.given_options or isinstance(inputs, str):
            return answers
        return answers[0] if self.is_single(inputs) else [labels[0] for labels in answers]  # the older shape

    @property
    def padding_changes_outputs(self) -> bool:
        """subtle: summary_type "last" / "cls_index" read the last *position* and "mean" averages padded zeros too,
        as in transformers, so padding would change the answer. Only "first" (every published model) batches."""
        return self.model.config.summary_type != "first"

    def preprocess(self, item, **options) -> list[dict]:
        """A text, or a ``{"text", "text_pair"}`` dict -> its token ids."""
        if isinstance(item, dict):
            return [{"input_ids": self.encode(item.get("text"), item.get("text_pair"))["input_ids"]}]
        return [{"input_ids": self.encode(item)["input_ids"]}]

    def forward(self, input_ids, attention_mask, rows):
        """The sequence-classification logits of the batch."""
        return {"logits": self.model(input_ids=input_ids, attention_mask=attention_mask).logits}

    def scores(self, logits, function_to_apply):
        """Logits -> scores by softmax, sigmoid or nothing; by default as transformers chooses."""
        config = self.model.config
        if function_to_apply is None:
            if config.problem_type == "regression":
                function_to_apply = "none"
            elif config.problem_type == "multi_label_classification" or config.num_labels == 1:
                function_to_apply = "sigmoid"
            else:
                function_to_apply = "softmax"
        logits = logits.astype(np.float64)
        return {"softmax": softmax, "sigmoid": sigmoid, "none": lambda x: x}[function_to_apply](logits)

    def postprocess(self, item, features, outputs, top_k, function_to_apply):
        """The ``top_k`` labels with their scores, best first."""
        scores = self.scores(outputs[0]["logits"], function_to_apply)
        ranked = np.argsort(-scores, kind="stable")[:top_k]
        return [{"label": self.model.config.id2label[int(i)], "score": float(scores[i])} for i in ranked]


def sigmoid(x):
    """The logistic function 1 / (1 + exp(-x))."""
    return 1.0 / (1.0 + np.exp(-x))
