"""weights/flaubert_tiny, the model trained in this repository and shipped as the default: its files, its parity with
transformers, the French it knows, the default of the pipelines and the command line, and its model card's table."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, require
from minflaubert import FlaubertTokenizer, FlaubertWithLMHeadModel, pipeline
from minflaubert.checkpoints import hub
from test_parity_encoder import run_transformers4

TINY = REPO / "weights" / "flaubert_tiny"

# Blanks a French reader fills at once, with the answers they would accept. The model is small and has read only
# 19th-century novels: it finds the answer among its first five proposals for most of these, not for all.
CLOZE = [
    ("Il était une <special1> .", {"fois"}),
    ("Elle ouvrit la <special1> et entra dans la chambre .", {"porte", "fenêtre"}),
    ("Il leva les <special1> vers le ciel .", {"yeux", "bras", "mains"}),
    ("Je vous <special1> de tout mon cœur .", {"aime", "remercie"}),
    ("La nuit était <special1> et froide .", {"noire", "sombre", "obscure", "claire", "belle"}),
    ("Elle avait les cheveux <special1> .", {"noirs", "blonds", "blancs", "gris", "roux", "longs"}),
    ("Le <special1> se leva sur la mer .", {"soleil", "jour", "vent", "brouillard", "lune"}),
    ("Il prit son chapeau et sortit de la <special1> .", {"maison", "chambre", "salle", "pièce", "boutique"}),
    ("Elle pleurait à chaudes <special1> .", {"larmes"}),
    ("Il demeura un <special1> silencieux .", {"moment", "instant", "peu"}),
    ("Au bout d' une <special1> , il revint .", {"heure", "minute", "semaine", "demi-heure", "année"}),
    ("Elle lui <special1> la main .", {"prit", "serra", "tendit", "donna", "baisa", "saisit"}),
    ("Il était minuit ; tout le monde <special1> dans la maison .", {"dormait"}),
    ("Il mit la main sur son <special1> .", {"cœur", "front", "épaule", "bras", "épée"}),
    ("Nous partirons <special1> matin .", {"demain", "ce"}),
    ("Le vieux <special1> aboyait devant la porte .", {"chien"}),
    ("Elle but un verre d' <special1> .", {"eau"}),
    ("Il écrivit une longue <special1> à sa mère .", {"lettre"}),
    ("Les enfants jouaient dans le <special1> .", {"jardin", "parc", "bois", "village"}),
    ("Il ferma les yeux et s' <special1> .", {"endormit"}),
]
MIN_TOP5_HITS = 15  # the shipped model finds 17 in its first five and 13 first: see "Held-out results" in its model card
MIN_TOP1_HITS = 11


def test_the_folder_is_complete_and_small():
    names = {path.name for path in TINY.iterdir()}
    assert {"config.json", "model.safetensors", "vocab.json", "merges.txt", "tokenizer_config.json",
            "README.md", "training_log.csv"} <= names
    assert sum(path.stat().st_size for path in TINY.iterdir()) <= 16 * 1024 * 1024
    config = json.loads((TINY / "config.json").read_text())
    assert config["pre_norm"] is True and config["architectures"] == ["FlaubertWithLMHeadModel"]


def test_it_is_the_default_and_lives_beside_the_package():
    assert hub.shipped_model() == TINY
    assert pipeline("fill-mask").model.config.emb_dim == 256
    assert np.asarray(pipeline("feature-extraction")("Le chat dort.")).shape[-1] == 256
    with pytest.raises(ValueError, match="text-classification needs a checkpoint fine-tuned for it: pass model="):
        pipeline("text-classification")


def test_a_missing_shipped_model_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(hub, "SHIPPED_MODEL", "flaubert_gone")
    with pytest.raises(FileNotFoundError, match="the shipped model flaubert_gone is missing from this installation"):
        pipeline("fill-mask")


def test_the_first_command_answers_offline_from_anywhere(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "minflaubert", "fill-mask", "Il leva les <special1> vers le ciel ."],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    proposals = json.loads(done.stdout)
    assert proposals[0]["token_str"] == "yeux", proposals  # the README's quick start
    info = subprocess.run([sys.executable, "-m", "minflaubert", "info"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    assert info.returncode == 0 and "fill-mask" in info.stdout, info.stderr
    classify = subprocess.run([sys.executable, "-m", "minflaubert", "classify", "Quel film !"], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=300)
    assert classify.returncode == 2 and "--model" in classify.stderr


def test_it_knows_some_french():
    fill = pipeline("fill-mask")
    top1 = top5 = 0
    for text, answers in CLOZE:
        proposals = [p["token_str"] for p in fill(text, top_k=5)]
        top1 += proposals[0] in answers
        top5 += bool(answers & set(proposals))
    assert top1 >= MIN_TOP1_HITS and top5 >= MIN_TOP5_HITS, (top1, top5)


def test_same_logits_as_transformers(tmp_path):
    """transformers 4.57.6 (5.23 cannot run pre-norm), default from_pretrained: it reads the float16 weights as
    float32, as we do."""
    tokenizer = FlaubertTokenizer.from_pretrained(TINY)
    texts = ["Il était une <special1> .", "Frédéric, en passant sur le pont, regarda la <special1> du fleuve."]
    inputs = {k: np.asarray(v) for k, v in tokenizer(texts, padding=True).items()}
    reference = run_transformers4(dict(pretrained=str(TINY), class_name="FlaubertWithLMHeadModel",
                                       inputs={k: v.tolist() for k, v in inputs.items()}, call={}), tmp_path)
    ours = FlaubertWithLMHeadModel.from_pretrained(TINY)(**inputs).logits
    real = inputs["attention_mask"].astype(bool)  # padded positions are not compared: nobody reads them
    difference = np.abs(ours[real] - reference["logits"][real]).max() / np.abs(reference["logits"][real]).max()
    assert difference <= 2e-5, difference


def test_the_model_card_table_is_what_the_evaluation_prints(shared_data):
    heldout = shared_data / "corpus" / "heldout" / "flaubert-education-sentimentale.txt"
    require(heldout.is_file(), f"{heldout} is missing")
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "evaluate_mlm.py"), "--heldout", str(heldout),
                           "--train-corpus", str(shared_data / "corpus" / "train")],
                          capture_output=True, text=True, timeout=1200, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr
    card = (TINY / "README.md").read_text(encoding="utf-8")
    for line in done.stdout.splitlines():
        if line.startswith("| flaubert_tiny") or line.startswith("| most frequent"):
            printed = [float(x) for x in re.findall(r"([\d.]+) %", line)]
            label = line.split("|")[1].strip()
            row = next(row for row in card.splitlines() if row.startswith(f"| {label} |"))
            written = [float(x) for x in re.findall(r"([\d.]+) %", row)]
            assert printed == pytest.approx(written, abs=0.3), (line, row)
