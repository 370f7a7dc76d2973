"""transformers' Auto classes, for FlauBERT: ``AutoModelForTokenClassification.from_pretrained("owner/name")``.

In transformers an Auto class reads the checkpoint's ``config.json`` and picks the model class: the family from
``model_type`` (``"flaubert"`` -> the Flaubert classes), the head from the Auto class's task. Here there is one
family, so the choice is only the head; and a checkpoint of another family (a BERT, a CamemBERT) is refused with
its name (``config.check_is_flaubert``) instead of being loaded into a FlauBERT, which would give nonsense or fail
on a shape.

Within a task, the config's ``architectures`` decide when they name one of the task's classes: a checkpoint saved
from ``FlaubertForQuestionAnswering`` (the beam-search SQuAD head) loads into that class, any other into
``FlaubertForQuestionAnsweringSimple``, which is what transformers' ``AutoModelForQuestionAnswering`` builds.
"""
from __future__ import annotations

from .config import FlaubertConfig
from .heads import (FlaubertForMultipleChoice, FlaubertForQuestionAnswering, FlaubertForQuestionAnsweringSimple,
                    FlaubertForSequenceClassification, FlaubertForTokenClassification, FlaubertWithLMHeadModel)
from ..checkpoints.hub import HUB_OPTIONS
from .model import FlaubertModel
from ..tokenization.tokenizer import FlaubertTokenizer


class _NotInstantiable:
    """Auto classes are only factories, as in transformers."""

    def __init__(self, *args, **kwargs):
        raise OSError(f"{type(self).__name__} is designed to be instantiated with "
                      f"{type(self).__name__}.from_pretrained(...) or from_config(...)")


class AutoConfig(_NotInstantiable):
    @staticmethod
    def from_pretrained(pretrained_model_name_or_path, **kwargs) -> FlaubertConfig:
        """The ``FlaubertConfig`` of a folder or hub repository (refused when it is not FlauBERT's)."""
        return FlaubertConfig.from_pretrained(pretrained_model_name_or_path, **kwargs)


class AutoTokenizer(_NotInstantiable):
    @staticmethod
    def from_pretrained(pretrained_model_name_or_path, **hub_options) -> FlaubertTokenizer:
        """The ``FlaubertTokenizer`` of a folder or hub repository (refused when it is another tokenizer)."""
        return FlaubertTokenizer.from_pretrained(pretrained_model_name_or_path, **hub_options)


class _AutoModel(_NotInstantiable):
    """Pick a model class for the checkpoint, then let that class load it (same keywords as its from_pretrained)."""

    classes: tuple[type, ...] = ()  # the classes that serve this task; the first is the default

    @classmethod
    def model_class(cls, config: FlaubertConfig) -> type:
        """The class the config's ``architectures`` name, if it serves this task; else the task's default."""
        serving = {model_class.__name__: model_class for model_class in cls.classes}
        named = [serving[name] for name in config.architectures or [] if name in serving]
        return named[0] if named else cls.classes[0]

    @classmethod
    def from_config(cls, config: FlaubertConfig):
        """A model with fresh random weights, of the class this config calls for."""
        return cls.model_class(config)(config)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, config: FlaubertConfig | None = None, **kwargs):
        """Read the config once, pick the class it calls for, and let that class load the checkpoint."""
        if config is None:  # read once here to choose the class, then handed to it
            hub_options = {name: value for name, value in kwargs.items() if name in HUB_OPTIONS}
            config = FlaubertConfig.from_pretrained(pretrained_model_name_or_path, **hub_options)
        return cls.model_class(config).from_pretrained(pretrained_model_name_or_path, config=config, **kwargs)


class AutoModel(_AutoModel):
    classes = (FlaubertModel,)  # the bare encoder, whatever head the checkpoint has (its weights go unused)


class AutoModelWithLMHead(_AutoModel):
    classes = (FlaubertWithLMHeadModel,)


class AutoModelForMaskedLM(_AutoModel):
    classes = (FlaubertWithLMHeadModel,)


class AutoModelForSequenceClassification(_AutoModel):
    classes = (FlaubertForSequenceClassification,)


class AutoModelForTokenClassification(_AutoModel):
    classes = (FlaubertForTokenClassification,)


class AutoModelForQuestionAnswering(_AutoModel):
    classes = (FlaubertForQuestionAnsweringSimple, FlaubertForQuestionAnswering)


class AutoModelForMultipleChoice(_AutoModel):
    classes = (FlaubertForMultipleChoice,)
