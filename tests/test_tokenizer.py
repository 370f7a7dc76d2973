"""Tests of minflaubert's FlaubertTokenizer.

Three groups:

- asset-free tests on a tiny vocabulary written to a temporary folder (run everywhere): BPE logic, special tokens,
  padding/truncation, errors, save/load, Moses steps against sacremoses itself, offsets property;
- parity with transformers' ``FlaubertTokenizer`` on every paragraph of a French novel plus hand-picked edge strings,
  with the published uncased vocabulary (need transformers and ``../shared/data``: skipped on a laptop, run in CI);
- the offsets property on the same novel.
"""
import json
import re
import string

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from sacremoses import MosesPunctNormalizer, MosesTokenizer

from minflaubert.tokenization.moses import moses_tokenize, normalize
from minflaubert.tokenization.tokenizer import FlaubertTokenizer

# ---------------------------------------------------------------------------------------------------------------------
# A tiny tokenizer (no assets needed)
# ---------------------------------------------------------------------------------------------------------------------

SPECIALS = ["<s>", "</s>", "<pad>", "<unk>"] + [f"<special{i}>" for i in range(10)]
TINY_MERGES = ["l e", "l e</w>", "a a", "é t", "ét é</w>", "b o", "bo n", "j o", "jo u", "jou r</w>", "bon jour</w>",
               "l '</w>",
               ". .", ".. .</w>"]
TINY_WORDS = ["l", "e", "a", "é", "t", "b", "o", "n", "j", "u", "r", "le", "le</w>", "aa", "ét", "été</w>", "bo",
              "bon", "jo", "jou", "jour</w>", "bonjour</w>", "a</w>", "e</w>", "l'</w>", ",</w>", ".</w>", "!</w>",
              "?</w>", '"</w>', "...</w>"]


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny")
    vocab = {token: i for i, token in enumerate(SPECIALS + TINY_WORDS)}
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text("\n".join(TINY_MERGES) + "\n", encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True}), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def tiny(tiny_folder):
    return FlaubertTokenizer.from_pretrained(tiny_folder)


def test_bpe_merges_in_rank_order(tiny):
    assert tiny.bpe("bonjour") == ("bonjour</w>",)
    assert tiny.bpe("le") == ("le</w>",)
    assert tiny.bpe("été") == ("été</w>",)
    assert tiny.bpe("lequel") == ("le", "q", "u", "e", "l</w>")  # "le" inside a word, "le</w>" at its end
    assert tiny.bpe("x") == ("x</w>",)


def test_bpe_merges_left_to_right_without_overlap(tiny):
    assert tiny.bpe("aaa") == ("aa", "a</w>")
    assert tiny.bpe("aaaa") == ("aa", "a", "a</w>")  # the second "a a" overlaps the first: not merged
    assert tiny.bpe("aaaaa") == ("aa", "aa", "a</w>")


def test_tokenize_and_ids(tiny):
    assert tiny.tokenize("Bonjour, l'été !") == ["bonjour</w>", ",</w>", "l'</w>", "été</w>", "!</w>"]
    ids = tiny.encode("Bonjour xyz")
    assert ids[0] == tiny.bos_token_id and ids[-1] == tiny.sep_token_id
    assert ids[1] == tiny.convert_tokens_to_ids("bonjour</w>")
    assert ids[2:-1] == [tiny.unk_token_id] * 3  # x, y, z</w> are unknown
    assert tiny.convert_ids_to_tokens(ids[:2]) == ["<s>", "bonjour</w>"]
    assert tiny.convert_ids_to_tokens(10 ** 6) == "<unk>"


def test_special_tokens(tiny):
    assert tiny.all_special_tokens[:5] == ["<s>", "<unk>", "</s>", "<pad>", "<special1>"]
    assert tiny.mask_token == "<special1>" and tiny.cls_token == tiny.sep_token == "</s>"
    assert tiny.build_inputs_with_special_tokens([7, 8]) == [0, 7, 8, 1]
    assert tiny.build_inputs_with_special_tokens([7], [8, 9]) == [0, 7, 1, 8, 9, 1]
    assert tiny.get_special_tokens_mask([7], [8, 9]) == [1, 0, 1, 0, 0, 1]
    assert tiny.get_special_tokens_mask([0, 20, 1, 2], already_has_special_tokens=True) == [1, 0, 1, 1]
    assert tiny.create_token_type_ids_from_sequences([7], [8, 9]) == [0, 0, 0, 1, 1, 1]
    # Special tokens typed in the text stay whole and are not lowercased.
    assert tiny.tokenize("le <special1> bonjour<s>") == ["le</w>", "<special1>", "bonjour</w>", "<s>"]
    assert "<s>" not in tiny.tokenize("<S>")  # matched before lowercasing: "<S>" is plain text


