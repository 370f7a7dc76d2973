"""``minflaubert explore``: the numbers its page embeds, checked against the library (no browser here; the page in
Chromium is tests/test_explore_browser.py).

The shipped model is retrained from time to time, so no prediction is written down: the page's guesses are
compared with the fill-mask pipeline and with the LM head computed by hand, at run time.
"""
import json
import re
import subprocess
import sys
import warnings

import numpy as np
import pytest

from conftest import FIXTURES, REPO
import minflaubert
from minflaubert import FlaubertModel, FlaubertTokenizer, FlaubertWithLMHeadModel
from minflaubert.apps.explore import SIGNIFICANT, explore, unpack_attention
from minflaubert.apps.pipelines import pipeline
from minflaubert.nn.layers import softmax
from minflaubert.tokenization.moses import moses_tokenize, normalize
from test_hub import fake_hub, files_of, go_offline  # noqa: F401 (fake_hub: a fixture, an HTTP hub on 127.0.0.1)

TEXT = "Elle ouvrit la <special1> ."
ROUNDING = 10.0 ** (1 - SIGNIFICANT)  # the relative step of a number kept with SIGNIFICANT digits
LONG_TEXT = ("La servante ouvrit la fenêtre, puis elle regarda la mer ; le vieux marin, assis sur le banc, leva les "
             "yeux vers le ciel et se mit à parler de la <special1> qui tombait depuis le matin sur les toits du "
             "village. ") * 3


@pytest.fixture(scope="module")
def shipped():
    return explore(TEXT)


@pytest.fixture(scope="module")
def reference():
    """The shipped model run by hand: ids, hidden states and attention maps straight from the library."""
    model = FlaubertWithLMHeadModel.from_pretrained(minflaubert.checkpoints.hub.shipped_model())
    tokenizer = FlaubertTokenizer.from_pretrained(minflaubert.checkpoints.hub.shipped_model())
    ids = np.array([tokenizer.encode(TEXT)])
    output = model(ids, output_attentions=True, output_hidden_states=True)
    return model, tokenizer, ids[0], output


def test_the_package_exports_explore():
    assert minflaubert.explore is explore and "explore" in dir(minflaubert)


def test_tokens_are_the_tokenizers(shipped, reference):
    _, tokenizer, ids, _ = reference
    tokens = shipped.data["tokens"]
    assert [t["id"] for t in tokens] == ids.tolist()
    assert [t["piece"] for t in tokens] == tokenizer.convert_ids_to_tokens(ids.tolist())
    assert [t["sink"] for t in tokens] == [True] + [False] * (len(ids) - 2) + [True]
    assert [t["mask"] for t in tokens] == [i == tokenizer.mask_token_id for i in ids]
    assert [t["special"] for t in tokens] == [True, False, False, False, True, False, True]
    words = [t["normalised"] for t in tokens if t["word"] is not None and not t["special"]]
    assert words == moses_tokenize(normalize("Elle ouvrit la", lowercase=True)) + ["."]
    assert [TEXT[slice(*t["span"])] for t in tokens if t["span"]] == ["Elle", "ouvrit", "la", "<special1>", "."]


def test_a_word_of_several_pieces_keeps_them_together():
    data = explore("anticonstitutionnellement <special1>", model=FIXTURES / "tiny-lm").data
    tokenizer = FlaubertTokenizer.from_pretrained(FIXTURES / "tiny-lm")
    pieces = tokenizer.tokenize("anticonstitutionnellement")
    first = [t for t in data["tokens"] if t["word"] == 0]
    assert [t["piece"] for t in first] == pieces and len(pieces) > 1
    assert {t["normalised"] for t in first} == {"anticonstitutionnellement"}


def test_attention_is_the_models_to_one_byte(shipped, reference):
    _, _, ids, output = reference
    maps = unpack_attention(shipped.data["attention"])  # [layers, heads, seq, seq]
    expected = np.stack([layer[0] for layer in output.attentions])
    assert maps.shape == expected.shape == (4, 4, len(ids), len(ids))
    assert np.abs(maps - expected).max() <= 0.5 / 255 + 1e-6
    assert np.allclose(maps.sum(axis=-1), 1, atol=len(ids) / 255)


