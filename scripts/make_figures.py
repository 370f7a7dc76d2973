"""Draw the figures the lessons show (tutorials/figures/*.png), from the code and the models they teach.

    pip install -e ".[tutorials]"                 # matplotlib
    python scripts/make_figures.py                # every figure, into tutorials/figures/
    python scripts/make_figures.py attention_heads speed  # some of them
    python scripts/make_figures.py --quick --out /tmp/f   # what the test runs: small sizes, one timing repetition

The lessons run without matplotlib: they show the committed PNGs. Each function below makes one figure, and its
docstring says what the figure is meant to teach. The trained model is weights/flaubert_tiny (its model card says
how it was trained); the random fixtures of tests/fixtures appear only where the mechanics are the point.
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import io
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
TRAINED = Path(os.environ.get("MINFLAUBERT_TUTORIAL_MODEL", REPO / "weights" / "flaubert_tiny"))
QUICK = False
FIGURES: dict = {}  # name -> function(plt) -> figure


def figure(function):
    FIGURES[function.__name__] = function
    return function


def trained(cls_name="FlaubertWithLMHeadModel"):
    """The trained model (as the bare encoder, "FlaubertModel", or with its LM head) and its tokenizer."""
    import warnings

    import minflaubert

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the bare encoder does not use the checkpoint's LM-head bias
        model = getattr(minflaubert, cls_name).from_pretrained(TRAINED)
    return model, minflaubert.FlaubertTokenizer.from_pretrained(TRAINED)


def lesson_namespace(prefix: str, blocks: int | None = None, until: str | None = None) -> dict:
    """Run the first ``blocks`` python blocks of a lesson, or its blocks until one defines the name ``until``, and
    return its namespace (the figure uses its data: the figure shows what the lesson prints)."""
    sys.path.insert(0, str(REPO / "scripts"))
    import render_tutorials

    path = next((REPO / "tutorials").glob(f"{prefix}_*.md"))
    namespace = {"__name__": "__figure__"}
    with contextlib.redirect_stdout(io.StringIO()):
        for block in render_tutorials.parse(path.read_text(encoding="utf-8"))[:blocks]:
            exec(compile(block.code, f"{path.name}, block {block.number}", "exec"), namespace)
            if until is not None and until in namespace:
                return namespace
    if until is not None:
        raise RuntimeError(f"{path.name} no longer defines {until!r}, which a figure reads")
    return namespace


@figure
def bpe_growth(plt):
    """Lesson 9: as merges are learned, the vocabulary grows by one symbol per merge and the text gets shorter in
    tokens; the first merges are the most frequent pairs (word endings, common short words)."""
    from minflaubert.tokenization import bpe_train

    paragraphs = lesson_namespace("09", 1)["paragraphs"]
    counts = bpe_train.count_words(paragraphs)
    state = bpe_train.PairCounts(counts)
    tokens = [sum(len(s) * w for s, w in zip(state.symbols, state.weights))]
    merges = []
    while True:
        found = state.best()
        if found is None or found[1] < 2:
            break
        state.merge(found[0])
        merges.append(found)
        tokens.append(sum(len(s) * w for s, w in zip(state.symbols, state.weights)))
    words = sum(counts.values())
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [1.2, 1]})
    left.plot(np.arange(len(tokens)), np.array(tokens) / words, color="tab:blue")
    left.set_xlabel("merges learned (= symbols added to the vocabulary)")
    left.set_ylabel("tokens per word of the text", color="tab:blue")
    left.set_title(f"{words} words of the lesson's text")
    left.axhline(1.0, color="grey", lw=0.8, ls=":")
    left.text(len(tokens) * 0.55, 1.05, "one token per word", color="grey", fontsize=8)
    twin = left.twinx()
    twin.plot(np.arange(len(merges)) + 1, [count for _, count in merges], color="tab:orange", lw=1)
    twin.set_ylabel("occurrences of the merged pair", color="tab:orange")
    first = merges[:15]
    right.barh(range(len(first))[::-1], [count for _, count in first], color="tab:orange")
    right.set_yticks(range(len(first))[::-1], [f"merge {i} {a!r} + {b!r}" for i, ((a, b), _) in enumerate(first, 1)],
                     fontsize=8)
    right.set_xlabel("occurrences in the text")
    right.set_title("the first 15 merges")
    fig.tight_layout()
    return fig


SIMILAR_WORDS = ["il", "elle", "on", "je", "homme", "femme", "enfant", "deux", "trois", "quatre", "dit", "répondit",
                 "demanda", "yeux", "cheveux", "bras"]


@figure
def embedding_table(plt):
    """Lesson 2: the trained word table and position table. Where neighbouring positions got similar vectors, a
    bright band runs along the diagonal: the model learned that position 7 is near position 8. Every declared
    position is drawn, so positions that training never reached (or reached late) show as such. Word rows are what
    carries meaning."""
    model, tokenizer = trained()
    positions = model.params["position_embeddings"]["weight"]  # every declared position
    unit = positions / np.linalg.norm(positions, axis=1, keepdims=True)
    words = model.params["embeddings"]["weight"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.4))
    image = left.imshow(unit @ unit.T, cmap="RdBu_r", vmin=-1, vmax=1)
    left.set_title(f"cosine similarity of the {len(positions)} position vectors")
    left.set_xlabel("position (0 = <s>)")
    left.set_ylabel("position")
    fig.colorbar(image, ax=left, shrink=0.8, label="cosine")
    vocab = tokenizer.get_vocab()
    chosen = [w for w in SIMILAR_WORDS if w + "</w>" in vocab]
    rows = words[[vocab[w + "</w>"] for w in chosen]]
    rows = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    image = right.imshow(rows @ rows.T, cmap="RdBu_r", vmin=-1, vmax=1)
    right.set_xticks(range(len(chosen)), chosen, rotation=60)
    right.set_yticks(range(len(chosen)), chosen)
    right.set_title("cosine similarity of some word rows")
    fig.colorbar(image, ax=right, shrink=0.8, label="cosine")
    fig.tight_layout()
    return fig


MAP_WORDS = {"pronouns": ["il", "elle", "ils", "elles", "je", "nous", "vous", "on"],
             "numbers": ["deux", "trois", "quatre", "cinq", "six", "dix", "cent", "mille"],
             "people": ["homme", "femme", "enfant", "père", "mère", "fille", "fils", "roi"],
             "speech verbs": ["dit", "répondit", "demanda", "reprit", "ajouta", "murmura", "cria"],
             "body": ["yeux", "main", "tête", "bras", "cheveux", "lèvres", "visage", "cœur"],
             "places": ["maison", "chambre", "rue", "jardin", "ville", "église", "porte", "fenêtre"]}


@figure
def word_map(plt):
    """Lesson 2: some rows of the trained word table, projected on the two directions along which they spread most
    (PCA by an SVD of the centred rows, in NumPy). Words used alike were given nearby rows, so kinds gather."""
    model, tokenizer = trained()
    vocab = tokenizer.get_vocab()
    chosen = [(kind, word) for kind, words in MAP_WORDS.items() for word in words if word + "</w>" in vocab]
    rows = model.params["embeddings"]["weight"][[vocab[word + "</w>"] for _, word in chosen]]  # [words, dim]
    centred = rows - rows.mean(axis=0)
    _, singular, directions = np.linalg.svd(centred, full_matrices=False)
    xy = centred @ directions[:2].T  # [words, 2]
    share = singular[:2] ** 2 / np.sum(singular ** 2)
    fig, axis = plt.subplots(figsize=(8, 6))
    for colour, kind in zip(plt.cm.tab10.colors, MAP_WORDS):
        points = np.array([xy[i] for i, (k, _) in enumerate(chosen) if k == kind])
        axis.scatter(points[:, 0], points[:, 1], color=colour, label=kind)
    for (_, word), (x, y) in zip(chosen, xy):
        axis.annotate(word, (x, y), textcoords="offset points", xytext=(3, 3), fontsize=8)
    axis.set_xlabel(f"first principal direction ({share[0]:.0%} of the spread)")
    axis.set_ylabel(f"second principal direction ({share[1]:.0%} of the spread)")
    axis.set_title(f"{len(chosen)} word rows of the trained model ({rows.shape[1]} numbers each), in 2-D")
    axis.legend(fontsize=8)
    fig.tight_layout()
    return fig


ELLE_SENTENCE = "la servante ouvrit la fenêtre, puis elle regarda la mer."


def elle_attention(model, tokenizer, sentence=ELLE_SENTENCE):
    """Attention weights of every layer and head for one sentence -> (tokens, weights [layers, heads, q, k])."""
    encoding = tokenizer(sentence, return_tensors="np")
    tokens = tokenizer.convert_ids_to_tokens(encoding["input_ids"][0])
    out = model(encoding["input_ids"], output_attentions=True)
    return tokens, np.stack([a[0] for a in out.attentions])


@figure
def mask_matrix(plt):
    """Lesson 3: the padding mask of a batch, and the two attention masks built from it (who may look at whom)."""
    from minflaubert import FlaubertTokenizer
    from minflaubert.nn import layers

    tokenizer = FlaubertTokenizer.from_pretrained(REPO / "tests/fixtures/tiny-model")
    batch = tokenizer(["Le chat dort sur le canapé.", "Paris"], padding=True, return_tensors="np")
    mask = layers.padding_mask(*batch["input_ids"].shape, attention_mask=batch["attention_mask"])
    panels = [("padding mask [batch, seq]", mask, "position", "sequence"),
              ("bidirectional, sequence 2 [q, k]", layers.attention_mask_matrix(mask, causal=False)[1], "key",
               "query"),
              ("causal, sequence 1 [q, k]", layers.attention_mask_matrix(mask, causal=True)[0], "key", "query")]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.8), gridspec_kw={"width_ratios": [1, 1, 1]})
    for axis, (title, matrix, xlabel, ylabel) in zip(axes, panels):
        axis.imshow(matrix, cmap="Greens", vmin=0, vmax=1.3, aspect="equal")
        for (i, j), value in np.ndenumerate(matrix):
            axis.text(j, i, int(value), ha="center", va="center", fontsize=8)
        axis.set_title(title, fontsize=10)
        axis.set_xlabel(xlabel)
        axis.set_ylabel(ylabel)
        axis.set_xticks(range(matrix.shape[1]), range(1, matrix.shape[1] + 1))  # 1-based, like the titles
        axis.set_yticks(range(matrix.shape[0]), range(1, matrix.shape[0] + 1))
    fig.tight_layout()
    return fig


@figure
def attention_heads(plt):
    """Lesson 3 §6: every head of every layer of the trained model on one sentence. Left: the weights; right: each
    head minus its column average (the mean weight its queries give each key), which separates a key every query
    looks at (a sink, or a word the head broadcasts) from a link between two particular tokens."""
    model, tokenizer = trained("FlaubertModel")
    tokens, weights = elle_attention(model, tokenizer)
    labels = [t.replace("</w>", "") for t in tokens]
    n_layers, n_heads = weights.shape[:2]
    contrast = weights - weights.mean(axis=2, keepdims=True)  # [layers, heads, queries, keys]
    limit = float(np.abs(contrast).max())
    fig, axes = plt.subplots(n_layers, 2 * n_heads, figsize=(2.1 * 2 * n_heads + 1.5, 2.2 * n_layers + 1.2))
    for layer in range(n_layers):
        for head in range(n_heads):
            for side, (matrix, cmap, low, high) in enumerate([(weights, "viridis", 0, 1),
                                                             (contrast, "RdBu_r", -limit, limit)]):
                axis = axes[layer, side * n_heads + head]
                image = axis.imshow(matrix[layer, head], cmap=cmap, vmin=low, vmax=high)
                axis.set_title(f"layer {layer}, head {head}", fontsize=8)
                last_row, first_column = layer == n_layers - 1, head == 0
                axis.set_xticks(range(len(labels)), labels if last_row else [], rotation=90, fontsize=6)
                axis.set_yticks(range(len(labels)), labels if first_column else [], fontsize=6)
                if side == 0 and layer == 0 and head == 0:
                    weight_image = image
                if side == 1 and layer == 0 and head == 0:
                    contrast_image = image
    fig.colorbar(weight_image, ax=axes[:, :n_heads], shrink=0.6, label="attention weight (query row → key column)")
    fig.colorbar(contrast_image, ax=axes[:, n_heads:], shrink=0.6, label="weight − its column's average")
    fig.suptitle(f"« {ELLE_SENTENCE} » in the trained model: rows look at columns")
    return fig


@figure
def masking(plt):
    """Lesson 3 §6: what the trained model was trained to do. Words of a sentence are hidden behind the mask token
    (as scripts/train_tiny.py hides 15 % of each training row), and the model guesses each one from the rest."""
    from minflaubert.nn import layers

    model, tokenizer = trained()
    ids = tokenizer(ELLE_SENTENCE, return_tensors="np")["input_ids"]
    tokens = [t.replace("</w>", "") for t in tokenizer.convert_ids_to_tokens(ids[0])]
    words = np.arange(1, ids.shape[1] - 1)  # not <s> and </s>: they are never hidden
    hidden = np.sort(np.random.default_rng(3).choice(words, size=max(1, round(0.15 * len(words))), replace=False))
    inputs = ids.copy()
    inputs[0, hidden] = tokenizer.mask_token_id
    probabilities = layers.softmax(model(inputs).logits[0, hidden])  # [hidden, vocab]
    fig, axis = plt.subplots(figsize=(13, 3.6))
    axis.set_xlim(-0.6, len(tokens) - 0.4)
    axis.set_ylim(-4.2, 2.6)
    axis.axis("off")
    box = dict(boxstyle="round,pad=0.3", lw=0.8)
    for j, token in enumerate(tokens):
        axis.text(j, 2, token, ha="center", va="center", fontsize=10, bbox={**box, "fc": "white"})
        masked = j in hidden
        axis.text(j, 1, "<special1>" if masked else token, ha="center", va="center", fontsize=8 if masked else 10,
                  bbox={**box, "fc": "tab:orange" if masked else "white", "alpha": 0.9})
    for j, row in zip(hidden, probabilities):
        for rank, i in enumerate(np.argsort(-row)[:3]):
            guess = tokenizer.convert_ids_to_tokens(int(i)).replace("</w>", "")
            right = guess == tokens[j]
            axis.text(j, -0.2 - 1.2 * rank, f"{guess}\n{row[i]:.2f}", ha="center", va="center", fontsize=9,
                      bbox={**box, "fc": "tab:green" if right else "0.9", "alpha": 0.8})
    for y, label in [(2, "the sentence"), (1, "what the model reads"), (-1.4, "its 3 likeliest words\n(probability)")]:
        axis.text(-0.7, y, label, ha="right", va="center", fontsize=9)
    axis.set_title(f"masked-word training: {len(hidden)} of the {len(words)} tokens hidden (orange); "
                   "green: a guess equal to the hidden word", fontsize=10)
    fig.tight_layout()
    return fig


@figure
def residual_norms(plt):
    """Lessons 4 and 11: the length of each token's vector in the residual stream, layer by layer, in the trained
    (pre-norm) model, for lesson 11's sentence: nothing renormalises the stream, so each layer's additions make it
    grow. ``<s>`` and ``</s>``, which frame every training row, are drawn apart: they do not grow like the words."""
    model, tokenizer = trained("FlaubertModel")
    ids = tokenizer(lesson_namespace("11", until="text")["text"], return_tensors="np")["input_ids"]
    tokens = [t.replace("</w>", "") for t in tokenizer.convert_ids_to_tokens(ids[0])]
    states = model(ids, output_hidden_states=True).hidden_states
    norms = np.array([np.linalg.norm(h[0], axis=-1) for h in states])  # [layers + 1, tokens]
    fig, axis = plt.subplots(figsize=(8, 4.4))
    for j, token in enumerate(tokens):
        special = token in ("<s>", "</s>")
        axis.plot(range(len(states)), norms[:, j], marker="s" if special else "o", lw=2.5 if special else 1,
                  label=f"{j + 1} {token}", color="black" if special else plt.cm.tab20(j % 20),
                  ls=":" if token == "</s>" else "-" if special or j < 10 else "--")
    axis.set_xticks(range(len(states)), ["embeddings"] + [f"after layer {i + 1}" for i in range(len(states) - 1)])
    axis.set_ylabel("‖x‖ of the token's vector")
    axis.set_title("the residual stream of the trained pre-norm model, token by token (black: <s> and </s>)")
    axis.legend(fontsize=8, ncol=2, loc="upper left")
    fig.tight_layout()
    return fig


@figure
def prenorm_postnorm(plt):
    """Lesson 4: the spread of the residual stream through a deep stack. Post-norm renormalises after every
    sub-layer (std stays at the LayerNorm's scale); pre-norm keeps adding to a stream nothing rescales. The random
    linear weights are drawn with variance 1 / fan-in, so each sub-layer adds a correction of its input's size
    (the fixtures' 0.02 init would add almost nothing and hide the effect). Third panel: why that growth helps
    training (lesson 4 §4): the same 1 % nudge of every weight moves a deep post-norm stack's output more."""
    from minflaubert import FlaubertConfig, FlaubertModel
    from minflaubert.nn import layers

    n_layers = 6 if QUICK else 24
    ids = np.arange(5, 37)[None, :]
    rng = np.random.default_rng(0)
    fig, (left, right, third) = plt.subplots(1, 3, figsize=(16, 4))
    for pre_norm, colour in [(False, "tab:blue"), (True, "tab:red")]:
        config = FlaubertConfig(vocab_size=64, emb_dim=64, n_layers=n_layers, n_heads=4, pre_norm=pre_norm)
        model = FlaubertModel(config, seed=1)
        for name, array in model.weights.items():
            if array.ndim == 2 and not name.startswith(("embeddings", "position")):
                array[...] = rng.normal(0, 1 / np.sqrt(array.shape[1]), array.shape)
        states = model(ids, output_hidden_states=True).hidden_states
        name = "pre-norm" if pre_norm else "post-norm"
        left.plot([float(np.std(h[0], axis=-1).mean()) for h in states], marker=".", color=colour, label=name)
        right.hist(states[-1][0].ravel(), bins=np.linspace(-12, 12, 97), alpha=0.6, color=colour, density=True,
                   label=f"{name}, after layer {n_layers - 1}")
    left.set_xlabel("layer (0 = embeddings)")
    left.set_ylabel("std of a token's vector (mean over tokens)")
    left.set_title(f"{n_layers} random layers of 64 dims: the stream's spread")
    left.legend()
    right.set_xlabel("activation value")
    right.set_title("every activation of the last hidden state")
    right.legend()
    output_change = lesson_namespace("04", until="output_change")["output_change"]
    depths = [1, 2, 4] if QUICK else [1, 2, 4, 8, 16, 32, 64]
    for layer, name, colour in [(layers.post_norm_layer, "post-norm", "tab:blue"),
                                (layers.pre_norm_layer, "pre-norm", "tab:red")]:
        third.plot(depths, [output_change(layer, depth, seeds=2 if QUICK else 6) for depth in depths], marker="o",
                   color=colour, label=name)
    third.set_xscale("log", base=2)
    third.set_xlabel("layers in the stack")
    third.set_ylabel("relative change of the output")
    third.set_title("output change after a 1 % nudge of every weight")
    third.legend()
    fig.tight_layout()
    return fig


def trained_heads():
    """The two heads lesson 7 fits on frozen flaubert_tiny vectors, by running the lesson's blocks up to the name
    head's pipeline (they need the corpus beside the repository): its namespace, or None without the corpus."""
    namespace = lesson_namespace("07", until="unseen")
    return namespace if namespace["CORPUS"] is not None else None


def author_confusion(lesson):
    """The author head on the novels it never saw -> (authors, confusion [true, predicted], rows summing to 1)."""
    x, y = (lesson["test_x"] - lesson["mean"]) / lesson["std"], lesson["test_y"]
    predicted = (x @ lesson["W"].T + lesson["b"]).argmax(axis=1)
    authors = list(lesson["AUTHORS"])
    confusion = np.zeros((len(authors), len(authors)))
    np.add.at(confusion, (y, predicted), 1)
    return authors, confusion / confusion.sum(axis=1, keepdims=True)


def name_probabilities(lesson):
    """The name head on the sentence lesson 7 runs it on -> (its words, the probability that each is a name)."""
    ids, positions, _ = lesson["word_starts"](lesson["unseen"])
    hidden = lesson["encoder"](np.array([ids])).last_hidden_state[0, positions]  # [words, 256]
    scores = (hidden - lesson["name_mean"]) / lesson["name_std"] @ lesson["W_name"].T + lesson["b_name"]
    encoding = lesson["tiny_tokenizer"](lesson["unseen"], return_offsets_mapping=True)
    word_ids, offsets = encoding.word_ids(), encoding["offset_mapping"]
    ends = {word: end for word, (_, end) in zip(word_ids, offsets) if word is not None}  # a word's last piece's end
    words = [lesson["unseen"][offsets[i][0]:ends[word_ids[i]]] for i in positions]  # as written, capitals and all
    return words, softmax(scores)[:, 1]


def fixture_output(name, field):
    """A random-weight fixture of tests/fixtures run on its stored inputs -> (model, tokens of example 0, output)."""
    import json

    import minflaubert

    folder = REPO / "tests/fixtures" / name
    model = getattr(minflaubert, json.load(open(folder / "config.json"))["architectures"][0]).from_pretrained(folder)
    stored = np.load(folder / "reference.npz")
    inputs = {k.split("/")[-1]: stored[k] for k in stored.files if k.startswith("plain/inputs/")}
    ids = inputs["input_ids"].reshape(-1, inputs["input_ids"].shape[-1])[0]
    tokens = [t.replace("</w>", "") for t in minflaubert.FlaubertTokenizer.from_pretrained(folder)
              .convert_ids_to_tokens(ids)]
    return model, tokens, model(**inputs)[field]


def softmax(scores, axis=-1):
    scores = np.exp(scores - scores.max(axis=axis, keepdims=True))
    return scores / scores.sum(axis=axis, keepdims=True)


def say_the_corpus_is_missing(axis, what: str) -> None:
    """A panel that cannot be drawn without ../shared (lesson 7's trained heads): it says so instead."""
    axis.text(0.5, 0.5, f"{what} needs the corpus\n(../shared/data/corpus/train)", ha="center")
    axis.set_axis_off()


@figure
def head_outputs(plt):
    """Lesson 7: what the heads return, each drawn as what it means. Three heads that learned something: the trained
    LM head, and the two heads lesson 7 fits (authors of unseen novels; names in an uncased sentence). The others
    are the random-weight fixtures, drawn with their labels and scales: which bar wins there is chance, the form of
    the answer is the point."""
    from minflaubert.apps.pipelines import pipeline

    fig, axes = plt.subplots(2, 3, figsize=(14, 7.5))
    model, tokenizer = trained()
    sentence = "il ouvrit la <special1> et sortit."
    proposals = pipeline("fill-mask", model=model, tokenizer=tokenizer)(sentence, top_k=8)
    axis = axes[0, 0]
    axis.barh(range(8)[::-1], [p["score"] for p in proposals], color="tab:green")
    axis.set_yticks(range(8)[::-1], [p["token_str"] for p in proposals])
    axis.set_xlabel("probability")
    axis.set_title(f"1. masked LM (trained flaubert_tiny)\n« {sentence.replace('<special1>', '___')} »", fontsize=9)

    lesson = trained_heads()
    axis = axes[0, 1]
    if lesson is None:
        say_the_corpus_is_missing(axis, "the author head")
    else:
        authors, confusion = author_confusion(lesson)
        image = axis.imshow(confusion, cmap="Greens", vmin=0, vmax=1)
        for (i, j), share in np.ndenumerate(confusion):
            axis.text(j, i, f"{share:.0%}", ha="center", va="center", color="white" if share > 0.5 else "black")
        axis.set_xticks(range(len(authors)), authors)
        axis.set_yticks(range(len(authors)), authors)
        axis.set_xlabel("predicted author")
        axis.set_ylabel("true author")
        fig.colorbar(image, ax=axis, label="share of the true author's paragraphs")
        axis.set_title("3. sequence classification (trained in lesson 7)\nparagraphs of novels it never saw",
                       fontsize=9)

    _, tokens, logits = fixture_output("tiny-multiple-choice", "logits")
    axis = axes[0, 2]
    axis.bar(range(logits.shape[1]), softmax(logits)[0], color="tab:grey")
    axis.set_xticks(range(logits.shape[1]), [f"choice {i + 1}" for i in range(logits.shape[1])])
    axis.set_ylabel("probability")
    axis.set_ylim(0, 1)
    axis.set_title("7. multiple choice (random weights)\none probability per choice of a question", fontsize=9)

    axis = axes[1, 0]
    if lesson is None:
        say_the_corpus_is_missing(axis, "the name head")
    else:
        words, probabilities = name_probabilities(lesson)
        axis.bar(range(len(words)), probabilities, color="tab:green")
        axis.axhline(0.5, color="grey", lw=0.8, ls=":")
        axis.set_xticks(range(len(words)), words, rotation=70, fontsize=7)
        axis.set_ylabel("probability of NOM (a name)")
        axis.set_ylim(0, 1)
        axis.set_title("4. token classification (trained in lesson 7)\nnames found in an uncased text", fontsize=9)

    _, tokens, start = fixture_output("tiny-qa-simple", "start_logits")
    _, _, end = fixture_output("tiny-qa-simple", "end_logits")
    axis = axes[1, 1]
    where = np.arange(len(tokens))
    axis.bar(where - 0.2, softmax(start[0]), width=0.4, label="answer starts here", color="tab:grey")
    axis.bar(where + 0.2, softmax(end[0]), width=0.4, label="answer ends here", color="black")
    axis.set_xticks(where, tokens, rotation=60, fontsize=8)
    axis.set_ylabel("probability")
    axis.legend(fontsize=8)
    axis.set_title("5. question answering (random weights)\nstart and end probabilities per token", fontsize=9)

    beam, tokens, starts = fixture_output("tiny-qa", "start_top_index")
    _, _, start_probs = fixture_output("tiny-qa", "start_top_log_probs")
    axis = axes[1, 2]
    axis.bar(range(len(starts[0])), start_probs[0], color="tab:grey")
    axis.set_xticks(range(len(starts[0])), [f"{tokens[i]}\n(token {i + 1})" for i in starts[0]], fontsize=8)
    axis.set_ylabel("probability")
    axis.set_title(f"6. beam QA (random weights)\nits {len(starts[0])} likeliest starts (each gets its own ends)",
                   fontsize=9)
    fig.suptitle("What the heads return, drawn as what it means (2. the adaptive softmax returns log-probabilities "
                 "over the vocabulary, as 1 does)", fontsize=10)
    fig.tight_layout()
    return fig


@figure
def fill_mask(plt):
    """Lessons 7 and 11: the trained model's ten likeliest words for lesson 11's three blanks, with their
    probabilities."""
    from minflaubert.apps.pipelines import pipeline

    model, tokenizer = trained()
    fill = pipeline("fill-mask", model=model, tokenizer=tokenizer)
    blanks = lesson_namespace("11", until="blanks")["blanks"]  # the sentences lesson 11 prints
    fig, axes = plt.subplots(1, len(blanks), figsize=(13, 4))
    for axis, sentence in zip(axes, blanks):
        proposals = fill(sentence, top_k=10)
        axis.barh(range(10)[::-1], [p["score"] for p in proposals], color="tab:green")
        axis.set_yticks(range(10)[::-1], [p["token_str"] for p in proposals])
        axis.set_xlabel("probability")
        axis.set_title(sentence.replace("<special1>", "___"), fontsize=9)
    fig.suptitle("fill-mask with weights/flaubert_tiny")
    fig.tight_layout()
    return fig


@figure
def logit_lens(plt):
    """Lesson 11: what the model would guess at the blank after the embeddings and after each layer (its LM head on
    each stage of the stream, as minflaubert explore computes it): the probability of the final top words."""
    from minflaubert.apps.explore import mask_predictions

    model, tokenizer = trained()
    text = lesson_namespace("11", until="text")["text"]
    ids = tokenizer(text, return_tensors="np")["input_ids"]
    states = model(ids, output_hidden_states=True).hidden_states
    lens = mask_predictions(model, tokenizer, ids[0], states, top_k=len(model.weights["pred_layer.proj.bias"]))[0]
    candidates = [g["id"] for g in lens["layers"][-1]["guesses"][:8]]  # the final top 8, then earlier stages' top 2
    for row in lens["layers"][:-1]:
        candidates += [g["id"] for g in row["guesses"][:2] if g["id"] not in candidates]
    table = np.array([[next(g["p"] for g in row["guesses"] if g["id"] == c) for c in candidates]
                      for row in lens["layers"]])  # [stages, candidates]
    fig, axis = plt.subplots(figsize=(9, 4.2))
    image = axis.imshow(table.T, cmap="Greens", vmin=0, vmax=1, aspect="auto")
    for (stage, j), value in np.ndenumerate(table):
        axis.text(stage, j, f"{value:.2f}", ha="center", va="center", fontsize=8,
                  color="white" if value > 0.5 else "black")
    axis.set_xticks(range(len(table)), ["embeddings"] + [f"after layer {i + 1}" for i in range(len(table) - 1)])
    axis.set_yticks(range(len(candidates)), [tokenizer.convert_ids_to_tokens(c).replace("</w>", "")
                                             for c in candidates])
    fig.colorbar(image, ax=axis, label="probability at the blank")
    axis.set_title(f"« {text.replace('<special1>', '___')} »: the guess after each stage", fontsize=10)
    fig.tight_layout()
    return fig


@figure
def loss_curve(plt):
    """Lesson 11: how the shipped model learned: the masked-LM loss on training batches, and the share of masked
    words it guessed right on held-out text (a novel of Flaubert it never saw). The continued phase's check runs on
    rows of 256 tokens and is drawn for the positions before 128 and from 128 on."""
    with open(TRAINED / "training_log.csv", newline="") as f:
        rows = list(csv.DictReader(f))

    def column(name):
        return np.array([float(r[name]) if r.get(name) else np.nan for r in rows])

    step, loss = column("step"), column("train_loss")
    fig, left = plt.subplots(figsize=(8, 4.2))
    left.plot(step, loss, color="tab:blue", lw=1)
    left.set_xlabel("training step")
    left.set_ylabel("training loss (cross-entropy, nats)", color="tab:blue")
    right = left.twinx()
    near, far = column("heldout_top1_near"), column("heldout_top1_far")
    continued = np.isfinite(near)  # the continued phase checks rows of 256 tokens, by position
    first = np.where(continued, np.nan, column("heldout_top1"))  # before it, rows of 128 tokens
    for top1, label, colour in [(first, "128-token rows", "tab:green"), (near, "positions 1-127", "tab:olive"),
                                (far, "positions 128-254", "tab:red")]:
        seen = ~np.isnan(top1)
        if seen.any():
            right.plot(step[seen], top1[seen], color=colour, marker="o", ms=3, lw=1, label=label)
    right.set_ylabel("held-out top-1 accuracy on masked words", color="tab:green")
    right.set_ylim(0, 0.6)
    jumps = np.nonzero(np.diff(loss) > 1.0)[0]
    top = np.nanmax(loss) * 0.9  # above both curves, once the first steps' loss has fallen
    if len(jumps):  # train_tiny.py's long phase: 256-token sequences (its loss is not comparable with the first)
        left.axvline(step[jumps[0] + 1], color="grey", lw=0.8, ls=":")
        left.text(step[jumps[0] + 1], top, "256-token\nsequences\nfrom here ", ha="right", va="top", fontsize=8,
                  color="grey")
    if continued.any():  # the continued phase (--init-from): every position, at a learning rate that is still high
        start = step[np.nonzero(np.isfinite(first))[0][-1]]  # the first phase's last check
        left.axvline(start, color="grey", lw=0.8, ls="--")
        left.text(start, top, " continued\n phase", ha="left", va="top", fontsize=8, color="grey")
        right.legend(loc="upper left", bbox_to_anchor=(0.1, 1.0), fontsize=8, title="held-out top-1", title_fontsize=8)
    minutes = float(rows[-1]["minutes"])
    left.set_title(f"training weights/flaubert_tiny: {int(step[-1]):,} steps, {minutes:.0f} minutes on 2 CPU cores")
    fig.tight_layout()
    return fig


def best_time(function, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


@figure
def speed(plt):
    """Lesson 10: time of one forward pass against sequence length, through the three paths of the same function
    (readable NumPy, readable + Numba kernels, the packed fast path), on a random flaubert_base-shaped encoder."""
    from minflaubert import FlaubertConfig, FlaubertModel

    if QUICK:
        config = FlaubertConfig(vocab_size=1000, emb_dim=64, n_layers=2, n_heads=4)
        lengths, repeats = [8, 32], 1
    else:
        config = FlaubertConfig(vocab_size=1000, emb_dim=768, n_layers=12, n_heads=12)
        lengths, repeats = [16, 64, 128, 256, 512], 7
    model = FlaubertModel(config)
    rng = np.random.default_rng(0)
    paths = {'readable, NumPy (path="reference")': "reference",
             'readable + Numba kernels (path="kernels")': "kernels",
             'fast path (path="fast", the default)': "fast"}
    timings = {name: [] for name in paths}
    for length in lengths:
        ids = rng.integers(14, config.vocab_size, size=(1, length))
        for name, path in paths.items():
            model.path = path
            call = lambda: model(ids)  # noqa: E731
            call()  # warm-up (compilation, buffers)
            timings[name].append(best_time(call, repeats) * 1000)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, values in timings.items():
        left.plot(lengths, values, marker="o", label=name)
    left.set_xscale("log", base=2)
    left.set_yscale("log")
    left.set_xlabel("tokens (one sequence)")
    left.set_ylabel("ms per forward pass (best of %d)" % repeats)
    left.set_title(f"{config.emb_dim} dims x {config.n_layers} layers, random weights")
    left.legend(fontsize=8)
    reference = np.array(timings['readable, NumPy (path="reference")'])
    for name, values in timings.items():
        right.plot(lengths, reference / np.array(values), marker="o", label=name)
    right.set_xscale("log", base=2)
    right.set_xlabel("tokens (one sequence)")
    right.set_ylabel("speed-up over the NumPy path")
    right.set_title("how much faster than readable NumPy")
    right.axhline(1, color="grey", lw=0.8)
    fig.suptitle(f"timings on this machine ({os.cpu_count()} cores); they vary from run to run")
    fig.tight_layout()
    return fig


def main(argv=None) -> int:
    global QUICK
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help=f"figures to draw (default: all): {', '.join(FIGURES)}")
    parser.add_argument("--out", default=str(REPO / "tutorials" / "figures"), help="folder for the PNGs")
    parser.add_argument("--quick", action="store_true", help="small sizes and one timing repetition (the test)")
    args = parser.parse_args(argv)
    QUICK = args.quick
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    unknown = [name for name in args.names if name not in FIGURES]
    if unknown:
        parser.error(f"unknown figure(s) {unknown}; known: {', '.join(FIGURES)}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in args.names or FIGURES:
        started = time.perf_counter()
        fig = FIGURES[name](plt)
        fig.savefig(out / f"{name}.png", dpi=80 if QUICK else 110)
        plt.close(fig)
        print(f"{name}.png ({time.perf_counter() - started:.1f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
