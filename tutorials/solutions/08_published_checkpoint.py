"""Lesson 8, exercises: parameter counts from the registry, and what the restricted unpickler refuses."""
import io
import pickle
import tempfile
import zipfile
from pathlib import Path

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
