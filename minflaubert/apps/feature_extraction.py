"""The feature-extraction pipeline: the encoder's vectors for each token of a text, or one pooled vector per text."""
from __future__ import annotations

from ..models.inputs import check_choice
from ..models.model import FlaubertModel, FlaubertPreTrainedModel
from ..models.sentences import POOLINGS, pool
from .pipeline_base import Pipeline


class FeatureExtractionPipeline(Pipeline):
    """The encoder's last hidden states: [tokens, dim] per text, or one [dim] vector per text with ``pooling``
    (see :func:`pool`; ``normalize=True`` scales each pooled vector to length 1).
    """

    task = "feature-extraction"
    accepts = (FlaubertPreTrainedModel,)
    uses_head = False  # the encoder's own outputs: any checkpoint has them

    @classmethod
    def model_class(cls, config):
        """The bare encoder, whatever the checkpoint: a head's weights are simply not used."""
        return FlaubertModel

    def options(self, pooling: str | None = None, normalize: bool = False) -> dict:
        """``pooling`` (None: every token's vector) and ``normalize``, which needs a pooling."""
        if normalize and pooling is None:
            raise ValueError("normalize=True needs a pooling: it scales one vector per text to length 1")
        return {"pooling": check_choice("pooling", pooling, (None, *POOLINGS)), "normalize": bool(normalize)}

    def preprocess(self, text, **options) -> list[dict]:
        """One text -> its token ids."""
        return [{"input_ids": self.encode(text)["input_ids"]}]

    def forward(self, input_ids, attention_mask, rows):
        """The encoder's last hidden state for the batch (no head runs)."""
        last_hidden_state, _, _ = self.model.run_encoder(input_ids=input_ids, attention_mask=attention_mask)
        return {"last_hidden_state": last_hidden_state}

    def postprocess(self, text, features, outputs, pooling, normalize):
        """The text's own token vectors [tokens, dim], or their pooled vector [dim]."""
        vectors = outputs[0]["last_hidden_state"][:len(features[0]["input_ids"])]  # drop the padding rows
        return vectors if pooling is None else pool(vectors, pooling, normalize)
