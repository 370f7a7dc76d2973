"""FlaubertConfig: every number that shapes a FlauBERT model, in one dataclass.

The field names and defaults are those of ``transformers.FlaubertConfig`` so that a ``config.json`` written by
``save_pretrained`` (any version, the published checkpoints included) reads back unchanged. Older files spell a few
fields differently (``n_layer``, ``pad_index``...) and carry training-only keys (``amp``, ``bptt``...): ``from_dict``
accepts the spellings and ignores what a forward pass never needs.

Every size is checked against :data:`LIMITS` before anything is built from it: a ``config.json`` comes from anywhere,
and its numbers decide how many weights are named and how large the arrays drawn for missing ones are.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..checkpoints.hub import check_keywords
from ..checkpoints.json_files import read_json_object

CONFIG_NAME = "config.json"
SUMMARY_TYPES = ("first", "last", "mean", "cls_index", "attn")
PROBLEM_TYPES = ("regression", "single_label_classification", "multi_label_classification")

# The largest value each size may take: far above every published FlauBERT (flaubert_large: 24 layers of 1,024,
# 16 heads, 68,729 tokens, 512 positions) and the largest transformer encoders, and low enough that a hostile
# config.json (n_layers: 1000000, num_labels: 10**9) is refused at once instead of filling the memory.
LIMITS = {
    "n_layers": 1_024,
    "emb_dim": 65_536,
    "n_heads": 1_024,
    "vocab_size": 16_777_216,  # 2**24
    "max_position_embeddings": 1_048_576,  # 2**20
    "n_langs": 1_024,
    "num_labels": 1_000_000,  # also the size of id2label
    "start_n_top": 1_024,
    "end_n_top": 1_024,
}

# Other spellings of a field that some config.json files use -> our field name.
ALIASES = {
    "n_layer": "n_layers",
    "num_hidden_layers": "n_layers",
    "n_head": "n_heads",
    "num_attention_heads": "n_heads",
    "hidden_size": "emb_dim",
    "n_words": "vocab_size",
    "pad_token_id": "pad_index",
    "bos_token_id": "bos_index",
    "eos_token_id": "eos_index",
}
DEFAULT_LABELS = {0: "LABEL_0", 1: "LABEL_1"}


def alias(name: str) -> property:
    """Another name for the field ``name``, read and written through: transformers' ``attribute_map``."""
    return property(lambda self: getattr(self, name), lambda self, value: setattr(self, name, value),
                    doc=f"transformers' other name for ``{name}`` (reads and writes it).")


