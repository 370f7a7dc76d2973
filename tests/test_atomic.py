"""Crash-safe saves: a process killed at any instant of save_pretrained leaves the old model or the new one, and a
save touches only the files it writes.

The main test does it for real: a subprocess saves a model (config, weights, tokenizer) over a folder holding a
good save and is SIGKILLed at many instants; after each kill the folder must load, as exactly the old model or
exactly the new one, with the folder's other files (.git, .env, links...) as they were. Before atomic.py, 6 to 10
of 16 kill instants left a folder that did not load (the new config.json beside the old weights); before saves
moved files in one by one behind a commit point, every save deleted the folder's hidden files and replaced the
folder itself. ``convert`` and ``train-bpe`` are tried the same way.
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


def not_ours(folder) -> dict:
    """What a save must leave as it was: every entry of the folder but the save's own files, hidden ones included
    ({relative path: bytes, or "-> target" for a link}; links are not followed). A killed save's staging folder
    is left out: the next save removes it (checked apart)."""
    saved = {"config.json", "model.safetensors", "vocab.json", "merges.txt", "tokenizer_config.json"}
    found = {}
    for root, folders, files in os.walk(folder):
        folders[:] = [name for name in folders if not name.startswith(atomic.SAVE_PREFIX)]
        for name in folders + files:
            path = os.path.join(root, name)
            relative = os.path.relpath(path, folder)
            if relative in saved:
                continue
            if os.path.islink(path):
                found[relative] = "-> " + os.readlink(path)
            elif os.path.isfile(path):
                found[relative] = open(path, "rb").read()
    return found


def add_other_files(folder) -> None:
    """What a user's folder holds besides a model: a git clone's .git, an .env, a cache, a link, and weights of
    another format that loaders read after model.safetensors."""
    for relative, content in {".git/HEAD": "ref: refs/heads/main\n", ".git/objects/ab/cdef": "blob",
                              ".gitattributes": "*.safetensors filter=lfs\n", ".env": "TOKEN=secret\n",
                              ".cache/huggingface/download/model.safetensors.metadata": "abc\n",
                              "README.md": "mine", "notes/todo.txt": "à faire", ".thesis.tmp-final.docx": "thèse",
                              "pytorch_model.bin": "an older format, read after model.safetensors"}.items():
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        (folder / relative).write_text(content, encoding="utf-8")
    os.symlink("README.md", folder / "readme-link")


def add_links(folder) -> None:
    """Links a save must neither follow nor copy: one to a folder outside, one looping back to the folder."""
    (folder.parent / "elsewhere").mkdir(exist_ok=True)
    (folder.parent / "elsewhere" / "big.bin").write_bytes(b"0" * 1000)
    os.symlink("../elsewhere", folder / "outside")
    os.symlink(".", folder / "loop")


@pytest.mark.parametrize("through", ["the folder", "a symlink to it"])
def test_a_save_killed_at_any_instant_leaves_the_old_or_the_new_model(tmp_path, through):
    real = tmp_path / "model"
    folder = real if through == "the folder" else tmp_path / "link"

    def save_old():
        FlaubertModel(small_config(32), seed=1).save_pretrained(folder)
    real.mkdir()
    add_other_files(real)
    add_links(real)
    if folder != real:
        os.symlink("model", folder)
    others = not_ours(real)
    save_old()
    FlaubertTokenizer.from_pretrained(TOKENIZER).save_pretrained(folder)

    def state_of(target):
        if target == folder:
            assert not_ours(real) == others, "a file that is not the save's changed"
        return fingerprint(target)
    kill_at_instants(SAVER, folder, tmp_path / "timing", lambda target: (target, TOKENIZER), state_of, save_old)
    assert not_ours(real) == others and (folder == real or os.path.islink(folder))
    save_old()  # the next save clears dead processes' files, and only those
    assert not [p.name for p in real.iterdir() if p.name.startswith(atomic.SAVE_PREFIX)]
    assert not_ours(real) == others
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["model", "elsewhere", "timing",
                                                                 *(["link"] if folder != real else [])])


def test_a_convert_killed_at_any_instant_leaves_the_old_or_the_new_weights(torch, tmp_path):
    source, output = tmp_path / "bin", tmp_path / "converted"
    source.mkdir()
    torch.save({"transformer.embeddings.weight": torch.randn(4000, 1000)}, source / "pytorch_model.bin")
    (source / "config.json").write_text("{}")

    def write_old():
        save_state_dict({"transformer.embeddings.weight": np.ones((2, 3), np.float32)}, output)
        (output / "config.json").write_text('{"old": true}')
    write_old()
    add_other_files(output)
    others = not_ours(output)

    def state_of(folder):
        folder = atomic.readable_folder(folder)  # what every loader does first: finish a committed save
        if folder == output:
            assert not_ours(output) == others, "a file that is not the save's changed"
        return tuple((name, array.shape, array.tobytes()[:64]) for name, array in load_state_dict(folder).items()) \
            + ((folder / "config.json").read_text(),)
    kill_at_instants(CONVERTER, output, tmp_path / "timing", lambda target: (source, target), state_of, write_old)


def test_a_save_killed_after_its_commit_point_is_finished_by_the_next_reader(tmp_path, monkeypatch):
    folder = tmp_path / "model"
    FlaubertModel(small_config(32), seed=1).save_pretrained(folder)
    moved = []

    def move_one_then_die(commit, target):  # as a process killed between two of the moves leaves the folder
        first = sorted(commit.iterdir())[0]
        os.replace(first, target / first.name)
        moved.append(first.name)
        raise KeyboardInterrupt
    monkeypatch.setattr(atomic, "_move_in", move_one_then_die)
    with pytest.raises(KeyboardInterrupt):
        FlaubertModel(small_config(48), seed=2).save_pretrained(folder)
    monkeypatch.undo()
    assert moved == ["config.json"] and FlaubertConfig.from_dict(  # the new config beside the old weights...
        __import__("json").loads((folder / "config.json").read_text())).emb_dim == 48
    model = FlaubertModel.from_pretrained(folder)  # ...until a reader finishes the committed save
    assert model.config.emb_dim == 48 and model.weights["embeddings.weight"].shape[1] == 48
    assert not [p.name for p in folder.iterdir() if p.name.startswith(atomic.SAVE_PREFIX)]


def save_model(folder):
    FlaubertModel(small_config(32), seed=3).save_pretrained(folder)
    return FlaubertModel.from_pretrained(folder).config.emb_dim == 32


def save_tokenizer(folder):
    FlaubertTokenizer.from_pretrained(TOKENIZER).save_pretrained(folder)
    return FlaubertTokenizer.from_pretrained(folder).vocab_size == FlaubertTokenizer.from_pretrained(TOKENIZER).vocab_size


def convert(folder):  # the tiny .bin fixture (no torch needed), converted into the folder
    source = folder.parent / "source"
    source.mkdir(exist_ok=True)
    (source / "pytorch_model.bin").write_bytes((FIXTURES / "tiny_state_dict.bin").read_bytes())
    (source / "config.json").write_text("{}")
    done = subprocess.run([sys.executable, "-m", "minflaubert", "convert", source, "--output", folder, "--overwrite"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return set(load_state_dict(folder)) == set(load_state_dict(source))


def train_bpe(folder):
    (folder.parent / "text.txt").write_text("le chat dort sur la table\n" * 20, encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "minflaubert", "train-bpe", folder.parent / "text.txt", "-o", folder,
                           "--vocab-size", "60", "--quiet"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return FlaubertTokenizer.from_pretrained(folder).vocab_size > 14


@pytest.mark.parametrize("save", [save_model, save_tokenizer, convert, train_bpe], ids=lambda save: save.__name__)
def test_a_save_touches_only_the_files_it_writes(tmp_path, save):
    folder = tmp_path / "repo"
    folder.mkdir()
    add_other_files(folder)
    others = not_ours(folder)
    inode = folder.stat().st_ino
    assert save(folder) and save(folder)  # into a folder with all that, then over its own previous save
    assert not_ours(folder) == others
    assert folder.stat().st_ino == inode  # the very same folder, not a new one under its name
    assert not [p.name for p in folder.iterdir() if p.name.startswith(atomic.SAVE_PREFIX)]


@pytest.mark.parametrize("save", [save_model, save_tokenizer, convert, train_bpe], ids=lambda save: save.__name__)
def test_a_save_through_a_symlinked_folder_writes_into_its_target(tmp_path, save):
    real, link = tmp_path / "real", tmp_path / "link"
    real.mkdir()
    add_links(real)
    os.symlink("real", link)
    others = not_ours(real)
    assert save(link) and save(link)
    assert os.readlink(link) == "real" and not_ours(real) == others  # links stay links, nothing copied
    assert {"config.json", "vocab.json"} & {p.name for p in real.iterdir()}
    assert sorted(p.name for p in tmp_path.iterdir() if p.name not in ("source", "text.txt")) == \
        ["elsewhere", "link", "real"]


def test_another_process_working_inside_the_folder_keeps_its_working_directory(tmp_path):
    folder = tmp_path / "model"
    FlaubertModel(small_config(32), seed=1).save_pretrained(folder)
    look = "import os, sys; sys.stdin.readline(); print(os.getcwd(), sorted(os.listdir('.')))"
    inside = subprocess.Popen([sys.executable, "-c", look], cwd=folder, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    FlaubertModel(small_config(48), seed=2).save_pretrained(folder)
    FlaubertTokenizer.from_pretrained(TOKENIZER).save_pretrained(folder)
    out, err = inside.communicate("go\n", timeout=60)
    assert inside.returncode == 0, err  # (before: FileNotFoundError, its folder had been deleted)
    assert out.strip() == f"{folder} {sorted(p.name for p in folder.iterdir())}"


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
