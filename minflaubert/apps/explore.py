"""See inside the model: one self-contained HTML page of a text's tokens, attention maps, layer-by-layer guesses
and residual stream (``minflaubert explore``).

    >>> page = explore("Elle ouvrit la <special1> .")     # the shipped weights/flaubert_tiny
    >>> page.save("page.html")                            # opens from file://, offline: no server, no CDN
    >>> page                                              # in Jupyter: the page itself

One forward pass gives everything the page shows, and every number on it is the library's own output:

* **tokens**: the Moses words of the normalised text, their BPE pieces and ids (the tokenizer's);
* **attention**: every layer's maps (``output_attentions``), one small map per layer and head;
* **the guesses after each layer**, for each mask token: the language-model head applied to each layer's stream
  (``output_hidden_states``), the "logit lens" (see :func:`lens_note` for which stream, and why no norm);
* **the residual stream**: each token's vector length after the embeddings and after each layer;
* **the model**: its config and the folder it was loaded from.

The page is ``explore_page.html`` (HTML, CSS and JavaScript in one file, beside this module) with these numbers
embedded as JSON: :func:`page_data` builds them, and the tests compare them with the library's own outputs.
"""
from __future__ import annotations

import base64
import html
import json
import os
import warnings
import zlib
from pathlib import Path

import numpy as np

from .. import __version__
from ..checkpoints.atomic import atomic_file
from ..checkpoints.hub import HUB_OPTIONS
from ..models.heads import FlaubertWithLMHeadModel
from ..models.inputs import check_positive
from ..nn.layers import softmax
from .pipelines import pipeline

TEMPLATE = Path(__file__).with_name("explore_page.html")
DATA_MARK = "/*PAGE DATA*/"  # where the template takes the JSON
ATTENTION_LEVELS = 255  # an attention weight is stored as round(weight * 255): one byte, finer than a colour step
SIGNIFICANT = 4  # digits kept of each probability and vector length (the eye reads three)


def explore(text: str, model=None, tokenizer=None, top_k: int = 5, **hub_options) -> "Exploration":
    """The exploration page of ``text`` on ``model``: a checkpoint folder, a hub repository id, a published short
    name or a ``FlaubertWithLMHeadModel`` (with ``tokenizer``); default: the model the fill-mask pipeline uses (the
    shipped ``weights/flaubert_tiny``). ``top_k``: guesses shown per layer for each ``<special1>``.

    A checkpoint without language-model head weights (a bare ``FlaubertModel``) still gives the tokens, attention
    and stream; the page then says why it shows no guesses. huggingface_hub's options (``revision``,
    ``local_files_only``...) are passed on, as to ``pipeline``.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    check_positive("top_k", top_k)
    unknown = sorted(set(hub_options) - set(HUB_OPTIONS))
    if unknown:
        raise TypeError(f"explore() got unexpected keyword arguments {unknown}; it takes text, model, tokenizer, "
                        f"top_k and huggingface_hub's {', '.join(HUB_OPTIONS)}")
    fill = load(model, tokenizer, hub_options)
    return Exploration(page_data(fill, text, top_k, given=model))


def load(model, tokenizer, hub_options: dict):
    """The fill-mask pipeline on ``model``, also when its LM head has no weights (a bare FlaubertModel's folder):
    the page reads the text exactly as fill-mask does, and says itself that such a head gives no predictions."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Some weights of .* newly initialized")
        warnings.filterwarnings("ignore", message=".*checkpoint weights not used by this model")
        warnings.filterwarnings("ignore", message=".*running it with random weights")
        return pipeline("fill-mask", model=model, tokenizer=tokenizer, allow_random_head=True, **hub_options)


