"""Lesson 8, exercises: parameter counts from the registry, what the restricted unpickler refuses, a strided
tensor decoded by hand."""
import io
import pickle
import pickletools
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from minflaubert.checkpoints import hub
from minflaubert.checkpoints.torch_pickle import UnsafeCheckpointError, load_torch_bin

# 1. Parameters from the architecture alone: word + position tables, the embedding LayerNorm, and per layer
# 12 dim^2 + 13 dim (lesson 4's exercise), plus the LM head's bias (its matrix is the word table, tied).
for name, entry in hub.registry().items():
    a = entry["architecture"]
    dim, layers, vocab = a["emb_dim"], a["n_layers"], a["vocab_size"]
    encoder = vocab * dim + 512 * dim + 2 * dim + layers * (12 * dim ** 2 + 13 * dim)
    print(f"{name:22s} {encoder / 1e6:6.1f} M parameters in the encoder")
    if name == "flaubert_base_cased":
        assert 137e6 < encoder < 139e6  # "about 138 million" (lesson 8)
print("why it matches: every weight of the encoder is one of these tables or matrices, and their shapes follow from "
      "the three numbers; the word table (vocab x dim) alone is more than a third of base's parameters.")


# 2. A pickle that would run code when loaded with pickle.load: the restricted unpickler refuses it.
class Evil:
    def __reduce__(self):
        return (print, ("this would have run!",))


folder = Path(tempfile.mkdtemp())
with zipfile.ZipFile(folder / "pytorch_model.bin", "w") as archive:
    archive.writestr("archive/data.pkl", pickle.dumps({"weight": Evil()}, protocol=2))
try:
    load_torch_bin(folder / "pytorch_model.bin")
    raise AssertionError("the unpickler ran it")
except UnsafeCheckpointError as error:
    print("refused:", error)
print("why: pickle.load would import and call `print` (or os.system) as the file says; the restricted unpickler "
      "knows only the names a state dict needs and refuses any other before calling anything.")

# 3. `column` = weight[1:, 2]: storage 0 again (12 floats), offset 6 (row 1, column 2 of a 3 x 4 array),
# shape (2,), stride 4 (one row further down), as the pickle says.
archive = zipfile.ZipFile("tests/fixtures/tiny_state_dict.bin")
listing = io.StringIO()
pickletools.dis(archive.read("tiny_state_dict/data.pkl"), out=listing)
around = listing.getvalue().split("'column'")[1].splitlines()[:30]
numbers = [line.split(maxsplit=2)[-1] for line in around if "BININT" in line or "GET" in line]
print("the pickle after 'column':", " | ".join(numbers))
storage = np.frombuffer(archive.read("tiny_state_dict/data/0"), dtype="<f4")
column = np.lib.stride_tricks.as_strided(storage[6:], (2,), (4 * storage.itemsize,))
print("column by hand:", column, " load_torch_bin:", load_torch_bin("tests/fixtures/tiny_state_dict.bin")["column"])
assert np.array_equal(column, load_torch_bin("tests/fixtures/tiny_state_dict.bin")["column"])
print("why: a view is not copied when saved: torch writes the whole storage once and describes the view by offset "
      "and strides, so the two elements of the column are 6 and 10, four apart.")
