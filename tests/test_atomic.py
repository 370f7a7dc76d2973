"""Crash-safe saves: a process killed at any instant of save_pretrained leaves the old model or the new one.

The main test does it for real: a subprocess saves a model (config, weights, tokenizer) over a folder holding a
good save and is SIGKILLed at many instants; after each kill the folder must load, as exactly the old model or
exactly the new one. Before atomic.py, 6 to 10 of 16 kill instants left a folder that did not load (the new
config.json beside the old weights).
"""
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from minflaubert import FlaubertConfig, FlaubertModel, FlaubertTokenizer, atomic

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
    from minflaubert import FlaubertConfig, FlaubertModel, FlaubertTokenizer, atomic
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


def start_saver(folder, swap: str) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-c", SAVER, str(folder), str(TOKENIZER), swap], cwd=REPO,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "ready", process.stderr.read()
    return process


@pytest.mark.parametrize("swap", ["exchange", "two-renames"])
def test_a_save_killed_at_any_instant_leaves_the_old_or_the_new_model(tmp_path, swap):
    folder = tmp_path / "model"
    FlaubertModel(small_config(32), seed=1).save_pretrained(folder)
    FlaubertTokenizer.from_pretrained(TOKENIZER).save_pretrained(folder)
    old = fingerprint(folder)

    timing = start_saver(tmp_path / "timing", swap)  # how long a whole save takes here, to spread the kills over
    duration = float(timing.stdout.readline())
    assert timing.wait(timeout=300) == 0
    new = fingerprint(tmp_path / "timing")

    seen = []
    for delay in np.linspace(0.0, 1.2 * duration, KILL_INSTANTS):
        process = start_saver(folder, swap)
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=300)
        process.stdout.close()
        process.stderr.close()
        state = fingerprint(folder)
        assert state in (old, new), f"killed {delay:.3f} s into a {duration:.3f} s save: a mix of old and new"
        seen.append("new" if state == new else "old")
        if state == new:  # put the old model back for the next instant
            FlaubertModel(small_config(32), seed=1).save_pretrained(folder)
    assert "old" in seen, "no kill landed before the swap: the instants tested nothing"
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".model.")]
    FlaubertModel(small_config(32), seed=1).save_pretrained(folder)  # the next save clears dead processes' files
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".model.")], leftovers


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
