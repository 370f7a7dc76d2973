"""The fill-mask pipeline: the likeliest words for each mask token of a text, scored by the language-model head."""
from __future__ import annotations

import warnings

import numpy as np

from ..models.heads import FlaubertWithLMHeadModel
from ..models.inputs import check_positive
from ..nn.layers import softmax
from .pipeline_base import Pipeline


class FillMaskPipeline(Pipeline):
    """The likeliest words for each mask token (``<special1>`` for FlauBERT) in a text.

    One mask -> a list of ``top_k`` proposals ``{score, token, token_str, sequence}``, best first; several masks ->
    one such list per mask. ``score`` is the softmax over the whole vocabulary, also with ``targets`` (which only
    restricts which tokens are ranked), exactly as transformers does.
    """

    task = "fill-mask"
    accepts = (FlaubertWithLMHeadModel,)

    def options(self, top_k: int = 5, targets=None) -> dict:
        """``top_k`` proposals per mask, and the ``targets`` to rank (as token ids), if any."""
        return {"top_k": check_positive("top_k", top_k),
                "targets": None if targets is None else self.target_ids(targets)}

    def target_ids(self, targets) -> np.ndarray:
        """Candidate words -> token ids: a vocabulary entry as is (``"Paris</w>"``), else the first BPE piece of
        the word (with a warning: ``"Paris"`` is not an entry, ``"Paris</w>"`` is)."""
        ids = []
        for target in [targets] if isinstance(targets, str) else list(targets):
            token_id = self.tokenizer.get_vocab().get(target)
            if token_id is None:
                pieces = self.tokenizer.encode(target, add_special_tokens=False)
                if not pieces:
                    warnings.warn(f"target {target!r} gives no token, ignored")
                    continue
                token_id = pieces[0]
                warnings.warn(f"target {target!r} is not a vocabulary entry: using its first piece "
                              f"{self.tokenizer.convert_ids_to_tokens(token_id)!r}")
            ids.append(token_id)
        if not ids:
            raise ValueError("targets: give at least one word that exists in the vocabulary")
        return np.array(list(dict.fromkeys(ids)))

    def preprocess(self, text, **options) -> list[dict]:
        """One text -> its token ids; a text without a mask token is refused."""
        ids = self.encode(text)["input_ids"]
        if self.tokenizer.mask_token_id not in ids:
            raise ValueError(f"no mask token {self.tokenizer.mask_token!r} in {text[:80]!r} (or it was cut off "
                             f"at {self.max_length} tokens): put it where the missing word goes")
        return [{"input_ids": ids}]

    def forward(self, input_ids, attention_mask, rows):
        """The logits at the mask positions only: [n_masks, vocab] per row."""
        logits = self.model(input_ids=input_ids, attention_mask=attention_mask).logits
        masked = input_ids == self.tokenizer.mask_token_id
        return {"mask_logits": [logits[r][masked[r]] for r in range(len(rows))]}  # [n_masks, vocab] per row

    def postprocess(self, text, features, outputs, top_k, targets):
        """The ``top_k`` proposals for each mask: one list for one mask, a list of lists for several."""
        ids = np.array(features[0]["input_ids"])
        positions = np.flatnonzero(ids == self.tokenizer.mask_token_id)
        probabilities = softmax(outputs[0]["mask_logits"].astype(np.float64), axis=-1)  # [n_masks, vocab]
        candidates = np.arange(probabilities.shape[1]) if targets is None else targets
        single = len(positions) == 1
        proposals = []
        for position, row in zip(positions, probabilities[:, candidates]):
            best = np.argsort(-row, kind="stable")[:top_k]
            proposals.append([self.proposal(ids, position, int(candidates[b]), float(row[b]), single)
                              for b in best])
        return proposals[0] if single else proposals

    def proposal(self, ids, position, token, score, single) -> dict:
        """One answer, as transformers writes it: the sequence drops special tokens unless other masks remain."""
        filled = ids.copy()
        filled[position] = token
        sequence = self.tokenizer.decode(filled, skip_special_tokens=single)
        return {"score": score, "token": token, "token_str": self.tokenizer.decode([token]), "sequence": sequence}
