"""Pipelines: text in, answers out, in the shape transformers' pipelines give them.

    >>> fill = pipeline("fill-mask", model="flaubert_base_cased")
    >>> fill("Le chat dort sur le <special1>.")[0]["token_str"]

Every task does the same four things, and :class:`Pipeline` does them once for all:

1. **preprocess** one input (a text, a text pair, a question with its context) into one or more *features*: token
   ids plus whatever the answer will need later (character offsets, word ids, where the mask is). Question
   answering makes several features from one long context (overlapping windows); every other task makes one.
2. **batch**: features are sorted by length and cut into batches, so each batch is padded to a length close to
   that of its texts instead of the longest text of the whole input (padding is computation spent on nothing).
3. **forward**: the model runs on the padded batch; each task keeps only the outputs it needs, row by row.
4. **postprocess** the outputs of one input's features into the answer: probabilities, labels, character spans.

Subclasses write 1, 3 and 4 and declare their options as the keyword arguments of ``options`` (with defaults), so
``pipeline(task, model, top_k=3)`` and ``pipe(text, top_k=3)`` are checked the same way.

Where transformers' pipelines cannot help for FlauBERT, these can: transformers has no fast tokenizer for it, hence
no character offsets (its token-classification pipeline cannot give spans) and, since 5.x, no question-answering
pipeline at all. Our tokenizer gives each token's span in the *original* text, so spans here always slice the text
you passed in: ``text[entity["start"]:entity["end"]] == entity["word"]``.
"""
from __future__ import annotations

import inspect
import os
import sys
import warnings
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..models.config import FlaubertConfig
from ..models.heads import (FlaubertForQuestionAnswering, FlaubertForQuestionAnsweringSimple,
                    FlaubertForSequenceClassification, FlaubertForTokenClassification, FlaubertWithLMHeadModel)
from ..checkpoints.hub import HUB_OPTIONS, resolve_name, shipped_model
from ..models.batching import batches_by_length, pad
from ..models.inputs import check_choice, check_positive
from ..models.sentences import POOLINGS, pool
from ..nn.layers import softmax
from ..models.model import FlaubertModel, FlaubertPreTrainedModel
from ..tokenization.tokenizer import FlaubertTokenizer



class TextCutWarning(UserWarning):
    """A text longer than the model's positions was cut there (a category of its own, so that a corpus job can
    count these instead of printing one per line)."""