def test_missing_special_tokens_are_appended(tmp_path):
    (tmp_path / "vocab.json").write_text(json.dumps({"a</w>": 0}), encoding="utf-8")
    (tmp_path / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    tok = FlaubertTokenizer(tmp_path / "vocab.json", tmp_path / "merges.txt")
    assert len(tok) == tok.vocab_size == 1 + 14
    assert tok.encode("a") == [tok.bos_token_id, 0, tok.sep_token_id]


def test_call_padding_truncation_pairs(tiny):
    batch = tiny(["bonjour le", "été"], padding=True, return_token_type_ids=True, return_special_tokens_mask=True)
    assert batch["input_ids"][1][-1] == tiny.pad_token_id
    assert batch["attention_mask"] == [[1, 1, 1, 1], [1, 1, 1, 0]]
    assert batch["special_tokens_mask"][1] == [1, 0, 1, 1]
    assert "token_type_ids" not in tiny("été") and "token_type_ids" in batch
    pair = tiny("bonjour le", "été", return_token_type_ids=True)
    assert pair["token_type_ids"] == [0, 0, 0, 0, 1, 1]
    assert tiny("bonjour le le le", max_length=4)["input_ids"] == tiny.encode("bonjour le")  # max_length truncates
    padded = tiny("été", padding="max_length", max_length=6, return_tensors="np")
    assert padded["input_ids"].shape == (1, 6) and padded["input_ids"].dtype == np.int64
    only_first = tiny("le le le", "été été", truncation="only_first", max_length=6)
    assert only_first["input_ids"] == tiny.encode("le", "été été")
    assert tiny("le le", "été été", truncation="only_second", max_length=5)["input_ids"] == tiny.encode("le le", "")
    assert tiny([], padding=True)["input_ids"] == []


def test_word_ids_and_offsets(tiny):
    text = "Bonjour,  l’ÉTÉ…"
    enc = tiny(text, return_offsets_mapping=True)
    assert enc.word_ids() == [None, 0, 1, 2, 3, 4, None]
    spans = enc["offset_mapping"]
    assert [text[a:b] for a, b in spans[1:-1]] == ["Bonjour", ",", "l’", "ÉTÉ", "…"]
    assert spans[0] == spans[-1] == (0, 0)
    pair = tiny("le", "le le", return_offsets_mapping=True)
    assert pair.word_ids() == [None, 0, None, 0, 1, None]
    assert pair["offset_mapping"][3:5] == [(0, 2), (3, 5)]


def test_decode(tiny):
    ids = tiny.encode("Bonjour, l'été !")
    assert tiny.decode(ids) == "<s>bonjour , l' été ! </s>"
    assert tiny.decode(ids, skip_special_tokens=True) == "bonjour , l' été !"
    assert tiny.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=True) == "bonjour, l' été!"
    assert tiny.batch_decode(np.array([ids, ids])) == [tiny.decode(ids)] * 2
    assert tiny.convert_tokens_to_string(["bo", "n", "jour</w>", "!</w>"]) == "bonjour !"


def test_save_and_load_round_trip(tiny, tmp_path):
    tiny.save_pretrained(tmp_path / "saved")
    again = FlaubertTokenizer.from_pretrained(tmp_path / "saved")
    assert again.do_lowercase and again.encoder == tiny.encoder and again.bpe_ranks == tiny.bpe_ranks
    assert again.encode("Bonjour l'été") == tiny.encode("Bonjour l'été")
    config = json.loads((tmp_path / "saved" / "tokenizer_config.json").read_text())
    assert config["do_lowercase"] is True


@pytest.mark.parametrize("kwargs, argument", [
    ({"padding": "bogus"}, "padding"), ({"padding": 3}, "padding"), ({"truncation": "sideways"}, "truncation"),
    ({"max_length": 0}, "max_length"), ({"max_length": -3}, "max_length"), ({"max_length": 2.5}, "max_length"),
    ({"return_tensors": "pt"}, "return_tensors"), ({"text_pair": ["a", "b"]}, "text_pair"),
])
def test_bad_arguments_name_themselves(tiny, kwargs, argument):
    with pytest.raises((ValueError, TypeError), match=argument):
        tiny("bonjour", **kwargs)