def test_norms_are_the_hidden_states_lengths(shipped, reference):
    *_, output = reference
    expected = np.stack([np.linalg.norm(h[0], axis=-1) for h in output.hidden_states])  # [layers + 1, seq]
    np.testing.assert_allclose(shipped.data["norms"], expected, rtol=ROUNDING)


def test_the_last_layer_guesses_are_the_fill_mask_pipelines(shipped):
    proposals = pipeline("fill-mask")(TEXT, top_k=5)
    (mask,) = shipped.data["predictions"]
    last = mask["layers"][-1]["guesses"]
    assert [g["id"] for g in last] == [p["token"] for p in proposals]
    np.testing.assert_allclose([g["p"] for g in last], [p["score"] for p in proposals], rtol=ROUNDING)
    assert mask["final"] == proposals[0]["token"] and mask["position"] == 4
    assert mask["layers"][-1]["final_p"] == last[0]["p"]


def test_each_layer_guesses_with_the_lm_head_on_its_raw_stream(shipped, reference):
    """The lens by hand, as lesson 11 computes the head: embeddings @ vector + bias, no norm, for every layer."""
    model, tokenizer, ids, output = reference
    p = model.params
    (mask,) = shipped.data["predictions"]
    assert len(mask["layers"]) == model.config.n_layers + 1
    for layer, hidden in zip(mask["layers"], output.hidden_states):
        scores = p["embeddings"]["weight"] @ hidden[0, mask["position"]] + p["pred_layer"]["proj"]["bias"]
        probabilities = softmax(scores.astype(np.float64))
        best = np.argsort(-probabilities)[:5]
        assert [g["id"] for g in layer["guesses"]] == best.tolist()
        assert [g["piece"] for g in layer["guesses"]] == tokenizer.convert_ids_to_tokens(best.tolist())
        np.testing.assert_allclose([g["p"] for g in layer["guesses"]], probabilities[best], rtol=ROUNDING)
        np.testing.assert_allclose(layer["final_p"], probabilities[mask["final"]], rtol=ROUNDING)
    assert "no norm applied" in shipped.data["lens"] and "pre-norm" in shipped.data["lens"]


def test_every_mask_gets_its_guesses_and_top_k_is_honoured():
    data = explore("Le <special1> dort sur le <special1> .", model=FIXTURES / "tiny-lm", top_k=3).data
    proposals = pipeline("fill-mask", FIXTURES / "tiny-lm")("Le <special1> dort sur le <special1> .", top_k=3)
    assert len(data["predictions"]) == 2
    for mask, expected in zip(data["predictions"], proposals):
        assert [len(layer["guesses"]) for layer in mask["layers"]] == [3] * 3  # tiny-lm: 2 layers
        assert [g["id"] for g in mask["layers"][-1]["guesses"]] == [p["token"] for p in expected]
    assert "post-norm" in data["lens"]


def test_a_text_without_mask_has_an_empty_list_of_guesses():
    assert explore("Le chat dort.", model=FIXTURES / "tiny-lm").data["predictions"] == []


def test_a_model_without_lm_head_still_shows_the_rest():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning about the missing head: the page says it
        data = explore(TEXT, model=FIXTURES / "tiny-model").data
    config = FlaubertModel.from_pretrained(FIXTURES / "tiny-model").config
    assert data["predictions"] is None and "tiny-model has no weights for the language-model head" in \
        data["no_predictions"]
    assert data["attention"]["shape"] == [config.n_layers, config.n_heads, len(data["tokens"]), len(data["tokens"])]
    assert len(data["norms"]) == config.n_layers + 1
    assert data["model"]["folder"].endswith("tiny-model") and data["model"]["config"]["emb_dim"] == config.emb_dim
    assert data["model"]["architectures"] == ["FlaubertModel"]
    assert data["model"]["parameters"] == FlaubertModel.from_pretrained(FIXTURES / "tiny-model").num_parameters()


