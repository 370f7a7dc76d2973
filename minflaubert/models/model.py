"""The FlauBERT encoder: embeddings, then n_layers Transformer layers, with padded positions kept at zero.

``encode`` is the whole forward pass as one function over a parameter tree, run by one of three executions of the
same math (``path``: "fast", "kernels" or "reference", see ``nn/paths.py``); ``FlaubertModel`` wraps it in the
``transformers`` API. ``FlaubertPreTrainedModel`` holds what every model class shares: the config, the weights by
their checkpoint names, ``from_pretrained`` and ``save_pretrained``.
"""
from __future__ import annotations

import os
import warnings

import numpy as np

from ..checkpoints.atomic import atomic_folder
from ..checkpoints.weights import check_state_dict, load_state_dict, save_state_dict, unflatten, warn_about_keys
from ..nn import fast, layers, paths
from .config import FlaubertConfig, split_keywords
from .embeddings import Embedding, Linear, resized
from .initialization import init_weights
from .inputs import check_positive, encoder_inputs
from .outputs import BaseModelOutput
from .sentences import encode_texts


def encoder_shapes(config: FlaubertConfig) -> dict[str, tuple]:
    """Every encoder weight's checkpoint name (without the ``transformer.`` prefix) and the shape it must have."""
    dim, hidden = config.emb_dim, config.hidden_dim
    shapes = {
        "embeddings.weight": (config.vocab_size, dim),
        "position_embeddings.weight": (config.max_position_embeddings, dim),
        "layer_norm_emb.weight": (dim,), "layer_norm_emb.bias": (dim,),
    }
    if config.has_lang_embeddings:
        shapes["lang_embeddings.weight"] = (config.n_langs, dim)
    for i in range(config.n_layers):
        for projection in ("q_lin", "k_lin", "v_lin", "out_lin"):
            shapes[f"attentions.{i}.{projection}.weight"] = (dim, dim)
            shapes[f"attentions.{i}.{projection}.bias"] = (dim,)
        shapes.update({
            f"layer_norm1.{i}.weight": (dim,), f"layer_norm1.{i}.bias": (dim,),
            f"ffns.{i}.lin1.weight": (hidden, dim), f"ffns.{i}.lin1.bias": (hidden,),
            f"ffns.{i}.lin2.weight": (dim, hidden), f"ffns.{i}.lin2.bias": (dim,),
            f"layer_norm2.{i}.weight": (dim,), f"layer_norm2.{i}.bias": (dim,),
        })
    return shapes


def split_mismatched(state: dict, head_shapes: dict) -> tuple[dict, dict]:
    """Set aside the head's tensors whose shape differs from what the config asks for (a new ``num_labels``).

    -> (the other tensors, {name: (shape found, shape expected)}). Only a head's weights are looked at: an encoder
    of other sizes than its config is a broken checkpoint, which ``check_state_dict`` refuses (transformers would
    start it afresh with ignore_mismatched_sizes, leaving a model that computes nothing of what was trained).
    """
    kept, mismatched = {}, {}
    for name, array in state.items():
        if name in head_shapes and tuple(array.shape) != tuple(head_shapes[name]):
            mismatched[name] = (tuple(array.shape), tuple(head_shapes[name]))
        else:
            kept[name] = array
    return kept, mismatched


def mismatch_report(mismatched: dict) -> str:
    """One line per weight: '- classifier.weight: found shape (2, 768) in the checkpoint and (3, 768) in the model'."""
    return "\n".join(f"- {name}: found shape {found} in the checkpoint and {expected} in the model instantiated"
                     for name, (found, expected) in mismatched.items())


def layer_params(params: dict, i: int) -> dict:
    """The weights of layer i, gathered from the checkpoint's per-kind lists (attentions.i, ffns.i, ...)."""
    return {"attention": params["attentions"][i], "layer_norm1": params["layer_norm1"][i],
            "ffn": params["ffns"][i], "layer_norm2": params["layer_norm2"][i]}


class Encoded(tuple):
    """What the encoder returns: the 3-tuple (last hidden state [batch, seq, dim], hidden states or None,
    attentions or None), which unpacks like any tuple, plus ``path``: the execution that computed it."""

    def __new__(cls, last_hidden_state, hidden_states, attentions, path: str):
        encoded = super().__new__(cls, (last_hidden_state, hidden_states, attentions))
        encoded.path = path
        return encoded


