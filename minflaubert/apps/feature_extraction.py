"""The feature-extraction pipeline: the encoder's vectors for each token of a text, or one pooled vector per text."""
from __future__ import annotations

from ..models.inputs import check_choice
from ..models.model import FlaubertModel, FlaubertPreTrainedModel
from ..models.sentences import POOLINGS, pool
from .pipeline_base import Pipeline


class FeatureExtractionPipeline(Pipeline):
    """The encoder's last hidden states, per text: transformers' nested lists [1, tokens, dim] (the 1: this text's
    batch of one), or a float32 array of that shape with ``return_tensors=True``. With ``pooling`` (our addition),
    one vector per text instead, [dim] (see :func:`pool`; ``normalize=True`` scales it to length 1).

    ``truncation=True`` cuts a long text silently, at the model's length or at ``max_length`` in
    ``tokenize_kwargs`` (the tokenizer's keyword arguments, as in transformers); otherwise a text longer than the
    model's positions is cut there with a warning (transformers crashes on it).
    """

    task = "feature-extraction"
    accepts = (FlaubertPreTrainedModel,)
    uses_head = False  # the encoder's own outputs: any checkpoint has them

    @classmethod
    def model_class(cls, config):
        """The bare encoder, whatever the checkpoint: a head's weights are simply not used."""
        return FlaubertModel

    def options(self, pooling: str | None = None, normalize: bool = False, return_tensors: bool = False,
                truncation: bool | None = None, tokenize_kwargs: dict | None = None) -> dict:
        """``pooling`` (None: every token's vector) and ``normalize``, which needs a pooling; ``return_tensors``
        (arrays, not lists); ``truncation`` and ``tokenize_kwargs`` for the tokenizer (not both with truncation)."""
        if normalize and pooling is None:
            raise ValueError("normalize=True needs a pooling: it scales one vector per text to length 1")
        if return_tensors not in (True, False):
            raise ValueError(f"return_tensors must be True (a NumPy array) or False (nested lists), got "
                             f"{return_tensors!r}: minflaubert makes no torch tensors")
        tokenize_kwargs = dict(tokenize_kwargs or {})
        if "return_tensors" in tokenize_kwargs:
            raise ValueError("tokenize_kwargs: return_tensors is the pipeline's own option, not the tokenizer's")
        if truncation is not None:
            if "truncation" in tokenize_kwargs:
                raise ValueError("truncation given twice: as an option and in tokenize_kwargs")
            tokenize_kwargs["truncation"] = truncation
        return {"pooling": check_choice("pooling", pooling, (None, *POOLINGS)), "normalize": bool(normalize),
                "return_tensors": bool(return_tensors), "tokenize_kwargs": tokenize_kwargs}

    def preprocess(self, text, tokenize_kwargs, **options) -> list[dict]:
        """One text -> its token ids (cut as ``tokenize_kwargs`` ask, or to the model's length with a warning)."""
        return [{"input_ids": self.encode(text, **tokenize_kwargs)["input_ids"]}]

    def forward(self, input_ids, attention_mask, rows):
        """The encoder's last hidden state for the batch (no head runs)."""
        last_hidden_state, _, _ = self.model.run_encoder(input_ids=input_ids, attention_mask=attention_mask)
        return {"last_hidden_state": last_hidden_state}

    def postprocess(self, text, features, outputs, pooling, normalize, return_tensors, tokenize_kwargs):
        """The text's own token vectors [1, tokens, dim], or their pooled vector [dim]: an array or nested lists."""
        vectors = outputs[0]["last_hidden_state"][:len(features[0]["input_ids"])]  # drop the padding rows
        answer = vectors[None] if pooling is None else pool(vectors, pooling, normalize)
        return answer if return_tensors else answer.tolist()