def test_bad_inputs(tiny, tmp_path):
    for text, argument in ((None, "text"), (42, "text"), (b"bytes", "text"), (["a", 3], r"text\[1\]")):
        with pytest.raises(TypeError, match=argument):
            tiny(text)
    with pytest.raises(ValueError, match="text_pair"):
        tiny(["a", "b"], text_pair=["a"])
    with pytest.raises(ValueError, match="padding"):
        tiny(["a", "a a"], return_tensors="np")
    with pytest.raises(TypeError, match="ids"):
        tiny.decode("abc")
    with pytest.raises(TypeError, match="ids"):
        tiny.decode([1.5])
    with pytest.raises(OSError, match="nowhere"):
        FlaubertTokenizer.from_pretrained(tmp_path / "nowhere")
    with pytest.raises(OSError, match="merges.txt"):
        (tmp_path / "vocab.json").write_text("{}")
        FlaubertTokenizer.from_pretrained(tmp_path)
    (tmp_path / "merges.txt").write_text("a b\n")
    (tmp_path / "vocab.json").write_text("{oops")
    with pytest.raises(ValueError, match="vocab_file: .*vocab.json"):
        FlaubertTokenizer.from_pretrained(tmp_path)
    (tmp_path / "vocab.json").write_text("{}")
    (tmp_path / "tokenizer_config.json").write_text("[]")
    with pytest.raises(ValueError, match="tokenizer_config"):
        FlaubertTokenizer.from_pretrained(tmp_path)


EDGE_STRINGS = [
    "", " ", "\n\n", "\x00\x01\x7f", "\ud800 surrogate \udfff", "a" * 5000, "é" * 3000 + " " + "x. " * 700,
    "😀 👍🏽 漢字 한국어 العربية", "C'est l'été… « Déjà » !", "M. Dupont, Mme. X et U.S.A. etc.", "1\u00a0000,5 € 3,14",
    'Il a dit ,"non". Et ."oui"', "``Hi'' ‘a’ „b“ –— ´´", "ÉCOLE Σ ΑΣ İstanbul ß", "e\u0301cole cafe\u0301",
    "DOTMULTI ... .. .",
    "a\tb\nc\r\nd", "Le <special1> est <s>bleu</s><pad><unk>", "<S> <special10> <special", "aujourd'hui l'homme qu'il",
    "(a) [b] {c} <d> 50% 3:4 a|b & c", ".'", "'''", "x.", 'Ça,"dit-il". Ok.', "。．，　（）", "\u200b\u200d\ufeff\u2028",
    "ﬁn ﬂ", "  leading and trailing  ", "Vive le Québec libre!!! ???", "l'", "'l", "-- - — –", "\U0010ffff \ue000",
]


def test_any_string_never_fails(tiny):
    for text in EDGE_STRINGS:
        enc = tiny(text, text, return_offsets_mapping=True, return_special_tokens_mask=True, truncation=True,
                   max_length=64, padding="max_length")
        assert len(enc["input_ids"]) == len(enc["offset_mapping"]) == len(enc.word_ids()) == 64
        tiny.decode(enc["input_ids"])
        assert all(0 <= a <= b <= len(text) for a, b in enc["offset_mapping"])


@given(st.text(max_size=60))
def test_any_random_string_never_fails(text):
    tok = _TINY_FOR_HYPOTHESIS
    enc = tok(text, return_offsets_mapping=True)
    assert len(enc["input_ids"]) == len(enc["offset_mapping"])
    assert all(0 <= a <= b <= len(text) for a, b in enc["offset_mapping"])


# ---------------------------------------------------------------------------------------------------------------------
# Our Moses steps against sacremoses itself (sacremoses is a dependency: no assets needed)
# ---------------------------------------------------------------------------------------------------------------------

_SACRE_NORMALIZER = MosesPunctNormalizer(lang="fr")
_SACRE_TOKENIZER = MosesTokenizer(lang="fr")
FRENCH_ALPHABET = (string.ascii_letters + "àâäçéèêëîïôöùûüÿœæÀÂÇÉÈÊËÎÏÔÙÛÜŒ" + "0123456789" + "      \n\u00a0"
                   + ".,;:!?'’«»\"()-–—…%$€/\u0301´`‘“”")
french_text = st.text(alphabet=FRENCH_ALPHABET, max_size=80)