def page_data(fill, text: str, top_k: int, given=None) -> dict:
    """Everything the page shows, as JSON-ready values: the numbers come from one forward pass of ``fill.model``.

    (Asking for the attention maps runs the "kernels" path, where fill-mask runs "fast": the same numbers to float32
    rounding, far below the digits the page keeps.)
    """
    model, tokenizer = fill.model, fill.tokenizer
    encoding = fill.encode(text, return_offsets_mapping=True)  # cut to the model's positions, with a warning
    ids = np.array([encoding["input_ids"]])  # [1, seq]
    output = model.run_encoder(input_ids=ids, output_attentions=True, output_hidden_states=True)
    _, hidden_states, attentions = output
    has_head = not model.newly_initialized
    return {
        "text": text,
        "cut_at": fill.max_length if ids.shape[1] == fill.max_length and len(tokenizer.encode(text)) > ids.shape[1]
        else None,  # the tokens the model read, when the text had more
        "tokens": token_rows(tokenizer, encoding),
        "attention": packed_attention(attentions),
        "norms": [rounded(np.linalg.norm(h[0].astype(np.float64), axis=-1)) for h in hidden_states],
        "predictions": mask_predictions(model, tokenizer, ids[0], hidden_states, top_k) if has_head else None,
        "no_predictions": None if has_head else (
            f"{model.name_or_path} has no weights for the language-model head ({', '.join(model.newly_initialized)})"
            ": its guesses would be random, so none are shown. The tokens, attention and stream are the encoder's."),
        "lens": lens_note(model.config),
        "model": model_facts(model, given, output.path),
    }


def token_rows(tokenizer, encoding) -> list[dict]:
    """One row per token: its BPE piece and id, the Moses word it belongs to (normalised, and as typed) and what
    kind of token it is (``special``: a special token; ``sink``: ``<s>`` or ``</s>``; ``mask``: ``<special1>``)."""
    ids, offsets = encoding["input_ids"], encoding["offset_mapping"]
    pieces = tokenizer.convert_ids_to_tokens(ids)
    special = tokenizer.get_special_tokens_mask(ids, already_has_special_tokens=True)
    word_ids = encoding.word_ids()
    words = {}  # word index -> its normalised text: its pieces glued, the end-of-word mark dropped
    for piece, word in zip(pieces, word_ids):
        if word is not None:
            words[word] = words.get(word, "") + piece
    return [{"piece": piece, "id": int(token_id), "word": word,
             "normalised": None if word is None else words[word].removesuffix("</w>"),
             "span": None if word is None else list(span),
             "special": bool(is_special), "sink": token_id in (tokenizer.bos_token_id, tokenizer.sep_token_id),
             "mask": token_id == tokenizer.mask_token_id}
            for piece, token_id, word, span, is_special in zip(pieces, ids, word_ids, offsets, special)]


def packed_attention(attentions) -> dict:
    """Every layer's attention maps as one byte per weight, deflated and in base64: the bulk of the page.

    attentions: one [1, heads, seq, seq] per layer -> {"shape": [layers, heads, seq, seq], "levels": 255,
    "deflate": base64 of zlib(uint8 levels)}. A weight w is stored as round(255 w), so the page reads it back to
    within 0.002, finer than a colour step; deflate shrinks the many near-zero weights (the browser inflates them
    with its own DecompressionStream, no library).
    """
    maps = np.concatenate([layer[0][None] for layer in attentions])  # [layers, heads, seq, seq]
    levels = np.rint(np.clip(maps, 0.0, 1.0) * ATTENTION_LEVELS).astype(np.uint8)
    return {"shape": list(levels.shape), "levels": ATTENTION_LEVELS,
            "deflate": base64.b64encode(zlib.compress(levels.tobytes(), 9)).decode("ascii")}


def unpack_attention(packed: dict) -> np.ndarray:
    """The page's attention maps back as floats: [layers, heads, seq, seq] (what the page's script computes)."""
    levels = np.frombuffer(zlib.decompress(base64.b64decode(packed["deflate"])), dtype=np.uint8)
    return levels.reshape(packed["shape"]).astype(np.float64) / packed["levels"]


def mask_predictions(model, tokenizer, ids, hidden_states, top_k: int) -> list[dict]:
    """For each mask token, the ``top_k`` guesses after the embeddings and after each layer (the logit lens):
    the model's own LM head (``model.head``) on each hidden state, softmax over the whole vocabulary.

    ids [seq]; hidden_states: n_layers + 1 arrays [1, seq, dim]. Each layer's row also gives the probability of the
    final guess (the last layer's first), so the page shows when the answer forms.
    """
    positions = np.flatnonzero(ids == tokenizer.mask_token_id)
    streams = np.stack([h[0, positions] for h in hidden_states], axis=1)  # [masks, layers + 1, dim]
    logits = model.head(streams, labels=None)["logits"]  # [masks, layers + 1, vocab]
    probabilities = softmax(logits.astype(np.float64), axis=-1)  # as fill-mask computes its scores
    predictions = []
    for position, rows in zip(positions, probabilities):
        final = int(np.argmax(rows[-1]))
        layers = []
        for row in rows:
            best = np.argsort(-row, kind="stable")[:top_k]  # the pipeline's order, ties included
            layers.append({"guesses": [{"id": int(b), "piece": tokenizer.convert_ids_to_tokens(int(b)),
                                        "p": round_significant(row[b])} for b in best],
                           "final_p": round_significant(row[final])})
        predictions.append({"position": int(position), "final": final, "layers": layers})
    return predictions