def test_a_hub_repository_id_works_also_offline(fake_hub, monkeypatch):
    fake_hub.repos["someone/flaubert-lm"] = files_of(FIXTURES / "tiny-lm")
    by_folder = explore(TEXT, model=FIXTURES / "tiny-lm").data
    by_id = explore(TEXT, model="someone/flaubert-lm").data
    assert by_id["predictions"] == by_folder["predictions"] and by_id["attention"] == by_folder["attention"]
    assert by_id["model"]["given"] == "someone/flaubert-lm"
    assert "models--someone--flaubert-lm" in by_id["model"]["folder"]  # where it was loaded from: the hub's cache
    fake_hub.stop()
    go_offline(monkeypatch)
    assert explore(TEXT, model="someone/flaubert-lm").data["predictions"] == by_folder["predictions"]


def test_the_model_section_says_where_it_came_from(shipped):
    facts = shipped.data["model"]
    assert facts["given"] is None and facts["folder"] == str(minflaubert.checkpoints.hub.shipped_model())
    assert facts["class"] == "FlaubertWithLMHeadModel" and facts["execution_path"] == "kernels"
    assert facts["config"]["n_layers"] == 4 and facts["config"]["pre_norm"] is True
    assert 5e6 < facts["parameters"] < 1e7  # the tied projection counted once (README: 7 million)


def test_the_page_is_self_contained_and_carries_the_data(shipped, tmp_path):
    page = shipped.save(tmp_path / "page.html").read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page), "the page loads something from a server"
    assert "<script src" not in page and "@import" not in page and "url(http" not in page
    embedded = re.search(r'<script id="page-data" type="application/json">(.*?)</script>', page, re.S).group(1)
    assert json.loads(embedded) == json.loads(json.dumps(shipped.data))
    assert shipped._repr_html_().startswith("<iframe srcdoc=") and "&lt;script" in shipped._repr_html_()


def test_a_text_cannot_close_the_script_early(tmp_path):
    text = "</script><script>alert(1)</script> <!-- <special1>"
    exploration = explore(text, model=FIXTURES / "tiny-lm")
    page = exploration.html()
    assert page.count("</script>") == 2  # the data's and the program's, none from the text
    embedded = re.search(r'<script id="page-data" type="application/json">(.*?)</script>', page, re.S).group(1)
    assert json.loads(embedded)["text"] == text


def test_a_page_of_128_tokens_stays_under_2_mb(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (a text longer than the model's positions would warn; this one is not)
        exploration = explore(LONG_TEXT[:700])
    n_tokens = len(exploration.data["tokens"])
    size = exploration.save(tmp_path / "long.html").stat().st_size
    assert 120 <= n_tokens <= 160, n_tokens
    assert size < 2_000_000, f"{n_tokens} tokens: {size:,} bytes"


def test_a_text_longer_than_the_model_is_cut_with_a_warning():
    with pytest.warns(UserWarning, match="cut to the model's 256"):
        data = explore(LONG_TEXT * 3).data
    assert len(data["tokens"]) == 256 and data["attention"]["shape"][-1] == 256
    assert data["cut_at"] == 256 and explore(TEXT).data["cut_at"] is None


def test_bad_arguments_are_clear_errors():
    with pytest.raises(TypeError, match="text must be a str"):
        explore(["Le chat"])
    with pytest.raises(ValueError, match="top_k"):
        explore(TEXT, top_k=0)
    with pytest.raises(TypeError, match="unexpected keyword arguments \\['topk'\\].*revision"):
        explore(TEXT, topk=3)
    with pytest.raises(OSError):
        explore(TEXT, model=FIXTURES / "no-such-model")


def test_the_command_writes_the_page_and_prints_its_path(tmp_path):
    result = subprocess.run([sys.executable, "-m", "minflaubert", "explore", TEXT, "-o", str(tmp_path / "p.html"),
                             "--model", str(FIXTURES / "tiny-lm"), "--top-k", "2"],
                            capture_output=True, text=True, encoding="utf-8", cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert printed["output"] == str(tmp_path / "p.html") and printed["bytes"] == (tmp_path / "p.html").stat().st_size
    assert "minflaubert explore" in (tmp_path / "p.html").read_text(encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "minflaubert", "explore", "--help"], capture_output=True,
                            text=True, cwd=REPO, timeout=60)
    assert result.returncode == 0 and "example:" in result.stdout
