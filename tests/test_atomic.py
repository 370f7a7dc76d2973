"""Crash-safe saves: a process killed at any instant of save_pretrained leaves the old model or the new one.

The main test does it for real: a subprocess saves a model (config, weights, tokenizer) over a folder holding a
good save and is SIGKILLed at many instants; after each kill the folder must load, as exactly the old model or
exactly the new one. Before atomic.py, 6 to 10 of 16 kill instants left a folder that did not load (the new
config.json beside the old weights). ``convert`` is killed the same way.
"""
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from minflaubert import FlaubertConfig, FlaubertModel, FlaubertTokenizer
from minflaubert.checkpoints import atomic
from minflaubert.checkpoints.weights import load_state_dict, save_state_dict

from conftest import FIXTURES, REPO

TOKENIZER = FIXTURES / "tiny-model"
KILL_INSTANTS = 16


def small_config(emb_dim: int) -> FlaubertConfig:
    # a vocabulary large enough that the weights take a while to write (the instants must fall inside the save)
    return FlaubertConfig(emb_dim=emb_dim, n_layers=1, n_heads=2, vocab_size=40_000, max_position_embeddings=64)


def fingerprint(folder) -> tuple:
    """What identifies a save: its width and its first embedding row (loads the config, weights and tokenizer)."""
    model = FlaubertModel.from_pretrained(folder)
    FlaubertTokenizer.from_pretrained(folder)
    return model.config.emb_dim, model.weights["embeddings.weight"][7].tobytes()


SAVER = textwrap.dedent("""
    import sys, time
    from minflaubert import FlaubertConfig, FlaubertModel, FlaubertTokenizer
    from minflaubert.checkpoints import atomic
    if sys.argv[3] == "two-renames":
        atomic._exchange = lambda a, b: False  # what systems without an atomic exchange do
    model = FlaubertModel(FlaubertConfig(emb_dim=48, n_layers=1, n_heads=2, vocab_size=40_000,
                                         max_position_embeddings=64), seed=2)
    tokenizer = FlaubertTokenizer.from_pretrained(sys.argv[2])
    print("ready", flush=True)
    start = time.perf_counter()
    model.save_pretrained(sys.argv[1])
    tokenizer.save_pretrained(sys.argv[1])
    print(time.perf_counter() - start, flush=True)
""")

CONVERTER = textwrap.dedent("""
    import sys, time
    from minflaubert.checkpoints.weights import convert_checkpoint
    print("ready", flush=True)
    start = time.perf_counter()
    convert_checkpoint(sys.argv[1], sys.argv[2], overwrite=True, progress=False)
    print(time.perf_counter() - start, flush=True)
""")


def start_writer(script: str, *args) -> subprocess.Popen:
    """A process running ``script`` with ``args``, once it has printed "ready" (imports done: the write starts)."""
    process = subprocess.Popen([sys.executable, "-c", script, *map(str, args)], cwd=REPO, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "ready", process.stderr.read()
    return process


def kill_at_instants(script: str, target, timing_target, args, state_of, restore_old) -> list[str]:
    """Write ``target`` with ``script`` again and again, SIGKILLed at instants spread over the time a whole write
    takes; after each kill ``state_of(target)`` must be the old state or the new one. -> "old"/"new" per kill."""
    old = state_of(target)
    timing = start_writer(script, *args(timing_target))  # how long a whole write takes, to spread the kills over
    duration = float(timing.stdout.readline())
    assert timing.wait(timeout=300) == 0, timing.stderr.read()
    new = state_of(timing_target)
    seen = []
    for delay in np.linspace(0.0, 1.2 * duration, KILL_INSTANTS):
        process = start_writer(script, *args(target))
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=300)
        process.stdout.close()
        process.stderr.close()
        state = state_of(target)
        assert state in (old, new), f"killed {delay:.3f} s into a {duration:.3f} s write: a mix of old and new"
        seen.append("new" if state == new else "old")
        if state == new:
            restore_old()
    assert "old" in seen, "no kill landed before the swap: the instants tested nothing"
    return seen


@pytest.mark.parametrize("swap", ["exchange", "two-renames"])
def test_a_save_killed_at_any_instant_leaves_the_old_or_the_new_model(tmp_path, swap):
    folder = tmp_path / "model"

    def save_old():
        FlaubertModel(small_config(32), seed=1).save_pretrained(folder)
    save_old()
    FlaubertTokenizer.from_pretrained(TOKENIZER).save_pretrained(folder)
    kill_at_instants(SAVER, folder, tmp_path / "timing", lambda target: (target, TOKENIZER, swap), fingerprint,
                     save_old)
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".model.")]
    save_old()  # the next save clears dead processes' files
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".model.")], leftovers


