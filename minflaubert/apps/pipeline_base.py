"""What every pipeline does, written once: :class:`Pipeline`, the base class of the five task pipelines.

Every task does the same four things, and :class:`Pipeline` does them once for all:

1. **preprocess** one input (a text, a text pair, a question with its context) into one or more *features*: token
   ids plus whatever the answer will need later (character offsets, word ids, where the mask is). Question
   answering makes several features from one long context (overlapping windows); every other task makes one.
2. **batch**: features are sorted by length and cut into batches, so each batch is padded to a length close to
   that of its texts instead of the longest text of the whole input (padding is computation spent on nothing).
3. **forward**: the model runs on the padded batch; each task keeps only the outputs it needs, row by row.
4. **postprocess** the outputs of one input's features into the answer: probabilities, labels, character spans.

Subclasses write 1, 3 and 4 and declare their options as the keyword arguments of ``options`` (with defaults), so
``pipeline(task, model, top_k=3)`` and ``pipe(text, top_k=3)`` are checked the same way. ``batch_size`` too is
given to either, as in transformers.
"""
from __future__ import annotations

import inspect
import sys
import warnings

import numpy as np
from tqdm.auto import tqdm

from ..models.batching import batches_by_length, padded_batch
from ..models.config import FlaubertConfig
from ..models.inputs import check_positive
from ..models.model import FlaubertPreTrainedModel
from ..tokenization.tokenizer import FlaubertTokenizer


class TextCutWarning(UserWarning):
    """A text longer than the model's positions was cut there (a category of its own, so that a corpus job can
    count these instead of printing one per line)."""


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
        self.given_options = options  # as given: a call's options are checked again together with them

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
        """The task's options, checked, defaults filled in: subclasses declare them as keyword arguments."""
        return {}

    def __call__(self, inputs, batch_size: int | None = None, **options):
        """One input -> its answer; a list of inputs -> the list of their answers (``batch_size`` per forward pass:
        the pipeline's unless given)."""
        options = self.check_options(**{**self.given_options, **options})
        batch_size = self.batch_size if batch_size is None else check_positive("batch_size", batch_size)
        single = self.is_single(inputs)
        items = [inputs] if single else list(inputs)
        features = [self.preprocess(item, **options) for item in items]  # a list of features per item
        outputs = iter(self.run([feature for group in features for feature in group], batch_size))
        results = [self.postprocess(item, group, [next(outputs) for _ in group], **options)
                   for item, group in zip(items, features)]
        return results[0] if single else results

    @staticmethod
    def is_single(inputs) -> bool:
        """Whether ``inputs`` is one input (a text, or a dict) rather than a list of them."""
        return isinstance(inputs, (str, dict))

    @property
    def padding_changes_outputs(self) -> bool:
        """Whether a row's output depends on the padding added to it (then each input runs alone)."""
        return False

    def run(self, features: list[dict], batch_size: int) -> list[dict]:
        """Run the model over all features, batched by length; returns one output dict per feature, in order."""
        size = 1 if self.padding_changes_outputs else batch_size
        batches = batches_by_length([len(feature["input_ids"]) for feature in features], size)
        outputs = [None] * len(features)
        for batch in tqdm(batches, desc=self.task, unit="batch", disable=not self.progress, file=sys.stderr):
            rows = [features[i] for i in batch]
            input_ids, attention_mask = padded_batch([row["input_ids"] for row in rows], self.tokenizer.pad_token_id)
            batch_outputs = self.forward(input_ids, attention_mask, rows)
            for r, i in enumerate(batch):
                outputs[i] = {name: values[r] for name, values in batch_outputs.items()}
        return outputs

    def encode(self, text, text_pair=None, **kwargs):
        """The tokenizer on one input, cut to what the model accepts, with a warning when it is: the model never
        reads the rest, and a silent cut would look like an answer about the whole text."""
        if not isinstance(text, str) or not (text_pair is None or isinstance(text_pair, str)):
            raise TypeError(f"{self.task} takes str inputs, got {type(text).__name__}")
        if kwargs.get("truncation"):  # the caller asked for the cut: it is made silently, never past the model's length
            limit = min(kwargs.get("max_length") or self.max_length, self.max_length)
            return self.tokenizer(text, text_pair, **{**kwargs, "max_length": limit})
        # subtle: cut at one token more than the model takes, which tells whether the text is longer without
        # tokenizing all of it (a 50 MB line costs what its first tokens cost)
        encoding = self.tokenizer(text, text_pair, **{**kwargs, "truncation": True, "max_length": self.max_length + 1})
        if len(encoding["input_ids"]) <= self.max_length:
            return encoding
        warnings.warn(f"{self.task}: a text of more than {self.max_length} tokens ({text[:30]!r}...) is cut to the "
                      f"model's {self.max_length}: the rest of it is not read", TextCutWarning, stacklevel=4)
        return self.tokenizer(text, text_pair, **{**kwargs, "truncation": True, "max_length": self.max_length})

    # -- what each task writes --
    def preprocess(self, item, **options) -> list[dict]:
        """One input -> its features (token ids, and what postprocess will need): one, or one per window."""
        raise NotImplementedError

    def forward(self, input_ids: np.ndarray, attention_mask: np.ndarray, rows: list[dict]) -> dict:
        """The model on one padded batch -> {output name: one value per row}."""
        raise NotImplementedError

    def postprocess(self, item, features: list[dict], outputs: list[dict], **options):
        """One input's features and their outputs -> the answer."""
        raise NotImplementedError

    def __repr__(self):
        return f"{type(self).__name__}(model={self.model!r}, options={self.defaults})"