def _reference_words(text: str, lowercase: bool) -> list[str]:
    """transformers' pipeline, spelled out with the slow reference functions of sacremoses."""
    import unicodedata

    text = unicodedata.normalize("NFC", text.replace("``", '"').replace("''", '"'))
    text = text.lower() if lowercase else text
    for a, b in _SACRE_NORMALIZER.REPLACE_UNICODE_PUNCTUATION:
        text = re.sub(a, b, text)
    text = _SACRE_NORMALIZER.normalize(text)
    text = "".join(ch for ch in text if not unicodedata.category(ch).startswith("C"))
    return _SACRE_TOKENIZER.tokenize(text, escape=False)


@given(french_text, st.booleans())
def test_moses_steps_equal_sacremoses(text, lowercase):
    assert moses_tokenize(normalize(text, lowercase)) == _reference_words(text, lowercase)


def test_moses_steps_equal_sacremoses_on_edge_strings():
    for text in EDGE_STRINGS:
        for lowercase in (False, True):
            assert moses_tokenize(normalize(text, lowercase)) == _reference_words(text, lowercase), text


# ---------------------------------------------------------------------------------------------------------------------
# Offsets: each token's original span, normalised and Moses-tokenized, gives back the token
# ---------------------------------------------------------------------------------------------------------------------

# Normalisation rules that create characters (documented in offsets.align_words): there the spans are
# best-effort, so the exact property is checked on text without them.
_CREATING_RULES = re.compile(r"\d\u00a0\d|['’`´‘][\u0301]*['’`´‘]")


def check_offsets(tok: FlaubertTokenizer, text: str) -> None:
    """The documented rule: the normalised, Moses-tokenized span of a token is its text, or contains it when the span
    is shared with a neighbour (one original character became several, e.g. ``…`` -> ``...`` cut by BPE)."""
    enc = tok(text, return_offsets_mapping=True, add_special_tokens=False)
    pieces = tok.tokenize(text)  # the pieces themselves (the ids of unknown pieces would read "<unk>")
    spans = enc["offset_mapping"]
    assert len(spans) == len(pieces)
    for k, (piece, (a, b)) in enumerate(zip(pieces, spans)):
        assert 0 <= a < b <= len(text), (piece, a, b)
        if piece in tok.all_special_tokens:
            assert text[a:b] == piece
            continue
        piece_text = piece[:-4] if piece.endswith("</w>") else piece
        normalised = "".join(moses_tokenize(normalize(text[a:b], tok.do_lowercase)))
        shared = (k > 0 and spans[k - 1][1] > a) or (k + 1 < len(spans) and spans[k + 1][0] < b)
        if shared:
            assert piece_text in normalised, (text, piece, text[a:b])
        else:
            assert normalised == piece_text, (text, piece, text[a:b])


@given(french_text)
def test_offsets_property_random_french(text):
    assume(not _CREATING_RULES.search(text))
    check_offsets(_TINY_FOR_HYPOTHESIS, text)


def test_offsets_on_edge_strings(tiny):
    for text in ["L’été… « Déjà » !", "e\u0301cole", "``Hi'' ok", "a\nb", "M. Dupont, etc...", "Le <special1> est"]:
        check_offsets(tiny, text)


# A module-level tiny tokenizer for hypothesis tests (function-scoped fixtures don't mix with @given).
def _build_tiny_for_hypothesis():
    import tempfile
    from pathlib import Path

    folder = Path(tempfile.mkdtemp(prefix="minflaubert-tiny-"))
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(SPECIALS + TINY_WORDS)}), "utf-8")
    (folder / "merges.txt").write_text("\n".join(TINY_MERGES) + "\n", encoding="utf-8")
    return FlaubertTokenizer(folder / "vocab.json", folder / "merges.txt", do_lowercase=True)


_TINY_FOR_HYPOTHESIS = _build_tiny_for_hypothesis()

# ---------------------------------------------------------------------------------------------------------------------
# Parity with transformers on a novel (needs transformers and ../shared/data)
# ---------------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def uncased_folder(shared_data):
    return shared_data / "flaubert_base_uncased"


@pytest.fixture(scope="module")
def paragraphs(shared_data):
    text = (shared_data / "corpus" / "chasse-galerie.txt").read_text(encoding="utf-8")
    found = [p for p in re.split(r"\n\s*\n", text) if p.strip()]
    assert len(found) > 300
    return found


