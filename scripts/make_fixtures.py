"""Make the golden fixtures in tests/fixtures/: tiny checkpoints with transformers' own outputs.

    pip install -e ".[parity]"; MINFLAUBERT_TRANSFORMERS4_PYTHON=/path/to/python-with-transformers-4.57.6 \
        python scripts/make_fixtures.py

Each ``tests/fixtures/tiny-*`` folder is what transformers' ``save_pretrained`` wrote for a random model (LayerNorms
and biases perturbed) plus a tiny French tokenizer, and ``reference.npz`` holds the inputs and the outputs
transformers computed. The test suite compares minflaubert with them on machines without torch. Weights are random:
any "prediction" these models make is meaningless. The tokenizer's BPE merges are learned here from a few sentences
written for the purpose, so the fixtures owe nothing to the published files.
"""
from __future__ import annotations

import collections
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
sys.path.insert(0, str(REPO / "tests"))

SENTENCES = """\
Le chat dort sur le canapé depuis ce matin.
Paris est la capitale de la France.
Marie habite à Lyon et travaille à Genève.
Nous partirons demain pour Marseille, si le temps le permet.
Les enfants jouent dans le jardin pendant que leurs parents discutent.
Quelle heure est-il ? Il est déjà midi !
Jean-Pierre a acheté trois livres et un journal.
La rivière traverse la ville avant de rejoindre la mer.
Elle a dit : « Je reviendrai l'été prochain. »
Le musée du Louvre accueille des millions de visiteurs chaque année.
Victor Hugo est né à Besançon en 1802.
On ne voit bien qu'avec le cœur ; l'essentiel est invisible pour les yeux.
Le train pour Bordeaux part à huit heures.
Les élèves de Montréal apprennent le français et l'anglais.
Il fait beau aujourd'hui, mais il pleuvra demain.
"""
SPECIALS = ["<s>", "</s>", "<pad>", "<unk>"] + [f"<special{i}>" for i in range(10)]
N_MERGES = 300


def train_tiny_bpe(sentences: str, n_merges: int):
    """Learn BPE merges the classic way: start from characters (``</w>`` marks a word's end), merge the most
    frequent adjacent pair, repeat. Returns (vocab {token: id}, merges [(a, b)])."""
    from sacremoses import MosesTokenizer

    words = collections.Counter()
    for line in sentences.splitlines():
        words.update(MosesTokenizer(lang="fr").tokenize(line, escape=False))
    spelled = {tuple(word[:-1]) + (word[-1] + "</w>",): count for word, count in words.items()}
    symbols = {s for word in spelled for s in word}
    merges = []
    for _ in range(n_merges):
        pairs = collections.Counter()
        for word, count in spelled.items():
            pairs.update({pair: count for pair in zip(word, word[1:])} if len(word) > 1 else {})
        if not pairs:
            break
        best = max(pairs, key=lambda pair: (pairs[pair], pair))  # ties broken by the pair itself: reproducible
        merges.append(best)
        symbols.add(best[0] + best[1])
        spelled = {_merge(word, best): count for word, count in spelled.items()}
    # every single character also as a word end, so any text made of these letters is representable
    letters = {c for word in words for c in word}
    symbols |= letters | {c + "</w>" for c in letters}
    vocab = {token: i for i, token in enumerate(SPECIALS + sorted(symbols))}
    return vocab, merges


def _merge(word, pair):
    out, i = [], 0
    while i < len(word):
        if i + 1 < len(word) and (word[i], word[i + 1]) == pair:
            out.append(word[i] + word[i + 1])
            i += 2
        else:
            out.append(word[i])
            i += 1
    return tuple(out)


def write_tokenizer(folder: Path, vocab, merges) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False, indent=0), encoding="utf-8")
    (folder / "merges.txt").write_text("".join(f"{a} {b}\n" for a, b in merges), encoding="utf-8")
    config = {"do_lowercase": False, "tokenizer_class": "FlaubertTokenizer", "model_max_length": 64,
              "bos_token": "<s>", "sep_token": "</s>", "cls_token": "</s>", "pad_token": "<pad>",
              "unk_token": "<unk>", "mask_token": "<special1>",
              "additional_special_tokens": [f"<special{i}>" for i in range(10)]}
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")


