"""The tokenizer API that transformers users touch, against transformers' ``FlaubertTokenizer`` (issue 30).

Padding and truncation sides, ``stride`` and overflowing tokens, ``pad_to_multiple_of``, ``return_length``,
``is_split_into_words``, batches of pairs, the special-token attributes, ``add_tokens`` / ``add_special_tokens`` and
their save and reload through ``added_tokens.json``: each compared with transformers 5.23 on the same folder, values
*and* key order. The asset-free tests at the top pin the behaviour and the errors without transformers.
"""
import copy
import json
import pickle
import re
import warnings

import numpy as np
import pytest

from minflaubert import FlaubertTokenizer

from conftest import FIXTURES

FOLDER = FIXTURES / "tiny-tokenizer"
TEXT = "Le chat dort sur le tapis rouge."
SHORT = "Le chien dort"


@pytest.fixture
def ours():
    return FlaubertTokenizer.from_pretrained(FOLDER)


# ---------------------------------------------------------------------------------------------------------------------
# Without transformers: the behaviour and the errors
# ---------------------------------------------------------------------------------------------------------------------


def test_the_sides_are_honoured(ours):
    right = ours([TEXT, "Le"], padding=True)["input_ids"]
    ours.padding_side = "left"
    left = ours([TEXT, "Le"], padding=True, return_offsets_mapping=True)
    assert left["input_ids"][1] == [ours.pad_token_id] * (len(right[1]) - 3) + right[1][:3]
    assert left["attention_mask"][1][0] == 0 and left["offset_mapping"][1][0] == (0, 0)
    assert left.word_ids(1)[:-3] == [None] * (len(right[1]) - 3)
    assert ours([TEXT, "Le"], padding=True, padding_side="right")["input_ids"] == right
    ours.truncation_side = "left"
    kept = ours(TEXT, max_length=5, return_offsets_mapping=True)
    assert kept["input_ids"][1:-1] == ours.encode(TEXT, add_special_tokens=False)[-3:]
    assert [TEXT[a:b] for a, b in kept["offset_mapping"][1:-1]][-1] == "."
    assert kept.word_ids() == [None, 0, 0, 1, None]  # counted from the first word kept ("rouge" is 2 pieces)


@pytest.mark.parametrize("kwargs, error, argument", [
    ({"padding": True, "padding_side": "middle"}, ValueError, "padding_side"),
    ({"stride": -1, "max_length": 4, "return_overflowing_tokens": True}, ValueError, "stride"),
    ({"stride": 1.5}, TypeError, "stride"),
    ({"padding": True, "pad_to_multiple_of": 0}, ValueError, "pad_to_multiple_of"),
    ({"text_pair": SHORT, "max_length": 4, "return_overflowing_tokens": True}, ValueError, "longest_first"),
    ({"return_tensors": "pt"}, ValueError, "return_tensors"),
])
def test_bad_arguments_name_themselves(ours, kwargs, error, argument):
    with pytest.raises(error, match=argument):
        ours(TEXT, **kwargs)


@pytest.mark.parametrize("where, kwargs", [
    ("call", {"text_target": "Le chat"}), ("call", {"text_pair_target": "Le chat"}),
    ("call", {"tokenizer_kwargs": {"padding": True}}),
    ("init", {"lang2id": {"fr": 0}}), ("init", {"id2lang": {0: "fr"}}),
])
def test_targets_and_language_tables_are_refused(ours, where, kwargs):
    """Keywords of transformers' tokenizer that make no sense for a torch-free encoder (seq2seq targets, a
    tokenizer-side language table: a FlauBERT's languages are in its config) are TypeErrors, not silently dropped."""
    (name,) = kwargs
    with pytest.raises(TypeError, match=name):
        ours(TEXT, **kwargs) if where == "call" else FlaubertTokenizer.from_pretrained(FOLDER, **kwargs)


