"""The BPE trainer (minflaubert.tokenization.bpe_train) and the train-bpe command: merges worked out by hand, byte-for-byte
determinism, the published file layout, a round trip property, and parity of what it writes with transformers'
FlaubertTokenizer on French text."""
import json

import pytest
from hypothesis import given, strategies as st

from conftest import require
from minflaubert import FlaubertTokenizer
from minflaubert.tokenization.bpe_train import count_words, train_bpe, train_bpe_files
from minflaubert.apps.cli import main as cli
from minflaubert.tokenization.moses import moses_tokenize, normalize

# Sennrich et al.'s example, as words of a text: low x5, lower x2, newest x6, widest x3.
TOY = "low " * 5 + "lower " * 2 + "newest " * 6 + "widest " * 3

# A few sentences of our own, to learn small vocabularies from. For the round trip, every character also appears as
# a word of its own and in every two-letter word, so that each one exists as a symbol both inside a word and at its
# end, whatever Moses splits off: then no text of this alphabet has an unknown symbol.
FRENCH = [
    "Le matin, la brume couvrait encore la rivière quand les bateliers descendirent vers le quai.",
    "« Nous partirons demain », dit-elle ; mais personne ne l'écoutait, car la cloche sonnait déjà.",
    "Il était une fois un meunier qui n'avait pour tout bien que son moulin, son âne et son chat.",
    "Les enfants couraient sur la place : l'un criait, l'autre riait, et le chien aboyait après eux !",
    "Pourquoi faut-il que l'été finisse ? Octobre arrive, les feuilles jaunissent et tombent.",
    "Elle ouvrit la porte, regarda la rue déserte, puis referma doucement la fenêtre du salon.",
]
ALPHABET = sorted(set("".join(FRENCH)) - {" "})
FRENCH_WITH_ALPHABET = FRENCH + ALPHABET + [a + b for a in ALPHABET for b in ALPHABET]  # (texts of their own:
# Moses splits a character by its neighbours, so in one long line "'e" would not stay one word)


def test_merges_worked_out_by_hand():
    # Pair counts at the start (each word's pairs times its count):
    #   e s 9 (newest 6 + widest 3), s t</w> 9, w e 2 ... l o 7, n e 6, e w 6, o w</w> 5, ...
    # 1. "e s" and "s t</w>" tie at 9: the smaller pair in string order wins -> es
    # 2. es t</w> 9 -> est</w>               3. l o 7 -> lo
    # 4. "e w", "n e", "w est</w>" tie at 6 -> ew   5. ew est</w> 6 (beats "n ew") -> ewest</w>
    # 6. n ewest</w> 6 -> newest</w>        7. lo w</w> 5 -> low</w>
    # 8-10. the pairs of widest, 3 each, smallest first: d est</w>, i dest</w>, w idest</w>
    # 11-13. lower's, 2 each: e r</w>, then lo w, then low er</w>. Then every pair is rarer than min_frequency=2.
    vocab, merges = train_bpe([TOY], vocab_size=100)
    assert merges == [("e", "s"), ("es", "t</w>"), ("l", "o"), ("e", "w"), ("ew", "est</w>"), ("n", "ewest</w>"),
                      ("lo", "w</w>"), ("d", "est</w>"), ("i", "dest</w>"), ("w", "idest</w>"), ("e", "r</w>"),
                      ("lo", "w"), ("low", "er</w>")]
    # ids: the 14 special tokens, the alphabet most frequent first, then each merged symbol in the order learned
    assert list(vocab)[:6] == ["<s>", "</s>", "<pad>", "<unk>", "<special0>", "<special1>"]
    assert list(vocab)[14] == "e" and list(vocab)[-3:] == ["er</w>", "low", "lower</w>"]
    assert list(vocab.values()) == list(range(len(vocab)))


def test_vocab_size_stops_the_merges():
    vocab, merges = train_bpe([TOY], vocab_size=14 + 11 + 2)  # the specials, 11 starting symbols, 2 merges
    assert len(vocab) == 27 and merges == [("e", "s"), ("es", "t</w>")]


def test_words_are_counted_as_the_tokenizer_splits_them():
    text = "L'été, « déjà » fini !"
    assert count_words([text, text]) == {word: 2 * moses_tokenize(normalize(text, True)).count(word)
                                         for word in moses_tokenize(normalize(text, True))}
    with pytest.raises(TypeError, match="texts must be strings"):
        count_words([b"bytes"])