def pipeline(task: str, model=None, tokenizer=None, **options) -> "Pipeline":
    """The pipeline for ``task``, on a checkpoint folder, a hub repository id (``owner/name``, or a published
    short name such as ``flaubert_base_cased``) or a model object.

    ``tokenizer`` defaults to the one saved with the checkpoint. ``options`` are the task's options (see each
    class's ``options``) plus ``batch_size`` and ``progress``; a call can override any of them. huggingface_hub's
    options (``revision``, ``cache_dir``, ``local_files_only``, ``token``...) go with them, as in transformers.
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; the tasks are: {', '.join(TASKS)}")
    task_class = TASKS[task]
    hub_options = {name: options.pop(name) for name in HUB_OPTIONS if name in options}
    if isinstance(model, FlaubertPreTrainedModel):
        if tokenizer is None:
            raise ValueError("a model object comes without its tokenizer: pass tokenizer= (a folder or a "
                             "FlaubertTokenizer)")
        folder = None
    else:
        parts = ("model", "tokenizer") if tokenizer is None else ("model",)
        folder = resolve_name(model if model is not None else default_model(task), parts, **hub_options)
        model = task_class.model_class(FlaubertConfig.from_pretrained(folder)).from_pretrained(folder)
    if tokenizer is None or isinstance(tokenizer, (str, os.PathLike)):
        tokenizer = FlaubertTokenizer.from_pretrained(folder if tokenizer is None else tokenizer, **hub_options)
    return task_class(model, tokenizer, **options)


def default_model(task: str) -> Path:
    """The model a task runs when none is given: the shipped ``weights/flaubert_tiny`` for the tasks it can do
    (fill-mask, feature-extraction); the others need a fine-tuned head, so they need a model named."""
    if task not in ("fill-mask", "feature-extraction"):
        raise ValueError(f"{task} needs a checkpoint fine-tuned for it: pass model= (a folder or a hub repository "
                         "id); the shipped flaubert_tiny only fills masks and embeds")
    return shipped_model()


class Pipeline:
    """Tokenise -> batch by length -> run the model -> postprocess: what every task shares (see the module doc)."""

    task: str = ""
    accepts: tuple[type, ...] = (FlaubertPreTrainedModel,)  # the model classes this task can use
    uses_head = True  # whether the answers come from a task head (whose weights must then be in the checkpoint)

    @classmethod
    def model_class(cls, config: FlaubertConfig) -> type:
        """The model class to load a checkpoint with, for this task."""
        return cls.accepts[0]

    def __init__(self, model, tokenizer: FlaubertTokenizer, batch_size: int = 8, progress: bool = False,
                 allow_random_head: bool = False, **options):
        if not isinstance(model, self.accepts):
            names = " or ".join(c.__name__ for c in self.accepts)
            raise ValueError(f"{self.task} needs a {names}, got a {type(model).__name__}")
        self.model, self.tokenizer = model, tokenizer
        if self.uses_head:
            self.check_head(allow_random_head)
        self.batch_size, self.progress = check_positive("batch_size", batch_size), progress
        self.max_length = min(model.config.max_position_embeddings, tokenizer.model_max_length)
        self.defaults = self.check_options(**options)

    def check_head(self, allow_random_head: bool) -> None:
        """Refuse a head that from_pretrained had to draw at random (the checkpoint has no weights for it: a base
        model given to a classifier): its answers would look like answers and mean nothing. ``allow_random_head``
        runs it anyway, with a warning (tutorials and tests do)."""
        missing = self.model.newly_initialized
        if not missing:
            return
        what = (f"{self.model.name_or_path} has no weights for the {self.task} head of {type(self.model).__name__} "
                f"({', '.join(missing)})")
        if not allow_random_head:
            raise ValueError(f"{what}: its answers would be random. Use a checkpoint fine-tuned for {self.task}, or "
                             "pass allow_random_head=True (command line: --allow-random-head) to run it anyway")
        warnings.warn(f"{what}: running it with random weights (allow_random_head=True)", stacklevel=3)

    def check_options(self, **options) -> dict:
        """Validate options against the task's ``options`` signature; returns all of them, defaults filled in."""
        known = inspect.signature(self.options).parameters
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise ValueError(f"{self.task} has no option {', '.join(map(repr, unknown))}; "
                             f"its options are: {', '.join(known) or 'none'}")
        return self.options(**options)

    def options(self) -> dict:
        return {}

    def __call__(self, inputs, **options):
        """One input -> its answer; a list of inputs -> the list of their answers."""
        options = self.check_options(**{**self.defaults, **options})
        single = self.is_single(inputs)
        items = [inputs] if single else list(inputs)
        features = [self.preprocess(item, **options) for item in items]  # a list of features per item
        outputs = iter(self.run([feature for group in features for feature in group]))
        results = [self.postprocess(item, group, [next(outputs) for _ in group], **options)
                   for item, group in zip(items, features)]
        return results[0] if single else results

    @staticmethod
    def is_single(inputs) -> bool:
        return isinstance(inputs, (str, dict))

    @property
    def padding_changes_outputs(self) -> bool:
        """Whether a row's output depends on the padding added to it (then each input runs alone)."""
        return False

    def run(self, features: list[dict]) -> list[dict]:
        """Run the model over all features, batched by length; returns one output dict per feature, in order."""
        size = 1 if self.padding_changes_outputs else self.batch_size
        batches = batches_by_length([len(feature["input_ids"]) for feature in features], size)
        outputs = [None] * len(features)
        for batch in tqdm(batches, desc=self.task, unit="batch", disable=not self.progress, file=sys.stderr):
            rows = [features[i] for i in batch]
            input_ids = pad([row["input_ids"] for row in rows], self.tokenizer.pad_token_id)
            attention_mask = pad([[1] * len(row["input_ids"]) for row in rows], 0)
            batch_outputs = self.forward(input_ids, attention_mask, rows)
            for r, i in enumerate(batch):
                outputs[i] = {name: values[r] for name, values in batch_outputs.items()}
        return outputs

    def encode(self, text, text_pair=None, **kwargs):
        """The tokenizer on one input, cut to what the model accepts, with a warning when it is: the model never
        reads the rest, and a silent cut would look like an answer about the whole text."""
        if not isinstance(text, str) or not (text_pair is None or isinstance(text_pair, str)):
            raise TypeError(f"{self.task} takes str inputs, got {type(text).__name__}")
        encoding = self.tokenizer(text, text_pair, **kwargs)
        n_tokens = len(encoding["input_ids"])
        if n_tokens <= self.max_length:
            return encoding
        warnings.warn(f"{self.task}: a text of {n_tokens} tokens ({text[:30]!r}...) is cut to the model's "
                      f"{self.max_length}: the rest of it is not read", TextCutWarning, stacklevel=4)
        return self.tokenizer(text, text_pair, truncation=True, max_length=self.max_length, **kwargs)

    # -- what each task writes --
    def preprocess(self, item, **options) -> list[dict]:
        raise NotImplementedError

    def forward(self, input_ids: np.ndarray, attention_mask: np.ndarray, rows: list[dict]) -> dict:
        raise NotImplementedError

    def postprocess(self, item, features: list[dict], outputs: list[dict], **options):
        raise NotImplementedError

    def __repr__(self):
        return f"{type(self).__name__}(model={self.model!r}, options={self.defaults})"


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