def test_bad_sides_and_inputs_name_themselves(ours, tmp_path):
    ours.truncation_side = "middle"
    with pytest.raises(ValueError, match="truncation_side"):
        ours(TEXT, max_length=4)
    with pytest.raises(ValueError, match="padding_side"):
        FlaubertTokenizer.from_pretrained(FOLDER, padding_side="up")
    ours.truncation_side = "right"
    config = json.loads((FOLDER / "tokenizer_config.json").read_text())
    for name in ("vocab.json", "merges.txt"):
        (tmp_path / name).write_bytes((FOLDER / name).read_bytes())
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({**config, "truncation_side": "up"}))
    with pytest.raises(ValueError, match="tokenizer_config.json: truncation_side"):
        FlaubertTokenizer.from_pretrained(tmp_path)
    with pytest.raises(ValueError, match="empty list of words"):
        ours([], is_split_into_words=True)
    with pytest.raises(ValueError, match=r"text\[0\]"):
        ours([["a", "b", "c"]])
    with pytest.raises(TypeError, match=r"text\[1\]\[1\]"):
        ours([["a"], ["b", 3]], is_split_into_words=True)
    with pytest.raises(ValueError, match="unknown role 'foo_token'"):
        ours.add_special_tokens({"foo_token": "<f>"})
    with pytest.raises(TypeError, match=r"new_tokens\[0\]"):
        ours.add_tokens([3])


def test_a_batch_where_some_rows_overflow(ours):
    """transformers 5.23 fails (AssertionError) and 4.57.6 gives a negative count: [] and 0 here."""
    batch = ours([TEXT, "Le"], max_length=6, return_overflowing_tokens=True)
    assert batch["overflowing_tokens"][1] == [] and batch["num_truncated_tokens"] == [10, 0]
    assert batch["overflowing_tokens"][0] == ours.encode(TEXT, add_special_tokens=False)[4:]


def test_added_tokens_are_kept_whole_saved_and_reloaded(ours, tmp_path):
    assert ours.add_tokens(["chatbot", "tapis rouge"]) == 2 and ours.add_tokens("chatbot") == 0
    assert ours.tokenize("Le chatbot, tapis rouge")[1:4] == ["chatbot", ",</w>", "tapis rouge"]
    assert len(ours) == ours.vocab_size + 2
    written = ours.save_pretrained(tmp_path)
    assert [p.rsplit("/", 1)[-1] for p in written] == ["tokenizer_config.json", "vocab.json", "merges.txt",
                                                       "added_tokens.json"]
    assert json.loads((tmp_path / "added_tokens.json").read_text()) == {"chatbot": 426, "tapis rouge": 427}
    again = FlaubertTokenizer.from_pretrained(tmp_path)
    assert again.get_vocab() == ours.get_vocab() and again.tokenize("chatbot") == ["chatbot"]
    assert len(FlaubertTokenizer.from_pretrained(FOLDER).save_pretrained(tmp_path / "plain")) == 3


def test_a_tokenizer_pickles_and_copies(ours):
    ours.add_tokens("chatbot")
    ours(TEXT)  # something in the caches
    for again in (pickle.loads(pickle.dumps(ours)), copy.deepcopy(ours)):
        assert again(TEXT + " chatbot", return_offsets_mapping=True) == ours(TEXT + " chatbot",
                                                                            return_offsets_mapping=True)
        assert again._cached_word.__wrapped__.__self__ is again  # its own cache, rebuilt


# ---------------------------------------------------------------------------------------------------------------------
# Against transformers 5.23
# ---------------------------------------------------------------------------------------------------------------------


@pytest.fixture
def theirs(transformers):
    return transformers.FlaubertTokenizer.from_pretrained(str(FOLDER))


def _lists(encoding) -> dict:
    return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in dict(encoding).items()}


