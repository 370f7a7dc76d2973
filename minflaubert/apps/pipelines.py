"""Pipelines: text in, answers out, in the shape transformers' pipelines give them.

    >>> fill = pipeline("fill-mask", model="flaubert_base_cased")
    >>> fill("Le chat dort sur le <special1>.")[0]["token_str"]

:func:`pipeline` loads a checkpoint (and the tokenizer saved with it) into the pipeline of a task. What every task
shares, tokenise -> batch by length -> run the model -> postprocess, is :class:`Pipeline` in ``pipeline_base.py``;
each task has its own module, named as in transformers: ``fill_mask.py``, ``feature_extraction.py``,
``text_classification.py``, ``token_classification.py`` and ``question_answering.py``.

Where transformers' pipelines cannot help for FlauBERT, these can: transformers has no fast tokenizer for it, hence
no character offsets (its token-classification pipeline cannot give spans) and, since 5.x, no question-answering
pipeline at all. Our tokenizer gives each token's span in the *original* text, so spans here always slice the text
you passed in: ``text[entity["start"]:entity["end"]] == entity["word"]``.
"""
from __future__ import annotations

import os
from pathlib import Path

from ..checkpoints.hub import HUB_OPTIONS, resolve_name, shipped_model
from ..models.config import FlaubertConfig
from ..models.model import FlaubertPreTrainedModel
from ..tokenization.tokenizer import FlaubertTokenizer
from .feature_extraction import FeatureExtractionPipeline
from .fill_mask import FillMaskPipeline
from .pipeline_base import Pipeline
from .question_answering import QuestionAnsweringPipeline
from .text_classification import TextClassificationPipeline
from .token_classification import TokenClassificationPipeline


def pipeline(task: str, model=None, tokenizer=None, **options) -> Pipeline:
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


TASKS = {
    FillMaskPipeline.task: FillMaskPipeline,
    FeatureExtractionPipeline.task: FeatureExtractionPipeline,
    TextClassificationPipeline.task: TextClassificationPipeline,
    TokenClassificationPipeline.task: TokenClassificationPipeline,
    QuestionAnsweringPipeline.task: QuestionAnsweringPipeline,
}
