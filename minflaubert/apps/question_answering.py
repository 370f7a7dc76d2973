"""The question-answering pipeline: the span of a context that answers a question, from windows over long
contexts, for both question-answering heads."""
from __future__ import annotations

import numpy as np

from ..models.batching import pad
from ..models.heads import FlaubertForQuestionAnswering, FlaubertForQuestionAnsweringSimple
from ..models.inputs import check_positive
from ..nn.layers import softmax
from .pipeline_base import Pipeline
from .text_classification import sigmoid


class QuestionAnsweringPipeline(Pipeline):
    """The span of ``context`` that answers ``question``: ``{score, start, end, answer}`` (a list with top_k > 1).

    Input: ``{"question": ..., "context": ...}``, a list of such dicts, or ``question=``/``context=`` keywords.
    The model reads ``<s> question </s> context </s>``. A context longer than the model's window is cut into
    windows of context tokens that overlap by ``doc_stride`` tokens (so an answer cut by one window's edge is whole
    in the next); every window proposes spans and the best ones over all windows win.

    Two heads answer differently. :class:`FlaubertForQuestionAnsweringSimple` scores every token as a start and as
    an end; a span's score is P(start) x P(end), softmax taken over the context tokens only. The beam head
    :class:`FlaubertForQuestionAnswering` proposes its ``start_n_top`` best starts and, for each, the
    ``end_n_top`` best ends (computed from that start): candidates come from that beam, with the same score.
    ``score`` is a probability within a window: comparable between windows of one context, not calibrated.

    ``handle_impossible_answer=True`` adds the empty answer ``{score, start: 0, end: 0, answer: ""}`` to the
    candidates, scored as transformers scores it: the simple head's softmaxes then take in the first token ``<s>``
    too, as the "no answer" slot, and the score is P(start = <s>) x P(end = <s>); the beam head has its own
    answerability logit (``cls_logits``, trained on ``is_impossible``): sigmoid of it. Over several windows, the
    smallest (the window most sure to hold an answer decides).
    """

    task = "question-answering"
    accepts = (FlaubertForQuestionAnsweringSimple, FlaubertForQuestionAnswering)

    @classmethod
    def model_class(cls, config):
        """The head named in the checkpoint's ``architectures``; the simple one for any other checkpoint."""
        if FlaubertForQuestionAnswering.__name__ in (config.architectures or []):
            return FlaubertForQuestionAnswering
        return FlaubertForQuestionAnsweringSimple

    def options(self, top_k: int = 1, doc_stride: int | None = None, max_answer_len: int = 15,
                max_seq_len: int = 384, handle_impossible_answer: bool = False) -> dict:
        """``top_k`` answers, the windows' ``doc_stride`` and ``max_seq_len``, ``max_answer_len`` in tokens, and
        whether the empty answer may win (``handle_impossible_answer``)."""
        max_answer_len = check_positive("max_answer_len", max_answer_len)
        max_seq_len = check_positive("max_seq_len", max_seq_len)
        if doc_stride is not None and (isinstance(doc_stride, bool) or not isinstance(doc_stride, int)
                                       or doc_stride < 0):
            raise ValueError(f"doc_stride must be a non-negative integer or None, got {doc_stride!r}")
        if handle_impossible_answer not in (True, False):
            raise ValueError(f"handle_impossible_answer must be True or False, got {handle_impossible_answer!r}")
        return {"top_k": check_positive("top_k", top_k), "doc_stride": doc_stride, "max_answer_len": max_answer_len,
                "max_seq_len": min(max_seq_len, self.max_length),
                "handle_impossible_answer": bool(handle_impossible_answer)}

    def __call__(self, inputs=None, *, question=None, context=None, **options):
        if inputs is None:
            inputs = {"question": question, "context": context}
        return super().__call__(inputs, **options)

    def preprocess(self, item, doc_stride, max_seq_len, **options) -> list[dict]:
        """One question and context -> one feature per window of the context."""
        if not isinstance(item, dict) or not isinstance(item.get("question"), str) \
                or not isinstance(item.get("context"), str):
            raise TypeError("question-answering takes {'question': str, 'context': str}")
        question = self.tokenizer(item["question"], add_special_tokens=False)["input_ids"]
        context = self.tokenizer(item["context"], add_special_tokens=False, return_offsets_mapping=True)
        if not question:
            raise ValueError("the question is empty: there is nothing to answer")
        if not context["input_ids"]:
            raise ValueError("the context is empty: there is nothing to answer from")
        room = max_seq_len - len(question) - 3  # <s> question </s> window </s>
        if room < 1:
            raise ValueError(f"the question has {len(question)} tokens: with the special tokens it leaves no room "
                             f"for the context in max_seq_len={max_seq_len}")
        stride = min(128, room // 2) if doc_stride is None else doc_stride
        if stride >= room:
            raise ValueError(f"doc_stride={stride} must be smaller than the {room} context tokens a window holds")
        return [self.window(question, context["input_ids"][start:end], context["offset_mapping"][start:end])
                for start, end in windows(len(context["input_ids"]), room, stride)]

    def window(self, question: list[int], context: list[int], offsets: list) -> dict:
        """The model input for one window, and which of its tokens are context (the only possible answers)."""
        ids = self.tokenizer.build_inputs_with_special_tokens(question, context)
        segment = self.tokenizer.create_token_type_ids_from_sequences(question, context)
        special = self.tokenizer.get_special_tokens_mask(question, context)
        is_context = [s == 1 and not sp for s, sp in zip(segment, special)]
        spans = iter(offsets)
        return {"input_ids": ids, "p_mask": [0 if c else 1 for c in is_context],  # p_mask: 1 = cannot answer
                "offsets": [next(spans) if c else None for c in is_context]}

    def forward(self, input_ids, attention_mask, rows):
        """Start and end logits (simple head), or the beam head's best starts and ends (given p_mask)."""
        if isinstance(self.model, FlaubertForQuestionAnswering):
            p_mask = pad([row["p_mask"] for row in rows], 1).astype(np.float32)
            out = self.model(input_ids=input_ids, attention_mask=attention_mask, p_mask=p_mask)
            return {name: out[name] for name in ("start_top_log_probs", "start_top_index", "end_top_log_probs",
                                                 "end_top_index", "cls_logits")}
        out = self.model(input_ids=input_ids, attention_mask=attention_mask)
        return {"start_logits": out.start_logits, "end_logits": out.end_logits}

    def postprocess(self, item, features, outputs, top_k, max_answer_len, handle_impossible_answer, **options):
        """Gather the candidate spans of every window, keep the best ``top_k`` distinct character spans (the empty
        answer among them, with ``handle_impossible_answer``)."""
        found, no_answer = {}, []
        for feature, output in zip(features, outputs):
            spans = beam_spans if "start_top_index" in output else simple_spans
            candidates, null_score = spans(output, np.array(feature["p_mask"]), max_answer_len,
                                           handle_impossible_answer)
            for score, first, last in candidates:
                key = (feature["offsets"][first][0], feature["offsets"][last][1])
                found[key] = max(found.get(key, 0.0), score)
            no_answer.append(null_score)
        if handle_impossible_answer:
            found[(0, 0)] = min(no_answer)  # the empty answer
        context = item["context"]
        best = sorted(found.items(), key=lambda kv: -kv[1])[:top_k] or [((0, 0), 0.0)]  # no span: empty answer
        answers = [{"score": float(score), "start": start, "end": end, "answer": context[start:end]}
                   for (start, end), score in best]
        return answers[0] if top_k == 1 else answers


def windows(n_tokens: int, room: int, stride: int) -> list[tuple[int, int]]:
    """[start, end) token ranges of size <= room covering 0..n_tokens, each overlapping the previous by stride."""
    spans, start = [], 0
    while True:
        end = min(start + room, n_tokens)
        spans.append((start, end))
        if end == n_tokens:
            return spans
        start = end - stride


def simple_spans(output: dict, p_mask: np.ndarray, max_answer_len: int, null_slot: bool = False):
    """-> ((score, start, end) for every span of context tokens with start <= end < start + max_answer_len, the
    no-answer score or None). ``null_slot``: the softmaxes take in position 0 (``<s>``) as "no answer"."""
    n = len(p_mask)
    allowed = p_mask == 0
    in_softmax = allowed | (np.arange(n) == 0) if null_slot else allowed
    start = softmax(np.where(in_softmax, output["start_logits"][:n], -np.inf).astype(np.float64))
    end = softmax(np.where(in_softmax, output["end_logits"][:n], -np.inf).astype(np.float64))
    scores = np.triu(np.tril(np.outer(start, end), max_answer_len - 1))  # [start, end]: end in start..start+len-1
    firsts, lasts = np.nonzero(scores * np.outer(allowed, allowed))
    spans = [(scores[s, e], int(s), int(e)) for s, e in zip(firsts, lasts)]
    return spans, float(start[0] * end[0]) if null_slot else None


def beam_spans(output: dict, p_mask: np.ndarray, max_answer_len: int, null_slot: bool = False):
    """-> ((score, start, end) for the beam head's start x end candidates that are valid spans of context tokens,
    the no-answer score or None). ``null_slot``: that score, sigmoid(cls_logits), is asked for.

    subtle: the head returns ends as [start_n_top * end_n_top], flattened from [end_n_top, start_n_top]: the j-th
    end of the i-th start is at j * start_n_top + i (not i * end_n_top + j). The "log_probs" are probabilities.
    """
    starts, start_probs = output["start_top_index"], output["start_top_log_probs"]
    ends, end_probs = output["end_top_index"], output["end_top_log_probs"]
    n_starts, n = len(starts), len(p_mask)
    candidates = []
    for flat, (last, end_prob) in enumerate(zip(ends, end_probs)):
        first, start_prob = starts[flat % n_starts], start_probs[flat % n_starts]
        if first < n and last < n and not p_mask[first] and not p_mask[last] \
                and first <= last < first + max_answer_len:
            candidates.append((float(start_prob) * float(end_prob), int(first), int(last)))
    return candidates, float(sigmoid(np.float64(output["cls_logits"]))) if null_slot else None