def _same(ours, theirs, *args, **kwargs):
    """Equal values, and keys in the same order."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = theirs(*args, **kwargs)
    got = ours(*args, **kwargs)
    assert list(got) == list(expected)
    assert _lists(got) == _lists(expected)


CALLS = {
    "overflow": ((TEXT,), dict(max_length=6, truncation=True, return_overflowing_tokens=True, stride=2)),
    "overflow, stride past the start": ((TEXT,), dict(max_length=6, return_overflowing_tokens=True, stride=10)),
    "overflow, nothing cut": ((TEXT,), dict(max_length=60, return_overflowing_tokens=True, stride=1)),
    "overflow, batch": (([TEXT, "Le chien dort sur le tapis"],),
                        dict(max_length=6, return_overflowing_tokens=True, stride=1, padding=True)),
    "overflow, np": (([TEXT, SHORT + " sur le tapis"],),
                     dict(max_length=6, return_overflowing_tokens=True, padding=True, return_tensors="np")),
    "overflow, only_second": ((SHORT, TEXT), dict(max_length=8, truncation="only_second",
                                                  return_overflowing_tokens=True, stride=1)),
    "overflow, only_first emptied": (("Le", TEXT), dict(max_length=6, truncation="only_first",
                                                        return_overflowing_tokens=True)),
    "pad_to_multiple_of, length": (([TEXT, "Le"],), dict(padding=True, pad_to_multiple_of=8, return_length=True)),
    "pad_to_multiple_of over max_length": (([TEXT, "Le"],), dict(padding="max_length", max_length=10,
                                                                  pad_to_multiple_of=8)),
    "pad_to_multiple_of, single": (("Le",), dict(padding=True, pad_to_multiple_of=8)),
    "pad_to_multiple_of without padding": (([TEXT, "Le"],), dict(pad_to_multiple_of=8)),
    "length, single": ((TEXT,), dict(return_length=True)),
    "length, single padded": (("Le",), dict(return_length=True, padding="max_length", max_length=6)),
    "length, np": (([TEXT, "Le"],), dict(padding=True, return_length=True, return_tensors="np")),
    "length and masks": (([TEXT, "Le"],), dict(padding=True, return_length=True, return_special_tokens_mask=True,
                                               return_token_type_ids=True)),
    "padding_side argument": (([TEXT, "Le"],), dict(padding=True, padding_side="left",
                                                    return_special_tokens_mask=True, return_token_type_ids=True)),
    "split words": ((["Le", "chat", "dort."],), dict(is_split_into_words=True)),
    "split words with spaces": ((["Le chat", "dort."],), dict(is_split_into_words=True)),
    "split batch": (([["Le", "chat"], ["dort."]],), dict(is_split_into_words=True)),
    "split pair": ((["Le", "chat"], ["dort."]), dict(is_split_into_words=True)),
    "split batch of pairs": (([(["Le"], ["chat"]), (["a"], ["b"])],), dict(is_split_into_words=True)),
    "split string": (("Le chat",), dict(is_split_into_words=True)),
    "split, truncated": ((["Le", "chat", "dort", "sur", "le", "tapis"],), dict(is_split_into_words=True,
                                                                               max_length=5)),
    "pairs as lists": (([["Le chat", "dort"], ["a", "b"]],), {}),
    "pairs as tuples": (([("Le chat", "dort"), ("a", "b")],), {}),
    "a pair among texts": ((["a", ("b", "c")],), {}),
    "a list of one": (([["a"]],), {}),
    "truncated pair": ((TEXT, SHORT), dict(max_length=9, truncation=True)),
    "truncated pair, only_second": ((SHORT, TEXT), dict(max_length=9, truncation="only_second")),
    "truncated": ((TEXT,), dict(max_length=5)),
    "only_second on a single text": ((TEXT,), dict(max_length=5, truncation="only_second")),
    "only_first on a pair": ((TEXT, SHORT), dict(max_length=7, truncation="only_first")),
}


@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("name", CALLS)
def test_calls_equal_transformers(ours, theirs, name, side):
    args, kwargs = CALLS[name]
    ours.truncation_side = theirs.truncation_side = side
    _same(ours, theirs, *args, **kwargs)


@pytest.mark.parametrize("side", ["right", "left"])
def test_the_padding_side_attribute_equals_transformers(ours, theirs, side):
    ours.padding_side = theirs.padding_side = side
    _same(ours, theirs, [TEXT, "Le", SHORT], padding=True, return_special_tokens_mask=True)
    _same(ours, theirs, TEXT, padding="max_length", max_length=20)


@pytest.mark.parametrize("side", ["right", "left"])
def test_sides_set_at_loading_equal_transformers(transformers, side, tmp_path):
    options = dict(padding_side=side, truncation_side=side)
    theirs = transformers.FlaubertTokenizer.from_pretrained(str(FOLDER), **options)
    ours = FlaubertTokenizer.from_pretrained(FOLDER, **options)
    _same(ours, theirs, [TEXT, "Le"], padding=True, max_length=6, truncation=True)
    ours.save_pretrained(tmp_path)  # the sides are saved, and read back by both
    _same(FlaubertTokenizer.from_pretrained(tmp_path), transformers.FlaubertTokenizer.from_pretrained(str(tmp_path)),
          [TEXT, "Le"], padding=True, max_length=6, truncation=True)


@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("kwargs", [dict(max_length=40), dict(max_length=64, truncation="only_second"),
                                    dict(max_length=50, truncation="only_first", padding=True)],
                         ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()))
def test_truncation_sides_on_the_novel_equal_transformers(transformers, shared_data, side, kwargs):
    folder = shared_data / "flaubert_base_uncased"
    theirs = transformers.FlaubertTokenizer.from_pretrained(str(folder), do_lowercase=True)
    ours = FlaubertTokenizer.from_pretrained(folder)
    ours.truncation_side = theirs.truncation_side = side
    novel = (shared_data / "corpus" / "chasse-galerie.txt").read_text(encoding="utf-8")
    paragraphs = [p for p in re.split(r"\n\s*\n", novel) if p.strip()]
    _same(ours, theirs, paragraphs[:30], paragraphs[30:60], return_token_type_ids=True, **kwargs)


def test_attributes_equal_transformers(ours, theirs):
    for name in ("eos_token", "eos_token_id", "special_tokens_map", "model_input_names", "extra_special_tokens",
                 "max_len_single_sentence", "max_len_sentences_pair", "is_fast", "all_special_tokens",
                 "all_special_ids", "bos_token_id", "cls_token_id", "sep_token_id", "pad_token_id", "unk_token_id",
                 "mask_token_id", "padding_side", "truncation_side", "vocab_size"):
        assert getattr(ours, name) == getattr(theirs, name), name
    assert ours.additional_special_tokens == theirs.extra_special_tokens  # transformers 4's name
    assert [ours.num_special_tokens_to_add(pair) for pair in (False, True)] == [
        theirs.num_special_tokens_to_add(pair) for pair in (False, True)]


def test_added_tokens_equal_transformers(ours, theirs, transformers, tmp_path):
    text = "Le chatbot <x> dort sur le tapis rouge, chatbots <eos> zz"

    def both(call):
        assert call(ours) == call(theirs)
    both(lambda t: t.add_tokens(["chatbot", "tapis rouge", "Le"]))
    both(lambda t: t.add_tokens("chatbot"))
    both(lambda t: (len(t), t.vocab_size, t.tokenize(text), dict(t(text))))
    both(lambda t: t.add_special_tokens({"eos_token": "<eos>"}))
    both(lambda t: t.add_special_tokens({"extra_special_tokens": ["<x>"]}))
    both(lambda t: (t.eos_token, t.eos_token_id, t.special_tokens_map, t.extra_special_tokens,
                    t.all_special_tokens, t.all_special_ids))
    both(lambda t: dict(t(text, return_special_tokens_mask=True)))
    both(lambda t: [t.decode(t(text)["input_ids"], skip_special_tokens=skip) for skip in (False, True)])
    both(lambda t: (t.convert_ids_to_tokens(list(range(420, 432))), t.get_vocab()))
    both(lambda t: (t.add_tokens(["<y>"], special_tokens=True), t.all_special_tokens, t.extra_special_tokens))
    mine, reference = tmp_path / "ours", tmp_path / "theirs"
    assert [p.rsplit("/", 1)[-1] for p in ours.save_pretrained(mine)] == [
        p.rsplit("/", 1)[-1] for p in theirs.save_pretrained(str(reference))]
    assert (mine / "added_tokens.json").read_text() == (reference / "added_tokens.json").read_text()
    for folder in (mine, reference):  # each library reads what the other wrote
        ours, theirs = FlaubertTokenizer.from_pretrained(folder), transformers.FlaubertTokenizer.from_pretrained(
            str(folder))
        both(lambda t: (len(t), t.tokenize(text), dict(t(text)), t.eos_token, t.eos_token_id, t.all_special_tokens))


@pytest.mark.parametrize("options", [dict(mask_token="<mask>", additional_special_tokens=["<a>"]),
                                     dict(extra_special_tokens=["<b>"], bos_token="<bos>"), dict(eos_token="</s>")],
                         ids=lambda options: ",".join(options))
def test_special_tokens_given_at_loading_equal_transformers(transformers, options, tmp_path):
    theirs = transformers.FlaubertTokenizer.from_pretrained(str(FOLDER), **options)
    ours = FlaubertTokenizer.from_pretrained(FOLDER, **options)
    for _ in range(2):  # as loaded, then saved and reloaded
        assert (ours.mask_token_id, ours.eos_token_id, ours.all_special_tokens, len(ours)) == (
            theirs.mask_token_id, theirs.eos_token_id, theirs.all_special_tokens, len(theirs))
        _same(ours, theirs, "<a> <b> <mask> le <bos>")
        ours = FlaubertTokenizer.from_pretrained(ours.save_pretrained(tmp_path)[0].rsplit("/", 1)[0])
