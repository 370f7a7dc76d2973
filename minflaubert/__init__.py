"""minflaubert: FlauBERT in NumPy and Numba, with transformers' class names, arguments and outputs.

The names below are imported lazily (PEP 562 module ``__getattr__``): ``import minflaubert`` stays instant, and
the first use of a class pulls in only its own module (Numba kernels and all).
"""
import importlib

__version__ = "0.1.0"

# public name -> the submodule that defines it
_EXPORTS = {
    "FlaubertConfig": "models.config",
    "FlaubertTokenizer": "tokenization.tokenizer",
    "FlaubertModel": "models.model",
    "FlaubertWithLMHeadModel": "models.heads",
    "FlaubertForSequenceClassification": "models.heads",
    "FlaubertForTokenClassification": "models.heads",
    "FlaubertForQuestionAnsweringSimple": "models.heads",
    "FlaubertForQuestionAnswering": "models.heads",
    "FlaubertForMultipleChoice": "models.heads",
    "AutoConfig": "models.auto",
    "AutoTokenizer": "models.auto",
    "AutoModel": "models.auto",
    "AutoModelWithLMHead": "models.auto",
    "AutoModelForMaskedLM": "models.auto",
    "AutoModelForSequenceClassification": "models.auto",
    "AutoModelForTokenClassification": "models.auto",
    "AutoModelForQuestionAnswering": "models.auto",
    "AutoModelForMultipleChoice": "models.auto",
    "pipeline": "apps.pipelines",
    "embed_corpus": "apps.corpus",
    "read_embeddings": "apps.shards",
    "iter_embeddings": "apps.shards",
    "explore": "apps.explore",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_EXPORTS])
