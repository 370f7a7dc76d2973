"""Model outputs that read like transformers' ``ModelOutput``: by attribute, by key, or as a tuple.

``out.last_hidden_state``, ``out["last_hidden_state"]`` and ``out[0]`` are the same array; fields left at None
are skipped by the tuple view, exactly as in transformers, so ``return_dict=False`` gives the same tuple order.
``out.execution_path`` says which execution of the encoder computed it ("fast", "kernels" or "reference", see
``nn/paths.py``): an attribute, not a field, so the keys and the tuple stay transformers' own.
"""
from __future__ import annotations

from collections import OrderedDict


class ModelOutput(OrderedDict):
    """The fields that are not None, in ``fields`` order, read by attribute, by key or by position."""

    fields: tuple[str, ...] = ()

    def __init__(self, *, execution_path: str | None = None, **values):
        unknown = set(values) - set(self.fields)
        if unknown:
            raise TypeError(f"{type(self).__name__} has no field(s) {sorted(unknown)}")
        super().__init__((name, values[name]) for name in self.fields if values.get(name) is not None)
        self._execution_path = execution_path

    @property
    def execution_path(self) -> str | None:
        """The execution that computed this output: "fast", "kernels" or "reference" (None if not said)."""
        return self.__dict__.get("_execution_path")

    def __getattr__(self, name):
        if name in type(self).fields:
            return self.get(name)
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    def __getitem__(self, key):
        if isinstance(key, (int, slice)):
            return self.to_tuple()[key]
        return super().__getitem__(key)

    def to_tuple(self) -> tuple:
        """The fields that are not None, in order: what transformers returns with ``return_dict=False``."""
        return tuple(self.values())


def output_class(name: str, *fields: str) -> type[ModelOutput]:
    """A ModelOutput subclass called ``name`` with these fields, in transformers' order."""
    return type(name, (ModelOutput,), {"fields": fields, "__doc__": f"{name}({', '.join(fields)})"})


BaseModelOutput = output_class("BaseModelOutput", "last_hidden_state", "hidden_states", "attentions")
MaskedLMOutput = output_class("MaskedLMOutput", "loss", "logits", "hidden_states", "attentions")
SequenceClassifierOutput = output_class("SequenceClassifierOutput", "loss", "logits", "hidden_states", "attentions")
TokenClassifierOutput = output_class("TokenClassifierOutput", "loss", "logits", "hidden_states", "attentions")
MultipleChoiceModelOutput = output_class("MultipleChoiceModelOutput", "loss", "logits", "hidden_states",
                                         "attentions")
QuestionAnsweringModelOutput = output_class("QuestionAnsweringModelOutput", "loss", "start_logits", "end_logits",
                                            "hidden_states", "attentions")
FlaubertForQuestionAnsweringOutput = output_class(
    "FlaubertForQuestionAnsweringOutput", "loss", "start_top_log_probs", "start_top_index", "end_top_log_probs",
    "end_top_index", "cls_logits", "hidden_states", "attentions")