@dataclass(init=False)  # __init__ below: it also takes transformers' other names for the fields
class FlaubertConfig:
    # -- architecture --
    vocab_size: int = 30145
    emb_dim: int = 2048
    n_layers: int = 12
    n_heads: int = 16
    max_position_embeddings: int = 512
    pre_norm: bool = False  # LayerNorm before (True) or after (False) each sub-layer
    gelu_activation: bool = True  # exact erf GELU, else ReLU
    sinusoidal_embeddings: bool = False
    causal: bool = False  # attend only to the left (a language model), else bidirectional
    n_langs: int = 1
    use_lang_emb: bool = True
    layer_norm_eps: float = 1e-12
    is_encoder: bool = True
    # -- adaptive softmax LM head --
    asm: bool = False
    asm_cutoffs: list[int] = field(default_factory=lambda: [8000, 20000])
    asm_div_value: float = 4.0
    # -- training-time settings (kept for round-trips; a forward pass here never drops anything) --
    dropout: float = 0.1
    attention_dropout: float = 0.1
    layerdrop: float = 0.0
    embed_init_std: float = 2048**-0.5
    init_std: float = 0.02
    # -- special token indices --
    bos_index: int = 0
    eos_index: int = 1
    pad_index: int = 2
    unk_index: int = 3
    mask_index: int = 5
    mask_token_id: int = 0
    lang_id: int = 0
    lang2id: dict[str, int] | None = None
    id2lang: dict[int, str] | None = None
    # -- heads --
    summary_type: str = "first"
    summary_use_proj: bool = True
    summary_activation: str | None = None
    summary_proj_to_labels: bool = True
    summary_first_dropout: float = 0.1
    start_n_top: int = 5
    end_n_top: int = 5
    id2label: dict[int, str] = field(default_factory=lambda: dict(DEFAULT_LABELS))
    problem_type: str | None = None
    architectures: list[str] | None = None
    tie_word_embeddings: bool = True
    # -- what a forward pass returns when its call does not say (transformers' generic config options) --
    output_attentions: bool = False
    output_hidden_states: bool = False
    return_dict: bool = True  # False: the models return tuples
    is_encoder_decoder: bool = False  # (transformers' generic flag; FlauBERT is an encoder, so always False)

    model_type = "flaubert"  # (a class attribute, not a field: the same for every config)
    # transformers' other names for some fields (its ``attribute_map``), readable and settable
    hidden_size = alias("emb_dim")
    num_attention_heads = alias("n_heads")
    num_hidden_layers = alias("n_layers")
    n_words = alias("vocab_size")
    pad_token_id = alias("pad_index")
    bos_token_id = alias("bos_index")
    eos_token_id = alias("eos_index")

    def __init__(self, **values):
        """Every field by keyword (the defaults above for the others), as transformers' ``FlaubertConfig(...)``:
        under its other names too (``hidden_size=``, ``pad_token_id=``...), and the labels as ``id2label``,
        ``label2id`` or a bare count ``num_labels=4`` (``LABEL_0``...). Any other name is a TypeError."""
        check_keywords(type(self).__name__, values, OVERRIDABLE)
        fields, given_as = {}, {}
        for name, value in values.items():
            field_name = ALIASES.get(name, name)
            if field_name in fields:
                raise TypeError(f"{type(self).__name__}() got {field_name} twice: as {given_as[field_name]} "
                                f"and as {name}")
            fields[field_name], given_as[field_name] = value, name
        fields["id2label"] = asked_labels(fields.pop("num_labels", None), fields.pop("id2label", None),
                                          fields.pop("label2id", None), DEFAULT_LABELS)
        for spec in dataclasses.fields(self):
            if spec.name in fields:
                setattr(self, spec.name, fields[spec.name])
            else:
                setattr(self, spec.name, spec.default_factory() if spec.default is dataclasses.MISSING
                        else spec.default)
        self.__post_init__()

    def __post_init__(self):
        self.id2label = _int_keyed("id2label", self.id2label) if self.id2label is not None else None
        if self.id2lang is not None:
            self.id2lang = _int_keyed("id2lang", self.id2lang)
        self.validate()

    # -- derived names, as transformers has them --
    @property
    def hidden_dim(self) -> int:
        """Width of the feed-forward layer: always 4 x emb_dim in XLM/FlauBERT."""
        return 4 * self.emb_dim

    @property
    def head_dim(self) -> int:
        """Width of one attention head: emb_dim / n_heads."""
        return self.emb_dim // self.n_heads

    @property
    def num_labels(self) -> int:
        """How many labels the classification heads predict: the size of ``id2label``."""
        return len(self.id2label)

    @num_labels.setter
    def num_labels(self, n: int) -> None:
        """A new label count names the labels afresh (``LABEL_0``, ``LABEL_1``...); the same count keeps them."""
        _check_int("num_labels", n, minimum=1, maximum=LIMITS["num_labels"])
        if n != self.num_labels:
            self.id2label = {i: f"LABEL_{i}" for i in range(n)}

    @property
    def label2id(self) -> dict[str, int]:
        """``id2label`` the other way round: label -> id."""
        return {label: i for i, label in self.id2label.items()}

    @property
    def use_return_dict(self) -> bool:
        """transformers' older name for ``return_dict`` (read only)."""
        return self.return_dict

    @property
    def has_lang_embeddings(self) -> bool:
        """Whether the embeddings add a language vector (more than one language, and ``use_lang_emb``)."""
        return self.n_langs > 1 and self.use_lang_emb

    def validate(self) -> None:
        """Raise ValueError / TypeError naming the field for any value a model can't be built from, or any size
        beyond :data:`LIMITS`."""
        for name in ("vocab_size", "emb_dim", "n_layers", "n_heads", "max_position_embeddings", "n_langs",
                     "start_n_top", "end_n_top"):
            _check_int(name, getattr(self, name), minimum=1, maximum=LIMITS[name])
        for name in ("bos_index", "eos_index", "pad_index", "unk_index", "mask_index"):
            _check_int(name, getattr(self, name), minimum=0)
            if getattr(self, name) >= self.vocab_size:
                raise ValueError(f"{name}={getattr(self, name)} must be < vocab_size={self.vocab_size}")
        if self.emb_dim % self.n_heads:
            raise ValueError(f"emb_dim={self.emb_dim} must be divisible by n_heads={self.n_heads}")
        for name in ("pre_norm", "gelu_activation", "sinusoidal_embeddings", "causal", "use_lang_emb", "asm",
                     "summary_use_proj", "summary_proj_to_labels", "is_encoder", "output_attentions",
                     "output_hidden_states", "return_dict", "is_encoder_decoder"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if not self.is_encoder or self.is_encoder_decoder:
            raise ValueError("is_encoder=False or is_encoder_decoder=True: FlauBERT exists only as an encoder")
        _check_number("layer_norm_eps", self.layer_norm_eps, positive=True)
        for name in ("dropout", "attention_dropout", "layerdrop", "summary_first_dropout"):
            _check_number(name, getattr(self, name), at_most=1.0)
        for name in ("embed_init_std", "init_std"):
            _check_number(name, getattr(self, name))
        for name in ("mask_token_id", "lang_id"):
            _check_int(name, getattr(self, name), minimum=0)
        if self.mask_token_id >= self.vocab_size:
            raise ValueError(f"mask_token_id={self.mask_token_id} must be < vocab_size={self.vocab_size}")
        if self.lang_id >= self.n_langs:
            raise ValueError(f"lang_id={self.lang_id} must be < n_langs={self.n_langs}")
        if self.lang2id is not None and not isinstance(self.lang2id, dict):
            raise TypeError(f"lang2id must be a dict {{language: id}} or null, got {self.lang2id!r}")
        if self.summary_type not in SUMMARY_TYPES:
            raise ValueError(f"summary_type must be one of {SUMMARY_TYPES}, got {self.summary_type!r}")
        if self.problem_type is not None and self.problem_type not in PROBLEM_TYPES:
            raise ValueError(f"problem_type must be None or one of {PROBLEM_TYPES}, got {self.problem_type!r}")
        if not self.id2label:
            raise ValueError("id2label must name at least one label (num_labels >= 1)")
        if len(self.id2label) > LIMITS["num_labels"]:
            raise ValueError(f"id2label names {len(self.id2label)} labels, more than the {LIMITS['num_labels']} "
                             "allowed")
        if sorted(self.id2label) != list(range(len(self.id2label))):
            raise ValueError(f"id2label keys must be the label ids 0..{len(self.id2label) - 1}, "
                             f"got {sorted(self.id2label)}")
        if self.asm:
            cutoffs = self.asm_cutoffs
            if (not isinstance(cutoffs, (list, tuple)) or not cutoffs
                    or not all(isinstance(c, int) and not isinstance(c, bool) for c in cutoffs)
                    or list(cutoffs) != sorted(set(cutoffs)) or cutoffs[0] <= 0 or cutoffs[-1] > self.vocab_size - 1):
                raise ValueError(f"asm_cutoffs={cutoffs!r} must be increasing integers in [1, vocab_size - 1]")
            _check_number("asm_div_value", self.asm_div_value, positive=True)

    # -- (de)serialisation --
    @classmethod
    def from_dict(cls, config: dict) -> FlaubertConfig:
        """Build from a config dictionary of any transformers version; unknown (training-only) keys are ignored."""
        if not isinstance(config, dict):
            raise TypeError(f"config must be a dict, got {type(config).__name__}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        kwargs = {}
        for key, value in config.items():
            name = ALIASES.get(key, key)
            if name not in fields:
                continue  # a training-only key (amp, bptt, word_mask...) or one of transformers' generic ones
            if key != name and name in config:
                continue  # subtle: old files carry both `pad_index` and `pad_token_id`; the *_index spelling wins
            if value is None and fields[name].default is not None:
                continue  # an explicit null means "the default"
            kwargs[name] = value
        if "id2label" not in kwargs and config.get("num_labels") is not None:
            _check_int("num_labels", config["num_labels"], minimum=1, maximum=LIMITS["num_labels"])  # before building
            kwargs["id2label"] = {i: f"LABEL_{i}" for i in range(config["num_labels"])}
        if isinstance(kwargs.get("eos_index"), list):  # transformers allows a list of eos ids
            if not kwargs["eos_index"]:
                raise ValueError("eos_token_id is an empty list: it must name at least one id")
            kwargs["eos_index"] = kwargs["eos_index"][0]
        return cls(**kwargs)

    def to_dict(self) -> dict:
        """Every field, plus transformers' spellings (``*_token_id``, ``label2id``, ``model_type``), as transformers'
        ``to_dict`` gives them: label ids as ints (``json.dumps`` writes them as the strings config.json holds)."""
        out = dataclasses.asdict(self)
        out["label2id"] = self.label2id
        # transformers names these *_token_id; write both spellings so every version reads them.
        out["pad_token_id"], out["bos_token_id"], out["eos_token_id"] = self.pad_index, self.bos_index, self.eos_index
        out["model_type"] = self.model_type
        return out

    def to_json_string(self, use_diff: bool = True) -> str:
        """``to_dict`` as indented JSON, keys sorted, as transformers writes it; ``use_diff=True`` (its default)
        keeps only what differs from a default ``FlaubertConfig()``, and ``model_type``."""
        values = self.to_dict()
        if use_diff:
            defaults = type(self)().to_dict()
            values = {name: value for name, value in values.items()
                      if name == "model_type" or value != defaults.get(name)}
        return json.dumps(values, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs) -> FlaubertConfig:
        """Read ``config.json`` from a folder, a file, or a hub repository (``owner/name``, see ``hub.py``).

        ``kwargs`` are huggingface_hub's options (``revision``, ``cache_dir``, ``local_files_only``, ``token``...)
        and overrides of config fields (``num_labels=3``, ``output_attentions=True``...), as in transformers.
        """
        from ..checkpoints.hub import resolve_name

        hub_options, overrides = split_keywords("FlaubertConfig.from_pretrained", kwargs)
        path = Path(pretrained_model_name_or_path)
        if not path.is_file():
            path = resolve_name(pretrained_model_name_or_path, "config", **hub_options) / CONFIG_NAME
        if not path.is_file():
            raise OSError(f"no {CONFIG_NAME} at {path}: expected a folder written by save_pretrained")
        config = read_json_object(path)
        check_is_flaubert(config, path)
        try:
            config = cls.from_dict(config)
        except (TypeError, ValueError) as error:  # (say which file the field is wrong in)
            raise type(error)(f"{path}: {error}") from None
        return config.updated(**overrides)

    def updated(self, **overrides) -> FlaubertConfig:
        """A copy with some fields changed, checked like a config.json: transformers' keyword overrides.

        Besides the fields (and their other spellings, ``pad_token_id``...), ``num_labels`` and ``label2id`` are
        accepted: like ``id2label``, they set the labels (``LABEL_0``, ``LABEL_1``... for a bare count).
        """
        check_keywords(f"{type(self).__name__}.updated", overrides, OVERRIDABLE)
        overrides = {ALIASES.get(name, name): value for name, value in overrides.items()}
        labels = asked_labels(overrides.pop("num_labels", None), overrides.pop("id2label", None),
                              overrides.pop("label2id", None), self.id2label)
        return type(self).from_dict({**self.to_dict(), **overrides, "id2label": labels})

    def save_pretrained(self, folder: str | os.PathLike) -> None:
        """Write ``config.json`` into ``folder``: whole or not at all (``atomic.atomic_file``)."""
        from ..checkpoints.atomic import atomic_file

        text = json.dumps(self.to_dict(), indent=2, sort_keys=True, ensure_ascii=False)
        with atomic_file(Path(folder) / CONFIG_NAME) as tmp:
            tmp.write_text(text + "\n", encoding="utf-8")


# What from_pretrained accepts as a config override: every field, its other spellings, and transformers' two other
# ways of giving the labels.
OVERRIDABLE = (*(f.name for f in dataclasses.fields(FlaubertConfig)), *ALIASES, "num_labels", "label2id")


def split_keywords(where: str, kwargs: dict, also=()) -> tuple[dict, dict]:
    """from_pretrained's keyword arguments -> (huggingface_hub's options, config overrides).

    Any other name is a TypeError (``also``: the caller's own keywords, offered as suggestions too).
    """
    from ..checkpoints.hub import HUB_OPTIONS

    check_keywords(where, kwargs, (*HUB_OPTIONS, *OVERRIDABLE, *also))
    hub_options = {name: value for name, value in kwargs.items() if name in HUB_OPTIONS}
    return hub_options, {name: value for name, value in kwargs.items() if name not in HUB_OPTIONS}


def check_is_flaubert(config: dict, source) -> None:
    """Refuse a config.json of another model family, naming it: its weights would not fit, or worse, would fit.

    ``model_type`` says the family (``"flaubert"``); old files lack it and only list ``architectures``.
    """
    model_type = config.get("model_type")
    architectures = config.get("architectures") or []
    if not isinstance(architectures, list):
        raise TypeError(f"{source}: architectures must be a list of class names, got {architectures!r}")
    others = [name for name in architectures if not str(name).startswith("Flaubert")]
    if model_type not in (None, "flaubert") or others:
        raise ValueError(f"{source} describes a {model_type or 'non-FlauBERT'} model "
                         f"({', '.join(map(str, architectures)) or 'no architectures listed'}), not FlauBERT: "
                         "minflaubert runs FlauBERT only (load this one with transformers)")


def asked_labels(num_labels, id2label, label2id, current: dict) -> dict:
    """The id2label that transformers' three ways of naming labels ask for (``current`` when none is given, or
    when ``num_labels`` is its size): a dict, a reversed dict, or a count (``LABEL_0``, ``LABEL_1``...)."""
    if id2label is None and label2id is not None:
        if not isinstance(label2id, dict):
            raise TypeError(f"label2id must be a dict {{name: id}}, got {label2id!r}")
        id2label = {i: label for label, i in label2id.items()}
    if num_labels is not None:
        _check_int("num_labels", num_labels, minimum=1, maximum=LIMITS["num_labels"])
        if id2label is None and num_labels != len(current):
            id2label = {i: f"LABEL_{i}" for i in range(num_labels)}
        elif id2label is not None and len(id2label) != num_labels:
            raise ValueError(f"num_labels={num_labels} but {len(id2label)} labels were named: {id2label}")
    return _int_keyed("id2label", id2label) if id2label is not None else dict(current)


def _check_int(name: str, value, minimum: int, maximum: int | None = None) -> None:
    """An int (not a bool, not a float) in [minimum, maximum], or a TypeError/ValueError naming the field."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum} (minflaubert's limit), got {value}")


def _check_number(name: str, value, positive: bool = False, at_most: float | None = None) -> None:
    """A finite real number >= 0 (> 0 if ``positive``, <= ``at_most`` if given), or a ValueError/TypeError naming it."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value) or value < 0 or (positive and value == 0) or (at_most is not None and value > at_most):
        bounds = f"{'> 0' if positive else '>= 0'}{f' and <= {at_most}' if at_most is not None else ''}"
        raise ValueError(f"{name} must be a finite number {bounds}, got {value!r}")


def _int_keyed(name: str, mapping) -> dict[int, str]:
    """{"0": "LABEL_0"} (as JSON stores it) -> {0: "LABEL_0"}, or a ValueError/TypeError naming the field."""
    if not isinstance(mapping, dict):
        raise TypeError(f"{name} must be a dict {{id: name}}, got {mapping!r}")
    try:
        return {int(k): str(v) for k, v in mapping.items()}
    except (TypeError, ValueError):
        raise ValueError(f"{name} keys must be integer ids, got {list(mapping)!r}") from None