def encode(params, config, input_ids=None, attention_mask=None, langs=None, token_type_ids=None, position_ids=None,
           lengths=None, cache=None, inputs_embeds=None, output_attentions=False, output_hidden_states=False,
           path="fast", prepared=None) -> Encoded:
    """The forward pass over already-checked inputs (see ``inputs.encoder_inputs``), on the execution ``path``.

    -> Encoded(last hidden state [batch, seq, dim], hidden states (embeddings + one per layer) or None,
               attention weights (one [batch, heads, seq, k_len] per layer) or None, the path that ran)
    ``path``: "fast", "kernels" or "reference" (``nn/paths.py``); "fast" runs "kernels" for a call it cannot
    serve. ``prepared``: the fast path's fused weights and buffers (``fast.prepare(params, config)``), built here
    if not given.
    """
    batch, seq_len = input_ids.shape if input_ids is not None else inputs_embeds.shape[:2]
    mask = layers.padding_mask(batch, seq_len, attention_mask, lengths, input_ids, config.pad_index)
    path = paths.path_to_run(path, config, mask, cache, output_attentions)
    if path == "fast":
        last, hidden_states = fast.encode(prepared or fast.prepare(params, config), config, mask, input_ids,
                                          inputs_embeds, position_ids, langs, token_type_ids, output_hidden_states)
        return Encoded(last, hidden_states, None, path)
    attend, activation = paths.layer_functions(path, config)  # "kernels" or "reference"
    last, hidden_states, attentions = encode_layer_by_layer(params, config, mask, attend, activation, input_ids,
                                                            inputs_embeds, position_ids, langs, token_type_ids,
                                                            cache)
    return Encoded(last, hidden_states if output_hidden_states else None,
                   attentions if output_attentions else None, path)


def encode_layer_by_layer(params, config, mask, attend, activation, input_ids=None, inputs_embeds=None,
                          position_ids=None, langs=None, token_type_ids=None, cache=None):
    """The readable loop: embeddings, then each layer on [batch, seq, dim], padded positions zeroed after each.

    mask [batch, seq] bool (the real tokens); ``attend`` and ``activation`` from ``paths.layer_functions``.
    -> (last hidden state, the n_layers + 1 hidden states, the n_layers attention maps), tuples.
    """
    batch, seq_len = mask.shape
    attention_mask_3d = layers.attention_mask_matrix(mask, config.causal)
    if position_ids is None:
        position_ids = np.broadcast_to(np.arange(seq_len), (batch, seq_len))
    if cache is not None and input_ids is not None:
        # Incremental decoding: the cache holds keys and values of the first cache["slen"] positions, so only
        # the new ones run through the layers (their queries still see every earlier key).
        new = slice(cache.get("slen", 0), None)
        input_ids, position_ids, mask = input_ids[:, new], position_ids[:, new], mask[:, new]
        attention_mask_3d = attention_mask_3d[:, new]
        langs = langs[:, new] if langs is not None else None
        token_type_ids = token_type_ids[:, new] if token_type_ids is not None else None
    layer = layers.pre_norm_layer if config.pre_norm else layers.post_norm_layer
    keep = mask[..., None].astype(np.float32)  # [batch, seq, 1]: 1 for tokens, 0 for padding

    x = layers.embed(params, config.layer_norm_eps, input_ids, inputs_embeds, position_ids, langs, token_type_ids)
    x = x.astype(np.float32, copy=False) * keep
    hidden_states, attentions = [], []
    for i in range(config.n_layers):
        hidden_states.append(x)
        layer_cache = cache.setdefault(i, {}) if cache is not None else None
        x, weights = layer(x, attention_mask_3d, layer_params(params, i), config.n_heads, config.layer_norm_eps,
                           attend, activation, layer_cache)
        x = x * keep
        attentions.append(weights)
    hidden_states.append(x)
    if cache is not None:
        cache["slen"] = cache.get("slen", 0) + x.shape[1]
    return x, tuple(hidden_states), tuple(attentions)