def lens_note(config) -> str:
    """What the page's guesses after each layer are, in words, for this model's kind of layer."""
    if config.pre_norm:
        why = ("This model's layers are pre-norm: each normalises its input, and nothing normalises the stream "
               "after the last layer (FlauBERT has no final LayerNorm). So the head reads each layer's stream as it "
               "is, with no norm applied, which is exactly what it does with the last one: the last row is the "
               "fill-mask output. The earlier streams are shorter (see the residual stream below), so their "
               "guesses are flatter.")
    else:
        why = ("This model's layers are post-norm: each ends with a LayerNorm, so every layer's stream already has "
               "the scale the head reads, and no other norm is applied: the last row is the fill-mask output.")
    tied = (" The head is tied to the word-embedding table, so early rows often guess the mask token itself: its own "
            "embedding still dominates the stream there.") if FlaubertWithLMHeadModel.tied(config) else ""
    return ("Each row applies the model's own language-model head, the one fill-mask uses, to the mask's vector "
            "after the embeddings and after each layer (a \"logit lens\"), then a softmax over the whole "
            f"vocabulary. {why}{tied}")


def model_facts(model, given, path: str) -> dict:
    """Where the model comes from and what shapes it, for the page's last section."""
    config = model.config.to_dict()
    return {"given": None if given is None else str(given) if isinstance(given, (str, os.PathLike)) else repr(given),
            "folder": None if model.name_or_path is None else str(model.name_or_path),
            "architectures": model.config.architectures,  # what the checkpoint says it is
            "class": type(model).__name__,  # what it was read as (fill-mask's class)
            # (the state dict counts a tied projection once, it is the embedding table; a head drawn at random for
            # want of weights is not the checkpoint's)
            "parameters": int(sum(array.size for name, array in model.state_dict().items()
                                  if name not in model.newly_initialized)),
            "execution_path": path,
            "minflaubert": __version__,
            "config": {key: config[key] for key in sorted(config)}}


def rounded(values: np.ndarray) -> list[float]:
    """Values with SIGNIFICANT digits, as a JSON list."""
    return [round_significant(value) for value in values]


def round_significant(value) -> float:
    """``value`` to SIGNIFICANT significant digits: 0.4217194 -> 0.4217, 106.83 -> 106.8."""
    return float(f"{float(value):.{SIGNIFICANT}g}")


class Exploration:
    """An exploration page: ``save(path)`` writes it, Jupyter shows it (``_repr_html_``), ``data`` holds its
    numbers and ``html()`` the whole page."""

    def __init__(self, data: dict):
        self.data = data

    def html(self) -> str:
        """The page: the template with the data inside, as JSON that no ``</script>`` in a text can end early."""
        data = json.dumps(self.data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        data = data.replace("<", "\\u003c")  # subtle: inside <script>, "</" would close the element
        return TEMPLATE.read_text(encoding="utf-8").replace(DATA_MARK, data, 1)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the page to ``path`` (UTF-8, replaced in one step: an interrupted save leaves no half page)."""
        path = Path(path)
        with atomic_file(path) as staging:
            staging.write_text(self.html(), encoding="utf-8")
        return path

    def _repr_html_(self) -> str:
        """The page in a Jupyter output, inside an iframe so that its styles and script stay its own."""
        return (f'<iframe srcdoc="{html.escape(self.html(), quote=True)}" style="width:100%;height:900px;'
                f'border:1px solid #ccc" title="minflaubert explore"></iframe>')

    def __repr__(self):
        return (f"Exploration({self.data['text'][:40]!r}, model={self.data['model']['folder']!r}, "
                f"tokens={len(self.data['tokens'])})")
