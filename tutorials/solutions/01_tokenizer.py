"""Lesson 1, exercises: spellings that normalise alike, merges replayed, pieces per word with the trained vocabulary."""
import json
import tempfile
from pathlib import Path

from minflaubert.tokenization.moses import moses_tokenize, normalize
from minflaubert.tokenization.tokenizer import FlaubertTokenizer

# 1. Four spellings of « l'été »: curly apostrophe, capitals, a combining accent. Normalisation (NFC, lowercasing,
# Moses' punctuation rules) makes them one.
spellings = ["l’été", "l'été", "L'ÉTÉ", "l'e\u0301te\u0301"]
cleaned = {tuple(moses_tokenize(normalize(s, lowercase=True))) for s in spellings}
print(cleaned)
assert len(cleaned) == 1
print("why: NFC joins e + combining accent into é, lowercasing folds the capitals, Moses turns ’ into '")

# 2. Replay the merges on « les » and « étés » with the lesson's tiny tokenizer.
merges = ["é t", "ét é</w>", "a r", "ar r", "arr i", "arri v", "arriv e</w>", "l '</w>", "e s</w>", "l es</w>", ". .",
          ".. .</w>"]
symbols = ["é", "t", "ét", "été</w>", "a", "r", "ar", "arr", "arri", "arriv", "arrive</w>", "l'</w>", "les</w>", "..",
           "...</w>"]
specials = ["<s>", "</s>", "<pad>", "<unk>"] + [f"<special{i}>" for i in range(10)]
folder = Path(tempfile.mkdtemp())
(folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(specials + symbols)}))
(folder / "merges.txt").write_text("\n".join(merges) + "\n")
tiny = FlaubertTokenizer(folder / "vocab.json", folder / "merges.txt", do_lowercase=True)
assert tiny.bpe("les") == ("les</w>",)  # e s</w> (#8), then l es</w> (#9)
assert tiny.bpe("étés") == ("ét", "é", "s</w>")  # é t (#0); « ét é</w> » needs é at the end of the word: no
print(tiny.bpe("les"), tiny.bpe("étés"), tiny.tokenize("étés"))  # é and s</w> are in the vocabulary
print("why not été</w> + s: the merge « ét é</w> » needs é to end the word, and in « étés » an s follows it")

# 3. Pieces per word with the trained vocabulary of weights/flaubert_tiny.
trained = FlaubertTokenizer.from_pretrained("weights/flaubert_tiny")
text = ("Emma rêvait de Paris, des bals et des robes de soie ; mais Charles, tranquille, ne voyait rien de "
        "l'ennui qui la rongeait.")
words = moses_tokenize(normalize(text, lowercase=True))
pieces = trained.tokenize(text)
print(f"{len(pieces)} pieces for {len(words)} words: {len(pieces) / len(words):.2f} per word")
assert len(pieces) >= len(words)
print("why more pieces than words: rare words (names, rare forms) are cut where their parts are common")