# ----------------------------------------------------------------------------------------------------------------
# fill-mask
# ----------------------------------------------------------------------------------------------------------------
class FillMaskPipeline(Pipeline):
    """The likeliest words for each mask token (``<special1>`` for FlauBERT) in a text.

    One mask -> a list of ``top_k`` proposals ``{score, token, token_str, sequence}``, best first; several masks ->
    one such list per mask. ``score`` is the softmax over the whole vocabulary, also with ``targets`` (which only
    restricts which tokens are ranked), exactly as transformers does.
    """

    task = "fill-mask"
    accepts = (FlaubertWithLMHeadModel,)

    def options(self, top_k: int = 5, targets=None) -> dict:
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
        ids = self.encode(text)["input_ids"]
        if self.tokenizer.mask_token_id not in ids:
            raise ValueError(f"no mask token {self.tokenizer.mask_token!r} in {text[:80]!r} (or it was cut off "
                             f"at {self.max_length} tokens): put it where the missing word goes")
        return [{"input_ids": ids}]

    def forward(self, input_ids, attention_mask, rows):
        logits = self.model(input_ids=input_ids, attention_mask=attention_mask).logits
        masked = input_ids == self.tokenizer.mask_token_id
        return {"mask_logits": [logits[r][masked[r]] for r in range(len(rows))]}  # [n_masks, vocab] per row

    def postprocess(self, text, features, outputs, top_k, targets):
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


# ----------------------------------------------------------------------------------------------------------------
# feature-extraction
# ----------------------------------------------------------------------------------------------------------------
class FeatureExtractionPipeline(Pipeline):
    """The encoder's last hidden states: [tokens, dim] per text, or one [dim] vector per text with ``pooling``
    (see :func:`pool`; ``normalize=True`` scales each pooled vector to length 1).
    """

    task = "feature-extraction"
    accepts = (FlaubertPreTrainedModel,)
    uses_head = False  # the encoder's own outputs: any checkpoint has them

    @classmethod
    def model_class(cls, config):
        return FlaubertModel  # any checkpoint: a head's weights are simply not used

    def options(self, pooling: str | None = None, normalize: bool = False) -> dict:
        if normalize and pooling is None:
            raise ValueError("normalize=True needs a pooling: it scales one vector per text to length 1")
        return {"pooling": check_choice("pooling", pooling, (None, *POOLINGS)), "normalize": bool(normalize)}

    def preprocess(self, text, **options) -> list[dict]:
        return [{"input_ids": self.encode(text)["input_ids"]}]

    def forward(self, input_ids, attention_mask, rows):
        last_hidden_state, _, _ = self.model.run_encoder(input_ids=input_ids, attention_mask=attention_mask)
        return {"last_hidden_state": last_hidden_state}

    def postprocess(self, text, features, outputs, pooling, normalize):
        vectors = outputs[0]["last_hidden_state"][:len(features[0]["input_ids"])]  # drop the padding rows
        return vectors if pooling is None else pool(vectors, pooling, normalize)


# ----------------------------------------------------------------------------------------------------------------
# text-classification
# ----------------------------------------------------------------------------------------------------------------
class TextClassificationPipeline(Pipeline):
    """Labels for a text (or a pair ``{"text": ..., "text_pair": ...}``), best first: ``[{label, score}, ...]``.

    Scores as transformers computes them: softmax for single-label classification, sigmoid for multi-label or a
    single output, raw values for regression (``function_to_apply`` overrides). ``top_k=None`` gives every label.
    subtle: transformers returns a bare dict when top_k is left at 1; we always return a list, so the shape of the
    answer does not depend on an option.
    """

    task = "text-classification"
    accepts = (FlaubertForSequenceClassification,)

    def options(self, top_k: int | None = 1, function_to_apply: str | None = None) -> dict:
        choices = (None, "softmax", "sigmoid", "none")
        return {"top_k": check_positive("top_k", top_k, allow_none=True),
                "function_to_apply": check_choice("function_to_apply", function_to_apply, choices)}

    @property
    def padding_changes_outputs(self) -> bool:
        """subtle: summary_type "last" / "cls_index" read the last *position* and "mean" averages padded zeros too,
        as in transformers, so padding would change the answer. Only "first" (every published model) batches."""
        return self.model.config.summary_type != "first"

    def preprocess(self, item, **options) -> list[dict]:
        if isinstance(item, dict):
            return [{"input_ids": self.encode(item.get("text"), item.get("text_pair"))["input_ids"]}]
        return [{"input_ids": self.encode(item)["input_ids"]}]

    def forward(self, input_ids, attention_mask, rows):
        return {"logits": self.model(input_ids=input_ids, attention_mask=attention_mask).logits}

    def scores(self, logits, function_to_apply):
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
        scores = self.scores(outputs[0]["logits"], function_to_apply)
        ranked = np.argsort(-scores, kind="stable")[:top_k]
        return [{"label": self.model.config.id2label[int(i)], "score": float(scores[i])} for i in ranked]