class FlaubertPreTrainedModel:
    """What every model class shares: a config, weights by checkpoint name, loading and saving.

    Subclasses list the weights of their head in ``head_shapes``; the encoder's come from ``encoder_shapes``.
    A model built from a config alone gets fresh random weights, like transformers.
    """

    def __init__(self, config: FlaubertConfig, weights: dict[str, np.ndarray] | None = None, seed: int = 0,
                 path: str = "fast"):
        if not isinstance(config, FlaubertConfig):
            raise TypeError(f"config must be a FlaubertConfig, got {type(config).__name__}")
        config.validate()  # (again: a field set after the config was made could ask for a million layers)
        self.config = config
        shapes = self.expected_shapes(config)
        weights = weights or {}
        # Random weights only for what ``weights`` lacks: drawing all of them (the 68k-word table included) would
        # cost seconds and the memory of a second model on every from_pretrained.
        missing = {name: shape for name, shape in shapes.items() if name not in weights}
        self.weights = {**init_weights(missing, config, seed), **weights}
        self.path = path  # which execution runs the encoder: "fast", "kernels" or "reference" (nn/paths.py)
        # What from_pretrained was given (a folder or a repository id) and its hub options: where encode() finds
        # the tokenizer saved with the model.
        self.name_or_path, self.hub_options, self._tokenizer = None, {}, None
        # The head weights from_pretrained drew at random, the checkpoint lacking them (pipelines refuse those)
        self.newly_initialized: list[str] = []
        self.setup()

    @property
    def path(self) -> str:
        """The execution the encoder runs: "fast" (the default), "kernels" or "reference" (see ``nn/paths.py``)."""
        return self._path

    @path.setter
    def path(self, name: str) -> None:
        self._path = paths.check_path(name)

    @classmethod
    def head_shapes(cls, config: FlaubertConfig) -> dict[str, tuple]:
        """The head's weights, checkpoint name -> shape (none for the bare encoder)."""
        return {}

    @classmethod
    def expected_shapes(cls, config: FlaubertConfig) -> dict[str, tuple]:
        """Every weight of this class, the encoder's and the head's: checkpoint name -> shape."""
        return {**encoder_shapes(config), **cls.head_shapes(config)}

    def setup(self) -> None:
        """Build the parameter trees the forward pass reads (called once the weights are in place)."""
        self.params = unflatten(self.weights)
        self._fast = None  # the fast encoder's fused weights and buffers, built on the first call that uses them

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, config: FlaubertConfig | None = None,
                        ignore_mismatched_sizes: bool = False, path: str = "fast", **kwargs):
        """Load a checkpoint: a folder written by ``save_pretrained`` (ours or transformers') or a hub repository.

        As in transformers: ``kwargs`` are huggingface_hub's options (``revision``, ``cache_dir``,
        ``local_files_only``, ``token``, ``force_download``) and config overrides (``num_labels=3``,
        ``id2label=...``, ``output_attentions=True``...); any other name is a TypeError. When an override changes
        the shape of a head's weights (a new ``num_labels``), the checkpoint's no longer fit: that is an error,
        unless ``ignore_mismatched_sizes=True``, which starts those weights afresh (with a warning). ``path``: the
        execution the model runs, as in the constructor.
        """
        from ..checkpoints.hub import resolve_name  # a folder, a name under weights/, or a hub repository -> a folder

        paths.check_path(path)  # before any file is read
        hub_options, overrides = split_keywords(f"{cls.__name__}.from_pretrained", kwargs,
                                                also=("config", "ignore_mismatched_sizes", "path"))
        folder = resolve_name(pretrained_model_name_or_path, "model", **hub_options)
        config = (config if config is not None else FlaubertConfig.from_pretrained(folder)).updated(**overrides)
        shapes = cls.expected_shapes(config)
        state, mismatched = split_mismatched(load_state_dict(folder), cls.head_shapes(config))
        if mismatched and not ignore_mismatched_sizes:
            raise ValueError(f"{folder}: {mismatch_report(mismatched)}\nThe config asks for other shapes than "
                             "the checkpoint has; pass ignore_mismatched_sizes=True to start these weights afresh")
        if mismatched:
            warnings.warn(f"Some weights of {cls.__name__} were not initialized from the model checkpoint at "
                          f"{pretrained_model_name_or_path} and are newly initialized because the shapes did not "
                          f"match:\n{mismatch_report(mismatched)}\nYou should probably TRAIN this model on a "
                          "down-stream task to be able to use it for predictions and inference.", stacklevel=2)
        weights, missing, unexpected = check_state_dict(state, shapes)
        missing = [name for name in missing if name not in mismatched]  # already reported above
        weights, missing = cls.tie_weights(config, weights, missing)
        missing_encoder = [name for name in missing if name in encoder_shapes(config)]
        if missing_encoder:
            raise ValueError(f"{folder}: the checkpoint lacks encoder weights {missing_encoder[:5]}"
                             f"{' ...' if len(missing_encoder) > 5 else ''}")
        warn_about_keys(cls.__name__, missing, unexpected, pretrained_model_name_or_path)
        model = cls(config, weights, path=path)
        model.newly_initialized = [*mismatched, *missing]
        model.name_or_path, model.hub_options = pretrained_model_name_or_path, hub_options
        return model

    @classmethod
    def tie_weights(cls, config, weights, missing):
        """Heads whose weights may be shared with the encoder's fill them in here."""
        return weights, missing

    def state_dict(self) -> dict[str, np.ndarray]:
        """The weights under the names transformers saves for this class."""
        head = self.head_shapes(self.config)
        prefix = "transformer." if head else ""
        return {(name if name in head else prefix + name): array for name, array in self.weights.items()}

    def save_pretrained(self, folder: str | os.PathLike) -> None:
        """Write ``config.json`` and ``model.safetensors`` into ``folder``, crash-safe: the new files are written
        under hidden names and moved in together (``atomic.atomic_folder``), so a process killed at any instant
        leaves the old model or the new one, never a mix. The folder's other files (a tokenizer, a README, .git)
        are not touched."""
        config = FlaubertConfig.from_dict({**self.config.to_dict(), "architectures": [type(self).__name__]})
        with atomic_folder(folder) as staging:
            config.save_pretrained(staging)
            save_state_dict(self.state_dict(), staging)

    def num_parameters(self, *, exclude_embeddings: bool = False) -> int:
        """How many numbers the model holds, an array shared by two names (the tied LM projection) counted once,
        as transformers counts them; ``exclude_embeddings=True`` leaves out the word, position and language tables."""
        tables = {id(array) for name, array in self.weights.items() if name.endswith("embeddings.weight")}
        unique = {id(array): array for array in self.weights.values()
                  if not (exclude_embeddings and id(array) in tables)}
        return sum(array.size for array in unique.values())

    def eval(self):
        """The model itself: it only ever runs inference (no dropout to switch off), so that
        ``Model.from_pretrained(folder).eval()`` reads as in transformers."""
        return self

    def get_input_embeddings(self) -> Embedding:
        """The word-embedding table [vocab_size, emb_dim], as a read-only :class:`Embedding` (see ``embeddings.py``)."""
        return Embedding(self.weights["embeddings.weight"], padding_idx=self.config.pad_index)

    def get_output_embeddings(self) -> Linear | None:
        """The projection onto the vocabulary: only the language model has one (None here, as in transformers)."""
        return None

    def resize_token_embeddings(self, new_num_tokens: int | None = None, pad_to_multiple_of: int | None = None,
                                mean_resizing: bool = True, seed: int = 0) -> Embedding:
        """Give the model a vocabulary of ``new_num_tokens`` (rounded up to a multiple of ``pad_to_multiple_of``):
        rows are cut from the end, or added there as transformers adds them (``embeddings.added_rows``, drawn with
        ``seed``); the LM head's rows follow, and ``config.vocab_size`` changes. -> the new input embeddings.

        A vocabulary too small for the special tokens' ids (``pad_index``...) is refused, as an invalid config is.
        """
        if new_num_tokens is None and pad_to_multiple_of is None:
            return self.get_input_embeddings()
        n_rows = self.config.vocab_size if new_num_tokens is None else check_positive("new_num_tokens",
                                                                                      new_num_tokens)
        if pad_to_multiple_of is not None:
            multiple = check_positive("pad_to_multiple_of", pad_to_multiple_of)
            n_rows = -(-n_rows // multiple) * multiple
        self.config.updated(vocab_size=n_rows)  # raises, naming the field, before anything changes
        vocabulary_weights, rng = self.vocabulary_weights(), np.random.default_rng(seed)
        for name, std in vocabulary_weights.items():
            around_mean = mean_resizing and std is not None  # (std None: zeros, always)
            self.weights[name] = resized(self.weights[name], n_rows, around_mean, std or 0.0, rng)
        self.config.vocab_size = n_rows
        self.setup()
        return self.get_input_embeddings()

    def vocabulary_weights(self) -> dict[str, float]:
        """The weights with one row per vocabulary token -> the std of the fresh rows ``resize_token_embeddings``
        draws for them (when not ``mean_resizing``), as transformers initialises them; None: zeros, always."""
        return {"embeddings.weight": self.config.embed_init_std}

    def as_requested(self, output, return_dict: bool | None):
        """``output``, or its tuple when return_dict=False is passed or, with None, when config.return_dict is False
        (transformers' rule)."""
        if return_dict is None:
            return_dict = self.config.return_dict
        return output if return_dict else output.to_tuple()

    def run_encoder(self, **inputs) -> Encoded:
        """Check the inputs, run the encoder on ``self.path`` -> Encoded(last hidden state, hidden states or None,
        attentions or None, the path that ran)."""
        # None means "as the config says", which from_pretrained(..., output_attentions=True) may have changed
        output_attentions = inputs.pop("output_attentions", None)
        output_hidden_states = inputs.pop("output_hidden_states", None)
        if output_attentions is None:
            output_attentions = self.config.output_attentions
        if output_hidden_states is None:
            output_hidden_states = self.config.output_hidden_states
        checked = encoder_inputs(self.config, **inputs)
        if self.path == "fast" and self._fast is None:
            # subtle: two threads' first calls may both get here: each builds a complete Prepared and the last one
            # stays. Harmless (its weights are read-only, its work buffers per thread), so no lock is needed.
            self._fast = fast.prepare(self.params, self.config)
        return encode(self.params, self.config, **checked, output_attentions=bool(output_attentions),
                      output_hidden_states=bool(output_hidden_states), path=self.path, prepared=self._fast)

    def __repr__(self):
        c = self.config
        return (f"{type(self).__name__}(emb_dim={c.emb_dim}, n_layers={c.n_layers}, n_heads={c.n_heads}, "
                f"vocab_size={c.vocab_size}, pre_norm={c.pre_norm}, parameters={self.num_parameters():,})")


class FlaubertModel(FlaubertPreTrainedModel):
    """The bare encoder: token ids in, one vector per token out."""

    def __call__(self, input_ids=None, attention_mask=None, langs=None, token_type_ids=None, position_ids=None,
                 lengths=None, cache=None, inputs_embeds=None, output_attentions=None, output_hidden_states=None,
                 return_dict=None, cache_position=None):
        """transformers' FlaubertModel.forward: ids [batch, seq] -> BaseModelOutput(last_hidden_state [batch, seq,
        dim], hidden_states, attentions), or its tuple with ``return_dict=False`` (or ``config.return_dict=False``).
        ``cache_position`` is checked, then unused (see ``inputs.check_cache_position``)."""
        encoded = self.run_encoder(
            input_ids=input_ids, attention_mask=attention_mask, langs=langs, token_type_ids=token_type_ids,
            position_ids=position_ids, lengths=lengths, cache=cache, inputs_embeds=inputs_embeds,
            output_attentions=output_attentions, output_hidden_states=output_hidden_states,
            cache_position=cache_position)
        last, hidden_states, attentions = encoded
        output = BaseModelOutput(last_hidden_state=last, hidden_states=hidden_states, attentions=attentions,
                                 execution_path=encoded.path)
        return self.as_requested(output, return_dict)

    def encode(self, texts, batch_size: int = 32, pooling: str = "mean", normalize: bool = False,
               max_length: int | None = None, progress: bool | None = None, tokenizer=None) -> np.ndarray:
        """Sentence vectors: a list of texts -> ``(len(texts), emb_dim)`` float32, in the order given.

        ``pooling`` is ``"mean"`` (of the text's token vectors), ``"first"`` (``<s>``'s) or ``"max"`` (per feature);
        ``normalize=True`` scales each vector to length 1 (dot product = cosine similarity). The tokenizer is the
        one saved with the checkpoint unless given. See ``sentences.encode_texts`` for the rest.
        """
        if tokenizer is None:
            tokenizer = self.saved_tokenizer()
        return encode_texts(self, tokenizer, texts, batch_size=batch_size, pooling=pooling, normalize=normalize,
                            max_length=max_length, progress=progress)

    def saved_tokenizer(self):
        """The tokenizer saved with the checkpoint this model was loaded from (read once, then kept)."""
        from ..tokenization.tokenizer import FlaubertTokenizer

        if self.name_or_path is None:
            raise ValueError("this model was not loaded by from_pretrained, so it has no saved tokenizer: "
                             "pass tokenizer=")
        if self._tokenizer is None:
            self._tokenizer = FlaubertTokenizer.from_pretrained(self.name_or_path, **self.hub_options)
        return self._tokenizer
