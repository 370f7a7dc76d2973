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

# Blanks a French reader fills at once, with the answers they would accept, and that the training corpus teaches
# (« Il était une ___ . » is not here: « il était une fois » occurs nowhere in it). The model is small and has read
# only 19th-century novels: it finds the answer among its first five proposals for most of these, not for all.
CLOZE = [
    ("Tout à <special1> , la porte s' ouvrit .", {"coup"}),
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
# A paragraph of ordinary prose (written for this test) that puts each blank above past position 180: what a model
# whose far positions were never learned gets wrong (the first model shipped found 1 first and 2 in its first five).
LONG_CONTEXT = (
    "Le matin était venu sans bruit sur la petite ville. Les boutiques ouvraient une à une leurs volets, et les "
    "servantes, un panier au bras, descendaient vers le marché en causant à voix basse. Sur la place, devant "
    "l'église, quelques paysans attendaient, appuyés contre leurs charrettes, que la messe fût finie. Le vieux "
    "médecin passa, salua le curé, puis s'arrêta longtemps à regarder la rivière qui coulait sous le pont, grise et "
    "lente, entre les saules. Il pensait à sa jeunesse, à Paris, aux amis qu'il avait perdus, à cette femme qu'il "
    "avait aimée autrefois et qu'il n'avait jamais revue. Le soleil montait peu à peu au-dessus des toits ; une "
    "cloche sonna neuf heures. Alors il reprit sa canne, traversa la rue et entra chez le notaire, où on l'attendait "
    "depuis une heure. Le notaire était un petit homme maigre, aux lunettes d'or, qui parlait lentement et ne "
    "souriait jamais.")
MIN_TOP5_HITS = 15  # the shipped model finds 18 in its first five and 11 first: see "Held-out results" in its model card
MIN_TOP1_HITS = 11
MIN_TOP5_HITS_LONG = 15  # after LONG_CONTEXT: 18 and 14 (the first model shipped: 2 and 1)
MIN_TOP1_HITS_LONG = 11


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


def test_it_still_knows_french_after_a_long_context():
    fill = pipeline("fill-mask")
    tokenizer = fill.tokenizer
    top1 = top5 = 0
    for text, answers in CLOZE:
        ids = tokenizer(LONG_CONTEXT + " " + text)["input_ids"]
        assert 180 < ids.index(tokenizer.mask_token_id) and len(ids) <= tokenizer.model_max_length
        proposals = [p["token_str"] for p in fill(LONG_CONTEXT + " " + text, top_k=5)]
        top1 += proposals[0] in answers
        top5 += bool(answers & set(proposals))
    assert top1 >= MIN_TOP1_HITS_LONG and top5 >= MIN_TOP5_HITS_LONG, (top1, top5)


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


@pytest.fixture(scope="module")
def evaluation(shared_data) -> str:
    """What ``scripts/evaluate_mlm.py`` prints for the shipped model on the held-out book (run once per session)."""
    heldout = shared_data / "corpus" / "heldout" / "flaubert-education-sentimentale.txt"
    require(heldout.is_file(), f"{heldout} is missing")
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "evaluate_mlm.py"), "--heldout", str(heldout),
                           "--train-corpus", str(shared_data / "corpus" / "train")],
                          capture_output=True, text=True, timeout=1800, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_model_card_tables_are_what_the_evaluation_prints(evaluation):
    card = (TINY / "README.md").read_text(encoding="utf-8")
    rows = [line for line in evaluation.splitlines() if re.match(r"\| (flaubert_tiny|most frequent|\d+-\d+) ", line)]
    assert len(rows) == 2 + 4, evaluation  # the overall table and the four bands of 64 positions
    for line in rows:
        printed = [float(x) for x in re.findall(r"([\d.]+) %", line)]
        label = line.split("|")[1].strip()
        row = next(row for row in card.splitlines() if row.startswith(f"| {label} |"))
        written = [float(x) for x in re.findall(r"([\d.]+) %", row)]
        assert printed == pytest.approx(written, abs=0.3), (line, row)


def test_every_declared_position_was_learned(evaluation):
    """The model declares 256 positions: masked words past position 128 are found at least 0.9 times as often as
    before it (the first model shipped scored 0.22: its positions 128-255 were never really trained)."""
    config = json.loads((TINY / "config.json").read_text())
    assert config["max_position_embeddings"] == FlaubertTokenizer.from_pretrained(TINY).model_max_length
    ratio = float(re.search(r"top-1 at positions \d+-\d+ / top-1 at 1-\d+: ([\d.]+)", evaluation).group(1))
    assert ratio >= 0.9, evaluation