# ----------------------------------------------------------------------------------------------------------------
# token-classification
# ----------------------------------------------------------------------------------------------------------------
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
        if ignore_labels is None:  # as transformers: None means the default
            ignore_labels = ("O",)
        elif isinstance(ignore_labels, str):  # one label (subtle: tuple("MISC") would ignore "M", "I", "S", "C")
            ignore_labels = (ignore_labels,)
        return {"aggregation_strategy": check_choice("aggregation_strategy", aggregation_strategy, self.STRATEGIES),
                "ignore_labels": tuple(ignore_labels)}

    def preprocess(self, text, **options) -> list[dict]:
        encoding = self.encode(text, return_offsets_mapping=True)
        return [{"input_ids": encoding["input_ids"], "offsets": encoding["offset_mapping"],
                 "word_ids": encoding.word_ids()}]

    def forward(self, input_ids, attention_mask, rows):
        return {"logits": self.model(input_ids=input_ids, attention_mask=attention_mask).logits}

    def postprocess(self, text, features, outputs, aggregation_strategy, ignore_labels):
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


# ----------------------------------------------------------------------------------------------------------------
# question-answering
# ----------------------------------------------------------------------------------------------------------------
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
                max_seq_len: int = 384) -> dict:
        max_answer_len = check_positive("max_answer_len", max_answer_len)
        max_seq_len = check_positive("max_seq_len", max_seq_len)
        if doc_stride is not None and (isinstance(doc_stride, bool) or not isinstance(doc_stride, int)
                                       or doc_stride < 0):
            raise ValueError(f"doc_stride must be a non-negative integer or None, got {doc_stride!r}")
        return {"top_k": check_positive("top_k", top_k), "doc_stride": doc_stride, "max_answer_len": max_answer_len,
                "max_seq_len": min(max_seq_len, self.max_length)}

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
        if isinstance(self.model, FlaubertForQuestionAnswering):
            p_mask = pad([row["p_mask"] for row in rows], 1).astype(np.float32)
            out = self.model(input_ids=input_ids, attention_mask=attention_mask, p_mask=p_mask)
            return {name: out[name] for name in ("start_top_log_probs", "start_top_index", "end_top_log_probs",
                                                 "end_top_index")}
        out = self.model(input_ids=input_ids, attention_mask=attention_mask)
        return {"start_logits": out.start_logits, "end_logits": out.end_logits}

    def postprocess(self, item, features, outputs, top_k, max_answer_len, **options):
        """Gather the candidate spans of every window, keep the best ``top_k`` distinct character spans."""
        found = {}
        for feature, output in zip(features, outputs):
            spans = beam_spans if "start_top_index" in output else simple_spans
            for score, first, last in spans(output, np.array(feature["p_mask"]), max_answer_len):
                key = (feature["offsets"][first][0], feature["offsets"][last][1])
                found[key] = max(found.get(key, 0.0), score)
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


def simple_spans(output: dict, p_mask: np.ndarray, max_answer_len: int):
    """(score, start, end) for every span of context tokens with start <= end < start + max_answer_len."""
    n = len(p_mask)
    allowed = p_mask == 0
    start = softmax(np.where(allowed, output["start_logits"][:n], -np.inf).astype(np.float64))
    end = softmax(np.where(allowed, output["end_logits"][:n], -np.inf).astype(np.float64))
    scores = np.triu(np.tril(np.outer(start, end), max_answer_len - 1))  # [start, end]: end in start..start+len-1
    firsts, lasts = np.nonzero(scores * np.outer(allowed, allowed))
    return [(scores[s, e], int(s), int(e)) for s, e in zip(firsts, lasts)]


def beam_spans(output: dict, p_mask: np.ndarray, max_answer_len: int):
    """(score, start, end) for the beam head's start x end candidates that are valid spans of context tokens.

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
    return candidates


TASKS = {
    FillMaskPipeline.task: FillMaskPipeline,
    FeatureExtractionPipeline.task: FeatureExtractionPipeline,
    TextClassificationPipeline.task: TextClassificationPipeline,
    TokenClassificationPipeline.task: TokenClassificationPipeline,
    QuestionAnsweringPipeline.task: QuestionAnsweringPipeline,
}