def fixture_specs(vocab_size: int):
    """name -> (transformers class, config, {call name: inputs})."""
    rng = np.random.default_rng(2024)
    ids = rng.integers(14, vocab_size, size=(2, 7))
    ids[:, 0], ids[0, -1], ids[1, 4] = 0, 1, 1
    ids[1, 5:] = 2
    mask = (ids != 2).astype(np.int64)
    base = dict(vocab_size=vocab_size, emb_dim=32, n_layers=2, n_heads=4, max_position_embeddings=64)
    labelled = dict(input_ids=ids, attention_mask=mask)
    classes = {0: "NÉGATIF", 1: "NEUTRE", 2: "POSITIF"}
    entities = {0: "O", 1: "B-PER", 2: "I-PER", 3: "B-LOC", 4: "I-LOC"}
    token_labels = rng.integers(0, 5, size=ids.shape)
    token_labels[ids == 2] = -100
    choices = rng.integers(14, vocab_size, size=(2, 3, 6))
    return {
        "tiny-model": ("FlaubertModel", base, {"plain": labelled}),
        "tiny-model-prenorm": ("FlaubertModel", {**base, "pre_norm": True}, {"plain": labelled}),
        "tiny-model-causal-langs": ("FlaubertModel", {**base, "causal": True, "sinusoidal_embeddings": True,
                                                       "gelu_activation": False, "n_langs": 3},
                                    {"plain": {**labelled, "langs": rng.integers(0, 3, size=ids.shape)}}),
        "tiny-lm": ("FlaubertWithLMHeadModel", base,
                    {"plain": labelled, "labels": {**labelled, "labels": np.where(mask == 1, ids, -100)}}),
        "tiny-sequence-classification": (
            "FlaubertForSequenceClassification", {**base, "id2label": classes},
            {"plain": labelled, "labels": {**labelled, "labels": np.array([2, 0])}}),
        "tiny-token-classification": (
            "FlaubertForTokenClassification", {**base, "id2label": entities},
            {"plain": labelled, "labels": {**labelled, "labels": token_labels}}),
        "tiny-qa-simple": ("FlaubertForQuestionAnsweringSimple", base,
                           {"plain": labelled, "labels": {**labelled, "start_positions": np.array([1, 2]),
                                                          "end_positions": np.array([3, 2])}}),
        # p_mask keeps padding out of the beam: padded positions share one (zero) state, so their scores tie
        # exactly, and torch.topk orders exact ties in no documented way.
        "tiny-qa": ("FlaubertForQuestionAnswering", {**base, "start_n_top": 3, "end_n_top": 2},
                    {"plain": {**labelled, "p_mask": 1.0 - mask}, "labels": {**labelled, "start_positions": np.array([1, 2]),
                                                   "end_positions": np.array([3, 2]),
                                                   "cls_index": np.array([0, 0]),
                                                   "is_impossible": np.array([0.0, 1.0])}}),
        "tiny-multiple-choice": ("FlaubertForMultipleChoice", {**base, "num_labels": 1},
                                 {"plain": {"input_ids": choices},
                                  "labels": {"input_ids": choices, "labels": np.array([1, 2])}}),
    }


def reference_outputs(folder: Path, class_name: str, config: dict, inputs: dict) -> dict:
    """transformers' outputs, from 5.23 in this process, or from 4.57.6 in another for pre-norm models."""
    flags = dict(output_hidden_states=True)
    if not config.get("pre_norm"):
        from reference import make_case

        return make_case(folder, class_name, config, inputs, {**flags, "output_attentions": True})
    python = os.environ["MINFLAUBERT_TRANSFORMERS4_PYTHON"]  # transformers 5.23 crashes on pre-norm models
    with tempfile.TemporaryDirectory() as tmp:
        spec = dict(folder=str(folder), class_name=class_name, config=config, call=flags,
                    inputs={k: np.asarray(v).tolist() for k, v in inputs.items()})
        Path(tmp, "spec.json").write_text(json.dumps(spec))
        subprocess.run([python, str(REPO / "tests" / "reference.py"), f"{tmp}/spec.json", f"{tmp}/out.npz"],
                       check=True, env={**os.environ, "PYTHONPATH": ""})
        return dict(np.load(f"{tmp}/out.npz"))


def main() -> None:
    vocab, merges = train_tiny_bpe(SENTENCES, N_MERGES)
    tokenizer_folder = FIXTURES / "tiny-tokenizer"
    shutil.rmtree(tokenizer_folder, ignore_errors=True)
    write_tokenizer(tokenizer_folder, vocab, merges)
    for name, (class_name, config, calls) in fixture_specs(len(vocab)).items():
        folder = FIXTURES / name
        shutil.rmtree(folder, ignore_errors=True)
        arrays = {}
        for i, (call, inputs) in enumerate(calls.items()):
            outputs = reference_outputs(folder, class_name, config, inputs)  # same seed: same weights each call
            arrays.update({f"{call}/inputs/{k}": np.asarray(v) for k, v in inputs.items()})
            arrays.update({f"{call}/outputs/{k}": v for k, v in outputs.items()})
        np.savez_compressed(folder / "reference.npz", **arrays)
        for file in ("vocab.json", "merges.txt", "tokenizer_config.json"):
            shutil.copy(tokenizer_folder / file, folder / file)
        print(f"{name}: {class_name}, {sum(f.stat().st_size for f in folder.iterdir()) / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