@pytest.fixture(scope="module", params=[True, False], ids=["uncased", "cased"])
def both(request, transformers, uncased_folder):
    """(ours, theirs) built from the published files, lowercasing or not. transformers ignores the config's
    ``do_lower_case``, so we pass ``do_lowercase`` explicitly to it."""
    theirs = transformers.FlaubertTokenizer.from_pretrained(str(uncased_folder), do_lowercase=request.param)
    ours = FlaubertTokenizer.from_pretrained(uncased_folder)
    ours.do_lowercase = request.param
    assert theirs.clean_up_tokenization_spaces == ours.clean_up_tokenization_spaces
    assert theirs.model_max_length == ours.model_max_length == 512
    return ours, theirs


def _as_lists(encoding) -> dict:
    return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in dict(encoding).items()}


def test_published_config_lowercases(uncased_folder):
    assert FlaubertTokenizer.from_pretrained(uncased_folder).do_lowercase  # "do_lower_case": true is honoured


def test_parity_every_paragraph(both, paragraphs):
    ours, theirs = both
    texts = paragraphs + EDGE_STRINGS
    mismatches = [t for t in texts if ours.tokenize(t) != theirs.tokenize(t) or ours.encode(t) != theirs.encode(t)]
    assert mismatches == [], f"{len(mismatches)} of {len(texts)} texts differ, first: {mismatches[0][:200]!r}"
    assert len(ours) == len(theirs) and ours.vocab_size == theirs.vocab_size
    assert ours.all_special_tokens == theirs.all_special_tokens and ours.all_special_ids == theirs.all_special_ids


def test_parity_pairs_and_token_types(both, paragraphs):
    ours, theirs = both
    options = dict(return_token_type_ids=True, return_special_tokens_mask=True)
    for first, second in zip(paragraphs[::2], paragraphs[1::2]):
        assert _as_lists(ours(first, second, **options)) == _as_lists(theirs(first, second, **options))
    ids = theirs(paragraphs[0], paragraphs[1])["input_ids"]
    assert ours.get_special_tokens_mask(ids, already_has_special_tokens=True) == theirs.get_special_tokens_mask(
        ids, already_has_special_tokens=True)


@pytest.mark.parametrize("kwargs", [
    dict(padding=True),
    dict(padding="longest", truncation=True, max_length=40),
    dict(padding="max_length", max_length=300, truncation="longest_first"),
    dict(padding="max_length", truncation=True),  # falls back on model_max_length = 512
    dict(truncation="only_first", max_length=64, return_tensors="np", padding=True),
    dict(truncation="only_second", max_length=96, padding=True),
    dict(max_length=17),  # max_length alone truncates
    dict(padding=True, add_special_tokens=False, return_special_tokens_mask=True, return_token_type_ids=True),
], ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()))
def test_parity_batches(both, paragraphs, kwargs):
    ours, theirs = both
    firsts, seconds = paragraphs[:24], paragraphs[24:48]
    kwargs = {"return_token_type_ids": True, **kwargs}
    for text_pair in (None, seconds):
        if kwargs.get("truncation") == "only_second" and text_pair is None:
            continue  # nothing to truncate from
        assert _as_lists(ours(firsts, text_pair, **kwargs)) == _as_lists(theirs(firsts, text_pair, **kwargs))


def test_parity_single_text_tensors(both, paragraphs):
    ours, theirs = both
    for text in paragraphs[:5]:
        got, expected = ours(text, return_tensors="np"), theirs(text, return_tensors="np")
        assert got.keys() == expected.keys()
        for key in got:
            np.testing.assert_array_equal(got[key], expected[key])
            assert got[key].shape == expected[key].shape


def test_parity_decode(both, paragraphs):
    ours, theirs = both
    for text in paragraphs + EDGE_STRINGS:
        ids = theirs(text)["input_ids"]
        for skip in (False, True):
            for clean in (None, False):
                assert ours.decode(ids, skip, clean) == theirs.decode(
                    ids, skip_special_tokens=skip, clean_up_tokenization_spaces=clean)
    batch = [theirs.encode(t) for t in paragraphs[:10]]
    assert ours.batch_decode(batch, skip_special_tokens=True) == theirs.batch_decode(batch, skip_special_tokens=True)
    tokens = theirs.tokenize(paragraphs[3])
    assert ours.convert_tokens_to_string(tokens) == theirs.convert_tokens_to_string(tokens)
    assert ours.convert_tokens_to_ids(tokens) == theirs.convert_tokens_to_ids(tokens)
    assert ours.convert_ids_to_tokens(list(range(100))) == theirs.convert_ids_to_tokens(list(range(100)))


def test_offsets_on_the_novel(uncased_folder, paragraphs):
    ours = FlaubertTokenizer.from_pretrained(uncased_folder)
    for text in paragraphs:
        check_offsets(ours, text)