def test_a_convert_killed_at_any_instant_leaves_the_old_or_the_new_weights(torch, tmp_path):
    source, output = tmp_path / "bin", tmp_path / "converted"
    source.mkdir()
    torch.save({"transformer.embeddings.weight": torch.randn(4000, 1000)}, source / "pytorch_model.bin")
    (source / "config.json").write_text("{}")

    def write_old():
        save_state_dict({"transformer.embeddings.weight": np.ones((2, 3), np.float32)}, output)
        (output / "config.json").write_text('{"old": true}')
    write_old()

    def state_of(folder):
        return tuple((name, array.shape, array.tobytes()[:64]) for name, array in load_state_dict(folder).items()) \
            + ((folder / "config.json").read_text(),)
    kill_at_instants(CONVERTER, output, tmp_path / "timing", lambda target: (source, target), state_of, write_old)


def test_the_moment_between_two_renames_reads_the_parked_old_folder(tmp_path):
    folder = tmp_path / "model"
    FlaubertModel(small_config(32), seed=1).save_pretrained(folder)
    old = FlaubertModel.from_pretrained(folder).weights["embeddings.weight"][7].copy()
    os.rename(folder, atomic.old_path(folder))  # as a process killed between the two renames leaves it
    assert atomic.readable_folder(folder) == atomic.old_path(folder)
    np.testing.assert_array_equal(FlaubertModel.from_pretrained(folder).weights["embeddings.weight"][7], old)
    FlaubertModel(small_config(48), seed=2).save_pretrained(folder)  # the next save puts it back first, then swaps
    assert FlaubertConfig.from_pretrained(folder).emb_dim == 48
    assert not atomic.old_path(folder).exists()


def test_a_failed_save_leaves_the_folder_untouched(tmp_path):
    folder = tmp_path / "model"
    FlaubertModel(small_config(32), seed=1).save_pretrained(folder)
    (folder / "README.md").write_text("mine")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    with pytest.raises(KeyboardInterrupt):
        with atomic.atomic_folder(folder) as staging:
            (staging / "config.json").write_text("{half")
            raise KeyboardInterrupt
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_a_save_keeps_the_files_it_does_not_write(tmp_path):
    folder = tmp_path / "model"
    FlaubertTokenizer.from_pretrained(TOKENIZER).save_pretrained(folder)
    (folder / "README.md").write_text("mine")
    FlaubertModel(small_config(32)).save_pretrained(folder)
    assert {"README.md", "vocab.json", "merges.txt", "config.json", "model.safetensors"} <= \
        {p.name for p in folder.iterdir()}
    assert (folder / "README.md").read_text() == "mine"


def test_a_model_loaded_from_a_folder_survives_a_save_over_it(tmp_path):
    folder = tmp_path / "model"
    FlaubertModel(small_config(32), seed=1).save_pretrained(folder)
    loaded = FlaubertModel.from_pretrained(folder)  # its weights are memory-mapped from the folder's file
    expected = np.array(loaded.weights["embeddings.weight"][7])
    FlaubertModel(small_config(48), seed=2).save_pretrained(folder)
    np.testing.assert_array_equal(loaded.weights["embeddings.weight"][7], expected)
    loaded.save_pretrained(folder)  # saving a model over the very file it is mapped from
    np.testing.assert_array_equal(FlaubertModel.from_pretrained(folder).weights["embeddings.weight"][7], expected)


def test_atomic_file_replaces_whole_or_not_at_all(tmp_path):
    path = tmp_path / "vectors.npy"
    with atomic.atomic_file(path) as tmp:
        tmp.write_bytes(b"old")
    with pytest.raises(OSError):
        with atomic.atomic_file(path) as tmp:
            tmp.write_bytes(b"ne")
            raise OSError("disk full")
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vectors.npy"]


def test_saving_into_the_working_directory(tmp_path, monkeypatch):
    folder = tmp_path / "model"
    FlaubertModel(small_config(32), seed=1).save_pretrained(folder)
    monkeypatch.chdir(folder)
    FlaubertModel(small_config(48), seed=2).save_pretrained(".")
    assert os.getcwd() == str(folder) and FlaubertConfig.from_pretrained(".").emb_dim == 48