def test_same_text_same_bytes(tmp_path):
    for name in ("a", "b"):
        (tmp_path / "text.txt").write_text("\n".join(FRENCH) + "\n", encoding="utf-8")
        train_bpe_files([tmp_path / "text.txt"], tmp_path / name, vocab_size=150)
    for file in ("vocab.json", "merges.txt", "tokenizer_config.json"):
        assert (tmp_path / "a" / file).read_bytes() == (tmp_path / "b" / file).read_bytes()
    config = json.loads((tmp_path / "a" / "tokenizer_config.json").read_text())
    assert config["tokenizer_class"] == "FlaubertTokenizer" and config["mask_token"] == "<special1>"
    assert FlaubertTokenizer.from_pretrained(tmp_path / "a").mask_token_id == 5


def test_too_small_a_vocabulary_says_why():
    with pytest.raises(ValueError, match="smaller than the 14 special tokens plus the 11 characters"):
        train_bpe([TOY], vocab_size=20)


@given(text=st.lists(st.sampled_from(ALPHABET + [" ", " "]), max_size=80).map("".join))
def test_encode_then_decode_gives_the_normalized_text(text, round_trip_tokenizer):
    ids = round_trip_tokenizer(text, add_special_tokens=False)["input_ids"]
    assert round_trip_tokenizer.unk_token_id not in ids
    expected = " ".join(moses_tokenize(normalize(text, True)))
    assert round_trip_tokenizer.decode(ids, clean_up_tokenization_spaces=False) == expected


@pytest.fixture(scope="module")
def round_trip_tokenizer(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bpe")
    vocab, merges = train_bpe(FRENCH_WITH_ALPHABET, vocab_size=300)
    from minflaubert.tokenization.files import write_tokenizer_files
    write_tokenizer_files(folder, vocab, merges, do_lowercase=True, model_max_length=512,
                          clean_up_tokenization_spaces=True)
    return FlaubertTokenizer.from_pretrained(folder)


def test_the_command_writes_a_tokenizer(tmp_path, capsys):
    (tmp_path / "a.txt").write_text("\n".join(FRENCH[:3]) + "\n", encoding="utf-8")
    (tmp_path / "b.txt").write_text("\n\n".join(FRENCH[3:]) + "\n", encoding="utf-8")
    assert cli(["train-bpe", str(tmp_path / "a.txt"), str(tmp_path / "b.txt"), "-o", str(tmp_path / "tok"),
                "--vocab-size", "120", "--min-frequency", "1", "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["vocab_size"] == 120
    # the same merges as the library function on the same paragraphs (blank lines skipped)
    vocab, merges = train_bpe(FRENCH, vocab_size=120, min_frequency=1)
    assert (tmp_path / "tok" / "merges.txt").read_text(encoding="utf-8").splitlines() == [" ".join(m) for m in merges]


def test_the_command_refuses_bad_input(tmp_path, capsys):
    (tmp_path / "bad.txt").write_bytes(b"caf\xe9\n")
    assert cli(["train-bpe", str(tmp_path / "bad.txt"), "-o", str(tmp_path / "tok"), "--vocab-size", "100"]) == 1
    assert "line 1 is not valid UTF-8" in capsys.readouterr().err
    assert cli(["train-bpe", str(tmp_path / "missing.txt"), "-o", str(tmp_path / "tok"), "--vocab-size", "100"]) == 1
    assert "missing.txt" in capsys.readouterr().err
    assert cli(["train-bpe", str(tmp_path / "bad.txt"), "-o", str(tmp_path / "tok"), "--vocab-size", "0"]) == 1
    assert "--vocab-size must be a positive integer" in capsys.readouterr().err
    assert not (tmp_path / "tok").exists()


def test_transformers_reads_what_we_write_and_splits_french_the_same(tmp_path, transformers, shared_data):
    corpus = sorted((shared_data / "corpus" / "train").glob("*.txt"))
    require(len(corpus) >= 2, f"no training corpus in {shared_data / 'corpus' / 'train'}")
    train_bpe_files(corpus[:2], tmp_path, vocab_size=3000)
    theirs = transformers.FlaubertTokenizer.from_pretrained(str(tmp_path))
    ours = FlaubertTokenizer.from_pretrained(tmp_path)
    heldout = (shared_data / "corpus" / "heldout" / "flaubert-education-sentimentale.txt").read_text(encoding="utf-8")
    paragraphs = [line for line in heldout.splitlines() if line.strip()][:300]
    assert len(paragraphs) == 300
    for text in paragraphs:
        assert ours(text)["input_ids"] == theirs(text)["input_ids"], text
